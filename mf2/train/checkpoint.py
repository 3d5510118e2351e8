"""Training checkpoints: what one keeps besides weights and optimiser moments, so a run
resumes exactly (the position, ``Progress``; the RNG states; the configuration, with keys it
predates filled in; the record of the pairs that trained it), writing one atomically, and
reading one back with its compatibility checks."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mf2.atomic import write_atomic
from mf2.errors import UsageError
from mf2.models.config import TrainConfig
from mf2.train.steps import Nets


@dataclass
class Progress:
    stage: str
    step: int = 0
    epoch: int = 0
    pos: int = 0  # batches of this epoch already done
    done: bool = False
    hg_step: int = 0  # cgan: the hourglass checkpoint it trains on


def rng_state() -> dict:
    np_state: Any = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    random.setstate((3, tuple(s["python"]), s["python_pos"]))
    np.random.set_state(("MT19937", s["numpy_keys"].numpy().astype(np.uint32), s["numpy_pos"], 0, 0.0))
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def filled_config(saved: dict) -> dict:
    """A checkpoint's configuration with the keys it predates at their defaults: a run made
    before a new option was added resumes while that option stays at its default."""
    from mf2.models.config import config_from_dict

    try:
        return config_from_dict(saved).to_dict()
    except UsageError:
        return saved


def dataset_record(manifest: str | Path) -> dict:
    """Which pairs: the manifest's path as given, its mode and the sha256 of its Parquet file,
    so a run says what it was trained on and a resume on other pairs is refused."""
    from mf2.dataset.manifest import load

    ds = load(manifest)
    h = hashlib.sha256(ds.path.read_bytes()).hexdigest()
    try:
        mode = json.loads(ds.meta.get("mf2.params") or "{}").get("mode", "")
    except ValueError:
        mode = ""
    return {"path": str(manifest), "mode": mode, "pairs_sha256": h, "n_pairs": ds.table.num_rows}


FORMAT = "mf2-train-1"


def checkpoint_state(cfg: TrainConfig, prog: Progress, nets: Nets, scaler: Any, data: dict) -> dict:
    """Everything a stage resumes from: weights, optimiser moments, the scaler, RNG states,
    the position, and the record of the pairs (``data``: stage -> record)."""
    return {
        "format": FORMAT,
        "config": cfg.to_dict(),
        "stage": prog.stage,
        "step": prog.step,
        "epoch": prog.epoch,
        "pos": prog.pos,
        "done": prog.done,
        "hg_step": prog.hg_step,
        "models": {k: m.state_dict() for k, m in nets.models.items()},
        "optim": {k: o.state_dict() for k, o in nets.opt.items()},
        "scaler": scaler.state_dict(),
        "rng": rng_state(),
        "data": data,
    }


def write_checkpoint(path: Path, state: dict) -> None:
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def read_checkpoint(path: Path, cfg: TrainConfig, stage: str, record: dict) -> dict | None:
    """A stage's checkpoint, checked: a truncated, foreign or hostile file (weights_only
    refuses pickled code) is one line naming it, never a traceback; so is one made with
    another configuration or on other pairs (``record``: the pairs this run trains on)."""
    if not path.is_file():
        return None
    try:
        # on the CPU: RNG states must stay CPU ByteTensors (set_rng_state refuses CUDA ones);
        # load_state_dict copies weights and optimiser state onto the models' device
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UsageError(
            f"{path}: not a loadable checkpoint ({type(e).__name__}: {why}); delete it to start the {stage} stage over"
        ) from None
    if (
        not isinstance(state, dict)
        or state.get("format") != FORMAT
        or not {"config", "models", "optim", "step"} <= set(state)
    ):
        raise UsageError(f"{path}: not an mf2 training checkpoint")
    if filled_config(state["config"]) != cfg.to_dict():
        raise UsageError(f"{path}: made with another configuration; use another --out or the same --config")
    was = state.get("data", {}).get(stage)
    if was is not None and [d["pairs_sha256"] for d in was["datasets"]] != [
        d["pairs_sha256"] for d in record["datasets"]
    ]:
        flag = "--hg-pairs" if stage == "hg" else "--pairs"
        raise UsageError(
            f"{path}: the {stage} stage was trained on other pairs "
            f"({', '.join(d['path'] for d in was['datasets'])}); give the same {flag} or use "
            f"another --out"
        )
    if was is not None and _shas(was.get("gate")) != _shas(record.get("gate")):
        gave = ", ".join(d["path"] for d in (was.get("gate") or {}).get("datasets", [])) or "the stage's own"
        raise UsageError(
            f"{path}: the blur gate learned from other pairs ({gave}); give the same --gate-pairs or use another --out"
        )
    return state


def _shas(record: dict | None) -> list[str]:
    return [d["pairs_sha256"] for d in record["datasets"]] if record else []


def progress_of(state: dict, stage: str) -> Progress:
    return Progress(
        stage,
        state["step"],
        state.get("epoch", 0),
        state.get("pos", 0),
        bool(state.get("done")),
        state.get("hg_step", 0),
    )


def restore(state: dict, path: Path, nets: Nets, scaler: Any) -> None:
    """Weights, optimiser moments, scaler and RNG states back in place; a checkpoint of
    another shape is one line."""
    try:
        for k, m in nets.models.items():
            m.load_state_dict(state["models"][k])
        for k, o in nets.opt.items():
            o.load_state_dict(state["optim"][k])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UsageError(f"{path}: does not fit this model ({type(e).__name__}: {why})") from None
