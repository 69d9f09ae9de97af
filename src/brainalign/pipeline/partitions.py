"""Robustness tables of the variance partitions (``analysis.partitions``): dominance, VIF, banded ridge, controls.

Called by :func:`brainalign.pipeline.extras.extra_analyses`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd

from brainalign._utils.errors import ConfigError, DataError
from brainalign.encoding.design import design_delays, prepare_design
from brainalign.encoding.splits import outer_folds
from brainalign.timing.spaces import resolve_space_name, unknown_space_hint

if TYPE_CHECKING:
    from brainalign.config import EncodingSpec, Experiment, PartitionSpec
    from brainalign.study.data import StudyData
    from brainalign.timing.spaces import FeatureSpace

__all__ = ["partition_dominance_table", "partition_vif_table", "partition_banded_table", "partition_control_tables",
           "partition_roi_table"]

def _keys(spec: PartitionSpec) -> list[str]:
    return [f"s{i}" for i in range(len(spec.spaces))]


def partition_dominance_table(
    partition_voxels: pd.DataFrame, spec: PartitionSpec, masks: Mapping[str, np.ndarray] | None = None
) -> pd.DataFrame:
    """General dominance of every space of one partition, summarised per ROI.

    Parameters
    ----------
    partition_voxels : DataFrame
        The partition's rows of the pipeline's ``partition_voxels`` table
        (columns ``r2_s0``, ``r2_s1``[, ``r2_s0_s1`` ...], ``r2_joint``).
    spec : PartitionSpec
    masks : mapping ROI -> bool ndarray (n_voxels,), optional ("all" is always included)

    Returns
    -------
    DataFrame ``partition, roi, space, key, mean_dominance, percent_of_joint, n_dominant, n_voxels``:
    over the voxels with ``r2_joint > spec.min_r2_joint``, the mean general dominance of the space,
    100 · mean dominance / mean joint R² (the spaces' percentages sum to 100), and how many voxels it dominates.
    """
    from brainalign.analysis.partition import dominance_analysis

    keys = _keys(spec)
    t = partition_voxels.reset_index(drop=True).copy()
    t.attrs["spaces"] = keys
    dom = dominance_analysis(t)
    joint = t["r2_joint"].to_numpy(dtype=np.float64)
    n = len(t)
    masks = {"all": np.ones(n, dtype=bool), **{k: np.asarray(v, dtype=bool) for k, v in (masks or {}).items()}}
    rows = []
    for roi, m in masks.items():
        if m.shape != (n,):
            raise ValueError(f"masks[{roi!r}] has shape {m.shape}; it must be boolean over the {n} voxels.")
        sel = m & np.isfinite(joint) & (joint > spec.min_r2_joint)
        for key, name in zip(keys, spec.spaces):
            d = dom[f"dominance_{key}"].to_numpy()[sel]
            rows.append(dict(partition=spec.name, roi=roi, space=name, key=key,
                             mean_dominance=float(d.mean()) if d.size else np.nan,
                             percent_of_joint=float(100 * d.mean() / joint[sel].mean()) if d.size else np.nan,
                             n_dominant=int((dom["dominant"].to_numpy()[sel] == key).sum()),
                             n_voxels=int(sel.sum())))
    return pd.DataFrame(rows)


def partition_roi_table(partition_voxels: pd.DataFrame, partition: pd.DataFrame, specs: Sequence[PartitionSpec],
                        masks: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Each partition's parts as % of the joint R² within every ROI (gameplay study row 2: where the asymmetry is).

    Parameters
    ----------
    partition_voxels : DataFrame
        The pipeline's ``partition_voxels`` table (partition, voxel, r2_*, unique_*, shared…).
    partition : DataFrame
        The whole-brain ``partition`` table; its ``space`` column names the parts.
    specs : sequence of PartitionSpec
    masks : mapping ROI -> bool ndarray (n_voxels,)

    Returns
    -------
    DataFrame ``partition, roi, part, space, aggregation, percent, n_voxels`` (voxels with joint R² above the
    partition's ``min_r2_joint`` in each ROI).
    """
    from brainalign.analysis.partition import partition_percentages

    frames = []
    for spec in specs:
        vox = partition_voxels[partition_voxels.partition == spec.name].sort_values("voxel")
        pct = partition_percentages(vox.reset_index(drop=True), masks, spec.min_r2_joint)
        legend = partition[partition.partition == spec.name].drop_duplicates("part").set_index("part")["space"]
        pct.insert(2, "space", pct["part"].map(legend))
        pct.insert(0, "partition", spec.name)
        frames.append(pct)
    return pd.concat(frames, ignore_index=True)


def partition_vif_table(features: Mapping[str, np.ndarray], spec: PartitionSpec) -> pd.DataFrame:
    """Variance inflation between the spaces of one partition, after PCA within each space.

    Each space (TR-wise features, z-scored) keeps at most ``spec.vif_components``
    components and never more than its numerical rank (a rank-deficient space
    would otherwise bring zero-variance components with meaningless VIFs).

    Returns
    -------
    DataFrame ``partition, space, component, vif``.
    """
    from brainalign.analysis.partition import feature_space_vif

    prepared = {}
    for name in spec.spaces:
        X = np.asarray(features[name], dtype=np.float64)
        sd = X.std(0)
        Z = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)
        U, s, _ = np.linalg.svd(Z, full_matrices=False)
        rank = int((s > s[0] * 1e-6).sum()) if s.size and s[0] > 0 else 0
        if rank == 0:
            raise DataError(f"analysis.partitions[{spec.name}]: space {name!r} has zero variance; drop it.")
        k = min(spec.vif_components, rank)
        prepared[name] = U[:, :k] * s[:k]  # the space's own leading components; the PCA below keeps them
    vif = feature_space_vif(prepared, n_components=spec.vif_components)
    vif.insert(0, "partition", spec.name)
    return vif


