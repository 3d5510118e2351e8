"""The dataset folder: the one place that knows its file names (issue 32, first step).

A dataset folder holds ``pairs.parquet`` (the manifest), ``failures.parquet``, ``removed.parquet``
(takedowns), the settings it was claimed with, the per-video ``parts/``, the cached
``landmarks/`` and flow tables, the PNGs under ``blurry/`` and ``sharp/``, and reports
(``contact_sheet.png``, ``stats/``). Every module reaches those names through here, so a change
of layout is one file.
"""

from mf2.dataset.layout import (CONTACT_SHEET, FAILURES, PAIRS, REMOVED, SETTINGS, failures_path, pairs_path,
                                removed_path, settings_path)

__all__ = ["CONTACT_SHEET", "FAILURES", "PAIRS", "REMOVED", "SETTINGS", "failures_path", "pairs_path",
           "removed_path", "settings_path"]
