"""The evaluation report: Table 5's layout in Markdown, the same numbers as JSON and CSV, CED
and identity plots, and an optional HTML page with examples."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mf2.atomic import write_bytes_atomic
from mf2.evaluate.landmarks import bins, ced
from mf2.evaluate.run import Evaluation, to_json

CONVENTIONS = (
    "SSIM and PSNR on the luminance Y (ITU-R BT.601, MATLAB rgb2ycbcr, uint8), SSIM with an 11x11 Gaussian "
    "window (sigma 1.5, K = 0.01, 0.03, 'valid' region) as Wang et al.'s ssim_index.m. Landmark error: mean "
    "point-to-point distance over the 68 points divided by the ground-truth box diagonal; AUC of the CED up to "
    "{max_error} divided by {max_error} (Simpson, step 1e-4, as menpofit); failure rate: share of images above "
    "{max_error}. Identity: cosine similarity of dlib ResNet face descriptors, both images aligned with the "
    "ground-truth landmarks."
)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def _fmt(v: float, digits: int) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    if isinstance(v, float) and math.isnan(v):
        return "–"
    return f"{v:.{digits}f}"


_PAPER_TABLES = {
    ("PrAvg 7", "PrAvg 9", "PrAvg 11"): "Table 5",
    ("PrAvg 15", "PrAvg 21", "VLA"): "Table 6",
    ("Synthetic",): "Table 7",
}


def _paper_order(setting: str) -> tuple:
    m = re.fullmatch(r"PrAvg (\d+)", setting)
    if m:
        return (0, int(m.group(1)), setting)
    if setting == "VLA":
        return (1, 0, setting)
    m = re.fullmatch(r"Synthetic k(\d+)", setting)
    return (2, int(m.group(1)), setting) if m else (3, 0, setting)


def paper_tables(settings: list[str]) -> list[tuple[str, list[str]]]:
    """The settings in the paper's order (PrAvg by L, VLA, synthetic), three to a table as its
    Tables 5-7 print them; a table of exactly the paper's settings takes its number."""
    ordered = sorted(settings, key=_paper_order)
    chunks = [ordered[i : i + 3] for i in range(0, len(ordered), 3)]
    out = []
    for i, chunk in enumerate(chunks):
        key = tuple("Synthetic" if c.startswith("Synthetic") else c for c in chunk)
        title = _PAPER_TABLES.get(key) or (
            f"Landmark localisation ({i + 1}/{len(chunks)})" if len(chunks) > 1 else "Landmark localisation"
        )
        out.append((title, chunk))
    return out


def _main_rows(ev: Evaluation, settings: list[str] | None = None) -> list[list[str]]:
    """Tables 5-7's rows: per setting AUC, failure rate (%), SSIM (the Oracle's too: it is 1,
    shown as measured, as in summary.csv and report.json)."""
    agg = {(a.setting, a.method): a for a in ev.aggregates}
    return [
        [m]
        + [
            c
            for s in (settings or ev.settings)
            for c in (_fmt(agg[(s, m)].auc, 3), _fmt(agg[(s, m)].failure_rate, 3), _fmt(agg[(s, m)].ssim, 2))
        ]
        for m in ev.methods
    ]


PSNR_HEAD = ["Setting", "Method", "PSNR (dB)", "NME mean", "NME median", "identity cos mean", "identity cos median"]


def _psnr_rows(ev: Evaluation) -> list[list[str]]:
    agg = {(a.setting, a.method): a for a in ev.aggregates}
    return [
        [
            s,
            m,
            _fmt(a.psnr, 2),
            _fmt(a.nme_mean, 4),
            _fmt(a.nme_median, 4),
            _fmt(a.identity_cos_mean, 4),
            _fmt(a.identity_cos_median, 4),
        ]
        for s in ev.settings
        for m in ev.methods
        for a in [agg[(s, m)]]
    ]


