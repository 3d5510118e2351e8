"""The annotated-stills protocol: blur manually annotated faces so the landmark metrics use
human ground truth (the paper's synthetic-blur experiments are of this kind).

Each image with a 68-point ``.pts`` file becomes one synthetic pair per kernel size: the face
crop of its annotation (as `mf2 simulate` crops), blurred in linear light with a seeded
camera-shake kernel. The result is an ordinary pair dataset whose ``landmarks`` column holds
the annotation (``mf2.landmarks_source = manual``), so any method can restore it and be scored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mf2.atomic import write_bytes_atomic
from mf2.blur.kernels import make_kernel, pair_seed, synthetic_blur
from mf2.dataset import image_columns, image_rel, pairs_path
from mf2.dataset.manifest import pairs_metadata, write
from mf2.errors import InputError, UsageError
from mf2.faces.crop import face_crop, resize_to
from mf2.faces.pts import read_pts
from mf2.params import default
from mf2.pngs import encode_image
from mf2.schema import pair_table, params_json
from mf2.sources import safe_id

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class StillsConfig:
    # simulate's defaults (mf2.params: one declaration each)
    kernel_sizes: tuple[int, ...] = (default("synthetic.kernel_size"),)
    seed: int = default("synthetic.seed")
    margin: float = default("margin")
    out_size: int = default("out_size")
    crf: str = default("crf")
    noise_sigma: float = default("synthetic.noise_sigma")
    iterations: int = 2000

    def params(self) -> dict:
        return {
            "mode": "synthetic",
            "protocol": "stills",
            "kernel_sizes": list(self.kernel_sizes),
            "seed": self.seed,
            "margin": self.margin,
            "out_size": self.out_size,
            "crf": self.crf,
            "noise_sigma": self.noise_sigma,
            "iterations": self.iterations,
        }


def _image_for(pts: Path) -> Path | None:
    for ext in IMAGE_EXTENSIONS:
        for cand in (pts.with_suffix(ext), pts.with_suffix(ext.upper())):
            if cand.is_file():
                return cand
    return None


def find_stills(folder: Path) -> list[tuple[Path, Path]]:
    if not folder.is_dir():
        raise UsageError(f"--stills {folder}: no such folder")
    found = [(img, pts) for pts in sorted(folder.rglob("*.pts")) if (img := _image_for(pts)) is not None]
    if not found:
        raise UsageError(f"--stills {folder}: no image with a .pts annotation next to it")
    return found


def build_stills(folder: Path, out: Path, cfg: StillsConfig) -> tuple[Path, list[str]]:
    """Write the stills dataset under ``out``; returns its manifest and the skipped files."""
    for k in cfg.kernel_sizes:
        if k < 3 or k > cfg.out_size:
            raise UsageError(f"--kernel-size {k}: must be between 3 and the crop size {cfg.out_size}")
    rows: list[dict] = []
    skipped: list[str] = []
    params = params_json(cfg.params())
    for img_path, pts_path in find_stills(folder):
        still = _read_still(img_path, pts_path, skipped)
        if still is not None:
            rows += _still_pairs(out, cfg, params, img_path, *still)
    if not rows:
        raise UsageError(f"--stills {folder}: no usable annotated image ({'; '.join(skipped[:3])})")
    table = pair_table(rows)
    manifest = pairs_path(out)
    write(manifest, table, pairs_metadata(table, cfg.params(), landmarks_source="manual", stills_folder=str(folder)))
    return manifest, skipped


def _read_still(img_path: Path, pts_path: Path, skipped: list[str]) -> tuple[np.ndarray, np.ndarray, str] | None:
    """The photo (RGB), its 68 annotated points and its sha256; None (the reason added to
    ``skipped``) for an unreadable image or markup."""
    try:
        gt = read_pts(pts_path)
    except InputError as e:
        skipped.append(str(e))
        return None
    if gt.shape != (68, 2):
        skipped.append(f"{pts_path}: {len(gt)} points, not the 68-point markup")
        return None
    data = img_path.read_bytes()
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        skipped.append(f"{img_path}: not a readable image")
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), gt, hashlib.sha256(data).hexdigest()


def _still_pairs(
    out: Path, cfg: StillsConfig, params: str, img_path: Path, rgb: np.ndarray, gt: np.ndarray, sha: str
) -> list[dict]:
    """One synthetic pair per kernel size of one annotated photo: PNGs written, rows returned."""
    rows = []
    vid = safe_id(f"{img_path.parent.name}_{img_path.stem}")
    crop = face_crop(gt, cfg.margin)
    sharp = resize_to(crop.take(rgb), cfg.out_size)
    lm = crop.landmarks_to_output(gt, cfg.out_size)
    s_img = encode_image(sharp)
    for k in cfg.kernel_sizes:
        seed = pair_seed(cfg.seed, sha, k)
        kernel = make_kernel(seed, k, cfg.iterations)
        blurry = synthetic_blur(sharp, kernel, seed, cfg.crf, cfg.noise_sigma)
        pid = f"{vid}_synthetic_k{k}_c000000"
        rel_b, rel_s = image_rel("blurry", vid, pid), image_rel("sharp", vid, pid)
        b_img = encode_image(blurry)
        write_bytes_atomic(out / rel_b, b_img.png)
        write_bytes_atomic(out / rel_s, s_img.png)
        rows.append(
            {
                "pair_id": pid,
                "video_id": vid,
                "video_sha256": sha,
                "mode": "synthetic",
                "L": 1,
                "start_frame": 0,
                "center_frame": 0,
                "end_frame": 0,
                "frames": [0],
                "n_duplicates_skipped": 0,
                **image_columns(rel_b, rel_s, b_img, s_img),
                "crop_x0": crop.x0,
                "crop_y0": crop.y0,
                "crop_size": crop.size,
                "out_size": cfg.out_size,
                "landmarks": lm,
                "crf": cfg.crf,
                "fps": None,
                "seed": seed,
                "kernel_size": k,
                "kernel": kernel.ravel().tolist(),
                "noise_sigma": cfg.noise_sigma,
                "params": params,
            }
        )
    return rows
