"""The optical-flow stage: how the face moves between consecutive frames.

For each pair (frame i-1, frame i) both frames are cut to the same square around the face
of frame i-1 (landmark extent plus a margin) and resized to ``work_size`` pixels before
dense flow (OpenCV DIS by default). Working on a fixed-size face square makes the cost
independent of the video resolution and the flow's noise comparable across faces; 128 px
keeps the eyes and mouth ~15-25 px wide, enough texture for DIS's 8 px patches, while
DIS's sub-pixel accuracy (~0.1 px at 128 px) is finer than any blur that matters. Vectors
are reported in original-frame pixels.

Per pair the table holds the mean flow over the face (inside the landmark box), magnitude
percentiles, and the forward-backward consistency error, which is what VLA's rule (iii)
reads. The table is cached as OUT/flow/<video_id>.parquet, keyed by the video's sha256,
the landmark settings (the regions depend on them) and the flow settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np
import pyarrow as pa

from mf2.atomic import write_parquet_atomic
from mf2.dataset import flow_path
from mf2.errors import UsageError
from mf2.faces.crop import CropTooLarge, face_crop
from mf2.params import default
from mf2.schema import FLOW_SCHEMA, metadata, read_cached
from mf2.video import VideoInfo, iter_frames

FLOW_METHODS = ("dis", "farneback")
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass(frozen=True)
class FlowConfig:
    method: str = default("flow.method")
    preset: str = default("flow.preset")
    work_size: int = default("flow.work_size")
    margin: float = default("margin")  # not a setting of its own: simulate_config passes the crop margin

    def validate(self) -> None:
        if self.method not in FLOW_METHODS:
            raise UsageError(f"--flow {self.method!r}: expected one of {', '.join(FLOW_METHODS)}")
        if self.preset not in DIS_PRESETS:
            raise UsageError(f"--flow-preset {self.preset!r}: expected one of {', '.join(DIS_PRESETS)}")
        if not 32 <= self.work_size <= 1024:
            raise UsageError(f"--flow-size {self.work_size}: must be between 32 and 1024")

    def key(self) -> dict:
        return asdict(self)


class FlowEstimator:
    """Dense flow on two equally sized grey images, both directions."""

    def __init__(self, cfg: FlowConfig):
        cfg.validate()
        self.cfg = cfg
        make = getattr(cv2, "DISOpticalFlow_create")  # opencv-python-headless's stubs miss it
        self._dis = make(DIS_PRESETS[cfg.preset]) if cfg.method == "dis" else None

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self._dis is not None:
            return self._dis.calc(a, b, None)
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    if (h, w) not in _GRIDS:
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        _GRIDS[(h, w)] = (gx, gy)
    return _GRIDS[(h, w)]


def _fb_error(fwd: np.ndarray, bwd: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """|F(x) + B(x + F(x))| per pixel: zero where the two directions agree. ``box`` (x0, y0,
    x1, y1): only those pixels (remap is per pixel, so the values are the same). One remap per
    channel: OpenCV's two-channel remap interpolates differently (by up to 0.3 px here)."""
    h, w = fwd.shape[:2]
    x0, y0, x1, y1 = box or (0, 0, w, h)
    gx, gy = _grid(h, w)
    f = fwd[y0:y1, x0:x1]
    mx, my = gx[y0:y1, x0:x1] + f[..., 0], gy[y0:y1, x0:x1] + f[..., 1]
    bx = cv2.remap(bwd[..., 0], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    by = cv2.remap(bwd[..., 1], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.hypot(f[..., 0] + bx, f[..., 1] + by)


def pair_flow(est: FlowEstimator, prev: np.ndarray, cur: np.ndarray, lm_prev: np.ndarray) -> dict:
    """Flow statistics of the face of ``lm_prev`` between two RGB frames."""
    cfg = est.cfg
    crop = face_crop(lm_prev, cfg.margin)
    ws = cfg.work_size
    s = ws / crop.size

    def grey(frame: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(crop.take(frame), cv2.COLOR_RGB2GRAY)
        return cv2.resize(g, (ws, ws), interpolation=cv2.INTER_AREA if crop.size > ws else cv2.INTER_LINEAR)

    a, b = grey(prev), grey(cur)
    fwd, bwd = est(a, b), est(b, a)
    # The face itself: the landmark box (no margin) in working coordinates.
    lo, hi = lm_prev.min(axis=0), lm_prev.max(axis=0)
    x0, y0 = np.clip(np.floor((lo - [crop.x0, crop.y0]) * s), 0, ws - 1).astype(int)
    x1, y1 = np.clip(np.ceil((hi - [crop.x0, crop.y0]) * s) + 1, 1, ws).astype(int)
    f = fwd[y0:y1, x0:x1].reshape(-1, 2)
    mag = np.hypot(f[:, 0], f[:, 1])
    fb = _fb_error(fwd, bwd, (x0, y0, x1, y1)).ravel()
    inv = 1.0 / s
    p50, p90 = np.percentile(mag, [50, 90])
    return {
        "valid": True,
        "dx": float(f[:, 0].mean() * inv),
        "dy": float(f[:, 1].mean() * inv),
        "mag_p50": float(p50 * inv),
        "mag_p90": float(p90 * inv),
        "mag_max": float(mag.max() * inv),
        "fb_err": float(fb.mean() * inv),
        "fb_bad": float((fb > 1.0).mean()),
        "face_size": float((hi - lo).max()),
    }


_EMPTY = {
    "valid": False,
    "dx": None,
    "dy": None,
    "mag_p50": None,
    "mag_p90": None,
    "mag_max": None,
    "fb_err": None,
    "fb_bad": None,
    "face_size": None,
}


def iter_flow(
    frames: Iterable[np.ndarray],
    landmarks: np.ndarray,
    valid: np.ndarray,
    cfg: FlowConfig,
    run: np.ndarray | None = None,
) -> Iterator[dict]:
    """One row per frame, streaming: only the previous frame is kept. No flow across two
    runs (``run``: a shot and a track) or from a crop larger than the frame's diagonal."""
    est = FlowEstimator(cfg)
    prev = None
    for i, frame in enumerate(frames):
        if i >= len(valid):
            break
        row = None
        if prev is not None and valid[i - 1] and valid[i] and (run is None or run[i] == run[i - 1]):
            try:
                row = pair_flow(est, prev, frame, landmarks[i - 1])
            except CropTooLarge:
                row = None
        if row is None:
            row = dict(_EMPTY)
        prev = frame
        yield {"frame": i, **row}


def compute_flow(
    video_id: str,
    frames: Iterable[np.ndarray],
    landmarks: np.ndarray,
    valid: np.ndarray,
    cfg: FlowConfig,
    progress: Callable[[int], None] | None = None,
    run: np.ndarray | None = None,
) -> pa.Table:
    rows = []
    for r in iter_flow(frames, landmarks, valid, cfg, run):
        rows.append(r)
        if progress:
            progress(1)
    cols = {name: [r.get(name) for r in rows] for name in FLOW_SCHEMA.names if name != "video_id"}
    cols["video_id"] = [video_id] * len(rows)
    return pa.table({n: pa.array(cols[n], FLOW_SCHEMA.field(n).type) for n in FLOW_SCHEMA.names}, schema=FLOW_SCHEMA)


def flow_for_video(
    video_id: str,
    info: VideoInfo,
    sha256: str,
    landmarks: np.ndarray,
    valid: np.ndarray,
    landmark_key: dict,
    cfg: FlowConfig,
    out_dir: Path,
    progress: Callable[[int], None] | None = None,
    frames: Iterable[np.ndarray] | None = None,
    run: np.ndarray | None = None,
    face: str | int = "largest",
) -> pa.Table:
    """Read OUT/flow/<video_id>.parquet if it matches, else compute and cache it. ``frames``:
    a decoder already open (another stage may share the pass); by default one is opened.
    ``face``: whose face (mf2.faces.series); a face_id gets a file of its own."""
    name = video_id if isinstance(face, str) else f"{video_id}_f{int(face)}"
    path = flow_path(out_dir, name)
    params = {"flow": cfg.key(), "landmarks": landmark_key, "face": face if isinstance(face, str) else int(face)}
    cached = read_cached(path, sha256, params)
    if cached is not None:
        return cached
    table = compute_flow(
        video_id, iter_frames(info) if frames is None else frames, landmarks, valid, cfg, progress, run
    )
    table = table.replace_schema_metadata(metadata("flow", params, video_sha256=sha256, video=info.to_json()))
    write_parquet_atomic(path, table)
    return table


@dataclass
class FlowArrays:
    """The flow table as arrays indexed by frame (NaN where invalid)."""

    valid: np.ndarray
    d: np.ndarray  # (N, 2)
    fb_err: np.ndarray
    fb_bad: np.ndarray
    mag_p90: np.ndarray

    @classmethod
    def from_table(cls, t: pa.Table) -> "FlowArrays":
        def col(name: str) -> np.ndarray:
            return np.asarray(t[name].to_numpy(zero_copy_only=False), dtype=np.float64)

        valid = np.asarray(t["valid"].to_numpy(zero_copy_only=False), dtype=bool)
        return cls(valid, np.stack([col("dx"), col("dy")], axis=1), col("fb_err"), col("fb_bad"), col("mag_p90"))
