"""`mf2 run`: a recipe end to end — fetch (with a manifest), landmarks, flow, every simulate
job — on a Dask cluster, resumable, with a summary of counts and per-stage timings."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mf2.atomic import write_bytes_atomic
from mf2.errors import UsageError
from mf2.pipeline.consolidate import prepare
from mf2.pipeline.execute import Job, run_jobs
from mf2.pipeline.recipe import Recipe, dump_recipe
from mf2.pipeline.summary import RunSummary
from mf2.sources import VideoSource, resolve_videos


@dataclass
class PipelineSummary:
    recipe: str
    out: Path
    n_videos: int
    jobs: dict[str, RunSummary]
    fetch: dict | None
    wall_s: float
    frames: int
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "recipe": self.recipe, "out": str(self.out), "videos": self.n_videos, "wall_s": round(self.wall_s, 2),
            "frames": self.frames, "frames_per_s": round(self.frames / self.wall_s, 2) if self.wall_s else None,
            "fetch": self.fetch, "stage_seconds": self.stage_seconds,
            "jobs": {n: s.to_json() for n, s in self.jobs.items()},
        }


def run_pipeline(recipe: Recipe, out: Path, runner, manifest: str | None = None, videos: str | None = None,
                 retry_failed: bool = False, cookies: str | None = None, show_progress: bool | None = None,
                 echo: Callable[[str], None] | None = None, replace: bool = False,
                 fps: float | None = None) -> PipelineSummary:
    """``fps``: the frame rate of folders of frames among ``videos``."""
    if (manifest is None) == (videos is None):
        raise UsageError("mf2 run: give exactly one of --manifest CSV (fetch first) or --videos PATH")
    jobs_cfg = recipe.simulate_configs()  # validates every job before anything runs
    for name, cfg in jobs_cfg:  # a job folder with other settings is refused before any download
        prepare(out / name, cfg.params(), replace, option=f"--out {out}, job")
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "recipe.yaml", dump_recipe(recipe).encode())
    t0 = time.perf_counter()
    fetch_info = None
    if manifest is not None:
        from dataclasses import replace

        from mf2.fetch.run import run_fetch

        fcfg = recipe.fetch_config()
        if cookies:
            fcfg = replace(fcfg, cookies=cookies)
        fs = run_fetch(manifest, out / "data", fcfg, retry_failed, runner=runner, filters=recipe.filters)
        fetch_info = {"rows": fs.n_rows, "videos": fs.n_videos, "status": fs.counts, "error_classes": fs.error_classes,
                      "downloaded": fs.downloaded, "reused": fs.reused, "table": str(fs.table)}
        if echo:
            echo(f"fetch: {fs.counts.get('ok', 0)} ok, {fs.counts.get('failed', 0)} failed of {fs.n_rows} rows")
        try:
            sources: list[VideoSource] = resolve_videos(fs.table)
        except UsageError:
            sources = []
    else:
        sources = resolve_videos(videos, fps)
    jobs = [Job(name, cfg, out / name) for name, cfg in jobs_cfg]
    summaries = run_jobs(sources, jobs, out / "cache", runner, show_progress, echo, retry_failed,
                         replace, recipe.filters) if sources else {}
    wall = time.perf_counter() - t0
    stage_seconds: dict[str, float] = {}
    for s in summaries.values():
        for k, v in s.stage_seconds.items():
            stage_seconds[k] = round(stage_seconds.get(k, 0.0) + v, 3)
    frames = _frames(out / "cache")
    summary = PipelineSummary(recipe.name, out, len(sources), summaries, fetch_info, wall, frames, stage_seconds)
    write_bytes_atomic(out / "run.json", json.dumps(summary.to_json(), indent=2).encode())
    return summary


def _frames(cache: Path) -> int:
    import pyarrow.parquet as pq

    p = cache / "timings.parquet"
    if not p.is_file():
        return 0
    try:
        t = pq.read_table(p, columns=["video_id", "frames"]).to_pylist()
    except Exception:  # a timings file is a report, never a reason to fail the run
        return 0
    return sum({r["video_id"]: r["frames"] for r in t}.values())
