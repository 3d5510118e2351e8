"""Write frames as H.264 with given timestamps: restored video keeps the input's timing.

A raw-video pipe into ffmpeg carries no timestamps, so it can only write a constant rate;
a variable-frame-rate input would come out with every frame shifted. PyAV sets each frame's
pts in the input's own time base, exactly. Frames are encoded as they come (nothing held).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


class TimedWriter:
    def __init__(self, path: Path, width: int, height: int, time_base: Fraction, rate: Fraction, crf: int = 16) -> None:
        import av

        self._av = av
        self.container = av.open(str(path), mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = time_base
        self.stream.codec_context.time_base = time_base
        self.stream.options = {"crf": str(crf)}

    def write(self, rgb: np.ndarray, pts: int) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = int(pts)
        frame.time_base = self.stream.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
