"""Face photos as sources (`--images`): each photo its own source, identity from its folder,
synthetic kernels, and the dataset commands on photo pairs; the `deblur-model` recipe from
videos and photos to RUN/model.pt. Real CelebA stills from ../shared, real dlib, real Parquet."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import SHARED, _require, run_mf2

pytestmark = pytest.mark.slow

# two identities of the shared stills, three photos each
IDENTITIES = ("id00001", "id00013")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """PEOPLE/<identity>/<photo>.jpg as a lab keeps them, plus a photo without a face and two
    numbered photos of one person in a folder of their own (numbered names are still photos)."""
    stills = _require(SHARED / "data" / "stills")
    root = tmp_path_factory.mktemp("photos") / "people"
    found = 0
    for ident in IDENTITIES:
        files = sorted((stills / "celeba_deepfacelive" / ident).glob("*.jpg"))
        files += sorted((stills / "celeba_matush97" / ident).glob("*.jpg"))
        for f in files[:3]:
            (root / ident).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, root / ident / f.name)
            found += 1
    assert found >= 2
    noface = np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (160, 1, 3))
    cv2.imwrite(str(root / "wall.png"), noface)
    one = sorted((root / IDENTITIES[0]).glob("*.jpg"))[0]
    (root / "frames").mkdir()
    for i in (1, 2):
        shutil.copy(one, root / "frames" / f"frame_{i}.jpg")
    return root


@pytest.fixture(scope="module")
def photo_ds(photos, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("ds") / "photos"
    res = run_mf2(
        "simulate",
        "--images",
        str(photos),
        "--mode",
        "synthetic",
        "--out-size",
        "96",
        "--kernel-size",
        "11",
        "--out",
        str(out),
        "--no-contact-sheet",
        "--workers",
        "0",
    )
    assert res.returncode == 0, res.stderr
    return out, res


def test_every_photo_is_its_own_source_with_its_folder_as_identity(photos, photo_ds):
    out, res = photo_ds
    t = pq.read_table(out / "pairs.parquet").to_pylist()
    n_photos = sum(1 for p in photos.rglob("*") if p.suffix in (".jpg", ".png"))
    # every photo with a face gives exactly one pair; the wall has none and is reported, not fatal
    assert "wall: no pairs: no face found" in res.stderr
    assert len(t) == len({r["video_id"] for r in t}) and len(t) >= n_photos - 3
    assert {r["source_kind"] for r in t} == {"photo"} and {r["mode"] for r in t} == {"synthetic"}
    assert all(r["center_frame"] == 0 and r["frames"] == [0] for r in t)
    by_id = {r["video_id"]: r for r in t}
    for ident in IDENTITIES:
        mine = [r for r in t if r["video_id"].startswith(ident + "_")]
        assert mine and {r["identity"] for r in mine} == {ident}
    # the numbered photos are two sources (not a two-frame video), each of person "frames"
    assert {"frames_frame_1", "frames_frame_2"} <= set(by_id)
    assert by_id["frames_frame_1"]["identity"] == "frames"
    # the face's size in the source is recorded; the crop follows from it and the margin
    for r in t:
        assert 30 < r["face_px"] < 256
        assert r["crop_size"] == pytest.approx(r["face_px"] * 1.5, rel=0.25)
    img = cv2.imread(str(out / t[0]["blurry_path"]))
    assert img.shape == (96, 96, 3)


def test_photo_datasets_verify_split_export_materialize_and_stats(photos, photo_ds, tmp_path):
    out, _ = photo_ds
    work = tmp_path / "ds"
    shutil.copytree(out, work)
    res = run_mf2("verify", str(work))
    assert res.returncode == 0 and "OK" in res.stderr, res.stderr
    res = run_mf2("split", str(work), "--ratios", "train=0.5,test=0.5", "--seed", "1")
    assert res.returncode == 0, res.stderr
    t = pq.read_table(work / "pairs.parquet").to_pylist()
    split_of: dict[str, set] = {}
    for r in t:
        split_of.setdefault(r["identity"], set()).add(r["split"])
    assert all(len(v) == 1 for v in split_of.values())  # no person on both sides
    shared = tmp_path / "shared.parquet"
    assert run_mf2("export", str(work), "--no-images", "--out", str(shared)).returncode == 0
    rebuilt = tmp_path / "rebuilt"
    res = run_mf2("materialize", str(shared), "--videos", str(photos), "--out", str(rebuilt))
    assert res.returncode == 0, res.stderr
    assert f"{len(t)} identical" in res.stderr, res.stderr
    for r in t:
        assert (rebuilt / r["blurry_path"]).read_bytes() == (work / r["blurry_path"]).read_bytes()
    res = run_mf2("stats", str(work))
    assert res.returncode == 0, res.stderr
    n_photos = sum(1 for p in photos.rglob("*") if p.suffix in (".jpg", ".png"))
    assert (
        f"{n_photos} photos: {len(t)} with a pair, {n_photos - len(t)} without a usable face" in res.stdout + res.stderr
    )
    assert not list((work / "stats").glob("tracks_*.png"))  # no tracking audit per photo


def test_photos_refuse_modes_that_average_frames(photos, tmp_path):
    res = run_mf2("simulate", "--images", str(photos), "--mode", "pravg", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "--images" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()
    res = run_mf2("simulate", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "--videos" in res.stderr and "Traceback" not in res.stderr


def test_deblur_model_recipe_from_videos_and_photos_to_a_model(photos, videos, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(videos / "fomm_08.mp4", clips / "fomm_08.mp4")
    out = tmp_path / "run"
    args = (
        "run",
        "deblur-model",
        "--videos",
        str(clips),
        "--images",
        str(photos),
        "--out",
        str(out),
        "--workers",
        "0",
        "--set",
        "train.config=tiny",
        "--set",
        "jobs.*.out_size=64",
    )
    res = run_mf2(*args)
    assert res.returncode == 0, res.stderr
    assert (out / "model.pt").is_file() and (out / "pravg7" / "pairs.parquet").is_file()
    photos_t = pq.read_table(out / "photos" / "pairs.parquet")
    assert set(photos_t["source_kind"].to_pylist()) == {"photo"}
    summary = (out / "train_summary.json").read_text()
    assert "photos" in summary and "pravg7" in summary  # both jobs' pairs trained the model
    assert (out / "vla" / "pairs.parquet").is_file()  # the blur gate's pairs (train.gate_pairs)
    video_t = pq.read_table(out / "pravg7" / "pairs.parquet")  # with the neighbours the small preset sees
    assert video_t.num_rows > video_t["next_path"].null_count > 0
    res = run_mf2(*args)  # a second run resumes: nothing rebuilt, nothing retrained
    assert res.returncode == 0, res.stderr
    assert "hg: already trained" in res.stderr and "cgan: already trained" in res.stderr
    res = run_mf2(
        "deblur",
        str(out / "photos" / "blurry"),
        "--checkpoint",
        str(out / "model.pt"),
        "--out",
        str(tmp_path / "restored"),
    )
    assert res.returncode == 0 and "hourglass + cGAN" in res.stderr, res.stderr


def test_hourglass_stage_alone_exports_a_model_deblur_can_use(photo_ds, tmp_path):
    out, _ = photo_ds
    run = tmp_path / "hg"
    res = run_mf2(
        "train", str(out), "--config", "tiny", "--stage", "hg", "--max-steps", "2", "--out", str(run), "--threads", "1"
    )
    assert res.returncode == 0, res.stderr
    assert "hourglass alone" in res.stderr and (run / "model.pt").is_file()
    res = run_mf2("deblur", str(out / "blurry"), "--checkpoint", str(run / "model.pt"), "--out", str(tmp_path / "r"))
    assert res.returncode == 0, res.stderr
    assert "model: hourglass (tiny" in res.stderr and "restoring with the hourglass alone" in res.stderr
    from mf2.errors import UsageError
    from mf2.restore.deblur import Deblurrer

    with pytest.raises(UsageError, match="holds only the hg"):
        Deblurrer(run / "model.pt", "cpu", stage="cgan")


def test_min_face_turns_small_photo_faces_away(photos, tmp_path):
    out = tmp_path / "o"
    res = run_mf2(
        "simulate",
        "--images",
        str(photos / IDENTITIES[0]),
        "--mode",
        "synthetic",
        "--min-face",
        "900",
        "--out",
        str(out),
        "--no-contact-sheet",
        "--workers",
        "0",
    )
    assert res.returncode == 0, res.stderr
    assert "filtered" in res.stderr and "below --min-face 900" in res.stderr
    assert pq.read_table(out / "pairs.parquet").num_rows == 0


def test_training_threads_follow_the_free_cores():
    import subprocess
    import sys

    import torch

    from mf2.models.config import load_config
    from mf2.train.devices import busy_cores, plan_cpu

    cfg = load_config("paper")  # 4 loader workers configured
    cpu = torch.device("cpu")
    fixed = plan_cpu(cfg, cpu, threads=1)
    assert fixed.threads == 1 and fixed.loader_workers == min(4, fixed.cores - 1)
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        assert busy_cores(0.5) >= 0.5  # one core spinning is seen (more load only adds to it)
        auto = plan_cpu(cfg, cpu)
        assert 1 <= auto.threads <= max(1, auto.cores - 1)
        given = plan_cpu(cfg, cpu, threads=1)  # given threads: the other processes are still reported
        assert given.threads == 1 and given.busy >= 0.5
    finally:
        spin.kill()
        spin.wait()
