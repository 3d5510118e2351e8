"""What a video is, read once with ffprobe, before any frame is decoded.

Frame count and VFR come from the demuxed packet timestamps (no decoding), because the
``nb_frames`` header field is missing in many containers and ``r_frame_rate`` hides
variable frame rates.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

from mf2.errors import InputError, UsageError
from mf2.video.info import VideoInfo

__all__ = ["VideoInfo", "probe", "require_ffmpeg", "ffmpeg_version", "square_width", "frame_timestamps"]

# A frame whose duration differs from the median by more than this share means VFR.
# Time-base rounding (e.g. 33/34 ms at 1/1000) stays far below it.
_VFR_TOLERANCE = 0.25


def require_ffmpeg() -> None:
    """Fail with one line (not a FileNotFoundError traceback) when ffmpeg is not installed."""
    missing = [b for b in ("ffmpeg", "ffprobe") if shutil.which(b) is None]
    if missing:
        raise UsageError(
            f"{' and '.join(missing)} not found on PATH; install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg)"
        )


@functools.lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    """The decoder's version string: identical pixels on re-materialisation need the same
    YUV->RGB conversion, which can change between ffmpeg releases, so manifests record it."""
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    first = out.splitlines()[0] if out else ""
    return first.split(" Copyright")[0].removeprefix("ffmpeg version ").strip() or "unknown"


def _fraction(text: str | None) -> Fraction | None:
    if not text or text in ("0/0", "N/A"):
        return None
    try:
        f = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return f if f > 0 else None


def _rotation(stream: dict[str, Any]) -> int:
    rot = 0
    for sd in stream.get("side_data_list", []) or []:
        if "rotation" in sd:
            rot = int(round(float(sd["rotation"])))
    if rot == 0 and "rotate" in (stream.get("tags") or {}):
        # Old-style tag is clockwise; the display matrix is counter-clockwise.
        rot = -int(stream["tags"]["rotate"])
    return rot % 360


def _run_ffprobe(args: list[str], path: Path) -> str:
    # Absolute path: a file named "-x.mp4" must never be read as an option.
    cmd = ["ffprobe", "-v", "error", *args, str(path.resolve())]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        msg = (res.stderr.strip().splitlines() or ["ffprobe failed"])[-1]
        raise InputError(f"{path}: not a readable video ({msg})", "not-a-video")
    return res.stdout


def probe(path: str | Path, fps: float | None = None) -> VideoInfo:
    """``fps``: the frame rate of a folder of frames (mf2.video.frames); a file has its own."""
    path = Path(path)
    if path.is_dir():
        from mf2.video.frames import probe_frames

        return probe_frames(path, fps)
    from mf2.sources import is_photo

    if is_photo(path):
        from mf2.video.frames import probe_photo

        return probe_photo(path)
    return _probe_file(path)


def frames_hint(path: str | Path) -> int | None:
    """About how many frames a source holds, from its container's header (OpenCV, 2-3 ms a
    file; ``probe`` runs ffprobe, ~0.2 s): what a scheduler needs to start long videos first.
    A folder of frames counts its files, a photo is one frame; None when the header does not
    say (a stream, a damaged file)."""
    path = Path(path)
    from mf2.sources import frame_files, is_photo

    try:
        if path.is_dir():
            return len(frame_files(path))
        if is_photo(path):
            return 1
    except (OSError, InputError):
        return None
    # OpenCV's FFmpeg logs a damaged file's errors to stderr ("moov atom not found"); the
    # probe of that video reports it in one line later. Read once, at OpenCV's first capture;
    # a level the user set is kept.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
    return n if n > 0 else None


# One call for the streams, the container and every video packet's time: a second ffprobe
# for the packets cost ~85 ms a video (its start and stream probing; issue 35). "v" keeps
# attached pictures, which video_streams() sets aside as the decoder does.
_PROBE_ARGS = ("-select_streams", "v", "-show_streams", "-show_format", "-show_entries", "packet=stream_index,pts_time")


def _packet(d: dict[str, Any]) -> Any:
    """json.loads hook: a packet's object becomes (stream index, pts_time) as it is read. A
    3-hour video has ~324k packets, and as dicts they held 82 MB at the peak against 40 MB
    as pairs (the csv lines of the two-call probe: 32 MB). A packet whose time is N/A has no
    pts_time in ffprobe's JSON and stays a dict, which ``_packet_times`` skips."""
    return (d.get("stream_index"), d["pts_time"]) if "pts_time" in d else d


def _packet_times(packets: list[Any], index: int) -> list[float]:
    """Sorted presentation times of stream ``index``'s packets, in seconds."""
    return sorted(float(p[1]) for p in packets if isinstance(p, tuple) and p[0] == index and p[1] not in ("", "N/A"))


