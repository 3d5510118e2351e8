"""The names of a dataset folder's files (see the package's docstring)."""

from __future__ import annotations

from pathlib import Path

PAIRS = "pairs.parquet"  # the manifest: one row per pair (manifests/SCHEMA.md)
FAILURES = "failures.parquet"  # videos that failed or were filtered, with their class
REMOVED = "removed.parquet"  # videos taken down (mf2 remove)
SETTINGS = ".mf2-settings.json"  # the settings the folder was claimed with, before its first part
CONTACT_SHEET = "contact_sheet.png"


def pairs_path(folder: Path) -> Path:
    return folder / PAIRS


def failures_path(folder: Path) -> Path:
    return folder / FAILURES


def removed_path(folder: Path) -> Path:
    return folder / REMOVED


def settings_path(folder: Path) -> Path:
    return folder / SETTINGS
