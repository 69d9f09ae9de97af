"""CNeuroMod Movie10 on the fsaverage6 surface: per-movie concatenation, truncation, z-scoring, split.

Two on-disk sources are read (see ``docs/choices.md``, Movie10):

* ``"npy"`` — the group pipeline's per-movie arrays ``sub{N}-{movie}-fsaverage6.npy``
  (vertices × TRs, left hemisphere first, segments already concatenated),
  memory-mapped;
* ``"gifti"`` — fMRIPrep ``--output-spaces fsaverage6`` runs
  ``sub-XX/ses-YYY/func/sub-XX_ses-YYY_task-<movie><seg>[_run-R]_space-fsaverage6_hemi-{L,R}_bold.func.gii``
  (the public ``movie10.fmriprep`` ships fsLR CIFTI only, so this needs a
  user fMRIPrep run), concatenated in segment order; life/figures were shown
  twice and ``viewing`` picks the run.

Every movie is truncated to a TR count (default: the group's Movie10 pipeline's 4024 / 6989 / 2008
for bourne / wolf / life) and z-scored per vertex *within the movie*; then
movies are concatenated. The default split is train = bourne + wolf,
test = life.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import nibabel as nib
import numpy as np
import pandas as pd

from brainalign._utils.errors import DataError
from .bids import parse_entities, read_sidecar
from .recording import Recording
from .voxels import varying_voxels

__all__ = [
    "MOVIE10_TR",
    "MOVIE10_SEGMENTS",
    "MOVIE10_TRUNCATION",
    "load_movie10",
    "movie10_split",
    "movie10_tr_table",
    "segment_trs_from_events",
]

MOVIE10_TR = 1.49
MOVIE10_SEGMENTS = {"bourne": 10, "wolf": 17, "life": 5, "figures": 12}
#: TRs kept per movie by the group's Movie10 pipeline (multi-modal-brain-stimuli): first 4024 / 6989 / 2008.
MOVIE10_TRUNCATION = {"bourne": 4024, "wolf": 6989, "life": 2008}


def _subject_number(subject: str) -> int:
    s = str(subject).replace("sub-", "").replace("sub", "")
    if not s.isdigit():
        raise DataError(f"subject={subject!r}; Movie10 subjects are 01..06.")
    return int(s)


def _load_npy(root: Path, subject: str, movie: str, pattern: str) -> tuple[np.ndarray, list[int] | None, list]:
    path = root / pattern.format(subject=_subject_number(subject), movie=movie)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: Movie10 surface array not found; it is the fsaverage6 projection (vertices × TRs) of the "
            f"{movie} runs of sub-{_subject_number(subject):02d} from the CNeuroMod movie10 dataset "
            "(https://docs.cneuromod.ca); check the data root or the file pattern."
        )
    arr = np.load(path, mmap_mode="r")
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a 2-D (vertices × TRs) array, got shape {arr.shape}.")
    return arr.T, None, [str(path)]  # (TRs, vertices) view, no copy


def _gifti_runs(root: Path, subject: str, movie: str, viewing: int) -> list[tuple[int, Path, Path]]:
    sub = f"{_subject_number(subject):02d}"
    subdir = root / f"sub-{sub}"
    if not subdir.is_dir():
        raise FileNotFoundError(f"{subdir}: subject folder not found in the Movie10 derivatives {root}.")
    segs: dict[int, dict[str, Path]] = {}
    for p in subdir.glob(f"**/func/sub-{sub}_*task-{movie}*_bold.func.gii"):
        ents, _ = parse_entities(p.name)
        m = re.fullmatch(rf"{movie}(\d\d)", ents.get("task", ""))
        if not m or ents.get("space") != "fsaverage6" or "__dup" in p.name:
            continue
        if "run" in ents and int(ents["run"]) != viewing:
            continue
        segs.setdefault(int(m.group(1)), {})[ents.get("hemi", "")] = p
    if not segs:
        raise FileNotFoundError(
            f"no space-fsaverage6 GIFTI runs for sub-{sub} task-{movie}XX under {subdir}; run fMRIPrep with "
            "--output-spaces fsaverage6 on CNeuroMod movie10 (the public movie10.fmriprep has fsLR CIFTI only)."
        )
    expected = MOVIE10_SEGMENTS.get(movie)
    out = []
    for seg in sorted(segs):
        if set(segs[seg]) != {"L", "R"}:
            raise FileNotFoundError(f"sub-{sub} task-{movie}{seg:02d}: need hemi-L and hemi-R GIFTIs, found {sorted(segs[seg])}.")
        out.append((seg, segs[seg]["L"], segs[seg]["R"]))
    if expected is not None and len(out) != expected:
        warnings.warn(f"sub-{sub} {movie}: {len(out)} of {expected} segments found; loading those present.", stacklevel=3)
    return out


def _gifti_data(path: Path) -> np.ndarray:
    img = nib.load(path)
    return np.stack([d.data for d in img.darrays], axis=0).astype(np.float32)  # (TRs, vertices)


def _load_gifti(root: Path, raw_root: Path | None, subject: str, movie: str, viewing: int, tr: float):
    runs = _gifti_runs(root, subject, movie, viewing)
    blocks, seg_trs, files, nv = [], [], [], None
    for seg, lh, rh in runs:
        meta = read_sidecar(lh, raw_root)
        side_tr = meta.get("RepetitionTime")
        if side_tr is not None and abs(float(side_tr) - tr) > 1e-3:
            raise DataError(f"TR mismatch: {lh} sidecar says RepetitionTime={side_tr} s, expected {tr} s (Movie10 TR is 1.49 s).")
        left, right = _gifti_data(lh), _gifti_data(rh)
        if left.shape[0] != right.shape[0]:
            raise DataError(f"{lh.name} has {left.shape[0]} TRs but {rh.name} has {right.shape[0]}; the hemispheres must match.")
        if nv is None:
            nv = (left.shape[1], right.shape[1])
        elif (left.shape[1], right.shape[1]) != nv:
            raise DataError(f"{lh.name}: {left.shape[1]}+{right.shape[1]} vertices, other segments have {nv}; use one surface space.")
        blocks.append(np.concatenate([left, right], axis=1))
        seg_trs.append(left.shape[0])
        files += [str(lh), str(rh)]
    return np.concatenate(blocks, axis=0), seg_trs, files, nv


def _column_stats(data, n: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD (float64) of every column over the first ``n`` rows, ``chunk`` columns at a time."""
    v = data.shape[1]
    mu, sd = np.empty(v), np.empty(v)
    for a in range(0, v, chunk):
        x = np.asarray(data[:n, a:a + chunk], dtype=np.float64)
        mu[a:a + chunk], sd[a:a + chunk] = x.mean(0), x.std(0)
    return mu, sd


