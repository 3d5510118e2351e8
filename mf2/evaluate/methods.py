"""The rows of an evaluation: what produced each restored image.

"Blurred" (the input itself) and "Oracle" (the sharp target) bound every method. Any other
method is a folder of restored images named by ``pair_id`` — flat (``DIR/<pair_id>.png``) or
mirroring the dataset (``DIR/blurry/<video_id>/<pair_id>.png``) — so a published method is
scored from its outputs without touching mf2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mf2.dataset import NEIGHBOUR_KINDS
from mf2.dataset.manifest import safe_rel
from mf2.errors import InputError, UsageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_NAME = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")
RESERVED = ("Blurred", "Oracle")


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # blurred | oracle | folder | checkpoint
    folder: Path | None = None  # folder: the restored images; checkpoint: the model file
    stage: str | None = None  # checkpoint: "hg" its hourglass alone, "cgan" both, None the last it holds


def parse_checkpoint(spec: str, stage: str | None = None) -> Method:
    """[NAME=]RUN/model.pt: an mf2 model restores each blurry crop in this process; with
    ``stage="hg"`` its hourglass alone does (default name RUN-HG)."""
    name, sep, path = spec.rpartition("=")
    p = Path(path)
    if not sep:
        name = (p.parent.name or "mf2") + ("-HG" if stage == "hg" else "")
    if not _NAME.match(name) or name in RESERVED:
        raise UsageError(f"--checkpoint {spec!r}: method name must match {_NAME.pattern} and not be Blurred/Oracle")
    if not p.is_file():
        raise UsageError(f"--checkpoint {path}: no such file")
    return Method(name, "checkpoint", p, stage)


def parse_restored(spec: str) -> Method:
    """NAME=DIR from the command line."""
    name, sep, folder = spec.partition("=")
    if not sep or not name or not folder:
        raise UsageError(f"--restored {spec!r}: expected NAME=DIR")
    if not _NAME.match(name) or name in RESERVED:
        raise UsageError(f"--restored {spec!r}: method name must match {_NAME.pattern} and not be Blurred/Oracle")
    p = Path(folder)
    if not p.is_dir():
        raise UsageError(f"--restored {name}={folder}: no such folder")
    return Method(name, "folder", p)


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: not a readable image", "bad-image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def restored_path(method: Method, pair_id: str, blurry_path: str) -> Path | None:
    assert method.folder is not None
    for ext in IMAGE_EXTENSIONS:
        p = method.folder / f"{pair_id}{ext}"
        if p.is_file():
            return p
    mirrored = method.folder / blurry_path
    if mirrored.is_file():
        return mirrored
    for ext in IMAGE_EXTENSIONS:
        p = mirrored.with_suffix(ext)
        if p.is_file():
            return p
    return None


def check_folders(methods: list[Method], pairs: list[dict]) -> None:
    """Every folder method has an image for every pair, before any work starts."""
    for m in methods:
        if m.kind != "folder":
            continue
        missing = [p["pair_id"] for p in pairs if restored_path(m, p["pair_id"], p["blurry_path"]) is None]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InputError(
                f"--restored {m.name}: no restored image for pair {missing[0]}{more} "
                f"(looked for {m.folder}/{missing[0]}.png)",
                "missing-image",
            )


def pair_context(root: Path, row: dict, blurry: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A pair's neighbouring exposures (simulate --neighbours), for a model that sees them: the
    blurry image stands in for one the pair lacks; None when it has neither."""
    if not any(row.get(f"{k}_path") for k in NEIGHBOUR_KINDS):
        return None
    prev, nxt = (
        read_rgb(root / safe_rel(row[f"{k}_path"])) if row.get(f"{k}_path") else blurry for k in NEIGHBOUR_KINDS
    )
    return prev, nxt
