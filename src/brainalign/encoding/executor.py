"""Where voxel chunks are computed: in this process, or on a dask.distributed cluster.

Both executors call the same :func:`brainalign.encoding.ridge.fit_chunk` on the
same chunks, so their results are identical; only the place differs. There is
no home-made scheduler: scale-out is dask's job (a ``LocalCluster`` by default,
any scheduler address, or a ``dask_jobqueue`` cluster's client).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from brainalign._utils.atomic import atomic_write_bytes, atomic_write_text
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
        finally:
            if own_client is not None:
                own_client.close()
            if own_cluster is not None:
                own_cluster.close()


# ----------------------------------------------------------------------------- resumable store
def fit_fingerprint(X: np.ndarray, Y_shape: tuple, alphas: np.ndarray, folds, **params) -> dict:
    """What identifies a fit for :class:`ChunkStore` (X bytes, shapes, alphas, folds, options).

    The values of ``Y`` are not hashed (that would mean reading all of it);
    its shape and the other inputs are. Reuse a store only for the same ``Y``.
    """
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(X, dtype=np.float32).tobytes())
    h.update(np.asarray(alphas, dtype=np.float64).tobytes())
    for tr, va in folds:
        h.update(np.asarray(tr, dtype=np.int64).tobytes())
        h.update(b"|")
        h.update(np.asarray(va, dtype=np.int64).tobytes())
        h.update(b"#")
    return dict(inputs_sha256=h.hexdigest(), X_shape=list(np.shape(X)), Y_shape=list(Y_shape),
                **{k: (v if isinstance(v, (bool, int, float, str)) or v is None else str(v))
                   for k, v in params.items()})


class ChunkStore:
    """Per-chunk results on disk (``.npz``, no pickle, each with a ``.sha256`` sidecar), so that a rerun resumes
    (a damaged chunk is warned about and recomputed).

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
        self.n_loaded = 0

    def _file(self, tag: str, start: int, stop: int) -> Path:
        return self.path / f"{tag}_{start:010d}_{stop:010d}.npz"

    @staticmethod
    def _sum_file(npz: Path) -> Path:
        return npz.with_name(npz.name + ".sha256")

    def save(self, tag: str, res: ChunkResult) -> None:
        arrays = {k: v for k, v in dict(
            mean_scores=res.mean_scores, valid=res.valid, best_index=res.best_index,
            coef=res.coef, intercept=res.intercept).items() if v is not None}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        blob = buf.getvalue()
        npz = self._file(tag, res.start, res.stop)
        atomic_write_bytes(npz, blob)  # fsync + rename
        # the checksum is written last: a chunk counts as finished only once both are on disk
        atomic_write_text(self._sum_file(npz), hashlib.sha256(blob).hexdigest() + "\n")

    def _read(self, tag: str, start: int, stop: int) -> bytes | None:
        """The chunk's bytes if finished and intact; None if absent; a damaged chunk is warned about and
        removed (so that it is recomputed)."""
        npz = self._file(tag, start, stop)
        side = self._sum_file(npz)
        if not (npz.is_file() and side.is_file()):
            return None
        blob = npz.read_bytes()
        if hashlib.sha256(blob).hexdigest() != side.read_text().strip():
            warnings.warn(f"encoding chunk {npz} is corrupt (checksum mismatch); recomputing it.", stacklevel=3)
            npz.unlink()
            side.unlink()
            return None
        return blob

    def load(self, tag: str, start: int, stop: int, blob: bytes | None = None) -> ChunkResult:
        blob = self._read(tag, start, stop) if blob is None else blob
        if blob is None:
            raise FileNotFoundError(f"chunk {self._file(tag, start, stop)} is missing or corrupt.")
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            get = lambda k: z[k] if k in z.files else None  # noqa: E731
            self.n_loaded += 1
            return ChunkResult(start, stop, z["mean_scores"], z["valid"], get("best_index"),
                               get("coef"), get("intercept"))

    def wrap(self, mapper: Callable) -> Callable:
        """A chunk mapper that reads finished chunks from disk and computes only the rest (and damaged ones)."""

        def mapped(Y: Any, bounds: list[tuple[int, int]], shared: dict) -> Iterator[ChunkResult]:
            tag = "refit" if shared.get("best_index") is not None else "fit"
            done = {b for b in bounds if self._read(tag, *b) is not None}  # checks every checksum up front
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
