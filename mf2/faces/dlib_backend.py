"""Offline CPU backend: dlib's HOG face detector and its 68-point shape predictor."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import dlib
import numpy as np

from mf2.faces.base import Detection
from mf2.faces.models import mmod_face_detector, shape_predictor_68


class DlibBackend:
    name = "dlib"
    batch_size = 1

    def __init__(
        self, predictor_path: str | Path | None = None, detect_max_side: int = 640, min_face: int = 40
    ) -> None:
        """``detect_max_side`` bounds the detector's image (speed); ``min_face`` is the smallest
        face side in original pixels the detector must still find, which sets the upsampling
        (HOG's window is 80 px, each upsampling halves that)."""
        self._detector = dlib.get_frontal_face_detector()
        self._predictor_path = predictor_path
        self._predictor = None  # loaded on the first fit: FAN uses this class for detection only
        self._cnn: Any = None  # loaded on the first fallback detection
        self.detect_max_side = detect_max_side
        self.min_face = min_face

    def detect(self, image: np.ndarray, min_face: float | None = None) -> list[Detection]:
        min_face = self.min_face if min_face is None else min_face
        h, w = image.shape[:2]
        scale = min(1.0, self.detect_max_side / max(h, w))
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            grey = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        upsample = 0
        while 80 / (2**upsample) > min_face * scale and upsample < 2:
            upsample += 1
        rects, scores, _ = self._detector.run(grey, upsample, 0.0)
        return [
            Detection(
                box=np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float32) / scale, score=float(s)
            )
            for r, s in zip(rects, scores)
        ]

    def detect_fallback(self, image: np.ndarray) -> list[Detection]:
        """dlib's CNN face detector (mmod), no upsampling (faces from about 80 px): for the
        turned, tilted or harshly lit faces HOG misses. About 20x HOG's cost per pixel, so the
        tracker asks it only near a track that HOG lost, on a region scaled down to that."""
        if self._cnn is None:
            self._cnn = dlib.cnn_face_detection_model_v1(str(mmod_face_detector()))
        return [
            Detection(
                box=np.array([d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], dtype=np.float32),
                score=float(d.confidence),
            )
            for d in self._cnn(np.ascontiguousarray(image), 0)
        ]

    @property
    def predictor(self):
        """The 68-point model (100 MB): read when a fit first needs it."""
        if self._predictor is None:
            self._predictor = dlib.shape_predictor(str(self._predictor_path or shape_predictor_68()))
        return self._predictor

    def fit(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[tuple[np.ndarray, float]]:
        out = []
        for image, box in zip(images, boxes):
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            lm = self._fit_region(image, x0, y0, x1, y1)
            if lm is None:  # the fit reached the region's edge: the whole frame, as before
                lm = self._fit_at(image, 0, 0, x0, y0, x1, y1)
            out.append((lm, float("nan")))  # the regression tree gives no confidence
        return out

    def _fit_at(self, region: np.ndarray, ox: int, oy: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        grey = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY) if region.ndim == 3 else region
        shape = self.predictor(grey, dlib.rectangle(x0 - ox, y0 - oy, x1 - ox, y1 - oy))
        return np.array([(p.x + ox, p.y + oy) for p in shape.parts()], dtype=np.float32)

    def _fit_region(self, image: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray | None:
        """The fit on the box and one box size around it: the shape predictor reads pixels only
        near its current landmarks, so this equals the whole-frame fit while the landmarks stay
        half a box away from the region's inner edges (checked; None otherwise). It saves
        converting the whole frame to grey for every fit (0.5 ms at 720p, more at 1080p)."""
        h, w = image.shape[:2]
        pad = max(x1 - x0, y1 - y0)
        rx0, ry0, rx1, ry1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
        if rx1 - rx0 < 2 or ry1 - ry0 < 2:
            return None
        lm = self._fit_at(image[ry0:ry1, rx0:rx1], rx0, ry0, x0, y0, x1, y1)
        half = pad / 2
        lo = np.array([rx0 + (half if rx0 > 0 else -np.inf), ry0 + (half if ry0 > 0 else -np.inf)])
        hi = np.array([rx1 - (half if rx1 < w else -np.inf), ry1 - (half if ry1 < h else -np.inf)])
        return lm if bool(((lm >= lo) & (lm <= hi)).all()) else None
