"""Face tracks that stay honest: one per face, within one shot, while the face is there.

Detection (HOG) is ~50x slower than fitting landmarks in a given box, so the detector runs
on keyframes; between them a track's box for frame t comes from its landmarks at t-1,
mapped to the detector's box convention by the offsets measured at its last detection (the
landmark models were trained on detector boxes, not on landmark extents).

A fit is believed only if it passes every check against the track's last accepted fit:

- the landmark extent is finite, at least 4 px and at most the frame's longer side;
- at most ``max_outside`` of the points lie outside the picture;
- the extent changes by at most ``max_scale_step`` and the centre moves by at most
  ``max_shift`` face sizes per frame (a diverging fit grows geometrically: it fails here on
  its first step, long before its crop could take the machine's memory);
- the fit is a face: its Procrustes distance to the mean face is at most
  ``max_shape_residual`` and its extent's aspect within 1/``max_aspect``..``max_aspect``
  (``implausible-shape``, mf2.faces.shape), and a detection's fit spans 1/``max_box_ratio``..
  ``max_box_ratio`` of the detector's box (measured 0.82-1.24 on the shared clips); its extent is at least ``min_fit_face`` px
  (``small-face``: below it the fit's error is 1.7x a 64 px face's, bench/small_faces.py);
- a tracked fit's extent stays within ``max_drift`` of the median of its track's last
  ``drift_window`` fits (``scale-drift``): a fit that grows or shrinks a little every frame
  passes the per-frame step but not this. A detection is the authority: its fit skips this
  check and restarts the median when it disagrees (a real zoom);
- the face region is not flat (grey std >= ``min_contrast``): a fit on a black or faded
  frame lands on nothing;
- on keyframes the detector is asked near the track; a detection whose own fit passes
  these checks re-anchors the track (the region searched is clipped to the frame, so it
  cannot grow with a diverging track); after ``max_missed`` keyframes without one, the
  track ends (``no-detection``);
- optionally, every ``identity_interval`` frames, the face still looks like the track's
  first detection (dlib embedding distance <= ``identity_threshold``).

A failed check asks the detector again on that very frame, near the track; if it finds
nothing that passes, the track is lost there (the row says why). Tracks never cross a shot
boundary: at a cut every track ends and the whole frame is searched. The whole frame is
also searched while no track is alive, every ``keyframe_interval`` frames, and, while
tracks are alive, every ``discover_interval`` frames for faces of at least
``discover_min_face`` px entering the shot. That last search is the tracker's main cost on
a plain talking-head clip (HOG over a whole 640x480 frame upsampled for 40 px faces: ~70 ms;
for 80 px faces: ~17 ms), so it looks less often and for larger faces; faces smaller than
that which enter mid-shot are found at the next shot or once the shot's tracks are gone.
Repeated frames reuse their predecessor's answer.

A steady change of the face's brightness (a fade, a light switched on) keeps the track but
marks the frame ``light-change``: its landmarks are right, but it should not be averaged.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import cv2
import numpy as np

from mf2.faces.base import Detection, LandmarkBackend, iou, landmark_box
from mf2.faces.select import LandmarkConfig
from mf2.faces.shape import extent_aspect, procrustes_residual

_HOG_WINDOW = 80  # dlib's HOG detector finds faces from 80 px up without upsampling
_LOCAL_FACE = 120  # face side when re-detecting near a track: room to grow or shrink 1.5x
_CNN_FACE = 100  # face side for the CNN fallback: just above mmod's 80 px window (its cost goes with pixels)
MAX_CLUSTERED = 400  # tracks per video that face_id clustering considers (and whose faces are kept)

OK = "ok"
# Why a row is not usable. Failures end the track; flags keep it.
FAILURES = (
    "bad-extent",
    "outside",
    "scale-jump",
    "shift-jump",
    "no-contrast",
    "no-detection",
    "identity-change",
    "merged",
    "implausible-shape",
    "scale-drift",
    "small-face",
)
# The last three: mf2.faces.stage ("decode-error": ffmpeg decoded the frame from damaged data)
FLAGS = ("light-change", "short-shot", "size-outlier", "before-loss", "decode-error")
NO_FACE = "no-face"


@dataclass
class FaceRow:
    frame: int
    shot: int
    track: int | None
    box: np.ndarray | None  # (4,) detector-convention box, x0 y0 x1 y1
    landmarks: np.ndarray | None  # (68, 2) float32, image pixels; None when lost
    score: float  # detector score of the detection this track came from
    fit_iou: float  # agreement between the fit's input box and its landmarks (track quality)
    source: str  # detect | track | duplicate | none
    reason: str  # ok, a failure (the track ended here), a flag, or no-face
    is_duplicate: bool
    dup_mad: float


@dataclass
class TrackFrame:
    index: int
    image: np.ndarray
    is_duplicate: bool
    mad: float
    shot_start: bool


@dataclass
class _Track:
    id: int
    box: np.ndarray  # detector-convention box for the next fit
    rel: np.ndarray  # detector box offsets relative to the landmark extent
    lm: np.ndarray  # last accepted landmarks
    score: float
    light: float  # mean grey of the face region at the last accepted frame
    lights: deque = field(default_factory=lambda: deque(maxlen=3))  # the accepted frames' before it
    since_detect: int = 0
    missed: int = 0
    age: int = 0
    chip: np.ndarray | None = None  # aligned face of its first detection (for its embedding)
    embedding: np.ndarray | None = None  # computed from ``chip`` when first needed
    sizes: deque = field(default_factory=deque)  # extents of the last accepted fits (scale-drift)

    def drift(self, ext: float) -> float:
        """How far ``ext`` is from the median of the recent extents (a ratio >= 1)."""
        if not self.sizes:
            return 1.0
        med = float(np.median(self.sizes))
        return max(ext / med, med / ext) if ext > 0 and med > 0 else float("inf")


def _extent(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lb = landmark_box(lm)
    return lb, np.array([lb[2] - lb[0], lb[3] - lb[1]] * 2, dtype=np.float32)


def same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Two boxes on one face: IoU above 0.5, or most (70 %) of the smaller inside the larger."""
    ix = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    iy = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    small = min(float((a[2] - a[0]) * (a[3] - a[1])), float((b[2] - b[0]) * (b[3] - b[1])))
    return iou(a, b) > 0.5 or (small > 0 and ix * iy / small > 0.7)


