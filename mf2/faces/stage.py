"""The landmark stage: one streaming decode of a video into its landmark table.

The table is cached under OUT/landmarks/<video_id>.parquet, keyed by the video's sha256
and the parameters that change it, so later simulate runs (other modes, other L) reuse it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pyarrow as pa

from mf2.atomic import write_parquet_atomic
from mf2.faces.select import LandmarkConfig, make_backend, resolve_backend_name
from mf2.faces.track import FaceTracker
from mf2.schema import BOX, LANDMARK_SCHEMA, landmarks_column, metadata, read_cached
from mf2.video import DuplicateDetector, VideoInfo, iter_frames


def _frames_with_duplicates(info: VideoInfo, threshold: float, progress: Callable[[int], None] | None):
    dup = DuplicateDetector(threshold)
    for i, frame in enumerate(iter_frames(info)):
        is_dup, mad = dup(frame)
        if progress:
            progress(1)
        yield i, frame, is_dup, mad


def compute_landmarks(
    video_id: str,
    info: VideoInfo,
    cfg: LandmarkConfig,
    backend=None,
    progress: Callable[[int], None] | None = None,
) -> pa.Table:
    backend = backend or make_backend(cfg)
    tracker = FaceTracker(backend, cfg)
    rows = list(tracker.run(_frames_with_duplicates(info, cfg.duplicate_threshold, progress)))
    return pa.table(
        {
            "video_id": pa.array([video_id] * len(rows), pa.string()),
            "frame": pa.array([r.frame for r in rows], pa.int32()),
            "box": pa.array([None if r.box is None else [float(v) for v in r.box] for r in rows], BOX),
            "landmarks": landmarks_column([r.landmarks for r in rows]),
            "score": pa.array([r.score for r in rows], pa.float32()),
            "fit_iou": pa.array([r.fit_iou for r in rows], pa.float32()),
            "source": pa.array([r.source for r in rows], pa.string()),
            "backend": pa.array([backend.name] * len(rows), pa.string()),
            "is_duplicate": pa.array([r.is_duplicate for r in rows], pa.bool_()),
            "dup_mad": pa.array([r.dup_mad for r in rows], pa.float32()),
        },
        schema=LANDMARK_SCHEMA,
    )


def landmarks_for_video(
    video_id: str,
    info: VideoInfo,
    sha256: str,
    cfg: LandmarkConfig,
    out_dir: Path,
    backend=None,
    progress: Callable[[int], None] | None = None,
) -> pa.Table:
    """Read the cached table if it matches this video and these settings, else compute it."""
    path = out_dir / "landmarks" / f"{video_id}.parquet"
    params = {**cfg.key(), "backend": backend.name if backend else resolve_backend_name(cfg)}
    cached = read_cached(path, sha256, params)
    if cached is not None:
        return cached
    table = compute_landmarks(video_id, info, cfg, backend, progress)
    table = table.replace_schema_metadata(
        metadata("landmarks", params, video_sha256=sha256, video=info.to_json())
    )
    write_parquet_atomic(path, table)
    return table
