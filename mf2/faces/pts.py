"""iBUG / 300-W ``.pts`` annotation files (1-based pixel coordinates on disk)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mf2.errors import InputError


def read_pts(path: str | Path) -> np.ndarray:
    """(N, 2) float32 landmarks, converted to mf2's 0-based pixel coordinates."""
    text = Path(path).read_text().replace("\r", "")
    try:
        body = text[text.index("{") + 1 : text.index("}")]
        pts = np.array([[float(v) for v in line.split()] for line in body.strip().splitlines()], dtype=np.float32)
    except ValueError:
        raise InputError(f"{path}: not a .pts file (expected points between {{ and }})", "bad-annotation") from None
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise InputError(f"{path}: malformed points", "bad-annotation")
    return pts - 1.0


def normalised_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean point-to-point error divided by the ground-truth box diagonal (the paper's measure)."""
    lo, hi = gt.min(axis=0), gt.max(axis=0)
    diag = float(np.hypot(*(hi - lo)))
    return float(np.linalg.norm(pred - gt, axis=1).mean() / diag)
