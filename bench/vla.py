"""VLA over the shared clips: L distribution, stop reasons, flow-stage and end-to-end speed.

Prints JSON. Per clip, in one run: decode-only frames/s, flow-stage frames/s (decode +
DIS on the face square, landmarks given), and VLA pairs/s end to end from a cold OUT
(landmarks + flow + thumbnails + planning + rendering + PNG). Medians over ``--repeats``
for the speed figures; compare ratios, not absolute numbers, across machines.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from mf2 import __version__
from mf2.blur.vla import VlaConfig
from mf2.faces.select import LandmarkConfig
from mf2.flow import FlowConfig, compute_flow
from mf2.modes.config import SimulateConfig
from mf2.pipeline.execute import run_simulate
from mf2.schema import landmarks_to_numpy
from mf2.sources import VideoSource
from mf2.video import iter_frames, probe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "videos")
    ap.add_argument("--clips", nargs="*", default=None, help="default: every .mp4 in --videos")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--direction", default="forward", choices=["forward", "reverse", "both"])
    args = ap.parse_args()
    clips = args.clips or sorted(p.name for p in args.videos.glob("*.mp4"))
    fcfg = FlowConfig()
    per_clip, all_L, all_stops = [], [], Counter()
    tot_pairs = tot_time = 0.0
    for name in clips:
        path = args.videos / name
        info = probe(path)
        decode, flow, e2e = [], [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            n = sum(1 for _ in iter_frames(info))
            decode.append(n / (time.perf_counter() - t))
            with tempfile.TemporaryDirectory() as out:
                cfg = SimulateConfig(
                    mode="vla", landmarks=LandmarkConfig(backend="dlib"), vla=VlaConfig(direction=args.direction)
                )
                t = time.perf_counter()
                s = run_simulate([VideoSource(path.stem, path)], Path(out), cfg, show_progress=False)
                dt = time.perf_counter() - t
                e2e.append(s.n_pairs / dt)
                rows = pq.read_table(Path(out) / "pairs.parquet", columns=["L", "stop_reason"]).to_pydict()
                lms, valid = landmarks_to_numpy(
                    pq.read_table(Path(out) / "landmarks" / f"{path.stem}.parquet")["landmarks"]
                )
                t = time.perf_counter()
                compute_flow(path.stem, iter_frames(info), lms, valid, fcfg)
                flow.append(n / (time.perf_counter() - t))
        tot_pairs += s.n_pairs
        tot_time += dt
        all_L += rows["L"]
        stops = Counter(rows["stop_reason"])
        all_stops.update(stops)
        per_clip.append(
            {
                "clip": name,
                "width": info.width,
                "height": info.height,
                "frames": n,
                "pairs": s.n_pairs,
                "median_L": float(np.median(rows["L"])) if rows["L"] else None,
                "stop_reasons": dict(stops.most_common()),
                "decode_fps": round(statistics.median(decode), 1),
                "flow_fps": round(statistics.median(flow), 1),
                "flow_over_decode": round(statistics.median(flow) / statistics.median(decode), 3),
                "vla_pairs_per_s": round(statistics.median(e2e), 2),
            }
        )
        print(f"{name}: {per_clip[-1]}", file=sys.stderr)
    L = np.asarray(all_L)
    print(
        json.dumps(
            {
                "bench": "vla",
                "mf2": __version__,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "flow": fcfg.key(),
                "direction": args.direction,
                "clips": per_clip,
                "total": {
                    "pairs": int(tot_pairs),
                    "vla_pairs_per_s": round(tot_pairs / tot_time, 2),
                    "L_quantiles": {q: float(np.percentile(L, q)) for q in (10, 25, 50, 75, 90)} if len(L) else {},
                    "L_hist": dict(sorted(Counter(int(x) for x in L).items())),
                    "stop_reasons": dict(all_stops.most_common()),
                    "median_flow_fps": statistics.median(c["flow_fps"] for c in per_clip),
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
