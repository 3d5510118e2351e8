"""Pairs from mf2 manifests as a PyTorch dataset, with identity-safe train/val splits.

The split comes from the manifest's ``split`` column when `mf2 split` wrote one (``train``
trains; ``val``, or else ``test``, validates); otherwise videos are grouped by shared identity
(as `mf2 split` does) and a hash of each group picks validation with ``val_fraction``, so no
person is in both. Augmentation (a horizontal flip and a small random crop, the same for both
images; optionally identity pairs, tone jitter and rescaling, see ``PairDataset._appearance``)
is drawn from a generator seeded by (seed, epoch, index): the order and the crops of a run are
identical whatever the number of loader workers, which makes resume exact.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from mf2.dataset.manifest import load, safe_rel
from mf2.errors import UsageError
from mf2.quality import psnr
from mf2.restore.tensors import to_tensor
from mf2.share.split import groups
from mf2.train.focus import landmark_map

if TYPE_CHECKING:
    from mf2.models.config import TrainConfig


# the batch's tensors for the blur gate, beside "blurry" and "sharp" (PairDataset with gate_db)
GATE_KEYS = ("gate_input", "moving", "gate_weight")


@dataclass(frozen=True)
class PairRef:
    pair_id: str
    video_id: str
    blurry: Path
    sharp: Path
    # blurred by the face's own motion (PrAvg, VLA, flow), not by a synthetic kernel, which
    # blurs a face whether or not it moved: only these teach the blur gate what motion is
    motion: bool = True
    # the exposures just before and after the blurry one (simulate --neighbours), when it has them
    prev: Path | None = None
    next: Path | None = None
    # the target's 68 landmarks, (x, y) flattened, in the pair's pixels: where the loss looks
    # harder (LossConfig.landmark_weight, mf2.train.focus)
    landmarks: tuple[float, ...] | None = None


def _val_groups(group_of: dict[str, str], fraction: float, seed: int) -> set[str]:
    gs = sorted(set(group_of.values()))
    if fraction <= 0 or len(gs) < 2:
        return set()
    score = {g: int.from_bytes(hashlib.sha256(f"mf2-val:{seed}:{g}".encode()).digest()[:8], "big") for g in gs}
    n = max(1, round(fraction * len(gs)))
    return set(sorted(gs, key=score.__getitem__)[:n])


def split_pairs(
    manifests: Sequence[str | Path], val_fraction: float, seed: int
) -> tuple[list[PairRef], list[PairRef], str]:
    """(train, val, how the split was made)."""
    rows, how = [], ""
    for m in manifests:
        ds = load(m)
        if not ds.has_images:
            raise UsageError(f"{ds.path}: a manifest without images; mf2 materialize it first")
        for r in ds.table.select(
            [
                *("pair_id", "video_id", "identity", "split", "blurry_path", "sharp_path", "mode"),
                *("prev_path", "next_path", "landmarks"),
            ]
        ).to_pylist():
            r["_root"] = ds.root
            rows.append(r)
    if not rows:
        raise UsageError(f"{', '.join(map(str, manifests))}: no pairs")
    ref = [
        PairRef(
            r["pair_id"],
            r["video_id"],
            r["_root"] / safe_rel(r["blurry_path"]),
            r["_root"] / safe_rel(r["sharp_path"]),
            r["mode"] != "synthetic",
            r["_root"] / safe_rel(r["prev_path"]) if r["prev_path"] else None,
            r["_root"] / safe_rel(r["next_path"]) if r["next_path"] else None,
            tuple(float(v) for pt in r["landmarks"] for v in pt) if r["landmarks"] else None,
        )
        for r in rows
    ]
    splits = [r["split"] for r in rows]
    if any(splits):
        val_name = "val" if "val" in splits else "test"
        train = [p for p, s in zip(ref, splits) if s == "train"]
        val = [p for p, s in zip(ref, splits) if s == val_name]
        how = f"manifest split column (train / {val_name})"
    else:
        g = groups([r["video_id"] for r in rows], [r["identity"] for r in rows])
        val_g = _val_groups(g, val_fraction, seed)
        train = [p for p in ref if g[p.video_id] not in val_g]
        val = [p for p in ref if g[p.video_id] in val_g]
        how = f"{len(val_g)} of {len(set(g.values()))} identity/video groups held out (val_fraction {val_fraction})"
    if not train:
        raise UsageError("no training pairs after the split")
    return train, val, how


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise UsageError(f"{path}: missing or unreadable image (run mf2 verify on the dataset)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class PairDataset(Dataset):
    def __init__(
        self,
        pairs: list[PairRef],
        size: int,
        augment: bool,
        seed: int = 0,
        flip: bool = True,
        crop_jitter: float = 0.05,
        identity_fraction: float = 0.0,
        tone_jitter: float = 0.0,
        rescale_prob: float = 0.0,
        rescale_min: float = 0.45,
        static_identity_db: float = 0.0,
        gate_db: float = 0.0,
        gate_only: bool = False,
        static_keep_db: float = 0.0,
        neighbours: bool = False,
        focus_sigma: float = 0.0,
    ) -> None:
        self.pairs, self.size, self.augment = pairs, size, augment
        # > 0: also "focus", the target's landmark map with Gaussians of this x the image side
        # (LossConfig.landmark_sigma; mf2.train.focus), cropped and flipped with the pair
        self.focus_sigma = focus_sigma
        self.neighbours = neighbours  # also "context": the exposures before and after (HourglassConfig.neighbours)
        self.gate_db = gate_db  # > 0: also the blur gate's input and label (GateConfig.moving_db)
        self.gate_only = gate_only  # only the gate's tensors: the gate's own pairs (--gate-pairs)
        self.static_identity_db, self.static_keep_db = static_identity_db, static_keep_db
        self.seed, self.flip, self.crop_jitter = seed, flip, crop_jitter
        self.identity_fraction, self.tone_jitter = identity_fraction, tone_jitter
        self.rescale_prob, self.rescale_min = rescale_prob, rescale_min
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def _resize(self, img: np.ndarray) -> np.ndarray:
        if img.shape[0] == self.size and img.shape[1] == self.size:
            return img
        interp = cv2.INTER_AREA if img.shape[0] > self.size else cv2.INTER_CUBIC
        return cv2.resize(img, (self.size, self.size), interpolation=interp)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """``key``: an index, or (epoch, index) from EpochBatches (the epoch seeds the augmentation)."""
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        p = self.pairs[i]
        blurry, sharp = _read(p.blurry), _read(p.sharp)
        # the neighbours, or the blurry frame itself where the pair has none (as mf2 deblur feeds
        # a photo or a clip's first frame); empty when the network does not see them
        ctx = [_read(q) if q is not None else blurry for q in (p.prev, p.next)] if self.neighbours else []
        plain, gate = blurry, {}
        focus = self._focus(p, sharp.shape[0], sharp.shape[1]) if self.augment and self.focus_sigma > 0 else None
        judged = self.gate_db > 0 or self.static_identity_db > 0 or self.static_keep_db > 0
        made = psnr(blurry, sharp) if self.augment and judged else 0.0
        if self.augment and self.gate_db > 0:  # the pair as it was made decides whether it moved
            gate["moving"] = torch.tensor(float(made < self.gate_db))
            gate["gate_weight"] = torch.tensor(float(p.motion))  # a kernel's blur says nothing of motion
        if self.augment and self.static_identity_db > 0 and made >= self.static_identity_db:
            blurry = sharp  # barely moved: an identity pair (TrainConfig.static_identity_db)
            ctx = [sharp for _ in ctx]  # and so did its neighbours
        elif self.augment and self.static_keep_db > 0 and p.motion and made >= self.static_keep_db:
            sharp = blurry  # barely moved: comes out as it went in (TrainConfig.static_keep_db)
        if self.augment:
            rng = np.random.default_rng([self.seed, epoch, i])
            extras = [plain, *ctx, *([] if focus is None else [focus])]
            blurry, sharp, *extras = self._geometry(rng, [blurry, sharp, *extras])
            plain, ctx = extras[0], extras[1 : 1 + len(ctx)]
            focus = None if focus is None else extras[-1]
        if gate:
            # the gate learns from the real blurry image, cropped and flipped as the pair but
            # without the appearance augmentations: an identity pair's noisy frame or a
            # rescaled, tone-shifted image taught it nothing about motion (issue 30's note)
            gate["gate_input"] = to_tensor(self._resize(plain))
            if self.gate_only:
                return {"index": i, **gate}
        b, s = to_tensor(self._resize(blurry)), to_tensor(self._resize(sharp))
        c = torch.cat([to_tensor(self._resize(x)) for x in ctx]) if ctx else None
        if self.augment:
            b, s, c = self._appearance(rng, b, s, c)
        out = {"blurry": b, "sharp": s, "pair_id": p.pair_id, "index": i, **gate, **({"context": c} if ctx else {})}
        if focus is not None:
            out["focus"] = torch.from_numpy(np.ascontiguousarray(self._resize(np.ascontiguousarray(focus))))[None]
        return out

    def _geometry(self, rng: np.random.Generator, images: list[np.ndarray]) -> list[np.ndarray]:
        """The same random crop (keeping >= 1 - crop_jitter of the side) and flip of every image."""
        h, w = images[1].shape[:2]
        keep = 1.0 - rng.uniform(0, self.crop_jitter)
        ch, cw = max(8, int(round(h * keep))), max(8, int(round(w * keep)))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        images = [x[y0 : y0 + ch, x0 : x0 + cw] for x in images]
        if self.flip and rng.random() < 0.5:  # a face mirrored is still a face; no landmarks to swap
            images = [x[:, ::-1] for x in images]
        return images

    def _focus(self, p: PairRef, h: int, w: int) -> np.ndarray:
        """The pair's landmark map at its own size (mf2.train.focus.landmark_map)."""
        pts = None if p.landmarks is None else np.asarray(p.landmarks, np.float32).reshape(-1, 2)
        return landmark_map(pts, h, w, self.focus_sigma * max(h, w))

    def _appearance(
        self, rng: np.random.Generator, b: torch.Tensor, s: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Augmentations against the shortcut a few clips teach: that every face needs
        sharpening. Measured on bench/restore.py's pairs (issue 17), an hourglass trained
        without them took 4-8 dB off clean, nearly static test clips while it restored moving
        ones. Each option draws only when it is on, so a configuration without them keeps the
        exact order of random draws (and resumes) it had before. ``c``: the neighbours (B, 6,
        H, W), changed as the blurry image is (an identity pair's neighbours are its target).

        - ``identity_fraction``: the blurry input is the sharp target itself; a sharp face
          stays as it is.
        - ``tone_jitter`` t: contrast 1 +- t, brightness and per-channel gain +- t/3, the same on
          both images: skin tones, exposure and white balance the training clips lack.
        - ``rescale_prob``: both images shrunk to a factor in [rescale_min, 0.9] and enlarged
          back: a face that is soft because it was small in its video (an upscaled crop) is
          not motion blur, and its target is just as soft."""
        if self.identity_fraction > 0 and rng.random() < self.identity_fraction:
            b = s.clone()
            c = None if c is None else torch.cat([s, s])
        if self.tone_jitter > 0:
            t = self.tone_jitter
            gain = torch.tensor(
                (1.0 + rng.uniform(-t, t)) * (1.0 + rng.uniform(-t / 3, t / 3, 3)), dtype=torch.float32
            ).view(3, 1, 1)
            offset, mid = float(rng.uniform(-t / 3, t / 3)), s.mean()
            b, s = (((x - mid) * gain + mid + offset).clamp(-1.0, 1.0) for x in (b, s))
            if c is not None:
                c = ((c - mid) * gain.repeat(2, 1, 1) + mid + offset).clamp(-1.0, 1.0)
        if self.rescale_prob > 0 and rng.random() < self.rescale_prob:
            side = s.shape[-1]
            small = max(8, int(round(side * rng.uniform(self.rescale_min, 0.9))))
            every = torch.cat([b, s] + ([] if c is None else [c])).unsqueeze(0)
            every = F.interpolate(every, size=(small, small), mode="area")
            every = F.interpolate(every, size=(side, side), mode="bilinear", align_corners=False)[0].clamp(-1.0, 1.0)
            b, s, c = every[:3], every[3:6], (None if c is None else every[6:])
        return b.contiguous(), s.contiguous(), (None if c is None else c.contiguous())


def training_dataset(
    pairs: list[PairRef], cfg: "TrainConfig", gate: bool = True, gate_only: bool = False
) -> PairDataset:
    """The augmented training set a configuration describes (the trainer and bench/gpu.py).
    ``gate``: with the blur gate's tensors when the configuration has a gate (not when the gate
    learns from pairs of its own); ``gate_only``: those tensors alone (the gate's own pairs)."""
    return PairDataset(
        pairs,
        cfg.image_size,
        True,
        cfg.seed,
        cfg.flip,
        cfg.crop_jitter,
        cfg.identity_fraction,
        cfg.tone_jitter,
        cfg.rescale_prob,
        cfg.rescale_min,
        cfg.static_identity_db,
        cfg.gate.moving_db if cfg.gate.features and gate else 0.0,
        gate_only,
        cfg.static_keep_db,
        cfg.hourglass.neighbours,
        cfg.loss.focus_sigma,
    )


class EpochBatches(Sampler):
    """The current epoch's batches of (epoch, index) keys, replaced before each epoch. One
    DataLoader with persistent workers then serves a whole stage: the keys carry the epoch, so
    the workers' copies of the dataset need no update, and no worker restarts at each epoch
    (8 workers took ~1 s to start, each epoch, which starved a GPU on a small dataset)."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class GateBatches(Sampler):
    """The blur gate's batches of its own pairs (``--gate-pairs``), one per training step from
    ``start`` to ``total``: step s takes the (s mod n)-th batch of epoch s div n of its pairs'
    order (``epoch_order``), so a resumed stage gives the gate the batches it would have had."""

    def __init__(self, n: int, batch: int, seed: int, start: int, total: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.batch, self.seed, self.start, self.total = n, batch, seed, start, total
        self.rank, self.world = rank, world

    def __iter__(self):
        epoch, order = -1, []
        per = max(1, len(epoch_order(self.n, self.seed, 0, self.rank, self.world)) // self.batch)
        for step in range(self.start, self.total):
            e, j = divmod(step, per)
            if e != epoch:
                epoch, order = e, epoch_order(self.n, self.seed, e, self.rank, self.world)
            yield [(e, i) for i in order[j * self.batch : (j + 1) * self.batch]]

    def __len__(self) -> int:
        return max(0, self.total - self.start)


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[int]:
    """The samples of one epoch, for this rank: a permutation seeded by (seed, epoch), dealt
    round-robin across ranks and trimmed to equal length (DDP needs equal step counts)."""
    perm = np.random.default_rng([seed, epoch, 7]).permutation(n).tolist()
    per = len(perm) // world if world > 1 else len(perm)
    return perm[rank::world][:per]


def random_patches(
    blurry: torch.Tensor, sharp: torch.Tensor, side: int, seed: int, step: int, *more: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """One random ``side`` square of each pair, the same place in both images (and in ``more``:
    the neighbours), drawn from (seed, step) so a resumed run cuts the same ones
    (``TrainConfig.hg_patch``): a quarter of the pixels per image, four times the images per
    second for a full-resolution network."""
    h, w = blurry.shape[-2:]
    rng = np.random.default_rng([seed, step, 0x9A7C])
    ys, xs = rng.integers(0, h - side + 1, len(blurry)), rng.integers(0, w - side + 1, len(blurry))
    fmt = torch.channels_last if blurry.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return tuple(
        torch.stack([t[i, :, y : y + side, x : x + side] for i, (y, x) in enumerate(zip(ys, xs))]).contiguous(
            memory_format=fmt
        )
        for t in (blurry, sharp, *more)
    )
