"""The training loop: each stage's epochs of steps (mf2.train.steps through the Trainer),
logging, validation with sample grids, checkpoints, then the exported model. Every decision
that a resumed run must repeat (the sample order, the rate) is a function of the seed, the
epoch and the step, so stopping anywhere and starting again gives the same run."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np

from mf2.atomic import write_bytes_atomic
from mf2.errors import UsageError
from mf2.models.config import TrainConfig
from mf2.quality import psnr, ssim
from mf2.restore.tensors import to_uint8
from mf2.train.checkpoint import Progress
from mf2.train.data import GATE_KEYS, epoch_order, random_patches
from mf2.train.steps import STAGES
from mf2.train.trainer import StageResult, Trainer


def validate(tr: Trainer, stage: str, prog: Progress) -> dict:
    """SSIM and PSNR of the stage's restorations on the held-out pairs (and Blurred's SSIM),
    logged, with a sample grid of the first four pairs."""
    scores: dict[str, list[float]] = {"ssim": [], "psnr": [], "ssim_blurred": []}
    grid: list[np.ndarray] = []
    for b, batch in enumerate(tr.loader("val")):
        if b >= tr.cfg.val_max_batches:
            break
        blurry, sharp = batch["blurry"].to(tr.device), batch["sharp"].to(tr.device)
        context = batch["context"].to(tr.device) if "context" in batch else None
        hg_out, fake = tr.nets.predict(blurry, tr.nets.gate_ready(stage), context)
        out = hg_out if stage == "hg" else fake
        for i in range(blurry.shape[0]):
            o, s, bl = to_uint8(out[i]), to_uint8(sharp[i]), to_uint8(blurry[i])
            scores["ssim"].append(ssim(o, s))
            p = psnr(o, s)
            scores["psnr"].append(p if math.isfinite(p) else 100.0)
            scores["ssim_blurred"].append(ssim(bl, s))
            if len(grid) < 4:
                grid.append(np.concatenate([bl, to_uint8(hg_out[i]), to_uint8(fake[i]), s], axis=1))
    tr.nets.train_mode(stage)
    res = {k: float(np.mean(v)) for k, v in scores.items() if v}
    tr.log.samples(stage, prog.step, prog.epoch, grid)
    tr.log.row(stage, "val", prog.step, prog.epoch, res)
    return res


def _on_device(tr: Trainer, stage: str, step: int, batch: dict, gate_batch: dict) -> tuple:
    """(blurry, sharp, extra) of one training batch on the run's device: ``extra`` holds the
    blur gate's tensors, the neighbours (``context``, hourglass.neighbours) and the landmark
    map of the hourglass's loss (``focus``, LossConfig.landmark_weight); the hourglass stage
    with ``hg_patch`` cuts the same square of every image."""
    fmt = tr.memory_format
    blurry = batch["blurry"].to(tr.device, non_blocking=True, memory_format=fmt)
    sharp = batch["sharp"].to(tr.device, non_blocking=True, memory_format=fmt)
    extra = {k: gate_batch[k].to(tr.device) for k in GATE_KEYS if k in gate_batch}
    for k in ("context", "focus"):
        if k in batch:
            extra[k] = batch[k].to(tr.device, non_blocking=True, memory_format=fmt)
    if stage == "hg" and tr.cfg.hg_patch:
        cut = [k for k in ("context", "focus") if k in extra]
        blurry, sharp, *more = random_patches(
            blurry, sharp, tr.cfg.hg_patch, tr.cfg.seed, step, *(extra[k] for k in cut)
        )
        extra.update(zip(cut, more))
    return blurry, sharp, extra


def run_stage(tr: Trainer, stage: str, max_steps: int | None = None) -> StageResult:
    from tqdm import tqdm

    tr.use(stage)
    prog = tr.progress(stage)
    if prog.done and (max_steps is None or prog.step >= max_steps):
        tr.echo(f"{stage}: already trained ({prog.step} steps)")
        return StageResult(stage, prog.step, 0.0)
    total = tr.target_steps(stage, max_steps)
    tr.nets.train_mode(stage)
    # None lets tqdm decide (a bar on a terminal only); other ranks never draw one
    disable = True if not tr.dist.main else (None if tr.show_progress is None else not tr.show_progress)
    bar = tqdm(total=total, initial=prog.step, desc=stage, unit="step", disable=disable)
    images, t0, losses, val = 0, time.perf_counter(), {}, {}
    gate_batches = tr.gate_batches(stage, prog.step, total)  # the gate's own pairs (--gate-pairs)
    while prog.step < total:
        order = epoch_order(len(tr.train_ds), tr.cfg.seed, prog.epoch, tr.dist.rank, tr.dist.world)
        n_batches = tr.epoch_batches(order, prog.pos, prog.epoch)
        for batch in tr.loader("train"):
            tr.nets.set_lr(stage, prog.step, total)
            gate_batch = batch if gate_batches is None else next(gate_batches)
            blurry, sharp, extra = _on_device(tr, stage, prog.step, batch, gate_batch)
            losses = tr.step(stage, blurry, sharp, extra)
            images += blurry.shape[0] * tr.dist.world
            prog.step += 1
            prog.pos += 1
            bar.update(1)
            if prog.step % tr.cfg.log_every == 0 or prog.step == total:
                losses = {k: float(v) for k, v in losses.items()}  # the only host sync of a step
                bar.set_postfix({k: f"{v:.3f}" for k, v in list(losses.items())[:3]})
                rate = images / max(1e-9, time.perf_counter() - t0)
                tr.log.row(stage, "train", prog.step, prog.epoch, {**losses, "images_per_s": rate})
            if prog.step % tr.cfg.checkpoint_every == 0 and prog.step < total:
                tr.save(prog)
            if prog.step >= total:
                break
        if prog.pos >= n_batches:  # the epoch is complete
            val = validate(tr, stage, prog)
            prog.epoch += 1
            prog.pos = 0
    bar.close()
    prog.done = True
    if not val:
        val = validate(tr, stage, prog)
    tr.save(prog)
    rate = images / max(1e-9, time.perf_counter() - t0)
    tr.log.hparams(stage, val)
    return StageResult(stage, prog.step, rate, {k: float(v) for k, v in losses.items()}, val)


def _claim_out(out: Path, cfg: TrainConfig) -> None:
    """OUT/config.yaml: the resolved configuration; a folder holding checkpoints of another
    configuration is refused."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    resolved = out / "config.yaml"
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    if resolved.is_file() and resolved.read_text() != text and any((out / "checkpoints").glob("*.pt")):
        raise UsageError(f"--out {out}: holds a run with another configuration (see {resolved})")
    write_bytes_atomic(resolved, text.encode())


