"""A dataset folder grows by runs: its manifest is the union of its part files.

Each finished video leaves ``parts/<mode>/<video_id>.parquet``. ``pairs.parquet`` is rebuilt
from every part on disk whose parameters are the dataset's, not only from the videos of the
run that writes it, so ``simulate --videos A`` then ``--videos B`` into one folder gives A and
B, in the same rows as one run over both (rows are ordered by video id). Runs that would mix
settings are refused before any work, naming the setting; ``--replace`` starts the folder
over. Two runs writing one folder at once take turns on a lock file while they rebuild the
manifest, and each rebuild reads every part already on disk, so neither loses the other's rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import random
import shutil
import time
from pathlib import Path
from typing import IO, Any, Iterator

import pyarrow as pa

from mf2.atomic import write_bytes_atomic
from mf2.dataset.layout import (
    CONTACT_SHEET,
    FAILURES,
    FILE_KINDS,
    PAIRS,
    PARTS,
    SETTINGS,
    STATS,
    lock_path,
    pairs_path,
    parts_dir,
)
from mf2.errors import UsageError
from mf2.schema import pair_params, params_json, read_parquet, try_read_metadata

# What --replace clears. The landmark and flow caches stay: they are keyed by their own
# parameters and the video's hash, so they are reused or recomputed as needed.
SETTINGS_NAME = SETTINGS  # the settings a folder was claimed with, before its first part
_DATASET_FILES = (PAIRS, FAILURES, CONTACT_SHEET, SETTINGS_NAME)
_DATASET_DIRS = (PARTS, *FILE_KINDS, STATS)


@contextlib.contextmanager
def dataset_lock(out: Path) -> Iterator[None]:
    """Exclusive while held, across processes on this machine (and on NFS with lockd)."""
    with _open_lock(out) as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _open_lock(out: Path) -> IO[str]:
    """The lock file, opened (made if new). Another run's ``check_writable_dir`` may remove
    the folder it made, empty, between our mkdir and our open (two runs started together into
    one new folder): the folder is then made again. Once the lock file is in it, the folder is
    not empty and stays."""
    for attempt in range(50):
        try:  # mkdir too: a parent the other run made can vanish under it the same way, and a
            # folder removed between mkdir's "exists" and its check reads as FileExistsError
            out.mkdir(parents=True, exist_ok=True)
            return open(lock_path(out), "a+")
        except (FileNotFoundError, FileExistsError):
            if attempt == 49:  # a folder removed 50 times running: the error is real
                raise
            time.sleep(random.uniform(0, 0.01))
    raise AssertionError("unreachable")


def dataset_params(out: Path) -> dict[str, Any] | None:
    """The settings the folder's pairs were made with: from its manifest, or (a run killed
    before it wrote one) from any part file. None for a new or empty folder."""
    md = try_read_metadata(pairs_path(out))
    if md is not None and md.get("mf2.kind") == "pairs" and md.get("mf2.params"):
        return pair_params(md)
    for p in sorted(parts_dir(out).glob("*/*.parquet")):
        params = pair_params(try_read_metadata(p))
        if params:
            return params
    try:  # claimed by a run that has not finished a video yet (prepare)
        claimed = json.loads((out / SETTINGS_NAME).read_text())
        return claimed if isinstance(claimed, dict) else None
    except (OSError, ValueError):
        return None


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every setting that differs, dotted for nested ones."""
    a, b = _flat(old), _flat(new)
    return [
        f"{k}: {json.dumps(a.get(k))} -> {json.dumps(b.get(k))}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def prepare(out: Path, params: dict[str, Any], replace: bool, option: str = "--out") -> None:
    """Refuse (before any work) a run whose settings differ from the folder's pairs, or clear
    the folder when asked to replace it. The check and the claim happen under the dataset
    lock: a new folder is claimed with this run's settings (``SETTINGS_NAME``) before the lock
    is released, so of two runs with different settings started together into one new folder,
    one goes on and the other is refused (issue 33: both used to exit 0, the manifest holding
    one of them)."""
    with dataset_lock(out):
        old = dataset_params(out)
        if old is None or params_json(old) == params_json(params):
            if old is None:
                write_bytes_atomic(out / SETTINGS_NAME, params_json(params).encode())
            return
        diff = differences(old, params)
        if not replace:
            shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
            raise UsageError(
                f"{option} {out}: holds pairs made with other settings ({shown}); use the same "
                "settings to add videos, another folder, or --replace to start this one over"
            )
        for name in _DATASET_FILES:
            (out / name).unlink(missing_ok=True)
        for name in _DATASET_DIRS:
            d = out / name
            if d.is_symlink():
                d.unlink()
            elif d.is_dir():
                shutil.rmtree(d)
        write_bytes_atomic(out / SETTINGS_NAME, params_json(params).encode())


def identities_in(pairs_path: Path) -> dict[str, str | None]:
    """video_id -> identity recorded in an existing manifest (for parts of earlier runs)."""
    if try_read_metadata(pairs_path) is None:
        return {}
    try:
        t = read_parquet(pairs_path, columns=["video_id", "identity"])
    except (pa.ArrowException, OSError, KeyError):
        return {}
    return dict(zip(t["video_id"].to_pylist(), t["identity"].to_pylist()))


def current_parts(out: Path, mode: str, params: dict[str, Any], exclude: set[str]) -> list[tuple[str, pa.Table]]:
    """(video_id, part) for every readable part made with ``params``, sorted by video id."""
    want = params_json(params)
    found = []
    for p in sorted(parts_dir(out, mode).glob("*.parquet")):
        if p.stem in exclude:
            continue
        if params_json(pair_params(try_read_metadata(p))) != want:
            continue
        try:
            found.append((p.stem, read_parquet(p)))
        except (pa.ArrowException, OSError):
            continue  # unreadable: its video is redone by the next run, as if never finished
    return found
