"""Load one subject's brain data and stimuli as the config describes: one :class:`~brainalign.study.data.StudyData`.

The format-specific parts: NIfTI + TR labels, dataset loaders (BIDS, Movie10, vwt_hdf5) with TR labels or movie
clips, item betas (NSD, GLMsingle) with images or text items, and ds004323's gameplay frames
(:mod:`brainalign.study.gameplay`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from brainalign._utils.errors import DataError
from brainalign.brain.items import ItemResponses
from brainalign.brain.recording import Recording, load_nifti_recording
from brainalign.config import (BrainSpec, EncodingSpec, ImageStimuli, MovieClipStimuli, Stimuli, StimulusSpec,
                               TextItemStimuli, resolve_path)
from brainalign.stimuli.events import events_from_tr_labels, read_tr_labels, stimulus_design

from brainalign.study.data import StudyData, dataset_root, item_folds
from brainalign.study.gameplay import gameplay_study_data

__all__ = ["load_subject"]


def _nifti_subject(brain: BrainSpec, spec: StimulusSpec, base_dir: Path | None) -> StudyData:
    assert isinstance(spec, StimulusSpec)
    ev_path = resolve_path(spec.events, base_dir)
    labels, runs = read_tr_labels(ev_path)
    bold = resolve_path(brain.bold, base_dir)
    mask = resolve_path(brain.mask, base_dir)
    rec = load_nifti_recording(
        bold, mask, runs, brain.tr, subject=brain.subject,
        detrend=brain.detrend, standardize=brain.standardize,
    )
    return _tr_label_data(spec, rec, ev_path, labels, runs, dict(bold=bold, mask=mask, events=ev_path))


def _tr_label_data(spec: StimulusSpec, rec: Recording, ev_path: Path, labels: np.ndarray, runs: np.ndarray,
                   files: dict) -> StudyData:
    if labels.size != rec.data.shape[0]:
        raise DataError(f"{ev_path} has {labels.size} rows but the brain data have {rec.data.shape[0]} TRs "
                         f"(subject {rec.subject}); stimuli.events needs one row per TR.")
    events = events_from_tr_labels(labels, runs, rec.tr, spec.labels, spec.rest)
    stimuli = [spec.labels[k] for k in sorted(spec.labels)]
    design = stimulus_design(events, runs, rec.tr, stimuli)
    return StudyData(rec, events, stimuli, design, input_files=files)


def _items_recording(resp: ItemResponses, brain: BrainSpec, encoding: EncodingSpec, seed: int,
                     root: Path) -> tuple[Recording, pd.DataFrame]:
    """Item responses as a Recording whose 'runs' are seeded folds (rows sorted by fold, so folds are contiguous)."""
    k = encoding.item_folds
    folds = item_folds(len(resp.items), k, seed)
    if encoding.outer_cv == "split":  # deal train and test items separately; test folds are k..2k-1
        if "split" not in resp.items.columns:
            raise DataError(f"encoding.outer_cv 'split' needs a split column in the {brain.format} item table; "
                             "use outer_cv: leave-one-run-out (item folds) instead.")
        test = (resp.items["split"] == "test").to_numpy()
        if test.sum() < k or (~test).sum() < k:
            raise DataError(f"the split has {int((~test).sum())} train and {int(test.sum())} test items; each needs "
                             f"at least encoding.item_folds={k}.")
        folds[~test] = item_folds(int((~test).sum()), k, seed)
        folds[test] = k + item_folds(int(test.sum()), k, seed + 1)
    order = np.argsort(folds, kind="stable")
    items = resp.items.iloc[order].reset_index(drop=True)
    items["fold"] = folds[order]
    data = np.ascontiguousarray(resp.data[order], dtype=np.float32)
    meta = dict(resp.meta, rows="items", data_root=str(root))
    rec = Recording(data, folds[order], float(brain.tr or 0.0), resp.mask_img, subject=resp.subject, meta=meta)
    return rec, items


def _one_hot(keys: np.ndarray) -> tuple[list, sparse.csr_matrix]:
    uniq, inv = np.unique(keys, return_inverse=True)
    n = keys.size
    return list(uniq), sparse.csr_matrix((np.ones(n, dtype=np.float32), (np.arange(n), inv)), shape=(n, uniq.size))


def _item_data(brain: BrainSpec, spec: Stimuli, encoding: EncodingSpec, seed: int, resp: ItemResponses, root: Path,
               base_dir: Path | None) -> StudyData:
    rec, items = _items_recording(resp, brain, encoding, seed, root)
    test_rows = (items["split"] == "test").to_numpy() if "split" in items.columns else None
    if isinstance(spec, ImageStimuli):
        if "nsd_id" not in items.columns:
            raise DataError(f"stimuli.format 'nsd-images' needs an nsd_id column in the item table; the "
                             f"{brain.format} loader gave {list(items.columns)}.")
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
            raise DataError(f"stimuli.columns {spec.columns} are not in the item table (columns: "
                             f"{list(items.columns)}); name the columns that hold the item text.")
        texts = items[[c for c in spec.columns if c in items.columns]].apply(
            lambda row: " ".join(str(v).strip() for v in row if isinstance(v, str) and v.strip() and v != "n/a"), axis=1
        ).to_numpy()
        if (texts == "").any():
            raise DataError(f"{int((texts == '').sum())} items have no text in columns {spec.columns}.")
        uniq, design = _one_hot(texts)
        return StudyData(rec, None, [str(t) for t in uniq], design, {}, items=items, test_rows=test_rows)
    raise DataError(f"stimuli.format '{spec.format}' does not apply to item data (brain.format "
                     f"'{brain.format}'); use nsd-images or text-items.")


def _segment_lengths(spec: MovieClipStimuli, rec: Recording, movie: str, raw_root: Path, n: int) -> list[int]:
    """TRs of each segment of ``movie`` in the brain arrays: recorded by the loader (GIFTI runs), given in
    ``stimuli.segment_trs``, or inferred from the events' durations.

    Inferred lengths place every TR in its clip only if the arrays lost TRs at the end of the movie alone; when they
    sum to more than the arrays hold, features and BOLD may drift apart segment by segment, so it is said (a
    warning naming the movie, both counts and the fix), and a shortfall larger than the last segment is refused.
    """
    import warnings

    from brainalign.brain.movie10 import segment_trs_from_events

    recorded = (rec.meta.get("segment_trs") or {}).get(movie)
    given = (spec.segment_trs or {}).get(movie)
    if recorded or given:
        seg_trs = [int(x) for x in (recorded or given)]
        where = "the loader's runs" if recorded else "stimuli.segment_trs"
        if sum(seg_trs) < n:
            raise DataError(f"{movie}: the segments of {where} cover {sum(seg_trs)} TRs but the fMRI has {n}; fix "
                            f"stimuli.segment_trs[{movie!r}].")
        return seg_trs
    seg_trs = segment_trs_from_events(raw_root, movie, rec.tr)
    if sum(seg_trs) < n:
        raise DataError(f"{movie}: the segments cover {sum(seg_trs)} TRs (from {raw_root} events) but the fMRI "
                        f"has {n}; check stimuli.raw_root or the truncation, or give stimuli.segment_trs.")
    extra = sum(seg_trs) - n
    if extra >= seg_trs[-1]:
        raise DataError(f"{movie}: the events' segments cover {sum(seg_trs)} TRs, {extra} more than the fMRI's {n} "
                        f"(more than the whole last segment, {seg_trs[-1]} TRs), so where each segment starts in the "
                        f"arrays is unknown; give the lengths in stimuli.segment_trs[{movie!r}].")
    if extra:
        warnings.warn(f"{movie}: segment lengths inferred from the events cover {sum(seg_trs)} TRs, the fMRI has {n}; "
                      f"the {extra} missing TRs are assumed to be the end of the last segment. If the arrays were "
                      f"trimmed segment by segment, clips and BOLD drift apart: give the lengths in "
                      f"stimuli.segment_trs[{movie!r}].", stacklevel=3)
    return seg_trs


def _movie_clip_data(spec: MovieClipStimuli, rec: Recording, root: Path) -> StudyData:
    """One stimulus per TR: the clip of the movie shown during that TR (design = identity)."""
    from brainalign.brain.movie10 import movie10_tr_table
    from brainalign.stimuli.movie_study import MovieClips

    stim_root, raw_root = resolve_path(spec.path, root), resolve_path(spec.raw_root, root)
    movies = list(rec.run_ids) or [str(r) for r in np.unique(rec.runs)]
    tables = []
    for k, movie in zip(np.unique(rec.runs), movies):
        n = int((rec.runs == k).sum())
        seg_trs = _segment_lengths(spec, rec, movie, raw_root, n)
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


def load_subject(brain: BrainSpec, stimuli: Stimuli, encoding: EncodingSpec, seed: int, subject: str,
                 base_dir: Path | None = None, data_root: Path | None = None) -> StudyData:
    """Load one subject's brain data and stimuli as the config describes.

    Parameters
    ----------
    brain : BrainSpec
        The config's ``brain`` section (format, files or dataset options, TR, cleaning).
    stimuli : Stimuli
        The config's ``stimuli`` section (any stimulus format).
    encoding : EncodingSpec
        The config's ``encoding`` section: item data are dealt into ``item_folds`` folds (and ``outer_cv: split``).
    seed : int
        The experiment's seed (the item folds).
    subject : str
        The subject id as the config writes it (``brain.subject_list``).
    base_dir : Path, optional
        Folder of the config (relative paths).
    data_root : Path, optional
        ``--data-root`` (else ``brain.data_root``).

    Returns
    -------
    StudyData

    Raises
    ------
    ValueError, FileNotFoundError
        With the field or file concerned and the fix.
    """
    from brainalign.brain.loaders import fill_subject, load_brain

    if brain.format == "nifti":
        return _nifti_subject(brain, stimuli, base_dir)
    root = dataset_root(brain, base_dir, data_root)
    opts = fill_subject(dict(brain.options), subject)
    if brain.format == "bids":
        opts.setdefault("detrend", brain.detrend)
        opts.setdefault("standardize", brain.standardize)
    resp, _events = load_brain(brain.format, root, subject=subject, **opts)
    resp.subject = str(subject)  # the id as the config writes it (results folders are named by it)
    if isinstance(resp, ItemResponses):
        return _item_data(brain, stimuli, encoding, seed, resp, root, base_dir)
    if brain.tr is not None and abs(resp.tr - brain.tr) > 1e-3 * brain.tr:
        raise DataError(f"brain.tr={brain.tr} s but the {brain.format} data of subject {subject} have "
                         f"TR {resp.tr} s; fix brain.tr or remove it.")
    spec = stimuli
    if isinstance(spec, MovieClipStimuli):
        return _movie_clip_data(spec, resp, root)
    if spec.format == "gameplay-frames":  # ds004323: frames timed by the plays export
        return gameplay_study_data(spec, resp, root, str(subject))
    if not isinstance(spec, StimulusSpec):
        raise DataError(f"stimuli.format '{spec.format}' needs item data; time series take tr-labels or movie-clips.")
    ev_path = resolve_path(fill_subject(spec.events, subject), base_dir)
    labels, _ = read_tr_labels(ev_path)
    files = {f"brain:{Path(f).name}": Path(f) for f in resp.meta.get("files", []) if Path(f).is_file()}
    return _tr_label_data(spec, resp, ev_path, labels, resp.runs, dict(files, events=ev_path))
