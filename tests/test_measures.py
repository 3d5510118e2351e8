"""The pair measures (issue 31, mf2.blur.measures) on a real annotated face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mf2.blur.measures import gradient_energy, laplacian_variance, log_variance, pair_measures, ranks, saturated_share
from mf2.quality import psnr


@pytest.fixture(scope="module")
def face(landmark_data) -> np.ndarray:
    """A 256-px face crop of an annotated still (the kind of target simulate writes)."""
    img = cv2.imread(str(landmark_data / "helen_300w" / "18489332_4.jpg"))[..., ::-1]
    pts = np.loadtxt(landmark_data / "helen_300w" / "18489332_4.pts", skiprows=3, comments="}")
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    side = 1.5 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    m = np.float32([[256 / side, 0, 128 - cx * 256 / side], [0, 256 / side, 128 - cy * 256 / side]])
    return np.ascontiguousarray(cv2.warpAffine(img, m, (256, 256), flags=cv2.INTER_AREA))


def test_sharpness_falls_with_blur_and_holds_across_scales(face):
    for measure in (log_variance, laplacian_variance, gradient_energy):
        values = [measure(cv2.GaussianBlur(face, (0, 0), s) if s else face) for s in (0, 0.8, 1.5, 3)]
        assert all(a > b for a, b in zip(values, values[1:])), values
    # the fixed scale: the same face written at 512 px measures like the 256-px one
    big = cv2.resize(face, (512, 512), interpolation=cv2.INTER_CUBIC)
    assert abs(log_variance(big) / log_variance(face) - 1) < 0.25


def test_pair_measures(face):
    blurry = cv2.blur(face, (5, 5))
    m = pair_measures(blurry, face, None, 0.1)
    assert m["blur_psnr"] == pytest.approx(psnr(blurry, face)) and m["blur_psnr"] < 40
    assert 0 < m["blur_ssim"] < 1 and m["fit_residual"] is None and m["bits_per_pixel"] == 0.1
    same = pair_measures(face, face, None, None)
    assert same["blur_psnr"] == 100.0 and same["blur_ssim"] == pytest.approx(1.0)
    half = face.copy()
    half[:128] = 255
    half[128:136] = 0
    assert saturated_share(half) == pytest.approx(136 / 256, abs=0.01)


def test_ranks_within_each_group():
    rank, ratio = ranks([(0, 0), (0, 0), (0, 0), (1, 0)], [10.0, 30.0, 20.0, 5.0], [0, 1, 2, 0])
    assert rank.tolist() == [0.0, 1.0, 0.5, 0.5]
    assert ratio.tolist() == pytest.approx([0.4, 2.0, 1.0, 1.0])  # over the median of its neighbours
