"""Inputs to a run: a video file, a folder of videos, or the ok rows of an `mf2 fetch` table.

A video may also be a folder of numbered frames (as many benchmarks ship them), and a folder
of videos may hold one video per subfolder (300VW: ``NNN/vid.avi`` beside ``NNN/annot/``),
where the subfolder names the video."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from mf2.dataset import pairs_path
from mf2.errors import UsageError

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".3gp"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


@dataclass(frozen=True)
class VideoSource:
    video_id: str  # safe as a file name: ^[A-Za-z0-9_-]{1,64}$
    path: Path
    identity: str | None = None  # who is in it, from a fetch table; several joined by ";"
    fps: float | None = None  # a folder of frames: its frame rate (a video file carries its own)
    name: str | None = None  # the name the id was made from (mf2.pipeline.execute finds legacy ids by it)


def legacy_safe_id(text: str) -> str:
    """The id mf2 gave a name before issue 33: unsafe characters replaced by ``_``, so
    ``café`` and ``cafè`` were both ``caf``. Kept to find datasets' existing ids."""
    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "video"
    if _SAFE_ID.match(clean):
        return clean
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{clean[:55]}_{digest}"


def safe_id(text: str) -> str:
    """A file-name-safe id from any text; a hash suffix keeps distinct long names distinct.
    A name with characters outside ASCII is transliterated (``é`` -> ``e``) and always gets a
    hash of the original name, so two names differing only there (``café``, ``cafè``) never
    share an id; ASCII names keep the ids they always had (ids of existing datasets)."""
    if text.isascii():
        return legacy_safe_id(text)
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", plain).strip("_") or "video"
    return f"{clean[:55]}_{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def is_safe_id(text: str) -> bool:
    return bool(_SAFE_ID.match(text))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """A video file's hash; for a folder of frames, the hash of its frames' names and hashes
    in order (a frame changed, added or renumbered changes it)."""
    if Path(path).is_dir():
        h = hashlib.sha256()
        for f in frame_files(Path(path)):
            h.update(f"{f.name}\0{sha256_file(f)}\n".encode())
        return h.hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while b := fh.read(chunk):
            h.update(b)
    return h.hexdigest()


def _images(folder: Path) -> list[Path]:
    return [
        f
        for f in folder.iterdir()
        if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".")
    ]


def is_frame_folder(path: Path) -> bool:
    """One video given frame by frame: two or more images, every one numbered, and no videos.
    A folder with Parquet files (an mf2 dataset, with its contact sheet) is never one."""
    if not path.is_dir():
        return False
    names = [f for f in path.iterdir() if f.is_file() and not f.name.startswith(".")]
    if any(f.suffix.lower() in VIDEO_EXTENSIONS or f.suffix == ".parquet" for f in names):
        return False
    images = [f for f in names if f.suffix.lower() in IMAGE_EXTENSIONS]
    return len(images) >= 2 and all(_LAST_NUMBER.search(f.stem) for f in images)


def frame_files(folder: Path) -> list[Path]:
    """A frame folder's images in frame order: by the last number in each name
    (``frame_9.png`` before ``frame_10.png``). Unnumbered or repeated numbers are refused:
    the order of a sequence must not depend on how names sort."""
    from mf2.errors import InputError

    files = _images(folder)
    if not files:
        raise InputError(f"{folder}: no frames ({', '.join(sorted(IMAGE_EXTENSIONS))})", "not-a-video")
    numbered = []
    for f in files:
        m = _LAST_NUMBER.search(f.stem)
        if m is None:
            raise InputError(f"{f}: a frame without a number in its name; frames are ordered by it", "not-a-video")
        numbered.append((int(m.group(1)), f))
    numbered.sort()
    for (a, fa), (b, fb) in zip(numbered, numbered[1:]):
        if a == b:
            raise InputError(f"{folder}: two frames numbered {a} ({fa.name}, {fb.name})", "not-a-video")
    return [f for _, f in numbered]


