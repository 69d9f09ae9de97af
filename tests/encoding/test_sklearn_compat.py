"""RidgeCV as scikit-learn's own estimator checks see it, and its output dtype (issue 19 §3).

``BandedRidgeCV`` is not run through ``parametrize_with_checks``: its ``fit``
takes a list of feature spaces ``Xs`` (one array per band), not one ``X``,
so none of scikit-learn's checks can call it.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from sklearn.base import is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

from brainalign.encoding import RidgeCV

#: none: every check applies and passes (check_array_api_input is skipped by
#: scikit-learn itself unless SCIPY_ARRAY_API=1 is set).
EXPECTED_FAILED: dict[str, str] = {}


@parametrize_with_checks(
    [RidgeCV(), RidgeCV(alphas=(0.1, 10.0, 1000.0), cv=3, fit_intercept=True)],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _data(n=40, p=4, v=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, v)) + rng.standard_normal((n, v))
    return X.astype(dtype), Y.astype(dtype)


def test_tags_and_unfitted_predict():
    tags = get_tags(RidgeCV())
    assert tags.target_tags.multi_output and not tags.input_tags.sparse and is_regressor(RidgeCV())
    X, _ = _data()
    with pytest.raises(NotFittedError, match="RidgeCV instance is not fitted yet"):
        RidgeCV().predict(X)


@pytest.mark.parametrize("sparse", [scipy.sparse.csr_matrix, scipy.sparse.csr_array])
def test_sparse_input_refused_with_the_fix(sparse):
    X, Y = _data()
    with pytest.raises(TypeError, match=r"Sparse data was passed for X.*X\.toarray\(\)"):
        RidgeCV(cv=3).fit(sparse(X), Y)
    b = RidgeCV(cv=3).fit(X, Y)
    with pytest.raises(TypeError, match="Sparse data was passed for X"):
        b.predict(sparse(X))
    with pytest.raises(TypeError, match="Sparse data was passed for y"):
        RidgeCV(cv=3).fit(X, sparse(Y))


def test_object_dtype_of_numbers_accepted_like_float():
    X, Y = _data(dtype=np.float64)
    a = RidgeCV(cv=3).fit(X.astype(object), Y)
    b = RidgeCV(cv=3).fit(X, Y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    X_bad = X.astype(object)
    X_bad[0, 0] = "abc"
    with pytest.raises(ValueError, match="could not convert string to float"):
        RidgeCV(cv=3).fit(X_bad, Y)


@pytest.mark.parametrize(
    "X_fn, match",
    [
        (lambda X: X[:, :0], r"X is empty \(shape \(40, 0\)\): 0 feature\(s\) .* minimum of 1 is required"),
        (lambda X: X[:0], r"X is empty \(shape \(0, 4\)\): 0 sample\(s\)"),
        (lambda X: X + 1j, r"Complex data not supported; pass X\.real"),
        (lambda X: X[:, 0], r"Reshape your data with X\.reshape\(-1, 1\)"),
    ],
)
def test_sklearn_phrases_in_brainalign_messages(X_fn, match):
    X, Y = _data()
    with pytest.raises(ValueError, match=match):
        RidgeCV(cv=3).fit(X_fn(X), Y[: len(X_fn(X))] if X_fn(X).ndim == 2 else Y)


def test_y_none_and_feature_count_messages():
    X, Y = _data()
    with pytest.raises(ValueError, match="requires y to be passed, but the target y is None"):
        RidgeCV(cv=3).fit(X, None)
    b = RidgeCV(cv=3).fit(X, Y)
    assert b.n_features_in_ == 4
    with pytest.raises(ValueError, match="X has 3 features, but RidgeCV is expecting 4 features as input"):
        b.predict(X[:, :3])


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_output_dtype_follows_x_and_values_do_not_depend_on_it(fit_intercept):
    """float64 X gives float64 coef_/intercept_/predictions (himalaya's rule); float32 or int X gives float32."""
    X, Y = _data(dtype=np.float64)
    kw = dict(alphas=(0.1, 1.0, 10.0), cv=4, fit_intercept=fit_intercept)
    b64 = RidgeCV(**kw).fit(X, Y)
    b32 = RidgeCV(**kw).fit(X.astype(np.float32), Y)
    bint = RidgeCV(**kw).fit(np.round(X * 10).astype(np.int64), Y)
    assert b64.coef_.dtype == np.float64 and b64.predict(X).dtype == np.float64
    assert b32.coef_.dtype == np.float32 and b32.predict(X).dtype == np.float32
    assert bint.coef_.dtype == np.float32
    if fit_intercept:
        assert b64.intercept_.dtype == np.float64 and b32.intercept_.dtype == np.float32
    # the solver is the same float32 one: the same alphas, coefficients equal to float32 rounding
    np.testing.assert_array_equal(b64.best_alphas_, b32.best_alphas_)
    np.testing.assert_allclose(b64.coef_, b32.coef_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(b64.predict(X), b32.predict(X), rtol=0, atol=1e-5)
    assert b64.score(X, Y).dtype == np.float64


def test_runs_argument_still_makes_run_folds():
    X, Y = _data(n=40)
    runs = np.repeat([0, 1, 2, 3], 10)
    b = RidgeCV(cv=4).fit(X, Y, runs=runs)
    assert [np.unique(runs[va]).tolist() for _, va in b.folds_] == [[0], [1], [2], [3]]


def test_banded_unfitted_predict_raises_not_fitted_error():
    from brainalign.encoding import BandedRidgeCV

    X, _ = _data()
    with pytest.raises(NotFittedError, match="BandedRidgeCV instance is not fitted yet; call fit"):
        BandedRidgeCV().predict([X, X])
