"""The landmark stage: one streaming decode of a video into its landmark table.

Per frame, one row for each face track alive on it (and one ``no-face`` row when none is),
with the shot the frame belongs to and why a row is not usable. Shots are found on the same
decoded frames (mf2.faces.shots); the frames are held back by the shot detector's lag (2
frames) so each track ends exactly at a cut.

The table is cached under OUT/landmarks/<video_id>.parquet, keyed by the video's sha256
and the parameters that change it, so later simulate runs (other modes, other L, another
--face choice) reuse it.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Callable, Iterator, cast

import numpy as np
import pyarrow as pa

from mf2.atomic import write_parquet_atomic
from mf2.dataset import frame_store_path, landmarks_path
from mf2.faces.select import LandmarkConfig, make_backend, resolve_backend_name
from mf2.faces.shots import ShotDetector, shot_index
from mf2.faces.track import MAX_CLUSTERED, FaceRow, FaceTracker, TrackFrame
from mf2.schema import BOX, LANDMARK_SCHEMA, landmarks_column, metadata, read_cached
from mf2.video import DecodeDamage, DuplicateDetector, VideoInfo, iter_frames
from mf2.video.frames import PHOTO_CODEC
from mf2.video.framestore import FrameStoreWriter, Rect


def _frames(
    info: VideoInfo,
    cfg: LandmarkConfig,
    shots: ShotDetector,
    progress: Callable[[int], None] | None,
    damage: DecodeDamage | None = None,
) -> Iterator[TrackFrame]:
    dup = DuplicateDetector(cfg.duplicate_threshold)
    held: deque[TrackFrame] = deque()
    cuts: set[int] = set()
    for i, frame in enumerate(iter_frames(info, damage)):
        is_dup, mad = dup(frame)
        cuts.update(shots.push(i, frame))
        held.append(TrackFrame(i, frame, is_dup, mad, False))
        if progress:
            progress(1)
        while len(held) > shots.lag:
            f = held.popleft()
            f.shot_start = f.index in cuts
            yield f
    while held:
        f = held.popleft()
        f.shot_start = f.index in cuts
        yield f


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def embed_tracks(chips: dict[int, np.ndarray], spans: dict[int, tuple[int, int]], embedder) -> dict[int, np.ndarray]:
    """Embeddings of the tracks that clustering could join: those with another track not
    seen in the same frames. A single-shot talking head (one track) or two people side by
    side (overlapping tracks) needs none, which saves 75 ms of CPU per track. Tracks split
    at a late boundary share their chip, embedded once."""
    ids = [t for t in spans if t in chips]
    if len(spans) > MAX_CLUSTERED or embedder is None:
        return {}
    done: dict[int, np.ndarray] = {}
    out = {}
    for t in ids:
        if any(u != t and not _overlap(spans[t], spans[u]) for u in ids):
            key = id(chips[t])
            if key not in done:
                done[key] = embedder.embed_chip(chips[t])
            out[t] = done[key]
    return out


def cluster_tracks(
    embeddings: dict[int, np.ndarray], spans: dict[int, tuple[int, int]], threshold: float
) -> dict[int, int]:
    """face_id per track: average-linkage clustering of the tracks' embeddings (dlib's
    same-person distance), never joining two tracks seen in the same frame. face_ids are
    numbered by first appearance; a track without an embedding is its own face."""
    ids = sorted(spans, key=lambda t: spans[t])
    clusters: list[list[int]] = [[t] for t in ids]

    def overlap(a: list[int], b: list[int]) -> bool:
        return any(_overlap(spans[x], spans[y]) for x in a for y in b)

    def dist(a: list[int], b: list[int]) -> float:
        ds = [
            float(np.linalg.norm(embeddings[x] - embeddings[y]))
            for x in a
            for y in b
            if x in embeddings and y in embeddings
        ]
        return float(np.mean(ds)) if len(ds) == len(a) * len(b) else float("inf")

    if len(ids) <= MAX_CLUSTERED:  # beyond that (hours of crowd shots) every track stays its own face
        while True:
            best = None
            for i in range(len(clusters)):
                for j in range(i + 1, len(clusters)):
                    d = dist(clusters[i], clusters[j])
                    if d <= threshold and (best is None or d < best[0]) and not overlap(clusters[i], clusters[j]):
                        best = (d, i, j)
            if best is None:
                break
            _, i, j = best
            clusters[i] += clusters.pop(j)
    clusters.sort(key=lambda c: min(spans[t][0] for t in c))
    return {t: fid for fid, c in enumerate(clusters) for t in c}


def compute_landmarks(
    video_id: str,
    info: VideoInfo,
    cfg: LandmarkConfig,
    backend=None,
    progress: Callable[[int], None] | None = None,
    embedder=None,
    store: FrameStoreWriter | None = None,
) -> pa.Table:
    """``store``: keeps each frame's face region for the render pass (mf2.video.framestore)."""
    cfg.validate()
    backend = backend or make_backend(cfg)
    if embedder is None:
        from mf2.faces.identity import shared_embedder

        embedder = shared_embedder()
    shots = ShotDetector(cfg.shots, info.fps)
    tracker = FaceTracker(backend, cfg, embedder)
    damage = DecodeDamage()
    frames = _frames(info, cfg, shots, progress, damage)
    rows: list[FaceRow] = (
        [r for frame_rows in tracker.run(frames) for r in frame_rows]
        if store is None
        else _rows_stored(tracker, frames, store)
    )
    n = (rows[-1].frame + 1) if rows else 0
    boundaries = shots.finish()
    shot = shot_index(n, boundaries)
    _split_tracks_at_shots(rows, shot, tracker.chips)
    _flag_decode_damage(rows, damage)
    _flag_short_shots(rows, shot, cfg.shots.min_shot)
    _flag_size_outliers(rows, cfg.max_size_outlier)
    _flag_before_loss(rows)
    spans: dict[int, tuple[int, int]] = {}
    for r in rows:
        if r.track is not None and r.landmarks is not None:
            a, b = spans.get(r.track, (r.frame, r.frame))
            spans[r.track] = (min(a, r.frame), max(b, r.frame))
    face_of = cluster_tracks(embed_tracks(tracker.chips, spans, embedder), spans, cfg.identity_threshold)
    meta = {b"mf2.shots": ",".join(str(b) for b in boundaries).encode()}
    if damage.errors:
        meta[b"mf2.decode"] = json.dumps(damage.to_json()).encode()
    if tracker.cnn_calls:
        meta[b"mf2.cnn_fallback"] = json.dumps({"calls": tracker.cnn_calls, "found": tracker.cnn_found}).encode()
    return _table(video_id, rows, spans, face_of, backend.name).replace_schema_metadata(meta)


