"""The package's shape: imports inside mf2 run one way (no cycles), module by module and
package by package, counting imports inside functions too (a lazy import is still a
dependency: it only moves the failure to run time)."""

from __future__ import annotations

import ast
from pathlib import Path

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
    0: ("errors", "atomic", "pngs", "quality"),
    1: ("schema", "sources", "sample"),
    2: ("video",),
    3: ("faces", "fetch"),
    4: ("flow",),
    5: ("blur",),
    6: ("simulate", "share", "track_audit"),
    7: ("train", "stats", "viz"),
    8: ("evaluate",),
    9: ("pipeline",),
    10: ("cli",),
    11: ("__main__",),
}
LAYER = {f"mf2.{name}": rank for rank, names in LAYERS.items() for name in names}


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_lazy_imports() -> None:
    graph = import_graph()
    assert "mf2.pipeline.execute" in graph["mf2.cli"]  # cli imports it inside a command function


def test_no_module_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_no_package_import_cycles() -> None:
    assert cycles(_packages(import_graph())) == []


def test_every_package_has_a_layer() -> None:
    assert sorted(set(_packages(import_graph())) - set(LAYER)) == []


def test_imports_go_down_the_layers() -> None:
    upward = [(a, b) for a, deps in _packages(import_graph()).items() for b in deps
              if LAYER.get(b, -1) >= LAYER.get(a, -1)]
    assert sorted(upward) == []
