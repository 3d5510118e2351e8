"""Face boxes and 68 iBUG landmarks per frame: backends plus keyframe detection and tracking."""

from mf2.faces.base import Detection, LandmarkBackend
from mf2.faces.select import LandmarkConfig, make_backend

__all__ = ["Detection", "LandmarkBackend", "LandmarkConfig", "make_backend"]