def is_photo(path: Path) -> bool:
    """A file that mf2 reads as a photo (by its extension, as videos are)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _photo_files(root: Path) -> list[Path]:
    """Every photo under ``root``, in a stable order; hidden files and folders and mf2
    datasets (folders with pairs.parquet) are skipped, and links to folders are not followed
    (no loops, no photo twice)."""
    import os

    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not pairs_path(Path(folder) / d).exists())
        found += [Path(folder) / f for f in sorted(files) if not f.startswith(".") and is_photo(Path(f))]
    return found


def _photo_manifest(csv_path: Path) -> list[tuple[Path, str | None]]:
    """(photo, identity) rows of a CSV with a ``path`` column (relative to the CSV) and an
    optional ``identity`` column."""
    import csv

    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if "path" not in (reader.fieldnames or []):
            raise UsageError(f"{csv_path}: a photo manifest needs a 'path' column (and optionally 'identity')")
        rows = []
        for i, r in enumerate(reader, start=2):
            rel = (r.get("path") or "").strip()
            if not rel:
                raise UsageError(f"{csv_path}: line {i}: empty path")
            p = Path(rel) if Path(rel).is_absolute() else csv_path.parent / rel
            rows.append((p, (r.get("identity") or "").strip() or None))
    return rows


def resolve_images(path: str | Path) -> list[VideoSource]:
    """Photos as sources, one source per photo (never the frames of one video, whatever the
    names): a photo, a folder searched recursively, or a CSV manifest (``path``, ``identity``).
    Who is in a photo: the manifest's ``identity``, else the folder holding it (``NAME/x.jpg``;
    CelebA-style ``id00042/``), else unknown. Ids are the path below the folder, made safe."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".csv":
        rows = _photo_manifest(p)
        root = p.parent
    elif p.is_file():
        if not is_photo(p):
            raise UsageError(f"--images {p}: not a photo ({', '.join(sorted(IMAGE_EXTENSIONS))}) nor a CSV manifest")
        rows, root = [(p, None)], p.parent
    elif p.is_dir():
        rows = [(f, f.parent.name if f.parent != p else None) for f in _photo_files(p)]
        root = p
        if not rows:
            raise UsageError(f"--images {p}: no photos ({', '.join(sorted(IMAGE_EXTENSIONS))}) in this folder")
    else:
        raise UsageError(f"--images {p}: no such file or folder")
    sources: list[VideoSource] = []
    seen: set[str] = set()
    for f, identity in rows:
        try:
            rel = f.resolve().relative_to(root.resolve()).with_suffix("")
            name = "_".join(rel.parts)
        except ValueError:
            name = f.stem
        vid = safe_id(name)
        if vid in seen:
            vid = safe_id(f"{name}_{hashlib.sha1(str(f).encode()).hexdigest()[:8]}")
        seen.add(vid)
        sources.append(VideoSource(vid, f, identity=identity))
    return sources


# Modes that blur one frame alone; the others average frames, which a photo does not have.
PHOTO_MODES = ("synthetic",)


def gather_sources(
    videos: str | Path | None,
    images: str | Path | None,
    fps: float | None = None,
    mode: str | None = None,
    same: list[tuple[Path, Path]] | None = None,
) -> list[VideoSource]:
    """The sources of one run: ``--videos`` and ``--images`` together (at least one). A photo
    id equal to a video id is refused: both would write the same files. ``same``: as for
    ``resolve_videos``."""
    if videos is None and images is None:
        raise UsageError("give --videos PATH, --images PATH, or both")
    if images is not None and mode is not None and mode not in PHOTO_MODES:
        raise UsageError(
            f"--images: photos are single frames; --mode {mode} averages frames of a video "
            f"(photos take --mode {' or '.join(PHOTO_MODES)})"
        )
    sources = resolve_videos(videos, fps, same=same) if videos is not None else []
    photos = resolve_images(images) if images is not None else []
    clash = sorted({s.video_id for s in sources} & {p.video_id for p in photos})
    if clash:
        raise UsageError(
            f"--images {images}: photo id {clash[0]!r} is also a video id in --videos {videos}; rename one of them"
        )
    return sources + photos


def frame_number(path: Path) -> int | None:
    m = _LAST_NUMBER.search(path.stem)
    return int(m.group(1)) if m else None


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
    return [VideoSource(safe_id(k), path, join_identities(identities.get(k, ()))) for k, path in paths.items()]


def join_identities(ids) -> str | None:
    """One identity string per video: sorted, ";"-joined, None when unknown."""
    ids = sorted({i.strip() for i in ids if i and i.strip()})
    return ";".join(ids) if ids else None


def split_identities(text: str | None) -> list[str]:
    return [i for i in (text or "").split(";") if i]


def _videos_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)


