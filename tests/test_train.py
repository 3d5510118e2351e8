"""`mf2 train` / `mf2 deblur`: the paper's architecture, losses wired right (a small batch is
overfit), exact resume, and restoring images, folders and a real video."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import copy_clips, run_mf2
from PIL import Image

pytestmark = pytest.mark.slow  # end to end on real clips (make test-fast leaves it out)

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def pairs_dir(videos, tmp_path_factory) -> Path:
    vids = copy_clips(videos, ("fomm_08.mp4", "lp_d18.mp4"), tmp_path_factory.mktemp("clips"))
    out = tmp_path_factory.mktemp("pairs") / "ds"
    res = run_mf2(
        "simulate",
        "--videos",
        str(vids),
        "--out",
        str(out),
        "--L",
        "7",
        "--stride",
        "4",
        "--out-size",
        "64",
        "--no-contact-sheet",
        "--workers",
        "0",
    )
    assert res.returncode == 0, res.stderr
    return out


def test_paper_preset_matches_table_3():
    from torch import nn

    from mf2.models.archs.cgan import Discriminator, TwoPathwayGenerator, n_params
    from mf2.models.config import PRESETS

    cfg = PRESETS["paper"]
    g = TwoPathwayGenerator(cfg.cgan)
    # encoder: (kernel, filters, stride, batch norm) as Table 3(a)
    enc = []
    for layer in g.enc_bl.layers:
        conv = [m for m in layer.modules() if isinstance(m, nn.Conv2d)][0]
        bn = any(isinstance(m, nn.BatchNorm2d) for m in layer.modules())
        enc.append((conv.kernel_size[0], conv.out_channels, conv.stride[0], bn))
    assert enc == [
        (4, 64, 1, False),
        (4, 128, 2, True),
        (4, 256, 2, True),
        (4, 512, 2, True),
        (4, 512, 2, True),
        (4, 512, 2, True),
        (4, 512, 2, True),
        (1, 256, 2, True),
    ]
    assert [m for m in g.enc_bl.layers[0].modules() if isinstance(m, nn.Conv2d)][0].in_channels == 6
    assert [m for m in g.enc_s.layers[0].modules() if isinstance(m, nn.Conv2d)][0].in_channels == 3
    # decoder: transposed convs, dropout (keep 0.5) on the first three, Table 3(b)
    dec = []
    for layer in g.decoder.layers:
        conv = [m for m in layer.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][0]
        drop = [m.p for m in layer.modules() if isinstance(m, nn.Dropout)]
        dec.append((conv.kernel_size[0], conv.out_channels, conv.stride[0], type(conv).__name__, drop))
    assert dec == [
        (1, 1024, 2, "ConvTranspose2d", [0.5]),
        (4, 512, 2, "ConvTranspose2d", [0.5]),
        (4, 512, 2, "ConvTranspose2d", [0.5]),
        (4, 512, 2, "ConvTranspose2d", []),
        (4, 256, 2, "ConvTranspose2d", []),
        (4, 128, 2, "ConvTranspose2d", []),
        (4, 64, 2, "ConvTranspose2d", []),
        (4, 3, 1, "Conv2d", []),
    ]
    assert sorted(g.enc_bl.proj) == ["1", "3", "5"] and sorted(g.decoder.proj) == ["1", "3"]
    assert g.decoder.skips == {6: 2, 4: 4}  # two U-Net skips
    d = Discriminator(cfg.cgan.disc_channels)
    assert len([m for m in d.modules() if isinstance(m, nn.Conv2d)]) == 5
    g.eval()
    x = torch.zeros(1, 3, 256, 256)
    with torch.no_grad():
        y, code, rec, code_s = g(x, x, x)
    assert y.shape == rec.shape == (1, 3, 256, 256) and code.shape == code_s.shape == (1, 256, 2, 2)
    assert 50_000_000 < n_params(g) < 60_000_000  # two encoders + one decoder at Table 3's widths


def test_decoder_weights_are_shared_and_get_gradients_from_both_pathways():
    from mf2.models.archs.cgan import TwoPathwayGenerator
    from mf2.models.config import PRESETS

    g = TwoPathwayGenerator(PRESETS["tiny"].cgan)
    ids = {id(p) for p in g.decoder.parameters()}
    assert not ids & {id(p) for p in g.enc_bl.parameters()} and not ids & {id(p) for p in g.enc_s.parameters()}
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    w = next(g.decoder.parameters())
    fake, _ = g.forward_bl(x, x)
    fake.mean().backward()
    grad_bl = w.grad.clone()
    g.zero_grad()
    rec, _ = g.forward_s(x)
    rec.mean().backward()
    grad_s = w.grad.clone()
    assert grad_bl.abs().sum() > 0 and grad_s.abs().sum() > 0 and not torch.equal(grad_bl, grad_s)
    assert len(list(g.parameters())) == len(list(g.enc_bl.parameters())) + len(list(g.enc_s.parameters())) + len(
        list(g.decoder.parameters())
    )


def test_tiny_preset_overfits_a_small_batch(pairs_dir):
    """Every loss wired right: a few hundred CPU steps on 8 pairs drive L1 to the sharp target down."""
    from mf2.models.config import load_config
    from mf2.train.data import PairDataset, split_pairs
    from mf2.train.trainer import Trainer

    cfg = load_config("tiny", {"batch_size": 8, "flip": False, "crop_jitter": 0.0, "val_fraction": 0.0})
    tr = Trainer(cfg, [str(pairs_dir)], pairs_dir.parent / "overfit", "cpu")
    train, _, _ = split_pairs([str(pairs_dir)], 0.0, 0)
    ds = PairDataset(train[:8], 64, False)
    batch = [ds[i] for i in range(8)]
    blurry = torch.stack([b["blurry"] for b in batch])
    sharp = torch.stack([b["sharp"] for b in batch])
    start_hg = tr.step("hg", blurry, sharp)["l1"]
    for _ in range(150):
        hg = tr.step("hg", blurry, sharp)
    assert hg["l1"] < 0.9 * start_hg, (start_hg, hg)  # it starts as the identity: at the blurry input's error
    tr.models["hg"].eval()
    first = tr.step("cgan", blurry, sharp)
    for _ in range(150):
        last = tr.step("cgan", blurry, sharp)
    assert last["l1"] < 0.5 * first["l1"], (first, last)
    assert last["reconstruction"] < 0.5 * first["reconstruction"], (first, last)
    assert all(np.isfinite(float(v)) for v in last.values())


def _weights(run: Path) -> dict:
    state = torch.load(run / "checkpoints" / "cgan_last.pt", weights_only=True)
    return {f"{m}.{k}": v for m, sd in state["models"].items() for k, v in sd.items()}


def test_resume_is_exact(pairs_dir, tmp_path):
    cfg = tmp_path / "det.yaml"
    cfg.write_text("preset: tiny\ndeterministic: true\nbatch_size: 4\ncheckpoint_every: 1000\n")
    full, halves = tmp_path / "full", tmp_path / "halves"
    args = ["train", str(pairs_dir), "--config", str(cfg), "--device", "cpu"]
    for stage in ("hg", "cgan"):  # each stage: 12 steps at once, or 6 then resumed to 12
        assert run_mf2(*args, "--stage", stage, "--max-steps", "12", "--out", str(full)).returncode == 0
        for n in ("6", "12"):
            r = run_mf2(*args, "--stage", stage, "--max-steps", n, "--out", str(halves))
            assert r.returncode == 0, r.stderr
    a, b = _weights(full), _weights(halves)
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, diff[:5]
    # training the hourglass past the one the cGAN was trained on is refused before any step...
    ckpts = {p.name: p.read_bytes() for p in (halves / "checkpoints").iterdir()}
    res = run_mf2(*args, "--stage", "hg", "--max-steps", "14", "--out", str(halves))
    assert res.returncode == 2 and "--restart-cgan" in res.stderr and "Traceback" not in res.stderr
    assert {p.name: p.read_bytes() for p in (halves / "checkpoints").iterdir()} == ckpts
    # ...and --restart-cgan goes on: the cGAN retrains on the longer hourglass, the old one is kept
    res = run_mf2(*args, "--stage", "hg", "--max-steps", "14", "--out", str(halves), "--restart-cgan")
    assert res.returncode == 0, res.stderr
    assert (halves / "checkpoints" / "cgan_hg12.pt").read_bytes() == ckpts["cgan_last.pt"]
    res = run_mf2(*args, "--stage", "cgan", "--max-steps", "2", "--out", str(halves))
    assert res.returncode == 0 and "cgan: 2 steps" in res.stderr, res.stderr


def test_train_then_deblur_images_folders_and_a_video(pairs_dir, videos, tmp_path):
    run = tmp_path / "run"
    res = run_mf2(
        "train", str(pairs_dir), "--config", "tiny", "--max-steps", "6", "--device", "cpu", "--out", str(run), "--json"
    )
    assert res.returncode == 0, res.stderr
    assert "train /" in res.stderr and "images/s" in res.stderr
    assert json.loads(res.stdout) == json.loads((run / "train_summary.json").read_text())  # --json: scripts
    for name in ("model.pt", "config.yaml", "metrics.csv", "train_summary.json"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run / "samples").glob("cgan_*.png")) and list((run / "samples").glob("hg_*.png"))
    sample = cv2.imread(str(next((run / "samples").glob("cgan_*.png"))))
    assert sample.shape[0] % 64 == 18 and (sample[:18] > 200).mean() > 0.8 and (sample[:18] < 100).any()  # labels
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert {"hg/samples", "cgan/samples"} <= set(acc.Tags()["images"])
    # the run's last events are on disk when the command returns (RunLog.close), though the
    # process leaves without the interpreter's teardown (mf2.quick_exit)
    cgan = [t for t in acc.Tags()["scalars"] if t.startswith("cgan/")]
    assert cgan and max(e.step for t in cgan for e in acc.Scalars(t)) == 6, cgan
    hp = [EventAccumulator(str(d)).Reload() for d in (run / "tensorboard").glob("hparams_*")]
    assert len(hp) == 2 and all(any("hparam/" in t for t in a.Tags()["scalars"]) for a in hp)
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["hg"]["steps"] == 6 and summary["cgan"]["steps"] == 6 and 0 < summary["cgan"]["val"]["ssim"] <= 1
    # again: nothing to do, resumes as finished
    res = run_mf2("train", str(pairs_dir), "--config", "tiny", "--max-steps", "6", "--device", "cpu", "--out", str(run))
    assert res.returncode == 0 and "already trained" in res.stderr

    crop = next((pairs_dir / "blurry").rglob("*.png"))
    frames = tmp_path / "frames"
    frames.mkdir()
    from mf2.video import iter_frames, probe

    for i, f in enumerate(iter_frames(probe(videos / "lp_d18.mp4"))):
        cv2.imwrite(str(frames / f"frame{i}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        if i == 1:
            break
    clip = tmp_path / "clip.mp4"
    subprocess_ffmpeg = [
        "-i",
        str(videos / "fomm_08.mp4"),
        "-frames:v",
        "20",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(clip),
    ]
    from conftest import ffmpeg

    ffmpeg(*subprocess_ffmpeg)
    out = tmp_path / "restored"
    res = run_mf2("deblur", str(crop), str(frames), str(clip), "--checkpoint", str(run / "model.pt"), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "1 videos (20 frames)" in res.stderr
    restored_crop = cv2.imread(str(out / crop.name))
    assert restored_crop.shape == cv2.imread(str(crop)).shape
    for f in frames.iterdir():
        a, b = cv2.imread(str(f)), cv2.imread(str(out / "frames" / f.name))
        assert a.shape == b.shape
        # pasted back with a feathered mask: the face changed, the corners did not (beyond JPEG noise)
        assert np.abs(a[:20, :20].astype(int) - b[:20, :20].astype(int)).mean() < 3
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.1
    v_in, v_out = probe(clip), probe(out / "clip.mp4")
    assert (v_out.width, v_out.height, v_out.n_frames) == (v_in.width, v_in.height, v_in.n_frames)
    assert v_out.fps == v_in.fps

    # identity over time against a sharp reference frame the user names (the paper's Sect. 5.6)
    res = run_mf2(
        "deblur",
        str(clip),
        "--reference",
        "5",
        "--checkpoint",
        str(run / "model.pt"),
        "--out",
        str(tmp_path / "traced"),
    )
    assert res.returncode == 0, res.stderr
    rows = (tmp_path / "traced" / "clip.mp4.identity.csv").read_text().splitlines()
    assert rows[0] == "frame,cos_blurred,cos_restored" and len(rows) == 21
    by_frame = {int(r.split(",")[0]): [float(x) for x in r.split(",")[1:]] for r in rows[1:]}
    assert by_frame[5][0] == pytest.approx(1.0, abs=1e-4)  # the reference against itself
    assert all(-1 <= c <= 1 for v in by_frame.values() for c in v)
    assert cv2.imread(str(tmp_path / "traced" / "clip.mp4.identity.png")) is not None
    assert "identity cosine to frame 5 over 19 frames" in res.stderr
    res = run_mf2(
        "deblur",
        str(clip),
        "--reference",
        "99",
        "--checkpoint",
        str(run / "model.pt"),
        "--out",
        str(tmp_path / "traced2"),
    )
    assert res.returncode == 2 and "--reference 99" in res.stderr and "frames 0-19" in res.stderr
    assert "Traceback" not in res.stderr

    # the model as a row of mf2 evaluate
    rep = tmp_path / "report"
    res = run_mf2(
        "evaluate",
        str(pairs_dir),
        "--checkpoint",
        f"tiny={run / 'model.pt'}",
        "--limit",
        "4",
        "--no-identity",
        "--ensemble",
        "none",
        "--out",
        str(rep),
    )
    assert res.returncode == 0, res.stderr
    rows = {r["method"]: r for r in json.loads((rep / "report.json").read_text())["results"]}
    assert set(rows) == {"Blurred", "Oracle", "tiny"} and 0 < rows["tiny"]["ssim"] < 1

    bad = run_mf2("deblur", str(crop), "--checkpoint", str(crop), "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "not a loadable checkpoint" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_mf2("deblur", str(crop), "--checkpoint", str(run / "model.pt"), "--ensemble", "x8", "--out", str(out))
    assert bad.returncode == 2 and "--ensemble" in bad.stderr and "Traceback" not in bad.stderr


def test_config_errors_are_one_line(tmp_path, pairs_dir):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("preset: tiny\nhourglass: {stackz: 2}\n")
    res = run_mf2("train", str(pairs_dir), "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "hourglass.stackz: unknown key" in res.stderr
    res = run_mf2("train", str(pairs_dir), "--config", "huge", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "not a preset" in res.stderr
    res = run_mf2(
        "train",
        str(pairs_dir),
        "--stage",
        "cgan",
        "--config",
        "tiny",
        "--out",
        str(tmp_path / "fresh"),
        "--device",
        "cpu",
    )
    assert res.returncode == 2 and "no trained hourglass" in res.stderr
    for text, needle in (
        ("hg_stage: {lr: .nan}", "hg_stage.lr: expected a number (finite), got nan"),
        ("hg_stage: {lr: fast}", "hg_stage.lr: expected a number (finite), got 'fast'"),
        ("batch_size: '16'", "batch_size: expected an integer"),
        ("hg_stage: {lr: -1.0}", "lr -1.0 must be in (0, 1)"),
        ("cgan_stage: {betas: [0.5]}", "cgan_stage.betas"),
    ):
        cfg.write_text(f"preset: tiny\n{text}\n")
        res = run_mf2("train", str(pairs_dir), "--config", str(cfg), "--out", str(tmp_path / "o"))
        assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr, (text, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1


def test_shipped_configs_are_the_presets():
    from conftest import REPO

    from mf2.models.config import PRESETS, load_config

    for name in PRESETS:
        assert load_config(str(REPO / "configs" / f"{name}.yaml")) == PRESETS[name]


def test_two_process_ddp_training_on_cpu(pairs_dir, tmp_path):
    """torchrun with 2 processes (gloo on CPU): the data is dealt across ranks, gradients are
    all-reduced, rank 0 alone writes, and no rank reads a checkpoint before it exists."""
    import subprocess
    import sys

    out = tmp_path / "ddp"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "mf2",
            "train",
            str(pairs_dir),
            "--config",
            "tiny",
            "--max-steps",
            "4",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count("mf2 train: model (") == 1  # one report, from rank 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["hg"]["steps"] == 4 and summary["cgan"]["steps"] == 4
    assert (out / "model.pt").is_file()


def test_newell_hourglass_works_at_a_quarter_and_starts_as_the_identity():
    """The paper names Newell's off-the-shelf hourglass: a strided stem, features at 1/4
    resolution, predictions back at full resolution; with zeroed heads a fresh model returns
    its input, so training starts at the blurry input's error."""
    from mf2.models.config import PRESETS
    from mf2.train.steps import build_models

    for name in ("small", "paper"):
        cfg = PRESETS[name]
        hg = build_models(cfg)["hg"].eval()
        x = torch.rand(2, 3, cfg.image_size, cfg.image_size) * 1.8 - 0.9
        seen = torch.cat([x, x, x], dim=1) if hg.neighbours else x  # small's stem also sees the neighbours
        assert hg.stem(seen).shape[-1] == cfg.image_size // 4
        outs = hg(x)
        assert len(outs) == cfg.hourglass.stacks and outs[-1].shape == x.shape
        assert torch.allclose(outs[-1], x, atol=1e-5)
    # the speed it buys, as counted operations: the paper hourglass at 1/4 against full resolution
    from torch.utils.flop_counter import FlopCounterMode

    from mf2.models.archs.hourglass import StackedHourglass

    flops = {}
    for stem in ("newell", "full"):
        with FlopCounterMode(display=False) as fc:
            StackedHourglass(2, 128, 4, stem=stem)(torch.zeros(1, 3, 256, 256))
        flops[stem] = fc.get_total_flops()
    assert flops["full"] > 8 * flops["newell"], flops


