"""Leaving the `mf2` process without tearing the interpreter down.

When a command has finished, Python's normal exit clears every module and frees every object
one by one. After a pipeline run (Dask, pyarrow, OpenCV, scenedetect: about 1,450 modules and
180,000 objects) that took 0.30-0.35 s of one core after the last line was printed (issue 35),
on every run. mypy leaves the same way (``mypy.util.hard_exit``). What the normal exit does
that anyone can see is done first, in its order: threads that are not daemons are joined
(threading's own shutdown step, which also stops idle thread pools), atexit handlers run
(logging's flush, multiprocessing's children, Dask's), and the standard streams are flushed.
mf2 closes every file it writes when it is written (mf2.atomic); a file some library left open
(its buffer flushed by the teardown when the file object was freed) is flushed here.
Only the `mf2` command leaves this way; ``mf2.cli.main`` called from Python returns as usual.
"""

from __future__ import annotations

import atexit
import gc
import io
import os
import sys
import threading
import warnings
from typing import NoReturn


def exit_now(code: str | int | None = 0) -> NoReturn:
    """Exit with ``code`` as ``sys.exit(code)`` would (None: 0; an int; anything else is
    printed to stderr and gives 1), without the interpreter's teardown."""
    shutdown = getattr(threading, "_shutdown", None)  # the interpreter's first exit step
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if shutdown is None or run_exitfuncs is None:  # another Python: the usual exit
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    shutdown()
    run_exitfuncs()
    _flush_open_files()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
            status = status or 1
    os._exit(status)


_BUFFERED = (io.BufferedWriter, io.BufferedRandom, io.TextIOWrapper)


def _flush_open_files() -> None:
    """Flush every buffered file still open, as freeing it in the teardown would (7 ms).
    Types are compared by the objects' own type, never ``isinstance`` with io's ABCs: that
    reads attributes of every object in the heap, and a deprecated one warns when read
    (torch's ``torch.distributed.reduce_op``: the warning became a command's last line)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = [f for f in gc.get_objects() if issubclass(type(f), _BUFFERED)]
    for f in files:
        if f is sys.stdout or f is sys.stderr:
            continue
        try:
            if not f.closed and f.writable():
                f.flush()
        except (OSError, ValueError):  # as the teardown, which ignores a file it cannot flush
            pass
