"""Decode-only frames/s versus decode + landmarks + PrAvg frames/s, measured in one run.

Prints JSON. Each clip is timed ``--repeats`` times per measurement (median reported); the
ratio is what to compare across machines, absolute numbers are noisy on shared hardware.
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

import pyarrow.parquet as pq

from mf2 import __version__
from mf2.blur.windows import PrAvgConfig
from mf2.modes.config import SimulateConfig
from mf2.pipeline.execute import run_simulate
from mf2.sources import VideoSource
from mf2.video import iter_frames, probe

DEFAULT_CLIPS = ["fomm_10.mp4", "lp_d9.mp4", "ffpp_youtube_634.mp4"]  # 256², 512x480, 1280x720


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "videos")
    ap.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    results = []
    for name in args.clips:
        path = args.videos / name
        info = probe(path)
        decode, full = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            n = sum(1 for _ in iter_frames(info))
            decode.append(n / (time.perf_counter() - t))
            with tempfile.TemporaryDirectory() as out:
                t = time.perf_counter()
                s = run_simulate(
                    [VideoSource(path.stem, path)],
                    Path(out),
                    SimulateConfig(pravg=PrAvgConfig(L=7)),
                    show_progress=False,
                )
                full.append(info.n_frames / (time.perf_counter() - t))
                n_pairs = s.n_pairs
                backend = pq.read_table(Path(out) / "landmarks" / f"{path.stem}.parquet", columns=["backend"])[
                    "backend"
                ][0].as_py()
        d, f = statistics.median(decode), statistics.median(full)
        results.append(
            {
                "clip": name,
                "width": info.width,
                "height": info.height,
                "frames": info.n_frames,
                "pairs": n_pairs,
                "backend": backend,
                "decode_fps": round(d, 1),
                "slice_fps": round(f, 1),
                "slice_over_decode": round(f / d, 3),
            }
        )
    json.dump(
        {
            "bench": "slice",
            "mf2": __version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "repeats": args.repeats,
            "results": results,
        },
        sys.stdout,
        indent=2,
    )
    print()


if __name__ == "__main__":
    main()
