"""mf2.api: the README's notebook-style example runs as written, and the API refuses what the
CLI refuses, with the same one line."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mf2.errors import UsageError

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    text = README.read_text()
    m = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README lost its api example"
    return m.group(1)


@pytest.mark.slow
def test_the_readme_api_example_runs(tmp_path: Path, capsys) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the example writes to a relative folder, as a notebook would
    try:
        exec(compile(_example(), "README api-example", "exec"), {"__name__": "__readme__"})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    n = int(out.split()[0])
    assert n > 0 and "pairs in" in out
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "runs" / "api_demo" / "pairs.parquet")
    assert t.num_rows == n and set(t["mode"].to_pylist()) == {"pravg"} and set(t["L"].to_pylist()) == {7}
    assert set(t["out_size"].to_pylist()) == {128}


def test_api_refuses_what_the_cli_refuses(tmp_path: Path) -> None:
    import mf2.api as api

    with pytest.raises(UsageError, match="not a simulate setting"):
        api.simulate_config(lenght=7)
    with pytest.raises(UsageError, match="applies to mode"):
        api.simulate_config(mode="pravg", direction="both")
    assert api.simulate_config(mode="pravg", direction="forward")[0].mode == "pravg"  # a default, as in recipes
    with pytest.raises(UsageError):
        api.simulate_config(mode="pravg", L=0)
    cfg, filters = api.simulate_config(mode="vla", direction="both", out_size=128)
    assert (cfg.mode, cfg.vla.direction, cfg.out_size) == ("vla", "both", 128)
    with pytest.raises(UsageError, match="together"):
        api.simulate(tmp_path / "o", tmp_path, config=cfg, mode="vla")


@pytest.mark.slow
def test_every_command_is_a_function(tmp_path: Path, videos: Path) -> None:
    """split, filter, remove, evaluate, fetch and run from Python, as a notebook calls them,
    with typed results; the CLI calls the same functions."""
    import pyarrow.parquet as pq

    import mf2.api as api

    ds = tmp_path / "ds"
    for clip in ("fomm_08.mp4", "lp_d19.mp4"):
        api.simulate(ds, videos / clip, mode="pravg", L=7, stride=4, out_size=64)
    ids = tmp_path / "ids.csv"
    ids.write_text("video_id,identity\nfomm_08,ann\nlp_d19,bob\n")
    sp = api.split(ds, ratios="train=1,test=1", identities=ids)
    t = pq.read_table(sp.manifest)
    assert sp.n_pairs == t.num_rows and set(sp.splits) <= {"train", "test"}
    assert set(t["identity"].to_pylist()) == {"ann", "bob"}
    assert all(len(set(t.filter(pa_eq(t, "identity", who))["split"].to_pylist())) == 1 for who in ("ann", "bob"))

    kept = api.filter_pairs(ds, tmp_path / "moving", min_blur=38)
    assert kept.n_kept + sum(kept.dropped.values()) == kept.n_in == t.num_rows and api.verify(kept.export.path).ok
    with pytest.raises(UsageError, match="not a pair filter"):
        api.filter_pairs(ds, tmp_path / "x", min_bluer=38)

    ev = api.evaluate([ds], out=tmp_path / "report", limit=4, identity=False, landmarks="dlib")
    assert ev.methods == ["Blurred", "Oracle"] and sum(ev.n_pairs.values()) == 4
    assert (tmp_path / "report" / "report.json") in ev.report_files

    gone = api.remove(ds, ["lp_d19"], reason="test")
    assert gone.video_ids == ["lp_d19"] and gone.n_pairs > 0
    assert set(pq.read_table(ds / "pairs.parquet")["video_id"].to_pylist()) == {"fomm_08"}

    got = api.fetch("sample", tmp_path / "data")  # a built-in manifest, by name
    assert got.counts.get("ok") == 1 and (tmp_path / "data" / "fetch.parquet").is_file()
    with pytest.raises(UsageError, match="not a fetch setting"):
        api.fetch("sample", tmp_path / "data", max_heigth=480)

    run = api.run(
        "pravg",
        tmp_path / "run",
        manifest="sample",
        sets=["jobs.*.out_size=64"],
        overrides={"dask.scheduler": "synchronous"},
    )
    assert run.recipe == "pravg" and len(run.jobs) == 5 and all(s.n_failed == 0 for s in run.jobs.values())
    assert (tmp_path / "run" / "run.json").is_file()


def pa_eq(t, column: str, value: str):
    import pyarrow.compute as pc

    return pc.equal(t[column], value)
