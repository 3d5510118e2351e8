"""One simulate run: videos -> landmark tables -> planned windows -> PNG pairs -> Parquet.

Each finished video leaves OUT/parts/<video_id>.parquet (written last, atomically, keyed by
the video's sha256 and the output-changing parameters). A re-run skips videos whose part
matches, so an interrupted run resumes; pairs.parquet is rebuilt from the parts at the end.
A failing video is recorded in failures.parquet and never stops the others.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pyarrow as pa

from mf2.pngs import encode_png
from mf2.atomic import write_bytes_atomic, write_parquet_atomic
from mf2.blur.crf import CRF_MODES
from mf2.blur.render import render_windows
from mf2.faces.crop import face_crop
from mf2.blur.kernels import SyntheticConfig, apply_kernel, make_kernel, pair_seed
from mf2.blur.vla import Thumbs, VlaConfig, plan_vla, thumb_scale
from mf2.blur.windows import Window, crop_fits, plan_pravg
from mf2.flow import FlowArrays, FlowConfig, flow_for_video
from mf2.errors import UsageError
from mf2.faces.select import LandmarkConfig
from mf2.faces.series import FACE_CHOICES, FaceSeries, face_ids, face_series
from mf2.faces.stage import landmarks_for_video
from mf2.schema import (PAIR_SCHEMA, landmarks_column, metadata, params_json, read_cached, read_metadata,
                        try_read_metadata)
from mf2.sources import VideoSource, sha256_file
from mf2.video import VideoInfo, iter_frames, probe

MODES = ("pravg", "vla", "synthetic")


@dataclass(frozen=True)
class SimulateConfig:
    mode: str = "pravg"
    L: int = 7  # pravg
    stride: int = 1  # pravg, synthetic: exposures between pairs
    crf: str = "srgb"
    out_size: int = 256
    margin: float = 0.25
    skip_duplicates: bool = True
    face: str = "largest"  # the face of each shot: largest | centre | longest (mf2.faces.series)
    faces: str = "main"  # main: that face only; all: every face of the video, each its own face_id
    landmarks: LandmarkConfig = field(default_factory=LandmarkConfig)
    vla: VlaConfig = field(default_factory=VlaConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def validate(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"--mode {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.L < 3 or self.L % 2 == 0:
            raise UsageError(f"--L {self.L}: must be an odd number >= 3 (the middle frame is the sharp target)")
        if self.stride < 1:
            raise UsageError(f"--stride {self.stride}: must be >= 1")
        if self.crf not in CRF_MODES:
            raise UsageError(f"--crf {self.crf!r}: expected one of {', '.join(CRF_MODES)}")
        if not 16 <= self.out_size <= 4096:
            raise UsageError(f"--crop-size {self.out_size}: must be between 16 and 4096")
        if not 0 <= self.margin <= 2:
            raise UsageError(f"--margin {self.margin}: must be between 0 and 2")
        if self.face not in FACE_CHOICES:
            raise UsageError(f"--face {self.face!r}: expected one of {', '.join(FACE_CHOICES)}")
        if self.faces not in ("main", "all"):
            raise UsageError(f"--faces {self.faces!r}: expected main or all")
        self.landmarks.validate()
        self.vla.validate()
        self.flow.validate()
        self.synthetic.validate()
        if self.mode == "synthetic" and self.synthetic.kernel_size > self.out_size:
            raise UsageError(f"--kernel-size {self.synthetic.kernel_size}: larger than --crop-size {self.out_size}")

    def params(self) -> dict:
        """Everything that changes this mode's pairs: the resume key and the provenance record."""
        d = {"mode": self.mode, "crf": self.crf, "out_size": self.out_size, "margin": self.margin,
             "skip_duplicates": self.skip_duplicates, "landmarks": self.landmarks.key(),
             "faces": self.faces if self.faces == "all" else self.face}
        if self.mode == "pravg":
            d.update(L=self.L, stride=self.stride)
        elif self.mode == "vla":
            d.update(vla=self.vla.key(), flow=self.flow.key())
        else:
            d.update(stride=self.stride, synthetic=self.synthetic.key())
        return d


@dataclass
class VideoResult:
    video_id: str
    pairs: pa.Table | None = None
    windows_face_lost: int = 0
    resumed: bool = False
    failure: dict | None = None
    note: str | None = None  # why a video that was processed gave no pairs




