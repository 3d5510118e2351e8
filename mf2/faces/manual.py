"""Manual per-frame annotations (300VW-style ``.pts``) as the landmark table's ground truth.

Where a video comes with human landmarks, the paper scores localisation against them (its
Oracle: AUC about 0.83 on 300VW), not against the localiser's own refit, which scores 0 by
construction. Two layouts are read:
- 300VW: ``NNN/vid.avi`` with ``NNN/annot/000001.pts`` … one file per frame, numbered from 1;
- a folder of frames with ``NAME.pts`` beside ``NAME.png`` (or in ``annot/``, by frame number).

The tracker still runs (it finds the shots, the repeated frames and which face is which);
on every annotated frame, the row of the face the annotation falls on takes the manual
points, with ``source = manual``. An annotation that no tracked face overlaps is counted
and left out: mf2 does not invent a track for a face its detector never found.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from mf2.faces.base import iou, landmark_box
from mf2.faces.pts import read_pts
from mf2.schema import landmarks_column, landmarks_to_numpy
from mf2.sources import VIDEO_EXTENSIONS, frame_files, frame_number

MIN_IOU = 0.3  # an annotation and a tracked face's landmark box overlap at least this much


def annotation_files(video: str | Path) -> dict[int, Path]:
    """frame index -> .pts file, for the layouts above; empty when there are none."""
    p = Path(video)
    if p.is_dir():
        frames = frame_files(p)
        by_stem = {f.stem: i for i, f in enumerate(frames)}
        by_number = {frame_number(f): i for i, f in enumerate(frames)}
        out = {by_stem[a.stem]: a for a in p.glob("*.pts") if a.stem in by_stem}
        for a in sorted((p / "annot").glob("*.pts")) if (p / "annot").is_dir() else []:
            n = frame_number(a)
            if n in by_number:
                out.setdefault(by_number[n], a)
        return out
    annot = p.parent / "annot"
    if not annot.is_dir():  # checked first: a folder of thousands of videos is not listed per video
        return {}
    others = [f for f in p.parent.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS]
    if len(others) != 1:  # annot/ belongs to the folder's one video
        return {}
    return {n - 1: a for a in annot.glob("*.pts") if (n := frame_number(a)) is not None and n >= 1}


def annotations_key(files: dict[int, Path]) -> str | None:
    """A hash of the annotations (frame numbers and contents): a changed file redoes the table."""
    if not files:
        return None
    h = hashlib.sha256()
    for i in sorted(files):
        h.update(f"{i}\0".encode() + files[i].read_bytes())
    return h.hexdigest()


def apply_manual(table: pa.Table, files: dict[int, Path]) -> tuple[pa.Table, dict[str, int]]:
    """The table with each annotated frame's matching face row replaced by the manual points
    (``source = manual``), and counts: annotated frames, matched, unmatched."""
    frames = np.asarray(table["frame"].to_numpy(zero_copy_only=False))
    lms, valid = landmarks_to_numpy(table["landmarks"])
    rows_of: dict[int, list[int]] = {}
    for r, f in enumerate(frames):
        rows_of.setdefault(int(f), []).append(r)
    new_lm: list[np.ndarray | None] = [lms[r] if valid[r] else None for r in range(len(frames))]
    source = table["source"].to_pylist()
    matched = 0
    for f, path in files.items():
        pts = read_pts(path)
        if pts.shape != (68, 2):
            continue
        ann_box = landmark_box(pts)
        cand = [(iou(ann_box, landmark_box(lms[r])), r) for r in rows_of.get(f, []) if valid[r]]
        best = max(cand, default=(0.0, -1))
        if best[0] < MIN_IOU:
            continue
        r = best[1]
        new_lm[r] = pts.astype(np.float32)  # the detector-convention box stays the tracker's
        source[r] = "manual"
        matched += 1
    cols = {"landmarks": landmarks_column(new_lm), "source": pa.array(source, pa.string())}
    for name, col in cols.items():
        table = table.set_column(table.schema.get_field_index(name), table.schema.field(name), col)
    return table, {"annotated": len(files), "matched": matched, "unmatched": len(files) - matched}
