"""Rebuild a manifest's images from a local copy of its videos, and prove they are the same.

A pair is fully determined by its row: the frames averaged, the crop, the camera-response
mode, the output size and, for synthetic pairs, the kernel, seed and noise. Given the same
video file (same sha256) and the same decoder, the images come out identical, which the
stored pixel hashes confirm (``*_rgb_sha256``, schema 1.6: whatever PNG encoder wrote the
files). Rows from before the pixel hash are proven by file hash, so their PNGs are written
with the encoder of that time (mf2.pngs, ``legacy``). A different file (a re-encoded
upload) gives different pixels: those pairs are reported, and kept only with
``keep_mismatched`` (with their new hashes).
"""

from __future__ import annotations

import csv
import functools
import io
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa

from mf2.atomic import write_bytes_atomic
from mf2.blur.windows import Window, neighbour_frames, neighbour_window
from mf2.dataset import FILE_KINDS, NEIGHBOUR_KINDS, row_images
from mf2.dataset import pairs_path as pairs_file
from mf2.dataset.manifest import load, pairs_metadata, safe_rel, write
from mf2.errors import InputError, UsageError
from mf2.faces.crop import Crop
from mf2.modes.render import render_pairs
from mf2.pngs import EncodedImage, encode_image
from mf2.share.verify import sha256_of
from mf2.sources import VideoSource, legacy_safe_id, resolve_images, resolve_videos, sha256_file
from mf2.video import ffmpeg_version, probe

REPORT_FIELDS = ("pair_id", "video_id", "status", "detail")


@dataclass
class MaterializeSummary:
    n_pairs: int
    n_exact: int
    n_reused: int  # already present and identical (a resumed run)
    n_mismatched: int
    n_missing: int  # no video, or frames past its end, or undecodable
    n_videos: int
    seconds: float
    pairs_path: Path
    report_path: Path
    ffmpeg_then: str | None = None  # the decoder the manifest was made with, when it differs

    def line(self) -> str:
        note = f" (manifest made with ffmpeg {self.ffmpeg_then})" if self.ffmpeg_then else ""
        return (
            f"{self.n_pairs} pairs from {self.n_videos} videos: {self.n_exact} identical "
            f"({self.n_reused} already there), {self.n_mismatched} differ{note}, {self.n_missing} not rebuilt "
            f"-> {self.pairs_path}"
        )


def _window(row: dict) -> Window:
    frames = tuple(int(f) for f in row["frames"])
    crop = Crop(int(row["crop_x0"]), int(row["crop_y0"]), int(row["crop_size"]))
    return Window(frames, int(row["center_frame"]), crop, int(row["n_duplicates_skipped"] or 0))


def _proven_by_pixels(row: dict) -> bool:
    return bool(row.get("blurry_rgb_sha256") and row.get("sharp_rgb_sha256"))


def _same(row: dict, kind: str, img: EncodedImage) -> bool:
    if _proven_by_pixels(row):
        return img.rgb_sha256 == row[f"{kind}_rgb_sha256"]
    return img.sha256 == row[f"{kind}_sha256"]


def _render_video(src: VideoSource, rows: list[dict]) -> dict[str, dict[str, EncodedImage]]:
    """pair_id -> its images encoded by kind (blurry, sharp and the neighbours its row names),
    for every row the video can make: rendered by simulate's own renderer, each row's mode
    finishing its blurry image from the row."""
    info = probe(src.path, src.fps or (rows[0].get("fps") if rows else None))  # a frame folder: the pairs' fps
    out: dict[str, dict[str, EncodedImage]] = {}
    by_setting: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in rows:
        by_setting[(r["crf"], int(r["out_size"]))].append(r)
    for (crf, size), group in by_setting.items():
        windows = [_window(r) for r in group]
        row_of = {id(w): r for w, r in zip(windows, group)}
        beside = functools.partial(_neighbours, row_of)
        for got in render_pairs(info, windows, crf, size, functools.partial(_columns, row_of), neighbours=beside):
            legacy = not _proven_by_pixels(got.pair)
            images = zip(FILE_KINDS, (got.blurry, got.sharp, got.prev, got.next))
            out[got.pair["pair_id"]] = {k: encode_image(img, legacy) for k, img in images if img is not None}
    return out


