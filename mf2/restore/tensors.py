"""Images as the networks see them: uint8 RGB <-> float tensors in [-1, 1] (training and inference
share the conversion, so a model restores exactly what it was trained on)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["to_tensor", "to_uint8"]


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float CxHxW in [-1, 1]. A read-only array (a decoded buffer, a flipped
    view) is copied first: torch warns on non-writable memory, and ``.float()`` copies anyway."""
    if not img.flags.writeable or not img.flags.c_contiguous:
        img = np.array(img, order="C")
    return torch.from_numpy(img).permute(2, 0, 1).float().div(127.5).sub(1.0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """float CxHxW in [-1, 1] -> uint8 HxWx3."""
    return ((t.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
