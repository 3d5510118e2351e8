"""Recipes: a whole run described in YAML (what `mf2 run` executes), validated with errors
that name the file and the key, with command-line overrides and a resolved copy saved with
the output so a run can be repeated exactly.

Precedence, lowest first: built-in defaults, the recipe file, ``--set KEY=VALUE``, dedicated
flags (``--workers``, ``--landmarks``...).
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from mf2.errors import UsageError, warn
from mf2.faces.select import LandmarkConfig
from mf2.fetch.download import FetchConfig
from mf2.modes import get_mode
from mf2.modes.config import SimulateConfig, simulate_config
from mf2.params import (
    ALIAS_BY_OLD,
    DASK,
    FETCH,
    FILTERS,
    LANDMARKS,
    SIMULATE,
    Param,
    aliases,
    default,
    resolve_aliases,
    section_of,
    values_of,
)
from mf2.video.filters import VideoFilter
from mf2.yamlsafe import load_yaml, shown

_OPT = type(None)
PARAM_BY_KEY: dict[str, Param] = {p.key: p for p in SIMULATE}
Spec = dict[str, tuple[tuple[type, ...], Any]]  # key -> (accepted types, default)


def _spec(table: tuple[Param, ...] | list[Param]) -> Spec:
    """A recipe section's keys, from their one declaration in mf2.params."""
    return {p.key: ((p.type,) if p.default is not None else (p.type, _OPT), p.default) for p in table}


# Job keys are `mf2 simulate`'s options (mf2.params), plus a name and the inputs the job blurs:
# the run's videos, or its photos (`--images`; single frames, so synthetic jobs only).
JOB_KEYS: Spec = {"name": ((str, _OPT), None), "inputs": ((str,), "videos"), **_spec(SIMULATE)}
INPUTS = ("videos", "photos")
# A recipe's optional training step, after its jobs: a model from their pairs (mf2 train).
TRAIN_KEYS: Spec = {
    "config": ((str,), "small"),
    "pairs": ((list,), None),
    "hg_pairs": ((list, _OPT), None),
    "gate_pairs": ((list, _OPT), None),
    "device": ((str,), "auto"),
}
SECTIONS: dict[str, Spec] = {
    "landmarks": _spec(LANDMARKS),
    "fetch": _spec(FETCH),
    "filters": _spec(FILTERS),
    "dask": _spec(DASK),
}
TOP_KEYS = {
    "name": ((str,), "run"),
    "description": ((str, _OPT), None),
    "defaults": None,
    "jobs": None,
    "train": None,
    **{k: None for k in SECTIONS},
}
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", _OPT: "null"}
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class DaskConfig:
    workers: int | None = default("workers", DASK)
    scheduler: str | None = default("scheduler", DASK)


@dataclass(frozen=True)
class RecipeJob:
    name: str  # the job's folder under the run's --out
    cfg: SimulateConfig
    inputs: str = "videos"  # or "photos" (--images)


@dataclass(frozen=True)
class TrainStep:
    """Train a model on the jobs' pairs once they are built: ``pairs`` (job names) train the
    cGAN, and the hourglass too unless ``hg_pairs`` are given; the blur gate learns from
    ``gate_pairs`` when given (else from the hourglass's); the model is RUN/model.pt."""

    config: str = "small"  # a preset name or a YAML file (mf2.models.config.load_config)
    pairs: tuple[str, ...] = ()
    hg_pairs: tuple[str, ...] = ()
    device: str = "auto"
    gate_pairs: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "config": self.config,
            "pairs": list(self.pairs),
            "hg_pairs": list(self.hg_pairs) or None,
            "gate_pairs": list(self.gate_pairs) or None,
            "device": self.device,
        }


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str | None
    landmarks: LandmarkConfig
    fetch: FetchConfig  # not validated until a fetch runs (a recipe run on local videos ignores it)
    dask: DaskConfig
    jobs: tuple[RecipeJob, ...]  # validated, every setting resolved
    filters: VideoFilter = VideoFilter()  # which videos every job keeps
    train: TrainStep | None = None

    def to_dict(self) -> dict:
        """The resolved recipe, in the keys a recipe file uses (what run folders save)."""
        out = {
            "name": self.name,
            "description": self.description,
            "landmarks": values_of(self.landmarks, LANDMARKS),
            "fetch": values_of(self.fetch, FETCH),
            "filters": values_of(self.filters, FILTERS),
            "dask": values_of(self.dask, DASK),
            "jobs": [
                {
                    "name": j.name,
                    **({"inputs": j.inputs} if j.inputs != "videos" else {}),
                    **values_of(j.cfg, tuple(p for p in SIMULATE if p.applies(j.cfg.mode))),
                }
                for j in self.jobs
            ],
        }
        if self.train is not None:
            out["train"] = self.train.to_dict()
        return out

    def landmark_config(self) -> LandmarkConfig:
        return self.landmarks

    def simulate_configs(self) -> list[tuple[str, SimulateConfig]]:
        return [(j.name, j.cfg) for j in self.jobs]

    def fetch_config(self) -> FetchConfig:
        self.fetch.validate()
        return self.fetch


