"""A pair's neighbouring exposures (``mf2 simulate --neighbours``, issue 30): the frames a
camera records just before and just after the blurry one, what a video deblurrer sees beside
it. Checked against a plain ffmpeg decode, across a hard cut, and through every command that
shares a dataset (verify, materialize, export, remove)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import cv2
import footage as ft
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import decode_reference, run_mf2

from mf2.blur.crf import decode_lut, encode
from mf2.blur.windows import Window, neighbour_frames, neighbour_windows
from mf2.faces.crop import Crop, resize_to

NEIGHBOUR_COLUMNS = [f"{k}_{c}" for k in ("prev", "next") for c in ("path", "sha256", "rgb_sha256")]


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _rows(folder: Path) -> list[dict]:
    return pq.read_table(folder / "pairs.parquet").to_pylist()


def test_neighbours_are_as_long_as_the_window_and_stay_in_its_run():
    crop = Crop(0, 0, 10)
    w = Window((10, 11, 13, 14, 15), 13, crop, 1)  # a repeated frame (12) skipped
    assert neighbour_frames(w) == ((5, 6, 7, 8, 9), (16, 17, 18, 19, 20))
    usable = np.ones(30, bool)
    run = np.zeros(30, np.int64)
    prev, nxt = neighbour_windows(w, usable, run)
    assert prev is not None and nxt is not None
    assert prev.frames == (5, 6, 7, 8, 9) and prev.crop == crop and nxt.frames == (16, 17, 18, 19, 20)
    run[18:] = 1  # a cut (or another track) inside the later exposure
    assert neighbour_windows(w, usable, run)[1] is None
    usable[6] = False  # the face is lost in the earlier one
    assert neighbour_windows(w, usable, run)[0] is None
    assert neighbour_windows(w, np.ones(19, bool), None)[1] is None  # the video ends first
    first = Window((0, 1, 2), 1, crop, 0)
    assert neighbour_windows(first, np.ones(10, bool), None)[0] is None  # before the first frame


@pytest.mark.slow
def test_simulate_neighbours_are_the_exposures_beside_each_pair(videos, tmp_path):
    """Each neighbour is the pair's crop averaged in linear light over the L frames just before
    (after) its window, here from a plain ffmpeg decode; the first pairs have no earlier one.
    The dataset verifies, rebuilds identically (materialize), exports with them (folder,
    WebDataset) and loses them with its video (remove). Without --neighbours nothing changes."""
    out = tmp_path / "nb"
    r = run_mf2("simulate", "--videos", str(videos / "fomm_08.mp4"), "--L", "7", "--neighbours", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = _rows(out)
    frames = decode_reference(videos / "fomm_08.mp4")
    lut = decode_lut(rows[0]["crf"])
    checked = 0
    for row in rows:
        s, e, n = row["start_frame"], row["end_frame"], row["L"]
        assert json.loads(row["params"])["neighbours"] is True
        assert (row["prev_path"] is None) == (s < n), row["pair_id"]
        assert (row["next_path"] is None) == (e + n >= len(frames)), row["pair_id"]
        crop = Crop(row["crop_x0"], row["crop_y0"], row["crop_size"])
        for kind, span in (("prev", range(s - n, s)), ("next", range(e + 1, e + 1 + n))):
            if row[f"{kind}_path"] is None:
                continue
            mean = np.mean([lut[crop.take(frames[i])] for i in span], axis=0, dtype=np.float32)
            want = resize_to(encode(mean, row["crf"]), row["out_size"]).astype(int)
            assert np.abs(_rgb(out / row[f"{kind}_path"]).astype(int) - want).max() <= 1, (row["pair_id"], kind)
            checked += 1
    assert checked >= 2 * (len(rows) - 14) > 0

    assert run_mf2("verify", str(out)).returncode == 0
    rebuilt = tmp_path / "rebuilt"
    r = run_mf2("materialize", str(out / "pairs.parquet"), "--videos", str(videos), "--out", str(rebuilt))
    assert r.returncode == 0 and f"{len(rows)} identical" in r.stdout + r.stderr, r.stderr
    again = {x["pair_id"]: x for x in _rows(rebuilt)}
    assert all(again[x["pair_id"]]["next_rgb_sha256"] == x["next_rgb_sha256"] for x in rows)
    assert (rebuilt / rows[-8]["next_path"]).is_file()

    tars = tmp_path / "wds"
    assert run_mf2("export", str(out), "--format", "webdataset", "--out", str(tars)).returncode == 0
    with tarfile.open(next(tars.glob("*.tar"))) as tar:
        names = tar.getnames()
    assert sum(name.endswith(".prev.png") for name in names) == sum(x["prev_path"] is not None for x in rows)

    gone = out / rows[10]["prev_path"]
    gone.unlink()
    r = run_mf2("verify", str(out))
    assert r.returncode != 0 and f"prev image missing: {rows[10]['prev_path']}" in r.stdout + r.stderr
    r = run_mf2("remove", str(out), "--video-id", "fomm_08")
    assert r.returncode == 0 and not any((out / "next").rglob("*.png")), r.stderr

    plain = tmp_path / "plain"
    assert run_mf2("simulate", "--videos", str(videos / "fomm_08.mp4"), "--L", "7", "--out", str(plain)).returncode == 0
    rows_plain = _rows(plain)
    assert not (plain / "prev").exists() and not (plain / "next").exists()
    assert all(x[c] is None for x in rows_plain for c in NEIGHBOUR_COLUMNS)
    assert all("neighbours" not in json.loads(x["params"]) for x in rows_plain)
    keep = [c for c in rows_plain[0] if c not in NEIGHBOUR_COLUMNS + ["params"]]
    assert [{c: x[c] for c in keep} for x in rows_plain] == [{c: x[c] for c in keep} for x in rows]


@pytest.mark.slow
def test_neighbours_never_cross_a_cut(videos, tmp_path):
    """On footage with hard cuts (tests/footage.py), a pair near a cut has no neighbour on its
    far side: no neighbour frame lies in another shot."""
    foot = ft.build(videos, tmp_path / "in", names=["cuts"])["cuts"]
    out = tmp_path / "nb"
    r = run_mf2("simulate", "--videos", str(foot.path), "--L", "5", "--neighbours", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = _rows(out)
    cuts = sorted(foot.cuts)
    shot_of = np.searchsorted(cuts, np.arange(foot.n_frames), side="right")
    near, kept = 0, 0
    for row in rows:
        w = Window(tuple(row["frames"]), row["center_frame"], Crop(0, 0, 1), 0)
        for kind, frames in zip(("prev", "next"), neighbour_frames(w)):
            inside = frames[0] >= 0 and frames[-1] < foot.n_frames
            same = inside and len({int(shot_of[f]) for f in (*frames, w.center)}) == 1
            if row[f"{kind}_path"] is not None:
                assert same, (row["pair_id"], kind, frames)
                kept += 1
            elif inside:
                near += 1
    assert kept > 0 and near > 0  # pairs beside a cut exist and lost only that neighbour


def test_neighbours_are_refused_for_synthetic_pairs(videos, tmp_path):
    args = (
        "--videos",
        str(videos / "fomm_08.mp4"),
        "--mode",
        "synthetic",
        "--neighbours",
        "--out",
        str(tmp_path / "o"),
    )
    r = run_mf2("simulate", *args)
    assert r.returncode != 0
    assert "--neighbours" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
