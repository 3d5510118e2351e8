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
  zone or blend that scales the correction per image could reach.

Why (issue 30, session 22): the gate and the dead zone only scale what the restorer proposes.
When ``d_psnr_best_gate`` is far below a target, no gate reaches it and the restorer itself
must change; a low ``cos`` with a ``w_best`` above 1 says the correction is timid and partly
wrong, a ``w_best`` below 1 that it overshoots. Moving / static is the PSNR rule of
bench/restore.py (Blurred below 38 dB), per blur and per video.

    .venv/bin/python bench/correction.py --model RUN/model.pt --pairs WORK/test/pravg7 --pairs WORK/test/vla
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

STATIC_DB = 38.0  # bench/restore.py's rule


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
    return {
        "blurred_psnr": blurred,
        "cos": de / np.sqrt(dd * ee) if dd > 0 and ee > 0 else float("nan"),
        "ratio": np.sqrt(dd / ee) if ee > 0 else float("nan"),
        "w_best": de / dd if dd > 0 else float("nan"),
        "d_psnr": psnr(gated, t) - blurred,
        "d_psnr_ungated": psnr(y, t) - blurred,
        "d_psnr_best_gate": psnr_y(np.rint(xl + w * (yl - xl)), tl) - blurred,
    }


def _group(rows: list[dict]) -> dict:
    """Means (the median of w_best: one nearly-zero correction makes it huge) over the
    pairs whose Blurred PSNR is finite (an identical pair has no needed change)."""
    rows = [r for r in rows if np.isfinite(r["blurred_psnr"])]
    if not rows:
        return {"n": 0}

    def mean(k: str) -> float:
        v = np.array([r[k] for r in rows], float)
        return round(float(np.nanmean(v)), 4) if np.isfinite(v).any() else float("nan")

    out = {"n": len(rows), **{k: mean(k) for k in ("cos", "ratio", "d_psnr", "d_psnr_ungated", "d_psnr_best_gate")}}
    w = np.array([r["w_best"] for r in rows], float)
    out["w_best"] = round(float(np.median(w[np.isfinite(w)])), 3) if np.isfinite(w).any() else float("nan")
    return out


def _split(rows: list[dict]) -> dict:
    return {
        "moving": _group([r for r in rows if r["blurred_psnr"] < STATIC_DB]),
        "static": _group([r for r in rows if r["blurred_psnr"] >= STATIC_DB]),
    }


def correction_quality(model: Path, pair_dirs: list[Path], limit: int = 0) -> dict:
    """Per blur setting (each dataset's mode and L), moving / static, and per video."""
    import pyarrow.parquet as pq

    from mf2.evaluate.methods import read_rgb
    from mf2.restore.deblur import Deblurrer

    gated_model, ungated_model = Deblurrer(model, "cpu"), Deblurrer(model, "cpu")
    ungated_model.gate = None  # the restorer's own proposal
    out: dict = {"model": str(model), "static_db": STATIC_DB, "settings": {}, "by_video": {}}
    for folder in pair_dirs:
        rows = pq.read_table(folder / "pairs.parquet", columns=["pair_id", "video_id", "blurry_path", "sharp_path"])
        rows = rows.to_pylist()
        if limit and len(rows) > limit:
            rows = [rows[i] for i in np.linspace(0, len(rows) - 1, limit).round().astype(int)]
        measures = []
        for i in range(0, len(rows), 32):
            batch = rows[i : i + 32]
            xs = [read_rgb(folder / r["blurry_path"]) for r in batch]
            for r, x, y, g in zip(batch, xs, ungated_model(xs), gated_model(xs)):
                measures.append({"video": r["video_id"], **pair_measures(x, y, g, read_rgb(folder / r["sharp_path"]))})
        out["settings"][folder.name] = _split(measures)
        out["by_video"][folder.name] = {
            v: _split([m for m in measures if m["video"] == v]) for v in sorted({m["video"] for m in measures})
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="RUN/model.pt")
    ap.add_argument("--pairs", type=Path, action="append", required=True, help="a test dataset folder (repeat)")
    ap.add_argument("--limit", type=int, default=0, help="pairs per dataset, evenly spaced (0: all)")
    args = ap.parse_args()
    json.dump(correction_quality(args.model, args.pairs, args.limit), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
