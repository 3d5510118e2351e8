"""One simulate run: videos -> landmark tables -> planned windows -> PNG pairs -> Parquet.

Each finished video leaves OUT/parts/<video_id>.parquet (written last, atomically, keyed by
the video's sha256 and the output-changing parameters). A re-run skips videos whose part
matches, so an interrupted run resumes; pairs.parquet is rebuilt from the parts at the end.
A failing video is recorded in failures.parquet and never stops the others.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mf2.atomic import write_atomic, write_bytes_atomic, write_parquet_atomic
from mf2.blur.measures import bits_per_pixel, pair_measures, ranks
from mf2.blur.windows import Window, neighbour_windows
from mf2.dataset import (
    FILE_KINDS,
    IMAGE_KINDS,
    NEIGHBOUR_KINDS,
    frame_store_path,
    image_columns,
    image_rel,
    neighbour_columns,
    part_path,
    row_images,
)
from mf2.faces.series import FaceSeries, face_ids, face_series
from mf2.faces.stage import landmarks_for_video
from mf2.modes import get_mode
from mf2.modes.base import Plan, PlanContext
from mf2.modes.config import SimulateConfig, simulate_config  # noqa: F401 (re-exported: notebooks import them from here)
from mf2.modes.render import Rendered, render_pairs
from mf2.overlap import ordered_map
from mf2.pngs import encode_image
from mf2.schema import (
    PAIR_SCHEMA,
    made_with,
    metadata,
    pair_table,
    params_json,
    read_cached,
    read_metadata,
    try_read_metadata,
)
from mf2.sources import VideoSource, sha256_file
from mf2.video import VideoInfo, probe
from mf2.video.frames import PHOTO_CODEC


@dataclass
class VideoResult:
    video_id: str
    n_pairs: int = 0
    windows_face_lost: int = 0
    pairs_dropped: int = 0  # rendered, then dropped by a pair filter (--min-blur, --min-target-sharpness)
    resumed: bool = False
    failure: dict | None = None
    note: str | None = None  # why a video that was processed gave no pairs


def plan_video(
    cfg: SimulateConfig,
    src: VideoSource,
    info: VideoInfo,
    sha: str,
    cache: Path,
    lm_table: pa.Table,
    progress,
    stages: Stages,
) -> list[Plan]:
    """One plan per face: the chosen face of each shot, or (``--faces all``) every face_id."""
    size = (info.width, info.height)
    faces: list[str | int] = [cfg.face] if cfg.faces == "main" else list(face_ids(lm_table))
    mode = get_mode(cfg.mode)
    ctx = PlanContext(cfg, src, info, sha, cache, progress, stages)
    return [mode.plan(ctx, face_series(lm_table, face, size)) for face in faces]


def merge_plans(plans: list[Plan]) -> Plan:
    """The plans of several faces as one (counters added up), for the part's metadata."""
    if len(plans) == 1:
        return plans[0]
    info: dict = {}
    for p in plans:
        for k, v in p.info.items():
            if isinstance(v, dict):
                d = info.setdefault(k, {})
                for kk, vv in v.items():
                    d[kk] = d.get(kk, 0) + vv
            else:
                info[k] = info.get(k, 0) + v
    return Plan(
        [w for p in plans for w in p.windows],
        [e for p in plans for e in p.extras],
        sum(p.face_lost for p in plans),
        info,
        plans[0].series if plans else None,
    )


def _pair_id(video_id: str, mode: str, w: Window, extra: dict, cfg: SimulateConfig, face_id: int = -1) -> str:
    if cfg.faces == "all":  # two faces can share a centre frame: the face is part of the id
        video_id = f"{video_id}_f{face_id}"
    return get_mode(mode).pair_id(video_id, w, extra, cfg)


