"""Every user-settable parameter, declared once: simulate, landmarks, fetch and Dask.

One ``Param`` per setting gives its one name (``key``: the recipe key, the keyword the CLI
passes on and the key in a manifest's ``params``), its flag, type, default, help text, the
blur modes it applies to and where it lives in its config dataclass (``target``). From
these tables:
- the CLI's options are generated (mf2.cli);
- a recipe's keys, types and defaults are generated (mf2.pipeline.recipe);
- the config dataclasses take their defaults (``default(target)``);
- ``mf2.simulate.simulate_config`` builds the nested config, and ``SimulateConfig.params``
  writes the flat ``params`` record, both by walking ``SIMULATE``.

Names that changed live on only as aliases (``ALIASES``: old recipe keys and flags, read
with a warning, never written) and in ``upgrade_params`` (the ``params`` of manifests
written before schema 1.4).

This module imports nothing heavy, so the CLI can build its options without loading the
stages. A reviewer can check that a parameter is declared once by grepping its key:
    grep -rn '"min_overlap"' mf2/
finds this table only (validation messages name the flag, ``--min-overlap``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VLA = ("vla",)


@dataclass(frozen=True)
class Param:
    key: str  # the one name: recipe key, CLI keyword, key in ``params``
    flag: str  # command-line flag ("--on/--off" for a boolean pair)
    type: type  # int, float, str or bool
    default: Any
    target: str  # attribute path in the config: "out_size", "vla.min_L", "flow.work_size"
    help: str
    choices: tuple[str, ...] | None = None  # None: any value of ``type`` (mode: the modes found)
    modes: tuple[str, ...] | None = None  # the blur modes it changes; None: every mode
    path: bool = False  # an input file: the CLI makes it absolute
    min: int | None = None  # the smallest value the CLI accepts (others are checked by the config)

    def applies(self, mode: str) -> bool:
        return self.modes is None or mode in self.modes


@dataclass(frozen=True)
class Alias:
    """An old name of a setting: accepted (with a warning) in recipes and, when ``flag`` is
    set, on the command line; never written."""

    old: str
    new: str
    invert: bool = False  # the old setting was the negation of the new one
    flag: str | None = None
    section: str = "job"  # where the key lives: "job" (a simulate job), "fetch"

    def value(self, old_value: Any) -> Any:
        """The new setting's value for a value given under the old name."""
        return (not old_value) if self.invert and isinstance(old_value, bool) else old_value

    def notice(self) -> str:
        return f"{self.old} is deprecated; use {self.new}" + (" (its negation)" if self.invert else "")