def _neighbours(row_of: dict[int, dict], w: Window) -> tuple[Window | None, Window | None]:
    """The neighbouring exposures a row recorded (--neighbours), as windows to render again."""
    row = row_of[id(w)]
    return tuple(  # type: ignore[return-value]
        neighbour_window(w, frames) if row.get(f"{k}_path") else None
        for k, frames in zip(NEIGHBOUR_KINDS, neighbour_frames(w))
    )


def _columns(row_of: dict[int, dict], w: Window) -> tuple[str, dict]:
    """A window's mode and columns: its manifest row."""
    row = row_of[id(w)]
    return row["mode"], row


def _present(root: Path, r: dict) -> bool:
    for kind, rel in row_images(r):
        p = root / safe_rel(rel)
        if not p.is_file() or sha256_of(p) != r[f"{kind}_sha256"]:
            return False
    return True


@dataclass
class _Tally:
    """What the rebuild found so far: the rows kept, the report, the counts."""

    kept: list[dict] = field(default_factory=list)
    report: list[dict] = field(default_factory=list)
    exact: int = 0
    reused: int = 0
    mismatched: int = 0
    missing: int = 0

    def problem(self, r: dict, status: str, detail: str) -> None:
        self.report.append({"pair_id": r["pair_id"], "video_id": r["video_id"], "status": status, "detail": detail})


def materialize(
    manifest: str | Path,
    videos: str | Path,
    out: Path,
    keep_mismatched: bool = False,
    progress: Callable[[int], None] | None = None,
) -> MaterializeSummary:
    t0 = time.perf_counter()
    ds = load(manifest)
    out = Path(out)
    if out.resolve() == ds.root.resolve() and ds.has_images:
        raise UsageError(f"--out {out}: is the dataset itself; materialize into another folder")
    rows = ds.table.to_pylist()
    sources = local_sources(videos, rows)
    for r in rows:  # refuse unsafe paths before writing anything
        safe_rel(r["blurry_path"]), safe_rel(r["sharp_path"])
    by_video: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_video[r["video_id"]].append(r)
    tally = _Tally()
    for vid, vrows in by_video.items():
        src = sources.get(vid)
        if src is None:
            for r in vrows:
                tally.problem(r, "missing-video", f"no video named {vid}.* in {videos}")
            tally.missing += len(vrows)
            continue
        _rebuild_video(src, vrows, out, keep_mismatched, tally)
        if progress:
            progress(len(vrows))
    order = {r["pair_id"]: i for i, r in enumerate(rows)}
    tally.kept.sort(key=lambda r: order[r["pair_id"]])
    pairs_path, report_path = _write_outputs(ds, out, tally)
    then = ds.meta.get("mf2.ffmpeg")
    return MaterializeSummary(
        len(rows),
        tally.exact,
        tally.reused,
        tally.mismatched,
        tally.missing,
        len(by_video),
        time.perf_counter() - t0,
        pairs_path,
        report_path,
        then if then and then != ffmpeg_version() else None,
    )


def local_sources(path: str | Path, rows: list[dict]) -> dict[str, VideoSource]:
    """video_id -> the local copy of each source the rows name: videos as `mf2 simulate
    --videos` reads them, photos (``source_kind`` photo) as ``--images`` does: a folder of
    numbered photos is many photos there, not the frames of one video."""
    kinds = {r.get("source_kind") or "video" for r in rows}
    found: dict[str, VideoSource] = {}
    if "photo" in kinds:
        found.update({s.video_id: s for s in resolve_images(path)})
    if kinds - {"photo"}:
        try:
            videos = resolve_videos(path, need_fps=False)
            # datasets made before issue 33 named non-ASCII files by their lossy id (café -> caf)
            found.update({legacy_safe_id(s.name): s for s in videos if s.name and not s.name.isascii()})
            found.update({s.video_id: s for s in videos})
        except UsageError:
            if "photo" not in kinds:
                raise
    return found


