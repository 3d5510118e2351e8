"""How many threads each worker process may use, so that N workers on C cores do not run
N x C threads.

OpenCV (resize, colour conversion, DIS flow, PNG) and ffmpeg's decoder each start one
thread per core by default. With one worker per core that oversubscribes the machine:
every worker's pool competes with the others', and ffmpeg's frame threads cost more CPU
per frame than one thread does (on the bench clips, 4.8 s of ffmpeg CPU with its default
threads against 3.2 s with one). Dask's nanny already sets OMP/MKL/OpenBLAS to one thread;
this covers what it does not: OpenCV's pool, ffmpeg's decoder and torch's intra-op pool.

Each worker gets ``cores // workers on its host`` (at least one), counted when the worker
registers with the limits (mf2.pipeline.runner does that for every cluster it uses).
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass

from distributed.diagnostics.plugin import WorkerPlugin

from mf2.pipeline.malloc import current_malloc, tune_malloc
from mf2.video.reader import set_decode_threads


def host_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadBudget:
    compute: int  # OpenCV's pool and torch's intra-op threads
    decode: int  # ffmpeg -threads

    @classmethod
    def share(cls, cores: int, workers: int) -> "ThreadBudget":
        n = max(1, cores // max(1, workers))
        return cls(n, n)

    def apply(self) -> None:
        """In this process, from now on. Idempotent."""
        import cv2

        cv2.setNumThreads(self.compute)
        set_decode_threads(self.decode)
        if "torch" in sys.modules:  # never import torch for this: it costs a second a process
            sys.modules["torch"].set_num_threads(self.compute)


def _host(address: str) -> str:
    host = address.split("://")[-1].rsplit(":", 1)[0]
    return "127.0.0.1" if host in ("localhost", socket.gethostname()) else host


class ThreadLimits(WorkerPlugin):
    """A Dask worker plugin: on setup, the worker counts the workers registered on its own host
    and takes its share of the host's cores, and sets glibc's allocator thresholds
    (mf2.pipeline.malloc)."""

    name = "mf2-thread-limits"

    async def setup(self, worker) -> None:  # type: ignore[override]
        info = await worker.scheduler.identity()
        me = _host(worker.address)
        peers = sum(1 for addr in info.get("workers", {}) if _host(addr) == me)
        ThreadBudget.share(host_cores(), peers).apply()
        tune_malloc()  # mf2.pipeline.malloc says why


def current_limits() -> dict:
    """What this process runs with (for tests and the bench)."""
    import cv2

    from mf2.video.reader import decode_threads

    torch = sys.modules.get("torch")
    return {
        "opencv": cv2.getNumThreads(),
        "decode": decode_threads(),
        "torch": torch.get_num_threads() if torch is not None else None,
        "malloc": current_malloc(),
    }
