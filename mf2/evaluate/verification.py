"""Face verification on video pairs (the paper's Table 8, YouTube Faces protocol).

Each video is one descriptor: the mean of the unit-length identity embeddings (dlib's ResNet
here, FaceNet in the paper) of its faces, one per evaluated pair, for each method's images.
A listed pair of videos is "same" when the cosine distance of their descriptors is at most a
threshold; the threshold is chosen on the other nine folds and the accuracy measured on the
held-out one, as YTF's 10-fold protocol does. Reported: mean accuracy ± std over the folds.

The pairs file is YTF's splits.txt layout, one pair a line: ``fold, video_a, video_b, same``
(further columns are ignored; a header line and ``#`` comments are skipped). Videos are named
by their mf2 video_id (a name with ``/`` becomes ``_``, as mf2 names inputs: YTF's
``Aaron_Eckhart/0`` is ``Aaron_Eckhart_0``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mf2.errors import InputError
from mf2.sources import safe_id


@dataclass(frozen=True)
class VideoPair:
    fold: int
    a: str
    b: str
    same: bool


def read_pairs(path: str | Path) -> list[VideoPair]:
    out: list[VideoPair] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        cells = [c.strip() for c in (text.split(",") if "," in text else text.split())]
        if len(cells) < 4 or not cells[0].lstrip("-").isdigit():
            if not out:  # a header
                continue
            raise InputError(f"{path}:{n}: expected 'fold, video_a, video_b, same', got {line.strip()!r}", "bad-pairs")
        if cells[3] not in ("0", "1"):
            raise InputError(f"{path}:{n}: same must be 0 or 1, got {cells[3]!r}", "bad-pairs")
        out.append(
            VideoPair(int(cells[0]), safe_id(cells[1].strip("/")), safe_id(cells[2].strip("/")), cells[3] == "1")
        )
    if not out:
        raise InputError(f"{path}: no video pairs", "bad-pairs")
    return out


class Descriptors:
    """Running sums of unit embeddings per (setting, method, video)."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str, str], np.ndarray] = {}

    def add(self, setting: str, method: str, video: str, embedding: np.ndarray) -> None:
        e = np.asarray(embedding, np.float64)
        e = e / (np.linalg.norm(e) or 1.0)
        key = (setting, method, video)
        self.sums[key] = self.sums.get(key, 0.0) + e

    def get(self, setting: str, method: str, video: str) -> np.ndarray | None:
        s = self.sums.get((setting, method, video))
        return None if s is None else s / (np.linalg.norm(s) or 1.0)


def best_threshold(dist: np.ndarray, same: np.ndarray) -> float:
    """The distance threshold (same when dist <= it) with the highest accuracy on these pairs."""
    d = np.sort(np.unique(dist))
    cands = np.concatenate([[d[0] - 1e-9], (d[:-1] + d[1:]) / 2, [d[-1] + 1e-9]]) if d.size else np.array([0.0])
    acc = [np.mean((dist <= t) == same) for t in cands]
    return float(cands[int(np.argmax(acc))])


def ten_fold(dist: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    """Accuracy on each fold with the threshold chosen on the others; mean and std."""
    accs, thresholds = [], []
    for f in sorted(set(folds.tolist())):
        train, test = folds != f, folds == f
        if not train.any():
            continue
        t = best_threshold(dist[train], same[train])
        accs.append(float(np.mean((dist[test] <= t) == same[test])))
        thresholds.append(t)
    return {
        "mean": float(np.mean(accs)) if accs else float("nan"),
        "std": float(np.std(accs)) if accs else float("nan"),
        "folds": accs,
        "thresholds": thresholds,
    }


def verify(pairs: list[VideoPair], desc: Descriptors, settings: list[str], methods: list[str]) -> dict:
    """setting -> method -> 10-fold result, over the listed pairs both of whose videos have a
    descriptor in that setting (the others are counted as missing)."""
    out: dict = defaultdict(dict)
    for s in settings:
        for m in methods:
            rows = [(p, desc.get(s, m, p.a), desc.get(s, m, p.b)) for p in pairs]
            have = [(p, a, b) for p, a, b in rows if a is not None and b is not None]
            dist = np.array([1.0 - float(a @ b) for _, a, b in have])
            same = np.array([p.same for p, _, _ in have], bool)
            folds = np.array([p.fold for p, _, _ in have], int)
            res = (
                ten_fold(dist, same, folds)
                if have
                else {"mean": float("nan"), "std": float("nan"), "folds": [], "thresholds": []}
            )
            out[s][m] = {**res, "n_pairs": len(have), "n_missing": len(pairs) - len(have)}
    return dict(out)
