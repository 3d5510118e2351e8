"""Rebuild a manifest's images from a local copy of its videos, and prove they are the same.

A pair is fully determined by its row: the frames averaged, the crop, the camera-response
mode, the output size and, for synthetic pairs, the kernel, seed and noise. Given the same
video file (same sha256) and the same decoder, the PNGs come out byte-identical, which the
stored hashes confirm. A different file (a re-encoded upload) gives different pixels: those
pairs are reported, and kept only with ``keep_mismatched`` (with their new hashes).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from mf2.pngs import encode_png
from mf2.atomic import write_bytes_atomic
from mf2.faces.crop import Crop
from mf2.blur.kernels import synthetic_blur
from mf2.blur.render import render_windows
from mf2.blur.windows import Window
from mf2.errors import InputError, UsageError
from mf2.share.dataset import load, pairs_metadata, safe_rel, write
from mf2.share.verify import sha256_of
from mf2.sources import VideoSource, resolve_videos, sha256_file
from mf2.video import ffmpeg_version, iter_frames, probe

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
        return (f"{self.n_pairs} pairs from {self.n_videos} videos: {self.n_exact} identical "
                f"({self.n_reused} already there), {self.n_mismatched} differ{note}, {self.n_missing} not rebuilt "
                f"-> {self.pairs_path}")




def _window(row: dict) -> Window:
    frames = tuple(int(f) for f in row["frames"])
    crop = Crop(int(row["crop_x0"]), int(row["crop_y0"]), int(row["crop_size"]))
    return Window(frames, int(row["center_frame"]), crop, int(row["n_duplicates_skipped"] or 0))


def _render_video(src: VideoSource, rows: list[dict]) -> dict[str, tuple[bytes, bytes]]:
    """pair_id -> (blurry PNG, sharp PNG) for every row the video can make."""
    info = probe(src.path)
    out: dict[str, tuple[bytes, bytes]] = {}
    by_setting: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in rows:
        by_setting[(r["crf"], int(r["out_size"]))].append(r)
    for (crf, size), group in by_setting.items():
        windows = [_window(r) for r in group]
        row_of = {id(w): r for w, r in zip(windows, group)}
        with contextlib.closing(iter_frames(info)) as frames:
            for w, blurry, sharp in render_windows(frames, windows, crf, size):
                r = row_of[id(w)]
                if r["mode"] == "synthetic":
                    k = int(r["kernel_size"])
                    kernel = np.asarray(r["kernel"], dtype=np.float32).reshape(k, k)
                    blurry = synthetic_blur(sharp, kernel, int(r["seed"]), crf, float(r["noise_sigma"] or 0.0))
                out[r["pair_id"]] = (encode_png(blurry), encode_png(sharp))
    return out


def _present(root: Path, r: dict) -> bool:
    for kind in ("blurry", "sharp"):
        p = root / safe_rel(r[f"{kind}_path"])
        if not p.is_file() or sha256_of(p) != r[f"{kind}_sha256"]:
            return False
    return True


def materialize(manifest: str | Path, videos: str | Path, out: Path, keep_mismatched: bool = False,
                progress: Callable[[int], None] | None = None) -> MaterializeSummary:
    t0 = time.perf_counter()
    ds = load(manifest)
    out = Path(out)
    if out.resolve() == ds.root.resolve() and ds.has_images:
        raise UsageError(f"--out {out}: is the dataset itself; materialize into another folder")
    sources = {s.video_id: s for s in resolve_videos(videos)}
    rows = ds.table.to_pylist()
    for r in rows:  # refuse unsafe paths before writing anything
        safe_rel(r["blurry_path"]), safe_rel(r["sharp_path"])
    by_video: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_video[r["video_id"]].append(r)

    report: list[dict] = []
    kept: list[dict] = []
    n_exact = n_reused = n_mismatch = n_missing = 0
    for vid, vrows in by_video.items():
        src = sources.get(vid)
        if src is None:
            report += [{"pair_id": r["pair_id"], "video_id": vid, "status": "missing-video",
                        "detail": f"no video named {vid}.* in {videos}"} for r in vrows]
            n_missing += len(vrows)
            continue
        todo = [r for r in vrows if not _present(out, r)]
        todo_ids = {r["pair_id"] for r in todo}
        n_reused += len(vrows) - len(todo)
        n_exact += len(vrows) - len(todo)
        kept += [r for r in vrows if r["pair_id"] not in todo_ids]
        if not todo:
            continue
        sha = sha256_file(src.path)
        same_video = all(r["video_sha256"] == sha for r in todo)
        try:
            made = _render_video(src, todo)
        except InputError as e:
            report += [{"pair_id": r["pair_id"], "video_id": vid, "status": "decode-error", "detail": str(e)}
                       for r in todo]
            n_missing += len(todo)
            continue
        for r in todo:
            pngs = made.get(r["pair_id"])
            if pngs is None:
                report.append({"pair_id": r["pair_id"], "video_id": vid, "status": "frames-missing",
                               "detail": f"frames up to {r['end_frame']} not in {src.path.name}"})
                n_missing += 1
                continue
            hb, hs = (hashlib.sha256(b).hexdigest() for b in pngs)
            exact = hb == r["blurry_sha256"] and hs == r["sharp_sha256"]
            if not exact:
                n_mismatch += 1
                which = [k for k, h in (("blurry", hb), ("sharp", hs)) if h != r[f"{k}_sha256"]]
                cause = "same video file" if same_video else f"video sha256 {sha[:12]} != {r['video_sha256'][:12]}"
                report.append({"pair_id": r["pair_id"], "video_id": vid, "status": "mismatch",
                               "detail": f"{' and '.join(which)} differ ({cause})"})
                if not keep_mismatched:
                    continue
                r = {**r, "blurry_sha256": hb, "sharp_sha256": hs, "video_sha256": sha}
            else:
                n_exact += 1
            write_bytes_atomic(out / safe_rel(r["blurry_path"]), pngs[0])
            write_bytes_atomic(out / safe_rel(r["sharp_path"]), pngs[1])
            kept.append(r)
        if progress:
            progress(len(vrows))

    order = {r["pair_id"]: i for i, r in enumerate(rows)}
    kept.sort(key=lambda r: order[r["pair_id"]])
    table = pa.Table.from_pylist(kept, schema=ds.table.schema.remove_metadata())
    extra = {k.removeprefix("mf2."): v for k, v in ds.meta.items()
             if k not in ("mf2.kind", "mf2.schema_version", "mf2.version", "mf2.params", "mf2.videos", "mf2.images")}
    extra["ffmpeg"] = ffmpeg_version()
    out.mkdir(parents=True, exist_ok=True)
    pairs_path, report_path = out / "pairs.parquet", out / "materialize_report.csv"
    write(pairs_path, table, pairs_metadata(table, ds.params, materialized_from=str(ds.path.name), **extra))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(report)
    write_bytes_atomic(report_path, buf.getvalue().encode())
    then = ds.meta.get("mf2.ffmpeg")
    return MaterializeSummary(len(rows), n_exact, n_reused, n_mismatch, n_missing, len(by_video),
                              time.perf_counter() - t0, pairs_path, report_path,
                              then if then and then != ffmpeg_version() else None)
