"""Atomic file writes: a reader (or a resumed run) never sees a half-written file.

The temporary file gets the mode a plain ``open()`` would have given the target
(0666 less the umask): ``mkstemp`` makes 0600 files, and a dataset on a group server or
written from a container must stay readable by the people it is shared with.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq


def _current_umask() -> int:
    # os.umask can only be read by setting it; set it straight back. Read on each call
    # (cheap) because a library user may change it between writes.
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """What ``open(path, "w")`` would give a new file now."""
    return 0o666 & ~_current_umask()


def _tmp_beside(path: Path) -> Path:
    # Same directory as the target so os.replace is a rename on one filesystem.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
    finally:
        os.close(fd)
    return Path(name)


def write_atomic(path: Path, writer: Callable[[Path], object]) -> None:
    """Call ``writer(tmp)`` then rename tmp over ``path``; the tmp file is removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(path)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_parquet_atomic(path: Path, table: pa.Table) -> None:
    write_atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def clean_stale_tmp(folder: Path) -> int:
    """Remove temporaries left by a killed run; returns how many were removed."""
    n = 0
    if folder.is_dir():
        for p in folder.rglob(".*.tmp"):
            if p.is_file() or p.is_symlink():
                p.unlink(missing_ok=True)
                n += 1
    return n
