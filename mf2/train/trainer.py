"""`mf2 train`: step 1 (hourglass, L1) then step 2 (two-pathway cGAN with the hourglass
frozen), with checkpoints that resume exactly: weights, optimiser moments, RNG states and the
position in the epoch's sample order, which is itself a function of (seed, epoch)."""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mf2.atomic import write_atomic, write_bytes_atomic
from mf2.errors import UsageError
from mf2.quality import psnr, ssim
from mf2.models.archs import build
from mf2.models.archs.cgan import TwoPathwayGenerator, init_weights
from mf2.models.archs.hourglass import StackedHourglass
from mf2.models.config import TrainConfig
from mf2.restore.tensors import to_uint8
from mf2.train.checkpoint import Progress, dataset_record, filled_config, rng_state, set_rng_state
from mf2.train.devices import pick_device, plan_cpu, setup_distributed
from mf2.train.data import EpochBatches, PairDataset, epoch_order, split_pairs, training_dataset
from mf2.train.losses import adversarial_d, adversarial_g, content_loss, log_mse_loss, projection_loss

STAGES = ("hg", "cgan")


def build_models(cfg: TrainConfig) -> dict[str, torch.nn.Module]:
    torch.manual_seed(cfg.seed)
    hg = cast(StackedHourglass, build("hourglass", cfg.hourglass))
    gen = cast(TwoPathwayGenerator, build("cgan_generator", cfg.cgan))
    disc = build("cgan_discriminator", cfg.cgan.disc_channels)
    for m in (hg, gen, disc):
        m.apply(init_weights)
    if cfg.hourglass.stem == "newell":
        hg.zero_heads()
    if cfg.cgan.residual:
        gen.decoder.zero_last()
    return {"hg": hg, "gen": gen, "disc": disc}


_PIXEL_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l2": F.mse_loss, "l1": F.l1_loss, "psnr": log_mse_loss}  # LossConfig.hg_pixel


