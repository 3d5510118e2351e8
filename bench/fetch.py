"""`mf2 fetch` from a local HTTP server versus a plain HTTP copy of the same files, one run.

Prints JSON: videos/s and MB/s for each, medians over ``--repeats``, and their ratio. The
difference is mf2's own work per video: yt-dlp's extraction request, ffprobe + tail decode
verification, sha256, the atomic rename and the status table.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from video_server import VideoServer  # noqa: E402

from mf2 import __version__  # noqa: E402
from mf2.fetch.download import FetchConfig  # noqa: E402
from mf2.fetch.run import run_fetch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "videos")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    names = sorted(p.name for p in args.videos.glob("*.mp4"))
    total = sum((args.videos / n).stat().st_size for n in names) / 1e6
    plain, mf2 = [], []
    with VideoServer(args.videos) as srv:
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as d:
                t = time.perf_counter()
                for n in names:
                    with urllib.request.urlopen(srv.url("ok", n)) as r, open(Path(d) / n, "wb") as f:
                        shutil.copyfileobj(r, f)
                plain.append(time.perf_counter() - t)
            with tempfile.TemporaryDirectory() as d:
                m = Path(d) / "m.csv"
                m.write_text("video_id,url\n" + "".join(f"{n[:-4]},{srv.url('ok', n)}\n" for n in names))
                t = time.perf_counter()
                s = run_fetch(m, Path(d) / "out", FetchConfig(downloads=args.workers))
                mf2.append(time.perf_counter() - t)
                assert s.counts == {"ok": len(names)}, s.line()
    p, q = statistics.median(plain), statistics.median(mf2)
    print(
        json.dumps(
            {
                "bench": "fetch",
                "mf2": __version__,
                "python": platform.python_version(),
                "videos": len(names),
                "megabytes": round(total, 2),
                "repeats": args.repeats,
                "workers": args.workers,
                "plain_http_copy": {
                    "seconds": round(p, 3),
                    "videos_per_s": round(len(names) / p, 2),
                    "MB_per_s": round(total / p, 1),
                },
                "mf2_fetch": {
                    "seconds": round(q, 3),
                    "videos_per_s": round(len(names) / q, 2),
                    "MB_per_s": round(total / q, 1),
                },
                "mf2_over_plain": round(p / q, 3),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
