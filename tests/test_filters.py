"""Video filters (2MF² kept high-resolution, high-fps videos of 500 frames or more): a video a
filter turns away is recorded with its reason, counted apart from failures, and checked again
on every run. Real clips, real ffmpeg."""

from __future__ import annotations

import json
import textwrap

import pyarrow.parquet as pq
import pytest
from conftest import copy_clips, run_mf2

pytestmark = pytest.mark.slow

SIM = ("--workers", "0", "--no-contact-sheet", "--landmarks", "dlib", "--out-size", "64", "--L", "5", "--stride", "9")


@pytest.fixture(scope="module")
def clips(videos, tmp_path_factory):
    return copy_clips(videos, ("fomm_08.mp4", "lp_d18.mp4"), tmp_path_factory.mktemp("clips"))  # 150 and 216 frames


def _failures(out) -> dict[str, dict]:
    return {r["video_id"]: r for r in pq.read_table(out / "failures.parquet").to_pylist()}


def test_simulate_records_filtered_videos_and_checks_them_again(clips, tmp_path):
    out = tmp_path / "ds"
    res = run_mf2(
        "simulate", "--videos", str(clips), "--out", str(out), *SIM, "--min-frames", "200", "--strict", "--json"
    )
    assert res.returncode == 0, res.stderr  # filtered is not a failure: --strict passes
    summary = json.loads(res.stdout)
    assert (summary["ok"], summary["failed"], summary["filtered"]) == (1, 0, 1)
    assert "fomm_08: filtered: 150 frames, fewer than --min-frames 200" in res.stderr
    f = _failures(out)["fomm_08"]
    assert (f["error_class"], f["stage"]) == ("filtered", "probe")
    assert set(pq.read_table(out / "pairs.parquet")["video_id"].to_pylist()) == {"lp_d18"}
    # the filter lowered: the same folder takes the video in, no --retry-failed needed
    res = run_mf2("simulate", "--videos", str(clips), "--out", str(out), *SIM, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["filtered"] == 0
    assert set(pq.read_table(out / "pairs.parquet")["video_id"].to_pylist()) == {"fomm_08", "lp_d18"}
    assert "fomm_08" not in _failures(out)
    # faces smaller than asked: turned away after the landmarks, with the size measured
    res = run_mf2(
        "simulate", "--videos", str(clips / "fomm_08.mp4"), "--out", str(tmp_path / "big"), *SIM, "--min-face", "400"
    )
    assert res.returncode == 0, res.stderr
    f = _failures(tmp_path / "big")["fomm_08"]
    assert f["error_class"] == "filtered" and "below --min-face 400" in f["error"]
    size = int(f["error"].split("faces of ")[1].split(" px")[0])
    assert 60 < size < 256  # a 256-px talking head


def test_recipe_filters_and_fetch_filters(clips, tmp_path):
    rec = tmp_path / "r.yaml"
    rec.write_text(
        textwrap.dedent("""\
        name: short
        filters: {min_height: 300}
        jobs:
          - {mode: pravg, L: 5, stride: 9, out_size: 64}
    """)
    )
    res = run_mf2(
        "run",
        str(rec),
        "--videos",
        str(clips),
        "--out",
        str(tmp_path / "run"),
        "--workers",
        "0",
        "--landmarks",
        "dlib",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    job = json.loads(res.stdout)["jobs"]["pravg_L5"]
    assert (job["ok"], job["filtered"]) == (1, 1) and job["failures_by_class"] == {"filtered": 1}
    assert _failures(tmp_path / "run" / "pravg_L5")["fomm_08"]["error"] == "256 px high, below --min-height 300"
    assert "min_height: 300" in (tmp_path / "run" / "recipe.yaml").read_text()

    csv = tmp_path / "v.csv"
    csv.write_text(f"video_id,url\nshort,{clips / 'fomm_08.mp4'}\nlong,{clips / 'lp_d18.mp4'}\n")
    res = run_mf2("fetch", str(csv), "--out", str(tmp_path / "data"), "--min-frames", "200", "--strict")
    assert res.returncode == 0, res.stderr
    t = {r["key"]: r for r in pq.read_table(tmp_path / "data" / "fetch.parquet").to_pylist()}
    assert (t["short"]["status"], t["long"]["status"]) == ("filtered", "ok")
    assert t["short"]["error"] == "150 frames, fewer than --min-frames 200"
    res = run_mf2("fetch", str(csv), "--out", str(tmp_path / "data"))  # no filter now: no download either
    t = {r["key"]: r for r in pq.read_table(tmp_path / "data" / "fetch.parquet").to_pylist()}
    assert t["short"]["status"] == "ok" and "2 already there" in res.stderr, res.stderr
