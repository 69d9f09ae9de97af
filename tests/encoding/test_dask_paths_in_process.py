"""The dask paths of RidgeCV, DaskChunkMapper and fit_many against a client that computes at once in this process,
so that each is checked in milliseconds: results equal the local executor's, the arguments reach ``dask_client``,
the in-flight window is what the docstring says, every future is released, and ``store=`` records the whole fit.

``_SyncClient`` has the part of ``distributed.Client``'s API these paths use (``scheduler_info``, ``scatter``,
``submit``, ``gather``, futures' ``result``/``release``) and records how it is called. No real cluster here: a
dask cluster's threads in the parent process deadlock the forked children of mutation runs (mutmut forks per
mutant), and this file is the fast selection of those runs (benchmarks/README.md, "Mutation testing").
``tests/encoding/test_executor.py`` checks the same results on a real LocalCluster of worker processes.
"""
from __future__ import annotations

import json
from contextlib import contextmanager

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from brainalign.encoding import executor as executor_module
from brainalign.encoding import many as many_module
from brainalign.encoding.estimators import RidgeCV
from brainalign.encoding.executor import ChunkStore, DaskChunkMapper, fit_fingerprint
from brainalign.encoding.many import fit_many
from brainalign.encoding.splits import make_folds


class _Future:
    def __init__(self, client, value):
        self.client, self.value, self.released = client, value, False

    def result(self):
        assert not self.released, "result() of a released future"
        return self.value

    def release(self):
        self.released = True


class _SyncClient:
    """``distributed.Client`` as these paths use it, computing each task when it is submitted."""

    def __init__(self, n_workers=1):
        self.n_workers, self.calls, self.futures = n_workers, [], []

    def _future(self, value):
        f = _Future(self, value)
        self.futures.append(f)
        return f

    def scheduler_info(self):
        return {"workers": {f"tcp://w{i}": {} for i in range(self.n_workers)}}

    def scatter(self, data, broadcast=False, hash=True):
        self.calls.append(("scatter", type(data).__name__, broadcast, hash))
        return [self._future(d) for d in data] if isinstance(data, list) else self._future(data)

    def submit(self, fn, *args, pure=True):
        self.calls.append(("submit", fn.__name__, pure))
        assert all(not a.released for a in args if isinstance(a, _Future)), "a task got a released future"
        return self._future(fn(*[a.value if isinstance(a, _Future) else a for a in args]))

    def gather(self, futures):
        return [f.result() for f in futures]


@pytest.fixture
def client():
    return _SyncClient(1)


@pytest.fixture
def client2():
    return _SyncClient(2)


def _data(n=40, p=5, v=22, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, v)) * 0.5 + rng.standard_normal((n, v))
    return X.astype(dtype), Y.astype(np.float32)


def _recording_dask_client(calls, client):
    """Stands in for ``dask_client`` (same signature and defaults): records its arguments, yields ``client``."""

    @contextmanager
    def fake(n_workers=2, scheduler=None, blas_threads=1, *, keep=True):
        calls.append(dict(n_workers=n_workers, scheduler=scheduler, blas_threads=blas_threads, keep=keep))
        yield client

    return fake


_FITTED = ("coef_", "intercept_", "best_alphas_", "cv_scores_", "cv_scores_per_alpha_", "valid_voxels_")


@pytest.mark.parametrize("local_alpha", [True, False])
def test_ridgecv_on_dask_equals_local_bit_for_bit(client, local_alpha):
    X, Y = _data()
    Y[:, 3] = 1.0  # a constant voxel travels through both passes as excluded
    kw = dict(alphas=np.logspace(-1, 3, 6), cv=4, chunk_voxels=5, fit_intercept=True, local_alpha=local_alpha)
    with pytest.warns(UserWarning):
        loc = RidgeCV(**kw).fit(X, Y)
    with pytest.warns(UserWarning):
        dsk = RidgeCV(executor="dask", client=client, **kw).fit(X, Y)
    for name in _FITTED:
        np.testing.assert_array_equal(getattr(dsk, name), getattr(loc, name), err_msg=name)
    assert dsk.n_excluded_voxels_ == loc.n_excluded_voxels_ == 1


