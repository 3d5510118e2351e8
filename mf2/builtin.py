"""The recipes, training configs and manifests that ship with mf2, found by name.

They live at the top of the repository (pipelines/, configs/, manifests/), where users and
reviewers look for them. A wheel carries copies as package data (mf2/_data/<kind>/, made by
setup.py), so `mf2 run 2mf2` or `mf2 fetch sample` work wherever mf2 is installed; a checkout
or an editable install reads the repository's folders.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import yaml

# kind -> (repository folder, file suffix); setup.py copies the same table into the wheel
KINDS: dict[str, tuple[str, str]] = {
    "recipes": ("pipelines", ".yaml"),
    "configs": ("configs", ".yaml"),
    "manifests": ("manifests", ".csv"),
}
_PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Builtin:
    kind: str
    name: str
    path: Path
    summary: str  # a recipe's description, a config's preset line, a manifest's row count


def folder(kind: str) -> Path:
    """Where this installation keeps ``kind``: the wheel's copy first, else the checkout's."""
    if kind not in KINDS:
        raise KeyError(kind)
    shipped = _PACKAGE / "_data" / kind
    return shipped if shipped.is_dir() else _PACKAGE.parent / KINDS[kind][0]


def names(kind: str) -> list[str]:
    suffix = KINDS[kind][1]
    d = folder(kind)
    return sorted(p.name[: -len(suffix)] for p in d.glob(f"*{suffix}")) if d.is_dir() else []


def find(kind: str, spec: str) -> Path | None:
    """The built-in file a bare name (``2mf2``, ``2mf2.yaml``) means, or None: anything with a
    folder in it, or an unknown name, is left to be read as a path."""
    if not spec or "/" in spec or "\\" in spec or spec.startswith("."):
        return None
    suffix = KINDS[kind][1]
    name = spec[: -len(suffix)] if spec.endswith(suffix) else spec
    p = folder(kind) / f"{name}{suffix}"
    return p if name in names(kind) and p.is_file() else None


def resolve(kind: str, spec: str | Path) -> str:
    """``spec`` as a path: an existing file wins, then a built-in name (``2mf2``, ``sample``),
    else ``spec`` unchanged (the reader then names it as missing)."""
    text = str(spec)
    if Path(text).expanduser().exists():
        return text
    found = find(kind, text)
    return str(found) if found is not None else text


def _summary(kind: str, path: Path) -> str:
    if kind == "manifests":
        with open(path, newline="", encoding="utf-8") as f:
            n = max(0, sum(1 for _ in csv.reader(f)) - 1)
            return f"{n} row{'' if n == 1 else 's'}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return "(not valid YAML)"
    if kind == "recipes":
        return str(data.get("description", "")).strip()
    return f"preset {data.get('preset', '?')}, {data.get('image_size', '?')} px, batch {data.get('batch_size', '?')}"


def listing() -> list[Builtin]:
    return [
        Builtin(kind, n, folder(kind) / f"{n}{KINDS[kind][1]}", _summary(kind, folder(kind) / f"{n}{KINDS[kind][1]}"))
        for kind in KINDS
        for n in names(kind)
    ]
