"""executor="dask": a 2-worker LocalCluster gives the local executor's results bit for bit.

The last bits of a BLAS product depend on how many threads computed it, and a dask worker starts with its own
thread settings (dask gives its workers one, this process may have several). RidgeCV pins the count
(``blas_threads``) around every product in both places; these tests fail without that pin (checked: 95 of 300
``cv_scores_`` differed by up to 7.6e-8 with 2 threads here and 1 in the workers).
"""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.encoding import RidgeCV

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((150, 40)).astype(np.float32)
    Y = (X @ rng.standard_normal((40, 300)) * 0.1 + rng.standard_normal((150, 300))).astype(np.float32)
    return X, Y


def _blas_threads():
    from threadpoolctl import threadpool_info

    return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})


@pytest.fixture(scope="module")
def two_thread_client():
    """A worker whose BLAS starts with 2 threads, as a user's own cluster may (dask starts its workers with 1).

    The variables must be in this process' environment while the worker is spawned: dask's nanny writes its
    ``pre-spawn-environ`` (OMP_NUM_THREADS=1, ...) into ``os.environ`` and lets values already there win.
    """
    import os

    keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "2" for k in keys})
    try:
        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    c = distributed.Client(cluster)
    assert c.submit(_blas_threads, pure=False).result() == [2]
    yield c
    c.close()
    cluster.close()


@pytest.mark.parametrize("blas_threads", [1, 2])
@pytest.mark.parametrize("local_alpha", [True, False])
def test_dask_local_cluster_equals_local_bit_for_bit(client, local_alpha, blas_threads):
    X, Y = _data()
    kw = dict(alphas=np.logspace(-1, 4, 10), cv=5, chunk_voxels=64, fit_intercept=True, local_alpha=local_alpha,
              blas_threads=blas_threads)
    loc = RidgeCV(**kw).fit(X, Y)
    dsk = RidgeCV(executor="dask", client=client, **kw).fit(X, Y)
    for name in ("coef_", "intercept_", "best_alphas_", "cv_scores_", "cv_scores_per_alpha_"):
        np.testing.assert_array_equal(getattr(dsk, name), getattr(loc, name), err_msg=name)
    assert np.unique(loc.best_alphas_).size > (1 if local_alpha else 0)


def test_dask_equals_local_bit_for_bit_on_the_torch_backend(client):
    # each worker copies the fold operators to its torch once and pins torch's threads as this process does
    pytest.importorskip("torch")
    X, Y = _data()
    kw = dict(alphas=np.logspace(-1, 4, 10), cv=5, chunk_voxels=64, fit_intercept=True, backend="torch")
    loc = RidgeCV(**kw).fit(X, Y)
    dsk = RidgeCV(executor="dask", client=client, **kw).fit(X, Y)
    for name in ("coef_", "intercept_", "best_alphas_", "cv_scores_per_alpha_"):
        np.testing.assert_array_equal(getattr(dsk, name), getattr(loc, name), err_msg=name)


def test_workers_started_with_other_blas_threads_still_equal_local(two_thread_client):
    from threadpoolctl import threadpool_limits

    X, Y = _data()
    kw = dict(alphas=np.logspace(-1, 4, 10), cv=5, chunk_voxels=64)
    with threadpool_limits(1):  # this process on 1 thread, the workers on 2: the fit's own pin decides
        loc = RidgeCV(**kw).fit(X, Y)
    dsk = RidgeCV(executor="dask", client=two_thread_client, **kw).fit(X, Y)
    np.testing.assert_array_equal(dsk.cv_scores_, loc.cv_scores_)
    np.testing.assert_array_equal(dsk.coef_, loc.coef_)


def test_blas_threads_is_checked():
    X, Y = _data()
    with pytest.raises(ValueError, match="blas_threads must be a positive int"):
        RidgeCV(blas_threads=0).fit(X, Y)


def test_dask_by_scheduler_address(client):
    X, Y = _data()
    kw = dict(alphas=[1.0, 100.0], cv=3, chunk_voxels=128)
    loc = RidgeCV(**kw).fit(X, Y)
    dsk = RidgeCV(executor="dask", client=client.scheduler.address, **kw).fit(X, Y)
    np.testing.assert_array_equal(dsk.coef_, loc.coef_)


def test_fit_many_whole_fits_on_dask_equal_local(client):
    from brainalign.encoding import fit_many

    X, Y = _data()
    rng = np.random.default_rng(4)
    spaces = {"a": X, "b": X[:, :10], "c": rng.standard_normal((150, 25)).astype(np.float32)}
    template = RidgeCV(alphas=np.logspace(-1, 4, 6), cv=3)
    runs = np.repeat(np.arange(5), 30)
    loc = fit_many(template, spaces, Y, runs=runs)
    dsk = fit_many(template, spaces, Y, runs=runs, executor="dask", client=client)
    assert list(dsk) == ["a", "b", "c"]
    for k in spaces:
        np.testing.assert_array_equal(dsk[k].coef_, loc[k].coef_)
        np.testing.assert_array_equal(dsk[k].best_alphas_, loc[k].best_alphas_)
        assert dsk[k].coef_.shape == (spaces[k].shape[1], 300)
    assert not hasattr(template, "coef_")  # the template is never fitted


def test_fit_many_on_dask_keeps_float64_outputs(client):
    """float64 X gives float64 outputs on dask as it does locally (X used to be cast to float32 for the trip)."""
    from brainalign.encoding import fit_many

    X, Y = _data()
    spaces = [X[:, :8].astype(np.float64), X[:, 8:12]]
    template = RidgeCV(alphas=[1.0, 100.0], cv=3)
    loc = fit_many(template, spaces, Y)
    dsk = fit_many(template, spaces, Y, executor="dask", client=client)
    assert [f.coef_.dtype for f in dsk] == [np.float64, np.float32] == [f.coef_.dtype for f in loc]
    np.testing.assert_array_equal(dsk[0].coef_, loc[0].coef_)
