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