# A frame's kept region: a square of this many times each face's longest landmark extent
# around its centre. A window's crop is 1 + 2 x margin extents (1.5 at the default margin)
# around the median centre of its frames, so the face may move ~a whole extent within a
# window before the render pass has to decode the video again.
STORE_EXTENTS = 3.5


def _rows_stored(tracker: FaceTracker, frames: Iterator[TrackFrame], store: FrameStoreWriter) -> list[FaceRow]:
    """The tracker's rows, each frame's face region written to ``store`` once its rows are
    out (frames are held only while the tracker works on them)."""
    held: dict[int, np.ndarray] = {}

    def kept(frames: Iterator[TrackFrame]) -> Iterator[TrackFrame]:
        for f in frames:
            held[f.index] = f.image
            yield f

    rows: list[FaceRow] = []
    for frame_rows in tracker.run(kept(frames)):
        rows.extend(frame_rows)
        done = max((r.frame for r in frame_rows), default=-1)
        for i in [i for i in held if i <= done]:
            frame = held.pop(i)
            store.add(i, frame, face_region([r.landmarks for r in frame_rows if r.frame == i], frame.shape))
    for i, frame in held.items():
        store.add(i, frame, None)
    return rows


def face_region(landmarks: list[np.ndarray | None], shape: tuple[int, ...]) -> Rect | None:
    """The rectangle (x0, y0, x1, y1) of a frame kept for the render pass: ``STORE_EXTENTS``
    squares around its fitted faces, joined, inside the frame (None: no fitted face)."""
    h, w = shape[:2]
    box = None
    for lm in landmarks:
        if lm is None or not np.isfinite(lm).all():
            continue
        lo, hi = lm.min(axis=0), lm.max(axis=0)
        cx, cy = (lo + hi) / 2.0
        half = STORE_EXTENTS / 2.0 * float(max(hi - lo))
        r = (int(cx - half), int(cy - half), int(np.ceil(cx + half)) + 1, int(np.ceil(cy + half)) + 1)
        box = r if box is None else (min(box[0], r[0]), min(box[1], r[1]), max(box[2], r[2]), max(box[3], r[3]))
    if box is None:
        return None
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _flag_decode_damage(rows: list[FaceRow], damage: DecodeDamage) -> None:
    """A frame ffmpeg decoded from damaged data (mf2.video.DecodeDamage: dropped packets,
    concealed blocks, and every frame predicted from them until the next keyframe) holds
    pixels the decoder invented: its fits are flagged ``decode-error`` and never averaged."""
    if not damage.spans:
        return
    for r in rows:
        if r.reason == "ok" and r.frame in damage:
            r.reason = "decode-error"


