"""Miniature, structurally faithful copies of the real dataset layouts.

Each ``write_*`` function writes a tiny dataset (a few voxels and TRs) into a
folder with the same file names, headers, sidecars, affines and label
tables as the public release, and returns a
dict of the planted ground truth so tests (and the study configs'
end-to-end runs) can check what a loader reads back. Everything is seeded.

Functions
---------
write_ds004323  OpenNeuro ds004323 (VGDL gameplay; raw BIDS + fMRIPrep derivatives)
write_ds003076  OpenNeuro ds003076 (deductive reasoning; raw BIDS with events.tsv)
write_nsd       Natural Scenes Dataset (betas, expdesign, ROIs + label tables, stimuli)
write_movie10   CNeuroMod Movie10 (raw events + fsaverage6-style surface arrays)
write_glmsingle GLMsingle single-trial betas (.npy / .mat / NIfTI) + item table
write_vwt_hdf5  voxelwise_tutorials HDF5 (Y_train, Y_test, run_onsets)
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

__all__ = [
    "MNI_2MM_AFFINE",
    "write_ds004323",
    "write_ds003076",
    "write_nsd",
    "write_movie10",
    "write_surface_labels",
    "write_glmsingle",
    "write_vwt_hdf5",
]

#: fMRIPrep's MNI152NLin2009cAsym res-2 grid (97 × 115 × 97); fixtures crop it.
MNI_2MM_AFFINE = np.array([[2.0, 0, 0, -96.0], [0, 2.0, 0, -132.0], [0, 0, 2.0, -78.0], [0, 0, 0, 1]])


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray, tr: float | None = None, dtype=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype) if dtype is not None else data, affine)
    img.header.set_xyzt_units("mm", "sec")
    if tr is not None and data.ndim == 4:
        img.header.set_zooms(tuple(np.sqrt((affine[:3, :3] ** 2).sum(0))) + (tr,))
    nib.save(img, path)


def _bold_series(rng: np.random.Generator, shape3: tuple, n: int, baseline: float = 500.0) -> np.ndarray:
    """Positive BOLD-like series (x, y, z, n) around ``baseline``."""
    return (baseline + 10 * rng.standard_normal(shape3 + (n,))).astype(np.float32)


# ============================================================================ ds004323
def write_ds004323(
    root: str | Path,
    subjects: tuple[str, ...] = ("01",),
    n_runs: int = 2,
    n_trs: int = 40,
    shape: tuple[int, int, int] = (4, 5, 3),
    seed: int = 0,
    derivatives: bool = True,
) -> dict:
    """OpenNeuro ds004323 (Tomov et al., VGDL gameplay), miniature.

    Raw BIDS (no events.tsv: the release has none; timing is in the MongoDB
    dump), top-level ``task-gameplay_bold.json`` (TR 2.0 s), ``games/``
    VGDL text files, and — if ``derivatives`` — an fMRIPrep tree in
    ``derivatives/fmriprep`` with ``space-MNI152NLin2009cAsym`` preproc BOLD,
    brain masks and confounds (TSV + JSON). A confound (``trans_x``) is
    planted with weight 3 in every voxel of the preprocessed data, and
    ``behavior/plays.json`` holds a ``mongoexport --jsonArray`` of the
    ``plays`` collection for those runs.

    Returns
    -------
    dict with root, derivatives, tr, shape, n_trs, signal[(sub, run)] (the
    preproc data without the confound, (x, y, z, n)), trans_x[(sub, run)].
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    tr = 2.0
    _json(root / "dataset_description.json", {"Name": "VGDL fMRI", "BIDSVersion": "1.1.1", "License": "CC0"})
    (root / "README").write_text("Atari-style video game learning (miniature brainalign fixture)\n")
    (root / "CHANGES").write_text("1.0.0 miniature\n")
    (root / ".bidsignore").write_text("games/\nbehavior/\ncode/\n")
    _json(root / "task-gameplay_bold.json", {"TaskName": "Gameplay", "RepetitionTime": tr, "DelayTime": 0.0})
    games = ["chase", "helper", "bait", "lemmings", "plaqueAttack", "zelda"]
    for g in games:
        (root / "games").mkdir(exist_ok=True)
        (root / "games" / f"vgfmri3_{g}.txt").write_text(f"BasicGame\n  SpriteSet\n    avatar > MovingAvatar  # {g}\n")
        (root / "games" / f"vgfmri3_{g}_lvl0.txt").write_text("wwwww\nwA..w\nwwwww\n")
    affine = MNI_2MM_AFFINE
    deriv = root / "derivatives" / "fmriprep"
    if derivatives:
        _json(deriv / "dataset_description.json", {
            "Name": "fMRIPrep - fMRI PREProcessing workflow", "BIDSVersion": "1.4.0", "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "fMRIPrep", "Version": "20.2.3"}]})
    truth: dict = dict(root=root, derivatives=deriv, tr=tr, shape=shape, n_trs=n_trs, signal={}, trans_x={}, mask={})
    plays = []
    t0 = 1_560_000_000_000  # ms epoch
    for sub in subjects:
        _nifti(root / f"sub-{sub}" / "anat" / f"sub-{sub}_T1w.nii.gz", rng.random((6, 7, 5)).astype(np.float32), np.diag([1.0, 1, 1, 1]))
        mask = np.ones(shape, dtype=np.uint8)
        mask[0] = 0  # outside the brain: zero in the preproc BOLD, as fMRIPrep writes it
        truth["mask"][sub] = mask
        for run in range(1, n_runs + 1):
            name = f"sub-{sub}_task-gameplay_run-{run:02d}"
            raw = _bold_series(rng, shape, n_trs)
            _nifti(root / f"sub-{sub}" / "func" / f"{name}_bold.nii.gz", np.round(raw).astype(np.int16), np.diag([3.0, 3, 3, 1]), tr)
            if derivatives:
                sig = _bold_series(rng, shape, n_trs)
                tx = rng.standard_normal(n_trs)
                data = sig + 30.0 * tx[None, None, None, :]
                data[mask == 0] = 0.0
                d = deriv / f"sub-{sub}" / "func"
                pre = f"{name}_space-MNI152NLin2009cAsym"
                _nifti(d / f"{pre}_desc-preproc_bold.nii.gz", data, affine, tr)
                _json(d / f"{pre}_desc-preproc_bold.json", {"RepetitionTime": tr, "SkullStripped": False, "TaskName": "Gameplay"})
                _nifti(d / f"{pre}_desc-brain_mask.nii.gz", mask, affine, dtype=np.uint8)
                _nifti(d / f"{pre}_boldref.nii.gz", data.mean(-1), affine)
                conf = {
                    "global_signal": data[mask > 0].mean(0),
                    "csf": rng.standard_normal(n_trs), "white_matter": rng.standard_normal(n_trs),
                    "trans_x": tx, "trans_y": rng.standard_normal(n_trs), "trans_z": rng.standard_normal(n_trs),
                    "rot_x": rng.standard_normal(n_trs), "rot_y": rng.standard_normal(n_trs), "rot_z": rng.standard_normal(n_trs),
                }
                table = pd.DataFrame(conf)
                for c in list(conf):
                    if c in ("global_signal", "csf", "white_matter") or c.startswith(("trans", "rot")):
                        table[f"{c}_derivative1"] = table[c].diff()
                        table[f"{c}_power2"] = table[c] ** 2
                        table[f"{c}_derivative1_power2"] = table[f"{c}_derivative1"] ** 2
                table["framewise_displacement"] = np.abs(table["trans_x"].diff())
                for k in range(3):
                    table[f"cosine{k:02d}"] = np.cos(np.pi * (k + 1) * (np.arange(n_trs) + 0.5) / n_trs)
                table.to_csv(d / f"{name}_desc-confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a")
                _json(d / f"{name}_desc-confounds_timeseries.json", {"trans_x": {"Description": "translation x"}})
                truth["signal"][(sub, run)] = sig
                truth["trans_x"][(sub, run)] = tx
            start = t0 + (run - 1) * 700_000 + 14_000  # 7 TRs lead-in (vgdl_expt.m)
            for g, game in enumerate(games[(run - 1) * 3 % 6:(run - 1) * 3 % 6 + 3]):
                gs = start + g * 92 * 2000
                acts = [[str(a), int(gs + 500 * k)] for k, a in enumerate(rng.integers(0, 5, 12))]
                plays.append({"subj_id": sub, "run_id": run, "game_name": f"vgfmri3_{game}",
                              "start_time": int(gs), "actions": acts, "level_idx": 0})
    _json(root / "behavior" / "plays.json", plays)
    (root / "behavior" / "README").write_text("plays.json = mongoexport --jsonArray of the 'plays' collection (miniature).\n")
    truth["plays"] = plays
    return truth


# ============================================================================ ds003076
def write_ds003076(
    root: str | Path,
    subjects: tuple[str, ...] = ("1001",),
    tasks: tuple[str, ...] = ("Syllogisms", "Transitive"),
    n_runs: int = 2,
    n_items: int = 6,
    n_control: int = 3,
    extra_trs: int = 8,
    shape: tuple[int, int, int] = (3, 4, 3),
    seed: int = 0,
) -> dict:
    """OpenNeuro ds003076 (deductive reasoning), miniature.

    Raw BIDS with top-level ``task-{Syllogisms,Transitive}_bold.json``
    (TR 2.0 s, ``NumberOfVolumesDiscardedByUser`` 6, ``SliceTiming``), per-run
    ``events.tsv`` with the release's columns (``onset duration trial_type
    accuracy response_time premise1 premise2 premise3 conclusion stim_file``,
    ``n/a`` for missing, ``control`` rows, the Transitive ``2_`` prefix quirk),
    ``participants.tsv`` and ``stimuli/*.wav``. Every run has ``extra_trs``
    volumes after the last event + 10 s (the truncation Brain-guided_LLM applies).
    A brain mask (not part of the release) is written to ``<root>/../ds003076_mask.nii.gz``.

    Returns
    -------
    dict with root, mask, tr, events[(sub, task, run)] (DataFrame), n_trs[(sub, task, run)].
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    tr = 2.0
    _json(root / "dataset_description.json", {"Name": "Brain correlates of deductive reasoning in adults", "BIDSVersion": "1.3.0"})
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects], "age": rng.integers(19, 31, len(subjects))}).to_csv(
        root / "participants.tsv", sep="\t", index=False)
    _json(root / "participants.json", {"age": {"Description": "age in years"}})
    _json(root / "T1w.json", {"MagneticFieldStrength": 3})
    (root / "CHANGES").write_text("1.0.1 miniature\n")
    slice_timing = list(np.round(np.linspace(0, tr, 32, endpoint=False), 4))
    for task in tasks:
        _json(root / f"task-{task}_bold.json", {"TaskName": task, "RepetitionTime": tr, "EchoTime": 0.02,
                                                 "NumberOfVolumesDiscardedByUser": 6, "SliceTiming": slice_timing,
                                                 "Manufacturer": "Siemens", "ManufacturersModelName": "TrioTim"})
        _json(root / f"task-{task}_events.json", {"trial_type": {"Levels": {"null": "control trial"}}})
    affine = np.array([[-3.0, 0, 0, 96.0], [0, 3.0, 0, -96.0], [0, 0, 4.0, -60.0], [0, 0, 0, 1]])
    mask = np.ones(shape, dtype=np.uint8)
    mask[0, 0, :] = 0
    mask_path = root.parent / "ds003076_mask.nii.gz"
    _nifti(mask_path, mask, affine, dtype=np.uint8)
    names = ["Nat", "Bob", "Kim", "Lou", "Sam", "Zed", "Ann", "Tom", "Eve"]
    truth: dict = dict(root=root, mask=mask_path, tr=tr, events={}, n_trs={}, affine=affine)
    for sub in subjects:
        _nifti(root / f"sub-{sub}" / "anat" / f"sub-{sub}_T1w.nii.gz", rng.random((5, 5, 5)).astype(np.float32), np.eye(4))
        for task in tasks:
            for run in range(1, n_runs + 1):
                rows, t = [], 0.0
                kinds = ["item"] * n_items + ["control"] * n_control
                order = rng.permutation(len(kinds))
                for k in order:
                    if kinds[k] == "control":
                        dur = float(np.round(rng.uniform(3.3, 4.4), 2))
                        rows.append(dict(onset=t, duration=dur, trial_type="control", accuracy=1.0,
                                         response_time=float(np.round(rng.uniform(0.5, 2), 3)), premise1="n/a", premise2="n/a",
                                         premise3="n/a", conclusion="n/a", stim_file="n/a"))
                    else:
                        npre = 2 if task == "Transitive" else int(rng.integers(2, 4))
                        truth_v = ["true", "false"][int(rng.integers(0, 2))]
                        pol = ["affirm", "negate"][int(rng.integers(0, 2))]
                        nm = names[int(rng.integers(0, len(names)))]
                        stim = f"{nm}_{3 if task == 'Transitive' and rng.random() < 0.5 else npre}_{truth_v}_{pol}.wav"
                        prefix = 2 if task == "Transitive" else npre  # Transitive quirk: always 2_
                        dur = float(np.round(rng.uniform(10, 14), 2))
                        rows.append(dict(onset=t, duration=dur, trial_type=f"{prefix}_{truth_v}_{pol}",
                                         accuracy=float(rng.integers(0, 2)), response_time=float(np.round(rng.uniform(1, 3), 3)),
                                         premise1=f"All {nm}s are blickets", premise2="Some blickets are daxes",
                                         premise3="No daxes are wugs" if npre == 3 else "n/a",
                                         conclusion=f"Some {nm}s are daxes", stim_file=stim))
                        (root / "stimuli").mkdir(exist_ok=True)
                        (root / "stimuli" / stim).write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
                    t = float(np.round(t + dur, 2))
                ev = pd.DataFrame(rows)
                n = int(np.floor((t + 10) / tr)) + extra_trs
                name = f"sub-{sub}_task-{task}_run-{run:02d}"
                d = root / f"sub-{sub}" / "func"
                d.mkdir(parents=True, exist_ok=True)
                ev.to_csv(d / f"{name}_events.tsv", sep="\t", index=False, na_rep="n/a")
                _nifti(d / f"{name}_bold.nii.gz", np.round(_bold_series(rng, shape, n)).astype(np.int16), affine, tr)
                truth["events"][(sub, task, run)] = ev
                truth["n_trs"][(sub, task, run)] = n
    return truth


# ============================================================================ NSD
#: NSD ROI label tables (NSD data manual); the fixture writes these .ctab files.
NSD_LABELS = {
    "nsdgeneral": ["nsdgeneral"],
    "prf-visualrois": ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"],
    "floc-faces": ["OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"],
    "floc-places": ["OPA", "PPA", "RSC"],
    "floc-bodies": ["EBA", "FBA-1", "FBA-2", "mTL-bodies"],
}


def _nsd_grey(nsd_id, n_levels: int):
    """The grey level (uint8, 0..250) of the NSD fixture's image ``nsd_id``: one of ``n_levels`` evenly spaced levels."""
    return np.round((np.asarray(nsd_id) % n_levels) * (250 / (n_levels - 1))).astype(np.uint8)


def write_nsd(
    root: str | Path,
    subjects: tuple[int, ...] = (1,),
    n_sessions: int = 2,
    shape: tuple[int, int, int] = (5, 6, 4),
    n_shared_images: int = 60,
    seed: int = 0,
    hdf5_betas: bool = True,
    image_size: int = 8,
    n_levels: int = 251,
) -> dict:
    """Natural Scenes Dataset, miniature (real file names, 750 trials per session).

    Writes ``nsd_expdesign.mat`` (``masterordering`` (1, 30000), ``subjectim``
    (8, 10000) with identical shared columns, ``sharedix``, ``stimpattern``,
    ``basiccnt``; 1-based), per-session int16 betas (PSC × 300) as NIfTI
    ``(X, Y, Z, 750)`` with header TR 4/3 s and — if ``hdf5_betas`` — HDF5
    ``/betas`` ``(750, Z, Y, X)`` chunked ``(750, 1, 1, 1)``; ``brainmask``; ROI
    volumes (``-1`` outside cortex, ``0`` unlabelled, ``1..N``) combined and
    ``lh.``/``rh.`` (left hemisphere = first half of x); label tables
    ``<ROI>.mgz.ctab`` (``0 Unknown`` row, some trailing whitespace/tabs) for the
    subject and fsaverage; and ``nsd_stimuli.hdf5`` ``imgBrick``
    ``(73000, S, S, 3)`` uint8 (only shown images written; image = a constant grey, nsdId mod ``n_levels``
    spread over 0..250; fewer levels = fewer distinct images to read through a model).

    The first ``n_sessions × 750`` trials show every image three times:
    ``n_shared_images`` shared images (10k index < 1000) and the rest
    subject-specific.

    Planted effect: the beta of trial t in voxel v is ``weight[v] · brightness(image) + noise``
    (noise sd 0.5 PSC), with brightness ``grey / 125 - 1``, the value of the
    fixture image's pixels rescaled — so an encoding model of image brightness recovers ``weight``.

    Returns
    -------
    dict with root, shape, affine, sessions, roi_labels, nsdgeneral (bool volume), rois
    (name → int volume), trial_nsd_ids[subject] (n_trials,), image10k[subject], weight[subject].
    """
    import h5py
    from scipy.io import savemat

    root = Path(root)
    rng = np.random.default_rng(seed)
    n_trials = n_sessions * 750
    if n_trials % 3:
        raise ValueError("n_sessions * 750 must be divisible by 3.")
    n_images = n_trials // 3
    # expdesign: shared 1000 first, then 9000 subject-specific images (nsdId + 1)
    all_ids = rng.permutation(73000)
    shared = all_ids[:1000]
    subjectim = np.zeros((8, 10000), dtype=np.int64)
    for s in range(8):
        subjectim[s, :1000] = shared
        subjectim[s, 1000:] = all_ids[1000 + 9000 * s: 1000 + 9000 * (s + 1)] if 1000 + 9000 * (s + 1) <= 73000 else rng.choice(all_ids[1000:], 9000, replace=False)
    picks = np.concatenate([rng.choice(1000, n_shared_images, replace=False),
                            1000 + rng.choice(9000, n_images - n_shared_images, replace=False)])
    first = rng.permutation(np.repeat(picks, 3))
    rest = rng.integers(0, 10000, 30000 - n_trials)
    masterordering = np.concatenate([first, rest])
    exp = root / "nsddata" / "experiments" / "nsd"
    exp.mkdir(parents=True, exist_ok=True)
    savemat(exp / "nsd_expdesign.mat", {
        "masterordering": (masterordering + 1).reshape(1, -1).astype(np.float64),
        "subjectim": (subjectim + 1).astype(np.float64),
        "sharedix": (np.sort(shared) + 1).reshape(1, -1).astype(np.float64),
        "stimpattern": rng.integers(0, 2, (40, 12, 75)).astype(np.float64),
        "basiccnt": rng.integers(0, 750, (3, 40)).astype(np.float64),
    })
    affine = np.array([[1.8, 0, 0, -72.0], [0, 1.8, 0, -90.0], [0, 0, 1.8, -72.0], [0, 0, 0, 1]])
    X, Y, Z = shape
    cortex = np.ones(shape, dtype=bool)
    cortex[0, :, :] = False  # "not cortex" slab
    hemi_l = np.zeros(shape, dtype=bool)
    hemi_l[: X // 2] = True
    rois = {}
    rois["nsdgeneral"] = np.where(cortex, 0, -1)
    rois["nsdgeneral"][1:, 1:-1, :] = 1
    for name, labels in NSD_LABELS.items():
        if name == "nsdgeneral":
            continue
        vol = np.where(cortex, 0, -1)
        # floc-bodies came later: its own stream keeps the other files' (and the betas') draws as they were
        vals = (np.random.default_rng(seed + 1) if name == "floc-bodies" else rng).integers(0, len(labels) + 1, shape)
        vol[cortex] = vals[cortex]
        rois[name] = vol
    truth: dict = dict(root=root, shape=shape, affine=affine, sessions=list(range(1, n_sessions + 1)), roi_labels=NSD_LABELS,
                       rois=rois, nsdgeneral=rois["nsdgeneral"] > 0, trial_nsd_ids={}, image10k={})
    for label_dir in ["fsaverage"] + [f"subj{s:02d}" for s in subjects]:
        d = root / "nsddata" / "freesurfer" / label_dir / "label"
        d.mkdir(parents=True, exist_ok=True)
        for name, labels in NSD_LABELS.items():
            lines = ["0 Unknown"] + [f"{i} {lab}" + (" " if i % 2 else "\t" if i % 3 == 0 else "") for i, lab in enumerate(labels, 1)]
            (d / f"{name}.mgz.ctab").write_text("\n".join(lines) + "\n")
            (d / f"{name}.mgz.txt").write_text("\n".join(lines[1:]) + "\n")
    for s in subjects:
        subj = f"subj{s:02d}"
        pp = root / "nsddata" / "ppdata" / subj / "func1pt8mm"
        _nifti(pp / "brainmask.nii.gz", cortex.astype(np.int16), affine, dtype=np.int16)
        _nifti(pp / "mean.nii.gz", 1000 + rng.random(shape).astype(np.float32), affine)
        for name, vol in rois.items():
            _nifti(pp / "roi" / f"{name}.nii.gz", vol, affine, dtype=np.int16)
            _nifti(pp / "roi" / f"lh.{name}.nii.gz", np.where(hemi_l, vol, -1), affine, dtype=np.int16)
            _nifti(pp / "roi" / f"rh.{name}.nii.gz", np.where(~hemi_l, vol, -1), affine, dtype=np.int16)
        beh = root / "nsddata" / "ppdata" / subj / "behav"
        beh.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"SUBJECT": s, "SESSION": np.repeat(np.arange(1, n_sessions + 1), 750),
                      "RUN": np.tile(np.repeat(np.arange(1, 13), 63)[:750], n_sessions),
                      "TRIAL": np.tile(np.arange(1, 751), n_sessions),
                      "73KID": subjectim[s - 1, masterordering[:n_trials]] + 1}).to_csv(beh / "responses.tsv", sep="\t", index=False)
        ids = subjectim[s - 1, masterordering[:n_trials]]
        truth["trial_nsd_ids"][s] = ids
        truth["image10k"][s] = masterordering[:n_trials]
        truth.setdefault("weight", {})
        weight = rng.standard_normal(shape)  # planted: response = weight × image brightness + noise
        truth["weight"][s] = weight
        bdir = root / "nsddata_betas" / "ppdata" / subj / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
        bdir.mkdir(parents=True, exist_ok=True)
        ncsnr = np.where(cortex, np.abs(weight) / 0.5, 0.0).astype(np.float32)  # signal sd / noise sd
        _nifti(bdir / "ncsnr.nii.gz", ncsnr, affine)
        truth.setdefault("ncsnr", {})[s] = ncsnr
        for sess in range(1, n_sessions + 1):
            t = ids[(sess - 1) * 750: sess * 750]
            brightness = _nsd_grey(t, n_levels) / 125.0 - 1.0  # the fixture image of nsdId t is this constant grey
            psc = weight[..., None] * brightness + 0.5 * rng.standard_normal(shape + (750,))
            betas = np.round(psc * 300).astype(np.int16)
            betas[~cortex] = 0  # brainmask zeroing
            _nifti(bdir / f"betas_session{sess:02d}.nii.gz", betas, affine, tr=4 / 3, dtype=np.int16)
            if hdf5_betas:
                bdir.mkdir(parents=True, exist_ok=True)
                with h5py.File(bdir / f"betas_session{sess:02d}.hdf5", "w") as f:
                    f.create_dataset("betas", data=np.transpose(betas, (3, 2, 1, 0)), chunks=(750, 1, 1, 1))
    stim = root / "nsddata_stimuli" / "stimuli" / "nsd"
    stim.mkdir(parents=True, exist_ok=True)
    shown = np.unique(np.concatenate(list(truth["trial_nsd_ids"].values())))
    with h5py.File(stim / "nsd_stimuli.hdf5", "w") as f:
        d = f.create_dataset("imgBrick", shape=(73000, image_size, image_size, 3), dtype=np.uint8,
                             chunks=(1, image_size, image_size, 3), compression="gzip")
        for i in shown:
            d[i] = _nsd_grey(i, n_levels)
    truth["shown"] = shown
    return truth


# ============================================================================ GLMsingle
def write_glmsingle(root: str | Path, n_items: int = 12, shape: tuple[int, int, int] = (3, 4, 2), seed: int = 0) -> dict:
    """GLMsingle outputs of one subject, miniature, all holding the same planted betas.

    Writes ``TYPED_FITHRF_GLMDENOISE_RR.npy`` (pickled dict, ``betasmd`` (X, Y, Z, n)),
    ``TYPED_FITHRF_GLMDENOISE_RR.mat`` (``modelmd``), ``betas.nii.gz``, a
    Brain-guided_LLM extract ``sub-1001.mat`` (``all_voxels`` (n, n_voxels in mask)),
    ``mask.nii.gz`` and ``items.tsv`` (item, task, trial_type).

    Returns
    -------
    dict with the paths, betas (X, Y, Z, n) float32 and mask (bool volume).
    """
    from scipy.io import savemat

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    betas = rng.standard_normal(shape + (n_items,)).astype(np.float32)
    mask = np.ones(shape, dtype=bool)
    mask[0, 0, 0] = False
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    np.save(root / "TYPED_FITHRF_GLMDENOISE_RR.npy", {"betasmd": betas, "R2": rng.random(shape), "HRFindex": np.zeros(shape)},
            allow_pickle=True)
    savemat(root / "TYPED_FITHRF_GLMDENOISE_RR.mat", {"modelmd": betas, "R2": rng.random(shape)})
    _nifti(root / "betas.nii.gz", betas, affine)
    _nifti(root / "mask.nii.gz", mask.astype(np.uint8), affine, dtype=np.uint8)
    savemat(root / "sub-1001.mat", {"all_voxels": betas[mask].T})
    tasks = np.where(np.arange(n_items) < n_items // 2, "Syllogisms", "Transitive")
    items = pd.DataFrame({"item": [f"item{i:02d}" for i in range(n_items)], "task": tasks,
                          "trial_type": rng.choice(["2_true_affirm", "2_false_negate"], n_items)})
    items.to_csv(root / "items.tsv", sep="\t", index=False)
    return dict(root=root, npy=root / "TYPED_FITHRF_GLMDENOISE_RR.npy", mat=root / "TYPED_FITHRF_GLMDENOISE_RR.mat",
                nifti=root / "betas.nii.gz", extract=root / "sub-1001.mat", mask_path=root / "mask.nii.gz",
                items=root / "items.tsv", betas=betas, mask=mask)


# ============================================================================ Movie10
def write_movie10(
    root: str | Path,
    subjects: tuple[str, ...] = ("01",),
    segments: dict[str, int] | None = None,
    trs_per_segment: int = 10,
    n_vertices: int = 42,
    seed: int = 0,
    videos: bool = False,
) -> dict:
    """CNeuroMod Movie10, miniature.

    With ``videos=True`` the clips are real Matroska files (32 × 32 px mpeg4 at 10 fps + a mono 16 kHz
    soundtrack) whose frame brightness and tone loudness change every TR, and the responses carry a planted
    effect: left-hemisphere vertex v = ``w_video[v]`` × brightness, right-hemisphere vertex v =
    ``w_audio[v]`` × loudness, both ``lag`` = 2 TRs later, plus noise (truth keys ``w_video``, ``w_audio``,
    ``brightness[(movie, seg)]``, ``loudness[(movie, seg)]``, ``lag``).

    Writes the raw BIDS top level (``task-<movie><seg>_bold.json`` with
    RepetitionTime 1.49, ``task-<movie><seg>_events.tsv`` with one row
    ``onset duration stim_file``, ``participants.tsv``, placeholder
    ``stimuli/<movie>/<movie><seg>.mkv``) under ``root/movie10``; fMRIPrep-style
    ``space-fsaverage6`` GIFTIs per segment (life shown twice: ``run-1``/``run-2``)
    under ``root/movie10.fmriprep`` with JSON sidecars, next to what the public
    derivative really holds: ``space-fsLR_den-91k_bold.dtseries.nii`` (CIFTI: both
    cortices minus a "medial wall", plus 4 thalamus voxels) and ``desc-confounds_timeseries.tsv``; and the group's per-movie
    arrays ``sub{N}-{movie}-fsaverage6.npy`` (vertices × TRs, = the run-1
    GIFTIs concatenated) under ``root/fsaverage6``. ``n_vertices`` per hemisphere
    (42 = icosahedron order 1; fsaverage6 has 40962). Each movie has its own
    offset and scale, and segment k of a movie has ``trs_per_segment + k`` TRs.

    Returns
    -------
    dict with raw, fmriprep, npy (folders), tr, n_vertices, segments, data[(sub, movie)] (TRs, 2·nv).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    tr = 1.49
    segments = segments or {"bourne": 2, "wolf": 3, "life": 2}
    raw, prep, npy = root / "movie10", root / "movie10.fmriprep", root / "fsaverage6"
    _json(raw / "dataset_description.json", {"Name": "cneuromod.movie10", "BIDSVersion": "1.4.0"})
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects], "age": 30, "sex": "F", "group": "cneuromod"}).to_csv(
        raw / "participants.tsv", sep="\t", index=False)
    _json(prep / "dataset_description.json", {"Name": "movie10.fmriprep", "BIDSVersion": "1.4.0", "DatasetType": "derivative",
                                              "GeneratedBy": [{"Name": "fMRIPrep", "Version": "20.2.3"}]})
    npy.mkdir(parents=True, exist_ok=True)
    truth: dict = dict(raw=raw, fmriprep=prep, npy=npy, tr=tr, n_vertices=n_vertices, segments=segments, data={}, seg_trs={})
    if videos:
        truth.update(lag=2, w_video=rng.uniform(0, 1, n_vertices), w_audio=rng.uniform(0, 1, n_vertices))
    for movie, nseg in segments.items():
        for seg in range(1, nseg + 1):
            task = f"{movie}{seg:02d}"
            _json(raw / f"task-{task}_bold.json", {"RepetitionTime": tr, "TaskName": f"Movie watching: {movie}"})
            n = trs_per_segment + seg - 1
            pd.DataFrame({"onset": [0.0], "duration": [round(n * tr, 2)], "stim_file": [f"{movie}/{task}.mkv"]}).to_csv(
                raw / f"task-{task}_events.tsv", sep="\t", index=False)
            (raw / "stimuli" / movie).mkdir(parents=True, exist_ok=True)
            if videos:
                b, a = rng.uniform(0.1, 0.9, n), rng.uniform(0.1, 0.9, n)
                truth.setdefault("brightness", {})[(movie, seg)] = b
                truth.setdefault("loudness", {})[(movie, seg)] = a
                _write_clip(raw / "stimuli" / movie / f"{task}.mkv", b, a, tr)
            else:
                (raw / "stimuli" / movie / f"{task}.mkv").write_bytes(b"\x1aE\xdf\xa3")  # EBML magic only
    for sub in subjects:
        ses = 1
        for movie, nseg in segments.items():
            viewings = (1, 2) if movie in ("life", "figures") else (None,)
            blocks = []
            for seg in range(1, nseg + 1):
                n = trs_per_segment + seg - 1
                for view in viewings:
                    data = (10.0 * (1 + list(segments).index(movie)) + (2.0 + seg) * rng.standard_normal((n, 2 * n_vertices))).astype(np.float32)
                    if videos:  # planted, lagged: left hemisphere follows brightness, right follows loudness
                        lag = truth["lag"]
                        b = np.r_[np.full(lag, 0.5), truth["brightness"][(movie, seg)]][:n] - 0.5
                        a = np.r_[np.full(lag, 0.5), truth["loudness"][(movie, seg)]][:n] - 0.5
                        data[:, :n_vertices] += (2.0 + seg) * 4.0 * b[:, None] * truth["w_video"][None]
                        data[:, n_vertices:] += (2.0 + seg) * 4.0 * a[:, None] * truth["w_audio"][None]
                    run = f"_run-{view}" if view else ""
                    d = prep / f"sub-{sub}" / f"ses-{ses:03d}" / "func"
                    d.mkdir(parents=True, exist_ok=True)
                    for h, sl in (("L", slice(0, n_vertices)), ("R", slice(n_vertices, None))):
                        name = f"sub-{sub}_ses-{ses:03d}_task-{movie}{seg:02d}{run}_space-fsaverage6_hemi-{h}_bold"
                        img = nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(row, intent="NIFTI_INTENT_TIME_SERIES",
                                                                                      datatype="NIFTI_TYPE_FLOAT32") for row in data[:, sl]])
                        nib.save(img, d / f"{name}.func.gii")
                        _json(d / f"{name}.json", {"RepetitionTime": tr, "DelayTime": 0.1175, "SkullStripped": False})
                    # the public derivative's outputs: CIFTI fsLR grayordinates + confounds
                    base = f"sub-{sub}_ses-{ses:03d}_task-{movie}{seg:02d}{run}"
                    bm = (nib.cifti2.BrainModelAxis.from_surface(np.arange(n_vertices - 2), n_vertices, "CortexLeft")
                          + nib.cifti2.BrainModelAxis.from_surface(np.arange(n_vertices - 1), n_vertices, "CortexRight")
                          + nib.cifti2.BrainModelAxis.from_mask(np.ones((2, 2, 1), bool), name="thalamus_left", affine=MNI_2MM_AFFINE))
                    gray = np.concatenate([data[:, : n_vertices - 2], data[:, n_vertices: 2 * n_vertices - 1], data[:, :4] + 1.0], axis=1)
                    cimg = nib.cifti2.Cifti2Image(gray.astype(np.float32), header=(nib.cifti2.SeriesAxis(0, tr, n, "SECOND"), bm))
                    cimg.nifti_header.set_intent("ConnDenseSeries")
                    nib.save(cimg, d / f"{base}_space-fsLR_den-91k_bold.dtseries.nii")
                    _json(d / f"{base}_space-fsLR_den-91k_bold.json", {"RepetitionTime": tr})
                    pd.DataFrame({"trans_x": rng.standard_normal(n), "csf": rng.standard_normal(n)}).to_csv(
                        d / f"{base}_desc-confounds_timeseries.tsv", sep="\t", index=False)
                    if view in (None, 1):
                        blocks.append(data)
                ses += 1
            full = np.concatenate(blocks)
            truth["data"][(sub, movie)] = full
            truth["seg_trs"][movie] = [trs_per_segment + s - 1 for s in range(1, nseg + 1)]
            np.save(npy / f"sub{int(sub)}-{movie}-fsaverage6.npy", np.ascontiguousarray(full.T))
    truth["surface_labels"] = write_surface_labels(root / "atlases", n_vertices, seed=seed + 1)
    return truth


def write_surface_labels(folder: str | Path, n_vertices: int, seed: int = 0) -> dict[str, np.ndarray]:
    """HCP-MMP1-style GIFTI label files of both hemispheres, named as TemplateFlow's
    ``tpl-fsaverage6_hemi-{L,R}_desc-MMP_dseg.label.gii``: every Glasser-group parcel (SMA's included) dealt at
    random over the vertices, each at least once over the two hemispheres when ``2 × n_vertices`` is at least the
    number of parcels (a smaller mesh leaves some out), with an embedded label table
    ``<hemi>_<value>_ROI`` (0 = ``???``).

    Returns
    -------
    dict hemi ("L", "R") -> int32 labels of shape (n_vertices,)
    """
    import nibabel as nib

    from brainalign.brain.atlas import glasser_groups

    rng = np.random.default_rng(seed)
    values = sorted({v for members in glasser_groups().values() for v in members})
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for h, hemi in enumerate(("L", "R")):
        # every parcel at least once over the two hemispheres (each holds every other parcel, then repeats)
        own = np.asarray(values[h::2] if n_vertices < len(values) else values, dtype=np.int32)
        if n_vertices < len(own):  # a tiny mesh: some parcels are left out
            own = rng.permutation(own)[:n_vertices]
        labels = rng.permutation(np.resize(own, n_vertices)).astype(np.int32)
        table = nib.gifti.GiftiLabelTable()
        for v in [0, *values]:
            lab = nib.gifti.GiftiLabel(key=int(v), red=0.5, green=0.5, blue=0.5, alpha=1.0)
            lab.label = "???" if v == 0 else f"{hemi}_{v}_ROI"
            table.labels.append(lab)
        img = nib.gifti.GiftiImage(labeltable=table, darrays=[nib.gifti.GiftiDataArray(
            labels, intent="NIFTI_INTENT_LABEL", datatype="NIFTI_TYPE_INT32")])
        nib.save(img, folder / f"tpl-fsaverage6_hemi-{hemi}_desc-MMP_dseg.label.gii")
        out[hemi] = labels
    return out


def _write_clip(path: Path, brightness: np.ndarray, loudness: np.ndarray, tr: float, fps: int = 10,
                rate: int = 16000) -> None:
    """A Matroska clip: uniform grey frames of brightness[k] and a 440 Hz tone of amplitude loudness[k] in TR k."""
    import av

    n_frames = int(np.ceil(len(brightness) * tr * fps))
    t = np.arange(int(round(len(loudness) * tr * rate))) / rate
    amp = loudness[np.minimum((t / tr).astype(int), len(loudness) - 1)]
    wave = (0.8 * 32767 * amp * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    with av.open(str(path), "w", format="matroska") as c:
        v = c.add_stream("mpeg4", rate=fps)
        v.width = v.height = 32
        v.pix_fmt = "yuv420p"
        aud = c.add_stream("pcm_s16le", rate=rate)
        aud.layout = "mono"
        for i in range(n_frames):
            k = min(int(i / fps / tr), len(brightness) - 1)
            img = np.full((32, 32, 3), int(round(255 * brightness[k])), dtype=np.uint8)
            for packet in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in v.encode():
            c.mux(packet)
        for a in range(0, wave.size, 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, a:a + 1024], format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in aud.encode(frame):
                c.mux(packet)
        for packet in aud.encode():
            c.mux(packet)


# ============================================================================ voxelwise_tutorials
def write_vwt_hdf5(
    path: str | Path, run_lengths: tuple[int, ...] = (12, 10, 11), n_test: int = 9, n_repeats: int = 3, n_voxels: int = 7, seed: int = 0
) -> dict:
    """A voxelwise_tutorials responses file (``Y_train``, ``Y_test``, ``run_onsets``), miniature.

    Returns
    -------
    dict with path, Y_train, Y_test, run_onsets.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y_train = rng.standard_normal((sum(run_lengths), n_voxels)).astype(np.float32)
    y_test = rng.standard_normal((n_repeats, n_test, n_voxels)).astype(np.float32)
    onsets = np.concatenate([[0], np.cumsum(run_lengths)[:-1]]).astype(np.int64)
    with h5py.File(path, "w") as f:
        f.create_dataset("Y_train", data=y_train)
        f.create_dataset("Y_test", data=y_test)
        f.create_dataset("run_onsets", data=onsets)
    return dict(path=path, Y_train=y_train, Y_test=y_test, run_onsets=onsets)
