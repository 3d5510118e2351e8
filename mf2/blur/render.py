"""Stream a video once and turn planned windows into (blurry, sharp) crops.

Each open window keeps one float32 accumulator of its crop, in linear light. Memory is
(open windows) x (crop area), independent of the video's length.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Iterator

import numpy as np

from mf2.blur.crf import decode_lut, encode
from mf2.blur.crop import resize_to
from mf2.blur.windows import Window


def render_windows(
    frames: Iterable[np.ndarray], windows: list[Window], crf: str, out_size: int
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
        for wi in members.get(idx, ()):
            w = windows[wi]
            region = w.crop.take(frame)
            if wi in acc:
                acc[wi] += lut[region]
            else:
                acc[wi] = lut[region]  # fancy indexing returns a fresh array
            if idx == w.center:
                sharp[wi] = region.copy()
            if idx == w.end:
                blurry = encode(acc.pop(wi) / len(w.frames), crf)
                yield w, resize_to(blurry, out_size), resize_to(sharp.pop(wi), out_size)
        if idx >= last:
            break
