"""The paper's claim at small scale: which training blur restores unseen faces best?

Builds training pairs (VLA both directions, PrAvg 7 with overlapping windows, synthetic
kernels) from one group of the shared clips and test pairs (PrAvg 7 with windows that do not
overlap, VLA forward, synthetic) from another group, so no video and no person is on both
sides. Trains the ``small`` preset on each training blur with the same step budget (the
hourglass, then the two-pathway cGAN on the same pairs), and the paper's recipe (hourglass on
synthetic, cGAN on VLA). Scores every model and stage on every test blur with `mf2 evaluate`'s
code: PSNR, SSIM, landmark NME/AUC (dlib) and identity cosine. Prints one JSON table and writes
it as a PNG (``--png``).

One run on a 2-core CPU takes about 55 minutes with the defaults; ``--work DIR`` keeps the
pairs and the runs, so a second run reuses what is there.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from mf2 import __version__

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
# Split by video and person: no clip (and, as far as the sources tell, no person) on both sides.
TRAIN_CLIPS = ("lp_d0", "lp_d3", "lp_d6_first20s", "lp_d9", "lp_d11", "lp_d13", "sadtalker_RD_Radio2_000",
               "sadtalker_WDA_KatieHill_000", "ffpp_youtube_519", "fomm_04", "retalking_face_3")
TEST_CLIPS = ("lp_d18", "lp_d19", "lp_d20", "sadtalker_WDA_AlexandriaOcasioCortez_000", "ffpp_youtube_634",
              "fomm_10", "retalking_face_4", "tpsmm_driving", "sbr_demo", "mead_W040_level_3_happy_029_720p")
TRAIN_BLURS = ("vla", "pravg7", "synthetic")
TEST_BLURS = ("pravg7", "vla", "synthetic")


def _configs(size: int, side: str) -> dict:
    """The simulate settings of each blur on one side; test windows of PrAvg do not overlap."""
    from mf2.blur.kernels import SyntheticConfig
    from mf2.blur.vla import VlaConfig
    from mf2.simulate import SimulateConfig

    base = SimulateConfig(out_size=size)
    kernel = max(3, (31 * size // 256) | 1)  # the default 31 px kernel at 256, scaled with the crop
    train = side == "train"
    return {
        "vla": replace(base, mode="vla", vla=replace(VlaConfig(), direction="both" if train else "forward")),
        "pravg7": replace(base, mode="pravg", L=7, stride=2 if train else 7),
        "synthetic": replace(base, mode="synthetic", stride=2 if train else 7,
                             synthetic=replace(SyntheticConfig(), kernel_size=kernel, seed=0 if train else 1)),
    }


def build_pairs(videos: Path, work: Path, size: int) -> dict:
    """Both sides' datasets (resumable: an existing folder is reused)."""
    from mf2.pipeline.execute import Job, run_jobs
    from mf2.pipeline.runner import SyncRunner
    from mf2.sources import VideoSource

    out: dict = {}
    for side, clips in (("train", TRAIN_CLIPS), ("test", TEST_CLIPS)):
        sources = [VideoSource(c, videos / f"{c}.mp4") for c in clips]
        missing = [str(s.path) for s in sources if not s.path.is_file()]
        if missing:
            raise SystemExit(f"bench/restore.py: missing clips: {', '.join(missing)}")
        jobs = [Job(name, cfg, work / side / name) for name, cfg in _configs(size, side).items()]
        t = time.perf_counter()
        res = run_jobs(sources, jobs, work / side / "cache", SyncRunner(), show_progress=False)
        out[side] = {"seconds": round(time.perf_counter() - t, 1),
                     **{name: {"pairs": r.n_pairs, "videos_ok": r.n_ok, "path": str(work / side / name)}
                        for name, r in res.items()}}
    return out


def train_models(work: Path, hg_steps: int, cgan_steps: int, device: str) -> dict:
    """``small`` on each training blur with one step budget, then the paper's recipe: the
    synthetic run's hourglass (the same training, so its checkpoint is reused) and a cGAN on VLA."""
    import shutil

    from mf2.train.config import load_config
    from mf2.train.trainer import train

    cfg = load_config("small", {"hg_stage": {"max_steps": hg_steps}, "cgan_stage": {"max_steps": cgan_steps}})
    runs: dict = {}
    for blur in TRAIN_BLURS:
        t = time.perf_counter()
        res = train([str(work / "train" / blur)], work / "runs" / blur, cfg, device=device, show_progress=False)
        runs[blur] = _run_record(work / "runs" / blur, res, time.perf_counter() - t)
    paper = work / "runs" / "paper-recipe"
    (paper / "checkpoints").mkdir(parents=True, exist_ok=True)
    hg = paper / "checkpoints" / "hg_last.pt"
    if not hg.exists():
        shutil.copy2(work / "runs" / "synthetic" / "checkpoints" / "hg_last.pt", hg)
    t = time.perf_counter()
    res = train([str(work / "train" / "vla")], paper, cfg, device=device, show_progress=False,
                hg_manifests=[str(work / "train" / "synthetic")])
    runs["paper-recipe"] = _run_record(paper, res, time.perf_counter() - t)
    return runs


