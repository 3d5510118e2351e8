"""Is a fit a face (issue 34): the mean shape, the Procrustes residual, ghost tracks, the
window crop and the size-outlier flag, on real annotations and constructed shapes."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mf2.faces.crop import face_crop, window_crop
from mf2.faces.pts import read_pts
from mf2.faces.shape import MEAN_SHAPE, extent_aspect, normalised, procrustes_residual
from mf2.faces.stage import _flag_before_loss, _flag_size_outliers
from mf2.faces.track import FaceRow, same_face


def _annotated_shapes(landmark_data) -> list[np.ndarray]:
    shapes = [read_pts(p) for p in sorted(landmark_data.glob("*/*.pts"))]
    xml = (landmark_data / "dlib_faces" / "training_with_face_landmarks.xml").read_text()
    for box in re.findall(r"<box[^>]*>(.*?)</box>", xml, re.DOTALL):
        pts = re.findall(r"<part name='(\d+)' x='(-?\d+)' y='(-?\d+)'", box)
        if len(pts) == 68:
            shapes.append(np.array([(float(x), float(y)) for _, x, y in sorted(pts, key=lambda t: int(t[0]))]))
    return shapes


def _rot(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def test_mean_shape_is_the_annotated_faces_procrustes_mean(landmark_data):
    shapes = _annotated_shapes(landmark_data)
    assert len(shapes) == 29
    aligned = []
    for s in shapes:
        a = normalised(s)
        u, _, vt = np.linalg.svd(a.T @ MEAN_SHAPE)
        aligned.append(a @ (u @ vt))
    mean = normalised(np.mean(aligned, axis=0))
    assert np.abs(mean - MEAN_SHAPE).max() < 0.01
    # every annotated face is well inside the threshold the tracker uses (0.5)
    assert max(procrustes_residual(s) for s in shapes) < 0.35


def test_residual_ignores_pose_in_the_image_plane_and_catches_non_faces(landmark_data):
    face = read_pts(next(iter(sorted(landmark_data.glob("helen_300w/*.pts")))))
    r0 = procrustes_residual(face)
    moved = (face - face.mean(0)) @ _rot(35).T * 0.2 + (300, 40)
    assert procrustes_residual(moved) == pytest.approx(r0, abs=1e-6)
    # a fit collapsed onto the right eye: its points pulled 85 % of the way to the eye
    eye = face[42:48].mean(0)
    collapsed = eye + (face - eye) * 0.15
    collapsed[36:48] = face[36:48]
    assert procrustes_residual(collapsed) > 0.5
    stretched = face * (3.0, 1.0)  # a fit spread over the frame's width
    assert procrustes_residual(stretched) > 0.5 and extent_aspect(stretched) > 2
    assert procrustes_residual(np.random.default_rng(0).uniform(0, 100, (68, 2))) > 0.5
    assert procrustes_residual(np.full((68, 2), np.nan)) == float("inf")


def test_a_ghost_inside_a_face_is_the_same_face():
    face = np.array([100, 100, 200, 200], np.float32)
    assert same_face(face, np.array([120, 110, 160, 150], np.float32))  # a shrunk fit on one eye
    assert same_face(face, np.array([105, 95, 205, 198], np.float32))
    assert not same_face(face, np.array([190, 100, 290, 200], np.float32))  # the next person


def test_window_crop_is_not_moved_by_one_odd_fit():
    rng = np.random.default_rng(1)
    base = MEAN_SHAPE * 40 + (200, 150)
    lms = np.stack([base + rng.normal(0, 0.5, base.shape) for _ in range(7)]).astype(np.float32)
    lms[3] = (lms[3] - lms[3].mean(0)) * 2.0 + lms[3].mean(0) + (60, 0)  # the middle fit: twice as big, off
    robust, middle = window_crop(lms, range(7), 0.25), face_crop(lms[3], 0.25)
    plain = face_crop(lms[0], 0.25)
    assert abs(robust.size - plain.size) <= 2 and abs(robust.x0 - plain.x0) <= 2
    assert middle.size > 1.8 * plain.size
    # a window of identical fits gets the middle frame's crop exactly (nothing else changes)
    same = np.repeat(base[None].astype(np.float32), 7, axis=0)
    assert window_crop(same, range(7), 0.25) == face_crop(same[3], 0.25)


def test_fits_far_from_their_tracks_size_are_flagged_not_averaged():
    def row(i: int, scale: float) -> FaceRow:
        lm = (MEAN_SHAPE * 30 * scale + 100).astype(np.float32)
        return FaceRow(i, 0, 0, None, lm, 1.0, 1.0, "track", "ok", False, 0.0)

    rows = [row(i, 1.0) for i in range(20)] + [row(20, 1.7), row(21, 0.55), row(22, 1.3)]
    _flag_size_outliers(rows, 1.5)
    assert [r.reason for r in rows[20:]] == ["size-outlier", "size-outlier", "ok"]
    assert all(r.reason == "ok" for r in rows[:20])


def test_a_detections_fit_must_span_its_box():
    """A fit on a detector's box spans 0.82-1.24 of the box on the shared clips; one at a
    third of it (collapsed) or twice it (spread) is no fit of that face."""
    from mf2.faces.select import LandmarkConfig
    from mf2.faces.track import OK, FaceTracker

    tracker = FaceTracker(None, LandmarkConfig())
    lm = (MEAN_SHAPE * 40 + 200).astype(np.float32)  # extent ~ 110 px
    ext = float(np.ptp(lm, axis=0).max())
    box = np.array([200 - ext / 2, 200 - ext / 2, 200 + ext / 2, 200 + ext / 2], np.float32)
    assert tracker._sane(lm, (480, 640, 3), None, det_box=box) == OK
    assert tracker._sane(lm, (480, 640, 3), None, det_box=box * 0 + (0, 0, 3 * ext, 3 * ext)) == "implausible-shape"
    assert (
        tracker._sane(lm, (480, 640, 3), None, det_box=box * 0 + (150, 150, 150 + ext / 2, 150 + ext / 2))
        == "implausible-shape"
    )


def test_a_tracks_fits_since_its_last_detection_are_flagged_when_it_drifts_away():
    def row(i: int, source: str, reason: str = "ok", track: int = 0) -> FaceRow:
        lm = None if source == "none" else (MEAN_SHAPE * 30 + 100).astype(np.float32)
        return FaceRow(i, 0, track, None, lm, 1.0, 1.0, source, reason, False, 0.0)

    rows = [
        row(0, "detect"),
        row(1, "track"),
        row(2, "confirmed"),
        row(3, "track"),
        row(4, "track"),
        row(5, "none", "scale-drift"),
        row(5, "detect", track=1),
        row(6, "track", track=1),
        row(7, "none", "no-detection", track=1),
    ]
    _flag_before_loss(rows)
    assert [r.reason for r in rows] == [
        "ok",
        "ok",
        "ok",
        "before-loss",
        "before-loss",
        "scale-drift",
        "ok",
        "ok",
        "no-detection",
    ]  # a track that simply ended keeps its frames
