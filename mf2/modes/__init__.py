"""Blur modes as plugins: one module per mode (pravg, vla, synthetic), each defining
``MODE``, an instance of mf2.modes.base.Mode. A fourth mode is one new module here: it is
found by its file, listed by ``mode_names()`` and reached through ``get_mode(name)``.

A mode may also live in another folder on this package's ``__path__`` (the standard way to
extend a package; tests/test_modes.py adds a fourth mode so). ``mode_names()`` reads the folders without importing the modes (their planners pull in
OpenCV and the flow stage), so the CLI can list them and stay fast to start.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from mf2.errors import UsageError

_FIRST = ("pravg", "vla", "synthetic")  # the paper's order; others follow by name
_NOT_MODES = ("base", "config", "render")  # the interface, SimulateConfig and the pair renderer


def mode_names() -> tuple[str, ...]:
    found = [m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_MODES and not m.name.startswith("_")]
    return tuple(sorted(found, key=lambda n: (_FIRST.index(n) if n in _FIRST else len(_FIRST), n)))


# the modes found, by (package path, name): simulate asks for its mode twice a pair, and
# listing the mode folders each time took 3 % of a worker's time (issue 35's profile)
_FOUND: dict[tuple[tuple[str, ...], str], Any] = {}


def get_mode(name: str) -> Any:
    """The mode called ``name`` (a mf2.modes.base.Mode: typed as Any because base imports
    SimulateConfig, whose checks call this); a one-line error for any other name."""
    key = (tuple(__path__), name)
    mode = _FOUND.get(key)
    if mode is not None:
        return mode
    if name not in mode_names():
        raise UsageError(f"--mode {name!r}: expected one of {', '.join(mode_names())}")
    mode = importlib.import_module(f"mf2.modes.{name}").MODE
    assert mode.name == name, f"mf2/modes/{name}.py defines the mode {mode.name!r}"
    _FOUND[key] = mode
    return mode
