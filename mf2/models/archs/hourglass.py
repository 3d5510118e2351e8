"""Stacked hourglass (Newell et al. 2016) for pixel-wise image prediction (the paper's Sect. 3.1).

A residual block is three residual layers (conv + batch norm + ReLU: 1x1, 3x3, 1x1, the
bottleneck of Newell et al.), with an identity (or 1x1-projected) shortcut. Each hourglass
goes down ``depth`` times with a block before each pooling, keeps a lateral branch (one block)
at every resolution, and comes back up adding the lateral branch. Every stack predicts an image
(intermediate supervision); the next stack gets the features plus that prediction.
See ``StackedHourglass`` for the two stems.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from mf2.models.archs import register
from mf2.models.archs.space import atanh_base, dead_zone
from mf2.models.config import HOURGLASS_HEADS, HourglassConfig

STEMS = ("newell", "full")
HEADS = HOURGLASS_HEADS  # the last stack's head: FullResHead (linear) or KernelHead (kernel)
# KernelHead's predicted taps are scaled by this: Adam moves every weight of the zero-initialised
# conv by about its rate from the first step, and over its ~100 inputs unscaled taps moved by
# ~0.5 at once (a first version's training loss was 6x the linear head's after 25 steps)
KERNEL_SCALE = 0.02


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


class NewellStem(nn.Sequential):
    """Newell et al.'s stem: a 7x7 stride-2 conv, max pooling and residual blocks, so every
    hourglass works at 1/4 of the image's resolution (16x fewer pixels). Newell pools after
    the first block; pooling before it puts every block at 1/4 resolution, and the block at
    1/2 resolution was measured to cost as much as the two hourglasses together on a CPU."""

    def __init__(self, in_ch: int, features: int) -> None:
        half = max(1, features // 2)
        super().__init__(
            nn.Conv2d(in_ch, half, 7, stride=2, padding=3),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            ResBlock(half, features),
            ResBlock(features, features),
        )


class FullResHead(nn.Module):
    """A stack's prediction at full resolution from 1/4-resolution features, as a sub-pixel
    convolution (Shi et al. 2016): the features and the input's pixels rearranged to 1/4
    resolution (each 4x4 block as 48 channels, nothing lost) give 16 values per output pixel's
    block, shuffled back to full resolution. Convs at full resolution with 3 output channels
    cost 10x more than the whole hourglass on a CPU (measured); this costs 5%."""

    def __init__(self, features: int, out_ch: int, up: int = 4) -> None:
        super().__init__()
        self.out = nn.Sequential(
            nn.Conv2d(features + out_ch * up * up, out_ch * up * up, 3, padding=1), nn.PixelShuffle(up)
        )

    def forward(self, f: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([f, fine], dim=1))


class _PixelFilter(torch.autograd.Function):
    """out[b, c, y, x] = sum over taps i of weights[b, i, y, x] * image[b, c, y + dy_i, x + dx_i]
    (zero outside), with gradients for the weights only (the image is the network's input).
    Written out tap by tap because unfold's (B, C, k*k, H, W) copy and its autograd made a
    step of the small preset 1.8x slower; this keeps no more than the padded image."""

    @staticmethod
    def forward(ctx, image: torch.Tensor, weights: torch.Tensor, k: int) -> torch.Tensor:  # type: ignore[override]
        h, w = image.shape[-2:]
        padded = nn.functional.pad(image.contiguous(), (k // 2,) * 4)
        out = torch.zeros_like(padded[..., :h, :w], memory_format=torch.contiguous_format)
        for i in range(k * k):
            dy, dx = divmod(i, k)
            out.addcmul_(padded[..., dy : dy + h, dx : dx + w], weights[:, i : i + 1])
        ctx.save_for_backward(padded)
        ctx.k = k
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (padded,) = ctx.saved_tensors
        k = ctx.k
        h, w = grad.shape[-2:]
        taps = grad.new_empty(grad.shape[0], k * k, h, w)
        for i in range(k * k):  # in place, channel by channel: 9x faster than a product and a sum
            dy, dx = divmod(i, k)
            shifted, tap = padded[..., dy : dy + h, dx : dx + w], taps[:, i]
            torch.mul(shifted[:, 0], grad[:, 0], out=tap)
            for c in range(1, grad.shape[1]):
                tap.addcmul_(shifted[:, c], grad[:, c])
        return None, taps, None


class KernelHead(nn.Module):
    """The last stack's prediction as a filter of the input, as a kernel-prediction network
    (Mildenhall et al. 2018; Zhou et al.'s filter-adaptive convolution for video deblurring,
    2019): the 1/4-resolution features and the input's pixels give, for every 4x4 block of
    output pixels, a ``k`` x ``k`` kernel (its taps sum to 1) that is applied to the input
    around each of its pixels, then the same additive correction as ``FullResHead``.
    Why: ``FullResHead``'s pixel path has fixed weights, so a correction of the input's fine
    detail is the same filter wherever the face moved; motion blur at 25 frames/s is a few
    displaced copies whose spacing varies over the face, and undoing it needs a filter that
    varies with it. Both parts start at the identity (kernel a delta, correction 0). Not in
    the paper; ``hourglass.head: kernel``."""

    def __init__(self, features: int, out_ch: int, k: int, up: int = 4) -> None:
        super().__init__()
        self.k = k
        # one kernel per up x up block (the motion that sets it varies slowly over a face): 16x
        # cheaper than one per pixel through a sub-pixel conv, which made a step 1.4x slower
        self.kernels = nn.Sequential(nn.Conv2d(features + out_ch * up * up, k * k, 1), nn.Upsample(scale_factor=up))
        self.add = FullResHead(features, out_ch, up)
        centre = torch.zeros(1, k * k, 1, 1)
        centre[0, (k * k) // 2] = 1.0
        self.register_buffer("centre", centre, persistent=False)

    def filtered(self, f: torch.Tensor, fine: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The input filtered by its predicted kernels, one per 4x4 block (each a delta plus the prediction)."""
        pred = self.kernels(torch.cat([f, fine], dim=1)) * KERNEL_SCALE
        weights = pred - pred.mean(dim=1, keepdim=True) + self.centre  # sums to 1: brightness kept
        return cast(torch.Tensor, _PixelFilter.apply(x.detach(), weights.to(x.dtype), self.k))  # bf16 under autocast

    def zero(self) -> None:
        for conv in (cast(nn.Conv2d, self.kernels[0]), cast(nn.Conv2d, self.add.out[0])):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(cast(torch.Tensor, conv.bias))


class StackedHourglass(nn.Module):
    """Input and outputs are images in [-1, 1]; ``forward`` returns every stack's prediction,
    each the blurry input plus a learned correction (in tanh space, so it stays in range).

    ``stem="newell"``: the hourglasses work at 1/4 resolution behind Newell's strided stem and
    every prediction comes back to full resolution through a ``FullResHead``; this is the
    off-the-shelf network the paper names, and 10-20x cheaper than ``stem="full"`` (mf2 0.x:
    one 7x7 conv, every hourglass at full resolution), which old checkpoints keep using."""

    def __init__(
        self,
        stacks: int = 2,
        features: int = 128,
        depth: int = 4,
        in_ch: int = 3,
        stem: str = "newell",
        dead_zone: float = 0.0,
        head: str = "linear",
        kernel: int = 5,
        neighbours: bool = False,
    ) -> None:
        super().__init__()
        self.dead_zone = dead_zone  # code values (mf2.models.archs.space.dead_zone)
        self.neighbours = neighbours  # the stem also sees the frames before and after (``forward``)
        stem_ch = in_ch * (3 if neighbours else 1)
        if stem not in STEMS:
            raise ValueError(f"hourglass stem {stem!r}: expected one of {', '.join(STEMS)}")
        if head not in HEADS or (head == "kernel" and stem != "newell"):
            raise ValueError(f"hourglass head {head!r}: expected one of {', '.join(HEADS)} (kernel: newell stem)")
        self.stem_kind = stem
        if stem == "newell":
            self.stem: nn.Module = NewellStem(stem_ch, features)
            self.fine = nn.PixelUnshuffle(4)
            last: nn.Module = KernelHead(features, in_ch, kernel) if head == "kernel" else FullResHead(features, in_ch)
            self.heads = nn.ModuleList([*(FullResHead(features, in_ch) for _ in range(stacks - 1)), last])
            self.back = nn.ModuleList(
                nn.Sequential(nn.PixelUnshuffle(4), nn.Conv2d(in_ch * 16, features, 1)) for _ in range(stacks - 1)
            )
        else:
            self.stem = nn.Sequential(nn.Conv2d(stem_ch, features, 7, padding=3), ResBlock(features, features))
            self.heads = nn.ModuleList(nn.Conv2d(features, in_ch, 1) for _ in range(stacks))
            self.back = nn.ModuleList(nn.Conv2d(in_ch, features, 1) for _ in range(stacks - 1))
        self.hgs = nn.ModuleList(Hourglass(depth, features) for _ in range(stacks))
        self.feats = nn.ModuleList(
            nn.Sequential(ResBlock(features, features), nn.BatchNorm2d(features), nn.ReLU(inplace=True))
            for _ in range(stacks)
        )
        self.merge = nn.ModuleList(nn.Conv2d(features, features, 1) for _ in range(stacks - 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``context``: with ``neighbours``, the exposures before and after ``x`` stacked on the
        channels (B, 6, H, W); None stands for ``x`` twice (no neighbours: a photo, a clip's
        edge). Only the stem sees them: every prediction is still ``x`` plus a correction. A
        network without ``neighbours`` ignores them."""
        if self.neighbours:
            y = self.stem(torch.cat([x, context if context is not None else torch.cat([x, x], dim=1)], dim=1))
        else:
            y = self.stem(x)
        fine = self.fine(x) if self.stem_kind == "newell" else None
        base = atanh_base(x)
        outs = []
        for i, hg in enumerate(self.hgs):
            f = self.feats[i](hg(y))
            head = self.heads[i]
            if isinstance(head, KernelHead):
                assert fine is not None
                r = head.add(f, fine) + atanh_base(head.filtered(f, fine, x))
            else:
                r = (head(f, fine) if fine is not None else head(f)) + base
            img = dead_zone(x, torch.tanh(r), self.dead_zone, self.training)
            outs.append(img)
            if i < len(self.hgs) - 1:
                y = y + self.merge[i](f) + self.back[i](img)
        return outs

    def zero_heads(self) -> None:
        """Start as the identity: every stack's correction exactly 0, so training begins at the
        blurry input's error instead of a random image's (a N(0, 0.02) init of a 3x3 conv on
        112 channels perturbs the image by ~0.4 in tanh space)."""
        for head in self.heads:
            if isinstance(head, KernelHead):
                head.zero()
                continue
            last = cast(nn.Conv2d, head.out[0] if isinstance(head, FullResHead) else head)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(cast(torch.Tensor, last.bias))


@register("hourglass")
def hourglass_from(cfg: HourglassConfig) -> StackedHourglass:
    """The network a ``HourglassConfig`` describes."""
    return StackedHourglass(
        cfg.stacks,
        cfg.features,
        cfg.depth,
        stem=cfg.stem,
        dead_zone=cfg.dead_zone,
        head=cfg.head,
        kernel=cfg.kernel,
        neighbours=cfg.neighbours,
    )
