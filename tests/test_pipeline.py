"""`mf2 run` and Dask execution: recipes, a real LocalCluster, crash and resume, failures,
streaming memory, Docker files. Real clips, real ffmpeg, real Parquet."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import REPO, copy_clips, ffmpeg, run_mf2

pytestmark = pytest.mark.slow  # end to end on real clips (make test-fast leaves it out)

CLIPS = ("fomm_08.mp4", "fomm_10.mp4", "lp_d18.mp4")
RECIPE = REPO / "pipelines" / "2mf2.yaml"


def _key(path: Path) -> list[tuple]:
    t = pq.read_table(path, columns=["pair_id", "blurry_sha256", "sharp_sha256"])
    return sorted(zip(*(t[c].to_pylist() for c in t.column_names)))


@pytest.fixture(scope="module")
def clips(videos, tmp_path_factory) -> Path:
    return copy_clips(videos, CLIPS, tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def synchronous_run(clips, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sync") / "run"
    res = run_mf2("run", str(RECIPE), "--videos", str(clips), "--out", str(out), "--scheduler", "synchronous")
    assert res.returncode == 0, res.stderr
    return out


def test_local_cluster_equals_single_process(clips, synchronous_run, tmp_path):
    out = tmp_path / "dask"
    res = run_mf2("run", str(RECIPE), "--videos", str(clips), "--out", str(out), "--workers", "2")
    assert res.returncode == 0, res.stderr
    assert "LocalCluster, 2 workers x 1 thread, dashboard http" in res.stderr
    dask_pairs, sync_pairs = out / "vla" / "pairs.parquet", synchronous_run / "vla" / "pairs.parquet"
    assert len(_key(sync_pairs)) > 20
    assert _key(dask_pairs) == _key(sync_pairs)
    # the consolidated manifest keeps the input order whatever order the workers finished in
    assert pq.read_table(dask_pairs)["pair_id"].to_pylist() == pq.read_table(sync_pairs)["pair_id"].to_pylist()
    directions = set(pq.read_table(dask_pairs)["direction"].to_pylist())
    assert directions == {"forward", "reverse"}  # the recipe's forward and reverse passes

    import json

    run = json.loads((out / "run.json").read_text())
    assert run["videos"] == 3 and run["jobs"]["vla"]["pairs"] == len(_key(dask_pairs))
    assert {"landmarks", "flow", "render"} <= set(run["stage_seconds"])
    timings = pq.read_table(out / "cache" / "timings.parquet").to_pylist()
    assert {t["video_id"] for t in timings} == {Path(c).stem for c in CLIPS}
    resolved = (out / "recipe.yaml").read_text()
    assert "direction: both" in resolved and "min_overlap: 0.5" in resolved

    # a second run resumes everything
    res = run_mf2("run", str(RECIPE), "--videos", str(clips), "--out", str(out), "--workers", "2")
    assert res.returncode == 0 and "3 ok (3 resumed)" in res.stderr, res.stderr


def test_sigkill_mid_run_then_resume_equals_a_clean_run(clips, synchronous_run, tmp_path):
    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "mf2",
        "run",
        str(RECIPE),
        "--videos",
        str(clips),
        "--out",
        str(out),
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and not list((out / "vla" / "blurry").rglob("*.png")):
        time.sleep(0.05)
    time.sleep(0.3)  # mid-render of at least one video
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its worker processes, as a crash would
    proc.wait()
    assert not (out / "vla" / "pairs.parquet").exists()
    res = run_mf2("run", str(RECIPE), "--videos", str(clips), "--out", str(out), "--workers", "2")
    assert res.returncode == 0, res.stderr
    assert not list(out.rglob(".*.tmp"))
    assert _key(out / "vla" / "pairs.parquet") == _key(synchronous_run / "vla" / "pairs.parquet")
    rows = pq.read_table(out / "vla" / "pairs.parquet")["pair_id"].to_pylist()
    assert len(rows) == len(set(rows))


def test_corrupt_video_is_recorded_and_the_others_complete(clips, tmp_path):
    vids = tmp_path / "vids"
    vids.mkdir()
    shutil.copy(clips / "fomm_08.mp4", vids / "good.mp4")
    data = (clips / "lp_d18.mp4").read_bytes()
    (vids / "cut.mp4").write_bytes(data[: len(data) // 3])
    (vids / "noise.mp4").write_bytes(os.urandom(20000))
    out = tmp_path / "run"
    args = [
        "run",
        str(REPO / "pipelines" / "pravg.yaml"),
        "--videos",
        str(vids),
        "--out",
        str(out),
        "--set",
        "jobs=[{L: 7, stride: 4}]",
        "--workers",
        "2",
    ]
    res = run_mf2(*args)
    assert res.returncode == 0, res.stderr
    assert "3 videos: 1 ok (0 resumed), 2 failed" in res.stderr and "Traceback" not in res.stderr
    fails = {r["video_id"]: r for r in pq.read_table(out / "pravg_L7" / "failures.parquet").to_pylist()}
    assert set(fails) == {"cut", "noise"}
    assert fails["noise"]["stage"] == "probe" and fails["noise"]["error_class"] == "not-a-video"
    assert fails["cut"]["error_class"] in ("not-a-video", "decode-error") and fails["cut"]["video_sha256"]
    assert set(pq.read_table(out / "pravg_L7" / "pairs.parquet")["video_id"].to_pylist()) == {"good"}

    # a re-run keeps the failures of unchanged files without redoing them ...
    res = run_mf2(*args)
    assert res.returncode == 0 and "2 earlier failure(s) kept" in res.stderr and "1 resumed" in res.stderr
    # ... redoes them when asked, or when the file changed
    shutil.copy(clips / "fomm_10.mp4", vids / "noise.mp4")
    res = run_mf2(*args)
    assert res.returncode == 0 and "1 earlier failure(s) kept" in res.stderr, res.stderr
    assert set(pq.read_table(out / "pravg_L7" / "pairs.parquet")["video_id"].to_pylist()) == {"good", "noise"}
    res = run_mf2(*args, "--retry-failed")
    assert res.returncode == 0 and "kept" not in res.stderr and "1 failed" in res.stderr


def test_run_with_a_manifest_fetches_first(tmp_path):
    out = tmp_path / "run"
    res = run_mf2(
        "run",
        str(REPO / "pipelines" / "synthetic.yaml"),
        "--manifest",
        str(REPO / "manifests" / "sample.csv"),
        "--out",
        str(out),
        "--workers",
        "1",
    )
    assert res.returncode == 0, res.stderr
    assert "fetch: 1 ok" in res.stderr
    fetched = pq.read_table(out / "data" / "fetch.parquet").to_pylist()
    assert fetched[0]["status"] == "ok"
    pairs = pq.read_table(out / "synthetic_k31" / "pairs.parquet")
    assert pairs.num_rows > 5 and set(pairs["video_id"].to_pylist()) == {fetched[0]["key"]}


def _recipe(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text, needle",
    [
        ("name: x\njobs:\n  - {mode: pravg, Ll: 7}\n", "jobs[0].Ll: unknown key (did you mean 'L'?)"),
        ("name: x\njobs:\n  - {mode: pravg, L: seven}\n", "jobs[0].L: expected an integer, got 'seven'"),
        ("name: x\njobs:\n  - {mode: pravg, L: 4}\n", "jobs[0] (pravg_L4): --L 4"),
        (
            "name: x\nlandmarks: {backend: dlib, keyframes: 3}\njobs: [{mode: vla}]\n",
            "landmarks.keyframes: unknown key",
        ),
        ("name: x\njobs: []\n", "jobs: expected a non-empty list"),
        ("name: x\njobs:\n  - {mode: pravg}\n  - {mode: pravg}\n", "pravg_L7 repeated"),
        ("name: x\njobs: [{mode: pravg\n", "not valid YAML"),
        ("name: x\nfetch: {retries: true}\njobs: [{mode: vla}]\n", "fetch.retries: expected an integer, got True"),
        ("nmae: x\njobs: [{mode: vla}]\n", "nmae: unknown key (did you mean 'name'?)"),
    ],
)
def test_recipe_validation_errors_name_the_file_and_key(tmp_path, text, needle):
    p = _recipe(tmp_path, text)
    res = run_mf2("run", str(p), "--videos", str(tmp_path), "--out", str(tmp_path / "o"))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert needle in lines[0] and (str(p) in lines[0] or "recipe x" in lines[0])
    assert not (tmp_path / "o").exists()


def test_override_precedence():
    from mf2.pipeline.recipe import load_recipe

    base = load_recipe(REPO / "pipelines" / "pravg.yaml")
    assert [j.cfg.pravg.L for j in base.jobs] == [7, 9, 11, 15, 21] and {j.cfg.out_size for j in base.jobs} == {256}
    r = load_recipe(REPO / "pipelines" / "pravg.yaml", ["jobs.0.L=5", "jobs.*.out_size=128", "landmarks.backend=dlib"])
    assert [j.cfg.pravg.L for j in r.jobs] == [5, 9, 11, 15, 21] and {j.cfg.out_size for j in r.jobs} == {128}
    assert r.jobs[0].name == "pravg_L5" and r.landmarks.backend == "dlib"
    # dedicated flags come after --set
    r = load_recipe(
        REPO / "pipelines" / "pravg.yaml",
        ["jobs.*.out_size=128", "dask.workers=3"],
        {"jobs.*.crop_size": 64, "dask.workers": 1},
    )
    assert {j.cfg.out_size for j in r.jobs} == {64} and r.dask.workers == 1
    # the resolved recipe round-trips
    import yaml

    from mf2.pipeline.recipe import dump_recipe, parse_recipe

    assert parse_recipe(yaml.safe_load(dump_recipe(r))) == r


def test_synchronous_runner_runs_each_task_as_it_is_collected():
    """--workers 0: each video runs when its result is collected, so the progress bar advances
    video by video (tasks used to run at submit: the bar appeared with everything done).
    Dependencies run first, once; a task's error reaches whoever collects it."""
    from mf2.pipeline.runner import SyncRunner

    ran: list = []
    r = SyncRunner()
    first = r.submit(lambda i: ran.append(i) or i, 0)
    later = r.submit(lambda a, b: ran.append((a, b)) or b, first, 1)  # takes the first one's result
    bad = r.submit(lambda: 1 / 0)
    assert ran == []
    it = r.as_completed([later, first, bad])
    assert next(it).result() == 1 and ran == [0, (0, 1)]
    assert next(it).result() == 0 and ran == [0, (0, 1)]  # not run twice
    with pytest.raises(ZeroDivisionError):
        next(it).result()


