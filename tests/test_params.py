"""One name per setting: the names that changed live on as aliases (recipes, flags) and in
upgrade_params (manifests before schema 1.4), and options of another mode are refused."""

from __future__ import annotations

import json
import textwrap

import pyarrow.parquet as pq
import pytest
from conftest import run_mf2

SIM = ("--workers", "0", "--no-contact-sheet", "--landmarks", "dlib")


def _nested(params: dict) -> dict:
    """``params`` as schema 1.3 and older wrote them (the inverse of upgrade_params)."""
    p = dict(params)
    mode = p["mode"]
    if mode == "vla":
        keys = (
            "min_L",
            "max_L",
            "min_overlap",
            "min_quality",
            "max_fb_bad",
            "osc_frac",
            "direction",
            "dup_jaccard",
            "thumb_face",
        )
        p["vla"] = {k: p.pop(k) for k in keys}
        p["flow"] = {
            "method": p.pop("flow"),
            "preset": p.pop("flow_preset"),
            "work_size": p.pop("flow_size"),
            "margin": p["margin"],
        }
    if mode == "synthetic":
        p["synthetic"] = {k: p.pop(k) for k in ("kernel_size", "seed", "noise_sigma", "iterations")}
    if p["faces"] == "main":
        p["faces"] = p.pop("face")
    return p


@pytest.mark.parametrize("mode", ["pravg", "vla", "synthetic"])
@pytest.mark.parametrize("faces", ["main", "all"])
def test_old_params_upgrade_to_todays_names(mode, faces) -> None:
    from mf2.modes.config import simulate_config
    from mf2.params import upgrade_params
    from mf2.schema import params_json

    now = simulate_config(
        {"mode": mode, "faces": faces, "face": "centre", "out_size": 96, "min_L": 5, "flow_size": 64, "kernel_size": 15}
    ).params()
    old = _nested(now)
    assert (params_json(old) == params_json(now)) == (mode == "pravg" and faces == "all")  # nothing nested
    assert params_json(upgrade_params(old)) == params_json(now)
    assert params_json(upgrade_params(now)) == params_json(now)  # idempotent


def test_old_recipe_keys_are_read_with_a_warning(tmp_path, capsys) -> None:
    from mf2.errors import UsageError
    from mf2.pipeline.recipe import load_recipe

    rec = tmp_path / "old.yaml"
    rec.write_text(
        textwrap.dedent("""\
        name: old
        defaults:
          crop_size: 128
        jobs:
          - {mode: pravg, L: 5, keep_duplicates: true}
          - {mode: pravg, L: 7}
    """)
    )
    r = load_recipe(rec)
    assert [(j.cfg.out_size, j.cfg.skip_duplicates) for j in r.jobs] == [(128, False), (128, True)]
    err = capsys.readouterr().err
    assert "crop_size is deprecated; use out_size" in err and "keep_duplicates is deprecated" in err
    assert "crop_size" not in json.dumps(r.to_dict())  # written back in today's names
    r = load_recipe(rec, ["jobs.*.crop_size=64"])
    assert {j.cfg.out_size for j in r.jobs} == {64}
    # an override (under either name) replaces the file's old name for that setting
    r = load_recipe(rec, ["jobs.*.keep_duplicates=false"])
    assert [j.cfg.skip_duplicates for j in r.jobs] == [True, True]
    rec.write_text("jobs:\n  - {mode: pravg, crop_size: 64, out_size: 128}\n")
    with pytest.raises(UsageError, match="crop_size and out_size name one setting"):
        load_recipe(rec)


def test_cli_old_flag_and_options_of_another_mode(tmp_path) -> None:
    res = run_mf2("simulate", "--videos", str(tmp_path), "--out", str(tmp_path / "o"), "--mode", "vla", "--L", "9")
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "mf2: error: --L 9: applies to --mode pravg, not vla"
    ], res.stderr
    res = run_mf2("simulate", "--videos", str(tmp_path), "--out", str(tmp_path / "o"), "--kernel-size", "15")
    assert res.returncode == 2 and "--kernel-size 15: applies to --mode synthetic, not pravg" in res.stderr
    res = run_mf2(
        "simulate", "--videos", str(tmp_path), "--out", str(tmp_path / "o"), "--crop-size", "64", "--out-size", "64"
    )
    assert res.returncode == 2 and "--crop-size and --out-size set one thing" in res.stderr, res.stderr


def test_dataset_of_schema_1_3_resumes_under_new_names(tmp_path) -> None:
    """A dataset whose parts and manifest carry the nested params of schema 1.3 is the same
    dataset: the next run resumes every video (no --replace), and rewrites the manifest's rows
    in today's names."""
    from mf2.atomic import write_parquet_atomic
    from mf2.sample import sample_video

    out = tmp_path / "DS"
    args = [
        "simulate",
        "--videos",
        str(sample_video()),
        "--out",
        str(out),
        "--mode",
        "vla",
        "--out-size",
        "64",
        "--max-L",
        "9",
        *SIM,
    ]
    first = run_mf2(*args)
    assert first.returncode == 0, first.stderr
    now = json.loads(pq.read_metadata(out / "pairs.parquet").metadata[b"mf2.params"])
    old = json.dumps(_nested(now), sort_keys=True)
    for path in [out / "pairs.parquet", *sorted((out / "parts").rglob("*.parquet"))]:
        t = pq.read_table(path)
        md = {**t.schema.metadata, b"mf2.params": old.encode(), b"mf2.schema_version": b"1.3"}
        t = t.set_column(t.schema.get_field_index("params"), "params", [[old] * t.num_rows])
        write_parquet_atomic(path, t.replace_schema_metadata(md))
    again = run_mf2(*args)
    assert again.returncode == 0, again.stderr
    assert "1 resumed" in again.stderr, again.stderr
    t = pq.read_table(out / "pairs.parquet")
    assert t.num_rows > 0 and set(t["params"].to_pylist()) == {json.dumps(now, sort_keys=True)}
    assert json.loads(t.schema.metadata[b"mf2.params"]) == now


