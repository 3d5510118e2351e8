"""Where tracking failed, per video: the numbers and a sheet of the worst frames to look at.

Read by ``mf2 stats``: the landmark tables (OUT/landmarks) give the shares of frames where
a face was detected, tracked or lost and the shots; the part files give the windows
skipped, by reason. The contact sheet shows the frames a user should check first: the
last frame of each track before it was lost (why it ended is written on it) and the
tracked frames whose fit agreed least with their box, landmarks drawn.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa

from mf2.atomic import write_bytes_atomic
from mf2.dataset import landmarks_path, part_files
from mf2.faces.series import frame_count
from mf2.schema import landmarks_to_numpy, read_table_checked, try_read_metadata


def video_audit(table: pa.Table, skipped: dict | None = None) -> dict:
    """Shares of frames with a face detected / tracked (usable) / lost, shots, faces, the
    reasons rows were not usable and the windows skipped by reason."""
    n = frame_count(table)
    d = table.select(
        [c for c in ("frame", "shot", "track", "face_id", "source", "reason") if c in table.column_names]
    ).to_pydict()
    frames = np.asarray(d["frame"], np.int64)
    reason = d.get("reason") or ["ok"] * len(frames)
    source = d["source"]
    detected = np.zeros(n, bool)
    usable = np.zeros(n, bool)
    for f, s, r in zip(frames, source, reason):
        if s == "detect":
            detected[f] = True
        if r == "ok":
            usable[f] = True
    shots = int(max(d.get("shot") or [0])) + 1 if n else 0
    tracks = {t for t in d.get("track") or [] if t is not None}
    faces = {t for t in d.get("face_id") or [] if t is not None}
    return {
        "frames": n,
        "shots": shots,
        "tracks": len(tracks),
        "faces": len(faces),
        "detected": round(float(detected.mean()), 4) if n else 0.0,
        "tracked": round(float((usable & ~detected).mean()), 4) if n else 0.0,
        "usable": round(float(usable.mean()), 4) if n else 0.0,
        "lost": round(float((~usable).mean()), 4) if n else 0.0,
        "reasons": dict(Counter(r for r in reason if r != "ok").most_common()),
        "windows_skipped": dict(sorted((skipped or {}).items(), key=lambda kv: -kv[1])),
    }


def worst_frames(table: pa.Table, k: int = 12) -> list[tuple[int, np.ndarray | None, str]]:
    """(frame, landmarks or None, label): each track's last frame before a loss, then the
    tracked frames of lowest fit agreement (a flagged one says so); at most ``k``."""
    d = table.select(["frame", "track", "fit_iou", "reason"]).to_pydict()
    lms, has = landmarks_to_numpy(table["landmarks"])
    last: dict[int, int] = {}
    picks: list[tuple[int, np.ndarray | None, str]] = []
    for i, (f, t, r) in enumerate(zip(d["frame"], d["track"], d["reason"])):
        if t is None:
            continue
        if has[i]:
            last[t] = i
        elif r not in ("ok", "no-face") and t in last:
            j = last[t]
            picks.append((int(d["frame"][j]), lms[j], f"track {t} lost at {f}: {r}"))
    rest = [
        (float(d["fit_iou"][i]), i)
        for i in range(len(has))
        if has[i] and d["fit_iou"][i] is not None and np.isfinite(d["fit_iou"][i])
    ]
    for q, i in sorted(rest)[: max(0, k - len(picks))]:
        flag = "" if d["reason"][i] == "ok" else f" ({d['reason'][i]}: not averaged)"
        picks.append((int(d["frame"][i]), lms[i], f"frame {d['frame'][i]} track {d['track'][i]} fit {q:.2f}{flag}"))
    return sorted(picks[:k], key=lambda p: p[0])


def audit_sheet(
    video: Path, picks: list[tuple[int, np.ndarray | None, str]], dest: Path, tile: int = 320, cols: int = 4
) -> Path | None:
    """Decode just the picked frames (one streaming pass) and tile them, landmarks drawn."""
    from mf2.video import iter_frames

    if not picks or not video.is_file():
        return None
    want: dict[int, list] = {}
    for p in picks:
        want.setdefault(p[0], []).append(p)
    cells = []
    last = max(want)
    for i, frame in enumerate(iter_frames(video)):
        for f, lm, label in want.get(i, []):
            h, w = frame.shape[:2]
            s = tile / max(h, w)
            img = cv2.cvtColor(
                cv2.resize(frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR
            )
            if lm is not None:
                for x, y in lm * s:
                    if np.isfinite(x) and np.isfinite(y) and abs(x) < 1e5 and abs(y) < 1e5:
                        cv2.circle(img, (int(round(x)), int(round(y))), 2, (0, 255, 0), -1, lineType=cv2.LINE_AA)
            cell = np.zeros((tile, tile, 3), np.uint8)
            cell[: img.shape[0], : img.shape[1]] = img
            cv2.putText(cell, label, (4, tile - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            cells.append(cell)
        if i >= last:
            break
    if not cells:
        return None
    while len(cells) % cols:
        cells.append(np.zeros_like(cells[0]))
    pad = lambda c: cv2.copyMakeBorder(c, 3, 3, 3, 3, cv2.BORDER_CONSTANT, value=(40, 40, 40))  # noqa: E731
    sheet = np.vstack([np.hstack([pad(c) for c in cells[r : r + cols]]) for r in range(0, len(cells), cols)])
    ok, buf = cv2.imencode(".png", sheet)
    write_bytes_atomic(dest, buf.tobytes())
    return dest


def audit_folder(out: Path, video_ids: list[str], sheets: Path | None) -> dict[str, dict]:
    """Per video with a landmark table in OUT/landmarks: video_audit, plus a sheet in ``sheets``."""
    result = {}
    for vid in video_ids:
        path = landmarks_path(out, vid)
        md = try_read_metadata(path)
        if md is None:
            continue
        table = read_table_checked(path)
        skipped: dict = {}
        for part in part_files(out, vid):
            pmd = try_read_metadata(part) or {}
            for k, v in (json.loads(pmd.get("mf2.plan", "{}")).get("skipped") or {}).items():
                skipped[k] = skipped.get(k, 0) + int(v)
        entry = video_audit(table, skipped)
        if sheets is not None and "track" in table.column_names:
            video = Path(json.loads(md.get("mf2.video", "{}")).get("path", ""))
            sheet = audit_sheet(video, worst_frames(table), sheets / f"tracks_{vid}.png")
            entry["sheet"] = sheet.name if sheet else None
        result[vid] = entry
    return result
