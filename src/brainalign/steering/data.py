"""ds003076 inputs of the brain-guided LLM study: which files are needed, and the loader of items, behaviour and betas.

Layout read (the OpenNeuro BIDS release plus the authors' GLMsingle derivative; ``docs/steering.md``)::

    <root>/sub-XXXX/func/sub-XXXX_task-{Syllogisms,Transitive}_run-0{1,2}_events.tsv
        onset duration trial_type accuracy response_time premise1 premise2 premise3 conclusion stim_file
        (27 rows: 18 reasoning trials + 9 ``control``; ``n/a`` for missing)
    <root>/derivatives/glmsingle/top-10%/all_extracted_beta_{task}/{subject}/{subject}.mat
        key ``all_voxels``: (72, n_vox) GLMsingle betas of all 72 reasoning trials (rows: syllogism run 1,
        run 2, transitive run 1, run 2; trials in the subject's presentation order) at the top-10 % voxels
        of the ``{task}`` t-map within the ROI (``get_save_region_data_glmsingle_topk.m``).

Items and behaviour come from the BIDS events (premises, conclusion, validity
in ``trial_type``, the subject's ``accuracy``), so no pickle from the authors'
repository is needed. "topksep" (the authors' voxel selection): syllogism items take their
betas from the syllogism-map file, transitive items from the transitive-map
file; both files hold the same number of voxels (top 10 % of one ROI), so the
two blocks stack into one (70, n_vox) matrix per subject. Items follow the
first subject's presentation order; every other subject's rows are matched to
it by text, so a subject with another trial order is handled and one with a
missing or extra item is rejected by name.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["DS003076_SUBJECTS", "DS003076_RUNS", "BETAS", "EVENTS", "expected_files", "missing_files",
           "describe_missing", "DeductiveData", "load_ds003076", "read_run_items"]

DS003076_SUBJECTS = ("sub-1001", "sub-1004", "sub-1008", "sub-1014", "sub-1017", "sub-1019", "sub-1022", "sub-1027",
                    "sub-1030", "sub-1034")
DS003076_RUNS = ("syllogism_run-01", "syllogism_run-02", "transitive_run-01", "transitive_run-02")
BETAS = "derivatives/glmsingle/top-10%/all_extracted_beta_{task}/{subject}/{subject}.mat"
EVENTS = "{subject}/func/{subject}_task-{Task}_{run}_events.tsv"
_BIDS_TASK = {"syllogism": "Syllogisms", "transitive": "Transitive"}


def _split_run(run: str) -> tuple[str, str]:
    task, _, r = run.partition("_")
    if task not in _BIDS_TASK or not r.startswith("run-"):
        raise ValueError(f"run {run!r} is not '<syllogism|transitive>_run-NN'.")
    return task, r


def _events_path(root: Path, subject: str, run: str) -> Path:
    task, r = _split_run(run)
    return root / EVENTS.format(subject=subject, Task=_BIDS_TASK[task], run=r)


def expected_files(root: str | Path, subjects: Sequence[str] = DS003076_SUBJECTS, betas: str = BETAS,
                   runs: Sequence[str] = DS003076_RUNS) -> dict[Path, str]:
    """Every input file of the study under ``root``, with what it is for."""
    root = Path(root)
    out = {}
    for sub in subjects:
        for run in runs:
            out[_events_path(root, sub, run)] = (f"BIDS events of {sub} {run}: premises, conclusion, trial_type "
                                                 "(validity) and the subject's accuracy per trial")
        for task in sorted({_split_run(r)[0] for r in runs}):
            out[root / betas.format(task=task, subject=sub)] = (
                f"GLMsingle betas of {sub}, top-10 % voxels of the {task} t-map (key all_voxels, 72 x n_vox)")
    return out


def missing_files(root: str | Path, subjects: Sequence[str] = DS003076_SUBJECTS, betas: str = BETAS,
                  runs: Sequence[str] = DS003076_RUNS) -> dict[Path, str]:
    """The subset of :func:`expected_files` that does not exist."""
    return {p: why for p, why in expected_files(root, subjects, betas, runs).items() if not p.is_file()}


def describe_missing(root: str | Path, subjects: Sequence[str] = DS003076_SUBJECTS, betas: str = BETAS,
                     runs: Sequence[str] = DS003076_RUNS) -> str:
    """Human-readable report: empty string when everything is there."""
    miss = missing_files(root, subjects, betas, runs)
    if not miss:
        return ""
    lines = [f"{len(miss)} of {len(expected_files(root, subjects, betas, runs))} ds003076 input files are missing "
             f"under {Path(root)} (OpenNeuro ds003076 + GLMsingle betas, see docs/steering.md):"]
    lines += [f"  - {p}: {why}" for p, why in miss.items()]
    return "\n".join(lines)


def read_run_items(path: str | Path, task: str) -> pd.DataFrame:
    """The reasoning trials of one BIDS events file, in presentation order.

    Returns
    -------
    DataFrame with ``premises`` (tuple of the premises present, str, no final period; two when premise3 is
    ``n/a``), ``conclusion``,
    ``label`` (bool, from ``trial_type`` ``N_true_*`` / ``N_false_*``) and
    ``correct`` (bool, the subject's accuracy; ``n/a`` counts as wrong).
    """
    path = Path(path)
    ev = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    need = {"trial_type", "accuracy", "premise1", "premise2", "premise3", "conclusion"}
    if need - set(ev.columns):
        raise ValueError(f"{path} lacks the columns {sorted(need - set(ev.columns))}; a ds003076 events file has "
                         "onset duration trial_type accuracy response_time premise1 premise2 premise3 conclusion.")
    ev = ev[ev["trial_type"].astype(str) != "control"].reset_index(drop=True)
    parts = ev["trial_type"].astype(str).str.split("_")
    bad = [t for t, p in zip(ev["trial_type"], parts) if len(p) < 2 or p[1] not in ("true", "false")]
    if bad:
        raise ValueError(f"{path}: trial_type {bad[0]!r} is neither 'control' nor '<n>_<true|false>_<...>'.")

    def clean(s) -> str:
        return str(s).strip().rstrip(".").strip()

    return pd.DataFrame({
        "task": task,
        # a two-premise item has n/a (read as NaN) in premise3: keep the premises present, or str(NaN) would
        # put a third premise "nan" into the prompt
        "premises": [tuple(clean(r[f"premise{k}"]) for k in (1, 2, 3)
                           if pd.notna(r[f"premise{k}"]) and clean(r[f"premise{k}"]))
                     for _, r in ev.iterrows()],
        "conclusion": [clean(c) for c in ev["conclusion"]],
        "label": [p[1] == "true" for p in parts],
        "correct": ev["accuracy"].fillna(0).astype(float).to_numpy() == 1.0,
    })


class ItemLabels:
    """``labels`` (valid/invalid) and ``task_labels`` of ``self.items`` (a dataclass field of the subclass)."""

    @property
    def labels(self) -> np.ndarray:
        return np.array([it.label for it in self.items])

    @property
    def task_labels(self) -> np.ndarray:
        return np.array([it.task for it in self.items])


@dataclass
class DeductiveData(ItemLabels):
    """The fMRI items of Xiao et al. (2026) with per-subject betas and behaviour.

    Attributes
    ----------
    items : list of :class:`~brainalign.steering.tasks.Item` (n_items,)
    subjects : list of str
    subjects_Y : list of float32 ndarray (n_items, n_voxels)
    subjects_correct : list of bool ndarray (n_items,)
    dropped_voxels : dict subject -> number of voxel columns dropped for non-finite betas
    """

    items: list
    subjects: list
    subjects_Y: list
    subjects_correct: list
    dropped_voxels: dict = field(default_factory=dict)



def load_ds003076(root: str | Path, subjects: Sequence[str] = DS003076_SUBJECTS, betas: str = BETAS,
                  runs: Sequence[str] = DS003076_RUNS, drop: Mapping[str, Sequence[int]] | None = None,
                  drop_nan_voxels: str = "across_subjects") -> DeductiveData:
    """Items, behaviour and top-10 %-per-task betas of the brain-guided LLM study's subjects (see the module docstring).

    Parameters
    ----------
    root : BIDS root of ds003076 (with the ``derivatives/glmsingle`` folder)
    subjects : subject ids (``sub-XXXX``); the first one fixes the item order
    runs : ``<task>_run-NN`` in the row order of the betas files (default: the authors' 4 runs)
    drop : run -> indices (0-based, among the run's reasoning trials in the first subject's order)
        of items to leave out; default: the authors' contradictory items ``{"transitive_run-01": [7, 13]}``
    drop_nan_voxels : {"across_subjects", "per_subject"}
        Drop a voxel column with a non-finite beta in any subject (the authors: all subjects keep the same
        number of columns) or only in that subject.

    Returns
    -------
    DeductiveData with ``subjects_Y[s]`` of shape (n_items, n_voxels) float32.
    """
    from brainalign.brain.betas import read_beta_array
    from brainalign.steering.tasks import Item

    root = Path(root)
    if not subjects:
        raise ValueError("subjects is empty; list the ds003076 subjects to load (e.g. sub-1001).")
    if drop_nan_voxels not in ("across_subjects", "per_subject"):
        raise ValueError(f"drop_nan_voxels={drop_nan_voxels!r}; use 'across_subjects' or 'per_subject'.")
    missing = describe_missing(root, subjects, betas, runs)
    if missing:
        raise FileNotFoundError(missing)
    drop = {"transitive_run-01": [7, 13]} if drop is None else dict(drop)
    unknown = sorted(set(drop) - set(runs))
    if unknown:
        raise ValueError(f"drop names runs {unknown} that are not in runs={list(runs)}.")
    canon = None                     # per run: list of item keys in the first subject's order, minus dropped
    items: list = []
    Ys, corrects = [], []
    for sub in subjects:
        tables = {run: read_run_items(_events_path(root, sub, run), _split_run(run)[0]) for run in runs}
        n_rows = sum(len(t) for t in tables.values())
        offsets = np.cumsum([0] + [len(tables[r]) for r in runs])[:-1]
        if canon is None:
            canon = {}
            for run in runs:
                t = tables[run]
                bad = [k for k in drop.get(run, []) if not 0 <= k < len(t)]
                if bad:
                    raise ValueError(f"drop[{run!r}] has {bad}, outside the run's {len(t)} reasoning trials.")
                keep = [k for k in range(len(t)) if k not in set(drop.get(run, []))]
                canon[run] = [(t["premises"][k], t["conclusion"][k]) for k in keep]
                for j, k in enumerate(keep):
                    items.append(Item(t["task"][k], t["premises"][k], t["conclusion"][k], bool(t["label"][k]),
                                      f"{run}/{k:02d}"))
        rows, correct = [], []
        for run, off in zip(runs, offsets):
            t = tables[run]
            where = {(p, c): k for k, (p, c) in enumerate(zip(t["premises"], t["conclusion"]))}
            absent = [key for key in canon[run] if key not in where]
            if absent:
                raise ValueError(f"{_events_path(root, sub, run)} lacks the item {' / '.join(absent[0][0])} -> "
                                 f"{absent[0][1]!r} of {subjects[0]}; all subjects must see the same items.")
            ks = [where[key] for key in canon[run]]
            rows += [off + k for k in ks]
            correct += [bool(t["correct"][k]) for k in ks]
        per_task = {}
        for task in sorted({_split_run(r)[0] for r in runs}):
            path = root / betas.format(task=task, subject=sub)
            arr = np.asarray(read_beta_array(path, key="all_voxels" if path.suffix == ".mat" else None), np.float64)
            if arr.ndim != 2 or arr.shape[0] != n_rows:
                raise ValueError(f"{path} holds betas of shape {arr.shape}; expected ({n_rows}, n_voxels): one row per "
                                 f"reasoning trial of the runs {list(runs)}.")
            per_task[task] = arr
        widths = {t: a.shape[1] for t, a in per_task.items()}
        if len(set(widths.values())) != 1:
            raise ValueError(f"{sub}: the per-task betas have different voxel counts {widths}; 'topksep' needs the "
                             "same ROI (and top fraction) for every task map.")
        Y = np.stack([per_task[it.task][r] for it, r in zip(items, rows)])
        Ys.append(Y)
        corrects.append(np.array(correct, dtype=bool))
    finite = [np.isfinite(Y).all(0) for Y in Ys]
    if drop_nan_voxels == "across_subjects":
        widths = {Y.shape[1] for Y in Ys}
        if len(widths) != 1:
            raise ValueError(f"subjects have different voxel counts {sorted(widths)}; use "
                             "drop_nan_voxels='per_subject'.")
        keep_all = np.logical_and.reduce(finite)
        finite = [keep_all] * len(Ys)
    dropped = {}
    for s, (sub, keep) in enumerate(zip(subjects, finite)):
        dropped[sub] = int((~keep).sum())
        Ys[s] = Ys[s][:, keep].astype(np.float32)
    if any(dropped.values()):
        warnings.warn(f"dropped voxel columns with non-finite betas ({drop_nan_voxels}): {dropped}.", stacklevel=2)
    if Ys[0].shape[1] == 0:
        raise ValueError("no voxel has finite betas for every item; check the GLMsingle output.")
    return DeductiveData(items, list(subjects), Ys, corrects, dropped)
