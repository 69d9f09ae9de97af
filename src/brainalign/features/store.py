"""A content-addressed, resumable cache of pooled features.

One entry per (model fingerprint, prompt text, stimulus, layers): an ``.npy``
array of shape (n_layers, dim) and a JSON sidecar with its sha256. Entries are
written atomically, so a crash loses at most the item in flight; an entry
whose checksum does not match is reported and recomputed.

Entries are read memory-mapped and read-only (:meth:`FeatureStore.get`), and
:meth:`FeatureStore.get_or_compute` returns a :class:`StackedEntries`, which
gathers one layer of every stimulus only when indexed: a run's memory then holds
the features of the space being fitted, not every model × prompt × layer.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from brainalign import __version__
from brainalign._utils.atomic import atomic_save_npy, atomic_write_json
from brainalign._utils.faults import stall_point

__all__ = ["FeatureStore", "StackedEntries", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$BRAINALIGN_CACHE``, else ``$XDG_CACHE_HOME/brainalign``, else ``~/.cache/brainalign``."""
    if os.environ.get("BRAINALIGN_CACHE"):
        return Path(os.environ["BRAINALIGN_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "brainalign"


class StackedEntries:
    """Cache entries of shape (n_layers, dim) seen as one (n, n_layers, dim) array, without stacking them.

    Indexing with the first axis fully or partly selected (``F[:, j, :]``, ``F[i]``, ``F[perm]``) reads only the
    selected part, each entry through a read-only memory map opened for that read and closed after (so no file
    stays open: a run may read 10,000s of entries), into a fresh in-memory ndarray; ``np.asarray(F)`` reads all.

    Parameters
    ----------
    entries : sequence of path or ndarray
        ``.npy`` files of (n_layers, dim) arrays (verified cache entries), or arrays.
    shape : tuple (n_layers, dim)
    dtype : numpy dtype
    """

    def __init__(self, entries: Sequence[Path | np.ndarray], shape: tuple[int, int], dtype) -> None:
        self._entries = list(entries)
        self.shape = (len(self._entries), *map(int, shape))
        self.dtype = np.dtype(dtype)

    @classmethod
    def of_files(cls, paths: Sequence[Path], dtype=None) -> StackedEntries:
        """Over ``.npy`` files of equal shape; shape (and, by default, dtype) read from the first file's header."""
        first = np.load(paths[0], mmap_mode="r", allow_pickle=False)
        shape, file_dtype = first.shape, first.dtype
        del first  # closes the map and its file
        return cls(paths, shape, dtype if dtype is not None else file_dtype)

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape)))
    nbytes = property(lambda self: self.size * self.dtype.itemsize)

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, i: int, rest: tuple) -> np.ndarray:
        entry = self._entries[i]
        if isinstance(entry, np.ndarray):
            return np.array(entry[rest], dtype=self.dtype)
        mapped = np.load(entry, mmap_mode="r", allow_pickle=False)
        if mapped.shape != self.shape[1:]:
            raise ValueError(f"feature cache entry {entry} has shape {mapped.shape}, not {self.shape[1:]}; it "
                             "changed since it was verified: run `brainalign cache --verify`.")
        out = np.array(mapped[rest], dtype=self.dtype)  # a copy: the map (and its file) closes with ``mapped``
        del mapped
        return out

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def astype(self, dtype, copy: bool = True) -> np.ndarray:
        return np.asarray(self).astype(dtype, copy=copy)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis or k is None for k in key):
            return np.asarray(self)[key]
        first, rest = key[0], key[1:]
        if isinstance(first, (int, np.integer)):
            return self._read(int(np.arange(self.shape[0])[first]), rest)
        picked = np.arange(self.shape[0])[first]
        if picked.size == 0:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)[(slice(None), *rest)]
        return np.stack([self._read(int(i), rest) for i in picked], 0)

    def __repr__(self) -> str:
        return f"StackedEntries(shape={self.shape}, dtype={self.dtype})"


