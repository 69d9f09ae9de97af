"""The memory preflight's estimate against the bytes a ridge fit really allocates (tracemalloc), and its messages."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from brainalign.encoding.estimators import RidgeCV
from brainalign.encoding.memory import MemoryEstimate, MemoryPreflightError, check_memory, estimate_fit_bytes
from brainalign.encoding.splits import make_folds


@pytest.mark.parametrize("n, p", [(200, 50), (60, 150), (120, 120)])
def test_estimate_bounds_the_measured_peak_from_above_within_a_factor_two(n, p):
    """Measured 2026-12-07: estimate / traced peak = 1.54, 1.54, 1.70 for these shapes."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, p)).astype(np.float32)
    Y = rng.standard_normal((n, 300)).astype(np.float32)
    alphas = np.logspace(0, 3, 4)
    RidgeCV(alphas=alphas, cv=4, chunk_voxels=100).fit(X[:, :3], Y[:, :3])  # first-call imports are not the fit's
    tracemalloc.start()
    try:
        RidgeCV(alphas=alphas, cv=4, chunk_voxels=100).fit(X, Y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    est = estimate_fit_bytes(n, p, 300, alphas.size, make_folds(4, n), chunk_voxels=100)
    assert est.chunk_voxels == 100 and est.chunks_in_flight == 1
    assert peak <= est.peak <= 2 * peak, (peak, est)
    # chunks in flight and chunk size scale the per-voxel part only
    more = estimate_fit_bytes(n, p, 300, alphas.size, make_folds(4, n), chunk_voxels=100, chunks_in_flight=3)
    assert more.fixed == est.fixed and more.peak - est.peak == 2 * 100 * est.per_voxel_in_chunk
    # more folds, alphas, voxels or features never need less
    for kw in (dict(n_alphas=8), dict(n_voxels=600), dict(n_features=p + 10)):
        args = dict(n_samples=n, n_features=p, n_voxels=300, n_alphas=4, folds=make_folds(4, n), chunk_voxels=100)
        assert estimate_fit_bytes(**{**args, **kw}).peak > est.peak, kw
    assert estimate_fit_bytes(n, p, 300, 4, [], 100).fixed < est.fixed


def test_memory_estimate_peak_and_chunk_that_fits():
    est = MemoryEstimate(fixed=1000, per_voxel_in_chunk=10, chunk_voxels=50, chunks_in_flight=2)
    assert est.peak == 2000
    assert est.chunk_that_fits(2000) == 50 and est.chunk_that_fits(2019) == 50 and est.chunk_that_fits(2020) == 51
    assert est.chunk_that_fits(1000) == 0 and est.chunk_that_fits(999) == 0 and est.chunk_that_fits(1019) == 0
    assert MemoryEstimate(1000, 10, 50).chunks_in_flight == 1 and MemoryEstimate(1000, 10, 50).peak == 1500


def test_check_memory_names_a_chunk_size_or_what_to_reduce(monkeypatch):
    est = MemoryEstimate(fixed=2**20, per_voxel_in_chunk=2**10, chunk_voxels=4096, chunks_in_flight=1)
    check_memory(est, est.peak)  # exactly enough passes
    with pytest.raises(MemoryPreflightError, match=r"^The ridge fit needs about 5 MiB with chunk_voxels=4096 but only "
                                                   r"3 MiB is available; set chunk_voxels=2048 or less \(fixed part "
                                                   r"1 MiB, 0 MiB per 1 voxel per chunk x 1 chunk\(s\) in flight\)\.$"):
        check_memory(est, 3 * 2**20)
    big = MemoryEstimate(fixed=3 * 2**30, per_voxel_in_chunk=2**10, chunk_voxels=1)
    with pytest.raises(MemoryPreflightError, match=r"^The ridge fit needs about 3\.00 GiB before any voxel chunk "
                                                   r"\(decompositions, fold operators, outputs\) but only 1\.00 GiB is "
                                                   r"available; no chunk_voxels fits\. Reduce the number of features"):
        check_memory(big, 2**30)
    with pytest.raises(MemoryPreflightError, match="no chunk_voxels fits"):  # room for less than one voxel
        check_memory(MemoryEstimate(fixed=100, per_voxel_in_chunk=1000, chunk_voxels=2), 1099)
    import brainalign.encoding.memory as memory

    monkeypatch.setattr(memory, "available_bytes", lambda: est.peak - 1)
    with pytest.raises(MemoryPreflightError):  # no budget: the available memory
        check_memory(est)
    assert memory.available_bytes.__name__ == "<lambda>"
    monkeypatch.undo()
    assert 0 < memory.available_bytes() < 2**62
