"""Which videos a dataset keeps: 2MF² kept "high resolution and high fps" videos of at least
500 frames. A video that a filter turns away is recorded (class ``filtered``, with the
reason), never silently dropped; the filters are checked again on every run, so changing
them takes effect without --retry-failed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mf2.errors import FILTERED, InputError, UsageError
from mf2.params import FILTERS, default
from mf2.video.info import VideoInfo


@dataclass(frozen=True)
class VideoFilter:
    """Each setting is declared in mf2.params.FILTERS; 0 turns it off."""

    min_frames: int = default("min_frames", FILTERS)
    min_fps: float = default("min_fps", FILTERS)
    min_height: int = default("min_height", FILTERS)
    min_face: int = default("min_face", FILTERS)

    def validate(self) -> None:
        for p in FILTERS:
            if getattr(self, p.target) < 0:
                raise UsageError(f"{p.flag} {getattr(self, p.target)}: must be >= 0")

    def check_video(self, info: VideoInfo) -> None:
        """InputError(filtered) naming the first setting the video fails."""
        if self.min_frames and info.n_frames < self.min_frames:
            raise InputError(f"{info.n_frames} frames, fewer than --min-frames {self.min_frames}", FILTERED)
        if self.min_fps and float(info.fps) < self.min_fps:
            raise InputError(f"{float(info.fps):.2f} fps, below --min-fps {self.min_fps:g}", FILTERED)
        if self.min_height and info.height < self.min_height:
            raise InputError(f"{info.height} px high, below --min-height {self.min_height}", FILTERED)

    def check_faces(self, table: pa.Table) -> None:
        """The largest face per frame, by landmark extent, on usable rows: its median over the
        frames that have one (a video with no usable face is left to the planner to explain)."""
        if not self.min_face:
            return
        from mf2.schema import landmarks_to_numpy

        lms, valid = landmarks_to_numpy(table["landmarks"])
        ok = valid & (np.asarray(table["reason"].to_pylist(), dtype=object) == "ok")
        if not ok.any():
            return
        extent = (lms[ok].max(axis=1) - lms[ok].min(axis=1)).max(axis=1)
        frames = np.asarray(table["frame"].to_numpy(zero_copy_only=False))[ok]
        largest: dict[int, float] = {}
        for f, e in zip(frames, extent):
            largest[int(f)] = max(largest.get(int(f), 0.0), float(e))
        size = float(np.median(list(largest.values())))
        if size < self.min_face:
            raise InputError(
                f"faces of {size:.0f} px (median landmark extent), below --min-face {self.min_face}", FILTERED
            )

    def active(self) -> bool:
        return any(getattr(self, p.target) for p in FILTERS)
