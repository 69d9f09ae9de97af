"""Results on disk that a rerun can trust: named entries of numpy arrays, each atomic and checksummed.

An entry ``<name>.npz`` (no pickle) is written atomically, then its sha256 in
``<name>.npz.sha256``; the sidecar is written last, so an entry counts as
finished only once both are on disk. A reader checks the checksum: a truncated
or tampered entry is warned about, removed, and reported as absent, so the
caller computes it again. :func:`inputs_digest` hashes the inputs a result was
computed from, so that callers can key their entries by them.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from brainalign._utils.atomic import atomic_write_bytes, atomic_write_text

__all__ = ["NpzStore", "inputs_digest"]


def inputs_digest(*arrays) -> str:
    """sha256 over the dtype, shape and bytes of every array.

    Parameters
    ----------
    *arrays : array-like
        Each of any shape and dtype (a string digest of a large input hashed once is an array too).

    Returns
    -------
    str
        64 hex digits.
    """
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class NpzStore:
    """A folder of named entries, each a dict of ndarrays.

    Parameters
    ----------
    root : str or Path
        Folder of the entries (created on first write).
    what : str
        What the warnings call an entry (``"encoding chunk"``, ``"partition checkpoint"``).
    redo : str
        What the caller does with a damaged entry, for the warning (``"recomputing"``, ``"refitting"``).
    """

    def __init__(self, root: str | os.PathLike, what: str = "entry", redo: str = "recomputing") -> None:
        self.root = Path(root)
        self.what = what
        self.redo = redo

    def path(self, name: str) -> Path:
        """The ``.npz`` of entry ``name`` (its checksum: :meth:`sidecar`)."""
        return self.root / f"{name}.npz"

    @staticmethod
    def sidecar(npz: Path) -> Path:
        return npz.with_name(npz.name + ".sha256")

    def put(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        """Write entry ``name`` atomically (replacing any earlier one)."""
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        blob = buf.getvalue()
        npz = self.path(name)
        atomic_write_bytes(npz, blob)
        atomic_write_text(self.sidecar(npz), hashlib.sha256(blob).hexdigest() + "\n")

    def _drop(self, npz: Path, why: str, stacklevel: int) -> None:
        warnings.warn(f"{self.what} {npz} is corrupt ({why}); {self.redo} it.", stacklevel=stacklevel + 1)
        for f in (npz, self.sidecar(npz)):
            f.unlink(missing_ok=True)

    def read(self, name: str, stacklevel: int = 2) -> bytes | None:
        """The bytes of entry ``name`` if finished and intact, else None (a damaged entry is warned about and
        removed)."""
        npz = self.path(name)
        side = self.sidecar(npz)
        if not (npz.is_file() and side.is_file()):
            return None
        blob = npz.read_bytes()
        if hashlib.sha256(blob).hexdigest() != side.read_text().strip():
            self._drop(npz, "checksum mismatch", stacklevel + 1)
            return None
        return blob

    def get(self, name: str, blob: bytes | None = None, stacklevel: int = 2) -> dict[str, np.ndarray] | None:
        """The arrays of entry ``name`` (from ``blob`` when the caller already has its bytes from :meth:`read`),
        or None when absent or damaged."""
        blob = self.read(name, stacklevel + 1) if blob is None else blob
        if blob is None:
            return None
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (ValueError, KeyError, OSError, zipfile.BadZipFile) as err:  # intact bytes that are no npz
            self._drop(self.path(name), str(err), stacklevel + 1)
            return None
