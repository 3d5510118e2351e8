"""A BASELINE, not mf2: the minimal hand-written PrAvg L=7 script that issue 35 timed mf2 against.

What a researcher would write in an afternoon: ffmpeg decodes to an RGB pipe (square pixels,
as mf2 decodes a video whose pixels are not); dlib's HOG
detector runs on every 10th frame (else the box comes from the last landmarks); the 68-point
fit runs on every frame; a 7-frame ring buffer is averaged in linear light; the crop is the
square around the middle frame's landmarks (margin 0.25), black where it leaves the frame
(as mf2's crop; a first version skipped such pairs and so timed a fifth of mf2's pairs on
these clips); INTER_AREA to 256 px; two PNGs per pair; one Parquet at the end. No shots, no repeats, no tracking checks, no resumable or
atomic writes, no hashes: it is the speed floor mf2's default path is measured against
(``bench/pipeline.py --reference``), never a tool to use.

    python bench/reference_pravg.py --out DIR CLIP [CLIP ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import deque
from pathlib import Path

import cv2
import dlib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
PNG = {"opencv": [], "paeth": [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH]}  # paeth: mf2.pngs
sys.path.insert(0, str(HERE.parent))

from mf2.faces.models import shape_predictor_68  # the model file only
from mf2.video import probe  # width/height and pixel aspect only

L, OUT, MARGIN, DETECT_EVERY = 7, 256, 0.25, 10
TO_LINEAR = ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4
TO_LINEAR[:11] = np.arange(11) / 255.0 / 12.92
TO_LINEAR = TO_LINEAR.astype(np.float32)


def to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    y = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(np.round(y * 255), 0, 255).astype(np.uint8)


def crop(frame: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The square, black where it leaves the frame (as mf2 pads, so both make the same pairs)."""
    h, w = frame.shape[:2]
    if x0 >= 0 and y0 >= 0 and x0 + side <= w and y0 + side <= h:
        return frame[y0 : y0 + side, x0 : x0 + side]
    out = np.zeros((side, side, 3), frame.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    return out


def frames(path: Path, w: int, h: int, square: bool = True):
    """RGB frames of w x h. ``square`` False: the video has non-square pixels (lp_d9: 512x480
    stored, sample aspect 15:16) and ffmpeg is asked for square ones at probe's w x h, as
    mf2's reader does; read at the stored size as w x h, every frame was cut wrongly and
    HOG found no face in the whole clip (every timing of this script before session 23)."""
    scale = [] if square else ["-vf", f"scale={w}:{h},setsar=1"]
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-threads", "1", "-i", str(path), *scale]
        + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        stdout=subprocess.PIPE,
    )
    size = w * h * 3
    while True:
        buf = proc.stdout.read(size)
        if len(buf) < size:
            break
        yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    proc.wait()


def run(path: Path, out: Path, detector, predictor, rows: list, png: list) -> None:
    info = probe(path)
    ring: deque = deque(maxlen=L)
    rect = None
    for t, frame in enumerate(frames(path, info.width, info.height, info.sar == 1)):
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if rect is None or t % DETECT_EVERY == 0:
            dets = detector(grey, 0)
            rect = max(dets, key=lambda r: r.area()) if dets else None
        if rect is None:
            ring.clear()
            continue
        shape = predictor(grey, rect)
        lm = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
        lo, hi = lm.min(0), lm.max(0)
        rect = dlib.rectangle(*(int(v) for v in (lo[0], lo[1], hi[0], hi[1])))
        ring.append((t, frame, lm))
        if len(ring) < L:
            continue
        mid_t, mid, mlm = ring[L // 2]
        lo, hi = mlm.min(0), mlm.max(0)
        side = int(round(float(max(hi - lo)) * (1 + 2 * MARGIN)))
        x0, y0 = int(round((lo[0] + hi[0]) / 2 - side / 2)), int(round((lo[1] + hi[1]) / 2 - side / 2))
        acc = sum(TO_LINEAR[crop(f, x0, y0, side)] for _, f, _ in ring) / L
        blurry = cv2.resize(to_srgb(acc), (OUT, OUT), interpolation=cv2.INTER_AREA)
        sharp = cv2.resize(crop(mid, x0, y0, side), (OUT, OUT), interpolation=cv2.INTER_AREA)
        name = f"{path.stem}_{mid_t:06d}"
        cv2.imwrite(str(out / f"{name}_blurry.png"), blurry[..., ::-1], png)
        cv2.imwrite(str(out / f"{name}_sharp.png"), sharp[..., ::-1], png)
        rows.append({"video": path.stem, "frame": mid_t, "x0": x0, "y0": y0, "size": side})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("clips", type=Path, nargs="+")
    ap.add_argument(
        "--png",
        choices=sorted(PNG),
        default="opencv",
        help="PNG settings: OpenCV's default (the script as issue 35 timed it) or mf2's (paeth filter: "
        "files 18-23 %% smaller, 10-14 %% more encoding time)",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cv2.setNumThreads(1)
    detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(shape_predictor_68()))
    rows: list = []
    for clip in args.clips:
        run(clip, args.out, detector, predictor, rows, PNG[args.png])
    pq.write_table(pa.Table.from_pylist(rows), args.out / "pairs.parquet")
    print(len(rows))


if __name__ == "__main__":
    main()
