"""GPU backend: face-alignment's 2D FAN on batched 256x256 crops.

Boxes come from dlib's HOG detector (FAN has no detector of its own and the SFD weights,
like FAN's, are a download); FAN then regresses heatmaps for many faces per forward pass.
Weights are loaded with ``weights_only=True`` from an explicit file or face-alignment's
torch-hub cache, never downloaded here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from mf2.errors import UsageError
from mf2.faces.base import Detection
from mf2.faces.dlib_backend import DlibBackend


def _num_modules(state_dict: dict) -> int:
    mods = {k.split(".")[0] for k in state_dict if k.startswith("m") and k.split(".")[0][1:].isdigit()}
    return max(1, len(mods))


def _last(out):
    """FAN returns one heatmap tensor per stacked module; the last is the prediction."""
    return out[-1] if isinstance(out, (list, tuple)) else out


class GraphedForward:
    """FAN's forward pass replayed from CUDA graphs, one per batch-size bucket.

    Eager PyTorch launches FAN's kernels one at a time from Python: on an H100 that took ~27 ms
    a call whatever the batch (37 images/s at batch 1, 1,039 at 32; bench/gpu.py). The tracker's
    calls hold 1-10 faces (a batch ends at the next keyframe), so launches, not arithmetic, set
    the landmark stage's speed; a graph replays a whole forward pass in one launch."""

    BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

    def __init__(self, net, device: str) -> None:
        self.net, self.device = net, device
        self.graphs: dict[int, tuple] = {}

    def _capture(self, b: int) -> tuple:
        import torch

        inp = torch.zeros(b, 3, 256, 256, device=self.device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(3):  # cuDNN picks its algorithms before the capture
                self.net(inp)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            out = self.net(inp)
        return graph, inp, _last(out)

    def __call__(self, x):
        n = x.shape[0]
        b = next((b for b in self.BUCKETS if b >= n), None)
        if b is None:
            return _last(self.net(x))
        if b not in self.graphs:
            self.graphs[b] = self._capture(b)
        graph, inp, out = self.graphs[b]
        inp[:n].copy_(x)
        graph.replay()
        return out[:n]


class FanBackend:
    name = "fan"

    def __init__(
        self, weights: str | Path, device: str | None = None, batch_size: int = 32, cuda_graphs: bool = True
    ) -> None:
        import torch
        from face_alignment.models import FAN

        weights = Path(weights)
        if not weights.is_file():
            raise UsageError(f"{weights}: FAN weights file not found")
        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size if self.device.startswith("cuda") else 1
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle errors, truncated files: one line for the user
            raise UsageError(f"{weights}: cannot load FAN weights ({e.__class__.__name__}: {e})") from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {k.removeprefix("module."): v for k, v in state.items()}
        net = FAN(_num_modules(state))
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise UsageError(f"{weights}: not a 2D FAN state dict ({str(e).splitlines()[0]})") from None
        self._net = net.to(self.device).eval()
        self._forward = (
            GraphedForward(self._net, self.device) if cuda_graphs and self.device.startswith("cuda") else self._eager
        )
        self._detector = DlibBackend()

    def _eager(self, x):
        return _last(self._net(x))

    def detect(self, image: np.ndarray, min_face: float | None = None) -> list[Detection]:
        return self._detector.detect(image, min_face)

    def fit(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[tuple[np.ndarray, float]]:
        from face_alignment.utils import CENTER_Y_OFFSET, REFERENCE_SCALE, crop, get_preds_fromhm

        torch = self._torch
        centers, scales, crops = [], [], []
        for image, box in zip(images, boxes):
            d = [float(v) for v in box]  # face-alignment's transforms want Python/float64 numbers
            center = np.array([(d[0] + d[2]) / 2.0, (d[1] + d[3]) / 2.0 - (d[3] - d[1]) * CENTER_Y_OFFSET])
            scale = float((d[2] - d[0] + d[3] - d[1]) / REFERENCE_SCALE)
            centers.append(center)
            scales.append(scale)
            crops.append(crop(image, center, scale).transpose(2, 0, 1))
        out = []
        for s in range(0, len(crops), max(1, self.batch_size)):
            batch = torch.from_numpy(np.stack(crops[s : s + self.batch_size])).to(self.device)
            with torch.no_grad():  # not inference_mode: a graph's input buffer is an ordinary tensor
                hm = self._forward(batch.float() / 255.0).float().cpu().numpy()
            for i in range(hm.shape[0]):
                j = s + i
                _, pts, sc = get_preds_fromhm(hm[i : i + 1], centers[j], scales[j])
                out.append((pts.reshape(68, 2).astype(np.float32), float(sc.mean())))
        return out
