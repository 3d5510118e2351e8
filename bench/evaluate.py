"""The evaluation report for PrAvg 7 and VLA pairs of the shared clips, and its throughput.

Simulates PrAvg (L = 7, ``--stride``) and VLA (forward) pairs from the clips, then runs
``mf2 evaluate`` on both (Blurred and Oracle rows, dlib localiser, identity on) and prints JSON:
the report's numbers per setting and method, and pairs/s of the evaluation itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from mf2 import __version__
from mf2.blur.windows import PrAvgConfig
from mf2.evaluate.methods import Method
from mf2.evaluate.report import markdown, write_report
from mf2.evaluate.run import EvaluateConfig, evaluate, to_json
from mf2.modes.config import SimulateConfig
from mf2.pipeline.execute import run_simulate
from mf2.sources import resolve_videos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "videos")
    ap.add_argument("--stride", type=int, default=5, help="PrAvg: exposures between pairs")
    ap.add_argument("--limit", type=int, default=0, help="pairs per setting (0: all)")
    ap.add_argument("--report", type=Path, default=None, help="also keep the report folder here")
    args = ap.parse_args()
    sources = resolve_videos(args.videos)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        run_simulate(
            sources,
            tmp / "pravg",
            SimulateConfig(mode="pravg", pravg=PrAvgConfig(L=7), stride=args.stride),
            show_progress=False,
        )
        run_simulate(sources, tmp / "vla", SimulateConfig(mode="vla"), show_progress=False)
        simulate_s = time.perf_counter() - t
        ev = evaluate(
            [tmp / "pravg", tmp / "vla"],
            [Method("Blurred", "blurred"), Method("Oracle", "oracle")],
            EvaluateConfig(limit=args.limit),
        )
        if args.report:
            write_report(ev, args.report)
    out = {
        "bench": "evaluate",
        "mf2": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "clips": len(sources),
        "pravg_stride": args.stride,
        "simulate_s": round(simulate_s, 1),
        **to_json(ev),
    }
    json.dump(out, sys.stdout, indent=2)
    print()
    print(markdown(ev), file=sys.stderr)


if __name__ == "__main__":
    main()
