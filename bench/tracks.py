"""Face tracks on the constructed YouTube-like videos (tests/footage.py): how honest, how fast.

Prints JSON. Per video and in total, for the tracker of mf2.faces and for the tracker as it
was before issue 13 (bench/legacy_track.py), in one run:

- cut recall / precision: shot boundaries found within +-1 frame of a hard cut, or inside a
  fade or a dissolve (legacy: the frames its MAD cut test fired on);
- track purity: share of a track's usable frames whose landmarks lie on the ground-truth
  face the track mostly follows (error < 0.1 of the face's extent);
- lost precision / recall: frames with no usable face against frames where every
  ground-truth face is gone (mostly off the picture or faded out); precision counts only
  frames whose truth is clear (a whole, plain face or none);
- frames/s of the landmark stage (decode + shots + tracking), median of ``--repeats``, and
  the ratio new / legacy; the same on plain single-shot shared clips (``plain``: every
  ``--plain-step``-th clip of ``--videos``), where both trackers follow one face;
- the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE)]

import footage as ft  # noqa: E402
import legacy_track  # noqa: E402

from mf2 import __version__  # noqa: E402
from mf2.faces.dlib_backend import DlibBackend  # noqa: E402
from mf2.faces.select import LandmarkConfig  # noqa: E402
from mf2.faces.stage import compute_landmarks  # noqa: E402
from mf2.schema import landmarks_to_numpy  # noqa: E402
from mf2.video import DuplicateDetector, iter_frames, probe  # noqa: E402


def run_new(path: Path, backend) -> tuple[dict, float]:
    t = time.perf_counter()
    table = compute_landmarks(path.stem, probe(path), LandmarkConfig(backend="dlib"), backend)
    dt = time.perf_counter() - t
    lms, has = landmarks_to_numpy(table["landmarks"])
    d = table.to_pydict()
    md = table.schema.metadata or {}
    cuts = [int(x) for x in md.get(b"mf2.shots", b"").decode().split(",") if x]
    rows = [(f, tr, lms[i]) for i, (f, tr, r) in enumerate(zip(d["frame"], d["track"], d["reason"])) if r == "ok"]
    return {"cuts": cuts, "rows": rows}, dt


def run_legacy(path: Path, backend) -> tuple[dict, float]:
    cfg = legacy_track.LandmarkConfig()
    t = time.perf_counter()
    dup = DuplicateDetector(cfg.duplicate_threshold)
    mads: list[float] = []

    def frames():
        for i, f in enumerate(iter_frames(path)):
            is_dup, mad = dup(f)
            mads.append(mad)
            yield i, f, is_dup, mad

    res = list(legacy_track.FaceTracker(backend, cfg).run(frames()))
    dt = time.perf_counter() - t
    rows, track, prev = [], 0, None
    for r in res:
        if r.landmarks is not None and (
            prev is None
            or prev.landmarks is None
            or (r.source == "detect" and r.frame and mads[r.frame] >= cfg.cut_mad)
        ):
            track += 1
        if r.landmarks is not None:
            rows.append((r.frame, track, r.landmarks))
        prev = r
    cuts = [i for i, m in enumerate(mads) if np.isfinite(m) and m >= cfg.cut_mad]
    return {"cuts": cuts, "rows": rows}, dt


def score(fo: ft.Footage, refs: dict, out: dict) -> dict:
    truth_cuts = fo.cuts
    found = out["cuts"]

    def real(c: int) -> bool:
        return any(abs(c - t) <= 1 for t in truth_cuts) or any(a - 1 <= c <= b + 1 for a, b in fo.transitions)

    events = truth_cuts + [a for a, _ in fo.transitions]
    recall_hits = sum(1 for c in truth_cuts if any(abs(c - f) <= 1 for f in found)) + sum(
        1 for a, b in fo.transitions if any(a - 1 <= f <= b + 1 for f in found)
    )
    per_track: dict = {}
    usable = set()
    for f, tr, lm in out["rows"]:
        usable.add(f)
        best, err = None, np.inf
        for face in ft.faces_at(fo, f, refs):
            e = float(np.linalg.norm(lm - face.landmarks, axis=1).mean()) / float(np.ptp(face.landmarks, axis=0).max())
            if e < err:
                best, err = face.key, e
        per_track.setdefault(tr, []).append(best if err < 0.1 else None)
    pure = sum(
        Counter(v).most_common(1)[0][1] if Counter(v).most_common(1)[0][0] is not None else 0
        for v in per_track.values()
    )
    n_rows = sum(len(v) for v in per_track.values())
    gone, clear = set(), set()
    for t in range(fo.n_frames):
        faces = ft.faces_at(fo, t, refs)
        if all(ft.gone(x) for x in faces):
            gone.add(t)
            clear.add(t)
        elif any(x.inside == 1.0 and x.alpha == 1.0 for x in faces):
            clear.add(t)
    lost = set(range(fo.n_frames)) - usable
    return {
        "cut_recall": round(recall_hits / len(events), 3) if events else None,
        "cut_precision": round(sum(map(real, found)) / len(found), 3) if found else None,
        "n_cuts_found": len(found),
        "track_purity": round(pure / n_rows, 4) if n_rows else None,
        "tracks": len(per_track),
        "lost_precision": round(len(lost & gone) / len(lost & clear), 3) if lost & clear else None,
        "lost_recall": round(len(lost & gone) / len(gone), 3) if gone else None,
        "usable_frames": len(usable),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=Path, default=HERE.parents[1] / "shared" / "data" / "videos")
    ap.add_argument("--work", type=Path, default=None, help="where the constructed videos are kept (default: temp)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--plain-step", type=int, default=3, help="time every N-th shared clip too (0: none)")
    ap.add_argument(
        "--moving",
        nargs="*",
        default=None,
        metavar="CLIP",
        help="only issue 34's moving and small faces (bench/moving_faces.py) on these shared clips (default: three)",
    )
    args = ap.parse_args()
    if args.moving is not None:
        import moving_faces

        work = args.work or Path(tempfile.mkdtemp(prefix="mf2-moving-"))
        clips = args.moving or ["retalking_face_3.mp4", "sbr_demo.mp4", "fomm_10.mp4"]
        print(
            json.dumps(
                moving_faces.run(
                    args.videos, work / "moving", lambda c: ft.reference_landmarks(args.videos, c, work / "refs"), clips
                ),
                indent=2,
            )
        )
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="mf2-tracks-"))
    foot = ft.build(args.videos, work / "in")
    clips = {layer["clip"] for f in foot.values() for frame in f.layers for layer in frame}
    refs = {c: ft.reference_landmarks(args.videos, c, work / "refs") for c in clips}
    backend = DlibBackend()
    report: dict = {
        "mf2": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "repeats": args.repeats,
        "videos": {},
    }
    totals = {"new": [0.0, 0], "legacy": [0.0, 0]}
    for name, fo in foot.items():
        entry = {"frames": fo.n_frames}
        for label, fn in (("new", run_new), ("legacy", run_legacy)):
            times, out = [], None
            for _ in range(args.repeats):
                out, dt = fn(fo.path, backend)
                times.append(dt)
            med = statistics.median(times)
            totals[label][0] += med
            totals[label][1] += fo.n_frames
            entry[label] = {**score(fo, refs, out), "fps": round(fo.n_frames / med, 1)}
        entry["fps_ratio_new_over_legacy"] = round(entry["new"]["fps"] / entry["legacy"]["fps"], 3)
        report["videos"][name] = entry
    for label in ("new", "legacy"):
        v = report["videos"].values()

        def mean(k: str, label: str = label) -> float | None:
            xs = [e[label][k] for e in v if e[label][k] is not None]
            return round(float(np.mean(xs)), 3) if xs else None

        report[label] = {
            k: mean(k) for k in ("cut_recall", "cut_precision", "track_purity", "lost_precision", "lost_recall")
        }
        report[label]["fps"] = round(totals[label][1] / totals[label][0], 1)
    report["fps_ratio_new_over_legacy"] = round(report["new"]["fps"] / report["legacy"]["fps"], 3)
    if args.plain_step > 0:
        plain: dict = {"clips": {}}
        spent = {"new": 0.0, "legacy": 0.0}
        frames = 0
        for path in sorted(args.videos.glob("*.mp4"))[:: args.plain_step]:
            n = probe(path).n_frames
            run_new(path, backend)  # warm: the first run of a clip pays the page cache
            med = {
                label: statistics.median(fn(path, backend)[1] for _ in range(args.repeats))
                for label, fn in (("new", run_new), ("legacy", run_legacy))
            }
            plain["clips"][path.stem] = {
                "frames": n,
                **{f"{k}_fps": round(n / v, 1) for k, v in med.items()},
                "fps_ratio_new_over_legacy": round(med["legacy"] / med["new"], 3),
            }
            frames += n
            for k in spent:
                spent[k] += med[k]
        plain.update({f"{k}_fps": round(frames / v, 1) for k, v in spent.items()})
        plain["fps_ratio_new_over_legacy"] = round(spent["legacy"] / spent["new"], 3)
        report["plain"] = plain
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
