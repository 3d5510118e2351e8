"""The interface every blur mode implements, and the plan it returns.

A mode turns one face's landmark series into windows (``plan``), may change the blurry
image the streaming render averaged (``blur``: synthetic replaces it by a kernel blur of the
sharp target), names its pairs, adds its own columns (``Plan.extras``) and says which of
constants change its pairs (``params``: part of the resume key). simulate,
materialize, the stills builder, evaluate and recipes reach a mode only through
``mf2.modes.get_mode``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mf2.blur.windows import Window
from mf2.faces.series import FaceSeries
from mf2.sources import VideoSource
from mf2.video import VideoInfo


@dataclass
class Plan:
    windows: list[Window]
    extras: list[dict]  # mode-specific columns per window
    face_lost: int = 0  # windows skipped, every reason
    info: dict = field(default_factory=dict)  # per-video counters for the part's metadata
    series: FaceSeries | None = None


@dataclass
class PlanContext:
    """What a planner may need besides the face series (VLA: the video, for its flow pass)."""

    cfg: Any  # mf2.simulate.SimulateConfig
    src: VideoSource
    info: VideoInfo
    sha: str
    cache: Path  # where the landmark and flow tables live
    progress: Callable[[int], None] | None
    stages: Any  # mf2.simulate.Stages: .enter(stage)

    @property
    def frame_size(self) -> tuple[int, int]:
        return (self.info.width, self.info.height)


class Mode:
    """One blur mode. Subclasses set ``name`` and override what differs."""

    name: str = ""

    def params(self, cfg: Any) -> dict:
        """Constants of this mode that change its pairs but are not user settings (those come
        from mf2.params, by their ``modes``): part of the resume key and the ``params`` record."""
        return {}

    def plan(self, ctx: PlanContext, ser: FaceSeries) -> Plan:
        raise NotImplementedError

    def blur(self, cfg: Any, sharp: np.ndarray, blurry: np.ndarray, extra: dict) -> np.ndarray:
        """The pair's blurry image, given the render's average; may add columns to ``extra``."""
        return blurry

    def pair_id(self, video_id: str, w: Window, extra: dict, cfg: Any) -> str:
        raise NotImplementedError

    def label(self, row: dict) -> str:
        """The setting of a pair row as evaluation tables name it (\"PrAvg 7\")."""
        raise NotImplementedError

    def job_name(self, job: dict) -> str:
        """A recipe job's default name, from its resolved keys."""
        return self.name

    def min_exposures(self, cfg: Any) -> tuple[int, str]:
        """The fewest distinct frames a pair needs, and the option that sets it."""
        return 1, "--L"
