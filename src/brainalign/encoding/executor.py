"""Where voxel chunks are computed: in this process, or on a dask.distributed cluster.

Both executors call the same :func:`brainalign.encoding.ridge.fit_chunk` on the
same chunks, so their results are identical; only the place differs. There is
no home-made scheduler: scale-out is dask's job (a ``LocalCluster`` by default,
any scheduler address, or a ``dask_jobqueue`` cluster's client).
"""
from __future__ import annotations

from collections import deque
from typing import Any, Iterator

import numpy as np

from brainalign.encoding.ridge import ChunkResult, fit_chunk, load_chunk

__all__ = ["local_map_chunks", "DaskChunkMapper"]


def _run_chunk(Yc: np.ndarray, start: int, shared: dict) -> ChunkResult:
    best = shared.get("best_index")
    if best is not None and np.ndim(best) == 0:
        best = np.full(Yc.shape[1], int(best), dtype=np.intp)
    return fit_chunk(
        Yc,
        start,
        shared["ops"],
        shared["full"],
        shared["alphas"],
        shared["fit_intercept"],
        best_index=best,
        V32=shared.get("V32"),
    )


def local_map_chunks(Y: Any, bounds: list[tuple[int, int]], shared: dict) -> Iterator[ChunkResult]:
    """Compute the chunks one after the other in this process (reading Y lazily)."""
    for start, stop in bounds:
        yield _run_chunk(load_chunk(Y, start, stop), start, shared)


class DaskChunkMapper:
    """Send voxel chunks to a ``dask.distributed`` cluster.

    Parameters
    ----------
    client : distributed.Client, str or None
        An existing client, a scheduler address (``"tcp://host:8786"``), or
        None to start a ``LocalCluster`` for the duration of the fit.
    n_workers : int
        Workers of the LocalCluster started when ``client`` is None.
    max_in_flight : int or None
        Chunks sent ahead of the one being collected (bounds the memory held by
        results and by chunks in transit); default 2 per worker.
    """

    def __init__(self, client: Any = None, n_workers: int = 2, max_in_flight: int | None = None):
        self.client = client
        self.n_workers = n_workers
        self.max_in_flight = max_in_flight

    def __call__(self, Y: Any, bounds: list[tuple[int, int]], shared: dict) -> Iterator[ChunkResult]:
        from distributed import Client, LocalCluster

        own_cluster = own_client = None
        client = self.client
        if client is None:
            own_cluster = LocalCluster(
                n_workers=self.n_workers, threads_per_worker=1, processes=True,
                dashboard_address=None,
            )
            client = own_client = Client(own_cluster)
        elif isinstance(client, str):
            client = own_client = Client(client)
        try:
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            window = self.max_in_flight or 2 * n_workers
            shared_f = client.scatter(shared, broadcast=True)
            pending: deque = deque()
            it = iter(bounds)
            exhausted = False
            while True:
                while not exhausted and len(pending) < window:
                    try:
                        start, stop = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    Yc = client.scatter(load_chunk(Y, start, stop))
                    pending.append(client.submit(_run_chunk, Yc, start, shared_f, pure=False))
                if not pending:
                    break
                fut = pending.popleft()
                yield fut.result()
                fut.release()
        finally:
            if own_client is not None:
                own_client.close()
            if own_cluster is not None:
                own_cluster.close()