def _rebuild_video(src: VideoSource, vrows: list[dict], out: Path, keep_mismatched: bool, tally: _Tally) -> None:
    """The pairs of one video: those already in ``out`` and identical are kept; the others are
    rendered again, compared with their recorded hashes and written when they match (or when
    mismatches are kept, with their new hashes)."""
    todo = [r for r in vrows if not _present(out, r)]
    todo_ids = {r["pair_id"] for r in todo}
    tally.reused += len(vrows) - len(todo)
    tally.exact += len(vrows) - len(todo)
    tally.kept += [r for r in vrows if r["pair_id"] not in todo_ids]
    if not todo:
        return
    sha = sha256_file(src.path)
    same_video = all(r["video_sha256"] == sha for r in todo)
    try:
        made = _render_video(src, todo)
    except InputError as e:
        for r in todo:
            tally.problem(r, "decode-error", str(e))
        tally.missing += len(todo)
        return
    for r in todo:
        imgs = made.get(r["pair_id"])
        if imgs is None:
            tally.problem(r, "frames-missing", f"frames up to {r['end_frame']} not in {src.path.name}")
            tally.missing += 1
            continue
        gone = [k for k, _ in row_images(r) if k not in imgs]  # a neighbour past the video's end
        if gone:
            last = r["end_frame"] + r["L"]
            tally.problem(r, "neighbour-missing", f"{' and '.join(gone)}: frames up to {last} not in {src.path.name}")
        which = [k for k, _ in row_images(r) if k in imgs and not _same(r, k, imgs[k])]
        if not which:
            tally.exact += 1
        else:
            tally.mismatched += 1
            cause = "same video file" if same_video else f"video sha256 {sha[:12]} != {r['video_sha256'][:12]}"
            tally.problem(r, "mismatch", f"{' and '.join(which)} differ ({cause})")
            if not keep_mismatched:
                continue
            r = {**r, "video_sha256": sha}
        tally.kept.append(_write_images(out, r, imgs))


def _write_images(out: Path, r: dict, imgs: dict[str, EncodedImage]) -> dict:
    """A rebuilt pair's images written; its row, describing the files written here (another
    encoder: other file hashes). A neighbour the video no longer holds leaves its columns null."""
    r = dict(r)
    for kind, rel in row_images(r):
        img = imgs.get(kind)
        if img is None:
            r.update(dict.fromkeys((f"{kind}_path", f"{kind}_sha256", f"{kind}_rgb_sha256")))
            continue
        r.update({f"{kind}_sha256": img.sha256, f"{kind}_rgb_sha256": img.rgb_sha256})
        write_bytes_atomic(out / safe_rel(rel), img.png)
    return r


def _write_outputs(ds, out: Path, tally: _Tally) -> tuple[Path, Path]:
    """The rebuilt dataset's manifest (the source's metadata, this decoder) and the report."""
    table = pa.Table.from_pylist(tally.kept, schema=ds.table.schema.remove_metadata())
    extra = {
        k.removeprefix("mf2."): v
        for k, v in ds.meta.items()
        if k not in ("mf2.kind", "mf2.schema_version", "mf2.version", "mf2.params", "mf2.videos", "mf2.images")
    }
    extra["ffmpeg"] = ffmpeg_version()
    out.mkdir(parents=True, exist_ok=True)
    pairs_path, report_path = pairs_file(out), out / "materialize_report.csv"
    write(pairs_path, table, pairs_metadata(table, ds.params, materialized_from=str(ds.path.name), **extra))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(tally.report)
    write_bytes_atomic(report_path, buf.getvalue().encode())
    return pairs_path, report_path
