"""Where model files live. Found through package metadata: importing
face_recognition_models needs pkg_resources, which setuptools >= 81 no longer ships."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from mf2.errors import UsageError

FAN_2D_FILENAME = "2DFAN4-11f355bf06.pth.tar"  # the name face-alignment caches it under


def face_recognition_model(name: str) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("face-recognition-models is not installed (pip install face-recognition-models)")
    for root in spec.submodule_search_locations:
        p = Path(root) / "models" / name
        if p.is_file():
            return p
    raise UsageError(f"model file {name} not found in face-recognition-models")


def shape_predictor_68() -> Path:
    return face_recognition_model("shape_predictor_68_face_landmarks.dat")


def mmod_face_detector() -> Path:
    """dlib's CNN (max-margin object detection) face detector: finds turned and lit faces
    HOG misses, at about 20x its cost on the CPU (mf2.faces.track uses it near a track only)."""
    return face_recognition_model("mmod_human_face_detector.dat")


def face_recognition_resnet() -> Path:
    return face_recognition_model("dlib_face_recognition_resnet_model_v1.dat")


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch: $TORCH_HOME/hub, else the XDG cache."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch"
    )
    return Path(torch_home) / "hub"


def fan_weights_path(explicit: str | Path | None = None) -> Path | None:
    """The FAN weights to use: an explicit path, else face-alignment's usual hub cache."""
    if explicit is not None:
        return Path(explicit)
    p = torch_hub_dir() / "checkpoints" / FAN_2D_FILENAME
    return p if p.is_file() else None