def test_one_long_video_shows_its_frames_as_it_goes(clips, tmp_path, capsys):
    """The bar counts videos; its postfix names the pass and frame of the video in progress,
    read from the progress files that the worker writes (removed when the video is done)."""
    from mf2.blur.windows import PrAvgConfig
    from mf2.modes.config import SimulateConfig
    from mf2.pipeline import progress
    from mf2.pipeline.execute import run_simulate
    from mf2.sources import resolve_videos

    seen: list[str] = []
    real = progress.describe

    def spy(records):  # what the watcher shows, as it polls
        line = real(records)
        if line:
            seen.append(line)
        return line

    progress.describe = spy
    try:
        out = tmp_path / "o"
        s = run_simulate(
            resolve_videos(clips / "lp_d18.mp4"), out, SimulateConfig(pravg=PrAvgConfig(L=7)), show_progress=True
        )
    finally:
        progress.describe = real
    assert s.n_pairs > 0
    n = int(seen[0].rsplit("/", 1)[1])
    assert n > 100 and any(" landmarks " in x for x in seen) and any(" render " in x for x in seen), seen
    done = [int(x.split(" ")[-1].split("/")[0]) for x in seen if " landmarks " in x]
    assert done == sorted(done) and 0 < done[0] <= n  # counts up within a pass
    assert "lp_d18 landmarks" in capsys.readouterr().err  # drawn on the bar
    assert not (out / ".progress").exists()