def partition_fold(
    Xs: Sequence[np.ndarray], Y: np.ndarray, runs: np.ndarray, train: np.ndarray, test: np.ndarray,
    pca_components: int | None, alphas: Sequence[float], delays: Sequence[int], seed: int, method: str = "ridge",
) -> dict[str, np.ndarray]:
    """Variance partitioning of two or three feature spaces on one outer fold.

    Every space is scaled (and reduced to ``pca_components``) with training-row
    statistics, then :func:`brainalign.analysis.partition.variance_partition`
    fits every subset model on the fold's training runs (per-voxel alphas from
    run-wise CV inside them) and scores the fold's test runs. Only the fold's
    rows (``train`` and ``test``) enter the fit: rows of runs that are in
    neither (e.g. the other held-out runs of a per-run control fold) are left
    out, never filled with placeholder values.

    Parameters
    ----------
    Xs : sequence of ndarray of shape (n_samples, n_features_i)
        The two or three spaces, TR-wise (or item-wise), named s0, s1(, s2) in the result.
    Y : ndarray of shape (n_samples, n_voxels)
    runs : ndarray of shape (n_samples,)
        Run (or item fold) label per row.
    train, test : ndarray of int
        Row indices of the fold's training and test runs (whole runs).
    pca_components : int or None
        Components kept per space (``timing.pca_components``); None keeps all.
    alphas : sequence of float
        Ridge penalty grid (``encoding.alphas``).
    delays : sequence of int
        FIR delays (:func:`brainalign.encoding.design.design_delays`).
    seed : int
        The experiment's seed (the banded random search uses it).
    method : {"ridge", "banded"}

    Returns
    -------
    dict str -> ndarray of shape (n_voxels,)
        The columns of :func:`~brainalign.analysis.partition.variance_partition`'s table
        (``voxel``, ``r2_s0`` …, ``r2_joint``, ``unique_s0`` …, ``shared``…), as plain arrays
        (what checkpoints store and workers send back).
    """
    from brainalign.analysis.partition import variance_partition

    used = np.union1d(train, test)  # sorted: runs stay contiguous
    prepared = {}
    for i, X in enumerate(Xs):
        Xtr, Xte = prepare_design(X, runs, train, test, [0], pca_components)
        Z = np.zeros((Y.shape[0], Xtr.shape[1]), dtype=np.float32)
        Z[train], Z[test] = Xtr, Xte
        prepared[f"s{i}"] = Z[used]
    table = variance_partition(prepared, Y[used], runs[used], np.unique(runs[test]).tolist(), alphas,
                               len(np.unique(runs[train])), delays=delays, method=method, seed=seed)
    return {c: table[c].to_numpy() for c in table.columns}


def fold_settings(exp: Experiment) -> tuple:
    """``(pca_components, alphas, delays, seed)``: the arguments of :func:`partition_fold` that come from the config,
    in its signature's order (workers pass arguments by position)."""
    return exp.timing.pca_components, exp.encoding.alphas, design_delays(exp.timing, exp.is_items), exp.seed


def _check_names(spec: PartitionSpec, by_name, names, what="spaces"):
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ConfigError(f"analysis.partitions[{spec.name}].{what} names {missing}, which were not fitted; "
                          f"{unknown_space_hint(missing[0], by_name)}choose from {sorted(by_name)}.")


