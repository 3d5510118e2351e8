"""The networks of a run and one optimisation step of each stage: the hourglass (pixel loss
on every stack's output) and the two-pathway cGAN (discriminator, then generator with the
content, projection, reconstruction and latent-matching terms; the hourglass frozen). A
step is a function of (``Nets``, blurry, sharp), so the loop, a benchmark and a test call
the same code."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, cast

import torch
import torch.nn.functional as F

from mf2.errors import UsageError
from mf2.models.archs import build, build_restorer
from mf2.models.archs.cgan import TwoPathwayGenerator, init_weights
from mf2.models.archs.gate import gated
from mf2.models.archs.hourglass import StackedHourglass
from mf2.models.config import TrainConfig
from mf2.train.focus import weighted_pixel_loss
from mf2.train.losses import adversarial_d, adversarial_g, content_loss, log_mse_loss, projection_loss

STAGES = ("hg", "cgan")
_PIXEL_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l2": F.mse_loss,
    "l1": F.l1_loss,
    "psnr": log_mse_loss,
}  # LossConfig.hg_pixel


def build_models(cfg: TrainConfig) -> dict[str, torch.nn.Module]:
    """The three networks (and the blur gate when the config has one), initialised from the
    run's seed (mf2.models.archs' registry)."""
    torch.manual_seed(cfg.seed)
    hg = build_restorer(cfg)
    gen = cast(TwoPathwayGenerator, build("cgan_generator", cfg.cgan))
    disc = build("cgan_discriminator", cfg.cgan.disc_channels)
    for m in (gen, disc) if cfg.restorer == "fullres" else (hg, gen, disc):  # fullres: PyTorch's init, zero head
        m.apply(init_weights)
    if isinstance(hg, StackedHourglass) and cfg.hourglass.stem == "newell":
        hg.zero_heads()
    if cfg.cgan.residual:
        gen.decoder.zero_last()
    models = {"hg": hg, "gen": gen, "disc": disc}
    if cfg.gate.features:
        models["gate"] = build("blur_gate", cfg.gate)  # PyTorch's default initialisation
    return models


@torch.no_grad()
def check_layers(cfg: TrainConfig, models: dict[str, torch.nn.Module]) -> None:
    """One pass of every network over a blank image at the config's size, before any pair is
    read: a configuration whose layers do not fit together (an encoder's strides against its
    U-net skips, a decoder that does not come back to the input's size) is then a one-line
    config error rather than a traceback at the first step. Eval mode, so no running
    statistics move and no random number is drawn: the run is the same with or without it."""
    was = {k: m.training for k, m in models.items()}
    x = torch.zeros(1, 3, cfg.image_size, cfg.image_size)
    try:
        for m in models.values():
            m.eval()
        hg_out = models["hg"](x)[-1]
        fake, *_ = models["gen"](x, hg_out if cfg.cgan.condition_on_hg else None, x)
        for name, y in (("restorer", hg_out), ("cGAN", fake)):
            if y.shape != x.shape:
                raise ValueError(f"the {name} makes {tuple(y.shape[1:])} of a {tuple(x.shape[1:])} image")
        models["disc"](x, fake)
        if "gate" in models:
            models["gate"](x)
    except (RuntimeError, ValueError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"config: its layers do not fit together at {cfg.image_size} px ({why})") from None
    finally:
        for k, m in models.items():
            m.train(was[k])


def make_optimisers(cfg: TrainConfig, models: dict[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
    hg, cg = cfg.hg_stage, cfg.cgan_stage
    opt: dict[str, torch.optim.Optimizer] = {
        "hg": torch.optim.Adam(models["hg"].parameters(), lr=hg.lr, betas=tuple(hg.betas)),
        "gen": torch.optim.Adam(models["gen"].parameters(), lr=cg.lr, betas=tuple(cg.betas)),
        "disc": torch.optim.Adam(models["disc"].parameters(), lr=cg.lr, betas=tuple(cg.betas)),
    }
    if "gate" in models:
        opt["gate"] = torch.optim.Adam(models["gate"].parameters(), lr=cfg.gate.lr)
    return opt


@dataclass
class Nets:
    """The networks, their optimisers, their DistributedDataParallel wrappers (several
    processes) and how a step runs them (bf16 autocast on a GPU)."""

    cfg: TrainConfig
    models: dict[str, torch.nn.Module]
    opt: dict[str, torch.optim.Optimizer]
    ddp: dict[str, torch.nn.Module]
    device_type: str
    autocast: bool
    # the stage whose steps train the blur gate: the first whose pairs hold motion-blurred
    # ones (mf2.train.trainer.Trainer: the cGAN's in the paper's recipe, photos for the hourglass)
    gate_stage: str = "hg"

    def gate_ready(self, stage: str) -> bool:
        """Whether a prediction in ``stage`` has a gate that has learned (or is learning)."""
        return "gate" in self.models and STAGES.index(stage) >= STAGES.index(self.gate_stage)

    def net(self, name: str) -> torch.nn.Module:
        """The module a training step calls: its DDP wrapper when there is one."""
        return self.ddp.get(name, self.models[name])

    def amp(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.autocast)

    def train_mode(self, stage: str) -> None:
        """Every network training, but the hourglass (and the gate, when it learned in the
        hourglass stage) frozen (eval, no gradients) for the cGAN."""
        for m in self.models.values():
            m.train()
        if stage == "cgan":
            for name in ("hg", "gate") if self.gate_stage == "hg" else ("hg",):
                if name in self.models:
                    self.models[name].eval()
                    for p in self.models[name].parameters():
                        p.requires_grad_(False)

    def set_lr(self, stage: str, step: int, total: int) -> None:
        """The rate for this step: a function of (step, total) only, so a resumed run follows
        the same schedule."""
        sc = self.cfg.hg_stage if stage == "hg" else self.cfg.cgan_stage
        scale = 1.0 if sc.schedule == "constant" else 0.5 * (1.0 + math.cos(math.pi * step / max(1, total)))
        rates = {"hg": sc.lr} if stage == "hg" else {"gen": sc.lr, "disc": sc.lr}
        if stage == self.gate_stage:
            rates["gate"] = self.cfg.gate.lr
        for name, lr in rates.items():
            for group in self.opt[name].param_groups if name in self.opt else ():
                group["lr"] = lr * scale

    @torch.no_grad()
    def predict(
        self, blurry: torch.Tensor, gate: bool = True, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The hourglass's and the cGAN's restorations (networks left in eval mode), each
        gated as mf2 deblur gates them when the run has a blur gate (and ``gate``);
        ``context``: the neighbours, for an hourglass that sees them."""
        for m in self.models.values():
            m.eval()
        hg_out = self.models["hg"](blurry, context)[-1].float()
        fake, *_ = self.models["gen"](blurry, hg_out if self.cfg.cgan.condition_on_hg else None)
        fake = fake.float()
        if gate and "gate" in self.models:
            logits = self.models["gate"](blurry)
            hg_out, fake = (gated(blurry, y, logits, self.cfg.gate.power) for y in (hg_out, fake))
        return hg_out, fake


def hg_step(n: Nets, blurry: torch.Tensor, sharp: torch.Tensor, extra: dict | None = None) -> dict:
    """``extra``: the batch's other tensors: the neighbours (``context``) for an hourglass that
    sees them; the blur gate, when the run has one, learns from its ``gate_input`` and
    ``moving`` (mf2.train.data) in the same step."""
    hg = n.net("hg")
    with n.amp():
        outs = hg(blurry, (extra or {}).get("context"))
        loss = cast(torch.Tensor, sum(_hg_pixel(n, o.float(), sharp, extra) for o in outs)) / len(outs)
    n.opt["hg"].zero_grad(set_to_none=True)
    loss.backward()
    n.opt["hg"].step()
    out = {"l1": F.l1_loss(outs[-1].detach().float(), sharp)}
    out.update(_gate(n, "hg", extra))
    return out


def _hg_pixel(n: Nets, pred: torch.Tensor, sharp: torch.Tensor, extra: dict | None) -> torch.Tensor:
    """LossConfig.hg_pixel, weighted around the landmarks when the batch carries their map."""
    focus, w = (extra or {}).get("focus"), n.cfg.loss.landmark_weight
    if focus is None or w <= 0:
        return _PIXEL_LOSSES[n.cfg.loss.hg_pixel](pred, sharp)
    return weighted_pixel_loss(n.cfg.loss.hg_pixel, pred, sharp, focus, w)


def _gate(n: Nets, stage: str, extra: dict | None) -> dict:
    """The gate's step, when it learns in ``stage`` and the batch carries its tensors."""
    if n.gate_stage != stage or "gate" not in n.models or not extra or "gate_input" not in extra:
        return {}
    weight = extra.get("gate_weight")
    return {"gate_bce": gate_step(n, extra["gate_input"], extra["moving"], weight)}


def gate_step(n: Nets, images: torch.Tensor, moving: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """One step of the blur gate: real blurry images, 1 where the pair moved (its blurry
    image more than ``gate.moving_db`` from its target). ``weight`` 0 leaves a pair out of
    the loss (a synthetic kernel's, mf2.train.data.PairRef.motion) but not out of the batch:
    every process of a distributed run takes the same step."""
    w = torch.ones_like(moving, dtype=torch.float32) if weight is None else weight.float()
    with n.amp():
        bce = F.binary_cross_entropy_with_logits(n.net("gate")(images).float(), moving.float(), reduction="none")
        loss = (bce * w).sum() / w.sum().clamp(min=1.0)
    n.opt["gate"].zero_grad(set_to_none=True)
    loss.backward()
    n.opt["gate"].step()
    return loss.detach()


def cgan_step(n: Nets, blurry: torch.Tensor, sharp: torch.Tensor, extra: dict | None = None) -> dict:
    w, c = n.cfg.loss, n.cfg.cgan
    gen, disc = n.net("gen"), n.net("disc")
    hg_out = None
    if c.condition_on_hg:
        with torch.no_grad(), n.amp():
            hg_out = n.models["hg"](blurry, (extra or {}).get("context"))[-1].float()
    with n.amp():
        fake, code_bl, rec, code_s = gen(blurry, hg_out, sharp)
        real_logits, _ = disc(blurry, sharp)  # the discriminator first
        fake_logits, _ = disc(blurry, fake.detach())
        loss_d = adversarial_d(real_logits.float(), fake_logits.float())
    n.opt["disc"].zero_grad(set_to_none=True)
    loss_d.backward()
    n.opt["disc"].step()
    with n.amp():
        fake_logits, fake_f = disc(blurry, fake)
        with torch.no_grad():
            _, real_f = disc(blurry, sharp)
        fake32 = fake.float()
        adv = adversarial_g(fake_logits.float())
        content = content_loss(fake32, sharp, w.content_image, w.content_grad)
        proj = projection_loss(fake_f.float(), real_f.float())
        recon = F.l1_loss(rec.float(), sharp) if rec is not None else torch.zeros((), device=sharp.device)
        loss = w.adv * adv + content + w.projection * proj + w.reconstruction * recon
        if c.latent_match > 0 and code_s is not None:
            loss = loss + c.latent_match * F.l1_loss(code_bl.float(), code_s.float().detach())
    n.opt["gen"].zero_grad(set_to_none=True)
    loss.backward()
    n.opt["gen"].step()
    vals = {
        "loss_g": loss,
        "loss_d": loss_d,
        "adv": adv,
        "content": content,
        "projection": proj,
        "reconstruction": recon,
        "l1": F.l1_loss(fake32, sharp),
    }
    return {**{k: v.detach() for k, v in vals.items()}, **_gate(n, "cgan", extra)}


STEP: dict[str, Callable[..., dict]] = {"hg": hg_step, "cgan": cgan_step}