def test_every_shipped_recipe_is_valid():
    from mf2.pipeline.recipe import load_recipe

    names = {}
    for p in sorted((REPO / "pipelines").glob("*.yaml")):
        r = load_recipe(p)
        names[p.name] = [n for n, _ in r.simulate_configs()]
    assert names == {
        "2mf2.yaml": ["vla"],
        "pravg.yaml": [f"pravg_L{L}" for L in (7, 9, 11, 15, 21)],
        "synthetic.yaml": ["synthetic_k31"],
        "paper-tests.yaml": [f"pravg_L{L}_s{L}" for L in (7, 9, 11, 15, 21)] + ["vla", "synthetic_k31"],
        "deblur-model.yaml": ["pravg7", "vla", "photos"],
        "paper-model.yaml": ["vla", "photos"],
    }
    model = load_recipe(REPO / "pipelines" / "deblur-model.yaml")
    assert [j.inputs for j in model.jobs] == ["videos", "videos", "photos"]
    assert model.train is not None and model.train.pairs == ("pravg7", "photos") and model.train.config == "small"
    assert model.train.gate_pairs == ("pravg7", "vla")
    # the small preset's hourglass sees the neighbouring exposures: the video jobs make them
    assert [c.neighbours for _, c in model.simulate_configs()] == [True, True, False]


