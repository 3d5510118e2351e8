"""CPU training speed by thread choice, on an idle machine and beside a busy process.

Trains the ``small`` preset's hourglass (the trainer's own steps and loader) for a fixed time
with torch's default threads (one per core) and with mf2's choice (``plan_cpu``: the free
cores), first alone and then while a second process keeps one core busy. Prints JSON:
images/s of each, and the threads mf2 chose. Conditions alternate, one run each.

    python bench/train_threads.py DATASET [--seconds 40]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY = "import time\nt = time.time()\nwhile time.time() - t < 600:\n    sum(range(10000))\n"


def _rate(dataset: str, threads: int | None, seconds: float, out: Path) -> dict:
    import torch

    from mf2.models.config import load_config
    from mf2.train.data import GATE_KEYS
    from mf2.train.trainer import Trainer

    cfg = load_config("small")
    default = torch.get_num_threads()
    tr = Trainer(cfg, [dataset], out, "cpu", None, False, None, threads)
    tr.use("hg")
    tr.models["hg"].train()

    def batches():
        epoch = 0
        while True:  # as many epochs as the time takes
            tr.epoch_batches(list(range(len(tr.train_ds))), 0, epoch)
            yield from tr.loader("train")
            epoch += 1

    it = batches()
    for _ in range(3):  # warm-up
        b = next(it)
        tr.step("hg", b["blurry"], b["sharp"], {k: b[k] for k in GATE_KEYS if k in b})
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        b = next(it)
        tr.step(
            "hg",
            b["blurry"].contiguous(memory_format=tr.memory_format),
            b["sharp"].contiguous(memory_format=tr.memory_format),
            {k: b[k] for k in GATE_KEYS if k in b},  # the small preset's blur gate steps too
        )
        n += b["blurry"].shape[0]
    rate = n / (time.perf_counter() - t)
    torch.set_num_threads(default)
    return {"images_per_s": round(rate, 1), "threads": tr.cpu.threads, "busy_at_start": tr.cpu.busy}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--seconds", type=float, default=40.0)
    a = ap.parse_args()
    import torch

    cores = torch.get_num_threads()
    report: dict = {"bench": "train_threads", "torch_default_threads": cores, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for load in ("idle", "busy"):
            other = subprocess.Popen([sys.executable, "-c", BUSY]) if load == "busy" else None
            try:
                time.sleep(1.0 if other else 0.0)
                for name, threads in (("torch default", cores), ("mf2 auto", None)):
                    report["runs"][f"{load}, {name}"] = _rate(
                        a.dataset, threads, a.seconds, Path(tmp) / f"{load}-{threads}"
                    )
                    print(json.dumps({f"{load}, {name}": report["runs"][f"{load}, {name}"]}), file=sys.stderr)
            finally:
                if other:
                    other.kill()
                    other.wait()
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
