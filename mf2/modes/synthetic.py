"""Synthetic: one sharp frame blurred by a random camera-shake kernel (mf2.blur.kernels),
seeded per pair from the run's seed, the video's content and the frame."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from mf2.blur.kernels import make_kernel, pair_seed, synthetic_blur
from mf2.blur.windows import Window, crop_fits
from mf2.errors import UsageError
from mf2.faces.crop import face_crop
from mf2.faces.series import FaceSeries
from mf2.modes.base import Mode, Plan, PlanContext
from mf2.modes.config import SimulateConfig


def _plan(ctx: PlanContext, ser: FaceSeries) -> Plan:
    cfg, sha, size = ctx.cfg, ctx.sha, ctx.frame_size
    syn = cfg.synthetic
    valid = ser.usable
    exposures = np.flatnonzero(~ser.is_duplicate) if cfg.skip_duplicates else np.arange(len(valid))
    windows: list[Window] = []
    extras: list[dict] = []
    skipped: dict[str, int] = {}
    for f in exposures[:: cfg.stride]:
        f = int(f)
        crop = face_crop(ser.landmarks[f], cfg.margin) if valid[f] else None
        why = str(ser.reason[f]) if crop is None else (None if crop_fits(crop, size) else "crop-too-large")
        if why is not None or crop is None:
            skipped[str(why)] = skipped.get(str(why), 0) + 1
            continue
        seed = pair_seed(syn.seed, sha, f)
        windows.append(Window((f,), f, crop, 0))
        extras.append({"seed": seed, "kernel_size": syn.kernel_size, "noise_sigma": syn.noise_sigma})
    return Plan(windows, extras, sum(skipped.values()), {"skipped": skipped}, ser)


class Synthetic(Mode):
    name = "synthetic"

    def validate(self, cfg: SimulateConfig) -> None:
        cfg.synthetic.validate()
        if cfg.synthetic.kernel_size > cfg.out_size:
            raise UsageError(f"--kernel-size {cfg.synthetic.kernel_size}: larger than --out-size {cfg.out_size}")

    def params(self, cfg: SimulateConfig) -> dict:
        return {"iterations": cfg.synthetic.iterations}

    def plan(self, ctx: PlanContext, ser: FaceSeries) -> Plan:
        return _plan(ctx, ser)

    def pair_columns(self, cfg: SimulateConfig, extra: dict) -> dict:
        kernel = make_kernel(extra["seed"], cfg.synthetic.kernel_size, cfg.synthetic.iterations)
        return {**extra, "kernel": kernel.ravel().tolist()}

    def blur(self, sharp: np.ndarray, blurry: np.ndarray, pair: Mapping[str, Any], crf: str) -> np.ndarray:
        """The sharp target blurred by the pair's own kernel (its ``kernel`` column, exact in
        float32) with its seeded noise: the render's average is not used."""
        k = int(pair["kernel_size"])
        kernel = np.asarray(pair["kernel"], dtype=np.float32).reshape(k, k)
        return synthetic_blur(sharp, kernel, int(pair["seed"]), crf, float(pair["noise_sigma"] or 0.0))

    def pair_id(self, video_id: str, w: Window, extra: dict, cfg: SimulateConfig) -> str:
        return f"{video_id}_synthetic_k{extra['kernel_size']}_c{w.center:06d}"

    def label(self, row: dict) -> str:
        return f"Synthetic k{row['kernel_size']}"

    def job_name(self, job: dict) -> str:
        return f"synthetic_k{job['kernel_size']}"


MODE = Synthetic()