def _one_video(folder: Path) -> Path | None:
    """The video a folder is: its single video file (300VW's ``NNN/vid.avi``), or itself when
    it is a folder of frames."""
    inner = _videos_in(folder)
    if len(inner) == 1:
        return inner[0]
    return folder if not inner and is_frame_folder(folder) else None


def _name(folder: Path, video: Path, prefix: str = "") -> str:
    """A frame folder, or 300VW's ``NNN/vid.avi`` (with ``annot/`` or the name ``vid``), is
    named by its folder; any other single video keeps its own name."""
    by_folder = video == folder or video.stem == "vid" or (folder / "annot").is_dir()
    return f"{prefix}{folder.name}" if by_folder else video.stem


def _subfolder_videos(p: Path) -> list[tuple[str, Path]]:
    """(name, video) of each subfolder that is one video; one level deeper too, named
    ``parent_child`` (YouTube Faces: ``NAME/N/*.jpg``). An mf2 dataset folder
    (pairs.parquet) is never searched."""
    out = []
    for sub in sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith(".")):
        if pairs_path(sub).exists():
            continue
        video = _one_video(sub)
        if video is not None:
            out.append((_name(sub, video), video))
            continue
        for sub2 in sorted(d for d in sub.iterdir() if d.is_dir() and not d.name.startswith(".")):
            video = _one_video(sub2)
            if video is not None:
                out.append((_name(sub2, video, f"{sub.name}_"), video))
    return out


def resolve_videos(
    path: str | Path, fps: float | None = None, need_fps: bool = True, same: list[tuple[Path, Path]] | None = None
) -> list[VideoSource]:
    """``fps``: the frame rate of folders of frames (``--fps``); a video file has its own.
    ``need_fps=False``: the caller knows it otherwise (materialize reads it from the pairs).
    ``same``: receives (skipped, kept) for each file found twice (``_one_each``)."""
    p = Path(path)
    if p.is_file() and p.suffix == ".parquet":
        return _from_fetch_table(p)
    if p.is_file():
        named = [(p.stem, p)]
    elif is_frame_folder(p):
        named = [(p.name, p)]
    elif p.is_dir():
        named = [(f.stem, f) for f in _videos_in(p)] + _subfolder_videos(p)
        if not named:
            raise UsageError(
                f"{p}: no video files ({', '.join(sorted(VIDEO_EXTENSIONS))}), frame folders or "
                "video subfolders in this folder"
            )
    else:
        raise UsageError(f"{p}: no such file or folder")
    if fps is not None and not 0 < fps <= 1000:
        raise UsageError(f"--fps {fps}: must be between 0 and 1000")
    sources: list[VideoSource] = []
    seen: set[str] = set()
    for name, f in _one_each(named, same):
        vid = safe_id(name)
        if vid in seen:  # same stem, other extension or folder
            vid = safe_id(f"{name}_{hashlib.sha1(str(f.resolve()).encode()).hexdigest()[:8]}")
        seen.add(vid)
        if f.is_dir() and fps is None and need_fps:
            raise UsageError(f"{f}: a folder of frames needs its frame rate: give --fps N")
        sources.append(VideoSource(vid, f, fps=fps if f.is_dir() else None, name=name))
    return sources


def _one_each(named: list[tuple[str, Path]], same: list[tuple[Path, Path]] | None = None) -> list[tuple[str, Path]]:
    """Each file once: a path reached twice (a symlink to a folder above, ``up -> .``) or a
    copy with the same bytes would put one footage under two ids, on both sides of a split.
    Same resolved path first; then same size and same sha256 (only same-size files are hashed).
    The skipped ones go to ``same`` as (skipped, kept)."""
    same = [] if same is None else same
    kept: list[tuple[str, Path]] = []
    by_real: dict[Path, Path] = {}
    for name, f in named:
        real = f.resolve()
        if real in by_real:
            same.append((f, by_real[real]))
            continue
        by_real[real] = f
        kept.append((name, f))
    by_size: dict[int, list[tuple[str, Path]]] = {}
    for name, f in kept:
        if f.is_file():
            by_size.setdefault(f.stat().st_size, []).append((name, f))
    drop: set[Path] = set()
    for group in (g for g in by_size.values() if len(g) > 1):
        first: dict[str, Path] = {}
        for _, f in group:
            h = sha256_file(f)
            if h in first:
                same.append((f, first[h]))
                drop.add(f)
            else:
                first[h] = f
    return [(n, f) for n, f in kept if f not in drop]
