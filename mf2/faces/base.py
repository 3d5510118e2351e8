"""The one interface every landmark backend implements.

Detection and landmark fitting are separate calls because the tracker detects only on
keyframes and otherwise fits landmarks inside a box derived from the previous frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

N_LANDMARKS = 68


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # (4,) float32: x0, y0, x1, y1 in pixels (0-based, pixel centres at integers)
    score: float


class LandmarkBackend(Protocol):
    name: str
    batch_size: int  # frames the backend wants per fit call (1 on CPU, larger on GPU)

    def detect(self, image: np.ndarray, min_face: float | None = None) -> list[Detection]:
        """All faces in an RGB uint8 image; ``min_face``: smallest face side (pixels) to find,
        which bounds the detector's work (default: the backend's own)."""
        ...

    def fit(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[tuple[np.ndarray, float]]:
        """For each (image, box): 68x2 float32 landmarks in image pixels and a fit score."""
        ...


def landmark_box(lm: np.ndarray) -> np.ndarray:
    return np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()], dtype=np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
