"""PNG encoder settings, size against time, on real pair images (issue 16, item 4).

Builds PrAvg pairs from one shared clip (or reads the PNGs of ``--dataset``), decodes up to
``--images`` of them, and encodes each with every setting: OpenCV's default (what mf2 wrote
before schema 1.6, ``legacy``), zlib levels, the strategies and the filters. Prints JSON:
per setting, the median over ``--repeats`` of ms per image and the mean KiB per image, and
the setting mf2 uses now (mf2.pngs). Every setting decodes to the same pixels; that is
checked too.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent


def _settings() -> dict[str, list[int]]:
    s: dict[str, list[int]] = {"opencv default (legacy)": []}
    for lvl in (1, 3, 6, 9):
        s[f"level {lvl}"] = [cv2.IMWRITE_PNG_COMPRESSION, lvl]
    s["huffman only"] = [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
    s["rle"] = [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):
        for name in ("SUB", "UP", "AVG", "PAETH"):
            f = getattr(cv2, f"IMWRITE_PNG_FILTER_{name}")
            s[f"filter {name.lower()}"] = [cv2.IMWRITE_PNG_FILTER, f]
            s[f"filter {name.lower()} + rle"] = [
                cv2.IMWRITE_PNG_FILTER,
                f,
                cv2.IMWRITE_PNG_STRATEGY,
                cv2.IMWRITE_PNG_STRATEGY_RLE,
            ]
    return s


def _images(dataset: Path | None, videos: Path, limit: int) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        if dataset is None:
            dataset = Path(tmp) / "ds"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mf2",
                    "simulate",
                    "--videos",
                    str(videos / "lp_d9.mp4"),
                    "--out",
                    str(dataset),
                    "--L",
                    "7",
                    "--stride",
                    "2",
                    "--workers",
                    "0",
                    "--no-contact-sheet",
                ],
                check=True,
                capture_output=True,
            )
        files = sorted(dataset.glob("blurry/*/*.png")) + sorted(dataset.glob("sharp/*/*.png"))
        step = max(1, len(files) // limit)
        return [cv2.imread(str(f)) for f in files[::step][:limit]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=Path, default=HERE.parents[1] / "shared" / "data" / "videos")
    ap.add_argument("--dataset", type=Path)
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from mf2.pngs import _PARAMS

    imgs = _images(args.dataset, args.videos, args.images)
    cv2.setNumThreads(1)  # one worker's share on a 2-core machine
    for im in imgs[:20]:  # warm up (the first setting timed would pay for it)
        cv2.imencode(".png", im)
    rows = {}
    for name, params in _settings().items():
        times, size = [], 0
        for _ in range(args.repeats):
            t = time.perf_counter()
            bufs = [cv2.imencode(".png", im, params)[1] for im in imgs]
            times.append((time.perf_counter() - t) / len(imgs) * 1e3)
            size = sum(len(b) for b in bufs)
        if not all(np.array_equal(cv2.imdecode(b, cv2.IMREAD_UNCHANGED), im) for b, im in zip(bufs, imgs)):
            sys.exit(f"{name}: does not decode to the same pixels")
        rows[name] = {
            "ms_per_image": round(statistics.median(times), 3),
            "kib_per_image": round(size / len(imgs) / 1024, 1),
            "params": params,
        }
    base = rows["opencv default (legacy)"]
    for r in rows.values():
        r["time_vs_default"] = round(r["ms_per_image"] / base["ms_per_image"], 3)
        r["size_vs_default"] = round(r["kib_per_image"] / base["kib_per_image"], 3)
    chosen = next((k for k, r in rows.items() if sorted(r["params"]) == sorted(_PARAMS)), None)
    print(
        json.dumps(
            {
                "bench": "png",
                "opencv": cv2.__version__,
                "python": platform.python_version(),
                "images": len(imgs),
                "size_px": list(imgs[0].shape),
                "repeats": args.repeats,
                "mf2_uses": chosen,
                "settings": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