def load_movie10(
    root: str | Path,
    subject: str,
    movies: Sequence[str] = ("bourne", "wolf", "life"),
    *,
    source: str = "npy",
    pattern: str = "sub{subject}-{movie}-fsaverage6.npy",
    raw_root: str | Path | None = None,
    truncate: Mapping[str, int] | None = MOVIE10_TRUNCATION,
    viewing: int = 1,
    tr: float = MOVIE10_TR,
    n_vertices: tuple[int, int] = (40962, 40962),
    chunk_vertices: int = 8192,
) -> Recording:
    """Load one Movie10 subject on fsaverage6, one z-scored block per movie.

    Parameters
    ----------
    root : path
        Folder of the ``.npy`` arrays (``source="npy"``) or fMRIPrep derivatives (``"gifti"``).
    subject : str
        ``"01"``, ``"sub-01"`` or ``"1"``.
    movies : sequence of str
        Movies in the order they are concatenated; run label k+1 is ``movies[k]``.
    source : {"npy", "gifti"}
    pattern : str
        File name of the npy arrays, with ``{subject}`` (int) and ``{movie}``.
    raw_root : path, optional
        Raw movie10 BIDS root, for inherited sidecars (TR check) — GIFTI only.
    truncate : mapping movie → n_TRs, optional
        Keep the first n TRs of each movie (None keeps all). A movie shorter
        than its count is an error: lower the count.
    viewing : int
        For life/figures (shown twice): which run (1 or 2).
    tr : float
        Expected TR (1.49 s).
    n_vertices : (int, int)
        Expected vertices per hemisphere; fsaverage6 = 40962 each.
    chunk_vertices : int
        Vertices z-scored at a time (float64 statistics); memory beyond the
        float32 result is about n_trs × chunk × 8 bytes.

    Returns
    -------
    Recording
        ``space="fsaverage6"``, ``mask_img=None``, ``runs`` = movie label,
        ``run_ids`` = movie names, ``meta["kept_vertices"]`` = indices of the
        columns among the 2 × 40962 vertices, ``meta["segment_trs"]``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: Movie10 data folder not found; check the data root.")
    if abs(tr - MOVIE10_TR) > 1e-6:
        warnings.warn(f"tr={tr} s differs from the Movie10 TR of {MOVIE10_TR} s.", stacklevel=2)
    if source not in ("npy", "gifti"):
        raise DataError(f"source={source!r}; use 'npy' or 'gifti'.")
    blocks, labels, seg_trs, files = [], [], {}, []
    for k, movie in enumerate(movies):
        if movie not in MOVIE10_SEGMENTS:
            raise DataError(f"movie {movie!r} is not a Movie10 movie; use {sorted(MOVIE10_SEGMENTS)}.")
        if source == "npy":
            data, segs, f = _load_npy(root, subject, movie, pattern)
            nv = None
        else:
            data, segs, f, nv = _load_gifti(root, Path(raw_root) if raw_root else None, subject, movie, viewing, tr)
        if data.shape[1] != sum(n_vertices) or (nv is not None and tuple(nv) != tuple(n_vertices)):
            raise DataError(
                f"{f[0]}: {data.shape[1]} vertices, expected {sum(n_vertices)} (= {n_vertices[0]} + {n_vertices[1]}, "
                "fsaverage6); resample to fsaverage6 or set n_vertices."
            )
        n = data.shape[0]
        if truncate is not None and movie in truncate:
            keep = int(truncate[movie])
            if keep > n:
                raise DataError(
                    f"{movie}: truncation asks for {keep} TRs but sub-{_subject_number(subject):02d} has {n}; "
                    f"lower truncate['{movie}'] to at most {n} (the Movie10 pipeline truncates every subject to a common count)."
                )
            n = keep
        mu, sd = _column_stats(data, n, chunk_vertices)
        blocks.append((data, n, mu, sd))  # npy: a memory map; gifti: the movie's float32 array
        labels.append(np.full(n, k + 1))
        seg_trs[movie] = segs
        files += f
    # vertices constant (e.g. medial wall) or non-finite in any movie cannot be z-scored
    keep, message = varying_voxels([sd for _, _, _, sd in blocks], f"sub {subject}", run_names=list(seg_trs),
                                   unit="vertices", within="a movie", hint="medial wall?")
    dropped = int((~keep).sum())
    if message:
        warnings.warn(message, stacklevel=2)
    cols = np.flatnonzero(keep)
    data = np.empty((sum(n for _, n, _, _ in blocks), cols.size), dtype=np.float32)  # the result, written in place
    row = 0
    for x, n, mu, sd in blocks:
        for a in range(0, cols.size, chunk_vertices):
            c = cols[a:a + chunk_vertices]
            sub = np.asarray(x[:n, c[0]:c[-1] + 1], dtype=np.float64)[:, c - c[0]]
            data[row:row + n, a:a + c.size] = (sub - mu[c]) / sd[c]
        row += n
    return Recording(
        data=data,
        runs=np.concatenate(labels),
        tr=float(tr),
        mask_img=None,
        subject=f"{_subject_number(subject):02d}",
        dropped_voxels=dropped,
        meta=dict(loader="movie10", source=source, files=files, truncate=dict(truncate) if truncate else None,
                  kept_vertices=np.flatnonzero(keep), segment_trs=seg_trs, viewing=viewing, zscore="per movie"),
        space="fsaverage6",
        run_ids=tuple(movies),
        n_vertices=tuple(n_vertices),
    )


def movie10_split(rec: Recording, test: Sequence[str] = ("life",)) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (n_trs,) train and test masks: test = TRs of the ``test`` movies, train = the rest."""
    names = dict(zip(np.unique(rec.runs).tolist(), rec.run_ids))
    unknown = set(test) - set(rec.run_ids)
    if unknown:
        raise DataError(f"test movies {sorted(unknown)} were not loaded; loaded: {list(rec.run_ids)}.")
    is_test = np.array([names[r] in set(test) for r in rec.runs])
    return ~is_test, is_test


