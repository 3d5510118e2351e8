"""What the CNN detector fallback recovers, and what it costs (issue 31, item 5).

Where HOG finds no face near a track (on a keyframe, or when a fit fails its checks), the
tracker asks dlib's CNN face detector (mmod, shipped in face-recognition-models) on the
region scaled so the face is about 100 px. This runs the landmark stage on each clip with
the fallback off and on (alternated, in one process) and prints JSON: usable frames (rows
``ok``) each way, frames recovered, CNN calls and hits, and the landmark stage's seconds.

    .venv/bin/python bench/cnn_fallback.py                       # the corpus clips below
    .venv/bin/python bench/cnn_fallback.py --clips ../shared/data/corpus/*.mp4
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "shared" / "data" / "corpus"
CLIPS = ("astorfi_sample_video.mp4",)


def one(path: Path, fallback: bool) -> dict:
    from mf2.faces.select import LandmarkConfig
    from mf2.faces.stage import compute_landmarks
    from mf2.video import probe

    cfg = replace(LandmarkConfig(backend="dlib"), cnn_fallback=fallback)
    t0 = time.perf_counter()
    table = compute_landmarks(path.stem, probe(path), cfg)
    seconds = time.perf_counter() - t0
    reasons = table["reason"].to_pylist()
    ok_frames = {f for f, r in zip(table["frame"].to_pylist(), reasons) if r == "ok"}
    cnn = json.loads((table.schema.metadata or {}).get(b"mf2.cnn_fallback", b"{}"))
    return {
        "frames": max(table["frame"].to_pylist(), default=-1) + 1,
        "ok_frames": len(ok_frames),
        "seconds": round(seconds, 2),
        "cnn_calls": cnn.get("calls", 0),
        "cnn_found": cnn.get("found", 0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clips", nargs="*", type=Path, default=[CORPUS / c for c in CLIPS])
    args = ap.parse_args()
    report: dict = {"clips": {}}
    for path in args.clips:
        off = one(path, False)
        on = one(path, True)
        report["clips"][path.name] = {
            "off": off,
            "on": on,
            "recovered": on["ok_frames"] - off["ok_frames"],
            "extra_seconds": round(on["seconds"] - off["seconds"], 2),
        }
    c = report["clips"].values()
    report["total"] = {
        "frames": sum(v["off"]["frames"] for v in c),
        "recovered": sum(v["recovered"] for v in c),
        "cnn_calls": sum(v["on"]["cnn_calls"] for v in c),
        "cnn_found": sum(v["on"]["cnn_found"] for v in c),
        "seconds_off": round(sum(v["off"]["seconds"] for v in c), 1),
        "seconds_on": round(sum(v["on"]["seconds"] for v in c), 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
