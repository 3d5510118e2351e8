"""`mf2 deblur`: restore face crops, whole images and videos with a trained model.

Crops (images already aligned like the pairs) go through the model as they are. In a whole
image or video frame the face is found (dlib detector and 68 landmarks, tracked through a
video), cropped as `mf2 simulate` crops, restored, and pasted back with a feathered mask so no
seam shows. Videos keep their frame rate (the exact rational) and, when present, their audio.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import cv2
import numpy as np
import torch

from mf2.atomic import write_bytes_atomic
from mf2.errors import InputError, UsageError
from mf2.faces.crop import Crop, face_crop
from mf2.models.archs import build, build_restorer
from mf2.models.archs.cgan import bl_base
from mf2.models.archs.gate import gated
from mf2.models.archs.space import dead_zone
from mf2.models.config import RESTORER_NAMES, config_from_dict
from mf2.params import ENSEMBLE, ENSEMBLES, default
from mf2.restore.tensors import to_tensor, to_uint8
from mf2.restore.trace import IdentityTrace

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXT = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".3gp"}


class Deblurrer:
    """The prediction network: hourglass, then G_bl (its encoder and the shared decoder). A
    model exported after the hourglass stage alone (``mf2 train --stage hg``) holds only the
    hourglass, which is a complete deblurrer too (the paper's HG row)."""

    def __init__(
        self, checkpoint: str | Path, device: str = "auto", stage: str | None = None, ensemble: str = ENSEMBLE.default
    ) -> None:
        """``stage``: ``hg`` (the hourglass alone), ``cgan``, or None (the last stage the model
        holds). ``ensemble``: ``flip`` averages the restorations of each face and of its mirror
        image (a face mirrored is still a face, and the network's errors on the two differ:
        on unseen people it halved the change to still faces and added ~0.01-0.03 dB on moving
        ones, issue 30's note, session 18); ``none``: one pass."""
        if stage not in (None, "hg", "cgan"):
            raise UsageError(f"stage {stage!r}: expected hg or cgan")
        if ensemble not in ENSEMBLES:
            raise UsageError(f"--ensemble {ensemble!r}: expected {' or '.join(ENSEMBLES)}")
        self.ensemble = ensemble
        p = Path(checkpoint)
        if not p.is_file():
            raise UsageError(f"--checkpoint {checkpoint}: no such file")
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UsageError(f"--checkpoint {checkpoint}: not a loadable checkpoint ({type(e).__name__})") from None
        if not isinstance(state, dict) or state.get("format") not in ("mf2-deblur-1", "mf2-train-1"):
            raise UsageError(f"--checkpoint {checkpoint}: not an mf2 model (train writes RUN/model.pt)")
        self.stages = model_stages(state)
        self.stage = stage or self.stages[-1]
        if self.stage not in self.stages:
            raise UsageError(
                f"--checkpoint {checkpoint}: holds only the {' and '.join(self.stages)} stage(s), "
                f"not {self.stage} (train the cGAN: mf2 train ... --stage cgan)"
            )
        self.cfg = config_from_dict(state["config"], str(p))
        self.device = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
        c = self.cfg
        self.hg = build_restorer(c)
        self.enc = build("cgan_encoder", c.cgan, in_ch=c.cgan.bl_channels)
        self.dec = build("cgan_decoder", c.cgan)
        self.gate = build("blur_gate", c.gate) if c.gate.features else None
        self._load(state, str(checkpoint))
        for m in (self.hg, self.enc, self.dec, self.gate):
            if m is not None:
                m.to(self.device).eval()
        self.size = c.image_size

    def _load(self, state: dict, where: str) -> None:
        """The weights of a model (``mf2-deblur-1``) or of a training checkpoint."""
        if state["format"] == "mf2-deblur-1":
            weights = {"hg": state["hg"], "gate": state.get("gate")}
            if "cgan" in self.stages:
                weights.update(enc=state["enc_bl"], dec=state["decoder"])
        else:  # a training checkpoint
            weights = {"hg": state["models"]["hg"], "gate": state["models"].get("gate")}
            if "cgan" in self.stages:
                gen = state["models"]["gen"]
                weights["enc"] = {k[len("enc_bl.") :]: v for k, v in gen.items() if k.startswith("enc_bl.")}
                weights["dec"] = {k[len("decoder.") :]: v for k, v in gen.items() if k.startswith("decoder.")}
        for name, w in weights.items():
            net = getattr(self, name)
            if net is not None and w is None:
                raise UsageError(f"--checkpoint {where}: its config has a blur gate but the file holds no gate weights")
            if net is not None:
                net.load_state_dict(w)

    def describe(self) -> str:
        """What a user is told before restoring: which stages the model holds and which runs."""
        first = RESTORER_NAMES[self.cfg.restorer]
        holds = " + ".join({"hg": first, "cgan": "cGAN"}[s] for s in self.stages)
        runs = f"the {first} alone" if self.stage == "hg" else f"{first} then cGAN"
        gate = ", each correction scaled by the blur gate" if self.gate is not None else ""
        flip = ", averaged with the mirror image's restoration" if self.ensemble == "flip" else ""
        seen = ", seeing the neighbouring frames" if self.neighbours else ""
        return f"model: {holds} ({self.cfg.preset}, {self.size} px); restoring with {runs}{seen}{gate}{flip}"

    @property
    def neighbours(self) -> bool:
        """Whether the model also sees the exposures before and after each crop (``__call__``'s ``context``)."""
        return self.cfg.hourglass.neighbours and self.cfg.restorer == "hourglass"

    @torch.no_grad()
    def __call__(
        self, crops: list[np.ndarray], context: list[tuple[np.ndarray, np.ndarray] | None] | None = None
    ) -> list[np.ndarray]:
        """uint8 RGB squares of any size -> restored squares of the same sizes. ``context``: per
        crop, the same face in the exposures just before and after it (a video's neighbouring
        frames, a dataset's prev/next), or None where there are none: the crop stands in for
        them, as in training. Ignored by a model that does not see neighbours."""
        if not crops:
            return []
        x = torch.stack([to_tensor(_resize(c, self.size)) for c in crops]).to(self.device)
        ctx = self._context(crops, context) if self.neighbours and context is not None else None
        y = self._restore(x, ctx)
        if self.ensemble == "flip":  # averaged before rounding to code values
            y = 0.5 * (y + self._restore(x.flip(-1), None if ctx is None else ctx.flip(-1)).flip(-1))
        return [_resize(to_uint8(y[i]), c.shape[0], c.shape[1]) for i, c in enumerate(crops)]

    def _context(self, crops: list[np.ndarray], context: list[tuple[np.ndarray, np.ndarray] | None]) -> torch.Tensor:
        """The neighbours as one (B, 6, size, size) batch; a crop without them stands in for both."""
        out = []
        for c, pair in zip(crops, context):
            prev, nxt = pair if pair is not None else (c, c)
            out.append(torch.cat([to_tensor(_resize(img, self.size)) for img in (prev, nxt)]))
        return torch.stack(out).to(self.device)

    def _restore(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """One pass of the networks over a batch in [-1, 1] (``context``: the neighbours)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            hg = self.hg(x, context)[-1].float()
            if self.stage == "hg":
                y = hg
            else:
                cond = self.cfg.cgan.condition_on_hg
                code, feats = self.enc(torch.cat([x, hg], dim=1) if cond else x)
                y = self.dec(code, feats, bl_base(self.cfg.cgan.residual, x, hg if cond else None)).float()
                y = dead_zone(x, y, self.cfg.cgan.dead_zone, False)
            if self.gate is not None:  # a still face keeps (nearly) all of its pixels
                y = gated(x, y, self.gate(x), self.cfg.gate.power)
        return y.float()


def model_stages(state: dict) -> tuple[str, ...]:
    """The stages a model or training checkpoint holds: ("hg",) or ("hg", "cgan")."""
    if state.get("format") == "mf2-deblur-1":
        return tuple(state.get("stages") or ("hg", "cgan"))  # models before mf2 0.x's hg export held both
    return ("hg", "cgan") if state.get("stage") == "cgan" else ("hg",)


def _resize(img: np.ndarray, h: int, w: int | None = None) -> np.ndarray:
    w = w or h
    if img.shape[0] == h and img.shape[1] == w:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_CUBIC
    return cv2.resize(img, (w, h), interpolation=interp)


def feather_mask(size: int, border: float = 0.12) -> np.ndarray:
    """(size, size, 1) float32: 1 inside, a smooth ramp to 0 over ``border`` of the side."""
    ramp = max(1, int(round(size * border)))
    t = np.ones(size, np.float32)
    edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp, dtype=np.float32))
    t[:ramp], t[-ramp:] = edge, edge[::-1]
    return (t[:, None] * t[None, :])[..., None]


def paste(frame: np.ndarray, crop: Crop, restored: np.ndarray) -> np.ndarray:
    """Blend a restored crop (crop.size square) into the frame where it came from."""
    out = frame.copy()
    h, w = frame.shape[:2]
    x0, y0, s = crop.x0, crop.y0, crop.size
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x0 + s), min(h, y0 + s)
    if fx1 <= fx0 or fy1 <= fy0:
        return out
    m = feather_mask(s)[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    r = restored[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0].astype(np.float32)
    region = out[fy0:fy1, fx0:fx1].astype(np.float32)
    out[fy0:fy1, fx0:fx1] = np.clip(np.rint(m * r + (1 - m) * region), 0, 255).astype(np.uint8)
    return out


@dataclass
class DeblurResult:
    images: int = 0
    videos: int = 0
    frames: int = 0
    faces: int = 0
    no_face: int = 0
    skipped: list = field(default_factory=list)  # "path: why" of inputs that could not be read
    traces: dict = field(default_factory=dict)  # output video -> identity-cosine summary (--reference)
    model: str = ""  # which stages the model holds and which ran (Deblurrer.describe)


def _read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: not a readable image", "bad-image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _write_image(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(
        path.suffix if path.suffix.lower() in IMAGE_EXT else ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    )
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    write_bytes_atomic(path, buf.tobytes())


class _Faces:
    """The dlib backend, loaded once; frames of a video go through the tracker."""

    def __init__(self) -> None:
        from mf2.faces.dlib_backend import DlibBackend

        self.backend = DlibBackend()

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        dets = self.backend.detect(rgb)
        if not dets:
            return None
        det = max(dets, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        return self.backend.fit([rgb], [det.box])[0][0]


def _is_crop(rgb: np.ndarray, faces: _Faces, mode: str) -> tuple[bool, np.ndarray | None]:
    """Decide crop vs whole image. An mf2 crop is square with the landmarks' extent centred
    and 1 / (1 + 2 x margin) of the side (0.67 at the default margin); talking-head frames
    measured on the shared clips have 0.46-0.60 and sit 0.07-0.14 of the side off centre."""
    if mode == "crop":
        return True, None
    lm = faces.landmarks(rgb)
    if mode == "frame":
        return False, lm
    h, w = rgb.shape[:2]
    if lm is None:
        return abs(h - w) <= 2, None
    side = float(min(h, w))
    extent = float(max(lm.max(axis=0) - lm.min(axis=0)))
    off = np.abs((lm.max(axis=0) + lm.min(axis=0)) / 2 - [w / 2, h / 2]) / side
    return abs(h - w) <= 2 and extent >= 0.6 * side and bool((off <= 0.05).all()), lm


def deblur_image(
    model: Deblurrer, faces: _Faces, src: Path, dst: Path, mode: str, margin: float, res: DeblurResult
) -> None:
    rgb = _read_image(src)
    crop_mode, lm = _is_crop(rgb, faces, mode)
    if crop_mode:
        out = model([rgb])[0]
        res.faces += 1
    elif lm is None:
        out = rgb
        res.no_face += 1
    else:
        c = face_crop(lm, margin)
        out = paste(rgb, c, model([c.take(rgb)])[0])
        res.faces += 1
    _write_image(dst, out)
    res.images += 1


def deblur_video(
    model: Deblurrer,
    src: Path,
    dst: Path,
    margin: float,
    res: DeblurResult,
    batch: int = 16,
    reference: int | None = None,
) -> None:
    """Restore every frame's face, keeping each frame's timestamp and the audio. ``reference``:
    a sharp frame whose identity each frame is compared with (mf2.restore.trace)."""
    from mf2.faces.select import LandmarkConfig
    from mf2.faces.stage import compute_landmarks
    from mf2.schema import landmarks_to_numpy
    from mf2.video import iter_frames, probe
    from mf2.video.probe import frame_timestamps
    from mf2.video.writer import TimedWriter

    info = probe(src)
    pts, time_base = frame_timestamps(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    video_tmp = dst.with_name(f".{dst.name}.video.tmp.mp4")
    tmp = dst.with_name(f".{dst.name}.tmp{dst.suffix}")
    # Landmarks stream in step with the frames (the table keeps only small arrays).
    lm_table = compute_landmarks(src.stem, info, LandmarkConfig(backend="dlib"), None)
    lms, valid = landmarks_to_numpy(lm_table["landmarks"])
    trace = None if reference is None else IdentityTrace.from_video(info, lms, valid, reference)
    writer = TimedWriter(video_tmp, info.width, info.height, time_base, info.fps)
    shots = np.asarray(lm_table["shot"].to_pylist()[: len(valid)], dtype=object)
    try:
        pending: list[_Frame] = []
        last_pts = [pts[0] - 1 if pts else -1]
        flush = functools.partial(_flush, model, pending, trace, lms, writer, pts, last_pts)
        with contextlib.closing(iter_frames(info)) as frames:
            for f in _faces_in(frames, lms, valid, shots, margin, model.neighbours, res):
                pending.append(f)
                if len(pending) >= batch:
                    flush()
            flush()
        writer.close()
        _with_audio(video_tmp, src, tmp, dst)
        shutil.move(tmp, dst)
        if trace is not None:
            trace.write(dst)
            res.traces[str(dst)] = trace.summary()
    finally:
        with contextlib.suppress(Exception):
            writer.container.close()
        video_tmp.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    res.videos += 1


@dataclass
class _Frame:
    """A decoded frame on its way to the model: its face crop (None: no face) and, for a model
    that sees neighbours, the face in the frames before and after it."""

    frame: np.ndarray
    crop: Crop | None
    index: int
    context: tuple[np.ndarray, np.ndarray] | None = None


def _faces_in(
    frames: Iterable[np.ndarray],
    lms: np.ndarray,
    valid: np.ndarray,
    shots: np.ndarray,
    margin: float,
    neighbours: bool,
    res: DeblurResult,
) -> Iterator[_Frame]:
    """The decoded frames, in order, each with its face crop and (``neighbours``) the face in
    the frames beside it: a frame leaves once the next one is decoded, so three frames are
    held at most."""
    recent: collections.deque[_Frame] = collections.deque(maxlen=3)
    for i, frame in enumerate(frames):
        c = face_crop(lms[i], margin) if i < len(valid) and valid[i] else None
        res.faces += c is not None
        res.no_face += c is None
        res.frames += 1
        recent.append(_Frame(frame, c, i))
        if not neighbours:
            yield recent[-1]
        elif len(recent) > 1:
            yield _beside(recent[-3] if len(recent) == 3 else None, recent[-2], recent[-1], valid, shots)
    if neighbours and recent:  # the last frame: no later one
        yield _beside(recent[-2] if len(recent) > 1 else None, recent[-1], None, valid, shots)


def _beside(before: _Frame | None, cur: _Frame, after: _Frame | None, valid: np.ndarray, shots: np.ndarray) -> _Frame:
    """``cur`` with its context: the frames before and after it (one exposure apart), cut with
    its crop; a neighbour in another shot or without the tracked face, or none at all (the
    video's ends), is replaced by the frame itself, as a pair without that neighbour is in
    training."""
    if cur.crop is None:
        return cur
    crop, own = cur.crop, cur.crop.take(cur.frame)

    def near(f: _Frame | None) -> np.ndarray:
        ok = f is not None and f.index < len(valid) and valid[f.index] and shots[f.index] == shots[cur.index]
        return crop.take(f.frame) if ok else own  # type: ignore[union-attr]

    cur.context = (near(before), near(after))
    return cur


def _flush(
    model: Deblurrer,
    pending: list[_Frame],
    trace: IdentityTrace | None,
    lms: np.ndarray,
    writer: Any,
    pts: list[int],
    last_pts: list[int],
) -> None:
    """Restore the pending frames' faces in one batch, paste them back and write the frames
    with their timestamps; ``pending`` is emptied."""
    faces = [p for p in pending if p.crop is not None]
    restored = iter(model([p.crop.take(p.frame) for p in faces], [p.context for p in faces]))  # type: ignore[union-attr]
    for frame, c, i in ((p.frame, p.crop, p.index) for p in pending):
        out = paste(frame, c, next(restored)) if c is not None else frame
        if trace is not None and c is not None:
            trace.add(i, frame, out, lms[i])
        # a decoder may emit more frames than packets (rare): continue the last step
        t = pts[i] if i < len(pts) else last_pts[0] + max(1, pts[-1] - pts[-2] if len(pts) > 1 else 1)
        writer.write(out, t)
        last_pts[0] = t
    pending.clear()


def _with_audio(video: Path, src: Path, tmp: Path, dst: Path) -> None:
    """The restored frames with the source's audio stream-copied (when it has one)."""
    args = [
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(video.absolute()),
        "-i",
        str(src.absolute()),
        "-map",
        "0:v",
        "-map",
        "1:a?",
        "-c",
        "copy",
        str(tmp.absolute()),
    ]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise InputError(
            f"{dst}: ffmpeg could not write the video ({r.stderr.strip().splitlines()[-1:]})", "encode-error"
        )


def deblur(
    inputs: list[str],
    checkpoint: str,
    out: Path,
    mode: str = "auto",
    margin: float = default("margin"),
    device: str = "auto",
    reference: int | None = None,
    ensemble: str = ENSEMBLE.default,
) -> DeblurResult:
    if mode not in ("auto", "crop", "frame"):
        raise UsageError(f"--mode {mode!r}: expected auto, crop or frame")
    model = Deblurrer(checkpoint, device, ensemble=ensemble)
    files: list[tuple[Path, Path]] = []
    for spec in inputs:
        p = Path(spec)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_EXT | VIDEO_EXT:
                    files.append((f, out / p.name / f.relative_to(p)))
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_EXT | VIDEO_EXT:
                raise UsageError(f"{spec}: not an image or video ({', '.join(sorted(IMAGE_EXT | VIDEO_EXT))})")
            files.append((p, out / p.name))
        else:
            raise UsageError(f"{spec}: no such file or folder")
    if not files:
        raise UsageError(f"{', '.join(inputs)}: no images or videos found")
    res = DeblurResult(model=model.describe())
    faces = _Faces()
    for src, dst in files:
        try:
            if src.suffix.lower() in VIDEO_EXT:
                deblur_video(model, src, dst.with_suffix(".mp4"), margin, res, reference=reference)
            else:
                deblur_image(model, faces, src, dst, mode, margin, res)
        except InputError as e:  # one bad file never costs the others
            res.skipped.append(f"{src}: {e}" if str(src) not in str(e) else str(e))
    return res
