"""The window planners as what they are: pure functions of per-frame arrays.

No video, no model: a synthetic 68-point face moved by a known flow over textured
thumbnails. The end-to-end tests (test_pravg, test_vla) check the same rules on real
footage; these run in milliseconds and say exactly which rule fired.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mf2.blur.vla import Thumbs, VlaConfig, plan_vla
from mf2.blur.windows import plan_pravg
from mf2.flow import FlowArrays


def face(cx: float = 64.0, cy: float = 64.0, size: float = 60.0) -> np.ndarray:
    """68 iBUG-ordered points in plausible places (each part's box matters to VLA)."""
    t = np.linspace(0, np.pi, 17)
    jaw = np.stack([0.5 - 0.5 * np.cos(t), 0.45 + 0.55 * np.sin(t)], 1)
    brows = np.stack([np.r_[np.linspace(0.1, 0.4, 5), np.linspace(0.6, 0.9, 5)], np.full(10, 0.25)], 1)
    nose = np.stack(
        [np.r_[np.full(4, 0.5), np.linspace(0.4, 0.6, 5)], np.r_[np.linspace(0.35, 0.6, 4), np.full(5, 0.65)]], 1
    )
    a = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    eye = np.stack([0.08 * np.cos(a), 0.04 * np.sin(a)], 1)
    eyes = np.r_[eye + [0.3, 0.38], eye + [0.7, 0.38]]
    b = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    mouth = np.stack([0.5 + 0.18 * np.cos(b), 0.8 + 0.06 * np.sin(b)], 1)
    pts = np.r_[jaw, brows, nose, eyes, mouth]
    assert pts.shape == (68, 2)
    return ((pts - 0.5) * size + [cx, cy]).astype(np.float32)


def clip(n: int, speed: float = 0.0, side: int = 128) -> tuple[np.ndarray, Thumbs, FlowArrays]:
    """A face moving right by ``speed`` px per frame over a texture that moves with it."""
    rng = np.random.default_rng(0)
    tex = rng.integers(0, 255, (side, side * 4), dtype=np.uint8)
    tex = cv2.GaussianBlur(tex, (0, 0), 3)
    tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX)  # smooth, full-contrast texture
    xs = np.arange(n) * speed
    off = 3 * side  # the picture's left edge moves left as the content moves right
    assert xs[-1] <= off
    frames = np.stack([tex[:, off - int(round(x)) : off - int(round(x)) + side] for x in xs])
    lms = np.stack([face(64 + x) for x in xs])
    d = np.zeros((n, 2))
    d[1:, 0] = speed
    flow = FlowArrays(np.ones(n, bool), d, np.zeros(n), np.zeros(n), np.zeros(n))
    flow.valid[0] = False  # no flow into the first frame
    return lms, Thumbs(frames, 1.0), flow


# -- PrAvg -------------------------------------------------------------------------------


def test_pravg_takes_every_start_and_never_spans_a_run_change():
    n, L = 40, 7
    lms = np.stack([face()] * n)
    run = np.r_[np.zeros(20, int), np.ones(20, int)]
    wins, st = plan_pravg(lms, np.ones(n, bool), np.zeros(n, bool), L, run=run)
    assert [w.start for w in wins] == list(range(0, 14)) + list(range(20, 34))
    assert all(len(set(run[list(w.frames)])) == 1 for w in wins)
    assert all(w.center == w.frames[L // 2] for w in wins)
    assert st.skipped == {"shot-cut": 6} and st.windows == 28


def test_pravg_counts_exposures_not_repeated_frames():
    n = 20
    dup = np.zeros(n, bool)
    dup[[5, 6]] = True
    wins, _ = plan_pravg(np.stack([face()] * n), np.ones(n, bool), dup, 7)
    assert wins[0].frames == (0, 1, 2, 3, 4, 7, 8) and wins[0].center == 3 and wins[0].n_duplicates_skipped == 2
    assert not any(set(w.frames) & {5, 6} for w in wins)
    wins_all, _ = plan_pravg(np.stack([face()] * n), np.ones(n, bool), dup, 7, skip_duplicates=False)
    assert len(wins_all) == n - 6


def test_pravg_skips_unusable_frames_by_their_reason_and_oversized_crops():
    n = 30
    usable = np.ones(n, bool)
    usable[10] = False
    reason = np.array(["ok"] * n, dtype=object)
    reason[10] = "outside"
    wins, st = plan_pravg(np.stack([face()] * n), usable, np.zeros(n, bool), 5, reason=reason)
    assert st.skipped == {"outside": 5} and not any(10 in w.frames for w in wins)
    _, st = plan_pravg(np.stack([face()] * n), np.ones(n, bool), np.zeros(n, bool), 5, frame_size=(20, 20))
    assert st.windows == 0 and st.skipped == {"crop-too-large": n - 4}


@pytest.mark.parametrize("L", [2, 1, 8])
def test_pravg_refuses_even_or_tiny_L(L):
    with pytest.raises(ValueError):
        plan_pravg(np.stack([face()] * 10), np.ones(10, bool), np.zeros(10, bool), L)


# -- VLA ---------------------------------------------------------------------------------


def vla(lms, thumbs, flow, run=None, **cfg):
    n = len(lms)
    return plan_vla(lms, np.ones(n, bool), np.zeros(n, bool), flow, thumbs, VlaConfig(**cfg), run=run)


def test_vla_still_face_runs_to_max_L():
    lms, th, fl = clip(50)
    wins, st = vla(lms, th, fl, max_L=21)
    assert [len(w.window.frames) for w in wins] == [21, 21, 7]  # the last 8 frames, trimmed to odd
    assert st.stop_reasons == {"max-L": 2, "end-of-clip": 2} and st.too_short == 1  # frame 49 alone


def test_vla_stops_at_a_run_change():
    lms, th, fl = clip(30)
    run = np.r_[np.zeros(9, int), np.ones(21, int)]
    wins, st = vla(lms, th, fl, run=run)
    first = wins[0]
    assert first.stop.reason == "shot-cut" and first.window.frames == tuple(range(0, 9)[: 9 - (9 % 2 == 0)])
    assert all(len(set(run[list(w.window.frames)])) == 1 for w in wins)


def test_vla_stops_where_the_flow_fails():
    lms, th, fl = clip(30)
    fl.valid[12] = False
    wins, _ = vla(lms, th, fl)
    assert wins[0].stop.reason == "flow-failure" and max(wins[0].window.frames) < 12


def test_vla_length_falls_as_the_face_moves_faster():
    """The overlap rule bounds the displacement between first and last frame, so L is
    about inversely proportional to the speed (here the parts' padded boxes allow ~6 px)."""
    lengths, travelled = [], []
    for speed in (0.25, 0.5, 1.0):
        lms, th, fl = clip(60, speed)
        wins, _ = vla(lms, th, fl, max_L=41, min_L=3, overlap_parts="all")
        full = [w for w in wins if w.stop.reason == "overlap"]
        assert full, speed
        lengths.append(float(np.median([len(w.window.frames) for w in full])))
        travelled.append(float(np.median([w.displacement_px for w in full])))
    assert lengths[0] > lengths[1] > lengths[2], lengths
    assert max(travelled) < 1.5 * min(travelled), travelled


def test_vla_reverse_pass_keeps_only_new_windows():
    lms, th, fl = clip(40)
    both, st = vla(lms, th, fl, direction="both", max_L=9)
    fwd, _ = vla(lms, th, fl, direction="forward", max_L=9)
    assert len(both) >= len(fwd)
    assert st.reverse_duplicates + (len(both) - len(fwd)) > 0
