"""VLA: a variable number of consecutive exposures, until one of the paper's three rules
stops it (mf2.blur.vla). Its planner needs the face's optical flow and grey thumbnails of
every frame (the quality rule), made in one decoding pass."""

from __future__ import annotations

import collections
import os
import tempfile
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from mf2.blur.vla import Thumbs, VlaWindow, plan_vla, thumb_scale
from mf2.blur.windows import Window
from mf2.faces.series import FaceSeries
from mf2.flow import FlowArrays, flow_for_video
from mf2.modes.base import Mode, Plan, PlanContext
from mf2.modes.config import SimulateConfig
from mf2.video import VideoInfo, iter_frames


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


def _plan(ctx: PlanContext, ser: FaceSeries) -> Plan:
    cfg, info = ctx.cfg, ctx.info
    lms, valid, dup = ser.landmarks, ser.usable, ser.is_duplicate
    ctx.stages.enter("flow")  # flow and the quality rule's thumbnails share one decoding pass
    scale = thumb_scale(lms, valid, cfg.vla.thumb_face)
    tee = _Thumbnails(info, scale, ctx.cache / "tmp", ctx.progress)
    flow = _flow(ctx, ser, tee)
    try:
        thumbs = Thumbs(tee.finish(), scale)
        ctx.stages.enter("plan")
        n = min(len(valid), len(thumbs.frames), len(flow.valid))
        vws, stats = plan_vla(
            lms[:n],
            valid[:n],
            dup[:n],
            _cut(flow, n),
            thumbs,
            cfg.vla,
            cfg.margin,
            cfg.crf,
            cfg.skip_duplicates,
            ser.run[:n],
            (info.width, info.height),
        )
    finally:
        tee.file.close()
    skipped = {"crop-too-large": stats.too_large} if stats.too_large else {}
    info_counts = {
        "too_short": stats.too_short,
        "reverse_duplicates": stats.reverse_duplicates,
        "stop_reasons": stats.stop_reasons,
        "skipped": skipped,
    }
    return Plan([vw.window for vw in vws], [_columns(vw) for vw in vws], stats.too_large, info_counts, ser)


def _flow(ctx: PlanContext, ser: FaceSeries, tee: _Thumbnails) -> FlowArrays:
    """The face's optical flow (cached by the flow stage), decoded through ``tee`` so the
    thumbnails are made in the same pass."""
    cfg = ctx.cfg
    face = cfg.face if isinstance(ser.face, str) else int(ser.face)
    table = flow_for_video(
        ctx.src.video_id,
        ctx.info,
        ctx.sha,
        ser.landmarks,
        ser.usable,
        cfg.landmarks.key(),
        cfg.flow,
        ctx.cache,
        ctx.progress,
        frames=iter(tee),
        run=ser.run,
        face=face,
    )
    return FlowArrays.from_table(table)


def _columns(vw: VlaWindow) -> dict:
    """A VLA pair's own columns: its direction and why and where its sub-sequence stopped."""
    st = vw.stop
    return {
        "direction": vw.direction,
        "stop_reason": st.reason,
        "stop_overlap": st.overlap,
        "stop_quality": st.quality,
        "stop_fb_bad": st.fb_bad,
        "stop_osc_px": st.osc_px,
        "displacement_px": vw.displacement_px,
        "path_px": vw.path_px,
    }


def _cut(flow: FlowArrays, n: int) -> FlowArrays:
    return FlowArrays(flow.valid[:n], flow.d[:n], flow.fb_err[:n], flow.fb_bad[:n], flow.mag_p90[:n])


class Vla(Mode):
    name = "vla"

    def validate(self, cfg: SimulateConfig) -> None:
        cfg.vla.validate()
        cfg.flow.validate()

    def params(self, cfg: SimulateConfig) -> dict:
        return {"thumb_face": cfg.vla.thumb_face}

    def plan(self, ctx: PlanContext, ser: FaceSeries) -> Plan:
        return _plan(ctx, ser)

    def pair_id(self, video_id: str, w: Window, extra: dict, cfg: SimulateConfig) -> str:
        return f"{video_id}_vla-{extra['direction'][0]}_L{len(w.frames)}_c{w.center:06d}"

    def label(self, row: dict) -> str:
        return "VLA"

    def job_name(self, job: dict) -> str:
        return "vla" if job["direction"] == "forward" else f"vla_{job['direction']}"

    def min_exposures(self, cfg: SimulateConfig) -> tuple[int, str]:
        return cfg.vla.min_L, "--min-L"

    def no_pairs(self, cfg: SimulateConfig, plan: Plan) -> str | None:
        reasons = plan.info.get("stop_reasons") or {}
        short = plan.info.get("too_short", 0)
        return (
            f"every VLA sub-sequence stopped before --min-L {cfg.vla.min_L} ({short} too short"
            + (f"; stop reasons {dict(reasons)}" if reasons else "")
            + ")"
        )


MODE = Vla()