class Stages:
    """Which stage a video is in (for failure records) and how long each took (for timings)."""

    def __init__(self) -> None:
        self.current = "probe"
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def enter(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[self.current] = self.seconds.get(self.current, 0.0) + now - self._t
        self.current, self._t = stage, now

    def done(self) -> dict[str, float]:
        self.enter("done")
        self.seconds.pop("done", None)
        return {k: round(v, 4) for k, v in self.seconds.items()}


def part_is_current(path: Path, sha: str, cfg: SimulateConfig) -> bool:
    return made_with(try_read_metadata(path), sha, cfg.params(), pairs=True)


def simulate_video(
    src: VideoSource,
    out: Path,
    cfg: SimulateConfig,
    backend=None,
    progress: Callable[[int], None] | None = None,
    cache: Path | None = None,
    sha: str | None = None,
    stages: Stages | None = None,
    info: VideoInfo | None = None,
) -> VideoResult:
    """``cache``: where the landmark and flow tables live (default ``out``; a recipe shares
    one cache between its jobs). ``stages`` records the current stage and its timings.
    ``info``: the video's probe when the caller has it (the pipeline's landmark task does:
    probing again cost ~0.2 s a video, issue 35)."""
    stages = stages or Stages()
    cache = cache or out
    stages.enter("probe")
    info = info or probe(src.path, src.fps)
    stages.enter("hash")
    sha = sha or sha256_file(src.path)
    ppath = part_path(out, cfg.mode, src.video_id)
    part = read_cached(ppath, sha, cfg.params(), pairs=True)
    if part is not None:
        return _resumed(src.video_id, ppath, part.num_rows)

    stages.enter("landmarks")
    lm_table = landmarks_for_video(src.video_id, info, sha, cfg.landmarks, cache, backend, progress)
    stages.enter("plan")
    plans = plan_video(cfg, src, info, sha, cache, lm_table, progress, stages)
    plan = merge_plans(plans)
    stages.enter("render")
    meta = metadata(
        "pairs-part",
        cfg.params(),
        video_sha256=sha,
        video=info.to_json(),
        windows_face_lost=str(plan.face_lost),
        plan=plan.info,
    )
    store = frame_store_path(cache, src.video_id, sha)  # the landmark pass's face regions, if it kept them
    n, dropped = _render_part(src, out, cfg, info, sha, plans, ppath, meta, progress, store)
    ser0 = plan.series
    note = None if n or ser0 is None else why_no_pairs(cfg, info, ser0.usable, ser0.is_duplicate, plan)
    if note and dropped:
        meta[b"mf2.pairs_dropped"] = json.dumps(dropped, sort_keys=True).encode()
        note = "every pair was dropped by the pair filters (" + _rules(dropped) + ")"
    if note:
        stages.enter("write")
        empty = PAIR_SCHEMA.empty_table().replace_schema_metadata({**meta, b"mf2.note": note.encode()})
        write_parquet_atomic(ppath, empty)
    return VideoResult(src.video_id, n, plan.face_lost, sum(dropped.values()), note=note)


def _resumed(video_id: str, ppath: Path, n_rows: int) -> VideoResult:
    """A video whose part is current: its counts, read back from the part's metadata."""
    md = read_metadata(ppath)
    dropped = sum(json.loads(md.get("mf2.pairs_dropped", "{}")).values())
    face_lost = int(md.get("mf2.windows_face_lost", "0"))
    return VideoResult(video_id, n_rows, face_lost, dropped, resumed=True, note=md.get("mf2.note"))


def _rules(dropped: dict[str, int]) -> str:
    return ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in sorted(dropped.items()))


_BATCH = 256  # pairs per row group of a part: a video's rows are never all in memory


def _render_part(
    src: VideoSource,
    out: Path,
    cfg: SimulateConfig,
    info: VideoInfo,
    sha: str,
    plans: list[Plan],
    ppath: Path,
    meta: dict[bytes, bytes],
    progress: Callable[[int], None] | None = None,
    store: Path | None = None,
) -> tuple[int, dict[str, int]]:
    """One more streaming pass (the landmark pass's kept face regions, ``store``, else a
    second decode) turns every planned window into a pair: both PNGs written,
    then its row, streamed into the part file in batches (memory does not grow with the
    number of pairs). The part appears (atomically) only once every PNG exists; returns the
    number of pairs and, per pair filter, the pairs it dropped."""
    ppath.parent.mkdir(parents=True, exist_ok=True)
    dropped: dict[str, int] = {}
    # Per rendered pair, kept or not: its shot and face, middle frame and target's sharpness
    # (a target is compared with its neighbours whatever filter drops them), and where its
    # row sits in the part (-1: dropped before its PNGs were written).
    groups: list[tuple] = []
    centres: list[int] = []
    sharpness: list[float] = []
    written: list[int] = []
    # The rows go to an anonymous file first (no name: a second run into this folder, which
    # clears stale temporaries, cannot remove it), then into the part in one atomic write.
    with tempfile.TemporaryFile(dir=ppath.parent) as buf:
        with pq.ParquetWriter(buf, PAIR_SCHEMA.with_metadata(meta), compression="zstd") as writer:
            rows: list[dict] = []
            for i, row in enumerate(_pair_rows(src, out, cfg, info, sha, plans, progress, store)):
                groups.append((row["shot"], row["face_id"]))
                centres.append(row["center_frame"])
                sharpness.append(row["target_sharpness"])
                why = row.pop("_dropped")
                if why:
                    dropped[why] = dropped.get(why, 0) + 1
                    continue
                written.append(i)
                rows.append(row)
                if len(rows) == _BATCH:
                    writer.write_table(pair_table(rows))
                    rows = []
            if rows:
                writer.write_table(pair_table(rows))
        buf.seek(0)
        rank, ratio = ranks(groups, sharpness, centres)
        at = np.asarray(written, np.int64)
        keep = ratio[at] >= cfg.min_target_sharpness
        if (~keep).any():
            dropped["min_target_sharpness"] = int((~keep).sum())
        write_atomic(ppath, lambda tmp: _finish_part(buf, tmp, rank[at], ratio[at], keep, out, dropped))
    return int(keep.sum()), dropped


