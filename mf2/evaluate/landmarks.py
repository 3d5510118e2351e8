"""Landmark localisation error, CED, AUC and failure rate with the paper's conventions.

Error: mean point-to-point Euclidean distance over the 68 points, divided by the diagonal of
the ground truth's bounding box (Chrysos et al. 2018). CED: share of images with error <= t.
AUC: area under the CED from 0 to ``max_error`` (0.08) by Simpson's rule on a 1e-4 grid,
divided by ``max_error`` — menpofit's ``area_under_curve_and_failure_rate``. Failure rate:
share of images with error > ``max_error``. An image where the localiser found no face has
infinite error: it counts as a failure and never lifts the CED.
"""

from __future__ import annotations

import math

import numpy as np

from mf2.faces.pts import normalised_error

STEP = 1e-4


def bins(max_error: float = 0.08, step: float = STEP) -> np.ndarray:
    return np.linspace(0.0, max_error, int(round(max_error / step)) + 1)


def ced(errors: np.ndarray, grid: np.ndarray) -> np.ndarray:
    e = np.sort(np.asarray(errors, dtype=np.float64))
    if e.size == 0:
        return np.zeros_like(grid)
    return np.searchsorted(e, grid, side="right") / e.size


def _simpson(y: np.ndarray, x: np.ndarray) -> float:
    """Composite Simpson on a uniform grid (trapezoid on the last interval if it is even)."""
    n = len(x) - 1
    if n < 2:
        return float(np.trapezoid(y, x)) if hasattr(np, "trapezoid") else float(getattr(np, "trapz")(y, x))
    h = (x[-1] - x[0]) / n
    m = n - (n % 2)
    s = y[0] + y[m] + 4.0 * y[1:m:2].sum() + 2.0 * y[2 : m - 1 : 2].sum()
    area = s * h / 3.0
    if m < n:
        area += 0.5 * h * (y[m] + y[n])
    return float(area)


def auc_and_failure_rate(errors, max_error: float = 0.08, step: float = STEP) -> tuple[float, float]:
    """(AUC in [0, 1], failure rate in [0, 1])."""
    e = np.asarray(errors, dtype=np.float64)
    if e.size == 0:
        return math.nan, math.nan
    grid = bins(max_error, step)
    c = ced(e, grid)
    return _simpson(c, grid) / max_error, float(np.mean(e > max_error))


def nme(pred: np.ndarray | None, gt: np.ndarray) -> float:
    return math.inf if pred is None else normalised_error(pred, gt)
