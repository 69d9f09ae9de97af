"""How many threads BLAS/LAPACK/OpenMP use inside a block of code.

The last bits of a BLAS product depend on the number of threads that computed
it (each thread sums its own share of the inner dimension). Code whose results
must not depend on where it runs (this process, a dask worker, a SLURM job)
runs its kernels under an explicit limit from here, never under whatever the
process happened to start with.
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from threadpoolctl import ThreadpoolController

T = TypeVar("T")

__all__ = ["blas_limit", "call_with_blas_limit"]

_CONTROLLER: ThreadpoolController | None = None


def blas_limit(n_threads: int):
    """Context manager running BLAS/LAPACK/OpenMP on ``n_threads`` threads.

    Parameters
    ----------
    n_threads : int
        Threads, 1 or more.

    Notes
    -----
    The ``ThreadpoolController`` (which inspects every loaded native library,
    ~10 ms) is built once per process and reused.
    """
    if int(n_threads) < 1:
        raise ValueError(f"n_threads={n_threads}; give 1 or more.")
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=int(n_threads))


def call_with_blas_limit(n_threads: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on ``n_threads`` BLAS/LAPACK/OpenMP threads, wherever it runs.

    A module-level function, so that it can be sent to a dask worker as a task: a worker starts with its own
    thread settings, and this pin is what makes the task's bits equal to the same call in this process.

    Parameters
    ----------
    n_threads : int
        Threads, 1 or more.
    fn : callable
    *args
        Arguments of ``fn``.

    Returns
    -------
    What ``fn`` returns.
    """
    with blas_limit(n_threads):
        return fn(*args)
