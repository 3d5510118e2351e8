"""Where the hourglass's pixel loss looks harder: around the target's 68 landmarks.

A face crop's mean squared error is mostly cheeks, hair and background; the eyes, brows,
nostrils, lips and jaw line that a landmark localiser and a face matcher read are a fifth of
its pixels. ``LossConfig.landmark_weight`` counts a pixel near a landmark up to 1 + that weight
times. The map rides with the pair through the loader (cropped, flipped and resized with it)
as one channel, so every augmentation keeps it over the features it marks.
"""

from __future__ import annotations

import numpy as np
import torch

from mf2.train.losses import PSNR_FLOOR_DB, mse_floor


def landmark_map(points: np.ndarray | None, height: int, width: int, sigma_px: float) -> np.ndarray:
    """(height, width) float32 in [0, 1]: at each pixel the nearest landmark's Gaussian,
    exp(-d^2 / 2 sigma^2), with ``points`` (68, 2) as (x, y) in the image's pixels. The max
    rather than the sum: a crowded mouth counts no more than a lone jaw point. Zeros when the
    pair has no landmarks (then its pixels weigh as without the option)."""
    if points is None or len(points) == 0:
        return np.zeros((height, width), np.float32)
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    ys, xs = np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32)
    # separable: exp(-(dx^2 + dy^2)/2s^2) = exp(-dx^2/2s^2) * exp(-dy^2/2s^2), (n, h, 1) x (n, 1, w)
    gx = np.exp(-((xs[None, :] - pts[:, :1]) ** 2) / (2.0 * sigma_px**2))
    gy = np.exp(-((ys[None, :] - pts[:, 1:]) ** 2) / (2.0 * sigma_px**2))
    return (gy[:, :, None] * gx[:, None, :]).max(axis=0).astype(np.float32)


def weighted_pixel_loss(
    kind: str, pred: torch.Tensor, target: torch.Tensor, focus: torch.Tensor, weight: float
) -> torch.Tensor:
    """The hourglass's pixel loss ``kind`` (l1, l2, psnr: mf2.train.losses.log_mse_loss's
    log of each image's error) with pixel weights 1 + ``weight`` x ``focus`` (B, 1, H, W),
    normalised per image so the loss keeps its scale: with ``weight`` 0 it is the plain loss."""
    w = 1.0 + weight * focus.float()
    err = (pred - target).abs() if kind == "l1" else (pred - target).pow(2)
    per_image = (err * w).flatten(1).sum(1) / (w.flatten(1).sum(1) * pred.shape[1])
    if kind == "psnr":
        return torch.log(per_image + mse_floor(PSNR_FLOOR_DB)).mean()
    return per_image.mean()