def test_yaml_alias_bombs_and_huge_values_are_refused_in_one_line(tmp_path):
    """A 'billion laughs' recipe or training config is refused before any expansion; a wrong
    value is shown cut short (issue 33)."""
    from mf2.errors import UsageError
    from mf2.models.config import load_config
    from mf2.pipeline.recipe import load_recipe

    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
    )
    for text, load in (
        (f"name: x\ndescription: {{{bomb.replace(chr(10), ', ')}}}\njobs: [{{mode: pravg}}]\n", load_recipe),
        ("preset: tiny\n" + bomb, load_config),
    ):
        p = tmp_path / "bomb.yaml"
        p.write_text(text)
        with pytest.raises(UsageError, match="YAML aliases") as e:
            load(str(p))
        assert str(p) in str(e.value) and "\n" not in str(e.value)
    p = tmp_path / "long.yaml"
    p.write_text("name: x\ndescription: [" + ", ".join(["word"] * 5000) + "]\njobs: [{mode: pravg}]\n")
    with pytest.raises(UsageError) as e:
        load_recipe(p)
    assert "description" in str(e.value) and len(str(e.value)) < 300


@pytest.mark.parametrize(
    "train, needle",
    [
        ("train: {pairs: [nojob]}", "train.pairs[0]: 'nojob' is not a job"),
        ("train: {config: small}", "train.pairs: name the job"),
        ("train: {pairs: [a], device: tpu}", "train.device"),
        ("train: {pairs: [a], epochs: 3}", "train.epochs: unknown key"),
    ],
)
def test_recipe_train_step_errors_name_the_key(tmp_path, train, needle):
    from mf2.errors import UsageError
    from mf2.pipeline.recipe import load_recipe

    p = tmp_path / "r.yaml"
    p.write_text(
        f"name: r\njobs:\n  - {{name: a, mode: pravg}}\n  - {{name: b, mode: pravg, inputs: photos}}\n{train}\n"
    )
    with pytest.raises(UsageError, match="photos are single frames"):
        load_recipe(p)
    p.write_text(f"name: r\njobs:\n  - {{name: a, mode: pravg}}\n{train}\n")
    with pytest.raises(UsageError) as e:
        load_recipe(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_paper_test_sets_do_not_overlap(clips, tmp_path):
    """paper-tests: PrAvg windows with stride = L and VLA sub-sequences share no frame (the
    paper's 17,125 pairs at L = 7 from ~120 k frames); the training recipe's windows do."""
    import json

    out = tmp_path / "run"
    res = run_mf2(
        "run",
        "paper-tests",
        "--videos",
        str(clips / "fomm_08.mp4"),
        "--out",
        str(out),
        "--workers",
        "0",
        "--landmarks",
        "dlib",
        "--out-size",
        "64",
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "run.json").read_text())
    for job in ["pravg_L7_s7", "pravg_L21_s21", "vla"]:
        t = pq.read_table(out / job / "pairs.parquet")
        assert t.num_rows > 0, job
        frames = [f for fs in t["frames"].to_pylist() for f in fs]
        assert len(frames) == len(set(frames)), f"{job}: windows overlap"
    assert summary["jobs"]["pravg_L7_s7"]["pairs"] >= 3 * summary["jobs"]["pravg_L21_s21"]["pairs"] - 3
    assert summary["jobs"]["synthetic_k31"]["pairs"] > 0


