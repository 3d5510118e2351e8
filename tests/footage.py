"""YouTube-like test footage built from the shared clips with ffmpeg, with its ground truth.

The shared clips are clean single-shot talking heads. Real input has hard cuts, fades,
dissolves, shots without a face, several people, small faces and faces that leave the
picture; each video here puts one or more of those into a 640x360, 25 fps H.264 file.

Every source frame is used once, in order (``setpts=N/25/TB`` retimes a 30 fps clip rather
than dropping frames), so canvas frame k of a segment shows source frame ``start + k`` and
the ground truth is exact: where each source clip is on the canvas, with what opacity.
Where a face is on the canvas comes from dlib run on every frame of the *original* clip
(detect + fit, no tracking), mapped through the placement: the reference the tracker is
judged against. Used by tests/test_tracks.py and bench/tracks.py.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

W, H, FPS = 640, 360, 25


@dataclass(frozen=True)
class Layer:
    clip: str  # file name in shared/data/videos
    start: int  # first source frame
    w: int  # size on the canvas
    h: int
    x: int  # top-left on the canvas at the segment's first frame
    y: int
    dx: int = 0  # pixels per frame (a face sliding out of the picture)
    crop: tuple[int, int, int, int] | None = None  # x, y, w, h in the source, before scaling


@dataclass(frozen=True)
class Segment:
    n: int
    layers: tuple[Layer, ...]
    background: Layer | None = None  # a full-canvas layer under the others (no face in it)
    fade_in: int = 0  # frames, from black
    fade_out: int = 0  # frames, to black
    dissolve_in: int = 0  # frames of cross-fade with the previous segment (overlapping it)


@dataclass
class Footage:
    name: str
    path: Path
    n_frames: int
    cuts: list[int]  # first frame of each new shot at a hard cut
    transitions: list[tuple[int, int]]  # [start, end) frames of fades through black and dissolves
    layers: list[list[dict]] = field(default_factory=list)  # per frame: {clip, key, alpha, sx, sy, x, y}

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "n_frames": self.n_frames,
            "cuts": self.cuts,
            "transitions": self.transitions,
            "layers": self.layers,
        }


NOFACE = Layer("ffpp_youtube_519.mp4", 0, W, H, 0, 0, crop=(0, 40, 320, 180))  # news map, no face


def specs() -> dict[str, list[Segment]]:
    a = Layer("lp_d19.mp4", 0, 360, 360, 140, 0)
    b = Layer("fomm_04.mp4", 0, 300, 300, 170, 30)
    c = Layer("retalking_face_4.mp4", 0, 340, 340, 250, 10)
    return {
        # three hard cuts: a face, another face, a shot with no face, a third face
        "cuts": [Segment(60, (a,)), Segment(50, (b,)), Segment(40, (), NOFACE), Segment(60, (c,))],
        # a fade through black, then a 12-frame dissolve between two faces in different places
        "fades": [Segment(60, (a,), fade_out=12), Segment(60, (b,), fade_in=12), Segment(60, (c,), dissolve_in=12)],
        # two people at once
        "sidebyside": [
            Segment(120, (Layer("fomm_04.mp4", 0, 300, 300, 10, 30), Layer("fomm_10.mp4", 0, 300, 300, 330, 30)))
        ],
        # a small face in a big frame, on moving real background
        "small": [Segment(120, (Layer("lp_d20.mp4", 0, 200, 200, 400, 40),), NOFACE)],
        # a face sliding out of the picture to the right
        "slide": [Segment(110, (Layer("lp_d3.mp4", 0, 360, 360, 140, 0, dx=6),))],
    }


def _chain(idx: int, layer: Layer, n: int) -> str:
    crop = f"crop={layer.crop[2]}:{layer.crop[3]}:{layer.crop[0]}:{layer.crop[1]}," if layer.crop else ""
    return (
        f"[{idx}:v]trim=start_frame={layer.start}:end_frame={layer.start + n},setpts=N/{FPS}/TB,"
        f"{crop}scale={layer.w}:{layer.h},setsar=1,format=yuv420p"
    )


def _render_segment(videos: Path, seg: Segment, dest: Path) -> None:
    layers = ([seg.background] if seg.background else []) + list(seg.layers)
    inputs: list[str] = []
    for layer in layers:
        inputs += ["-i", str(videos / layer.clip)]
    graph = [f"color=black:s={W}x{H}:r={FPS}:d={seg.n / FPS + 1},format=yuv420p[bg0]"]
    last = "bg0"
    for i, layer in enumerate(layers):
        graph.append(_chain(i, layer, seg.n) + f"[l{i}]")
        x = f"{layer.x}+{layer.dx}*n" if layer.dx else str(layer.x)
        graph.append(f"[{last}][l{i}]overlay=x='{x}':y={layer.y}:eof_action=pass[bg{i + 1}]")
        last = f"bg{i + 1}"
    fades = []
    if seg.fade_in:
        fades.append(f"fade=t=in:start_frame=0:nb_frames={seg.fade_in}")
    if seg.fade_out:
        fades.append(f"fade=t=out:start_frame={seg.n - seg.fade_out}:nb_frames={seg.fade_out}")
    graph.append(f"[{last}]" + ",".join(fades + ["null"]) + "[out]")
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-nostdin",
            "-loglevel",
            "error",
            *inputs,
            "-filter_complex",
            ";".join(graph),
            "-map",
            "[out]",
            "-frames:v",
            str(seg.n),
            "-c:v",
            "libx264",
            "-qp",
            "0",
            "-preset",
            "ultrafast",
            "-r",
            str(FPS),
            str(dest),
        ],
        check=True,
    )


def _join(parts: list[Path], segs: list[Segment], dest: Path) -> None:
    inputs: list[str] = []
    for p in parts:
        inputs += ["-i", str(p)]
    # one time base for every input: concat and xfade refuse mixed ones
    graph = [f"[{i}:v]settb=1/{FPS},setpts=N/{FPS}/TB[p{i}]" for i in range(len(parts))]
    last, length = "p0", segs[0].n
    for i in range(1, len(parts)):
        d = segs[i].dissolve_in
        if d:
            graph.append(f"[{last}][p{i}]xfade=transition=fade:duration={d / FPS}:offset={(length - d) / FPS}[j{i}]")
        else:
            graph.append(f"[{last}][p{i}]concat=n=2:v=1:a=0,settb=1/{FPS},setpts=N/{FPS}/TB[j{i}]")
        last, length = f"j{i}", length + segs[i].n - d
    graph.append(f"[{last}]format=yuv420p[out]")
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-nostdin",
            "-loglevel",
            "error",
            *inputs,
            "-filter_complex",
            ";".join(graph),
            "-map",
            "[out]",
            "-frames:v",
            str(length),
            "-c:v",
            "libx264",
            "-crf",
            "18",
            "-preset",
            "fast",
            "-r",
            str(FPS),
            "-pix_fmt",
            "yuv420p",
            str(dest),
        ],
        check=True,
    )


def _ground_truth(name: str, segs: list[Segment], path: Path, clip_size) -> Footage:
    frames: list[list[dict]] = []
    cuts: list[int] = []
    transitions: list[tuple[int, int]] = []
    t0 = 0
    for si, seg in enumerate(segs):
        t0 -= seg.dissolve_in
        if si:
            if seg.dissolve_in:
                transitions.append((t0, t0 + seg.dissolve_in))
            elif segs[si - 1].fade_out or seg.fade_in:
                transitions.append((t0 - segs[si - 1].fade_out, t0 + seg.fade_in))
            else:
                cuts.append(t0)
        for k in range(seg.n):
            t = t0 + k
            while len(frames) <= t:
                frames.append([])
            alpha = 1.0
            if seg.fade_in and k < seg.fade_in:
                alpha = k / seg.fade_in
            if seg.fade_out and k >= seg.n - seg.fade_out:
                alpha = (seg.n - k - 1) / seg.fade_out
            if seg.dissolve_in and k < seg.dissolve_in:
                alpha = k / seg.dissolve_in
            if si + 1 < len(segs) and segs[si + 1].dissolve_in and k >= seg.n - segs[si + 1].dissolve_in:
                alpha = (seg.n - k) / segs[si + 1].dissolve_in
            for li, layer in enumerate(seg.layers):
                sw, sh = clip_size(layer.clip)
                frames[t].append(
                    {
                        "clip": layer.clip,
                        "key": f"s{si}l{li}",
                        "src": layer.start + k,
                        "alpha": alpha,
                        "sx": layer.w / sw,
                        "sy": layer.h / sh,
                        "x": layer.x + layer.dx * k,
                        "y": layer.y,
                    }
                )
        t0 += seg.n
    return Footage(name, path, len(frames), cuts, transitions, frames)


def build(videos: Path, folder: Path, names: list[str] | None = None) -> dict[str, Footage]:
    """Build (or reuse) the named test videos in ``folder``; returns their ground truth."""
    from mf2.video import probe

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    sizes: dict[str, tuple[int, int]] = {}

    def clip_size(clip: str) -> tuple[int, int]:
        if clip not in sizes:
            info = probe(videos / clip)
            sizes[clip] = (info.width, info.height)
        return sizes[clip]

    for name, segs in specs().items():
        if names and name not in names:
            continue
        dest = folder / f"{name}.mp4"
        if not dest.is_file():
            parts = []
            for i, seg in enumerate(segs):
                p = folder / f".{name}-seg{i}.mkv"
                _render_segment(videos, seg, p)
                parts.append(p)
            tmp = folder / f".{name}.tmp.mp4"
            _join(parts, segs, tmp)
            tmp.rename(dest)
            for p in parts:
                p.unlink()
        out[name] = _ground_truth(name, segs, dest, clip_size)
    return out


def reference_landmarks(videos: Path, clip: str, cache: Path) -> np.ndarray:
    """(n_frames, 68, 2) dlib landmarks of the original clip, detected on every frame (NaN
    where dlib finds no face); the largest face when there are several."""
    dest = cache / f"ref-{clip}.npy"
    if dest.is_file():
        return np.load(dest)
    from mf2.faces.dlib_backend import DlibBackend
    from mf2.video import iter_frames

    backend = DlibBackend()
    out = []
    for frame in iter_frames(videos / clip):
        dets = backend.detect(frame)
        if not dets:
            out.append(np.full((68, 2), np.nan, np.float32))
            continue
        d = max(dets, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        out.append(backend.fit([frame], [d.box])[0][0])
    arr = np.stack(out)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(dest, arr)
    return arr


@dataclass
class TruthFace:
    key: str  # which layer (segment, layer): one face of the ground truth
    landmarks: np.ndarray  # on the canvas
    alpha: float
    inside: float  # share of its landmarks inside the canvas


def faces_at(footage: Footage, t: int, refs: dict[str, np.ndarray]) -> list[TruthFace]:
    out = []
    for L in footage.layers[t]:
        ref = refs[L["clip"]]
        if L["src"] >= len(ref) or not np.isfinite(ref[L["src"]]).all():
            continue
        lm = ref[L["src"]] * np.array([L["sx"], L["sy"]], np.float32) + np.array([L["x"], L["y"]], np.float32)
        inside = float(((lm[:, 0] >= 0) & (lm[:, 0] <= W - 1) & (lm[:, 1] >= 0) & (lm[:, 1] <= H - 1)).mean())
        out.append(TruthFace(L["key"], lm, L["alpha"], inside))
    return out


def visible(f: TruthFace) -> bool:
    """A face a user would want tracked: (nearly) whole on the canvas and not faded out. (The
    tracker allows 5 % of its points outside; 10 % here leaves room for the reference's own
    landmark noise at the edge.)"""
    return f.inside >= 0.9 and f.alpha >= 0.5


def gone(f: TruthFace) -> bool:
    """A face a tracker must not report: mostly off the canvas or nearly faded away."""
    return f.inside < 0.6 or f.alpha < 0.15


def save_truth(footage: dict[str, Footage], dest: Path) -> None:
    dest.write_text(json.dumps({k: v.to_json() for k, v in footage.items()}))


__all__ = [
    "Footage",
    "Layer",
    "Segment",
    "TruthFace",
    "asdict",
    "build",
    "faces_at",
    "gone",
    "reference_landmarks",
    "specs",
    "visible",
]
