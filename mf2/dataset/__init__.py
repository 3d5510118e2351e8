"""The dataset folder: its one owner, the only place that knows its file names (issue 32).

A dataset folder holds ``pairs.parquet`` (the manifest), ``failures.parquet``, ``removed.parquet``
(takedowns), the settings it was claimed with, the per-video ``parts/``, the cached
``landmarks/`` and flow tables, the PNGs under ``blurry/`` and ``sharp/`` (and, made with
``--neighbours``, ``prev/`` and ``next/``), and reports
(``contact_sheet.png``, ``stats/``). Every module reaches those names through here, so a change
of layout is one file.

- ``layout``: the names and paths (no I/O);
- ``folder``: the folder as a growing dataset: the lock, the settings claim, ``--replace``, the
  current parts;
- ``manifest``: a manifest as a ``Dataset`` (load, write, rewrite, safe relative paths, the
  takedown list);
- ``failures``: the failure records a run keeps beside its manifest.

The package sits just above ``mf2.schema`` (it reads and writes the tables schema declares)
and below everything that makes or reads datasets.
"""

from mf2.dataset.layout import (
    CONTACT_SHEET,
    FAILURES,
    FILE_KINDS,
    FLOW,
    FRAMES,
    IMAGE_KINDS,
    LANDMARKS,
    LOCK,
    NEIGHBOUR_KINDS,
    PAIRS,
    PARTS,
    REMOVED,
    SETTINGS,
    STATS,
    failures_path,
    flow_path,
    frame_store_path,
    frame_stores_dir,
    image_columns,
    image_rel,
    landmark_files,
    landmarks_path,
    lock_path,
    neighbour_columns,
    pairs_path,
    part_files,
    part_path,
    parts_dir,
    removed_path,
    row_images,
    settings_path,
    stats_dir,
)

__all__ = [
    "CONTACT_SHEET",
    "FAILURES",
    "FLOW",
    "FILE_KINDS",
    "FRAMES",
    "IMAGE_KINDS",
    "LANDMARKS",
    "LOCK",
    "NEIGHBOUR_KINDS",
    "PAIRS",
    "PARTS",
    "REMOVED",
    "SETTINGS",
    "STATS",
    "failures_path",
    "flow_path",
    "frame_store_path",
    "frame_stores_dir",
    "image_columns",
    "image_rel",
    "landmark_files",
    "landmarks_path",
    "lock_path",
    "neighbour_columns",
    "pairs_path",
    "part_files",
    "part_path",
    "parts_dir",
    "removed_path",
    "row_images",
    "settings_path",
    "stats_dir",
]
