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
# A photo (``mf2 simulate --images``): its own source of one frame, never a frame of a video,
# whatever its name. It has no frame rate; 1 fps keeps every per-frame table well defined.
PHOTO_CODEC = "photo"


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
    return VideoInfo(
        path=str(folder),
        width=w,
        height=h,
        coded_width=w,
        coded_height=h,
        rotation=0,
        fps=rate,
        n_frames=len(files),
        duration=float(len(files) / rate),
        pix_fmt=mode.lower(),
        color_range=None,
        codec=CODEC,
        vfr=False,
    )


def probe_photo(path: str | Path) -> VideoInfo:
    """A photo as a one-frame source, in its upright orientation (EXIF applied, as a viewer
    shows it: phone photos are often stored on their side)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file", "missing-file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)", "empty-file")
    rgb = _read_photo(path)
    h, w = rgb.shape[:2]
    return VideoInfo(
        path=str(path),
        width=w,
        height=h,
        coded_width=w,
        coded_height=h,
        rotation=0,
        fps=Fraction(1),
        n_frames=1,
        duration=1.0,
        pix_fmt="rgb24",
        color_range=None,
        codec=PHOTO_CODEC,
        vfr=False,
        bit_rate=path.stat().st_size * 8.0,
    )


def _read_photo(path: Path) -> np.ndarray:
    from PIL import ImageOps

    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable image ({type(e).__name__})", "decode-error") from None


def iter_photo(info: VideoInfo) -> Iterator[np.ndarray]:
    rgb = _read_photo(Path(info.path))
    if rgb.shape[:2] != (info.height, info.width):
        raise InputError(
            f"{info.path}: {rgb.shape[1]}x{rgb.shape[0]}, probed as {info.width}x{info.height} (the photo changed)",
            "decode-error",
        )
    yield rgb


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
            raise InputError(
                f"{f}: {rgb.shape[1]}x{rgb.shape[0]}, but the sequence is {info.width}x{info.height}", "decode-error"
            )
        yield rgb