def _run_record(run: Path, results: dict, seconds: float) -> dict:
    """Steps, speed and the validation curve (PSNR per epoch) of each stage."""
    import csv

    curves: dict = {}
    with open(run / "metrics.csv") as f:
        for r in csv.DictReader(f):
            if r["kind"] == "val" and r["name"] == "psnr":
                curves.setdefault(r["stage"], []).append([int(r["step"]), round(float(r["value"]), 3)])
    return {"seconds": round(seconds, 1), "model": str(run / "model.pt"),
            "stages": {k: {"steps": v.steps, "images_per_s": round(v.images_per_s, 2)} for k, v in results.items()},
            "val_psnr_curve": curves}


def evaluate_models(work: Path, runs: dict, limit: int) -> dict:
    """Every model (the cGAN and, where it is its own, the hourglass alone) on every test blur."""
    from mf2.evaluate.methods import Method
    from mf2.evaluate.run import EvaluateConfig, evaluate, to_json

    methods = [Method("Blurred", "blurred"), Method("Oracle", "oracle")]
    for name in runs:
        model = Path(runs[name]["model"])
        if name != "paper-recipe":  # its hourglass is the synthetic run's
            methods.append(Method(f"{name}-HG", "checkpoint", model, "hg"))
        methods.append(Method(name, "checkpoint", model))
    ev = evaluate([work / "test" / b for b in TEST_BLURS], methods, EvaluateConfig(limit=limit))
    out = to_json(ev)
    out["by_blur"] = by_blur(ev.scores)
    return out


# A test pair whose blurry image is within this PSNR of its sharp target barely moved: a model
# can only hurt it. The split is a property of the pair, the same for every method.
STATIC_DB = 38.0


def by_blur(scores) -> dict:
    """setting -> method -> mean PSNR gain over Blurred on the pairs that moved (Blurred below
    STATIC_DB) and on those that barely did: the mean over all pairs hides a model that
    restores moving faces and damages still ones, or the other way round."""
    import numpy as np

    blurred = {(s.setting, s.pair_id): s.psnr for s in scores if s.method == "Blurred"}
    out: dict = {}
    for s in scores:
        b = blurred.get((s.setting, s.pair_id))
        if s.method in ("Blurred", "Oracle") or b is None or not np.isfinite(b) or not np.isfinite(s.psnr):
            continue
        group = "moving" if b < STATIC_DB else "static"
        out.setdefault(s.setting, {}).setdefault(s.method, {}).setdefault(group, []).append(s.psnr - b)
    return {st: {m: {g: {"n": len(v), "d_psnr": round(float(np.mean(v)), 3)} for g, v in sorted(gs.items())}
                 for m, gs in ms.items()} for st, ms in out.items()}


def table(ev: dict) -> dict:
    """method -> setting -> the cells the issue asks for."""
    out: dict = {}
    for a in ev["results"]:
        out.setdefault(a["method"], {})[a["setting"]] = {
            "psnr": _r(a["psnr"], 2), "ssim": _r(a["ssim"], 4), "nme": _r(a["nme_mean"], 4), "auc": _r(a["auc"], 3),
            "failure_pct": _r(a["failure_rate"], 1), "identity_cos": _r(a["identity_cos_mean"], 4)}
    return out


def _r(v, n: int):
    return round(v, n) if isinstance(v, float) else v


def targets(tab: dict, settings: list[str]) -> dict:
    """The issue's targets on each setting for each model: >= +1 dB PSNR over Blurred, higher
    SSIM, and a landmark NME at least 25 % of the way from Blurred's to the Oracle's."""
    out: dict = {}
    for m, row in tab.items():
        if m in ("Blurred", "Oracle"):
            continue
        for s in settings:
            b, o, x = tab["Blurred"][s], tab["Oracle"][s], row[s]
            gap = b["nme"] - o["nme"]
            closer = (b["nme"] - x["nme"]) / gap if gap > 0 else float("nan")
            out.setdefault(m, {})[s] = {
                "d_psnr": round(x["psnr"] - b["psnr"], 2), "d_ssim": round(x["ssim"] - b["ssim"], 4),
                "nme_closer": round(closer, 3),
                "met": bool(x["psnr"] - b["psnr"] >= 1.0 and x["ssim"] > b["ssim"] and closer >= 0.25)}
    return out


