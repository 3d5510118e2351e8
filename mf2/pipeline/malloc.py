"""glibc's allocator settings on mf2's Dask workers (issue 35).

Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (so that memory freed by
finished tasks goes back to the OS). The render stage allocates and frees many frame-sized
temporaries per window; with that threshold glibc hands each one back with ``madvise``/``brk``
and faults it in again on the next window: on 8 shared clips that cost about 30 s of system
CPU (render 30.6 -> 48.7 s in one process with the same variable), and mf2's default two
workers burned 1.58x the CPU per frame of a hand-written script. A trim threshold of 128 MiB
and a fixed mmap threshold of 32 MiB (blocks above it are mapped and unmapped on their own, so
a worker that once held a large video's frames does not keep them) gave bit-identical pairs at
about 1.5x the speed (issue 35's measurement; ``bench/pipeline.py --reference`` repeats it).

Set with ``mallopt`` when each worker starts (mf2.pipeline.threads.ThreadLimits, registered on
every cluster mf2 uses: its LocalCluster, and a ``--scheduler`` cluster such as the compose
file's), so no environment variable has to reach the worker's start. Elsewhere than glibc
(macOS, musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import sys

TRIM_THRESHOLD = 128 << 20
MMAP_THRESHOLD = 32 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_applied: dict | None = None


def tune_malloc(trim: int = TRIM_THRESHOLD, mmap: int = MMAP_THRESHOLD) -> dict | None:
    """Sets the thresholds in this process; returns them, or None where glibc is not there."""
    global _applied
    if not sys.platform.startswith("linux"):
        return None
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(_M_TRIM_THRESHOLD, trim) != 1 or mallopt(_M_MMAP_THRESHOLD, mmap) != 1:
        return None
    _applied = {"trim_threshold": trim, "mmap_threshold": mmap}
    return dict(_applied)


def current_malloc() -> dict | None:
    """What ``tune_malloc`` set in this process (None: nothing)."""
    return None if _applied is None else dict(_applied)
