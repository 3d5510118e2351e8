"""Which frames make each blurry image: planned from the landmark table alone.

Planning before decoding lets the renderer stream the video once, holding only the
accumulators of windows that are open, and makes the plan itself testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mf2.errors import UsageError
from mf2.faces.crop import Crop, window_crop
from mf2.params import default


@dataclass(frozen=True)
class PrAvgConfig:
    """PrAvg's own setting (declared in mf2.params): how many consecutive exposures each
    blurry image averages."""

    L: int = default("pravg.L")

    def validate(self) -> None:
        if self.L < 3 or self.L % 2 == 0:
            raise UsageError(f"--L {self.L}: must be an odd number >= 3 (the middle frame is the sharp target)")


@dataclass(frozen=True)
class Window:
    frames: tuple[int, ...]  # frames averaged, in order
    center: int  # the sharp target
    crop: Crop
    n_duplicates_skipped: int

    @property
    def start(self) -> int:
        return self.frames[0]

    @property
    def end(self) -> int:
        return self.frames[-1]


@dataclass
class PlanStats:
    windows: int = 0
    skipped_face_lost: int = 0  # every skipped window, whatever the reason
    skipped: dict = field(default_factory=dict)  # reason -> windows skipped for it


def window_problem(frames, usable: np.ndarray, run: np.ndarray | None, reason: np.ndarray | None) -> str | None:
    """Why the frames ``frames[0]..frames[-1]`` cannot make one window, or None. A window
    needs every frame in its span usable and in one run (one shot, one track): it never
    averages across a cut or two faces."""
    lo, hi = int(frames[0]), int(frames[-1]) + 1
    ok = usable[lo:hi]
    if not ok.all():
        if reason is None:
            return "face-lost"
        return str(reason[lo + int(np.argmin(ok))])
    if run is not None and (run[lo:hi] != run[lo]).any():
        return "shot-cut"
    return None


def crop_fits(crop: Crop, frame_size: tuple[int, int] | None) -> bool:
    """A crop is never larger than the frame's diagonal: beyond that no landmark set is
    believable, and the render would allocate whatever the landmarks asked for."""
    return frame_size is None or crop.size <= float(np.hypot(*frame_size))


def _count(stats: PlanStats, why: str) -> None:
    stats.skipped_face_lost += 1
    stats.skipped[why] = stats.skipped.get(why, 0) + 1


def plan_pravg(
    landmarks: np.ndarray,
    valid: np.ndarray,
    is_duplicate: np.ndarray,
    L: int,
    stride: int = 1,
    margin: float = default("margin"),
    skip_duplicates: bool = True,
    run: np.ndarray | None = None,
    reason: np.ndarray | None = None,
    frame_size: tuple[int, int] | None = None,
) -> tuple[list[Window], PlanStats]:
    """Windows of L consecutive exposures with the middle one as the sharp target.

    With ``skip_duplicates`` a repeated frame is not an exposure: windows are taken over the
    sequence of distinct frames, so each averages L real exposures and no two windows share
    a centre picture. A window is skipped, and counted by reason, when a frame of its span
    is not usable (``reason`` says why), when it spans two runs (``run``: shot and track),
    or when its crop is larger than the frame's diagonal (``frame_size``, w x h).
    """
    if L < 3 or L % 2 == 0:
        raise ValueError(f"L must be odd and >= 3, got {L}")
    n = len(valid)
    exposures = np.flatnonzero(~is_duplicate) if skip_duplicates else np.arange(n)
    stats = PlanStats()
    windows: list[Window] = []
    for s in range(0, len(exposures) - L + 1, max(1, stride)):
        fr = exposures[s : s + L]
        why = window_problem(fr, valid, run, reason)
        if why is not None:
            _count(stats, why)
            continue
        c = int(fr[L // 2])
        crop = window_crop(landmarks, fr, margin)
        if not crop_fits(crop, frame_size):
            _count(stats, "crop-too-large")
            continue
        windows.append(
            Window(
                frames=tuple(int(f) for f in fr), center=c, crop=crop, n_duplicates_skipped=int(fr[-1] - fr[0] + 1 - L)
            )
        )
    stats.windows = len(windows)
    return windows, stats


def neighbour_frames(w: Window) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The frames of a pair's two neighbouring exposures: as many consecutive frames as its
    window averages, just before its first frame and just after its last."""
    n = len(w.frames)
    return tuple(range(w.start - n, w.start)), tuple(range(w.end + 1, w.end + 1 + n))


def neighbour_window(w: Window, frames: tuple[int, ...]) -> Window:
    """One neighbouring exposure as a window in the pair's crop (its centre is never a target)."""
    return Window(frames, frames[len(frames) // 2], w.crop, 0)


def neighbour_windows(
    w: Window, usable: np.ndarray, run: np.ndarray | None, reason: np.ndarray | None = None
) -> tuple[Window | None, Window | None]:
    """The exposures beside a pair's window (``neighbour_frames``), in its crop: what a camera
    records beside the blurry frame, never its sharp target. Each is None where it would leave
    the video, the pair's run (a cut, another track) or the frames where its face is usable:
    a video deblurrer gets the frames of the shot it tracks, and a dataset must not teach it
    otherwise."""
    out: list[Window | None] = []
    for frames in neighbour_frames(w):
        ok = frames[0] >= 0 and frames[-1] < len(usable) and window_problem(frames, usable, run, reason) is None
        if ok and run is not None:
            ok = bool(run[frames[0]] == run[w.center])
        out.append(neighbour_window(w, frames) if ok else None)
    return out[0], out[1]
