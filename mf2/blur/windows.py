"""Which frames make each blurry image: planned from the landmark table alone.

Planning before decoding lets the renderer stream the video once, holding only the
accumulators of windows that are open, and makes the plan itself testable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mf2.blur.crop import Crop, face_crop


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
    skipped_face_lost: int = 0


def plan_pravg(
    landmarks: np.ndarray,
    valid: np.ndarray,
    is_duplicate: np.ndarray,
    L: int,
    stride: int = 1,
    margin: float = 0.25,
    skip_duplicates: bool = True,
) -> tuple[list[Window], PlanStats]:
    """Windows of L consecutive exposures with the middle one as the sharp target.

    With ``skip_duplicates`` a repeated frame is not an exposure: windows are taken over the
    sequence of distinct frames, so each averages L real exposures and no two windows share
    a centre picture. A window is skipped (and counted) when the face is lost in any of its
    frames.
    """
    if L < 3 or L % 2 == 0:
        raise ValueError(f"L must be odd and >= 3, got {L}")
    n = len(valid)
    exposures = np.flatnonzero(~is_duplicate) if skip_duplicates else np.arange(n)
    stats = PlanStats()
    windows: list[Window] = []
    for s in range(0, len(exposures) - L + 1, max(1, stride)):
        fr = exposures[s : s + L]
        if not valid[fr[0] : fr[-1] + 1].all():
            stats.skipped_face_lost += 1
            continue
        c = int(fr[L // 2])
        windows.append(
            Window(
                frames=tuple(int(f) for f in fr),
                center=c,
                crop=face_crop(landmarks[c], margin),
                n_duplicates_skipped=int(fr[-1] - fr[0] + 1 - L),
            )
        )
    stats.windows = len(windows)
    return windows, stats
