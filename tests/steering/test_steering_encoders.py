from __future__ import annotations

import numpy as np
import pytest

from brainalign.steering import encoders


def _latent_study(n_items=40, n_layers=4, d=12, n_vox=30, n_subjects=4, peak=2, seed=0, noises=None):
    rng = np.random.default_rng(seed)
    reps = rng.standard_normal((n_items, n_layers, d))
    for k in range(n_layers):  # neighbouring layers share part of the signal
        if k != peak:
            reps[:, k] = 0.3 * reps[:, peak] + rng.standard_normal((n_items, d))
    noises = noises or [1.0] * n_subjects
    Ys = [reps[:, peak] @ rng.standard_normal((d, n_vox)) + s * 2.0 * rng.standard_normal((n_items, n_vox))
          for s in noises]
    labels = np.repeat(["syllogism", "transitive"], n_items // 2)
    return reps.astype(np.float32), Ys, labels


def test_shared_alpha_is_the_leave_one_out_minimiser():
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((30, 5)), rng.standard_normal((30, 4))
    Y[:, :2] += X[:, :2] * 3
    enc = encoders.fit_encoder(X, Y)
    from sklearn.linear_model import Ridge

    def loo(alpha):
        err = 0.0
        for i in range(30):
            m = np.arange(30) != i
            err += ((Ridge(alpha=alpha).fit(X[m], Y[m]).predict(X[i:i + 1]) - Y[i]) ** 2).sum()
        return err

    best = min(encoders.SEED_ALPHAS, key=loo)
    assert np.all(enc.alpha == best)
    ref = Ridge(alpha=best).fit(X, Y)
    np.testing.assert_allclose(enc.predict(X), ref.predict(X), atol=1e-8)


def test_per_voxel_alphas_follow_voxel_noise():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 6))
    W = rng.standard_normal((6, 2))
    Y = X @ W + np.c_[0.05 * rng.standard_normal(60), 20 * rng.standard_normal(60)]
    enc = encoders.fit_encoder(X, Y, alphas=np.logspace(-3, 4, 15), alpha_mode="per_voxel")
    assert enc.alpha[0] < enc.alpha[1]
    np.testing.assert_allclose(enc.coef[:, 0], W[:, 0], atol=0.05)


def test_predictivity_finds_the_planted_layer_and_beats_random_features():
    reps, Ys, labels = _latent_study()
    res = encoders.neural_predictivity(reps, Ys, labels)
    assert res["best_layer"] == 2
    assert res["subject_curves"].shape == (4, 4) and np.isfinite(res["mad"])
    rand = encoders.neural_predictivity(encoders.random_features(40, 4, 12, seed=3), Ys, labels)
    print(f"planted layer score {res['score']:.3f} vs random features {rand['score']:.3f}")
    assert res["score"] > rand["score"] + 0.3


def test_untrained_model_control_scores_lower_on_planted_brains():
    from steering_fixtures import planted
    from brainalign.steering.hooks import last_token_states
    from brainalign.steering.models import untrained_copy

    st = planted(0)
    ours = encoders.neural_predictivity(st.attention, st.subjects_Y, st.task_labels)
    fresh = untrained_copy(st.model, seed=7)
    other = last_token_states(fresh, st.tokenizer, st.prompts, kinds=("attention",))["attention"]
    ctrl = encoders.neural_predictivity(other, st.subjects_Y, st.task_labels)
    print(f"trained-planted {ours['score']:.3f} vs untrained {ctrl['score']:.3f}")
    assert ours["best_layer"] == st.layer
    assert ours["score"] > ctrl["score"] + 0.1


def test_ceiling_loops_over_every_subject_and_orders_by_noise():
    reps, Ys, labels = _latent_study(n_items=40, n_subjects=4, noises=[0.3, 0.3, 1.5, 1.5], seed=4)
    ceil = encoders.deductive_ceiling(Ys, labels, n_bootstrap=20)
    assert len(ceil) == 4 and all(c.shape == (30,) for c in ceil)
    med = [float(np.median(c)) for c in ceil]
    assert min(med[:2]) > max(med[2:])
    assert all(0 <= m <= 1 for m in med)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="same n_items"):
        encoders.fit_encoder(np.zeros((5, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="alpha_mode"):
        encoders.fit_encoder(np.zeros((5, 2)), np.zeros((5, 3)), alpha_mode="banded")
    with pytest.raises(ValueError, match="reps has shape"):
        encoders.neural_predictivity(np.zeros((5, 2)), [np.zeros((5, 3))], np.zeros(5))
    with pytest.raises(ValueError, match="at least 3"):
        encoders.deductive_ceiling([np.zeros((5, 3))] * 2, np.zeros(5))


def _typed_world(type_offset: float, seed: int = 0, n_items: int = 60, d: int = 10, n_vox: int = 25):
    """reps carry a reasoning-type direction and item detail; voxels respond to the item detail (weakly) and, with
    ``type_offset`` > 0, to the type itself (strongly)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(["syllogism", "transitive"], n_items // 2)
    sign = np.where(labels == "syllogism", -1.0, 1.0)
    item = rng.standard_normal((n_items, d))
    reps = np.concatenate([item, sign[:, None] * np.ones((1, 2))], axis=1)[:, None, :]  # one layer
    Ys = [item @ rng.standard_normal((d, n_vox)) * 0.25 + type_offset * sign[:, None] * rng.standard_normal(n_vox)
          + rng.standard_normal((n_items, n_vox)) for _ in range(3)]
    return reps.astype(np.float32), Ys, labels


def test_within_type_predictivity_drops_only_when_the_brain_separates_the_types():
    # row 12: predictivity over all items can come from the between-type difference alone; within each type it
    # cannot. Planted type offset → all-items score far above within-type; no offset → the two agree.
    reps, Ys, labels = _typed_world(type_offset=3.0)
    agg = encoders.neural_predictivity(reps, Ys, labels, n_folds=5)["score"]
    within = encoders.within_type_predictivity(reps, Ys, labels, n_folds=5)
    assert set(within) == {"syllogism", "transitive"}
    assert agg > 0.7 and all(agg - w["score"] > 0.3 for w in within.values()), (agg, within)
    reps, Ys, labels = _typed_world(type_offset=0.0)
    agg = encoders.neural_predictivity(reps, Ys, labels, n_folds=5)["score"]
    within = encoders.within_type_predictivity(reps, Ys, labels, n_folds=5)
    assert all(abs(agg - w["score"]) < 0.15 and w["score"] > 0.2 for w in within.values()), (agg, within)


def test_within_type_predictivity_refuses_a_type_too_small_for_its_folds():
    reps, Ys, labels = _typed_world(type_offset=0.0)
    with pytest.raises(ValueError, match="reasoning type 'transitive' has 8 items.*within_types: false"):
        encoders.within_type_predictivity(reps[:38], [Y[:38] for Y in Ys], labels[:38], n_folds=5)
