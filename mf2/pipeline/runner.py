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
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from mf2.errors import UsageError

SYNCHRONOUS = "synchronous"


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

    def submit(self, fn: Callable, *args: Any, resources: dict | None = None, key: str | None = None) -> cf.Future:
        return _Deferred(fn, args)

    def as_completed(self, futures: Iterable) -> Iterator:
        yield from futures


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

    def submit(self, fn: Callable, *args: Any, resources: dict | None = None, key: str | None = None):
        return self.client.submit(fn, *args, resources=resources, key=key, pure=False)

    def as_completed(self, futures: Iterable) -> Iterator:
        from distributed import as_completed

        yield from as_completed(list(futures))


def _value(a: Any) -> Any:
    return a.result() if isinstance(a, cf.Future) else a


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


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
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
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
