"""Camera response: averaging must happen on light, not on encoded pixel values.

A real exposure integrates irradiance; video pixels are gamma-encoded. ``srgb`` inverts
the IEC 61966-2-1 curve before the mean and re-applies it after; ``gamma2.2`` uses a pure
power law; ``linear`` averages the stored values as they are (the naive baseline).
"""

from __future__ import annotations

import numpy as np

CRF_MODES = ("srgb", "gamma2.2", "linear")


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(np.maximum(v, 0.0031308), 1 / 2.4) - 0.055)


def decode_lut(mode: str) -> np.ndarray:
    """256-entry float32 table: uint8 code -> linear light in [0, 1] (a LUT keeps it one gather)."""
    v = np.arange(256, dtype=np.float64) / 255.0
    if mode == "srgb":
        out = _srgb_to_linear(v)
    elif mode == "gamma2.2":
        out = v**2.2
    elif mode == "linear":
        out = v
    else:
        raise ValueError(f"unknown CRF mode {mode!r}; expected one of {CRF_MODES}")
    return out.astype(np.float32)


def _encode_exact(linear: np.ndarray, mode: str) -> np.ndarray:
    """Reference encoder: the curve, then round to nearest."""
    v = np.clip(linear.astype(np.float64), 0.0, 1.0)
    if mode == "srgb":
        v = _linear_to_srgb(v)
    elif mode == "gamma2.2":
        v = v ** (1 / 2.2)
    elif mode != "linear":
        raise ValueError(f"unknown CRF mode {mode!r}; expected one of {CRF_MODES}")
    return np.clip(np.rint(v * 255.0), 0, 255).astype(np.uint8)


_TABLES: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
_GRID = 65535


def _tables(mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 16-bit table of codes, the exact code boundaries that correct it, and which grid
    cells those boundaries fall near.

    The boundaries (linear values where the rounded code steps k -> k+1) are found by
    bisection on the reference encoder. The table is off by at most one code near a
    boundary (the curve's steepest slope moves < 0.1 code per grid step), which a single
    comparison against the boundaries repairs, so the result equals the reference. Away
    from the boundaries (all but ~0.8 % of the cells, flagged with two cells of room either
    side) the table is exact, so only flagged values need the comparison."""
    if mode not in _TABLES:
        lo, hi, target = np.zeros(255), np.ones(255), np.arange(1, 256)
        for _ in range(60):
            mid = (lo + hi) / 2
            up = _encode_exact(mid, mode).astype(int) >= target
            hi, lo = np.where(up, mid, hi), np.where(up, lo, mid)
        bounds = hi.astype(np.float32)
        upper = np.append(bounds, np.float32(np.inf))
        lower = np.insert(bounds, 0, np.float32(-np.inf))
        table = _encode_exact((np.arange(_GRID + 1) / _GRID).astype(np.float32), mode)
        near = np.zeros(_GRID + 1, bool)
        cell = np.floor(bounds.astype(np.float64) * _GRID + 0.5).astype(np.int64)
        for d in range(-2, 3):
            near[np.clip(cell + d, 0, _GRID)] = True
        _TABLES[mode] = (table, upper, lower, near)
    return _TABLES[mode]


_FLAGGED: dict[str, np.ndarray] = {}


def _flagged(mode: str) -> np.ndarray:
    """The 16-bit table of codes with 256 added where a boundary is near: one gather gives
    both the code (the low byte) and whether it needs the comparison (above 255), where two
    gathers took 20 % of encoding."""
    if mode not in _FLAGGED:
        table, _, _, near = _tables(mode)
        _FLAGGED[mode] = table.astype(np.uint16) + near.astype(np.uint16) * np.uint16(256)
    return _FLAGGED[mode]


def encode(linear: np.ndarray, mode: str) -> np.ndarray:
    """Linear light in [0, 1] -> uint8 codes, rounded to nearest.

    Table lookup plus an exact boundary correction where a boundary is near: equal to the
    reference encoder, several times faster than evaluating the curve per pixel; encoding
    is a hot spot of rendering."""
    if mode not in CRF_MODES:
        raise ValueError(f"unknown CRF mode {mode!r}; expected one of {CRF_MODES}")
    _, upper, lower, _ = _tables(mode)
    v = np.asarray(linear, dtype=np.float32)
    idx = np.clip(v * np.float32(_GRID) + np.float32(0.5), 0, _GRID).astype(np.uint16)
    flagged = np.take(_flagged(mode), idx)
    code = flagged.astype(np.uint8)  # the low byte: the table's code
    sel = np.flatnonzero(flagged > 255)
    if sel.size:
        vs, cs = v.ravel()[sel], code.ravel()[sel].astype(np.int16)
        cs += vs >= upper[cs]
        cs -= vs < lower[cs]
        code.ravel()[sel] = cs.astype(np.uint8)
    return code