def _notes(ev: Evaluation) -> list[str]:
    out = [CONVENTIONS.format(max_error=ev.config.max_error)]
    if ev.gt_refit_nme_median:
        out.append(
            "Pipeline landmarks were refit on the sharp targets at output resolution; median distance "
            "to the recorded ones (NME): " + ", ".join(f"{s} {v:.4f}" for s, v in ev.gt_refit_nme_median.items()) + "."
        )
    out.append(
        f"Localiser initialisation fell back to the ground-truth extent on {ev.init_fallbacks} pair(s). "
        f"{sum(ev.n_pairs.values())} pairs x {len(ev.methods)} methods in {ev.seconds:.1f} s "
        f"({ev.pairs_per_s:.2f} pairs/s)."
    )
    return out


def _ground_truth(ev: Evaluation) -> str:
    return (
        f"Landmark localiser: `{ev.backend}`; ground truth: "
        + ", ".join(f"{s}: {g}" for s, g in ev.gt_sources.items())
        + "."
    )


def _verification_rows(ev: Evaluation) -> list[list[str]]:
    v = ev.verification or {}
    return [[m] + [f"{_fmt(v[s][m]['mean'], 4)} ± {_fmt(v[s][m]['std'], 4)}" for s in ev.settings] for m in ev.methods]


def _verification_md(ev: Evaluation) -> list[str]:
    """Table 8's layout: mean accuracy ± std over the 10 folds, per method and setting."""
    if not ev.verification:
        return []
    v = ev.verification
    n = ", ".join(f"{s}: {v[s][ev.methods[0]]['n_pairs']} video pairs" for s in ev.settings)
    lines = [
        "## Face verification (Table 8)",
        "",
        "| Method | " + " | ".join(f"{s} mean acc. ± std" for s in ev.settings) + " |",
        "|---|" + "---:|" * len(ev.settings),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in _verification_rows(ev)]
    return lines + ["", f"10 folds, threshold chosen on the other nine; {n}.", ""]


def markdown(ev: Evaluation) -> str:
    lines = ["# mf2 evaluation", "", _ground_truth(ev), ""]
    for title, settings in paper_tables(ev.settings):
        head = "| Method | " + " | ".join(f"{s} AUC | {s} Failure rate (%) | {s} SSIM" for s in settings) + " |"
        lines += [f"## {title}", "", head, "|---|" + "---:|" * (3 * len(settings))]
        lines += ["| " + " | ".join(r) + " |" for r in _main_rows(ev, settings)]
        lines += ["| *Nr. of test images* | " + " | ".join(f"{ev.n_pairs[s]} | | " for s in settings) + "|", ""]
    lines += _verification_md(ev)
    lines += ["## PSNR and identity", "", "| " + " | ".join(PSNR_HEAD) + " |", "|---|---|" + "---:|" * 5]
    lines += ["| " + " | ".join(r) + " |" for r in _psnr_rows(ev)]
    lines += ["", "## Conventions", ""]
    for note in _notes(ev):
        lines += [note, ""]
    return "\n".join(lines)


def _csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue().encode()


