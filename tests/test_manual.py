"""Videos with human landmarks, as the paper's 300VW protocol has them: a folder of numbered
frames with a .pts per frame, and 300VW's layout (NNN/vid.avi beside NNN/annot/000001.pts).

The sequence is made from an annotated still of ../shared/data/landmarks: the face slides
across the picture (a whole-pixel pan, so every frame's annotation is the still's, moved), which
gives a real face with exact per-frame human ground truth. The paper's Oracle (the localiser
on the sharp frame) must then score a real, non-zero error against it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import ffmpeg, run_mf2
from PIL import Image

N = 20
STILL = ("lfpw_300w", "image_0001")


def _write_pts(path: Path, pts: np.ndarray) -> None:
    body = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in pts)  # 1-based on disk
    path.write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")


def _shift(i: int) -> tuple[int, int]:
    return 3 * i, (i % 5) - 2  # a pan with a small vertical wobble


@pytest.fixture(scope="module")
def sequence(landmark_data, tmp_path_factory) -> Path:
    """NAME/frame_0001.png … with frame_0001.pts beside each."""
    from mf2.faces.pts import read_pts

    folder, stem = STILL
    img = np.asarray(Image.open(landmark_data / folder / f"{stem}.png").convert("RGB"))
    pts = read_pts(landmark_data / folder / f"{stem}.pts")
    h, w = img.shape[:2]
    pad = np.pad(img, ((8, 8), (3 * N, 0), (0, 0)), mode="edge")  # room for the pan, left of the picture
    out = tmp_path_factory.mktemp("seq") / "talk"
    out.mkdir()
    for i in range(N):
        dx, dy = _shift(i)
        frame = pad[8 - dy : 8 - dy + h, 3 * N - dx : 3 * N - dx + w]  # content moves right by dx, down by dy
        Image.fromarray(np.ascontiguousarray(frame)).save(out / f"frame_{i + 1:04d}.png")
        _write_pts(out / f"frame_{i + 1:04d}.pts", pts + np.array([dx, dy], np.float32))
    return out


def _pairs(out: Path) -> list[dict]:
    return pq.read_table(out / "pairs.parquet").to_pylist()


def _expected(row: dict, pts: np.ndarray) -> np.ndarray:
    s = row["out_size"] / row["crop_size"]
    return (pts - np.array([row["crop_x0"], row["crop_y0"]]) + 0.5) * s - 0.5


@pytest.mark.slow
def test_frame_folder_with_pts_gives_manual_ground_truth_and_a_real_oracle_error(sequence, landmark_data, tmp_path):
    from mf2.faces.pts import read_pts

    out = tmp_path / "pairs"
    res = run_mf2(
        "simulate",
        "--videos",
        str(sequence),
        "--out",
        str(out),
        "--L",
        "5",
        "--fps",
        "25",
        "--landmarks",
        "dlib",
        "--out-size",
        "128",
        "--workers",
        "0",
        "--no-contact-sheet",
    )
    assert res.returncode == 0, res.stderr
    rows = _pairs(out)
    assert len(rows) == N - 4 and {r["video_id"] for r in rows} == {"talk"}
    assert {r["landmarks_source"] for r in rows} == {"manual"} and {r["fps"] for r in rows} == {25.0}
    still = read_pts(landmark_data / STILL[0] / f"{STILL[1]}.pts")
    for r in rows:  # the pair's landmarks are the human ones of its sharp frame, in crop pixels
        c = r["center_frame"]
        want = _expected(r, still + np.array(_shift(c), np.float32))
        assert np.abs(np.array(r["landmarks"]) - want).max() < 1e-3
    lm = pq.read_table(out / "landmarks" / "talk.parquet")
    assert set(lm["source"].to_pylist()) == {"manual"}
    assert json.loads(lm.schema.metadata[b"mf2.manual"]) == {"annotated": N, "matched": N, "unmatched": 0}

    rep = tmp_path / "report"
    res = run_mf2("evaluate", str(out), "--landmarks", "dlib", "--no-identity", "--out", str(rep), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert set(report["ground_truth"].values()) == {"manual"}
    per = {m["method"]: m for m in report["results"]}
    oracle = per["Oracle"]["nme_mean"]
    assert 0.003 < oracle < 0.05, oracle  # dlib against human points: real, small, not zero
    # --gt refit: the localiser against itself, the old behaviour, scores the Oracle 0
    res = run_mf2(
        "evaluate",
        str(out),
        "--landmarks",
        "dlib",
        "--no-identity",
        "--gt",
        "refit",
        "--out",
        str(tmp_path / "r2"),
        "--json",
    )
    assert {m["method"]: m for m in json.loads(res.stdout)["results"]}["Oracle"]["nme_mean"] == 0.0


@pytest.mark.slow
def test_300vw_layout_names_the_video_by_its_folder_and_reads_annot(sequence, tmp_path):
    root = tmp_path / "300VW"
    (root / "001" / "annot").mkdir(parents=True)
    ffmpeg(
        "-framerate",
        "30",
        "-i",
        str(sequence / "frame_%04d.png"),
        "-c:v",
        "ffv1",
        "-pix_fmt",
        "bgr0",
        str(root / "001" / "vid.avi"),
    )
    for i in range(N):
        (root / "001" / "annot" / f"{i + 1:06d}.pts").write_text((sequence / f"frame_{i + 1:04d}.pts").read_text())
    (root / "002").mkdir()  # a video without annotations, beside it (mirrored: the same bytes would be taken once)
    ffmpeg(
        "-framerate",
        "30",
        "-i",
        str(sequence / "frame_%04d.png"),
        "-vf",
        "hflip",
        "-c:v",
        "ffv1",
        "-pix_fmt",
        "bgr0",
        str(root / "002" / "vid.avi"),
    )
    out = tmp_path / "pairs"
    res = run_mf2(
        "simulate",
        "--videos",
        str(root),
        "--out",
        str(out),
        "--L",
        "5",
        "--landmarks",
        "dlib",
        "--out-size",
        "128",
        "--workers",
        "0",
        "--no-contact-sheet",
    )
    assert res.returncode == 0, res.stderr
    rows = _pairs(out)
    by_video = {v: {r["landmarks_source"] for r in rows if r["video_id"] == v} for v in ("001", "002")}
    assert by_video == {"001": {"manual"}, "002": {"fitted"}}
    assert {r["fps"] for r in rows} == {30.0}


def test_frame_folders_are_ordered_by_number_and_need_a_frame_rate(tmp_path):
    from mf2.errors import InputError, UsageError
    from mf2.sources import frame_files, resolve_videos

    seq = tmp_path / "clip"
    seq.mkdir()
    for n in (10, 9, 100, 1):
        Image.new("RGB", (8, 8)).save(seq / f"f{n}.png")
    assert [f.name for f in frame_files(seq)] == ["f1.png", "f9.png", "f10.png", "f100.png"]
    with pytest.raises(UsageError, match="--fps"):
        resolve_videos(seq)
    assert resolve_videos(seq, 25)[0].fps == 25 and resolve_videos(seq, 25)[0].video_id == "clip"
    Image.new("RGB", (8, 8)).save(seq / "f010.png")
    with pytest.raises(InputError, match="two frames numbered 10"):
        frame_files(seq)
    res = run_mf2("simulate", "--videos", str(tmp_path), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        f"mf2: error: {seq}: a folder of frames needs its frame rate: give --fps N"
    ], res.stderr
    # YouTube Faces' layout, NAME/N/*.jpg: one video per folder, named NAME_N
    (seq / "f010.png").unlink()
    ytf = tmp_path / "ytf"
    for person, n in (("Aaron_Eckhart", "0"), ("Aaron_Eckhart", "1"), ("Zoe", "3")):
        (ytf / person / n).mkdir(parents=True)
        for k in (1, 2):
            Image.new("RGB", (8, 8)).save(ytf / person / n / f"{n}.{k}.jpg")
    assert [s.video_id for s in resolve_videos(ytf, 24)] == ["Aaron_Eckhart_0", "Aaron_Eckhart_1", "Zoe_3"]
    # one ordinary video in a subfolder keeps its own name (only 300VW's vid.* or annot/ name it by folder)
    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    (data / "videos" / "talk.mp4").write_bytes(b"x")
    (data / "001").mkdir()
    (data / "001" / "vid.avi").write_bytes(b"y")  # other bytes: a byte-identical copy is taken once
    assert [s.video_id for s in resolve_videos(data)] == ["001", "talk"]


@pytest.mark.slow
def test_a_video_as_frames_gives_the_same_pairs_and_materializes(videos, tmp_path):
    """ffmpeg's own RGB frames of a clip, as a numbered folder: byte-identical pairs to the clip
    itself, and a shared manifest of them rebuilds from the folder (the pairs' fps is used)."""
    frames = tmp_path / "vids" / "fomm_08"
    frames.mkdir(parents=True)
    ffmpeg("-i", str(videos / "fomm_08.mp4"), "-pix_fmt", "rgb24", str(frames / "%05d.png"))
    common = ("--out-size", "64", "--landmarks", "dlib", "--workers", "0", "--no-contact-sheet")
    assert (
        run_mf2("simulate", "--videos", str(frames), "--fps", "35", "--out", str(tmp_path / "a"), *common).returncode
        == 0
    )
    assert (
        run_mf2("simulate", "--videos", str(videos / "fomm_08.mp4"), "--out", str(tmp_path / "b"), *common).returncode
        == 0
    )
    key = ["pair_id", "blurry_sha256", "sharp_sha256", "landmarks"]
    a, b = (pq.read_table(tmp_path / d / "pairs.parquet", columns=key).to_pylist() for d in "ab")
    assert a == b and len(a) > 100
    assert run_mf2("export", str(tmp_path / "a"), "--no-images", "--out", str(tmp_path / "m.parquet")).returncode == 0
    res = run_mf2(
        "materialize", str(tmp_path / "m.parquet"), "--videos", str(tmp_path / "vids"), "--out", str(tmp_path / "c")
    )
    assert res.returncode == 0 and f"{len(a)} identical" in res.stderr, res.stderr
