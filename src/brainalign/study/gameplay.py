"""Gameplay frames as the stimuli of a time-series study (``stimuli.format: gameplay-frames``, ds004323).

ds004323 has no events.tsv and no frames: the timing is in the ``plays``
export of its MongoDB dump (:func:`brainalign.stimuli.gameplay.read_plays`),
and the frames must be rendered by replaying each play's actions in VGDL
(one frame per action step, RC_RL ``scripts/replay_human*.py``). brainalign
reads the rendered frames from this layout (relative to ``brain.data_root``)::

    <stimuli.frames>/sub-<subject>/run-<RR>/<game>_p<play>_f<frame>.<png|npy>

where ``<game>`` is the play's ``game_name``, ``<play>`` the 0-based order of
the play within the run (by ``start_time``), ``<frame>`` the 0-based action
step within the play, zero-padded to 5 digits (the ``stimulus`` column of
:func:`~brainalign.stimuli.gameplay.gameplay_frames`), e.g.
``derivatives/frames/sub-01/run-02/vgfmri3_chase_p0_f00017.png``. PNG files
are RGB (an alpha channel is dropped, grey is repeated to RGB); ``.npy``
files hold uint8 ``(H, W, 3)``.

Every TR (or window of ``window`` TRs ending at it) is given the frames whose
onset falls in it (at most ``max_frames``, evenly spaced, newest kept); the
study's stimuli are the frames that some TR uses, and the design matrix
averages them: ``design[t, j] = 1 / n_frames(t)`` for the frames ``j`` of TR
``t`` (sparse, rows of TRs without frames are zero), so a per-frame feature
matrix ``F`` becomes per-TR features ``design @ F``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from brainalign._utils.errors import DataError
from brainalign.brain.manifest import RequiredFile
from brainalign.stimuli.gameplay import frames_per_tr, gameplay_frames, read_plays
from brainalign.study.data import StudyData

if TYPE_CHECKING:
    from brainalign.brain.recording import Recording
    from brainalign.config import BrainSpec, GameplayStimuli

__all__ = ["FRAME_LAYOUT", "frame_path", "gameplay_design", "gameplay_study_data", "gameplay_required_files",
           "read_frame"]

#: Where the replay writes each frame, below ``stimuli.frames``.
FRAME_LAYOUT = "sub-{subject}/run-{run:02d}/{stimulus}.{extension}"


def frame_path(frames_dir: Path, subject: str, run: int, stimulus: str, extension: str = "png") -> Path:
    """Path of one rendered frame (see :data:`FRAME_LAYOUT`)."""
    sub = str(subject).removeprefix("sub-")
    return Path(frames_dir) / FRAME_LAYOUT.format(subject=sub, run=int(run), stimulus=stimulus, extension=extension)


def read_frame(path: Path) -> np.ndarray:
    """One frame as uint8 (H, W, 3).

    Raises
    ------
    FileNotFoundError
        Naming the frame and how frames are made.
    ValueError
        For an array that is not (H, W, 3) / (H, W) uint8.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: gameplay frame not found; render the frames by replaying the plays' "
                                "actions in VGDL into the layout of brainalign.study.gameplay.FRAME_LAYOUT.")
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
    else:
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
        raise DataError(f"{path}: frame has shape {arr.shape} and dtype {arr.dtype}; write uint8 (H, W, 3) RGB.")
    return arr


def gameplay_design(frames: pd.DataFrame, runs: np.ndarray, tr: float, window: int = 1,
                    max_frames: int | None = None) -> tuple[np.ndarray, sparse.csr_matrix, pd.DataFrame]:
    """Averaging design from TRs to the frames they use.

    Parameters
    ----------
    frames : DataFrame from :func:`~brainalign.stimuli.gameplay.gameplay_frames` (all runs, any index)
    runs : ndarray of shape (n_trs,)
        Run label of every TR; each run's TRs must be contiguous.
    tr : float
    window, max_frames : see :func:`~brainalign.stimuli.gameplay.frames_per_tr`

    Returns
    -------
    used : ndarray of int, shape (n_stimuli,)
        Row positions in ``frames`` of the frames some TR uses (sorted): the stimuli, in design-column order.
    design : csr_matrix of shape (n_trs, n_stimuli), float32; each TR row sums to 1 (or 0 without frames)
    windows : DataFrame, one row per TR (run, tr_index, start, end, frames, n_frames)
    """
    runs = np.asarray(runs)
    order = pd.unique(runs)
    starts = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]])
    if len(starts) != len(order):
        raise DataError(f"the TRs of each run must be contiguous; runs change {len(starts)} times for "
                         f"{len(order)} runs.")
    frames = frames.reset_index(drop=True)
    windows = frames_per_tr(frames, runs, tr, window=window, max_frames=max_frames)
    used = np.unique(np.concatenate([np.asarray(f, dtype=np.int64) for f in windows["frames"]] + [np.zeros(0, np.int64)]))
    col = np.full(len(frames), -1, dtype=np.int64)
    col[used] = np.arange(used.size)
    r, c, v = [], [], []
    for t, idx in enumerate(windows["frames"]):
        if idx:
            r += [t] * len(idx)
            c += col[np.asarray(idx)].tolist()
            v += [1.0 / len(idx)] * len(idx)
    design = sparse.csr_matrix((np.asarray(v, np.float32), (np.asarray(r, np.int64), np.asarray(c, np.int64))),
                               shape=(runs.size, used.size))
    return used, design, windows


