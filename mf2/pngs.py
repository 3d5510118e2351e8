"""PNG encoding in one place, and the two hashes every written image gets.

``sha256`` is the file's: what `mf2 verify` checks against the bytes on disk. ``rgb_sha256``
is the pixels': sha256 of the raw row-major RGB bytes (H x W x 3, uint8), what PIL or OpenCV
decode from the file. Two encoders (another zlib, another OpenCV, other settings) give other
files of the same image; the pixel hash is what proves that a rebuilt image is the same
(`mf2 materialize`), so the encoder settings are free to change.

The settings were chosen by measurement (bench/png.py: 300 pair images of 256 px, one
thread): OpenCV's default is 2.36 ms and 84.2 KiB an image; the ``paeth`` filter 2.59 ms and
68.7 KiB (-18 %); the fastest, Huffman only, 1.78 ms and 86.0 KiB; zlib levels 3+ cost 2.4x
and more for less. For 19 M pairs, paeth costs ~2.5 CPU-hours more than the default and
saves ~560 GB that every lab stores and downloads; Huffman would save ~6 CPU-hours for
~60 GB more. So: paeth.
Manifests from before the pixel hash (schema < 1.6) can only be proven by file hash, so
``legacy=True`` reproduces the encoder that made them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

# OpenCV < 4.11 has no filter choice: its default then (files differ, pixels do not)
_PARAMS = [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH] if hasattr(cv2, "IMWRITE_PNG_FILTER") else []


@dataclass(frozen=True)
class EncodedImage:
    png: bytes
    sha256: str  # of the file
    rgb_sha256: str  # of the pixels


def rgb_sha256(rgb: np.ndarray) -> str:
    """sha256 of the raw pixel bytes, row-major: equal for equal images whatever their file."""
    return hashlib.sha256(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()).hexdigest()


def encode_png(rgb: np.ndarray, legacy: bool = False) -> bytes:
    """uint8 RGB (or grey) -> PNG bytes. ``legacy``: OpenCV's default settings, which every
    manifest before schema 1.6 was written with."""
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    ok, buf = cv2.imencode(".png", img, [] if legacy else _PARAMS)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def encode_image(rgb: np.ndarray, legacy: bool = False) -> EncodedImage:
    png = encode_png(rgb, legacy)
    return EncodedImage(png, hashlib.sha256(png).hexdigest(), rgb_sha256(rgb))
