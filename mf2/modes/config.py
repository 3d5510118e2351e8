"""What one simulate job makes (``SimulateConfig``), below the mode plugins so each mode's
methods are typed by it. The settings common to every mode sit at the top; each mode's own
settings sit in its typed sub-config (``pravg``, ``vla`` and ``flow``, ``synthetic``) and are
checked by the mode (``Mode.validate``). Every user-settable
field is declared once, in mf2.params (flag, recipe key, default, help, modes);
``simulate_config`` builds this from those keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from mf2.blur.crf import CRF_MODES
from mf2.blur.kernels import SyntheticConfig
from mf2.blur.vla import VlaConfig
from mf2.blur.windows import PrAvgConfig
from mf2.errors import UsageError
from mf2.faces.select import LandmarkConfig
from mf2.faces.series import FACE_CHOICES
from mf2.flow import FlowConfig
from mf2.modes import get_mode
from mf2.params import BY_KEY, RECORDED_WHEN_ON, SIMULATE, default, get_path


@dataclass(frozen=True)
class SimulateConfig:
    """What one simulate job makes. Each user-settable field is declared in mf2.params (flag,
    recipe key, default, help); ``simulate_config`` builds this from those keys."""

    mode: str = default("mode")
    stride: int = default("stride")  # pravg, synthetic: exposures between pairs
    crf: str = default("crf")
    out_size: int = default("out_size")
    margin: float = default("margin")
    skip_duplicates: bool = default("skip_duplicates")
    face: str = default("face")  # the face of each shot: largest | centre | longest (mf2.faces.series)
    faces: str = default("faces")  # main: that face only; all: every face of the video, each its own face_id
    min_target_sharpness: float = default("min_target_sharpness")  # pair filters: mf2.blur.measures
    min_target_sharpness_abs: float = default("min_target_sharpness_abs")
    min_blur: float = default("min_blur")
    neighbours: bool = default("neighbours")  # pravg, vla: prev/ and next/ beside each pair
    landmarks: LandmarkConfig = field(default_factory=LandmarkConfig)
    # Each mode's own settings: checked by the mode, in the ``params`` record only for it.
    pravg: PrAvgConfig = field(default_factory=PrAvgConfig)
    vla: VlaConfig = field(default_factory=VlaConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        # The crop margin is one setting: the flow stage crops with the same one.
        if self.flow.margin != self.margin:
            object.__setattr__(self, "flow", replace(self.flow, margin=self.margin))

    def validate(self) -> None:
        """The settings every mode shares, then the mode's own (``Mode.validate``)."""
        mode = get_mode(self.mode)  # a one-line error naming the modes there are
        if self.stride < 1:
            raise UsageError(f"--stride {self.stride}: must be >= 1")
        if self.crf not in CRF_MODES:
            raise UsageError(f"--crf {self.crf!r}: expected one of {', '.join(CRF_MODES)}")
        if not 16 <= self.out_size <= 4096:
            raise UsageError(f"--out-size {self.out_size}: must be between 16 and 4096")
        if not 0 <= self.margin <= 2:
            raise UsageError(f"--margin {self.margin}: must be between 0 and 2")
        if self.face not in FACE_CHOICES:
            raise UsageError(f"--face {self.face!r}: expected one of {', '.join(FACE_CHOICES)}")
        if self.faces not in ("main", "all"):
            raise UsageError(f"--faces {self.faces!r}: expected main or all")
        if not 0 <= self.min_target_sharpness <= 1:
            raise UsageError(
                f"--min-target-sharpness {self.min_target_sharpness}: must be between 0 and 1 "
                "(a share of the neighbouring targets' sharpness)"
            )
        if self.min_target_sharpness_abs < 0 or self.min_blur < 0:
            raise UsageError("--min-target-sharpness-abs and --min-blur must be >= 0 (0: off)")
        if self.neighbours and not BY_KEY["neighbours"].applies(self.mode):
            raise UsageError(f"--neighbours: a {self.mode} pair is one frame; it has no neighbouring exposures")
        self.landmarks.validate()
        mode.validate(self)

    def params(self) -> dict:
        """Everything that changes this job's pairs, by the names of mf2.params: the resume key
        and the ``params`` record of every row. A setting of another mode is left out, and so
        is ``face`` when every face is kept."""
        d = {p.key: get_path(self, p.target) for p in SIMULATE if p.applies(self.mode)}
        if self.faces == "all":
            del d["face"]
        for k in RECORDED_WHEN_ON:
            if k in d and not d[k]:
                del d[k]  # a filter or --neighbours left off: datasets made before it existed resume
        d["landmarks"] = self.landmarks.key()
        d.update(get_mode(self.mode).params(self))
        return d


def simulate_config(values: dict[str, Any], landmarks: LandmarkConfig | None = None) -> SimulateConfig:
    """The config that recipe keys or CLI keywords (mf2.params) describe; keys not given take
    their defaults, keys that are not parameters (a recipe job's name) are ignored."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {"pravg": {}, "vla": {}, "flow": {}, "synthetic": {}}
    for p in SIMULATE:
        head, _, attr = p.target.rpartition(".")
        (nested[head] if head else top)[attr] = values.get(p.key, p.default)
    return SimulateConfig(
        **top,
        landmarks=landmarks or LandmarkConfig(),
        pravg=PrAvgConfig(**nested["pravg"]),
        vla=VlaConfig(**nested["vla"]),
        flow=FlowConfig(**nested["flow"]),
        synthetic=SyntheticConfig(**nested["synthetic"]),
    )
