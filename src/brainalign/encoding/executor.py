"""Where voxel chunks are computed: in this process, or on a dask.distributed cluster; and where they are kept.

Both executors call the same :func:`brainalign.encoding.ridge.fit_chunk` on the
same chunks, so their results are identical; only the place differs. There is
no home-made scheduler: scale-out is dask's job (a ``LocalCluster`` by default,
any scheduler address, or a ``dask_jobqueue`` cluster's client), and the client
comes from :func:`brainalign._utils.cluster.dask_client`, as for every dask
fit of brainalign. :class:`ChunkStore` keeps finished chunks on disk, in the
checksummed entries of :class:`brainalign._utils.npz_store.NpzStore`.
"""
from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from brainalign._utils.atomic import atomic_write_text
from brainalign._utils.cluster import dask_client
from brainalign._utils.npz_store import NpzStore, inputs_digest
from brainalign.encoding.ridge import ChunkResult, load_chunk, local_map_chunks, run_chunk

__all__ = ["local_map_chunks", "DaskChunkMapper", "ChunkStore", "fit_fingerprint"]


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
        blas_threads = int(shared.get("blas_threads", 1))
        with dask_client(self.n_workers, self.client, blas_threads, keep=False) as client:
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            window = self.max_in_flight or 2 * n_workers
            # one future for the whole dict (scattering a dict would use its keys as
            # cluster-wide data names, which collide between the two passes)
            shared_f = client.scatter([shared], broadcast=True, hash=False)[0]
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
                    Yc = client.scatter(load_chunk(Y, start, stop), hash=False)
                    pending.append(client.submit(run_chunk, Yc, start, shared_f, pure=False))
                if not pending:
                    break
                fut = pending.popleft()
                yield fut.result()
                fut.release()
            shared_f.release()


# ----------------------------------------------------------------------------- resumable store
def fit_fingerprint(X: np.ndarray, Y_shape: tuple, alphas: np.ndarray, folds, **params) -> dict:
    """What identifies a fit for :class:`ChunkStore` (X bytes, shapes, alphas, folds, options).

    The values of ``Y`` are not hashed (that would mean reading all of it);
    its shape and the other inputs are. Reuse a store only for the same ``Y``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    Y_shape : (n_samples, n_voxels)
    alphas : ndarray of shape (n_alphas,)
    folds : list of (train, val) index arrays
    **params
        Options of the fit (str, number, bool or None; anything else is recorded as its ``str``).

    Returns
    -------
    dict
        ``inputs_sha256`` (:func:`~brainalign._utils.npz_store.inputs_digest` of X as float32, alphas as
        float64 and every fold's indices as int64), ``X_shape``, ``Y_shape`` and ``params``; JSON-ready.
    """
    fold_arrays = [np.asarray(a, dtype=np.int64) for fold in folds for a in fold]
    digest = inputs_digest(np.asarray(X, dtype=np.float32), np.asarray(alphas, dtype=np.float64), *fold_arrays)
    return dict(inputs_sha256=digest, X_shape=list(np.shape(X)), Y_shape=list(Y_shape),
                **{k: (v if isinstance(v, (bool, int, float, str)) or v is None else str(v))
                   for k, v in params.items()})


class ChunkStore:
    """Per-chunk results on disk (:class:`~brainalign._utils.npz_store.NpzStore` entries: ``.npz``, no pickle,
    each with a ``.sha256`` sidecar), so that a rerun resumes (a damaged chunk is warned about and recomputed).

    Parameters
    ----------
    path : str or Path
        Directory; created if missing. ``meta.json`` holds the fit's
        fingerprint; a directory holding another fit's chunks is refused.
    fingerprint : dict
        From :func:`fit_fingerprint`.
    """

    def __init__(self, path: str | os.PathLike, fingerprint: dict):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        meta = self.path / "meta.json"
        if meta.exists():
            old = json.loads(meta.read_text())
            if old != fingerprint:
                diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
                raise ValueError(
                    f"store={str(self.path)!r} holds chunks of a different fit (differs in {diff}); "
                    "give an empty directory, or delete this one to start over."
                )
        else:
            atomic_write_text(meta, json.dumps(fingerprint, indent=1, sort_keys=True))
        self.entries = NpzStore(self.path, what="encoding chunk", redo="recomputing")
        self.n_loaded = 0

    @staticmethod
    def _name(tag: str, start: int, stop: int) -> str:
        return f"{tag}_{start:010d}_{stop:010d}"

    def save(self, tag: str, res: ChunkResult) -> None:
        self.entries.put(self._name(tag, res.start, res.stop), {k: v for k, v in dict(
            mean_scores=res.mean_scores, valid=res.valid, best_index=res.best_index,
            coef=res.coef, intercept=res.intercept).items() if v is not None})

    def load(self, tag: str, start: int, stop: int) -> ChunkResult:
        z = self.entries.get(self._name(tag, start, stop), stacklevel=3)
        if z is None:
            raise FileNotFoundError(f"chunk {self.entries.path(self._name(tag, start, stop))} is missing or corrupt.")
        self.n_loaded += 1
        return ChunkResult(start, stop, z["mean_scores"], z["valid"], z.get("best_index"), z.get("coef"),
                           z.get("intercept"))

    def wrap(self, mapper: Callable) -> Callable:
        """A chunk mapper that reads finished chunks from disk and computes only the rest (and damaged ones)."""

        def mapped(Y: Any, bounds: list[tuple[int, int]], shared: dict) -> Iterator[ChunkResult]:
            tag = "refit" if shared.get("best_index") is not None else "fit"
            # checks every checksum up front (a damaged chunk is removed, so it joins the ones to compute)
            done = {b for b in bounds if self.entries.read(self._name(tag, *b), stacklevel=3) is not None}
            todo = [b for b in bounds if b not in done]
            computed = iter(mapper(Y, todo, shared)) if todo else iter(())
            for start, stop in bounds:
                if (start, stop) in done:
                    yield self.load(tag, start, stop)
                else:
                    res = next(computed)
                    self.save(tag, res)
                    yield res

        return mapped
