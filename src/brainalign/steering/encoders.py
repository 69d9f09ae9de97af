"""Linear encoders from last-token representations to voxel betas, neural predictivity, and its ceiling.

Xiao et al. (2026) (``make_analysis.py``, ``calculate_ceiling.py``): per subject, 5-fold
``StratifiedKFold`` by task type; per layer a ridge with one alpha shared by all
voxels chosen by leave-one-out GCV over 1e-3..1e3 (sklearn ``RidgeCV``,
intercept fitted, no z-scoring); Pearson r per voxel on each test fold, averaged
over folds; median over voxels → median over subjects → max over layers, MAD
across subjects. ``alpha_mode="per_voxel"`` uses brainalign's RidgeCV (one
alpha per voxel chosen by inner K-fold CV) instead.

The ceiling loop runs over *all* subjects (the published script refers to an
undefined ``all_sub`` there and raises NameError).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["SEED_ALPHAS", "LinearEncoder", "TaskEncoders", "fit_encoder", "fit_item_encoder", "cv_predictivity",
           "neural_predictivity", "within_type_predictivity", "random_features", "deductive_ceiling"]

SEED_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 1e2, 1e3)


@dataclass
class LinearEncoder:
    """``y ≈ x @ coef + intercept``; ``coef`` of shape (n_features, n_voxels), ``intercept`` (n_voxels,)."""

    coef: np.ndarray
    intercept: np.ndarray
    alpha: np.ndarray

    def predict(self, X) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef + self.intercept


@dataclass
class TaskEncoders:
    """One :class:`LinearEncoder` per reasoning type (the authors fit NARI's and NARF's encoders per type).

    ``by_task``: task name -> encoder; every item is predicted by the encoder of its own type.
    """

    by_task: dict

    def predict(self, X, tasks) -> np.ndarray:
        """Predictions (n_items, n_voxels) of X (n_items, d), row i through the encoder of ``tasks[i]``."""
        X = np.asarray(X, dtype=np.float64)
        tasks = np.asarray(tasks, dtype=str)
        if tasks.shape != (X.shape[0],):
            raise ValueError(f"tasks has shape {tasks.shape}; expected ({X.shape[0]},), one type per row of X.")
        missing = sorted(set(tasks) - set(self.by_task))
        if missing:
            raise ValueError(f"no encoder for the reasoning types {missing}; fitted: {sorted(self.by_task)}.")
        first = next(iter(self.by_task.values()))
        out = np.empty((X.shape[0], first.coef.shape[1]))
        for t, enc in self.by_task.items():
            rows = tasks == t
            out[rows] = enc.predict(X[rows])
        return out


def fit_item_encoder(X, Y, tasks, per_task: bool = True, keep=None, min_items: int = 3, **fit_kw):
    """The encoder NARI and NARF use for one subject and layer: one ridge per reasoning type, or one pooled.

    Parameters
    ----------
    X : (n_items, d) last-token states; Y : (n_items, n_voxels) betas; tasks : (n_items,) reasoning type
    per_task : one encoder per type (:class:`TaskEncoders`, the authors' default) or one for all items
    keep : bool (n_items,), optional
        Items to fit on (the authors' ``-fit_consistent_questions``: model and subject both right). A type
        (or, pooled, the whole set) with fewer than ``min_items`` kept items is fitted on all its items.
    fit_kw : passed to :func:`fit_encoder`

    Returns
    -------
    TaskEncoders or LinearEncoder
    """
    X, Y = _check_xy(X, Y)
    tasks = np.asarray(tasks, dtype=str)
    keep = np.ones(X.shape[0], bool) if keep is None else np.asarray(keep, dtype=bool)
    if tasks.shape != (X.shape[0],) or keep.shape != (X.shape[0],):
        raise ValueError(f"tasks has shape {tasks.shape} and keep {keep.shape}; expected ({X.shape[0]},) each.")

    def fit(rows):
        k = rows & keep
        return fit_encoder(X[k if k.sum() >= min_items else rows], Y[k if k.sum() >= min_items else rows], **fit_kw)

    if not per_task:
        return fit(np.ones(X.shape[0], bool))
    return TaskEncoders({str(t): fit(tasks == t) for t in np.unique(tasks)})


def _check_xy(X, Y):
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has shape {X.shape} and Y {Y.shape}; give (n_items, n_features) and (n_items, n_voxels) "
                         "with the same n_items.")
    return X, Y


def fit_encoder(X, Y, alphas: Sequence[float] = SEED_ALPHAS, alpha_mode: str = "shared",
                fit_intercept: bool = True, cv: int = 5) -> LinearEncoder:
    """Ridge encoder from representations X (n_items, d) to betas Y (n_items, n_voxels).

    ``alpha_mode="shared"``: one alpha for all voxels by leave-one-out GCV
    (sklearn ``RidgeCV``, as the authors). ``"per_voxel"``: brainalign's RidgeCV, an
    alpha per voxel by ``cv``-fold CV. ``"fixed"``: ``Ridge(alpha=alphas[0])``
    (the authors' ``Ridge(100)`` without ``-use_ridgecv``).
    """
    X, Y = _check_xy(X, Y)
    if alpha_mode not in ("shared", "per_voxel", "fixed"):
        raise ValueError(f"alpha_mode={alpha_mode!r}; use 'shared', 'per_voxel' or 'fixed'.")
    if alpha_mode == "shared":
        from sklearn.linear_model import RidgeCV as SkRidgeCV

        est = SkRidgeCV(alphas=list(alphas), fit_intercept=fit_intercept).fit(X, Y)
        inter = np.broadcast_to(np.asarray(est.intercept_, dtype=np.float64), (Y.shape[1],)).copy()
        return LinearEncoder(est.coef_.T.copy(), inter, np.full(Y.shape[1], est.alpha_))
    if alpha_mode == "fixed":
        from sklearn.linear_model import Ridge

        est = Ridge(alpha=float(alphas[0]), fit_intercept=fit_intercept).fit(X, Y)
        inter = np.broadcast_to(np.asarray(est.intercept_, dtype=np.float64), (Y.shape[1],)).copy()
        return LinearEncoder(est.coef_.T.copy(), inter, np.full(Y.shape[1], float(alphas[0])))
    from brainalign.encoding import RidgeCV

    mx, my = (X.mean(0), Y.mean(0)) if fit_intercept else (np.zeros(X.shape[1]), np.zeros(Y.shape[1]))
    est = RidgeCV(alphas=np.asarray(alphas), cv=min(cv, X.shape[0]), fit_intercept=False)
    est.fit((X - mx).astype(np.float32), (Y - my).astype(np.float32))
    coef = np.asarray(est.coef_, dtype=np.float64)
    return LinearEncoder(coef, my - mx @ coef, np.asarray(est.best_alphas_))


def cv_predictivity(X, Y, task_labels, n_folds: int = 5, seed: int = 0, alphas=SEED_ALPHAS,
                    alpha_mode: str = "shared", metric: str = "pearson") -> np.ndarray:
    """Cross-validated score per voxel (mean over stratified folds) of one layer for one subject.

    Parameters
    ----------
    X : (n_items, d); Y : (n_items, n_voxels); task_labels : (n_items,)
    metric : {"pearson", "cosine"}
        Pearson r per voxel on the test fold, or (the authors' ``-use_cosine``) the
        mean cosine between predicted and actual patterns of the test items
        (returned broadcast over voxels).

    Returns
    -------
    ndarray of shape (n_voxels,)
    """
    from brainalign.analysis import pearson_r
    from brainalign.encoding.splits import stratified_folds

    X, Y = _check_xy(X, Y)
    if metric not in ("pearson", "cosine"):
        raise ValueError(f"metric={metric!r}; use 'pearson' or 'cosine'.")
    folds = stratified_folds(np.asarray(task_labels), n_folds, seed=seed)
    scores = []
    for tr, te in folds:
        enc = fit_encoder(X[tr], Y[tr], alphas, alpha_mode)
        pred = enc.predict(X[te])
        if metric == "pearson":
            scores.append(pearson_r(Y[te], pred))
        else:
            num = (pred * Y[te]).sum(1)
            den = np.linalg.norm(pred, axis=1) * np.linalg.norm(Y[te], axis=1)
            scores.append(np.full(Y.shape[1], np.mean(num / np.maximum(den, 1e-12))))
    return np.nanmean(np.stack(scores), 0)


def neural_predictivity(reps, subjects_Y: Sequence[np.ndarray], task_labels, n_folds: int = 5, seed: int = 0,
                        alphas=SEED_ALPHAS, alpha_mode: str = "shared", ceiling: Sequence[np.ndarray] | None = None
                        ) -> dict:
    """The brain score of Xiao et al. (2026) for a model.

    Parameters
    ----------
    reps : ndarray of shape (n_items, n_layers, d)
        Last-token representations (e.g. attention layers then residual layers).
    subjects_Y : list of ndarray of shape (n_items, n_voxels_s)
        Betas per subject (voxel counts may differ).
    task_labels : ndarray of shape (n_items,)
        Task type of every item (stratification).
    ceiling : list of ndarray (n_voxels_s,), optional
        Divide r by the subject's voxel ceiling (fraction of explainable variance).

    Returns
    -------
    dict with ``subject_curves`` (n_subjects, n_layers) = median over voxels,
    ``group_curve``, ``best_layer``, ``score`` (max of the group median curve),
    ``mad`` (MAD across subjects at the best layer), ``voxel_scores`` (list per
    subject of (n_layers, n_voxels)).
    """
    from brainalign.analysis import mad

    reps = np.asarray(reps)
    if reps.ndim != 3:
        raise ValueError(f"reps has shape {reps.shape}; give (n_items, n_layers, d).")
    voxel = []
    for s, Y in enumerate(subjects_Y):
        if np.asarray(Y).shape[0] != reps.shape[0]:
            raise ValueError(f"subject {s} has {np.asarray(Y).shape[0]} items but reps has {reps.shape[0]}.")
        r = np.stack([cv_predictivity(reps[:, k], Y, task_labels, n_folds, seed + 1, alphas, alpha_mode)
                      for k in range(reps.shape[1])])
        if ceiling is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                r = r / np.asarray(ceiling[s])[None]
        voxel.append(r)
    subj = np.stack([np.nanmedian(v, 1) for v in voxel])
    group = np.nanmedian(subj, 0)
    k = int(np.nanargmax(group))
    return {"subject_curves": subj, "group_curve": group, "best_layer": k, "score": float(group[k]),
            "mad": float(mad(subj[:, k])), "voxel_scores": voxel}


def within_type_predictivity(reps, subjects_Y: Sequence[np.ndarray], task_labels, n_folds: int = 5, seed: int = 0,
                             alphas=SEED_ALPHAS, alpha_mode: str = "shared", ceiling: str | None = None,
                             ceiling_options: dict | None = None) -> dict:
    """:func:`neural_predictivity` within each reasoning type: the encoders are fitted and tested on one type's
    items only, so a response that merely differs between types (syllogisms vs transitive problems) no longer
    counts (row 12 of methods.md §10: predictivity "lower within reasoning types").

    Parameters
    ----------
    reps : ndarray of shape (n_items, n_layers, d)
    subjects_Y : list of ndarray of shape (n_items, n_voxels_s)
    task_labels : ndarray of shape (n_items,)
        Reasoning type of every item; a type needs at least ``2 * n_folds`` items.
    ceiling : {None, "subject_subset"}
        Normalise by :func:`deductive_ceiling` computed on the same type's items (``ceiling_options``: its
        keyword arguments), so the aggregate and within-type scores are fractions of their own explainable
        variance.

    Returns
    -------
    dict type → the :func:`neural_predictivity` result on that type's items.
    """
    reps = np.asarray(reps)
    labels = np.asarray(task_labels)
    if labels.shape[0] != reps.shape[0]:
        raise ValueError(f"task_labels has {labels.shape[0]} items but reps has {reps.shape[0]}.")
    out = {}
    for task in dict.fromkeys(labels.tolist()):
        idx = labels == task
        if idx.sum() < 2 * n_folds:
            raise ValueError(f"reasoning type {task!r} has {int(idx.sum())} items; within-type predictivity needs "
                             f"at least {2 * n_folds} (2 × n_folds) or set predictivity.within_types: false.")
        Ys = [np.asarray(Y)[idx] for Y in subjects_Y]
        ceil = None
        if ceiling is not None:
            ceil = deductive_ceiling(Ys, labels[idx], n_folds, seed, alphas, **(ceiling_options or {}))
        out[task] = neural_predictivity(reps[idx], Ys, labels[idx], n_folds, seed, alphas, alpha_mode, ceiling=ceil)
    return out


def random_features(n_items: int, n_layers: int, dim: int, seed: int = 0) -> np.ndarray:
    """The authors' ``-rand_feature`` control: uniform [0, 1) features of shape (n_items, n_layers, dim)."""
    return np.random.default_rng(seed).random((n_items, n_layers, dim)).astype(np.float32)


def deductive_ceiling(subjects_Y: Sequence[np.ndarray], task_labels, n_folds: int = 5, seed: int = 0,
                      alphas=SEED_ALPHAS, max_combinations: int | None = None, n_bootstrap: int = 100,
                      method: str = "profile") -> list[np.ndarray]:
    """Subject-subset ceiling of every subject's voxels (the authors' ``calculate_ceiling``, loop fixed).

    For each target subject and each k = 1..n-1 source subjects, every subset
    (or ``max_combinations`` drawn with ``seed``) predicts the target's betas
    from the concatenated source betas with the same stratified CV and ridge;
    r per voxel is averaged over subsets, and ``v0 (1 - exp(-k/τ))`` is
    extrapolated per voxel (:func:`brainalign.analysis.extrapolate_ceiling`).

    Returns
    -------
    list over subjects of ndarray (n_voxels_s,): the ceiling v0.
    """
    from brainalign.analysis import extrapolate_ceiling

    n = len(subjects_Y)
    if n < 3:
        raise ValueError(f"{n} subjects given; the extrapolation needs at least 3.")
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        others = [s for s in range(n) if s != t]
        xs, rs = [], []
        for k in range(1, n):
            combos = list(itertools.combinations(others, k))
            if max_combinations is not None and len(combos) > max_combinations:
                combos = [combos[i] for i in rng.choice(len(combos), max_combinations, replace=False)]
            r = np.mean([cv_predictivity(np.hstack([subjects_Y[s] for s in c]), subjects_Y[t], task_labels,
                                         n_folds, seed + 1, alphas) for c in combos], 0)
            xs.append(k)
            rs.append(r)
        fit = extrapolate_ceiling(np.asarray(xs, dtype=float), np.stack(rs), n_bootstrap, seed + t, method=method)
        out.append(fit["v0"].to_numpy())
    return out
