"""The tanh space in which mf2's networks correct images: a base image in [-1, 1] mapped
through atanh, a learned correction added, and tanh back. The output stays in range and a
zero correction returns the base (up to the clamp that keeps atanh finite at 0 and 255)."""

from __future__ import annotations

import torch


def atanh_base(x: torch.Tensor) -> torch.Tensor:
    """An image in [-1, 1] in tanh space: what a residual head's correction is added to."""
    return torch.atanh(x.clamp(-0.999, 0.999))


def dead_zone(x: torch.Tensor, y: torch.Tensor, tau: float, training: bool) -> torch.Tensor:
    """At prediction time, ``y`` with its change to ``x`` shrunk by ``tau`` code values (soft
    thresholding): a correction smaller than ``tau`` leaves the pixel exactly as it was, a
    larger one is kept less ``tau``. A face that is already sharp then comes out unchanged
    unless the network is sure: on sharp test faces (within 2-3 code values of their target),
    corrections of a fraction of a code value spread over the face cost 0.3-2 dB, and a zone
    of 2 code values took that to about 0 (issue 30's note).

    Training sees the raw prediction (``training``: returned as it is): measured with the
    zone in the loss (the gradient passed straight through, since inside the zone it is 0 and
    a zero-initialised head never leaves the identity), the networks learned larger
    corrections and the harm on sharp faces came back."""
    if tau <= 0 or training:
        return y
    return x + torch.nn.functional.softshrink(y - x, tau / 127.5)
