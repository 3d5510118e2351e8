"""Face verification on video pairs (the paper's Table 8): 10-fold accuracy ± std, the
threshold chosen on the training folds. The pairs list is built from the shared clips: each
clip cut in two halves gives a same-person pair, retalking_face_3 and sadtalker's Alexandria
Ocasio-Cortez clip are one person in two videos, and halves of different clips are
different-person pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ffmpeg, run_mf2

HALVED = ("fomm_10", "lp_d18", "ffpp_youtube_634", "lp_d9", "lp_d3")
SAME_PERSON = ("retalking_face_3", "sadtalker_WDA_AlexandriaOcasioCortez_000")


def test_ten_fold_chooses_the_threshold_on_the_other_folds():
    from mf2.evaluate.verification import best_threshold, ten_fold

    rng = np.random.default_rng(0)
    same = np.tile([True, False], 50)
    folds = np.repeat(np.arange(1, 11), 10)
    separable = np.where(same, rng.uniform(0.0, 0.3, 100), rng.uniform(0.5, 1.0, 100))
    r = ten_fold(separable, same, folds)
    assert r["mean"] == 1.0 and r["std"] == 0.0 and len(r["folds"]) == 10
    assert all(0.3 <= t <= 0.5 for t in r["thresholds"])
    noise = ten_fold(rng.uniform(0, 1, 100), same, folds)
    assert 0.2 < noise["mean"] < 0.8
    # one fold whose pairs sit on the wrong side of everyone else's threshold scores 0 there
    d = separable.copy()
    d[folds == 3] = np.where(same[folds == 3], 0.9, 0.1)
    r = ten_fold(d, same, folds)
    assert r["folds"][2] == 0.0 and r["mean"] == pytest.approx(0.9)
    assert best_threshold(np.array([0.1, 0.2, 0.8]), np.array([True, True, False])) == pytest.approx(0.5)


def test_read_pairs_takes_ytf_splits_and_refuses_bad_lines(tmp_path):
    from mf2.errors import InputError
    from mf2.evaluate.verification import read_pairs

    p = tmp_path / "splits.txt"
    p.write_text(
        "split number, first name, second name, is same\n1, Aaron_Eckhart/0, Aaron_Eckhart/1, 1, 1\n"
        "2, a, b, 0  # a comment\n"
    )
    got = read_pairs(p)
    assert [(x.fold, x.a, x.b, x.same) for x in got] == [
        (1, "Aaron_Eckhart_0", "Aaron_Eckhart_1", True),
        (2, "a", "b", False),
    ]
    p.write_text("1, a, b, 1\n2, a, b\n")
    with pytest.raises(InputError, match="splits.txt:2"):
        read_pairs(p)


@pytest.mark.slow
def test_verification_on_video_pairs_of_the_shared_clips(videos, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in HALVED:
        for half, (start, dur) in enumerate(((0, 3.5), (3.5, 3.5)), start=1):
            ffmpeg(
                "-ss",
                str(start),
                "-t",
                str(dur),
                "-i",
                str(videos / f"{name}.mp4"),
                "-an",
                "-c:v",
                "libx264",
                "-crf",
                "16",
                str(clips / f"{name}_{half}.mp4"),
            )
    for name in SAME_PERSON:
        ffmpeg("-i", str(videos / f"{name}.mp4"), "-an", "-c:v", "copy", str(clips / f"{name}.mp4"))
    pairs = [(f"{n}_1", f"{n}_2", 1) for n in HALVED] + [SAME_PERSON + (1,)]
    pairs += [(f"{a}_1", f"{b}_2", 0) for i, a in enumerate(HALVED) for b in HALVED[i + 1 :]]  # 10 different
    pairs += [
        (f"{HALVED[0]}_2", SAME_PERSON[0], 0),
        (f"{HALVED[3]}_1", SAME_PERSON[1], 0),
        (f"{HALVED[4]}_2", SAME_PERSON[0], 0),
        (f"{HALVED[1]}_2", SAME_PERSON[1], 0),
    ]
    listing = tmp_path / "pairs.txt"
    listing.write_text(
        "split, a, b, same\n" + "".join(f"{i % 10 + 1}, {a}, {b}, {s}\n" for i, (a, b, s) in enumerate(pairs))
    )
    ds = tmp_path / "ds"
    res = run_mf2(
        "simulate",
        "--videos",
        str(clips),
        "--out",
        str(ds),
        "--L",
        "7",
        "--stride",
        "20",
        "--out-size",
        "128",
        "--landmarks",
        "dlib",
        "--workers",
        "0",
        "--no-contact-sheet",
    )
    assert res.returncode == 0, res.stderr
    res = run_mf2(
        "evaluate",
        str(ds),
        "--verification",
        str(listing),
        "--landmarks",
        "dlib",
        "--out",
        str(tmp_path / "report"),
        "--json",
    )
    assert res.returncode == 0, res.stderr
    v = json.loads(res.stdout)["verification"]["PrAvg 7"]
    for method in ("Blurred", "Oracle"):
        assert v[method]["n_pairs"] == 20 and v[method]["n_missing"] == 0 and len(v[method]["folds"]) == 10
        assert 0.0 <= v[method]["std"] <= 0.5
    assert v["Oracle"]["mean"] >= 0.85, v["Oracle"]  # five people and one person twice, sharp frames
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Face verification (Table 8)" in md and "| Oracle | " in md
    res = run_mf2("evaluate", str(ds), "--verification", str(listing), "--no-identity", "--out", str(tmp_path / "r"))
    assert res.returncode == 2 and "--verification needs the identity embeddings" in res.stderr
