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


def encode(linear: np.ndarray, mode: str) -> np.ndarray:
    """Linear light in [0, 1] -> uint8 codes, rounded to nearest."""
    v = np.clip(linear.astype(np.float64), 0.0, 1.0)
    if mode == "srgb":
        v = _linear_to_srgb(v)
    elif mode == "gamma2.2":
        v = v ** (1 / 2.2)
    elif mode != "linear":
        raise ValueError(f"unknown CRF mode {mode!r}; expected one of {CRF_MODES}")
    return np.clip(np.rint(v * 255.0), 0, 255).astype(np.uint8)
