"""executor="dask": a 2-worker LocalCluster gives the local executor's results bit for bit."""
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


@pytest.mark.parametrize("local_alpha", [True, False])
def test_dask_local_cluster_equals_local_bit_for_bit(client, local_alpha):
    X, Y = _data()
    kw = dict(alphas=np.logspace(-1, 4, 10), cv=5, chunk_voxels=64, fit_intercept=True, local_alpha=local_alpha)
    loc = RidgeCV(**kw).fit(X, Y)
    dsk = RidgeCV(executor="dask", client=client, **kw).fit(X, Y)
    for name in ("coef_", "intercept_", "best_alphas_", "cv_scores_", "cv_scores_per_alpha_"):
        np.testing.assert_array_equal(getattr(dsk, name), getattr(loc, name), err_msg=name)
    assert np.unique(loc.best_alphas_).size > (1 if local_alpha else 0)


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
