"""Every user-settable simulate parameter, declared once.

One ``Param`` per setting gives its recipe key (also the keyword the CLI passes on), its
flag, type, default, help text and where it lives in ``SimulateConfig`` (``target``). From
this table:
- ``mf2 simulate``'s options are generated (mf2.cli);
- a recipe job's keys, types and defaults are generated (mf2.pipeline.recipe);
- the config dataclasses take their defaults (``default(key)``);
- ``mf2.simulate.simulate_config`` builds the nested config from key -> value.

This module imports nothing heavy, so the CLI can build its options without loading the
stages. A reviewer can check that a parameter is declared once by grepping its key:
    grep -rn '"min_overlap"' mf2/
finds this table only (validation messages name the flag, ``--min-overlap``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    key: str  # recipe key, CLI keyword
    flag: str  # command-line flag
    type: type  # int, float, str or bool
    default: Any
    target: str  # attribute path in SimulateConfig: "out_size", "vla.min_L", "flow.work_size"
    help: str
    choices: tuple[str, ...] | None = None  # None: any value of ``type`` (mode: the modes found)
    invert: bool = False  # a flag whose target is its negation (--keep-duplicates -> skip_duplicates)


SIMULATE: tuple[Param, ...] = (
    Param("mode", "--mode", str, "pravg", "mode",
          "pravg: average a fixed number L of frames; vla: variable-length averaging stopped by the paper's "
          "overlap/quality/flow rules; synthetic: random camera-shake kernels on single frames."),
    Param("L", "--L", int, 7, "L", "pravg: frames per blurry image (odd, >= 3)."),
    Param("stride", "--stride", int, 1, "stride", "pravg, synthetic: exposures between consecutive pairs."),
    Param("crf", "--crf", str, "srgb", "crf",
          "Camera response inverted before averaging (linear: average stored values).",
          choices=("srgb", "gamma2.2", "linear")),
    Param("crop_size", "--crop-size", int, 256, "out_size", "Side of the output crops in pixels."),
    Param("margin", "--margin", float, 0.25, "margin",
          "Crop margin around the landmarks, as a share of their extent on each side."),
    Param("keep_duplicates", "--keep-duplicates", bool, False, "skip_duplicates",
          "Count repeated frames as exposures (default: skip them).", invert=True),
    Param("face", "--face", str, "largest", "face",
          "The face each shot's pairs are made of (by landmark size, nearness to the centre, or frames).",
          choices=("largest", "centre", "longest")),
    Param("faces", "--faces", str, "main", "faces",
          "all: pairs of every face of the video, each its own face_id (more pairs from group shots).",
          choices=("main", "all")),
    Param("min_L", "--min-L", int, 3, "vla.min_L", "vla: shortest sub-sequence kept (odd)."),
    Param("max_L", "--max-L", int, 21, "vla.max_L", "vla: longest sub-sequence."),
    Param("direction", "--direction", str, "forward", "vla.direction",
          "vla: temporal order; both adds reverse pairs that do not duplicate a forward pair.",
          choices=("forward", "reverse", "both")),
    Param("min_overlap", "--min-overlap", float, 0.5, "vla.min_overlap",
          "vla rule (i): IoU of each facial part's box, first vs last frame."),
    Param("min_quality", "--min-quality", float, 0.75, "vla.min_quality",
          "vla rule (ii): SSIM of the running average with the middle frame."),
    Param("max_fb_bad", "--max-fb-bad", float, 0.25, "vla.max_fb_bad",
          "vla rule (iii): share of face pixels failing the forward-backward flow check."),
    Param("osc_frac", "--osc-frac", float, 0.005, "vla.osc_frac",
          "vla rule (iii): flow reversal counted as oscillation above this share of the face size."),
    Param("dup_jaccard", "--dup-jaccard", float, 0.5, "vla.dup_jaccard",
          "vla: a reverse pair sharing this share of frames with a forward pair is a duplicate."),
    Param("flow", "--flow", str, "dis", "flow.method", "Optical flow method (OpenCV).", choices=("dis", "farneback")),
    Param("flow_preset", "--flow-preset", str, "medium", "flow.preset", "DIS preset.",
          choices=("ultrafast", "fast", "medium")),
    Param("flow_size", "--flow-size", int, 128, "flow.work_size",
          "Side of the face square the flow is computed on (pixels)."),
    Param("kernel_size", "--kernel-size", int, 31, "synthetic.kernel_size",
          "synthetic: kernel side in output-crop pixels (odd)."),
    Param("seed", "--seed", int, 0, "synthetic.seed", "synthetic: run seed (pairs derive their own)."),
    Param("noise_sigma", "--noise-sigma", float, 0.0, "synthetic.noise_sigma",
          "synthetic: Gaussian noise added after blurring, in 8-bit levels."),
)
BY_KEY: dict[str, Param] = {p.key: p for p in SIMULATE}
BY_TARGET: dict[str, Param] = {p.target: p for p in SIMULATE}


def default(target: str) -> Any:
    """The default of the setting stored at ``target`` (a config dataclass's field default)."""
    p = BY_TARGET[target]
    return (not p.default) if p.invert else p.default