def _where(path: Path | str, key: str) -> str:
    return f"{path}: {key}" if key else str(path)


def _unknown(src, where: str, key: str, allowed) -> UsageError:
    hint = difflib.get_close_matches(key, list(allowed), n=1)
    tip = f" (did you mean {hint[0]!r}?)" if hint else f" (expected one of: {', '.join(sorted(allowed))})"
    return UsageError(f"{_where(src, where + key)}: unknown key{tip}")


def _check_value(src, key: str, value: Any, types: tuple[type, ...]) -> Any:
    if isinstance(value, bool) and bool not in types:
        ok = False
    elif float in types and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    else:
        ok = isinstance(value, types)
    if not ok:
        want = " or ".join(_TYPE_NAMES[t] for t in types)
        raise UsageError(f"{_where(src, key)}: expected {want}, got {shown(value)} ({type(value).__name__})")
    return value


def _check_mapping(src, prefix: str, d: Any, spec: dict) -> dict:
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise UsageError(f"{_where(src, prefix.rstrip('.'))}: expected a mapping, got {type(d).__name__}")
    if spec is JOB_KEYS or prefix == "fetch.":
        try:
            d, notes = resolve_aliases(d, where=f"{src}: {prefix}", section=section_of(prefix.rstrip(".")))
        except ValueError as e:
            raise UsageError(str(e)) from None
        for line in notes:
            warn(line)
    out = {}
    for k, v in d.items():
        if k not in spec:
            raise _unknown(src, prefix, str(k), spec)
        out[k] = _check_value(src, prefix + k, v, spec[k][0])
    return out


def _refuse_other_modes(src, prefix: str, given: dict, modes: list[str]) -> None:
    """A job's key of another blur mode (``{mode: vla, L: 9}``), or a default that no job's
    mode uses, is a mistake: refused, never silently ignored (as the CLI does). At its default
    value it is harmless, and resolved recipes written before mf2 left such keys out carry it."""
    for key, value in given.items():
        p = PARAM_BY_KEY.get(key)
        if p is not None and value != p.default and not any(p.applies(m) for m in modes):
            raise UsageError(
                f"{_where(src, prefix + key)}: applies to mode {' or '.join(p.modes or ())}, "
                f"not {' or '.join(sorted(set(modes)))}"
            )


def _job_name(j: dict) -> str:
    return get_mode(j["mode"]).job_name(j)


def parse_recipe(data: Any, src: str | Path = "recipe") -> Recipe:
    if not isinstance(data, dict):
        raise UsageError(f"{src}: a recipe is a YAML mapping (name, landmarks, defaults, jobs, ...)")
    for k in data:
        if k not in TOP_KEYS:
            raise _unknown(src, "", str(k), TOP_KEYS)
    name = _check_value(src, "name", data.get("name", "run"), (str,))
    if not _NAME.match(name):
        raise UsageError(f"{_where(src, 'name')}: {name!r} must match {_NAME.pattern}")
    desc = _check_value(src, "description", data.get("description"), (str, _OPT))
    sections: dict[str, dict[str, Any]] = {}
    for sec, spec in SECTIONS.items():
        given = _check_mapping(src, f"{sec}.", data.get(sec), spec)
        sections[sec] = {k: given.get(k, d) for k, (_, d) in spec.items()}
    landmarks = LandmarkConfig(**sections["landmarks"])
    jobs = _parse_jobs(data, src, name, landmarks)
    filters = VideoFilter(**sections["filters"])
    filters.validate()
    train = _parse_train(src, data.get("train"), jobs) if "train" in data else None
    return Recipe(
        name, desc, landmarks, FetchConfig(**sections["fetch"]), DaskConfig(**sections["dask"]), jobs, filters, train
    )


def _parse_train(src, given: Any, jobs: tuple[RecipeJob, ...]) -> TrainStep:
    """The training step: its keys checked, every job it names one of the recipe's."""
    d = _check_mapping(src, "train.", given, TRAIN_KEYS)
    names = [j.name for j in jobs]
    lists = {}
    for key in ("pairs", "hg_pairs", "gate_pairs"):
        value = d.get(key) or []
        for i, n in enumerate(value):
            if n not in names:
                raise UsageError(
                    f"{_where(src, f'train.{key}[{i}]')}: {n!r} is not a job of this recipe ({', '.join(names)})"
                )
        lists[key] = tuple(value)
    if not lists["pairs"]:
        raise UsageError(f"{_where(src, 'train.pairs')}: name the job(s) whose pairs train the model")
    device = d.get("device", "auto")
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"{_where(src, 'train.device')}: {device!r}: expected auto, cpu or cuda")
    return TrainStep(d.get("config", "small"), lists["pairs"], lists["hg_pairs"], device, lists["gate_pairs"])


