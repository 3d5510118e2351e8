"""Identity over time on a real blurry video (the paper's Sect. 5.6): for each frame, the
cosine of the face's identity embedding against one sharp reference frame the user names,
before and after restoration. A real blurry video has no sharp target, so a sharp frame of the
same person is the only ground truth there is; a restoration that helps brings the blurred
frames' cosine up towards the sharp frames'."""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mf2.atomic import write_bytes_atomic
from mf2.errors import InputError
from mf2.faces.identity import IdentityEmbedder, cosine


@dataclass
class IdentityTrace:
    reference: np.ndarray  # the reference frame's embedding
    reference_frame: int
    embedder: IdentityEmbedder
    rows: list = field(default_factory=list)  # (frame, cos blurred, cos restored)

    @classmethod
    def from_video(cls, info, landmarks: np.ndarray, valid: np.ndarray, frame: int) -> "IdentityTrace":
        """The reference frame's face, decoded by streaming up to it (nothing else is kept)."""
        from mf2.video import iter_frames

        if not 0 <= frame < len(valid):
            raise InputError(f"--reference {frame}: {info.path} has frames 0-{len(valid) - 1}", "bad-reference")
        if not valid[frame]:
            raise InputError(f"--reference {frame}: no face found in that frame of {info.path}", "bad-reference")
        emb = IdentityEmbedder()
        with contextlib.closing(iter_frames(info)) as frames:
            for i, rgb in enumerate(frames):
                if i == frame:
                    return cls(emb.embed(rgb, landmarks[frame]), frame, emb)
        raise InputError(f"--reference {frame}: {info.path} ended before that frame", "bad-reference")

    def add(self, i: int, blurred: np.ndarray, restored: np.ndarray, landmarks: np.ndarray) -> None:
        self.rows.append(
            (
                i,
                cosine(self.embedder.embed(blurred, landmarks), self.reference),
                cosine(self.embedder.embed(restored, landmarks), self.reference),
            )
        )

    def summary(self) -> dict:
        a = np.array([r[1:] for r in self.rows if r[0] != self.reference_frame], float).reshape(-1, 2)
        return {
            "frames": int(len(a)),
            "reference_frame": self.reference_frame,
            "blurred_mean": float(a[:, 0].mean()) if len(a) else float("nan"),
            "restored_mean": float(a[:, 1].mean()) if len(a) else float("nan"),
        }

    def write(self, base: Path) -> list[Path]:
        """``base.identity.csv`` (one row per frame with a face) and ``base.identity.png``."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["frame", "cos_blurred", "cos_restored"])
        w.writerows([(i, f"{b:.5f}", f"{r:.5f}") for i, b, r in self.rows])
        csv_path = base.with_name(base.name + ".identity.csv")
        write_bytes_atomic(csv_path, buf.getvalue().encode())
        png = base.with_name(base.name + ".identity.png")
        write_bytes_atomic(png, self._plot())
        return [csv_path, png]

    def _plot(self) -> bytes:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        a = np.array(self.rows, float).reshape(-1, 3)
        s = self.summary()
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot(a[:, 0], a[:, 1], lw=1, label=f"blurred (mean {s['blurred_mean']:.3f})")
        ax.plot(a[:, 0], a[:, 2], lw=1, label=f"restored (mean {s['restored_mean']:.3f})")
        ax.axvline(self.reference_frame, color="grey", ls=":", lw=1, label=f"reference frame {self.reference_frame}")
        ax.set_xlabel("frame")
        ax.set_ylabel("identity cosine to the reference")
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=110)
        plt.close(fig)
        return out.getvalue()


__all__ = ["IdentityTrace"]
