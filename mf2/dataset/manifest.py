"""Reading and writing a pair manifest as a dataset: the table, its metadata and its root folder.

A dataset is a folder holding ``pairs.parquet`` plus the PNGs its rows name by paths relative
to that folder. An exported manifest (``mf2 export --no-images``) is the same table without
the pixels; its root is wherever ``mf2 materialize`` rebuilds them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa

from mf2.atomic import write_parquet_atomic
from mf2.dataset.layout import pairs_path
from mf2.dataset.layout import removed_path as layout_removed_path
from mf2.errors import InputError, UsageError
from mf2.schema import REMOVED_SCHEMA, metadata, pair_params, read_metadata, read_table_checked, upgrade_pairs

PAIR_KINDS = ("pairs", "pairs-export")


@dataclass
class Dataset:
    table: pa.Table  # upgraded to the current PAIR_SCHEMA
    meta: dict[str, str]  # the file's mf2.* metadata
    path: Path  # the manifest file
    root: Path  # the folder relative paths resolve against

    @property
    def params(self) -> dict[str, Any]:
        return pair_params(self.meta) or {}

    @property
    def has_images(self) -> bool:
        return self.meta.get("mf2.images", "present") != "none"

    @property
    def schema_version(self) -> str:
        return self.meta.get("mf2.schema_version", "1.0")

    def json_meta(self, key: str, default: Any = None) -> Any:
        raw = self.meta.get(f"mf2.{key}")
        return default if raw is None else json.loads(raw)


def manifest_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = pairs_path(p)
    if not p.is_file():
        raise UsageError(f"{path}: no pair manifest here (expected a dataset folder or a .parquet file)")
    return p


def load(path: str | Path) -> Dataset:
    p = manifest_path(path)
    meta = read_metadata(p)  # one line for a corrupt file; refuses a newer major schema version
    kind = meta.get("mf2.kind")
    if kind not in PAIR_KINDS:
        raise InputError(f"{p}: not an mf2 pair manifest (mf2.kind = {kind!r})", "not-a-manifest")
    table = read_table_checked(p)  # every page: a corrupt body must not pass for a short dataset
    try:
        table = upgrade_pairs(table)
    except InputError as e:
        raise InputError(f"{p}: {e}", e.error_class) from None
    except (pa.ArrowException, ValueError) as e:
        raise InputError(
            f"{p}: not an mf2 pair manifest ({type(e).__name__}: {str(e)[:120]})", "not-a-manifest"
        ) from None
    return Dataset(table, meta, p, p.parent)


def videos_of(table: pa.Table) -> dict[str, str]:
    """video_id -> sha256 of the source file, as recorded in the rows."""
    out: dict[str, str] = {}
    for vid, sha in zip(table["video_id"].to_pylist(), table["video_sha256"].to_pylist()):
        out.setdefault(vid, sha)
    return dict(sorted(out.items()))


def pairs_metadata(table: pa.Table, params: dict | None, **extra: Any) -> dict[bytes, bytes]:
    """The key-value metadata every pair manifest carries (see manifests/SCHEMA.md)."""
    return metadata(extra.pop("kind", "pairs"), params, videos=videos_of(table), **extra)


def write(path: Path, table: pa.Table, meta: dict[bytes, bytes]) -> None:
    write_parquet_atomic(path, table.replace_schema_metadata(meta))


def rewrite(ds: Dataset, table: pa.Table, **changes: Any) -> None:
    """Rewrite a dataset's manifest keeping its metadata, with some keys changed."""
    old = {k.removeprefix("mf2."): v for k, v in ds.meta.items()}
    for k in ("kind", "schema_version", "version", "params", "videos"):
        old.pop(k, None)
    old.update({k: v for k, v in changes.items() if v is not None})
    for k in [k for k, v in changes.items() if v is None]:
        old.pop(k, None)
    write(ds.path, table, pairs_metadata(table, ds.params, kind=ds.meta.get("mf2.kind", "pairs"), **old))


def safe_rel(rel: str | None) -> PurePosixPath:
    """A manifest path as a relative POSIX path that cannot leave the dataset folder."""
    if not rel:
        raise InputError("empty path in manifest", "unsafe-path")
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or "\\" in rel or rel.startswith("~"):
        raise InputError(f"unsafe path in manifest: {rel!r} (must stay inside the dataset folder)", "unsafe-path")
    return p


# -- takedowns ---------------------------------------------------------------------------------


def removed_path(root: Path) -> Path:
    return layout_removed_path(root)


def read_removed(root: Path) -> list[dict]:
    p = removed_path(root)
    if not p.is_file():
        return []
    return read_table_checked(p).to_pylist()


def removed_ids(root: Path) -> set[str]:
    return {r["video_id"] for r in read_removed(root)}


def write_removed(root: Path, rows: list[dict]) -> None:
    write_parquet_atomic(
        removed_path(root),
        pa.Table.from_pylist(rows, schema=REMOVED_SCHEMA).replace_schema_metadata(metadata("removed")),
    )


__all__ = [
    "Dataset",
    "load",
    "manifest_path",
    "pairs_metadata",
    "read_removed",
    "removed_ids",
    "rewrite",
    "safe_rel",
    "videos_of",
    "write",
    "write_removed",
]
