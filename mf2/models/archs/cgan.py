"""The two-pathway conditional GAN (the paper's Sect. 3.2-3.3 and Table 3).

``G_bl`` encodes the blurry image with the hourglass output (6 channels); ``G_s`` encodes the
sharp image (3 channels), an auto-encoder of the target space. Both encoders have the same
layer structure; the two pathways share one decoder (one set of weights), which pulls the
blurry code towards the sharp images' manifold. Encoder layers 1, 3, 5 and decoder layers 1, 3
have residual connections skipping two layers; two U-Net skips carry encoder features to the
decoder. At prediction time only the hourglass and ``G_bl`` run.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from mf2.models.archs import register
from mf2.models.archs.space import atanh_base, dead_zone
from mf2.models.config import CganConfig


def _conv(cin: int, cout: int, k: int, stride: int) -> nn.Module:
    """A conv that halves the size at stride 2 and keeps it at stride 1, for k = 4 or 1."""
    if k == 1:
        return nn.Conv2d(cin, cout, 1, stride=stride)
    if stride == 1:  # 'same' padding for an even kernel: one more pixel after than before
        return nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(cin, cout, k))
    return nn.Conv2d(cin, cout, k, stride=stride, padding=(k - stride) // 2)


def _fconv(cin: int, cout: int, k: int, stride: int) -> nn.Module:
    """A fractionally strided (transposed) conv that doubles the size at stride 2."""
    if stride == 1:
        return _conv(cin, cout, k, 1)  # a stride-1 transposed conv is a conv
    if k == 1:
        return nn.ConvTranspose2d(cin, cout, 1, stride=2, output_padding=1)
    return nn.ConvTranspose2d(cin, cout, k, stride=2, padding=1)


@register("cgan_encoder")
class Encoder(nn.Module):
    def __init__(self, cfg: CganConfig, in_ch: int) -> None:
        super().__init__()
        self.cfg = cfg
        layers, proj = [], {}
        c = in_ch
        for i, (k, ch, s, bn) in enumerate(cfg.encoder, start=1):
            layers.append(
                nn.Sequential(
                    _conv(c, ch, k, s), nn.BatchNorm2d(ch) if bn else nn.Identity(), nn.LeakyReLU(0.2, inplace=False)
                )
            )
            c = ch
        self.layers = nn.ModuleList(layers)
        for i in cfg.residual_encoder:  # output of layer i joins the output of layer i + 2
            if i + 2 <= len(cfg.encoder):
                stride = cfg.encoder[i][2] * cfg.encoder[i + 1][2]
                proj[str(i)] = nn.Conv2d(cfg.encoder[i - 1][1], cfg.encoder[i + 1][1], 1, stride=stride)
        self.proj = nn.ModuleDict(proj)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        feats: dict[int, torch.Tensor] = {}
        pending: dict[int, torch.Tensor] = {}
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x)
            if i in pending:
                x = x + pending.pop(i)
            feats[i] = x
            if str(i) in self.proj:
                pending[i + 2] = self.proj[str(i)](x)
        return x, feats


@register("cgan_decoder")
class Decoder(nn.Module):
    def __init__(self, cfg: CganConfig) -> None:
        super().__init__()
        self.cfg = cfg
        skips = {d: e for e, d in cfg.unet_skips}  # decoder layer -> encoder layer concatenated after it
        c = cfg.encoder[-1][1]
        layers, proj = [], {}
        n = len(cfg.decoder)
        for j, (k, ch, s, bn, keep) in enumerate(cfg.decoder, start=1):
            last = j == n
            mods = [_fconv(c, ch, k, s)]
            if not last:
                mods += [nn.BatchNorm2d(ch) if bn else nn.Identity(), nn.ReLU(inplace=False)]
                if keep < 1.0:
                    mods.append(nn.Dropout(1.0 - keep))
            layers.append(nn.Sequential(*mods))
            c = ch + (cfg.encoder[skips[j] - 1][1] if j in skips else 0)
        self.layers = nn.ModuleList(layers)
        self.skips = skips
        for j in cfg.residual_decoder:
            if j + 2 <= n - 1:
                up = cfg.decoder[j][2] * cfg.decoder[j + 1][2]
                proj[str(j)] = nn.Sequential(
                    nn.Upsample(scale_factor=up, mode="nearest") if up > 1 else nn.Identity(),
                    nn.Conv2d(cfg.decoder[j - 1][1], cfg.decoder[j + 1][1], 1),
                )
        self.proj = nn.ModuleDict(proj)

    def forward(
        self, code: torch.Tensor, feats: dict[int, torch.Tensor], base: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The image; with ``base`` (residual configurations), ``base`` corrected in tanh space."""
        x = code
        pending: dict[int, torch.Tensor] = {}
        for j, layer in enumerate(self.layers, start=1):
            x = layer(x)
            if j in pending:
                x = x + pending.pop(j)
            if str(j) in self.proj:
                pending[j + 2] = self.proj[str(j)](x)
            if j in self.skips:
                x = torch.cat([x, feats[self.skips[j]]], dim=1)
        if base is not None:
            x = x + atanh_base(base)
        return torch.tanh(x)

    def zero_last(self) -> None:
        """A residual decoder starts by correcting nothing: its output is exactly its base."""
        last = [m for m in self.layers[-1].modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)