def test_ridgecv_passes_its_dask_arguments_to_the_client(client, monkeypatch):
    calls = []
    monkeypatch.setattr(executor_module, "dask_client", _recording_dask_client(calls, client))
    X, Y = _data()
    kw = dict(alphas=[1.0, 10.0], cv=3, chunk_voxels=8)
    ref = RidgeCV(**kw).fit(X, Y)
    est = RidgeCV(executor="dask", client="tcp://10.0.0.1:8786", n_workers=3, blas_threads=2, **kw).fit(X, Y)
    assert calls == [dict(n_workers=3, scheduler="tcp://10.0.0.1:8786", blas_threads=2, keep=False)]
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-5, atol=1e-6)  # 2 BLAS threads may round differently
    calls.clear()
    RidgeCV(executor="dask", **kw).fit(X, Y)  # the defaults: a LocalCluster of 2 workers, 1 BLAS thread
    assert calls == [dict(n_workers=2, scheduler=None, blas_threads=1, keep=False)]


def _chunk_fn(Yc, start, shared):
    return start, Yc.shape[1], float(Yc.sum()), shared["tag"]


def _spy_loads(monkeypatch):
    loads = []
    real = executor_module.load_chunk

    def load_chunk(Y, start, stop):
        loads.append((start, stop))
        return real(Y, start, stop)

    monkeypatch.setattr(executor_module, "load_chunk", load_chunk)
    monkeypatch.setattr(executor_module, "run_chunk", _chunk_fn)
    return loads


@pytest.mark.parametrize("fixture, max_in_flight, window", [("client", None, 2), ("client2", None, 4),
                                                            ("client", 3, 3), ("client2", 1, 1)])
def test_chunk_mapper_keeps_its_window_of_chunks_in_flight_and_yields_in_order(
        request, monkeypatch, fixture, max_in_flight, window):
    """At most ``max_in_flight`` chunks (default 2 per worker) are read and sent ahead of the one collected."""
    c = request.getfixturevalue(fixture)
    loads = _spy_loads(monkeypatch)
    Y = np.arange(60, dtype=np.float32).reshape(3, 20)
    bounds = [(i, i + 2) for i in range(0, 20, 2)]
    it = DaskChunkMapper(c, max_in_flight=max_in_flight)(Y, bounds, {"tag": "t"})
    first = next(it)
    assert loads == bounds[:window]
    rest = list(it)
    assert loads == bounds
    assert [first, *rest] == [(a, b - a, float(Y[:, a:b].sum()), "t") for a, b in bounds]
    # the shared operators go to every worker once, under a fresh name (not a content hash: the two passes of a
    # shared-alpha fit would collide); each chunk is scattered and submitted as its own impure task
    assert c.calls[0] == ("scatter", "list", True, False)
    assert c.calls[1:] == [("scatter", "ndarray", False, False), ("submit", "_chunk_fn", False)] * len(bounds)
    tasks = [f for f in c.futures if isinstance(f.value, tuple)]
    assert len(tasks) == len(bounds) and all(f.released for f in tasks)  # results are not kept on the cluster
    assert c.futures[0].released  # nor the shared operators, once the last chunk is in


def test_chunk_mapper_defaults_and_client_arguments(client, monkeypatch):
    calls = []
    monkeypatch.setattr(executor_module, "dask_client", _recording_dask_client(calls, client))
    _spy_loads(monkeypatch)
    m = DaskChunkMapper()
    assert (m.client, m.n_workers, m.max_in_flight) == (None, 2, None)
    Y = np.ones((2, 4), dtype=np.float32)
    assert list(m(Y, [(0, 4)], {"tag": 1})) == [(0, 4, 8.0, 1)]
    assert calls == [dict(n_workers=2, scheduler=None, blas_threads=1, keep=False)]
    calls.clear()
    list(DaskChunkMapper("tcp://h:1", n_workers=5)(Y, [(0, 2), (2, 4)], {"tag": 1, "blas_threads": 3}))
    assert calls == [dict(n_workers=5, scheduler="tcp://h:1", blas_threads=3, keep=False)]
    assert list(DaskChunkMapper(client)(Y, [], {"tag": 1})) == []  # no chunk, no task


