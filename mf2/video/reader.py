"""Stream decoded RGB frames from ffmpeg, one at a time.

Only one frame is ever in memory here, whatever the video's length. ffmpeg applies the
rotation metadata (autorotate) and converts limited/full range to RGB itself; frames are
passed through unchanged in number (no duplication or dropping for VFR input).
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Iterator

import ffmpeg
import numpy as np

from mf2.errors import InputError
from mf2.video.probe import VideoInfo, probe


_DECODE_THREADS: int | None = None  # None: ffmpeg's default (one per core)


def set_decode_threads(n: int | None) -> None:
    """ffmpeg decoder threads for every later ``iter_frames`` in this process (None: its
    default). Decoding is bit-identical whatever the count; a worker that shares the
    machine with others sets it to its share of the cores (mf2.pipeline.threads)."""
    global _DECODE_THREADS
    if n is not None and n < 1:
        raise ValueError(f"decode threads must be >= 1, not {n}")
    _DECODE_THREADS = n


def decode_threads() -> int | None:
    return _DECODE_THREADS


def _drain(stream, sink: deque) -> None:
    # Keep only the tail of stderr so a chatty ffmpeg can neither block nor fill memory.
    for line in iter(stream.readline, b""):
        sink.append(line.decode(errors="replace").rstrip())


def iter_frames(video: str | Path | VideoInfo) -> Iterator[np.ndarray]:
    """Yield ``(H, W, 3)`` uint8 RGB frames in display orientation.

    Raises ``InputError`` if ffmpeg fails (truncated or corrupt file), after yielding the
    frames it could decode, so a caller sees the failure rather than a silently short video.
    """
    info = video if isinstance(video, VideoInfo) else probe(video)
    from mf2.video.frames import CODEC, PHOTO_CODEC, iter_frame_files, iter_photo

    if info.codec == CODEC:
        yield from iter_frame_files(info)
        return
    if info.codec == PHOTO_CODEC:
        yield from iter_photo(info)
        return
    w, h = info.width, info.height
    frame_bytes = w * h * 3
    threads = {} if _DECODE_THREADS is None else {"threads": _DECODE_THREADS}
    # The first video stream, as probe describes (-select_streams v:0): ffmpeg's own pick is
    # the largest, so a file with a 256x256 and a 512x512 stream was read at the wrong size
    # and cut into garbage frames (issue 33).
    stream = ffmpeg.input(str(Path(info.path).resolve()), **threads)["v:0"]
    if info.sar != 1:  # non-square pixels (anamorphic DV, some broadcast): decode to square ones
        # scale runs after autorotate, so it acts on the displayed axes: stretch the stored
        # width axis, which is the height once rotated by 90/270 degrees.
        from mf2.video.probe import square_width

        if info.rotation in (90, 270):
            stream = stream.filter("scale", info.width, square_width(info.coded_width, info.sar)).filter("setsar", 1)
        else:
            stream = stream.filter("scale", square_width(info.coded_width, info.sar), info.height).filter("setsar", 1)
    proc = (
        stream
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough")
        .global_args("-nostdin", "-loglevel", "error")
        .run_async(pipe_stdout=True, pipe_stderr=True)
    )
    errors: deque[str] = deque(maxlen=20)
    t = threading.Thread(target=_drain, args=(proc.stderr, errors), daemon=True)
    t.start()
    finished = False
    try:
        while True:
            buf = proc.stdout.read(frame_bytes)
            if len(buf) < frame_bytes:
                break
            yield np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3)
        finished = True
    finally:
        if not finished:  # the consumer stopped early: nothing more to learn from ffmpeg
            proc.kill()
        proc.stdout.close()
        rc = proc.wait()
        t.join(timeout=5)
    if rc != 0:
        msg = errors[-1] if errors else f"ffmpeg exited with {rc}"
        raise InputError(f"{info.path}: decoding failed ({msg})", "decode-error")
