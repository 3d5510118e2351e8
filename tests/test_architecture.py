"""The package's shape: imports inside mf2 run one way (no cycles), module by module and
package by package, counting imports inside functions too (a lazy import is still a
dependency: it only moves the failure to run time)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mf2

ROOT = Path(mf2.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The mf2 modules ``path`` imports, anywhere in it."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(files)
    return {m: _imports(p, modules) for m, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """mf2.X (a subpackage or a top-level module) -> the mf2.Y it imports. The package's
    own __init__ (mf2) is left out: it only names the version."""

    def top(m: str) -> str:
        return ".".join(m.split(".")[:2])

    pk: dict[str, set[str]] = {}
    for m, deps in graph.items():
        if m == "mf2":
            continue
        pk.setdefault(top(m), set()).update(top(d) for d in deps if d != "mf2" and top(d) != top(m))
    return pk


# ARCHITECTURE.md's layers, from the base up: a package imports only from lower layers.
LAYERS = {
    0: ("errors", "atomic", "overlap", "pngs", "quality", "params", "builtin", "quick_exit"),
    1: ("schema", "sample", "yamlsafe"),
    2: ("dataset", "models"),
    3: ("sources",),
    4: ("video",),
    5: ("faces", "fetch"),
    6: ("flow",),
    7: ("blur",),
    8: ("modes",),
    9: ("simulate", "share", "track_audit", "restore"),
    10: ("train", "stats", "viz"),
    11: ("evaluate",),
    12: ("pipeline",),
    13: ("api",),
    14: ("cli",),
    15: ("__main__",),
}
LAYER = {f"mf2.{name}": rank for rank, names in LAYERS.items() for name in names}


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_modes_are_found_by_their_files() -> None:
    from mf2.modes import get_mode, mode_names

    assert mode_names() == ("pravg", "vla", "synthetic")
    assert all(get_mode(n).name == n for n in mode_names())


def test_the_cli_lists_modes_without_importing_them() -> None:
    import subprocess
    import sys

    code = "import sys, mf2.cli; print(sorted(m for m in sys.modules if m.startswith('mf2.modes.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_graph_sees_lazy_imports() -> None:
    graph = import_graph()
    assert "mf2.pipeline.execute" in graph["mf2.api"]  # api imports it inside a function
    assert "mf2.api" in graph["mf2.cli"]  # and cli imports api inside a command function


def test_no_module_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_no_package_import_cycles() -> None:
    assert cycles(_packages(import_graph())) == []


def test_every_package_has_a_layer() -> None:
    assert sorted(set(_packages(import_graph())) - set(LAYER)) == []


def test_imports_go_down_the_layers() -> None:
    upward = [
        (a, b) for a, deps in _packages(import_graph()).items() for b in deps if LAYER.get(b, -1) >= LAYER.get(a, -1)
    ]
    assert sorted(upward) == []


def _changed(p):
    if p.type is bool:
        return not p.default
    if p.choices:
        return next(c for c in p.choices if c != p.default)
    if p.key == "mode":
        return "vla"
    return p.default + (2 if p.type is int else 0.125)


def test_each_simulate_parameter_is_declared_once() -> None:
    """mf2.params is the only declaration: the config's defaults, the CLI's options and the
    recipe's keys all come from it, and each key sets exactly its own target."""
    from mf2.cli import simulate as command
    from mf2.modes.config import SimulateConfig, simulate_config
    from mf2.params import SIMULATE, get_path
    from mf2.pipeline.recipe import JOB_KEYS

    base = SimulateConfig()
    options = {o.name: o for o in command.params}
    for p in SIMULATE:
        assert get_path(base, p.target) == p.default, p.key
        cfg = simulate_config({p.key: _changed(p)})
        moved = [q.target for q in SIMULATE if get_path(cfg, q.target) != get_path(base, q.target)]
        assert moved == [p.target], (p.key, moved)
        assert p.key in options and options[p.key].default == p.default, p.key
        assert p.flag.split("/")[0] in options[p.key].opts, p.key
        assert JOB_KEYS[p.key] == ((p.type,), p.default)
    assert set(JOB_KEYS) == {"name", "inputs"} | {p.key for p in SIMULATE}  # inputs: videos or photos
    assert simulate_config({"margin": 0.5}).flow.margin == 0.5  # one margin, not two
    assert SimulateConfig(margin=0.5).flow.margin == 0.5  # even when built by hand


