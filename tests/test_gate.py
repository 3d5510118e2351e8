"""The blur gate (issue 30): it scales a correction by its probability, it learns to tell a
blurred texture from a still one, and its settings are checked (its labels and training with
a run, into model.pt and `mf2 deblur`: tests/test_train.py)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mf2.models.archs.gate import gated  # noqa: E402
from mf2.models.config import config_from_dict, load_config  # noqa: E402


def _texture(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A smooth random texture (uint8 RGB) with edges at several scales, like a face crop's."""
    img = np.zeros((size, size, 3), np.float32)
    for s in (2, 4, 8):
        small = rng.random((size // s, size // s, 3)).astype(np.float32)
        img += cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    img = (img - img.min()) / (img.max() - img.min())
    return np.rint(img * 235 + 10).astype(np.uint8)


def _t(imgs: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_gated_scales_the_correction_by_the_probability_to_the_power():
    x, y = torch.zeros(3, 3, 4, 4), torch.ones(3, 3, 4, 4)
    out = gated(x, y, torch.tensor([-1e4, 0.0, 1e4]), 2.0)
    assert torch.equal(out[0], x[0])  # sure it is still: the input, exactly
    assert torch.allclose(out[1], torch.full_like(x[1], 0.25))  # p = 0.5, squared
    assert torch.equal(out[2], y[2])


def test_the_gate_learns_to_tell_a_blurred_texture_from_a_still_one():
    from mf2.models.archs import build
    from mf2.models.config import GateConfig

    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    gate = build("blur_gate", GateConfig(features=8))
    opt = torch.optim.Adam(gate.parameters(), lr=3e-3)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        imgs, labels = [], []
        for _ in range(n):
            s = _texture(rng)
            moving = rng.random() < 0.5
            if moving:  # a horizontal or vertical streak of 5 px
                k = np.full((1, 5), 1 / 5, np.float32)
                s = cv2.filter2D(s, -1, k if rng.random() < 0.5 else k.T, borderType=cv2.BORDER_REFLECT)
            imgs.append(s)
            labels.append(float(moving))
        return _t(imgs), torch.tensor(labels)

    for _ in range(150):
        x, t = batch(16)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(gate(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    gate.eval()
    x, t = batch(200)
    with torch.no_grad():
        p = torch.sigmoid(gate(x))
    accuracy = float(((p > 0.5).float() == t).float().mean())
    assert accuracy > 0.9, accuracy


def test_gate_settings_are_checked_and_old_configs_have_none():
    assert load_config("tiny").gate.features == 0
    saved = load_config("tiny").to_dict()
    del saved["gate"]  # a run saved before the gate existed
    assert config_from_dict(saved).gate.features == 0
    assert load_config("tiny", {"gate": {"features": 8}}).gate.features == 8
    for bad in ({"features": -1}, {"power": 0}, {"moving_db": 5}):
        with pytest.raises(Exception, match="gate"):
            load_config("tiny", {"gate": bad})
    assert not math.isnan(load_config("small").gate.power)


def test_a_gate_step_leaves_pairs_of_weight_zero_out_of_its_loss():
    """Synthetic-kernel pairs (weight 0) ride in the batch but teach the gate nothing: the loss
    is the mean over the others, and a batch of them alone moves no weight."""
    import torch.nn.functional as F

    from mf2.models.archs import build
    from mf2.models.config import GateConfig
    from mf2.train.steps import Nets, gate_step

    torch.manual_seed(0)
    cfg = load_config("tiny", {"gate": {"features": 8}})
    gate = build("blur_gate", GateConfig(features=8))
    nets = Nets(cfg, {"gate": gate}, {"gate": torch.optim.Adam(gate.parameters(), lr=1e-2)}, {}, "cpu", False)
    x = _t([_texture(np.random.default_rng(i)) for i in range(4)])
    moving, weight = torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([1.0, 1.0, 0.0, 0.0])
    with torch.no_grad():
        expect = F.binary_cross_entropy_with_logits(gate(x), moving, reduction="none")[:2].mean()
    assert float(gate_step(nets, x, moving, weight)) == pytest.approx(float(expect), rel=1e-5)
    before = {k: v.clone() for k, v in gate.state_dict().items() if v.is_floating_point()}
    nets.opt["gate"] = torch.optim.Adam(gate.parameters(), lr=1e-2)  # no moments yet
    gate_step(nets, x, moving, torch.zeros(4))
    after = gate.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if "running" not in k)
