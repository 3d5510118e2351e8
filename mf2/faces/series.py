"""One face's landmarks as arrays indexed by frame: what the blur planners read.

The landmark table has a row per (frame, track). A planner wants, for the face it makes
pairs of, one landmark set per frame, whether that frame may be averaged, and a ``run`` id
that changes at every shot boundary and every track change: a window must lie inside one
run, so it never spans a cut and every averaged frame shows the same tracked face.

Which face: ``largest``, ``centre`` or ``longest`` pick one face per shot (by median
landmark extent, median distance of its centre to the picture's centre, or usable frames);
an integer picks that face_id (``--faces all`` plans every face_id in turn).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mf2.schema import landmarks_to_numpy

FACE_CHOICES = ("largest", "centre", "longest")


@dataclass
class FaceSeries:
    face: str | int
    landmarks: np.ndarray  # (n, 68, 2) float32, NaN where the face has no landmarks
    usable: np.ndarray  # (n,) bool: may be averaged
    run: np.ndarray  # (n,) int64: same value = same shot and same track
    reason: np.ndarray  # (n,) object: "ok" where usable, else why not
    shot: np.ndarray  # (n,) int32
    face_id: np.ndarray  # (n,) int32, -1 where none
    is_duplicate: np.ndarray  # (n,) bool
    manual: np.ndarray | None = None  # (n,) bool: the landmarks are a human annotation (mf2.faces.manual)


def _col(table: pa.Table, name: str, fill) -> np.ndarray:
    if name not in table.column_names:
        return np.full(table.num_rows, fill)
    return np.asarray(table[name].to_numpy(zero_copy_only=False))


def frame_count(table: pa.Table) -> int:
    return int(np.max(_col(table, "frame", -1), initial=-1)) + 1


def face_ids(table: pa.Table) -> list[int]:
    """Every face_id with at least one usable row, in order of first appearance."""
    fid = _col(table, "face_id", None)
    reason = _col(table, "reason", "ok")
    seen = dict.fromkeys(int(f) for f, r in zip(fid, reason) if f is not None and not _nan(f) and r == "ok")
    return list(seen)


def _nan(v) -> bool:
    return isinstance(v, float) and np.isnan(v)


def face_series(table: pa.Table, face: str | int = "largest", frame_size: tuple[int, int] | None = None) -> FaceSeries:
    """The arrays of one face (see module doc). ``frame_size`` (w, h) is needed by ``centre``."""
    n = frame_count(table)
    frames = _col(table, "frame", 0).astype(np.int64)
    lms, has_lm = landmarks_to_numpy(table["landmarks"])
    reason = np.array(["ok" if r is None else r for r in _col(table, "reason", "ok")], dtype=object)
    track = np.array([-1 if t is None or _nan(t) else int(t) for t in _col(table, "track", None)], np.int64)
    fid = np.array([-1 if t is None or _nan(t) else int(t) for t in _col(table, "face_id", None)], np.int64)
    if "track" not in table.column_names:  # a 1.2 table: one row per frame, one face
        track = np.where(has_lm, 0, -1)
        fid = track.copy()
    shot_rows = (
        _col(table, "shot", 0).astype(np.int64) if "shot" in table.column_names else np.zeros(len(frames), np.int64)
    )
    dup_rows = _col(table, "is_duplicate", False).astype(bool)
    manual_rows = _col(table, "source", "") == "manual"

    shot = np.zeros(n, np.int32)
    dup = np.zeros(n, bool)
    shot[frames] = shot_rows
    dup[frames] = dup_rows

    chosen: dict[int, int]  # shot -> face_id
    if isinstance(face, (int, np.integer)):
        chosen = {int(s): int(face) for s in np.unique(shot)}
    else:
        if face not in FACE_CHOICES:
            raise ValueError(f"face {face!r}: expected an int or one of {FACE_CHOICES}")
        chosen = _choose(face, frames, shot_rows, fid, reason, lms, has_lm, frame_size)

    out_lm = np.full((n, 68, 2), np.nan, np.float32)
    usable = np.zeros(n, bool)
    run = np.full(n, -1, np.int64)
    why = np.full(n, "no-face", dtype=object)
    face_id = np.full(n, -1, np.int32)
    manual = np.zeros(n, bool)
    last_fail: dict[int, str] = {}  # shot -> the chosen face's last failure, for frames after it
    order = np.argsort(frames, kind="stable")
    for i in order:
        f, s = int(frames[i]), int(shot_rows[i])
        if chosen.get(s) is None or fid[i] != chosen[s]:
            continue
        face_id[f] = fid[i]
        if has_lm[i]:
            out_lm[f] = lms[i]
            manual[f] = manual_rows[i]
            usable[f] = reason[i] == "ok"
            why[f] = reason[i]
            run[f] = s * 1_000_000 + track[i]
            last_fail.pop(s, None)
        else:
            why[f] = reason[i]
            last_fail[s] = reason[i]
    _say_why_lost(why, shot, out_lm)
    return FaceSeries(face, out_lm, usable, run, why, shot, face_id, dup, manual)


def _say_why_lost(why: np.ndarray, shot: np.ndarray, out_lm: np.ndarray) -> None:
    """Frames after a loss, until the face is back, say why it went."""
    cur, fail = -1, None
    for f in range(len(why)):
        if shot[f] != cur:
            cur, fail = shot[f], None
        if why[f] not in ("no-face",) and not np.isfinite(out_lm[f]).all():
            fail = why[f]
        elif np.isfinite(out_lm[f]).all():
            fail = None
        elif fail is not None:
            why[f] = fail


def _choose(face: str, frames, shot_rows, fid, reason, lms, has_lm, frame_size) -> dict[int, int]:
    stats: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    w, h = frame_size or (1, 1)
    centre = np.array([w / 2.0, h / 2.0])
    diag = float(np.hypot(w, h)) or 1.0
    for i in range(len(frames)):
        if fid[i] < 0 or not has_lm[i] or reason[i] != "ok":
            continue
        lo, hi = lms[i].min(axis=0), lms[i].max(axis=0)
        stats[(int(shot_rows[i]), int(fid[i]))].append(
            (float(max(hi - lo)), float(np.hypot(*((lo + hi) / 2 - centre))) / diag)
        )
    best: dict[int, tuple] = {}
    for (s, f), vals in stats.items():
        a = np.asarray(vals)
        if face == "largest":
            score = (float(np.median(a[:, 0])), float(len(a)))
        elif face == "centre":
            score = (-float(np.median(a[:, 1])), float(len(a)))
        else:
            score = (float(len(a)), float(np.median(a[:, 0])))
        if s not in best or score > best[s][0]:
            best[s] = (score, f)
    return {s: f for s, (_, f) in best.items()}
