"""Repeated frames: frame-rate conversion duplicates add no exposure to a blur average.

A frame is a repeat of its predecessor when the mean absolute difference of their grey
levels, at ``size`` pixels on the long side, is at most ``threshold``. Lossy encoders never
reproduce a duplicated frame bit-exactly (none of the shared clips has a single exact
repeat), so ``threshold=0`` (bit-exact) is available but the default tolerates encoder noise;
downscaling first averages that noise away while keeping real motion, which is what makes
one threshold work across resolutions.
"""

from __future__ import annotations

import cv2
import numpy as np


class DuplicateDetector:
    def __init__(self, threshold: float = 0.3, size: int = 320) -> None:
        self.threshold = threshold
        self.size = size
        self._prev: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> tuple[bool, float]:
        """Return (is_repeat, mean abs grey difference to the previous frame)."""
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        h, w = grey.shape
        scale = self.size / max(h, w)
        if self.threshold > 0 and scale < 1:
            grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        prev, self._prev = self._prev, grey
        if prev is None or prev.shape != grey.shape:
            return False, float("nan")
        mad = float(cv2.absdiff(grey, prev).mean())
        return (mad == 0.0 if self.threshold <= 0 else mad <= self.threshold), mad