def test_params_record_uses_the_cli_names() -> None:
    """A setting has one name: the ``params`` record holds each setting of the mode under its
    key (no nesting, nothing twice), and a changed setting shows under that very key."""
    from mf2.modes import mode_names
    from mf2.modes.config import simulate_config
    from mf2.params import RECORDED_WHEN_ON, SIMULATE

    off = set(RECORDED_WHEN_ON)
    for mode in mode_names():
        base = simulate_config({"mode": mode}).params()
        want = {p.key for p in SIMULATE if p.applies(mode)}
        # a pair filter or --neighbours left off is not recorded (datasets made before it existed resume)
        assert want - off <= set(base) and not off & set(base), (mode, want - set(base))
        extra = set(base) - want - {"landmarks"}
        assert all(not isinstance(base[k], dict) for k in extra), (mode, extra)  # constants only, flat
        for p in SIMULATE:
            if p.key == "mode" or not p.applies(mode):
                continue
            changed = simulate_config({"mode": mode, p.key: _changed(p)}).params()
            moved = [k for k in {**base, **changed} if base.get(k) != changed.get(k)]
            assert moved == (["face", "faces"] if p.key == "faces" else [p.key]), (mode, p.key)  # all: no face


def test_landmark_fetch_and_dask_settings_are_declared_once() -> None:
    from mf2.cli import fetch, run_cmd, simulate
    from mf2.faces.select import LandmarkConfig
    from mf2.fetch.download import FetchConfig
    from mf2.params import DASK, FETCH, LANDMARKS, get_path
    from mf2.pipeline.recipe import SECTIONS, DaskConfig

    for table, cfg, section, command in (
        (LANDMARKS, LandmarkConfig(), "landmarks", simulate),
        (FETCH, FetchConfig(), "fetch", fetch),
        (DASK, DaskConfig(), "dask", simulate),
    ):
        options = {o.name: o for o in command.params}
        for p in table:
            assert get_path(cfg, p.target) == p.default, p.key
            assert options[p.key].default == p.default and p.flag in options[p.key].opts, p.key
            assert SECTIONS[section][p.key][1] == p.default, p.key
        assert set(SECTIONS[section]) == {p.key for p in table}
    overrides = {o.name: o for o in run_cmd.params}
    assert all(overrides[k].default is None for k in ("backend", "fan_weights", "out_size", "workers", "scheduler"))


def test_no_long_functions() -> None:
    """Drivers are split into named steps: no function over 60 lines (from its def to its last
    line, docstring included) anywhere in mf2, the click commands of mf2/cli.py included."""
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    long.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []


def test_every_arrow_schema_is_in_mf2_schema() -> None:
    """SCHEMA.md describes mf2.schema: a table schema declared anywhere else would escape it."""
    outside = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "schema.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "schema"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "pa"
            ):
                outside.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    assert outside == []


def test_only_the_dataset_package_names_the_dataset_files() -> None:
    """Issue 32: the dataset folder has one owner. Its file and folder names (the manifest, the
    parts, the caches, the images, the lock) are built into paths in mf2.dataset only
    (docstrings and help texts aside: they describe, they do not build paths)."""
    names = (
        '"pairs.parquet"',
        '"failures.parquet"',
        '"removed.parquet"',
        '".mf2-settings.json"',
        '"contact_sheet.png"',
        '".mf2.lock"',
        '/ "parts"',
        '/ "landmarks"',
        '/ "flow"',
        '/ "stats"',
        '"blurry/',
        '"sharp/',
        '("blurry", "sharp")',
    )
    found = [
        f"{p.relative_to(ROOT)}: {n}"
        for p in ROOT.rglob("*.py")
        if "dataset" not in p.relative_to(ROOT).parts
        for n in names
        if n in p.read_text()
    ]
    assert found == []


