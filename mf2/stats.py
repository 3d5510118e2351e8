"""`mf2 stats OUT`: what a simulate run produced, as text, JSON and PNG plots.

The plots answer the questions one asks of a blur dataset before training on it: how long
are the exposures (L), why did VLA stop, does L follow the face's motion, and is any video
over-represented.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mf2.atomic import write_atomic, write_bytes_atomic
from mf2.dataset import landmark_files, landmarks_path, pairs_path, stats_dir
from mf2.errors import InputError


@dataclass
class StatsReport:
    folder: Path
    n_pairs: int
    modes: dict
    L: dict
    stop_reasons: dict
    pairs_per_video: dict
    plots: list[str] = field(default_factory=list)
    tracks: dict = field(default_factory=dict)  # video_id -> mf2.track_audit.video_audit (+ sheet)
    photos: dict = field(default_factory=dict)  # photo sources: counts and face sizes (no per-photo audit)
    measures: dict = field(default_factory=dict)  # the pair measures' quantiles and flagged counts

    def to_json(self) -> dict:
        return {
            "n_pairs": self.n_pairs,
            "modes": self.modes,
            "L": self.L,
            "stop_reasons": self.stop_reasons,
            "pairs_per_video": self.pairs_per_video,
            "plots": self.plots,
            "tracks": self.tracks,
            "photos": self.photos,
            "measures": self.measures,
        }

    def text(self) -> str:
        lines = [f"{self.n_pairs} pairs; modes: " + ", ".join(f"{k} {v}" for k, v in self.modes.items())]
        if self.L:
            lines.append("L: " + ", ".join(f"{k} {v:.2f}" if k == "mean" else f"{k} {v:g}" for k, v in self.L.items()))
        if self.stop_reasons:
            lines.append("stop reasons: " + ", ".join(f"{k} {v}" for k, v in self.stop_reasons.items()))
        ppv = {k: v for k, v in self.pairs_per_video.items() if k not in self.photos.get("ids", ())}
        if ppv or not self.photos:
            lines.append(
                f"{len(ppv)} videos; pairs per video: min {min(ppv.values(), default=0)}, median "
                f"{float(np.median(list(ppv.values()))) if ppv else 0:g}, max {max(ppv.values(), default=0)}"
            )
        if self.photos:
            ph, fp = self.photos, self.photos["face_px"]
            lines.append(
                f"{ph['photos']} photos: {ph['with_pairs']} with a pair, {ph['without_pairs']} without a "
                f"usable face; face size in the photo (px): p10 {fp.get('p10', 0):.0f}, median "
                f"{fp.get('median', 0):.0f}, p90 {fp.get('p90', 0):.0f}"
            )
        m = self.measures
        if m:
            lines.append(
                f"pair measures ({m['measured']} of {self.n_pairs} pairs): soft targets (sharpness ratio < "
                f"{SOFT_RATIO}) {m['soft_targets']}, nearly unblurred (blur PSNR >= {STATIC_PSNR} dB) "
                f"{m['nearly_unblurred']}; blur PSNR median {m['blur_psnr']['median']:.1f} dB"
                + (f"; softest targets: stats/{m['sheet']}" if m.get("sheet") else "")
            )
        for vid, a in self.tracks.items():
            why = ", ".join(f"{k} {v}" for k, v in a["reasons"].items())
            skip = ", ".join(f"{k} {v}" for k, v in a["windows_skipped"].items())
            lines.append(
                f"{vid}: {a['frames']} frames, {a['shots']} shots, {a['faces']} faces; detected "
                f"{a['detected']:.0%}, tracked {a['tracked']:.0%}, lost {a['lost']:.0%}"
                + (f" ({why})" if why else "")
                + (f"; windows skipped: {skip}" if skip else "")
                + (f"; worst frames: stats/{a['sheet']}" if a.get("sheet") else "")
            )
        return "\n".join(lines)


def _save(fig, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    write_bytes_atomic(path, buf.getvalue())


def run_stats(out: Path) -> StatsReport:
    path = pairs_path(out)
    if not path.is_file():
        raise InputError(f"{out}: no pairs.parquet here (run `mf2 simulate --out {out}` first)", "missing-file")
    from mf2.dataset.manifest import load

    ds = load(path)  # reads every page: a corrupt manifest is an error, never plausible counts
    if ds.meta.get("mf2.kind") != "pairs":
        raise InputError(f"{path}: not an mf2 pairs table (kind {ds.meta.get('mf2.kind')!r})", "not-a-manifest")
    t = ds.table.select(
        ["video_id", "mode", "L", "stop_reason", "path_px", "displacement_px", "source_kind", "face_px"]
    )
    d = t.to_pydict()
    L = np.asarray(d["L"], dtype=float)
    modes = dict(Counter(d["mode"]))
    stops = dict(Counter(r for r in d["stop_reason"] if r is not None).most_common())
    ppv = dict(Counter(d["video_id"]).most_common())
    Ls = (
        {"min": float(L.min()), "median": float(np.median(L)), "mean": round(float(L.mean()), 2), "max": float(L.max())}
        if len(L)
        else {}
    )
    folder = stats_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    report = StatsReport(folder, len(L), modes, Ls, stops, ppv)

    _plots(report, L, stops, np.asarray([np.nan if v is None else v for v in d["path_px"]], dtype=float), ppv)
    report.measures = _measures(ds.table, out, report)
    from mf2.track_audit import audit_folder

    vids = sorted(set(ppv) | {p.stem for p in landmark_files(out)})
    report.photos = _photos(out, d, vids)
    photo_ids = set(report.photos.get("ids", ()))
    report.tracks = audit_folder(out, [v for v in vids if v not in photo_ids], folder)
    write_atomic(folder / "stats.json", lambda tmp: tmp.write_text(json.dumps(report.to_json(), indent=2)))
    return report


SOFT_RATIO = 0.9  # the sharpness ratio bench/target_sharpness.py found to flag blurred targets
STATIC_PSNR = 38.0  # bench/restore.py's line between moving and static pairs
MEASURES = (
    "target_sharpness",
    "sharpness_ratio",
    "blur_psnr",
    "blur_ssim",
    "saturated_share",
    "fit_residual",
    "bits_per_pixel",
    "face_px",
)


def _measures(table, out: Path, report: StatsReport) -> dict:
    """Quantiles and histograms of the pair measures (issue 31), the counts the filters would
    drop at their measured settings, and a sheet of the softest targets (lowest ratio)."""
    cols = {c: np.asarray(table[c].to_numpy(zero_copy_only=False), dtype=float) for c in MEASURES}
    have = np.isfinite(cols["target_sharpness"])
    if not have.any():
        return {}
    q = {
        c: {k: float(np.nanpercentile(v[have], p)) for k, p in (("p10", 10), ("median", 50), ("p90", 90))}
        for c, v in cols.items()
        if np.isfinite(v[have]).any()
    }
    info = {
        "measured": int(have.sum()),
        **q,
        "soft_targets": int((cols["sharpness_ratio"][have] < SOFT_RATIO).sum()),
        "nearly_unblurred": int((cols["blur_psnr"][have] >= STATIC_PSNR).sum()),
    }
    _measure_hists(report, {c: v[have] for c, v in cols.items()})
    idx = np.flatnonzero(have)[np.argsort(cols["sharpness_ratio"][have], kind="stable")[:16]]
    rows = (
        table.take(idx)
        .select(["video_id", "center_frame", "sharp_path", "sharpness_ratio", "target_sharpness"])
        .to_pylist()
    )
    info["softest"] = [
        {
            "video_id": r["video_id"],
            "center_frame": r["center_frame"],
            "sharpness_ratio": round(r["sharpness_ratio"], 3),
        }
        for r in rows
    ]
    if worst_targets_sheet(out, rows, report.folder / "softest_targets.png"):
        info["sheet"] = "softest_targets.png"
    return info


def _measure_hists(report: StatsReport, cols: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(14, 6))
    lines = {"sharpness_ratio": SOFT_RATIO, "blur_psnr": STATIC_PSNR}
    for ax, (name, v) in zip(axes.ravel(), cols.items()):
        v = v[np.isfinite(v)]
        if len(v):
            ax.hist(v, bins=40, color="#4c72b0")
        if name in lines:
            ax.axvline(lines[name], color="#c44e52", ls="--")
        ax.set_title(f"{name} ({len(v)})", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle("pair measures (dashed: the filters' measured settings)")
    _save(fig, report.folder / "measures.png")
    plt.close(fig)
    report.plots.append("measures.png")


def _photos(out: Path, d: dict, vids: list[str]) -> dict:
    """Photo sources get counts, not a tracking audit each (a photo has one frame and no track):
    those with a pair, those whose face was not found or not usable, and their face sizes. A
    source with no pair is a photo when its landmark table holds one frame."""
    import pyarrow.parquet as pq

    with_pairs = {v for v, k in zip(d["video_id"], d["source_kind"]) if k == "photo"}
    if not with_pairs and not any(k == "photo" for k in d["source_kind"]):
        return {}
    ids, paired = set(with_pairs), set(d["video_id"])
    for v in vids:
        p = landmarks_path(out, v)
        if v not in paired and p.is_file() and pq.read_metadata(p).num_rows <= 1:
            ids.add(v)
    px = np.asarray([f for f, k in zip(d["face_px"], d["source_kind"]) if k == "photo" and f is not None], float)
    stats = {q: float(np.percentile(px, n)) for q, n in (("p10", 10), ("median", 50), ("p90", 90))} if len(px) else {}
    return {
        "photos": len(ids),
        "with_pairs": len(with_pairs),
        "without_pairs": len(ids - with_pairs),
        "face_px": stats,
        "ids": sorted(ids),
    }


def _plots(report: StatsReport, L: np.ndarray, stops: dict, motion: np.ndarray, ppv: dict) -> None:
    """The PNG plots of what the dataset holds, each only when there is something to show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def figure(name: str, draw) -> None:
        fig, ax = plt.subplots(figsize=(6, 4))
        draw(ax)
        _save(fig, report.folder / name)
        plt.close(fig)
        report.plots.append(name)

    if len(L):

        def hist(ax):
            bins = np.arange(L.min() - 0.5, L.max() + 1.5, 1.0)
            ax.hist(L, bins=bins, color="#4c72b0")
            ax.set_xlabel("L (frames averaged)")
            ax.set_ylabel("pairs")
            ax.set_title(f"L histogram ({len(L)} pairs)")

        figure("L_hist.png", hist)

    if stops:

        def bars(ax):
            ax.bar(list(stops), list(stops.values()), color="#dd8452")
            ax.set_ylabel("sub-sequences kept")
            ax.set_title("VLA stop reasons")
            ax.tick_params(axis="x", rotation=30)

        figure("stop_reasons.png", bars)

    if np.isfinite(motion).any():

        def scatter(ax):
            ok = np.isfinite(motion)
            ax.scatter(L[ok], motion[ok], s=8, alpha=0.6)
            ax.set_xlabel("L (frames averaged)")
            ax.set_ylabel("face motion along the sub-sequence (px)")
            ax.set_title("motion magnitude vs L")

        figure("motion_vs_L.png", scatter)

    if ppv:

        def per_video(ax):
            names = list(ppv)[:40]
            ax.barh(names[::-1], [ppv[n] for n in names][::-1], color="#55a868")
            ax.set_xlabel("pairs")
            ax.set_title("pairs per video" + (" (top 40)" if len(ppv) > 40 else ""))
            ax.tick_params(axis="y", labelsize=7)

        figure("pairs_per_video.png", per_video)


def worst_targets_sheet(root: Path, rows: list[dict], path: Path, cols: int = 4, tile: int = 160) -> Path | None:
    """The targets of ``rows`` (the softest, as ``mf2 stats`` picks them) side by side, each
    labelled with its video, middle frame, sharpness ratio and sharpness: what a person looks
    at before trusting a sharpness filter."""
    cells = []
    for r in rows:
        img = cv2.imread(str(root / r["sharp_path"]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        cell = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)
        for k, text in enumerate(
            (
                f"{r['video_id'][:22]} f{r['center_frame']}",
                f"ratio {r['sharpness_ratio']:.2f} sharp {r['target_sharpness']:.0f}",
            )
        ):
            org = (4, 14 + 14 * k)
            cv2.putText(cell, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(cell, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
        cells.append(cv2.copyMakeBorder(cell, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=(40, 40, 40)))
    if not cells:
        return None
    while len(cells) % cols:
        cells.append(np.zeros_like(cells[0]))
    sheet = np.vstack([np.hstack(cells[i : i + cols]) for i in range(0, len(cells), cols)])
    ok, buf = cv2.imencode(".png", sheet)
    write_bytes_atomic(path, buf.tobytes())
    return path