def test_checkpoints_saved_before_the_stem_key_load_as_full_resolution(pairs_dir, tmp_path):
    from mf2.models.config import config_from_dict, load_config

    old = load_config("tiny").to_dict()
    del old["hourglass"]["stem"]
    assert config_from_dict(old).hourglass.stem == "full"
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("preset: tiny\nhourglass: {stem: wide}\n")
    res = run_mf2("train", str(pairs_dir), "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "hourglass.stem 'wide'" in res.stderr and "Traceback" not in res.stderr


def test_cosine_schedule_is_a_function_of_the_step(pairs_dir, tmp_path):
    from mf2.models.config import load_config
    from mf2.train.trainer import Trainer

    cfg = load_config("tiny", {"hg_stage": {"schedule": "cosine", "lr": 0.001}})
    tr = Trainer(cfg, [str(pairs_dir)], tmp_path / "run", "cpu")
    seen = []
    for step in (0, 50, 100):
        tr.nets.set_lr("hg", step, 100)
        seen.append(tr.opt["hg"].param_groups[0]["lr"])
    assert seen[0] == pytest.approx(0.001) and seen[1] == pytest.approx(0.0005) and seen[2] == pytest.approx(0.0)


@pytest.fixture(scope="module")
def synthetic_dir(videos, tmp_path_factory) -> Path:
    """Synthetic-kernel pairs of one clip (the paper's hourglass pairs)."""
    syn = tmp_path_factory.mktemp("syn") / "syn"
    res = run_mf2(
        "simulate",
        "--videos",
        str(videos / "lp_d18.mp4"),
        "--mode",
        "synthetic",
        "--stride",
        "8",
        "--out-size",
        "64",
        "--out",
        str(syn),
        "--no-contact-sheet",
        "--workers",
        "0",
    )
    assert res.returncode == 0, res.stderr
    return syn


def test_paper_recipe_hourglass_on_one_dataset_cgan_on_another(pairs_dir, synthetic_dir, tmp_path):
    """`mf2 train VLA --hg-pairs SYN`: each stage trains on its own pairs, the run says
    which, and resuming with other hourglass pairs is refused in one line."""
    syn = synthetic_dir
    run = tmp_path / "run"
    args = ["train", "--config", "tiny", "--max-steps", "3", "--device", "cpu", "--out", str(run)]
    res = run_mf2(*args, "--hg-pairs", str(syn), str(pairs_dir))
    assert res.returncode == 0, res.stderr
    summary = json.loads((run / "train_summary.json").read_text())
    assert [d["mode"] for d in summary["hg"]["data"]["datasets"]] == ["synthetic"]
    assert [d["mode"] for d in summary["cgan"]["data"]["datasets"]] == ["pravg"]
    model = torch.load(run / "model.pt", weights_only=True)
    assert model["data"]["hg"]["datasets"][0]["path"] == str(syn)
    assert model["data"]["cgan"]["datasets"][0]["path"] == str(pairs_dir)
    res = run_mf2(*args, "--hg-pairs", str(pairs_dir), "--pairs", str(pairs_dir))  # the old flag still works
    assert res.returncode == 2 and "trained on other pairs" in res.stderr and "Traceback" not in res.stderr
    assert "--pairs is deprecated" in res.stderr
    # the hourglass alone as a row of mf2 evaluate
    rep = tmp_path / "report"
    res = run_mf2(
        "evaluate",
        str(pairs_dir),
        "--checkpoint",
        f"m={run / 'model.pt'}",
        "--hourglass",
        str(run / "model.pt"),
        "--limit",
        "3",
        "--no-identity",
        "--out",
        str(rep),
    )
    assert res.returncode == 0, res.stderr
    rows = {r["method"]: r for r in json.loads((rep / "report.json").read_text())["results"]}
    assert set(rows) == {"Blurred", "Oracle", "m", "run-HG"}
    assert rows["run-HG"]["ssim"] != rows["m"]["ssim"]


@pytest.mark.parametrize("ablation", ["condition_on_hg", "two_pathway"])
def test_table_4_ablations_train_and_deblur(ablation, pairs_dir, tmp_path):
    """cGAN-noHG (G_bl sees the blurry image alone) and HG-vanilla-cGAN (no G_s, no
    reconstruction loss) are config switches; each trains, and its model restores images."""
    from mf2.restore.deblur import Deblurrer

    cfg = tmp_path / "abl.yaml"
    cfg.write_text(f"preset: tiny\nbatch_size: 4\ncgan:\n  {ablation}: false\n")
    run = tmp_path / "run"
    res = run_mf2(
        "train", str(pairs_dir), "--config", str(cfg), "--max-steps", "2", "--device", "cpu", "--out", str(run)
    )
    assert res.returncode == 0, res.stderr
    gen = torch.load(run / "checkpoints" / "cgan_last.pt", weights_only=True)["models"]["gen"]
    first = next(v for k, v in gen.items() if k.startswith("enc_bl.") and v.dim() == 4)
    assert first.shape[1] == (3 if ablation == "condition_on_hg" else 6)
    assert any(k.startswith("enc_s.") for k in gen) == (ablation != "two_pathway")
    summary = json.loads((run / "train_summary.json").read_text())
    if ablation == "two_pathway":
        assert summary["cgan"]["last_losses"]["reconstruction"] == 0.0
    model = Deblurrer(run / "model.pt", device="cpu")
    crop = np.asarray(Image.open(next((pairs_dir / "blurry").rglob("*.png"))).convert("RGB"))
    out = model([crop])[0]
    assert out.shape == crop.shape and out.dtype == np.uint8


def test_residual_cgan_starts_as_its_hourglass_and_deblur_applies_the_same_model(pairs_dir, tmp_path):
    """``cgan.residual`` (the small preset): G_bl's decoder corrects the hourglass's output
    and G_s's corrects the sharp input, so a fresh cGAN returns the hourglass exactly and a
    fresh G_s reconstructs perfectly. After training, `mf2 deblur` (which rebuilds the model
    from model.pt) gives what the trainer's own prediction gives, so the base is applied the
    same way on both sides; without it the two would differ by the whole base image."""
    from mf2.models.config import PRESETS, load_config
    from mf2.restore.deblur import Deblurrer
    from mf2.restore.tensors import to_tensor, to_uint8
    from mf2.train.steps import build_models
    from mf2.train.trainer import Trainer

    assert PRESETS["small"].cgan.residual and not PRESETS["paper"].cgan.residual
    for name in ("small", "paper"):
        cfg = PRESETS[name]
        m = build_models(cfg)
        for net in m.values():
            net.eval()
        x = torch.rand(2, 3, cfg.image_size, cfg.image_size) * 1.8 - 0.9
        s = torch.rand_like(x) * 1.8 - 0.9
        with torch.no_grad():
            hg = m["hg"](x)[-1]
            fake, _, rec, _ = m["gen"](x, hg, s)
        if cfg.cgan.residual:
            assert torch.allclose(fake, hg, atol=1e-5) and torch.allclose(rec, s, atol=1e-5)
        else:  # the paper's decoder draws the image: a fresh one is nowhere near its input
            assert (fake - hg).abs().mean() > 0.1
    cfg_file = tmp_path / "res.yaml"
    cfg_file.write_text("preset: tiny\nbatch_size: 4\ncgan:\n  residual: true\n")
    run = tmp_path / "run"
    res = run_mf2(
        "train", str(pairs_dir), "--config", str(cfg_file), "--max-steps", "6", "--device", "cpu", "--out", str(run)
    )
    assert res.returncode == 0, res.stderr
    crop = np.asarray(Image.open(next((pairs_dir / "blurry").rglob("*.png"))).convert("RGB"))
    restored = Deblurrer(run / "model.pt", device="cpu", ensemble="none")([crop])[0]  # one pass, as predict
    tr = Trainer(load_config(str(cfg_file)), [str(pairs_dir)], tmp_path / "probe", device="cpu")
    tr.use("cgan")
    state = torch.load(run / "checkpoints" / "cgan_last.pt", map_location="cpu", weights_only=True)
    for k, net in tr.models.items():
        net.load_state_dict(state["models"][k])
    hg_out, fake = tr.predict(to_tensor(crop)[None])
    assert np.abs(to_uint8(fake[0]).astype(int) - restored).max() <= 1
    assert not np.array_equal(restored, to_uint8(hg_out[0]))  # six steps moved the cGAN off its base


def test_appearance_augmentations_are_deterministic_and_keep_the_pair_aligned(pairs_dir):
    """Identity pairs, tone jitter and rescaling (the small preset's answer to a few clips
    teaching "sharpen every face") act on both images alike, are a function of (seed, epoch,
    index) so resume stays exact, and leave a configuration without them exactly as before."""
    from mf2.models.config import load_config
    from mf2.train.data import PairDataset, split_pairs, training_dataset

    train, _, _ = split_pairs([str(pairs_dir)], 0.0, 0)
    train = train[:6]
    plain = PairDataset(train, 64, True, 0, True, 0.0)
    same = training_dataset(train, load_config("tiny", {"crop_jitter": 0.0}))  # every new option off
    for i in range(len(train)):
        a, b = plain[(3, i)], same[(3, i)]
        assert torch.equal(a["blurry"], b["blurry"]) and torch.equal(a["sharp"], b["sharp"])
    # identity: input = target, after every other augmentation too
    ident = PairDataset(train, 64, True, 0, True, 0.0, identity_fraction=1.0, tone_jitter=0.3, rescale_prob=1.0)
    for i in range(len(train)):
        x = ident[(1, i)]
        assert torch.equal(x["blurry"], x["sharp"])
    # tone jitter: one affine map on both images, so each channel's difference only scales
    tone = PairDataset(train, 64, True, 0, False, 0.0, tone_jitter=0.3)
    ref = PairDataset(train, 64, False)
    checked = 0
    for i in range(len(train)):
        x, r = tone[(2, i)], ref[i]
        assert torch.equal(tone[(2, i)]["blurry"], x["blurry"])  # the same key draws the same jitter
        assert not torch.allclose(x["sharp"], r["sharp"], atol=1e-3)
        inside = (x["blurry"].abs() < 0.99) & (x["sharp"].abs() < 0.99)  # not clipped
        d, d0 = x["blurry"] - x["sharp"], r["blurry"] - r["sharp"]
        for c in range(3):
            m = inside[c] & (d0[c].abs() > 0.02)
            if m.sum() > 10:
                g = d[c][m] / d0[c][m]
                assert float(g.max() - g.min()) < 1e-3, "one gain per channel on both images"
                checked += 1
    assert checked > 0
    # rescaling: both images lose the same fine detail; another epoch draws another factor
    resc = PairDataset(train, 64, True, 0, False, 0.0, rescale_prob=1.0)

    def detail(t):
        return float((t[..., 1:] - t[..., :-1]).abs().mean())

    x, r = resc[(0, 0)], ref[0]
    assert detail(x["sharp"]) < detail(r["sharp"]) and detail(x["blurry"]) < detail(r["blurry"])
    assert any(not torch.equal(resc[(e, 0)]["sharp"], x["sharp"]) for e in range(1, 4))
    with pytest.raises(Exception, match="identity_fraction"):
        load_config("tiny", {"identity_fraction": 1.5})
    with pytest.raises(Exception, match="loss.hg_pixel"):
        load_config("tiny", {"loss": {"hg_pixel": "l3"}})


def test_still_motion_pairs_train_towards_their_own_blurry_image(pairs_dir, synthetic_dir):
    """``static_keep_db`` (the still-face term): a motion pair within that PSNR of its target
    trains with its blurry image as the target, after every augmentation alike; a pair that
    moved keeps its sharp target, and a synthetic kernel's pair (blurred whether or not the
    face moved) is never kept as it is."""
    from mf2.dataset.manifest import load, safe_rel
    from mf2.models.config import load_config
    from mf2.quality import psnr
    from mf2.train.data import PairDataset, split_pairs, training_dataset

    ds = load(pairs_dir)
    rows = ds.table.select(["blurry_path", "sharp_path"]).to_pylist()
    rgb = [
        [np.asarray(Image.open(ds.root / safe_rel(r[k])).convert("RGB")) for k in ("blurry_path", "sharp_path")]
        for r in rows
    ]
    made = [psnr(b, s) for b, s in rgb]
    cut = float(np.median(made))  # half the pairs count as still at this threshold
    train, _, _ = split_pairs([pairs_dir], 0.0, 0)
    assert len(train) == len(rows)
    kw = dict(crop_jitter=0.0, rescale_prob=0.5)
    keep = PairDataset(train, 64, True, static_keep_db=cut, **kw)
    plain = PairDataset(train, 64, True, **kw)
    kept = 0
    for i, db in enumerate(made):
        k, p = keep[(1, i)], plain[(1, i)]
        assert torch.equal(k["blurry"], p["blurry"])  # the input is untouched
        if db >= cut:
            assert torch.equal(k["sharp"], k["blurry"])
            kept += 1
        else:
            assert torch.equal(k["sharp"], p["sharp"]) and not torch.equal(k["sharp"], k["blurry"])
    assert 0 < kept < len(made)
    syn, _, _ = split_pairs([synthetic_dir], 0.0, 0)
    low = PairDataset(syn[:4], 64, True, crop_jitter=0.0, static_keep_db=20.0)  # every kernel pair is above 20 dB
    assert not any(torch.equal(low[(0, i)]["sharp"], low[(0, i)]["blurry"]) for i in range(4))
    cfg = load_config("tiny", {"static_keep_db": cut})
    assert training_dataset(train, cfg).static_keep_db == cut
    with pytest.raises(Exception, match="static_keep_db"):
        load_config("tiny", {"static_keep_db": 5})


def test_dead_zone_keeps_small_changes_out_at_prediction_time_only():
    """A change under the zone's width leaves the pixel exactly as it was (a sharp face comes
    out unchanged); a larger one is kept less the width; training sees the raw output."""
    import torch

    from mf2.models.archs.space import dead_zone
    from mf2.models.config import load_config
    from mf2.train.steps import build_models

    x = torch.zeros(1, 3, 4, 4)
    y = x.clone()
    y[..., 0, 0], y[..., 0, 1] = 1.5 / 127.5, 5.0 / 127.5
    out = dead_zone(x, y, 2.0, training=False)
    assert out[..., 0, 0].abs().max() == 0
    assert torch.allclose(out[..., 0, 1], torch.full_like(out[..., 0, 1], 3.0 / 127.5))
    assert torch.equal(dead_zone(x, y, 2.0, training=True), y)
    assert torch.equal(dead_zone(x, y, 0.0, training=False), y)
    cfg = load_config("tiny", {"hourglass": {"dead_zone": 3.0}})
    hg = build_models(cfg)["hg"]
    for p in hg.heads.parameters():  # a head that moves every pixel by about 1 code value
        torch.nn.init.constant_(p, 0.0)
    hg.heads[-1].out[0].bias.data.fill_(0.02)
    img = torch.rand(2, 3, 64, 64) * 1.6 - 0.8
    hg.eval()
    assert torch.equal(hg(img)[-1], img)
    hg.train()
    assert not torch.equal(hg(img)[-1], img)
    with pytest.raises(Exception, match="dead_zone"):
        load_config("tiny", {"cgan": {"dead_zone": -1}})


def test_psnr_pixel_loss_is_the_mean_log_mse_of_each_image():
    """loss.hg_pixel psnr: minimising it maximises the images' mean PSNR (each image weighs the
    same, however blurred), with a floor that keeps identity pairs finite."""
    from mf2.models.config import load_config
    from mf2.train.losses import log_mse_loss

    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 3, 8, 8, generator=g) * 2 - 1
    pred = target + torch.tensor([0.0, 0.01, 0.3]).view(3, 1, 1, 1) * torch.randn(3, 3, 8, 8, generator=g)
    mse = ((pred - target) ** 2).flatten(1).mean(1)
    floor = 4.0 * 10 ** (-50 / 10)
    assert torch.allclose(log_mse_loss(pred, target), torch.log(mse + floor).mean())
    # a plain MSE barely sees the nearly sharp image; the log weighs its error like the others'
    p = pred.clone().requires_grad_(True)
    log_mse_loss(p, target).backward()
    per_image = p.grad.flatten(1).norm(dim=1)
    assert per_image[1] > per_image[2]  # the smaller error gets the larger push (1 / MSE)
    assert torch.isfinite(log_mse_loss(target, target))
    assert load_config("tiny", {"loss": {"hg_pixel": "psnr"}}).loss.hg_pixel == "psnr"


