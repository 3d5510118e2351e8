"""What each pair holds, measured when it is rendered (issue 31): how sharp its target is,
how much blur the pair holds, and how good its source was.

On the YouTube-style footage mf2 is built for (25–30 fps, compressed), a "sharp" middle
frame can carry its own motion blur or compression smear, and many pairs barely differ from
their target; a lab needs to see and filter both. Every measure here is cheap enough to be
always on (a few milliseconds per pair; ``bench/pipeline.py`` measures the render with them).

- ``target_sharpness``: the variance of the Laplacian of Gaussian (sigma ``LOG_SIGMA``) of
  the target's luminance, on the face crop resized to ``SHARPNESS_SIZE`` pixels (a fixed
  scale: the crop is the face plus its margin, so the number compares faces of any size and
  any ``--out-size``). The Gaussian makes it answer to edges rather than to compression
  blocks and noise. Chosen by ``bench/target_sharpness.py`` over the plain variance of the
  Laplacian and the gradient energy (Tenengrad): see README.
- ``sharpness_rank``: where the target stands among the targets of its shot and face, 0 the
  softest, 1 the sharpest; ``sharpness_ratio``: its sharpness over the median of the
  ``NEIGHBOURS`` targets either side of it in that shot (what ``--min-target-sharpness``
  compares: a soft frame among crisp ones, not a soft-focus interview as a whole).
- ``blur_psnr``/``blur_ssim``: the blurry image against its target (mf2.quality's convention:
  Y of BT.601); PSNR is capped at ``PSNR_CAP`` for identical images.
- ``saturated_share``: share of the target's pixels clipped to white (a channel at 255) or
  black (every channel at 0): linear-light averaging cannot be right there.
- ``fit_residual``: the sharp frame's landmark fit, Procrustes distance to the mean face
  (mf2.faces.shape), and ``bits_per_pixel``: the source stream's bit rate per pixel per frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from mf2.faces.shape import procrustes_residual
from mf2.quality import luminance, psnr_y, ssim_y

SHARPNESS_SIZE = 128  # the side the target is resized to before its Laplacian
LOG_SIGMA = 1.5  # pixels at that size
NEIGHBOURS = 3  # targets on either side that a target's sharpness is compared with
PSNR_CAP = 100.0  # dB, for a blurry image identical to its target
COLUMNS = (
    "target_sharpness",
    "sharpness_rank",
    "sharpness_ratio",
    "blur_psnr",
    "blur_ssim",
    "saturated_share",
    "fit_residual",
    "bits_per_pixel",
)


def _grey_at_scale(rgb: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    y = (luminance(rgb) if y is None else y).astype(np.float32)
    if y.shape != (SHARPNESS_SIZE, SHARPNESS_SIZE):
        interp = cv2.INTER_AREA if y.shape[0] > SHARPNESS_SIZE else cv2.INTER_CUBIC
        y = cv2.resize(y, (SHARPNESS_SIZE, SHARPNESS_SIZE), interpolation=interp)
    return y


def log_variance(rgb: np.ndarray, y: np.ndarray | None = None) -> float:
    """Variance of the Laplacian of Gaussian of the luminance at the fixed scale: the
    target's sharpness. ``y``: the image's luminance when the caller has it."""
    y = cv2.GaussianBlur(_grey_at_scale(rgb, y), (0, 0), LOG_SIGMA)
    return float(cv2.Laplacian(y, cv2.CV_32F, ksize=3).var())


def laplacian_variance(rgb: np.ndarray) -> float:
    """Variance of the (3x3) Laplacian of the luminance at the fixed scale: high for crisp
    edges and texture, low for a blurred or smeared face."""
    return float(cv2.Laplacian(_grey_at_scale(rgb), cv2.CV_32F, ksize=3).var())


def gradient_energy(rgb: np.ndarray) -> float:
    """Tenengrad: mean squared Sobel gradient magnitude at the fixed scale (the measure
    ``laplacian_variance`` was compared with)."""
    y = _grey_at_scale(rgb)
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.mean(gx * gx + gy * gy))


def saturated_share(rgb: np.ndarray) -> float:
    top = cv2.max(cv2.max(rgb[..., 0], rgb[..., 1]), rgb[..., 2])
    return float(np.count_nonzero((top == 255) | (top == 0))) / top.size


def bits_per_pixel(bit_rate: float | None, width: int, height: int, fps: float) -> float | None:
    """The stream's bits per pixel per frame (null when the bit rate is unknown)."""
    if not bit_rate or width <= 0 or height <= 0 or fps <= 0:
        return None
    return float(bit_rate) / (width * height * fps)


def pair_measures(blurry: np.ndarray, sharp: np.ndarray, landmarks: np.ndarray | None, bpp: float | None) -> dict:
    """The measures of one rendered pair (every column but ``sharpness_rank``)."""
    yb, ys = luminance(blurry), luminance(sharp)  # once, for all three measures that read it
    p = psnr_y(yb, ys)
    res = None
    if landmarks is not None and np.isfinite(landmarks).all():
        res = float(procrustes_residual(np.asarray(landmarks, np.float64)))
    return {
        "target_sharpness": log_variance(sharp, ys),
        "blur_psnr": min(p, PSNR_CAP),
        "blur_ssim": ssim_y(yb, ys),
        "saturated_share": saturated_share(sharp),
        "fit_residual": res,
        "bits_per_pixel": bpp,
    }


def ranks(groups: list, values: list[float], order: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per value, its rank within its group (0 the lowest, 1 the highest; 0.5 alone) and its
    ratio to the median of the ``NEIGHBOURS`` values either side of it in the group, in
    ``order`` (a pair's middle frame): the shot's own distribution, near the frame."""
    v = np.asarray(values, np.float64)
    rank, ratio = np.full(len(v), 0.5), np.ones(len(v))
    index: dict = {}
    for i, g in enumerate(groups):
        index.setdefault(g, []).append(i)
    for idx in index.values():
        ids = np.asarray(sorted(idx, key=lambda i: order[i]))
        x = v[ids]
        if len(ids) > 1:
            rank[ids] = np.argsort(np.argsort(x, kind="stable"), kind="stable") / (len(ids) - 1)
        for j, i in enumerate(ids):
            near = np.delete(x[max(0, j - NEIGHBOURS) : j + NEIGHBOURS + 1], min(j, NEIGHBOURS))
            med = float(np.median(near)) if len(near) else x[j]
            ratio[i] = x[j] / med if med > 0 else 1.0
    return rank, ratio