def draw_table(tab: dict, settings: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def f(v, fmt: str) -> str:  # the Oracle's PSNR is "inf"
        return format(v, fmt) if isinstance(v, (int, float)) else str(v)

    rows = list(tab)
    cells = [[f"{f(tab[m][s]['psnr'], '.2f')} dB / {f(tab[m][s]['ssim'], '.3f')} / {f(tab[m][s]['nme'], '.4f')} / "
              f"{f(tab[m][s]['identity_cos'], '.3f')}" for s in settings] for m in rows]
    fig, ax = plt.subplots(figsize=(4 + 3.6 * len(settings), 0.9 + 0.34 * len(rows)))
    ax.axis("off")
    t = ax.table(cellText=cells, rowLabels=rows, colLabels=settings, loc="center", cellLoc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    t.scale(1, 1.3)
    ax.set_title("PSNR / SSIM / landmark NME / identity cosine, on videos no model trained on", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def sample_grid(work: Path, runs: dict, path: Path, per_setting: int = 2) -> None:
    """Test pairs, columns labelled: blurry | each model's hourglass and cGAN | sharp: per test
    blur, the pairs with the most blur and the one with the least (where a model can only hurt)."""
    import cv2
    import numpy as np
    import pyarrow.parquet as pq

    from mf2.quality import psnr
    from mf2.train.deblur import Deblurrer

    models = {}
    for name, r in runs.items():
        if name != "paper-recipe":  # its hourglass is the synthetic run's
            models[f"{name}-HG"] = Deblurrer(r["model"], "cpu", stage="hg")
        models[name] = Deblurrer(r["model"], "cpu")
    lines = []
    for blur in TEST_BLURS:
        ds = work / "test" / blur
        rows = pq.read_table(ds / "pairs.parquet", columns=["blurry_path", "sharp_path"]).to_pylist()
        imgs = [(cv2.imread(str(ds / r["blurry_path"]))[..., ::-1], cv2.imread(str(ds / r["sharp_path"]))[..., ::-1])
                for r in rows[:: max(1, len(rows) // 40)]]
        imgs.sort(key=lambda bs: psnr(bs[0], bs[1]))
        for b, s in imgs[:per_setting] + imgs[-1:]:
            lines.append(np.concatenate([b] + [models[n]([b])[0] for n in models] + [s], axis=1))
    labels = ["blurry"] + list(models) + ["sharp"]
    w = lines[0].shape[0]
    head = np.full((22, w * len(labels), 3), 255, np.uint8)
    for i, name in enumerate(labels):
        cv2.putText(head, name, (i * w + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    grid = np.concatenate([head] + lines, axis=0)
    cv2.imwrite(str(path), grid[..., ::-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=Path, default=SHARED)
    ap.add_argument("--work", type=Path, default=None, help="keep pairs and runs here (default: a temporary folder)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--only-build", action="store_true", help="build the pairs and stop")
    ap.add_argument("--hg-steps", type=int, default=1200)
    ap.add_argument("--cgan-steps", type=int, default=300)
    ap.add_argument("--limit", type=int, default=100, help="test pairs per blur, evenly spaced (0: all)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--png", type=Path, default=None, help="write the table here as a PNG (and a sample grid "
                                                            "beside it)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.work or Path(tmp)).resolve()
        report: dict = {"bench": "restore", "mf2": __version__, "python": platform.python_version()}
        report["data"] = build_pairs(args.videos, work, args.size)
        if not args.only_build:
            report["runs"] = train_models(work, args.hg_steps, args.cgan_steps, args.device)
            ev = evaluate_models(work, report["runs"], args.limit)
            settings = ev["settings"]
            report["n_test_pairs"] = ev["n_pairs"]
            report["table"] = table(ev)
            report["targets"] = targets(report["table"], [s for s in settings if not s.startswith("Synthetic")])
            report["d_psnr_by_blur"] = {"static_db": STATIC_DB, **ev["by_blur"]}
            report["evaluate_seconds"] = ev["seconds"]
        report["seconds"] = round(time.perf_counter() - t0, 1)
        json.dump(report, sys.stdout, indent=2)  # first: a drawing error must not cost the numbers
        print(flush=True)
        if args.png and not args.only_build:
            draw_table(report["table"], settings, args.png)
            sample_grid(work, report["runs"], args.png.with_name(args.png.stem + "_samples.png"))


if __name__ == "__main__":
    main()