def _peak_rss_kb(args: list[str]) -> int:
    # VmHWM: this process image's peak. ru_maxrss would also carry the peak of the pytest
    # process it was forked from (Linux keeps it across exec): in the full suite that hid
    # every difference between the two runs.
    code = (
        "import sys\nfrom mf2.cli import main\nmain(sys.argv[1:])\n"
        "hwm = next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM:'))\n"
        "print('MAXRSS', hwm, file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return int(res.stderr.split("MAXRSS")[-1].split()[0])


PING_PONG = "[0:v]split[a][b];[b]reverse[r];[a][r]concat=n=2:v=1:a=0,split[c][d];[c][d]concat=n=2:v=1:a=0"


def ping_pong(src: Path, dst: Path, times4: bool) -> Path:
    """The clip, or 4x its length without a cut: forward, backward, forward, backward. A plain
    loop (-stream_loop) jumps at each joint; those cuts start new shots and tracks, which
    wakes face_id clustering and dlib's identity network (~30 MB, once): not growth with length."""
    ffmpeg(
        "-i",
        str(src),
        *(["-filter_complex", PING_PONG] if times4 else []),
        "-an",
        "-c:v",
        "libx264",
        "-crf",
        "18",
        "-pix_fmt",
        "yuv420p",
        str(dst),
    )
    return dst


@pytest.mark.parametrize("mode", ["pravg", "vla"])
def test_memory_does_not_grow_with_video_length(clips, tmp_path, mode):
    short = ping_pong(clips / "fomm_10.mp4", tmp_path / "short.mp4", False)
    long = ping_pong(clips / "fomm_10.mp4", tmp_path / "long.mp4", True)
    from mf2.video import probe

    assert probe(long).n_frames == 4 * probe(short).n_frames
    rss = {}
    for name, clip in (("short", short), ("long", long)):
        rss[name] = _peak_rss_kb(
            [
                "simulate",
                "--videos",
                str(clip),
                "--out",
                str(tmp_path / name),
                "--mode",
                mode,
                "--workers",
                "0",
                "--no-contact-sheet",
            ]
        )
    # Holding frames would add at least one 256x256x3 crop (192 KiB) per extra frame, a decoded
    # frame more. Part rows are streamed to disk in batches, so a video's pairs are not held
    # either; what remains (~15 KiB a frame for pravg here, one pair a frame) is the in-process
    # driver's manifest and allocator slack. The bound is a quarter crop per frame.
    extra = probe(long).n_frames - probe(short).n_frames
    assert (rss["long"] - rss["short"]) / extra <= 0.25 * 256 * 256 * 3 / 1024, (rss, extra)


def test_docker_files_lint_clean_and_match_the_project():
    import yaml

    docker = REPO / "docker"
    hadolint = Path(sys.executable).parent / "hadolint"
    res = subprocess.run(
        [str(hadolint), str(docker / "Dockerfile.cpu"), str(docker / "Dockerfile.cuda")], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    setup = (REPO / "scripts" / "setup.sh").read_text()
    torch_pin = setup.split("MF2_TORCH_VERSION:-")[1].split("}")[0]
    for f in ("Dockerfile.cpu", "Dockerfile.cuda"):
        text = (docker / f).read_text()
        assert f"torch=={torch_pin}" in text and "docker/constraints.txt" in text
    for f in ("Dockerfile.cpu", "Dockerfile.cuda"):
        lines = (docker / f).read_text().splitlines()
        users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
        assert users and users[-1] not in ("root", "0"), f  # not root
        first_code = next(i for i, ln in enumerate(lines) if ln.startswith("COPY mf2"))
        assert any("torch==" in ln for ln in lines[:first_code]), f  # code changes keep the torch layer
        deps = next(i for i, ln in enumerate(lines) if "--requirement" in ln)
        assert deps < first_code and "--mount=type=cache" in " ".join(lines[deps - 4 : deps]), f  # deps layer, cached
        assert any("--no-deps ." in ln for ln in lines[first_code:]), f
        assert lines[[i for i, ln in enumerate(lines) if ln.startswith("FROM")][0]].startswith("FROM python:3.11")
    compose = yaml.safe_load((docker / "compose.yaml").read_text())
    services = compose["services"]
    assert {"scheduler", "cpu-worker", "gpu-worker"} <= set(services)
    assert "GPU=1" in services["gpu-worker"]["command"]
    for name in ("scheduler", "cpu-worker", "gpu-worker"):
        assert "/health" in " ".join(services[name]["healthcheck"]["test"]), name
    for name in ("cpu-worker", "gpu-worker", "client"):
        assert services[name]["depends_on"]["scheduler"]["condition"] == "service_healthy"
        assert any(v.startswith("${MF2_DATA:-../data}:") for v in services[name]["volumes"]), name  # the repo's data/
    pins = dict(
        line.split("==")
        for line in (docker / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for d in deps:
        name = d.split(">")[0].split("[")[0].split("=")[0].strip()
        assert any(k.lower().replace("_", "-") == name.lower() for k in pins), f"{name} not pinned in constraints.txt"


def test_fan_landmark_tasks_run_on_gpu_resourced_workers(clips, tmp_path):
    """RANDOM FAN weights (none can be downloaded here) on CPU: checks that the landmark tasks,
    which ask for a GPU resource with this backend, are scheduled on the LocalCluster's
    GPU-resourced workers and the run completes; not accuracy."""
    torch = pytest.importorskip("torch")
    from face_alignment.models import FAN

    torch.manual_seed(0)
    weights = tmp_path / "fan_random.pth"
    torch.save({f"module.{k}": v for k, v in FAN(1).state_dict().items()}, weights)
    vids = tmp_path / "vids"
    vids.mkdir()
    ffmpeg(
        "-i",
        str(clips / "fomm_08.mp4"),
        "-frames:v",
        "12",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(vids / "short.mp4"),
    )
    out = tmp_path / "run"
    res = run_mf2(
        "run",
        str(REPO / "pipelines" / "pravg.yaml"),
        "--videos",
        str(vids),
        "--out",
        str(out),
        "--set",
        "jobs=[{L: 3, stride: 3}]",
        "--landmarks",
        "fan",
        "--fan-weights",
        str(weights),
        "--workers",
        "1",
    )
    assert res.returncode == 0, res.stderr
    assert "GPU=1 resource for the FAN landmark tasks" in res.stderr
    lm = pq.read_table(out / "cache" / "landmarks" / "short.parquet")
    assert set(lm["backend"].to_pylist()) == {"fan"} and lm.num_rows == 12


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_take_their_share_of_the_cores(workers):
    """N workers on C cores: OpenCV's pool and ffmpeg's decoder get C // N threads each (at
    least one), on a LocalCluster and on a cluster reached by its address alike."""
    from distributed import LocalCluster

    from mf2.pipeline.runner import make_runner
    from mf2.pipeline.threads import current_limits, host_cores

    share = max(1, host_cores() // workers)
    with make_runner(workers) as runner:
        limits = list(runner.client.run(current_limits).values())
    assert len(limits) == workers
    assert all(lim["opencv"] == share and lim["decode"] == share for lim in limits), limits
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster:
        with make_runner(scheduler=cluster.scheduler_address) as runner:
            limits = list(runner.client.run(current_limits).values())
    assert all(lim["decode"] == share for lim in limits), limits
    assert all(lim["malloc"] == {"trim_threshold": 128 << 20, "mmap_threshold": 32 << 20} for lim in limits), limits


def _callback_ms(dask_worker) -> dict:
    return {k: float(v.callback_time) for k, v in dask_worker.periodic_callbacks.items()}


def test_mf2s_cluster_wakes_dask_less_often_unless_the_user_chose(monkeypatch):
    """The LocalCluster's scheduler and workers tick every 200 ms, not 20, check memory every
    500 ms and run no profiler (issue 35: ~6-8 % of a run's CPU); a value the user set in
    Dask's config or the environment wins; the compose file gives a --scheduler cluster the
    same settings."""
    import dask
    import yaml

    from mf2.pipeline.runner import QUIET_DASK, dask_env_name, make_runner

    with make_runner(2) as runner:
        workers = list(runner.client.run(_callback_ms).values())
        sched = runner.client.run_on_scheduler(
            lambda dask_scheduler: float(dask_scheduler.periodic_callbacks["tick"].callback_time)
        )
    assert len(workers) == 2 and sched == 200
    assert all(w["tick"] == 200 and w["memory_monitor"] == 500 and w["monitor"] == 2000 for w in workers), workers
    assert not any("profile" in w for w in workers), workers
    monkeypatch.setenv("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", "True")
    with dask.config.set({"distributed.admin.tick.interval": "50ms"}):
        with make_runner(1) as runner:
            (w,) = runner.client.run(_callback_ms).values()
    assert w["tick"] == 50 and w["memory_monitor"] == 500 and w["profile"] == 10
    env = {dask_env_name(k): str(v) for k, v in QUIET_DASK.items()}
    services = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())["services"]
    for name in ("scheduler", "cpu-worker", "gpu-worker"):
        assert services[name]["environment"] == env, name


def _wait_for(release: str, limit: float) -> str:
    """A long task: runs until the file ``release`` exists (or ``limit`` seconds pass)."""
    import os
    import time

    end = time.monotonic() + limit
    while time.monotonic() < end:
        if os.path.exists(release):
            return "released"
        time.sleep(0.02)
    return "timed out"


def _short(i: int) -> int:
    return i


def test_reading_a_parquet_column_it_lacks_fails_as_read_table_does(tmp_path):
    """mf2.schema.read_parquet (not pq.read_table: issue 35) keeps read_table's error for a
    column the file lacks; callers such as identities_in rely on it."""
    import pyarrow as pa

    from mf2.schema import read_parquet

    pq.write_table(pa.table({"video_id": ["a"]}), tmp_path / "t.parquet")
    assert read_parquet(tmp_path / "t.parquet", columns=["video_id"]).to_pylist() == [{"video_id": "a"}]
    with pytest.raises(pa.ArrowInvalid):
        read_parquet(tmp_path / "t.parquet", columns=["video_id", "identity"])


def test_held_tasks_go_to_whichever_worker_is_free(tmp_path):
    """Videos are held in the client and sent one per free worker thread, in the order given
    (longest first, issue 35): short tasks queued behind a long one all run, in order, on the
    other worker, and the long one is released only after every short one has finished.
    Dask alone assigns the first tasks to workers as they arrive: they finished out of order
    ([0, 2, 4, 3, 1]), those placed behind the long task only when stolen back."""
    from mf2.pipeline.runner import make_runner

    release = tmp_path / "release"
    with make_runner(2) as runner:
        futures = [runner.submit(_wait_for, str(release), 60.0, hold=True)]
        futures += [runner.submit(_short, i, hold=True) for i in range(5)]
        done = []
        for fut in runner.as_completed(futures):
            done.append(fut.result())
            if sorted(x for x in done if isinstance(x, int)) == [0, 1, 2, 3, 4]:
                release.touch()
    assert done == [0, 1, 2, 3, 4, "released"]


def test_the_caller_hears_once_when_a_worker_thread_is_left_idle(tmp_path):
    """``on_idle`` runs as the first worker thread is left with nothing to run, while the last
    task still runs (the manifest's imports are warmed then, on the free core: issue 35), and
    only once. Here it releases the long task: without the call that task times out."""
    from mf2.pipeline.runner import make_runner

    release, calls, done = tmp_path / "release", [], []

    def idle() -> None:
        calls.append(sorted(done))
        release.touch()

    with make_runner(2) as runner:
        futures = [runner.submit(_wait_for, str(release), 60.0, hold=True)]
        futures += [runner.submit(_short, i, hold=True) for i in range(3)]
        for fut in runner.as_completed(futures, on_idle=idle):
            done.append(fut.result())
    assert calls == [[0, 1]] and done == [0, 1, 2, "released"]


def test_the_dashboard_listens_on_this_machine_only():
    """Dask's LocalCluster served its dashboard (task keys name every video, worker logs) on
    every interface; mf2's binds the loopback address, as its printed link always said."""
    import psutil

    from mf2.pipeline.runner import make_runner

    with make_runner(1) as runner:
        port = int(runner.dashboard_link.split(":")[2].split("/")[0])
        listening = [c.laddr for c in psutil.Process().net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    assert [a.ip for a in listening if a.port == port] == ["127.0.0.1"], listening


def _rss_kept_after_free() -> int:
    """Bytes of resident memory a freed 24 MiB block leaves behind in this process."""
    import os

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    before = rss()
    block = bytearray(24 << 20)
    block[::4096] = b"\x01" * len(range(0, 24 << 20, 4096))  # touch every page
    del block
    return rss() - before


def test_workers_keep_freed_frames_instead_of_returning_them_to_the_os():
    """Issue 35: Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, so every large
    temporary the render stage frees goes back to the OS and is faulted in again. On mf2's
    workers a freed 24 MiB block stays in the process (below the 32 MiB mmap threshold, the
    128 MiB trim threshold); on a plain Dask worker it is returned."""
    from distributed import Client, LocalCluster

    from mf2.pipeline.runner import make_runner

    with make_runner(1) as runner:
        kept = list(runner.client.run(_rss_kept_after_free).values())
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster) as c:
        plain = list(c.run(_rss_kept_after_free).values())
    assert kept[0] > 16 << 20 and plain[0] < 8 << 20, (kept, plain)


def test_workers_take_the_longest_videos_first(videos, tmp_path):
    """A long video started last keeps one worker busy while the others idle (issue 35): on a
    cluster the videos go out longest first (frames, from the header), whatever their sizes
    on disk (here the shortest is the largest file); the manifest keeps the sources' order."""
    from mf2.dataset import landmarks_path, part_path

    src = tmp_path / "in"
    src.mkdir()
    for name, frames, crf in (
        ("a_short", 20, "0"),
        ("b_middle", 45, "26"),
        ("c_long", 80, "34"),
    ):  # names against lengths
        ffmpeg("-i", str(videos / "lp_d19.mp4"), "-frames:v", str(frames), "-an", "-crf", crf, str(src / f"{name}.mp4"))
    sizes = {p.stem: p.stat().st_size for p in src.iterdir()}
    assert sizes["a_short"] > sizes["b_middle"] > sizes["c_long"]  # so that sizes would give the opposite order
    out = tmp_path / "o"
    res = run_mf2("simulate", "--videos", str(src), "--out", str(out), "--workers", "1", "--landmarks", "dlib")
    assert res.returncode == 0, res.stderr
    made = sorted(("a_short", "b_middle", "c_long"), key=lambda v: landmarks_path(out, v).stat().st_mtime_ns)
    assert made == ["c_long", "b_middle", "a_short"]  # one worker: one video after another, longest first
    # and each video whole before the next: its pairs before the next one's landmarks (one task
    # per video on a CPU cluster; as two, the worker ran a held landmark task first)
    events = sorted(
        [(landmarks_path(out, v).stat().st_mtime_ns, f"{v} landmarks") for v in made]
        + [(part_path(out, "pravg", v).stat().st_mtime_ns, f"{v} pairs") for v in made]
    )
    assert [e for _, e in events] == [f"{v} {what}" for v in made for what in ("landmarks", "pairs")]
    ids = pq.read_table(out / "pairs.parquet", columns=["video_id"])["video_id"].to_pylist()
    assert ids == sorted(ids) and set(ids) == {"a_short", "b_middle", "c_long"}