def _finish_part(
    buf, tmp: Path, rank: np.ndarray, ratio: np.ndarray, keep: np.ndarray, out: Path, dropped: dict[str, int]
) -> None:
    """The part's rows again, one row group at a time, with each target's rank in its shot
    and ratio to its neighbours (known only once the whole video's pairs exist); rows that
    ``--min-target-sharpness`` drops are left out and their PNGs removed."""
    f = pq.ParquetFile(buf)
    schema = f.schema_arrow
    if dropped:
        schema = schema.with_metadata(
            {**(schema.metadata or {}), b"mf2.pairs_dropped": json.dumps(dropped, sort_keys=True).encode()}
        )
    at = 0
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for g in range(f.num_row_groups):
            t = f.read_row_group(g)
            n = t.num_rows
            for name, values in (("sharpness_rank", rank), ("sharpness_ratio", ratio)):
                t = t.set_column(t.schema.get_field_index(name), name, pa.array(values[at : at + n], pa.float32()))
            k = keep[at : at + n]
            if not k.all():
                for row in t.filter(pa.array(~k)).select([f"{kind}_path" for kind in FILE_KINDS]).to_pylist():
                    for _, path in row_images(row):
                        (out / path).unlink(missing_ok=True)
                t = t.filter(pa.array(k))
            writer.write_table(t.replace_schema_metadata(schema.metadata))
            at += n


@dataclass(frozen=True)
class _Source:
    """What every pair row of one video shares."""

    src: VideoSource
    out: Path
    cfg: SimulateConfig
    info: VideoInfo
    sha: str
    params: str
    source_kind: str
    bpp: float | None


def _pair_rows(
    src: VideoSource,
    out: Path,
    cfg: SimulateConfig,
    info: VideoInfo,
    sha: str,
    plans: list[Plan],
    progress: Callable[[int], None] | None,
    store: Path | None = None,
) -> Iterator[dict]:
    """Each planned window rendered, its PNGs written, and its row."""
    extra_of = {id(w): (e, p.series) for p in plans for w, e in zip(p.windows, p.extras)}
    windows = sorted((w for p in plans for w in p.windows), key=lambda w: (w.end, w.center))
    mode = get_mode(cfg.mode)
    bpp = bits_per_pixel(info.bit_rate, info.coded_width, info.coded_height, float(info.fps))
    kind = "photo" if info.codec == PHOTO_CODEC else "video"
    shared = _Source(src, out, cfg, info, sha, params_json(cfg.params()), kind, bpp)

    def columns(w: Window) -> tuple[str, dict]:
        return cfg.mode, mode.pair_columns(cfg, dict(extra_of[id(w)][0]))

    def finish(rendered: Rendered) -> dict:
        # a plan with windows has its series
        return _pair_row(shared, rendered, cast(FaceSeries, extra_of[id(rendered.window)][1]))

    def beside(w: Window) -> tuple[Window | None, Window | None]:
        ser = cast(FaceSeries, extra_of[id(w)][1])
        return neighbour_windows(w, ser.usable, ser.run, ser.reason)

    rendered = render_pairs(
        info, windows, cfg.crf, cfg.out_size, columns, progress, store, beside if cfg.neighbours else None
    )
    # Finishing a pair (measures, PNGs, writes) overlaps the next pairs' rendering in one helper
    # thread (mf2.overlap says why); rows keep their order. Measured on 8 clips: in process
    # 54.5 -> 39.8 s; with two Dask workers on two cores 38.8 -> 36.2 s (their gaps filled).
    yield from ordered_map(finish, rendered, threads=1)


