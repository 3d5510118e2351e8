"""The video-list CSV that `mf2 fetch` reads, validated in full before anything is downloaded.

A row names a video by ``video_id`` (a YouTube id when there is no ``url``) and/or ``url``
(http(s), file://, or a local path relative to the CSV). ``start``/``end`` (seconds) ask for
a section only. One video may appear under several identities (joint interviews): it is
fetched once and every row keeps its identity. Other columns are carried through to the
status table untouched.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from mf2.errors import InputError
from mf2.sources import is_safe_id, safe_id

KNOWN = ("video_id", "url", "identity", "name", "split", "start", "end", "license")
SAMPLE_URL = "mf2:sample"  # the embedded sample video (works offline)


@dataclass(frozen=True)
class ManifestRow:
    line: int  # 1-based line in the CSV (header is line 1)
    video_id: str
    url: str
    identity: str | None = None
    name: str | None = None
    split: str | None = None
    start: float | None = None
    end: float | None = None
    license: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """The file's name under DIR/videos: one per (video, section)."""
        if self.start is None and self.end is None:
            return self.video_id
        s = "" if self.start is None else f"{round(self.start * 1000)}"
        e = "" if self.end is None else f"{round(self.end * 1000)}"
        return safe_id(f"{self.video_id}__{s}-{e}ms")

    @property
    def kind(self) -> str:
        return url_kind(self.url)


def url_kind(url: str) -> str:
    """'sample', 'local' (path or file://) or 'remote' (http/https)."""
    if url == SAMPLE_URL:
        return "sample"
    scheme = urlparse(url).scheme.lower()
    if scheme in ("http", "https"):
        return "remote"
    return "local"


def local_path(url: str, base: Path) -> Path:
    if url.lower().startswith("file://"):
        p = Path(unquote(urlparse(url).path))
    else:
        p = Path(url)
    return p if p.is_absolute() else (base / p)


def _youtube_id(url: str) -> str | None:
    u = urlparse(url)
    host = (u.hostname or "").lower()
    if host.endswith("youtu.be"):
        return u.path.lstrip("/").split("/")[0] or None
    if host.endswith("youtube.com"):
        for part in u.query.split("&"):
            if part.startswith("v="):
                return part[2:] or None
        bits = [b for b in u.path.split("/") if b]
        if len(bits) >= 2 and bits[0] in ("shorts", "embed", "live", "v"):
            return bits[1]
    return None


