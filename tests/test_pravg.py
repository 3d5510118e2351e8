"""PrAvg on real clips: the pixels, the indices and the manifest must all agree."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import decode_reference

from mf2 import __version__
from mf2.blur.crf import decode_lut, encode
from mf2.blur.windows import PrAvgConfig, plan_pravg
from mf2.modes.config import SimulateConfig
from mf2.pipeline.execute import run_simulate
from mf2.schema import landmarks_to_numpy, read_metadata
from mf2.sources import resolve_videos


def _srgb_to_linear(u8: np.ndarray) -> np.ndarray:
    v = u8.astype(np.float64) / 255
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb_u8(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0, 1)
    s = np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(s * 255), 0, 255).astype(np.uint8)


def _crop(frame: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
    h, w = frame.shape[:2]
    padded = np.zeros((h + 2 * size, w + 2 * size, 3), frame.dtype)
    padded[size : size + h, size : size + w] = frame
    return padded[y0 + size : y0 + 2 * size, x0 + size : x0 + 2 * size]


def _resize(img: np.ndarray, out: int) -> np.ndarray:
    if img.shape[0] == out:
        return img
    return cv2.resize(img, (out, out), interpolation=cv2.INTER_AREA if img.shape[0] > out else cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def fomm08_run(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("pravg")
    summary = run_simulate(
        resolve_videos(videos / "fomm_08.mp4"), out, SimulateConfig(pravg=PrAvgConfig(L=7)), show_progress=False
    )
    return out, summary


@pytest.mark.slow
def test_blurry_is_the_linear_light_mean_of_the_named_frames(videos, fomm08_run):
    out, summary = fomm08_run
    pairs = pq.read_table(out / "pairs.parquet").to_pylist()
    assert summary.n_pairs == len(pairs) > 100
    ref = decode_reference(videos / "fomm_08.mp4")  # independent decode
    naive_differs = 0
    for row in (pairs[0], pairs[len(pairs) // 2], pairs[-1]):
        frames = ref[row["frames"]]
        x0, y0, size, n = row["crop_x0"], row["crop_y0"], row["crop_size"], row["out_size"]
        mean_lin = _srgb_to_linear(frames).mean(axis=0)
        expected = _resize(_crop(_linear_to_srgb_u8(mean_lin), x0, y0, size), n)
        got = cv2.cvtColor(cv2.imread(str(out / row["blurry_path"])), cv2.COLOR_BGR2RGB)
        assert got.shape == (n, n, 3)
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
        sharp = cv2.cvtColor(cv2.imread(str(out / row["sharp_path"])), cv2.COLOR_BGR2RGB)
        assert np.array_equal(sharp, _resize(_crop(ref[row["center_frame"]], x0, y0, size), n))
        # the check can tell linear-light averaging from averaging the stored codes
        naive = _resize(_crop(np.rint(frames.astype(np.float64).mean(axis=0)).astype(np.uint8), x0, y0, size), n)
        naive_differs += int(np.abs(got.astype(int) - naive.astype(int)).max() > 1)
    assert naive_differs >= 2


@pytest.mark.slow
def test_manifest_indices_paths_and_metadata_are_consistent(fomm08_run):
    out, _ = fomm08_run
    table = pq.read_table(out / "pairs.parquet")
    rows = table.to_pylist()
    assert len({r["pair_id"] for r in rows}) == len(rows)
    for r in rows:
        fr = r["frames"]
        assert r["L"] == len(fr) == 7 and r["mode"] == "pravg" and r["crf"] == "srgb"
        assert r["start_frame"] == fr[0] and r["end_frame"] == fr[-1] and r["center_frame"] == fr[3]
        assert r["end_frame"] - r["start_frame"] + 1 == r["L"] + r["n_duplicates_skipped"]
        for kind in ("blurry", "sharp"):
            data = (out / r[f"{kind}_path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == r[f"{kind}_sha256"]
    centres = [r["center_frame"] for r in rows]
    assert centres == sorted(set(centres))  # no centre used twice
    lms, valid = landmarks_to_numpy(table["landmarks"])
    assert valid.all() and (lms >= -0.5).all() and (lms <= 256).all()
    md = read_metadata(out / "pairs.parquet")
    assert md["mf2.version"] == __version__ and '"L": 7' in md["mf2.params"]
    lm_table = pq.read_table(out / "landmarks" / "fomm_08.parquet")
    assert lm_table.num_rows == 150 and set(lm_table.column_names) >= {
        "video_id",
        "frame",
        "box",
        "landmarks",
        "score",
        "backend",
        "is_duplicate",
    }


@pytest.mark.slow
def test_blurry_crops_are_less_sharp_than_their_targets(fomm08_run):
    out, _ = fomm08_run
    rows = pq.read_table(out / "pairs.parquet").to_pylist()

    def sharpness(p):
        g = cv2.imread(str(out / p), cv2.IMREAD_GRAYSCALE)
        return cv2.Laplacian(g, cv2.CV_64F).var()

    ratios = np.array([sharpness(r["blurry_path"]) / sharpness(r["sharp_path"]) for r in rows])
    assert np.median(ratios) < 0.9
    assert (ratios < 1).mean() > 0.9


@pytest.mark.parametrize("L", [7, 9, 11, 15, 21])
def test_plan_windows_for_each_paper_L(L):
    n = 60
    lms = np.tile(np.array([[10, 10], [50, 60]], np.float32).repeat(34, axis=0)[None], (n, 1, 1))
    valid = np.ones(n, bool)
    valid[40] = False  # face lost on one frame
    dup = np.zeros(n, bool)
    dup[[5, 6, 20]] = True
    windows, stats = plan_pravg(lms, valid, dup, L)
    exposures = [i for i in range(n) if not dup[i]]
    assert stats.windows + stats.skipped_face_lost == len(exposures) - L + 1
    for w in windows:
        assert len(w.frames) == L and not dup[list(w.frames)].any()
        assert 40 not in range(w.start, w.end + 1)
        assert w.center == w.frames[L // 2]
        assert w.n_duplicates_skipped == sum(dup[w.start : w.end + 1])
    assert stats.skipped_face_lost == sum(
        1 for s in range(len(exposures) - L + 1) if exposures[s] <= 40 <= exposures[s + L - 1]
    )


@pytest.mark.slow
def test_repeated_frames_add_no_exposure(videos, tmp_path):
    """lp_d19 is ~70% repeats: each window must average L distinct exposures."""
    out = tmp_path / "d19"
    run_simulate(
        resolve_videos(videos / "lp_d19.mp4"),
        out,
        SimulateConfig(pravg=PrAvgConfig(L=7), stride=4),
        show_progress=False,
    )
    rows = pq.read_table(out / "pairs.parquet").to_pylist()
    dup = pq.read_table(out / "landmarks" / "lp_d19.parquet")["is_duplicate"].to_pylist()
    assert rows
    assert all(not any(dup[f] for f in r["frames"]) for r in rows)
    assert sum(r["n_duplicates_skipped"] for r in rows) > len(rows)  # many windows spanned repeats
    # --keep-duplicates: plain consecutive frames; the landmark table is reused (same OUT, pairs replaced)
    run_simulate(
        resolve_videos(videos / "lp_d19.mp4"),
        out,
        SimulateConfig(pravg=PrAvgConfig(L=7), stride=4, skip_duplicates=False),
        show_progress=False,
        replace=True,
    )
    rows = pq.read_table(out / "pairs.parquet").to_pylist()
    assert all(r["frames"] == list(range(r["start_frame"], r["end_frame"] + 1)) for r in rows)


def test_crf_round_trip_is_identity():
    codes = np.arange(256, dtype=np.uint8)
    for mode in ("srgb", "gamma2.2", "linear"):
        assert np.array_equal(encode(decode_lut(mode)[codes], mode), codes)


def test_fast_encoder_matches_the_curve():
    from mf2.blur.crf import _encode_exact

    rng = np.random.default_rng(0)
    v = np.concatenate(
        [
            rng.random(200_000).astype(np.float32),
            np.linspace(0, 1, 10_001, dtype=np.float32),
            np.array([-0.1, 0.0, 1.0, 1.2], np.float32),
        ]
    )
    for mode in ("srgb", "gamma2.2", "linear"):
        diff = np.abs(encode(v, mode).astype(int) - _encode_exact(v, mode).astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-4  # only exact ties may round differently


def test_encoder_corrects_every_value_a_boundary_is_near():
    """encode() compares against the exact code boundaries only where one is near (speed). It
    must equal correcting every value, on the boundaries themselves and one float either side."""
    from mf2.blur.crf import _GRID, _tables

    rng = np.random.default_rng(1)
    for mode in ("srgb", "gamma2.2", "linear"):
        table, upper, lower, near = _tables(mode)
        b = upper[:-1]
        v = np.concatenate(
            [
                b,
                np.nextafter(b, np.float32(0)),
                np.nextafter(b, np.float32(1)),
                rng.random(300_000, dtype=np.float32) ** 3,
                np.float32([-0.5, 0, 1, 1.5]),
            ]
        )
        idx = np.clip(v * np.float32(_GRID) + np.float32(0.5), 0, _GRID).astype(np.uint16)
        every = table[idx].astype(np.int16)
        every += v >= upper[every]
        every -= v < lower[every]
        assert np.array_equal(encode(v, mode), every.astype(np.uint8))
        assert np.array_equal(encode(v.reshape(-1, 1, 1), mode).ravel(), every.astype(np.uint8))
        assert near.mean() < 0.05  # the comparison is the exception


def test_a_window_whose_crop_leaves_the_frame_averages_the_zero_padded_crops(videos):
    """Crops past every edge of the frame (a close-up's margins) are summed straight into the
    window's accumulator (issue 35): the result is still encode(mean(decode(padded crop)))
    of each frame, with black where the crop leaves the frame, bit for bit."""
    from mf2.blur.render import render_windows
    from mf2.blur.windows import Window
    from mf2.faces.crop import Crop

    frames = decode_reference(videos / "fomm_08.mp4")[:9]  # 256 x 256
    h, w = frames[0].shape[:2]
    lut = decode_lut("srgb")
    for crop in (Crop(-40, -30, 200), Crop(150, 170, 160), Crop(-20, -20, 300), Crop(10, 20, 100)):
        win = Window(tuple(range(1, 8)), 4, crop, 0)
        ((_, blurry, sharp),) = render_windows(iter(frames), [win], "srgb", crop.size)
        padded = [np.pad(f, ((64, 64 + 300), (64, 64 + 300), (0, 0)))[crop.y0 + 64 :, crop.x0 + 64 :][: crop.size, : crop.size]
                  for f in frames]  # fmt: skip
        mean = np.mean([lut[p].astype(np.float32) for p in padded[1:8]], axis=0, dtype=np.float32)
        assert (h, w) == (256, 256) and np.array_equal(sharp, padded[4])
        assert np.array_equal(blurry, encode(mean, "srgb")), crop
