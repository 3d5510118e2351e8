"""Variable-length averaging (VLA, Chrysos et al. 2018, Sect. 3.4): which frames to average.

From a start exposure the sub-sequence grows one distinct frame at a time and stops before
the first frame whose addition would break one of the paper's three conditions:

(i)   overlap - the facial parts (jaw, brows, nose, eyes, mouth) of the first and the new
      last frame still overlap: IoU of the part's landmark boxes >= ``min_overlap`` for
      ``overlap_parts`` of them (by default any one, the paper's "some"; ``all`` is stricter);
(ii)  quality - the running average (linear light) stays related to the current middle
      frame: SSIM on the middle frame's face crop, at thumbnail scale, >= ``min_quality``;
(iii) motion flow - no flow failure (face lost, or a share of face pixels above
      ``max_fb_bad`` failing the forward-backward check) and no oscillation (the step's
      flow points back against the displacement accumulated so far by more than
      ``osc_frac`` of the face size, after the face has moved that much).

The kept sub-sequence is trimmed to an odd length so that the middle frame is the temporal
centre of the exposure, and kept when ``min_L <= L``. The next sub-sequence starts at the
frame after it. The reverse pass runs the same procedure backwards in time; a reverse
window whose frame set shares at least ``dup_jaccard`` (Jaccard) of its frames with a
forward window is "essentially the same blur" (paper, footnote 7) and dropped, since the
average of a frame set does not depend on the order of its frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence, cast

import cv2
import numpy as np

from mf2.blur.crf import decode_lut, encode
from mf2.blur.windows import Window, crop_fits
from mf2.errors import UsageError
from mf2.faces.crop import Crop, face_crop, window_crop
from mf2.flow import FlowArrays
from mf2.params import default

PARTS: dict[str, slice] = {
    "jaw": slice(0, 17),
    "brows": slice(17, 27),
    "nose": slice(27, 36),
    "eyes": slice(36, 48),
    "mouth": slice(48, 68),
}
STOP_REASONS = ("overlap", "quality", "flow-failure", "oscillation", "max-L", "end-of-clip", "shot-cut")
DIRECTIONS = ("forward", "reverse", "both")


@dataclass(frozen=True)
class VlaConfig:
    # Thresholds measured on the 22 shared clips (issue #4 note). overlap_parts and max_L were
    # calibrated in issue 18 (bench/vla_calibrate.py; README, "VLA calibration"): rule (i) as
    # the paper words it ("some of the facial parts": any) and a cap of 61 frames give 19.8
    # frames per pair on the shared clips, against the 21.1 that the paper's VLA test set
    # implies; every part and a cap of 21 (mf2 before) gave 10.0, with 15 % of sub-sequences
    # cut by the cap. min_L 3 keeps the short windows of fast motion, which carry as much blur
    # as long windows of slow motion.
    min_L: int = default("vla.min_L")
    max_L: int = default("vla.max_L")
    min_overlap: float = default("vla.min_overlap")  # IoU of padded part boxes
    overlap_parts: str = default("vla.overlap_parts")  # how many parts must keep it: all, any, 1-5
    min_quality: float = default("vla.min_quality")  # SSIM of the running average with the middle frame
    max_fb_bad: float = default("vla.max_fb_bad")  # typical pairs: < 0.03 at the 99th percentile
    osc_frac: float = default("vla.osc_frac")  # of the face's extent: ~1.3 px on a 256 px face
    direction: str = default("vla.direction")
    dup_jaccard: float = default("vla.dup_jaccard")
    thumb_face: int = 64  # face extent in thumbnail pixels, for the quality rule

    def validate(self) -> None:
        if self.min_L < 3 or self.min_L % 2 == 0:
            raise UsageError(f"--min-L {self.min_L}: must be an odd number >= 3")
        if self.max_L < self.min_L:
            raise UsageError(f"--max-L {self.max_L}: must be >= --min-L ({self.min_L})")
        if self.direction not in DIRECTIONS:
            raise UsageError(f"--direction {self.direction!r}: expected one of {', '.join(DIRECTIONS)}")
        if not -1 <= self.min_quality <= 1:
            raise UsageError(f"--min-quality {self.min_quality}: SSIM threshold must be in [-1, 1]")
        if self.overlap_parts not in ("all", "any") and self.overlap_parts not in ("1", "2", "3", "4", "5"):
            raise UsageError(f"--overlap-parts {self.overlap_parts}: expected all, any or a number 1-5")
        if not 0 <= self.min_overlap <= 1:
            raise UsageError(f"--min-overlap {self.min_overlap}: IoU threshold must be in [0, 1]")
        if not 0 <= self.max_fb_bad <= 1:
            raise UsageError(f"--max-fb-bad {self.max_fb_bad}: must be a share in [0, 1]")
        if not 0 < self.dup_jaccard <= 1:
            raise UsageError(f"--dup-jaccard {self.dup_jaccard}: must be in (0, 1]")

    def parts_needed(self) -> int:
        return {"all": len(PARTS), "any": 1}.get(self.overlap_parts) or int(self.overlap_parts)

    def key(self) -> dict:
        return asdict(self)


def part_overlap(a: np.ndarray, b: np.ndarray, pad: float = 0.05) -> dict[str, float]:
    """IoU of each facial part's landmark box between two 68-point shapes.

    Each box is padded by ``pad`` x the face's extent on every side, so that thin parts
    (eyes, brows) measure where the part is rather than its shape: a blink or an open mouth
    alone does not end the overlap, a displacement of the part by about its size does.
    """
    p = pad * float(max(np.ptp(a[:, 0]), np.ptp(a[:, 1])))
    out = {}
    for name, sl in PARTS.items():
        la, ha = a[sl].min(0) - p, a[sl].max(0) + p
        lb, hb = b[sl].min(0) - p, b[sl].max(0) + p
        inter = float(np.prod(np.clip(np.minimum(ha, hb) - np.maximum(la, lb), 0, None)))
        union = float(np.prod(ha - la)) + float(np.prod(hb - lb)) - inter
        out[name] = inter / union if union > 0 else 0.0
    return out


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Grey SSIM (Wang et al. 2004), 7x7 Gaussian window sigma 1.5, on [0, 255] images."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (7, 7), 1.5)  # noqa: E731
    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
    m = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(m[3:-3, 3:-3].mean()) if min(m.shape) > 6 else float(m.mean())


@dataclass
class VlaStop:
    reason: str
    overlap: float | None = None  # min part IoU first vs candidate frame
    quality: float | None = None  # SSIM of the running average with the candidate's middle
    fb_bad: float | None = None
    osc_px: float | None = None  # step flow projected on the accumulated direction (px, < 0 = back)


@dataclass(frozen=True)
class VlaWindow:
    window: Window
    direction: str
    stop: VlaStop = field(compare=False)
    displacement_px: float = 0.0  # |net face displacement| first -> last exposure
    path_px: float = 0.0  # accumulated |step| along the sub-sequence


@dataclass
class VlaStats:
    windows: int = 0
    too_short: int = 0
    too_large: int = 0  # crops larger than the frame's diagonal
    reverse_duplicates: int = 0
    stop_reasons: dict = field(default_factory=dict)


class Thumbs:
    """Grey thumbnails of every frame (uint8, random access) and their scale."""

    def __init__(self, frames: Any, scale: float):  # an array, or anything indexed by frame (modes.vla.ThumbFile)
        self.frames, self.scale = frames, scale


def thumb_scale(landmarks: np.ndarray, valid: np.ndarray, thumb_face: int) -> float:
    if not valid.any():
        return 1.0
    ext = (np.nanmax(landmarks[valid], axis=1) - np.nanmin(landmarks[valid], axis=1)).max(axis=1)
    return float(min(1.0, thumb_face / max(1.0, np.median(ext))))


class _Planner:
    def __init__(
        self,
        lms,
        valid,
        dup,
        flow: FlowArrays,
        thumbs: Thumbs,
        cfg: VlaConfig,
        margin: float,
        crf: str,
        run: np.ndarray | None = None,
        frame_size: tuple[int, int] | None = None,
    ):
        self.lms, self.valid, self.dup, self.flow, self.thumbs = lms, valid, dup, flow, thumbs
        self.run_id = run if run is not None else np.zeros(len(valid), np.int64)
        self.frame_size = frame_size
        self.cfg, self.margin, self.crf = cfg, margin, crf
        self.lut = decode_lut(crf)
        d = np.where(flow.valid[:, None], flow.d, 0.0)
        self.cum = np.cumsum(d, axis=0)
        self.cum_invalid = np.cumsum(~flow.valid)
        self.face_size = np.zeros(len(valid))
        if valid.any():
            ext = lms[valid].max(axis=1) - lms[valid].min(axis=1)
            self.face_size[valid] = ext.max(axis=1)

    def step(self, a: int, b: int) -> tuple[np.ndarray, bool, float]:
        """Face displacement from exposure a to b (either order), flow ok, worst fb share."""
        lo, hi = min(a, b), max(a, b)
        ok = bool(self.cum_invalid[hi] - self.cum_invalid[lo] == 0)
        v = self.cum[hi] - self.cum[lo]
        fb = float(np.nanmax(self.flow.fb_bad[lo + 1 : hi + 1])) if ok else 1.0
        return (v if b > a else -v), ok, fb

    def quality(self, acc: np.ndarray, n: int, middle: int) -> float:
        c = face_crop(self.lms[middle], self.margin)
        if not crop_fits(c, self.frame_size):
            return -1.0  # no believable face this large: the quality rule stops here
        s = self.thumbs.scale
        x0, y0 = int(round(c.x0 * s)), int(round(c.y0 * s))
        size = max(8, int(round(c.size * s)))
        crop = Crop(x0, y0, size)
        mean = encode(crop.take(acc) / np.float32(n), self.crf)
        return ssim(mean, crop.take(np.asarray(self.thumbs.frames[middle])))

    def run(self, order: Sequence[int], direction: str) -> tuple[list[VlaWindow], VlaStats]:
        """Sub-sequences over ``order`` (frame indices, in this direction's time order): each
        grows from the first usable frame until a rule stops it; the next starts after it."""
        stats = VlaStats()
        out: list[VlaWindow] = []
        i = 0
        while i < len(order):
            if not self.valid[order[i]]:
                i += 1
                continue
            seq, disp, path, stop = self._grow(order, i)
            stats.stop_reasons[stop.reason] = stats.stop_reasons.get(stop.reason, 0) + 1
            self._keep(seq, disp, path, stop, direction, stats, out)
            i += max(1, len(seq))
        stats.windows = len(out)
        return out, stats

    def _grow(self, order: Sequence[int], i: int) -> tuple[list[int], np.ndarray, float, VlaStop]:
        """The frames from ``order[i]`` on that pass every rule (odd in number), their net and
        path displacement, and what stopped them."""
        cfg = self.cfg
        s = order[i]
        seq = [s]
        acc = self.lut[np.asarray(self.thumbs.frames[s])].astype(np.float32)
        disp = np.zeros(2)
        path = 0.0
        stop = VlaStop("end-of-clip")
        j = i + 1
        while True:
            if len(seq) >= cfg.max_L:
                stop = VlaStop("max-L")
                break
            if j >= len(order):
                break
            f = order[j]
            if self.run_id[f] != self.run_id[s]:  # another shot or another track
                stop = VlaStop("shot-cut")
                break
            v, st, cand_acc = self._check(seq, f, acc, disp)
            if st.reason:
                stop = st
                break
            seq.append(f)
            acc = cand_acc
            disp = disp + v
            path += float(np.hypot(*v))
            j += 1
        if len(seq) % 2 == 0:
            # Trim to odd so the middle frame is the temporal centre; every prefix
            # passed the rules, so the trimmed one does too.
            v = self.step(seq[-2], seq.pop())[0]
            disp, path = disp - v, path - float(np.hypot(*v))
        return seq, disp, path, stop

    def _check(
        self, seq: list[int], f: int, acc: np.ndarray, disp: np.ndarray
    ) -> tuple[np.ndarray, VlaStop, np.ndarray | None]:
        """The paper's three rules for adding frame ``f``: the flow step to it, the measures
        (with ``reason`` set when a rule fails) and the running sum with it."""
        cfg = self.cfg
        v, flow_ok, fb = self.step(seq[-1], f)
        lost = not (self.valid[f] and flow_ok)
        st = VlaStop("", fb_bad=fb)
        cand_acc = None
        if not lost:
            # the IoU of the part that decides: the N-th best of the five (all: the worst)
            ious = sorted(part_overlap(self.lms[seq[0]], self.lms[f]).values(), reverse=True)
            st.overlap = ious[cfg.parts_needed() - 1]
            cand_acc = acc + self.lut[np.asarray(self.thumbs.frames[f])]
            cand = seq + [f]
            st.quality = self.quality(cand_acc, len(cand), cand[(len(cand) - 1) // 2])
            nd = float(np.hypot(*disp))
            st.osc_px = float(v @ disp / nd) if nd > 0 else 0.0
            osc_min = cfg.osc_frac * float(self.face_size[seq[0]])
        if lost or fb > cfg.max_fb_bad:
            st.reason = "flow-failure"
        elif cast(float, st.overlap) < cfg.min_overlap:
            st.reason = "overlap"
        elif cast(float, st.quality) < cfg.min_quality:
            st.reason = "quality"
        elif float(np.hypot(*disp)) >= osc_min and cast(float, st.osc_px) <= -osc_min:
            st.reason = "oscillation"
        return v, st, cand_acc

    def _keep(
        self,
        seq: list[int],
        disp: np.ndarray,
        path: float,
        stop: VlaStop,
        direction: str,
        stats: VlaStats,
        out: list[VlaWindow],
    ) -> None:
        """A grown sub-sequence becomes a window when it is long enough and its crop fits."""
        frames = tuple(sorted(int(x) for x in seq))
        crop = window_crop(self.lms, frames, self.margin)
        if len(seq) >= self.cfg.min_L and not crop_fits(crop, self.frame_size):
            stats.too_large += 1
        elif len(seq) >= self.cfg.min_L:
            c = frames[len(frames) // 2]
            w = Window(
                frames=frames, center=c, crop=crop, n_duplicates_skipped=int(self.dup[frames[0] : frames[-1] + 1].sum())
            )
            out.append(VlaWindow(w, direction, stop, float(np.hypot(*disp)), path))
        else:
            stats.too_short += 1


def jaccard(a: Sequence[int], b: Sequence[int]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 0.0


def drop_reverse_duplicates(
    forward: list[VlaWindow], reverse: list[VlaWindow], min_jaccard: float
) -> tuple[list[VlaWindow], int]:
    """Reverse windows sharing >= min_jaccard of their frames with a forward window are dropped."""
    kept, dropped = [], 0
    for r in reverse:
        rs, re_ = r.window.start, r.window.end
        if any(
            f.window.start <= re_ and rs <= f.window.end and jaccard(f.window.frames, r.window.frames) >= min_jaccard
            for f in forward
        ):
            dropped += 1
        else:
            kept.append(r)
    return kept, dropped


def plan_vla(
    landmarks: np.ndarray,
    valid: np.ndarray,
    is_duplicate: np.ndarray,
    flow: FlowArrays,
    thumbs: Thumbs,
    cfg: VlaConfig,
    margin: float = default("margin"),
    crf: str = default("crf"),
    skip_duplicates: bool = True,
    run: np.ndarray | None = None,
    frame_size: tuple[int, int] | None = None,
) -> tuple[list[VlaWindow], VlaStats]:
    """Plan VLA windows over a whole clip; forward, reverse or both (duplicates dropped)."""
    n = len(valid)
    exposures = [int(x) for x in (np.flatnonzero(~is_duplicate) if skip_duplicates else np.arange(n))]
    planner = _Planner(landmarks, valid, is_duplicate, flow, thumbs, cfg, margin, crf, run, frame_size)
    windows: list[VlaWindow] = []
    stats = VlaStats()
    fwd: list[VlaWindow] = []
    if cfg.direction in ("forward", "both"):
        fwd, st = planner.run(exposures, "forward")
        windows += fwd
        _merge(stats, st)
    if cfg.direction in ("reverse", "both"):
        rev, st = planner.run(exposures[::-1], "reverse")
        _merge(stats, st)
        if fwd:
            rev, stats.reverse_duplicates = drop_reverse_duplicates(fwd, rev, cfg.dup_jaccard)
        windows += rev
    stats.windows = len(windows)
    return windows, stats


def _merge(total: VlaStats, st: VlaStats) -> None:
    total.too_short += st.too_short
    total.too_large += st.too_large
    for k, v in st.stop_reasons.items():
        total.stop_reasons[k] = total.stop_reasons.get(k, 0) + v