def _all_frames(plays: pd.DataFrame, subject: str, run_labels, spec) -> pd.DataFrame:
    tables = [gameplay_frames(plays, subject, int(r), lead_in=spec.lead_in, time_unit=spec.time_unit)
              for r in run_labels]
    return pd.concat(tables, ignore_index=True)


def gameplay_study_data(spec: GameplayStimuli, rec: Recording, root: Path, subject: str) -> StudyData:
    """:class:`~brainalign.study.data.StudyData` of one subject: TRs of ``rec`` × the frames they show.

    Parameters
    ----------
    spec : GameplayStimuli
        The config's ``stimuli`` section (``format: gameplay-frames``).
    rec : Recording
        The subject's BOLD runs.
    root : Path
        The dataset folder (``brain.data_root``); the plays export and frames are found under it.
    subject : str

    Raises
    ------
    ValueError
        When a run of the brain data has no plays (or the plays have no frames on the TR grid).
    FileNotFoundError
        When the plays export is missing (frames are read later, when a model asks for them).
    """
    from brainalign.brain.loaders import fill_subject
    from brainalign.config import resolve_path

    plays_path = resolve_path(fill_subject(spec.plays, subject), root)
    frames_dir = resolve_path(fill_subject(spec.frames, subject), root)
    plays = read_plays(plays_path)
    run_labels = pd.unique(np.asarray(rec.runs))
    frames = _all_frames(plays, subject, run_labels, spec)
    used, design, _ = gameplay_design(frames, rec.runs, rec.tr, spec.window, spec.max_frames)
    if used.size == 0:
        raise DataError(f"subject {subject}: no gameplay frame falls on the {rec.data.shape[0]} TRs of runs "
                         f"{list(run_labels)}; check stimuli.lead_in ({spec.lead_in} s) and time_unit "
                         f"({spec.time_unit}).")
    chosen = frames.iloc[used].reset_index(drop=True)
    ids = [f"run-{int(r):02d}/{s}" for r, s in zip(chosen["run"], chosen["stimulus"])]
    paths = [frame_path(frames_dir, subject, int(r), s, spec.extension) for r, s in zip(chosen["run"], chosen["stimulus"])]
    cache: dict = {}

    def load(paths=paths, size=spec.size) -> list:
        if "frames" not in cache:  # read once per subject, shared by every model
            from brainalign.stimuli.images import resize_images

            arrays = [read_frame(p) for p in paths]
            shapes = {a.shape for a in arrays}
            cache["frames"] = (list(resize_images(np.stack(arrays), size)) if len(shapes) == 1
                               else [resize_images(a[None], size)[0] for a in arrays])
        return cache["frames"]

    rec.meta["data_root"] = str(root)  # frame baselines resolve their paths (agents) under it
    rec.meta["frames"] = str(frames_dir)
    files = {f"brain:{Path(f).name}": Path(f) for f in rec.meta.get("files", []) if Path(f).is_file()}
    files["plays"] = plays_path  # recorded with their sha256 in the manifest (frames: too many to hash)
    return StudyData(rec, chosen, ids, design, files, names=[spec.name] * len(ids), load_stimuli=load)


def gameplay_required_files(spec, subject: str, runs, root: Path | None = None) -> list[RequiredFile]:
    """The plays export and (when it can be read) every rendered frame of the subject's runs.

    Paths are relative to ``brain.data_root``; the frames are listed only when the plays export exists
    under ``root`` (their names come from it).
    """
    from brainalign.brain.loaders import fill_subject

    plays_rel = fill_subject(spec.plays, subject)
    out = [RequiredFile(plays_rel, "OpenNeuro ds004323",
                        "behavior/dump.tar.gz → mongorestore → mongoexport --collection plays --jsonArray")]
    if root is None or not (Path(root) / plays_rel).is_file() or runs is None:
        return out
    plays = read_plays(Path(root) / plays_rel)
    frames_rel = Path(fill_subject(spec.frames, subject))
    how = "rendered by replaying the plays' actions in VGDL (RC_RL scripts/replay_human*.py; docs/choices.md)"
    for r in runs:
        try:
            fr = gameplay_frames(plays, subject, int(r), lead_in=spec.lead_in, time_unit=spec.time_unit)
        except ValueError:
            continue  # no plays for that run: the loader reports it with the brain data at hand
        out += [RequiredFile(str(frame_path(frames_rel, subject, int(r), s, spec.extension)), "ds004323 frames", how)
                for s in fr["stimulus"]]
    return out