SIMULATE: tuple[Param, ...] = (
    Param(
        "mode",
        "--mode",
        str,
        "pravg",
        "mode",
        "pravg: average a fixed number L of frames; vla: variable-length averaging stopped by the paper's "
        "overlap/quality/flow rules; synthetic: random camera-shake kernels on single frames.",
    ),
    Param("L", "--L", int, 7, "pravg.L", "pravg: frames per blurry image (odd, >= 3).", modes=("pravg",)),
    Param(
        "stride",
        "--stride",
        int,
        1,
        "stride",
        "pravg, synthetic: exposures between consecutive pairs.",
        modes=("pravg", "synthetic"),
    ),
    Param(
        "crf",
        "--crf",
        str,
        "srgb",
        "crf",
        "Camera response inverted before averaging (linear: average stored values).",
        choices=("srgb", "gamma2.2", "linear"),
    ),
    Param(
        "out_size",
        "--out-size",
        int,
        256,
        "out_size",
        "Side of the output images in pixels (the crop is resized to it).",
    ),
    Param(
        "margin",
        "--margin",
        float,
        0.25,
        "margin",
        "Crop margin around the landmarks, as a share of their extent on each side.",
    ),
    Param(
        "skip_duplicates",
        "--skip-duplicates/--keep-duplicates",
        bool,
        True,
        "skip_duplicates",
        "Repeated frames are not exposures (--keep-duplicates counts them).",
    ),
    Param(
        "face",
        "--face",
        str,
        "largest",
        "face",
        "The face each shot's pairs are made of (by landmark size, nearness to the centre, or frames).",
        choices=("largest", "centre", "longest"),
    ),
    Param(
        "faces",
        "--faces",
        str,
        "main",
        "faces",
        "all: pairs of every face of the video, each its own face_id (more pairs from group shots).",
        choices=("main", "all"),
    ),
    Param("min_L", "--min-L", int, 3, "vla.min_L", "vla: shortest sub-sequence kept (odd).", modes=VLA),
    Param(
        "max_L",
        "--max-L",
        int,
        61,
        "vla.max_L",
        "vla: longest sub-sequence (a cap the rules seldom reach: 7 % of stops on the shared clips).",
        modes=VLA,
    ),
    Param(
        "direction",
        "--direction",
        str,
        "forward",
        "vla.direction",
        "vla: temporal order; both adds reverse pairs that do not duplicate a forward pair.",
        choices=("forward", "reverse", "both"),
        modes=VLA,
    ),
    Param(
        "min_overlap",
        "--min-overlap",
        float,
        0.5,
        "vla.min_overlap",
        "vla rule (i): IoU of each facial part's box, first vs last frame.",
        modes=VLA,
    ),
    Param(
        "overlap_parts",
        "--overlap-parts",
        str,
        "any",
        "vla.overlap_parts",
        "vla rule (i): how many of the five facial parts (jaw, brows, nose, eyes, mouth) must keep "
        "--min-overlap: all, any (the paper's 'some'), or a number 1-5 (quoted in YAML).",
        choices=("all", "any", "1", "2", "3", "4", "5"),
        modes=VLA,
    ),
    Param(
        "min_quality",
        "--min-quality",
        float,
        0.75,
        "vla.min_quality",
        "vla rule (ii): SSIM of the running average with the middle frame.",
        modes=VLA,
    ),
    Param(
        "max_fb_bad",
        "--max-fb-bad",
        float,
        0.25,
        "vla.max_fb_bad",
        "vla rule (iii): share of face pixels failing the forward-backward flow check.",
        modes=VLA,
    ),
    Param(
        "osc_frac",
        "--osc-frac",
        float,
        0.005,
        "vla.osc_frac",
        "vla rule (iii): flow reversal counted as oscillation above this share of the face size.",
        modes=VLA,
    ),
    Param(
        "dup_jaccard",
        "--dup-jaccard",
        float,
        0.5,
        "vla.dup_jaccard",
        "vla: a reverse pair sharing this share of frames with a forward pair is a duplicate.",
        modes=VLA,
    ),
    Param(
        "flow",
        "--flow",
        str,
        "dis",
        "flow.method",
        "vla: optical flow method (OpenCV).",
        choices=("dis", "farneback"),
        modes=VLA,
    ),
    Param(
        "flow_preset",
        "--flow-preset",
        str,
        "medium",
        "flow.preset",
        "vla: DIS preset.",
        choices=("ultrafast", "fast", "medium"),
        modes=VLA,
    ),
    Param(
        "flow_size",
        "--flow-size",
        int,
        128,
        "flow.work_size",
        "vla: side of the face square the flow is computed on (pixels).",
        modes=VLA,
    ),
    Param(
        "neighbours",
        "--neighbours/--no-neighbours",
        bool,
        False,
        "neighbours",
        "pravg, vla: also write each pair's neighbouring exposures (prev/, next/: the same number of frames "
        "just before and just after its window, in its crop), the frames beside a blurry one that a video "
        "deblurrer sees (bench/temporal.py). Off: not in the params record.",
        modes=("pravg", "vla"),
    ),
    # Pair filters (issue 31; mf2.blur.measures). Off (0) by default, so a dataset's pairs do not
    # change with an upgrade; left off, they are not in the ``params`` record either, so datasets
    # made before they existed resume. The 2mf2 recipe states its own.
    Param(
        "min_target_sharpness",
        "--min-target-sharpness",
        float,
        0.0,
        "min_target_sharpness",
        "Drop pairs whose target is softer than this share of its neighbours in the shot (sharpness_ratio; "
        "0.9 flags blurred targets, bench/target_sharpness.py; 0: off).",
    ),
    Param(
        "min_target_sharpness_abs",
        "--min-target-sharpness-abs",
        float,
        0.0,
        "min_target_sharpness_abs",
        "Drop pairs whose target_sharpness is below this absolute value (LoG variance at 128 px; 0: off).",
    ),
    Param(
        "min_blur",
        "--min-blur",
        float,
        0.0,
        "min_blur",
        "Drop pairs whose blurry image is nearly its target: blur_psnr at or above this many dB "
        "(38: bench/restore.py's static pairs; 0: off).",
    ),
    Param(
        "kernel_size",
        "--kernel-size",
        int,
        31,
        "synthetic.kernel_size",
        "synthetic: kernel side in output pixels (odd).",
        modes=("synthetic",),
    ),
    Param(
        "seed",
        "--seed",
        int,
        0,
        "synthetic.seed",
        "synthetic: run seed (pairs derive their own).",
        modes=("synthetic",),
    ),
    Param(
        "noise_sigma",
        "--noise-sigma",
        float,
        0.0,
        "synthetic.noise_sigma",
        "synthetic: Gaussian noise added after blurring, in 8-bit levels.",
        modes=("synthetic",),
    ),
)

