"""The interface every blur mode implements, and the plan it returns.

A mode checks its own settings (``validate``: its typed sub-config of SimulateConfig),
turns one face's landmark series into windows (``plan``), names its pairs, adds its own
columns (``Plan.extras``, completed per pair by ``pair_columns``), may change the blurry
image the streaming render averaged (``blur``: synthetic replaces it by a kernel blur of
the sharp target; it reads only the pair's columns, so materialize rebuilds a pair with the
same call), says why a video gave none of its pairs (``no_pairs``) and which constants
change its pairs (``params``: part of the resume key). simulate, materialize, the stills
builder, evaluate and recipes reach a mode only through ``mf2.modes.get_mode``; a fourth
mode is one module in this package (tests/test_modes.py adds one from a test folder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from mf2.blur.windows import Window
from mf2.faces.series import FaceSeries
from mf2.modes.config import SimulateConfig
from mf2.sources import VideoSource
from mf2.video import VideoInfo


@dataclass
class Plan:
    windows: list[Window]
    extras: list[dict]  # mode-specific columns per window
    face_lost: int = 0  # windows skipped, every reason
    info: dict = field(default_factory=dict)  # per-video counters for the part's metadata
    series: FaceSeries | None = None


class StageClock(Protocol):
    """Where a video is (for failure records) and how long each stage took (mf2.simulate.Stages)."""

    def enter(self, stage: str) -> None: ...


@dataclass
class PlanContext:
    """What a planner may need besides the face series (VLA: the video, for its flow pass)."""

    cfg: SimulateConfig
    src: VideoSource
    info: VideoInfo
    sha: str
    cache: Path  # where the landmark and flow tables live
    progress: Callable[[int], None] | None
    stages: StageClock

    @property
    def frame_size(self) -> tuple[int, int]:
        return (self.info.width, self.info.height)


class Mode:
    """One blur mode. Subclasses set ``name`` and override what differs."""

    name: str = ""

    def validate(self, cfg: SimulateConfig) -> None:
        """Refuse (UsageError, one line naming the flag) a setting of this mode that cannot work."""

    def params(self, cfg: SimulateConfig) -> dict:
        """Constants of this mode that change its pairs but are not user settings (those come
        from mf2.params, by their ``modes``): part of the resume key and the ``params`` record."""
        return {}

    def plan(self, ctx: PlanContext, ser: FaceSeries) -> Plan:
        raise NotImplementedError

    def pair_columns(self, cfg: SimulateConfig, extra: dict) -> dict:
        """A rendered pair's own columns, from its window's ``Plan.extras`` (synthetic adds its
        kernel here, not in the plan, so planned windows stay small)."""
        return extra

    def blur(self, sharp: np.ndarray, blurry: np.ndarray, pair: Mapping[str, Any], crf: str) -> np.ndarray:
        """The pair's blurry image, given the render's average and the pair's columns."""
        return blurry

    def pair_id(self, video_id: str, w: Window, extra: dict, cfg: SimulateConfig) -> str:
        raise NotImplementedError

    def label(self, row: dict) -> str:
        """The setting of a pair row as evaluation tables name it (\"PrAvg 7\")."""
        return self.name

    def job_name(self, job: dict) -> str:
        """A recipe job's default name, from its resolved keys."""
        return self.name

    def min_exposures(self, cfg: SimulateConfig) -> tuple[int, str]:
        """The fewest distinct frames a pair needs, and the option that sets it."""
        return 1, "--L"

    def no_pairs(self, cfg: SimulateConfig, plan: Plan) -> str | None:
        """Why a video whose faces were found and whose windows were not skipped still gave no
        pair, when this mode can say (VLA: every sub-sequence stopped early); None: the
        generic line."""
        return None
