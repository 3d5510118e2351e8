"""Where training runs: the device, the ranks of a distributed run, and the CPU plan (torch's
threads and the loader's workers from the cores this process may use, less those other
processes keep busy: issue 30 measured 4 images/s with torch's default threads beside a busy
process against 34 with one thread)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch

from mf2.errors import UsageError
from mf2.models.config import TrainConfig


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: one process per GPU, gradients all-reduced."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    d = Dist(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))
    if torch.cuda.is_available():
        torch.cuda.set_device(d.local_rank)
    return d


# oneDNN's CPU backward of a 1x1 convolution with stride > 1 on channels-last tensors writes
# past its workspace when the input has fewer channels than its block of them
# (uxlfoundation/oneDNN#6035, open): with torch 2.13 on a 2-core AMD EPYC (AVX2, a block of 8),
# 2-6 input channels killed the process (SIGSEGV) or hung it, 7-32 did not. The block is 16
# where the CPU has AVX-512.
def onednn_channel_block() -> int:
    """oneDNN's block of input channels on this CPU: 16 with AVX-512, else 8."""
    return 16 if "AVX512" in torch.backends.cpu.get_cpu_capability() else 8


def channels_last_hazard(models: dict[str, torch.nn.Module], device: torch.device) -> str | None:
    """The first layer whose training would crash a CPU run in channels-last memory (None:
    none). Not a user error: a configuration's own layers may hold one (the presets' do not
    where the block is 8; tiny's 8-channel projection is one where it is 16), and the trainer
    then trains in the plain memory format instead, a little slower."""
    if device.type != "cpu":
        return None
    block = onednn_channel_block()
    for name, model in models.items():
        for path, m in model.named_modules():
            if (
                isinstance(m, torch.nn.Conv2d)
                and m.kernel_size == (1, 1)
                and max(m.stride) > 1
                and m.in_channels // m.groups < block
            ):
                return f"{name}.{path} (1x1 convolution, stride {max(m.stride)}, {m.in_channels} input channels)"
    return None


def pick_device(dist: Dist, want: str = "auto") -> torch.device:
    if want == "cpu" or (want == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device visible")
    return torch.device("cuda", dist.local_rank)


@dataclass(frozen=True)
class CpuPlan:
    """How this process uses the CPU: torch's intra-op threads and the loader's worker
    processes. Neither changes what is learned (augmentations are drawn per sample from
    (seed, epoch, index)); both decide the speed."""

    cores: int  # the cores this process may run on (its affinity)
    busy: float  # cores other processes kept busy at the start (busy_cores)
    threads: int
    loader_workers: int

    def line(self) -> str:
        return (
            f"{self.threads} torch thread(s), {self.loader_workers} loader worker(s) on {self.cores} core(s) "
            f"({self.busy:.1f} busy with other processes at the start)"
        )


def busy_cores(seconds: float = 0.3) -> float:
    """How many cores other processes keep busy now: the machine's busy share over a short
    sleep of this process (Linux /proc/stat), times the cores. The load average would lag a
    minute behind a job that just started or ended; elsewhere it is the fallback."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        return sum(vals[:8]) - idle, sum(vals[:8])

    try:
        b0, t0 = sample()
        time.sleep(seconds)
        b1, t1 = sample()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


def plan_cpu(cfg: TrainConfig, device: torch.device, threads: int | None = None) -> CpuPlan:
    """Threads for the cores that are free. torch starts one intra-op thread per core; when
    another process keeps a core busy, its threads wait on each other at every parallel
    region: on a 2-core machine beside one busy process, 2 threads trained at 4 images/s and
    1 thread at 34 (issue 30). So: the cores this process may use (affinity, as
    mf2.pipeline.threads does for Dask workers) less the cores other processes keep busy,
    at least one. On the CPU the loader's workers would take cores from the convolutions; they
    run only where cores are left over (and on a GPU, at most the cores less one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads {threads}: must be >= 1")
    busy = busy_cores()  # measured with --threads too: the line and train_threads.py report it
    n = threads or max(1, min(cores, int(cores - busy + 0.5)))
    spare = max(0, cores - n) if device.type == "cpu" else max(0, cores - 1)
    return CpuPlan(cores, round(busy, 2), n, min(cfg.num_workers, spare))
