"""The tanh space in which mf2's networks correct images: a base image in [-1, 1] mapped
through atanh, a learned correction added, and tanh back. The output stays in range and a
zero correction returns the base (up to the clamp that keeps atanh finite at 0 and 255)."""

from __future__ import annotations

import torch


def atanh_base(x: torch.Tensor) -> torch.Tensor:
    """An image in [-1, 1] in tanh space: what a residual head's correction is added to."""
    return torch.atanh(x.clamp(-0.999, 0.999))
