"""The one pair renderer: a video decoded once, every window averaged (mf2.blur.render),
then each pair's mode finishes its blurry image from the pair's columns. ``mf2 simulate``
(rows from plans) and ``mf2 materialize`` (rows from a manifest) both render through it,
so a rebuilt pair is made by the very code that made it. With ``neighbours`` each pair
also gets the exposures beside its window (mf2.blur.windows.neighbour_windows), rendered in
the same pass; the pair then leaves once its later neighbour has closed, in the same order.
"""

from __future__ import annotations

import collections
import contextlib
from pathlib import Path
from typing import Callable, Generator, Iterator, NamedTuple, Sequence

import numpy as np

from mf2.blur.render import needed_regions, render_windows
from mf2.blur.windows import Window
from mf2.modes import get_mode
from mf2.video import VideoInfo, iter_frames
from mf2.video.framestore import FrameStore

PairColumns = Callable[[Window], tuple[str, dict]]  # a window -> its mode's name and its pair's columns
Neighbours = Callable[[Window], tuple[Window | None, Window | None]]  # a pair's window -> its prev, next


class Rendered(NamedTuple):
    """One pair as rendered: its window, its columns, its images (uint8 RGB squares) and, when
    asked for and the video holds them, the exposures just before and after its window."""

    window: Window
    pair: dict
    blurry: np.ndarray
    sharp: np.ndarray
    prev: np.ndarray | None = None
    next: np.ndarray | None = None


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
    neighbours: Neighbours | None = None,
) -> Iterator[Rendered]:
    """Each pair the video can make, in the order the windows close; ``progress`` is told of
    each decoded frame. Memory holds only the windows that are open (and, with ``neighbours``,
    the pairs waiting for their later neighbour), whatever the video's length. ``store``:
    where the landmark pass may have kept the video's face regions (mf2.video.framestore);
    they replace a second decode when they hold every pixel the windows read."""
    beside = {id(w): neighbours(w) for w in windows} if neighbours else {}
    owner = {id(n): (id(w), k) for w in windows for k, n in enumerate(beside.get(id(w), ())) if n is not None}
    every = [*windows, *(n for pair in beside.values() for n in pair if n is not None)]
    got: dict[int, list[np.ndarray | None]] = {}  # a pair's window -> its prev and next images so far
    waiting: collections.deque[Rendered] = collections.deque()
    with contextlib.closing(_frames(info, every, store)) as frames:
        for w, blurry, sharp in render_windows(_counted(frames, progress), every, crf, out_size):
            if id(w) in owner:
                pid, k = owner[id(w)]
                got.setdefault(pid, [None, None])[k] = blurry
            else:
                mode, pair = columns(w)
                waiting.append(Rendered(w, pair, get_mode(mode).blur(sharp, blurry, pair, crf), sharp))
            while waiting and _complete(waiting[0].window, beside, got):
                yield _with_neighbours(waiting.popleft(), got)
    while waiting:  # the video ended before a later neighbour closed: the pair goes without it
        yield _with_neighbours(waiting.popleft(), got)


def _complete(w: Window, beside: dict, got: dict[int, list[np.ndarray | None]]) -> bool:
    have = got.get(id(w), [None, None])
    return all(n is None or img is not None for n, img in zip(beside.get(id(w), (None, None)), have))


def _with_neighbours(r: Rendered, got: dict[int, list[np.ndarray | None]]) -> Rendered:
    prev, nxt = got.pop(id(r.window), [None, None])
    return r._replace(prev=prev, next=nxt)
