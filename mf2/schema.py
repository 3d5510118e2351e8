"""Arrow schemas and file metadata of every table mf2 writes.

Coordinates are 0-based pixels with integer values at pixel centres. Landmarks are the
iBUG 68-point markup (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).
Each file carries ``mf2.schema_version``, ``mf2.version`` and the parameters that produced
it, as JSON, in the Parquet key-value metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mf2 import __version__
from mf2.errors import InputError
from mf2.params import upgrade_params

SCHEMA_VERSION = "1.9"
# Minor versions only add nullable columns: a reader fills what an older file lacks with nulls
# (upgrade_pairs). A new major version changes meanings, and older readers refuse it.
SCHEMA_HISTORY = {
    "1.0": "video -> landmarks -> PrAvg pairs",
    "1.1": "VLA and synthetic columns (direction, stop_*, displacement_px, path_px, seed, kernel_size, kernel, noise_sigma)",
    "1.2": "identity, split and params columns; mf2.videos (video_id -> sha256) in the metadata",
    "1.3": "face tracks: landmark rows per (frame, track) with shot, track, face_id and reason; pairs get shot and face_id",
    "1.4": "params flat, by the names of mf2.params (the CLI's and recipes' names); older params read through "
    "mf2.params.upgrade_params",
    "1.5": "pairs: landmarks_source (manual: a human annotation of the sharp frame; fitted: the localiser's)",
    "1.6": "pairs: blurry_rgb_sha256 and sharp_rgb_sha256, the hashes of the pixels (PNG encoders may differ)",
    "1.7": "pairs: source_kind (video or photo) and face_px (the face's size in source pixels)",
    "1.8": "pairs: measures of each pair (target_sharpness, sharpness_rank, sharpness_ratio, blur_psnr, blur_ssim, saturated_share, "
    "fit_residual, bits_per_pixel: mf2.blur.measures)",
    "1.9": "pairs: prev_* and next_* (path, sha256, rgb_sha256): the exposures beside the pair's window, written by "
    "simulate --neighbours; null without them",
}

BOX = pa.list_(pa.float32(), 4)
LANDMARKS = pa.list_(pa.list_(pa.float32(), 2), 68)

LANDMARK_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("frame", pa.int32()),
        ("shot", pa.int32()),  # shots are numbered from 0 in each video
        ("track", pa.int32()),  # one face followed within one shot; null on a no-face row
        ("face_id", pa.int32()),  # the person: tracks clustered by identity across the video's shots
        ("box", BOX),
        ("landmarks", LANDMARKS),  # null where the track is lost
        ("score", pa.float32()),
        ("fit_iou", pa.float32()),  # track quality: the fit's agreement with the box it was given
        ("source", pa.string()),
        (
            "reason",
            pa.string(),
        ),  # ok (usable), a flag (light-change, short-shot, size-outlier, before-loss), why it was lost, or no-face
        ("backend", pa.string()),
        ("is_duplicate", pa.bool_()),
        ("dup_mad", pa.float32()),
    ]
)

PAIR_SCHEMA = pa.schema(
    [
        ("pair_id", pa.string()),
        ("video_id", pa.string()),
        ("video_sha256", pa.string()),
        ("mode", pa.string()),
        ("L", pa.int32()),
        ("start_frame", pa.int32()),
        ("center_frame", pa.int32()),
        ("end_frame", pa.int32()),
        ("frames", pa.list_(pa.int32())),  # exactly the frames averaged (repeats skipped)
        ("n_duplicates_skipped", pa.int32()),
        ("blurry_path", pa.string()),
        ("sharp_path", pa.string()),
        ("blurry_sha256", pa.string()),
        ("sharp_sha256", pa.string()),
        ("crop_x0", pa.int32()),
        ("crop_y0", pa.int32()),
        ("crop_size", pa.int32()),
        ("out_size", pa.int32()),
        ("landmarks", LANDMARKS),  # of the sharp crop, in output-image pixels
        ("crf", pa.string()),
        ("fps", pa.float64()),
        # vla only (null otherwise): the pass, why the sub-sequence stopped, what each rule
        # saw at the stop (null when not evaluated), and how far the face moved.
        ("direction", pa.string()),
        ("stop_reason", pa.string()),
        ("stop_overlap", pa.float32()),
        ("stop_quality", pa.float32()),
        ("stop_fb_bad", pa.float32()),
        ("stop_osc_px", pa.float32()),
        ("displacement_px", pa.float32()),
        ("path_px", pa.float32()),
        # synthetic only: the pair's seed regenerates the kernel and the noise exactly.
        ("seed", pa.int64()),
        ("kernel_size", pa.int32()),
        ("kernel", pa.list_(pa.float32())),  # row-major, kernel_size**2 values, sum 1
        ("noise_sigma", pa.float32()),
        # provenance and sharing: who is in the video (several identities joined by ";"),
        # the split `mf2 split` assigned, and the canonical JSON of the parameters that made
        # the pair, so that a row stays self-describing when manifests are concatenated.
        ("identity", pa.string()),
        ("split", pa.string()),
        ("params", pa.string()),
        # which face: the shot of the window and the face (mf2 face_id within the video)
        ("shot", pa.int32()),
        ("face_id", pa.int32()),
        # where the sharp frame's landmarks come from: "manual" (a human annotation, the
        # ground truth mf2 evaluate scores against) or "fitted" (the localiser); null before 1.5
        ("landmarks_source", pa.string()),
        # sha256 of each image's raw RGB bytes (row-major H x W x 3 uint8): the same image
        # whatever PNG encoder wrote the file; null before 1.6 (mf2.pngs)
        ("blurry_rgb_sha256", pa.string()),
        ("sharp_rgb_sha256", pa.string()),
        # what the pair was cut from: "video" (frames of a video) or "photo" (`--images`: a
        # still, its own source); and the face's size there, the larger side of the sharp
        # frame's 68-point extent in source pixels (an output larger than it was upsampled)
        ("source_kind", pa.string()),
        ("face_px", pa.float32()),
        # what the pair holds (mf2.blur.measures): the target's sharpness at a fixed scale, its
        # rank among its shot's targets and its ratio to its neighbours there, the blurry image's PSNR and SSIM against the
        # target, the target's clipped-pixel share, the sharp frame's landmark fit (Procrustes
        # residual) and the source stream's bits per pixel; null before 1.8
        ("target_sharpness", pa.float32()),
        ("sharpness_rank", pa.float32()),
        ("sharpness_ratio", pa.float32()),
        ("blur_psnr", pa.float32()),
        ("blur_ssim", pa.float32()),
        ("saturated_share", pa.float32()),
        ("fit_residual", pa.float32()),
        ("bits_per_pixel", pa.float32()),
        # the exposures just before and just after the pair's window (as many frames, its crop;
        # mf2.blur.windows.neighbour_windows), made with --neighbours; null where the video or
        # the face's track does not hold them, and before 1.9
        ("prev_path", pa.string()),
        ("next_path", pa.string()),
        ("prev_sha256", pa.string()),
        ("next_sha256", pa.string()),
        ("prev_rgb_sha256", pa.string()),
        ("next_rgb_sha256", pa.string()),
    ]
)

REMOVED_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("removed_at", pa.string()),  # UTC ISO 8601
        ("reason", pa.string()),
        ("n_pairs", pa.int32()),
    ]
)

FAILURE_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("path", pa.string()),
        ("stage", pa.string()),
        ("error_class", pa.string()),
        ("error", pa.string()),
        (
            "video_sha256",
            pa.string(),
        ),  # of the file that failed (null if unreadable): a re-run skips it unless it changed
    ]
)


# OUT/flow/<video_id>.parquet: one row per decoded frame (mf2.flow).
FLOW_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("frame", pa.int32()),  # flow from frame-1 to frame; row 0 has no predecessor
        ("valid", pa.bool_()),  # face known in both frames and flow computed
        ("dx", pa.float32()),  # mean flow over the face, original pixels
        ("dy", pa.float32()),
        ("mag_p50", pa.float32()),
        ("mag_p90", pa.float32()),
        ("mag_max", pa.float32()),
        ("fb_err", pa.float32()),  # mean forward-backward error over the face, original pixels
        ("fb_bad", pa.float32()),  # share of face pixels whose fb error exceeds 1 working pixel
        ("face_size", pa.float32()),  # landmark extent of frame-1, original pixels
    ]
)

# CACHE/timings.parquet: seconds per (video, job, stage) (mf2.pipeline.execute).
TIMING_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("job", pa.string()),
        ("stage", pa.string()),
        ("seconds", pa.float64()),
        ("frames", pa.int32()),
    ]
)


def params_json(params: dict[str, Any] | None) -> str:
    """Canonical JSON of parameters: what caches and resume keys compare."""
    return json.dumps(params or {}, sort_keys=True)


def metadata(kind: str, params: dict[str, Any] | None = None, **extra: Any) -> dict[bytes, bytes]:
    md = {
        "mf2.kind": kind,
        "mf2.schema_version": SCHEMA_VERSION,
        "mf2.version": __version__,
        "mf2.params": params_json(params),
    }
    md.update({f"mf2.{k}": v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in extra.items()})
    return {k.encode(): str(v).encode() for k, v in md.items()}


def read_metadata(path: Path) -> dict[str, str]:
    try:
        md = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError) as e:
        if isinstance(e, OSError) and not isinstance(e, pa.ArrowException) and e.errno is not None:
            raise  # the disk's problem (permissions, I/O), not the file's
        raise InputError(f"{path}: not a readable Parquet file ({_first_line(e)})", "corrupt-file") from None
    out = {k.decode(): v.decode() for k, v in md.items() if k.startswith(b"mf2.")}
    major = out.get("mf2.schema_version", SCHEMA_VERSION).split(".")[0]
    if int(major) > int(SCHEMA_VERSION.split(".")[0]):
        raise InputError(
            f"{path}: written with mf2 schema {out['mf2.schema_version']}, newer than this mf2 "
            f"({SCHEMA_VERSION}); upgrade mf2",
            "schema-version",
        )
    return out


def try_read_metadata(path: Path) -> dict[str, str] | None:
    """The metadata of a cache or part file, or None when it is missing or unreadable (a
    zero-byte or truncated file left by a full disk is rebuilt, never trusted)."""
    try:
        return read_metadata(path) if Path(path).is_file() else None
    except InputError as e:
        if e.error_class == "schema-version":
            raise
        return None


def pair_params(md: dict[str, str] | None) -> dict[str, Any] | None:
    """The ``params`` of a pairs manifest or part, in today's names (before schema 1.4 the
    mode's settings were nested: mf2.params.upgrade_params)."""
    if md is None or not md.get("mf2.params"):
        return None
    return upgrade_params(json.loads(md["mf2.params"]))


