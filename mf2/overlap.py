"""Overlap a stream's per-item work with the producing of the next items, in order.

Rendering a pair (decode, average, resize) and finishing it (measures, two PNG encodes, two
atomic writes) are about equal halves of simulate's work, and the finishing half is OpenCV,
hashlib and file writes, which all release the GIL. Finishing pairs in a helper thread while
the next ones render keeps a second core busy in process (``mf2 simulate --workers 0``, the
API's default) and fills a Dask worker's waits; results come back in the items' order, so
outputs are those of the plain loop, byte for byte. ``concurrent.futures``' ``map`` submits
every item at once (a whole video's pairs in memory); this keeps at most ``ahead`` in flight.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], threads: int, ahead: int = 4) -> Iterator[R]:
    """``fn(item)`` for each item, in order; with ``threads`` ≥ 1 helper threads and at most
    ``ahead`` items submitted but not yet yielded (memory stays bounded). ``threads`` 0 is the
    plain loop. An exception in ``fn`` is raised here, at its item, after the items before it."""
    if threads < 1:
        yield from map(fn, items)
        return
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="mf2-overlap") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:  # a consumer that stops early, or an error: nothing more starts
                f.cancel()
