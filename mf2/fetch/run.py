"""`mf2 fetch`: a manifest in, DIR/videos/ and DIR/fetch.parquet out, resumable.

The status table has one row per manifest row and is rewritten atomically as downloads
finish (at most once a second, and at the end), so a killed run leaves a valid table. A
re-run trusts an ``ok`` row only if its file is still there with the same size; a file that
reached its final name but not the table (killed in between) is verified and adopted, never
downloaded again.
"""

from __future__ import annotations

import queue
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pyarrow as pa
import pyarrow.parquet as pq

from mf2.atomic import write_parquet_atomic
from mf2.errors import FILTERED, InputError, retried_by_default
from mf2.fetch.download import (
    ClusterRateLimiter,
    FetchConfig,
    FetchError,
    RateLimiter,
    clean_partials,
    fetch_one,
    final_path,
    verify_video,
)
from mf2.fetch.manifest import ManifestRow, read_manifest
from mf2.schema import metadata, try_read_metadata
from mf2.sources import sha256_file
from mf2.video import VideoInfo
from mf2.video.filters import VideoFilter

STATUS_FIELDS = [
    ("video_id", pa.string()),
    ("url", pa.string()),
    ("status", pa.string()),
    ("error_class", pa.string()),
    ("error", pa.string()),
    ("attempts", pa.int32()),
    ("path", pa.string()),
    ("bytes", pa.int64()),
    ("sha256", pa.string()),
    ("fps", pa.float64()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("n_frames", pa.int32()),
    ("duration", pa.float64()),
    ("fetched_at", pa.timestamp("s", tz="UTC")),
    ("identity", pa.string()),
    ("name", pa.string()),
    ("split", pa.string()),
    ("start", pa.float64()),
    ("end", pa.float64()),
    ("license", pa.string()),
    ("key", pa.string()),
    ("line", pa.int32()),
]
RESULT_FIELDS = (
    "status",
    "error_class",
    "error",
    "attempts",
    "path",
    "bytes",
    "sha256",
    "fps",
    "width",
    "height",
    "n_frames",
    "duration",
    "fetched_at",
)


def _ytdlp_version() -> str:
    try:
        from yt_dlp.version import __version__

        return __version__
    except ImportError:  # pragma: no cover - a dependency
        return "missing"


@dataclass
class FetchSummary:
    n_rows: int
    n_videos: int
    counts: dict  # status -> rows
    error_classes: dict  # class -> rows
    downloaded: int
    reused: int
    table: Path

    def to_json(self) -> dict:
        return {
            "rows": self.n_rows,
            "videos": self.n_videos,
            "status": self.counts,
            "failures_by_class": self.error_classes,
            "downloaded": self.downloaded,
            "already_there": self.reused,
            "table": str(self.table),
        }

    def problems(self) -> list[str]:
        """Why `--strict` would fail this fetch: a row not fetched, or nothing fetched at all."""
        bad = sum(v for k, v in self.counts.items() if k not in ("ok", "filtered"))
        out = [f"{bad} of {self.n_rows} rows not fetched (see {self.table})"] if bad else []
        return out + ([] if self.counts.get("ok") else ["no video was fetched"])

    def line(self) -> str:
        parts = ", ".join(f"{v} {k}" for k, v in sorted(self.counts.items()))
        errs = ", ".join(f"{k} {v}" for k, v in sorted(self.error_classes.items()))
        return (
            f"{self.n_rows} rows / {self.n_videos} videos: {parts}"
            + (f" (failures: {errs})" if errs else "")
            + f"; {self.downloaded} fetched, {self.reused} already there -> {self.table}"
        )


def _previous(table_path: Path) -> dict[str, dict]:
    if try_read_metadata(table_path) is None:  # absent, or a corrupt table: files on disk are re-adopted
        return {}
    try:
        t = pq.read_table(table_path, columns=["key", *RESULT_FIELDS])
    except Exception:
        return {}
    return {r["key"]: r for r in t.to_pylist()}


def _table(rows: list[ManifestRow], results: dict[str, dict], extras: list[str], cfg: FetchConfig) -> pa.Table:
    cols: dict[str, list] = {n: [] for n, _ in STATUS_FIELDS}
    extra_cols: dict[str, list] = {e: [] for e in extras}
    for r in rows:
        res = results.get(r.key) or {"status": "pending", "attempts": 0}
        base = {
            "video_id": r.video_id,
            "url": r.url,
            "identity": r.identity,
            "name": r.name,
            "split": r.split,
            "start": r.start,
            "end": r.end,
            "license": r.license,
            "key": r.key,
            "line": r.line,
        }
        for n, _ in STATUS_FIELDS:
            cols[n].append(base[n] if n in base else res.get(n))
        for e in extras:
            extra_cols[e].append(r.extra.get(e))
    arrays = [pa.array(cols[n], t) for n, t in STATUS_FIELDS] + [pa.array(extra_cols[e], pa.string()) for e in extras]
    names = [n for n, _ in STATUS_FIELDS] + [e if e not in cols else f"manifest_{e}" for e in extras]
    return pa.table(arrays, names=names).replace_schema_metadata(
        metadata("fetch", cfg.key(), yt_dlp_version=_ytdlp_version())
    )


@contextmanager
def _executor(cfg: FetchConfig, runner):
    if runner is None or runner.name == "synchronous":
        with ThreadPoolExecutor(max_workers=cfg.downloads) as pool:
            yield pool.submit
    else:
        yield lambda fn, *args: runner.submit(fn, *args)


def _submit_all(submit, todo, cfg, videos, base, limiter):
    """Yield (future, row) as downloads finish, for thread-pool and Dask futures alike."""
    done: queue.Queue = queue.Queue()
    for r in todo:
        fut = submit(fetch_one, r, cfg, videos, base, limiter)
        fut.add_done_callback(lambda f, r=r: done.put((f, r)))
    for _ in range(len(todo)):
        yield done.get()


def _triage(
    first: dict[str, ManifestRow], prev: dict[str, dict], out: Path, retry_failed: bool
) -> tuple[dict[str, dict], list[ManifestRow], int]:
    """What an earlier run left: results kept (a file still there and whole, a failure not to
    retry, a file renamed by a killed run and verified), the rows still to download, and the
    number of files reused."""
    videos = out / "videos"
    results: dict[str, dict] = {}
    todo: list[ManifestRow] = []
    reused = 0
    for key, r in first.items():
        p = prev.get(key)
        have = final_path(videos, key)
        if (
            p
            and p["status"] in ("ok", "filtered")
            and have is not None
            and (out / p["path"]).resolve() == have.resolve()
            and have.stat().st_size == p["bytes"]
        ):
            results[key] = p
            reused += 1
        elif p and p["status"] == "failed" and not (retry_failed or retried_by_default(p["error_class"], p["error"])):
            results[key] = p
        elif have is not None:
            try:  # renamed by a run killed before it could record it: adopt after checking
                meta = verify_video(have)
                results[key] = {
                    "status": "ok",
                    "error_class": None,
                    "error": None,
                    "attempts": 0,
                    "path": f"videos/{have.name}",
                    "bytes": have.stat().st_size,
                    "sha256": sha256_file(have),
                    "fetched_at": datetime.now(timezone.utc),
                    **meta,
                }
                reused += 1
            except FetchError:
                have.unlink()
                todo.append(r)
        else:
            todo.append(r)
    return results, todo, reused


def _filter(results: dict[str, dict], filters: VideoFilter) -> None:
    """Mark downloaded videos that a filter turns away (status and class ``filtered``, with the
    reason), and give back ``ok`` to those that pass now: checked on every run, from the probe
    each row keeps. The file stays: lowering a filter needs no download."""
    for res in results.values():
        if res.get("status") not in ("ok", "filtered") or res.get("n_frames") is None:
            continue
        info = SimpleNamespace(n_frames=res["n_frames"], fps=res["fps"], height=res["height"])
        try:
            filters.check_video(cast(VideoInfo, info))  # the fields a filter reads
            res.update(status="ok", error_class=None, error=None)
        except InputError as e:
            res.update(status="filtered", error_class=FILTERED, error=str(e))


def _result(fut) -> dict:
    """A download's result; an exception is a bug of mf2's: recorded, and the others go on."""
    try:
        return fut.result()
    except Exception as e:
        return {"status": "failed", "error_class": "internal-error", "error": f"{type(e).__name__}: {e}", "attempts": 1}


def _limiter(cfg: FetchConfig, runner):
    """Starts per minute, all downloads together: on a cluster a lock-and-variable limiter
    paces starts across processes."""
    if runner is not None and runner.name != "synchronous":
        return ClusterRateLimiter(cfg.starts_per_minute, f"mf2-fetch-{uuid.uuid4().hex}")
    return RateLimiter(cfg.starts_per_minute)


def run_fetch(
    manifest: str | Path,
    out: Path,
    cfg: FetchConfig,
    retry_failed: bool = False,
    progress=None,
    runner=None,
    filters: VideoFilter | None = None,
) -> FetchSummary:
    """Transient failures of an earlier run (5xx, 429, network, timeout, mf2's own) are
    redone; ``retry_failed`` redoes the others too (404, private, not a video), as
    ``mf2 simulate --retry-failed`` does for videos. ``runner``: a Dask runner
    (mf2.pipeline.runner) to download on the cluster's workers; default a local thread pool."""
    cfg.validate()
    rows = read_manifest(manifest)  # raises before anything is downloaded
    base = Path(manifest).resolve().parent
    extras = list(dict.fromkeys(k for r in rows for k in r.extra))
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    clean_partials(videos)
    table_path = out / "fetch.parquet"
    prev = _previous(table_path)

    first: dict[str, ManifestRow] = {}
    for r in rows:
        first.setdefault(r.key, r)
    results, todo, reused = _triage(first, prev, out, retry_failed)
    write_parquet_atomic(table_path, _table(rows, results, extras, cfg))
    limiter = _limiter(cfg, runner)
    last_write = time.monotonic()
    with _executor(cfg, runner) as submit:
        futures = _submit_all(submit, todo, cfg, videos, base, limiter)
        for fut, r in futures:
            res = _result(fut)
            res["fetched_at"] = datetime.now(timezone.utc)
            results[r.key] = res
            if progress:
                progress(r, res)
            if time.monotonic() - last_write >= 1.0:
                write_parquet_atomic(table_path, _table(rows, results, extras, cfg))
                last_write = time.monotonic()
    _filter(results, filters or VideoFilter())
    table = _table(rows, results, extras, cfg)
    write_parquet_atomic(table_path, table)
    status = table["status"].to_pylist()
    classes = [c for c in table["error_class"].to_pylist() if c]
    return FetchSummary(
        len(rows), len(first), dict(Counter(status)), dict(Counter(classes)), len(todo), reused, table_path
    )
