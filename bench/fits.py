"""Are the tracker's ``ok`` fits faces? Issue 34's check on real clips, before and after.

For every clip (default: the shared corpus clips with the most motion and the smallest
faces, named below) the landmark stage runs as ``mf2 simulate`` runs it, and each ``ok`` fit
is checked, as issue 34 asked, for an extent aspect outside 0.5-2 and a size outside
0.67-1.5x its track's median size; the Procrustes residual to the mean face
(mf2.faces.shape) is summarised too. Prints JSON: per clip and in total, the ``ok`` fits,
the flags, the residual's percentiles, the rows lost for each reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from mf2.faces.dlib_backend import DlibBackend
from mf2.faces.select import LandmarkConfig
from mf2.faces.shape import extent_aspect, procrustes_residual
from mf2.faces.stage import compute_landmarks
from mf2.schema import landmarks_to_numpy
from mf2.video import probe

# the corpus clips with the largest p95 flow (PROVENANCE.md) and the smallest faces
DEFAULT_CLIPS = (
    "ghost_nggyup",
    "hellomeme_jue",
    "styletalk_style_furious_talk2_clip7",
    "liax_driving4",
    "hellomeme_xzy3",
    "hellomeme_jgz",
    "latentsync_demo3",
    "liax_driving7",
    "liveportrait_s29",
    "styletalk_style_furious_talk1_clip2",
    "pcavs_audiosource_681100216",
    "lia_vox_obama",
)


def check(table) -> dict:
    lms, _ = landmarks_to_numpy(table["landmarks"])
    d = table.to_pydict()
    ok = [i for i, r in enumerate(d["reason"]) if r == "ok"]
    sizes = {i: float(np.ptp(lms[i], axis=0).max()) for i in ok}
    by_track: dict = {}
    for i in ok:
        by_track.setdefault(d["track"][i], []).append(sizes[i])
    med = {t: float(np.median(v)) for t, v in by_track.items()}
    aspect = [i for i in ok if not 0.5 <= extent_aspect(lms[i]) <= 2.0]
    size = [i for i in ok if not 0.67 <= sizes[i] / med[d["track"][i]] <= 1.5]
    res = np.array([procrustes_residual(lms[i]) for i in ok]) if ok else np.zeros(0)
    return {
        "rows": len(d["reason"]),
        "ok": len(ok),
        "tracks": len(by_track),
        "flag_aspect": len(aspect),
        "flag_size": len(size),
        "flagged": len(set(aspect) | set(size)),
        "residual_p50_p95_p99_max": [round(float(np.percentile(res, q)), 3) for q in (50, 95, 99, 100)] if ok else None,
        "residual_over_0.4": int((res > 0.4).sum()),
        "residual_flagged_min_p50": (
            [round(float(np.min(res[fl])), 3), round(float(np.median(res[fl])), 3)]
            if (fl := np.isin(ok, aspect + size)).any()
            else None
        ),
        "residual_unflagged_p99_max": (
            [round(float(np.percentile(res[~fl], 99)), 3), round(float(res[~fl].max()), 3)] if (~fl).any() else None
        ),
        "lost": dict(Counter(r for r in d["reason"] if r not in ("ok",))),
        "frames": max(d["frame"]) + 1 if d["frame"] else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", type=Path, default=HERE.parents[1] / "shared" / "data" / "corpus")
    ap.add_argument("--clips", nargs="*", default=list(DEFAULT_CLIPS), help="clip names (stems) in --corpus")
    ap.add_argument("--all", action="store_true", help="every clip of --corpus")
    args = ap.parse_args()
    backend = DlibBackend()
    report: dict = {"clips": {}}
    t0 = time.perf_counter()
    for name in sorted(p.stem for p in args.corpus.glob("*.mp4")) if args.all else args.clips:
        path = args.corpus / f"{name}.mp4"
        report["clips"][name] = check(compute_landmarks(name, probe(path), LandmarkConfig(backend="dlib"), backend))
    tot = Counter()
    for v in report["clips"].values():
        tot.update({k: v[k] for k in ("ok", "flag_aspect", "flag_size", "flagged", "residual_over_0.4")})
    report["total"] = dict(tot)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
