"""Where the ridge solver's voxel-sized products run: numpy on the CPU, or torch (CPU or CUDA GPU).

The solver in :mod:`brainalign.encoding.ridge` is written once; the few
operations that differ between numpy arrays and torch tensors go through a
backend object from :func:`get_backend` (himalaya's idea, kept small):

* ``"numpy"``: numpy float32 products on the CPU (BLAS threads: ``blas_threads``);
* ``"torch"``: the same products with torch float32 tensors on the CPU (torch's
  own thread pool, also set to ``blas_threads``);
* ``"torch_cuda"``: torch float32 tensors on the current CUDA device. Each voxel
  chunk of ``Y`` is copied to the GPU, scored for every fold and alpha and
  refitted there, and its results (scores, weights) are copied back: ``Y`` and
  the outputs stay numpy arrays in host memory, so ``Y`` may be larger than
  the GPU's memory.

The per-fold decompositions (``XᵀX`` or ``XXᵀ``, float64, independent of the
number of voxels) stay on the CPU in numpy for every backend: they are small,
and computing them in one place keeps every backend's operators identical.

torch is imported only when a torch backend is asked for, so numpy users do
not pay for it. Inside :meth:`TorchBackend.threads`, torch's float32 matmul
precision is pinned to ``"highest"``: TF32 products (``"high"``) would change
the CV scores in the 4th digit and with them the selected alphas.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from brainalign._utils.threads import blas_limit

__all__ = ["BACKENDS", "NumpyBackend", "TorchBackend", "get_backend", "check_backend"]

#: the names accepted by ``RidgeCV(backend=...)`` and ``encoding.backend``
BACKENDS = ("numpy", "torch", "torch_cuda")


class NumpyBackend:
    """numpy float32 arrays on the CPU (the default; no torch import)."""

    name = "numpy"
    float32 = np.float32
    float64 = np.float64

    def asarray(self, a: Any, dtype: Any = np.float32) -> np.ndarray:
        """``a`` as a backend array of ``dtype`` (no copy when it already is one)."""
        return np.asarray(a, dtype=dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A backend array as a numpy array in host memory."""
        return np.asarray(a)

    def take_rows(self, Y: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (a numpy integer array) of ``Y``."""
        return np.take(Y, idx, axis=0)

    def contiguous(self, a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a)

    def astype(self, a: np.ndarray, dtype: Any) -> np.ndarray:
        return a.astype(dtype, copy=False)

    def mean0(self, a: np.ndarray, dtype: Any) -> np.ndarray:
        """Column means, accumulated in ``dtype``: shape (n_columns,)."""
        return a.mean(0, dtype=dtype)

    def sum(self, a: np.ndarray, axis: int, dtype: Any = None) -> np.ndarray:
        return a.sum(axis=axis, dtype=dtype)

    def all_finite0(self, a: np.ndarray) -> np.ndarray:
        """Per column: no NaN or inf. Shape (n_columns,), bool."""
        return np.isfinite(a).all(0)

    def max0(self, a: np.ndarray) -> np.ndarray:
        return a.max(0)

    def min0(self, a: np.ndarray) -> np.ndarray:
        return a.min(0)

    def empty(self, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        return np.empty(shape, dtype=dtype)

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return np.matmul(a, b, out=out)

    @contextmanager
    def threads(self, n_threads: int) -> Iterator[None]:
        """BLAS/LAPACK/OpenMP on ``n_threads`` threads inside the block."""
        with blas_limit(n_threads):
            yield


class TorchBackend(NumpyBackend):
    """torch float32 tensors on ``device`` ("cpu" or "cuda"); numpy in, numpy out.

    Parameters
    ----------
    device : {"cpu", "cuda"}
    """

    def __init__(self, device: str = "cpu"):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.name = "torch" if self.device.type == "cpu" else "torch_cuda"
        self.float32 = torch.float32
        self.float64 = torch.float64

    def _dtype(self, dtype: Any):
        if dtype is None or isinstance(dtype, self.torch.dtype):
            return dtype
        return {np.dtype(np.float32): self.torch.float32, np.dtype(np.float64): self.torch.float64}[np.dtype(dtype)]

    def asarray(self, a: Any, dtype: Any = np.float32):
        dtype = self._dtype(dtype)
        if isinstance(a, self.torch.Tensor):
            return a.to(device=self.device, dtype=dtype)
        # a contiguous array of the right dtype is shared with the tensor, not copied, before the transfer
        arr = np.ascontiguousarray(a, dtype={self.torch.float32: np.float32, self.torch.float64: np.float64}[dtype])
        return self.torch.from_numpy(arr).to(self.device)

    def to_numpy(self, a: Any) -> np.ndarray:
        if isinstance(a, self.torch.Tensor):
            return a.detach().to("cpu").numpy()
        return np.asarray(a)

    def take_rows(self, Y, idx):
        # the indices travel with each call (a few kB), so the fold operators can keep numpy indices
        return self.torch.index_select(Y, 0, self.torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(self.device))

    def contiguous(self, a):
        return a.contiguous()

    def astype(self, a, dtype: Any):
        return a.to(self._dtype(dtype))

    def mean0(self, a, dtype: Any):
        return a.mean(0, dtype=self._dtype(dtype))

    def sum(self, a, axis: int, dtype: Any = None):
        return a.sum(dim=axis, dtype=self._dtype(dtype))

    def all_finite0(self, a):
        return self.torch.isfinite(a).all(dim=0)

    def max0(self, a):
        return a.amax(dim=0)

    def min0(self, a):
        return a.amin(dim=0)

    def empty(self, shape: tuple[int, ...], dtype: Any = np.float32):
        return self.torch.empty(shape, dtype=self._dtype(dtype), device=self.device)

    def matmul(self, a, b, out=None):
        return self.torch.matmul(a, b, out=out)

    @contextmanager
    def threads(self, n_threads: int) -> Iterator[None]:
        """numpy/BLAS and torch's intra-op pool on ``n_threads`` threads, float32 matmuls at full precision."""
        torch = self.torch
        old_threads, old_precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
        with blas_limit(n_threads):
            torch.set_num_threads(int(n_threads))
            torch.set_float32_matmul_precision("highest")
            try:
                yield
            finally:
                torch.set_float32_matmul_precision(old_precision)
                torch.set_num_threads(old_threads)


def check_backend(backend: Any) -> str:
    """Validate a backend name; for ``"torch_cuda"`` also that a CUDA device is usable here.

    Parameters
    ----------
    backend : str
        One of :data:`BACKENDS`.

    Returns
    -------
    str
        The name.

    Raises
    ------
    ValueError
        An unknown name, or ``"torch_cuda"`` where torch sees no CUDA device.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}.")
    if backend == "torch_cuda":
        import torch

        if not torch.cuda.is_available():
            built = torch.version.cuda
            why = (f"this torch {torch.__version__} is a CPU-only build" if built is None else
                   f"this torch {torch.__version__} (CUDA {built}) sees no GPU (driver, CUDA_VISIBLE_DEVICES?)")
            raise ValueError(
                f"backend='torch_cuda' needs a CUDA GPU, but torch.cuda.is_available() is False: {why}. "
                "Run on a GPU node with a CUDA build of torch (https://pytorch.org/get-started/locally/), "
                "or use backend='torch' (CPU) or 'numpy'."
            )
    return backend


def get_backend(backend: str = "numpy") -> NumpyBackend:
    """The backend object of a name in :data:`BACKENDS` (validated by :func:`check_backend`)."""
    check_backend(backend)
    if backend == "numpy":
        return NumpyBackend()
    return TorchBackend("cpu" if backend == "torch" else "cuda")
