"""Would a deblurrer that sees the neighbouring blurry frames do better? (issue 30)

The recommended model restores one blurry frame. On moving PrAvg 7 test faces the direction of
its correction agrees poorly with the true one (cosine ~0.2, bench/correction.py), and a part
of what it misses is a sub-pixel shift between the blur's centroid and the middle frame, which
one blurry frame cannot tell. A video deblurrer may also see the frames around it: for a PrAvg
pair (frames s..e, L of them) the blurry images just before (s-L..s-1) and after (e+1..e+L),
averaged the same way in the same crop, are what the camera would have recorded next to it.

This bench builds those neighbours for bench/restore.py's PrAvg 7 pairs (train and test sides,
re-decoding each clip once through mf2's own renderer), then trains two hourglasses of the
`small` preset's shape on the same pairs, steps, seed, loss (L2) and still-face rule
(``static_keep_db``): one sees the blurry frame alone, one sees it with its two neighbours
(a 9-channel stem; everything after the stem is the same network). Both are scored on the
test people's PrAvg 7 pairs, moving (Blurred below 38 dB) and still, as bench/restore.py does.
A controlled A/B, not the shipped recipe: no photos, identity pairs, gate or cGAN.

    .venv/bin/python bench/temporal.py --work /work/rb --out temporal.json --steps 3000 --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from restore import CORPUS, SHARED, TEST_CLIPS, train_sources  # noqa: E402

MOVING_DB = 38.0
# name -> (frames the stem sees, share of training pairs shown without their neighbours, whether a
# channel tells the stem that they are missing)
VARIANTS = {
    "frames_1": (1, 0.0, False),
    "frames_3": (3, 0.0, False),
    "frames_3_drop30": (3, 0.3, False),
    "frames_3_drop30_flag": (3, 0.3, True),
}
SIDES = ("train", "test")


def _windows(rows: list[dict]) -> tuple[list, list[tuple[str, str]]]:
    """Each pair's two neighbouring windows (mf2.blur.windows.neighbour_frames: same crop, L
    frames just before and just after), for pairs that have an earlier one."""
    from mf2.blur.windows import Window, neighbour_frames, neighbour_window
    from mf2.faces.crop import Crop

    wins, keys = [], []
    for r in rows:
        crop = Crop(int(r["crop_x0"]), int(r["crop_y0"]), int(r["crop_size"]))
        frames = tuple(int(f) for f in r["frames"])
        pair = Window(frames, frames[len(frames) // 2], crop, 0)
        beside = neighbour_frames(pair)
        if beside[0][0] < 0:
            continue
        for name, span in zip(("prev", "next"), beside):
            wins.append(neighbour_window(pair, span))
            keys.append((name, r["pair_id"]))
    return wins, keys


def build_neighbours(pairs_dir: Path, paths: dict[str, Path], out: Path) -> dict:
    """Write ``out/{prev,next}/<pair_id>.png`` for every PrAvg pair whose neighbours lie in its
    clip (``paths``: video id -> file; the videos it lacks are left out)."""
    from mf2.atomic import write_bytes_atomic
    from mf2.blur.render import render_windows
    from mf2.pngs import encode_png
    from mf2.video import iter_frames
    from mf2.video.probe import probe

    cols = ["pair_id", "video_id", "frames", "L", "crop_x0", "crop_y0", "crop_size", "out_size"]
    table = pq.read_table(pairs_dir / "pairs.parquet", columns=cols + ["crf"]).to_pylist()
    by_video: dict[str, list[dict]] = {}
    for r in table:
        by_video.setdefault(r["video_id"], []).append(r)
    made = 0
    for vid, rows in sorted(by_video.items()):
        if vid not in paths:
            continue
        done = out / "done" / vid  # written after the video's last neighbour: a rerun skips it
        if done.is_file():
            made += int(done.read_text())
            continue
        before = made
        wins, keys = _windows(rows)
        order = {id(w): k for w, k in zip(wins, keys)}
        info = probe(paths[vid])
        for w, blurry, _ in render_windows(iter_frames(info), wins, rows[0]["crf"], int(rows[0]["out_size"])):
            name, pid = order[id(w)]
            write_bytes_atomic(out / name / f"{pid}.png", encode_png(blurry))
            made += name == "next"
        write_bytes_atomic(done, str(made - before).encode())
    return {"pairs": len(table), "with_neighbours": made}


def load_side(pairs_dir: Path, nb: Path) -> dict[str, torch.Tensor]:
    """Every pair with both neighbours, as uint8 tensors (N, 3, H, W) and its Blurred PSNR."""
    t = pq.read_table(pairs_dir / "pairs.parquet", columns=["pair_id", "blurry_path", "sharp_path", "blur_psnr"])
    keep = [r for r in t.to_pylist() if (nb / "next" / f"{r['pair_id']}.png").is_file()]

    from mf2.evaluate.methods import read_rgb

    def stack(paths: list[Path]) -> torch.Tensor:
        return torch.from_numpy(np.stack([read_rgb(p) for p in paths])).permute(0, 3, 1, 2).contiguous()

    return {
        "prev": stack([nb / "prev" / f"{r['pair_id']}.png" for r in keep]),
        "blurry": stack([pairs_dir / r["blurry_path"] for r in keep]),
        "next": stack([nb / "next" / f"{r['pair_id']}.png" for r in keep]),
        "sharp": stack([pairs_dir / r["sharp_path"] for r in keep]),
        "blur_psnr": torch.tensor([float(r["blur_psnr"]) for r in keep]),
    }


class _NeighbourStem(nn.Module):
    """Newell's stem over the blurry frame and, set before each pass, its neighbours."""

    def __init__(self, ctx_ch: int, features: int) -> None:
        super().__init__()
        from mf2.models.archs.hourglass import NewellStem

        self.stem, self.ctx_ch = NewellStem(3 + ctx_ch, features), ctx_ch
        self.ctx: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.ctx is not None
        return self.stem(torch.cat([self.ctx[:, :3], x, self.ctx[:, 3 : self.ctx_ch]], 1))


