"""SSIM and PSNR as the deblurring literature reports them.

Convention (stated in every report): both on the luminance channel Y of ITU-R BT.601 as
MATLAB's ``rgb2ycbcr`` computes it for uint8 images (Y in [16, 235], rounded to integers),
data range 255. SSIM follows Wang et al.'s ``ssim_index.m``: 11x11 Gaussian window, sigma 1.5,
K1 = 0.01, K2 = 0.03, statistics over the 'valid' region (no padding), mean of the map. The
2009 ``ssim.m`` also downsamples images larger than 256 px by round(min(H, W) / 256); mf2's
256 px crops are unaffected, and it is not applied.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_Y = np.array([65.481, 128.553, 24.966], dtype=np.float64) / 255.0
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def luminance(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float64 Y, rounded as MATLAB's rgb2ycbcr does for uint8."""
    if rgb.ndim == 2:
        return rgb.astype(np.float64)
    return np.rint(16.0 + rgb.astype(np.float64) @ _Y)


def _window() -> np.ndarray:
    g = cv2.getGaussianKernel(11, 1.5, cv2.CV_64F)
    return g / g.sum()


_G = _window()  # the 11x11 Gaussian window is this column times its transpose


def _filter_valid(x: np.ndarray) -> np.ndarray:
    # Correlation with a symmetric kernel; the 5 px border where the window would leave the
    # image is dropped, which is MATLAB's filter2(..., 'valid'). The window is separable, so
    # two 1-D passes give the same sums (to float64 rounding) at a quarter of the cost: SSIM is
    # measured on every pair simulate writes (mf2.blur.measures).
    return cv2.sepFilter2D(x, cv2.CV_64F, _G, _G, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 RGB (or grey) images of the same size, on Y."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM of images of different sizes {a.shape} and {b.shape}")
    return ssim_y(luminance(a), luminance(b))


def ssim_y(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two luminance images (``luminance``'s output): for a caller that has them."""
    if min(x.shape) < 11:
        raise ValueError("SSIM needs images of at least 11x11 pixels")
    mx, my = _filter_valid(x), _filter_valid(y)
    sxx = _filter_valid(x * x) - mx * mx
    syy = _filter_valid(y * y) - my * my
    sxy = _filter_valid(x * y) - mx * my
    num = (2 * mx * my + _C1) * (2 * sxy + _C2)
    den = (mx * mx + my * my + _C1) * (sxx + syy + _C2)
    return float(np.mean(num / den))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB on Y; ``math.inf`` for identical images."""
    if a.shape != b.shape:
        raise ValueError(f"PSNR of images of different sizes {a.shape} and {b.shape}")
    return psnr_y(luminance(a), luminance(b))


def psnr_y(x: np.ndarray, y: np.ndarray) -> float:
    """PSNR of two luminance images (``luminance``'s output)."""
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
