"""The face tracker as it was before issue 13 (commit 75211c8), kept only so that
bench/tracks.py can compare against it. Not used by mf2.

Keyframe detection plus tracking: one main face track per video.

Detection (HOG) is ~50x slower than fitting landmarks in a given box, so the detector runs
on keyframes only. Between them the box for frame t comes from frame t-1's landmarks,
mapped to the detector's box convention by the offsets measured at the last detection
(the predictor was trained on detector boxes, not on landmark extents). A fit whose
landmarks no longer agree with its input box (IoU below ``track_iou``) triggers a
re-detection on that frame. Repeated frames reuse their predecessor's result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import cv2
import numpy as np

from mf2.faces.base import Detection, LandmarkBackend, iou, landmark_box


@dataclass(frozen=True)
class LandmarkConfig:
    keyframe_interval: int = 10
    track_iou: float = 0.8
    track_iou_min: float = 0.5
    duplicate_threshold: float = 0.3
    cut_mad: float = 40.0


_MAX_MISSED_KEYFRAMES = 3  # keyframes without a detection before a still-healthy track is dropped
_HOG_WINDOW = 80  # dlib's HOG detector finds faces from 80 px up without upsampling
_LOCAL_FACE = 120  # face side when re-detecting near a track: room to grow or shrink 1.5x


@dataclass
class FrameLandmarks:
    frame: int
    box: np.ndarray | None  # (4,) detector-convention box, x0 y0 x1 y1
    landmarks: np.ndarray | None  # (68, 2) float32, image pixels
    score: float  # detector score of the detection this track came from
    fit_iou: float  # agreement between the fit's input box and its landmarks
    source: str  # detect | track | duplicate | none
    is_duplicate: bool
    dup_mad: float


@dataclass
class _Frame:
    index: int
    image: np.ndarray
    is_duplicate: bool
    mad: float


class FaceTracker:
    def __init__(self, backend: LandmarkBackend, cfg: LandmarkConfig) -> None:
        self.backend = backend
        self.cfg = cfg
        self._box: np.ndarray | None = None
        self._rel: np.ndarray | None = None
        self._score = float("nan")
        self._since_detect = 0
        self._missed = 0
        self._prev: FrameLandmarks | None = None

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _extent(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Landmark box and its (w, h, w, h), the frame the detector offsets are measured in."""
        lb = landmark_box(lm)
        return lb, np.array([lb[2] - lb[0], lb[3] - lb[1]] * 2, dtype=np.float32)

    def _box_from_landmarks(self, lm: np.ndarray) -> np.ndarray:
        lb, size = self._extent(lm)
        return lb + self._rel * size

    def _choose(self, dets: list[Detection]) -> Detection | None:
        if not dets:
            return None
        if self._box is not None:
            best = max(dets, key=lambda d: iou(d.box, self._box))
            if iou(best.box, self._box) >= 0.2:
                return best
            if self._missed < _MAX_MISSED_KEYFRAMES:
                return None  # faces elsewhere, not ours: keep tracking ours for now
        return max(dets, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))

    def _detect(self, f: _Frame) -> list[Detection]:
        """The whole frame without a track or at a cut; otherwise only a region three face
        sizes wide around the tracked box, scaled so the face is ~_LOCAL_FACE px. HOG over a
        whole upsampled frame was 85 ms a keyframe on 512 px video (the profile's largest
        item); the region costs a few ms, and faces elsewhere are not this track anyway."""
        if self._box is None or self._is_cut(f):
            return self.backend.detect(f.image)
        x0, y0, x1, y1 = (float(v) for v in self._box)
        side = max(x1 - x0, y1 - y0)
        if side < 8:
            return self.backend.detect(f.image)
        h, w = f.image.shape[:2]
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 1.5 * side
        rx0, ry0 = max(0, int(cx - half)), max(0, int(cy - half))
        rx1, ry1 = min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))
        if rx1 - rx0 < 16 or ry1 - ry0 < 16:
            return self.backend.detect(f.image)
        scale = _LOCAL_FACE / side
        region = f.image[ry0:ry1, rx0:rx1]
        size = (max(1, round((rx1 - rx0) * scale)), max(1, round((ry1 - ry0) * scale)))
        region = cv2.resize(region, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        offset = np.array([rx0, ry0, rx0, ry0], dtype=np.float32)
        return [
            Detection((d.box / scale + offset).astype(np.float32), d.score)
            for d in self.backend.detect(region, min_face=_HOG_WINDOW)
        ]

    def _detect_and_fit(self, f: _Frame) -> FrameLandmarks | None:
        det = self._choose(self._detect(f))
        self._since_detect = 0
        if det is None:
            self._missed += 1
            return None
        self._missed = 0
        lm, _ = self.backend.fit([f.image], [det.box])[0]
        lb, size = self._extent(lm)
        if size[0] < 2 or size[1] < 2:
            return None
        self._rel = (det.box - lb) / size
        self._box = det.box.astype(np.float32)
        self._score = det.score
        return FrameLandmarks(f.index, self._box.copy(), lm, det.score, 1.0, "detect", f.is_duplicate, f.mad)

    def _lost(self, f: _Frame) -> FrameLandmarks:
        if self._missed >= _MAX_MISSED_KEYFRAMES or self._rel is None:
            self._box = None
        return FrameLandmarks(f.index, None, None, float("nan"), float("nan"), "none", f.is_duplicate, f.mad)

    def _is_cut(self, f: _Frame) -> bool:
        return bool(f.mad >= self.cfg.cut_mad)  # NaN (first frame) is not a cut

    # -- main loop -----------------------------------------------------------------------
    def _process_chunk(self, chunk: list[_Frame]) -> list[FrameLandmarks]:
        results: list[FrameLandmarks | None] = [None] * len(chunk)
        todo = [i for i, f in enumerate(chunk) if not (f.is_duplicate and (i > 0 or self._prev is not None))]
        # Keyframes (or no track): detect on each frame that needs it, one at a time.
        while todo and (self._box is None or self._since_detect >= self.cfg.keyframe_interval):
            i = todo.pop(0)
            r = self._detect_and_fit(chunk[i])
            if r is None and self._box is not None and not self._is_cut(chunk[i]):  # keyframe missed, track alive
                lm, _ = self.backend.fit([chunk[i].image], [self._box])[0]
                nb = self._box_from_landmarks(lm)
                fi = iou(nb, self._box)
                if fi >= self.cfg.track_iou_min:
                    r = FrameLandmarks(
                        chunk[i].index, nb, lm, self._score, fi, "track", chunk[i].is_duplicate, chunk[i].mad
                    )
                    self._box = nb
            results[i] = r or self._lost(chunk[i])
            self._since_detect += 1
        if todo:
            box = self._box
            fits = self.backend.fit([chunk[i].image for i in todo], [box] * len(todo))
            for i, (lm, _) in zip(todo, fits):
                f = chunk[i]
                nb = self._box_from_landmarks(lm)
                fi = iou(nb, box)
                tracked = FrameLandmarks(f.index, nb, lm, self._score, fi, "track", f.is_duplicate, f.mad)
                cut = self._is_cut(f)
                if fi < self.cfg.track_iou or cut:  # the fit may have drifted: re-detect on this very frame
                    r = self._detect_and_fit(f)
                    if r is None and fi >= self.cfg.track_iou_min and not cut:
                        r = tracked  # no detection here, but the fit is still plausible
                    tracked = r or self._lost(f)
                if tracked.landmarks is not None and tracked.source == "track":
                    self._box = nb
                results[i] = tracked
                self._since_detect += 1
        # Repeated frames take their predecessor's answer.
        prev = self._prev
        for i, f in enumerate(chunk):
            r = results[i]
            if r is None:
                assert prev is not None
                r = FrameLandmarks(
                    f.index,
                    prev.box,
                    prev.landmarks,
                    prev.score,
                    prev.fit_iou,
                    "duplicate" if prev.landmarks is not None else "none",
                    True,
                    f.mad,
                )
                results[i] = r
            prev = r
        self._prev = prev
        return results  # type: ignore[return-value]

    def run(self, frames: Iterable[tuple[int, np.ndarray, bool, float]]) -> Iterator[FrameLandmarks]:
        chunk: list[_Frame] = []
        for idx, image, dup, mad in frames:
            chunk.append(_Frame(idx, image, dup, mad))
            if len(chunk) >= max(1, self.backend.batch_size):
                yield from self._process_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._process_chunk(chunk)
