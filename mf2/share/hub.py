"""Exports that the field's loaders read as they are, pixels inside.

- ``hf``: Parquet shards under ``data/`` whose ``blurry``/``sharp`` columns are Hugging Face
  ``Image`` columns (a struct of the PNG bytes and its file name, declared in the schema's
  ``huggingface`` metadata), plus a dataset card (README.md) with the loading configuration,
  the schema, the licences, the citation and the parameters that made the pairs. Relative
  paths in a manifest mean nothing once a dataset is on the Hub: the bytes travel instead.
- ``webdataset``: tar shards of ``KEY.blurry.png``, ``KEY.sharp.png`` and ``KEY.json`` (the
  manifest row), for streaming training.

Both keep every manifest column, split by the ``split`` column (``mf2 split``; unsplit pairs
are ``train``). Shards are written atomically; an interrupted export is finished by re-running.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mf2 import __version__
from mf2.atomic import write_atomic, write_bytes_atomic
from mf2.dataset import FILE_KINDS, IMAGE_KINDS, row_images
from mf2.dataset.manifest import Dataset, load, safe_rel
from mf2.errors import UsageError
from mf2.share.export import begin_export, select_splits

FORMATS = ("hf", "webdataset")
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # datasets.Image's storage
CITATION = """@article{chrysos2019motion,
  title   = {Motion Deblurring of Faces},
  author  = {Chrysos, Grigorios G. and Favaro, Paolo and Zafeiriou, Stefanos},
  journal = {International Journal of Computer Vision},
  volume  = {127},
  pages   = {801--823},
  year    = {2019}
}"""


@dataclass
class HubExport:
    n_pairs: int
    splits: dict[str, int]  # split -> pairs
    files: list[Path]
    path: Path


def _splits(table: pa.Table) -> dict[str, pa.Table]:
    split = pc.fill_null(table["split"], "train")
    return {s: table.filter(pc.equal(split, s)) for s in sorted(set(split.to_pylist()))}


def _shards(table: pa.Table, per: int) -> list[pa.Table]:
    n = max(1, math.ceil(table.num_rows / per))
    return [table.slice(i * per, per) for i in range(n)]


def _images(ds: Dataset, rels: list[str | None]) -> pa.Array:
    return pa.array(
        [None if r is None else {"bytes": (ds.root / safe_rel(r)).read_bytes(), "path": Path(r).name} for r in rels],
        IMAGE,
    )


def _kinds(table: pa.Table) -> list[str]:
    """The image kinds the table's pairs hold: blurry and sharp, and the neighbours where any pair has them."""
    return [k for k in FILE_KINDS if k in IMAGE_KINDS or table[f"{k}_path"].null_count < table.num_rows]


_PATHS = tuple(f"{k}_path" for k in FILE_KINDS)  # folders that are not on the Hub; the images carry their names


def _hf_table(ds: Dataset, part: pa.Table) -> pa.Table:
    kinds = _kinds(part)
    cols = {k: _images(ds, part[f"{k}_path"].to_pylist()) for k in kinds}
    cols.update({n: part[n] for n in part.column_names if n not in _PATHS})
    meta = {"info": {"features": {k: {"_type": "Image"} for k in kinds}}}
    return pa.table(cols).replace_schema_metadata(
        {b"huggingface": json.dumps(meta).encode(), b"mf2.kind": b"pairs-hf", b"mf2.version": __version__.encode()}
    )


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")


def export_hf(dataset: str | Path, out: Path, splits: tuple[str, ...] = (), shard_pairs: int = 1000) -> HubExport:
    ds = _loaded(dataset)
    table = select_splits(ds.table, splits)
    marker = begin_export(out)
    files, counts = [], {}
    for split, part in _splits(table).items():
        shards = _shards(part, shard_pairs)
        counts[split] = part.num_rows
        for i, shard in enumerate(shards):
            path = out / "data" / f"{split}-{i:05d}-of-{len(shards):05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, partial(_write_parquet, _hf_table(ds, shard)))
            files.append(path)
    write_bytes_atomic(out / "README.md", dataset_card(ds, table, counts, "hf").encode())
    marker.unlink()
    return HubExport(table.num_rows, counts, files, out)


def _row_json(row: dict) -> bytes:
    row = {k: v for k, v in row.items() if k not in _PATHS}
    return json.dumps(row, sort_keys=True, default=str).encode()


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # byte-identical shards from identical pairs
    tar.addfile(info, io.BytesIO(data))


def _write_tar(ds: Dataset, shard: pa.Table, tmp: Path) -> None:
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for row in shard.to_pylist():
            key = row["pair_id"].replace(".", "_")  # WebDataset keys end at the first dot
            for kind, rel in row_images(row):  # blurry, sharp, and the neighbours the pair has
                _tar_add(tar, f"{key}.{kind}.png", (ds.root / safe_rel(rel)).read_bytes())
            _tar_add(tar, f"{key}.json", _row_json(row))


