"""Stacked hourglass (Newell et al. 2016) for pixel-wise image prediction (the paper's Sect. 3.1).

A residual block is three residual layers (conv + batch norm + ReLU: 1x1, 3x3, 1x1, the
bottleneck of Newell et al.), with an identity (or 1x1-projected) shortcut. Each hourglass
goes down ``depth`` times with a block before each pooling, keeps a lateral branch (one block)
at every resolution, and comes back up adding the lateral branch. Every stack predicts an image
(intermediate supervision); the next stack gets the features plus that prediction.
"""

from __future__ import annotations

import torch
from torch import nn


class ResLayer(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, k, padding=k // 2))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = max(1, cout // 2)
        self.body = nn.Sequential(ResLayer(cin, mid, 1), ResLayer(mid, mid, 3), ResLayer(mid, cout, 1))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class Hourglass(nn.Module):
    def __init__(self, depth: int, ch: int) -> None:
        super().__init__()
        self.lateral = ResBlock(ch, ch)
        self.down = ResBlock(ch, ch)
        self.inner = Hourglass(depth - 1, ch) if depth > 1 else ResBlock(ch, ch)
        self.up = ResBlock(ch, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lat = self.lateral(x)
        y = self.down(nn.functional.max_pool2d(x, 2))
        y = self.up(self.inner(y))
        return lat + nn.functional.interpolate(y, scale_factor=2, mode="nearest")


class StackedHourglass(nn.Module):
    """Input and outputs are images in [-1, 1]; ``forward`` returns every stack's prediction."""

    def __init__(self, stacks: int = 2, features: int = 128, depth: int = 4, in_ch: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, features, 7, padding=3), ResBlock(features, features))
        self.hgs = nn.ModuleList(Hourglass(depth, features) for _ in range(stacks))
        self.feats = nn.ModuleList(nn.Sequential(ResBlock(features, features), nn.BatchNorm2d(features),
                                                 nn.ReLU(inplace=True)) for _ in range(stacks))
        self.heads = nn.ModuleList(nn.Conv2d(features, in_ch, 1) for _ in range(stacks))
        self.back = nn.ModuleList(nn.Conv2d(in_ch, features, 1) for _ in range(stacks - 1))
        self.merge = nn.ModuleList(nn.Conv2d(features, features, 1) for _ in range(stacks - 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        y = self.stem(x)
        outs = []
        for i, hg in enumerate(self.hgs):
            f = self.feats[i](hg(y))
            # residual prediction: the blurry input plus a learned correction
            img = torch.tanh(self.heads[i](f) + torch.atanh(x.clamp(-0.999, 0.999)))
            outs.append(img)
            if i < len(self.hgs) - 1:
                y = y + self.merge[i](f) + self.back[i](img)
        return outs
