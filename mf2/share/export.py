"""Export a dataset: the manifest alone (what labs share) or a self-contained copy of a subset."""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mf2.atomic import write_atomic
from mf2.dataset import FILE_KINDS, pairs_path
from mf2.dataset.manifest import Dataset, load, pairs_metadata, safe_rel, write
from mf2.errors import UsageError


@dataclass
class ExportSummary:
    n_pairs: int
    n_files: int
    path: Path


def select_splits(table: pa.Table, splits: tuple[str, ...]) -> pa.Table:
    if not splits:
        return table
    present = set(table["split"].drop_null().to_pylist())
    unknown = [s for s in splits if s not in present]
    if unknown:
        raise UsageError(
            f"--split {', '.join(unknown)}: no pair has that split (present: "
            f"{', '.join(sorted(present)) or 'none; run mf2 split first'})"
        )
    return table.filter(pc.is_in(table["split"], pa.array(list(splits), pa.string())))


def export(
    dataset: str | Path, out: Path, images: bool = True, splits: tuple[str, ...] = (), link: bool = False
) -> ExportSummary:
    """Without images: ``out`` is a .parquet file, every row kept (hashes, frames, crops...),
    marked ``mf2.images = none`` so tools know the pixels are to be materialised. With images:
    ``out`` is a new dataset folder with the PNGs copied (or hard-linked) next to its manifest."""
    ds = load(dataset)
    table = select_splits(ds.table, splits)
    extra: dict[str, Any] = {
        k.removeprefix("mf2."): v
        for k, v in ds.meta.items()
        if k not in ("mf2.kind", "mf2.schema_version", "mf2.version", "mf2.params", "mf2.videos", "mf2.images")
    }
    if splits:
        extra["exported_splits"] = list(splits)
    if not images:
        if out.suffix != ".parquet":
            raise UsageError(f"--out {out}: with --no-images the output is one .parquet file")
        out.parent.mkdir(parents=True, exist_ok=True)
        write(out, table, pairs_metadata(table, ds.params, kind="pairs-export", images="none", **extra))
        return ExportSummary(table.num_rows, 0, out)
    return write_folder(ds, table, out, link, extra)


def write_folder(ds: Dataset, table: pa.Table, out: Path, link: bool, extra: dict) -> ExportSummary:
    """``table``'s rows of ``ds`` as a new dataset folder: their PNGs copied, or hard-linked
    (the same files, no space taken; copied where the folder is on another file system), and
    the manifest written last, so a stopped run is finished by running it again."""
    if not ds.has_images:
        raise UsageError(f"{ds.path}: has no images to export; mf2 materialize it first")
    marker = begin_export(out)
    n = 0
    for kind in FILE_KINDS:
        for rel in table[f"{kind}_path"].to_pylist():
            if rel is None:
                continue  # a pair without this neighbour
            src, dst = ds.root / safe_rel(rel), out / safe_rel(rel)
            n += 1
            if dst.is_file() and dst.stat().st_size == src.stat().st_size:
                continue  # copied by the earlier, interrupted export
            dst.parent.mkdir(parents=True, exist_ok=True)
            if link:
                dst.unlink(missing_ok=True)
                try:
                    os.link(src, dst)
                    continue
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                        raise
            write_atomic(dst, partial(shutil.copyfile, src))
    write(pairs_path(out), table, pairs_metadata(table, ds.params, **extra))
    marker.unlink()
    return ExportSummary(table.num_rows, n, pairs_path(out))


_INCOMPLETE = ".mf2-export-incomplete"


def begin_export(out: Path) -> Path:
    """Refuse a folder holding anything but an unfinished export, and mark it unfinished; the
    caller removes the returned marker when done. An export stopped half-way (disk full,
    killed) is finished by re-running it."""
    marker = out / _INCOMPLETE
    if out.exists() and any(out.iterdir()) and not marker.exists():
        if pairs_path(out).is_file():
            raise UsageError(f"--out {out}: already holds a finished dataset; give a new folder")
        raise UsageError(f"--out {out}: exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return marker
