"""One evaluation: every method's restored image of every pair, scored three ways.

Per pair the localiser starts from one box for all methods (the detector's box on the sharp
target, else the ground truth's extent), so differences come from the images alone. With the
pipeline's landmarks as ground truth, the sharp target's landmarks are refit at output
resolution by the same localiser from that box (the recorded ones were fit on the source
frame, before resizing): the Oracle then scores exactly 0, and every method is measured
against what the localiser finds on the true sharp face. The refit's distance to the recorded
landmarks is reported. Manual annotations (the stills protocol) are used as they are.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar, cast

import numpy as np

from mf2.dataset.manifest import Dataset, load, safe_rel
from mf2.errors import InputError, UsageError
from mf2.evaluate.landmarks import auc_and_failure_rate, nme
from mf2.evaluate.methods import Method, check_folders, pair_context, read_rgb, restored_path
from mf2.faces.base import iou, landmark_box
from mf2.faces.identity import IdentityEmbedder, cosine
from mf2.faces.select import LandmarkConfig, make_backend, resolve_backend_name
from mf2.params import EVALUATE, LANDMARKS, default
from mf2.quality import psnr, ssim
from mf2.schema import landmarks_to_numpy

_Row = TypeVar("_Row")

GT_SOURCES: tuple[str, ...] = next(p.choices or () for p in EVALUATE if p.key == "gt")
INITS: tuple[str, ...] = next(p.choices or () for p in EVALUATE if p.key == "init")


@dataclass(frozen=True)
class EvaluateConfig:
    # each setting declared once, in mf2.params (EVALUATE; the localiser's in LANDMARKS)
    landmarks: str = default("backend", LANDMARKS)  # auto | dlib | fan, as in simulate
    fan_weights: str | None = default("fan_weights", LANDMARKS)
    gt: str = default("gt", EVALUATE)  # auto: manual annotations as they are, pipeline landmarks refit
    init: str = default("init", EVALUATE)
    identity: bool = True
    limit: int = default("limit", EVALUATE)  # pairs per blur setting, evenly spaced over the manifest (0: all)
    max_error: float = default("max_error", EVALUATE)
    ensemble: str = default("ensemble", EVALUATE)  # how --checkpoint/--hourglass models restore (mf2 deblur's)
    html: bool = False
    examples: int = 4
    verification: str | None = None  # a YTF-style pairs file: Table 8 (mf2.evaluate.verification)

    def validate(self) -> None:
        if self.verification and not self.identity:
            raise UsageError("--verification needs the identity embeddings: drop --no-identity")
        if self.gt not in GT_SOURCES:
            raise UsageError(f"--gt {self.gt!r}: expected one of {', '.join(GT_SOURCES)}")
        if self.init not in INITS:
            raise UsageError(f"--init {self.init!r}: expected detect or gt")
        if self.limit < 0:
            raise UsageError(f"--limit {self.limit}: must be >= 0")
        if not 0 < self.max_error <= 1:
            raise UsageError(f"--max-error {self.max_error}: must be in (0, 1]")
        resolve_backend_name(LandmarkConfig(backend=self.landmarks, fan_weights=self.fan_weights))


@dataclass
class PairScore:
    setting: str
    method: str
    pair_id: str
    ssim: float
    psnr: float
    nme: float
    identity_cos: float
    init: str
    gt: str


@dataclass
class Aggregate:
    setting: str
    method: str
    n: int
    auc: float
    failure_rate: float  # percent, as the paper's tables
    ssim: float
    psnr: float  # mean over finite values; inf when all are
    psnr_n_inf: int
    nme_mean: float
    nme_median: float
    identity_cos_mean: float
    identity_cos_median: float


@dataclass
class Evaluation:
    config: EvaluateConfig
    methods: list[str]
    settings: list[str]
    scores: list[PairScore]
    aggregates: list[Aggregate]
    n_pairs: dict[str, int]
    gt_sources: dict[str, str]
    gt_refit_nme_median: dict[str, float]
    init_fallbacks: int
    seconds: float
    backend: str
    datasets: list[str] = field(default_factory=list)
    # setting -> [(pair_id, method -> PNG bytes)]: a few pairs for the HTML page
    examples: dict[str, list[tuple[str, dict[str, bytes]]]] = field(default_factory=dict)
    verification: dict | None = None  # setting -> method -> 10-fold accuracy (Table 8)
    report_files: list[Path] = field(default_factory=list)  # written by mf2.api.evaluate(out=...)

    @property
    def pairs_per_s(self) -> float:
        return sum(self.n_pairs.values()) / self.seconds if self.seconds > 0 else math.nan


def setting_of(row: dict) -> str:
    from mf2.modes import get_mode

    return get_mode(row["mode"]).label(row)


def _select(rows: list[_Row], limit: int) -> list[_Row]:
    if not limit or len(rows) <= limit:
        return rows
    idx = np.unique(np.linspace(0, len(rows) - 1, limit).round().astype(int))
    return [rows[i] for i in idx]


def _init_box(backend, sharp: np.ndarray, ref: np.ndarray, how: str) -> tuple[np.ndarray, str]:
    extent = landmark_box(ref)
    if how == "detect":
        dets = backend.detect(sharp)
        if dets:
            best = max(dets, key=lambda d: iou(d.box, extent))
            if iou(best.box, extent) >= 0.3:
                return best.box.astype(np.float32), "detect"
    return extent, "gt-extent"


def _summarise(setting: str, method: str, scores: list[PairScore], max_error: float) -> Aggregate:
    errs = np.array([s.nme for s in scores], dtype=np.float64)
    auc, fr = auc_and_failure_rate(errs, max_error)
    ps = np.array([s.psnr for s in scores], dtype=np.float64)
    finite = ps[np.isfinite(ps)]
    ids = np.array([s.identity_cos for s in scores], dtype=np.float64)
    ids = ids[np.isfinite(ids)]
    fin_err = errs[np.isfinite(errs)]
    return Aggregate(
        setting,
        method,
        len(scores),
        auc,
        100.0 * fr,
        float(np.mean([s.ssim for s in scores])),
        float(finite.mean()) if finite.size else math.inf,
        int((~np.isfinite(ps)).sum()),
        float(fin_err.mean()) if fin_err.size else math.inf,
        float(np.median(errs)),
        float(ids.mean()) if ids.size else math.nan,
        float(np.median(ids)) if ids.size else math.nan,
    )


def evaluate(
    manifests: Sequence[str | Path],
    methods: list[Method],
    cfg: EvaluateConfig,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    from mf2.evaluate.verification import Descriptors, read_pairs, verify

    cfg.validate()
    t0 = time.perf_counter()
    video_pairs = read_pairs(cfg.verification) if cfg.verification else None
    desc = Descriptors()
    datasets, selected = _select_pairs(manifests, cfg)
    check_folders(methods, [r for rows in selected.values() for _, r in rows])
    scorer = _Scorer(cfg, methods)
    scores: list[PairScore] = []
    gt_sources: dict[str, str] = {}
    refit_dist: dict[str, list[float]] = defaultdict(list)
    fallbacks = 0
    examples: dict[str, list[tuple[str, dict[str, bytes]]]] = defaultdict(list)
    for setting, rows in selected.items():
        sources = set()
        show = _shown(cfg, len(rows))
        for k, (ds, row) in enumerate(rows):
            res = scorer.score(ds, row, setting, k in show)
            scores += res.scores
            sources.add(res.gt_kind)
            fallbacks += res.init != "detect"
            if res.refit_nme is not None:
                refit_dist[setting].append(res.refit_nme)
            if res.shown:
                examples[setting].append((row["pair_id"], res.shown))
            for m, e in res.embeddings.items():
                desc.add(setting, m, row["video_id"], e)
            if progress:
                progress(1)
        gt_sources[setting] = "+".join(sorted(sources))
    aggregates = [
        _summarise(setting, m.name, [s for s in scores if s.setting == setting and s.method == m.name], cfg.max_error)
        for setting in selected
        for m in methods
    ]
    names = [m.name for m in methods]
    return Evaluation(
        cfg,
        names,
        list(selected),
        scores,
        aggregates,
        {s: len(r) for s, r in selected.items()},
        gt_sources,
        {s: float(np.median(v)) for s, v in refit_dist.items()},
        fallbacks,
        time.perf_counter() - t0,
        scorer.backend.name,
        [str(d.path) for d in datasets],
        dict(examples),
        verify(video_pairs, desc, list(selected), names) if video_pairs else None,
    )


def _shown(cfg: EvaluateConfig, n: int) -> set[int]:
    """Which of a setting's ``n`` pairs the HTML page shows: a few, evenly spaced."""
    return {int(i) for i in np.linspace(0, n - 1, min(cfg.examples, n)).round()} if cfg.html else set()


