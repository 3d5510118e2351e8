"""The `mf2` command as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pyarrow.parquet as pq
import pytest
from conftest import run_mf2


@pytest.mark.slow
def test_bad_inputs_are_recorded_and_the_good_one_still_processed(videos, tmp_path):
    vids = tmp_path / "vids"
    vids.mkdir()
    shutil.copy(videos / "fomm_08.mp4", vids / "good.mp4")
    data = (videos / "lp_d18.mp4").read_bytes()
    (vids / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (vids / "zero.mp4").touch()
    (vids / "text.mp4").write_text("hello, not a video\n" * 20)
    out = tmp_path / "out"
    res = run_mf2("simulate", "--videos", str(vids), "--out", str(out), "--L", "9", "--stride", "3", "--workers", "0")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "4 videos: 1 ok" in res.stderr and "3 failed" in res.stderr
    fail = {r["video_id"]: r for r in pq.read_table(out / "failures.parquet").to_pylist()}
    assert set(fail) == {"truncated", "zero", "text"}
    assert fail["zero"]["error_class"] == "empty-file"
    assert fail["text"]["error_class"] == "not-a-video"
    assert fail["truncated"]["error_class"] in ("not-a-video", "decode-error")
    pairs = pq.read_table(out / "pairs.parquet").to_pylist()
    assert pairs and {p["video_id"] for p in pairs} == {"good"} and all(p["L"] == 9 for p in pairs)
    assert (out / "contact_sheet.png").is_file()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--L", "4"], "--L 4"),
        (["--L", "1"], "--L 1"),
        (["--crf", "log"], "--crf"),
        (["--stride", "0"], "--stride 0"),
        (["--mode", "nope"], "--mode"),
        (["--videos", "/definitely/not/here"], "/definitely/not/here"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(videos, tmp_path, args, needle):
    base = {"--videos": str(videos / "fomm_08.mp4"), "--out": str(tmp_path / "o")}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    res = run_mf2("simulate", *[x for kv in base.items() for x in kv])
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mf2: error:") and needle in lines[0]
    assert not (tmp_path / "o" / "pairs.parquet").exists()


@pytest.mark.slow
def test_demo_on_embedded_sample_then_resume(tmp_path):
    out = tmp_path / "demo"
    res = run_mf2("demo", "--out", str(out))
    assert res.returncode == 0, res.stderr
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 300 and sheet.shape[1] > 600
    first = pq.read_table(out / "pairs.parquet")
    assert first.num_rows > 100  # 120 frames at L=7
    assert set(first["video_id"].to_pylist()) == {"carphone_pristine"}
    res2 = run_mf2("demo", "--out", str(out))
    assert res2.returncode == 0 and "(1 resumed)" in res2.stderr
    again = pq.read_table(out / "pairs.parquet")
    assert again.equals(first)


def test_probe_command_prints_exact_fps(videos):
    res = run_mf2("probe", str(videos / "fomm_08.mp4"))
    assert res.returncode == 0 and '"fps": "35/1"' in res.stdout
    bad = run_mf2("probe", str(videos / "PROVENANCE.md"))
    assert bad.returncode == 1 and bad.stderr.startswith("mf2: error:") and "PROVENANCE.md" in bad.stderr


def test_builtin_names_work_from_any_folder(tmp_path):
    """`mf2 recipes` lists what ships; commands take those names wherever they run, a file of
    the same name in the working folder wins, and a bare unknown word is one line naming them."""
    import json

    from conftest import REPO

    res = run_mf2("recipes", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    listed = json.loads(res.stdout)
    assert {b["name"] for b in listed["recipes"]} == {p.stem for p in (REPO / "pipelines").glob("*.yaml")}
    assert {b["name"] for b in listed["configs"]} == {"paper", "small", "tiny"}
    assert {"sample", "videos"} <= {b["name"] for b in listed["manifests"]}
    assert all(Path(b["path"]).is_file() for k in listed.values() for b in k)
    res = run_mf2("fetch", "sample", "--out", "data", "--validate-only", cwd=tmp_path)
    assert res.returncode == 0 and "sample.csv: 1 rows" in res.stdout, res.stderr
    (tmp_path / "sample").write_text("not,a\nmanifest\n")
    res = run_mf2("fetch", "sample", "--out", "data", "--validate-only", cwd=tmp_path)
    assert res.returncode != 0 and str(tmp_path / "sample") in res.stderr
    res = run_mf2("run", "nosuch", "--videos", "v", "--out", "o", cwd=tmp_path)
    assert (
        res.returncode == 2
        and "not a built-in recipe (2mf2, deblur-model, paper-model, paper-tests, pravg" in res.stderr
    )
    assert "Traceback" not in res.stderr and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_simulate_json_and_strict(videos, tmp_path):
    """Scripts get the summary as JSON on stdout and, with --strict, exit 1 when an input failed;
    the good video's pairs are made either way."""
    import json

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "fomm_08.mp4").symlink_to(videos / "fomm_08.mp4")
    (tmp_path / "in" / "broken.mp4").write_bytes(b"not a video")
    args = (
        "simulate",
        "--videos",
        "in",
        "--out",
        "out",
        "--mode",
        "pravg",
        "--L",
        "3",
        "--stride",
        "9",
        "--out-size",
        "64",
        "--workers",
        "0",
        "--no-contact-sheet",
    )
    r = run_mf2(*args, "--json", "--strict", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"mf2: error: --strict: 1 of 2 videos failed (see {tmp_path / 'out' / 'failures.parquet'})"
    )
    s = json.loads(r.stdout)
    assert (s["videos"], s["ok"], s["failed"]) == (2, 1, 1) and s["pairs"] > 0
    assert s["failures_by_class"] and s["pairs_path"] == str(tmp_path / "out" / "pairs.parquet")
    r = run_mf2(*args, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == ""
    r = run_mf2("stats", "out", "--json", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["n_pairs"] == s["pairs"], r.stderr
    r = run_mf2("evaluate", "out", "--out", "report", "--no-identity", "--limit", "4", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["methods"] == ["Blurred", "Oracle"] and ev["n_pairs"] and ev["results"]
    assert ev == json.loads((tmp_path / "report" / "report.json").read_text())


def test_shell_completion_completes_commands():
    """README's `eval "$(_MF2_COMPLETE=bash_source mf2)"` line: click's completion answers."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "_MF2_COMPLETE": "bash_complete", "COMP_WORDS": "mf2 rec", "COMP_CWORD": "1"}
    res = subprocess.run([sys.executable, "-m", "mf2"], capture_output=True, text=True, env=env)
    assert res.returncode == 0 and "plain,recipes" in res.stdout.split(), res.stdout


def test_every_command_has_examples_that_parse():
    """Each command's --help ends with examples, and each example of it parses as that command's
    options (names, types, choices): an example that drifts from the options fails here."""
    import shlex

    from mf2.cli import cli

    for name, cmd in cli.commands.items():
        assert "Examples:" in (cmd.help or ""), name
        lines = [ln.strip().split("  #")[0].split(" | ")[0] for ln in cmd.help.split("Examples:")[1].splitlines()]
        own = [shlex.split(ln) for ln in lines if ln.rstrip() == f"mf2 {name}" or ln.startswith(f"mf2 {name} ")]
        assert own, name
        for argv in own:
            cmd.make_context(name, argv[2:])  # raises on an unknown option or a bad value


def test_help_lists_commands():
    res = run_mf2("--help")
    assert res.returncode == 0 and all(c in res.stdout for c in ("simulate", "demo", "probe", "sample"))


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_a_clean_run(videos, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    vids = tmp_path / "vids"
    vids.mkdir()
    for name in ("fomm_08.mp4", "fomm_04.mp4", "fomm_10.mp4"):
        shutil.copy(videos / name, vids / name)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    args = ["--videos", str(vids), "--L", "7", "--stride", "2", "--no-contact-sheet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mf2", "simulate", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((killed / "parts").glob("*/*.parquet")):
        time.sleep(0.05)
    time.sleep(0.5)  # into the second video
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "pairs.parquet").exists()
    res = run_mf2("simulate", *args, "--out", str(killed))
    assert res.returncode == 0 and "resumed" in res.stderr, res.stderr
    assert not list(killed.rglob(".*.tmp"))
    assert run_mf2("simulate", *args, "--out", str(clean)).returncode == 0
    key = lambda t: sorted(zip(t["pair_id"].to_pylist(), t["blurry_sha256"].to_pylist(), t["sharp_sha256"].to_pylist()))  # noqa: E731
    assert key(pq.read_table(killed / "pairs.parquet")) == key(pq.read_table(clean / "pairs.parquet"))


_EXIT_PROBE = """
import atexit, os, threading, time

_out = os.environ["MF2_EXIT_PROBE"]


def _mark(name, _open=os.open, _close=os.close, _join=os.path.join, _flags=os.O_CREAT | os.O_WRONLY):
    _close(_open(_join(_out, name), _flags))


atexit.register(_mark, "atexit")
_left_open = open(os.path.join(_out, "buffered"), "w")  # never flushed nor closed
_left_open.write("kept")
threading.Thread(target=lambda: (time.sleep(0.3), _mark("thread"))).start()  # not a daemon


class _Freed:
    def __del__(self, _mark=_mark):
        _mark("teardown")


_kept_until_teardown = _Freed()
"""


@pytest.mark.parametrize("args, code", [(["--version"], 0), (["simulate", "--L", "0"], 2)])
def test_the_command_exits_without_the_interpreter_teardown(tmp_path, args, code):
    """`mf2` leaves as mypy does (mf2.quick_exit): after a pipeline run Python's teardown of
    ~1,450 modules took 0.3 s (issue 35). What the normal exit does that is seen still happens:
    a thread that is not a daemon finishes, atexit handlers run, the output is all there, the
    exit status is kept, a file left open keeps what was written to it. The interpreter's
    teardown (here: freeing a module's object) is skipped."""
    import os
    import subprocess
    import sys

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_EXIT_PROBE)
    marks = tmp_path / "marks"
    marks.mkdir()
    path = os.pathsep.join(p for p in (str(tmp_path / "site"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "MF2_EXIT_PROBE": str(marks)}
    res = subprocess.run([sys.executable, "-m", "mf2", *args], capture_output=True, text=True, env=env)
    assert res.returncode == code, res.stderr
    if code == 0:
        assert res.stdout.startswith("mf2, version"), res.stdout
    else:
        assert res.stderr.startswith("mf2: error: ") and "Traceback" not in res.stderr, res.stderr
    assert sorted(p.name for p in marks.iterdir()) == ["atexit", "buffered", "thread"]
    assert (marks / "buffered").read_text() == "kept"  # a file left open is flushed, as the teardown did
