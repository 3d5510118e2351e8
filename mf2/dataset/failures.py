"""The failure records a run keeps beside its manifest (``failures.parquet``).

A video that failed, or that a video filter turned away, has one row (FAILURE_SCHEMA: stage,
class, message). The next run into the folder reads them back: it skips a video whose failure
was its input's fault while its file is unchanged, and keeps the records of videos it did not
see, so the file always describes every video the folder was asked to take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from mf2.atomic import write_parquet_atomic
from mf2.dataset.layout import failures_path
from mf2.schema import FAILURE_SCHEMA, metadata, read_parquet, try_read_metadata


def upgrade_failures(t: pa.Table) -> pa.Table:
    """A failures table of any 1.x schema with the current columns (missing ones null)."""
    for f in FAILURE_SCHEMA:
        if f.name not in t.column_names:
            t = t.append_column(f.name, pa.nulls(t.num_rows, f.type))
    return t.select(FAILURE_SCHEMA.names)


def read_failures(folder: Path) -> dict[str, dict]:
    """video_id -> its failure record; empty for a folder without a readable file (a zero-byte
    or corrupt file is as if absent: the run that rewrites it records what it sees)."""
    path = failures_path(folder)
    if try_read_metadata(path) is None:
        return {}
    try:
        t = upgrade_failures(read_parquet(path))
    except (pa.ArrowException, OSError):
        return {}
    return {r["video_id"]: r for r in t.to_pylist()}


def write_failures(folder: Path, rows: list[dict], params: dict[str, Any]) -> Path:
    """Replace the folder's failure records (atomically), sorted by video id."""
    path = failures_path(folder)
    rows = sorted(rows, key=lambda f: f["video_id"])
    write_parquet_atomic(
        path, pa.Table.from_pylist(rows, schema=FAILURE_SCHEMA).replace_schema_metadata(metadata("failures", params))
    )
    return path
