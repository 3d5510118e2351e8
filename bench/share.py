"""Materialize throughput versus the simulate run that made the pairs, measured in one run.

For each mode: simulate the clips into a fresh folder (cold: landmarks, flow, planning,
rendering), export the manifest without images, then materialize it into another fresh folder
from the same videos (decode + render only, then a hash check). Prints JSON with the medians
of ``--repeats`` runs and the speed-up; all rebuilt images are checked byte for byte.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mf2 import __version__
from mf2.blur.windows import PrAvgConfig
from mf2.modes.config import SimulateConfig
from mf2.pipeline.execute import run_simulate
from mf2.share.export import export
from mf2.share.materialize import materialize
from mf2.sources import VideoSource

DEFAULT_CLIPS = ["fomm_10.mp4", "lp_d9.mp4", "retalking_face_3.mp4"]


def _same_files(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for k in ("blurry", "sharp") for p in (a / k).rglob("*.png"))
    return bool(files) and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "videos")
    ap.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS)
    ap.add_argument("--modes", nargs="+", default=["pravg", "vla"])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sources = [VideoSource(Path(c).stem, args.videos / c) for c in args.clips]
    results = []
    for mode in args.modes:
        cfg = SimulateConfig(mode=mode, pravg=PrAvgConfig(L=7))
        sim, mat, identical = [], [], True
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                t = time.perf_counter()
                s = run_simulate(sources, tmp / "ds", cfg, show_progress=False)
                sim.append(time.perf_counter() - t)
                export(tmp / "ds", tmp / "m.parquet", images=False)
                t = time.perf_counter()
                m = materialize(tmp / "m.parquet", args.videos, tmp / "rebuilt")
                mat.append(time.perf_counter() - t)
                identical &= m.n_exact == s.n_pairs and _same_files(tmp / "ds", tmp / "rebuilt")
                n_pairs = s.n_pairs
        s_med, m_med = statistics.median(sim), statistics.median(mat)
        results.append(
            {
                "mode": mode,
                "pairs": n_pairs,
                "simulate_s": round(s_med, 2),
                "materialize_s": round(m_med, 2),
                "simulate_pairs_per_s": round(n_pairs / s_med, 1),
                "materialize_pairs_per_s": round(n_pairs / m_med, 1),
                "materialize_speedup": round(s_med / m_med, 2),
                "byte_identical": identical,
            }
        )
    json.dump(
        {
            "bench": "share",
            "mf2": __version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "clips": args.clips,
            "repeats": args.repeats,
            "results": results,
        },
        sys.stdout,
        indent=2,
    )
    print()


if __name__ == "__main__":
    main()
