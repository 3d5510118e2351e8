"""A video given as a folder of numbered frames (as benchmarks such as 300VW's frame dumps
ship them): probed and streamed like a video file, one frame in memory at a time.

ffmpeg's image2 demuxer needs a printf pattern and contiguous numbers; real frame dumps skip
numbers and mix widths (``1.png`` … ``10.png``), so the frames are read with Pillow in the
order mf2.sources.frame_files gives. The frame rate comes from the user (``--fps``): images
carry none.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from mf2.errors import InputError
from mf2.sources import frame_files
from mf2.video.info import VideoInfo

CODEC = "image2"  # ffmpeg's name for an image sequence


def _size(path: Path) -> tuple[int, int, str]:
    try:
        with Image.open(path) as im:  # reads the header only
            return im.width, im.height, im.mode
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"{path}: not a readable image ({type(e).__name__})", "decode-error") from None


def probe_frames(folder: str | Path, fps: float | None) -> VideoInfo:
    folder = Path(folder)
    if fps is None or not fps > 0:
        raise InputError(f"{folder}: a folder of frames needs its frame rate (--fps)", "not-a-video")
    files = frame_files(folder)
    w, h, mode = _size(files[0])
    for f in files[1:]:
        fw, fh, _ = _size(f)
        if (fw, fh) != (w, h):
            raise InputError(f"{f}: {fw}x{fh}, but the sequence's first frame is {w}x{h}", "decode-error")
    rate = Fraction(fps).limit_denominator(1001)
    return VideoInfo(path=str(folder), width=w, height=h, coded_width=w, coded_height=h, rotation=0, fps=rate,
                     n_frames=len(files), duration=float(len(files) / rate), pix_fmt=mode.lower(), color_range=None,
                     codec=CODEC, vfr=False)


def iter_frame_files(info: VideoInfo) -> Iterator[np.ndarray]:
    """``(H, W, 3)`` uint8 RGB frames in frame order (EXIF orientation is not applied: frame
    dumps are stored upright, and .pts annotations refer to the stored pixels)."""
    for f in frame_files(Path(info.path)):
        try:
            with Image.open(f) as im:
                rgb = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as e:
            raise InputError(f"{f}: not a readable image ({type(e).__name__})", "decode-error") from None
        if rgb.shape[:2] != (info.height, info.width):
            raise InputError(f"{f}: {rgb.shape[1]}x{rgb.shape[0]}, but the sequence is {info.width}x{info.height}",
                             "decode-error")
        yield rgb