class ThumbFile:
    """Grey thumbnails of every frame in an unlinked temporary file, read back one frame at a
    time with pread (a few recent ones cached): random access for VLA's quality rule in both
    directions while the process's memory stays flat whatever the video's length (a memory
    map would keep every touched page resident)."""

    def __init__(self, shape: tuple[int, int], folder: Path, cache: int = 64) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".thumbs-", suffix=".tmp", dir=folder)
        os.unlink(name)  # the descriptor keeps the data; nothing is left behind on a crash
        self.fd, self.shape, self.n = fd, shape, 0
        self.nbytes = shape[0] * shape[1]
        self._cache: "collections.OrderedDict[int, np.ndarray]" = collections.OrderedDict()
        self._cache_size = cache

    def append(self, thumb: np.ndarray) -> None:
        os.pwrite(self.fd, np.ascontiguousarray(thumb, dtype=np.uint8).tobytes(), self.n * self.nbytes)
        self.n += 1

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        i = int(i)
        if not 0 <= i < self.n:
            raise IndexError(i)
        hit = self._cache.get(i)
        if hit is not None:
            self._cache.move_to_end(i)
            return hit
        arr = np.frombuffer(os.pread(self.fd, self.nbytes, i * self.nbytes), np.uint8).reshape(self.shape)
        self._cache[i] = arr
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return arr

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()


class _Thumbnails:
    """Fills a ThumbFile while passing the frames on, so the flow stage's decoding pass makes
    the thumbnails too (one decode for both)."""

    def __init__(self, info: VideoInfo, scale: float, folder: Path, progress: Callable[[int], None] | None) -> None:
        tw, th = max(8, int(round(info.width * scale))), max(8, int(round(info.height * scale)))
        self.file = ThumbFile((th, tw), folder)
        self.size, self.scale, self.n = (tw, th), scale, max(1, info.n_frames)
        self._frames = iter_frames(info)

    def __iter__(self):
        for frame in self._frames:
            if len(self.file) < self.n:
                g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
                self.file.append(g if self.scale == 1.0 else cv2.resize(g, self.size, interpolation=cv2.INTER_AREA))
            yield frame

    def finish(self) -> ThumbFile:
        """Decode whatever the flow stage did not need (or all of it, when flow was cached)."""
        for _ in self:
            pass
        return self.file


@dataclass
class Plan:
    windows: list[Window]
    extras: list[dict]  # mode-specific columns per window
    face_lost: int = 0  # windows skipped, every reason
    info: dict = field(default_factory=dict)  # per-video counters for the part's metadata
    series: FaceSeries | None = None


def _skipped(info: dict, plan_skipped: dict) -> dict:
    out = dict(info.get("skipped") or {})
    for k, v in plan_skipped.items():
        out[k] = out.get(k, 0) + v
    return out


def _plan_pravg(cfg: SimulateConfig, ser: FaceSeries, size: tuple[int, int]) -> Plan:
    windows, stats = plan_pravg(ser.landmarks, ser.usable, ser.is_duplicate, cfg.L, cfg.stride, cfg.margin,
                                cfg.skip_duplicates, ser.run, ser.reason, size)
    return Plan(windows, [{} for _ in windows], stats.skipped_face_lost, {"skipped": stats.skipped}, ser)


def _plan_vla(cfg: SimulateConfig, src: VideoSource, info: VideoInfo, sha: str, out: Path, ser: FaceSeries,
              progress, stages: Stages) -> Plan:
    lms, valid, dup = ser.landmarks, ser.usable, ser.is_duplicate
    stages.enter("flow")  # flow and the quality rule's thumbnails share one decoding pass
    scale = thumb_scale(lms, valid, cfg.vla.thumb_face)
    tee = _Thumbnails(info, scale, out / "tmp", progress)
    flow_table = flow_for_video(src.video_id, info, sha, lms, valid, cfg.landmarks.key(), cfg.flow, out, progress,
                                frames=iter(tee), run=ser.run,
                                face=cfg.face if isinstance(ser.face, str) else int(ser.face))
    flow = FlowArrays.from_table(flow_table)
    try:
        thumbs = Thumbs(tee.finish(), scale)
        stages.enter("plan")
        n = min(len(valid), len(thumbs.frames), len(flow.valid))
        vws, stats = plan_vla(lms[:n], valid[:n], dup[:n], _cut(flow, n), thumbs, cfg.vla, cfg.margin, cfg.crf,
                              cfg.skip_duplicates, ser.run[:n], (info.width, info.height))
    finally:
        tee.file.close()
    extras = []
    for vw in vws:
        st = vw.stop
        extras.append({"direction": vw.direction, "stop_reason": st.reason, "stop_overlap": st.overlap,
                       "stop_quality": st.quality, "stop_fb_bad": st.fb_bad, "stop_osc_px": st.osc_px,
                       "displacement_px": vw.displacement_px, "path_px": vw.path_px})
    skipped = {"crop-too-large": stats.too_large} if stats.too_large else {}
    return Plan([vw.window for vw in vws], extras, stats.too_large,
                {"too_short": stats.too_short, "reverse_duplicates": stats.reverse_duplicates,
                 "stop_reasons": stats.stop_reasons, "skipped": skipped}, ser)