def _split_tracks_at_shots(rows: list[FaceRow], shot: np.ndarray, chips: dict) -> None:
    """Late boundaries (fades) split any track that spans them: a track never crosses a shot.
    Sets each row's shot; the part of a track in a later shot gets a new track id (and the
    track's face chip, for clustering)."""
    first_shot: dict[int, int] = {}
    moved: dict[tuple[int, int], int] = {}
    next_id = max([r.track for r in rows if r.track is not None], default=-1) + 1
    for r in rows:
        r.shot = int(shot[r.frame])
        if r.track is None:
            continue
        first = first_shot.setdefault(r.track, r.shot)
        if r.shot != first:
            if (r.track, r.shot) not in moved:
                moved[(r.track, r.shot)] = next_id
                if r.track in chips:
                    chips[next_id] = chips[r.track]
                next_id += 1
            r.track = moved[(r.track, r.shot)]


def _flag_short_shots(rows: list[FaceRow], shot: np.ndarray, min_shot: int) -> None:
    """A short shot between two boundaries is a transition (a dissolve's inside, a flash): its
    frames are flagged. The clip's first and last shots may be short: they are cut by the clip."""
    n = len(shot)
    lengths = np.bincount(shot, minlength=int(shot.max(initial=0)) + 1) if n else np.zeros(0, int)
    last = len(lengths) - 1
    for r in rows:
        if r.reason == "ok" and 0 < r.shot < last and lengths[r.shot] < min_shot:
            r.reason = "short-shot"


DRIFT_LOSSES = ("scale-drift", "implausible-shape", "small-face")


def _flag_before_loss(rows: list[FaceRow]) -> None:
    """A track lost because its fit drifted off the face (``DRIFT_LOSSES``) was usually
    drifting for a frame or two before a check caught it: a shifted fit keeps a face's shape
    and size (issue 34's worst-frame sheets). Its tracked fits since the last one a detection
    confirmed are flagged ``before-loss``: not averaged, the track's earlier frames kept."""
    last: dict[int, list[FaceRow]] = {}  # track -> its tracked rows since its last detection
    for r in rows:
        if r.track is None:
            continue
        if r.landmarks is None:
            if r.reason in DRIFT_LOSSES:
                for t in last.get(r.track, []):
                    if t.reason == "ok":
                        t.reason = "before-loss"
            last.pop(r.track, None)
        elif r.source in ("detect", "confirmed"):
            last[r.track] = []
        elif r.source in ("track", "duplicate"):
            last.setdefault(r.track, []).append(r)


