"""The paper's Table 4 (self-evaluation) at small scale: which parts of the model matter?

Rows, each trained with the same step budget on the same training pairs (VLA, both
directions, from bench/restore.py's training clips) and scored on PrAvg-7 test pairs from
its test clips (windows that do not overlap; no clip on both sides):
- ``final``: the paper's model (hourglass, then the two-pathway cGAN conditioned on it);
- ``HG``: that model's hourglass alone (step 1);
- ``cGAN-noHG``: ``cgan.condition_on_hg: false`` (G_bl sees the blurry image alone);
- ``HG-vanilla-cGAN``: ``cgan.two_pathway: false`` (no G_s, no reconstruction loss).
Prints JSON in Table 4's layout (AUC, failure rate %, SSIM; PSNR and NME beside).
``--preset tiny`` (default, minutes on 2 cores) or ``small`` (the laptop model; about an hour).

    .venv/bin/python bench/ablation.py --work /tmp/ablation > ablation.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from restore import SHARED, _r, build_pairs  # noqa: E402  (bench/restore.py: the same clips and pairs)

from mf2 import __version__  # noqa: E402

VARIANTS = {"final": {}, "cGAN-noHG": {"condition_on_hg": False}, "HG-vanilla-cGAN": {"two_pathway": False}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=Path, default=SHARED)
    ap.add_argument("--work", type=Path, required=True, help="pairs and runs (reused by a second run)")
    ap.add_argument("--preset", default="tiny", choices=["tiny", "small"])
    ap.add_argument("--hg-steps", type=int, default=300)
    ap.add_argument("--cgan-steps", type=int, default=300)
    ap.add_argument("--limit", type=int, default=0, help="test pairs evaluated (0: all)")
    args = ap.parse_args()

    from mf2.evaluate.methods import Method
    from mf2.evaluate.run import EvaluateConfig, evaluate, to_json
    from mf2.models.config import load_config
    from mf2.train.loop import train

    t0 = time.perf_counter()
    size = 64 if args.preset == "tiny" else 128
    pairs = build_pairs(args.videos, args.work / f"pairs{size}", size)
    runs = {}
    for name, cgan in VARIANTS.items():
        cfg = load_config(
            args.preset,
            {
                "hg_stage": {"max_steps": args.hg_steps, "epochs": 0},
                "cgan_stage": {"max_steps": args.cgan_steps, "epochs": 0},
                "cgan": cgan,
            },
        )
        run = args.work / f"{args.preset}-{name}"
        t = time.perf_counter()
        train([pairs["train"]["vla"]["path"]], run, cfg, device="cpu", show_progress=False)
        runs[name] = {"model": run / "model.pt", "seconds": round(time.perf_counter() - t, 1)}
    methods = [
        Method("Blurred", "blurred"),
        Method("Oracle", "oracle"),
        Method("HG", "checkpoint", runs["final"]["model"], "hg"),
    ]
    methods += [Method(name, "checkpoint", r["model"]) for name, r in runs.items()]
    ev = to_json(
        evaluate([Path(pairs["test"]["pravg7"]["path"])], methods, EvaluateConfig(landmarks="dlib", limit=args.limit))
    )
    table = {
        a["method"]: {
            "auc": _r(a["auc"], 3),
            "failure_pct": _r(a["failure_rate"], 3),
            "ssim": _r(a["ssim"], 4),
            "psnr": _r(a["psnr"], 2),
            "nme": _r(a["nme_mean"], 4),
        }
        for a in ev["results"]
    }
    print(
        json.dumps(
            {
                "mf2": __version__,
                "python": platform.python_version(),
                "preset": args.preset,
                "steps": {"hg": args.hg_steps, "cgan": args.cgan_steps},
                "test": "PrAvg 7 (stride 7)",
                "n_test_pairs": ev["n_pairs"],
                "table_4": table,
                "train_seconds": {k: v["seconds"] for k, v in runs.items()},
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
