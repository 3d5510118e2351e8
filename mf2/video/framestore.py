"""A video's face regions, kept on disk by the landmark pass for the render pass (issue 35).

Making pairs decodes a video twice: once to find and fit the faces (mf2.faces.stage), once to
average the planned windows (mf2.blur.render), which can only be planned once every frame
has been fitted. The second decode cost ~1.9 ms of CPU per frame of 512 px video on one
thread; writing the region of each frame that holds its faces to a file and reading it back
costs ~0.2 ms (measured on ``lp_d9``, 587 frames). So the landmark pass writes, per frame, the
rectangle around its faces (raw RGB, one file per video), and the render pass reads them back
into a frame-sized buffer instead of decoding, when every window's crop lies inside its
frames' rectangles; otherwise it decodes, so the pairs are the same bytes either way.

Nothing is held in memory: the file grows as the video is read, up to ``STORE_BYTES`` (past
that the store is given up and the render pass decodes). The index (frame -> rectangle, byte
offset) is written last, atomically: a store without one is incomplete and never read. The
store lives in the run's cache (mf2.dataset.layout.frame_store_path) while the video's jobs
render; the pipeline removes it after them (a killed run's store is complete or cleared as a
temporary, and a resumed run may still use it: it is keyed by the video's content).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO, Generator, Mapping

import numpy as np

# per video: 1 GiB holds ~1,400 frames of 512 x 512 or ~1,000 face regions of 600 x 600 px
# (a 200 px face in 720p video); a longer video is decoded twice, as before
STORE_BYTES = 1 << 30

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), inside the frame


class FrameStoreWriter:
    """Appends each frame's face rectangle, in frame order; ``close`` publishes the store."""

    def __init__(self, path: Path, width: int, height: int, limit: int = STORE_BYTES) -> None:
        """The store is an optimisation, never a cause of failure: it takes at most a quarter
        of the disk's free space, and any error writing it (a full or read-only disk) gives
        it up, leaving the render pass to decode."""
        self.path, self.width, self.height, self.limit = path, width, height, limit
        self._tmp = _tmp_path(path)
        self._rows: list[tuple[int, int, int, int, int, int]] = []  # frame, x0, y0, x1, y1, offset
        self._size = 0
        self._f: BinaryIO | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.limit = min(limit, shutil.disk_usage(path.parent).free // 4)  # the free space, not only the cap
            self._f = open(self._tmp, "wb")
        except OSError:
            self._f = None

    @property
    def active(self) -> bool:
        return self._f is not None

    def add(self, index: int, frame: np.ndarray, rect: Rect | None) -> None:
        """Frame ``index``'s pixels inside ``rect`` (None: nothing of this frame is kept)."""
        if self._f is None:
            return
        x0, y0, x1, y1 = rect or (0, 0, 0, 0)
        region = frame[y0:y1, x0:x1]
        if self._size + region.nbytes > self.limit:
            self.abandon()
            return
        self._rows.append((index, x0, y0, x1, y1, self._size))
        if region.size:
            try:
                self._f.write(np.ascontiguousarray(region).data)
            except OSError:
                self.abandon()
                return
            self._size += region.nbytes

    def abandon(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except OSError:  # the buffered tail could not be written: the file goes anyway
                pass
            self._f = None
            self._tmp.unlink(missing_ok=True)

    def close(self) -> None:
        """The pixels under their final name, then the index: a store is complete or absent."""
        if self._f is None:
            return
        index = np.array(self._rows, np.int64).reshape(-1, 6)
        head = np.array([[self.width, self.height, len(self._rows), 0, 0, 0]], np.int64)
        tmp = _tmp_path(_index_path(self.path))
        try:
            self._f.close()
            self._f = None
            os.replace(self._tmp, self.path)
            with open(tmp, "wb") as f:
                np.save(f, np.concatenate([head, index]))
            os.replace(tmp, _index_path(self.path))
        except OSError:
            self._f = None
            for p in (tmp, self._tmp):
                p.unlink(missing_ok=True)
            remove_store(self.path)


def _tmp_path(path: Path) -> Path:
    # hidden and ending in .tmp: what a later run clears when this one is killed (mf2.atomic)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _index_path(path: Path) -> Path:
    return path.with_name(path.name + ".index.npy")


def remove_store(path: Path) -> None:
    """The store's files, and its folder once empty (a finished dataset keeps no trace)."""
    for p in (_index_path(path), path):
        p.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:  # another video's store is still there (or the folder never was)
        pass


class FrameStore:
    """A complete store, read back: frames as the decoder would give them inside the kept
    rectangles (``covers`` says whether the pixels a render needs are all kept)."""

    def __init__(self, path: Path, width: int, height: int, index: np.ndarray) -> None:
        self.path, self.width, self.height = path, width, height
        self.index = {int(r[0]): tuple(int(v) for v in r[1:]) for r in index}

    @classmethod
    def open(cls, path: Path, width: int, height: int) -> "FrameStore | None":
        """The store at ``path`` if it is complete and of a frame this size, else None."""
        try:
            data = np.load(_index_path(path), allow_pickle=False)
        except (OSError, ValueError):
            return None
        if data.ndim != 2 or data.shape[1] != 6 or len(data) < 1 or not path.is_file():
            return None
        (w, h, n, *_), index = data[0], data[1:]
        if (int(w), int(h)) != (width, height) or int(n) != len(index):
            return None
        return cls(path, width, height, index)

    def covers(self, needed: Mapping[int, Rect]) -> bool:
        """Whether every frame's ``needed`` rectangle lies inside the one kept of it."""
        for i, (x0, y0, x1, y1) in needed.items():
            if x1 <= x0 or y1 <= y0:
                continue
            kept = self.index.get(i)
            if kept is None or not (kept[0] <= x0 and kept[1] <= y0 and x1 <= kept[2] and y1 <= kept[3]):
                return False
        return True

    def frames(self) -> Generator[np.ndarray, None, None]:
        """Every frame in order, in one reused buffer: the kept rectangle of each is the
        decoder's pixels, the rest is left over from earlier frames (read only what ``covers``
        checked)."""
        buf = np.zeros((self.height, self.width, 3), np.uint8)
        with open(self.path, "rb") as f:
            for i in range(max(self.index, default=-1) + 1):
                x0, y0, x1, y1, offset = self.index.get(i, (0, 0, 0, 0, 0))
                if x1 > x0 and y1 > y0:
                    f.seek(offset)
                    region = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
                    f.readinto(region.data)
                    buf[y0:y1, x0:x1] = region
                yield buf