def made_with(md: dict[str, str] | None, video_sha256: str, params: dict[str, Any], pairs: bool = False) -> bool:
    """Whether a file's metadata says it was made from this very video with these parameters
    (``pairs``: a part, whose stored params may use older names)."""
    if md is None or md.get("mf2.video_sha256") != video_sha256:
        return False
    stored = params_json(pair_params(md)) if pairs else md.get("mf2.params")
    return stored == params_json(params)


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file, whole or ``columns`` of it (a column it lacks raises ``ArrowInvalid``
    as ``pq.read_table`` does). Not through ``pq.read_table``: that goes through
    ``pyarrow.dataset``, whose import took 0.35-0.6 s of the main process at the end of every
    run, after the workers had finished (issue 35)."""
    with pq.ParquetFile(path) as f:
        missing = [c for c in columns or [] if c not in f.schema_arrow.names]
        if missing:
            raise pa.ArrowInvalid(f"{path}: no column {', '.join(missing)}")
        return f.read(columns=columns)


def read_cached(path: Path, video_sha256: str, params: dict[str, Any], pairs: bool = False) -> pa.Table | None:
    """A per-video cache or part file, if it was made from this very video with these
    parameters and reads back whole; None means "compute it again". One rule for the
    landmark, flow and part files."""
    if not made_with(try_read_metadata(path), video_sha256, params, pairs):
        return None
    try:
        return read_parquet(path)
    except FileNotFoundError:  # removed since its metadata was read
        return None
    except (pa.ArrowException, OSError) as e:
        if isinstance(e, OSError) and not isinstance(e, pa.ArrowException) and e.errno is not None:
            raise
        return None


def read_table_checked(path: Path, **kwargs: Any) -> pa.Table:
    """``pq.read_table`` with a corrupt file reported as one line naming it."""
    try:
        return pq.read_table(path, **kwargs)
    except (pa.ArrowException, OSError) as e:
        if isinstance(e, OSError) and not isinstance(e, pa.ArrowException) and e.errno is not None:
            raise
        raise InputError(f"{path}: not a readable Parquet file ({_first_line(e)})", "corrupt-file") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def upgrade_pairs(table: pa.Table) -> pa.Table:
    """A pair table of any 1.x version in the current column order, missing columns as nulls."""
    missing = [f.name for f in PAIR_SCHEMA if f.name not in table.column_names]
    required = {"pair_id", "video_id", "blurry_path", "sharp_path"}
    if required & set(missing):
        raise InputError(
            f"not a pair manifest: missing column(s) {', '.join(sorted(required & set(missing)))}", "not-a-manifest"
        )
    arrays = []
    for f in PAIR_SCHEMA:
        if f.name in missing:
            arrays.append(pa.nulls(table.num_rows, f.type))
        else:
            col = table[f.name]
            arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.table(arrays, schema=PAIR_SCHEMA.with_metadata(table.schema.metadata))


def pair_table(rows: list[dict]) -> pa.Table:
    """Pair rows (dicts by column name; a missing key is null) as a PAIR_SCHEMA table."""
    arrays = {
        f.name: (
            landmarks_column([r.get("landmarks") for r in rows])
            if f.name == "landmarks"
            else pa.array([r.get(f.name) for r in rows], f.type)
        )
        for f in PAIR_SCHEMA
    }
    return pa.table(arrays, schema=PAIR_SCHEMA)


def landmarks_column(values: list[np.ndarray | None]) -> pa.Array:
    """(68, 2) arrays (None: no face) as one Arrow column, built from one contiguous buffer:
    no per-point Python objects (a list per point costs ~8 KB a row, the largest transient
    allocation when a long video's table is written)."""
    n = len(values)
    flat = np.zeros((n, 68, 2), dtype=np.float32)
    valid = np.zeros(n, dtype=bool)
    for i, v in enumerate(values):
        if v is not None:
            flat[i] = v
            valid[i] = True
    points = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), 2)
    if valid.all():
        return pa.FixedSizeListArray.from_arrays(points, 68).cast(LANDMARKS)
    return pa.FixedSizeListArray.from_arrays(points, 68, mask=pa.array(~valid)).cast(LANDMARKS)


def landmarks_to_numpy(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(N, 68, 2) float32 with NaN for missing rows, and the (N,) valid mask."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False))
    flat = col.flatten().flatten().to_numpy(zero_copy_only=False)
    out = np.full((len(col), 68, 2), np.nan, dtype=np.float32)
    flat = np.asarray(flat, dtype=np.float32)
    # flatten() keeps the child slots of null rows for arrays built in memory but drops them
    # for arrays read back from Parquet: accept both layouts.
    if flat.size == len(col) * 136:
        out[:] = flat.reshape(len(col), 68, 2)
        out[~valid] = np.nan
    elif flat.size == int(valid.sum()) * 136:
        out[valid] = flat.reshape(-1, 68, 2)
    else:
        raise ValueError(f"landmark column has {flat.size} values for {len(col)} rows")
    return out, valid
