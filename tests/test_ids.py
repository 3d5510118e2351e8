"""Ids that never lose a video (issue 33): names that differ only outside ASCII, two names
that clean to one id, a dataset made before the change, and a file reached twice. Real
files, real runs of ``mf2 simulate`` in subprocesses."""

from __future__ import annotations

import os
import shutil

import pyarrow.parquet as pq
import pytest
from conftest import run_mf2

from mf2.sources import legacy_safe_id, safe_id

pytestmark = pytest.mark.slow  # end to end on a real clip
SIM = ("--workers", "0", "--no-contact-sheet", "--L", "9", "--stride", "8")


def _ids(out) -> dict[str, int]:
    t = pq.read_table(out / "pairs.parquet", columns=["video_id"]).column("video_id").to_pylist()
    return {v: t.count(v) for v in set(t)}


def test_names_differing_outside_ascii_get_distinct_stable_ids():
    assert safe_id("café") != safe_id("cafè") and safe_id("café") == safe_id("café")
    assert safe_id("café").startswith("cafe_") and legacy_safe_id("café") == legacy_safe_id("cafè") == "caf"
    assert safe_id("my clip") == legacy_safe_id("my clip") == "my_clip"  # ASCII names keep their ids
    assert safe_id("fomm_08") == "fomm_08"


def test_a_second_run_with_a_similar_name_adds_instead_of_replacing(videos, tmp_path):
    for folder, name in (("n1", "café.mp4"), ("n2", "cafè.mp4")):
        (tmp_path / folder).mkdir()
        shutil.copy(videos / ("fomm_08.mp4" if folder == "n1" else "fomm_04.mp4"), tmp_path / folder / name)
        r = run_mf2("simulate", "--videos", folder, "--out", "O", *SIM, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    ids = _ids(tmp_path / "O")
    assert len(ids) == 2 and all(n > 0 for n in ids.values()), ids


def test_two_names_on_one_id_are_refused_in_one_line_and_nothing_is_lost(videos, tmp_path):
    (tmp_path / "n1").mkdir()
    (tmp_path / "n2").mkdir()
    shutil.copy(videos / "fomm_08.mp4", tmp_path / "n1" / "a_b.mp4")
    shutil.copy(videos / "fomm_04.mp4", tmp_path / "n2" / "a b.mp4")
    assert run_mf2("simulate", "--videos", "n1", "--out", "O", *SIM, cwd=tmp_path).returncode == 0
    before = (tmp_path / "O" / "pairs.parquet").read_bytes()
    r = run_mf2("simulate", "--videos", "n2", "--out", "O", *SIM, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    err = [ln for ln in r.stderr.splitlines() if "a_b" in ln]
    assert len(err) == 1 and "a b.mp4" in err[0] and "a_b.mp4" in err[0], r.stderr
    assert (tmp_path / "O" / "pairs.parquet").read_bytes() == before


def test_a_dataset_made_before_keeps_the_lossy_id_of_its_file(videos, tmp_path):
    """Before issue 33 ``café.mp4`` became ``caf``: a dataset holding ``caf``, made from that
    file, is resumed under ``caf`` (not made again under a new id)."""
    (tmp_path / "in").mkdir()
    shutil.copy(videos / "fomm_08.mp4", tmp_path / "in" / "caf.mp4")  # what the old id was made from
    assert run_mf2("simulate", "--videos", "in", "--out", "O", *SIM, cwd=tmp_path).returncode == 0
    n = _ids(tmp_path / "O")["caf"]
    (tmp_path / "in" / "caf.mp4").rename(tmp_path / "in" / "café.mp4")  # the same bytes, the real name
    r = run_mf2("simulate", "--videos", "in", "--out", "O", *SIM, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _ids(tmp_path / "O") == {"caf": n} and "(1 resumed)" in r.stderr, r.stderr


@pytest.mark.parametrize("twice", ["symlink-loop", "copy"])
def test_a_file_reached_twice_is_taken_once(videos, tmp_path, twice):
    """A symlink to the folder itself (``up -> .``: ``up`` is a subfolder holding ``a.mp4``)
    and a byte-identical copy each made the same footage a second video with its own id."""
    (tmp_path / "in").mkdir()
    shutil.copy(videos / "fomm_08.mp4", tmp_path / "in" / "a.mp4")
    if twice == "symlink-loop":
        os.symlink(".", tmp_path / "in" / "up")
    else:
        shutil.copy(videos / "fomm_08.mp4", tmp_path / "in" / "copy.mp4")
    r = run_mf2("simulate", "--videos", "in", "--out", "O", *SIM, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert list(_ids(tmp_path / "O")) == ["a"]
    said = [ln for ln in r.stderr.splitlines() if "the same file as" in ln]
    assert len(said) == 1 and said[0].endswith("a.mp4; taken once"), r.stderr


def test_two_runs_with_different_settings_into_one_new_folder_one_wins(videos, tmp_path):
    """Issue 33: started together into one new --out with L 7 and L 9, both used to exit 0 and
    the manifest held one of them. The settings check and the folder's claim now happen under
    the dataset lock: one run goes on, the other is refused in one line, nothing is mixed."""
    import subprocess
    import sys

    (tmp_path / "in").mkdir()
    shutil.copy(videos / "fomm_08.mp4", tmp_path / "in" / "a.mp4")
    cmd = [
        sys.executable,
        "-m",
        "mf2",
        "simulate",
        "--videos",
        "in",
        "--out",
        "O",
        "--workers",
        "0",
        "--no-contact-sheet",
        "--stride",
        "8",
    ]
    procs = [
        subprocess.Popen([*cmd, "--L", L], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for L in ("7", "9")
    ]
    res = [(p.wait(), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in res)
    assert codes == [0, 2], res
    won = ("7", "9")[[c for c, _ in res].index(0)]
    lost = next(err for c, err in res if c == 2)
    assert "holds pairs made with other settings" in lost and "Traceback" not in lost
    t = pq.read_table(tmp_path / "O" / "pairs.parquet", columns=["L"]).column("L").to_pylist()
    assert t and set(t) == {int(won)}
