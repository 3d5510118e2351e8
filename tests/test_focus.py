"""The hourglass's pixel loss weighted around the target's landmarks (``loss.landmark_weight``,
mf2.train.focus, issue 30): the map's values, that it moves with the pair through the loader's
crops, flips and resizing, that the weighted loss is the plain one at weight 0, and that a
real run's loss sees it."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_mf2

torch = pytest.importorskip("torch")


def test_the_landmark_map_is_the_nearest_landmarks_gaussian():
    from mf2.train.focus import landmark_map

    pts = np.array([[10.0, 20.0], [30.0, 5.0]], np.float32)
    m = landmark_map(pts, 40, 50, 2.0)
    assert m.shape == (40, 50) and m.dtype == np.float32
    assert m[20, 10] == pytest.approx(1.0) and m[5, 30] == pytest.approx(1.0)
    assert m[20, 12] == pytest.approx(math.exp(-0.5), rel=1e-5)  # one sigma to the right
    assert m[23, 14] == pytest.approx(math.exp(-25 / 8), rel=1e-5)  # 3-4-5 from (10, 20)
    assert m.max() == pytest.approx(1.0) and m.min() >= 0.0
    assert not landmark_map(None, 8, 8, 2.0).any()


def _dotted_pairs(tmp_path: Path, n: int) -> list:
    """Pairs whose sharp image is dark but for a bright dot at its one landmark (all 68 points)."""
    from mf2.train.data import PairRef

    rng = np.random.default_rng(1)
    refs = []
    for i in range(n):
        x, y = (int(v) for v in rng.integers(8, 56, 2))
        img = np.full((64, 64, 3), 20, np.uint8)
        img[y - 1 : y + 2, x - 1 : x + 2] = 255
        for kind in ("blurry", "sharp"):
            cv2.imwrite(str(tmp_path / f"{kind}{i}.png"), img)
        pts = tuple(float(v) for _ in range(68) for v in (x, y))
        refs.append(PairRef(f"p{i}", "v", tmp_path / f"blurry{i}.png", tmp_path / f"sharp{i}.png", landmarks=pts))
    return refs


def test_the_loader_crops_flips_and_resizes_the_map_with_the_pair(tmp_path):
    from mf2.train.data import PairDataset

    refs = _dotted_pairs(tmp_path, 12)
    ds = PairDataset(refs, 32, True, 0, True, 0.25, focus_sigma=0.05)
    moved = 0
    for epoch in range(3):
        for i in range(len(refs)):
            item = ds[(epoch, i)]
            focus, sharp = item["focus"], item["sharp"]
            assert focus.shape == (1, 32, 32)
            fy, fx = divmod(int(focus[0].argmax()), 32)
            sy, sx = divmod(int(sharp.mean(0).argmax()), 32)
            assert abs(fy - sy) <= 1 and abs(fx - sx) <= 1, (epoch, i)
            x, y = (v * 32 / 64 for v in refs[i].landmarks[:2])
            moved += abs(fx - x) > 1.5 or abs(fy - y) > 1.5  # cropped or mirrored away from where it was
    assert moved > len(refs)
    assert "focus" not in PairDataset(refs, 32, True, 0, True, 0.25)[(0, 0)]
    assert "focus" not in PairDataset(refs, 32, False, focus_sigma=0.05)[0]  # validation: the plain loss


def test_the_weighted_loss_is_the_plain_one_at_weight_zero_and_counts_the_landmarks_more():
    import torch.nn.functional as F

    from mf2.train.focus import weighted_pixel_loss
    from mf2.train.losses import log_mse_loss

    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 16) * 2 - 1
    pred = target + 0.1 * torch.randn(2, 3, 16, 16)
    focus = torch.zeros(2, 1, 16, 16)
    focus[..., 4:8, 4:8] = 1.0
    for kind, plain in (("l1", F.l1_loss), ("l2", F.mse_loss), ("psnr", log_mse_loss)):
        got = weighted_pixel_loss(kind, pred, target, focus, 0.0)
        assert float(got) == pytest.approx(float(plain(pred, target)), rel=1e-5), kind
    inside, outside = target.clone(), target.clone()
    inside[..., 5, 5] += 0.5
    outside[..., 12, 12] += 0.5
    for kind in ("l1", "l2", "psnr"):
        a, b = (float(weighted_pixel_loss(kind, x, target, focus, 4.0)) for x in (inside, outside))
        assert a > b, kind


@pytest.fixture(scope="module")
def small_pairs(videos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("focus") / "ds"
    args = ("--videos", str(videos / "fomm_08.mp4"), "--L", "7", "--stride", "6", "--out-size", "64")
    r = run_mf2("simulate", *args, "--no-contact-sheet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def _l1_at_last_step(run: Path) -> float:
    with open(run / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["stage"] == "hg" and r["kind"] == "train" and r["name"] == "l1"]
    return float(rows[-1]["value"])


def test_a_training_run_weighs_its_loss_around_the_landmarks(small_pairs, tmp_path):
    """The same tiny run with and without the weights: the weights reach the loss (the
    networks part after the first step) and the run records them; a bad weight is one line."""
    runs = {}
    for w in (0, 20):
        cfg = tmp_path / f"w{w}.yaml"
        cfg.write_text(f"preset: tiny\nloss:\n  landmark_weight: {w}\n")
        runs[w] = tmp_path / f"run{w}"
        args = ("--config", str(cfg), "--stage", "hg", "--max-steps", "6", "--out", str(runs[w]))
        r = run_mf2("train", str(small_pairs), *args)
        assert r.returncode == 0, r.stderr
    assert "landmark_weight: 20" in (runs[20] / "config.yaml").read_text()
    assert _l1_at_last_step(runs[0]) != _l1_at_last_step(runs[20])

    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: tiny\nloss:\n  landmark_weight: -1\n")
    r = run_mf2("train", str(small_pairs), "--config", str(bad), "--out", str(tmp_path / "bad"))
    assert r.returncode == 2 and "loss.landmark_weight" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_only_the_hourglass_stage_builds_the_map(small_pairs, tmp_path):
    """The stages share one dataset here; the cGAN's loss never reads the map, so its batches
    come without it (Trainer.use), and the hourglass's get it back."""
    from mf2.models.config import load_config
    from mf2.train.trainer import Trainer

    cfg = load_config("tiny", {"loss": {"landmark_weight": 4.0}})
    tr = Trainer(cfg, [str(small_pairs)], tmp_path / "run", device="cpu", threads=1)
    assert tr.data["hg"] is tr.data["cgan"]
    assert "focus" in tr.train_ds[0]
    tr.use("cgan")
    assert "focus" not in tr.train_ds[0]
    tr.use("hg")
    assert tr.train_ds[0]["focus"].shape == (1, cfg.image_size, cfg.image_size)
