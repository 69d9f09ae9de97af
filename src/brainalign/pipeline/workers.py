"""Where the pipeline's independent fits run: in this process, or on dask.distributed worker processes.

Cross-validation fits one model per (feature space, outer fold), variance partitioning one set of models per
(partition, outer fold). Each fit is a pure function of its arrays, so it may run anywhere.
:func:`run_fits` runs a list of them and hands the results back **in the list's order**, whatever order they
finish in, so the tables built from them are byte-identical for any number of workers.

Checkpoints (:class:`brainalign.pipeline.checkpoint.EncodingCheckpoint`) are read and written by this (the parent) process
only: finished fits are read back instead of being sent out, and every result is stored the moment it arrives,
so a ``kill -9`` loses only the fits in flight. Worker processes of a ``LocalCluster`` exit with their parent.

Every fit runs with the same number of BLAS/OpenMP threads (``blas_threads``), in this process or in a worker:
multi-threaded BLAS rounds differently from single-threaded BLAS (last bits, ~1e-7), so pinning the count is what
makes the bytes independent of where a fit ran. One thread per fit is also the fast choice for many small fits
on a shared machine (spinning BLAS threads collapse under contention); parallelism comes from the workers.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from brainalign._utils.cluster import close_local_clusters, dask_client
from brainalign._utils.npz_store import inputs_digest
from brainalign._utils.threads import call_with_blas_limit

# dask_client and close_local_clusters: the one way brainalign gets a dask client (also for RidgeCV and fit_many),
# importable from here as before
__all__ = ["FitTask", "run_fits", "dask_client", "close_local_clusters"]

# arrays at least this large are sent to the cluster once and shared by every task that uses them (Y, each X)
_SCATTER_BYTES = 1 << 16


@dataclass
class FitTask:
    """One independent fit.

    Parameters
    ----------
    key : str
        What is fitted (a feature space or partition name); with ``fold`` it names the checkpoint entry.
    fold : int
        Outer fold index.
    fn : callable
        A module-level function (workers import it by name) returning a dict of ndarrays.
    args : tuple
        Arguments of ``fn``. ndarrays (also inside a list or tuple argument) of 64 KiB or more are shipped to
        the cluster once per array object, so pass the same object to every task that shares it.
    inputs : tuple
        Arrays (or digests) hashed into the checkpoint entry: a stored result is reused only for the same inputs.
    """

    key: str
    fold: int
    fn: Callable[..., dict[str, np.ndarray]]
    args: tuple
    inputs: tuple = ()


def run_fits(
    tasks: Sequence[FitTask], *, n_workers: int = 1, scheduler: str | None = None, checkpoint=None,
    blas_threads: int = 1,
) -> Iterator[dict[str, np.ndarray]]:
    """The result of every task, yielded in the order of ``tasks``.

    Parameters
    ----------
    tasks : sequence of FitTask
    n_workers : int
        1 runs the tasks one after the other in this process; more start a dask ``LocalCluster`` with that many
        single-threaded worker processes (only when some task is not already checkpointed).
    scheduler : str or None
        Address of a running dask scheduler to use instead of a LocalCluster.
    checkpoint : EncodingCheckpoint or None
        Finished tasks are read back from it, new results are stored in it (from this process).
    blas_threads : int
        BLAS/OpenMP threads of every fit, wherever it runs (the last bits of the results depend on it).

    Yields
    ------
    dict of ndarrays, one per task, in task order.
    """
    if n_workers < 1:
        raise ValueError(f"n_workers={n_workers}; give 1 (this process) or more worker processes.")
    if blas_threads < 1:
        raise ValueError(f"blas_threads={blas_threads}; give 1 or more.")
    if n_workers == 1 and scheduler is None:
        for t in tasks:
            fit = partial(call_with_blas_limit, blas_threads, t.fn, *t.args)
            yield checkpoint.fit_or_load(t.key, t.fold, fit, inputs=t.inputs) if checkpoint is not None else fit()
        return
    yield from _run_on_dask(list(tasks), n_workers, scheduler, checkpoint, blas_threads)


def _run_on_dask(tasks: list[FitTask], n_workers: int, scheduler: str | None, checkpoint,
                 blas_threads: int) -> Iterator[dict]:
    from distributed import as_completed

    digests = [inputs_digest(*t.inputs) if checkpoint is not None else None for t in tasks]
    done: dict[int, dict] = {}
    for i, t in enumerate(tasks):
        if checkpoint is not None:
            got = checkpoint.lookup(t.key, t.fold, digests[i])
            if got is not None:
                done[i] = got
    todo = [i for i in range(len(tasks)) if i not in done]
    nxt = 0

    def ready() -> Iterator[dict]:
        nonlocal nxt
        while nxt in done:
            yield done.pop(nxt)
            nxt += 1

    yield from ready()
    if not todo:
        return
    with dask_client(n_workers, scheduler, blas_threads) as client:
        shipped: dict[int, Any] = {}

        def ship(a):
            if isinstance(a, (list, tuple)):
                return type(a)(ship(x) for x in a)
            if isinstance(a, np.ndarray) and a.nbytes >= _SCATTER_BYTES:
                if id(a) not in shipped:
                    shipped[id(a)] = client.scatter(a, hash=False)
                return shipped[id(a)]
            return a

        futures = {}
        for rank, i in enumerate(todo):  # earlier tasks first (the reference space of each fold leads its fold)
            t = tasks[i]
            fut = client.submit(call_with_blas_limit, blas_threads, t.fn, *(ship(a) for a in t.args), pure=False,
                                priority=len(todo) - rank)
            futures[fut] = i
        try:
            for fut in as_completed(futures, loop=client.loop):
                i = futures.pop(fut)
                res = fut.result()
                fut.release()
                if checkpoint is not None:
                    checkpoint.store(tasks[i].key, tasks[i].fold, res, digests[i])
                done[i] = res
                yield from ready()
        finally:
            for fut in futures:
                fut.cancel()
            for f in shipped.values():
                f.release()
