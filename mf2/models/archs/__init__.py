"""Network architectures by name: the stacked hourglass or the full-resolution CNN (step 1),
the two-pathway cGAN (step 2), and the blur gate (how much of a correction to keep). A small registry, as BasicSR keeps one: ``build(name, config)`` makes a network; a new
architecture is a module that registers its constructor with ``@register("name")`` and is
listed in ``_MODULES``.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_MODULES = ("mf2.models.archs.hourglass", "mf2.models.archs.fullres", "mf2.models.archs.cgan", "mf2.models.archs.gate")


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(make: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name] is not make:
            raise ValueError(f"architecture {name!r} registered twice")
        _REGISTRY[name] = make
        return make

    return deco


def names() -> tuple[str, ...]:
    """Every registered architecture."""
    for m in _MODULES:
        importlib.import_module(m)
    return tuple(sorted(_REGISTRY))


def build(name: str, *args: Any, **kwargs: Any) -> nn.Module:
    """A new network of the named architecture (its constructor's arguments)."""
    if name not in names():
        raise KeyError(f"no architecture {name!r}; known: {', '.join(names())}")
    return _REGISTRY[name](*args, **kwargs)


def build_restorer(cfg: Any) -> nn.Module:
    """Step 1's network of a ``TrainConfig``: ``cfg.restorer`` names the architecture and
    the config section of the same name holds its settings (``hourglass``, ``fullres``)."""
    return build(cfg.restorer, getattr(cfg, cfg.restorer))