#: ds004323 sizes used by ``--dry-run`` when the files are absent (ds004323 docs): TRs per run, games per run and
#: TRs per game; voxels of a 2 mm MNI152 brain mask (FSL's MNI152_T1_2mm_brain_mask has about 228,000; the
#: release's own voxel size is unconfirmed).
DS004323_ASSUMED = dict(trs_per_run=283, games_per_run=3, trs_per_game=92, voxels=228_000)


def _bold_and_mask(brain: BrainSpec, root: Path, subject: str, run: int) -> tuple[Path, Path]:
    from brainalign.brain.loaders import brain_manifest, fill_subject

    opts = fill_subject(dict(brain.options), subject)
    opts["runs"] = [run]
    files = [Path(root) / f.path for f in brain_manifest("bids", subject=subject, **opts)]
    bold = next(f for f in files if f.name.endswith(("desc-preproc_bold.nii.gz", "_bold.nii.gz")))
    mask = next((f for f in files if f.name.endswith("desc-brain_mask.nii.gz")), None)
    return bold, mask


def gameplay_plan_sizes(brain: BrainSpec, spec: GameplayStimuli, root: Path | None,
                        assumed: list[str]) -> tuple[int, int, int, int]:
    """Sizes of a gameplay study for ``--dry-run``, without reading any voxel data.

    Read from the files when present (BOLD headers for TRs, the first subject's brain mask for voxels, the plays
    export and :func:`gameplay_design` for the frames kept), else from :data:`DS004323_ASSUMED` (noted in
    ``assumed``).

    Parameters
    ----------
    brain : BrainSpec
        The config's ``brain`` section (``options.runs``, ``subjects``, ``tr``).
    spec : GameplayStimuli
        The config's ``stimuli`` section.
    root : Path or None
        The dataset folder, when known.
    assumed : list of str
        Receives a note for every size taken from :data:`DS004323_ASSUMED`.

    Returns
    -------
    rows : TRs per subject (first subject)
    frames : frames kept per subject, summed over subjects and divided by their number (rounded)
    voxels : voxels of the first subject's mask
    n_runs : runs per subject
    """
    import nibabel as nib

    runs = list(brain.options.get("runs") or [])
    if not runs:
        raise DataError("--dry-run of a gameplay study needs brain.options.runs (the run numbers).")
    subjects = brain.subject_list
    tr = float(brain.tr or 2.0)
    a = DS004323_ASSUMED
    from brainalign.brain.loaders import fill_subject

    exports: dict[Path, pd.DataFrame] = {}
    total_frames, rows0, voxels, counted = 0, None, None, 0
    for s in subjects:
        plays = None
        if root is not None:
            p = Path(root) / fill_subject(spec.plays, s)
            if p not in exports and p.is_file():
                exports[p] = read_plays(p)
            plays = exports.get(p)
        n_trs = []
        for r in runs:
            try:
                bold, mask = _bold_and_mask(brain, root, s, r)
                n_trs.append(int(nib.load(bold).shape[3]))
                if voxels is None and mask is not None:
                    voxels = int((np.asarray(nib.load(mask).dataobj) > 0).sum())
            except (FileNotFoundError, OSError, StopIteration, TypeError, ValueError, IndexError):
                n_trs.append(a["trs_per_run"])
        rows0 = sum(n_trs) if rows0 is None else rows0
        run_ids = np.repeat(runs, n_trs)
        if plays is not None:
            try:
                used, _, _ = gameplay_design(_all_frames(plays, s, runs, spec), run_ids, tr, spec.window, spec.max_frames)
                total_frames += used.size
                counted += 1
                continue
            except ValueError:
                pass
        per_tr = spec.max_frames or 4
        total_frames += len(runs) * a["games_per_run"] * a["trs_per_game"] * per_tr
    if rows0 == len(runs) * a["trs_per_run"]:
        assumed.append(f"{a['trs_per_run']} TRs per run (ds004323)")
    if voxels is None:
        voxels = a["voxels"]
        assumed.append(f"{voxels:,} brain voxels (2 mm MNI mask)")
    if counted < len(subjects):
        assumed.append(f"{spec.max_frames or 4} frames kept in each of the {a['games_per_run']} × "
                       f"{a['trs_per_game']} game TRs of a run")
    return int(rows0), int(round(total_frames / len(subjects))), int(voxels), len(runs)
