"""PNG encoding in one place: every image mf2 writes goes through the same encoder settings,
which byte-exact re-materialisation depends on."""

from __future__ import annotations

import cv2
import numpy as np


def encode_png(rgb: np.ndarray) -> bytes:
    """uint8 RGB (or grey) -> PNG bytes (OpenCV's default compression)."""
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()
