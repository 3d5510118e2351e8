"""Inputs to a run: a video file, a folder of videos, or the ok rows of an `mf2 fetch` table."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from mf2.errors import UsageError

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".3gp"}
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class VideoSource:
    video_id: str  # safe as a file name: ^[A-Za-z0-9_-]{1,64}$
    path: Path
    identity: str | None = None  # who is in it, from a fetch table; several joined by ";"


def safe_id(text: str) -> str:
    """A file-name-safe id from any text; a hash suffix keeps distinct long names distinct."""
    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "video"
    if _SAFE_ID.match(clean):
        return clean
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{clean[:55]}_{digest}"


def is_safe_id(text: str) -> bool:
    return bool(_SAFE_ID.match(text))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def _from_fetch_table(p: Path) -> list[VideoSource]:
    """The ``ok`` videos of an `mf2 fetch` status table, each once (rows share joint videos)."""
    import pyarrow.parquet as pq

    from mf2.errors import InputError

    try:
        md = pq.read_schema(p).metadata or {}
        names = pq.read_schema(p).names
        cols = ["key", "status", "path"] + (["identity"] if "identity" in names else [])
        t = pq.read_table(p, columns=cols).to_pylist()
    except Exception as e:
        raise InputError(f"{p}: not a readable fetch table ({type(e).__name__})", "not-a-manifest") from None
    if md.get(b"mf2.kind") != b"fetch":
        raise UsageError(f"{p}: not an mf2 fetch table (give a video, a folder, or DIR/fetch.parquet)")
    paths: dict[str, Path] = {}
    identities: dict[str, set[str]] = {}
    for r in t:
        if r["status"] == "ok":
            paths.setdefault(r["key"], p.parent / r["path"])
            if r.get("identity"):
                identities.setdefault(r["key"], set()).add(r["identity"])
    if not paths:
        raise UsageError(f"{p}: no video with status ok (run mf2 fetch first)")
    return [VideoSource(safe_id(k), path, join_identities(identities.get(k, ())))
            for k, path in paths.items()]


def join_identities(ids) -> str | None:
    """One identity string per video: sorted, ";"-joined, None when unknown."""
    ids = sorted({i.strip() for i in ids if i and i.strip()})
    return ";".join(ids) if ids else None


def split_identities(text: str | None) -> list[str]:
    return [i for i in (text or "").split(";") if i]


def resolve_videos(path: str | Path) -> list[VideoSource]:
    p = Path(path)
    if p.is_file() and p.suffix == ".parquet":
        return _from_fetch_table(p)
    if p.is_file():
        files = [p]
    elif p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
        if not files:
            raise UsageError(f"{p}: no video files ({', '.join(sorted(VIDEO_EXTENSIONS))}) in this folder")
    else:
        raise UsageError(f"{p}: no such file or folder")
    sources: list[VideoSource] = []
    seen: set[str] = set()
    for f in files:
        vid = safe_id(f.stem)
        if vid in seen:  # same stem, other extension or folder
            vid = safe_id(f"{f.stem}_{hashlib.sha1(str(f.resolve()).encode()).hexdigest()[:8]}")
        seen.add(vid)
        sources.append(VideoSource(vid, f))
    return sources