def _flag_size_outliers(rows: list[FaceRow], ratio: float) -> None:
    """A usable fit whose extent is outside 1/ratio..ratio of its whole track's median is
    flagged ``size-outlier`` (issue 34's check, kept as a rule). The tracker's running median
    (``scale-drift``) must follow real zooms as they happen, so a fit can pass it and still be
    far from the track's typical size; such frames are not averaged, and the track goes on.
    Repeated until nothing changes (flagging the extremes moves the median of what is left: a
    track that shrank steadily has outliers at both ends of what remains); in numpy per track,
    and at most 64 rounds."""
    by_track: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        if r.reason == "ok" and r.track is not None:
            by_track.setdefault(r.track, []).append(i)
    for idx in by_track.values():
        ext = np.array([float(np.ptp(cast(np.ndarray, rows[i].landmarks), axis=0).max()) for i in idx])
        alive = np.ones(len(idx), bool)
        for _ in range(64):
            e = ext / float(np.median(ext[alive]))
            bad = alive & ((e < 1.0 / ratio) | (e > ratio))
            if not bad.any():
                break
            alive &= ~bad
        for k in np.flatnonzero(~alive):
            rows[idx[k]].reason = "size-outlier"


def _table(
    video_id: str, rows: list[FaceRow], spans: dict[int, tuple[int, int]], face_of: dict[int, int], backend: str
) -> pa.Table:
    return pa.table(
        {
            "video_id": pa.array([video_id] * len(rows), pa.string()),
            "frame": pa.array([r.frame for r in rows], pa.int32()),
            "shot": pa.array([r.shot for r in rows], pa.int32()),
            "track": pa.array([r.track if r.track in spans else None for r in rows], pa.int32()),
            "face_id": pa.array([face_of.get(r.track) if r.track is not None else None for r in rows], pa.int32()),
            "box": pa.array([None if r.box is None else [float(v) for v in r.box] for r in rows], BOX),
            "landmarks": landmarks_column([r.landmarks for r in rows]),
            "score": pa.array([r.score for r in rows], pa.float32()),
            "fit_iou": pa.array([r.fit_iou for r in rows], pa.float32()),
            "source": pa.array([r.source for r in rows], pa.string()),
            "reason": pa.array([r.reason for r in rows], pa.string()),
            "backend": pa.array([backend] * len(rows), pa.string()),
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
    keep_frames: bool = False,
) -> pa.Table:
    """Read the cached table if it matches this video and these settings, else compute it.
    ``keep_frames``: a render pass follows; computing the table also keeps each frame's face
    region for it (mf2.video.framestore), so it need not decode the video again."""
    from mf2.faces.manual import annotation_files, annotations_key, apply_manual

    path = landmarks_path(out_dir, video_id)
    params = {**cfg.key(), "backend": backend.name if backend else resolve_backend_name(cfg)}
    manual = annotation_files(info.path)
    if manual:
        params["manual"] = annotations_key(manual)
    cached = read_cached(path, sha256, params)
    if cached is not None:
        return cached
    store = None
    if keep_frames and info.codec != PHOTO_CODEC:
        store = FrameStoreWriter(frame_store_path(out_dir, video_id, sha256), info.width, info.height)
    try:
        table = compute_landmarks(video_id, info, cfg, backend, progress, store=store)
    except BaseException:
        if store is not None:
            store.abandon()
        raise
    if store is not None:
        store.close()
    shots = (table.schema.metadata or {}).get(b"mf2.shots", b"").decode()
    extra = {}
    for key in ("decode", "cnn_fallback"):
        value = (table.schema.metadata or {}).get(f"mf2.{key}".encode())
        if value:
            extra[key] = json.loads(value)
    if manual:
        table, extra["manual"] = apply_manual(table, manual)
    table = table.replace_schema_metadata(
        metadata("landmarks", params, video_sha256=sha256, video=info.to_json(), shots=shots, **extra)
    )
    write_parquet_atomic(path, table)
    return table
