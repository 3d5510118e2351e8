"""What mf2 knows of a video before decoding it (ffprobe's answer, or a frame folder's)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int  # as displayed, i.e. after the rotation below is applied
    height: int
    coded_width: int
    coded_height: int
    rotation: int  # degrees counter-clockwise, as in the display matrix; 0/90/180/270
    fps: Fraction  # average frame rate, exact
    n_frames: int
    duration: float  # seconds
    pix_fmt: str
    color_range: str | None
    codec: str
    vfr: bool
    # Sample (pixel) aspect ratio of the stored frames. Frames are decoded to square pixels
    # (width scaled by it), so width above is the display width, as a viewer shows it.
    sar: Fraction = Fraction(1)
    # Which stream of the file is read: its index in the container, and how many video
    # streams (cover art aside) the file holds. mf2 reads the first (mf2.video.probe).
    stream_index: int | None = None
    video_streams: int = 1
    bit_rate: float | None = None  # bits per second of that stream (a photo: its file's bits); None: unknown

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        d["fps_float"] = float(self.fps)
        d["sar"] = f"{self.sar.numerator}:{self.sar.denominator}"
        return d
