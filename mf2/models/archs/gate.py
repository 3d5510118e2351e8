"""The blur gate: a small classifier that says how likely a face crop is motion-blurred, and
scales a restorer's correction by that likelihood (to a power).

Why (issue 30's note): trained on real pairs, where a third barely moved, every restorer
learned to sharpen any soft face and took 0.4-1.6 dB off still faces of people it had not
seen; the dead zone bought that back only by giving up most of the gain on moving ones. A
classifier trained beside the hourglass (moving = the pair's blurry image more than
``moving_db`` from its target) tells the two apart from the image alone well enough (ROC
area 0.69 on unseen people's PrAvg 7 pairs, 0.70 on VLA) that gating the correction took
0.09 dB off still faces instead of 0.41, keeping +0.14 of the +0.18 dB on moving ones.

It learns from the training pairs' real blurry images (mf2.train.data: ``gate_input``,
``moving``), not the augmented inputs the restorer sees.

The network looks at the image's high frequencies only (the image less its 5x5 local mean:
blur lives there, identity and lighting do not), goes down five strided convolutions, and
pools both the mean and the maximum (a blur streak may cover a small part of the face).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mf2.models.archs import register
from mf2.models.config import GateConfig


class BlurGate(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        c = [3, features, features * 2, features * 2, features * 4, features * 4]
        layers: list[nn.Module] = []
        for a, b in zip(c[:-1], c[1:]):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c[-1] * 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N,) that each image in [-1, 1] is motion-blurred."""
        x = (x + 1) * 0.5
        high = x - F.avg_pool2d(x, 5, 1, 2, count_include_pad=False)
        h = self.features(high * 8)
        return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)).squeeze(1)


@register("blur_gate")
def _make(cfg: GateConfig) -> BlurGate:
    return BlurGate(cfg.features)


def gated(x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor, power: float) -> torch.Tensor:
    """``y``'s change to ``x`` scaled, per image, by the gate's probability to ``power``."""
    w = torch.sigmoid(logits.float()).pow(power).view(-1, 1, 1, 1)
    return x + w * (y - x)
