"""fit_predict.py, many.py and the resumable chunk store of executor.py, locally (the dask paths are
tests/encoding/test_executor.py): defaults, engines, clones, store fingerprints and resume (from mutmut survivors)."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from brainalign.encoding import fit_predict
from brainalign.encoding.estimators import RidgeCV
from brainalign.encoding.executor import ChunkStore, fit_fingerprint
from brainalign.encoding.many import fit_many
from brainalign.encoding.ridge import ChunkResult
from brainalign.encoding.splits import leave_one_run_out


def _data(n=48, p=6, v=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, v)) + rng.standard_normal((n, v))
    runs = np.repeat(np.arange(4), n // 4)
    return X, Y, runs


def test_ridge_fit_predict_equals_the_estimator_and_names_a_bad_engine(monkeypatch):
    X, Y, runs = _data()
    folds = leave_one_run_out(runs[:36])
    alphas = [0.1, 10.0, 1e3]
    pred, best = fit_predict.ridge_fit_predict(X[:36], Y[:36], X[36:], alphas, folds)
    ref = RidgeCV(alphas=np.asarray(alphas), cv=folds).fit(X[:36].astype(np.float32), Y[:36].astype(np.float32))
    assert pred.dtype == np.float64 and best.dtype == np.float64 and best.shape == (5,)
    np.testing.assert_array_equal(pred, ref.predict(X[36:].astype(np.float32)).astype(np.float64))
    np.testing.assert_array_equal(best, ref.best_alphas_)
    monkeypatch.setattr(fit_predict, "ENGINE", "himalaya")  # engine=None follows ENGINE
    him, best_h = fit_predict.ridge_fit_predict(X[:36], Y[:36], X[36:], alphas, folds)
    np.testing.assert_allclose(him, pred, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(best_h, best, rtol=1e-6)  # himalaya keeps alphas in float32
    # the given folds decide the alphas (one tiny training run favours strong penalties), with either engine
    odd = [(np.arange(6), np.arange(6, 36))]
    for engine in ("brainalign", "himalaya"):
        _, b_odd = fit_predict.ridge_fit_predict(X[:36], Y[:36], X[36:], alphas, odd, engine=engine)
        ref = RidgeCV(alphas=np.asarray(alphas), cv=odd).fit(X[:36].astype(np.float32), Y[:36].astype(np.float32))
        np.testing.assert_allclose(b_odd, ref.best_alphas_, rtol=1e-6)
        assert not np.array_equal(np.round(b_odd, 3), np.round(best, 3)), engine
    with pytest.raises(ValueError, match=r"^engine='sklearn'; use 'brainalign' or 'himalaya'\.$"):
        fit_predict.ridge_fit_predict(X[:36], Y[:36], X[36:], alphas, folds, engine="sklearn")
    monkeypatch.setattr(fit_predict, "ENGINE", "nope")
    with pytest.raises(ValueError, match=r"^engine='nope'"):
        fit_predict.ridge_fit_predict(X[:36], Y[:36], X[36:], alphas, folds)


def test_banded_ridge_fit_predict_defaults():
    from brainalign.encoding.banded import BandedRidgeCV

    X, Y, runs = _data(p=6)
    folds = leave_one_run_out(runs[:36])
    Xs = [X[:, :3], X[:, 3:]]
    pred, best = fit_predict.banded_ridge_fit_predict([x[:36] for x in Xs], Y[:36], [x[36:] for x in Xs],
                                                      [1.0, 100.0], folds)
    ref = BandedRidgeCV(alphas=[1.0, 100.0], cv=folds, n_iter=20, random_state=0).fit(
        [x[:36] for x in Xs], Y[:36].astype(np.float32))
    assert pred.dtype == np.float64 and best.dtype == np.float64
    np.testing.assert_array_equal(pred, np.asarray(ref.predict([x[36:] for x in Xs]), dtype=np.float64))
    np.testing.assert_array_equal(best, ref.best_alphas_)
    for kw in (dict(n_iter=3), dict(seed=1)):  # both reach the estimator
        other, _ = fit_predict.banded_ridge_fit_predict([x[:36] for x in Xs], Y[:36], [x[36:] for x in Xs],
                                                        [1.0, 100.0], folds, **kw)
        ref = BandedRidgeCV(alphas=[1.0, 100.0], cv=folds, n_iter=kw.get("n_iter", 20),
                            random_state=kw.get("seed", 0)).fit([x[:36] for x in Xs], Y[:36].astype(np.float32))
        np.testing.assert_array_equal(other, np.asarray(ref.predict([x[36:] for x in Xs]), dtype=np.float64))
        assert not np.array_equal(other, pred), kw


def test_fit_many_local_equals_one_fit_per_space_and_keeps_the_template():
    X, Y, _ = _data()
    runs = np.repeat(np.arange(4), [6, 6, 18, 18])  # run folds differ from KFold(2) on these lengths
    est = RidgeCV(alphas=[0.1, 1.0, 100.0, 1e4], cv=2)
    Xs = {"a": X[:, :2], "b": X[:, 2:]}
    fits = fit_many(est, Xs, Y, runs=runs)
    assert list(fits) == ["a", "b"] and not hasattr(est, "coef_")
    for name, Xi in Xs.items():
        ref = RidgeCV(alphas=[0.1, 1.0, 100.0, 1e4], cv=2).fit(Xi, Y.astype(np.float32), runs=runs)
        np.testing.assert_array_equal(fits[name].coef_, ref.coef_)
        np.testing.assert_array_equal(fits[name].cv_scores_, ref.cv_scores_)
        no_runs = RidgeCV(alphas=[0.1, 1.0, 100.0, 1e4], cv=2).fit(Xi, Y.astype(np.float32))
        assert not np.array_equal(fits[name].cv_scores_, no_runs.cv_scores_)
        assert fits[name].executor == "local"
    as_list = fit_many(est, list(Xs.values()), Y, runs=runs)
    assert isinstance(as_list, list) and len(as_list) == 2
    np.testing.assert_array_equal(as_list[1].coef_, fits["b"].coef_)
    with pytest.raises(ValueError, match=r"^executor must be 'local' or 'dask', got 'ray'\.$"):
        fit_many(est, Xs, Y, executor="ray")
    for empty in ([], {}):
        with pytest.raises(ValueError, match=r"^Xs is empty; give at least one feature space\.$"):
            fit_many(est, empty, Y)


def test_fit_fingerprint_identifies_the_fit():
    X, Y, runs = _data()
    folds = leave_one_run_out(runs)
    fp = fit_fingerprint(X, Y.shape, np.array([1.0, 2.0]), folds, local_alpha=True, chunk=16, tag=None, obj=object)
    assert fp["X_shape"] == [48, 6] and fp["Y_shape"] == [48, 5]
    assert fp["local_alpha"] is True and fp["chunk"] == 16 and fp["tag"] is None and fp["obj"] == str(object)
    json.dumps(fp)
    same = fit_fingerprint(X.astype(np.float32), (48, 5), [1, 2], [(np.asarray(a, np.int32), b) for a, b in folds],
                           local_alpha=True, chunk=16, tag=None, obj=object)
    assert same == fp  # the digest is of float32 X, float64 alphas and int64 folds
    for other in (fit_fingerprint(X + 1, Y.shape, [1.0, 2.0], folds),
                  fit_fingerprint(X, Y.shape, [1.0, 3.0], folds),
                  fit_fingerprint(X, Y.shape, [1.0, 2.0], folds[::-1])):
        assert other["inputs_sha256"] != fp["inputs_sha256"]


def _chunk(start, stop, refit=False):
    rng = np.random.default_rng(start)
    c = stop - start
    return ChunkResult(start, stop, rng.standard_normal((3, c)), np.ones(c, bool),
                       rng.integers(0, 3, c) if refit else None,
                       rng.standard_normal((4, c)).astype(np.float32) if refit else None,
                       rng.standard_normal(c).astype(np.float32) if refit else None)


def test_chunk_store_round_trip_names_and_refusal(tmp_path):
    fp = dict(inputs_sha256="x", X_shape=[2, 2], Y_shape=[2, 9])
    store = ChunkStore(tmp_path / "s", fp)
    assert json.loads((tmp_path / "s" / "meta.json").read_text()) == fp
    assert ChunkStore(tmp_path / "deep" / "er", fp).path.is_dir()  # parents are created
    res = _chunk(0, 4, refit=True)
    store.save("refit", res)
    assert (tmp_path / "s" / "refit_0000000000_0000000004.npz").is_file()
    back = store.load("refit", 0, 4)
    assert (back.start, back.stop) == (0, 4) and store.n_loaded == 1
    for k in ("mean_scores", "valid", "best_index", "coef", "intercept"):
        np.testing.assert_array_equal(getattr(back, k), getattr(res, k))
    store.save("fit", _chunk(4, 9))
    part = store.load("fit", 4, 9)
    assert part.best_index is None and part.coef is None and part.intercept is None
    with pytest.raises(FileNotFoundError, match=r"^chunk .*fit_0000000009_0000000012\.npz is missing or corrupt\.$"):
        store.load("fit", 9, 12)
    assert ChunkStore(tmp_path / "s", fp).n_loaded == 0  # the same fit reopens its store
    import re

    with pytest.raises(ValueError, match=rf"^store={re.escape(repr(str(tmp_path / 's')))} holds chunks of a different fit \(differs in \['X_shape', "
                                         r"'extra'\]\); give an empty directory, or delete this one to start over\.$"):
        ChunkStore(tmp_path / "s", dict(fp, X_shape=[3, 2], extra=1))


def test_chunk_store_wrap_computes_only_the_missing_chunks_in_order(tmp_path):
    store = ChunkStore(tmp_path, dict(inputs_sha256="y"))
    asked = []

    def mapper(Y, bounds, shared):
        assert Y == "Y"  # the data reach the wrapped mapper
        asked.append(list(bounds))
        for b in bounds:
            yield _chunk(*b, refit=shared.get("best_index") is not None)

    bounds = [(0, 3), (3, 6), (6, 8)]
    first = list(store.wrap(mapper)("Y", bounds, {}))
    assert asked == [bounds] and [(r.start, r.stop) for r in first] == bounds
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["fit_0000000000_0000000003.npz",
                                                               "fit_0000000003_0000000006.npz",
                                                               "fit_0000000006_0000000008.npz"]
    (tmp_path / "fit_0000000003_0000000006.npz").unlink()
    again = list(store.wrap(mapper)("Y", bounds, {}))
    assert asked[1] == [(3, 6)] and store.n_loaded == 2
    assert [(r.start, r.stop) for r in again] == bounds
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.mean_scores, b.mean_scores)
    asked.clear()
    list(store.wrap(mapper)("Y", bounds, {}))
    assert asked == []  # everything on disk: the mapper is not called
    refit = list(store.wrap(mapper)("Y", bounds[:1], {"best_index": np.zeros(3)}))
    assert asked == [[(0, 3)]] and refit[0].coef is not None  # the refit pass has its own entries
    assert (tmp_path / "refit_0000000000_0000000003.npz").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(store.wrap(mapper)("Y", bounds, {}))
    damaged = tmp_path / "fit_0000000000_0000000003.npz"
    damaged.write_bytes(damaged.read_bytes()[:-5])
    with pytest.warns(UserWarning, match=r"^encoding chunk .*fit_0000000000_0000000003\.npz is corrupt \(checksum "
                                         r"mismatch\); recomputing it\.$"):
        list(store.wrap(mapper)("Y", bounds, {}))
    assert asked[-1] == [(0, 3)]
