"""Moving and small faces with a known motion (issue 34's evidence; bench/tracks.py runs it
with ``--moving``): shared clips moved by a per-frame similarity transform, and one shrunk
into a large frame, tracked by mf2's landmark stage.

Motions, at the speeds hand-held footage shows: ``pan`` (a sinusoidal path, up to ~6 px per
frame), ``zoom`` (1.0 -> 1.45 -> 1.0 over the clip), ``rotate`` (+-15 degrees), ``shake`` (all
three, faster), ``small`` (the clip at a quarter size, drifting inside a 1280x720 frame).
The truth: the original clip's landmarks (dlib, every frame: tests/footage.py) moved by the
same transform. Reported per video: the share of frames kept (``ok`` rows over frames whose
true face is inside the picture), the fitted extent's scale error and the centre error in
face sizes (p50/p95, ``ok`` rows whose true face is wholly inside), and PrAvg 7 windows whose crop is more than 1.5x the true
face's crop (target 0).
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import cv2
import numpy as np

from mf2.blur.windows import plan_pravg
from mf2.faces.select import LandmarkConfig
from mf2.faces.stage import compute_landmarks
from mf2.schema import landmarks_to_numpy
from mf2.video import iter_frames, probe

MOTIONS = ("pan", "zoom", "rotate", "shake", "small")


def transform(kind: str, t: int, n: int, w: int, h: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The 2x3 similarity for frame t and the output size."""
    ph = 2 * math.pi * t / max(n, 1)
    ang, s, dx, dy, size = 0.0, 1.0, 0.0, 0.0, (w, h)
    if kind == "pan":
        dx, dy = 0.12 * w * math.sin(2 * ph), 0.06 * h * math.sin(3 * ph)
    elif kind == "zoom":
        s = 1.0 + 0.45 * (1 - math.cos(ph)) / 2
    elif kind == "rotate":
        ang = 15.0 * math.sin(2 * ph)
    elif kind == "shake":
        ang, s = 8.0 * math.sin(5 * ph), 1.0 + 0.2 * math.sin(3 * ph)
        dx, dy = 0.08 * w * math.sin(7 * ph), 0.05 * h * math.cos(6 * ph)
    elif kind == "small":
        size = (1280, 720)
        s = 0.25 * 720 / h
        dx, dy = 640 - w / 2 + 300 * math.sin(ph), 360 - h / 2 + 120 * math.sin(2 * ph)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), ang, s)
    if kind == "small":
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, s)
    m[:, 2] += (dx, dy)
    return m, size


def build(src: Path, kind: str, dest: Path) -> list[np.ndarray]:
    """Writes the moved clip (x264, crf 18) and returns the per-frame transforms."""
    info = probe(src)
    n, w, h = info.n_frames, info.width, info.height
    size = transform(kind, 0, n, w, h)[1]
    cmd = [
        "ffmpeg",
        "-y",
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{size[0]}x{size[1]}",
        "-r",
        str(info.fps),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-crf",
        "18",
        "-pix_fmt",
        "yuv420p",
        str(dest),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    mats = []
    for t, frame in enumerate(iter_frames(src)):
        m, size = transform(kind, t, n, w, h)
        mats.append(m)
        proc.stdin.write(
            cv2.warpAffine(frame, m, size, flags=cv2.INTER_AREA if kind == "small" else cv2.INTER_LINEAR).tobytes()
        )
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed on {dest}")
    return mats


def score(path: Path, mats: list[np.ndarray], ref: np.ndarray, margin: float = 0.25) -> dict:
    info = probe(path)
    table = compute_landmarks(path.stem, info, LandmarkConfig(backend="dlib"))
    lms, _ = landmarks_to_numpy(table["landmarks"])
    d = table.to_pydict()
    n = min(len(mats), len(ref))
    truth = np.full((n, 68, 2), np.nan, np.float32)
    for t in range(n):
        if np.isfinite(ref[t]).all():
            truth[t] = ref[t] @ mats[t][:, :2].T + mats[t][:, 2]
    inside = np.array(
        [
            np.isfinite(truth[t]).all()
            and (truth[t] >= 0).all()
            and (truth[t][:, 0] < info.width).all()
            and (truth[t][:, 1] < info.height).all()
            for t in range(n)
        ]
    )
    per_frame = np.full((n, 68, 2), np.nan, np.float32)
    valid = np.zeros(n, bool)
    scale_err, centre_err = [], []
    for i, (f, r) in enumerate(zip(d["frame"], d["reason"])):
        if r != "ok" or f >= n or not inside[f]:  # a face partly off the picture has no whole extent
            continue
        te, fe = np.ptp(truth[f], axis=0).max(), np.ptp(lms[i], axis=0).max()
        # one face per clip: the row nearest the truth is the face's
        cerr = float(np.hypot(*((lms[i].min(0) + lms[i].max(0)) / 2 - (truth[f].min(0) + truth[f].max(0)) / 2))) / te
        if valid[f] and cerr >= centre_err[-1]:
            continue
        valid[f], per_frame[f] = True, lms[i]
        scale_err.append(abs(fe / te - 1))
        centre_err.append(cerr)
    windows, _ = plan_pravg(per_frame, valid, np.zeros(n, bool), 7, margin=margin)
    big = sum(1 for w in windows if w.crop.size > 1.5 * np.ptp(truth[w.center], axis=0).max() * (1 + 2 * margin))

    def q(xs, p):
        return round(float(np.percentile(xs, p)), 3) if xs else None

    return {
        "frames": n,
        "face_inside": int(inside.sum()),
        "kept": round(float((valid & inside).sum()) / max(1, inside.sum()), 3),
        "scale_err_p50": q(scale_err, 50),
        "scale_err_p95": q(scale_err, 95),
        "centre_err_p50": q(centre_err, 50),
        "centre_err_p95": q(centre_err, 95),
        "windows": len(windows),
        "crops_over_1_5x": big,
    }


def run(videos: Path, work: Path, refs, clips: list[str]) -> dict:
    """``refs(clip)``: the original clip's per-frame landmarks."""
    work.mkdir(parents=True, exist_ok=True)
    out: dict = {"videos": {}}
    for clip in clips:
        ref = refs(clip)
        for kind in MOTIONS:
            dest = work / f"{Path(clip).stem}-{kind}.mp4"
            mats = build(videos / clip, kind, dest)
            out["videos"][dest.stem] = score(dest, mats, ref)
    rows = list(out["videos"].values())
    se = [r["scale_err_p95"] for r in rows if r["scale_err_p95"] is not None]
    out["worst_scale_err_p95"] = max(se) if se else None
    out["crops_over_1_5x"] = sum(r["crops_over_1_5x"] for r in rows)
    out["kept_mean"] = round(float(np.mean([r["kept"] for r in rows])), 3)
    return out
