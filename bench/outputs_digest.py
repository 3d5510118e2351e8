"""A digest of what simulate makes, to prove a refactor changed nothing (issue 15).

Runs every blur mode (PrAvg L 7, VLA both directions, synthetic; and PrAvg 7 with
``--neighbours``) on a few shared clips in one process (``--workers 0``), then prints JSON:
per mode, the number of pairs and one sha256 over every pair's row (every column but the
``params`` JSON, whose keys may be renamed by a refactor, and ``split``; the PNG file hashes
are replaced by hashes of the decoded pixels, so a change of PNG encoder settings alone leaves
it unchanged); one over the params, read through the ``upgrade_params`` of the mf2 beside this
script; plus a digest per landmark table. Run it before and after a change and diff the two files:

    .venv/bin/python bench/outputs_digest.py > before.json
    # change the code
    .venv/bin/python bench/outputs_digest.py > after.json
    diff before.json after.json

A change that adds columns (a schema minor version) proves the rest unchanged with
``--ignore COL ...``: the digest then leaves those columns out, whichever side lacks them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
CLIPS = ("fomm_08.mp4", "lp_d19.mp4", "sadtalker_WDA_KatieHill_000.mp4")
MODES = {
    "pravg": ["--mode", "pravg", "--L", "7"],
    "vla": ["--mode", "vla", "--direction", "both"],
    "synthetic": ["--mode", "synthetic", "--seed", "0"],
    # the exposures beside each pair (--neighbours, schema 1.9); an mf2 without them says so
    "pravg_neighbours": ["--mode", "pravg", "--L", "7", "--neighbours"],
}
KINDS = ("blurry", "sharp", "prev", "next")  # the images a pair may have (mf2.dataset.FILE_KINDS)
SKIP = {"params", "split", *(f"{k}_{h}" for k in KINDS for h in ("sha256", "rgb_sha256"))}


def _upgrade(params: dict) -> dict:
    """Params in today's names, by the ``upgrade_params`` of the mf2 beside this script (its
    mf2/params.py imports nothing from mf2), so that a run of an older mf2 (PYTHONPATH) is read
    the same way as a run of this one."""
    import importlib.util

    mod = sys.modules.get("_mf2_params_now")
    if mod is None:
        spec = importlib.util.spec_from_file_location("_mf2_params_now", HERE.parent / "mf2" / "params.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
    return mod.upgrade_params(params)


def _params_digest(rows: list[dict], table_params: str) -> str:
    """One sha256 over every row's params and the manifest's, read in today's names: a rename
    with its alias leaves it unchanged, a changed value does not."""
    h = hashlib.sha256(json.dumps(_upgrade(json.loads(table_params)), sort_keys=True).encode())
    for r in rows:
        h.update(json.dumps(_upgrade(json.loads(r["params"])), sort_keys=True).encode())
    return h.hexdigest()


def _pixels(root: Path, rel: str) -> str:
    import cv2

    return hashlib.sha256(cv2.imread(str(root / rel), cv2.IMREAD_UNCHANGED).tobytes()).hexdigest()


def _digest(rows: list[dict], root: Path | None = None, ignore: frozenset = frozenset()) -> str:
    h = hashlib.sha256()
    for r in rows:
        d = {k: v for k, v in r.items() if k not in SKIP and k not in ignore}
        if root is not None:
            d["pixels"] = [_pixels(root, r[f"{k}_path"]) for k in KINDS if r.get(f"{k}_path")]
        h.update(json.dumps(d, sort_keys=True, default=str).encode())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=Path, default=HERE.parents[1] / "shared" / "data" / "videos")
    ap.add_argument("--clips", nargs="*", default=list(CLIPS))
    ap.add_argument("--ignore", nargs="*", default=[], help="pair columns left out (ones a change added)")
    args = ap.parse_args()
    ignore = frozenset(args.ignore)
    # The CLI, not mf2.api: this script also runs against older mf2 versions (PYTHONPATH), which
    # have no API; their command line is the interface they share with today's.
    from click.testing import CliRunner

    from mf2.cli import cli

    report: dict = {"clips": args.clips, "modes": {}, "landmarks": {}}
    if ignore:
        report["ignored"] = sorted(ignore)
    with tempfile.TemporaryDirectory(prefix="mf2-digest-") as tmp:
        vids = Path(tmp) / "in"
        vids.mkdir()
        for c in args.clips:
            (vids / c).symlink_to((args.videos / c).resolve())
        for mode, opts in MODES.items():
            out = Path(tmp) / mode
            res = CliRunner().invoke(
                cli,
                ["simulate", "--videos", str(vids), "--out", str(out), "--workers", "0", "--no-contact-sheet", *opts],
            )
            if res.exit_code != 0 and "No such option" in res.output:
                report["modes"][mode] = "not in this mf2"  # an older mf2 (PYTHONPATH) lacks the option
                continue
            if res.exit_code != 0:
                sys.exit(f"simulate {mode} failed: {res.output}")
            table = pq.read_table(out / "pairs.parquet")
            rows = sorted(table.to_pylist(), key=lambda r: r["pair_id"])
            report["modes"][mode] = {
                "pairs": len(rows),
                "sha256": _digest(rows, out, ignore),
                "params_sha256": _params_digest(rows, table.schema.metadata[b"mf2.params"]),
            }
            if mode == "pravg":
                for p in sorted((out / "landmarks").glob("*.parquet")):
                    report["landmarks"][p.stem] = _digest(pq.read_table(p).to_pylist())
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