LANDMARKS: tuple[Param, ...] = (
    Param(
        "backend",
        "--landmarks",
        str,
        "auto",
        "backend",
        "Landmark backend: fan (GPU, face-alignment) when CUDA and its weights exist, else dlib.",
        choices=("auto", "dlib", "fan"),
    ),
    Param(
        "fan_weights",
        "--fan-weights",
        str,
        None,
        "fan_weights",
        "2D FAN state dict (default: face-alignment's torch-hub cache).",
        path=True,
    ),
    Param(
        "keyframe_interval",
        "--keyframe-interval",
        int,
        10,
        "keyframe_interval",
        "Frames between forced face re-detections; landmarks are tracked in between.",
        min=1,
    ),
)

FETCH: tuple[Param, ...] = (
    Param(
        "max_height",
        "--max-height",
        int,
        720,
        "max_height",
        "Highest resolution wanted; the highest frame rate is preferred first.",
    ),
    Param(
        "starts_per_minute",
        "--starts-per-minute",
        float,
        0.0,
        "starts_per_minute",
        "Downloads started per minute, all of them together (0: no limit). Not a bandwidth cap.",
    ),
    Param(
        "sleep_requests",
        "--sleep-requests",
        float,
        0.0,
        "sleep_requests",
        "Seconds yt-dlp sleeps between the requests of one extraction.",
    ),
    Param(
        "retries",
        "--retries",
        int,
        3,
        "retries",
        "Extra attempts for transient failures (5xx, 429, network, timeout), with backoff.",
    ),
    Param(
        "backoff", "--backoff", float, 2.0, "backoff", "Seconds before the first retry; doubles each time, with jitter."
    ),
    Param("timeout", "--timeout", float, 30.0, "timeout", "Socket timeout in seconds."),
    Param(
        "max_seconds",
        "--max-seconds",
        float,
        1800.0,
        "max_seconds",
        "Longest one download may take, in seconds (a trickling server never trips --timeout).",
    ),
    Param(
        "min_rate",
        "--min-rate",
        float,
        10000.0,
        "min_rate",
        "Slowest average rate, bytes/s, a download may keep after its first 30 s (0: off).",
    ),
    Param("downloads", "--downloads", int, 2, "downloads", "Downloads in parallel.", min=1),
    Param("link", "--link", bool, False, "link", "Hard-link local files instead of copying them."),
)

FILTERS: tuple[Param, ...] = (
    Param(
        "min_frames",
        "--min-frames",
        int,
        0,
        "min_frames",
        "Skip videos with fewer frames (2MF2 kept 500 or more; 0: off). Recorded as filtered, with the reason.",
        min=0,
    ),
    Param("min_fps", "--min-fps", float, 0.0, "min_fps", "Skip videos below this frame rate (0: off)."),
    Param(
        "min_height", "--min-height", int, 0, "min_height", "Skip videos lower than this, in pixels (0: off).", min=0
    ),
    Param(
        "min_face",
        "--min-face",
        int,
        0,
        "min_face",
        "Skip videos whose largest face is smaller: median landmark extent, in pixels (0: off).",
        min=0,
    ),
)

