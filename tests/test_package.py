"""mf2 as users install it: built from an sdist into a wheel, installed into a fresh venv,
used from another folder. The recipes, training configs and manifests must come with it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

SKIP = shutil.ignore_patterns(
    ".git", ".venv", ".gpu", ".whl", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "demo_out"
)


def _mf2(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The venv's own ``mf2`` console script, as a user types it."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(venv / "bin" / "mf2"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )


def _fresh_venv(where: Path) -> Path:
    """A new venv that sees this environment's dependencies (torch, dlib, ...) through a path
    entry, with no network: its site-packages comes first, and the checkout's editable
    install is not visible (a plain path entry runs no .pth hooks)."""
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, capture_output=True)
    site = next((where / "lib").glob("python3*/site-packages"))
    (site / "zz_mf2_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return where


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """sdist, then the wheel from that sdist (`python -m build`, as a release does): what
    MANIFEST.in forgets is missing from the wheel too."""
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=SKIP, symlinks=True)
    res = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    wheels = list((tmp / "dist").glob("mf2-*.whl"))
    assert len(wheels) == 1
    return wheels[0], res.stdout + res.stderr


def test_wheel_carries_data_licence_and_metadata(wheel):
    whl, log = wheel
    assert "Deprecat" not in log, [line for line in log.splitlines() if "Deprecat" in line][:5]
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for kind, folder, suffix in (
        ("recipes", "pipelines", ".yaml"),
        ("configs", "configs", ".yaml"),
        ("manifests", "manifests", ".csv"),
    ):
        shipped = {Path(n).name for n in names if n.startswith(f"mf2/_data/{kind}/")}
        assert shipped == {p.name for p in (REPO / folder).glob(f"*{suffix}")}, kind
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in meta and "Classifier: Intended Audience :: Science/Research" in meta
    assert "hadolint" not in meta.split("Provides-Extra: dev")[0]  # developer tools only in the dev extra


@pytest.mark.slow
def test_installed_wheel_runs_the_demo_and_a_recipe_from_another_folder(wheel, videos, tmp_path):
    whl, _ = wheel
    venv = _fresh_venv(tmp_path / "venv")
    res = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(whl)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    target = next((venv / "lib").glob("python3*/site-packages"))
    work = tmp_path / "elsewhere"
    (work / "clips").mkdir(parents=True)
    (work / "clips" / "fomm_08.mp4").symlink_to(videos / "fomm_08.mp4")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    res = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import mf2; print(mf2.__file__)"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
    )
    assert res.stdout.strip().startswith(str(target)), res.stdout + res.stderr  # the wheel, not the checkout

    res = _mf2(venv, work, "recipes", "--json")
    assert res.returncode == 0, res.stderr
    listed = json.loads(res.stdout)
    assert all(b["path"].startswith(str(target / "mf2" / "_data")) for k in listed.values() for b in k)

    res = _mf2(venv, work, "demo", "--out", "demo")
    assert res.returncode == 0, res.stderr[-2000:]
    assert (work / "demo" / "pairs.parquet").is_file()

    res = _mf2(
        venv,
        work,
        "run",
        "pravg",
        "--videos",
        "clips",
        "--out",
        "run",
        "--workers",
        "0",
        "--landmarks",
        "dlib",
        "--set",
        "jobs=[{name: pravg3, mode: pravg, L: 3, stride: 5}]",
        "--out-size",
        "64",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((work / "run" / "run.json").read_text())
    assert summary["jobs"]["pravg3"]["pairs"] > 0 and summary["jobs"]["pravg3"]["failed"] == 0, summary