def test_a_blur_gate_trains_with_the_hourglass_and_deblur_applies_it(pairs_dir, tmp_path):
    """``gate.features`` > 0: the gate trains in the hourglass stage (its loss logged), rides
    in the checkpoint and model.pt, and `mf2 deblur` scales the correction by it as the
    trainer's own prediction does. A gate sure that nothing moved gives the input back."""
    from mf2.models.config import load_config
    from mf2.restore.deblur import Deblurrer
    from mf2.restore.tensors import to_tensor, to_uint8
    from mf2.train.trainer import Trainer

    cfg_file = tmp_path / "gate.yaml"
    cfg_file.write_text("preset: tiny\nbatch_size: 4\ngate:\n  features: 8\n")
    run = tmp_path / "run"
    res = run_mf2(
        "train", str(pairs_dir), "--config", str(cfg_file), "--stage", "hg", "--max-steps", "6", "--device", "cpu",
        "--out", str(run),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "gate_bce" in (run / "metrics.csv").read_text()
    model = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    ckpt = torch.load(run / "checkpoints" / "hg_last.pt", map_location="cpu", weights_only=True)
    assert set(model["gate"]) == set(ckpt["models"]["gate"]) and "gate" in ckpt["optim"]
    crop = np.asarray(Image.open(next((pairs_dir / "blurry").rglob("*.png"))).convert("RGB"))
    d = Deblurrer(run / "model.pt", device="cpu", ensemble="none")  # one pass, as the trainer predicts
    assert "blur gate" in d.describe()
    tr = Trainer(load_config(str(cfg_file)), [str(pairs_dir)], tmp_path / "probe", device="cpu")
    for k, net in tr.models.items():
        net.load_state_dict(ckpt["models"][k])
    hg_out, _ = tr.predict(to_tensor(crop)[None])
    assert np.abs(to_uint8(hg_out[0]).astype(int) - d([crop])[0]).max() <= 1
    with torch.no_grad():
        d.gate.head.bias.fill_(1e4)
        opened = d([crop])[0]
        # the flip ensemble (mf2 deblur's default): the face and its mirror image restored and
        # averaged, so a mirrored face comes out exactly mirrored, which one pass does not
        both = Deblurrer(run / "model.pt", device="cpu")
        both.gate.head.bias.fill_(1e4)
    assert both.ensemble == "flip" and "mirror image" in both.describe() and "mirror" not in d.describe()
    mirrored = np.ascontiguousarray(crop[:, ::-1])
    assert np.array_equal(both([mirrored])[0], both([crop])[0][:, ::-1])
    assert not np.array_equal(d([mirrored])[0], opened[:, ::-1])
    mean = (opened.astype(float) + d([mirrored])[0][:, ::-1]) / 2
    assert np.abs(both([crop])[0] - mean).max() <= 1
    with torch.no_grad():
        d.gate.head.bias.fill_(-1e4)
    assert not np.array_equal(opened, crop)  # the hourglass does change it: the gate decides
    assert np.array_equal(d([crop])[0], crop)
    model["gate"] = None
    torch.save(model, tmp_path / "broken.pt")
    with pytest.raises(Exception, match="no gate weights"):
        Deblurrer(tmp_path / "broken.pt", device="cpu")


def test_the_gate_learns_from_real_blurry_images_labelled_by_their_blur_psnr(pairs_dir):
    """Whatever the augmentations do to the restorer's input (here every sample an identity
    pair, tone-shifted and rescaled), the gate gets the pair's real blurry image, flipped as
    the pair, and 1 exactly when that image is below ``moving_db`` from its target."""
    from mf2.dataset.manifest import load, safe_rel
    from mf2.quality import psnr
    from mf2.restore.tensors import to_tensor
    from mf2.train.data import PairDataset, PairRef

    ds = load(pairs_dir)
    rows = ds.table.select(["pair_id", "video_id", "blurry_path", "sharp_path"]).to_pylist()[::4][:30]
    refs = [
        PairRef(r["pair_id"], r["video_id"], ds.root / safe_rel(r["blurry_path"]), ds.root / safe_rel(r["sharp_path"]))
        for r in rows
    ]
    kw = dict(crop_jitter=0.0, identity_fraction=1.0, tone_jitter=0.3, rescale_prob=1.0)
    data = PairDataset(refs, 64, True, gate_db=38.0, **kw)
    labels = []
    for i, ref in enumerate(refs):
        item = data[i]
        blurry = np.asarray(Image.open(ref.blurry).convert("RGB"))
        sharp = np.asarray(Image.open(ref.sharp).convert("RGB"))
        plain = to_tensor(blurry)
        assert torch.equal(item["gate_input"], plain) or torch.equal(item["gate_input"], plain.flip(-1))
        assert float(item["moving"]) == float(psnr(blurry, sharp) < 38.0)
        labels.append(float(item["moving"]))
    assert 0 < sum(labels) < len(labels)  # both kinds among these pairs: the label is not constant
    assert "moving" not in PairDataset(refs, 64, True, **kw)[0]  # no gate, no extra work


def test_the_gate_learns_from_motion_blur_only_in_the_stage_that_has_it(pairs_dir, synthetic_dir, tmp_path):
    """A synthetic kernel blurs a face whether or not it moved, so those pairs never teach the
    gate: with the paper's recipe (kernels for the hourglass, PrAvg for the cGAN) the gate
    learns in the cGAN stage, the hourglass-only model.pt holds none, and a run on kernels
    alone leaves the gate out and says so."""
    from mf2.train.data import PairDataset, split_pairs

    syn_train, _, _ = split_pairs([synthetic_dir], 0.0, 0)
    vid_train, _, _ = split_pairs([pairs_dir], 0.0, 0)
    assert not any(p.motion for p in syn_train) and all(p.motion for p in vid_train)
    item = PairDataset(syn_train[:1] + vid_train[:1], 64, True, gate_db=38.0)
    assert [float(item[i]["gate_weight"]) for i in (0, 1)] == [0.0, 1.0]

    cfg_file = tmp_path / "gate.yaml"
    cfg_file.write_text("preset: tiny\nbatch_size: 4\ngate:\n  features: 8\n")
    run = tmp_path / "run"
    args = ["train", str(pairs_dir), "--hg-pairs", str(synthetic_dir), "--config", str(cfg_file), "--device", "cpu"]
    res = run_mf2(*args, "--stage", "hg", "--max-steps", "4", "--out", str(run))
    assert res.returncode == 0, res.stderr
    model = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    assert "gate" not in model and model["config"]["gate"]["features"] == 0  # it has not learned yet
    hg_gate = torch.load(run / "checkpoints" / "hg_last.pt", map_location="cpu", weights_only=True)["models"]["gate"]
    res = run_mf2(*args, "--stage", "cgan", "--max-steps", "4", "--out", str(run))
    assert res.returncode == 0, res.stderr
    model = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    assert model["config"]["gate"]["features"] == 8
    assert any(not torch.equal(model["gate"][k], hg_gate[k]) for k in hg_gate)  # it learned in the cGAN stage
    import csv

    with open(run / "metrics.csv", newline="") as f:
        logged = {(r["stage"], r["name"]) for r in csv.DictReader(f)}
    assert ("cgan", "gate_bce") in logged and ("hg", "gate_bce") not in logged

    res = run_mf2("train", str(synthetic_dir), "--config", str(cfg_file), "--stage", "hg", "--max-steps", "2",
                  "--device", "cpu", "--out", str(tmp_path / "kernels"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "blur gate is left out" in res.stderr + res.stdout
    assert "gate" not in torch.load(tmp_path / "kernels" / "model.pt", map_location="cpu", weights_only=True)


def test_the_gate_learns_from_pairs_of_its_own_beside_the_hourglass(pairs_dir, synthetic_dir, tmp_path):
    """``--gate-pairs``: the blur gate learns in the hourglass stage from the motion-blurred
    pairs it is given, whatever the hourglass trains on (here kernels alone, which would leave
    the gate out); its batches follow the step (a resumed stage gets the same ones); a resume
    with other gate pairs is refused in one line, and so are gate pairs without motion."""
    from mf2.train.data import GateBatches, PairDataset, split_pairs

    full = list(GateBatches(10, 4, 0, 0, 7))
    assert len(full) == 7 and all(len(b) == 4 for b in full)
    assert full[3:] == list(GateBatches(10, 4, 0, 3, 7))  # a resume at step 3 continues the same batches
    assert sorted(i for b in full[:2] for _, i in b) != sorted(i for b in full[2:4] for _, i in b)  # a new epoch
    assert [e for b in full for e, _ in b[:1]] == [0, 0, 1, 1, 2, 2, 3]
    vid_train, _, _ = split_pairs([pairs_dir], 0.0, 0)
    item = PairDataset(vid_train[:1], 64, True, gate_db=38.0, gate_only=True)[0]
    assert set(item) == {"index", "gate_input", "moving", "gate_weight"}

    cfg_file = tmp_path / "gate.yaml"
    cfg_file.write_text("preset: tiny\nbatch_size: 4\ngate:\n  features: 8\n")
    run = tmp_path / "run"
    args = ["train", str(synthetic_dir), "--config", str(cfg_file), "--device", "cpu", "--out", str(run)]
    res = run_mf2(*args, "--gate-pairs", str(pairs_dir), "--stage", "hg", "--max-steps", "4")
    assert res.returncode == 0, res.stderr
    assert "motion-blurred train pairs of its own" in res.stderr and "left out" not in res.stderr
    model = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    assert "gate" in model and model["config"]["gate"]["features"] == 8  # learned beside the hourglass
    assert model["data"]["hg"]["gate"]["datasets"][0]["path"] == str(pairs_dir)
    import csv

    with open(run / "metrics.csv", newline="") as f:
        assert ("hg", "gate_bce") in {(r["stage"], r["name"]) for r in csv.DictReader(f)}

    more = ["--gate-pairs", str(pairs_dir), "--gate-pairs", str(synthetic_dir)]  # the same run, other gate pairs
    res = run_mf2(*args, *more, "--stage", "hg", "--max-steps", "6")
    assert res.returncode != 0 and "blur gate learned from other pairs" in res.stderr
    assert "--gate-pairs" in res.stderr and "Traceback" not in res.stderr
    res = run_mf2(*args[:-1], str(tmp_path / "other"), "--gate-pairs", str(synthetic_dir), "--max-steps", "2")
    assert res.returncode != 0 and "no motion-blurred training pairs" in res.stderr and "Traceback" not in res.stderr


def test_a_full_resolution_restorer_trains_on_patches_and_deblurs_whole_faces(pairs_dir, tmp_path):
    """``restorer: fullres`` with ``hg_patch``: step 1 trains on random squares (the same
    place in both images, the same squares on a rerun) and `mf2 deblur` restores whole crops
    with it, as the trainer's own prediction does; the settings are checked."""
    from mf2.errors import UsageError
    from mf2.models.config import load_config
    from mf2.restore.deblur import Deblurrer
    from mf2.restore.tensors import to_tensor, to_uint8
    from mf2.train.data import random_patches
    from mf2.train.trainer import Trainer

    b = torch.rand(4, 3, 64, 64)
    pb, ps = random_patches(b, b + 1.0, 32, 0, 7)
    assert pb.shape == (4, 3, 32, 32) and torch.equal(ps, pb + 1.0)
    assert torch.equal(pb, random_patches(b, b, 32, 0, 7)[0]) and not torch.equal(pb, random_patches(b, b, 32, 0, 8)[0])
    assert any(bool((b[0, :, y : y + 32, x : x + 32] == pb[0]).all()) for y in range(33) for x in range(33))

    cfg_file = tmp_path / "fullres.yaml"
    cfg_file.write_text(
        "preset: tiny\nbatch_size: 4\nrestorer: fullres\nhg_patch: 32\nfullres: {features: 8, layers: 3}\n"
    )
    run = tmp_path / "run"
    res = run_mf2("train", str(pairs_dir), "--config", str(cfg_file), "--stage", "hg", "--max-steps", "5",
                  "--device", "cpu", "--out", str(run))  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = Deblurrer(run / "model.pt", device="cpu", ensemble="none")
    assert "model (the full-resolution CNN alone)" in res.stderr
    assert "full-resolution CNN" in d.describe() and type(d.hg).__name__ == "FullResCNN"
    crops = (np.asarray(Image.open(p).convert("RGB")) for p in sorted((pairs_dir / "blurry").rglob("*.png")))
    crop = next(c for c in crops if c.mean() > 60)  # a face, not a padded corner
    tr = Trainer(load_config(str(cfg_file)), [str(pairs_dir)], tmp_path / "probe", device="cpu")
    ckpt = torch.load(run / "checkpoints" / "hg_last.pt", map_location="cpu", weights_only=True)
    last = [k for k in ckpt["models"]["hg"] if k.endswith("weight")][-1]
    assert ckpt["models"]["hg"][last].abs().sum() > 0  # the zero-initialised head learned
    torch.manual_seed(0)
    ckpt["models"]["hg"][last] += 0.05 * torch.randn_like(ckpt["models"]["hg"][last])  # a visible correction
    tr.models["hg"].load_state_dict(ckpt["models"]["hg"])
    d.hg.load_state_dict(ckpt["models"]["hg"])
    hg_out, _ = tr.predict(to_tensor(crop)[None])
    restored = d([crop])[0]
    assert restored.shape == crop.shape and not np.array_equal(restored, crop)
    assert np.abs(to_uint8(hg_out[0]).astype(int) - restored).max() <= 1
    for bad, why in (({"restorer": "unet"}, "restorer"), ({"hg_patch": 40}, "hg_patch"), ({"hg_patch": 8}, "hg_patch")):
        with pytest.raises(UsageError, match=why):
            load_config("tiny", bad)


def test_a_kernel_head_filters_the_input_per_pixel_and_deblur_applies_it(pairs_dir, tmp_path):
    """``hourglass.head: kernel``: the last stack predicts a k x k kernel per 4x4 block and
    filters the input with it (a delta plus the prediction: the identity at the start); the
    filter's hand-written gradient is the true one; `mf2 deblur` applies a trained model as
    the trainer predicts; the settings are checked."""
    import torch.nn.functional as F

    from mf2.errors import UsageError
    from mf2.models.archs.hourglass import StackedHourglass, _PixelFilter
    from mf2.models.config import load_config
    from mf2.restore.deblur import Deblurrer
    from mf2.restore.tensors import to_tensor, to_uint8
    from mf2.train.trainer import Trainer

    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
    w = torch.randn(2, 25, 9, 11, dtype=torch.float64, requires_grad=True)
    ref = (F.unfold(x, 5, padding=2).view(2, 3, 25, 9, 11) * w.unsqueeze(1)).sum(2)
    assert torch.allclose(_PixelFilter.apply(x, w, 5), ref)
    assert torch.autograd.gradcheck(lambda w: _PixelFilter.apply(x, w, 5), (w,))
    shift = torch.zeros(1, 9, 9, 11, dtype=torch.float64)
    shift[:, 5] = 1.0  # the tap right of the centre: each pixel takes its right neighbour
    moved = _PixelFilter.apply(x[:1], shift, 3)
    assert torch.equal(moved[..., :-1], x[:1, ..., 1:]) and not moved[..., -1].any()

    hg = StackedHourglass(2, 16, 2, head="kernel", kernel=5)
    hg.zero_heads()
    xs = torch.rand(2, 3, 32, 32) * 1.8 - 0.9
    assert torch.allclose(hg.eval()(xs)[-1], xs, atol=1e-5)

    cfg_file = tmp_path / "kernel.yaml"
    cfg_file.write_text("preset: tiny\nbatch_size: 4\nhourglass: {head: kernel, kernel: 5}\n")
    run = tmp_path / "run"
    res = run_mf2("train", str(pairs_dir), "--config", str(cfg_file), "--stage", "hg", "--max-steps", "5",
                  "--device", "cpu", "--out", str(run))  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = Deblurrer(run / "model.pt", device="cpu", ensemble="none")
    ckpt = torch.load(run / "checkpoints" / "hg_last.pt", map_location="cpu", weights_only=True)
    taps = "heads.0.kernels.0.weight"
    assert ckpt["models"]["hg"][taps].abs().sum() > 0  # the zero-initialised kernels learned
    ckpt["models"]["hg"][taps] += 2.0 * torch.randn_like(ckpt["models"]["hg"][taps])  # a visible filter
    tr = Trainer(load_config(str(cfg_file)), [str(pairs_dir)], tmp_path / "probe", device="cpu")
    tr.models["hg"].load_state_dict(ckpt["models"]["hg"])
    d.hg.load_state_dict(ckpt["models"]["hg"])
    crops = (np.asarray(Image.open(p).convert("RGB")) for p in sorted((pairs_dir / "blurry").rglob("*.png")))
    crop = next(c for c in crops if c.mean() > 60)
    hg_out, _ = tr.predict(to_tensor(crop)[None])
    restored = d([crop])[0]
    assert not np.array_equal(restored, crop)
    assert np.abs(to_uint8(hg_out[0]).astype(int) - restored).max() <= 1
    for bad, why in (
        ({"hourglass": {"head": "wide"}}, "hourglass.head"),
        ({"hourglass": {"head": "kernel", "stem": "full"}}, "hourglass.head"),
        ({"hourglass": {"kernel": 4}}, "hourglass.kernel"),
    ):
        with pytest.raises(UsageError, match=why):
            load_config("tiny", bad)


def test_a_layer_that_crashes_onednn_in_channels_last_trains_in_the_plain_format(pairs_dir, tmp_path):
    """oneDNN's channels-last backward of a strided 1x1 convolution over fewer input channels
    than its block writes past its workspace (uxlfoundation/oneDNN#6035): such a config killed
    `mf2 train` with SIGSEGV. The trainer finds the layer and trains without channels_last, and
    says so; a config whose layers do not fit together is one line, not a traceback."""
    from mf2.models.config import load_config
    from mf2.train.devices import channels_last_hazard
    from mf2.train.steps import build_models

    enc = [[4, 4, 1, False], [1, 16, 2, True], [4, 32, 2, True], [4, 32, 2, True]]
    enc += [[4, 32, 2, True], [4, 32, 2, True], [4, 32, 1, True], [1, 16, 1, True]]
    risky = tmp_path / "risky.yaml"
    risky.write_text(json.dumps({"preset": "tiny", "cgan": {"encoder": enc}}))  # JSON is YAML
    cpu = torch.device("cpu")
    found = channels_last_hazard(build_models(load_config(str(risky))), cpu)
    assert found and found.startswith("gen.enc_bl.layers.1.") and "4 input channels" in found
    assert channels_last_hazard(build_models(load_config("small")), cpu) is None
    assert channels_last_hazard(build_models(load_config(str(risky))), torch.device("meta")) is None

    out = tmp_path / "run"
    res = run_mf2(
        "train", str(pairs_dir), "--config", str(risky), "--max-steps", "3", "--device", "cpu", "--out", str(out)
    )
    assert res.returncode == 0, res.stderr[-2000:]  # without the fallback: -11 (SIGSEGV) or a hang
    assert "channels_last off for this run: gen.enc_bl.layers.1." in res.stderr
    assert (out / "model.pt").is_file()

    bad = tmp_path / "bad.yaml"  # the first layer strides: its U-net skip no longer fits
    bad.write_text(
        json.dumps(
            {
                "preset": "tiny",
                "cgan": {"encoder": [[1, 8, 2, False], [4, 16, 1, True]] + enc[2:5] + [[4, 32, 1, True]] + enc[6:]},
            }
        )
    )
    res = run_mf2(
        "train",
        str(pairs_dir),
        "--config",
        str(bad),
        "--max-steps",
        "3",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "bad"),
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("mf2: error: config: its layers do not fit together at 64 px")


def test_the_run_log_writes_every_tensorboard_event_out_when_closed(tmp_path):
    """TensorBoard's writer writes from a thread: a process that left without closing it and
    without the interpreter's teardown (`mf2`: mf2.quick_exit) lost its last events (11 of
    100 here). ``mf2.train.loop.train`` closes the run log, whatever happens."""
    import subprocess
    import sys

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mf2.models.config import load_config\n"
        "from mf2.quick_exit import exit_now\n"
        "from mf2.train.runlog import RunLog\n"
        "log = RunLog(Path(sys.argv[1]), load_config('tiny'), main=True)\n"
        "for step in range(300):\n"
        "    log.row('hg', 'train', step, 0, {'l1': 1.0 / (step + 1)})\n"
        "log.close()\n"
        "exit_now(0)\n"
    )
    res = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    assert [e.step for e in acc.Scalars("hg/train/l1")] == list(range(300))
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 301