def _probe_file(path: Path) -> VideoInfo:
    require_ffmpeg()
    if not path.is_file():
        raise InputError(f"{path}: no such file", "missing-file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)", "empty-file")
    meta = json.loads(_run_ffprobe([*_PROBE_ARGS, "-of", "json"], path), object_hook=_packet)
    videos = video_streams(meta.get("streams") or [])
    if not videos:
        raise InputError(f"{path}: no video stream", "not-a-video")
    s = videos[0]
    index = int(s.get("index", 0))
    pts = _packet_times(meta.get("packets") or [], index)
    n_frames = len(pts)
    if n_frames == 0:
        raise InputError(f"{path}: video stream has no frames", "not-a-video")

    vfr = False
    if n_frames >= 3:
        durs = sorted(b - a for a, b in zip(pts, pts[1:]))
        med = durs[len(durs) // 2]
        vfr = med > 0 and (durs[0] < med * (1 - _VFR_TOLERANCE) or durs[-1] > med * (1 + _VFR_TOLERANCE))

    fps = _fraction(s.get("avg_frame_rate")) or _fraction(s.get("r_frame_rate"))
    duration = float(s.get("duration") or meta.get("format", {}).get("duration") or 0.0)
    if fps is None:
        if duration <= 0:
            raise InputError(f"{path}: cannot determine the frame rate", "not-a-video")
        fps = Fraction(n_frames / duration).limit_denominator(1001)
    if duration <= 0:
        duration = float(n_frames / fps)

    rotation = _rotation(s)
    cw, ch = int(s["width"]), int(s["height"])
    sar = _fraction((s.get("sample_aspect_ratio") or "").replace(":", "/")) or Fraction(1)
    # ffmpeg's scale=iw*sar:ih, rounded to an even width as libswscale's -2 would not be asked
    sw = square_width(cw, sar)
    w, h = (ch, sw) if rotation in (90, 270) else (sw, ch)
    return VideoInfo(
        path=str(path),
        width=w,
        height=h,
        coded_width=cw,
        coded_height=ch,
        rotation=rotation,
        fps=fps,
        n_frames=n_frames,
        duration=duration,
        pix_fmt=str(s.get("pix_fmt", "")),
        color_range=s.get("color_range"),
        codec=str(s.get("codec_name", "")),
        vfr=vfr,
        sar=sar,
        stream_index=index,
        video_streams=len(videos),
        bit_rate=_bit_rate(s, meta.get("format") or {}, path, duration, len(videos)),
    )


def _bit_rate(stream: dict[str, Any], fmt: dict[str, Any], path: Path, duration: float, n_videos: int) -> float | None:
    """The stream's bit rate: its own field, else (one video stream only) the container's
    (an upper bound: audio inflates it a little), else the file's size over its duration;
    None when unknown."""
    for v in (stream.get("bit_rate"), fmt.get("bit_rate") if n_videos == 1 else None):
        try:
            if v and float(v) > 0:
                return float(v)
        except ValueError:
            continue
    if n_videos == 1 and duration > 0:
        return path.stat().st_size * 8.0 / duration
    return None


def video_streams(streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The file's video streams that are footage, in container order: cover art and
    thumbnails (attached pictures) are video streams to ffmpeg but hold one still image.
    mf2 reads the first of these, in probe and decode alike (issue 33: ffmpeg's own pick is
    the largest, and a file whose streams differ in size was read at the wrong size)."""
    return [
        st
        for st in streams
        if st.get("codec_type") == "video" and not (st.get("disposition") or {}).get("attached_pic")
    ]


def square_width(coded_width: int, sar: Fraction) -> int:
    """Stored width in square pixels (the decoder's scale filter uses the same rounding)."""
    return coded_width if sar == 1 else max(2, int(round(coded_width * sar)))


def frame_timestamps(path: str | Path) -> tuple[list[int], Fraction]:
    """Each frame's presentation timestamp in the stream's time base, in display order: what
    a writer needs to give restored frames the input's timing, variable frame rate included.
    From the demuxed packets (no decoding), sorted as the decoder emits frames."""
    path = Path(path)
    args = ["-select_streams", "V:0", "-show_entries", "stream=time_base:packet=pts", "-of", "json"]
    # a packet's object becomes its pts as it is read (see _packet); one without a pts stays {}
    meta = json.loads(_run_ffprobe(args, path), object_hook=lambda d: d["pts"] if d.keys() == {"pts"} else d)
    tb = _fraction((meta.get("streams") or [{}])[0].get("time_base")) or Fraction(1, 90000)
    pts = sorted(p for p in meta.get("packets") or [] if isinstance(p, int))
    return pts, tb
