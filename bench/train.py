"""Training throughput (images/s per stage), data-loader throughput, and the tiny preset's
learning curve, on pairs simulated from a shared clip. Prints JSON; one run, medians where
repeated. CPU here; on a GPU box pass --device cuda --config paper.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mf2 import __version__
from mf2.blur.windows import PrAvgConfig
from mf2.models.config import load_config
from mf2.modes.config import SimulateConfig
from mf2.pipeline.execute import run_simulate
from mf2.sources import VideoSource
from mf2.train.data import PairDataset, split_pairs
from mf2.train.trainer import Trainer


def _batch(ds: PairDataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    items = [ds[i % len(ds)] for i in range(n)]
    return torch.stack([b["blurry"] for b in items]), torch.stack([b["sharp"] for b in items])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "videos")
    ap.add_argument("--clip", default="lp_d9.mp4")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--configs", nargs="+", default=["tiny", "paper"])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per stage and config")
    ap.add_argument("--curve-steps", type=int, default=300, help="tiny preset: steps of the learning curve (0: skip)")
    ap.add_argument("--batch", type=int, default=0, help="override the presets' batch size (0: keep)")
    args = ap.parse_args()
    out: dict = {
        "bench": "train",
        "mf2": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "clip": args.clip,
        "stages": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        s = run_simulate(
            [VideoSource(Path(args.clip).stem, args.videos / args.clip)],
            tmp / "ds",
            SimulateConfig(pravg=PrAvgConfig(L=7), stride=2),
            show_progress=False,
        )
        out["pairs"] = s.n_pairs
        for name in args.configs:
            cfg = load_config(name, {"num_workers": 0, **({"batch_size": args.batch} if args.batch else {})})
            tr = Trainer(cfg, [str(tmp / "ds")], tmp / f"run_{name}", args.device)
            blurry, sharp = (t.to(tr.device) for t in _batch(tr.train_ds, cfg.batch_size))
            res = {}
            for stage in ("hg", "cgan"):
                fn = functools.partial(tr.step, stage)
                if stage == "cgan":
                    tr.models["hg"].eval()
                fn(blurry, sharp)  # warm-up
                times = []
                for _ in range(args.steps):
                    t = time.perf_counter()
                    fn(blurry, sharp)
                    if tr.device.type == "cuda":
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - t)
                res[stage] = {
                    "batch": cfg.batch_size,
                    "image_size": cfg.image_size,
                    "images_per_s": round(cfg.batch_size / statistics.median(times), 2),
                }
            out["stages"][name] = res
            # the loader alone: PNG decoding, crop/flip, resize, collation
            for workers in (0, 2):
                loader = DataLoader(tr.train_ds, batch_size=cfg.batch_size, shuffle=False, num_workers=workers)
                t, n = time.perf_counter(), 0
                for batch in loader:
                    n += batch["blurry"].shape[0]
                out.setdefault("loader_images_per_s", {})[f"{name}_workers{workers}"] = round(
                    n / (time.perf_counter() - t), 1
                )
        if not args.curve_steps:
            json.dump(out, sys.stdout, indent=2)
            print()
            return
        # the tiny preset's learning curve: L1 to the sharp target of a fixed batch, both stages
        cfg = load_config("tiny", {"num_workers": 0, "flip": False, "crop_jitter": 0.0})
        tr = Trainer(cfg, [str(tmp / "ds")], tmp / "curve", args.device)
        train, _, _ = split_pairs([str(tmp / "ds")], cfg.val_fraction, cfg.seed)
        blurry, sharp = (t.to(tr.device) for t in _batch(PairDataset(train[:8], cfg.image_size, False), 8))
        curve = {"hg": [], "cgan": []}
        for stage in ("hg", "cgan"):
            fn = functools.partial(tr.step, stage)
            if stage == "cgan":
                tr.models["hg"].eval()
            for step in range(1, args.curve_steps + 1):
                r = fn(blurry, sharp)
                if step in (1, 10, 25, 50, 100, 200, 300, 500) or step == args.curve_steps:
                    curve[stage].append({"step": step, "l1": round(r["l1"], 4)})
        out["tiny_curve_fixed_batch"] = curve
        out["blurred_l1"] = round(float((blurry - sharp).abs().mean()), 4)
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
