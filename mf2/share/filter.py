"""A filtered dataset: the pairs of a dataset that pass the pair filters, after the fact
(issue 31). The same rules as ``mf2 simulate --min-target-sharpness/--min-blur``, on the
manifest's measures (mf2.blur.measures), so a lab can try thresholds without simulating
again. The result is a dataset like any other (verifiable, exportable, splittable): its PNGs
are hard links to the source's files (the same images, no space taken) and its metadata
records the filter, where the pairs came from and how many each rule dropped.

Pairs made before the measures existed (schema < 1.8) are measured here from their PNGs
(the image measures and the ranks; ``fit_residual`` and ``bits_per_pixel`` need the source
and stay null).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

from mf2.blur.measures import pair_measures, ranks
from mf2.dataset.manifest import Dataset, load, safe_rel
from mf2.errors import UsageError
from mf2.share.export import ExportSummary, write_folder

IMAGE_MEASURES = ("target_sharpness", "blur_psnr", "blur_ssim", "saturated_share")


@dataclass(frozen=True)
class PairFilter:
    """The rules, as ``mf2 simulate`` names them (mf2.params); 0 turns one off."""

    min_target_sharpness: float = 0.0  # sharpness_ratio: share of the neighbouring targets' sharpness
    min_target_sharpness_abs: float = 0.0  # target_sharpness
    min_blur: float = 0.0  # blur_psnr at or above this (dB) is nearly the target

    def validate(self) -> None:
        if not 0 <= self.min_target_sharpness <= 1:
            raise UsageError(f"--min-target-sharpness {self.min_target_sharpness}: must be between 0 and 1")
        if self.min_target_sharpness_abs < 0 or self.min_blur < 0:
            raise UsageError("--min-target-sharpness-abs and --min-blur must be >= 0 (0: off)")
        if not any(asdict(self).values()):
            raise UsageError("no filter given: --min-target-sharpness, --min-target-sharpness-abs or --min-blur")

    def dropped_by(self, table: pa.Table) -> dict[str, np.ndarray]:
        """Per rule that is on, the rows it drops (a row may fail several)."""
        col = {
            c: table[c].to_numpy(zero_copy_only=False).astype(np.float64)
            for c in ("sharpness_ratio", "target_sharpness", "blur_psnr")
        }
        out = {}
        if self.min_target_sharpness:
            out["min_target_sharpness"] = col["sharpness_ratio"] < self.min_target_sharpness
        if self.min_target_sharpness_abs:
            out["min_target_sharpness_abs"] = col["target_sharpness"] < self.min_target_sharpness_abs
        if self.min_blur:
            out["min_blur"] = col["blur_psnr"] >= self.min_blur
        return out


@dataclass
class FilterSummary:
    n_in: int
    n_kept: int
    dropped: dict[str, int]  # per rule (a pair failing two rules counts in both)
    n_measured: int  # pairs measured here (made before schema 1.8)
    export: ExportSummary


def _image(root: Path, rel: str) -> np.ndarray:
    img = cv2.imread(str(root / safe_rel(rel)), cv2.IMREAD_COLOR)
    if img is None:
        raise UsageError(f"{root / rel}: not a readable image (run mf2 verify)")
    return img[..., ::-1]


def with_measures(ds: Dataset) -> tuple[pa.Table, int]:
    """The manifest with every pair's image measures, and its ranks in its shot: measured
    from the PNGs where a row lacks them. Returns the table and how many rows were measured."""
    t = ds.table
    missing = np.flatnonzero(t["target_sharpness"].is_null().to_numpy(zero_copy_only=False))
    if len(missing) == 0:
        return t, 0
    cols = {c: t[c].to_pylist() for c in IMAGE_MEASURES}
    paths = t.select(["blurry_path", "sharp_path"]).to_pylist()
    for i in missing:
        m = pair_measures(_image(ds.root, paths[i]["blurry_path"]), _image(ds.root, paths[i]["sharp_path"]), None, None)
        for c in IMAGE_MEASURES:
            cols[c][i] = m[c]
    keys = t.select(["video_id", "shot", "face_id", "center_frame"]).to_pylist()
    rank, ratio = ranks(
        [(k["video_id"], k["shot"], k["face_id"]) for k in keys],
        cols["target_sharpness"],
        [k["center_frame"] for k in keys],
    )
    cols["sharpness_rank"], cols["sharpness_ratio"] = rank.tolist(), ratio.tolist()
    for c, v in cols.items():
        t = t.set_column(t.schema.get_field_index(c), c, pa.array(v, pa.float32()))
    return t, len(missing)


def filter_dataset(dataset: str | Path, out: Path, rule: PairFilter) -> FilterSummary:
    """Write the pairs of ``dataset`` that pass ``rule`` as a new dataset folder ``out``."""
    rule.validate()
    ds = load(dataset)
    table, measured = with_measures(ds)
    drops = rule.dropped_by(table)
    gone = np.zeros(table.num_rows, bool)
    for d in drops.values():
        gone |= d
    kept = table.filter(pa.array(~gone))
    extra: dict[str, Any] = {
        k.removeprefix("mf2."): v
        for k, v in ds.meta.items()
        if k not in ("mf2.kind", "mf2.schema_version", "mf2.version", "mf2.params", "mf2.videos", "mf2.images")
    }
    dropped = {k: int(v.sum()) for k, v in drops.items()}
    extra["filter"] = {
        "rule": {k: v for k, v in asdict(rule).items() if v},
        "from": str(ds.path),
        "pairs_in": table.num_rows,
        "kept": kept.num_rows,
        "dropped": dropped,
        "measured_here": measured,
    }
    res = write_folder(ds, kept, out, True, extra)
    return FilterSummary(table.num_rows, kept.num_rows, dropped, measured, res)