def _plots(ev: Evaluation, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    grid = bins(ev.config.max_error)
    for s in ev.settings:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for m in ev.methods:
            errs = np.array([p.nme for p in ev.scores if p.setting == s and p.method == m])
            ax.plot(grid, ced(errs, grid), label=m)
        ax.set(
            xlabel="normalised point-to-point error",
            ylabel="images proportion",
            title=f"CED — {s}",
            xlim=(0, ev.config.max_error),
            ylim=(0, 1.02),
        )
        written.append(_save(plt, fig, ax, out, f"ced_{_slug(s)}.png", "lower right"))
        if not ev.config.identity:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for m in ev.methods:
            cos = np.sort([p.identity_cos for p in ev.scores if p.setting == s and p.method == m])
            cos = cos[np.isfinite(cos)]
            if cos.size:
                ax.step(cos, np.arange(1, cos.size + 1) / cos.size, where="post", label=m)
        ax.set(
            xlabel="cosine similarity to the sharp target",
            ylabel="cumulative share of images",
            title=f"Identity — {s}",
            xlim=(None, 1.003),
            ylim=(0, 1.02),
        )
        written.append(_save(plt, fig, ax, out, f"identity_{_slug(s)}.png", "upper left"))
    return written


def _save(plt, fig, ax, out: Path, name: str, legend: str) -> str:
    ax.grid(alpha=0.3)
    ax.legend(loc=legend, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    write_bytes_atomic(out / name, buf.getvalue())
    return name


def write_report(ev: Evaluation, out: Path) -> list[Path]:
    """Write every report file into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(ev)
    files = {"report.md": md.encode(), "report.json": json.dumps(to_json(ev), indent=2).encode()}
    files["summary.csv"] = _csv([{k: v for k, v in asdict(a).items()} for a in ev.aggregates])
    files["per_pair.csv"] = _csv([asdict(s) for s in ev.scores])
    for name, data in files.items():
        write_bytes_atomic(out / name, data)
    plots = _plots(ev, out)
    paths = [out / n for n in files] + [out / p for p in plots]
    if ev.config.html:
        paths.append(_write_html(ev, out, plots, ev.examples))
    return paths


def _write_html(
    ev: Evaluation, out: Path, plots: list[str], examples: dict[str, list[tuple[str, dict[str, bytes]]]]
) -> Path:
    parts = [
        "<!doctype html><meta charset='utf-8'><title>mf2 evaluation</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}img.ex{width:128px}</style>",
        "<h1>mf2 evaluation</h1>",
    ]
    esc = html.escape
    parts.append("<p>" + re.sub(r"`([^`]*)`", r"<code>\1</code>", esc(_ground_truth(ev))) + "</p>")
    for title, settings in paper_tables(ev.settings):
        parts.append(
            f"<h2>{esc(title)}</h2><table><tr><th>Method</th>"
            + "".join(f"<th colspan=3>{esc(s)}</th>" for s in settings)
            + "</tr><tr><th></th>"
            + "<th>AUC</th><th>Failure (%)</th><th>SSIM</th>" * len(settings)
            + "</tr>"
        )
        for row in _main_rows(ev, settings):
            parts.append(f"<tr><th>{esc(row[0])}</th>" + "".join(f"<td>{esc(c)}</td>" for c in row[1:]) + "</tr>")
        parts.append(
            "<tr><th><i>Nr. of test images</i></th>"
            + "".join(f"<td colspan=3>{ev.n_pairs[s]}</td>" for s in settings)
            + "</tr></table>"
        )
    if ev.verification:
        parts.append(
            "<h2>Face verification (Table 8)</h2><table><tr><th>Method</th>"
            + "".join(f"<th>{esc(s)} mean acc. ± std</th>" for s in ev.settings)
            + "</tr>"
        )
        parts += [
            "<tr><th>" + esc(r[0]) + "</th>" + "".join(f"<td>{esc(c)}</td>" for c in r[1:]) + "</tr>"
            for r in _verification_rows(ev)
        ]
        parts.append("</table>")
    parts.append("<h2>PSNR and identity</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in PSNR_HEAD) + "</tr>")
    parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in _psnr_rows(ev)]
    parts.append("</table>")
    parts += [f"<img src='{p}'>" for p in plots]
    for s, rows in examples.items():
        parts.append(
            f"<h2>Examples — {html.escape(s)}</h2><table><tr><th>pair</th>"
            + "".join(f"<th>{html.escape(m)}</th>" for m in ev.methods)
            + "</tr>"
        )
        for pid, imgs in rows:
            cells = ""
            for m in ev.methods:
                rel = f"examples/{_slug(s)}/{_slug(pid)}_{_slug(m)}.png"
                write_bytes_atomic(out / rel, imgs[m])
                cells += f"<td><img class=ex src='{rel}'></td>"
            parts.append(f"<tr><td>{html.escape(pid)}</td>{cells}</tr>")
        parts.append("</table>")
    parts.append("<h2>Conventions</h2>" + "".join(f"<p>{html.escape(n)}</p>" for n in _notes(ev)))
    path = out / "index.html"
    write_bytes_atomic(path, "\n".join(parts).encode())
    return path
