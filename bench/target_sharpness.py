"""Does ``target_sharpness`` flag blurred targets? (issue 31, item 3)

Builds footage where known frames are blurred before simulation: chosen frames (a random
12 %) of shared clips get a box or a linear motion kernel (its side 4–10 % of the clip's
median face size, as the untouched clip's landmarks give it: a blur a lab would reject, not
a softening within the footage's own variation; random angle), and the clip is re-encoded near-losslessly (x264 CRF 12) so the
blur, not the codec, is what changed. ``mf2 simulate`` (PrAvg 7) then runs on it, and
every pair whose target (middle frame) is a blurred frame should be flagged: its target's
sharpness relative to the median of its shot's targets (what ``--min-target-sharpness``
compares) below a threshold. Three candidate measures are scored (the variance of the
Laplacian of Gaussian, which the manifest stores, the plain variance of the Laplacian and
the gradient energy, Tenengrad), over a sweep of
thresholds: precision and recall of the flag, and the threshold that maximises F1.

Real clips have soft targets of their own (lp_d11 alternates runs of crisp and smeared frames,
about 5:1 in sharpness), which a good measure flags too but which no construction knows of.
So the untouched clips are simulated as well, and a pair whose target the same rule flags in
the untouched clip is left out of the scores (counted as ``natural``); ``raw`` gives the
scores with them in. Two references are compared: the median of the whole shot's targets
(``shot``) and of the 3 targets either side in the shot (``local``, the one mf2 stores as
``sharpness_ratio``).
Prints JSON.

    .venv/bin/python bench/target_sharpness.py --out /tmp/ts
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
CLIPS = (
    "fomm_08.mp4",
    "lp_d19.mp4",
    "sadtalker_WDA_KatieHill_000.mp4",
    "retalking_face_3.mp4",
    "lp_d11.mp4",
    "mead_W040_level_3_happy_029_720p.mp4",
)
SHARE = 0.12
THRESHOLDS = [round(t, 3) for t in np.arange(0.5, 0.976, 0.025)]


def _kernel(rng: np.random.Generator, face: float) -> tuple[np.ndarray, str]:
    n = max(3, int(round(face * rng.uniform(0.04, 0.10))) | 1)
    if rng.random() < 0.3:
        return np.full((n, n), 1.0 / (n * n), np.float32), f"box{n}"
    k = np.zeros((n, n), np.float32)
    k[n // 2, :] = 1.0
    angle = float(rng.uniform(0, 180))
    k = cv2.warpAffine(k, cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), angle, 1.0), (n, n))
    return k / k.sum(), f"motion{n}@{angle:.0f}"


def build(src: Path, dst: Path, rng: np.random.Generator, face: float) -> list[int]:
    """``src`` with a random share of its frames blurred, re-encoded to ``dst``; the blurred
    frame indices."""
    from mf2.video import iter_frames, probe

    info = probe(src)
    enc = subprocess.Popen(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{info.width}x{info.height}",
            "-r",
            str(info.fps),
            "-i",
            "-",
            "-c:v",
            "libx264",
            "-crf",
            "12",
            "-preset",
            "fast",
            "-pix_fmt",
            "yuv444p",
            str(dst),
        ],
        stdin=subprocess.PIPE,
    )
    blurred = []
    with contextlib.closing(iter_frames(info)) as frames:
        for i, f in enumerate(frames):
            if rng.random() < SHARE:
                k, _ = _kernel(rng, face)
                f = cv2.filter2D(f, -1, k, borderType=cv2.BORDER_REFLECT)
                blurred.append(i)
            enc.stdin.write(np.ascontiguousarray(f).tobytes())
    enc.stdin.close()
    if enc.wait() != 0:
        sys.exit(f"encoding {dst} failed")
    return blurred


def _scores(flags: np.ndarray, truth: np.ndarray) -> dict:
    tp = int((flags & truth).sum())
    p = tp / max(int(flags.sum()), 1)
    r = tp / max(int(truth.sum()), 1)
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(2 * p * r / max(p + r, 1e-9), 3)}


def _face_size(landmarks: Path) -> float:
    """The clip's median face size: the larger side of the usable fits' 68-point extent."""
    t = pq.read_table(landmarks, columns=["landmarks", "reason"]).to_pylist()
    sizes = [float(np.ptp(np.asarray(r["landmarks"]), axis=0).max()) for r in t if r["reason"] == "ok"]
    return float(np.median(sizes))


def _simulate(videos: Path, out: Path) -> list[dict]:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "mf2",
            "simulate",
            "--videos",
            str(videos),
            "--out",
            str(out),
            "--workers",
            "0",
            "--no-contact-sheet",
            "--L",
            "7",
        ],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        sys.exit(res.stderr)
    return pq.read_table(out / "pairs.parquet").to_pylist()


def shot_ratio(rows: list[dict], values: list[float]) -> np.ndarray:
    """Each value over the median of its whole shot's targets (the alternative reference)."""
    v = np.asarray(values, np.float64)
    out = np.ones(len(v))
    groups: dict = {}
    for i, r in enumerate(rows):
        groups.setdefault((r["video_id"], r["shot"], r["face_id"]), []).append(i)
    for idx in groups.values():
        med = float(np.median(v[idx]))
        out[idx] = v[idx] / med if med > 0 else 1.0
    return out


