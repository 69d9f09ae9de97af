"""ds004323's RL regressors (EMPA, DDQN) as a baseline of the gameplay study: a ``.bson`` file's rows on each run's
frames (``baseline: bson_regressors``, options :class:`brainalign.config.RegressorOptions`).

The dataset's MongoDB dump (``behavior/dump.tar.gz``, untarred: ``dump/<db>/regressors.bson`` for EMPA,
``dump/<db>/dqn_regressors_25M.bson`` for DDQN) holds model regressors whose fields are not documented, so the
config names them: ``field`` (the numbers), ``where`` (the documents of one BOLD run, ``'{subject}'`` and
``'{run}'`` filled in), ``time_field`` and ``time_unit`` (when each row happened).

The rows reach the TR grid the way every frame feature does, through the study's design
(:func:`brainalign.study.gameplay.gameplay_design`): each kept frame gets one row, and each TR averages its
frames. A frame gets

- ``time_unit: tr``: the row of the TR it is shown in (:func:`brainalign.stimuli.gameplay.frame_tr_index`, the
  rule the design groups frames by), so with ``stimuli.window: 1`` a TR with frames gets exactly its row;
- ``time_unit: ms`` / ``s``: the last row at or before the frame's timestamp (both on the plays' clock), e.g. the
  agent's values at the action step the frame shows.

A frame with no row (before a run's first timestamp, or on a TR the file has no row for) gets zeros, like a TR
without frames in every space; a subject none of whose frames gets a row is an error.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brainalign._utils.errors import DataError
from brainalign.config import RegressorOptions
from brainalign.features.bson_reader import field_rows, read_bson
from brainalign.stimuli.gameplay import TIME_UNITS, frame_tr_index

__all__ = ["regressor_path", "regressor_documents", "same_id", "run_documents", "run_regressors", "regressor_frame_features",
           "PLACEHOLDERS"]

#: the ``where`` values filled with each BOLD run's subject and run
PLACEHOLDERS = ("{subject}", "{run}")


def regressor_path(root: str | Path | None, path: str) -> Path:
    """``options.path`` under the data root; a pattern (``dump/*/regressors.bson``: the dump's database folder is
    named by whoever made it) must match exactly one file.

    Raises
    ------
    FileNotFoundError
        When nothing matches (naming the path and how the dump is unpacked).
    ValueError
        When a pattern matches several files (naming them).
    """
    base = Path(root) if root is not None else Path(".")
    if Path(path).is_absolute() or not any(c in path for c in "*?["):
        p = Path(path) if Path(path).is_absolute() else base / path
        if not p.is_file():
            raise FileNotFoundError(f"{p}: regressor file not found; untar ds004323's behavior/dump.tar.gz under the "
                                    "data root (tar xzf; no mongorestore needed) or fix the path.")
        return p
    found = sorted(q for q in base.glob(path) if q.is_file())
    if not found:
        raise FileNotFoundError(f"{base / path}: no regressor file matches; untar ds004323's behavior/dump.tar.gz "
                                "under the data root (tar xzf; no mongorestore needed) or fix the path.")
    if len(found) > 1:
        raise ValueError(f"{base / path} matches {len(found)} files ({', '.join(map(str, found[:4]))}); name one.")
    return found[0]


def regressor_documents(path: str | Path) -> list[dict[str, Any]]:
    """The documents of a ``.bson`` file, read once per (path, size, mtime) in a process (every subject reads the
    same file)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: regressor file not found; untar ds004323's behavior/dump.tar.gz under the "
                                "data root (tar xzf; no mongorestore needed) or fix the model's options.path.")
    st = p.stat()
    return list(_documents(str(p.resolve()), st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=2)
def _documents(path: str, size: int, mtime_ns: int) -> tuple:
    return tuple(read_bson(path))


def same_id(value: Any, wanted: Any) -> bool:
    """Whether a document's subject/run value names ``wanted``: numbers and strings alike, leading zeros and a
    ``sub-``/``run-`` prefix ignored (``1``, ``'01'`` and ``'sub-01'`` are subject ``'01'``)."""
    def norm(v):
        s = str(v).strip().removeprefix("sub-").removeprefix("run-")
        try:
            f = float(s)
        except ValueError:
            return s
        return str(int(f)) if f == int(f) else s
    return value is not None and norm(value) == norm(wanted)


def run_documents(docs: list[dict[str, Any]], where: dict[str, Any], subject: str, run: int, *, name: str = "",
                  path: str | Path = "") -> list[dict[str, Any]]:
    """The documents of one BOLD run: ``where`` with ``'{subject}'`` / ``'{run}'`` filled in.

    Placeholder fields match with :func:`same_id`; fixed values must be equal.

    Raises
    ------
    DataError
        When no document matches, naming the model, the subject and run, and the values the file holds.
    """
    filled = {k: subject if v == "{subject}" else run if v == "{run}" else v for k, v in where.items()}
    ids = {k for k, v in where.items() if v in PLACEHOLDERS}
    chosen = [d for d in docs
              if all(same_id(d.get(k), v) if k in ids else d.get(k) == v for k, v in filled.items())]
    if not chosen:
        held = {k: sorted({str(d.get(k)) for d in docs})[:12] for k in where}
        raise DataError(f"models[{name}]: no document of {path} is subject {subject} run {run} (where {filled}); "
                        f"the file holds {held} ({len(docs)} documents). Fix options.where so that each BOLD run "
                        "selects its own documents.")
    return chosen


def run_regressors(docs: list[dict[str, Any]], opts: RegressorOptions, *, name: str = "") -> tuple[np.ndarray, np.ndarray]:
    """One run's rows and their times.

    Returns
    -------
    rows : float32 ndarray (n_rows, dim)
    times : float64 ndarray (n_rows,)
        In ``opts.time_unit`` (``tr``: 0-based TR index); the row position when ``time_field`` is null.

    Raises
    ------
    ValueError
        When the fields are missing or not numeric, the time field does not give one number per row, or several
        documents have no time field to order them by.
    """
    rows = [field_rows(d, opts.field, i) for i, d in enumerate(docs)]
    if len({r.shape[1] for r in rows}) != 1:
        raise ValueError(f"models[{name}]: options.field {opts.field!r} has rows of different lengths across "
                         f"documents: {sorted({r.shape[1] for r in rows})}.")
    if opts.time_field is None:
        if len(docs) > 1:
            raise ValueError(f"models[{name}]: {len(docs)} documents per run and no options.time_field, so their "
                             "order is unknown; name the field giving each row's TR index or timestamp.")
        return rows[0].astype(np.float32), np.arange(rows[0].shape[0], dtype=np.float64)
    times = []
    for i, (d, r) in enumerate(zip(docs, rows)):
        t = field_rows(d, opts.time_field, i).ravel()
        if t.size != r.shape[0]:
            raise ValueError(f"models[{name}]: options.time_field {opts.time_field!r} gives {t.size} times for the "
                             f"{r.shape[0]} rows of {opts.field!r} in a document; it needs one per row.")
        times.append(t)
    return np.concatenate(rows).astype(np.float32), np.concatenate(times)


def regressor_frame_features(opts: RegressorOptions, docs: list[dict[str, Any]], subject: str, frames: pd.DataFrame,
                             tr: float, frame_time_unit: str = "ms", *, name: str = "",
                             path: str | Path = "") -> tuple[np.ndarray, int]:
    """One regressor row per kept frame of a subject.

    Parameters
    ----------
    opts : RegressorOptions
    docs : the file's documents (:func:`regressor_documents`)
    subject : str
        The subject as the config writes it.
    frames : DataFrame with run, onset (s from the run start) and timestamp (plays' clock) per frame
        The study's stimuli (``StudyData.events`` of a gameplay study), in design-column order.
    tr : float
    frame_time_unit : {"ms", "s"}
        ``stimuli.time_unit`` (the unit of ``frames.timestamp``).

    Returns
    -------
    features : float32 ndarray (n_frames, dim)
    n_without : int
        Frames that got no row (zeros).

    Raises
    ------
    DataError
        When a run has no document (:func:`run_documents`), a TR has two rows, or no frame gets a row.
    """
    out, got = None, np.zeros(len(frames), dtype=bool)
    runs = frames["run"].to_numpy()
    for run in pd.unique(runs):
        sel = np.flatnonzero(runs == run)
        rows, times = run_regressors(run_documents(docs, opts.where, subject, int(run), name=name, path=path), opts,
                                     name=name)
        if out is None:
            out = np.zeros((len(frames), rows.shape[1]), dtype=np.float32)
        if rows.shape[1] != out.shape[1]:
            raise DataError(f"models[{name}]: run {run} of subject {subject} has {rows.shape[1]} regressor columns, "
                            f"another run {out.shape[1]}.")
        if opts.time_unit == "tr":
            index = np.round(times).astype(np.int64)
            if np.unique(index).size != index.size:
                raise DataError(f"models[{name}]: subject {subject} run {run} has several rows for one TR in "
                                f"{opts.time_field or 'row order'}; give one row per TR.")
            position = dict(zip(index.tolist(), range(index.size)))
            k = frame_tr_index(frames["onset"].to_numpy()[sel], tr)
            pos = np.array([position.get(int(t), -1) for t in k], dtype=np.int64)
        else:
            order = np.argsort(times, kind="stable")
            t_rows = times[order] * TIME_UNITS[opts.time_unit]
            t_frames = frames["timestamp"].to_numpy(dtype=np.float64)[sel] * TIME_UNITS[frame_time_unit]
            last = np.searchsorted(t_rows, t_frames, side="right") - 1
            pos = np.where(last >= 0, order[np.maximum(last, 0)], -1)
        ok = pos >= 0
        out[sel[ok]] = rows[pos[ok]]
        got[sel[ok]] = True
    if out is None or not got.any():
        raise DataError(f"models[{name}]: none of subject {subject}'s {len(frames)} frames falls on a regressor row; "
                        f"check options.time_field ({opts.time_field}) and time_unit ({opts.time_unit}).")
    return out, int((~got).sum())