@register("cgan_generator")
class TwoPathwayGenerator(nn.Module):
    """``cfg.condition_on_hg`` false: G_bl takes the blurry image alone (cGAN-noHG);
    ``cfg.two_pathway`` false: no G_s (HG-vanilla-cGAN). Both true: the paper's model."""

    def __init__(self, cfg: CganConfig) -> None:
        super().__init__()
        self.condition_on_hg = cfg.condition_on_hg
        self.residual = cfg.residual
        self.dead_zone = cfg.dead_zone
        self.enc_bl = Encoder(cfg, in_ch=cfg.bl_channels)
        self.enc_s = Encoder(cfg, in_ch=3) if cfg.two_pathway else None
        self.decoder = Decoder(cfg)  # shared: one module, one set of weights, two pathways

    def forward(self, blurry: torch.Tensor, hg_out: torch.Tensor | None, sharp: torch.Tensor | None = None):
        """(deblurred, its code, reconstruction of ``sharp``, its code); the last two are None
        without ``sharp`` (prediction) or without G_s. One forward for both pathways, as DDP needs."""
        fake, code_bl = self.forward_bl(blurry, hg_out)
        if sharp is None or self.enc_s is None:
            return fake, code_bl, None, None
        rec, code_s = self.forward_s(sharp)
        return fake, code_bl, rec, code_s

    def forward_bl(self, blurry: torch.Tensor, hg_out: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([blurry, cast(torch.Tensor, hg_out)], dim=1) if self.condition_on_hg else blurry
        code, feats = self.enc_bl(x)
        out = self.decoder(code, feats, bl_base(self.residual, blurry, hg_out))
        return dead_zone(blurry, out, self.dead_zone, self.training), code

    def forward_s(self, sharp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.enc_s is not None, "a two-pathway generator"  # forward() checks before calling
        code, feats = self.enc_s(sharp)
        return self.decoder(code, feats, sharp if self.residual else None), code


def bl_base(residual: bool, blurry: torch.Tensor, hg_out: torch.Tensor | None) -> torch.Tensor | None:
    """What a residual G_bl corrects: the hourglass's output, or the blurry input where the
    cGAN is not conditioned on it (cGAN-noHG); None for the paper's decoder."""
    if not residual:
        return None
    return hg_out if hg_out is not None else blurry


@register("cgan_discriminator")
class Discriminator(nn.Module):
    """PatchGAN of 5 layers conditioned on the blurry input; ``features`` is the penultimate
    layer's output, the projection the paper's Eq. 5 matches."""

    def __init__(self, channels: tuple = (64, 128, 256, 512)) -> None:
        super().__init__()
        layers, c = [], 6
        for i, ch in enumerate(channels):
            stride = 2 if i < len(channels) - 1 else 1
            layers.append(
                nn.Sequential(
                    nn.Conv2d(c, ch, 4, stride=stride, padding=1),
                    nn.BatchNorm2d(ch) if i else nn.Identity(),
                    nn.LeakyReLU(0.2),
                )
            )
            c = ch
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(c, 1, 4, stride=1, padding=1)

    def forward(self, blurry: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(torch.cat([blurry, image], dim=1))
        return self.out(f), f


def init_weights(m: nn.Module) -> None:
    """pix2pix-style initialisation: N(0, 0.02) convs, N(1, 0.02) batch-norm scales."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


__all__ = ["Discriminator", "Decoder", "Encoder", "TwoPathwayGenerator", "bl_base", "init_weights", "n_params"]
