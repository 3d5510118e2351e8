"""Frame-level progress of the videos being worked on, for the driver's progress bar.

The bar counts videos, so one long video showed 0/1 for its whole run. Workers may be other
processes (a LocalCluster) or other machines (a cluster on a shared filesystem), so each
running video reports through a small JSON file in the run's cache folder, which the driver
polls: no scheduler traffic, nothing to set up, and it works the same with ``--workers 0``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

_EVERY_S = 0.5


def _folder(cache: Path) -> Path:
    return cache / ".progress"


class FrameProgress:
    """A ``progress(n)`` callback for one video's passes over its frames. The pass it counts
    is ``stages.current`` (landmarks, flow, render, ...); the count restarts with each pass.
    Writes at most every half second; ``close`` removes the file."""

    def __init__(self, cache: Path, video_id: str, total: int, stages, job: str | None = None) -> None:
        self.path = _folder(cache) / f"{video_id}{'.' + job if job else ''}.json"
        self.video_id, self.total, self.stages, self.job = video_id, total, stages, job
        self.stage, self.done, self._last = None, 0, 0.0

    def __call__(self, n: int) -> None:
        if self.stages.current != self.stage:
            self.stage, self.done = self.stages.current, 0
        self.done += n
        now = time.monotonic()
        if now - self._last >= _EVERY_S:
            self._last = now
            self._write()

    def _write(self) -> None:
        rec = {"video": self.video_id, "job": self.job, "stage": self.stage, "done": self.done, "total": self.total}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(rec))
            os.replace(tmp, self.path)
        except OSError:  # progress is a courtesy: a full disk is reported by the work itself
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def read_progress(cache: Path) -> list[dict]:
    """The videos in progress now, as their workers last reported them."""
    out = []
    folder = _folder(cache)
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):  # being replaced, or removed just now
            continue
    return out


def describe(records: list[dict]) -> str:
    """``lp_d9 landmarks 1200/5400`` for each video in progress (three at most, then a count)."""
    parts = [
        f"{r['video'][:20]}{'/' + r['job'] if r.get('job') else ''} {r['stage']} {r['done']}/{r['total']}"
        for r in records[:3]
    ]
    if len(records) > 3:
        parts.append(f"+{len(records) - 3} more")
    return ", ".join(parts)


class ProgressWatcher:
    """Polls the cache's progress files on a thread and shows them with ``show`` (a bar's
    postfix), until the context exits."""

    def __init__(self, cache: Path, show: Callable[[str], None], every_s: float = _EVERY_S) -> None:
        self.cache, self.show, self.every_s = cache, show, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mf2-progress", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.show(describe(read_progress(self.cache)))

    def __enter__(self) -> "ProgressWatcher":
        for p in _folder(self.cache).glob("*.json") if _folder(self.cache).is_dir() else []:
            p.unlink(missing_ok=True)  # left by a killed run
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        try:
            _folder(self.cache).rmdir()  # empty once every video is done
        except OSError:
            pass
