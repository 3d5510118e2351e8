"""The GPU paths, measured on one GPU machine: FAN landmarks (issue 16) and training (issue 17).

Three commands, each printing JSON:

``prepare DIR``
    Here, on a machine with ffmpeg, ffprobe and dlib's models: copies the named shared clips and
    builds tests/footage.py's harder videos (cuts, a fade and dissolve, two people side by side)
    into DIR, probes each one (a GPU machine may have ffmpeg but no ffprobe) and runs the dlib
    landmark stage on each, for the reference tracks that ``landmarks`` replays.

``landmarks DIR``
    On the GPU machine:
    - decode-only frames/s (``mf2.video.iter_frames``, the same reader as the stage);
    - FAN's forward pass alone, images/s by batch size, fp32 and bf16;
    - the landmark stage (shots, duplicates, keyframe detection, batched tracking fits) with the
      FAN backend at several batch sizes: frames/s, its ratio to decode-only, GPU utilisation,
      peak GPU memory, and where the time went (fits, detections, the rest).
    FAN's weights are random (a download is impossible there), saved to a file and loaded by
    ``FanBackend`` through its real loader. Random weights put the 68 points nowhere near a
    face, so the tracker would drop each track after one frame and the stage would measure
    detection, not tracking. ``ReplayFan`` therefore runs FAN on every (frame, box) the tracker
    asks for (crop, forward pass, heatmap decoding: the whole cost) and then hands back the dlib
    landmarks that ``prepare`` found for that face, so the tracker follows the faces it would
    follow with trained weights. The report says how closely the replayed table matches the
    reference (same frames with a face, same sources).

``train --train PAIRS --test PAIRS``
    The ``small`` and ``paper`` presets on the same pairs: a short calibration run of each
    stage, then a run of ``--budget`` seconds per stage, with images/s, GPU utilisation and peak
    memory (bf16 autocast, as the trainer uses on CUDA); the DataLoader alone, to show whether
    it limits the rate; then PSNR/SSIM of each model's hourglass and cGAN against Blurred on
    the test pairs (mf2.quality, as `mf2 evaluate` scores them), and a sample grid.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import platform
import shutil
import statistics
import sys
import threading
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "videos"
CLIPS = ("lp_d9.mp4", "ffpp_youtube_634.mp4", "lp_d3.mp4", "fomm_10.mp4")
FOOTAGE = ("cuts", "fades", "sidebyside")


# -- shared helpers ---------------------------------------------------------------------------
class GpuSampler:
    """NVML's 'GPU busy' share, sampled every ``period`` s while the block runs."""

    def __init__(self, period: float = 0.05) -> None:
        self.period, self.samples, self._stop = period, [], threading.Event()

    def __enter__(self) -> "GpuSampler":
        try:  # nvidia-ml-py; absent (or no driver) on a CPU machine, where the bench still runs
            import pynvml

            pynvml.nvmlInit()
            h = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:
            h = None

        def loop() -> None:
            while h is not None and not self._stop.wait(self.period):
                self.samples.append(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)

        self._t = threading.Thread(target=loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()

    def summary(self) -> dict:
        s = self.samples or [float("nan")]
        return {
            "gpu_util_mean": round(statistics.fmean(s), 1),
            "gpu_util_median": statistics.median(s),
            "samples": len(self.samples),
        }


def _info_from_json(d: dict, path: Path):
    from dataclasses import fields

    from mf2.video.probe import VideoInfo

    d = {f.name: d[f.name] for f in fields(VideoInfo)}
    d["fps"] = Fraction(d["fps"])
    d["sar"] = Fraction(d["sar"].replace(":", "/"))
    d["path"] = str(path)
    return VideoInfo(**d)


# -- prepare (here) ---------------------------------------------------------------------------
def cmd_prepare(out: Path, videos: Path) -> dict:
    from mf2.faces.select import LandmarkConfig
    from mf2.faces.stage import compute_landmarks
    from mf2.video import probe

    sys.path.insert(0, str(REPO / "tests"))
    import footage  # tests/footage.py: the harder videos

    clips = out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    for c in CLIPS:
        if not (clips / c).is_file():
            shutil.copy2(videos / c, clips / c)
    built = footage.build(videos, out / "footage", list(FOOTAGE))
    for name, f in built.items():
        shutil.copy2(f.path, clips / f"{name}.mp4")
    shutil.rmtree(out / "footage")
    infos, refs = {}, out / "refs"
    refs.mkdir(exist_ok=True)
    for p in sorted(clips.glob("*.mp4")):
        info = probe(p)
        infos[p.name] = info.to_json()
        t = time.perf_counter()
        table = compute_landmarks(p.stem, info, LandmarkConfig(backend="dlib"))
        _save_reference(table, refs / f"{p.stem}.npz")
        infos[p.name]["dlib_stage_fps"] = round(info.n_frames / (time.perf_counter() - t), 1)
    (out / "infos.json").write_text(json.dumps(infos, indent=1))
    return {
        "clips": {
            k: {"frames": v["n_frames"], "size": [v["width"], v["height"]], "dlib_stage_fps_here": v["dlib_stage_fps"]}
            for k, v in infos.items()
        }
    }


# -- landmarks (GPU) --------------------------------------------------------------------------
def _frame_key(image: np.ndarray) -> bytes:
    return np.ascontiguousarray(image[::17, ::13]).tobytes()


class ReplayFan:
    """FanBackend's full work per fit, then the reference landmarks of the same face."""

    name = "fan"

    def __init__(self, fan, ref_rows: dict[int, list[np.ndarray]], keys: dict[bytes, int]) -> None:
        self.fan, self.ref, self.keys = fan, ref_rows, keys
        self.batch_size = fan.batch_size
        self.fit_s = self.detect_s = 0.0
        self.fit_calls = self.fit_items = self.detect_calls = 0

    def detect(self, image, min_face=None):
        t = time.perf_counter()
        out = self.fan.detect(image, min_face)
        self.detect_s += time.perf_counter() - t
        self.detect_calls += 1
        return out

    def fit(self, images, boxes):
        from mf2.faces.base import iou, landmark_box

        t = time.perf_counter()
        out = self.fan.fit(images, boxes)  # the real cost
        self.fit_s += time.perf_counter() - t
        self.fit_calls += 1
        self.fit_items += len(images)
        replayed = []
        for (lm, score), image, box in zip(out, images, boxes):
            cands = self.ref.get(self.keys.get(_frame_key(image), -1), [])
            best = max(cands, key=lambda c: iou(landmark_box(c), box), default=None)
            if best is not None and iou(landmark_box(best), box) > 0.3:
                lm = best
            replayed.append((lm, score))
        return replayed


def _save_reference(table, path: Path) -> None:
    """The dlib table as plain arrays: pyarrow before 26 cannot read a Parquet column of
    fixed-size lists with nulls (apache/arrow#35692), and the GPU machine may have one."""
    from mf2.schema import landmarks_to_numpy

    lms, valid = landmarks_to_numpy(table.column("landmarks"))
    np.savez_compressed(
        path,
        frame=np.asarray(table.column("frame").to_pylist()),
        landmarks=lms,
        valid=valid,
        source=np.asarray(table.column("source").to_pylist()),
        reason=np.asarray(table.column("reason").to_pylist()),
    )


def _reference(path: Path) -> dict[int, list[np.ndarray]]:
    z = np.load(path)
    out: dict[int, list[np.ndarray]] = {}
    for f, lm, ok in zip(z["frame"], z["landmarks"], z["valid"]):
        if ok:
            out.setdefault(int(f), []).append(lm)
    return out


def _decode_fps(infos: list, repeats: int = 3) -> tuple[float, dict]:
    from mf2.video import iter_frames

    runs, keys = [], {}
    for r in range(repeats):
        frames, t = 0, time.perf_counter()
        for info in infos:
            for i, fr in enumerate(iter_frames(info)):
                frames += 1
                if r == 0:
                    keys.setdefault(Path(info.path).stem, {}).setdefault(_frame_key(fr), i)
        runs.append(frames / (time.perf_counter() - t))
    return statistics.median(runs), keys


def _dev() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _forward_rates(weights: Path, sizes: tuple[int, ...]) -> dict:
    import torch
    from face_alignment.models import FAN

    dev = _dev()
    net = FAN(4).to(dev).eval()
    net.load_state_dict(torch.load(weights, map_location=dev, weights_only=True))
    out = {}
    for dtype in ("fp32", "bf16"):
        for b in sizes:
            with torch.inference_mode(), torch.autocast(dev, torch.bfloat16, enabled=dtype == "bf16"):
                out[f"{dtype}_b{b}"] = _images_per_s(net, torch.rand(b, 3, 256, 256, device=dev))
    if dev == "cuda":
        from mf2.faces.fan_backend import GraphedForward

        graphed = GraphedForward(net, dev)
        for b in sizes:
            with torch.no_grad():
                out[f"fp32_graph_b{b}"] = _images_per_s(graphed, torch.rand(b, 3, 256, 256, device=dev))
    return out


def _images_per_s(fn, x, seconds: float = 1.0) -> float:
    """Calls of ``fn(x)`` for ``seconds`` after 3 warm-ups, synchronised at both ends."""
    for _ in range(3):
        fn(x)
    _sync()
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        fn(x)
        n += 1
    _sync()
    return round(n * x.shape[0] / (time.perf_counter() - t), 1)


def _agreement(table, ref_path: Path) -> dict:
    z = np.load(ref_path)
    ref = [
        {"frame": int(f), "source": str(s), "reason": str(r)} for f, s, r in zip(z["frame"], z["source"], z["reason"])
    ]
    got = table.select(["frame", "source", "reason"]).to_pylist()

    def faces(rows):
        return {r["frame"] for r in rows if r["reason"] == "ok"}

    a, b = faces(ref), faces(got)
    return {
        "ok_frames_ref": len(a),
        "ok_frames_fan": len(b),
        "ok_frames_both": len(a & b),
        "fits_ref": sum(r["source"] == "track" for r in ref),
        "fits_fan": sum(r["source"] == "track" for r in got),
    }


class ChipsOnly:
    """The identity embedder where dlib's face-recognition model is not installed (the GPU
    machine here): chips are made as the stage makes them, descriptors (75 ms of CPU each, a
    few per video) are counted and not computed, so face_id clustering is not measured."""

    def __init__(self) -> None:
        from mf2.faces.identity import IdentityEmbedder

        self.real, self.descriptors = IdentityEmbedder(), 0

    def chip(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.real.chip(image, landmarks)

    def embed_chip(self, chip: np.ndarray) -> np.ndarray:
        self.descriptors += 1
        return np.zeros(128)

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.embed_chip(self.chip(image, landmarks))


def _embedder():
    from mf2.errors import UsageError
    from mf2.faces.identity import shared_embedder
    from mf2.faces.models import face_recognition_resnet

    try:
        face_recognition_resnet()
    except UsageError:
        return ChipsOnly()
    return shared_embedder()


def _stage_run(infos: list, d: Path, weights: Path, keys: dict, batch: int, graphs: bool = False, barrier=None) -> dict:
    import torch

    from mf2.faces.fan_backend import FanBackend
    from mf2.faces.select import LandmarkConfig
    from mf2.faces.stage import compute_landmarks

    fan = FanBackend(weights, batch_size=batch, cuda_graphs=graphs)
    embedder = _embedder()
    warm = infos[0]  # numba's JIT, cuDNN's choices, the graphs' captures: not timed
    compute_landmarks(
        "warm",
        warm,
        LandmarkConfig(backend="fan"),
        ReplayFan(fan, _reference(d / "refs" / f"{Path(warm.path).stem}.npz"), keys[Path(warm.path).stem]),
        embedder=embedder,
    )
    if barrier is not None:
        barrier.wait()
    per, frames, fit_s, det_s, items, calls = {}, 0, 0.0, 0.0, 0, 0
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with GpuSampler() as gpu:
        t0 = time.perf_counter()
        for info in infos:
            stem = Path(info.path).stem
            rep = ReplayFan(fan, _reference(d / "refs" / f"{stem}.npz"), keys[stem])
            t = time.perf_counter()
            table = compute_landmarks(stem, info, LandmarkConfig(backend="fan"), rep, embedder=embedder)
            dt = time.perf_counter() - t
            per[stem] = {"fps": round(info.n_frames / dt, 1), **_agreement(table, d / "refs" / f"{stem}.npz")}
            frames += info.n_frames
            fit_s, det_s = fit_s + rep.fit_s, det_s + rep.detect_s
            items, calls = items + rep.fit_items, calls + rep.fit_calls
        wall = time.perf_counter() - t0
    return {
        "batch_size": batch,
        "cuda_graphs": graphs,
        "frames": frames,
        "fps": round(frames / wall, 1),
        "wall_s": round(wall, 2),
        "fit_s": round(fit_s, 2),
        "detect_s": round(det_s, 2),
        "rest_s": round(wall - fit_s - det_s, 2),
        "faces_per_fit_call": round(items / max(1, calls), 1),
        "fitted_faces_per_s": round(items / max(1e-9, fit_s), 1),
        "peak_gpu_mb": _peak_mb(),
        **gpu.summary(),
        "clips": per,
        "identity_descriptors": "computed"
        if not isinstance(embedder, ChipsOnly)
        else f"{embedder.descriptors} counted, not computed (no face-recognition model here)",
    }


def _peak_mb() -> int | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None


def _worker(args: tuple) -> dict:
    infos, d, weights, keys, batch, graphs, barrier = args
    return _stage_run(infos, d, weights, keys, batch, graphs, barrier)


def _parallel(infos: list, d: Path, weights: Path, keys: dict, batch: int, graphs: bool, n: int) -> dict:
    """``n`` processes on the one GPU, as ``n`` Dask workers with the GPU resource run them: each
    takes every clip (n videos' worth of work at once), timed from a common start after each
    one's warm-up."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # CUDA does not survive a fork
    with ctx.Manager() as m:
        barrier = m.Barrier(n)
        jobs = [(infos, d, weights, keys, batch, graphs, barrier)] * n
        with ctx.Pool(n) as pool, GpuSampler() as gpu:
            res = pool.map(_worker, jobs)
    frames = sum(r["frames"] for r in res)
    wall = max(r["wall_s"] for r in res)
    return {
        "processes": n,
        "batch_size": batch,
        "cuda_graphs": graphs,
        "frames": frames,
        "wall_s": wall,
        "fps": round(frames / wall, 1),
        **gpu.summary(),
        "per_process_fps": [r["fps"] for r in res],
        "fit_s": [r["fit_s"] for r in res],
        "detect_s": [r["detect_s"] for r in res],
        "rest_s": [r["rest_s"] for r in res],
    }


def cmd_landmarks(d: Path, runs: list[str], only: list[str], forward: tuple[int, ...]) -> dict:
    """``runs``: ``eager|graph:BATCH[xPROCESSES]`` each, e.g. ``graph:32x4``."""
    import torch
    from face_alignment.models import FAN

    torch.manual_seed(0)
    weights = d / "fan_random.pth"
    torch.save(FAN(4).state_dict(), weights)
    meta = {k: v for k, v in json.loads((d / "infos.json").read_text()).items() if not only or Path(k).stem in only}
    infos = [_info_from_json(v, d / "clips" / k) for k, v in meta.items()]
    decode, keys = _decode_fps(infos)
    report = {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "clips": {k: v["n_frames"] for k, v in meta.items()},
        "frames": sum(v["n_frames"] for v in meta.values()),
        "decode_fps": round(decode, 1),
        "fan_forward_images_per_s": _forward_rates(weights, forward),
        "stage": [],
    }
    for spec in runs:
        kind, _, rest = spec.partition(":")
        batch, _, procs = rest.partition("x")
        graphs = kind == "graph"
        if procs and int(procs) > 1:
            r = _parallel(infos, d, weights, keys, int(batch), graphs, int(procs))
        else:
            r = _stage_run(infos, d, weights, keys, int(batch), graphs)
        r["run"] = spec
        r["ratio_to_decode"] = round(r["fps"] / decode, 3)
        print(json.dumps({k: v for k, v in r.items() if k != "clips"}), file=sys.stderr, flush=True)
        report["stage"].append(r)
    weights.unlink()
    return report


# -- train (GPU) ------------------------------------------------------------------------------
def _loader_rate(manifest: list[str], cfg, batches: int = 60) -> float:
    from torch.utils.data import DataLoader

    from mf2.train.data import split_pairs, training_dataset

    train, _, _ = split_pairs(manifest, cfg.val_fraction, cfg.seed)
    ds = training_dataset(train, cfg)
    dl = DataLoader(
        ds,
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=cfg.num_workers,
        pin_memory=True,
        drop_last=True,
        persistent_workers=cfg.num_workers > 0,
    )
    n, t = 0, None
    while n < batches:
        for _ in dl:
            n += 1
            if n == 5:
                t = time.perf_counter()  # after the workers' start
            if n >= batches:
                break
    return (n - 5) * cfg.batch_size / (time.perf_counter() - t)


def _configured(preset: str, workers: int, hg_steps: int, cgan_steps: int):
    from mf2.models.config import PRESETS

    cfg = PRESETS[preset]
    return replace(
        cfg,
        num_workers=workers,
        checkpoint_every=10**6,
        val_max_batches=4,
        hg_stage=replace(cfg.hg_stage, epochs=0, max_steps=hg_steps),
        cgan_stage=replace(cfg.cgan_stage, epochs=0, max_steps=cgan_steps),
    )


def _throughput(preset: str, manifest: list[str], out: Path, workers: int, batch: int, seconds: float) -> dict:
    """Steady-state steps of each stage, fed by the trainer's own loader (no validation, no
    checkpoints), then the same steps on one batch held on the GPU: if the two rates agree, the
    loader is not what limits training."""
    import torch

    from mf2.train.trainer import Trainer

    cfg = replace(_configured(preset, workers, 10**6, 10**6), batch_size=batch)
    tr = Trainer(cfg, manifest, out, "auto", None, False, None)
    res = {"batch_size": batch}
    for stage in ("hg", "cgan"):
        tr.use(stage)
        for m in tr.models.values():
            m.train()
        if stage == "cgan":
            tr.models["hg"].eval().requires_grad_(False)
        step = functools.partial(tr.step, stage)

        def batches():
            epoch = 0
            while True:
                tr.epoch_batches(list(range(len(tr.train_ds))), 0, epoch)
                for b in tr.loader("train"):
                    yield (
                        b["blurry"].to(tr.device, non_blocking=True, memory_format=tr.memory_format),
                        b["sharp"].to(tr.device, non_blocking=True, memory_format=tr.memory_format),
                    )
                epoch += 1

        src = batches()
        rates = {}
        for feed in ("loader", "gpu-resident"):
            fixed = next(src)
            for _ in range(10):  # warm-up: cuDNN's choices, the workers' start
                step(*(next(src) if feed == "loader" else fixed))
            _sync()
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            with GpuSampler() as gpu:
                n, t = 0, time.perf_counter()
                while time.perf_counter() - t < seconds:
                    losses = step(*(next(src) if feed == "loader" else fixed))
                    n += 1
                    if n % 20 == 0:
                        float(next(iter(losses.values())))  # a host sync now and then, as the trainer's log
                _sync()
                wall = time.perf_counter() - t
            rates[feed] = {
                "images_per_s": round(n * batch / wall, 1),
                "steps": n,
                **gpu.summary(),
                "peak_gpu_mb": _peak_mb(),
            }
        res[stage] = rates
    return res


def _train_preset(
    preset: str, manifest: list[str], out: Path, budget: float, workers: int, speed_s: float, min_steps: int
) -> dict:
    import torch

    from mf2.train.loop import train

    batch = _configured(preset, workers, 1, 1).batch_size
    speed = _throughput(preset, manifest, out / f"{preset}-speed", workers, batch, speed_s)
    steps = {k: max(min_steps, int(budget * speed[k]["loader"]["images_per_s"] / batch)) for k in ("hg", "cgan")}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with GpuSampler() as gpu:
        t = time.perf_counter()
        res = train(
            manifest, out / preset, _configured(preset, workers, steps["hg"], steps["cgan"]), show_progress=False
        )
        wall = time.perf_counter() - t
    return {
        "steps": steps,
        "wall_s": round(wall, 1),
        "peak_gpu_mb": _peak_mb(),
        "images_per_s": {k: round(r.images_per_s, 1) for k, r in res.items()},
        "steady_state": speed,
        "val": {k: r.val for k, r in res.items()},
        **gpu.summary(),
        "model": str(out / preset / "model.pt"),
    }


def _score(test: Path, runs: dict, limit: int, grid: Path) -> dict:
    import cv2
    import pyarrow.parquet as pq

    from mf2.quality import psnr, ssim
    from mf2.restore.deblur import Deblurrer

    rows = pq.read_table(test / "pairs.parquet", columns=["blurry_path", "sharp_path"]).to_pylist()
    rows = rows[:: max(1, math.ceil(len(rows) / limit))]
    pairs = [
        (
            cv2.imread(str(test / r["blurry_path"]))[..., ::-1].copy(),
            cv2.imread(str(test / r["sharp_path"]))[..., ::-1].copy(),
        )
        for r in rows
    ]
    models = {f"{p}-{s}": Deblurrer(r["model"], "cuda", stage=s) for p, r in runs.items() for s in ("hg", "cgan")}
    outs = {"Blurred": [b for b, _ in pairs]}
    for name, m in models.items():
        outs[name] = [y for i in range(0, len(pairs), 32) for y in m([b for b, _ in pairs[i : i + 32]])]
    scores = {name: [psnr(y, s) for y, (_, s) in zip(ys, pairs)] for name, ys in outs.items()}
    table = {
        name: {
            "psnr": round(statistics.fmean(scores[name]), 2),
            "ssim": round(statistics.fmean(ssim(y, s) for y, (_, s) in zip(ys, pairs)), 4),
            **({"by_motion": _by_motion(scores["Blurred"], scores[name])} if name != "Blurred" else {}),
        }
        for name, ys in outs.items()
    }
    pick = sorted(range(len(pairs)), key=lambda i: psnr(*pairs[i]))[:: max(1, len(pairs) // 6)][:6]
    lines = [np.concatenate([outs[n][i] for n in outs] + [pairs[i][1]], axis=1) for i in pick]
    labels = list(outs) + ["sharp"]
    w = pairs[0][0].shape[1]
    head = np.full((22, w * len(labels), 3), 255, np.uint8)
    for i, name in enumerate(labels):
        cv2.putText(head, name, (i * w + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(grid), np.concatenate([head] + lines, axis=0)[..., ::-1])
    return {"n_pairs": len(pairs), "table": table}


def cmd_pack(sources: list[str], out: Path, max_mb: float) -> dict:
    """Here: an evenly spaced subset of each pair dataset (``NAME=DIR``) as a dataset of its own
    under ``out/NAME`` (manifest rows and PNGs), together at most ``max_mb``: what a GPU
    machine, which gets the checkout but not ../shared, can be sent."""
    import pyarrow.parquet as pq

    budget = max_mb * 2**20 / len(sources)
    report = {}
    for spec in sources:
        name, _, src = spec.partition("=")
        src = Path(src)
        t = pq.read_table(src / "pairs.parquet")
        paths = list(zip(t["blurry_path"].to_pylist(), t["sharp_path"].to_pylist()))
        per_pair = statistics.fmean(
            (src / b).stat().st_size + (src / s).stat().st_size for b, s in paths[:: max(1, len(paths) // 50)]
        )
        step = max(1, math.ceil(len(paths) * per_pair / budget))
        keep = list(range(0, len(paths), step))
        dst = out / name
        for i in keep:
            for rel in paths[i]:
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / rel, dst / rel)
        pq.write_table(t.take(keep), dst / "pairs.parquet")
        report[name] = {"from": str(src), "pairs": len(keep), "of": len(paths), "every": step}
    return report


def _by_motion(blurred: list[float], restored: list[float], static_db: float = 38.0) -> dict:
    """Mean PSNR gain over Blurred on pairs that moved (Blurred below ``static_db``) and on those
    that barely did, as bench/restore.py splits them."""
    out: dict = {}
    for b, y in zip(blurred, restored):
        if math.isfinite(b) and math.isfinite(y):
            out.setdefault("moving" if b < static_db else "static", []).append(y - b)
    return {k: {"n": len(v), "d_psnr": round(statistics.fmean(v), 3)} for k, v in sorted(out.items())}


def cmd_train(
    train_dir: list[Path],
    test_dir: list[Path],
    out: Path,
    budget: float,
    workers: int,
    limit: int,
    grid: Path,
    presets: list[str],
    speed_s: float = 12.0,
    min_steps: int = 50,
) -> dict:
    import torch

    torch.backends.cudnn.benchmark = True
    report = {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "budget_s_per_stage": budget,
        "workers": workers,
        "loader_images_per_s": {},
        "runs": {},
    }
    for preset in presets:
        cfg = _configured(preset, workers, 1, 1)
        report["loader_images_per_s"][preset] = round(_loader_rate([str(t) for t in train_dir], cfg), 1)
        report["runs"][preset] = _train_preset(
            preset, [str(t) for t in train_dir], out, budget, workers, speed_s, min_steps
        )
        print(json.dumps({preset: report["runs"][preset]}), file=sys.stderr, flush=True)
    if "paper" in presets and torch.cuda.is_available():  # the GPU's batch: four times the preset's
        report["paper_batch64"] = _throughput(
            "paper", [str(t) for t in train_dir], out / "paper-b64", workers, 64, speed_s
        )
        print(json.dumps({"paper_batch64": report["paper_batch64"]}), file=sys.stderr, flush=True)
    report["test"] = {
        t.name: _score(t, report["runs"], limit, grid.with_name(f"{grid.stem}_{t.name}{grid.suffix}")) for t in test_dir
    }
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("dir", type=Path)
    p.add_argument("--videos", type=Path, default=SHARED)
    p = sub.add_parser("landmarks")
    p.add_argument("dir", type=Path)
    p.add_argument(
        "--runs",
        default="eager:1,eager:32,graph:32,graph:32x4,graph:32x8",
        help="stage runs: eager|graph:BATCH[xPROCESSES], comma-separated",
    )
    p.add_argument("--forward", default="1,8,32,64,128", help="batch sizes for FAN's forward pass alone")
    p.add_argument("--clips", default="", help="only these clip stems (comma-separated; default: all)")
    p = sub.add_parser("pack")
    p.add_argument("sources", nargs="+", help="NAME=DATASET_DIR, each packed to OUT/NAME")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-mb", type=float, default=48.0)
    p = sub.add_parser("train")
    p.add_argument("--train", type=Path, required=True, action="append", help="training pairs (repeatable)")
    p.add_argument("--test", type=Path, required=True, action="append", help="test pairs (repeatable)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--budget", type=float, default=60.0, help="seconds of training per stage and preset")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--limit", type=int, default=150)
    p.add_argument("--grid", type=Path, default=Path("gpu_samples.png"))
    p.add_argument("--presets", default="small,paper")
    p.add_argument("--speed-seconds", type=float, default=12.0, help="timed seconds per steady-state measurement")
    p.add_argument("--min-steps", type=int, default=50)
    a = ap.parse_args()
    report = {"bench": f"gpu-{a.cmd}", "python": platform.python_version()}
    if a.cmd == "prepare":
        report.update(cmd_prepare(a.dir.resolve(), a.videos))
    elif a.cmd == "pack":
        report.update(cmd_pack(a.sources, a.out.resolve(), a.max_mb))
    elif a.cmd == "landmarks":
        report.update(
            cmd_landmarks(
                a.dir.resolve(),
                a.runs.split(","),
                [c for c in a.clips.split(",") if c],
                tuple(int(b) for b in a.forward.split(",")),
            )
        )
    else:
        report.update(
            cmd_train(
                [t.resolve() for t in a.train],
                [t.resolve() for t in a.test],
                a.out.resolve(),
                a.budget,
                a.workers,
                a.limit,
                a.grid,
                a.presets.split(","),
                a.speed_seconds,
                a.min_steps,
            )
        )
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
