"""Take videos down from a dataset: rows, images and cached per-video tables, consistently.

Order matters for a crash at any moment: the takedown list is written first (so a later
`mf2 simulate` into the same folder will not rebuild the video, and `verify` flags any
remains), then the manifest without the rows, then the files. Re-running finishes the job.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from mf2.dataset import FILE_KINDS
from mf2.dataset.manifest import load, read_removed, rewrite, write_removed
from mf2.errors import UsageError
from mf2.modes import mode_names
from mf2.sources import is_safe_id

# Per-video artefacts under a dataset folder, by video id.
_FOLDERS = FILE_KINDS
_TABLES = ("landmarks", "flow") + tuple(f"parts/{m}" for m in mode_names())


@dataclass
class RemoveSummary:
    video_ids: list[str]
    n_pairs: int
    n_files: int


def remove(dataset: str | Path, video_ids: list[str], reason: str = "") -> RemoveSummary:
    for vid in video_ids:
        if not is_safe_id(vid):
            raise UsageError(f"--video-id {vid!r}: not a video id (^[A-Za-z0-9_-]{{1,64}}$)")
    ds = load(dataset)
    root = ds.root
    present = set(ds.table["video_id"].to_pylist())
    known = {p.name for f in _FOLDERS if (root / f).is_dir() for p in (root / f).iterdir()}
    known |= {p.stem for t in _TABLES if (root / t).is_dir() for p in (root / t).glob("*.parquet")}
    already = {r["video_id"] for r in read_removed(root)}
    unknown = [v for v in video_ids if v not in present | known | already]
    if unknown:
        raise UsageError(f"--video-id {', '.join(unknown)}: not in {ds.path}")

    targets = _targets(root, video_ids)  # everything is checked before anything changes
    mask = pc.is_in(ds.table["video_id"], pa.array(video_ids, pa.string()))
    n_pairs = int(pc.sum(mask).as_py() or 0)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    counts = Counter(ds.table.filter(mask)["video_id"].to_pylist())
    rows = read_removed(root)
    rows += [
        {"video_id": v, "removed_at": now, "reason": reason or None, "n_pairs": counts.get(v, 0)}
        for v in video_ids
        if v not in already
    ]
    write_removed(root, rows)
    if n_pairs:
        rewrite(ds, ds.table.filter(pc.invert(mask)))
    n_files = 0
    for p in targets:
        n_files += _delete(p)
    return RemoveSummary(list(video_ids), n_pairs, n_files)


def _targets(root: Path, video_ids: list[str]) -> list[Path]:
    """The paths to delete, each checked to be deletable (its folder writable) now, so a
    takedown never stops half-way after the manifest has been rewritten."""
    found: list[Path] = []
    for vid in video_ids:
        for f in _FOLDERS:
            found.append(root / f / vid)
        for t in _TABLES:
            found.append(root / t / f"{vid}.parquet")
    found = [p for p in found if p.is_symlink() or p.exists()]
    for p in found:
        if not os.access(p.parent, os.W_OK | os.X_OK):
            raise UsageError(f"{p}: cannot be deleted (its folder is not writable); nothing was changed")
        if p.is_dir() and not p.is_symlink():
            for d, dirs, _ in os.walk(p):
                if not os.access(d, os.W_OK | os.X_OK):
                    raise UsageError(f"{d}: cannot be deleted from (not writable); nothing was changed")
    return found


def _delete(p: Path) -> int:
    """Delete one target; a symlink (to a folder or a file) is unlinked, never followed: the
    files it points to belong to someone else."""
    if p.is_symlink() or p.is_file():
        p.unlink(missing_ok=True)
        return 1
    if p.is_dir():
        n = sum(1 for q in p.rglob("*") if q.is_file() or q.is_symlink())
        shutil.rmtree(p)
        return n
    return 0
