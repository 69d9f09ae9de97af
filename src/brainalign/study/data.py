"""From the config's ``brain`` and ``stimuli`` sections to one :class:`StudyData` per subject.

Two shapes of brain data meet the same encoding code:

* **time series** (``format: nifti``, ``bids``, ``movie10``, ``vwt_hdf5``): rows
  are TRs, ``runs`` are scanner runs, stimuli are placed on the TR grid by the
  design matrix and go through hemodynamic delays;
* **items** (``nsd``, ``glmsingle``): rows are items (single-trial or
  repeat-averaged betas), there is no time axis and no delay. Items are dealt
  into ``encoding.item_folds`` seeded folds that play the role of runs (inner
  CV, held-out groups for the paired tests), and the dataset's own train/test
  split (NSD's shared 1000) is kept for ``encoding.outer_cv: split``.

In both cases ``design`` maps rows to stimuli, so a feature space is
``design @ features``; for items it is a sparse one-hot matrix (an NSD subject
has ~10,000 rows × 10,000 images).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import sparse

from brainalign.brain.items import ItemResponses
from brainalign.brain.recording import Recording, load_nifti_recording
from brainalign.config import Experiment, ImageStimuli, MovieClipStimuli, StimulusSpec, TextItemStimuli, resolve_path
from brainalign.stimuli.events import events_from_tr_labels, read_tr_labels
from brainalign.timing import stimulus_design

__all__ = ["StudyData", "load_data", "load_subject", "dataset_root", "expand_data_root", "item_folds", "Progress"]

#: ``progress(label, total)`` returns a ``tick()`` called once per finished unit (the CLI draws rich bars).
Progress = Callable[[str, int], Callable[[], None]]


def _no_progress(label: str, total: int) -> Callable[[], None]:
    return lambda: None


@dataclass
class StudyData:
    """Brain data and stimuli of one subject.

    Attributes
    ----------
    recording : Recording
        ``data`` (n_rows, n_voxels); for item data the rows are items, ``runs``
        their fold ids and ``meta["rows"] == "items"``.
    events : DataFrame or None
        Stimulus blocks of a time series (None for items).
    stimuli : list of str
        One identifier per stimulus (column of ``design``).
    design : ndarray or scipy.sparse matrix of shape (n_rows, n_stimuli)
    input_files : dict name -> Path
    names : list of str, optional
        Text put into prompts for each stimulus (default: ``stimuli``).
    items : DataFrame or None
        Item table of item data, one row per data row.
    test_rows : ndarray of bool or None
        Item data: rows of the dataset's test split (``encoding.outer_cv: split``).
    load_stimuli : callable or None
        Returns the stimulus objects a multimodal model reads (images, clips...), in ``stimuli`` order;
        movie clips take the modality (``"video"`` or ``"audio"``).
    extract_options : dict
        Extra arguments of the extraction (``sampling_rate`` of audio clips).
    """

    recording: Recording
    events: pd.DataFrame | None
    stimuli: list[str]
    design: Any
    input_files: dict[str, Path] = field(default_factory=dict)
    names: list[str] | None = None
    items: pd.DataFrame | None = None
    test_rows: np.ndarray | None = None
    load_stimuli: Callable[..., Any] | None = None
    extract_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.names is None:
            self.names = list(self.stimuli)

    @property
    def is_items(self) -> bool:
        return self.recording.meta.get("rows") == "items"


def dataset_root(exp: Experiment, base_dir: Path | None, data_root: Path | None = None) -> Path:
    """Folder of a dataset format: ``--data-root`` when given, else ``brain.data_root`` next to the config."""
    if data_root is not None:
        return Path(data_root)
    if exp.brain.data_root is None:
        raise ValueError(f"brain.format '{exp.brain.format}' needs brain.data_root (or --data-root): the folder "
                         "that holds the dataset.")
    return resolve_path(exp.brain.data_root, base_dir)


DATA_ROOT = "{data_root}"


def expand_data_root(exp: Experiment, base_dir: Path | None, data_root: Path | None = None) -> Experiment:
    """``exp`` with a leading ``{data_root}`` in ``brain.rois.image`` / ``brain.rois.table`` replaced by the dataset
    folder (:func:`dataset_root`), so an atlas that ships with the dataset moves with ``--data-root``.

    Other paths of ROIs stay relative to the config. Returns ``exp`` itself when there is nothing to expand
    (the config refuses the placeholder with format ``nifti``). Called by :func:`brainalign.pipeline.checks.preflight`,
    :func:`brainalign.pipeline.runner.run` and :func:`~brainalign.pipeline.runner.run_study`.
    """
    rois = exp.brain.rois
    if rois is None or exp.brain.format == "nifti":
        return exp
    fields = {k: v for k, v in (("image", rois.image), ("table", rois.table))
              if isinstance(v, str) and v.startswith(DATA_ROOT)}
    if not fields:
        return exp
    root = str(dataset_root(exp, base_dir, data_root).absolute())
    new = rois.model_copy(update={k: root + v[len(DATA_ROOT):] for k, v in fields.items()})
    return exp.model_copy(update={"brain": exp.brain.model_copy(update={"rois": new})})


def item_folds(n_items: int, k: int, seed: int) -> np.ndarray:
    """Seeded fold id (0..k-1) of every item, folds of equal size ±1.

    Raises
    ------
    ValueError
        If there are fewer items than folds.
    """
    if n_items < k:
        raise ValueError(f"{n_items} items cannot fill encoding.item_folds={k} folds; lower item_folds.")
    folds = np.empty(n_items, dtype=np.int64)
    folds[np.random.default_rng(seed).permutation(n_items)] = np.arange(n_items) % k
    return folds


def _nifti_subject(exp: Experiment, base_dir: Path | None) -> StudyData:
    spec = exp.stimuli
    assert isinstance(spec, StimulusSpec)
    ev_path = resolve_path(spec.events, base_dir)
    labels, runs = read_tr_labels(ev_path)
    bold = resolve_path(exp.brain.bold, base_dir)
    mask = resolve_path(exp.brain.mask, base_dir)
    rec = load_nifti_recording(
        bold, mask, runs, exp.brain.tr, subject=exp.brain.subject,
        detrend=exp.brain.detrend, standardize=exp.brain.standardize,
    )
    return _tr_label_data(exp, rec, ev_path, labels, runs, dict(bold=bold, mask=mask, events=ev_path))


def _tr_label_data(exp, rec, ev_path, labels, runs, files) -> StudyData:
    spec = exp.stimuli
    if labels.size != rec.data.shape[0]:
        raise ValueError(f"{ev_path} has {labels.size} rows but the brain data have {rec.data.shape[0]} TRs "
                         f"(subject {rec.subject}); stimuli.events needs one row per TR.")
    events = events_from_tr_labels(labels, runs, rec.tr, spec.labels, spec.rest)
    stimuli = [spec.labels[k] for k in sorted(spec.labels)]
    design = stimulus_design(events, runs, rec.tr, stimuli)
    return StudyData(rec, events, stimuli, design, input_files=files)


def _items_recording(resp: ItemResponses, exp: Experiment, root: Path) -> tuple[Recording, pd.DataFrame]:
    """Item responses as a Recording whose 'runs' are seeded folds (rows sorted by fold, so folds are contiguous)."""
    k = exp.encoding.item_folds
    folds = item_folds(len(resp.items), k, exp.seed)
    if exp.encoding.outer_cv == "split":  # deal train and test items separately; test folds are k..2k-1
        if "split" not in resp.items.columns:
            raise ValueError(f"encoding.outer_cv 'split' needs a split column in the {exp.brain.format} item table; "
                             "use outer_cv: leave-one-run-out (item folds) instead.")
        test = (resp.items["split"] == "test").to_numpy()
        if test.sum() < k or (~test).sum() < k:
            raise ValueError(f"the split has {int((~test).sum())} train and {int(test.sum())} test items; each needs "
                             f"at least encoding.item_folds={k}.")
        folds[~test] = item_folds(int((~test).sum()), k, exp.seed)
        folds[test] = k + item_folds(int(test.sum()), k, exp.seed + 1)
    order = np.argsort(folds, kind="stable")
    items = resp.items.iloc[order].reset_index(drop=True)
    items["fold"] = folds[order]
    data = np.ascontiguousarray(resp.data[order], dtype=np.float32)
    meta = dict(resp.meta, rows="items", data_root=str(root))
    rec = Recording(data, folds[order], float(exp.brain.tr or 0.0), resp.mask_img, subject=resp.subject, meta=meta)
    return rec, items


def _one_hot(keys: np.ndarray) -> tuple[list, sparse.csr_matrix]:
    uniq, inv = np.unique(keys, return_inverse=True)
    n = keys.size
    return list(uniq), sparse.csr_matrix((np.ones(n, dtype=np.float32), (np.arange(n), inv)), shape=(n, uniq.size))


def _item_data(exp: Experiment, resp: ItemResponses, root: Path, base_dir: Path | None) -> StudyData:
    rec, items = _items_recording(resp, exp, root)
    spec = exp.stimuli
    test_rows = (items["split"] == "test").to_numpy() if "split" in items.columns else None
    if isinstance(spec, ImageStimuli):
        if "nsd_id" not in items.columns:
            raise ValueError(f"stimuli.format 'nsd-images' needs an nsd_id column in the item table; the "
                             f"{exp.brain.format} loader gave {list(items.columns)}.")
        ids, design = _one_hot(items["nsd_id"].to_numpy())
        path = resolve_path(spec.path, root)

        def load(ids=ids, path=path, size=spec.size) -> list:
            from brainalign.stimuli.images import nsd_images

            return list(nsd_images(path, ids, size))

        return StudyData(rec, None, [f"nsd{int(i):05d}" for i in ids], design, dict(images=path),
                         names=[spec.name] * len(ids), items=items, test_rows=test_rows, load_stimuli=load)
    if isinstance(spec, TextItemStimuli):
        missing = [c for c in spec.columns if c not in items.columns]
        if len(missing) == len(spec.columns):
            raise ValueError(f"stimuli.columns {spec.columns} are not in the item table (columns: "
                             f"{list(items.columns)}); name the columns that hold the item text.")
        texts = items[[c for c in spec.columns if c in items.columns]].apply(
            lambda row: " ".join(str(v).strip() for v in row if isinstance(v, str) and v.strip() and v != "n/a"), axis=1
        ).to_numpy()
        if (texts == "").any():
            raise ValueError(f"{int((texts == '').sum())} items have no text in columns {spec.columns}.")
        uniq, design = _one_hot(texts)
        return StudyData(rec, None, [str(t) for t in uniq], design, {}, items=items, test_rows=test_rows)
    raise ValueError(f"stimuli.format '{spec.format}' does not apply to item data (brain.format "
                     f"'{exp.brain.format}'); use nsd-images or text-items.")


def _movie_clip_data(exp: Experiment, rec: Recording, root: Path) -> StudyData:
    """One stimulus per TR: the clip of the movie shown during that TR (design = identity)."""
    from brainalign.brain.movie10 import movie10_tr_table, segment_trs_from_events
    from brainalign.stimuli.movie_study import MovieClips

    spec = exp.stimuli
    stim_root, raw_root = resolve_path(spec.path, root), resolve_path(spec.raw_root, root)
    movies = list(rec.run_ids) or [str(r) for r in np.unique(rec.runs)]
    tables = []
    for k, movie in zip(np.unique(rec.runs), movies):
        n = int((rec.runs == k).sum())
        seg_trs = (rec.meta.get("segment_trs") or {}).get(movie) or segment_trs_from_events(raw_root, movie, rec.tr)
        if sum(seg_trs) < n:
            raise ValueError(f"{movie}: the segments cover {sum(seg_trs)} TRs (from {raw_root} events) but the fMRI "
                             f"has {n}; check stimuli.raw_root or the truncation.")
        tables.append(movie10_tr_table(movie, seg_trs, rec.tr, stim_root, n_trs=n))
    table = pd.concat(tables, ignore_index=True)
    ids = table["stimulus"].tolist()

    def load(modality: str = "video", n_frames: int | None = None) -> MovieClips:
        return MovieClips(table, rec.tr, modality, n_frames or spec.n_frames, spec.size, spec.seed, spec.sampling_rate)

    files = {f"clip:{Path(f).name}": Path(f) for f in pd.unique(table["stim_file"])}
    files.update({f"brain:{Path(f).name}": Path(f) for f in rec.meta.get("files", []) if Path(f).is_file()})
    return StudyData(rec, None, ids, sparse.identity(len(ids), dtype=np.float32, format="csr"),
                     files, names=[spec.name] * len(ids), load_stimuli=load,
                     extract_options=dict(sampling_rate=spec.sampling_rate))


def load_subject(exp: Experiment, subject: str, base_dir: Path | None = None,
                 data_root: Path | None = None) -> StudyData:
    """Load one subject's brain data and stimuli as the config describes.

    Raises
    ------
    ValueError, FileNotFoundError
        With the field or file concerned and the fix.
    """
    from brainalign.brain.loaders import fill_subject, load_brain

    if exp.brain.format == "nifti":
        return _nifti_subject(exp, base_dir)
    root = dataset_root(exp, base_dir, data_root)
    opts = fill_subject(dict(exp.brain.options), subject)
    if exp.brain.format == "bids":
        opts.setdefault("detrend", exp.brain.detrend)
        opts.setdefault("standardize", exp.brain.standardize)
    resp, _events = load_brain(exp.brain.format, root, subject=subject, **opts)
    resp.subject = str(subject)  # the id as the config writes it (results folders are named by it)
    if isinstance(resp, ItemResponses):
        return _item_data(exp, resp, root, base_dir)
    if exp.brain.tr is not None and abs(resp.tr - exp.brain.tr) > 1e-3 * exp.brain.tr:
        raise ValueError(f"brain.tr={exp.brain.tr} s but the {exp.brain.format} data of subject {subject} have "
                         f"TR {resp.tr} s; fix brain.tr or remove it.")
    spec = exp.stimuli
    if isinstance(spec, MovieClipStimuli):
        return _movie_clip_data(exp, resp, root)
    if spec.format == "gameplay-frames":  # ds004323: frames timed by the plays export
        from brainalign.study.gameplay import gameplay_study_data

        return gameplay_study_data(exp, resp, root, str(subject))
    if not isinstance(spec, StimulusSpec):
        raise ValueError(f"stimuli.format '{spec.format}' needs item data; time series take tr-labels or movie-clips.")
    ev_path = resolve_path(fill_subject(spec.events, subject), base_dir)
    labels, _ = read_tr_labels(ev_path)
    files = {f"brain:{Path(f).name}": Path(f) for f in resp.meta.get("files", []) if Path(f).is_file()}
    return _tr_label_data(exp, resp, ev_path, labels, resp.runs, dict(files, events=ev_path))


def load_data(exp: Experiment, base_dir: Path | None = None, subject: str | None = None,
              data_root: Path | None = None) -> StudyData:
    """The first (or the named) subject's data; see :func:`load_subject`."""
    return load_subject(exp, subject or exp.brain.subject_list[0], base_dir, data_root)
