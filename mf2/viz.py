"""A contact sheet a person can look at: blurry | sharp, landmarks drawn on both."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mf2.atomic import write_bytes_atomic
from mf2.dataset import CONTACT_SHEET, pairs_path
from mf2.errors import InputError
from mf2.schema import landmarks_to_numpy, read_parquet


def _draw(img: np.ndarray, lm: np.ndarray) -> np.ndarray:
    img = img.copy()
    r = max(1, img.shape[0] // 128)
    for x, y in lm:
        cv2.circle(img, (int(round(x)), int(round(y))), r, (0, 255, 0), -1, lineType=cv2.LINE_AA)
    return img


def contact_sheet(out_dir: Path, n: int = 12, cols: int = 3, tile: int = 192) -> Path | None:
    """Evenly spaced pairs from OUT/pairs.parquet into OUT/contact_sheet.png."""
    table = read_parquet(
        pairs_path(out_dir), columns=["pair_id", "video_id", "blurry_path", "sharp_path", "landmarks", "out_size"]
    )
    if table.num_rows == 0:
        return None
    idx = np.unique(np.linspace(0, table.num_rows - 1, min(n, table.num_rows)).round().astype(int))
    lms, _ = landmarks_to_numpy(table["landmarks"])
    cells = []
    for i in idx:
        pair = []
        for col in ("blurry_path", "sharp_path"):
            img = cv2.imread(str(out_dir / table[col][i].as_py()), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(
                    f"{out_dir / table[col][i].as_py()}: missing or unreadable image (run mf2 verify)", "missing-file"
                )
            scale = tile / img.shape[0]
            img = _draw(cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA), (lms[i] + 0.5) * scale - 0.5)
            pair.append(img)
        cell = np.hstack([pair[0], np.full((tile, 4, 3), 255, np.uint8), pair[1]])
        label = table["pair_id"][i].as_py().removeprefix(table["video_id"][i].as_py() + "_")
        cv2.putText(cell, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        cells.append(cell)
    while len(cells) % cols:
        cells.append(np.zeros_like(cells[0]))
    pad = lambda c: cv2.copyMakeBorder(c, 6, 6, 6, 6, cv2.BORDER_CONSTANT, value=(40, 40, 40))  # noqa: E731
    rows = [np.hstack([pad(c) for c in cells[r : r + cols]]) for r in range(0, len(cells), cols)]
    ok, buf = cv2.imencode(".png", np.vstack(rows))
    path = out_dir / CONTACT_SHEET
    write_bytes_atomic(path, buf.tobytes())
    return path
