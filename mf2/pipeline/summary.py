"""What one job over many videos did: the line the CLI prints and the JSON ``mf2 run`` writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunSummary:
    n_videos: int
    n_ok: int
    n_failed: int
    n_resumed: int
    n_pairs: int
    windows_face_lost: int
    pairs_path: Path
    failures_path: Path
    n_removed_skipped: int = 0  # taken down earlier (removed.parquet): not rebuilt
    stage_seconds: dict = field(default_factory=dict)  # summed over videos (worker time, not wall time)
    failures_by_class: dict = field(default_factory=dict)
    n_pairs_total: int | None = None  # the folder's manifest: this run's pairs and earlier runs'
    failures: list = field(default_factory=list)  # this run's failure records
    notes: dict = field(default_factory=dict)  # video_id -> why it gave no pairs

    def line(self) -> str:
        gone = f", {self.n_removed_skipped} taken down (skipped)" if self.n_removed_skipped else ""
        total = self.n_pairs if self.n_pairs_total is None else self.n_pairs_total
        kept = f" ({total} in the dataset)" if total != self.n_pairs else ""
        return (f"{self.n_videos} videos: {self.n_ok} ok ({self.n_resumed} resumed), {self.n_failed} failed{gone}; "
                f"{self.n_pairs} pairs{kept}, {self.windows_face_lost} windows skipped (no usable face; `mf2 stats` says why) -> {self.pairs_path}")
