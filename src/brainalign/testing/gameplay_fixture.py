"""Miniature ds004323 *study*: the BIDS/fMRIPrep layout of :func:`~brainalign.testing.fixtures.write_ds004323`
plus a dense ``plays`` export, rendered frames in the documented layout and a planted brightness response.

The planted effect: every TR ``t`` of a run has a screen brightness ``b[t]`` (all frames shown in that TR
share it, up to a small pixel texture), and every brain voxel ``v`` of the preprocessed BOLD is
``weight[v] · z(b)[t - delay] + noise`` (plus the fixture's ``trans_x`` confound × 30, which the config's
confound regression must remove). A model or baseline that sees the frames' brightness recovers
``|weight|`` per voxel.

The RL regressors of the MongoDB dump (``behavior/dump/<db>/``, :data:`REGRESSOR_DB`) carry the brightness
with noise, so they predict the brain worse than a space that sees the frames and better than chance:

- ``dqn_regressors_25M.bson``: one document per action step (``subj_id`` int, ``run_id`` int, ``frame_idx``,
  ``timestamp`` in ms on the plays' clock, ``q_values`` = 4 numbers; the first is ``b`` of the step's TR plus
  noise of sd ``ddqn_noise``, the others noise);
- ``regressors.bson`` (EMPA): one document per run (``subject`` = ``'sub-XX'``, ``run`` = ``'RR'``, ``regs`` = one
  row of 3 numbers per TR from the run's first volume; the first is ``b`` plus noise of sd ``empa_noise``).
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from brainalign.testing.bson_writer import write_bson
from brainalign.testing.fixtures import write_ds004323

__all__ = ["write_ds004323_study", "REGRESSOR_DB"]

#: the database folder of the miniature's dump (a real dump names its own; the config matches it with a pattern)
REGRESSOR_DB = "vgfmri_mini"


def write_ds004323_study(
    root: str | Path,
    subjects: tuple[str, ...] = ("01", "02"),
    n_runs: int = 3,
    n_trs: int = 50,
    shape: tuple[int, int, int] = (5, 5, 3),
    frames_per_tr: int = 2,
    frame_size: int = 32,
    delay: int = 2,
    noise: float = 0.5,
    seed: int = 0,
    extension: str = "png",
    ddqn_noise: float = 0.25,
    empa_noise: float = 0.4,
) -> dict:
    """Write ``<root>/ds004323`` (raw BIDS, fMRIPrep derivatives, ``behavior/plays.json``,
    ``derivatives/frames/sub-XX/run-RR/<game>_p<play>_f<frame>.<extension>``).

    Timing follows ds004323: 7 lead-in TRs (14 s), then 3 games per run of ``(n_trs - 7) // 3`` TRs each, one
    action (= one frame) every ``2 s / frames_per_tr``, timestamps in ms.

    Returns
    -------
    dict with root (the data root), dataset (root/ds004323), tr, weight[sub] (flattened over the brain mask,
    C order, the loader's voxel order), brightness[(sub, run)] (n_trs,), delay, n_trs, n_runs,
    ddqn[(sub, run, play, frame_index)] (the step's 4 q-values), empa[(sub, run)] (n_trs, 3), dump (the folder
    of the two .bson files).
    """
    from PIL import Image

    root = Path(root)
    ds = root / "ds004323"
    truth = write_ds004323(ds, subjects=subjects, n_runs=n_runs, n_trs=n_trs, shape=shape, seed=seed)
    rng = np.random.default_rng(seed + 1)
    tr = truth["tr"]
    game_trs = (n_trs - 7) // 3
    step_ms = int(round(tr * 1000 / frames_per_tr))
    games = ["chase", "helper", "bait", "lemmings", "plaqueAttack", "zelda"]
    plays = []
    out = dict(root=root, dataset=ds, tr=tr, weight={}, brightness={}, delay=delay, n_trs=n_trs, n_runs=n_runs,
               mask={}, ddqn={}, empa={})
    ddqn_docs, empa_docs = [], []
    reg_rng = np.random.default_rng(seed + 2)  # the regressors' own stream: the frames and BOLD stay as they were
    t0 = 1_560_000_000_000
    for sub in subjects:
        mask = truth["mask"][sub] > 0
        weight = rng.normal(0.0, 1.2, size=int(mask.sum()))
        out["weight"][sub] = weight
        out["mask"][sub] = mask
        for run in range(1, n_runs + 1):
            start = t0 + (run - 1) * 1_000_000
            # brightness per TR in [0.15, 0.85], constant within a TR; 0 during the lead-in (dark screen)
            b = np.zeros(n_trs)
            b[7:7 + 3 * game_trs] = rng.uniform(0.15, 0.85, 3 * game_trs)
            out["brightness"][(sub, run)] = b
            fdir = ds / "derivatives" / "frames" / f"sub-{sub}" / f"run-{run:02d}"
            fdir.mkdir(parents=True, exist_ok=True)
            for g in range(3):
                game = games[((run - 1) * 3 + g) % 6]
                gs = start + 14_000 + g * game_trs * int(tr * 1000)
                acts = []
                for k in range(game_trs * frames_per_tr):
                    ts = gs + k * step_ms
                    acts.append([str(int(rng.integers(0, 5))), int(ts)])
                    tr_index = 7 + g * game_trs + k // frames_per_tr
                    level = b[tr_index] + rng.normal(0.0, 0.03, (frame_size, frame_size, 1))
                    colour = np.clip(level * np.array([1.0, 0.9, 0.8]), 0, 1)
                    img = np.round(255 * colour).astype(np.uint8)
                    q = reg_rng.normal(0.0, 1.0, 4)
                    q[0] = b[tr_index] + reg_rng.normal(0.0, ddqn_noise)
                    out["ddqn"][(sub, run, g, k)] = q
                    ddqn_docs.append({"subj_id": int(sub), "run_id": run, "game_name": f"vgfmri3_{game}",
                                      "frame_idx": k, "timestamp": int(ts), "q_values": q.tolist()})
                    name = f"vgfmri3_{game}_p{g}_f{k:05d}"
                    if extension == "npy":
                        np.save(fdir / f"{name}.npy", img)
                    else:
                        Image.fromarray(img).save(fdir / f"{name}.png")
                plays.append({"subj_id": sub, "run_id": run, "game_name": f"vgfmri3_{game}",
                              "start_time": {"$date": int(gs)}, "actions": acts, "level_idx": 0})
            empa = reg_rng.normal(0.0, 1.0, (n_trs, 3))
            empa[:, 0] = b + reg_rng.normal(0.0, empa_noise, n_trs)
            out["empa"][(sub, run)] = empa
            empa_docs.append({"subject": f"sub-{sub}", "run": f"{run:02d}", "regs": empa.tolist()})
            # planted response in the preprocessed BOLD (same grid, affine and confound as the fixture)
            name = f"sub-{sub}_task-gameplay_run-{run:02d}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
            path = truth["derivatives"] / f"sub-{sub}" / "func" / name
            img = nib.load(path)
            z = (b - b.mean()) / b.std()
            lagged = np.r_[np.zeros(delay), z[:-delay]] if delay else z
            resp = weight[:, None] * lagged[None] + noise * rng.standard_normal((weight.size, n_trs))
            data = np.zeros(shape + (n_trs,), dtype=np.float32)
            data[mask] = 100.0 + resp + 30.0 * truth["trans_x"][(sub, run)][None]
            nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    (ds / "behavior" / "plays.json").write_text(json.dumps(plays))
    dump = ds / "behavior" / "dump" / REGRESSOR_DB
    write_bson(dump / "dqn_regressors_25M.bson", ddqn_docs[::-1])  # stored out of time order
    write_bson(dump / "regressors.bson", empa_docs)
    out["dump"] = dump
    out["plays"] = plays
    out["atlas"], out["atlas_table"] = _write_atlas(ds, truth, subjects[0], rng)
    return out


def _write_atlas(ds: Path, truth: dict, subject: str, rng) -> tuple[Path, Path]:
    """An HCP-MMP1-style label image on the BOLD grid: every brain voxel gets one parcel of the Glasser groups
    (every parcel at least once, dealt at random), plus its TSV label table (index, name)."""
    import pandas as pd

    from brainalign.brain.atlas import glasser_groups

    groups = glasser_groups()
    values = sorted({v for members in groups.values() for v in members})  # every parcel present, as in the atlas
    mask = truth["mask"][subject] > 0
    if mask.sum() < len(values):
        raise ValueError(f"the atlas needs at least {len(values)} brain voxels (one per parcel); the mask has "
                         f"{int(mask.sum())}: use a larger shape, e.g. (5, 5, 3).")
    labels = np.zeros(mask.shape, dtype=np.int16)
    labels[mask] = np.asarray(values)[rng.permutation(np.arange(int(mask.sum())) % len(values))]
    ref = truth["derivatives"] / f"sub-{subject}" / "func" / (
        f"sub-{subject}_task-gameplay_run-01_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz")
    folder = ds / "derivatives" / "atlases"
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / "tpl-MNI152NLin2009cAsym_res-02_atlas-MMP1_dseg.nii.gz"
    nib.save(nib.Nifti1Image(labels, nib.load(ref).affine), image)
    names = {idx: f"L_{g}_{k}_ROI" for g, members in groups.items() for k, idx in enumerate(members)}
    table = folder / "tpl-MNI152NLin2009cAsym_atlas-MMP1_dseg.tsv"
    pd.DataFrame(dict(index=list(names), name=list(names.values()))).to_csv(table, sep="\t", index=False)
    return image, table