def _cut(flow: FlowArrays, n: int) -> FlowArrays:
    return FlowArrays(flow.valid[:n], flow.d[:n], flow.fb_err[:n], flow.fb_bad[:n], flow.mag_p90[:n])


def _plan_synthetic(cfg: SimulateConfig, sha: str, ser: FaceSeries, size: tuple[int, int]) -> Plan:
    syn = cfg.synthetic
    valid = ser.usable
    exposures = np.flatnonzero(~ser.is_duplicate) if cfg.skip_duplicates else np.arange(len(valid))
    windows, extras, skipped = [], [], {}
    for f in exposures[:: cfg.stride]:
        f = int(f)
        crop = face_crop(ser.landmarks[f], cfg.margin) if valid[f] else None
        why = str(ser.reason[f]) if not valid[f] else (None if crop_fits(crop, size) else "crop-too-large")
        if why:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        seed = pair_seed(syn.seed, sha, f)
        windows.append(Window((f,), f, crop, 0))
        extras.append({"seed": seed, "kernel_size": syn.kernel_size, "noise_sigma": syn.noise_sigma})
    return Plan(windows, extras, sum(skipped.values()), {"skipped": skipped}, ser)


def plan_video(cfg: SimulateConfig, src: VideoSource, info: VideoInfo, sha: str, cache: Path, lm_table: pa.Table,
               progress, stages: Stages) -> list[Plan]:
    """One plan per face: the chosen face of each shot, or (``--faces all``) every face_id."""
    size = (info.width, info.height)
    faces: list[str | int] = [cfg.face] if cfg.faces == "main" else list(face_ids(lm_table))
    plans = []
    for face in faces:
        ser = face_series(lm_table, face, size)
        if cfg.mode == "pravg":
            plans.append(_plan_pravg(cfg, ser, size))
        elif cfg.mode == "vla":
            plans.append(_plan_vla(cfg, src, info, sha, cache, ser, progress, stages))
        else:
            plans.append(_plan_synthetic(cfg, sha, ser, size))
    return plans


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
    return Plan([w for p in plans for w in p.windows], [e for p in plans for e in p.extras],
                sum(p.face_lost for p in plans), info, plans[0].series if plans else None)


def _pair_id(video_id: str, mode: str, w: Window, extra: dict, cfg: SimulateConfig, face_id: int = -1) -> str:
    if cfg.faces == "all":  # two faces can share a centre frame: the face is part of the id
        video_id = f"{video_id}_f{face_id}"
    if mode == "pravg":
        return f"{video_id}_pravg_L{cfg.L}_c{w.center:06d}"
    if mode == "vla":
        return f"{video_id}_vla-{extra['direction'][0]}_L{len(w.frames)}_c{w.center:06d}"
    return f"{video_id}_synthetic_k{extra['kernel_size']}_c{w.center:06d}"


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


def part_path(out: Path, cfg: SimulateConfig, video_id: str) -> Path:
    return out / "parts" / cfg.mode / f"{video_id}.parquet"


def part_is_current(path: Path, sha: str, cfg: SimulateConfig) -> bool:
    md = try_read_metadata(path)
    return md is not None and md.get("mf2.video_sha256") == sha and md.get("mf2.params") == params_json(cfg.params())


