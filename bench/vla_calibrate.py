"""Calibrate VLA's rules on the shared clips: L, stop reasons and frames per pair for each
setting of ``--overlap-parts`` and ``--max-L`` (issue 18).

The paper words rule (i) as "an overlap of some of the facial semantic parts" between the
first and last frame; mf2 asked every part. Its VLA test set, 5,677 pairs from the ~120,000
frames of 300VW's 64 test videos with sub-sequences that never overlap, consumed about 21
frames per pair, so its VLA exposures were long. This bench plans VLA windows (forward, no
rendering: the rules alone) for each setting over the same landmark and flow tables, and
prints JSON per setting: pairs, frames per pair (the number comparable with the paper's
21.1), the L distribution, stop reasons and the face displacement a pair integrates.

    .venv/bin/python bench/vla_calibrate.py > vla_calibration.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from mf2 import __version__
from mf2.blur.vla import VlaConfig
from mf2.faces.select import LandmarkConfig, make_backend
from mf2.faces.stage import landmarks_for_video
from mf2.modes.config import SimulateConfig
from mf2.simulate import Stages, merge_plans, plan_video
from mf2.sources import VideoSource, sha256_file
from mf2.video import probe

PAPER_FRAMES_PER_PAIR = 120_000 / 5_677
BINS = [(3, 5), (7, 9), (11, 15), (17, 21), (23, 31), (33, 41), (43, 61), (63, 10_000)]


def _summary(lengths: list[int], stops: Counter, disp: list[float], frames: int, n_clips: int) -> dict:
    n = len(lengths)
    return {
        "pairs": n,
        "clips": n_clips,
        "frames": frames,
        "frames_per_pair": round(frames / n, 1) if n else None,
        "L_mean": round(statistics.fmean(lengths), 2) if n else None,
        "L_median": statistics.median(lengths) if n else None,
        "L_p90": float(np.percentile(lengths, 90)) if n else None,
        "L_hist": {f"{a}-{b}" if b < 10_000 else f"{a}+": sum(a <= x <= b for x in lengths) for a, b in BINS},
        "stop_reasons": {k: round(v / max(1, sum(stops.values())), 3) for k, v in stops.most_common()},
        "displacement_px_median": round(statistics.median(disp), 2) if disp else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "videos")
    ap.add_argument("--clips", nargs="*", default=None, help="default: every .mp4 in --videos")
    ap.add_argument("--parts", nargs="*", default=["all", "3", "any"])
    ap.add_argument("--max-L", nargs="*", type=int, default=[21, 41, 61])
    ap.add_argument("--min-overlap", type=float, default=0.5)
    args = ap.parse_args()
    clips = args.clips or sorted(p.name for p in args.videos.glob("*.mp4"))
    lcfg = LandmarkConfig(backend="dlib")
    backend = make_backend(lcfg)
    settings = list(itertools.product(args.parts, args.max_L))
    acc = {s: ([], Counter(), [], 0, 0) for s in settings}
    per_clip: dict[str, dict] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        for name in clips:
            path = args.videos / name
            info, sha = probe(path), sha256_file(path)
            src = VideoSource(path.stem, path)
            lm = landmarks_for_video(src.video_id, info, sha, lcfg, cache, backend)
            per_clip[name] = {}
            for parts, max_l in settings:
                vla = VlaConfig(overlap_parts=parts, max_L=max_l, min_overlap=args.min_overlap)
                cfg = SimulateConfig(mode="vla", landmarks=lcfg, vla=vla)
                plan = merge_plans(plan_video(cfg, src, info, sha, cache, lm, None, Stages()))
                lengths, stops, disp, frames, n_clips = acc[(parts, max_l)]
                ls = [len(w.frames) for w in plan.windows]
                lengths += ls
                stops.update(e["stop_reason"] for e in plan.extras)
                disp += [e["displacement_px"] for e in plan.extras]
                acc[(parts, max_l)] = (lengths, stops, disp, frames + info.n_frames, n_clips + 1)
                per_clip[name][f"{parts}/{max_l}"] = {
                    "pairs": len(ls),
                    "L_median": statistics.median(ls) if ls else None,
                }
            print(f"{name}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    print(
        json.dumps(
            {
                "mf2": __version__,
                "python": platform.python_version(),
                "min_overlap": args.min_overlap,
                "paper_frames_per_pair": round(PAPER_FRAMES_PER_PAIR, 1),
                "settings": {f"overlap_parts={p} max_L={m}": _summary(*acc[(p, m)]) for p, m in settings},
                "per_clip": per_clip,
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
