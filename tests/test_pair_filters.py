"""Pair filters (issue 31): at simulate time and after the fact (`mf2 filter`), on a clip
whose chosen frames were blurred before simulation."""

from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import run_mf2

pytestmark = pytest.mark.slow

BLURRED = (20, 21, 35, 48)  # frames given a 9x9 box blur before simulation


@pytest.fixture(scope="module")
def clip(videos, tmp_path_factory):
    """fomm_08's first 60 frames, BLURRED frames box-blurred, re-encoded near-losslessly."""
    from mf2.video import iter_frames, probe

    d = tmp_path_factory.mktemp("blurred")
    info = probe(videos / "fomm_08.mp4")
    enc = subprocess.Popen(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{info.width}x{info.height}",
            "-r",
            str(info.fps),
            "-i",
            "-",
            "-c:v",
            "libx264",
            "-crf",
            "12",
            "-pix_fmt",
            "yuv444p",
            str(d / "soft.mp4"),
        ],
        stdin=subprocess.PIPE,
    )
    for i, f in enumerate(iter_frames(info)):
        if i == 60:
            break
        enc.stdin.write(np.ascontiguousarray(cv2.blur(f, (9, 9)) if i in BLURRED else f).tobytes())
    enc.stdin.close()
    assert enc.wait() == 0
    return d


def _sim(clip, out, *extra):
    res = run_mf2(
        "simulate", "--videos", str(clip), "--out", str(out), "--workers", "0", "--no-contact-sheet", "--L", "5", *extra
    )
    assert res.returncode == 0, res.stderr
    return res, pq.read_table(out / "pairs.parquet").to_pandas()


def test_simulate_drops_soft_targets_and_nearly_unblurred_pairs(clip, tmp_path):
    _, full = _sim(clip, tmp_path / "all")
    soft = full[full.center_frame.isin(BLURRED)]
    assert len(soft) == len(BLURRED) and (soft.sharpness_ratio < 0.9).all()  # every blurred target stands out
    assert (full[~full.center_frame.isin(BLURRED)].sharpness_ratio >= 0.9).mean() > 0.9
    res, kept = _sim(clip, tmp_path / "f", "--min-target-sharpness", "0.9", "--min-blur", "38")
    assert not kept.center_frame.isin(BLURRED).any() and (kept.blur_psnr < 38).all()
    gone = set(full.pair_id) - set(kept.pair_id)
    want = set(full.pair_id[(full.sharpness_ratio < 0.9) | (full.blur_psnr >= 38)])
    assert gone == want and f"{len(gone)} dropped by the pair filters" in res.stderr
    pngs = {p.stem for p in (tmp_path / "f" / "sharp").rglob("*.png")}
    assert pngs == set(kept.pair_id)  # the dropped pairs' images are gone too
    again, _ = _sim(clip, tmp_path / "f", "--min-target-sharpness", "0.9", "--min-blur", "38")
    assert "1 resumed" in again.stderr and f"{len(gone)} dropped" in again.stderr
    assert run_mf2("verify", str(tmp_path / "f")).returncode == 0


def test_filter_command_after_the_fact_and_on_an_old_manifest(clip, tmp_path):
    _, full = _sim(clip, tmp_path / "DS")
    # mf2 stats: the measures' histograms and the softest targets, the blurred frames first
    st = run_mf2("stats", str(tmp_path / "DS"))
    assert st.returncode == 0 and "soft targets (sharpness ratio < 0.9)" in st.stdout, st.stderr
    import json

    info = json.loads((tmp_path / "DS" / "stats" / "stats.json").read_text())["measures"]
    assert {r["center_frame"] for r in info["softest"][: len(BLURRED)]} == set(BLURRED)
    for name in ("measures.png", "softest_targets.png"):
        img = cv2.imread(str(tmp_path / "DS" / "stats" / name))
        assert img is not None and img.std() > 10
    res = run_mf2("filter", str(tmp_path / "DS"), "--min-target-sharpness", "0.9", "--out", str(tmp_path / "F"))
    assert res.returncode == 0, res.stderr
    kept = pq.read_table(tmp_path / "F" / "pairs.parquet")
    assert set(kept["pair_id"].to_pylist()) == set(full.pair_id[full.sharpness_ratio >= 0.9])

    meta = json.loads(kept.schema.metadata[b"mf2.filter"])
    assert meta["rule"] == {"min_target_sharpness": 0.9} and meta["dropped"]["min_target_sharpness"] >= len(BLURRED)
    first = tmp_path / "F" / kept["sharp_path"][0].as_py()
    assert first.stat().st_nlink == 2  # the source's file, hard-linked
    assert run_mf2("verify", str(tmp_path / "F")).returncode == 0
    again = run_mf2("filter", str(tmp_path / "DS"), "--min-target-sharpness", "0.9", "--out", str(tmp_path / "F"))
    assert (
        again.returncode == 2 and "already holds a finished dataset" in again.stderr and "Traceback" not in again.stderr
    )
    # a manifest made before the measures existed: measured from its PNGs, same answer
    t = pq.read_table(tmp_path / "DS" / "pairs.parquet")
    from mf2.blur.measures import COLUMNS

    old = t.drop_columns(list(COLUMNS)).replace_schema_metadata({**t.schema.metadata, b"mf2.schema_version": b"1.7"})
    pq.write_table(old, tmp_path / "DS" / "pairs.parquet")
    res = run_mf2("filter", str(tmp_path / "DS"), "--min-target-sharpness", "0.9", "--out", str(tmp_path / "F2"))
    assert res.returncode == 0 and f"{len(full)} pairs measured from their PNGs" in res.stderr, res.stderr
    again = pq.read_table(tmp_path / "F2" / "pairs.parquet")
    assert again["pair_id"].to_pylist() == kept["pair_id"].to_pylist()
    assert np.allclose(again["target_sharpness"].to_numpy(), kept["target_sharpness"].to_numpy(), rtol=1e-5)
    bad = run_mf2("filter", str(tmp_path / "DS"), "--min-target-sharpness", "2", "--out", str(tmp_path / "F3"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--min-target-sharpness 2" in bad.stderr
