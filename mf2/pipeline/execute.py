"""Per-video tasks and the driver that consolidates their outputs.

Each video is two tasks: landmarks (asks for a ``GPU`` worker resource when the FAN backend
runs) and simulate (every job of the run, on whichever worker is free). Both return small
records (``Prepared``, ``VideoRecord``); the pixels go straight from a worker to files. A video's pairs reach ``pairs.parquet``
only through its part file, written last and atomically, so a run killed at any moment
resumes to exactly what a clean run gives. Failures never stop the run: each is recorded
with its stage, class and message.
"""

from __future__ import annotations

import json
import math
import threading
import traceback
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import pyarrow as pa
from tqdm import tqdm

from mf2.atomic import clean_stale_tmp, write_parquet_atomic
from mf2.dataset import failures_path, frame_store_path, pairs_path, part_path
from mf2.dataset.failures import read_failures, write_failures
from mf2.dataset.folder import current_parts, dataset_lock, identities_in, prepare
from mf2.errors import FILTERED, InputError, UsageError, failure_class, os_error_line, retried_by_default
from mf2.faces.select import LandmarkConfig, check_backend, make_backend, resolve_backend_name
from mf2.modes.config import SimulateConfig
from mf2.pipeline.progress import FrameProgress, ProgressWatcher
from mf2.pipeline.runner import SyncRunner
from mf2.pipeline.summary import RunSummary
from mf2.schema import PAIR_SCHEMA, TIMING_SCHEMA, metadata, params_json, try_read_metadata, upgrade_pairs
from mf2.simulate import Stages, part_is_current, simulate_video
from mf2.sources import VideoSource, legacy_safe_id, sha256_file
from mf2.video import VideoInfo
from mf2.video.filters import VideoFilter
from mf2.video.framestore import remove_store
from mf2.video.probe import frames_hint


@dataclass(frozen=True)
class Job:
    name: str  # folder-safe; one dataset folder per job
    cfg: SimulateConfig
    out: Path


# -- worker side ------------------------------------------------------------------------------

_BACKENDS: dict[str, object] = {}


def _backend(cfg: LandmarkConfig):
    """One landmark model per worker process, loaded on first use."""
    key = json.dumps([resolve_backend_name(cfg), cfg.fan_weights])
    if key not in _BACKENDS:
        _BACKENDS[key] = make_backend(cfg)
    return _BACKENDS[key]


def _failure(src: VideoSource, stage: str, e: BaseException, log_dir: Path, sha: str | None = None) -> dict:
    cls = failure_class(e)
    if cls is not None:  # the input's fault, or the machine's state: one line
        line = os_error_line(e) if isinstance(e, OSError) else str(e)
        return {
            "video_id": src.video_id,
            "path": str(src.path),
            "stage": stage,
            "error_class": cls,
            "error": line,
            "video_sha256": sha,
        }
    try:  # a bug, not the input's fault: keep the traceback for the report
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / "failures.log", "a") as log:
            log.write(f"== {src.video_id} ({src.path}) at {stage}\n{traceback.format_exc()}\n")
    except OSError:
        pass
    return {
        "video_id": src.video_id,
        "path": str(src.path),
        "stage": stage,
        "error_class": "internal-error",
        "error": f"{type(e).__name__}: {e}",
        "video_sha256": sha,
    }


@dataclass
class Prepared:
    """What the landmark task hands to the simulate task of one video."""

    sha256: str | None
    frames: int
    timings: dict[str, float]
    failure: dict | None = None
    backend: str | None = None  # the landmark backend that made the cached table
    info: VideoInfo | None = None  # what the landmark task probed (the simulate task does not probe again)


@dataclass
class VideoRecord:
    """What one (video, job) reports to the driver: small and picklable, no pixels. Made by
    the simulate task, for an earlier failure that is kept, and for a task that died."""

    job: str
    video_id: str
    frames: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    failure: dict | None = None
    part: str | None = None
    resumed: bool = False
    face_lost: int = 0
    pairs_dropped: int = 0  # by the pair filters (--min-blur, --min-target-sharpness)
    note: str | None = None  # why a video that was processed gave no pairs
    carried: bool = False  # an earlier failure kept because the input is unchanged


