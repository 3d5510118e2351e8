"""`mf2 train`'s state: the device and processes, the pairs of each stage and their
loaders, the networks (mf2.train.steps.Nets) and the checkpoints of each stage (written and
read through mf2.train.checkpoint). The loop that drives it is mf2.train.loop; a stage's
step is mf2.train.steps; what a run logs is mf2.train.runlog."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, cast

import torch
from torch.utils.data import DataLoader

from mf2.atomic import write_atomic
from mf2.errors import UsageError
from mf2.models.archs.cgan import TwoPathwayGenerator
from mf2.models.config import GateConfig, TrainConfig
from mf2.train.checkpoint import (
    Progress,
    checkpoint_state,
    dataset_record,
    progress_of,
    read_checkpoint,
    restore,
    write_checkpoint,
)
from mf2.train.data import EpochBatches, GateBatches, PairDataset, epoch_order, split_pairs, training_dataset
from mf2.train.devices import channels_last_hazard, pick_device, plan_cpu, setup_distributed
from mf2.train.runlog import RunLog
from mf2.train.steps import STAGES, STEP, Nets, build_models, check_layers, make_optimisers


@dataclass
class StageData:
    """The pairs of one stage, and the record of them each checkpoint keeps."""

    train: PairDataset
    val: PairDataset
    note: str
    record: dict

    @classmethod
    def build(cls, manifests: Sequence[str | Path], cfg: TrainConfig, gate: bool = True) -> "StageData":
        train, val, how = split_pairs(manifests, cfg.val_fraction, cfg.seed)
        note = f"{len(train)} train / {len(val)} val pairs: {how}"
        if not val:
            note += " (nothing held out: validation uses training pairs)"
        if cfg.hourglass.neighbours:  # a pair without them trains on its blurry image in their place
            beside = sum(p.prev is not None or p.next is not None for p in train)
            note += f"; {beside} of {len(train)} training pairs with neighbours (hourglass.neighbours)"
            if not beside and any(p.motion for p in train):  # video pairs made without them
                note += ": make video pairs with mf2 simulate --neighbours for the model to learn from them"
        record = {
            "datasets": [dataset_record(m) for m in manifests],
            "n_train": len(train),
            "n_val": len(val),
            "split": how,
        }
        return cls(
            training_dataset(train, cfg, gate),
            PairDataset(val or train[: cfg.batch_size], cfg.image_size, False, neighbours=cfg.hourglass.neighbours),
            note,
            record,
        )


def _gate_data(manifests: list[str], cfg: TrainConfig) -> tuple[PairDataset, dict]:
    """The blur gate's own pairs (``--gate-pairs``): the motion-blurred pairs of their train
    side (a synthetic kernel says nothing of motion), and their record."""
    train, _, how = split_pairs(manifests, cfg.val_fraction, cfg.seed)
    motion = [p for p in train if p.motion]
    if not motion:
        raise UsageError(
            f"--gate-pairs {', '.join(manifests)}: no motion-blurred training pairs (synthetic kernels only)"
        )
    record = {"datasets": [dataset_record(m) for m in manifests], "n_train": len(motion), "split": how}
    return training_dataset(motion, cfg, gate_only=True), record


@dataclass
class StageResult:
    stage: str
    steps: int
    images_per_s: float
    last_losses: dict = field(default_factory=dict)
    val: dict = field(default_factory=dict)


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        manifests: list[str],
        out: Path,
        device: str = "auto",
        echo: Callable[[str], None] | None = None,
        show_progress: bool | None = None,
        hg_manifests: list[str] | None = None,
        threads: int | None = None,
        gate_manifests: list[str] | None = None,
    ) -> None:
        """``manifests`` train the cGAN, and the hourglass too unless ``hg_manifests`` are
        given (the paper: the hourglass on synthetic-kernel pairs, the cGAN on VLA pairs).
        ``threads``: torch's intra-op threads (None: the free cores, ``plan_cpu``).
        ``gate_manifests``: the blur gate's own pairs (it learns in the first stage, beside
        the hourglass, from their motion-blurred training pairs)."""
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
        self.gate_ds: PairDataset | None = None
        self.cfg, self.data, gate_stage = self._stage_data(manifests, hg_manifests, cfg, gate_manifests)
        cfg = self.cfg
        self.split_note = (
            self.data["cgan"].note
            if not hg_manifests
            else f"hg: {self.data['hg'].note}; cgan: {self.data['cgan'].note}"
        )
        if self.gate_ds is not None:
            self.split_note += f"; blur gate: {len(self.gate_ds)} motion-blurred train pairs of its own"
        self.use("hg")
        models = self._build(cfg)
        ddp: dict[str, torch.nn.Module] = {}
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            ddp = {k: DDP(m, device_ids=ids) for k, m in models.items()}
        self.nets = Nets(
            cfg, models, make_optimisers(cfg, models), ddp, self.device.type, self.device.type == "cuda", gate_stage
        )
        self.scaler = torch.amp.GradScaler(enabled=False)  # bf16 needs no loss scaling; kept for the format
        self.log = RunLog(out, cfg, self.dist.main)
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        (out / "samples").mkdir(parents=True, exist_ok=True)

    def _build(self, cfg: TrainConfig) -> dict[str, torch.nn.Module]:
        """The networks, checked (one pass over a blank image), in this run's memory format
        on its device."""
        built = build_models(cfg)
        check_layers(cfg, built)
        hazard = channels_last_hazard(built, self.device) if cfg.channels_last else None
        if hazard:
            self.echo(
                f"channels_last off for this run: {hazard} would crash its backward pass on this CPU "
                "in channels-last memory (oneDNN issue 6035); training in the plain format"
            )
        # channels_last: 1.3x the images/s of both stages on a CPU (measured, small preset)
        fmt = torch.channels_last if cfg.channels_last and not hazard else torch.contiguous_format
        self.memory_format = fmt
        return {
            k: m.to(self.device, memory_format=fmt)  # type: ignore[call-overload]  # torch's stub lacks it
            for k, m in built.items()
        }

    def _stage_data(
        self, manifests: list[str], hg_manifests: list[str] | None, cfg: TrainConfig, gate_manifests: list[str] | None
    ) -> tuple[TrainConfig, dict[str, StageData], str]:
        """Each stage's pairs, and the stage the blur gate learns in: the first whose pairs
        hold motion-blurred ones (the first stage, with pairs of its own). Without any, the
        run has no gate (the config says so)."""
        own = bool(gate_manifests) and cfg.gate.features > 0
        data = {"cgan": StageData.build(manifests, cfg, gate=not own)}
        data["hg"] = StageData.build(hg_manifests, cfg, gate=not own) if hg_manifests else data["cgan"]
        if own:
            self.gate_ds, record = _gate_data(list(gate_manifests or ()), cfg)
            data["hg"] = replace(data["hg"], record={**data["hg"].record, "gate": record})
            return cfg, data, STAGES[0]
        if gate_manifests:
            self.echo("--gate-pairs: this configuration has no blur gate (gate.features 0); they are not used")
        gate_stage = next((st for st in STAGES if any(p.motion for p in data[st].train.pairs)), None)
        if cfg.gate.features and gate_stage is None:
            self.echo("the blur gate is left out: no training pair was blurred by motion (synthetic kernels only)")
            return self._stage_data(manifests, hg_manifests, replace(cfg, gate=GateConfig()), None)
        return cfg, data, gate_stage or "hg"

    @property
    def models(self) -> dict[str, torch.nn.Module]:
        return self.nets.models

    @property
    def opt(self) -> dict[str, torch.optim.Optimizer]:
        return self.nets.opt

    def step(self, stage: str, blurry: torch.Tensor, sharp: torch.Tensor, extra: dict | None = None) -> dict:
        """One optimisation step of ``stage`` on a batch (mf2.train.steps); ``extra``: the
        batch's other tensors (the blur gate's input and labels), on this device."""
        return STEP[stage](self.nets, blurry, sharp, extra)

    def predict(self, blurry: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.nets.predict(blurry, context=context)

    def use(self, stage: str) -> None:
        """The pairs the next steps train and validate on. Only the hourglass's loss reads the
        landmark map (LossConfig.landmark_weight), so another stage's batches come without it,
        also when the stages share one dataset (the map draws no random numbers)."""
        self.train_ds, self.val_ds = self.data[stage].train, self.data[stage].val
        self.train_ds.focus_sigma = self.cfg.loss.focus_sigma if stage == "hg" else 0.0
        self._loaders: dict[str, DataLoader] = {}  # the last stage's workers end with their loaders

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
        state = checkpoint_state(self.cfg, prog, self.nets, self.scaler, {k: self.data[k].record for k in STAGES})
        write_checkpoint(self.ckpt_path(prog.stage), state)

    def _read(self, stage: str) -> dict | None:
        return read_checkpoint(self.ckpt_path(stage), self.cfg, stage, self.data[stage].record)

    def peek(self, stage: str) -> Progress | None:
        """Where a stage stands, without touching the models."""
        state = self._read(stage)
        return None if state is None else progress_of(state, stage)

    def load(self, stage: str) -> Progress | None:
        """The stage's checkpoint restored into the networks (None: it has not started)."""
        state = self._read(stage)
        if state is None:
            return None
        restore(state, self.ckpt_path(stage), self.nets, self.scaler)
        return progress_of(state, stage)

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
            self.echo(
                f"cgan: retraining on the hourglass at step {hg_final}; the cGAN trained on step "
                f"{cgan.hg_step} is kept as {kept}"
            )
            return
        now = f"is at step {hg.step}" if hg is not None else "is missing"
        plan = f" and this run would train it to step {hg_final}" if hg is None or hg_final != hg.step else ""
        raise UsageError(
            f"{self.out}: the cGAN was trained on the hourglass at step {cgan.hg_step}, which {now}"
            f"{plan}; add --restart-cgan to retrain the cGAN on it (the old cGAN is kept), "
            f"or use a new --out"
        )

    def loader(self, kind: str) -> DataLoader:
        """The stage's train or val loader, made once: its workers persist across epochs. Its
        own generator: making a loader must not draw from the global RNG (exact resume)."""
        if kind not in self._loaders:
            w = self.cpu.loader_workers
            common: dict[str, Any] = dict(
                num_workers=w,
                pin_memory=self.device.type == "cuda",
                persistent_workers=w > 0,
                generator=torch.Generator().manual_seed(self.cfg.seed),
            )
            self._loaders[kind] = (
                DataLoader(self.train_ds, batch_sampler=EpochBatches(), **common)
                if kind == "train"
                else DataLoader(self.val_ds, batch_size=self.cfg.batch_size, **common)
            )
        return self._loaders[kind]

    def gate_batches(self, stage: str, start: int, total: int) -> Iterator[dict] | None:
        """The blur gate's batches of its own pairs for steps ``start``..``total`` of ``stage``
        (None: the gate learns from the stage's batches, or not in this stage). A loader of
        its own, for this stage only: its workers end with it."""
        if self.gate_ds is None or stage != self.nets.gate_stage:
            return None
        w = self.cpu.loader_workers
        sampler = GateBatches(
            len(self.gate_ds), self.cfg.batch_size, self.cfg.seed, start, total, self.dist.rank, self.dist.world
        )
        return iter(
            DataLoader(self.gate_ds, batch_sampler=sampler, num_workers=w, pin_memory=self.device.type == "cuda")
        )

    def epoch_batches(self, order: list[int], start: int, epoch: int) -> int:
        """Sets the train loader's batches for this epoch from ``start``; returns the epoch's count."""
        bs = self.cfg.batch_size
        batches = [[(epoch, i) for i in order[j : j + bs]] for j in range(0, len(order), bs)]
        if len(batches) > 1 and len(batches[-1]) < bs:
            batches = batches[:-1]  # equal batches: batch norm statistics stay comparable
        cast(EpochBatches, self.loader("train").batch_sampler).batches = batches[start:]
        return len(batches)

    def steps_per_epoch(self) -> int:
        n = len(epoch_order(len(self.train_ds), self.cfg.seed, 0, self.dist.rank, self.dist.world))
        return max(1, n // self.cfg.batch_size) if n >= self.cfg.batch_size else 1

    def progress(self, stage: str) -> Progress:
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
            raise UsageError(
                f"{self.ckpt_path('cgan')}: the cGAN started on the hourglass at step {prog.hg_step}, "
                f"which has since been trained to step {hg_step}; add --restart-cgan"
            )
        return prog

    def export(self, stages: tuple[str, ...] = STAGES) -> Path:
        """The prediction checkpoint that `mf2 deblur` and `mf2 evaluate` load with
        weights_only=True: the hourglass (and the blur gate, when the run has one), and after
        the cGAN stage G_bl's encoder and the shared decoder. ``stages`` says which it holds (the hourglass alone is a model too)."""
        path = self.out / "model.pt"
        if self.dist.main:
            gate = self.nets.gate_ready(stages[-1])  # not before the stage it learns in
            state = {
                "format": "mf2-deblur-1",
                "config": (self.cfg if gate else replace(self.cfg, gate=GateConfig())).to_dict(),
                "hg": self.models["hg"].state_dict(),
                "stages": list(stages),
                "data": {k: self.data[k].record for k in stages},
            }
            if gate:
                state["gate"] = self.models["gate"].state_dict()
            if "cgan" in stages:
                gen = cast(TwoPathwayGenerator, self.models["gen"])
                state.update(enc_bl=gen.enc_bl.state_dict(), decoder=gen.decoder.state_dict())
            write_atomic(path, lambda tmp: torch.save(state, tmp))
        return path
