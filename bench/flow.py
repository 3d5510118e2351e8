"""Which DIS preset and working size VLA's flow stage should use: accuracy first, then speed
(issue 16, item 3).

For each setting, on shared clips whose landmark tables are computed once:
- **known shift**: a real face frame against itself moved by a known sub-pixel shift (up to
  +-4 px, bilinear warp); the error of the recovered mean face motion, in original pixels;
- **forward-backward**: on real consecutive frames, the mean fb error and the share of
  face pixels over 1 px (what VLA's rule iii reads), compared with the reference setting;
- **VLA windows**: `mf2 simulate --mode vla` with the setting; how many pairs, their mean L,
  and the share of windows identical (same frames) to the reference's;
- **time**: ms per frame pair (both directions), one thread.
Prints JSON. The reference is mf2's default (medium, 128 px).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
CLIPS = ["lp_d9.mp4", "ffpp_youtube_634.mp4", "retalking_face_4.mp4", "sadtalker_WDA_AlexandriaOcasioCortez_000.mp4"]
SETTINGS = [("medium", 128), ("fast", 128), ("ultrafast", 128), ("medium", 96), ("fast", 96), ("medium", 160)]


def _simulate(vids: Path, out: Path, preset: str, size: int, lm_cache: Path | None) -> Path:
    import mf2.api as mf2
    from mf2.dataset import LANDMARKS

    if lm_cache is not None and not (out / LANDMARKS).exists():
        shutil.copytree(lm_cache, out / LANDMARKS)
    try:
        mf2.simulate(out, vids, mode="vla", direction="both", flow_preset=preset, flow_size=size)
    except Exception as e:  # a bench reports and stops; the API raised the CLI's one line
        sys.exit(f"simulate {preset}/{size} failed: {e}")
    return out


def _frames_with_faces(clip: Path, table_path: Path, every: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(frame, next frame, landmarks) for every ``every``-th frame with a usable face."""
    from mf2.faces.series import face_series
    from mf2.video import iter_frames, probe

    info = probe(clip)
    ser = face_series(pq.read_table(table_path), "largest", (info.width, info.height))
    out, prev = [], None
    for i, f in enumerate(iter_frames(info)):
        if prev is not None and i % every == 0 and ser.usable[i - 1] and ser.usable[i]:
            out.append((prev, f, ser.landmarks[i - 1]))
        prev = f
    return out


def _shifted(frame: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(
        frame, m, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def _measure(samples, preset: str, size: int, rng_seed: int = 0) -> dict:
    from mf2.flow import FlowConfig, FlowEstimator, pair_flow

    est = FlowEstimator(FlowConfig(preset=preset, work_size=size))
    rng = np.random.default_rng(rng_seed)
    shift_err, fb, fb_bad, times = [], [], [], []
    for prev, cur, lm in samples:
        dx, dy = rng.uniform(-4, 4, 2)
        r = pair_flow(est, prev, _shifted(prev, dx, dy), lm)
        shift_err.append(float(np.hypot(r["dx"] - dx, r["dy"] - dy)))
        t = time.perf_counter()
        r = pair_flow(est, prev, cur, lm)
        times.append((time.perf_counter() - t) * 1e3)
        fb.append(r["fb_err"])
        fb_bad.append(r["fb_bad"])
    return {
        "shift_err_px_median": round(statistics.median(shift_err), 4),
        "shift_err_px_p90": round(float(np.percentile(shift_err, 90)), 4),
        "fb_err_px_mean": round(float(np.mean(fb)), 4),
        "fb_bad_mean": round(float(np.mean(fb_bad)), 4),
        "ms_per_pair": round(statistics.median(times), 3),
        "samples": len(samples),
    }


def _windows(out: Path) -> dict[str, tuple]:
    t = pq.read_table(out / "pairs.parquet", columns=["video_id", "direction", "frames"]).to_pylist()
    return {f"{r['video_id']}/{r['direction']}/{r['frames'][0]}": tuple(r["frames"]) for r in t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=Path, default=HERE.parents[1] / "shared" / "data" / "videos")
    ap.add_argument("--clips", nargs="*", default=CLIPS)
    ap.add_argument("--every", type=int, default=3, help="sample every n-th frame pair for accuracy and time")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    report: dict = {"bench": "flow", "clips": args.clips, "reference": "medium/128", "settings": {}}
    with tempfile.TemporaryDirectory(prefix="mf2-flow-") as tmp:
        vids = Path(tmp) / "in"
        vids.mkdir()
        for c in args.clips:
            (vids / c).symlink_to((args.videos / c).resolve())
        ref_out = _simulate(vids, Path(tmp) / "medium_128", "medium", 128, None)
        samples = [
            s
            for c in args.clips
            for s in _frames_with_faces(vids / c, ref_out / "landmarks" / f"{Path(c).stem}.parquet", args.every)
        ]
        ref_windows = _windows(ref_out)
        for preset, size in SETTINGS:
            name = f"{preset}/{size}"
            out = (
                ref_out
                if name == "medium/128"
                else _simulate(vids, Path(tmp) / f"{preset}_{size}", preset, size, ref_out / "landmarks")
            )
            win = _windows(out)
            same = sum(1 for k, v in win.items() if ref_windows.get(k) == v)
            lens = [len(v) for v in win.values()]
            report["settings"][name] = {
                **_measure(samples, preset, size),
                "vla_pairs": len(win),
                "vla_mean_L": round(float(np.mean(lens)), 2) if lens else None,
                "vla_windows_as_reference": round(same / max(1, len(ref_windows)), 3),
            }
    ref = report["settings"]["medium/128"]
    for r in report["settings"].values():
        r["time_vs_reference"] = round(r["ms_per_pair"] / ref["ms_per_pair"], 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
