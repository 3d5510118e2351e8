"""The pipeline's speed and memory against issue 5's targets, measured in one run.

Prints JSON:
- decode-only frames/s over the clips (ffmpeg -> RGB frames, nothing else): the physical limit;
- end-to-end frames/s of `mf2 run` (LocalCluster, one worker per core) for the 2mf2 recipe
  (VLA, both directions) and for PrAvg L = 7, and their ratio to decode-only (target >= 0.5);
- each stage's frames/s (worker time per stage, from timings.parquet);
- 1 vs 2 workers on a multi-video PrAvg job (target >= 1.8x), with the cores each kept busy
  (workers' and their ffmpeg decoders' CPU seconds per wall second);
- peak RSS of `mf2 simulate` on a clip and on the same clip played forward and back to 4x
  its length, without a cut (target: within 10 %).
- issue 35's comparison (``--reference`` runs it alone): frames/s and CPU-ms per frame of
  ``mf2 simulate`` (PrAvg L 7, 256 px, default workers and ``--workers 0``) against the
  hand-written baseline bench/reference_pravg.py as 1 process and as 2 processes over halves
  of the same eight clips, alternated; with the pairs each made (both pad a crop that leaves
  the frame with black and decode non-square pixels to square ones) and pairs/s. The
  2-process script runs twice: with OpenCV's default PNG settings (as issue 35 timed it) and
  with mf2's (``--png paeth``: the same files mf2 writes, 23 % smaller).
Every figure is the median of ``--repeats`` runs, each in a fresh folder.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from mf2 import __version__
from mf2.pipeline.recipe import load_recipe
from mf2.pipeline.run import run_pipeline
from mf2.pipeline.runner import default_workers, make_runner
from mf2.video import iter_frames, probe

REPO = Path(__file__).resolve().parents[1]
E2E_CLIPS = ["lp_d9.mp4", "ffpp_youtube_634.mp4", "fomm_10.mp4", "lp_d3.mp4"]
SCALE_CLIPS = [
    "sadtalker_RD_Radio2_000.mp4",
    "sadtalker_WDA_AlexandriaOcasioCortez_000.mp4",
    "sadtalker_WDA_KatieHill_000.mp4",
    "lp_d11.mp4",
]
RSS_CLIP = "fomm_10.mp4"
# issue 35: eight clips, about 2,500 frames, against the hand-written reference script
REF_CLIPS = [
    "lp_d9.mp4",
    "fomm_10.mp4",
    "lp_d3.mp4",
    "lp_d19.mp4",
    "lp_d18.mp4",
    "retalking_face_3.mp4",
    "sadtalker_RD_Radio2_000.mp4",
    "sadtalker_WDA_KatieHill_000.mp4",
]


def _timed(cmds: list[list[str]]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the commands and everything they waited for) of commands
    run side by side."""
    import resource

    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in cmds]
    codes = [p.wait() for p in procs]
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(codes):
        raise RuntimeError(f"{cmds[0][:3]} exited {codes}")
    return wall, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def _reference(videos: Path, repeats: int) -> dict:
    """mf2's default path and its in-process path against bench/reference_pravg.py as 1 and 2
    processes, on the same clips, alternated, each in a fresh folder; medians."""
    paths = [videos / c for c in REF_CLIPS]
    n = {p: probe(p).n_frames for p in paths}
    halves: tuple[list, list] = ([], [])
    for p in sorted(paths, key=lambda p: -n[p]):  # two halves of about equal frames
        min(halves, key=lambda h: sum(n[q] for q in h)).append(p)
    frames = sum(n.values())
    script = [sys.executable, str(REPO / "bench" / "reference_pravg.py"), "--out"]
    mf2 = [
        sys.executable,
        "-m",
        "mf2",
        "simulate",
        "--mode",
        "pravg",
        "--L",
        "7",
        "--out-size",
        "256",
        "--landmarks",
        "dlib",
    ]
    labels = ("script_1_process", "script_2_processes", "script_2_processes_mf2_png", "mf2_default", "mf2_in_process")
    runs: dict[str, list] = {k: [] for k in labels}
    for _ in range(repeats):
        for label in runs:
            with tempfile.TemporaryDirectory() as tmp:
                vids = _folder(videos, REF_CLIPS, Path(tmp))
                out = Path(tmp) / "out"
                cmds = {
                    "script_1_process": [[*script, str(out), *map(str, paths)]],
                    "script_2_processes": [[*script, str(out / str(i)), *map(str, h)] for i, h in enumerate(halves)],
                    # the same files as mf2 writes: its PNG filter (paeth), not OpenCV's default
                    "script_2_processes_mf2_png": [
                        [*script, str(out / str(i)), "--png", "paeth", *map(str, h)] for i, h in enumerate(halves)
                    ],
                    "mf2_default": [[*mf2, "--videos", str(vids), "--out", str(out)]],
                    "mf2_in_process": [[*mf2, "--videos", str(vids), "--out", str(out), "--workers", "0"]],
                }[label]
                runs[label].append((*_timed(cmds), _pairs(out)))
    med = statistics.median
    res: dict = {"clips": REF_CLIPS, "frames": frames}
    for label, rs in runs.items():
        res[label] = {
            "fps": round(frames / med(w for w, _, _ in rs), 1),
            "cpu_ms_per_frame": round(1000 * med(c for _, c, _ in rs) / frames, 1),
            "pairs": rs[0][2],
            "pairs_per_s": round(rs[0][2] / med(w for w, _, _ in rs), 1),
            "cpu_ms_per_pair": round(1000 * med(c for _, c, _ in rs) / max(1, rs[0][2]), 1),
        }

    def ratio(a: str, b: str, key: str) -> float:
        return round(res[a][key] / res[b][key], 3)

    res["default_over_script_2"] = ratio("mf2_default", "script_2_processes", "fps")
    res["default_cpu_over_script_2"] = ratio("mf2_default", "script_2_processes", "cpu_ms_per_frame")
    res["in_process_over_script_1"] = ratio("mf2_in_process", "script_1_process", "fps")
    # the script as issue 35 timed it writes OpenCV's default PNGs: 23 % larger files than
    # mf2's paeth-filtered ones (mf2.pngs), 13 % less encoding time; against the same files:
    res["default_over_script_2_mf2_png"] = ratio("mf2_default", "script_2_processes_mf2_png", "fps")
    res["default_cpu_over_script_2_mf2_png"] = ratio("mf2_default", "script_2_processes_mf2_png", "cpu_ms_per_frame")
    # the two make different pairs of the same frames: the script averages every window of a
    # face its detector holds, mf2 skips repeated frames (most of lp_d19's) and never crosses a cut
    res["per_pair"] = {
        "default_over_script_2": ratio("mf2_default", "script_2_processes", "pairs_per_s"),
        "default_cpu_over_script_2": ratio("mf2_default", "script_2_processes", "cpu_ms_per_pair"),
        "in_process_over_script_1": ratio("mf2_in_process", "script_1_process", "pairs_per_s"),
    }
    return res