class FeatureStore:
    """Feature cache under ``root/features``.

    Parameters
    ----------
    root : path, optional
        Defaults to :func:`default_cache_dir`.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.dir = self.root / "features"
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(fingerprint: str, text: str, layers: Sequence[int]) -> str:
        """Stable id of one entry; changes with the model, the exact input text, the layers and brainalign's
        minor version."""
        minor = ".".join(__version__.split(".")[:2])
        blob = json.dumps([fingerprint, text, list(map(int, layers)), minor]).encode()
        return hashlib.sha256(blob).hexdigest()

    def _paths(self, key: str) -> tuple[Path, Path]:
        sub = self.dir / key[:2]
        return sub / f"{key}.npy", sub / f"{key}.json"

    def has(self, key: str) -> bool:
        """Whether both files of an entry exist (no checksum read; :meth:`get` verifies)."""
        npy, meta = self._paths(key)
        return npy.is_file() and meta.is_file()

    def get(self, key: str, mmap: bool = False) -> np.ndarray | None:
        """The cached array, or None when absent or corrupt (corrupt entries are warned about).

        With ``mmap=True`` the array is a read-only memory map of the entry (its checksum verified first); it keeps
        the file open while it lives.
        """
        npy = self.entry_path(key)
        if npy is None:
            return None
        return np.load(npy, mmap_mode="r" if mmap else None, allow_pickle=False)

    def entry_path(self, key: str) -> Path | None:
        """The ``.npy`` file of a verified entry (its sha256 checked), or None when absent or corrupt (warned about).

        For readers that map entries one at a time (:class:`StackedEntries`) instead of loading them.
        """
        npy, meta = self._paths(key)
        if not (npy.is_file() and meta.is_file()):
            return None
        try:
            info = json.loads(meta.read_text())
            if hashlib.sha256(npy.read_bytes()).hexdigest() != info["sha256"]:
                raise ValueError("checksum mismatch")
            return npy
        except (ValueError, KeyError, OSError) as err:
            warnings.warn(f"feature cache entry {npy} is corrupt ({err}); recomputing it.", stacklevel=3)
            return None

    def put(self, key: str, array: np.ndarray, **meta) -> Path:
        """Store ``array`` (atomically, with its sha256 and ``meta`` beside it); returns the entry's ``.npy`` file."""
        npy, side = self._paths(key)
        data = atomic_save_npy(npy, array)
        atomic_write_json(side, dict(meta, sha256=hashlib.sha256(data).hexdigest(), shape=list(array.shape)))
        stall_point("feature-put")
        return npy

    def entries(self) -> list[dict]:
        """Every entry's metadata (plus ``key`` and ``bytes``), sorted by key; unreadable sidecars are skipped."""
        out = []
        for side in sorted(self.dir.glob("*/*.json")):
            try:
                meta = json.loads(side.read_text())
            except (OSError, ValueError):
                continue
            npy = side.with_suffix(".npy")
            out.append(dict(meta, key=side.stem, bytes=npy.stat().st_size if npy.is_file() else 0))
        return out

    def verify(self) -> tuple[int, list[str]]:
        """Check every entry against its sha256; returns (n_checked, keys of corrupt or incomplete entries)."""
        bad = []
        keys = {p.stem for p in self.dir.glob("*/*.npy")} | {p.stem for p in self.dir.glob("*/*.json")}
        for key in sorted(keys):
            npy, side = self._paths(key)
            try:
                info = json.loads(side.read_text())
                if hashlib.sha256(npy.read_bytes()).hexdigest() != info["sha256"]:
                    bad.append(key)
            except (OSError, ValueError, KeyError):
                bad.append(key)
        return len(keys), bad

    def remove(self, keys: Sequence[str] | None = None) -> int:
        """Delete the given entries (all when None); returns how many were removed."""
        targets = [p.stem for p in self.dir.glob("*/*.json")] if keys is None else list(keys)
        if keys is None:
            targets += [p.stem for p in self.dir.glob("*/*.npy") if not p.with_suffix(".json").exists()]
        n = 0
        for key in sorted(set(targets)):
            found = False
            for p in self._paths(key):
                if p.exists():
                    p.unlink()
                    found = True
            n += found
        return n

    def get_or_compute(
        self, keys: Sequence[str], compute: Callable[[list[int]], np.ndarray], metas: Sequence[dict]
    ) -> np.ndarray:
        """Arrays for ``keys``, computing only the missing ones.

        Parameters
        ----------
        keys : sequence of str, length n
        compute : callable
            ``compute(missing_positions) -> ndarray (len(missing), n_layers, dim)``.
        metas : sequence of dict
            JSON metadata stored beside each entry.

        Returns
        -------
        StackedEntries of shape (n, n_layers, dim)
            The entries memory-mapped (read-only), the fresh ones too once stored; index it (``F[:, j, :]``) or
            ``np.asarray`` it to get an ndarray.
        """
        found: list[Path | np.ndarray | None] = [self.entry_path(k) for k in keys]
        missing = [i for i, a in enumerate(found) if a is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = compute(missing)
            for i, arr in zip(missing, fresh):
                found[i] = self.put(keys[i], arr, **metas[i])  # read back from its file like the others
            del fresh
        return StackedEntries.of_files(found)