def _select_pairs(
    manifests: Sequence[str | Path], cfg: EvaluateConfig
) -> tuple[list[Dataset], dict[str, list[tuple[Dataset, dict]]]]:
    """The manifests, and the pairs to score grouped by blur setting (in the paper's order)."""
    datasets: list[Dataset] = [load(m) for m in manifests]
    for ds in datasets:
        if not ds.has_images:
            raise UsageError(f"{ds.path}: a manifest without images; mf2 materialize it first")
    by_setting: dict[str, list[tuple[Dataset, dict]]] = defaultdict(list)
    for ds in datasets:
        for row in ds.table.to_pylist():
            by_setting[setting_of(row)].append((ds, row))
    if not by_setting:
        raise UsageError(f"{', '.join(str(d.path) for d in datasets)}: no pairs to evaluate")
    return datasets, {
        s: _select(rows, cfg.limit) for s, rows in sorted(by_setting.items(), key=lambda kv: _order(kv[0]))
    }


@dataclass
class _PairResult:
    scores: list[PairScore]
    gt_kind: str
    init: str
    refit_nme: float | None  # the refit ground truth's distance from the recorded landmarks
    shown: dict[str, bytes]  # method -> PNG with its landmarks, for the HTML report
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # method -> identity embedding


class _Scorer:
    """Scores every method on one pair: SSIM/PSNR against the sharp target, the landmark
    error of a fit on each method's image, and the identity cosine to the sharp target."""

    def __init__(self, cfg: EvaluateConfig, methods: list[Method]):
        self.cfg, self.methods = cfg, methods
        lcfg = LandmarkConfig(backend=cfg.landmarks, fan_weights=cfg.fan_weights)
        if resolve_backend_name(lcfg) == "dlib":
            from mf2.faces.dlib_backend import DlibBackend

            # Faces fill about 2/3 of a pair's crop: no detector upsampling needed (4x faster).
            self.backend: Any = DlibBackend(min_face=64)
        else:
            self.backend = make_backend(lcfg)
        self.embedder = IdentityEmbedder() if cfg.identity else None
        self.models = {}
        for m in methods:
            if m.kind == "checkpoint":
                from mf2.restore.deblur import Deblurrer

                self.models[m.name] = Deblurrer(cast(Path, m.folder), stage=m.stage, ensemble=cfg.ensemble)

    def score(self, ds: Dataset, row: dict, setting: str, show: bool) -> _PairResult:
        # human landmarks (the stills, or a 300VW-style annotated frame) are the ground truth as
        # they are, unless --gt refit asks for the localiser's own
        manual = (
            ds.meta.get("mf2.landmarks_source") == "manual" or row.get("landmarks_source") == "manual"
        ) and self.cfg.gt != "refit"
        use_recorded = manual or self.cfg.gt == "recorded"
        gt_kind = "manual" if manual else ("pipeline" if use_recorded else "pipeline-refit")
        sharp = read_rgb(ds.root / safe_rel(row["sharp_path"]))
        blurry = read_rgb(ds.root / safe_rel(row["blurry_path"]))
        recorded, valid = landmarks_to_numpy(_one(row["landmarks"]))
        if not valid[0]:
            raise InputError(f"{ds.path}: pair {row['pair_id']} has no landmarks", "bad-manifest")
        recorded = recorded[0]
        box, init = _init_box(self.backend, sharp, recorded, self.cfg.init)
        gt = recorded if use_recorded else self.backend.fit([sharp], [box])[0][0]
        refit = None if use_recorded else nme(gt, recorded)
        sharp_emb = self.embedder.embed(sharp, gt) if self.embedder else None
        scores: list[PairScore] = []
        shown: dict[str, bytes] = {}
        embs: dict[str, Any] = {}
        context = pair_context(ds.root, row, blurry) if any(d.neighbours for d in self.models.values()) else None
        for m in self.methods:
            img = self._image(m, row, sharp, blurry, context)
            pred = self.backend.fit([img], [box])[0][0]
            if not self.embedder:
                cos = math.nan
            else:  # the Oracle's image is the sharp target: same input, same descriptor
                embs[m.name] = sharp_emb if m.kind == "oracle" else self.embedder.embed(img, gt)
                cos = cosine(embs[m.name], cast(np.ndarray, sharp_emb))  # embedder on: embedded
            if show:
                shown[m.name] = _png_with_points(img, pred)
            scores.append(
                PairScore(
                    setting,
                    m.name,
                    row["pair_id"],
                    ssim(img, sharp),
                    psnr(img, sharp),
                    nme(pred, gt),
                    cos,
                    init,
                    gt_kind,
                )
            )
        return _PairResult(scores, gt_kind, init, refit, shown, embs)

    def _image(
        self, m: Method, row: dict, sharp: np.ndarray, blurry: np.ndarray, context: tuple | None = None
    ) -> np.ndarray:
        if m.kind == "oracle":
            return sharp
        if m.kind == "blurred":
            return blurry
        if m.kind == "checkpoint":
            return self.models[m.name]([blurry], [context])[0]
        img = read_rgb(cast(Path, restored_path(m, row["pair_id"], row["blurry_path"])))
        if img.shape != sharp.shape:
            raise InputError(
                f"--restored {m.name}: pair {row['pair_id']} is {img.shape[1]}x{img.shape[0]}, "
                f"expected {sharp.shape[1]}x{sharp.shape[0]}",
                "bad-image",
            )
        return img


