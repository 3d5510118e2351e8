"""Rebuild manifests/videos.csv (and, on request, a segments manifest) from the VoxCeleb1 lists.

Input: ../shared/data/manifests/voxceleb1_videos.csv (one row per identity-video pair) and,
optionally, voxceleb1_fomm_segments.csv (face segments, frames at 25 fps). Output in mf2's
manifest schema: video_id, url, identity, name, split, license + the list's other columns.
VoxCeleb metadata: CC BY 4.0 (Nagrani, Chung, Zisserman, Interspeech 2017); the videos belong
to their YouTube uploaders and are not covered by that licence.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

def main() -> None:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", type=Path, default=here.parents[1] / "shared" / "data" / "manifests")
    ap.add_argument("--videos-out", type=Path, default=here / "videos.csv")
    ap.add_argument("--segments", type=Path, default=None,
                    help="also write the FOMM face segments as a manifest with start/end here (not versioned: "
                         "the segment list has no licence of its own)")
    args = ap.parse_args()
    with open(args.shared / "voxceleb1_videos.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # No url column: a bare video_id is a YouTube id, and leaving out the derivable URL and a
    # repeated licence string keeps the file small enough to version (about 1.4 MB).
    cols = ["video_id", "identity", "name", "split", "gender", "nationality", "n_utterances", "total_speech_s"]
    with open(args.videos_out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
    seg = args.shared / "voxceleb1_fomm_segments.csv"
    if args.segments and seg.is_file():
        with open(seg, newline="") as f:
            segs = list(csv.DictReader(f))
        cols = ["video_id", "url", "identity", "split", "start", "end", "license", "x", "y", "w", "h", "frame_width",
                "frame_height"]
        with open(args.segments, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
            w.writeheader()
            for r in segs:
                fps = float(r["fps"])
                w.writerow({**{c: r.get(c, "") for c in cols}, "url": f"https://www.youtube.com/watch?v={r['video_id']}",
                            "start": f"{int(r['start_frame']) / fps:.3f}", "end": f"{(int(r['end_frame']) + 1) / fps:.3f}",
                            "license": "YouTube uploader; segments from FOMM vox-metadata (research use)"})
    print(f"{len(rows)} rows -> {args.videos_out}")


if __name__ == "__main__":
    main()