def landmark_task(src: VideoSource, cache: Path, jobs: list[Job], filters: VideoFilter | None = None) -> Prepared:
    """Probe, hash and (unless every job already has this video's part) the landmark table;
    ``filters`` may turn the video away (a failure of class ``filtered``, with the reason)."""
    from mf2.faces.stage import landmarks_for_video
    from mf2.video import probe

    stages = Stages()
    stages.current = "hash"
    sha = None
    try:
        sha = _hash(src)
        stages.enter("probe")
        info = probe(src.path, src.fps)
        filters = filters or VideoFilter()
        filters.check_video(info)
        cfg = jobs[0].cfg.landmarks
        name = resolve_backend_name(cfg)
        if filters.min_face or not all(
            part_is_current(part_path(j.out, j.cfg.mode, src.video_id), sha, j.cfg) for j in jobs
        ):
            stages.enter("landmarks")
            progress = FrameProgress(cache, src.video_id, info.n_frames, stages)
            try:
                table = landmarks_for_video(
                    src.video_id, info, sha, cfg, cache, _backend(cfg), progress, keep_frames=True
                )
            finally:
                progress.close()
            stages.enter("filter")
            filters.check_faces(table)
        return Prepared(sha, info.n_frames, stages.done(), backend=name, info=info)
    except Exception as e:
        failure = _failure(src, stages.current, e, cache, sha)  # before done(): it names the stage
        return Prepared(sha, 0, stages.done(), failure)


def _hash(src: VideoSource) -> str:
    if not (src.path.is_file() or src.path.is_dir()):
        raise InputError(f"{src.path}: no such file", "missing-file")
    return sha256_file(src.path)


def simulate_task(src: VideoSource, prep: Prepared, jobs: list[Job], cache: Path) -> list[VideoRecord]:
    """Every job's part of one video; the face regions its landmark task kept for them
    (mf2.video.framestore) are removed after the last."""
    try:
        return _simulate_jobs(src, prep, jobs, cache)
    finally:
        if prep.sha256:
            remove_store(frame_store_path(cache, src.video_id, prep.sha256))


def video_task(src: VideoSource, cache: Path, jobs: list[Job], filters: VideoFilter | None = None) -> list[VideoRecord]:
    """Both tasks of one video in one: where no GPU resource separates them (the landmark task
    asks for one with FAN), a video's landmarks and its pairs run on one worker, back to back.
    As two tasks, a worker that finished a video's landmarks started the next landmark task
    it held before that video's simulate task came (Dask's order, not ours), and every video
    cost the scheduler a second round trip (issue 35)."""
    return simulate_task(src, landmark_task(src, cache, jobs, filters), jobs, cache)


def _simulate_jobs(src: VideoSource, prep: Prepared, jobs: list[Job], cache: Path) -> list[VideoRecord]:
    out = []
    for job in jobs:
        rec = VideoRecord(job.name, src.video_id, prep.frames, dict(prep.timings) if job is jobs[0] else {})
        out.append(rec)
        if prep.failure:
            rec.failure = prep.failure
            continue
        stages = Stages()
        # The landmark task (perhaps on a GPU worker) made the table: name its backend so this
        # worker reads it from the cache instead of loading a model of its own.
        cfg = replace(job.cfg, landmarks=replace(job.cfg.landmarks, backend=prep.backend or job.cfg.landmarks.backend))
        progress = FrameProgress(cache, src.video_id, prep.frames, stages, job.name if len(jobs) > 1 else None)
        try:
            res = simulate_video(src, job.out, cfg, None, progress, cache, prep.sha256, stages, prep.info)
            rec.part, rec.resumed = str(part_path(job.out, job.cfg.mode, src.video_id)), res.resumed
            rec.face_lost, rec.note, rec.pairs_dropped = res.windows_face_lost, res.note, res.pairs_dropped
        except Exception as e:
            rec.failure = _failure(src, stages.current, e, job.out, prep.sha256)
        finally:
            progress.close()
        for k, v in stages.done().items():
            if k not in ("probe", "hash") or not rec.timings:
                rec.timings[k] = rec.timings.get(k, 0.0) + v
    return out