def _labelled(grid: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
    """A white band above equal-width columns, each named: a sample grid read months later
    (or by another lab) says which column is which."""
    import cv2

    w = grid.shape[1] // len(labels)
    band = np.full((18, grid.shape[1], 3), 255, np.uint8)
    for i, name in enumerate(labels):
        cv2.putText(band, name, (i * w + 3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, grid], axis=0)


@dataclass
class StageData:
    """The pairs of one stage, and the record of them each checkpoint keeps."""

    train: PairDataset
    val: PairDataset
    note: str
    record: dict

    @classmethod
    def build(cls, manifests: Sequence[str | Path], cfg: TrainConfig) -> "StageData":
        train, val, how = split_pairs(manifests, cfg.val_fraction, cfg.seed)
        note = f"{len(train)} train / {len(val)} val pairs: {how}"
        if not val:
            note += " (nothing held out: validation uses training pairs)"
        record = {"datasets": [dataset_record(m) for m in manifests], "n_train": len(train), "n_val": len(val),
                  "split": how}
        return cls(training_dataset(train, cfg),
                   PairDataset(val or train[: cfg.batch_size], cfg.image_size, False), note, record)


@dataclass
class StageResult:
    stage: str
    steps: int
    images_per_s: float
    last_losses: dict = field(default_factory=dict)
    val: dict = field(default_factory=dict)


class Trainer:
    def __init__(self, cfg: TrainConfig, manifests: list[str], out: Path, device: str = "auto",
                 echo: Callable[[str], None] | None = None, show_progress: bool | None = None,
                 hg_manifests: list[str] | None = None, threads: int | None = None) -> None:
        """``manifests`` train the cGAN, and the hourglass too unless ``hg_manifests`` are
        given (the paper: the hourglass on synthetic-kernel pairs, the cGAN on VLA pairs).
        ``threads``: torch's intra-op threads (None: the free cores, ``plan_cpu``)."""
        cfg.validate()
        self.cfg, self.out, self.echo = cfg, out, echo or (lambda s: None)
        self.dist = setup_distributed()
        self.device = pick_device(self.dist, device)
        self.cpu = plan_cpu(cfg, self.device, threads)
        torch.set_num_threads(self.cpu.threads)
        self.show_progress = show_progress
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        self.data = {"cgan": StageData.build(manifests, cfg)}
        self.data["hg"] = StageData.build(hg_manifests, cfg) if hg_manifests else self.data["cgan"]
        self.split_note = self.data["cgan"].note if not hg_manifests else \
            f"hg: {self.data['hg'].note}; cgan: {self.data['cgan'].note}"
        self.use("hg")
        # channels_last: 1.3x the images/s of both stages on a CPU (measured, small preset)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.memory_format = fmt
        self.models = {k: m.to(self.device, memory_format=fmt)  # type: ignore[call-overload]  # torch's stub lacks it
                       for k, m in build_models(cfg).items()}
        self.opt = {
            "hg": torch.optim.Adam(self.models["hg"].parameters(), lr=cfg.hg_stage.lr, betas=tuple(cfg.hg_stage.betas)),
            "gen": torch.optim.Adam(self.models["gen"].parameters(), lr=cfg.cgan_stage.lr,
                                    betas=tuple(cfg.cgan_stage.betas)),
            "disc": torch.optim.Adam(self.models["disc"].parameters(), lr=cfg.cgan_stage.lr,
                                     betas=tuple(cfg.cgan_stage.betas)),
        }
        self.ddp = {}
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = {k: DDP(m, device_ids=ids) for k, m in self.models.items()}
        self.autocast = self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(enabled=False)  # bf16 needs no loss scaling; kept for the format
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        (out / "samples").mkdir(parents=True, exist_ok=True)
        self._tb = None

    def use(self, stage: str) -> None:
        """The pairs the next steps train and validate on."""
        self.train_ds, self.val_ds = self.data[stage].train, self.data[stage].val
        self._loaders: dict[str, DataLoader] = {}  # the last stage's workers end with their loaders

    # -- plumbing ---------------------------------------------------------------------------------
    def _m(self, name: str) -> torch.nn.Module:
        return self.ddp.get(name, self.models[name])

    def ckpt_path(self, stage: str) -> Path:
        return self.out / "checkpoints" / f"{stage}_last.pt"

    def _barrier(self) -> None:
        if self.dist.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def save(self, prog: Progress) -> None:
        """Rank 0 writes; every rank waits, so none reads a checkpoint before it exists."""
        if self.dist.main:
            self._write_checkpoint(prog)
        self._barrier()

    def _write_checkpoint(self, prog: Progress) -> None:
        state = {"format": "mf2-train-1", "config": self.cfg.to_dict(), "stage": prog.stage, "step": prog.step,
                 "epoch": prog.epoch, "pos": prog.pos, "done": prog.done, "hg_step": prog.hg_step,
                 "models": {k: m.state_dict() for k, m in self.models.items()},
                 "optim": {k: o.state_dict() for k, o in self.opt.items()},
                 "scaler": self.scaler.state_dict(), "rng": rng_state(),
                 "data": {k: self.data[k].record for k in STAGES}}
        write_atomic(self.ckpt_path(prog.stage), lambda tmp: torch.save(state, tmp))

    def _read(self, stage: str) -> dict | None:
        """A stage's checkpoint, checked: a truncated, foreign or hostile file (weights_only
        refuses pickled code) is one line naming it, never a traceback."""
        p = self.ckpt_path(stage)
        if not p.is_file():
            return None
        try:
            # on the CPU: RNG states must stay CPU ByteTensors (set_rng_state refuses CUDA ones);
            # load_state_dict copies weights and optimiser state onto the models' device
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:
            why = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise UsageError(f"{p}: not a loadable checkpoint ({type(e).__name__}: {why}); delete it to "
                             f"start the {stage} stage over") from None
        if not isinstance(state, dict) or state.get("format") != "mf2-train-1" or \
                not {"config", "models", "optim", "step"} <= set(state):
            raise UsageError(f"{p}: not an mf2 training checkpoint")
        if filled_config(state["config"]) != self.cfg.to_dict():
            raise UsageError(f"{p}: made with another configuration; use another --out or the same --config")
        was = state.get("data", {}).get(stage)
        now = self.data[stage].record
        if was is not None and [d["pairs_sha256"] for d in was["datasets"]] != \
                [d["pairs_sha256"] for d in now["datasets"]]:
            flag = "--hg-pairs" if stage == "hg" else "--pairs"
            raise UsageError(f"{p}: the {stage} stage was trained on other pairs "
                             f"({', '.join(d['path'] for d in was['datasets'])}); give the same {flag} or use "
                             f"another --out")
        return state

    def peek(self, stage: str) -> Progress | None:
        """Where a stage stands, without touching the models."""
        state = self._read(stage)
        if state is None:
            return None
        return Progress(stage, state["step"], state.get("epoch", 0), state.get("pos", 0), bool(state.get("done")),
                        state.get("hg_step", 0))

    def load(self, stage: str) -> Progress | None:
        state = self._read(stage)
        if state is None:
            return None
        p = self.ckpt_path(stage)
        try:
            for k, m in self.models.items():
                m.load_state_dict(state["models"][k])
            for k, o in self.opt.items():
                o.load_state_dict(state["optim"][k])
            self.scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"])
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            why = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise UsageError(f"{p}: does not fit this model ({type(e).__name__}: {why})") from None
        return Progress(stage, state["step"], state["epoch"], state["pos"], state["done"], state.get("hg_step", 0))

    def target_steps(self, stage: str, max_steps: int | None) -> int:
        sc = self.cfg.hg_stage if stage == "hg" else self.cfg.cgan_stage
        return max_steps or sc.max_steps or sc.epochs * self.steps_per_epoch()

    def preflight(self, stage: str, max_steps: int | None, restart_cgan: bool) -> None:
        """Before any step: would this run leave the cGAN trained on an hourglass that no longer
        exists? Refuse, naming the ways on; or, with ``restart_cgan``, set the old cGAN aside
        (kept as cgan_hg<step>.pt) so the cGAN retrains on the hourglass as it will be."""
        hg, cgan = self.peek("hg"), self.peek("cgan")
        if cgan is None:
            return
        hg_final = hg.step if hg is not None else 0
        if stage in ("hg", "all") and (hg is None or not hg.done or (max_steps is not None and hg.step < max_steps)):
            hg_final = self.target_steps("hg", max_steps)
        if cgan.hg_step == hg_final:
            return
        kept = self.ckpt_path("cgan").with_name(f"cgan_hg{cgan.hg_step}.pt")
        if restart_cgan:
            if self.dist.main:
                os.replace(self.ckpt_path("cgan"), kept)
            self._barrier()
            self.echo(f"cgan: retraining on the hourglass at step {hg_final}; the cGAN trained on step "
                      f"{cgan.hg_step} is kept as {kept}")
            return
        now = f"is at step {hg.step}" if hg is not None else "is missing"
        plan = f" and this run would train it to step {hg_final}" if hg is None or hg_final != hg.step else ""
        raise UsageError(f"{self.out}: the cGAN was trained on the hourglass at step {cgan.hg_step}, which {now}"
                         f"{plan}; add --restart-cgan to retrain the cGAN on it (the old cGAN is kept), "
                         f"or use a new --out")

    def _log(self, row: dict) -> None:
        if not self.dist.main:
            return
        path = self.out / "metrics.csv"
        new = not path.exists()
        fields = ["time", "stage", "kind", "step", "epoch", "name", "value"]
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            if new:
                w.writeheader()
            for k, v in row["values"].items():
                w.writerow({"time": round(time.time(), 3), "stage": row["stage"], "kind": row["kind"],
                            "step": row["step"], "epoch": row["epoch"], "name": k, "value": v})
        tb = self._tensorboard()
        if tb is not None:
            for k, v in row["values"].items():
                tb.add_scalar(f"{row['stage']}/{row['kind']}/{k}", v, row["step"])

    def _hparams(self, stage: str, val: dict) -> None:
        """The run's settings beside its final validation scores, in TensorBoard's HParams tab:
        runs of a sweep compare there. Scalars only (TensorBoard's rule), nested keys dotted."""
        tb = self._tensorboard() if self.dist.main else None
        if tb is None:
            return
        flat: dict = {}

        def walk(prefix: str, v) -> None:
            if isinstance(v, dict):
                for k, x in v.items():
                    walk(f"{prefix}{k}.", x)
            elif isinstance(v, (bool, int, float, str)):
                flat[prefix[:-1]] = v

        walk("", self.cfg.to_dict())
        flat["stage"] = stage
        tb.add_hparams(flat, {f"hparam/{stage}_{k}": float(v) for k, v in val.items()}, run_name=f"hparams_{stage}")

    def _tensorboard(self):
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out / "tensorboard"))
            except Exception:  # tensorboard not installed: metrics.csv only
                self._tb = False
        return self._tb or None

    def _loader(self, kind: str) -> DataLoader:
        """The stage's train or val loader, made once: its workers persist across epochs. Its
        own generator: making a loader must not draw from the global RNG (exact resume)."""
        if kind not in self._loaders:
            w = self.cpu.loader_workers
            common: dict[str, Any] = dict(num_workers=w, pin_memory=self.device.type == "cuda", persistent_workers=w > 0,
                                          generator=torch.Generator().manual_seed(self.cfg.seed))
            self._loaders[kind] = (DataLoader(self.train_ds, batch_sampler=EpochBatches(), **common) if kind == "train"
                                   else DataLoader(self.val_ds, batch_size=self.cfg.batch_size, **common))
        return self._loaders[kind]

    def _epoch_batches(self, order: list[int], start: int, epoch: int) -> int:
        """Sets the train loader's batches for this epoch from ``start``; returns the epoch's count."""
        bs = self.cfg.batch_size
        batches = [[(epoch, i) for i in order[j:j + bs]] for j in range(0, len(order), bs)]
        if len(batches) > 1 and len(batches[-1]) < bs:
            batches = batches[:-1]  # equal batches: batch norm statistics stay comparable
        cast(EpochBatches, self._loader("train").batch_sampler).batches = batches[start:]
        return len(batches)

    def steps_per_epoch(self) -> int:
        n = len(epoch_order(len(self.train_ds), self.cfg.seed, 0, self.dist.rank, self.dist.world))
        return max(1, n // self.cfg.batch_size) if n >= self.cfg.batch_size else 1

    def _set_lr(self, stage: str, step: int, total: int) -> None:
        """The rate for this step: a function of (step, total) only, so a resumed run follows
        the same schedule."""
        sc = self.cfg.hg_stage if stage == "hg" else self.cfg.cgan_stage
        lr = sc.lr if sc.schedule == "constant" else 0.5 * sc.lr * (1.0 + math.cos(math.pi * step / max(1, total)))
        for name in (("hg",) if stage == "hg" else ("gen", "disc")):
            for group in self.opt[name].param_groups:
                group["lr"] = lr

    # -- steps ------------------------------------------------------------------------------------
    def _hg_step(self, blurry: torch.Tensor, sharp: torch.Tensor) -> dict:
        hg = self._m("hg")
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            outs = hg(blurry)
            pixel = _PIXEL_LOSSES[self.cfg.loss.hg_pixel]
            loss = cast(torch.Tensor, sum(pixel(o.float(), sharp) for o in outs)) / len(outs)
        self.opt["hg"].zero_grad(set_to_none=True)
        loss.backward()
        self.opt["hg"].step()
        return {"l1": F.l1_loss(outs[-1].detach().float(), sharp)}

    def _cgan_step(self, blurry: torch.Tensor, sharp: torch.Tensor) -> dict:
        w = self.cfg.loss
        gen, disc = self._m("gen"), self._m("disc")
        hg_out = None
        if self.cfg.cgan.condition_on_hg:
            with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                hg_out = self.models["hg"](blurry)[-1].float()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            fake, code_bl, rec, code_s = gen(blurry, hg_out, sharp)
            # discriminator
            real_logits, _ = disc(blurry, sharp)
            fake_logits, _ = disc(blurry, fake.detach())
            loss_d = adversarial_d(real_logits.float(), fake_logits.float())
        self.opt["disc"].zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt["disc"].step()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            fake_logits, fake_f = disc(blurry, fake)
            with torch.no_grad():
                _, real_f = disc(blurry, sharp)
            fake32 = fake.float()
            adv = adversarial_g(fake_logits.float())
            content = content_loss(fake32, sharp, w.content_image, w.content_grad)
            proj = projection_loss(fake_f.float(), real_f.float())
            recon = F.l1_loss(rec.float(), sharp) if rec is not None else torch.zeros((), device=sharp.device)
            loss = w.adv * adv + content + w.projection * proj + w.reconstruction * recon
            if self.cfg.cgan.latent_match > 0 and code_s is not None:
                loss = loss + self.cfg.cgan.latent_match * F.l1_loss(code_bl.float(), code_s.float().detach())
        self.opt["gen"].zero_grad(set_to_none=True)
        loss.backward()
        self.opt["gen"].step()
        vals = {"loss_g": loss, "loss_d": loss_d, "adv": adv, "content": content, "projection": proj,
                "reconstruction": recon, "l1": F.l1_loss(fake32, sharp)}
        return {k: v.detach() for k, v in vals.items()}

    # -- validation and samples ----------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, blurry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for m in self.models.values():
            m.eval()
        hg_out = self.models["hg"](blurry)[-1].float()
        fake, *_ = self.models["gen"](blurry, hg_out if self.cfg.cgan.condition_on_hg else None)
        return hg_out, fake.float()

    def validate(self, stage: str, prog: Progress) -> dict:
        loader = self._loader("val")
        scores: dict[str, list[float]] = {"ssim": [], "psnr": [], "ssim_blurred": []}
        grid: list[np.ndarray] = []
        for b, batch in enumerate(loader):
            if b >= self.cfg.val_max_batches:
                break
            blurry, sharp = batch["blurry"].to(self.device), batch["sharp"].to(self.device)
            hg_out, fake = self.predict(blurry)
            out = hg_out if stage == "hg" else fake
            for i in range(blurry.shape[0]):
                o, s, bl = to_uint8(out[i]), to_uint8(sharp[i]), to_uint8(blurry[i])
                scores["ssim"].append(ssim(o, s))
                p = psnr(o, s)
                scores["psnr"].append(p if math.isfinite(p) else 100.0)
                scores["ssim_blurred"].append(ssim(bl, s))
                if len(grid) < 4:
                    grid.append(np.concatenate([bl, to_uint8(hg_out[i]), to_uint8(fake[i]), s], axis=1))
        for m in self.models.values():
            m.train()
        if stage == "cgan":
            self.models["hg"].eval()
        res = {k: float(np.mean(v)) for k, v in scores.items() if v}
        if self.dist.main and grid:
            import cv2

            rgb = _labelled(np.concatenate(grid, axis=0), ("blurry", "hourglass", "cGAN", "sharp"))
            img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            tb = self._tensorboard()
            if tb is not None:
                tb.add_image(f"{stage}/samples", rgb, prog.step, dataformats="HWC")
            write_bytes_atomic(self.out / "samples" / f"{stage}_epoch{prog.epoch:03d}_step{prog.step:07d}.png",
                               cv2.imencode(".png", img)[1].tobytes())
        self._log({"stage": stage, "kind": "val", "step": prog.step, "epoch": prog.epoch, "values": res})
        return res

    # -- the loop -----------------------------------------------------------------------------------
    def _progress(self, stage: str) -> Progress:
        """Where the stage stands (a new Progress when it has not started); the cGAN's must
        have started on the hourglass as it is now."""
        hg_step = 0
        if stage == "cgan":
            hg_prog = self.load("hg")
            if hg_prog is None:
                raise UsageError(f"--stage cgan: no trained hourglass in {self.ckpt_path('hg')} (run --stage hg first)")
            hg_step = hg_prog.step
        prog = self.load(stage) or Progress(stage, hg_step=hg_step)
        if stage == "cgan" and prog.hg_step != hg_step:  # preflight() catches this before any work
            raise UsageError(f"{self.ckpt_path('cgan')}: the cGAN started on the hourglass at step {prog.hg_step}, "
                             f"which has since been trained to step {hg_step}; add --restart-cgan")
        return prog

    def run_stage(self, stage: str, max_steps: int | None = None) -> StageResult:
        from tqdm import tqdm

        self.use(stage)
        prog = self._progress(stage)
        if prog.done and (max_steps is None or prog.step >= max_steps):
            self.echo(f"{stage}: already trained ({prog.step} steps)")
            return StageResult(stage, prog.step, 0.0)
        total = self.target_steps(stage, max_steps)
        for m in self.models.values():
            m.train()
        if stage == "cgan":
            self.models["hg"].eval()
            for p in self.models["hg"].parameters():
                p.requires_grad_(False)
        step_fn = self._hg_step if stage == "hg" else self._cgan_step
        # None lets tqdm decide (a bar on a terminal only); other ranks never draw one
        disable = True if not self.dist.main else (None if self.show_progress is None else not self.show_progress)
        bar = tqdm(total=total, initial=prog.step, desc=stage, unit="step", disable=disable)
        images, t0, losses, val = 0, time.perf_counter(), {}, {}
        while prog.step < total:
            order = epoch_order(len(self.train_ds), self.cfg.seed, prog.epoch, self.dist.rank, self.dist.world)
            n_batches = self._epoch_batches(order, prog.pos, prog.epoch)
            for batch in self._loader("train"):
                self._set_lr(stage, prog.step, total)
                blurry = batch["blurry"].to(self.device, non_blocking=True, memory_format=self.memory_format)
                sharp = batch["sharp"].to(self.device, non_blocking=True, memory_format=self.memory_format)
                losses = step_fn(blurry, sharp)
                images += blurry.shape[0] * self.dist.world
                prog.step += 1
                prog.pos += 1
                bar.update(1)
                if prog.step % self.cfg.log_every == 0 or prog.step == total:
                    losses = {k: float(v) for k, v in losses.items()}  # the only host sync of a step
                    bar.set_postfix({k: f"{v:.3f}" for k, v in list(losses.items())[:3]})
                    self._log({"stage": stage, "kind": "train", "step": prog.step, "epoch": prog.epoch,
                               "values": {**losses, "images_per_s": images / max(1e-9, time.perf_counter() - t0)}})
                if prog.step % self.cfg.checkpoint_every == 0 and prog.step < total:
                    self.save(prog)
                if prog.step >= total:
                    break
            if prog.pos >= n_batches:  # the epoch is complete
                val = self.validate(stage, prog)
                prog.epoch += 1
                prog.pos = 0
        bar.close()
        prog.done = True
        if not val:
            val = self.validate(stage, prog)
        self.save(prog)
        rate = images / max(1e-9, time.perf_counter() - t0)
        self._hparams(stage, val)
        return StageResult(stage, prog.step, rate, {k: float(v) for k, v in losses.items()}, val)

    def export(self, stages: tuple[str, ...] = STAGES) -> Path:
        """The prediction checkpoint that `mf2 deblur` and `mf2 evaluate` load with
        weights_only=True: the hourglass, and after the cGAN stage G_bl's encoder and the
        shared decoder. ``stages`` says which it holds (the hourglass alone is a model too)."""
        path = self.out / "model.pt"
        if self.dist.main:
            state = {"format": "mf2-deblur-1", "config": self.cfg.to_dict(), "hg": self.models["hg"].state_dict(),
                     "stages": list(stages), "data": {k: self.data[k].record for k in stages}}
            if "cgan" in stages:
                gen = self.models["gen"]
                state.update(enc_bl=gen.enc_bl.state_dict(), decoder=gen.decoder.state_dict())
            write_atomic(path, lambda tmp: torch.save(state, tmp))
        return path


def train(manifests: list[str], out: Path, cfg: TrainConfig, stage: str = "all", max_steps: int | None = None,
          device: str = "auto", echo: Callable[[str], None] | None = None,
          show_progress: bool | None = None, restart_cgan: bool = False,
          hg_manifests: list[str] | None = None, threads: int | None = None) -> dict[str, StageResult]:
    if stage not in ("hg", "cgan", "all"):
        raise UsageError(f"--stage {stage!r}: expected hg, cgan or all")
    out.mkdir(parents=True, exist_ok=True)
    resolved = out / "config.yaml"
    import yaml

    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    if resolved.is_file() and resolved.read_text() != text and any((out / "checkpoints").glob("*.pt")):
        raise UsageError(f"--out {out}: holds a run with another configuration (see {resolved})")
    write_bytes_atomic(resolved, text.encode())
    tr = Trainer(cfg, manifests, out, device, echo, show_progress, hg_manifests, threads)
    (echo or (lambda s: None))(f"mf2 train: {tr.split_note}; device {tr.device}; world {tr.dist.world}; "
                               f"{tr.cpu.line()}")
    results = {}
    try:
        tr.preflight(stage, max_steps, restart_cgan)
        for st in (STAGES if stage == "all" else (stage,)):
            results[st] = tr.run_stage(st, max_steps)
        if "cgan" in results:
            tr.export()
        elif "hg" in results:  # the hourglass alone is a complete deblurrer
            tr.export(("hg",))
    finally:
        if tr.dist.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    write_bytes_atomic(out / "train_summary.json", json.dumps(
        {k: {"steps": r.steps, "images_per_s": round(r.images_per_s, 2), "last_losses": r.last_losses, "val": r.val,
             "data": tr.data[k].record}
         for k, r in results.items()}, indent=2).encode())
    return results


__all__ = ["Trainer", "train", "build_models"]
