"""Choosing a backend: FAN when CUDA and its weights are there, dlib otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mf2.errors import UsageError
from mf2.faces.base import LandmarkBackend
from mf2.faces.models import fan_weights_path


@dataclass(frozen=True)
class LandmarkConfig:
    backend: str = "auto"  # auto | dlib | fan
    fan_weights: str | None = None
    keyframe_interval: int = 10  # frames between forced re-detections
    # A tracked fit whose landmarks disagree with its input box (IoU below track_iou) is
    # re-detected on that frame; if the detector finds nothing there (profile, blur) the fit
    # is still kept down to track_iou_min. Measured on shared clips: natural tracking gives
    # IoU >= 0.89 on 95% of frames; a cut to another face in view gave 0.71.
    track_iou: float = 0.8
    track_iou_min: float = 0.5
    duplicate_threshold: float = 0.3  # see mf2.video.duplicates
    # A frame this different from its predecessor (grey MAD at 320 px) is a cut: the track is
    # not carried over it, the face must be re-detected. Natural motion in the 22 shared
    # clips stays below 18.3 (sadtalker KatieHill); a cut to black or another clip is 30-110.
    cut_mad: float = 40.0

    def key(self) -> dict:
        """The parameters that change the landmark table (the cache key)."""
        return {
            "keyframe_interval": self.keyframe_interval,
            "track_iou": self.track_iou,
            "track_iou_min": self.track_iou_min,
            "duplicate_threshold": self.duplicate_threshold,
            "cut_mad": self.cut_mad,
        }


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
            raise UsageError("--landmarks fan: no weights; pass --fan-weights PATH or put "
                             "2DFAN4-11f355bf06.pth.tar in the torch hub checkpoints folder")
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
        raise UsageError("--landmarks fan: no weights; pass --fan-weights PATH or put "
                         "2DFAN4-11f355bf06.pth.tar in the torch hub checkpoints folder")
    return FanBackend(Path(weights))