def test_fetch_old_flags_and_recipe_keys_are_read_with_a_warning(tmp_path) -> None:
    """fetch's --workers (parallel downloads) and --rate-limit were renamed: --workers means Dask
    processes everywhere, and --rate-limit read like yt-dlp's bytes/s --limit-rate."""
    from mf2.pipeline.recipe import load_recipe

    base = ("fetch", "sample", "--out", str(tmp_path / "d"), "--validate-only")
    res = run_mf2(*base, "--workers", "3", "--rate-limit", "6")
    assert res.returncode == 0, res.stderr
    assert "--workers is deprecated; use --downloads" in res.stderr
    assert "--rate-limit is deprecated; use --starts-per-minute" in res.stderr
    res = run_mf2(*base, "--workers", "3", "--downloads", "2")
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "mf2: error: --workers and --downloads set one thing; keep --downloads"
    ], res.stderr
    res = run_mf2(*base, "--downloads", "0")
    assert res.returncode == 2 and "--downloads" in res.stderr
    rec = tmp_path / "r.yaml"
    rec.write_text("fetch: {workers: 5, rate_limit: 12}\ndask: {workers: 1}\njobs:\n  - {mode: pravg}\n")
    r = load_recipe(rec)
    assert (r.fetch.downloads, r.fetch.starts_per_minute, r.dask.workers) == (5, 12.0, 1)
    assert load_recipe(rec, ["fetch.workers=7", "dask.workers=2"]).fetch.downloads == 7
    assert load_recipe(rec, ["fetch.workers=7", "dask.workers=2"]).dask.workers == 2
    assert "workers" not in r.to_dict()["fetch"] and r.to_dict()["fetch"]["downloads"] == 5


def test_shared_option_names_mean_one_thing_in_every_command() -> None:
    """An option name that several commands take is declared alike in all of them (run's
    defaults are None: "the recipe's value"), and pair datasets are arguments wherever a
    command reads them."""
    from mf2.cli import cli

    shared = (
        "--workers",
        "--scheduler",
        "--retry-failed",
        "--landmarks",
        "--fan-weights",
        "--json",
        "--strict",
        "--device",
        "--replace",
    )
    seen: dict[str, dict] = {}
    for name, cmd in cli.commands.items():
        for p in cmd.params:
            if getattr(p, "hidden", False):  # a deprecated spelling (fetch --workers: --downloads)
                continue
            for flag in (o for o in p.opts if o in shared):
                default = "recipe" if name == "run" and p.default is None else p.default
                desc = (type(p.type).__name__, getattr(p.type, "choices", None), getattr(p, "is_flag", None))
                if default != "recipe":
                    seen.setdefault(flag + " default", {})[name] = default
                seen.setdefault(flag, {})[name] = desc
        visible = {o for p in cmd.params if not getattr(p, "hidden", False) for o in getattr(p, "opts", [])}
        assert "--pairs" not in visible, f"mf2 {name} still shows --pairs"
    for flag, by_cmd in seen.items():
        assert len(set(by_cmd.values())) == 1, f"{flag} differs between commands: {by_cmd}"
    assert set(seen["--retry-failed"]) == {"simulate", "run", "fetch"}
    assert set(seen["--landmarks"]) >= {"simulate", "evaluate"}


def test_retry_failed_old_values_are_read_with_a_warning(tmp_path) -> None:
    res = run_mf2("fetch", "sample", "--out", str(tmp_path / "d"), "--validate-only", "--retry-failed", "all")
    assert res.returncode == 0 and "--retry-failed all is deprecated; use --retry-failed alone" in res.stderr
    res = run_mf2("fetch", "sample", "--out", str(tmp_path / "d"), "--validate-only", "--retry-failed", "some")
    assert res.returncode == 2 and "takes no value" in res.stderr


def test_recipe_keys_of_another_mode_are_refused(tmp_path) -> None:
    """As on the command line: a job's key its mode does not use, or a default no job uses."""
    from mf2.errors import UsageError
    from mf2.pipeline.recipe import load_recipe

    rec = tmp_path / "r.yaml"
    rec.write_text("jobs:\n  - {mode: vla, L: 9}\n")
    with pytest.raises(UsageError, match=r"jobs\[0\]\.L: applies to mode pravg, not vla"):
        load_recipe(rec)
    rec.write_text("defaults: {kernel_size: 15}\njobs:\n  - {mode: vla}\n  - {mode: pravg}\n")
    with pytest.raises(UsageError, match="defaults.kernel_size: applies to mode synthetic, not pravg or vla"):
        load_recipe(rec)
    rec.write_text("defaults: {L: 9, max_L: 31}\njobs:\n  - {mode: vla}\n  - {mode: pravg}\n")
    r = load_recipe(rec)  # a default that some job uses is fine
    assert [j.cfg.mode for j in r.jobs] == ["vla", "pravg"] and r.jobs[1].cfg.pravg.L == 9
    # the resolved recipe writes each job's own keys; one written with every key (older mf2) loads
    assert "L" not in r.to_dict()["jobs"][0] and "max_L" not in r.to_dict()["jobs"][1]
    rec.write_text("jobs:\n  - {mode: vla, L: 7, stride: 1, kernel_size: 31}\n")
    assert load_recipe(rec).jobs[0].cfg.mode == "vla"
