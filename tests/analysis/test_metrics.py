"""Per-voxel metrics agree with scipy / scikit-learn to 1e-6 and are NaN-safe."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cosine
from scipy.stats import pearsonr
from sklearn.metrics import r2_score as sk_r2

from brainalign.analysis.metrics import cosine_similarity, pearson_r, r2_score


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, 7)).astype(np.float32) * 3 + 5
    b = (0.5 * a + rng.standard_normal((200, 7))).astype(np.float32)
    return a, b


def test_parity_with_references(pair):
    a, b = pair
    np.testing.assert_allclose(pearson_r(a, b), [pearsonr(a[:, j], b[:, j]).statistic for j in range(7)], atol=1e-6)
    np.testing.assert_allclose(r2_score(a, b), sk_r2(a, b, multioutput="raw_values"), atol=1e-6)
    np.testing.assert_allclose(cosine_similarity(a, b), [1 - cosine(a[:, j], b[:, j]) for j in range(7)], atol=1e-6)


def test_constant_columns_give_nan_without_warnings(pair):
    a, b = pair
    a = a.copy()
    a[:, 2] = 1.0
    b = b.copy()
    b[:, 3] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = pearson_r(a, b)
        r2 = r2_score(a, b)
        c = cosine_similarity(a, b)
    assert np.isnan(r[2]) and np.isnan(r[3]) and np.isnan(r2[2]) and np.isnan(c[3])
    assert np.isfinite(r[[0, 1, 4, 5, 6]]).all()


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="same|shape"):
        pearson_r(np.zeros((5, 2)), np.zeros((5, 3)))
