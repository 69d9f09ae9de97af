"""Stimulus timing tables.

An events table has one row per stimulus presentation, with columns
``run`` (label), ``onset`` (s from the start of the run), ``duration`` (s)
and ``stimulus`` (name). It is the format BIDS ``events.tsv`` uses.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from brainalign._utils.errors import DataError

__all__ = ["read_tr_labels", "events_from_tr_labels", "stimulus_design"]


def read_tr_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a '<label> <run>' per-TR table (PyMVPA's attributes.txt).

    Returns
    -------
    labels, runs : ndarray of shape (n_trs,), int
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: stimulus events file not found; check stimuli.events.")
    try:
        table = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except ValueError as err:
        raise DataError(f"{path}: expected two integer columns '<label> <run>' per line ({err}).") from None
    if table.shape[1] != 2 or table.shape[0] == 0:
        raise DataError(f"{path}: expected two integer columns '<label> <run>', got shape {table.shape}.")
    return table[:, 0], table[:, 1]


def events_from_tr_labels(
    labels: np.ndarray, runs: np.ndarray, tr: float, names: dict[int, str], rest: list[int]
) -> pd.DataFrame:
    """Collapse per-TR labels into blocks: one event per contiguous stretch.

    Parameters
    ----------
    labels, runs : ndarray of shape (n_trs,)
    tr : float
        Seconds per TR; onsets are relative to each run's first TR.
    names : dict
        Label code → stimulus name. Codes not in ``names`` or ``rest`` are an error.
    rest : list of int
        Codes that mean no stimulus (no event).

    Returns
    -------
    DataFrame with columns run, onset, duration, stimulus, code.
    """
    labels = np.asarray(labels)
    runs = np.asarray(runs)
    unknown = sorted(set(np.unique(labels).tolist()) - set(names) - set(rest))
    if unknown:
        raise DataError(
            f"label codes {unknown} occur in the events but are neither in stimuli.labels nor stimuli.rest; "
            "name them or declare them as rest."
        )
    rows = []
    for run in pd.unique(runs):
        idx = np.flatnonzero(runs == run)
        lab = labels[idx]
        start = 0
        for t in range(1, len(lab) + 1):
            if t == len(lab) or lab[t] != lab[start]:
                code = int(lab[start])
                if code not in rest:
                    rows.append(
                        dict(run=run, onset=start * tr, duration=(t - start) * tr, stimulus=names[code], code=code)
                    )
                start = t
    return pd.DataFrame(rows, columns=["run", "onset", "duration", "stimulus", "code"])


def stimulus_design(
    events: pd.DataFrame, runs: np.ndarray, tr: float, stimuli: list[str]
) -> np.ndarray:
    """Fraction of every TR covered by every stimulus.

    Parameters
    ----------
    events : DataFrame with columns run, onset, duration, stimulus
        Onsets in seconds from the start of the run.
    runs : ndarray of shape (n_trs,)
        Run label of every TR (runs contiguous); TR k of a run spans
        [k·tr, (k+1)·tr).
    tr : float
    stimuli : list of str
        Column order of the result.

    Returns
    -------
    ndarray of shape (n_trs, n_stimuli), float32, values in [0, 1]

    Raises
    ------
    ValueError
        For an event of an unknown stimulus or run, or one that ends after its run.
    """
    if tr <= 0:
        raise DataError(f"tr must be > 0 seconds, got {tr}.")
    runs = np.asarray(runs)
    col = {s: i for i, s in enumerate(stimuli)}
    design = np.zeros((runs.size, len(stimuli)), dtype=np.float64)
    starts = {r: int(np.flatnonzero(runs == r)[0]) for r in pd.unique(runs)}
    lengths = {r: int((runs == r).sum()) for r in starts}
    for ev in events.itertuples(index=False):
        if ev.run not in starts:
            raise DataError(f"an event refers to run {ev.run!r}, which is not in the fMRI runs {list(starts)}.")
        if ev.stimulus not in col:
            raise DataError(f"an event refers to stimulus {ev.stimulus!r}, which has no features.")
        end = ev.onset + ev.duration
        if end > lengths[ev.run] * tr + 1e-6:
            raise DataError(
                f"event '{ev.stimulus}' of run {ev.run} ends at {end:.2f} s, after the run's last TR "
                f"({lengths[ev.run] * tr:.2f} s); check the TR and the events' onsets."
            )
        first, last = int(np.floor(ev.onset / tr)), int(np.ceil(end / tr))
        for k in range(first, last):
            overlap = min(end, (k + 1) * tr) - max(ev.onset, k * tr)
            if overlap > 0:
                design[starts[ev.run] + k, col[ev.stimulus]] += overlap / tr
    return design.astype(np.float32)