def test_store_records_the_whole_fit_and_a_dask_fit_resumes_locally(client, tmp_path):
    X, Y = _data(dtype=np.float64)
    kw = dict(alphas=[0.5, 5.0, 50.0], cv=3, fit_intercept=True, local_alpha=False, chunk_voxels=6, blas_threads=2)
    est = RidgeCV(executor="dask", client=client, store=tmp_path / "s", **kw).fit(X, Y)
    assert isinstance(est.store_, ChunkStore) and est.store_.path == tmp_path / "s"
    folds = make_folds(3, 40, None)
    expected = fit_fingerprint(X.astype(np.float32), (40, 22), np.array([0.5, 5.0, 50.0]), folds, fit_intercept=True,
                               local_alpha=False, chunk_voxels=6, blas_threads=2)
    assert json.loads((tmp_path / "s" / "meta.json").read_text()) == json.loads(json.dumps(expected))
    again = RidgeCV(store=tmp_path / "s", **kw).fit(X, Y)  # local now, same fit: every chunk is read back
    assert again.store_.n_loaded == 2 * 4  # 4 chunks in each of the two passes (shared alpha)
    for name in _FITTED:
        np.testing.assert_array_equal(getattr(again, name), getattr(est, name), err_msg=name)
    assert RidgeCV(**kw).fit(X, Y).store_ is None


def test_store_fingerprint_names_a_non_numpy_backend(tmp_path):
    pytest.importorskip("torch")
    X, Y = _data()
    RidgeCV(alphas=[1.0, 10.0], cv=3, store=tmp_path / "t", backend="torch").fit(X, Y)
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    assert meta["backend"] == "torch"
    RidgeCV(alphas=[1.0, 10.0], cv=3, store=tmp_path / "n").fit(X, Y)
    assert "backend" not in json.loads((tmp_path / "n" / "meta.json").read_text())  # old stores stay valid
    with pytest.raises(ValueError, match=r"differs in \['backend'\]"):  # a numpy fit does not reuse torch's chunks
        RidgeCV(alphas=[1.0, 10.0], cv=3, store=tmp_path / "t").fit(X, Y)


class _MeanModel(BaseEstimator):
    """The smallest estimator fit_many accepts: no ``blas_threads`` attribute."""

    def __init__(self, executor="dask", shift=0.0):
        self.executor = executor
        self.shift = shift

    def fit(self, X, y, runs=None):
        self.fit_executor_ = self.executor
        self.coef_ = np.asarray(X).T @ np.asarray(y) + self.shift
        self.runs_ = runs
        self.dtypes_ = (np.asarray(X).dtype, np.asarray(y).dtype)
        return self


def test_fit_many_on_dask_equals_local_and_keeps_x_dtype(client):
    X, Y = _data(dtype=np.float64)
    rng = np.random.default_rng(1)
    spaces = {"b": X[:, :2], "a": X, "c": rng.standard_normal((40, 3))}
    runs = np.repeat(np.arange(4), 10)
    template = RidgeCV(alphas=[0.1, 10.0, 1e3], cv=2, fit_intercept=True)
    loc = fit_many(template, spaces, Y, runs=runs)
    dsk = fit_many(template, spaces, Y, runs=runs, executor="dask", client=client)
    assert list(dsk) == ["b", "a", "c"] and not hasattr(template, "coef_")
    for k in spaces:
        assert dsk[k].executor == "local"  # each fit runs locally in its worker
        for name in _FITTED:
            np.testing.assert_array_equal(getattr(dsk[k], name), getattr(loc[k], name), err_msg=f"{k}.{name}")
        assert dsk[k].coef_.dtype == np.float64  # float64 X: float64 outputs, as locally
    as_list = fit_many(template, list(spaces.values()), Y, runs=runs, executor="dask", client=client)
    np.testing.assert_array_equal(as_list[2].coef_, loc["c"].coef_)