def partition_banded_table(
    exp: Experiment, data: StudyData, by_name: Mapping[str, FeatureSpace], spec: PartitionSpec,
    ridge_percentages: pd.DataFrame,
) -> pd.DataFrame:
    """The partition refitted with banded ridge (one penalty per space) beside the plain-ridge percentages.

    Returns
    -------
    DataFrame ``partition, part, space, aggregation, percent_ridge, percent_banded, difference, n_voxels``
    (whole brain; percentages of the joint R² as in the ``partition`` table).
    """
    from brainalign.analysis.partition import partition_percentages

    _check_names(spec, by_name, spec.spaces)
    Y, runs = data.recording.data, data.recording.runs
    Xs = [by_name[name].X for name in spec.spaces]
    tables = [partition_fold(Xs, Y, runs, tr, te, *fold_settings(exp), method="banded")
              for tr, te in outer_folds(exp.encoding, runs)]
    cols = [c for c in tables[0] if c != "voxel"]
    mean = pd.DataFrame({c: np.mean([t[c] for t in tables], 0) for c in cols})
    pct = partition_percentages(mean, None, spec.min_r2_joint)
    ridge = ridge_percentages[["part", "aggregation", "percent", "space"]].rename(columns={"percent": "percent_ridge"})
    pct = pct.rename(columns={"percent": "percent_banded"}).drop(columns="roi")
    m = ridge.merge(pct, on=["part", "aggregation"], how="right")
    m["difference"] = m["percent_banded"] - m["percent_ridge"]
    m.insert(0, "partition", spec.name)
    return m[["partition", "part", "space", "aggregation", "percent_ridge", "percent_banded", "difference", "n_voxels"]]


def _per_run_folds(encoding: EncodingSpec, runs: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(run, train, test) with exactly one held-out run each, training runs as in the outer CV (``encoding.outer_cv``)."""
    out = []
    for train, test in outer_folds(encoding, runs):
        for run in np.unique(runs[test]):
            out.append((int(run), train, test[runs[test] == run]))
    return out


def partition_control_tables(
    exp: Experiment, data: StudyData, by_name: Mapping[str, FeatureSpace], spec: PartitionSpec, alpha: float = 0.05,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Unique variance of a partition space vs the same partition with a control in its place (issue 11).

    For every held-out run (training runs as in the outer CV), the partition
    is fitted twice: with the space, and with its control (e.g. the
    stimulus-shuffled or scrambled-prompt version) in its place. The unit of
    the paired test is the held-out run; its value is the mean over all voxels
    of ``unique_<space>`` (held-out R², negatives kept).

    Returns
    -------
    summary : DataFrame ``partition, space, control, mean_effect, mean_control, mean_diff, sem_diff, n_better, n,
        cohen_dz, p`` (two-sided paired Wilcoxon), ``p_t``, ``survives`` (mean_diff > 0 and p < alpha)
    runs : DataFrame ``partition, space, control, run, unique_effect, unique_control, joint_effect, joint_control``
    """
    from brainalign.analysis.summary import paired_test

    fitted = list(by_name.values())
    control = {resolve_space_name(k, fitted): resolve_space_name(v, fitted) for k, v in spec.control.items()}
    _check_names(spec, by_name, spec.spaces)
    _check_names(spec, by_name, list(control.values()), "control")
    unknown = [k for k in control if k not in spec.spaces]
    if unknown:
        raise ConfigError(f"analysis.partitions[{spec.name}].control names {unknown}, which are not its spaces "
                         f"{spec.spaces}.")
    Y, runs = data.recording.data, data.recording.runs
    folds = _per_run_folds(exp.encoding, runs)
    rows, summary = [], []
    for space, ctl in control.items():
        i = spec.spaces.index(space)
        swapped = [ctl if n == space else n for n in spec.spaces]
        per_run = []
        X_eff = [by_name[n].X for n in spec.spaces]  # only this partition's spaces and its control, once per control
        X_con = [X_eff[k] if n == spec.spaces[k] else by_name[n].X for k, n in enumerate(swapped)]
        for run, train, test in folds:
            eff = partition_fold(X_eff, Y, runs, train, test, *fold_settings(exp))
            con = partition_fold(X_con, Y, runs, train, test, *fold_settings(exp))
            per_run.append(dict(partition=spec.name, space=space, control=ctl, run=run,
                                unique_effect=float(np.mean(eff[f"unique_s{i}"])),
                                unique_control=float(np.mean(con[f"unique_s{i}"])),
                                joint_effect=float(np.mean(eff["r2_joint"])),
                                joint_control=float(np.mean(con["r2_joint"]))))
        t = pd.DataFrame(per_run)
        res = paired_test(t["unique_effect"].to_numpy(), t["unique_control"].to_numpy())
        summary.append(dict(partition=spec.name, space=space, control=ctl, mean_effect=t["unique_effect"].mean(),
                            mean_control=t["unique_control"].mean(), mean_diff=res["mean_diff"],
                            sem_diff=res["sem_diff"], n_better=res["n_better"], n=res["n"], cohen_dz=res["cohen_dz"],
                            p=res["p_wilcoxon"], p_t=res["p_t"],
                            survives=bool(res["mean_diff"] > 0 and np.isfinite(res["p_wilcoxon"])
                                          and res["p_wilcoxon"] < alpha)))
        rows.append(t)
    return pd.DataFrame(summary), pd.concat(rows, ignore_index=True)
