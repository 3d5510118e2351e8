"""Stream a video once and turn planned windows into (blurry, sharp) crops.

Each open window keeps one float32 accumulator of its crop, in linear light. Memory is
(open windows) x (crop area), independent of the video's length.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

from mf2.blur.crf import decode_lut, encode
from mf2.blur.windows import Window
from mf2.faces.crop import Crop, resize_to
from mf2.video.framestore import Rect


def needed_regions(windows: Sequence[Window], width: int, height: int) -> dict[int, Rect]:
    """Per frame, the rectangle (x0, y0, x1, y1) of it that ``render_windows`` reads: the
    bounding box of the crops of the windows it belongs to, inside the frame."""
    out: dict[int, Rect] = {}
    for w in windows:
        c = w.crop
        r = (max(0, c.x0), max(0, c.y0), min(width, c.x0 + c.size), min(height, c.y0 + c.size))
        for f in w.frames:
            o = out.get(f)
            out[f] = r if o is None else (min(o[0], r[0]), min(o[1], r[1]), max(o[2], r[2]), max(o[3], r[3]))
    return out


def render_windows(
    frames: Iterable[np.ndarray], windows: Sequence[Window], crf: str, out_size: int
) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
    """Yield (window, blurry, sharp) as uint8 RGB ``out_size`` squares, in order of window end."""
    if not windows:
        return
    lut = decode_lut(crf)
    members: dict[int, list[int]] = defaultdict(list)
    for wi, w in enumerate(windows):
        for f in w.frames:
            members[f].append(wi)
    acc: dict[int, np.ndarray] = {}
    sharp: dict[int, np.ndarray] = {}
    last = max(w.end for w in windows)
    for idx, frame in enumerate(frames):
        wis = members.get(idx)
        if wis:
            # Linearise once the union of this frame's crops (clipped to the frame); the
            # crops of neighbouring windows nearly coincide. Outside the frame stays 0, which
            # is also the linear value of code 0, so padding is unchanged.
            h, w_ = frame.shape[:2]
            x0 = max(0, min(windows[i].crop.x0 for i in wis))
            y0 = max(0, min(windows[i].crop.y0 for i in wis))
            x1 = min(w_, max(windows[i].crop.x0 + windows[i].crop.size for i in wis))
            y1 = min(h, max(windows[i].crop.y0 + windows[i].crop.size for i in wis))
            # cv2.LUT with a float32 table is the same gather as lut[...], ~4x faster
            lin = cv2.LUT(frame[y0:y1, x0:x1], lut) if x1 > x0 and y1 > y0 else np.zeros((1, 1, 3), np.float32)
        for wi in wis or ():
            w = windows[wi]
            # summed straight into the window's accumulator: a crop that leaves the frame (a
            # close-up's margins) cost a zero-padded copy of every frame (issue 35)
            crop = Crop(w.crop.x0 - x0, w.crop.y0 - y0, w.crop.size)
            crop.check_fits(frame.shape)
            if wi not in acc:
                acc[wi] = np.zeros((crop.size, crop.size, 3), np.float32)
            crop.add_to(acc[wi], lin)
            if idx == w.center:
                sharp[wi] = w.crop.take(frame).copy()
            if idx == w.end:
                blurry = encode(acc.pop(wi) / np.float32(len(w.frames)), crf)
                yield w, resize_to(blurry, out_size), resize_to(sharp.pop(wi), out_size)
        if idx >= last:
            break