# -- driver side ------------------------------------------------------------------------------


def _removed(out: Path) -> set[str]:
    from mf2.dataset.manifest import removed_ids

    return removed_ids(out)


def run_jobs(
    sources: list[VideoSource],
    jobs: list[Job],
    cache: Path,
    runner,
    show_progress: bool | None = None,
    echo: Callable[[str], None] | None = None,
    retry_failed: bool = False,
    replace: bool = False,
    filters: VideoFilter | None = None,
) -> dict[str, RunSummary]:
    """``retry_failed``: redo videos that failed before; otherwise a video whose earlier failure
    was its input's fault is skipped (its record kept) while its file is unchanged.
    ``replace``: a job folder holding pairs made with other settings is cleared first
    (otherwise such a run is refused before any work)."""
    lcfg = _check_jobs(jobs)
    _prepare_folders(jobs, cache, replace)
    sources = _check_ids(sources, jobs)
    if runner.name == "synchronous":
        _backend(lcfg)  # a missing model is a usage error before any video, not a failure per video
    gpu = {"GPU": 1} if check_backend(lcfg) == "fan" and runner.name != "synchronous" else None
    taken_down = {j.name: _removed(j.out) for j in jobs}
    kept = _KeptFailures(jobs, retry_failed)
    futures, carried = _submit(sources, jobs, cache, runner, gpu, taken_down, kept, filters)
    records = _collect(futures, runner, show_progress, cache) + carried
    if carried and echo:
        echo(f"{len(carried)} earlier failure(s) kept (unchanged input); --retry-failed redoes them")
    order = {s.video_id: i for i, s in enumerate(sources)}
    srcs = {s.video_id: s for s in sources}
    summaries = {}
    for j in jobs:
        mine = sorted((r for r in records if r.job == j.name), key=lambda r: order[r.video_id])
        summaries[j.name] = _consolidate(j, mine, srcs, len(taken_down[j.name] & set(srcs)))
    _write_timings(cache, records)
    return summaries


def _check_jobs(jobs: list[Job]) -> LandmarkConfig:
    """Every job valid, named once, and sharing one landmark configuration (returned)."""
    if not jobs:
        raise UsageError("nothing to run: no simulate job")
    for j in jobs:
        j.cfg.validate()
    lcfg = jobs[0].cfg.landmarks
    if any(j.cfg.landmarks != lcfg for j in jobs):
        raise UsageError("all jobs of a run share one landmark configuration")
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise UsageError(f"job names must be distinct: {names}")
    return lcfg


def _prepare_folders(jobs: list[Job], cache: Path, replace: bool) -> None:
    """Refuse (or clear, with ``replace``) folders of other settings, before any work; then
    make the folders and drop the temporary files of a killed run."""
    for j in jobs:
        prepare(j.out, j.cfg.params(), replace)
    cache.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(cache)
    for j in jobs:
        j.out.mkdir(parents=True, exist_ok=True)
        if j.out != cache:
            clean_stale_tmp(j.out)


def _part_source(job: Job, video_id: str) -> tuple[Path, str] | None:
    """The file and sha256 an existing part of this id was made from (None: no part)."""
    md = try_read_metadata(part_path(job.out, job.cfg.mode, video_id))
    if not md or "mf2.video_sha256" not in md:
        return None
    try:
        return Path(json.loads(md.get("mf2.video", "{}")).get("path", "")), md["mf2.video_sha256"]
    except (ValueError, AttributeError):
        return None


