"""Sharing a dataset: schema docs, verify, export without pixels, byte-exact materialize,
identity-safe splits, takedowns, and reading the manifest from other tools. Real clips,
real ffmpeg, real Parquet; the `mf2` command as a user runs it."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, copy_clips, ffmpeg, run_mf2

pytestmark = pytest.mark.slow  # end to end on real clips (make test-fast leaves it out)

CLIPS = ("fomm_08.mp4", "lp_d18.mp4")


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for kind in ("blurry", "sharp")
        for p in sorted((root / kind).rglob("*.png"))
    }


@pytest.fixture(scope="module")
def clips(videos, tmp_path_factory) -> Path:
    return copy_clips(videos, CLIPS, tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module", params=["pravg", "synthetic", "vla"])
def built(request, clips, tmp_path_factory) -> tuple[str, Path]:
    mode = request.param
    out = tmp_path_factory.mktemp(f"ds_{mode}")
    extra = {
        "pravg": ["--L", "7", "--stride", "3"],
        "synthetic": ["--stride", "4", "--noise-sigma", "2"],
        "vla": ["--direction", "both"],
    }[mode]
    res = run_mf2("simulate", "--videos", str(clips), "--out", str(out), "--mode", mode, "--no-contact-sheet", *extra)
    assert res.returncode == 0, res.stderr
    return mode, out


@pytest.fixture
def dataset(clips, tmp_path_factory) -> Path:
    """A fresh PrAvg dataset a test may tamper with (copied from one built once)."""
    return _copy(_pravg_base(clips, tmp_path_factory), tmp_path_factory.mktemp("work") / "ds")


_BASE: dict[str, Path] = {}


def _pravg_base(clips: Path, factory) -> Path:
    if "pravg" not in _BASE:
        out = factory.mktemp("base") / "ds"
        res = run_mf2(
            "simulate", "--videos", str(clips), "--out", str(out), "--L", "7", "--stride", "3", "--no-contact-sheet"
        )
        assert res.returncode == 0, res.stderr
        _BASE["pravg"] = out
    return _BASE["pravg"]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_schema_md_documents_every_column():
    from mf2.fetch.run import STATUS_FIELDS
    from mf2.schema import FAILURE_SCHEMA, FLOW_SCHEMA, LANDMARK_SCHEMA, PAIR_SCHEMA, REMOVED_SCHEMA, SCHEMA_VERSION

    text = (REPO / "manifests" / "SCHEMA.md").read_text()
    documented = set(re.findall(r"`([A-Za-z_0-9]+)`", text))
    names = {f.name for s in (FLOW_SCHEMA, FAILURE_SCHEMA, LANDMARK_SCHEMA, PAIR_SCHEMA, REMOVED_SCHEMA) for f in s}
    names |= {n for n, _ in STATUS_FIELDS}
    missing = sorted(names - documented)
    assert not missing, f"columns not in manifests/SCHEMA.md: {missing}"
    assert f"now `{SCHEMA_VERSION}`" in text


def test_round_trip_export_materialize_is_byte_identical(built, clips, tmp_path):
    mode, out = built
    res = run_mf2("verify", str(out))
    assert res.returncode == 0 and "OK" in res.stderr, res.stdout + res.stderr
    pairs = pq.read_table(out / "pairs.parquet")
    assert pairs.num_rows > 5 and set(pairs["mode"].to_pylist()) == {mode}
    md = pq.read_schema(out / "pairs.parquet").metadata
    videos_md = json.loads(md[b"mf2.videos"])
    from mf2.sources import sha256_file

    assert videos_md == {Path(c).stem: sha256_file(clips / c) for c in CLIPS}
    row_params = {json.loads(p)["mode"] for p in pairs["params"].to_pylist()}
    assert row_params == {mode}

    shared = tmp_path / "shared.parquet"
    res = run_mf2("export", str(out), "--no-images", "--out", str(shared))
    assert res.returncode == 0, res.stderr
    assert pq.read_schema(shared).metadata[b"mf2.images"] == b"none"
    assert pq.read_schema(shared).metadata[b"mf2.kind"] == b"pairs-export"

    rebuilt = tmp_path / "rebuilt"
    res = run_mf2("materialize", str(shared), "--videos", str(clips), "--out", str(rebuilt))
    assert res.returncode == 0, res.stderr
    assert f"{pairs.num_rows} identical" in res.stderr
    original, again = _files(out), _files(rebuilt)
    assert set(again) == set(pairs["blurry_path"].to_pylist()) | set(pairs["sharp_path"].to_pylist())
    assert all(again[k] == original[k] for k in again)  # byte-identical PNGs
    res = run_mf2("verify", str(rebuilt))
    assert res.returncode == 0 and "OK" in res.stderr, res.stdout + res.stderr
    assert pq.read_table(rebuilt / "pairs.parquet").equals(pairs)

    res = run_mf2("materialize", str(shared), "--videos", str(clips), "--out", str(rebuilt))
    assert res.returncode == 0 and f"({pairs.num_rows} already there)" in res.stderr


def test_materialize_proves_pixels_whatever_the_png_encoder(dataset, clips, tmp_path, monkeypatch):
    """The pixel hashes (schema 1.6) prove a rebuilt image equal even when another PNG encoder
    writes other files; a manifest from before them (1.5: file hashes only) is rebuilt with the
    encoder of that time, byte for byte."""
    import cv2

    from mf2.pngs import rgb_sha256
    from mf2.share.materialize import materialize

    t = pq.read_table(dataset / "pairs.parquet")
    row = t.slice(0, 1).to_pylist()[0]
    rgb = cv2.cvtColor(cv2.imread(str(dataset / row["sharp_path"])), cv2.COLOR_BGR2RGB)
    assert row["sharp_rgb_sha256"] == rgb_sha256(rgb) != row["sharp_sha256"]

    # another encoder (as another OpenCV or zlib would be): other files, the same pixels
    monkeypatch.setattr("mf2.pngs._PARAMS", [cv2.IMWRITE_PNG_COMPRESSION, 9])
    s = materialize(dataset / "pairs.parquet", clips, tmp_path / "other")
    assert (s.n_exact, s.n_mismatched, s.n_missing) == (t.num_rows, 0, 0)
    again = pq.read_table(tmp_path / "other" / "pairs.parquet")
    assert again["blurry_rgb_sha256"].to_pylist() == t["blurry_rgb_sha256"].to_pylist()
    assert again["blurry_sha256"].to_pylist() != t["blurry_sha256"].to_pylist()  # other files ...
    res = run_mf2("verify", str(tmp_path / "other"))  # ... which the rebuilt manifest describes
    assert res.returncode == 0 and "OK" in res.stderr, res.stdout + res.stderr

    # a 1.5 manifest: no pixel hashes; its PNGs were written with OpenCV's default settings
    monkeypatch.undo()
    from mf2.pngs import encode_png

    old = _copy(dataset, tmp_path / "old")
    legacy = {}
    for r in t.to_pylist():
        for kind in ("blurry", "sharp"):
            p = old / r[f"{kind}_path"]
            png = encode_png(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), legacy=True)
            p.write_bytes(png)
            legacy[r[f"{kind}_path"]] = png
    hashes = {k: hashlib.sha256(v).hexdigest() for k, v in legacy.items()}
    t15 = t.drop_columns(["blurry_rgb_sha256", "sharp_rgb_sha256"])
    for kind in ("blurry", "sharp"):
        col = pa.array([hashes[p] for p in t[f"{kind}_path"].to_pylist()], pa.string())
        t15 = t15.set_column(t15.schema.get_field_index(f"{kind}_sha256"), f"{kind}_sha256", col)
    md = dict(t.schema.metadata)
    md[b"mf2.schema_version"] = b"1.5"
    pq.write_table(t15.replace_schema_metadata(md), old / "pairs.parquet")
    res = run_mf2("verify", str(old))
    assert res.returncode == 0, res.stdout + res.stderr
    s = materialize(old / "pairs.parquet", clips, tmp_path / "rebuilt15")
    assert (s.n_exact, s.n_mismatched) == (t.num_rows, 0)
    assert _files(tmp_path / "rebuilt15") == legacy  # byte for byte, as that manifest records
    assert legacy != _files(dataset)  # (the two encoders do differ)


def test_verify_names_each_tampering(dataset, tmp_path):
    t = pq.read_table(dataset / "pairs.parquet")
    rows = t.to_pylist()
    modified, deleted = rows[1], rows[4]
    p = dataset / modified["blurry_path"]
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    (dataset / deleted["sharp_path"]).unlink()

    # a duplicated row, and one identity in two splits
    vids = sorted(set(t["video_id"].to_pylist()))
    ident = pa.array(["Same Person"] * t.num_rows, pa.string())
    split = pa.array(["train" if v == vids[0] else "test" for v in t["video_id"].to_pylist()], pa.string())
    t = t.set_column(t.schema.get_field_index("identity"), "identity", ident)
    t = t.set_column(t.schema.get_field_index("split"), "split", split)
    dup = pa.concat_tables([t, t.slice(2, 1)]).replace_schema_metadata(t.schema.metadata)
    pq.write_table(dup, dataset / "pairs.parquet")
    (dataset / "blurry" / vids[0] / "stray.png").write_bytes(p.read_bytes())

    res = run_mf2("verify", str(dataset))
    assert res.returncode == 1, res.stdout + res.stderr
    out = res.stdout
    assert f"pair {modified['pair_id']}: blurry image modified" in out
    assert f"pair {deleted['pair_id']}: sharp image missing" in out
    assert f"pair {rows[2]['pair_id']}: pair_id appears 2 times" in out
    assert "identity 'Same Person' leaks across splits: test, train" in out
    assert "warning: file not in the manifest: blurry/" in out and "stray.png" in out
    assert "Traceback" not in res.stderr
    js = json.loads(run_mf2("verify", str(dataset), "--json").stdout)
    assert js["ok"] is False and len(js["problems"]) == 4


def test_verify_checks_landmarks_and_frame_lists(dataset):
    t = pq.read_table(dataset / "pairs.parquet")
    rows = t.to_pylist()
    rows[0]["landmarks"] = [[x + 500.0, y] for x, y in rows[0]["landmarks"]]
    rows[3]["L"] = rows[3]["L"] + 2
    bad = pa.Table.from_pylist(rows, schema=t.schema)
    pq.write_table(bad, dataset / "pairs.parquet")
    res = run_mf2("verify", str(dataset), "--no-hashes")
    assert res.returncode == 1
    assert f"pair {rows[0]['pair_id']}: landmarks outside the 256x256 crop" in res.stdout
    assert f"pair {rows[3]['pair_id']}: L = {rows[3]['L']} but {rows[3]['L'] - 2} frames listed" in res.stdout


def test_materialize_from_a_reencoded_video_reports_mismatches(dataset, clips, tmp_path):
    shared = tmp_path / "m.parquet"
    assert run_mf2("export", str(dataset), "--no-images", "--out", str(shared)).returncode == 0
    other = tmp_path / "their_videos"
    other.mkdir()
    ffmpeg(
        "-i",
        str(clips / "fomm_08.mp4"),
        "-c:v",
        "libx264",
        "-crf",
        "30",
        "-pix_fmt",
        "yuv420p",
        str(other / "fomm_08.mp4"),
    )
    shutil.copy(clips / "lp_d18.mp4", other / "lp_d18.mp4")
    out = tmp_path / "rebuilt"
    res = run_mf2("materialize", str(shared), "--videos", str(other), "--out", str(out))
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    with open(out / "materialize_report.csv", newline="") as f:
        report = list(csv.DictReader(f))
    t = pq.read_table(shared)
    n08 = sum(v == "fomm_08" for v in t["video_id"].to_pylist())
    assert len(report) == n08 and {r["status"] for r in report} == {"mismatch"}
    assert all(r["video_id"] == "fomm_08" and "video sha256" in r["detail"] for r in report)
    kept = pq.read_table(out / "pairs.parquet")
    assert set(kept["video_id"].to_pylist()) == {"lp_d18"}  # the identical ones only
    assert run_mf2("verify", str(out)).returncode == 0

    out2 = tmp_path / "approx"
    res = run_mf2("materialize", str(shared), "--videos", str(other), "--out", str(out2), "--keep-mismatched")
    assert res.returncode == 1
    assert pq.read_table(out2 / "pairs.parquet").num_rows == t.num_rows
    assert run_mf2("verify", str(out2)).returncode == 0  # new hashes recorded

    gone = tmp_path / "none"
    gone.mkdir()
    shutil.copy(clips / "lp_d18.mp4", gone / "lp_d18.mp4")
    res = run_mf2("materialize", str(shared), "--videos", str(gone), "--out", str(tmp_path / "partial"))
    assert res.returncode == 1 and f"{n08} not rebuilt" in res.stderr


def test_remove_then_verify_is_clean_and_simulate_skips_it(dataset, clips):
    before = pq.read_table(dataset / "pairs.parquet")
    res = run_mf2("remove", str(dataset), "--video-id", "fomm_08", "--reason", "takedown #12")
    assert res.returncode == 0, res.stderr
    after = pq.read_table(dataset / "pairs.parquet")
    assert "fomm_08" not in after["video_id"].to_pylist()
    assert after.num_rows == before.num_rows - before["video_id"].to_pylist().count("fomm_08")
    assert not (dataset / "blurry" / "fomm_08").exists() and not (dataset / "sharp" / "fomm_08").exists()
    assert not (dataset / "landmarks" / "fomm_08.parquet").exists()
    assert not list(dataset.glob("parts/*/fomm_08.parquet"))
    removed = pq.read_table(dataset / "removed.parquet").to_pylist()
    assert removed[0]["video_id"] == "fomm_08" and removed[0]["reason"] == "takedown #12"
    res = run_mf2("verify", str(dataset))
    assert res.returncode == 0 and "0 warning(s): OK" in res.stderr, res.stdout + res.stderr

    res = run_mf2(
        "simulate", "--videos", str(clips), "--out", str(dataset), "--L", "7", "--stride", "3", "--no-contact-sheet"
    )
    assert res.returncode == 0 and "1 taken down (skipped)" in res.stderr
    assert pq.read_table(dataset / "pairs.parquet").equals(after)

    res = run_mf2("remove", str(dataset), "--video-id", "../etc")
    assert res.returncode == 2 and "not a video id" in res.stderr
    res = run_mf2("remove", str(dataset), "--video-id", "nobody")
    assert res.returncode == 2 and "nobody" in res.stderr


def test_split_keeps_identities_together_and_is_deterministic(dataset, clips, tmp_path):
    ids = tmp_path / "ids.csv"
    ids.write_text("video_id,identity\nfomm_08,Alice\nlp_d18,Alice\n")
    res = run_mf2("split", str(dataset), "--identities", str(ids), "--seed", "3")
    assert res.returncode == 0, res.stderr
    t = pq.read_table(dataset / "pairs.parquet")
    assert set(t["identity"].to_pylist()) == {"Alice"}
    assert len(set(t["split"].to_pylist())) == 1  # one person: one split
    first = t["split"].to_pylist()
    assert run_mf2("verify", str(dataset)).returncode == 0

    # by video: each video alone; assignments repeat exactly for the same seed
    res = run_mf2("split", str(dataset), "--by", "video", "--ratios", "a=1,b=1,c=1,d=1", "--seed", "7")
    assert res.returncode == 0
    t1 = pq.read_table(dataset / "pairs.parquet")
    per_video = {}
    for v, s in zip(t1["video_id"].to_pylist(), t1["split"].to_pylist()):
        per_video.setdefault(v, set()).add(s)
    assert all(len(s) == 1 for s in per_video.values())
    assert run_mf2("split", str(dataset), "--by", "video", "--ratios", "a=1,b=1,c=1,d=1", "--seed", "7").returncode == 0
    assert pq.read_table(dataset / "pairs.parquet")["split"].to_pylist() == t1["split"].to_pylist()
    assert run_mf2("split", str(dataset), "--identities", str(ids), "--seed", "3").returncode == 0
    assert pq.read_table(dataset / "pairs.parquet")["split"].to_pylist() == first

    # a later simulate into the same folder keeps the split
    res = run_mf2(
        "simulate", "--videos", str(clips), "--out", str(dataset), "--L", "7", "--stride", "3", "--no-contact-sheet"
    )
    assert res.returncode == 0
    assert pq.read_table(dataset / "pairs.parquet")["split"].to_pylist() == first

    res = run_mf2("split", str(dataset), "--ratios", "0.5,x,0.1")
    assert res.returncode == 2 and "--ratios" in res.stderr


def test_identity_groups_join_videos_through_shared_people():
    from mf2.share.split import SplitConfig, _bucket, groups

    g = groups(["v1", "v2", "v3", "v4"], ["A", "A;B", "B", None])
    assert g["v1"] == g["v2"] == g["v3"] != g["v4"]
    assert groups(["v1", "v2"], ["A", "A"], by="video")["v1"] != groups(["v1", "v2"], ["A", "A"], by="video")["v2"]
    cfg = SplitConfig()
    counts = {}
    for i in range(4000):
        s = _bucket(0, f"video:{i}", cfg)
        counts[s] = counts.get(s, 0) + 1
    assert abs(counts["train"] / 4000 - 0.8) < 0.03 and abs(counts["test"] / 4000 - 0.1) < 0.02


def test_export_with_images_of_one_split(dataset, tmp_path):
    ids = tmp_path / "ids.csv"
    ids.write_text("video_id,identity\nfomm_08,Alice\nlp_d18,Bob\n")
    assert run_mf2("split", str(dataset), "--identities", str(ids), "--ratios", "train=1,test=1").returncode == 0
    t = pq.read_table(dataset / "pairs.parquet")
    name = t["split"][0].as_py()
    res = run_mf2("export", str(dataset), "--out", str(tmp_path / "sub"), "--split", name)
    assert res.returncode == 0, res.stderr
    sub = pq.read_table(tmp_path / "sub" / "pairs.parquet")
    assert set(sub["split"].to_pylist()) == {name} and sub.num_rows == t["split"].to_pylist().count(name)
    assert run_mf2("verify", str(tmp_path / "sub")).returncode == 0
    res = run_mf2("export", str(dataset), "--out", str(tmp_path / "x"), "--split", "nosuch")
    assert res.returncode == 2 and "nosuch" in res.stderr


def test_hub_exports_load_in_datasets_and_webdataset(dataset, tmp_path):
    """--format hf: `datasets` (the real library) reads the shards with Image columns whose
    pixels are the PNGs'; --format webdataset: `webdataset` streams the same pairs. Both keep the
    splits, every manifest column, and a dataset card; a re-run over a finished export refuses."""
    import numpy as np
    import webdataset as wds
    from datasets import Image, load_dataset
    from PIL import Image as PILImage

    ids = tmp_path / "ids.csv"
    ids.write_text("video_id,identity\nfomm_08,Alice\nlp_d18,Bob\n")
    assert run_mf2("split", str(dataset), "--identities", str(ids), "--ratios", "train=1,test=1").returncode == 0
    t = pq.read_table(dataset / "pairs.parquet")
    want = {r["pair_id"]: r for r in t.to_pylist()}
    png = {k: np.asarray(PILImage.open(dataset / r["blurry_path"]).convert("RGB")) for k, r in want.items()}
    res = run_mf2("export", str(dataset), "--format", "hf", "--out", str(tmp_path / "hub"), "--shard-pairs", "40")
    assert res.returncode == 0, res.stderr
    hub = load_dataset("parquet", data_dir=str(tmp_path / "hub" / "data"))
    assert set(hub) == set(t["split"].to_pylist())
    assert sum(len(hub[s]) for s in hub) == t.num_rows
    for split in hub:
        assert isinstance(hub[split].features["blurry"], Image) and isinstance(hub[split].features["sharp"], Image)
        row = hub[split][0]
        assert row["split"] == split and row["landmarks"] == want[row["pair_id"]]["landmarks"]
        assert np.array_equal(np.asarray(row["blurry"].convert("RGB")), png[row["pair_id"]])
    card = (tmp_path / "hub" / "README.md").read_text()
    assert card.startswith("---\nlicense:") and "data/train-*.parquet" in card and "Chrysos" in card
    assert '"L": 7' in card and "| `landmarks` |" in card
    res = run_mf2("export", str(dataset), "--format", "hf", "--out", str(tmp_path / "hub"))
    assert res.returncode == 2 and "not empty" in res.stderr

    res = run_mf2(
        "export", str(dataset), "--format", "webdataset", "--out", str(tmp_path / "wds"), "--shard-pairs", "40"
    )
    assert res.returncode == 0, res.stderr
    shards = sorted(str(p) for p in (tmp_path / "wds").glob("*.tar"))
    seen = {}
    for key, blurry, meta in (
        wds.WebDataset(shards, shardshuffle=False).decode("rgb8").to_tuple("__key__", "blurry.png", "json")
    ):
        seen[meta["pair_id"]] = meta
        assert key == meta["pair_id"] and np.array_equal(blurry, png[meta["pair_id"]])
    assert set(seen) == set(want) and all(seen[k]["split"] == want[k]["split"] for k in want)
    res = run_mf2("export", str(dataset), "--format", "webdataset", "--no-images", "--out", str(tmp_path / "w2"))
    assert res.returncode == 2 and "--no-images" in res.stderr


def test_schema_versions_old_upgraded_new_refused(dataset, tmp_path):
    t = pq.read_table(dataset / "pairs.parquet")
    md = dict(t.schema.metadata)
    old_cols = [
        c
        for c in t.column_names
        if c
        not in (
            "identity",
            "split",
            "params",
            "direction",
            "stop_reason",
            "stop_overlap",
            "stop_quality",
            "stop_fb_bad",
            "stop_osc_px",
            "displacement_px",
            "path_px",
            "seed",
            "kernel_size",
            "kernel",
            "noise_sigma",
        )
    ]
    v10 = t.select(old_cols).replace_schema_metadata({**md, b"mf2.schema_version": b"1.0"})
    md.pop(b"mf2.videos")
    v10 = v10.replace_schema_metadata({k: v for k, v in v10.schema.metadata.items() if k != b"mf2.videos"})
    pq.write_table(v10, dataset / "pairs.parquet")
    res = run_mf2("verify", str(dataset))
    assert res.returncode == 0 and "OK" in res.stderr, res.stdout + res.stderr

    v2 = t.replace_schema_metadata({**t.schema.metadata, b"mf2.schema_version": b"2.0"})
    pq.write_table(v2, dataset / "pairs.parquet")
    for cmd in (
        ["verify", str(dataset)],
        ["export", str(dataset), "--no-images", "--out", str(tmp_path / "e.parquet")],
    ):
        res = run_mf2(*cmd)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and "schema 2.0" in lines[0] and "upgrade mf2" in lines[0]


def test_unsafe_paths_and_non_manifests_are_one_line_errors(dataset, tmp_path, clips):
    t = pq.read_table(dataset / "pairs.parquet")
    rows = t.to_pylist()
    rows[0]["blurry_path"] = "../../escape.png"
    evil = tmp_path / "evil.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), evil)
    res = run_mf2("materialize", str(evil), "--videos", str(clips), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "unsafe path" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "o").exists()
    res = run_mf2("verify", str(dataset / "landmarks" / "fomm_08.parquet"))
    assert res.returncode == 2 and "not an mf2 pair manifest" in res.stderr
    res = run_mf2("verify", str(tmp_path / "nothing"))
    assert res.returncode == 2 and "nothing" in res.stderr


def test_manifest_reads_in_pandas_pyarrow_dataset_and_duckdb(dataset):
    import duckdb
    import pandas as pd
    import pyarrow.dataset as pads
    from PIL import Image

    path = dataset / "pairs.parquet"
    df = pd.read_parquet(path)
    first = df.iloc[0]
    with Image.open(path.parent / first.blurry_path) as im:
        assert im.size == (first.out_size, first.out_size)
    table = pads.dataset(path).to_table(filter=pads.field("video_id") == "lp_d18")
    assert table.num_rows == (df.video_id == "lp_d18").sum() > 0
    con = duckdb.connect()
    n, mean_l = con.execute(f"SELECT count(*), avg(L) FROM read_parquet('{path}') WHERE mode = 'pravg'").fetchone()
    assert n == len(df) and mean_l == 7
    paths = [r[0] for r in con.execute(f"SELECT blurry_path FROM read_parquet('{path}')").fetchall()]
    assert all((path.parent / p).is_file() for p in paths)
    # the pair measures (schema 1.8), read back as a lab would filter on them
    sql = (
        "SELECT count(*), count(target_sharpness), min(sharpness_rank), max(sharpness_rank), "
        "avg(blur_psnr), max(blur_ssim), max(saturated_share), avg(fit_residual), min(bits_per_pixel) "
        f"FROM read_parquet('{path}')"
    )
    n, n_sharp, r0, r1, psnr, ssim, sat, res, bpp = con.execute(sql).fetchone()
    assert n_sharp == n and r0 == 0 and r1 == 1
    assert 20 < psnr < 60 and 0 < ssim <= 1 and 0 <= sat < 1 and 0.05 < res < 0.5 and bpp > 0
    from mf2.quality import psnr as y_psnr

    row = df.iloc[0]
    b, t = (np.asarray(Image.open(path.parent / q).convert("RGB")) for q in (row.blurry_path, row.sharp_path))
    assert abs(min(y_psnr(b, t), 100.0) - row.blur_psnr) < 1e-3
