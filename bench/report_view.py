"""The HTML report as a person sees it: headless Chromium renders ``index.html`` to a PNG.

Makes a small report (the embedded sample's PrAvg-7 pairs, `mf2 evaluate --html`) unless
``--report DIR`` names one, then asks Chromium (Debian's ``chromium`` package) for the DOM
after rendering and for a full-page screenshot. Prints JSON: the screenshot's path and size,
the share of non-white pixels, the number of HTML tables and images the browser built, and
whether any table was left as Markdown text. Look at the PNG: numbers alone don't show a
broken layout.

    apt-get install chromium
    .venv/bin/python bench/report_view.py --png /tmp/report.png
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("report_view: no chromium on PATH (apt-get install chromium)")


def _chromium(browser: str, *args: str) -> subprocess.CompletedProcess:
    # --no-sandbox: root in a container has no user namespace for the sandbox
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _make_report(where: Path) -> Path:
    """The demo's pairs (PrAvg 7 on the embedded sample), then their report with the HTML page."""
    import mf2.api as mf2
    from mf2.sample import sample_video

    pairs = where / "pairs"
    mf2.simulate(pairs, sample_video(), mode="pravg", L=7)
    mf2.evaluate([pairs], out=where / "report", landmarks="dlib", limit=12, html=True)
    return where / "report"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", type=Path, help="an existing mf2 evaluate --html folder")
    ap.add_argument("--png", type=Path, default=Path("report.png"), help="where the screenshot goes")
    ap.add_argument("--width", type=int, default=1280)
    args = ap.parse_args()
    browser = _browser()
    with tempfile.TemporaryDirectory() as tmp:
        report = args.report or _make_report(Path(tmp))
        page = (report / "index.html").resolve().as_uri()
        dom = _chromium(browser, "--dump-dom", page).stdout
        # a tall window, then the page's own height: chromium's --screenshot takes the window only
        shot = _chromium(browser, f"--window-size={args.width},4000", f"--screenshot={args.png.resolve()}", page)
        if shot.returncode != 0 or not args.png.is_file():
            sys.exit(f"report_view: chromium made no screenshot: {shot.stderr[-500:]}")
        img = np.asarray(Image.open(args.png).convert("L"))
        rows = np.flatnonzero((img < 250).any(axis=1))
        if rows.size:  # crop the white below the page
            Image.open(args.png).crop((0, 0, img.shape[1], int(rows[-1]) + 20)).save(args.png)
            img = img[: rows[-1] + 20]
        print(
            json.dumps(
                {
                    "screenshot": str(args.png.resolve()),
                    "width": int(img.shape[1]),
                    "height": int(img.shape[0]),
                    "non_white": round(float((img < 250).mean()), 4),
                    "tables": len(re.findall(r"<table\b", dom)),
                    "images": len(re.findall(r"<img\b", dom)),
                    "markdown_left": bool(re.search(r"^\s*\|.*\|\s*$", re.sub(r"<[^>]+>", "", dom), re.M)),
                    "chromium": subprocess.run([browser, "--version"], capture_output=True, text=True).stdout.strip(),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
