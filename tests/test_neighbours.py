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


# --- a deblurrer that sees the neighbours (HourglassConfig.neighbours) ---------------------------


@pytest.fixture(scope="module")
def nb_pairs(videos, tmp_path_factory) -> Path:
    """PrAvg 7 pairs of one clip, 64 px, with their neighbours."""
    out = tmp_path_factory.mktemp("nb") / "ds"
    args = ("--videos", str(videos / "fomm_08.mp4"), "--L", "7", "--stride", "3", "--out-size", "64")
    r = run_mf2("simulate", *args, "--neighbours", "--no-contact-sheet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_the_hourglass_sees_neighbours_through_its_stem_only():
    """Missing neighbours mean the frame itself twice; given ones change the prediction; a
    network without ``neighbours`` ignores them."""
    import torch

    from mf2.models.archs.hourglass import StackedHourglass

    torch.manual_seed(0)
    net = StackedHourglass(1, 16, 2, neighbours=True).eval()
    assert net.stem[0].in_channels == 9
    x, ctx = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 6, 32, 32) * 2 - 1
    with torch.no_grad():
        alone, twice, seen = net(x)[-1], net(x, torch.cat([x, x], 1))[-1], net(x, ctx)[-1]
        assert torch.equal(alone, twice) and not torch.allclose(alone, seen)
        plain = StackedHourglass(1, 16, 2).eval()
        assert torch.equal(plain(x)[-1], plain(x, ctx)[-1])


def test_the_loader_gives_each_pair_its_neighbours_augmented_with_it(nb_pairs):
    """``context`` holds the pair's prev and next (the blurry image where it has none), cropped
    and flipped with the pair; an identity pair's neighbours are its target."""
    import torch

    from mf2.restore.tensors import to_tensor
    from mf2.train.data import PairDataset, split_pairs

    train, _, _ = split_pairs([str(nb_pairs)], 0.0, 0)
    first = next(i for i, p in enumerate(train) if p.prev is None)
    later = next(i for i, p in enumerate(train) if p.prev is not None and p.next is not None)
    plain = PairDataset(train, 64, False, neighbours=True)
    item = plain[later]
    assert torch.equal(item["context"][:3], to_tensor(_rgb(train[later].prev)))
    assert torch.equal(item["context"][3:], to_tensor(_rgb(train[later].next)))
    assert torch.equal(plain[first]["context"][:3], plain[first]["blurry"])
    assert "context" not in PairDataset(train, 64, False)[later]

    flips = PairDataset(train, 64, True, 0, True, 0.0, neighbours=True)  # no crop: only the flip draws
    flipped = 0
    for i in range(len(train)):
        got, ref = flips[(0, i)], plain[i]
        mirrored = not torch.equal(got["blurry"], ref["blurry"])
        assert torch.equal(got["context"], ref["context"].flip(-1) if mirrored else ref["context"])
        flipped += mirrored
    assert 0 < flipped < len(train)
    same = PairDataset(train, 64, True, 0, True, 0.0, identity_fraction=1.0, neighbours=True)[(0, later)]
    assert torch.equal(same["context"], torch.cat([same["sharp"], same["sharp"]]))


def test_deblur_gives_each_video_frame_its_neighbours_in_its_crop():
    """mf2 deblur on a video: frame i's context is frames i-1 and i+1 cut with frame i's crop;
    across a cut or where the face is not tracked, and at the ends, the frame stands in."""
    from mf2.restore.deblur import _beside, _Frame

    frames = [np.full((40, 40, 3), i, np.uint8) for i in range(6)]
    valid = np.array([True, True, True, False, True, True])
    shots = np.array([0, 0, 0, 0, 0, 1], dtype=object)  # a cut before the last frame
    crop = Crop(5, 5, 20)
    seq = [_Frame(f, crop if valid[i] else None, i) for i, f in enumerate(frames)]
    done = [
        _beside(seq[i - 1] if i else None, seq[i], seq[i + 1] if i + 1 < len(seq) else None, valid, shots)
        for i in range(6)
    ]
    assert [d.index for d in done] == list(range(6))
    assert done[3].context is None  # no face: nothing to restore
    seen = [(int(d.context[0][0, 0, 0]), int(d.context[1][0, 0, 0])) if d.context else None for d in done]
    # the first has no earlier frame; 2's later one and 4's earlier one (3) have no tracked face;
    # 4 and 5 are on either side of the cut; the last has no later frame
    assert seen == [(0, 1), (0, 2), (1, 2), None, (4, 4), (5, 5)]
    assert all(d.context[0].shape == (20, 20, 3) for d in done if d.context)