def _check_ids(sources: list[VideoSource], jobs: list[Job]) -> list[VideoSource]:
    """Ids against the datasets' existing parts, before any work (issue 33):

    - a non-ASCII name made before issue 33 got a lossy id (``café`` -> ``caf``); where such a
      part exists and was made from this very file (same path, or same bytes), the source keeps
      that id, so a dataset never holds one video under two ids;
    - an id whose part was made from another file with other bytes (two names mapping to one
      id) is refused in one line naming both files: the second run would silently replace the
      first video's pairs. The same path with new bytes is an updated video, as before."""
    hashes: dict[Path, str] = {}

    def sha(path: Path) -> str:
        if path not in hashes:
            hashes[path] = sha256_file(path)
        return hashes[path]

    def same_file(old: tuple[Path, str] | None, src: VideoSource) -> bool:
        return (
            old is not None
            and src.path.exists()
            and (old[0].resolve() == src.path.resolve() or old[1] == sha(src.path))
        )

    out = []
    for src in sources:
        legacy = legacy_safe_id(src.name) if src.name and not src.name.isascii() else None
        if legacy and legacy != src.video_id and any(same_file(_part_source(j, legacy), src) for j in jobs):
            src = replace(src, video_id=legacy)
        for j in jobs:
            old = _part_source(j, src.video_id)
            if (
                old is not None
                and src.path.exists()
                and old[0].resolve() != src.path.resolve()
                and old[0].exists()
                and old[1] != sha(src.path)
            ):
                raise UsageError(
                    f"{src.path}: its id {src.video_id!r} already holds the pairs of another file, "
                    f"{old[0]}, in {j.out}; rename one of them (nothing was changed)"
                )
        out.append(src)
    return out


class _KeptFailures:
    """Earlier failures a run does not retry: the input's fault, and the input unchanged."""

    def __init__(self, jobs: list[Job], retry_failed: bool):
        self.before = {j.name: ({} if retry_failed else read_failures(j.out)) for j in jobs}
        self.sha_now: dict[str, str | None] = {}

    def get(self, job: Job, src: VideoSource) -> dict | None:
        old = self.before[job.name].get(src.video_id)
        if not old or retried_by_default(old["error_class"]):
            return None
        if src.video_id not in self.sha_now:
            self.sha_now[src.video_id] = sha256_file(src.path) if src.path.exists() else None
        return old if self.sha_now[src.video_id] == old["video_sha256"] else None


def _submit(
    sources: list[VideoSource],
    jobs: list[Job],
    cache: Path,
    runner,
    gpu: dict | None,
    taken_down: dict[str, set[str]],
    kept: _KeptFailures,
    filters: VideoFilter | None = None,
) -> tuple[list, list[VideoRecord]]:
    """One task per video (``video_task``), or two where FAN's landmark task needs a GPU
    worker (landmarks, then every job's simulate), for the jobs that need it; (future,
    source, jobs) for each, and the records of kept failures."""
    futures, carried = [], []
    token = uuid.uuid4().hex[:8]
    if runner.name != "synchronous":
        # The longest videos first: a long one started last keeps one worker busy while the
        # others idle (8 clips on 2 workers, issue 35); held, they go out in this order, one
        # per free worker thread (DaskRunner.submit). The manifest keeps the sources' order.
        sources = sorted(sources, key=_length, reverse=True)
    for src in sources:
        mine = []
        for j in jobs:
            if src.video_id in taken_down[j.name]:
                continue
            old = kept.get(j, src)
            if old:
                carried.append(VideoRecord(j.name, src.video_id, failure={**old, "path": str(src.path)}, carried=True))
            else:
                mine.append(j)
        if not mine:
            continue
        if gpu is None:
            fut = runner.submit(video_task, src, cache, mine, filters, key=f"video-{src.video_id}-{token}", hold=True)
        else:
            lm = runner.submit(
                landmark_task, src, cache, mine, filters, resources=gpu, key=f"landmarks-{src.video_id}-{token}"
            )
            fut = runner.submit(simulate_task, src, lm, mine, cache, key=f"simulate-{src.video_id}-{token}")
        futures.append((fut, src, mine))
    return futures, carried


