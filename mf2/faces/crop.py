"""The face crop shared by a blurry image and its sharp target.

An axis-aligned square on integer pixel coordinates, side = longest landmark extent x
(1 + 2 x margin), centred on the extent's centre. A window's crop (``window_crop``) takes the
median centre and the median extent over the window's frames (every one a checked fit),
so one odd fit, the middle frame's included, cannot move or inflate it (issue 34). Integer coordinates make the
crop an exact pixel selection, so crop(mean(frames)) == mean(crop(frames)) bit for bit and
only the selected region ever needs averaging. Parts outside the frame are black.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np


class CropTooLarge(ValueError):
    pass


@dataclass(frozen=True)
class Crop:
    x0: int
    y0: int
    size: int

    def take(self, frame: np.ndarray, picture: tuple[int, ...] | None = None) -> np.ndarray:
        """The (size, size, C) region, zero-padded where it leaves the frame. A crop larger
        than the frame's diagonal is refused before anything is allocated: its size came
        from landmarks no face can have, and honouring it could take the machine's memory.
        ``picture``: the shape of the whole frame when ``frame`` is a region cut from it."""
        self.check_fits((picture or frame.shape)[:2])
        h, w = frame.shape[:2]
        x1, y1 = self.x0 + self.size, self.y0 + self.size
        if self.x0 >= 0 and self.y0 >= 0 and x1 <= w and y1 <= h:
            return frame[self.y0 : y1, self.x0 : x1]
        out = np.zeros((self.size, self.size) + frame.shape[2:], dtype=frame.dtype)
        self.add_to(out, frame)
        return out

    def check_fits(self, picture: tuple[int, ...]) -> None:
        """Refuse a crop larger than the (height, width) picture's diagonal (see ``take``)."""
        ph, pw = picture[:2]
        if self.size > np.hypot(ph, pw) + 1:
            raise CropTooLarge(f"crop of {self.size} px on a {pw}x{ph} frame (larger than its diagonal)")

    def add_to(self, out: np.ndarray, frame: np.ndarray) -> None:
        """``out`` (size, size, C) += the part of the crop inside ``frame``; the rest of ``out``
        is left as it is. Into a zeroed ``out`` that is ``take``; into a running sum it adds
        what ``+= take(frame)`` adds (x + 0.0 == x), without a padded copy per frame."""
        h, w = frame.shape[:2]
        sx0, sy0, sx1, sy1 = max(self.x0, 0), max(self.y0, 0), min(self.x0 + self.size, w), min(self.y0 + self.size, h)
        if sx1 > sx0 and sy1 > sy0:
            out[sy0 - self.y0 : sy1 - self.y0, sx0 - self.x0 : sx1 - self.x0] += frame[sy0:sy1, sx0:sx1]

    def landmarks_to_output(self, lm: np.ndarray, out_size: int) -> np.ndarray:
        # Pixel-centre convention: a pixel's centre at integer x maps to (x + 0.5) * s - 0.5.
        s = out_size / self.size
        return ((lm - np.array([self.x0, self.y0], dtype=np.float32) + 0.5) * s - 0.5).astype(np.float32)


def face_crop(landmarks: np.ndarray, margin: float) -> Crop:
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    cx, cy = (lo + hi) / 2.0
    size = max(8, int(round(float(max(hi - lo)) * (1.0 + 2.0 * margin))))
    return Crop(int(round(cx - size / 2.0)), int(round(cy - size / 2.0)), size)


def _nanmedian(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    """``np.nanmedian``'s value. Without a missing value (a planned window's frames all have
    fits) it is ``np.median``'s: nanmedian takes a small array through masked arrays, 0.22 ms
    a call against 0.03, twice for every window planned (1.5 % of a worker's time in issue
    35's profile)."""
    return np.nanmedian(x, axis=axis) if np.isnan(x).any() else np.median(x, axis=axis)


def window_crop(landmarks: np.ndarray, frames: Sequence[int] | np.ndarray, margin: float) -> Crop:
    """The crop of a window of frames: median centre and median longest extent of their
    landmarks (``landmarks``: (n_frames, 68, 2)). Before mf2 0.12 it came from the middle frame
    alone; on a hand-held clip a fit that the per-frame checks let through could double it."""
    lms = landmarks[np.asarray(frames, dtype=np.int64)]
    lo, hi = lms.min(axis=1), lms.max(axis=1)
    cx, cy = _nanmedian((lo + hi) / 2.0, axis=0)
    ext = float(_nanmedian((hi - lo).max(axis=1)))
    size = max(8, int(round(ext * (1.0 + 2.0 * margin))))
    return Crop(int(round(float(cx) - size / 2.0)), int(round(float(cy) - size / 2.0)), size)


def resize_to(img: np.ndarray, out_size: int) -> np.ndarray:
    if img.shape[0] == out_size:
        return np.ascontiguousarray(img)
    interp = cv2.INTER_AREA if img.shape[0] > out_size else cv2.INTER_CUBIC
    return cv2.resize(img, (out_size, out_size), interpolation=interp)