def export_webdataset(
    dataset: str | Path, out: Path, splits: tuple[str, ...] = (), shard_pairs: int = 1000
) -> HubExport:
    ds = _loaded(dataset)
    table = select_splits(ds.table, splits)
    keys = [p.replace(".", "_") for p in table["pair_id"].to_pylist()]
    if len(set(keys)) != len(keys):
        raise UsageError(f"{ds.path}: pair ids collide once dots become underscores (WebDataset keys)")
    marker = begin_export(out)
    files, counts = [], {}
    for split, part in _splits(table).items():
        counts[split] = part.num_rows
        for i, shard in enumerate(_shards(part, shard_pairs)):
            path = out / f"{split}-{i:06d}.tar"
            write_atomic(path, partial(_write_tar, ds, shard))
            files.append(path)
    write_bytes_atomic(out / "README.md", dataset_card(ds, table, counts, "webdataset").encode())
    marker.unlink()
    return HubExport(table.num_rows, counts, files, out)


def _loaded(dataset: str | Path) -> Dataset:
    ds = load(dataset)
    if not ds.has_images:
        raise UsageError(f"{ds.path}: has no images to export; mf2 materialize it first")
    return ds


def _schema_rows(table: pa.Table, fmt: str) -> list[str]:
    rows = ["| column | type |", "| --- | --- |"]
    kinds = _kinds(table)  # with --neighbours: prev and next too (null / absent where a pair has none)
    if fmt == "hf":
        rows += [f"| `{k}` | Image (PNG bytes) |" for k in kinds]
    else:
        rows += [f"| `KEY.{k}.png` | PNG |" for k in kinds] + ["| `KEY.json` | the row below, as JSON |"]
    rows += [f"| `{f.name}` | {f.type} |" for f in table.schema if f.name not in _PATHS]
    return rows


_LOAD_HINTS = {
    "hf": 'from datasets import load_dataset\nds = load_dataset("parquet", data_dir="data")  '
    '# or the Hub repository id\nds["train"][0]["blurry"]  # a PIL image',
    "webdataset": 'import webdataset as wds\nds = wds.WebDataset("train-{000000..000009}.tar").decode("rgb8")'
    '.to_tuple("blurry.png", "sharp.png", "json")',
}


def _front_matter(counts: dict[str, int], fmt: str) -> list[str]:
    """The card's YAML front matter: licence, tags and where each split's files are."""
    pattern = "data/{}-*.parquet" if fmt == "hf" else "{}-*.tar"
    files = [f"    - split: {s}\n      path: {pattern.format(s)}" for s in counts]
    tags = ["license: other", "task_categories:", "- image-to-image", "tags:", "- mf2", "- face-deblurring"]
    return ["---", *tags, "- motion-blur", "configs:", "- config_name: default", "  data_files:", *files, "---"]


def dataset_card(ds: Dataset, table: pa.Table, counts: dict[str, int], fmt: str) -> str:
    """The Hub's README.md: YAML front matter (loading configuration, tags), then what a user
    must know before training on it."""
    licences = sorted({v for v in table.column("license").to_pylist() if v}) if "license" in table.column_names else []
    front = _front_matter(counts, fmt)
    name = ds.path.parent.name
    load_hint = _LOAD_HINTS[fmt]
    params = json.dumps(ds.params, indent=2, sort_keys=True)
    body = [
        f"# {name}: motion-blurred / sharp face pairs",
        "",
        f"{table.num_rows} pairs ({', '.join(f'{s}: {n}' for s, n in counts.items())}), made by mf2 "
        f"{ds.meta.get('mf2.version', '?')} from {len(set(table['video_id'].to_pylist()))} video(s), exported "
        f"by mf2 {__version__} (`mf2 export --format {fmt}`). Each row is one blurry image (consecutive frames "
        "averaged) and the sharp middle frame it is paired with, cropped around one face.",
        "",
        "## Loading",
        "",
        "```python",
        load_hint,
        "```",
        "",
        "## Licences",
        "",
        "The images are crops of the source videos and stay under their owners' terms"
        + (
            f" (the manifest's licence column: {', '.join(licences)})"
            if licences
            else " (the pairs carry no licence column: check each video's terms, e.g. the license column of the "
            "fetch manifest, DATA/fetch.parquet, before redistributing)"
        )
        + ". The landmarks come from dlib's 68-point model, trained on iBUG 300-W (research use). "
        "mf2 itself is Apache-2.0.",
        "",
        "## How the pairs were made",
        "",
        "`mf2 simulate` (or a recipe run through `mf2 run`) with these parameters; every row's `params` "
        "column holds the same record:",
        "",
        "```json",
        params,
        "```",
        "",
        "## Schema",
        "",
        *_schema_rows(table, fmt),
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return "\n".join(front + [""] + body)
