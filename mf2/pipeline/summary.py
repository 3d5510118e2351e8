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
    n_filtered: int = 0  # turned away by --min-frames and the like (in failures.parquet, class filtered)
    n_pairs_dropped: int = 0  # pairs the pair filters dropped (--min-blur, --min-target-sharpness)

    def to_json(self) -> dict:
        """What scripts read: `--json` on stdout, each job of OUT/run.json."""
        return {
            "videos": self.n_videos,
            "pairs": self.n_pairs,
            "pairs_total": self.n_pairs_total,
            "ok": self.n_ok,
            "failed": self.n_failed,
            "filtered": self.n_filtered,
            "pairs_dropped": self.n_pairs_dropped,
            "resumed": self.n_resumed,
            "taken_down": self.n_removed_skipped,
            "windows_face_lost": self.windows_face_lost,
            "failures_by_class": self.failures_by_class,
            "no_pairs": self.notes,
            "pairs_path": str(self.pairs_path),
            "failures_path": str(self.failures_path),
            "stage_seconds": self.stage_seconds,
        }

    def problems(self) -> list[str]:
        """Why `--strict` would fail this run: a video failed, or the dataset has no pairs."""
        out = [f"{self.n_failed} of {self.n_videos} videos failed (see {self.failures_path})"] if self.n_failed else []
        if not (self.n_pairs if self.n_pairs_total is None else self.n_pairs_total):
            out.append("no pairs were made")
        return out

    def line(self) -> str:
        gone = f", {self.n_removed_skipped} taken down (skipped)" if self.n_removed_skipped else ""
        total = self.n_pairs if self.n_pairs_total is None else self.n_pairs_total
        kept = f" ({total} in the dataset)" if total != self.n_pairs else ""
        filtered = f", {self.n_filtered} filtered" if self.n_filtered else ""
        if self.n_pairs_dropped:
            kept += f", {self.n_pairs_dropped} dropped by the pair filters"
        return (
            f"{self.n_videos} videos: {self.n_ok} ok ({self.n_resumed} resumed), {self.n_failed} failed{filtered}{gone}; "
            f"{self.n_pairs} pairs{kept}, {self.windows_face_lost} windows skipped (no usable face; `mf2 stats` says why) -> {self.pairs_path}"
        )
