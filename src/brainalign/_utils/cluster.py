"""The one way brainalign gets a ``dask.distributed`` client, and closes what it started.

Scale-out is dask's job; this module only decides *which* client a fit runs
on: one the caller made (used as is), a scheduler address (connected for the
block), or a ``LocalCluster`` of single-threaded worker processes on this
machine, either for the block or kept for the life of the process (as joblib
keeps its worker pool). What dask does not do by itself, and is done here:
the workers' BLAS/OpenMP start with a given thread count, run without dask's
profiler and allocator-trimming defaults (see ``_QUIET_WORKER_ENV``), listen on
the loopback interface only, and a kept cluster is closed at interpreter exit.
"""
from __future__ import annotations

import atexit
import logging
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["dask_client", "close_local_clusters"]

# LocalClusters kept for the life of the process: the encoding and partition stages, and later runs in the same
# process, reuse the workers instead of paying their start-up (spawning processes and importing
# numpy/sklearn/brainalign takes seconds, far more than a demo-sized fit).
_LOCAL: dict[tuple[int, int], tuple[Any, Any]] = {}
# Two dask defaults made a demo-sized fit cost 2-3x the CPU in a worker than in this process (measured: 0.33 vs
# 0.14 CPU-s): the worker profiler, which samples every thread's stack every 10 ms, and the nanny's
# MALLOC_TRIM_THRESHOLD_ (its "pre-spawn environ"), which also turns off glibc's dynamic mmap threshold, so every
# large numpy temporary is a fresh mmap with page faults. The LocalCluster's workers run without either; their
# thread variables come from ``blas_threads``.
_QUIET_WORKER_ENV = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}


def _start_local_cluster(n_workers: int, blas_threads: int) -> tuple[Any, Any]:
    import dask
    from distributed import Client, LocalCluster

    env = {k: str(blas_threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(_QUIET_WORKER_ENV)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {}}):  # see _QUIET_WORKER_ENV
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, env=env,
                               host="127.0.0.1", dashboard_address="127.0.0.1:0",  # loopback only, any port
                               worker_dashboard_address="127.0.0.1:0")
    return cluster, Client(cluster, set_as_default=False)


def _close(cluster: Any, client: Any) -> None:
    nanny = logging.getLogger("distributed.nanny")
    level = nanny.level
    nanny.setLevel(logging.ERROR)  # "worker process still alive after 4.0 seconds, killing": expected when busy
    try:
        try:
            client.close()
        finally:
            cluster.close()
    finally:
        nanny.setLevel(level)


def close_local_clusters() -> None:
    """Close the LocalClusters kept by :func:`dask_client` (also done at interpreter exit)."""
    while _LOCAL:
        _, (cluster, client) = _LOCAL.popitem()
        _close(cluster, client)


@contextmanager
def dask_client(n_workers: int = 2, scheduler: Any = None, blas_threads: int = 1, *, keep: bool = True
                ) -> Iterator[Any]:
    """A ``distributed.Client`` for the block; none becomes dask's default client.

    Parameters
    ----------
    n_workers : int
        Worker processes of the LocalCluster started when ``scheduler`` is None (one thread each).
    scheduler : distributed.Client, str or None
        A client (used as is, never closed here), a scheduler address (``"tcp://host:8786"``; connected for the
        block, then closed), or None for a LocalCluster on this machine.
    blas_threads : int
        BLAS/OpenMP threads the LocalCluster's workers start with (tasks still pin their own count, see
        :func:`brainalign._utils.threads.call_with_blas_limit`).
    keep : bool
        Keep the LocalCluster for reuse by later blocks with the same ``n_workers`` and ``blas_threads``, until
        :func:`close_local_clusters` or the end of the process (True), or close it when the block ends (False).

    Yields
    ------
    distributed.Client
    """
    if scheduler is not None and not isinstance(scheduler, str):
        yield scheduler
        return
    if scheduler is not None:
        from distributed import Client

        client = Client(scheduler, set_as_default=False)
        try:
            yield client
        finally:
            client.close()
        return
    if not keep:
        cluster, client = _start_local_cluster(n_workers, blas_threads)
        try:
            yield client
        finally:
            _close(cluster, client)
        return
    entry = _LOCAL.get((n_workers, blas_threads))
    if entry is None or entry[1].status != "running":
        if not _LOCAL:
            atexit.register(close_local_clusters)
        entry = _LOCAL[(n_workers, blas_threads)] = _start_local_cluster(n_workers, blas_threads)
    yield entry[1]
