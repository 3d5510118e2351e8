"""How good is a deblurrer's correction, apart from how much of it reaches the output?

For each test pair, on luminance as `mf2 evaluate`'s PSNR, with x the blurry image, t the sharp one and y the model's restoration
before its blur gate (``mf2 deblur``'s flip ensemble and dead zone included): the correction
d = y - x against the change that was needed, e = t - x.

- ``cos``: the cosine of d and e over the pixels: whether the correction points the right way
  (1: the needed change, up to its scale; 0: unrelated to it);
- ``ratio``: |d| / |e|, how much of the needed change it makes;
- ``w_best`` (median): the scale of d that would have been best for the pair, <d, e> / |d|^2;
- ``d_psnr``: the model as `mf2 deblur` runs it (gate included); ``d_psnr_ungated``: y itself;
  ``d_psnr_best_gate``: x + w d with each pair's best w in [0, 1], the most any gate, dead
  zone or blend that scales the correction per image could reach;
- the pair's own oracles, which use its sharp image and so bound what a restorer of one kind
  could gain on it: ``d_psnr_oracle_filter``, x through the best 5x5 linear filter (and a
  constant) fitted to the pair by least squares, the most any deblurrer that is one linear
  filter per image could gain; ``d_psnr_oracle_symmetric``, the same filter held
  point-symmetric (it sharpens or softens but cannot move the face); ``d_psnr_oracle_shift``,
  x moved by the pair's sub-pixel displacement alone (``shift_px``, its least-squares fit).

Why (issue 30, session 22): the gate and the dead zone only scale what the restorer proposes.
When ``d_psnr_best_gate`` is far below a target, no gate reaches it and the restorer itself
must change; a low ``cos`` with a ``w_best`` above 1 says the correction is timid and partly
wrong, a ``w_best`` below 1 that it overshoots. Moving / static is the PSNR rule of
bench/restore.py (Blurred below 38 dB), per blur and per video.
Why the oracles (session 27): they say whether a target is out of reach of the data itself
(an oracle below it) or of the model (an oracle above it, the model far below); between the
full and the symmetric filter lies what a displacement or a one-sided blur adds; the
displacement alone (``d_psnr_oracle_shift``) is the part no restorer can read from a blurred
image (where in its blur the sharp frame sat). Run on
a training folder (``--limit``), the same measures are the model's fit: a restorer that gains
little on the pairs it trained on is short of capacity or training, not of data.

    .venv/bin/python bench/correction.py --model RUN/model.pt --pairs WORK/test/pravg7 --pairs WORK/test/vla
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

STATIC_DB = 38.0  # bench/restore.py's rule
ORACLE_K = 5  # the oracle filter's side: a PrAvg 7 / VLA blur at 128-256 px spans a few pixels


def oracle_filtered(xl: np.ndarray, tl: np.ndarray, k: int = ORACLE_K, symmetric: bool = False) -> np.ndarray:
    """x (luminance) through the k x k filter plus constant that brings it closest to t (least
    squares over the pair's pixels, edges repeated). ``symmetric``: taps tied in point-symmetric
    pairs, w(-i, -j) = w(i, j), a filter without a displacement."""
    from numpy.lib.stride_tricks import sliding_window_view

    cols = sliding_window_view(np.pad(xl, k // 2, mode="edge"), (k, k)).reshape(-1, k * k)
    if symmetric:  # tap j and its mirror k*k-1-j share one weight; the centre is its own mirror
        half = k * k // 2
        cols = np.concatenate([cols[:, :half] + cols[:, :half:-1], cols[:, half : half + 1]], axis=1)
    a = np.concatenate([cols, np.ones((len(cols), 1))], axis=1)
    w, *_ = np.linalg.lstsq(a, tl.ravel(), rcond=None)
    return (a @ w).reshape(xl.shape)


def oracle_shifted(xl: np.ndarray, tl: np.ndarray) -> tuple[np.ndarray, float]:
    """x (luminance) moved onto t by the sub-pixel displacement that fits them best, and its
    length in px. Cross-correlation (scikit-image, to 1/20 px) starts the search; it is biased
    towards whole pixels on soft images (0.3 for a 0.4 px move), so the least-squares
    displacement is then found directly (cubic spline, edges repeated, 4 px border ignored)."""
    from scipy.ndimage import shift
    from scipy.optimize import minimize
    from skimage.registration import phase_cross_correlation

    start, _, _ = phase_cross_correlation(tl, xl, upsample_factor=20, normalization=None)
    inner = (slice(4, -4), slice(4, -4))

    def err(d: np.ndarray) -> float:
        return float(np.mean((shift(xl, d, order=3, mode="nearest")[inner] - tl[inner]) ** 2))

    best = minimize(err, start, method="Powell", options={"xtol": 1e-3, "ftol": 1e-6}).x
    return shift(xl, best, order=3, mode="nearest"), float(np.hypot(*best))


def pair_measures(x: np.ndarray, y: np.ndarray, gated: np.ndarray, t: np.ndarray) -> dict:
    """The measures of one pair (uint8 RGB images of one size), each PSNR gain over Blurred's.
    On luminance, as `mf2 evaluate`'s PSNR (mf2.quality.psnr): Y is linear in RGB but for its
    rounding, so the best scale of the correction is found on Y too."""
    from mf2.quality import luminance, psnr, psnr_y

    xl, yl, tl = (luminance(a) for a in (x, y, t))
    d, e = (yl - xl).ravel(), (tl - xl).ravel()
    dd, ee, de = float(d @ d), float(e @ e), float(d @ e)
    blurred = psnr(x, t)
    w = min(max(de / dd, 0.0), 1.0) if dd > 0 else 0.0
    shifted, shift_px = oracle_shifted(xl, tl)

    def scored(est: np.ndarray) -> float:  # as evaluate scores an image: code values, rounded
        return psnr_y(np.rint(np.clip(est, 0, 255)), tl) - blurred

    return {
        "blurred_psnr": blurred,
        "cos": de / np.sqrt(dd * ee) if dd > 0 and ee > 0 else float("nan"),
        "ratio": np.sqrt(dd / ee) if ee > 0 else float("nan"),
        "w_best": de / dd if dd > 0 else float("nan"),
        "d_psnr": psnr(gated, t) - blurred,
        "d_psnr_ungated": psnr(y, t) - blurred,
        "d_psnr_best_gate": psnr_y(np.rint(xl + w * (yl - xl)), tl) - blurred,
        "d_psnr_oracle_filter": scored(oracle_filtered(xl, tl)),
        "d_psnr_oracle_symmetric": scored(oracle_filtered(xl, tl, symmetric=True)),
        "d_psnr_oracle_shift": scored(shifted),
        "shift_px": shift_px,
    }


MEANS = ("cos", "ratio", "d_psnr", "d_psnr_ungated", "d_psnr_best_gate", "d_psnr_oracle_filter",
         "d_psnr_oracle_symmetric", "d_psnr_oracle_shift")  # fmt: skip


def _group(rows: list[dict]) -> dict:
    """Means (the median of w_best: one nearly-zero correction makes it huge) over the
    pairs whose Blurred PSNR is finite (an identical pair has no needed change)."""
    rows = [r for r in rows if np.isfinite(r["blurred_psnr"])]
    if not rows:
        return {"n": 0}

    def mean(k: str) -> float:
        v = np.array([r[k] for r in rows], float)
        return round(float(np.nanmean(v)), 4) if np.isfinite(v).any() else float("nan")

    out = {"n": len(rows), **{k: mean(k) for k in MEANS}}
    w = np.array([r["w_best"] for r in rows], float)
    out["w_best"] = round(float(np.median(w[np.isfinite(w)])), 3) if np.isfinite(w).any() else float("nan")
    out["shift_px"] = round(float(np.median([r["shift_px"] for r in rows])), 3)
    return out


def _split(rows: list[dict]) -> dict:
    return {
        "moving": _group([r for r in rows if r["blurred_psnr"] < STATIC_DB]),
        "static": _group([r for r in rows if r["blurred_psnr"] >= STATIC_DB]),
    }


def correction_quality(model: Path, pair_dirs: list[Path], limit: int = 0) -> dict:
    """Per blur setting (each dataset's mode and L), moving / static, and per video."""

    from mf2.dataset.manifest import load
    from mf2.evaluate.methods import pair_context, read_rgb
    from mf2.restore.deblur import Deblurrer

    gated_model, ungated_model = Deblurrer(model, "cpu"), Deblurrer(model, "cpu")
    ungated_model.gate = None  # the restorer's own proposal
    out: dict = {"model": str(model), "static_db": STATIC_DB, "settings": {}, "by_video": {}}
    for folder in pair_dirs:
        cols = ["pair_id", "video_id", *(f"{k}_path" for k in ("blurry", "sharp", "prev", "next"))]
        rows = load(folder).table.select(cols).to_pylist()  # a manifest before 1.9: no neighbours, null
        if limit and len(rows) > limit:
            rows = [rows[i] for i in np.linspace(0, len(rows) - 1, limit).round().astype(int)]
        measures = []
        for i in range(0, len(rows), 32):
            batch = rows[i : i + 32]
            xs = [read_rgb(folder / r["blurry_path"]) for r in batch]
            # the neighbours (simulate --neighbours), for a model that sees them, as mf2 evaluate gives them
            ctx = [pair_context(folder, r, x) for r, x in zip(batch, xs)]
            for r, x, y, g in zip(batch, xs, ungated_model(xs, ctx), gated_model(xs, ctx)):
                measures.append({"video": r["video_id"], **pair_measures(x, y, g, read_rgb(folder / r["sharp_path"]))})
        out["settings"][folder.name] = _split(measures)
        out["by_video"][folder.name] = {
            v: _split([m for m in measures if m["video"] == v]) for v in sorted({m["video"] for m in measures})
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="RUN/model.pt")
    ap.add_argument("--pairs", type=Path, action="append", required=True,
                    help="a test dataset folder (repeat); a training one gives the model's fit")  # fmt: skip
    ap.add_argument("--limit", type=int, default=0, help="pairs per dataset, evenly spaced (0: all)")
    args = ap.parse_args()
    from mf2.errors import Mf2Error

    try:
        report = correction_quality(args.model, args.pairs, args.limit)
    except (Mf2Error, OSError) as e:  # a missing model or folder: one line, as mf2's own commands
        sys.exit(f"correction.py: error: {e}")
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
