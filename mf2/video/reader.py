"""Stream decoded RGB frames from ffmpeg, one at a time.

Only one frame is ever in memory here, whatever the video's length. ffmpeg applies the
rotation metadata (autorotate) and converts limited/full range to RGB itself; frames are
passed through unchanged in number (no duplication or dropping for VFR input).
"""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator

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


@dataclass
class DecodeDamage:
    """Frames that ffmpeg decoded from damaged data (issue 33).

    A decoder that meets corrupt or missing data does not stop: it drops what it cannot
    parse and conceals the rest, inventing pixels from neighbouring blocks and frames, and
    every frame that predicts from a damaged one inherits the damage until the next
    keyframe. Such frames look like footage but are not, so no pair may average them.
    ``spans`` are inclusive ranges of decoded-frame indices, from the first frame output
    after an error report to the frame before the next keyframe that comes at least
    ``lag`` frames later (the decoder's threads report errors ahead of the frames they
    concern, so the span starts early and ends late: it errs on the side of losing frames).
    Only ranges are kept, so memory does not grow with the video's length.
    """

    spans: list[tuple[int, int]] = field(default_factory=list)
    errors: int = 0  # error reports of the decoder and demuxer
    first_error: str | None = None

    def __contains__(self, frame: int) -> bool:
        return any(a <= frame <= b for a, b in self.spans)

    @property
    def n_frames(self) -> int:
        return sum(b - a + 1 for a, b in self.spans)

    def to_json(self) -> dict:
        return {
            "errors": self.errors,
            "frames": self.n_frames,
            "spans": [list(s) for s in self.spans],
            "first_error": self.first_error,
        }


# showinfo's per-frame line: "[Parsed_showinfo_1 @ 0x..] [info] n:  12 pts: ... iskey:0 type:P"
_FRAME_LINE = re.compile(r"\bn:\s*(\d+)\s+pts:.*?\biskey:([01])")
_ERROR_TAGS = ("[error]", "[fatal]", "[panic]")


class _DamageWatch:
    """Reads ffmpeg's log (``-loglevel level+info`` with ``showinfo``) line by line and fills
    a ``DecodeDamage``. ffmpeg's log and its frames travel on different pipes, so the frame
    an error belongs to is known only through showinfo's per-frame lines, in log order: an
    error is reported while the frame that inherits it is decoded, before that frame is shown."""

    def __init__(self, damage: DecodeDamage, lag: int) -> None:
        self.damage, self.lag = damage, lag
        self.pending = False  # an error was reported since the last frame line
        self.start: int | None = None  # first frame of the open damaged span
        self.since = 0  # frames shown since the last error
        self.last = -1

    def line(self, text: str) -> bool:
        """Take one log line; True when it reports an error."""
        if "showinfo" in text:
            m = _FRAME_LINE.search(text)
            if m:
                self._frame(int(m.group(1)), m.group(2) == "1")
            return False
        if any(t in text for t in _ERROR_TAGS) or "corrupt decoded frame" in text:
            self.pending = True
            self.damage.errors += 1
            if self.damage.first_error is None:
                self.damage.first_error = re.sub(r"^(\[[^]]*\] )+", "", text)[:200]
            return True
        return False

    def _frame(self, n: int, key: bool) -> None:
        if self.pending:
            self.pending, self.since = False, 0
            if self.start is None:
                self.start = n
        elif self.start is not None:
            self.since += 1
            if key and self.since >= self.lag:
                self.damage.spans.append((self.start, n - 1))
                self.start = None
        self.last = n

    def close(self) -> None:
        if self.start is not None and self.last >= self.start:
            self.damage.spans.append((self.start, self.last))
        self.start = None


def _drain(stream, sink: deque, watch: _DamageWatch | None = None) -> None:
    # Keep only the tail of stderr's error lines so a chatty ffmpeg can neither block nor
    # fill memory; with a watch, every line is read for frame damage first.
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        if watch is None:
            sink.append(line)
        elif watch.line(line):
            sink.append(line.replace("[error] ", "").replace("[fatal] ", ""))
    if watch is not None:
        watch.close()


def _decode_lag() -> int:
    # Frame threads (ffmpeg's default: one per core, plus one) report ahead of the frames
    # they concern; B-frame reordering adds a few more.
    return (_DECODE_THREADS or (os.cpu_count() or 1) + 1) + 4


def _start_decoder(info: VideoInfo, numbered: bool):
    """ffmpeg decoding ``info``'s stream to raw RGB on stdout; ``numbered``: with a log that
    numbers the frames (showinfo) and tags each line's level, for ``_DamageWatch``."""
    threads = {} if _DECODE_THREADS is None else {"threads": _DECODE_THREADS}
    # Exactly the stream probe described (mf2.video.probe.video_streams): ffmpeg's own pick is
    # the largest, so a file with a 256x256 and a 512x512 stream was read at the wrong size
    # and cut into garbage frames (issue 33).
    which = "V:0" if info.stream_index is None else str(info.stream_index)
    stream = ffmpeg.input(str(Path(info.path).resolve()), **threads)[which]
    if info.sar != 1:  # non-square pixels (anamorphic DV, some broadcast): decode to square ones
        # scale runs after autorotate, so it acts on the displayed axes: stretch the stored
        # width axis, which is the height once rotated by 90/270 degrees.
        from mf2.video.probe import square_width

        if info.rotation in (90, 270):
            stream = stream.filter("scale", info.width, square_width(info.coded_width, info.sar)).filter("setsar", 1)
        else:
            stream = stream.filter("scale", square_width(info.coded_width, info.sar), info.height).filter("setsar", 1)
    log = ["-loglevel", "error"]
    if numbered:
        # showinfo (no checksums: it then costs nothing measurable) numbers the frames in
        # the log, so errors can be placed; it passes the pixels through untouched.
        stream = stream.filter("showinfo", checksum=0)
        log = ["-hide_banner", "-nostats", "-loglevel", "level+info"]
    return (
        stream.output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough")
        .global_args("-nostdin", *log)
        .run_async(pipe_stdout=True, pipe_stderr=True)
    )


def iter_frames(video: str | Path | VideoInfo, damage: DecodeDamage | None = None) -> Generator[np.ndarray, None, None]:
    """Yield ``(H, W, 3)`` uint8 RGB frames in display orientation.

    Raises ``InputError`` if ffmpeg fails (truncated or corrupt file), after yielding the
    frames it could decode, so a caller sees the failure rather than a silently short video.
    ``damage``, when given, is filled with the frames ffmpeg decoded from damaged data once
    the generator is exhausted (the landmark pass asks for it and marks them lost).
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
    watch = None if damage is None else _DamageWatch(damage, _decode_lag())
    proc = _start_decoder(info, watch is not None)
    errors: deque[str] = deque(maxlen=20)
    t = threading.Thread(target=_drain, args=(proc.stderr, errors, watch), daemon=True)
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
