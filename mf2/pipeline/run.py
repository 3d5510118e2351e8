"""`mf2 run`: a recipe end to end — fetch (with a manifest), landmarks, flow, every simulate
job — on a Dask cluster, resumable, with a summary of counts and per-stage timings."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, cast

from mf2.atomic import write_bytes_atomic
from mf2.dataset.folder import prepare
from mf2.errors import UsageError
from mf2.pipeline.execute import Job, run_jobs
from mf2.pipeline.recipe import Recipe, dump_recipe
from mf2.pipeline.summary import RunSummary
from mf2.sources import VideoSource, resolve_images, resolve_videos


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
    training: dict | None = None  # the recipe's train step: RUN/model.pt and its stages

    def to_json(self) -> dict:
        return {
            "recipe": self.recipe,
            "out": str(self.out),
            "videos": self.n_videos,
            "wall_s": round(self.wall_s, 2),
            "frames": self.frames,
            "frames_per_s": round(self.frames / self.wall_s, 2) if self.wall_s else None,
            "fetch": self.fetch,
            "stage_seconds": self.stage_seconds,
            "jobs": {n: s.to_json() for n, s in self.jobs.items()},
            "training": self.training,
        }


def run_pipeline(
    recipe: Recipe,
    out: Path,
    runner,
    manifest: str | None = None,
    videos: str | None = None,
    retry_failed: bool = False,
    cookies: str | None = None,
    show_progress: bool | None = None,
    echo: Callable[[str], None] | None = None,
    replace: bool = False,
    fps: float | None = None,
    images: str | None = None,
    threads: int | None = None,
) -> PipelineSummary:
    """``fps``: the frame rate of folders of frames among ``videos``; ``images``: the photos
    that the recipe's ``inputs: photos`` jobs blur. A recipe with a ``train`` step then trains
    RUN/model.pt on the jobs' pairs (``threads``: torch's CPU threads, None: the free cores)."""
    if (manifest is None) == (videos is None):
        raise UsageError("mf2 run: give exactly one of --manifest CSV (fetch first) or --videos PATH")
    photo_jobs = [j.name for j in recipe.jobs if j.inputs == "photos"]
    if images is not None and not photo_jobs:
        raise UsageError(f"--images {images}: recipe {recipe.name} has no job that blurs photos (inputs: photos)")
    photos = resolve_images(images) if images is not None else []
    jobs_cfg = recipe.simulate_configs()  # validates every job before anything runs
    for name, cfg in jobs_cfg:  # a job folder with other settings is refused before any download
        prepare(out / name, cfg.params(), replace, option=f"--out {out}, job")
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "recipe.yaml", dump_recipe(recipe).encode())
    t0 = time.perf_counter()
    sources, fetch_info = _video_sources(recipe, out, runner, manifest, videos, fps, retry_failed, cookies, echo)
    by_inputs = {"videos": sources, "photos": photos}
    summaries: dict[str, RunSummary] = {}
    for inputs, srcs in by_inputs.items():
        jobs = [Job(j.name, j.cfg, out / j.name) for j in recipe.jobs if j.inputs == inputs]
        if jobs and srcs:
            summaries.update(
                run_jobs(srcs, jobs, out / "cache", runner, show_progress, echo, retry_failed, replace, recipe.filters)
            )
        elif jobs and echo:
            echo(
                f"{', '.join(j.name for j in jobs)}: skipped (no {inputs}; give --images DIR)"
                if inputs == "photos"
                else f"{', '.join(j.name for j in jobs)}: skipped (no videos)"
            )
    wall = time.perf_counter() - t0  # the pairs' time: frames/s is about them
    training = None
    if recipe.train is not None and summaries:
        t1 = time.perf_counter()
        training = {**_train(recipe, out, summaries, threads, echo), "seconds": round(time.perf_counter() - t1, 1)}
    stage_seconds: dict[str, float] = {}
    for s in summaries.values():
        for k, v in s.stage_seconds.items():
            stage_seconds[k] = round(stage_seconds.get(k, 0.0) + v, 3)
    frames = _frames(out / "cache")
    summary = PipelineSummary(
        recipe.name, out, len(sources) + len(photos), summaries, fetch_info, wall, frames, stage_seconds, training
    )
    write_bytes_atomic(out / "run.json", json.dumps(summary.to_json(), indent=2).encode())
    return summary


def _video_sources(
    recipe: Recipe,
    out: Path,
    runner,
    manifest: str | None,
    videos: str | None,
    fps: float | None,
    retry_failed: bool,
    cookies: str | None,
    echo: Callable[[str], None] | None,
) -> tuple[list[VideoSource], dict | None]:
    """The run's videos: fetched from a manifest (with what the fetch did), or local ones."""
    if manifest is None:
        return resolve_videos(cast(str, videos), fps), None  # the caller gives one of the two
    from dataclasses import replace

    from mf2.fetch.run import run_fetch

    fcfg = recipe.fetch_config()
    if cookies:
        fcfg = replace(fcfg, cookies=cookies)
    fs = run_fetch(manifest, out / "data", fcfg, retry_failed, runner=runner, filters=recipe.filters)
    fetch_info = {
        "rows": fs.n_rows,
        "videos": fs.n_videos,
        "status": fs.counts,
        "error_classes": fs.error_classes,
        "downloaded": fs.downloaded,
        "reused": fs.reused,
        "table": str(fs.table),
    }
    if echo:
        echo(f"fetch: {fs.counts.get('ok', 0)} ok, {fs.counts.get('failed', 0)} failed of {fs.n_rows} rows")
    try:
        return resolve_videos(fs.table), fetch_info
    except UsageError:
        return [], fetch_info


def _train(
    recipe: Recipe, out: Path, summaries: dict[str, RunSummary], threads: int | None, echo: Callable[[str], None] | None
) -> dict:
    """The recipe's training step on the pairs its jobs made: RUN/model.pt, resumable (the
    trainer's checkpoints live in RUN/checkpoints). Jobs that made no pairs (no photos given)
    are left out; the hourglass then trains on the cGAN's pairs."""
    from mf2.models.config import load_config
    from mf2.train.loop import train

    step = recipe.train
    assert step is not None
    made = {n for n, s in summaries.items() if s.n_pairs > 0}
    pairs = [str(out / n) for n in step.pairs if n in made]
    hg_pairs = [str(out / n) for n in step.hg_pairs if n in made]
    if not pairs:
        raise UsageError(f"recipe {recipe.name}: train: no pairs were made by {', '.join(step.pairs)}")
    if step.hg_pairs and not hg_pairs and echo:
        echo(f"train: no pairs from {', '.join(step.hg_pairs)}; the hourglass trains on {', '.join(step.pairs)}")
    gate_pairs = [str(out / n) for n in step.gate_pairs if n in made]
    cfg = load_config(step.config)
    results = train(
        pairs,
        out,
        cfg,
        device=step.device,
        echo=echo,
        hg_manifests=hg_pairs or None,
        threads=threads,
        gate_manifests=gate_pairs or None,
    )
    return {
        "model": str(out / "model.pt"),
        "config": step.config,
        "pairs": pairs,
        "hg_pairs": hg_pairs,
        "gate_pairs": gate_pairs,
        **{k: {"steps": r.steps, "images_per_s": round(r.images_per_s, 2), "val": r.val} for k, r in results.items()},
    }


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