DASK: tuple[Param, ...] = (
    Param(
        "workers",
        "--workers",
        int,
        None,
        "workers",
        "LocalCluster worker processes (one thread each); default: the CPU cores; 0: in this process.",
        min=0,
    ),
    Param(
        "scheduler",
        "--scheduler",
        str,
        None,
        "scheduler",
        "Dask scheduler address (tcp://host:8786) of a running cluster, or 'synchronous' to run in this "
        "process. Default: a LocalCluster.",
    ),
)

# how mf2.restore.deblur.Deblurrer combines passes of the network over one face (self-ensemble);
# mf2 deblur and mf2 evaluate's --checkpoint/--hourglass models share the setting
ENSEMBLES = ("flip", "none")
ENSEMBLE = Param("ensemble", "--ensemble", str, "flip", "ensemble",
                 "flip: each face restored as it is and mirrored, the two averaged (less change to still "
                 "faces, a little more gain on moving ones; twice the network's time); none: one pass.",
                 choices=ENSEMBLES)  # fmt: skip

EVALUATE: tuple[Param, ...] = (
    Param(
        "gt",
        "--gt",
        str,
        "auto",
        "gt",
        "Ground truth: manual annotations when present, else the pipeline's landmarks refit on the "
        "sharp target (auto/refit) or as recorded.",
        choices=("auto", "refit", "recorded"),
    ),
    Param(
        "init",
        "--init",
        str,
        "detect",
        "init",
        "Localiser's initial box: the detector's on the sharp target, or the ground truth's extent.",
        choices=("detect", "gt"),
    ),
    Param("limit", "--limit", int, 0, "limit", "Pairs per blur setting, evenly spaced (0: all).", min=0),
    Param("max_error", "--max-error", float, 0.08, "max_error", "CED cut-off for AUC and failures."),
    ENSEMBLE,
)

SPLIT: tuple[Param, ...] = (
    Param("by", "--by", str, "identity", "by",
          "Group by identity (videos sharing a person stay together; falls back to the video) or by video.",
          choices=("identity", "video")),
    Param("ratios", "--ratios", str, "train=0.8,val=0.1,test=0.1", "ratios",
          "Split names and weights (of groups, not pairs)."),
    Param("seed", "--seed", int, 0, "seed", "Seed of the assignment (a hash of seed and group, not a shuffle)."),
)  # fmt: skip

DEVICE = Param("device", "--device", str, "auto", "device", "Where torch runs: auto (CUDA when present, else the CPU).",
               choices=("auto", "cpu", "cuda"))  # fmt: skip

TRAIN: tuple[Param, ...] = (
    Param("stage", "--stage", str, "all", "stage",
          "hg: the hourglass (L1); cgan: the two-pathway cGAN on a trained hourglass; all: both.",
          choices=("hg", "cgan", "all")),
    Param("config", "--config", str, "paper", "config",
          "paper (256, GPU), small (128, a 2-core CPU), tiny (64, smoke tests), or a YAML file "
          "(preset: ... plus overrides)."),
    Param("max_steps", "--max-steps", int, None, "max_steps", "Steps per stage (overrides the configured epochs).",
          min=1),
    DEVICE,
    Param("threads", "--threads", int, None, "threads",
          "torch's CPU threads (default: the cores this process may use, less those other processes keep busy).",
          min=1),
)  # fmt: skip

DEBLUR: tuple[Param, ...] = (
    Param("mode", "--mode", str, "auto", "mode",
          "Images: crop (already an aligned face crop), frame (find the face, paste back), auto.",
          choices=("auto", "crop", "frame")),
    DEVICE,
    Param("reference", "--reference", int, None, "reference",
          "Videos: a sharp frame's index; each frame's identity cosine to it, blurred and restored, "
          "goes to OUT/<video>.identity.csv and .png (the paper's Sect. 5.6).", min=0),
    ENSEMBLE,
)  # fmt: skip

EXPORT: tuple[Param, ...] = (
    Param("format", "--format", str, "folder", "format",
          "folder: a dataset folder (manifest + PNGs); hf: Parquet shards with image columns and a dataset "
          "card, for the Hugging Face Hub; webdataset: tar shards for streaming.",
          choices=("folder", "hf", "webdataset")),
    Param("shard_pairs", "--shard-pairs", int, 1000, "shard_pairs", "Pairs per shard (hf, webdataset).", min=1),
)  # fmt: skip