def _length(src: VideoSource) -> tuple[float, int]:
    """A video's work, for the order of a cluster's tasks: its frames from the container's
    header (every stage's cost goes with them), then its bytes. Size on disk put two
    high-bitrate 200-frame clips (6.5 s of work each) before a 587-frame one (13.7 s; issue
    35's eight clips); a source whose header does not say goes first, as the worst case."""
    n = frames_hint(src.path)
    try:
        size = src.path.stat().st_size if src.path.is_file() else 0
    except OSError:
        size = 0
    return (float(n) if n is not None else math.inf, size)


def _collect(futures: list, runner, show_progress: bool | None, cache: Path) -> list[VideoRecord]:
    """The records of every task as it completes; a task that died is a failure of its video.
    The bar counts videos; its postfix shows the frames of the videos in progress."""
    bar = tqdm(total=len(futures), unit="video", disable=None if show_progress is None else not show_progress)
    if bar.disable:
        records = _records(futures, runner, bar)
    else:
        with ProgressWatcher(cache, lambda line: bar.set_postfix_str(line, refresh=True)):
            records = _records(futures, runner, bar)
        bar.set_postfix_str("", refresh=True)  # nothing in progress: no stale frame count
    bar.close()
    return records


def _records(futures: list, runner, bar) -> list[VideoRecord]:
    by_future = {id(f): (src, mine) for f, src, mine in futures}
    records: list[VideoRecord] = []
    for fut in runner.as_completed([f for f, _, _ in futures], on_idle=warm_for_manifest):
        src, mine = by_future[id(fut)]
        try:
            recs = fut.result()
        except Exception as e:  # a worker died (segfault, out of memory) or the task could not run
            cls = "worker-lost" if type(e).__name__ == "KilledWorker" else "internal-error"
            failure = {
                "video_id": src.video_id,
                "path": str(src.path),
                "stage": "task",
                "error_class": cls,
                "error": f"{type(e).__name__}: {e}"[:500],
                "video_sha256": None,
            }
            recs = [VideoRecord(j.name, src.video_id, failure=failure) for j in mine]
        records += recs
        bar.set_description(src.video_id[:24])
        bar.update(1)
    return records


def warm_for_manifest() -> None:
    """Pay, in a thread on the core a finished worker leaves free, what writing the manifests
    costs this process the first time: pyarrow imports pandas (0.43 s) at its first Python
    object (``pa.array``, ``Table.from_pylist``, even an empty table), and the ffmpeg version
    the manifest records is a subprocess (0.09 s). It ran after the last task, both cores idle
    (issue 35); the main thread's own import waits on this one if it is not done."""

    def warm() -> None:
        from mf2.video import ffmpeg_version

        pa.array([0])
        ffmpeg_version()

    threading.Thread(target=warm, name="mf2-warm-manifest", daemon=True).start()


def _consolidate(job: Job, recs: list[VideoRecord], srcs: dict[str, VideoSource], n_removed: int) -> RunSummary:
    """Write the job's manifest: every current part in the folder (this run's and earlier
    runs'), and the failures of this run plus earlier ones not since fixed."""
    failures = [r.failure for r in recs if r.failure]
    ok = [r for r in recs if not r.failure]
    stage_seconds: dict[str, float] = defaultdict(float)
    for r in recs:
        for k, v in r.timings.items():
            stage_seconds[k] += v
    pairs_file, failures_file = pairs_path(job.out), failures_path(job.out)
    with dataset_lock(job.out):
        taken_down = _removed(job.out)
        parts, n_this_run = _gather_parts(job, srcs, {f["video_id"] for f in failures} | taken_down)
        have = set(parts)
        earlier = [
            f
            for vid, f in read_failures(job.out).items()
            if vid not in srcs and vid not in have and vid not in taken_down
        ]
        pairs = pa.concat_tables(list(parts.values())) if parts else PAIR_SCHEMA.empty_table()
        write_parquet_atomic(pairs_file, _consolidated(pairs, pairs_file, job.cfg))
        write_failures(job.out, earlier + failures, job.cfg.params())
    n_filtered = sum(f["error_class"] == FILTERED for f in failures)
    return RunSummary(
        len(recs),
        len(ok),
        len(failures) - n_filtered,
        sum(r.resumed for r in ok),
        n_this_run,
        sum(r.face_lost for r in ok),
        pairs_file,
        failures_file,
        n_removed,
        {k: round(v, 3) for k, v in stage_seconds.items()},
        dict(Counter(f["error_class"] for f in failures)),
        n_pairs_total=pairs.num_rows,
        failures=failures,
        notes={r.video_id: r.note for r in recs if r.note},
        n_filtered=n_filtered,
        n_pairs_dropped=sum(r.pairs_dropped for r in ok),
    )


