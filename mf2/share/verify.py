"""Check a dataset against its manifest: what another lab runs before trusting shared pairs.

Every check names the pair (or file) at fault, so a report is actionable line by line.
Files on disk that no row names are warnings: they do no harm to a reader of the manifest
(e.g. the PNGs of another mode simulated into the same folder), but `mf2 remove` and
takedowns must leave none, so they are listed.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mf2.dataset import FILE_KINDS, NEIGHBOUR_KINDS
from mf2.dataset.manifest import Dataset, load, removed_ids, safe_rel
from mf2.errors import InputError
from mf2.schema import landmarks_to_numpy
from mf2.share.split import leaks

_PNG_SIG = b"\x89PNG\r\n\x1a\n"


@dataclass
class VerifyReport:
    manifest: Path
    n_pairs: int = 0
    n_files_checked: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unreadable: bool = False  # the manifest itself is corrupt or not a manifest

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {
            "manifest": str(self.manifest),
            "ok": self.ok,
            "unreadable": self.unreadable,
            "n_pairs": self.n_pairs,
            "n_files_checked": self.n_files_checked,
            "problems": self.problems,
            "warnings": self.warnings,
        }


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the IHDR chunk, without decoding; None if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != _PNG_SIG or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_ROW_COLUMNS = ("pair_id", "video_id", "video_sha256", "mode", "L", "start_frame", "center_frame", "end_frame",
                "frames", "out_size", "crf", "params", "crop_size")  # fmt: skip


def _check_rows(ds: Dataset, rep: VerifyReport) -> None:
    """Each row consistent with itself, with the manifest's parameters and video record, and
    within its crop; no pair twice, no split leak, no taken-down video left."""
    t = ds.table
    cols = {c: t[c].to_pylist() for c in _ROW_COLUMNS}
    ids = cols["pair_id"]
    for pid, n in sorted(Counter(ids).items()):
        if n > 1:
            rep.problems.append(f"pair {pid}: pair_id appears {n} times")
    params = ds.params
    videos_md = ds.json_meta("videos", None)
    lms, valid = landmarks_to_numpy(t["landmarks"])
    for i, pid in enumerate(ids):
        rep.problems += _frame_problems(pid, {c: v[i] for c, v in cols.items()})
        rep.problems += _param_problems(pid, {c: v[i] for c, v in cols.items()}, params)
        if videos_md is not None and videos_md.get(cols["video_id"][i]) != cols["video_sha256"][i]:
            rep.problems.append(
                f"pair {pid}: video_sha256 differs from the manifest metadata's record of {cols['video_id'][i]}"
            )
        size = cols["out_size"][i]
        if not valid[i]:
            rep.problems.append(f"pair {pid}: no landmarks")
        elif size:
            lo, hi = lms[i].min(axis=0), lms[i].max(axis=0)
            if (lo < -1.0).any() or (hi > size).any():  # half a pixel of rounding either side
                rep.problems.append(
                    f"pair {pid}: landmarks outside the {size}x{size} crop "
                    f"(x {lo[0]:.1f}..{hi[0]:.1f}, y {lo[1]:.1f}..{hi[1]:.1f})"
                )
    for line in leaks(t):
        rep.problems.append(f"split leakage: {line}")
    gone = removed_ids(ds.root) & set(cols["video_id"])
    for vid in sorted(gone):
        rep.problems.append(f"video {vid}: taken down (removed.parquet) but still in the manifest")


def _frame_problems(pid: str, row: dict) -> list[str]:
    """The frame list against L, the start, centre and end frames."""
    frames = row["frames"] or []
    if not frames:
        return [f"pair {pid}: no frames recorded"]
    out = []
    if any(b <= a for a, b in zip(frames, frames[1:])):
        out.append(f"pair {pid}: frames not strictly increasing")
    if row["L"] != len(frames):
        out.append(f"pair {pid}: L = {row['L']} but {len(frames)} frames listed")
    if (row["start_frame"], row["end_frame"]) != (frames[0], frames[-1]):
        out.append(f"pair {pid}: start/end frames disagree with the frame list")
    if row["center_frame"] != frames[len(frames) // 2]:
        out.append(f"pair {pid}: centre frame {row['center_frame']} is not the middle of its frames")
    return out


def _param_problems(pid: str, row: dict, params: dict | None) -> list[str]:
    """The row's mode, size and camera response against the manifest's parameters and its own."""
    out = []
    mode = row["mode"]
    for key in ("mode", "out_size", "crf"):
        if params and key in params and params[key] != row[key]:
            out.append(f"pair {pid}: {key} = {row[key]!r} but the manifest's parameters say {params[key]!r}")
    if row["params"] is not None:
        try:
            row_mode = json.loads(row["params"]).get("mode")
        except ValueError:
            out.append(f"pair {pid}: params column is not JSON")
            row_mode = mode
        if row_mode != mode:
            out.append(f"pair {pid}: params say mode {row_mode!r}, row says {mode!r}")
    return out


def _check_files(ds: Dataset, rep: VerifyReport, hashes: bool) -> None:
    t = ds.table
    referenced: set[Path] = set()
    sizes = t["out_size"].to_pylist()
    for kind in FILE_KINDS:
        paths, shas = t[f"{kind}_path"].to_pylist(), t[f"{kind}_sha256"].to_pylist()
        for pid, rel, sha, size in zip(t["pair_id"].to_pylist(), paths, shas, sizes):
            if rel is None and kind in NEIGHBOUR_KINDS:
                continue  # a pair without this neighbour (a cut, the clip's edge, made without --neighbours)
            try:
                p = ds.root / safe_rel(rel)
            except InputError as e:
                rep.problems.append(f"pair {pid}: {e}")
                continue
            referenced.add(p.resolve())
            if not p.is_file():
                rep.problems.append(f"pair {pid}: {kind} image missing: {rel}")
                continue
            rep.n_files_checked += 1
            wh = png_size(p)
            if wh is None:
                rep.problems.append(f"pair {pid}: {kind} image is not a PNG: {rel}")
                continue
            if size and wh != (size, size):
                rep.problems.append(f"pair {pid}: {kind} image is {wh[0]}x{wh[1]}, manifest says {size}x{size}: {rel}")
            if hashes and sha != sha256_of(p):
                rep.problems.append(f"pair {pid}: {kind} image modified (sha256 differs): {rel}")
    gone = removed_ids(ds.root)
    for kind in FILE_KINDS:
        folder = ds.root / kind
        if not folder.is_dir():
            continue
        for f in sorted(folder.rglob("*.png")):
            if f.resolve() not in referenced:
                rel = f.relative_to(ds.root).as_posix()
                if f.parent.name in gone:
                    rep.problems.append(f"video {f.parent.name}: taken down but its file remains: {rel}")
                else:
                    rep.warnings.append(f"file not in the manifest: {rel}")


def verify(path: str | Path, hashes: bool = True) -> VerifyReport:
    """A manifest that cannot be read at all is itself the problem found, not a crash."""
    try:
        ds = load(path)
    except InputError as e:
        if e.error_class != "corrupt-file":  # a newer schema, or not a pair manifest: a usage mistake
            raise
        rep = VerifyReport(Path(path), unreadable=True)
        rep.problems.append(str(e))
        return rep
    rep = VerifyReport(ds.path, ds.table.num_rows)
    _check_rows(ds, rep)
    if ds.has_images:
        _check_files(ds, rep, hashes)
    return rep


__all__ = ["VerifyReport", "verify", "png_size", "sha256_of"]