def face_stats(image: np.ndarray, lm: np.ndarray) -> tuple[float, float]:
    """Mean and std of the grey face region (landmark box), sampled on at most 32x32 points,
    so the cost does not depend on the face's size."""
    h, w = image.shape[:2]
    lo, hi = np.floor(lm.min(axis=0)), np.ceil(lm.max(axis=0))
    x0, y0 = int(max(0, lo[0])), int(max(0, lo[1]))
    x1, y1 = int(min(w, hi[0] + 1)), int(min(h, hi[1] + 1))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0, 0.0
    sx, sy = max(1, (x1 - x0) // 32), max(1, (y1 - y0) // 32)
    patch = image[y0:y1:sy, x0:x1:sx]
    grey = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2GRAY) if patch.ndim == 3 else patch
    return float(grey.mean()), float(grey.std())


class FaceTracker:
    def __init__(self, backend: LandmarkBackend, cfg: LandmarkConfig, embedder=None) -> None:
        """``embedder``: something with ``chip(image, landmarks)`` and ``embed_chip(chip)``
        (mf2.faces.identity). Each track keeps the aligned face of its first detection; its
        embedding (75 ms on a CPU core) is computed only when needed: by an identity check,
        or by face_id clustering when another track could be the same person."""
        self.backend = backend
        self.cfg = cfg
        self.embedder = embedder
        self.tracks: list[_Track] = []
        self.chips: dict[int, np.ndarray] = {}  # track id -> aligned face of its first detection
        self._next_id = 0
        self._shot = -1
        self.cnn_calls = 0  # CNN fallback detections asked, and those that found a face
        self.cnn_found = 0
        self._since_discover = 0
        self._fresh_shot = True
        self._prev_rows: list[FaceRow] | None = None

    # -- checks --------------------------------------------------------------------------
    def _sane(
        self,
        lm: np.ndarray,
        shape: tuple[int, ...],
        prev: np.ndarray | None,
        track: _Track | None = None,
        det_box: np.ndarray | None = None,
    ) -> str:
        cfg = self.cfg
        if not np.isfinite(lm).all():
            return "bad-extent"
        h, w = shape[:2]
        lo, hi = lm.min(axis=0), lm.max(axis=0)
        ext = float(max(hi - lo))
        if not 4.0 <= ext <= max(h, w):
            return "bad-extent"
        outside = ((lm[:, 0] < 0) | (lm[:, 0] > w - 1) | (lm[:, 1] < 0) | (lm[:, 1] > h - 1)).mean()
        if outside > cfg.max_outside:
            return "outside"
        aspect = extent_aspect(lm)
        if not 1.0 / cfg.max_aspect <= aspect <= cfg.max_aspect or procrustes_residual(lm) > cfg.max_shape_residual:
            return "implausible-shape"
        if det_box is not None:
            side = float(max(det_box[2] - det_box[0], det_box[3] - det_box[1]))
            if not side > 0 or not 1.0 / cfg.max_box_ratio <= ext / side <= cfg.max_box_ratio:
                return "implausible-shape"
        if ext < cfg.min_fit_face:
            return "small-face"
        if prev is not None:
            plo, phi = prev.min(axis=0), prev.max(axis=0)
            pext = float(max(phi - plo))
            ratio = ext / max(pext, 1e-6)
            if not 1.0 / cfg.max_scale_step <= ratio <= cfg.max_scale_step:
                return "scale-jump"
            if float(np.hypot(*((lo + hi) / 2 - (plo + phi) / 2))) > cfg.max_shift * pext:
                return "shift-jump"
        if track is not None and track.drift(ext) > cfg.max_drift:
            return "scale-drift"
        return OK

    def _check(
        self,
        lm: np.ndarray,
        image: np.ndarray,
        prev: np.ndarray | None,
        track: _Track | None = None,
        det_box: np.ndarray | None = None,
    ) -> tuple[str, float]:
        why = self._sane(lm, image.shape, prev, track, det_box)
        if why != OK:
            return why, float("nan")
        light, contrast = face_stats(image, lm)
        if contrast < self.cfg.min_contrast:
            return "no-contrast", light
        return OK, light

    # -- detection -----------------------------------------------------------------------
    def _detect_near(self, image: np.ndarray, box: np.ndarray) -> list[Detection]:
        """Only a region three face sizes wide around ``box``, scaled so the face is
        ~_LOCAL_FACE px: a few ms where HOG over a whole upsampled frame costs ~85 ms. The
        region is clipped to the frame, so its cost is bounded whatever the box says."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = (float(v) for v in box)
        side = min(max(x1 - x0, y1 - y0), float(max(h, w)))
        if not np.isfinite(side) or side < 8:
            return []
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 1.5 * side
        rx0, ry0 = int(np.clip(cx - half, 0, w)), int(np.clip(cy - half, 0, h))
        rx1, ry1 = int(np.clip(np.ceil(cx + half), 0, w)), int(np.clip(np.ceil(cy + half), 0, h))
        if rx1 - rx0 < 16 or ry1 - ry0 < 16:
            return []
        scale = _LOCAL_FACE / side
        region = image[ry0:ry1, rx0:rx1]
        size = (max(1, round((rx1 - rx0) * scale)), max(1, round((ry1 - ry0) * scale)))
        region = cv2.resize(region, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        offset = np.array([rx0, ry0, rx0, ry0], dtype=np.float32)
        dets = self.backend.detect(region, min_face=_HOG_WINDOW)
        if not dets and self.cfg.cnn_fallback and hasattr(self.backend, "detect_fallback"):
            # HOG misses turned and harshly lit faces a track still follows (issue 31: an
            # interviewee looking down lost ~50 frames); the CNN finds them at ~20x the cost,
            # so it runs here only, on the region scaled to a face just above its window.
            scale = _CNN_FACE / side
            size = (max(1, round((rx1 - rx0) * scale)), max(1, round((ry1 - ry0) * scale)))
            small = cv2.resize(
                image[ry0:ry1, rx0:rx1], size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            )
            dets = self.backend.detect_fallback(small)
            self.cnn_calls += 1
            self.cnn_found += bool(dets)
        return [Detection((d.box / scale + offset).astype(np.float32), d.score) for d in dets]

    def _detect_all(self, image: np.ndarray, min_face: int) -> list[Detection]:
        dets = [
            d
            for d in self.backend.detect(image, min_face=min_face)
            if min(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= min_face * 0.8
        ]
        return sorted(dets, key=lambda d: -float((d.box[2] - d.box[0]) * (d.box[3] - d.box[1])))

    def _match(self, dets: list[Detection], box: np.ndarray) -> Detection | None:
        best = max(dets, key=lambda d: iou(d.box, box), default=None)
        return best if best is not None and iou(best.box, box) >= self.cfg.match_iou else None

    # -- track lifecycle -----------------------------------------------------------------
    def _start(self, f: TrackFrame, det: Detection) -> FaceRow | None:
        lm, _ = self.backend.fit([f.image], [det.box])[0]
        why, light = self._check(lm, f.image, None, det_box=det.box)
        if why != OK:
            return None
        lb, size = _extent(lm)
        tr = _Track(self._next_id, det.box.astype(np.float32), (det.box - lb) / size, lm, det.score, light)
        tr.sizes.append(float(max(size[0], size[1])))
        self._next_id += 1
        if self.embedder is not None:
            tr.chip = self.embedder.chip(f.image, lm)
            if len(self.chips) < MAX_CLUSTERED:
                self.chips[tr.id] = tr.chip
        self.tracks.append(tr)
        return self._row(f, tr, lm, tr.box, 1.0, "detect", OK)

    def _row(self, f: TrackFrame, tr: _Track | None, lm, box, fit_iou: float, source: str, reason: str) -> FaceRow:
        return FaceRow(
            f.index,
            self._shot,
            None if tr is None else tr.id,
            None if box is None else box.copy(),
            lm,
            float("nan") if tr is None else tr.score,
            fit_iou,
            source,
            reason,
            f.is_duplicate,
            f.mad,
        )

    def _accept(
        self,
        f: TrackFrame,
        tr: _Track,
        lm: np.ndarray,
        light: float,
        source: str,
        fit_iou: float,
        det: Detection | None = None,
    ) -> FaceRow:
        # A fade scales the face's brightness steadily (1/12 of it per frame for a half-second
        # fade); natural motion and lighting on the shared clips changed it by at most ~10 %
        # over 3 frames, and not steadily. So: the change over the last 3 frames, relative.
        tr.lights.append(tr.light)
        ref = tr.lights[0]
        jump = len(tr.lights) == 3 and abs(light - ref) > self.cfg.max_light_change * max(ref, light, 16.0)
        lb, size = _extent(lm)
        ext = float(max(size[0], size[1]))
        if det is not None:
            tr.rel, tr.score, tr.since_detect, tr.missed = (det.box - lb) / size, det.score, 0, 0
            if tr.drift(ext) > self.cfg.max_drift:
                tr.sizes.clear()  # the detector says the face really is this size now
        tr.sizes.append(ext)
        while len(tr.sizes) > self.cfg.drift_window:
            tr.sizes.popleft()
        tr.box = (lb + tr.rel * size).astype(np.float32)
        tr.lm, tr.light = lm, light
        tr.age += 1
        return self._row(f, tr, lm, tr.box, fit_iou, source, "light-change" if jump else OK)

    def _identity_changed(self, f: TrackFrame, tr: _Track, lm: np.ndarray) -> bool:
        n = self.cfg.identity_interval
        if not n or self.embedder is None or tr.chip is None or tr.age == 0 or tr.age % n:
            return False
        if tr.embedding is None:
            tr.embedding = self.embedder.embed_chip(tr.chip)
        d = float(np.linalg.norm(self.embedder.embed(f.image, lm) - tr.embedding))
        return d > self.cfg.identity_threshold

    def _update(self, f: TrackFrame, tr: _Track, lm: np.ndarray, keyframe: bool) -> FaceRow:
        """One track on one frame, given the fit from its predicted box."""
        pred_box = tr.box
        fit_iou = iou(landmark_box(lm) + tr.rel * _extent(lm)[1], pred_box) if np.isfinite(lm).all() else 0.0
        why, light = self._check(lm, f.image, tr.lm, tr)
        if keyframe or why != OK:
            det = self._match(self._detect_near(f.image, pred_box), pred_box)
            if det is not None:
                dlm, _ = self.backend.fit([f.image], [det.box])[0]
                # The detector is the authority here: its fit is checked on its own, not against a
                # track that may have been drifting (a slowly shrinking fit passes every per-frame
                # step check, and the detection that would correct it is a big "jump" from it).
                dwhy, dlight = self._check(dlm, f.image, None, det_box=det.box)
                if dwhy == OK:  # the detector's fit continues the track
                    if self._identity_changed(f, tr, dlm):
                        return self._lose(f, tr, "identity-change")
                    if why != OK or iou(landmark_box(dlm), landmark_box(lm)) < self.cfg.reanchor_iou:
                        return self._accept(f, tr, dlm, dlight, "detect", 1.0, det)  # re-anchor on it
                    # the tracked fit agrees with the detector: keep it (re-anchoring a calm face on
                    # every keyframe moves its landmarks by a few pixels, which VLA reads as motion)
                    # Its box offsets are re-measured only when the detection's box has moved away
                    # from the predicted one (drift); otherwise the next box stays where it was.
                    if iou(det.box, pred_box) < self.cfg.reanchor_iou:
                        return self._accept(f, tr, lm, light, "confirmed", fit_iou, det)
                    tr.missed, tr.since_detect, tr.score = 0, 0, det.score
                    return self._accept(f, tr, lm, light, "confirmed", fit_iou)
            if why != OK:
                return self._lose(f, tr, why)
            tr.missed += 1  # a keyframe without a detection that agrees
            tr.since_detect = 0
            if tr.missed > self.cfg.max_missed:
                return self._lose(f, tr, "no-detection")
        if self._identity_changed(f, tr, lm):
            return self._lose(f, tr, "identity-change")
        tr.since_detect += 1
        return self._accept(f, tr, lm, light, "track", fit_iou)

    def _lose(self, f: TrackFrame, tr: _Track, why: str) -> FaceRow:
        self.tracks.remove(tr)
        return self._row(f, tr, None, None, float("nan"), "none", why)

    # -- per frame -----------------------------------------------------------------------
    def _frame(self, f: TrackFrame, fits: dict[int, np.ndarray]) -> list[FaceRow]:
        rows: list[FaceRow] = []
        self._since_discover += 1
        for tr in list(self.tracks):
            keyframe = tr.since_detect >= self.cfg.keyframe_interval
            rows.append(self._update(f, tr, fits[tr.id], keyframe))
        # Two tracks on one face (a re-detection landed on the other's face, or a ghost: a fit
        # shrunk onto part of a face while a new detection of that face started a track):
        # keep the older. A ghost's box lies inside the face's, so IoU alone misses it.
        alive = sorted(self.tracks, key=lambda t: t.id)
        for i, a in enumerate(alive):
            for b in alive[i + 1 :]:
                if b in self.tracks and a in self.tracks and same_face(landmark_box(a.lm), landmark_box(b.lm)):
                    for r in rows:
                        if r.track == b.id:
                            rows.remove(r)
                            break
                    rows.append(self._lose(f, b, "merged"))
        full = self._fresh_shot or (not self.tracks and self._since_discover >= self.cfg.keyframe_interval)
        discover = full or self._since_discover >= self.cfg.discover_interval
        self._fresh_shot = False
        if discover and len(self.tracks) < self.cfg.max_faces:
            self._since_discover = 0
            taken = [t.box for t in self.tracks]
            min_face = self.cfg.min_face if full else max(self.cfg.min_face, self.cfg.discover_min_face)
            for det in self._detect_all(f.image, min_face):
                if len(self.tracks) >= self.cfg.max_faces:
                    break
                if any(iou(det.box, b) >= self.cfg.match_iou for b in taken):
                    continue
                started = self._start(f, det)
                if started is not None:
                    rows.append(started)
                    taken.append(det.box)
        if not any(r.landmarks is not None for r in rows):
            rows.append(self._row(f, None, None, None, float("nan"), "none", NO_FACE))
        return rows

    def _new_shot(self) -> None:
        self.tracks = []
        self._shot += 1
        self._since_discover = 0
        self._fresh_shot = True

    def _repeated(self, f: TrackFrame, prev: list[FaceRow]) -> list[FaceRow]:
        """A repeated frame's rows: the previous frame's fits, marked as duplicates."""
        rows = [
            FaceRow(
                f.index,
                self._shot,
                r.track,
                r.box,
                r.landmarks,
                r.score,
                r.fit_iou,
                "duplicate" if r.landmarks is not None else "none",
                r.reason if r.landmarks is not None else NO_FACE,
                True,
                f.mad,
            )
            for r in prev
            if r.landmarks is not None or r.reason == NO_FACE
        ]
        if not rows:
            rows = [self._row(f, None, None, None, float("nan"), "none", NO_FACE)]
            rows[0].is_duplicate = True
        return rows

    def _process(self, chunk: list[TrackFrame]) -> Iterator[list[FaceRow]]:
        """Frames in order; a chunk (GPU backends) fits every track on every frame from the
        boxes at its start in one call, then checks frame by frame; whatever follows a
        change (a re-detection, a lost or new track) is fitted again."""
        i = 0
        while i < len(chunk):
            f = chunk[i]
            if f.shot_start or self._shot < 0:
                self._new_shot()
            if f.is_duplicate and self._prev_rows is not None and not f.shot_start:
                self._since_discover += 1  # counts every frame: repeats too
                rows = self._repeated(f, self._prev_rows)
                self._prev_rows = rows
                yield rows
                i += 1
                continue
            # the run of frames that can share one batched fit: no shot start, no duplicate
            tracks = list(self.tracks)
            # ... and that ends before the next keyframe, where boxes change: fits past it would
            # be thrown away (with batch 64 and keyframes every 10 frames, 5 of every 6)
            k_int = self.cfg.keyframe_interval
            room = min(
                (k_int - t.since_detect if t.since_detect < k_int else k_int for t in tracks), default=len(chunk)
            )
            j = i + 1
            while j < min(len(chunk), i + room) and not chunk[j].shot_start and not chunk[j].is_duplicate:
                j += 1
            run = chunk[i:j]
            items = [(fr.image, t.box) for fr in run for t in tracks]
            fitted = self.backend.fit([a for a, _ in items], [b for _, b in items]) if items else []
            ids = [t.id for t in tracks]
            for k, fr in enumerate(run):
                fits = {tid: fitted[k * len(tracks) + n][0] for n, tid in enumerate(ids)}
                rows = self._frame(fr, fits)
                self._prev_rows = rows
                yield rows
                i += 1
                changed = [t.id for t in self.tracks] != ids or any(r.source == "detect" for r in rows)
                if (
                    changed
                    or k + 1 < len(run)
                    and any(t.since_detect >= self.cfg.keyframe_interval for t in self.tracks)
                ):
                    break  # later frames need fits from the new boxes

    def run(self, frames: Iterable[TrackFrame]) -> Iterator[list[FaceRow]]:
        """Rows per frame, in order; ``frames`` carry the shot starts (mf2.faces.shots)."""
        chunk: list[TrackFrame] = []
        size = max(1, self.backend.batch_size)
        for f in frames:
            chunk.append(f)
            if len(chunk) >= size:
                yield from self._process(chunk)
                chunk = []
        if chunk:
            yield from self._process(chunk)
