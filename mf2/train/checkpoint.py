"""What a training checkpoint keeps besides weights and optimiser moments, so a run resumes
exactly: the position (``Progress``), the RNG states, the configuration (with keys it predates
filled in) and the record of the pairs that trained it."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mf2.errors import UsageError


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
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]), "python_pos": random.getstate()[2],
            "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2]),
            "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []}


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
