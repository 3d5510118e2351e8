"""Shared fixtures. Tests that need ../shared fail (not skip) when MF2_REQUIRE_SHARED=1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MF2_SHARED", REPO.parent / "shared"))


def _require(path: Path) -> Path:
    if not path.exists():
        msg = f"shared test data missing: {path}"
        if os.environ.get("MF2_REQUIRE_SHARED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)  # MF2_REQUIRE_SHARED unset: a laptop without ../shared
    return path


@pytest.fixture(scope="session")
def videos() -> Path:
    return _require(SHARED / "data" / "videos")


@pytest.fixture(scope="session")
def landmark_data() -> Path:
    return _require(SHARED / "data" / "landmarks")


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The training corpus: tests use a handful of its clips."""
    return _require(SHARED / "data" / "corpus")


def copy_clips(videos: Path, names, dest: Path) -> Path:
    """Copies of some shared clips in a folder of their own (a test's input folder)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(videos / name, dest / name)
    return dest


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-nostdin", "-loglevel", "error", *args], check=True)


def decode_reference(path: Path) -> np.ndarray:
    """All frames via a plain ffmpeg call, independent of mf2's reader (small clips only)."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    w, h = (int(v) for v in out.strip().split(","))
    raw = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-fps_mode",
            "passthrough",
            "pipe:",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def run_mf2(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mf2", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