class Restorer(nn.Module):
    """The `small` hourglass; with ``frames=3`` its stem also sees the two neighbours, and with
    ``flag`` a channel saying whether they are there (1) or replaced by the blurry frame (0).
    Everything after the stem (the hourglasses, the heads, the residual on the blurry frame)
    is mf2's network as it is."""

    def __init__(self, frames: int, flag: bool = False) -> None:
        super().__init__()
        from mf2.models.archs.hourglass import StackedHourglass

        self.net = StackedHourglass(stacks=2, features=64, depth=3)
        self.net.zero_heads()
        self.neighbours = _NeighbourStem(7 if flag else 6, 64) if frames == 3 else None
        if self.neighbours is not None:
            self.net.stem = self.neighbours

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> list[torch.Tensor]:
        if self.neighbours is not None:
            self.neighbours.ctx = ctx
        return self.net(x)


def _batch(
    d: dict, idx: torch.Tensor, flip: torch.Tensor, drop: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(blurry, neighbours and their flag, target) in [-1, 1]; ``drop`` marks pairs shown without
    neighbours (the blurry frame in their place, as a photo or a still image would be; flag 0)."""

    def f(name: str) -> torch.Tensor:
        x = d[name][idx].float() / 127.5 - 1
        return torch.where(flip[:, None, None, None], x.flip(-1), x)

    x, ctx, y = f("blurry"), torch.cat([f("prev"), f("next")], 1), f("sharp")
    drop = torch.zeros(len(idx), dtype=torch.bool) if drop is None else drop
    ctx = torch.where(drop[:, None, None, None], x.repeat(1, 2, 1, 1), ctx)
    ctx = torch.cat([ctx, (~drop).float()[:, None, None, None].expand(-1, 1, *x.shape[2:])], 1)
    still = d["blur_psnr"][idx] >= MOVING_DB  # the still-face term: a still pair trains towards its blurry image
    return x, ctx, torch.where(still[:, None, None, None], x, y)


def train(
    d: dict, variant: tuple[int, float, bool], steps: int, seed: int, batch: int = 16, lr: float = 5e-4
) -> tuple[Restorer, dict]:
    torch.manual_seed(seed)
    frames, drop, flag = variant
    model = Restorer(frames, flag)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    g = torch.Generator().manual_seed(seed)
    n, t0, curve = len(d["sharp"]), time.perf_counter(), []
    model.train()
    for step in range(steps):
        idx = torch.randint(0, n, (batch,), generator=g)
        x, ctx, y = _batch(d, idx, torch.rand(batch, generator=g) < 0.5, torch.rand(batch, generator=g) < drop)
        loss = sum(F.mse_loss(o, y) for o in model(x, ctx))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        opt.step()
        sched.step()
        if (step + 1) % max(1, steps // 10) == 0:
            curve.append({"step": step + 1, "loss": round(float(loss.detach()) / 2, 6)})
    secs = time.perf_counter() - t0
    return model, {"seconds": round(secs, 1), "images_per_s": round(steps * batch / secs, 1), "curve": curve}


@torch.no_grad()
def score(model: Restorer, d: dict, context: bool = True) -> dict:
    """d PSNR over Blurred (code values, whole crop) for moving and still test pairs; without
    ``context`` the model sees the blurry frame in place of its neighbours."""
    model.eval()
    gains: list[float] = []
    for i in range(0, len(d["sharp"]), 32):
        idx = torch.arange(i, min(i + 32, len(d["sharp"])))
        x, ctx, _ = _batch(d, idx, torch.zeros(len(idx), dtype=torch.bool), torch.full((len(idx),), not context))
        out = ((model(x, ctx)[-1] + 1) * 127.5).round().clamp(0, 255)
        sharp, blurry = d["sharp"][idx].float(), d["blurry"][idx].float()
        for o, s, b in zip(out, sharp, blurry):
            gains.append(float(10 * torch.log10(((b - s) ** 2).mean() / ((o - s) ** 2).mean().clamp_min(1e-6))))
    moving = (d["blur_psnr"] < MOVING_DB).numpy()
    g = np.array(gains)
    return {
        "moving": {"n": int(moving.sum()), "d_psnr": round(float(g[moving].mean()), 4)},
        "still": {"n": int((~moving).sum()), "d_psnr": round(float(g[~moving].mean()), 4)},
    }


@torch.no_grad()
def sample_grid(models: dict[str, Restorer], d: dict, path: Path, rows: int = 6) -> None:
    """Moving test faces spread evenly over the test folder, one row each."""
    import cv2

    moving = torch.nonzero(d["blur_psnr"] < MOVING_DB).flatten()
    idx = moving[torch.linspace(0, len(moving) - 1, rows).long()]
    x, ctx, _ = _batch(d, idx, torch.zeros(rows, dtype=torch.bool))
    outs = [((models[m].eval()(x, ctx)[-1] + 1) * 127.5).round().clamp(0, 255).byte() for m in ("frames_1", "frames_3")]
    cols = [d["prev"][idx], d["blurry"][idx], d["next"][idx], *outs, d["sharp"][idx]]
    grid = torch.cat([torch.cat(list(c), 1) for c in cols], 2).permute(1, 2, 0).numpy()
    cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(grid), cv2.COLOR_RGB2BGR))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="bench/restore.py's --work (its train/ and test/ pairs)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="frames_1,frames_3", help=f"which of {', '.join(VARIANTS)}")
    ap.add_argument(
        "--png", type=Path, help="a grid of moving test faces: previous | blurry | next | 1 frame | 3 frames | sharp"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    unknown = set(args.models.split(",")) - set(VARIANTS)
    if unknown:
        print(f"temporal.py: error: --models {args.models}: unknown {', '.join(sorted(unknown))}", file=sys.stderr)
        return 1
    if not (args.work / "train" / "pravg7" / "pairs.parquet").is_file():
        print(f"temporal.py: error: {args.work}: no train/pravg7 pairs (run bench/restore.py first)", file=sys.stderr)
        return 1
    paths = {s.video_id: s.path for s in train_sources(SHARED, CORPUS)}
    paths.update({c: SHARED / f"{c}.mp4" for c in TEST_CLIPS})
    report: dict = {"steps": args.steps, "seed": args.seed, "threads": args.threads, "neighbours": {}}
    data = {}
    for side in SIDES:
        t0 = time.perf_counter()
        nb = args.work / "temporal" / side
        report["neighbours"][side] = build_neighbours(args.work / side / "pravg7", paths, nb)
        report["neighbours"][side]["seconds"] = round(time.perf_counter() - t0, 1)
        data[side] = load_side(args.work / side / "pravg7", nb)
    models = {}
    for name in args.models.split(","):
        models[name], log = train(data["train"], VARIANTS[name], args.steps, args.seed)
        report[name] = {**log, "test_pravg7": score(models[name], data["test"])}
        if VARIANTS[name][0] == 3:
            report[name]["test_pravg7_without_neighbours"] = score(models[name], data["test"], context=False)
        print(json.dumps({name: {k: v for k, v in report[name].items() if k.startswith("test")}}), flush=True)
    if args.png and {"frames_1", "frames_3"} <= set(models):
        sample_grid(models, data["test"], args.png)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