def train(
    manifests: list[str],
    out: Path,
    cfg: TrainConfig,
    stage: str = "all",
    max_steps: int | None = None,
    device: str = "auto",
    echo: Callable[[str], None] | None = None,
    show_progress: bool | None = None,
    restart_cgan: bool = False,
    hg_manifests: list[str] | None = None,
    threads: int | None = None,
    gate_manifests: list[str] | None = None,
) -> dict[str, StageResult]:
    """Train ``stage`` (hg, cgan or all) into ``out``, resuming what is there, and export
    OUT/model.pt (the hourglass alone after --stage hg). ``gate_manifests``: the blur gate's
    own pairs (mf2.train.trainer.Trainer)."""
    if stage not in ("hg", "cgan", "all"):
        raise UsageError(f"--stage {stage!r}: expected hg, cgan or all")
    _claim_out(out, cfg)
    tr = Trainer(cfg, manifests, out, device, echo, show_progress, hg_manifests, threads, gate_manifests)
    tr.echo(f"mf2 train: {tr.split_note}; device {tr.device}; world {tr.dist.world}; {tr.cpu.line()}")
    results = {}
    try:
        tr.preflight(stage, max_steps, restart_cgan)
        for st in STAGES if stage == "all" else (stage,):
            results[st] = run_stage(tr, st, max_steps)
        if "cgan" in results:
            tr.export()
        elif "hg" in results:  # the hourglass alone is a complete deblurrer
            tr.export(("hg",))
    finally:
        tr.log.close()
        if tr.dist.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    write_bytes_atomic(
        out / "train_summary.json",
        json.dumps(
            {
                k: {
                    "steps": r.steps,
                    "images_per_s": round(r.images_per_s, 2),
                    "last_losses": r.last_losses,
                    "val": r.val,
                    "data": tr.data[k].record,
                }
                for k, r in results.items()
            },
            indent=2,
        ).encode(),
    )
    return results


__all__ = ["run_stage", "train", "validate"]
