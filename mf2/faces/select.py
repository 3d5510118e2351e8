"""Choosing a backend: FAN when CUDA and its weights are there, dlib otherwise."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from mf2.errors import UsageError
from mf2.faces.base import LandmarkBackend
from mf2.faces.models import fan_weights_path
from mf2.faces.shots import ShotConfig
from mf2.params import LANDMARKS, default


@dataclass(frozen=True)
class LandmarkConfig:
    """How faces are found and followed (mf2.faces.track says why each check exists).
    Thresholds were measured on the 22 shared clips and the constructed multi-shot videos
    of tests/footage.py (issue 13 note): none of the checks fires on a shared clip's
    correctly tracked frames except where named."""

    backend: str = default("backend", LANDMARKS)  # auto | dlib | fan
    fan_weights: str | None = default("fan_weights", LANDMARKS)
    keyframe_interval: int = default("keyframe_interval", LANDMARKS)  # frames between detections near each track
    discover_interval: int = 60  # frames between whole-frame searches for faces entering a shot
    discover_min_face: int = 80  # smallest face (pixels) those searches look for (mf2.faces.track)
    duplicate_threshold: float = 0.3  # see mf2.video.duplicates
    min_face: int = 40  # smallest face side (pixels) the whole-frame search looks for
    max_faces: int = 8  # tracks alive at once (bounds the work per frame)
    match_iou: float = 0.3  # a detection belongs to a track above this IoU with its box
    reanchor_iou: float = 0.8  # a keyframe detection replaces the tracked fit below this agreement
    max_missed: int = 3  # keyframes in a row without a detection before a track ends
    max_scale_step: float = 1.25  # landmark extent ratio between consecutive frames
    max_shift: float = 0.35  # centre motion between consecutive frames, in face sizes
    max_outside: float = 0.05  # share of the 68 points allowed outside the picture
    min_contrast: float = 6.0  # grey std of the face region: below it the fit is on nothing
    max_light_change: float = 0.2  # face brightness change over 3 frames, relative (fades)
    # Is the fit a face at all (issue 34; mf2.faces.shape, measured by bench/fits.py)
    max_shape_residual: float = 0.5  # Procrustes distance to the mean face, in RMS radii
    max_aspect: float = 2.0  # the extent's width/height (or height/width) at most this
    max_box_ratio: float = 1.6  # a detection's fit: extent against the detector's box (0.82-1.24 measured)
    max_drift: float = 1.25  # extent against the median of the track's last drift_window fits
    drift_window: int = 25
    max_size_outlier: float = 1.5  # extent against its whole track's median (size-outlier flag)
    min_fit_face: int = 20  # extent (px) below which a fit is lost as small-face
    cnn_fallback: bool = True  # where HOG finds no face near a track, ask dlib's CNN detector (issue 31)
    identity_interval: int = 0  # frames between identity checks (0: off)
    identity_threshold: float = 0.6  # dlib embedding distance: dlib's same-person threshold
    shots: ShotConfig = field(default_factory=ShotConfig)

    def validate(self) -> None:
        for name in ("keyframe_interval", "discover_interval", "min_face", "discover_min_face", "max_faces"):
            if getattr(self, name) < 1:
                raise UsageError(f"landmarks: {name} must be >= 1")
        for name in ("max_scale_step", "max_aspect", "max_drift", "max_size_outlier", "max_box_ratio"):
            if getattr(self, name) <= 1:
                raise UsageError(f"landmarks: {name} must be > 1")
        if self.drift_window < 1 or self.max_shape_residual <= 0:
            raise UsageError("landmarks: drift_window must be >= 1 and max_shape_residual > 0")
        self.shots.validate()

    def key(self) -> dict:
        """The parameters that change the landmark table (the cache key)."""
        d = asdict(self)
        d.pop("backend")
        d.pop("fan_weights")
        return d


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def resolve_backend_name(cfg: LandmarkConfig) -> str:
    if cfg.backend not in ("auto", "dlib", "fan"):
        raise UsageError(f"--landmarks {cfg.backend!r}: expected auto, dlib or fan")
    if cfg.backend != "auto":
        return cfg.backend
    # The weights file first: a stat, where asking CUDA imports torch (about a second per command).
    return "fan" if fan_weights_path(cfg.fan_weights) is not None and _cuda_available() else "dlib"


def check_backend(cfg: LandmarkConfig) -> str:
    """The backend's name, after checking it can be built here (without loading a model)."""
    name = resolve_backend_name(cfg)
    if name == "fan":
        import importlib.util

        missing = [m for m in ("torch", "face_alignment") if importlib.util.find_spec(m) is None]
        if missing:
            raise UsageError(f"--landmarks fan needs {' and '.join(missing)} (pip install 'mf2[fan]')")
        if fan_weights_path(cfg.fan_weights) is None:
            raise UsageError(
                "--landmarks fan: no weights; pass --fan-weights PATH or put "
                "2DFAN4-11f355bf06.pth.tar in the torch hub checkpoints folder"
            )
    return name


def make_backend(cfg: LandmarkConfig) -> LandmarkBackend:
    name = resolve_backend_name(cfg)
    if name == "dlib":
        from mf2.faces.dlib_backend import DlibBackend

        return DlibBackend()
    try:
        from mf2.faces.fan_backend import FanBackend
    except ImportError as e:
        raise UsageError(f"--landmarks fan needs torch and face-alignment ({e})") from None
    weights = fan_weights_path(cfg.fan_weights)
    if weights is None:
        raise UsageError(
            "--landmarks fan: no weights; pass --fan-weights PATH or put "
            "2DFAN4-11f355bf06.pth.tar in the torch hub checkpoints folder"
        )
    return FanBackend(Path(weights))