def _png_with_points(img: np.ndarray, pts: np.ndarray | None) -> bytes:
    import cv2

    vis = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    for x, y in pts if pts is not None else []:
        cv2.circle(vis, (int(round(x)), int(round(y))), 2, (0, 255, 0), -1)
    return cv2.imencode(".png", vis)[1].tobytes()


def _one(lm):
    import pyarrow as pa

    from mf2.schema import LANDMARKS

    return pa.array([lm], type=LANDMARKS)


def _order(setting: str) -> tuple:
    kind, _, rest = setting.partition(" ")
    rank = {"PrAvg": 0, "VLA": 1, "Synthetic": 2}.get(kind, 3)
    num = int("".join(c for c in rest if c.isdigit()) or 0)
    return rank, num, setting


def to_json(ev: Evaluation) -> dict:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return "inf" if v > 0 else ("-inf" if v < 0 else None)
        return v

    return {
        "config": asdict(ev.config),
        "landmark_backend": ev.backend,
        "datasets": ev.datasets,
        "methods": ev.methods,
        "settings": ev.settings,
        "n_pairs": ev.n_pairs,
        "ground_truth": ev.gt_sources,
        "gt_refit_nme_median": ev.gt_refit_nme_median,
        "init_fallbacks": ev.init_fallbacks,
        "seconds": round(ev.seconds, 3),
        "pairs_per_s": round(ev.pairs_per_s, 3),
        "results": [{k: clean(v) for k, v in asdict(a).items()} for a in ev.aggregates],
        "verification": None
        if ev.verification is None
        else {
            s: {
                m: {k: clean(v) if not isinstance(v, list) else [clean(x) for x in v] for k, v in r.items()}
                for m, r in by_m.items()
            }
            for s, by_m in ev.verification.items()
        },
    }
