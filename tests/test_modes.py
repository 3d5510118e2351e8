"""A fourth blur mode is one module: written into a folder on ``mf2.modes.__path__`` (the
standard way to extend a package), it is listed, validated, planned, rendered, named and
indexed by simulate, and rebuilt pixel for pixel by materialize, with no other file
touched. Its blur reads only the pair's columns, as synthetic's does."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import mf2.modes
from mf2.errors import UsageError

FOURTH = '''
"""Two-frame exposures darkened by a per-pair gain: a test mode, one file."""
import numpy as np

from mf2.blur.windows import Window, crop_fits, window_problem
from mf2.faces.crop import face_crop
from mf2.modes.base import Mode, Plan


class Previous(Mode):
    name = "previous"

    def plan(self, ctx, ser):
        windows, extras = [], []
        for f in range(1, len(ser.usable), 5):
            if window_problem((f - 1, f), ser.usable, ser.run, ser.reason) is None:
                crop = face_crop(ser.landmarks[f], ctx.cfg.margin)
                if crop_fits(crop, ctx.frame_size):
                    windows.append(Window((f - 1, f), f, crop, 0))
                    extras.append({"seed": f})
        return Plan(windows, extras, 0, {}, ser)

    def blur(self, sharp, blurry, pair, crf):
        gain = 0.5 + (int(pair["seed"]) % 5) / 10
        return np.clip(blurry.astype(np.float32) * gain, 0, 255).astype(np.uint8)

    def pair_id(self, video_id, w, extra, cfg):
        return f"{video_id}_previous_c{w.center:06d}"


MODE = Previous()
'''


@pytest.fixture
def fourth_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "previous.py").write_text(textwrap.dedent(FOURTH))
    monkeypatch.setattr(mf2.modes, "__path__", [*mf2.modes.__path__, str(folder)])
    yield "previous"
    import sys

    sys.modules.pop("mf2.modes.previous", None)


def test_a_fourth_mode_is_one_file(fourth_mode: str, videos: Path, tmp_path: Path) -> None:
    import mf2.api as api

    assert mf2.modes.mode_names()[-1] == fourth_mode and mf2.modes.mode_names()[:3] == ("pravg", "vla", "synthetic")
    with pytest.raises(UsageError, match="applies to mode pravg, not previous"):
        api.simulate_config(mode=fourth_mode, L=9)
    out = tmp_path / "ds"
    run = api.simulate(out, videos / "fomm_08.mp4", mode=fourth_mode, out_size=64)
    t = pq.read_table(out / "pairs.parquet").to_pylist()
    assert run.n_pairs_total == len(t) > 10
    assert {r["mode"] for r in t} == {fourth_mode} and {r["L"] for r in t} == {2}
    assert all(
        r["pair_id"].endswith(f"_previous_c{r['center_frame']:06d}") and r["seed"] == r["center_frame"] for r in t
    )
    assert api.verify(out).ok
    # materialize rebuilds every pair through the mode's own blur, from the rows alone
    again = api.materialize(out / "pairs.parquet", videos, tmp_path / "again")
    assert (again.n_exact, again.n_mismatched, again.n_missing) == (len(t), 0, 0)
    # a second run resumes: the mode's pairs are current
    assert api.simulate(out, videos / "fomm_08.mp4", mode=fourth_mode, out_size=64).n_resumed == 1


def test_a_mode_checks_its_own_settings() -> None:
    from mf2.modes.config import simulate_config

    with pytest.raises(UsageError, match="--L 4"):
        simulate_config({"mode": "pravg", "L": 4}).validate()
    with pytest.raises(UsageError, match="--kernel-size 65: larger than --out-size 64"):
        simulate_config({"mode": "synthetic", "kernel_size": 65, "out_size": 64}).validate()
    with pytest.raises(UsageError, match="--min-L"):
        simulate_config({"mode": "vla", "min_L": 4}).validate()
    simulate_config({"mode": "pravg", "kernel_size": 65, "out_size": 64}).validate()  # not pravg's setting


def test_a_mode_is_found_once_per_package_path(fourth_mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """simulate asks for its mode twice a pair: the folders are listed once per name and
    package path (listing them each time took 3 % of a worker's time, issue 35), and a folder
    taken off the path takes its modes with it."""
    import pkgutil

    calls = []
    listing = pkgutil.iter_modules
    monkeypatch.setattr(pkgutil, "iter_modules", lambda *a, **k: calls.append(a) or listing(*a, **k))
    first = mf2.modes.get_mode(fourth_mode)
    assert all(mf2.modes.get_mode(fourth_mode) is first for _ in range(3))
    assert len(calls) == 1
    monkeypatch.setattr(mf2.modes, "__path__", mf2.modes.__path__[:1])
    with pytest.raises(UsageError, match="expected one of pravg, vla, synthetic"):
        mf2.modes.get_mode(fourth_mode)
