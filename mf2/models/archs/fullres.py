"""A full-resolution residual CNN for step 1, in place of the stacked hourglass (not in the
paper; ``restorer: fullres``).

``layers`` 3x3 convolutions of ``features`` channels with ReLUs between them, no
down-sampling (as VDSR, Kim et al. 2016), predicting a correction to the blurry input in
tanh space. Why: motion blur on a 128-px face spans a few pixels, and the hourglass sees it
through a 4x strided stem; on bench/restore.py's pairs of unseen people a network of 8 such
layers, 32 channels, trained 15 minutes on one thread, gained +0.29 dB on moving PrAvg 7
faces where the hourglass gained +0.18-0.20 (issue 30's notes, sessions 13 and 15)."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from mf2.models.archs import register
from mf2.models.archs.space import atanh_base, dead_zone
from mf2.models.config import FullResConfig


class FullResCNN(nn.Module):
    """Input and output images in [-1, 1]; ``forward`` returns a list of one prediction, as
    the hourglass returns one per stack, so the two are interchangeable in training and at
    prediction. The last convolution starts at zero: the network starts as the identity."""

    def __init__(self, features: int = 32, layers: int = 8, in_ch: int = 3, dead_zone: float = 0.0) -> None:
        super().__init__()
        self.dead_zone = dead_zone  # code values (mf2.models.archs.space.dead_zone)
        mods: list[nn.Module] = [nn.Conv2d(in_ch, features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            mods += [nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True)]
        last = nn.Conv2d(features, in_ch, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(cast(torch.Tensor, last.bias))
        self.body = nn.Sequential(*mods, last)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``context`` (the neighbours) is the hourglass's; this network sees the frame alone."""
        return [dead_zone(x, torch.tanh(self.body(x) + atanh_base(x)), self.dead_zone, self.training)]


@register("fullres")
def fullres_from(cfg: FullResConfig) -> FullResCNN:
    """The network a ``FullResConfig`` describes."""
    return FullResCNN(cfg.features, cfg.layers, dead_zone=cfg.dead_zone)