def _gather_parts(job: Job, srcs: dict[str, VideoSource], exclude: set[str]) -> tuple[dict[str, pa.Table], int]:
    """video_id -> finished part for every current part in the job's folder (sorted by video
    id), and the number of pairs that belong to this run's videos."""
    earlier_identity = identities_in(pairs_path(job.out))
    parts, n_this_run = {}, 0
    for vid, part in current_parts(job.out, job.cfg.mode, job.cfg.params(), exclude):
        src = srcs.get(vid)
        identity = src.identity if src is not None else earlier_identity.get(vid)
        parts[vid] = _finish_part(part, identity, job.cfg)
        n_this_run += part.num_rows if src is not None else 0
    return parts, n_this_run


def _finish_part(part: pa.Table, identity: str | None, cfg: SimulateConfig) -> pa.Table:
    """A part (of any 1.x schema) with the columns that are not pixels filled in: identity
    comes from the source (it may change without touching the images), params from cfg (the
    part matched them, perhaps under the names of an older schema)."""
    part = upgrade_pairs(part.replace_schema_metadata(None)).replace_schema_metadata(None)
    n = part.num_rows
    part = part.set_column(part.schema.get_field_index("identity"), "identity", pa.array([identity] * n, pa.string()))
    part = part.set_column(
        part.schema.get_field_index("params"), "params", pa.array([params_json(cfg.params())] * n, pa.string())
    )
    return part


def _consolidated(pairs: pa.Table, pairs_path: Path, cfg: SimulateConfig) -> pa.Table:
    """The job's manifest; a split made earlier by `mf2 split` is applied again to the new rows."""
    from mf2.dataset.manifest import pairs_metadata
    from mf2.share.split import SplitConfig, assign
    from mf2.video import ffmpeg_version

    extra = {"ffmpeg": ffmpeg_version()}
    md = try_read_metadata(pairs_path)  # a zero-byte or corrupt manifest is rebuilt from the parts
    if md is not None:
        split = md.get("mf2.split")
        if split:
            pairs = assign(pairs, SplitConfig.from_key(json.loads(split)))
            extra["split"] = split
    return pairs.replace_schema_metadata(pairs_metadata(pairs, cfg.params(), **extra))


def _write_timings(cache: Path, records: list[VideoRecord]) -> None:
    rows = [
        {"video_id": r.video_id, "job": r.job, "stage": k, "seconds": float(v), "frames": int(r.frames or 0)}
        for r in records
        for k, v in r.timings.items()
    ]
    write_parquet_atomic(
        cache / "timings.parquet",
        pa.Table.from_pylist(rows, schema=TIMING_SCHEMA).replace_schema_metadata(metadata("timings")),
    )


def run_simulate(
    sources: list[VideoSource],
    out: Path,
    cfg: SimulateConfig,
    show_progress: bool | None = None,
    runner=None,
    retry_failed: bool = False,
    replace: bool = False,
    filters: VideoFilter | None = None,
) -> RunSummary:
    """One simulate job over many videos; ``runner`` (mf2.pipeline.runner) picks where the
    per-video tasks run, in this process by default."""
    return run_jobs(
        sources,
        [Job("simulate", cfg, out)],
        out,
        runner or SyncRunner(),
        show_progress,
        retry_failed=retry_failed,
        replace=replace,
        filters=filters,
    )["simulate"]