def movie10_tr_table(
    movie: str, segment_trs: Sequence[int], tr: float = MOVIE10_TR, stimuli: str | Path = "stimuli", n_trs: int | None = None
) -> pd.DataFrame:
    """Where every TR of a concatenated movie comes from in the stimulus files.

    Parameters
    ----------
    movie : str
    segment_trs : sequence of int
        TRs of each segment run, in order (``meta["segment_trs"]``, or from the
        durations in the raw ``task-<movie><seg>_events.tsv``).
    tr : float
    stimuli : path
        The movie10 ``stimuli/`` folder (clips ``<movie>/<movie><seg>.mkv``).
    n_trs : int, optional
        Keep the first n rows (the truncation of :func:`load_movie10`).

    Returns
    -------
    DataFrame, one row per TR: run (1), onset, duration (= tr), stimulus
    (``<movie>_tr<k>``), segment, stim_file, clip_start, clip_end (s into the file).
    """
    rows = []
    k = 0
    for i, n in enumerate(segment_trs, 1):
        for j in range(int(n)):
            rows.append(dict(run=1, onset=k * tr, duration=tr, stimulus=f"{movie}_tr{k:05d}", segment=i,
                             stim_file=str(Path(stimuli) / movie / f"{movie}{i:02d}.mkv"),
                             clip_start=j * tr, clip_end=(j + 1) * tr))
            k += 1
    table = pd.DataFrame(rows)
    return table.iloc[:n_trs].reset_index(drop=True) if n_trs is not None else table


