"""Loading the brain-guided LLM study from a miniature ds003076 tree (BIDS events + GLMsingle top-10 % betas), and `steer` on it.

The fixture has the real layout: sidecars, 4 runs per subject with 27 events rows (18 reasoning trials + 9
``control``), ``n/a`` accuracies, ``all_extracted_beta_{task}/{sub}/{sub}.mat`` with key ``all_voxels`` (72 x n_vox).
The second subject saw the trials of every run in another order, and its betas rows follow that order.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.io import savemat
from typer.testing import CliRunner

from steering_fixtures import tiny_lm_dir
from brainalign.cli import app
from brainalign.steering import data
from brainalign.steering.tasks import generate_items

SUBJECTS = ["sub-1001", "sub-1004"]
N_VOX = 12


def _canonical_items():
    """18 items per run: (run, premises, conclusion, label); the texts are generated problems."""
    out = {}
    for run, task, seed in (("syllogism_run-01", "syllogism", 1), ("syllogism_run-02", "syllogism", 2),
                            ("transitive_run-01", "transitive", 3), ("transitive_run-02", "transitive", 4)):
        out[run] = generate_items(task, 18, seed=100 + seed)
    return out


def build_ds003076(root: Path, seed: int = 0) -> dict:
    """Write the miniature tree; returns what the loader must recover (item order, betas, behaviour)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "deductive reasoning", "BIDSVersion": "1.3.0"}))
    (root / "participants.tsv").write_text("participant_id\tage\n" + "".join(f"{s}\t25\n" for s in SUBJECTS))
    for task in ("Syllogisms", "Transitive"):
        (root / f"task-{task}_bold.json").write_text(json.dumps({"RepetitionTime": 2.0, "TaskName": task}))
        (root / f"task-{task}_events.json").write_text(json.dumps({"trial_type": {"Levels": {"null": "control"}}}))
    items = _canonical_items()
    truth = {"betas": {}, "correct": {}}
    for si, sub in enumerate(SUBJECTS):
        func = root / sub / "func"
        func.mkdir(parents=True)
        # betas per map: row value of voxel v for canonical item (run r, trial k) = a known code
        rows = {"syllogism": [], "transitive": []}
        correct = {}
        for run, its in items.items():
            task, r = run.split("_")
            order = np.arange(18) if si == 0 else rng.permutation(18)
            acc = rng.random(18) < 0.8
            acc_col = np.where(acc, "1.0", "0.0").astype(object)
            acc_col[order[0]] = "n/a"  # a missed response in the subject's first trial counts as wrong
            ev = []
            onset = 0.0
            for pos, k in enumerate(order):
                it = items[run][k]
                tt = f"{2 if task == 'transitive' else 3}_{'true' if it.label else 'false'}_affirm"
                ev.append([onset, 12.0, tt, acc_col[k], "2.1", *[p + "." for p in it.premises], it.conclusion + ".",
                           f"Nat_3_{str(it.label).lower()}_affirm.wav"])
                onset += 13.0
                if pos % 2 == 1:
                    ev.append([onset, 3.5, "control", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"])
                    onset += 4.0
            cols = ["onset", "duration", "trial_type", "accuracy", "response_time", "premise1", "premise2", "premise3",
                    "conclusion", "stim_file"]
            assert len(ev) == 27
            bids_task = "Syllogisms" if task == "syllogism" else "Transitive"
            pd.DataFrame(ev, columns=cols).to_csv(func / f"{sub}_task-{bids_task}_{r}_events.tsv", sep="\t",
                                                  index=False)
            for k in order:
                correct[(run, int(k))] = bool(acc[k]) and k != order[0]
                for m, mapname in enumerate(("syllogism", "transitive")):
                    code = 1000 * (si + 1) + 100 * m + list(items).index(run) * 18 + k
                    rows[mapname].append(code + rng.standard_normal(N_VOX) * 0.01)
        for m, mapname in enumerate(("syllogism", "transitive")):
            arr = np.stack(rows[mapname])
            if si == 1 and mapname == "transitive":
                arr[60, 3] = np.nan  # a voxel with a NaN beta (a transitive item): dropped for every subject
            d = root / "derivatives" / "glmsingle" / "top-10%" / f"all_extracted_beta_{mapname}" / sub
            d.mkdir(parents=True)
            savemat(d / f"{sub}.mat", {"all_voxels": arr})
        truth["correct"][sub] = correct
    truth["items"] = items
    return truth


def test_load_ds003076_realigns_items_and_takes_betas_from_the_task_map(tmp_path):
    truth = build_ds003076(tmp_path / "ds003076")
    with pytest.warns(UserWarning, match="dropped voxel columns"):
        d = data.load_ds003076(tmp_path / "ds003076", SUBJECTS)
    # 72 trials minus the authors' two contradictory transitive items = 70 (36 syllogisms + 34 transitive)
    assert len(d.items) == 70 and (d.task_labels == "syllogism").sum() == 36
    assert all(Y.shape == (70, N_VOX - 1) for Y in d.subjects_Y) and d.dropped_voxels == {s: 1 for s in SUBJECTS}
    runs = list(truth["items"])
    kept = [(run, k) for run in runs for k in range(18) if not (run == "transitive_run-01" and k in (7, 13))]
    for j, (run, k) in enumerate(kept):
        it, src = d.items[j], truth["items"][run][k]
        assert (it.premises, it.conclusion, it.label, it.task) == (src.premises, src.conclusion, src.label, src.task)
        m = 0 if it.task == "syllogism" else 1  # topksep: each item's betas come from its own task's map
        for s in range(2):
            code = 1000 * (s + 1) + 100 * m + runs.index(run) * 18 + k
            assert abs(d.subjects_Y[s][j, 0] - code) < 0.1, (s, run, k)
            assert d.subjects_correct[s][j] == truth["correct"][SUBJECTS[s]][(run, k)]


def test_load_ds003076_names_missing_files_and_bad_inputs(tmp_path):
    root = tmp_path / "ds003076"
    build_ds003076(root)
    victim = root / "sub-1004" / "func" / "sub-1004_task-Transitive_run-02_events.tsv"
    victim.unlink()
    with pytest.raises(FileNotFoundError, match="1 of 12 ds003076 input files are missing") as err:
        data.load_ds003076(root, SUBJECTS)
    assert str(victim) in str(err.value)
    with pytest.raises(ValueError, match="outside the run's 18 reasoning trials"):
        data.load_ds003076(root, SUBJECTS[:1], drop={"transitive_run-01": [18]})
    shutil.copy(root / "sub-1001" / "func" / "sub-1001_task-Transitive_run-02_events.tsv", victim)
    ev = root / "sub-1001" / "func" / "sub-1001_task-Syllogisms_run-01_events.tsv"
    table = pd.read_csv(ev, sep="\t", keep_default_na=False)
    table.loc[table.index[table["trial_type"] != "control"][0], "conclusion"] = "Zop is bigger than Fep."  # new item
    table.to_csv(ev, sep="\t", index=False)
    with pytest.raises(ValueError, match="all subjects must see the same items"):
        data.load_ds003076(root, SUBJECTS)


def test_steer_runs_on_the_ds003076_layout(tmp_path):
    build_ds003076(tmp_path / "ds003076")
    cfg = {"name": "mini-ds003076", "seed": 0, "models": [str(tiny_lm_dir("qwen2"))],
           "brain": {"root": "ds003076", "subjects": SUBJECTS},
           "predictivity": {"controls": ["random_features"], "n_folds": 3},
           "nari": {"layers": [1], "max_steps": 5, "controls": ["random_direction"]}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["steer", str(path), "--validate-only"])
    assert res.exit_code == 0 and "all inputs present" in res.output, res.output
    out = tmp_path / "res"
    res = CliRunner().invoke(app, ["steer", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    man = json.loads((out / "manifest.json").read_text())
    info = man["models"][str(tiny_lm_dir("qwen2"))]
    assert man["source"] == "ds003076" and info["n_items"] == 70 and info["subjects"] == SUBJECTS
    assert info["dropped_voxels"] == {s: 1 for s in SUBJECTS}
    subj = pd.read_csv(out / "predictivity_subjects.csv")
    # (2 conditions + the model within 2 reasoning types) x 2 subjects x 2L layers
    assert set(subj["subject"]) == {0, 1} and len(subj) == (2 + 2) * 2 * 8
    steering = pd.read_csv(out / "steering.csv")
    assert list(steering["section"].unique()) == ["nari"] and set(steering["condition"]) == {"fmri", "random_direction"}
