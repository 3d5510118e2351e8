"""The one pair renderer: a video decoded once, every window averaged (mf2.blur.render),
then each pair's mode finishes its blurry image from the pair's columns. ``mf2 simulate``
(rows from plans) and ``mf2 materialize`` (rows from a manifest) both render through it,
so a rebuilt pair is made by the very code that made it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Generator, Iterator, Sequence

import numpy as np

from mf2.blur.render import needed_regions, render_windows
from mf2.blur.windows import Window
from mf2.modes import get_mode
from mf2.video import VideoInfo, iter_frames
from mf2.video.framestore import FrameStore

PairColumns = Callable[[Window], tuple[str, dict]]  # a window -> its mode's name and its pair's columns


def _counted(frames: Iterator[np.ndarray], progress: Callable[[int], None] | None) -> Iterator[np.ndarray]:
    for f in frames:
        if progress:
            progress(1)
        yield f


def _frames(info: VideoInfo, windows: Sequence[Window], store: Path | None) -> Generator[np.ndarray, None, None]:
    kept = FrameStore.open(store, info.width, info.height) if store is not None else None
    if kept is not None and kept.covers(needed_regions(windows, info.width, info.height)):
        return kept.frames()
    return iter_frames(info)


def render_pairs(
    info: VideoInfo,
    windows: Sequence[Window],
    crf: str,
    out_size: int,
    columns: PairColumns,
    progress: Callable[[int], None] | None = None,
    store: Path | None = None,
) -> Iterator[tuple[Window, dict, np.ndarray, np.ndarray]]:
    """(window, its columns, blurry, sharp) for each window the video can make, in the order
    the windows close; ``progress`` is told of each decoded frame. Memory holds only the
    windows that are open, whatever the video's length. ``store``: where the landmark pass
    may have kept the video's face regions (mf2.video.framestore); they replace a second
    decode when they hold every pixel the windows read."""
    with contextlib.closing(_frames(info, windows, store)) as frames:
        for w, blurry, sharp in render_windows(_counted(frames, progress), windows, crf, out_size):
            mode, pair = columns(w)
            yield w, pair, get_mode(mode).blur(sharp, blurry, pair, crf), sharp
