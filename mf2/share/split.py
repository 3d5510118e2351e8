"""Train/val/test assignment that never puts one person (or one video) in two splits.

Groups are the connected components of the video-identity graph: a video showing two
people joins both identities' videos into one group, so an interview cannot leak a face
across splits. Each group lands in a split by a hash of (seed, group key), not by a shuffle:
the assignment is the same on every machine and stays put when videos are added, unless a
new video links two groups.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mf2.errors import Mf2Error, UsageError
from mf2.params import SPLIT, default
from mf2.sources import join_identities, safe_id, split_identities

BY: tuple[str, ...] = next(p.choices or () for p in SPLIT if p.key == "by")


@dataclass(frozen=True)
class SplitConfig:
    """Declared once in mf2.params (SPLIT); ``ratios`` parsed from its text there."""

    ratios: tuple[tuple[str, float], ...] = field(default_factory=lambda: parse_ratios(default("ratios", SPLIT)))
    seed: int = default("seed", SPLIT)
    by: str = default("by", SPLIT)

    def validate(self) -> None:
        if self.by not in BY:
            raise UsageError(f"--by {self.by!r}: expected identity or video")
        names = [n for n, _ in self.ratios]
        if not names or len(set(names)) != len(names):
            raise UsageError(f"--ratios: split names must be distinct and non-empty, got {names}")
        if any(r < 0 for _, r in self.ratios) or sum(r for _, r in self.ratios) <= 0:
            raise UsageError("--ratios: weights must be >= 0 with a positive sum")

    def key(self) -> dict:
        return {"ratios": [[n, r] for n, r in self.ratios], "seed": self.seed, "by": self.by}

    @classmethod
    def from_key(cls, d: dict) -> "SplitConfig":
        return cls(tuple((str(n), float(r)) for n, r in d["ratios"]), int(d["seed"]), str(d["by"]))


def parse_ratios(text: str) -> tuple[tuple[str, float], ...]:
    """'train=0.8,val=0.1,test=0.1' or '0.8,0.1,0.1' (train/val/test)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    out = []
    for i, t in enumerate(items):
        name, _, val = t.rpartition("=")
        if not name:
            if len(items) != 3:
                raise UsageError(f"--ratios {text!r}: unnamed ratios must be three (train,val,test)")
            name = ("train", "val", "test")[i]
        try:
            out.append((name, float(val)))
        except ValueError:
            raise UsageError(f"--ratios {text!r}: {val!r} is not a number") from None
    return tuple(out)


def groups(video_ids: list[str], identities: list[str | None], by: str = "identity") -> dict[str, str]:
    """video_id -> group key: the smallest member name of its video-identity component."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for vid, ident in zip(video_ids, identities):
        v = f"video:{vid}"
        find(v)
        if by == "identity":
            for i in split_identities(ident):
                union(v, f"identity:{i}")
    return {vid: find(f"video:{vid}") for vid in video_ids}


def _bucket(seed: int, group: str, cfg: SplitConfig) -> str:
    u = int.from_bytes(hashlib.sha256(f"mf2-split:{seed}:{group}".encode()).digest()[:8], "big") / 2.0**64
    total = sum(r for _, r in cfg.ratios)
    acc = 0.0
    for name, r in cfg.ratios:
        acc += r / total
        if u < acc:
            return name
    return cfg.ratios[-1][0]


def assign(table: pa.Table, cfg: SplitConfig) -> pa.Table:
    cfg.validate()
    vids, idents = table["video_id"].to_pylist(), table["identity"].to_pylist()
    g = groups(vids, idents, cfg.by)
    splits = [_bucket(cfg.seed, g[v], cfg) for v in vids]
    i = table.schema.get_field_index("split")
    return table.set_column(i, "split", pa.array(splits, pa.string()))


def leaks(table: pa.Table) -> list[str]:
    """Every identity or video found in more than one split, and rows left without a split
    when others have one. Empty when the table has no splits at all."""
    vids, idents, splits = (table[c].to_pylist() for c in ("video_id", "identity", "split"))
    if not any(splits):
        return []
    problems = []
    unassigned = Counter(v for v, s in zip(vids, splits) if not s)
    for v, n in sorted(unassigned.items()):
        problems.append(f"video {v}: {n} pair(s) without a split while others have one")
    per_identity: dict[str, set[str]] = defaultdict(set)
    per_video: dict[str, set[str]] = defaultdict(set)
    for v, ident, s in zip(vids, idents, splits):
        if not s:
            continue
        per_video[v].add(s)
        for i in split_identities(ident):
            per_identity[i].add(s)
    for v, ss in sorted(per_video.items()):
        if len(ss) > 1:
            problems.append(f"video {v} is in several splits: {', '.join(sorted(ss))}")
    for i, ss in sorted(per_identity.items()):
        if len(ss) > 1:
            problems.append(f"identity {i!r} leaks across splits: {', '.join(sorted(ss))}")
    return problems


def summary(table: pa.Table) -> dict[str, dict[str, int]]:
    vids, idents, splits = (table[c].to_pylist() for c in ("video_id", "identity", "split"))
    out: dict[str, dict[str, int]] = {}
    for name in sorted({s for s in splits if s}):
        rows = [(v, i) for v, i, s in zip(vids, idents, splits) if s == name]
        out[name] = {
            "pairs": len(rows),
            "videos": len({v for v, _ in rows}),
            "identities": len({x for _, i in rows for x in split_identities(i)}),
        }
    return out


@dataclass
class SplitSummary:
    """What ``mf2 split`` wrote: the manifest and, per split, its pairs, videos, identities."""

    manifest: Path
    n_pairs: int
    by: str
    splits: dict[str, dict[str, int]]


def split_dataset(dataset: str | Path, cfg: SplitConfig, identities: str | Path | None = None) -> SplitSummary:
    """Assign every pair of ``dataset`` a split (the ``split`` column, rewritten atomically;
    the config recorded in the manifest's metadata). ``identities``: a CSV (video_id or key,
    identity) or a fetch table, filling the identity column first."""
    from mf2.dataset.manifest import load, rewrite

    cfg.validate()
    ds = load(dataset)
    table = ds.table
    if identities:
        table = with_identities(table, Path(identities))
    table = assign(table, cfg)
    problems = leaks(table)
    if problems:  # cannot happen by construction; refuse to write a leaking split all the same
        raise Mf2Error(f"split would leak: {problems[0]}")
    rewrite(ds, table, split=json.dumps(cfg.key(), sort_keys=True))
    return SplitSummary(ds.path, table.num_rows, cfg.by, summary(table))


def with_identities(table: pa.Table, path: Path) -> pa.Table:
    """The identity column filled from a CSV (video_id or key, identity) or an mf2 fetch
    table; a video given several people joins them (mf2.sources.join_identities)."""
    if path.suffix == ".parquet":
        rows = pq.read_table(path).to_pylist()
    else:
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except OSError as e:
            raise UsageError(f"--identities {path}: {e.strerror}") from None
    if not rows or "identity" not in rows[0] or not ({"video_id", "key"} & set(rows[0])):
        raise UsageError(f"--identities {path}: needs an identity column and a video_id (or key) column")
    found: dict[str, set[str]] = {}
    for r in rows:
        vid = safe_id(r.get("key") or r["video_id"])
        if r.get("identity"):
            found.setdefault(vid, set()).add(r["identity"])
    old = table["identity"].to_pylist()
    new = [join_identities(found[v]) if v in found else o for v, o in zip(table["video_id"].to_pylist(), old)]
    return table.set_column(table.schema.get_field_index("identity"), "identity", pa.array(new, pa.string()))