def _num(text: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a number of seconds", "bad-manifest") from None
    if not math.isfinite(v) or v < 0:
        raise InputError(f"{where}: {text!r} must be a finite number of seconds >= 0", "bad-manifest")
    return v


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Parse and validate the whole file; the first problem is raised with its line and column."""
    path = Path(path)
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    header = _header(path, reader)
    base = path.resolve().parent
    rows: list[ManifestRow] = []
    seen: dict[tuple, int] = {}
    url_of: dict[str, tuple[str, int]] = {}
    while True:
        lineno = reader.line_num + 1
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise InputError(f"{path}:{lineno}: not valid CSV ({e})", "bad-manifest") from None
        if not rec or all(not c.strip() for c in rec):
            continue
        where = f"{path}:{lineno}"
        row = _row(where, lineno, header, rec)
        k = (row.key, row.identity)
        if k in seen:
            raise InputError(
                f"{where}: repeats line {seen[k]} (video {row.video_id}, identity {row.identity or '-'})",
                "bad-manifest",
            )
        seen[k] = lineno
        vid, url = row.video_id, row.url
        if vid in url_of and url_of[vid][0] != url:
            raise InputError(
                f"{where}: column url: video {vid} had url {url_of[vid][0][:60]!r} on line {url_of[vid][1]}",
                "bad-manifest",
            )
        url_of.setdefault(vid, (url, lineno))
        if row.kind == "local" and not local_path(url, base).is_file():
            raise InputError(
                f"{where}: column url: local file {str(local_path(url, base))[:80]!r} does not exist", "bad-manifest"
            )
        rows.append(row)
    if not rows:
        raise InputError(f"{path}: no rows under the header", "bad-manifest")
    return rows


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"{path}: no such manifest file", "missing-file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a UTF-8 CSV file ({e.reason} at byte {e.start})", "bad-manifest") from None


def _header(path: Path, reader) -> list[str]:
    # The csv module's own line handling: a quoted field may hold a newline, which must reach
    # the row checks rather than be dropped (splitting lines first glued "a\nb" into "ab").
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(
            f"{path}: empty manifest (expected a header with video_id and/or url)", "bad-manifest"
        ) from None
    header = [h.strip() for h in header]
    if "video_id" not in header and "url" not in header:
        raise InputError(
            f"{path}:1: the header needs a video_id or a url column (got {', '.join(header)})", "bad-manifest"
        )
    dupes = {h for h in header if header.count(h) > 1}
    if dupes or "" in header:
        raise InputError(
            f"{path}:1: header has empty or repeated column names ({', '.join(sorted(dupes)) or 'empty'})",
            "bad-manifest",
        )
    return header


def _row(where: str, lineno: int, header: list[str], rec: list[str]) -> ManifestRow:
    """One CSV record, checked on its own (repeats and local files are checked by the caller)."""
    if len(rec) != len(header):
        raise InputError(f"{where}: {len(rec)} fields, the header has {len(header)}", "bad-manifest")
    for h, v in zip(header, rec):
        if h in ("video_id", "url", "identity", "start", "end") and any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise InputError(
                f"{where}: column {h}: {v[:60]!r} contains a control character (a newline?)", "bad-manifest"
            )
    d = {h: v.strip() for h, v in zip(header, rec)}
    url = d.get("url", "")
    _check_url(where, url)
    vid = _video_id(where, d.get("video_id", ""), url)
    if not url:
        url = f"https://www.youtube.com/watch?v={vid}"
    start = _num(d["start"], f"{where}: column start") if d.get("start") else None
    end = _num(d["end"], f"{where}: column end") if d.get("end") else None
    if start is not None and end is not None and end <= start:
        raise InputError(f"{where}: column end: {end:g} is not after start {start:g}", "bad-manifest")
    return ManifestRow(
        lineno,
        vid,
        url,
        d.get("identity") or None,
        d.get("name") or None,
        d.get("split") or None,
        start,
        end,
        d.get("license") or None,
        {h: d[h] for h in header if h not in KNOWN},
    )


def _check_url(where: str, url: str) -> None:
    if url.startswith("-"):
        raise InputError(
            f"{where}: column url: {url[:60]!r} starts with '-' (write ./{url[:20]} for a local file)", "bad-manifest"
        )
    if url:
        scheme = urlparse(url).scheme.lower()
        if (
            url != SAMPLE_URL
            and scheme not in ("", "http", "https", "file")
            and not (len(scheme) == 1 and url[1:2] == ":")
        ):
            raise InputError(
                f"{where}: column url: scheme {scheme!r} not allowed (http, https, file or a local path)",
                "bad-manifest",
            )
        if scheme in ("http", "https") and not urlparse(url).hostname:
            raise InputError(f"{where}: column url: {url[:60]!r} has no host", "bad-manifest")


def _video_id(where: str, vid: str, url: str) -> str:
    """The row's id: as given (checked safe), or derived from its URL."""
    if vid:
        if not is_safe_id(vid):
            raise InputError(
                f"{where}: column video_id: {vid[:70]!r} is not a safe id (^[A-Za-z0-9_-]{{1,64}}$)", "bad-manifest"
            )
        return vid
    if not url:
        raise InputError(f"{where}: column video_id and url are both empty", "bad-manifest")
    vid = _youtube_id(url) or (Path(urlparse(url).path).stem if url != SAMPLE_URL else "sample")
    if not is_safe_id(vid):
        raise InputError(
            f"{where}: column url: cannot derive a safe video_id from {url[:60]!r}; add a video_id column",
            "bad-manifest",
        )
    return vid