@pytest.mark.slow
def test_a_model_trained_with_neighbours_uses_them_to_deblur_and_evaluate(nb_pairs, videos, tmp_path):
    """mf2 train with hourglass.neighbours on a --neighbours dataset; mf2 deblur says the model
    sees them and restores a video; mf2 evaluate feeds each pair's neighbours (the scores
    differ from the same model fed the blurry image alone)."""
    from mf2.restore.deblur import Deblurrer

    cfg = tmp_path / "nb.yaml"
    cfg.write_text("preset: tiny\nhourglass:\n  neighbours: true\n")
    run = tmp_path / "run"
    r = run_mf2("train", str(nb_pairs), "--config", str(cfg), "--stage", "hg", "--max-steps", "8", "--out", str(run))
    assert r.returncode == 0, r.stderr
    model = Deblurrer(run / "model.pt", "cpu", ensemble="none")
    assert "training pairs with neighbours" in r.stderr
    assert model.neighbours and "seeing the neighbouring frames" in model.describe()
    row = next(x for x in _rows(nb_pairs) if x["prev_path"] and x["next_path"])
    blurry = _rgb(nb_pairs / row["blurry_path"])
    ctx = (_rgb(nb_pairs / row["prev_path"]), _rgb(nb_pairs / row["next_path"]))
    with_ctx, alone = model([blurry], [ctx])[0], model([blurry])[0]
    assert not np.array_equal(with_ctx, alone)
    assert np.array_equal(alone, model([blurry], [(blurry, blurry)])[0])

    out = tmp_path / "restored"
    r = run_mf2("deblur", str(videos / "fomm_08.mp4"), "--checkpoint", str(run / "model.pt"), "--out", str(out))
    assert r.returncode == 0 and "seeing the neighbouring frames" in r.stderr, r.stderr
    assert (out / "fomm_08.mp4").stat().st_size > 0

    report = tmp_path / "report"
    r = run_mf2(
        "evaluate", str(nb_pairs), "--checkpoint", f"nb={run / 'model.pt'}", "--limit", "4", "--out", str(report)
    )
    assert r.returncode == 0, r.stderr
    import csv

    from mf2.quality import psnr

    flip = Deblurrer(run / "model.pt", "cpu")  # evaluate's default ensemble
    scored = [x for x in csv.DictReader((report / "per_pair.csv").open()) if x["method"] == "nb"]
    rows = {x["pair_id"]: x for x in _rows(nb_pairs)}
    fed = 0
    for x in scored:
        row = rows[x["pair_id"]]
        blurry, sharp = _rgb(nb_pairs / row["blurry_path"]), _rgb(nb_pairs / row["sharp_path"])
        beside = [_rgb(nb_pairs / row[f"{k}_path"]) if row[f"{k}_path"] else blurry for k in ("prev", "next")]
        want = psnr(flip([blurry], [(beside[0], beside[1])])[0], sharp)
        assert float(x["psnr"]) == pytest.approx(want, abs=1e-6), x["pair_id"]
        fed += abs(want - psnr(flip([blurry])[0], sharp)) > 1e-6
    assert len(scored) == 4 and fed > 0


@pytest.mark.slow
def test_materialize_keeps_a_pair_whose_later_neighbour_is_past_a_shorter_video(nb_pairs, videos, tmp_path):
    """A re-encoded upload a few frames shorter: pairs whose frames it holds are rebuilt; one
    whose ``next`` exposure alone lies past its end is kept without it and reported."""
    from conftest import ffmpeg

    short = tmp_path / "v"
    short.mkdir()
    rows = _rows(nb_pairs)
    last = min((x for x in rows if x["next_path"] and x["end_frame"] >= 100), key=lambda x: x["end_frame"])
    cut = last["end_frame"] + 5  # its frames (and a few more: a stream copy's last frames may differ), not its next's
    ffmpeg("-i", str(videos / "fomm_08.mp4"), "-frames:v", str(cut), "-c", "copy", str(short / "fomm_08.mp4"))
    out = tmp_path / "rebuilt"
    r = run_mf2("materialize", str(nb_pairs / "pairs.parquet"), "--videos", str(short), "--out", str(out))
    report = (out / "materialize_report.csv").read_text()
    assert f"{last['pair_id']},fomm_08,neighbour-missing,next" in report, report
    kept = {x["pair_id"]: x for x in _rows(out)}
    assert kept[last["pair_id"]]["next_path"] is None and kept[last["pair_id"]]["prev_path"] is not None
    assert run_mf2("verify", str(out)).returncode == 0, r.stderr


@pytest.mark.slow
def test_deblur_video_feeds_each_face_the_frames_beside_it(nb_pairs, videos, tmp_path):
    """The streaming loop of mf2 deblur on a real clip: each restored face is given frames i-1
    and i+1 cut with frame i's crop (checked against a plain ffmpeg decode and the same
    landmarks); the first and last faces get their own crop in place of the missing one."""
    from mf2.faces.crop import face_crop
    from mf2.faces.select import LandmarkConfig
    from mf2.faces.stage import compute_landmarks
    from mf2.restore.deblur import Deblurrer, DeblurResult, deblur_video
    from mf2.schema import landmarks_to_numpy
    from mf2.video import probe

    cfg = tmp_path / "nb.yaml"
    cfg.write_text("preset: tiny\nhourglass:\n  neighbours: true\n")
    run = tmp_path / "run"
    r = run_mf2("train", str(nb_pairs), "--config", str(cfg), "--stage", "hg", "--max-steps", "2", "--out", str(run))
    assert r.returncode == 0, r.stderr
    seen: list = []

    class Recording(Deblurrer):  # the real model, its inputs kept
        def __call__(self, crops, context=None):
            seen.extend(context or [None] * len(crops))
            return super().__call__(crops, context)

    model = Deblurrer(run / "model.pt", "cpu", ensemble="none")
    model.__class__ = Recording
    clip = videos / "fomm_08.mp4"
    deblur_video(model, clip, tmp_path / "out.mp4", 0.25, DeblurResult())
    table = compute_landmarks("fomm_08", probe(clip), LandmarkConfig(backend="dlib"), None)
    lms, valid = landmarks_to_numpy(table["landmarks"])
    frames = decode_reference(clip)
    faces = [i for i in range(len(valid)) if valid[i]]
    assert len(seen) == len(faces) and len(faces) > 100
    for k, i in enumerate(faces):
        c = face_crop(lms[i], 0.25)
        want = [c.take(frames[j]) if 0 <= j < len(frames) and valid[j] else c.take(frames[i]) for j in (i - 1, i + 1)]
        assert np.abs(seen[k][0].astype(int) - want[0]).max() <= 1, i
        assert np.abs(seen[k][1].astype(int) - want[1]).max() <= 1, i