def _pairs(out: Path) -> int:
    """Pairs a run made: the rows of every pairs.parquet under its folder (the script as two
    processes writes one per process)."""
    return sum(pq.read_metadata(p).num_rows for p in out.rglob("pairs.parquet"))


def _folder(videos: Path, names: list[str], tmp: Path) -> Path:
    d = tmp / "in"
    d.mkdir(exist_ok=True)
    for n in names:
        (d / n).symlink_to(videos / n)
    return d


def _decode_fps(paths: list[Path]) -> float:
    frames, t = 0, time.perf_counter()
    for p in paths:
        frames += sum(1 for _ in iter_frames(probe(p)))
    return frames / (time.perf_counter() - t)


def _cpu_seconds() -> float:
    """This process's CPU time and its waited-for children's (the ffmpeg decoders)."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _run(recipe: str, sets: list[str], videos: Path, out: Path, workers: int) -> dict:
    rec = load_recipe(REPO / "pipelines" / recipe, sets, {"landmarks.backend": "dlib"})
    with make_runner(workers) as runner:
        before = sum(runner.client.run(_cpu_seconds).values())
        s = run_pipeline(rec, out, runner, videos=str(videos), show_progress=False)
        cpu = sum(runner.client.run(_cpu_seconds).values()) - before
    timings = pq.read_table(out / "cache" / "timings.parquet").to_pylist()
    frames = sum({t["video_id"]: t["frames"] for t in timings}.values())
    per_stage: dict[str, float] = {}
    for t in timings:
        per_stage[t["stage"]] = per_stage.get(t["stage"], 0.0) + t["seconds"]
    return {
        "wall_s": s.wall_s,
        "frames": frames,
        "stage_seconds": per_stage,
        "worker_cpu_s": cpu,
        "pairs": sum(j.n_pairs for j in s.jobs.values()),
    }


def _peak_rss_mb(args: list[str]) -> float:
    code = (
        "import sys\nfrom mf2.cli import main\nmain(sys.argv[1:])\n"  # VmHWM: this image's peak only
        "hwm = next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM:'))\n"
        "print('MAXRSS', hwm, file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return int(res.stderr.split("MAXRSS")[-1].split()[0]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=Path, default=REPO.parent / "shared" / "data" / "videos")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip", nargs="*", default=[], choices=["e2e", "scaling", "rss", "reference"])
    ap.add_argument("--reference", action="store_true", help="only issue 35's comparison with bench/reference_pravg.py")
    args = ap.parse_args()
    cores = default_workers()
    med = statistics.median
    out: dict = {
        "bench": "pipeline",
        "mf2": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cores": cores,
        "repeats": args.repeats,
        "backend": "dlib",
    }

    if args.reference:
        args.skip = ["e2e", "scaling", "rss"]
    if "reference" not in args.skip:
        out["reference"] = _reference(args.videos, args.repeats)

    if "e2e" not in args.skip:
        paths = [args.videos / c for c in E2E_CLIPS]
        dec = [_decode_fps(paths) for _ in range(args.repeats)]
        out["decode_only_fps"] = round(med(dec), 1)
        out["e2e_clips"] = E2E_CLIPS
        for label, recipe, sets in (("2mf2_vla_both", "2mf2.yaml", []), ("pravg_L7", "pravg.yaml", ["jobs=[{L: 7}]"])):
            runs = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as tmp:
                    vids = _folder(args.videos, E2E_CLIPS, Path(tmp))
                    runs.append(_run(recipe, sets, vids, Path(tmp) / "run", cores))
            fps = med([r["frames"] / r["wall_s"] for r in runs])
            stage = {
                k: round(runs[0]["frames"] / med([r["stage_seconds"].get(k, 0) for r in runs]), 1)
                for k in runs[0]["stage_seconds"]
                if med([r["stage_seconds"].get(k, 0) for r in runs]) > 0
            }
            out[label] = {
                "frames": runs[0]["frames"],
                "pairs": runs[0]["pairs"],
                "e2e_fps": round(fps, 1),
                "e2e_over_decode": round(fps / out["decode_only_fps"], 3),
                "stage_fps": stage,
                "stage_share": {
                    k: round(
                        med([r["stage_seconds"].get(k, 0) for r in runs])
                        / sum(med([r["stage_seconds"].get(s, 0) for r in runs]) for s in runs[0]["stage_seconds"]),
                        3,
                    )
                    for k in runs[0]["stage_seconds"]
                },
            }

    if "scaling" not in args.skip:
        res = {}
        for w in (1, 2):
            runs = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as tmp:
                    vids = _folder(args.videos, SCALE_CLIPS, Path(tmp))
                    runs.append(_run("pravg.yaml", ["jobs=[{L: 7}]"], vids, Path(tmp) / "run", w))
            res[w] = (med([r["wall_s"] for r in runs]), med([r["worker_cpu_s"] / r["wall_s"] for r in runs]))
        # cores_busy: CPU seconds of the workers and their ffmpeg decoders per wall second. One
        # worker is not one core: ffmpeg decodes beside it and OpenCV may use the second core.
        out["scaling"] = {
            "clips": SCALE_CLIPS,
            "one_worker_s": round(res[1][0], 2),
            "two_workers_s": round(res[2][0], 2),
            "speedup": round(res[1][0] / res[2][0], 2),
            "one_worker_cores_busy": round(res[1][1], 2),
            "two_workers_cores_busy": round(res[2][1], 2),
        }

    if "rss" not in args.skip:
        rss = {}
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            # 4x without a cut: forward, backward, forward, backward (re-encoded; the 1x clip
            # too). A plain loop jumps at each joint, and those cuts start new tracks, which
            # wakes face_id clustering and dlib's identity network (~30 MB once): not growth.
            short, long = tmp / "short.mp4", tmp / "long.mp4"
            pp = "[0:v]split[a][b];[b]reverse[r];[a][r]concat=n=2:v=1:a=0,split[c][d];[c][d]concat=n=2:v=1:a=0"
            for dst, filt in ((short, []), (long, ["-filter_complex", pp])):
                subprocess.run(
                    [
                        "ffmpeg",
                        "-y",
                        "-nostdin",
                        "-loglevel",
                        "error",
                        "-i",
                        str(args.videos / RSS_CLIP),
                        *filt,
                        "-an",
                        "-c:v",
                        "libx264",
                        "-crf",
                        "18",
                        "-pix_fmt",
                        "yuv420p",
                        str(dst),
                    ],
                    check=True,
                )
            for mode in ("pravg", "vla"):
                for label, clip in (("1x", short), ("4x", long)):
                    vals = [
                        _peak_rss_mb(
                            [
                                "simulate",
                                "--videos",
                                str(clip),
                                "--out",
                                str(tmp / f"{mode}{label}{i}"),
                                "--mode",
                                mode,
                                "--workers",
                                "0",
                                "--no-contact-sheet",
                                "--landmarks",
                                "dlib",
                            ]
                        )
                        for i in range(args.repeats)
                    ]
                    rss[f"{mode}_{label}_mb"] = round(med(vals), 1)
                rss[f"{mode}_4x_over_1x"] = round(rss[f"{mode}_4x_mb"] / rss[f"{mode}_1x_mb"], 3)
        out["peak_rss"] = {"clip": RSS_CLIP, **rss}

    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