def simulate_video(
    src: VideoSource,
    out: Path,
    cfg: SimulateConfig,
    backend=None,
    progress: Callable[[int], None] | None = None,
    cache: Path | None = None,
    sha: str | None = None,
    stages: Stages | None = None,
) -> VideoResult:
    """``cache``: where the landmark and flow tables live (default ``out``; a recipe shares
    one cache between its jobs). ``stages`` records the current stage and its timings."""
    stages = stages or Stages()
    cache = cache or out
    stages.enter("probe")
    info = probe(src.path)
    stages.enter("hash")
    sha = sha or sha256_file(src.path)
    ppath = part_path(out, cfg, src.video_id)
    part = read_cached(ppath, sha, cfg.params())
    if part is not None:
        md = read_metadata(ppath)
        return VideoResult(src.video_id, part, int(md.get("mf2.windows_face_lost", "0")), resumed=True,
                           note=md.get("mf2.note"))

    stages.enter("landmarks")
    lm_table = landmarks_for_video(src.video_id, info, sha, cfg.landmarks, cache, backend, progress)
    stages.enter("plan")
    plans = plan_video(cfg, src, info, sha, cache, lm_table, progress, stages)
    plan = merge_plans(plans)
    stages.enter("render")
    extra_of = {id(w): (e, p.series) for p in plans for w, e in zip(p.windows, p.extras)}
    windows = sorted(plan.windows, key=lambda w: (w.end, w.center))

    rows: dict[str, list] = {name: [] for name in PAIR_SCHEMA.names}
    with contextlib.closing(iter_frames(info)) as frames:
        for w, blurry, sharp in render_windows(frames, windows, cfg.crf, cfg.out_size):
            extra, ser = extra_of[id(w)]
            extra = dict(extra)
            face_id = int(ser.face_id[w.center])
            if cfg.mode == "synthetic":
                kernel = make_kernel(extra["seed"], cfg.synthetic.kernel_size, cfg.synthetic.iterations)
                blurry = apply_kernel(sharp, kernel, cfg.crf, cfg.synthetic.noise_sigma,
                                      np.random.default_rng([extra["seed"], 1]))
                extra["kernel"] = kernel.ravel().tolist()
            pair_id = _pair_id(src.video_id, cfg.mode, w, extra, cfg, face_id)
            rel_b = f"blurry/{src.video_id}/{pair_id}.png"
            rel_s = f"sharp/{src.video_id}/{pair_id}.png"
            b_bytes, s_bytes = encode_png(blurry), encode_png(sharp)
            write_bytes_atomic(out / rel_b, b_bytes)
            write_bytes_atomic(out / rel_s, s_bytes)
            row = {
                "pair_id": pair_id, "video_id": src.video_id, "video_sha256": sha,
                "mode": cfg.mode, "L": len(w.frames), "start_frame": w.start,
                "center_frame": w.center, "end_frame": w.end, "frames": list(w.frames),
                "n_duplicates_skipped": w.n_duplicates_skipped, "blurry_path": rel_b,
                "sharp_path": rel_s, "blurry_sha256": hashlib.sha256(b_bytes).hexdigest(),
                "sharp_sha256": hashlib.sha256(s_bytes).hexdigest(), "crop_x0": w.crop.x0,
                "crop_y0": w.crop.y0, "crop_size": w.crop.size, "out_size": cfg.out_size,
                "landmarks": w.crop.landmarks_to_output(ser.landmarks[w.center], cfg.out_size),
                "crf": cfg.crf, "fps": float(info.fps), "params": params_json(cfg.params()),
                "shot": int(ser.shot[w.center]), "face_id": face_id if face_id >= 0 else None, **extra,
            }
            for k in PAIR_SCHEMA.names:
                rows[k].append(row.get(k))
    arrays = {k: (landmarks_column(v) if k == "landmarks" else pa.array(v, PAIR_SCHEMA.field(k).type))
              for k, v in rows.items()}
    part = pa.table(arrays, schema=PAIR_SCHEMA).replace_schema_metadata(
        metadata("pairs-part", cfg.params(), video_sha256=sha, video=info.to_json(),
                 windows_face_lost=str(plan.face_lost), plan=plan.info)
    )
    ser0 = plan.series
    note = None if part.num_rows or ser0 is None else why_no_pairs(cfg, info, ser0.usable, ser0.is_duplicate, plan)
    part = part.replace_schema_metadata({**part.schema.metadata, **({b"mf2.note": note.encode()} if note else {})})
    stages.enter("write")
    write_parquet_atomic(ppath, part)
    return VideoResult(src.video_id, part, plan.face_lost, note=note)


def why_no_pairs(cfg: SimulateConfig, info: VideoInfo, valid: np.ndarray, dup: np.ndarray, plan: Plan) -> str:
    """One line a user can act on when a video gave nothing."""
    n = len(valid)
    exposures = int((~dup).sum()) if cfg.skip_duplicates else n
    need = cfg.L if cfg.mode == "pravg" else (cfg.vla.min_L if cfg.mode == "vla" else 1)
    dup_note = f" ({n - exposures} repeated frames not counted; --keep-duplicates counts them)" \
        if cfg.skip_duplicates and exposures < n else ""
    if exposures < need:
        what = "--L" if cfg.mode == "pravg" else "--min-L"
        return f"{exposures} distinct frames{dup_note}, fewer than {what} {need}"
    if not valid.any():
        return f"no face found in any of its {n} frames"
    if plan.face_lost:
        why = ", ".join(f"{k} {v}" for k, v in sorted((plan.info.get("skipped") or {}).items(), key=lambda kv: -kv[1]))
        return (f"every window was skipped ({plan.face_lost}: {why}); the face is usable in {int(valid.sum())} "
                f"of {n} frames")
    if cfg.mode == "vla":
        reasons = plan.info.get("stop_reasons") or {}
        short = plan.info.get("too_short", 0)
        return (f"every VLA sub-sequence stopped before --min-L {cfg.vla.min_L} ({short} too short"
                + (f"; stop reasons {dict(reasons)}" if reasons else "") + ")")
    return f"no window could be planned ({n} frames)"
