"""Synthetic camera-shake kernels in the style of DeblurGAN (Kupyn et al. 2018).

A trajectory is a Markov process on the complex plane: the velocity keeps a constant speed,
is pulled back towards the origin (centripetal term), perturbed by Gaussian shake and, rarely,
flipped by a big shake. The kernel is the trajectory's points splatted bilinearly onto a
``size`` x ``size`` grid. Two choices differ from DeblurGAN on purpose:

- the kernel is normalised to sum 1 (DeblurGAN rescales to [0, 1] by min-max, which changes
  the image's brightness), so blurring preserves the mean light;
- the trajectory is centred on its centroid, so the blur has no net shift and the sharp
  target stays aligned with the blurry image.

Everything is drawn from one ``numpy.random.Generator`` seeded by the pair's seed, so the
seed alone regenerates the kernel (and the noise) exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from mf2.blur.crf import decode_lut, encode
from mf2.errors import UsageError
from mf2.params import default


@dataclass(frozen=True)
class SyntheticConfig:
    kernel_size: int = default("synthetic.kernel_size")  # pixels of the output crop: up to ~12% of a 256 crop
    seed: int = default("synthetic.seed")
    noise_sigma: float = default("synthetic.noise_sigma")  # Gaussian noise after blurring, in 8-bit code values
    iterations: int = 2000

    def validate(self) -> None:
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise UsageError(f"--kernel-size {self.kernel_size}: must be an odd number >= 3")
        if self.noise_sigma < 0:
            raise UsageError(f"--noise-sigma {self.noise_sigma}: must be >= 0")
        if self.seed < 0:
            raise UsageError(f"--seed {self.seed}: must be >= 0")

    def key(self) -> dict:
        return asdict(self)


def pair_seed(seed: int, video_sha256: str, frame: int) -> int:
    """A per-pair seed (63 bits) from the run's seed, the video's content and the frame."""
    h = hashlib.sha256(f"{seed}:{video_sha256}:{frame}".encode()).hexdigest()
    return int(h[:15], 16)


def trajectory(rng: np.random.Generator, size: int, iterations: int = 2000) -> np.ndarray:
    """Complex trajectory points of one camera shake, before centring."""
    max_len = 0.9 * size
    expl = 0.005 * rng.uniform()  # how strongly shake and pull act; DeblurGAN's 0.1 curls kernels to a few px
    centripetal = 0.7 * rng.uniform()
    big_shake = 0.2 * rng.uniform()
    gauss_shake = 10.0 * rng.uniform()
    angle = 2 * np.pi * rng.uniform()
    step = max_len / (iterations - 1)
    u = rng.uniform(size=iterations)
    w = rng.uniform(size=iterations)
    noise = rng.standard_normal(size=(iterations, 2))
    v = complex(np.cos(angle), np.sin(angle)) * step
    x = np.zeros(iterations, dtype=np.complex128)
    for t in range(iterations - 1):
        turn = 2 * v * np.exp(1j * (np.pi + (w[t] - 0.5))) if u[t] < big_shake * expl else 0
        v = v + turn + expl * (gauss_shake * complex(noise[t, 0], noise[t, 1]) - centripetal * x[t]) * step
        v = v / abs(v) * step
        x[t + 1] = x[t] + v
    return x


def make_kernel(seed: int, size: int, iterations: int = 2000) -> np.ndarray:
    """The (size, size) float32 kernel of ``seed``; sums to 1."""
    rng = np.random.default_rng(seed)
    x = trajectory(rng, size, iterations)
    # Exposure: a random share of the shake, so kernel lengths vary from short to full.
    n = max(2, int(round(iterations * rng.uniform(0.5, 1.0))))
    x = x[:n]
    x = x - x.mean()
    extent = max(np.ptp(x.real), np.ptp(x.imag))
    if extent > size - 2:
        x = x * ((size - 2) / extent)
    c = (size - 1) / 2.0
    px, py = x.real + c, x.imag + c
    k = np.zeros((size, size), np.float64)
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    fx, fy = px - x0, py - y0
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = np.clip(x0 + dx, 0, size - 1), np.clip(y0 + dy, 0, size - 1)
        np.add.at(k, (yi, xi), wgt)
    return (k / k.sum()).astype(np.float32)


def apply_kernel(
    sharp: np.ndarray,
    kernel: np.ndarray,
    crf: str = "srgb",
    noise_sigma: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Convolve a uint8 RGB image with ``kernel`` in linear light (reflecting borders)."""
    lin = decode_lut(crf)[sharp]
    # filter2D correlates; flipping the kernel makes it a convolution.
    blurred = cv2.filter2D(lin, -1, np.ascontiguousarray(kernel[::-1, ::-1]), borderType=cv2.BORDER_REFLECT_101)
    out = encode(blurred, crf)
    if noise_sigma > 0:
        rng = rng or np.random.default_rng(0)
        noisy = out.astype(np.float32) + rng.normal(0.0, noise_sigma, size=out.shape).astype(np.float32)
        out = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return out


def synthetic_blur(
    sharp: np.ndarray, kernel: np.ndarray, seed: int, crf: str = "srgb", noise_sigma: float = 0.0
) -> np.ndarray:
    """A synthetic pair's blurry image: ``kernel`` in linear light, then noise from the
    pair's own stream (``[seed, 1]``). simulate, materialize and the stills builder all call
    this one function, so a rebuilt pair equals the original byte for byte."""
    return apply_kernel(sharp, kernel, crf, noise_sigma, np.random.default_rng([seed, 1]))
