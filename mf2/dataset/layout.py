"""The names of a dataset folder's files (see the package's docstring)."""

from __future__ import annotations

from pathlib import Path

from mf2.pngs import EncodedImage

PAIRS = "pairs.parquet"  # the manifest: one row per pair (manifests/SCHEMA.md)
FAILURES = "failures.parquet"  # videos that failed or were filtered, with their class
REMOVED = "removed.parquet"  # videos taken down (mf2 remove)
SETTINGS = ".mf2-settings.json"  # the settings the folder was claimed with, before its first part
CONTACT_SHEET = "contact_sheet.png"
PARTS = "parts"  # parts/<mode>/<video_id>.parquet: one finished video's pairs, written last and atomically
IMAGE_KINDS = ("blurry", "sharp")  # blurry/<video_id>/<pair_id>.png and sharp/...; also the columns' prefixes
# The exposures beside a pair's window (simulate --neighbours), each optional: a pair at a cut
# or a clip's edge, and every pair of a dataset made without them, has null columns.
NEIGHBOUR_KINDS = ("prev", "next")
FILE_KINDS = IMAGE_KINDS + NEIGHBOUR_KINDS  # every image folder and column prefix a pair may have
LANDMARKS = "landmarks"  # the cached landmark tables: landmarks/<video_id>.parquet
FLOW = "flow"  # the cached flow tables: flow/<video_id>[_f<face>].parquet
STATS = "stats"  # mf2 stats's report
LOCK = ".mf2.lock"  # held while the manifest is rebuilt from the parts (mf2.dataset.folder)
FRAMES = "frames"  # frames/<video_id>.<sha>.rgb: face regions kept while a run renders (mf2.video.framestore)


def pairs_path(folder: Path) -> Path:
    return folder / PAIRS


def failures_path(folder: Path) -> Path:
    return folder / FAILURES


def removed_path(folder: Path) -> Path:
    return folder / REMOVED


def settings_path(folder: Path) -> Path:
    return folder / SETTINGS


def parts_dir(folder: Path, mode: str | None = None) -> Path:
    """``parts/`` or, with a mode, ``parts/<mode>/``."""
    return folder / PARTS if mode is None else folder / PARTS / mode


def part_path(folder: Path, mode: str, video_id: str) -> Path:
    """The part file of one video simulated in one mode."""
    return parts_dir(folder, mode) / f"{video_id}.parquet"


def part_files(folder: Path, video_id: str = "*") -> list[Path]:
    """Every part file in the folder (of every mode), or those of one video, sorted."""
    return sorted(parts_dir(folder).glob(f"*/{video_id}.parquet"))


def lock_path(folder: Path) -> Path:
    return folder / LOCK


def image_rel(kind: str, video_id: str, pair_id: str) -> str:
    """The manifest's relative path of one pair's image (``kind``: blurry or sharp)."""
    return f"{kind}/{video_id}/{pair_id}.png"


def image_columns(rel_b: str, rel_s: str, blurry: EncodedImage, sharp: EncodedImage) -> dict[str, str]:
    """A pair's image columns: each image's relative path, file hash and pixel hash."""
    return {
        "blurry_path": rel_b,
        "sharp_path": rel_s,
        "blurry_sha256": blurry.sha256,
        "sharp_sha256": sharp.sha256,
        "blurry_rgb_sha256": blurry.rgb_sha256,
        "sharp_rgb_sha256": sharp.rgb_sha256,
    }


def neighbour_columns(kind: str, rel: str, img: EncodedImage) -> dict[str, str]:
    """One neighbouring exposure's columns (``kind``: prev or next), as ``image_columns``."""
    return {f"{kind}_path": rel, f"{kind}_sha256": img.sha256, f"{kind}_rgb_sha256": img.rgb_sha256}


def row_images(row: dict) -> list[tuple[str, str]]:
    """(kind, relative path) of every image a pair row names: its two, and the neighbours it has."""
    return [(k, row[f"{k}_path"]) for k in FILE_KINDS if row.get(f"{k}_path")]


def landmarks_path(folder: Path, video_id: str) -> Path:
    return folder / LANDMARKS / f"{video_id}.parquet"


def frame_store_path(folder: Path, video_id: str, sha256: str) -> Path:
    """Where a video's face regions wait for the render pass, keyed by its content."""
    return folder / FRAMES / f"{video_id}.{sha256[:16]}.rgb"


def frame_stores_dir(folder: Path) -> Path:
    return folder / FRAMES


def landmark_files(folder: Path) -> list[Path]:
    return sorted((folder / LANDMARKS).glob("*.parquet"))


def flow_path(folder: Path, name: str) -> Path:
    return folder / FLOW / f"{name}.parquet"


def stats_dir(folder: Path) -> Path:
    return folder / STATS