def segment_trs_from_events(raw_root: str | Path, movie: str, tr: float = MOVIE10_TR, rounding: str = "ceil") -> list[int]:
    """TRs covered by each segment's clip, from the raw ``task-<movie><seg>_events.tsv`` durations.

    For the npy source, whose arrays do not record segment boundaries, this
    places every TR of the concatenated movie in its clip. ``ceil`` counts the
    TR in which the clip ends (movie onset is aligned to the first TR); how the
    group's arrays trimmed each segment is **UNCONFIRMED**, so check the sum
    against the array length (:func:`movie10_tr_table` truncates to ``n_trs``).
    """
    raw_root = Path(raw_root)
    if rounding not in ("ceil", "floor", "round"):
        raise DataError(f"rounding={rounding!r}; use 'ceil', 'floor' or 'round'.")
    fn = {"ceil": np.ceil, "floor": np.floor, "round": np.round}[rounding]
    out = []
    for seg in range(1, MOVIE10_SEGMENTS.get(movie, 0) + 1):
        path = raw_root / f"task-{movie}{seg:02d}_events.tsv"
        if not path.is_file():
            if out:
                break
            raise FileNotFoundError(
                f"{path}: not found; the raw CNeuroMod movie10 dataset has task-<movie><seg>_events.tsv at its top level."
            )
        ev = pd.read_csv(path, sep="\t")
        if "duration" not in ev.columns or len(ev) != 1:
            raise DataError(f"{path}: expected one row with a duration column (onset duration stim_file).")
        out.append(int(fn(float(ev["duration"].iloc[0]) / tr - 1e-9)))
    return out