def test_failures_have_one_home() -> None:
    """Issue 32: the failure classes, the errno mapping and the retry policy are declared in
    mf2.errors only; simulate/run (pipeline), fetch and the CLI read them from there."""
    import errno

    from mf2.errors import ENVIRONMENT, FILTERED, InputError, failure_class, is_transient, retried_by_default

    assert failure_class(OSError(errno.ENOSPC, "full")) == "disk-full" in ENVIRONMENT
    assert failure_class(InputError("x", "not-a-video")) == "not-a-video"
    assert failure_class(ValueError("a bug")) is None
    assert is_transient("http-429") and not is_transient("private")
    # the machine's state, mf2's faults, transient errors and filtered inputs are redone by a
    # plain re-run; an input's own fault is not (while the input is unchanged)
    assert all(
        retried_by_default(c) for c in ("disk-full", "read-only", "internal-error", "worker-lost", "network", FILTERED)
    )
    assert not any(retried_by_default(c) for c in ("not-a-video", "private", "removed", "bad-image"))
    policy = ("RETRIED_BY_DEFAULT =", "RETRY_BY_DEFAULT =", "TRANSIENT =", "ENOSPC:", "_ENVIRONMENT =")
    found = [
        f"{p.relative_to(ROOT)}: {n}"
        for p in ROOT.rglob("*.py")
        if p.name != "errors.py" or p.parent != ROOT
        for n in policy
        if n in p.read_text()
    ]
    assert found == []


def test_architectures_are_built_by_name() -> None:
    """Issue 32: networks come from a registry (as BasicSR's), so the trainer and inference
    build the same network from the same name, and evaluate needs no part of the trainer."""
    from mf2.models.archs import build, names
    from mf2.models.config import PRESETS

    assert {"hourglass", "cgan_generator", "cgan_discriminator", "cgan_encoder", "cgan_decoder"} <= set(names())
    hg = build("hourglass", PRESETS["tiny"].hourglass)
    assert sum(p.numel() for p in hg.parameters()) > 0
    with pytest.raises(KeyError, match="no architecture"):
        build("nafnet", PRESETS["tiny"].hourglass)
    deps = import_graph()
    assert not [d for m, ds in deps.items() if m.startswith("mf2.evaluate") for d in ds if d.startswith("mf2.train")]


def test_every_command_setting_is_declared_once() -> None:
    """The settings of evaluate, split, train, deblur and export come from mf2.params: the
    options, the config dataclasses and mf2.api's defaults are the tables' (train's preset
    in the API is the one documented exception: ``small``, for a laptop)."""
    import inspect

    import mf2.api as api
    from mf2.cli import deblur, evaluate, export, split, train
    from mf2.evaluate.run import EvaluateConfig
    from mf2.params import DEBLUR, EVALUATE, EXPORT, SPLIT, TRAIN
    from mf2.share.split import SplitConfig, parse_ratios

    for table, command, cfg in ((EVALUATE, evaluate, EvaluateConfig()), (SPLIT, split, SplitConfig())):
        for p in table:
            want = parse_ratios(p.default) if p.key == "ratios" else p.default
            assert getattr(cfg, p.target) == want, p.key
    for table, command, function in ((EVALUATE, evaluate, None), (SPLIT, split, api.split), (TRAIN, train, api.train),
                                     (DEBLUR, deblur, api.deblur), (EXPORT, export, api.export)):  # fmt: skip
        options = {o.name: o for o in command.params}
        sig = inspect.signature(function).parameters if function else {}
        for p in table:
            assert options[p.key].default == p.default and p.flag in options[p.key].opts, (command.name, p.key)
            if p.choices:
                assert tuple(getattr(options[p.key].type, "choices", ())) == p.choices, (command.name, p.key)
            if function and not (function is api.train and p.key == "config"):
                assert sig[p.key].default == p.default, (function.__name__, p.key)
    assert inspect.signature(api.train).parameters["config"].default == "small"
    assert {o.name for o in evaluate.params} >= {"backend", "fan_weights"}  # the localiser: LANDMARKS