def _parse_jobs(data: dict, src: str | Path, recipe: str, landmarks: LandmarkConfig) -> tuple[RecipeJob, ...]:
    """Each job: the defaults, then its own keys; named, validated, names distinct."""
    defaults = _check_mapping(src, "defaults.", data.get("defaults"), JOB_KEYS)
    if "name" in defaults:
        raise UsageError(f"{_where(src, 'defaults.name')}: a name belongs to one job")
    jobs_in = data.get("jobs")
    if not isinstance(jobs_in, list) or not jobs_in:
        raise UsageError(f"{_where(src, 'jobs')}: expected a non-empty list of jobs")
    jobs = []
    modes = []
    for i, j in enumerate(jobs_in):
        full = {k: d for k, (_, d) in JOB_KEYS.items()}
        full.update(defaults)
        own = _check_mapping(src, f"jobs[{i}].", j, JOB_KEYS)
        full.update(own)
        _refuse_other_modes(src, f"jobs[{i}].", own, [full["mode"]])
        modes.append(full["mode"])
        inputs = full.pop("inputs")
        if inputs not in INPUTS:
            raise UsageError(f"{_where(src, f'jobs[{i}].inputs')}: {inputs!r}: expected {' or '.join(INPUTS)}")
        if inputs == "photos" and full["mode"] != "synthetic":
            raise UsageError(
                f"{_where(src, f'jobs[{i}].inputs')}: photos are single frames; mode {full['mode']} "
                f"averages frames of a video (photos take mode synthetic)"
            )
        full["name"] = full["name"] or _job_name(full)
        if not _NAME.match(full["name"]):
            raise UsageError(f"{_where(src, f'jobs[{i}].name')}: {full['name']!r} must match {_NAME.pattern}")
        cfg = simulate_config(full, landmarks)
        try:
            cfg.validate()
        except UsageError as e:
            raise UsageError(f"recipe {recipe}: jobs[{i}] ({full['name']}): {e}") from None
        jobs.append(RecipeJob(full["name"], cfg, inputs))
    _refuse_other_modes(src, "defaults.", defaults, modes)
    names = [j.name for j in jobs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"{_where(src, 'jobs')}: job names must be distinct ({', '.join(dup)} repeated); set name:")
    return tuple(jobs)


def _set(data: dict, dotted: str, value: Any, src: str) -> None:
    """``a.b.0.c`` into nested dicts/lists; a job index may also be written ``jobs[0]``."""
    parts = [p for p in re.split(r"\.|\[|\]", dotted) if p != ""]
    if not parts:
        raise UsageError(f"--set {dotted!r}: empty key")
    cur: Any = data
    for i, p in enumerate(parts[:-1]):
        nxt_is_index = parts[i + 1].isdigit()
        if isinstance(cur, list):
            if not p.isdigit() or int(p) >= len(cur):
                raise UsageError(f"--set {dotted}: {p!r} is not an index of this list (0..{len(cur) - 1})")
            cur = cur[int(p)]
        else:
            if p == "jobs" and "jobs" not in cur:
                raise UsageError(f"--set {dotted}: the recipe has no jobs")
            cur = cur.setdefault(p, [] if nxt_is_index else {})
        if not isinstance(cur, (dict, list)):
            raise UsageError(f"--set {dotted}: {p!r} is a value, not a section")
    last = parts[-1]
    if isinstance(cur, list):
        if not last.isdigit() or int(last) >= len(cur):
            raise UsageError(f"--set {dotted}: {last!r} is not an index of this list")
        cur[int(last)] = value
    else:
        for old in [a.old for a in aliases(section_of(dotted)) if a.new == last]:
            cur.pop(old, None)  # the file's old name for this setting: the override replaces it
        cur[last] = value


def load_recipe(path: str | Path, sets: Sequence[str] = (), overrides: dict[str, Any] | None = None) -> Recipe:
    """``sets``: KEY=VALUE strings (VALUE parsed as YAML); ``overrides``: dotted keys from the
    dedicated flags, applied last. ``jobs.*.KEY`` applies to every job."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: no such recipe file")
    data = load_yaml(path, p.read_text(encoding="utf-8"))
    data = copy.deepcopy(data) if isinstance(data, dict) else data
    items: list[tuple[str, Any]] = []
    for s in sets:
        key, sep, raw = s.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {s!r}: expected KEY=VALUE, e.g. jobs.0.L=9 or landmarks.backend=dlib")
        try:
            items.append((key.strip(), load_yaml("--set", raw) if raw.strip() else None))
        except UsageError:  # not YAML (or an alias): the text as it is
            items.append((key.strip(), raw))
    items += list((overrides or {}).items())
    items = [_current_name(k, v) for k, v in items]
    if isinstance(data, dict):
        for key, value in items:
            if key.startswith("jobs.*."):
                for i in range(len(data.get("jobs") or [])):
                    _set(data, f"jobs.{i}.{key[7:]}", value, str(p))
            else:
                _set(data, key, value, str(p))
    return parse_recipe(data, p)


def _current_name(dotted: str, value: Any) -> tuple[str, Any]:
    """``jobs.*.crop_size=128`` written with an old setting name: today's name, with a warning."""
    head, _, last = dotted.rpartition(".")
    a = ALIAS_BY_OLD.get((section_of(head), last))
    if a is None or not head:
        return dotted, value
    warn(f"--set {dotted}: {a.notice()}")
    return f"{head}.{a.new}", a.value(value)


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False, default_flow_style=False)
