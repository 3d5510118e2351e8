"""The landmark pass keeps each frame's face region on disk so the render pass need not
decode the video again (issue 35, mf2.video.framestore): the pairs must be the very bytes a
second decode gives, whatever the footage, and the render pass must decode when the kept
regions do not hold what it reads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import footage as ft
import numpy as np
import pyarrow.parquet as pq
import pytest

import mf2.modes.render as render_mod
from mf2.api import simulate
from mf2.video.framestore import FrameStore, FrameStoreWriter


def _run(clip: Path, out: Path, monkeypatch, store: bool = True, **settings) -> tuple[int, str, int]:
    """(render decodes, a digest of the pairs' rows and PNG bytes, pairs)."""
    decodes = []
    real = render_mod.iter_frames

    def counted(info, *a, **k):
        decodes.append(info.path)
        return real(info, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(render_mod, "iter_frames", counted)
        if not store:
            m.setattr(render_mod.FrameStore, "open", classmethod(lambda cls, *a: None))
        vids = out.parent / f"{out.name}_in"
        vids.mkdir()
        (vids / clip.name).symlink_to(clip)
        simulate(out, vids, mode=settings.pop("mode", "pravg"), backend="dlib", workers=0, **settings)
    rows = pq.read_table(out / "pairs.parquet").drop_columns(["params"]).to_pylist()
    h = hashlib.sha256(repr(rows).encode())
    for r in rows:
        h.update((out / r["blurry_path"]).read_bytes() + (out / r["sharp_path"]).read_bytes())
    assert not (out / "frames").exists(), "a store outlived its video's jobs"
    return len(decodes), h.hexdigest(), len(rows)


@pytest.fixture(scope="module")
def hard_footage(videos, tmp_path_factory):
    return ft.build(videos, tmp_path_factory.mktemp("footage"), ["sidebyside", "slide"])


def test_pairs_from_kept_face_regions_are_the_bytes_a_second_decode_gives(videos, hard_footage, tmp_path, monkeypatch):
    """A talking head, two people side by side and a face sliding out of the picture (crops
    that leave the frame): PrAvg and VLA pairs made from the kept regions equal those of a
    second decode, and the render pass did not decode."""
    clips = [videos / "lp_d19.mp4", hard_footage["sidebyside"].path, hard_footage["slide"].path]
    for i, clip in enumerate(clips):
        for mode in ("pravg", "vla"):
            kept = _run(clip, tmp_path / f"k{i}{mode}", monkeypatch, mode=mode)
            decoded = _run(clip, tmp_path / f"d{i}{mode}", monkeypatch, store=False, mode=mode)
            assert kept[2] > 0 and kept[1:] == decoded[1:], (clip.name, mode)
            assert kept[0] == 0 and decoded[0] == 1, (clip.name, mode)


def test_the_render_pass_decodes_when_the_kept_regions_fall_short(videos, tmp_path, monkeypatch):
    """Regions kept too tight for the windows' crops (injected), a store over its size limit
    and an incomplete store (no index) all leave the render pass to decode: same pairs."""
    clip = videos / "lp_d19.mp4"
    full = _run(clip, tmp_path / "full", monkeypatch)
    monkeypatch.setattr("mf2.faces.stage.STORE_EXTENTS", 1.0)  # narrower than any crop
    tight = _run(clip, tmp_path / "tight", monkeypatch)
    assert tight[0] == 1 and tight[1:] == full[1:]

    frame = np.arange(40 * 30 * 3, dtype=np.uint8).reshape(30, 40, 3)
    path = tmp_path / "s" / "v.rgb"
    w = FrameStoreWriter(path, 40, 30, limit=frame[5:20, 5:25].nbytes * 2)
    for i in range(3):  # the third region passes the limit: the store is given up
        w.add(i, frame, (5, 5, 25, 20))
    w.close()
    assert not w.active and not list(path.parent.iterdir())

    w = FrameStoreWriter(path, 40, 30)
    w.add(0, frame, (5, 5, 25, 20))
    w.add(1, frame, None)
    w.close()
    store = FrameStore.open(path, 40, 30)
    assert store is not None and FrameStore.open(path, 41, 30) is None
    assert store.covers({0: (6, 6, 25, 20)}) and not store.covers({0: (4, 6, 25, 20)})
    assert not store.covers({1: (0, 0, 2, 2)}) and not store.covers({2: (0, 0, 2, 2)})
    first = next(store.frames())
    assert np.array_equal(first[5:20, 5:25], frame[5:20, 5:25])
    Path(str(path) + ".index.npy").unlink()  # the pixels without their index: incomplete
    assert FrameStore.open(path, 40, 30) is None


def test_a_store_that_cannot_be_written_is_given_up_never_a_failure(tmp_path):
    """The store is an optimisation: a folder it cannot make, a disk that fills while it
    writes, or too little free space leave no store and raise nothing (the render decodes)."""
    import errno

    frame = np.zeros((30, 40, 3), np.uint8)
    (tmp_path / "file").write_bytes(b"")
    w = FrameStoreWriter(tmp_path / "file" / "v.rgb", 40, 30)  # its folder cannot be made
    w.add(0, frame, (0, 0, 40, 30))
    w.close()
    assert not w.active

    class Full:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    path = tmp_path / "s" / "v.rgb"
    w = FrameStoreWriter(path, 40, 30)
    w.add(0, frame, (0, 0, 40, 30))
    w._f.close()
    w._f = Full()  # the disk fills (injected)
    w.add(1, frame, (0, 0, 40, 30))
    w.close()
    assert not w.active and FrameStore.open(path, 40, 30) is None and not list(path.parent.iterdir())

    w = FrameStoreWriter(path, 40, 30, limit=10 * frame.nbytes)
    assert w.limit <= 10 * frame.nbytes and w.limit <= __import__("shutil").disk_usage(tmp_path).free // 4
