"""What a run leaves to read: metrics.csv (every logged value, long format), TensorBoard
scalars, sample grids and the HParams table when tensorboard is installed. Rank 0 writes;
other ranks log nothing."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np

from mf2.atomic import write_bytes_atomic
from mf2.models.config import TrainConfig


def labelled(grid: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
    """A white band above equal-width columns, each named: a sample grid read months later
    (or by another lab) says which column is which."""
    import cv2

    w = grid.shape[1] // len(labels)
    band = np.full((18, grid.shape[1], 3), 255, np.uint8)
    for i, name in enumerate(labels):
        cv2.putText(band, name, (i * w + 3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, grid], axis=0)


class RunLog:
    def __init__(self, out: Path, cfg: TrainConfig, main: bool) -> None:
        self.out, self.cfg, self.main = out, cfg, main
        self._tb: Any = None

    def row(self, stage: str, kind: str, step: int, epoch: int, values: dict) -> None:
        if not self.main:
            return
        path = self.out / "metrics.csv"
        new = not path.exists()
        fields = ["time", "stage", "kind", "step", "epoch", "name", "value"]
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            if new:
                w.writeheader()
            for k, v in values.items():
                w.writerow(
                    {
                        "time": round(time.time(), 3),
                        "stage": stage,
                        "kind": kind,
                        "step": step,
                        "epoch": epoch,
                        "name": k,
                        "value": v,
                    }
                )
        tb = self.tensorboard()
        if tb is not None:
            for k, v in values.items():
                tb.add_scalar(f"{stage}/{kind}/{k}", v, step)

    def samples(self, stage: str, step: int, epoch: int, grid: list[np.ndarray]) -> None:
        """The validation grid (blurry | hourglass | cGAN | sharp) as samples/<stage>_epoch…png."""
        if not self.main or not grid:
            return
        import cv2

        rgb = labelled(np.concatenate(grid, axis=0), ("blurry", "hourglass", "cGAN", "sharp"))
        tb = self.tensorboard()
        if tb is not None:
            tb.add_image(f"{stage}/samples", rgb, step, dataformats="HWC")
        write_bytes_atomic(
            self.out / "samples" / f"{stage}_epoch{epoch:03d}_step{step:07d}.png",
            cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes(),
        )

    def hparams(self, stage: str, val: dict) -> None:
        """The run's settings beside its final validation scores, in TensorBoard's HParams tab:
        runs of a sweep compare there. Scalars only (TensorBoard's rule), nested keys dotted."""
        tb = self.tensorboard() if self.main else None
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

    def close(self) -> None:
        """Write out TensorBoard's queued events. Its writer writes them from a thread; a
        process that left without closing it (``mf2`` leaves without the interpreter's
        teardown: mf2.quick_exit) lost the last ones: 11 of 100 scalars here."""
        if self._tb:
            self._tb.close()
        self._tb = None

    def tensorboard(self):
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out / "tensorboard"))
            except Exception:  # tensorboard not installed: metrics.csv only
                self._tb = False
        return self._tb or None
