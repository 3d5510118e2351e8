"""Where tasks run: in this process (``synchronous``), on a Dask LocalCluster, or on an
existing Dask cluster (``--scheduler ADDRESS``).

Tasks take and return small records (paths, counts, timings); frames never travel through
the scheduler. Workers read the videos and write their outputs themselves, so every worker
must see the same filesystem paths (one machine, or a shared filesystem on a cluster).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from mf2.errors import UsageError

SYNCHRONOUS = "synchronous"

# Dask's housekeeping on the cluster mf2 starts: every process (scheduler, nannies, workers)
# wakes every 20 ms to time its event loop and every 500 ms to sample CPU and memory, each
# worker checks its memory every 100 ms, and its profiler samples the task thread's stack
# every 10 ms (the dashboard's Profile tab). Beside one busy task thread per core that cost
# ~6-8 % of a run's CPU and wall time (issue 35's eight clips, 2 workers on 2 cores, A/B
# medians: 0.92x wall with all four changed; the ticks and monitors alone 0.98x, the
# profiler on top of them 0.96x). Memory is still checked twice a second, far more often
# than a video task's memory changes. A value the user set in Dask's config, or any of
# these set as a DASK_* variable (DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=True brings
# the profiler back), wins. docker/compose.yaml sets the same for a --scheduler cluster.
QUIET_DASK: dict[str, object] = {
    "distributed.admin.tick.interval": "200ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "500ms",
    "distributed.worker.profile.enabled": False,
}


def dask_env_name(key: str) -> str:
    """The environment variable Dask reads a setting from."""
    return "DASK_" + key.upper().replace(".", "__").replace("-", "_")


class _Deferred(cf.Future):
    """A task that runs when its result is first asked for, in this process. Collecting results
    one by one then runs the videos one by one, so the progress bar moves with each (run at
    submit, every video was done before the bar was drawn)."""

    def __init__(self, fn: Callable, args: tuple) -> None:
        super().__init__()
        self._call: tuple | None = (fn, args)

    def result(self, timeout: float | None = None) -> Any:
        if self._call is not None:
            fn, args = self._call
            self._call = None
            try:
                self.set_result(fn(*[_value(a) for a in args]))
            except BaseException as e:  # delivered through the future, as Dask does
                self.set_exception(e)
        return super().result(timeout)


class SyncRunner:
    """Runs each task when submitted, in this process: for debugging and for library use."""

    name = SYNCHRONOUS
    dashboard_link: str | None = None
    n_workers = 1

    def submit(
        self, fn: Callable, *args: Any, resources: dict | None = None, key: str | None = None, hold: bool = False
    ) -> cf.Future:
        return _Deferred(fn, args)

    def as_completed(self, futures: Iterable, on_idle: Callable[[], None] | None = None) -> Iterator:
        """``on_idle`` is never called: this process is the one worker, never idle."""
        yield from futures


class _Held(cf.Future):
    """A task kept in this process until a worker thread is free (``DaskRunner.submit(...,
    hold=True)``); it takes the result or the error of the Dask task that runs it."""

    def __init__(self, fn: Callable, args: tuple, key: str | None) -> None:
        super().__init__()
        self.call = (fn, args, key)


class DaskRunner:
    def __init__(self, client, cluster=None) -> None:
        self.client = client
        self.cluster = cluster
        self.name = "dask"

    @property
    def dashboard_link(self) -> str | None:
        try:
            return self.client.dashboard_link
        except Exception:  # no bokeh: no dashboard
            return None

    @property
    def n_workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    @property
    def n_threads(self) -> int:
        workers = self.client.scheduler_info().get("workers", {}).values()
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers))

    def submit(
        self, fn: Callable, *args: Any, resources: dict | None = None, key: str | None = None, hold: bool = False
    ) -> cf.Future:
        """``hold``: the task goes to the cluster from ``as_completed``, in the order submitted,
        when a worker thread is free. Dask assigns a task to a worker as soon as it arrives
        unless its group is larger than twice the cluster's threads, so of eight videos sent at
        once the first four were split between two workers before any had started, and one
        worker ran on alone for 5 s (issue 35's timeline); held, the longest-first order holds
        to the end. Tasks with resources or other tasks' futures are never held."""
        if hold and not resources and not any(isinstance(a, cf.Future) for a in args):
            return _Held(fn, args, key)
        return self.client.submit(fn, *args, resources=resources, key=key, pure=False)

    def as_completed(self, futures: Iterable, on_idle: Callable[[], None] | None = None) -> Iterator:
        """Futures as they complete; held tasks are sent one per free worker thread (counted
        again as each one ends, so workers that join later get work from then on).
        ``on_idle`` is called once, as the first worker thread is left with nothing to run: a
        core is free from then on while the last tasks finish, for the caller's own work."""
        from distributed import as_completed

        futures = list(futures)
        left = len(futures)
        queue = deque(f for f in futures if isinstance(f, _Held))
        running: dict = {}
        done = as_completed([f for f in futures if not isinstance(f, _Held)])

        def fill() -> None:
            while queue and len(running) < self.n_threads:
                held = queue.popleft()
                fn, args, key = held.call
                fut = self.client.submit(fn, *args, key=key, pure=False)
                running[fut.key] = held
                done.add(fut)

        fill()
        for fut in done:
            left -= 1
            if on_idle is not None and left < self.n_threads:
                on_idle()
                on_idle = None
            held = running.pop(fut.key, None)
            if held is None:
                yield fut
                continue
            try:
                held.set_result(fut.result())
            except BaseException as e:  # delivered through the held future, as Dask does
                held.set_exception(e)
            fill()
            yield held


def _value(a: Any) -> Any:
    return a.result() if isinstance(a, cf.Future) else a


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def quiet_dask() -> dict[str, object]:
    """QUIET_DASK's settings that the user has not chosen: still Dask's default here, and not
    named in the environment."""
    import dask.config
    import distributed  # noqa: F401  (registers its defaults)

    defaults = dask.config.merge(*dask.config.defaults)
    return {
        k: v
        for k, v in QUIET_DASK.items()
        if dask.config.get(k) == dask.config.get(k, config=defaults) and dask_env_name(k) not in os.environ
    }


def _limit_threads(client) -> None:
    """Every worker, present and future, takes its share of its host's cores."""
    from mf2.pipeline.threads import ThreadLimits

    client.register_plugin(ThreadLimits())


@contextmanager
def make_runner(
    workers: int | None = None,
    scheduler: str | None = None,
    gpu: bool = False,
    echo: Callable[[str], None] | None = None,
) -> Iterator[SyncRunner | DaskRunner]:
    """``scheduler``: None (a LocalCluster of ``workers`` processes, one thread each),
    ``synchronous``, or the address of a running Dask scheduler. ``gpu``: give LocalCluster
    workers a ``GPU`` resource, which the FAN landmark tasks ask for."""
    if scheduler == SYNCHRONOUS or (scheduler is None and workers == 0):
        yield SyncRunner()
        return
    if workers is not None and workers < 0:
        raise UsageError(f"--workers {workers}: must be >= 0 (0: run in this process)")
    import logging

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise UsageError(f"--scheduler {scheduler}: cannot connect ({e})") from None
        runner = DaskRunner(client)
        _limit_threads(client)
        if echo:
            echo(f"dask: scheduler {scheduler}, {runner.n_workers} workers, dashboard {runner.dashboard_link}")
        try:
            yield runner
        finally:
            client.close()
        return
    n = workers or default_workers()
    import dask.config

    with dask.config.set(quiet_dask()):  # read by the scheduler here and the nannies' workers
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            # Dask's ":0" listened on every interface; its task keys name the videos
            dashboard_address="127.0.0.1:0",
            resources={"GPU": 1} if gpu else None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
        _limit_threads(client)
        runner = DaskRunner(client, cluster)
        if echo:
            gpu_note = ", each with a GPU=1 resource for the FAN landmark tasks" if gpu else ""
            echo(f"dask: LocalCluster, {n} workers x 1 thread{gpu_note}, dashboard {runner.dashboard_link}")
        try:
            yield runner
        finally:
            client.close()
            cluster.close()
            sys.stdout.flush()
