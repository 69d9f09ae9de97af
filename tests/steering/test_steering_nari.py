from __future__ import annotations

import numpy as np
import pytest

from steering_fixtures import planted
from brainalign.steering import directions, encoders

SEEDS = [0, 1, 2, 3, 4]


def _run(st, Y, control=None, seed=0, steps=20):
    X = st.attention[:, st.layer]
    enc = encoders.fit_encoder(X, Y)
    items = directions.intervention_set(st.model_correct, st.subjects_correct[0])
    return directions.nari(st.model, st.tokenizer, st.prompts, st.labels, X, enc, Y, items, st.layer,
                           max_steps=steps, control=control, seed=seed)


def test_nari_flips_more_than_matched_random_directions_on_every_seed():
    rows = []
    for seed in SEEDS:
        st = planted(seed)
        real = _run(st, st.subjects_Y[0])
        rand = _run(st, st.subjects_Y[0], control="random", seed=seed)
        np.testing.assert_array_equal(real.items, rand.items)
        rows.append((seed, real.items.size, int(real.solved.sum()), int(rand.solved.sum())))
    for seed, m, a, b in rows:
        print(f"seed {seed}: {m} items, NARI flips {a}, random-direction flips {b}, margin {a - b}")
    assert all(a > b for _, _, a, b in rows)


def test_random_fmri_controls_flip_fewer_items():
    st = planted(1)
    Y = st.subjects_Y[0]
    real = _run(st, Y).solved.sum()
    gauss = _run(st, directions.random_fmri(Y, seed=5)).solved.sum()
    struct = _run(st, directions.random_fmri(Y, seed=5, keep_mean=True)).solved.sum()
    print(f"fMRI {real}, Gaussian {gauss}, Gaussian + fMRI mean {struct}")
    assert real > gauss and real > struct


def test_nari_bookkeeping_projection_and_empty_set():
    st = planted(0)
    X = st.attention[:, st.layer]
    res = _run(st, st.subjects_Y[0], steps=10)
    sigma = np.sqrt(((X - X.mean(0)) ** 2).sum(1).mean())
    assert np.all(np.linalg.norm(res.deltas, axis=1) <= 10 * sigma * (1 + 1e-5))
    assert np.all((res.steps_to_solve > 0) == res.solved)
    assert np.all(res.steps_to_solve[res.solved] % 5 == 0)
    assert not np.any(st.model_correct[res.items])  # only items the model got wrong
    enc = encoders.fit_encoder(X, st.subjects_Y[0])
    empty = directions.nari(st.model, st.tokenizer, st.prompts, st.labels, X, enc, st.subjects_Y[0],
                            np.array([], int), st.layer)
    assert empty.flipped_fraction == 0.0 and empty.deltas.shape == (0, X.shape[1])
    with pytest.raises(ValueError, match="control"):
        directions.nari(st.model, st.tokenizer, st.prompts, st.labels, X, enc, st.subjects_Y[0], res.items,
                        st.layer, control="shuffled")
    with pytest.raises(ValueError, match="loss"):
        directions.nari(st.model, st.tokenizer, st.prompts, st.labels, X, enc, st.subjects_Y[0], res.items,
                        st.layer, loss="huber", max_steps=1)


def test_general_direction_and_scale_sweep():
    st = planted(0)
    res = _run(st, st.subjects_Y[0], steps=10)
    gen = directions.general_direction([res])
    np.testing.assert_allclose(gen[st.layer], res.deltas[res.solved].mean(0), rtol=1e-6)
    unit = directions.general_direction([res], normalize=True)
    assert np.isclose(np.linalg.norm(unit[st.layer]), 1.0)
    # a direction that pushes every item to 'True' has accuracy = share of valid items at a large scale
    push = {st.layer: 30 * np.linalg.norm(st.attention[:, st.layer].std(0)) * st.direction}
    sweep = directions.scale_sweep(st.model, st.tokenizer, st.prompts, st.labels, push, scales=[0.0, 1.0])
    base = directions.accuracy_with_offset(st.model, st.tokenizer, st.prompts, st.labels, None)["accuracy"]
    assert sweep["accuracy"][0] == pytest.approx(base)
    assert sweep["accuracy"][1] == pytest.approx(st.labels.mean())


def test_middle_layers_match_the_seed():
    assert directions.middle_layers(28) == list(range(7, 21))
    assert directions.middle_layers(4) == [1, 2]
    assert directions.middle_layers(1) == [0]
    with pytest.raises(ValueError, match="n_layers=0"):
        directions.middle_layers(0)


def test_nari_study_table_over_subjects_layers_and_controls():
    st = planted(3)
    table, results = directions.nari_study(st.model, st.tokenizer, st.prompts, st.labels, st.attention,
                                           st.subjects_Y, st.subjects_correct, st.model_correct,
                                           layers=[st.layer], controls=["random_direction"], max_steps=10)
    assert list(table["condition"]) == ["fmri", "random_direction"] and len(results) == 2
    row = table.iloc[0]
    assert row["flipped_fraction"] == pytest.approx(row["flipped"] / row["n_items"])
    assert row["intervened_accuracy"] == pytest.approx((st.model_correct.sum() + row["flipped"]) / st.labels.size)
    with pytest.raises(ValueError, match="unknown"):
        directions.nari_study(st.model, st.tokenizer, st.prompts, st.labels, st.attention, st.subjects_Y,
                              st.subjects_correct, st.model_correct, controls=["mlp"])