def _pair_row(s: _Source, rendered: Rendered, ser: FaceSeries) -> dict:
    """One rendered pair's measures, its PNGs written (unless a filter drops it), its row."""
    src, out, cfg, info = s.src, s.out, s.cfg, s.info
    w, extra, blurry, sharp = rendered[:4]
    face_id = int(ser.face_id[w.center])
    pair_id = _pair_id(src.video_id, cfg.mode, w, extra, cfg, face_id)
    rel_b, rel_s = (image_rel(kind, src.video_id, pair_id) for kind in IMAGE_KINDS)
    measures = pair_measures(blurry, sharp, ser.landmarks[w.center], s.bpp)
    shot, fid, ts = int(ser.shot[w.center]), (face_id if face_id >= 0 else None), measures["target_sharpness"]
    why = _dropped_by(cfg, measures)
    if why:  # what the relative filter needs of a dropped pair, no PNGs
        return {"shot": shot, "face_id": fid, "center_frame": w.center, "target_sharpness": ts, "_dropped": why}
    b_img, s_img = encode_image(blurry), encode_image(sharp)
    write_bytes_atomic(out / rel_b, b_img.png)
    write_bytes_atomic(out / rel_s, s_img.png)
    beside = _write_neighbours(out, src.video_id, pair_id, rendered)
    return {
        "_dropped": None,
        "pair_id": pair_id,
        "video_id": src.video_id,
        "video_sha256": s.sha,
        "mode": cfg.mode,
        **_window_columns(w),
        **image_columns(rel_b, rel_s, b_img, s_img),
        "out_size": cfg.out_size,
        "landmarks": w.crop.landmarks_to_output(ser.landmarks[w.center], cfg.out_size),
        "crf": cfg.crf,
        "fps": float(info.fps),
        "params": s.params,
        "shot": shot,
        "face_id": fid,
        "landmarks_source": "manual" if ser.manual is not None and ser.manual[w.center] else "fitted",
        "source_kind": s.source_kind,
        "face_px": face_px(ser.landmarks[w.center]),
        **measures,
        **extra,
        **beside,
    }


def _write_neighbours(out: Path, video_id: str, pair_id: str, rendered: Rendered) -> dict:
    """The neighbouring exposures the render made for a pair (--neighbours), written, and their columns."""
    cols: dict = {}
    for kind, img in zip(NEIGHBOUR_KINDS, (rendered.prev, rendered.next)):
        if img is not None:
            rel, enc = image_rel(kind, video_id, pair_id), encode_image(img)
            write_bytes_atomic(out / rel, enc.png)
            cols.update(neighbour_columns(kind, rel, enc))
    return cols


def _window_columns(w: Window) -> dict:
    """The frames a pair averages and its crop, as manifest columns (materialize reads them back)."""
    return {
        "L": len(w.frames),
        "start_frame": w.start,
        "center_frame": w.center,
        "end_frame": w.end,
        "frames": list(w.frames),
        "n_duplicates_skipped": w.n_duplicates_skipped,
        "crop_x0": w.crop.x0,
        "crop_y0": w.crop.y0,
        "crop_size": w.crop.size,
    }


def _dropped_by(cfg: SimulateConfig, m: dict) -> str | None:
    """The pair filter that drops a pair before its PNGs are written (``--min-blur``,
    ``--min-target-sharpness-abs``); the relative one needs the whole shot (_render_part)."""
    if cfg.min_blur and m["blur_psnr"] >= cfg.min_blur:
        return "min_blur"
    if cfg.min_target_sharpness_abs and m["target_sharpness"] < cfg.min_target_sharpness_abs:
        return "min_target_sharpness_abs"
    return None


def face_px(landmarks: np.ndarray) -> float:
    """The face's size in source pixels: the larger side of its 68-point extent."""
    return float(np.max(np.nanmax(landmarks, axis=0) - np.nanmin(landmarks, axis=0)))


def why_no_pairs(cfg: SimulateConfig, info: VideoInfo, valid: np.ndarray, dup: np.ndarray, plan: Plan) -> str:
    """One line a user can act on when a video gave nothing."""
    n = len(valid)
    exposures = int((~dup).sum()) if cfg.skip_duplicates else n
    need, what = get_mode(cfg.mode).min_exposures(cfg)
    dup_note = (
        f" ({n - exposures} repeated frames not counted; --keep-duplicates counts them)"
        if cfg.skip_duplicates and exposures < n
        else ""
    )
    if exposures < need:
        return f"{exposures} distinct frames{dup_note}, fewer than {what} {need}"
    if not valid.any():
        return f"no face found in any of its {n} frames"
    if plan.face_lost:
        why = ", ".join(f"{k} {v}" for k, v in sorted((plan.info.get("skipped") or {}).items(), key=lambda kv: -kv[1]))
        return (
            f"every window was skipped ({plan.face_lost}: {why}); the face is usable in {int(valid.sum())} "
            f"of {n} frames"
        )
    return get_mode(cfg.mode).no_pairs(cfg, plan) or f"no window could be planned ({n} frames)"