def _ratios(rows: list[dict], values: list[float]) -> dict[str, np.ndarray]:
    """``local``: mf2's own (the neighbours either side in the shot); ``shot``: the whole shot."""
    from mf2.blur.measures import ranks

    groups = [(r["video_id"], r["shot"], r["face_id"]) for r in rows]
    return {"shot": shot_ratio(rows, values), "local": ranks(groups, values, [r["center_frame"] for r in rows])[1]}


def _values(rows: list[dict], ds: Path) -> dict[str, list[float]]:
    """The stored measure and the two it was compared with, from the targets' PNGs."""
    from mf2.blur.measures import gradient_energy, laplacian_variance

    imgs = [cv2.imread(str(ds / r["sharp_path"]))[..., ::-1] for r in rows]
    return {
        "target_sharpness (LoG)": [r["target_sharpness"] for r in rows],
        "laplacian_variance": [laplacian_variance(im) for im in imgs],
        "gradient_energy": [gradient_energy(im) for im in imgs],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=Path, default=HERE.parents[1] / "shared" / "data" / "videos")
    ap.add_argument("--clips", nargs="*", default=list(CLIPS))
    ap.add_argument("--out", type=Path, default=None, help="keep the built clips and datasets here")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    root = args.out or Path(tempfile.mkdtemp(prefix="mf2-ts-"))
    for d in ("in", "orig"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for c in args.clips:
        if not (root / "orig" / c).exists():
            (root / "orig" / c).symlink_to((args.videos / c).resolve())
    rows0 = _simulate(root / "orig", root / "DS0")
    truth_frames, faces = {}, {}
    for c in args.clips:
        faces[c] = _face_size(root / "DS0" / "landmarks" / f"{Path(c).stem}.parquet")
        truth_frames[Path(c).stem] = set(build(args.videos / c, root / "in" / c, rng, faces[c]))
    rows = _simulate(root / "in", root / "DS")
    truth = np.array([r["center_frame"] in truth_frames[r["video_id"]] for r in rows])
    where0 = {(r["video_id"], r["center_frame"], r["face_id"]): i for i, r in enumerate(rows0)}
    back = np.array([where0.get((r["video_id"], r["center_frame"], r["face_id"]), -1) for r in rows])
    report: dict = {
        "clips": args.clips,
        "face_px": faces,
        "pairs": len(rows),
        "blurred_targets": int(truth.sum()),
        "blurred_frames": sum(len(v) for v in truth_frames.values()),
        "measures": {},
    }
    values, values0 = _values(rows, root / "DS"), _values(rows0, root / "DS0")
    for name in values:
        for ref, ratio in _ratios(rows, values[name]).items():
            ratio0 = _ratios(rows0, values0[name])[ref]
            sweep = {}
            for t in THRESHOLDS:
                natural = (back >= 0) & (ratio0[np.maximum(back, 0)] < t)
                keep = ~natural
                sweep[str(t)] = {
                    **_scores(ratio[keep] < t, truth[keep]),
                    "natural": int(natural.sum()),
                    "raw": _scores(ratio < t, truth),
                }
            best = max(sweep, key=lambda t: sweep[t]["f1"])
            report["measures"][f"{name}/{ref}"] = {"best_threshold": float(best), **sweep[best], "sweep": sweep}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
