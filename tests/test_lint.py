"""Lint and types in the fast suite (issue 32, item 6): ruff's formatter (check only) and
ruff with the rules pyproject.toml selects, on the package, its tests and its benchmarks, and mypy on the package with
pyproject.toml's settings. A finding fails the suite with the tool's own lines."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_ruff_finds_nothing():
    res = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "mf2", "tests", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format_would_change_nothing():
    res = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "mf2", "tests", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format_would_see_a_misformatted_file(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("x = {  'a':1 }\n")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "format",
            "--check",
            "--no-cache",
            "--config",
            str(REPO / "pyproject.toml"),
            str(bad),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and "reformat" in (res.stdout + res.stderr).lower()


def test_ruff_would_see_an_unused_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    res = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--config", str(REPO / "pyproject.toml"), str(bad)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and "F401" in res.stdout


def test_mypy_finds_nothing():
    res = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--config-file", str(REPO / "pyproject.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_would_see_a_wrong_type(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x: int) -> str:\n    return x\n")
    res = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--ignore-missing-imports", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and "Incompatible return value type" in res.stdout