ALIASES: tuple[Alias, ...] = (
    Alias("crop_size", "out_size", flag="--crop-size"),  # crop_size is the source-pixel crop column
    Alias("keep_duplicates", "skip_duplicates", invert=True),  # the flag lives on as --keep-duplicates
    # --workers means Dask processes everywhere; --rate-limit read like yt-dlp's bytes/s --limit-rate
    Alias("workers", "downloads", flag="--workers", section="fetch"),
    Alias("rate_limit", "starts_per_minute", flag="--rate-limit", section="fetch"),
)
# The pair filters among SIMULATE: also the options of ``mf2 filter`` (the same rules after the fact).
PAIR_FILTERS = ("min_target_sharpness", "min_target_sharpness_abs", "min_blur")
# Settings that are off by default and, left off, stay out of the ``params`` record (and so the
# resume key): datasets made before they existed resume, and their pairs are unchanged.
RECORDED_WHEN_ON = (*PAIR_FILTERS, "neighbours")
ALIAS_BY_OLD: dict[tuple[str, str], Alias] = {(a.section, a.old): a for a in ALIASES}
BY_KEY: dict[str, Param] = {p.key: p for p in SIMULATE}
TABLES: dict[str, tuple[Param, ...]] = {"job": SIMULATE, "fetch": FETCH}


def aliases(section: str) -> list[Alias]:
    return [a for a in ALIASES if a.section == section]


def section_of(dotted_head: str) -> str:
    """The alias section of a recipe key's parent (``jobs.0``, ``defaults``, ``fetch``)."""
    first = dotted_head.split(".")[0]
    return "job" if first in ("jobs", "defaults", "jobs[") or first.startswith("jobs[") else first


def new_param(a: Alias) -> Param:
    return next(p for p in TABLES[a.section] if p.key == a.new)


def default(target: str, table: tuple[Param, ...] = SIMULATE) -> Any:
    """The default of the setting stored at ``target`` (a config dataclass's field default)."""
    for p in table:
        if p.target == target:
            return p.default
    raise KeyError(target)


def get_path(obj: Any, target: str) -> Any:
    for attr in target.split("."):
        obj = getattr(obj, attr)
    return obj


def values_of(cfg: Any, table: tuple[Param, ...]) -> dict[str, Any]:
    """key -> value of every setting of ``table`` in a config (what a recipe writes back)."""
    return {p.key: get_path(cfg, p.target) for p in table}


def resolve_aliases(values: dict[str, Any], where: str = "", section: str = "job") -> tuple[dict[str, Any], list[str]]:
    """``values`` with old keys renamed (and negated where the meaning flipped), and one
    deprecation line per old key. An old and a new key for one setting is an error (ValueError)."""
    out = dict(values)
    notes = []
    for a in aliases(section):
        if a.old not in out:
            continue
        v = out.pop(a.old)
        if a.new in values:
            raise ValueError(f"{where}{a.old} and {a.new} name one setting; keep {a.new}")
        out[a.new] = a.value(v)
        notes.append(f"{where}{a.notice()}")
    return out, notes


def upgrade_params(params: dict[str, Any]) -> dict[str, Any]:
    """A manifest's ``params`` in today's names. Before schema 1.4, the mode's settings were
    nested (``vla``, ``flow``, ``synthetic``), ``flow`` repeated the crop margin, and
    ``faces`` held the face choice unless it was "all". Idempotent."""
    p = dict(params)
    for section in ("vla", "synthetic"):
        if isinstance(p.get(section), dict):
            p.update(p.pop(section))
    flow = p.get("flow")
    if isinstance(flow, dict):
        p["flow"] = flow.get("method")
        p["flow_preset"] = flow.get("preset")
        p["flow_size"] = flow.get("work_size")
    if p.get("mode") == "vla":  # before 1.5 rule (i) always asked every part
        p.setdefault("overlap_parts", "all")
    if p.get("faces") not in (None, "main", "all"):
        p["face"] = p["faces"]
        p["faces"] = "main"
    return p