def test_fit_many_passes_its_dask_arguments(client, monkeypatch):
    calls = []
    monkeypatch.setattr(many_module, "dask_client", _recording_dask_client(calls, client))
    X, Y = _data()
    Xs = [X, X[:, :2]]
    runs = np.repeat(np.arange(4), 10)
    fits = fit_many(_MeanModel(shift=1.5), Xs, Y.astype(np.float64), runs=runs, executor="dask", client="tcp://h:2",
                    n_workers=3)
    assert calls == [dict(n_workers=3, scheduler="tcp://h:2", blas_threads=1, keep=False)]
    # Y goes to every worker once (each task may run on any of them); one impure task per feature space
    assert client.calls == [("scatter", "ndarray", True, False)] + [("submit", "_fit_one", False)] * 2
    for f, Xi in zip(fits, Xs):
        assert f.fit_executor_ == "local" and f.shift == 1.5
        np.testing.assert_array_equal(f.runs_, runs)
        assert f.dtypes_ == (np.float32, np.float32)  # X as given; Y shipped once, as float32 (half the bytes)
        np.testing.assert_allclose(f.coef_, Xi.T @ Y + 1.5, rtol=1e-5)
    calls.clear()
    fit_many(RidgeCV(cv=2, blas_threads=4), Xs, Y, executor="dask")
    assert calls == [dict(n_workers=2, scheduler=None, blas_threads=4, keep=False)]


def test_memory_preflight_budgets_the_chunks_in_flight_exactly(client):
    """The estimate is of one chunk in flight locally and 3 per worker on dask, of at most the voxels there are:
    a budget of exactly that peak is accepted, one byte less is refused before anything is computed."""
    from brainalign.encoding import MemoryPreflightError
    from brainalign.encoding.memory import estimate_fit_bytes

    X, Y = _data(n=40, p=5, v=30)
    folds = make_folds(3, 40, None)
    for executor, n_workers, in_flight in (("local", 2, 1), ("dask", 2, 6), ("dask", 1, 3)):
        peak = estimate_fit_bytes(40, 5, 30, 2, folds, 30, in_flight).peak  # chunk_voxels 1000 > 30 voxels
        kw = dict(alphas=[1.0, 10.0], cv=3, chunk_voxels=1000, executor=executor, client=client, n_workers=n_workers)
        RidgeCV(memory_limit=peak, **kw).fit(X, Y)
        with pytest.raises(MemoryPreflightError):
            RidgeCV(memory_limit=peak - 1, **kw).fit(X, Y)
    RidgeCV(alphas=[1.0, 10.0], cv=3, memory_limit=None).fit(X, Y)  # None: no preflight


def test_the_local_executor_starts_no_cluster(monkeypatch):
    """executor="local" (the default) never asks for a dask client, in RidgeCV and in fit_many."""

    @contextmanager
    def no_cluster(*args, **kwargs):
        raise AssertionError("a dask client was asked for by a local fit")
        yield

    monkeypatch.setattr(executor_module, "dask_client", no_cluster)
    monkeypatch.setattr(many_module, "dask_client", no_cluster)
    X, Y = _data()
    ref = RidgeCV(cv=3, alphas=[1.0, 10.0]).fit(X, Y)
    (fit,) = fit_many(RidgeCV(cv=3, alphas=[1.0, 10.0]), [X], Y)
    np.testing.assert_array_equal(fit.coef_, ref.coef_)
    fit_many(_MeanModel(executor="local"), [X], Y, executor="local")
