"""ROIs from the config through the pipeline's stages, on planted layer peaks and planted prompt gains."""
from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign.pipeline import runner as pipeline
from brainalign.analysis.summary import compare_to_reference, layer_table, prompt_gain_table
from brainalign.brain.recording import Recording
from brainalign.config import ConfigError, RoiSpec, load_config
from brainalign.testing.planted import planted_layers
from brainalign.pipeline.checks import check_rois

from test_config import DEMO

PEAKS = {"V1": 1, "MT": 3, "PFC": 5}  # planted peak layer per ROI (7 layers)
DEGRADE = {"V1": 0.2, "MT": 0.5, "PFC": 0.8}  # share of each ROI's latent the unprompted features lose
N_VOX = 20  # voxels per ROI


def _write_atlas(tmp_path, n_vox: int) -> tuple[nib.Nifti1Image, str, str]:
    """Label image on the (n_vox, 1, 1) grid: V1 split into two labels, then MT, then PFC; table as TSV."""
    labels = np.repeat([1, 2, 3, 4], [N_VOX // 2, N_VOX // 2, N_VOX, N_VOX])
    mask = nib.Nifti1Image(np.ones((n_vox, 1, 1), dtype=np.uint8), np.eye(4))
    nib.save(nib.Nifti1Image(labels.reshape(n_vox, 1, 1).astype(np.int16), np.eye(4)), tmp_path / "atlas.nii.gz")
    (tmp_path / "atlas.tsv").write_text("index\tname\n1\tV1d\n2\tV1v\n3\tMT\n4\tPFC\n")
    return mask, str(tmp_path / "atlas.nii.gz"), str(tmp_path / "atlas.tsv")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rois")
    sim = planted_layers(peaks=PEAKS, n_layers=7, n_runs=4, n_samples_per_run=100, n_voxels_per_roi=N_VOX,
                         n_latent=3, seed=1)
    n_vox = sim.Y.shape[1]
    mask, image, table = _write_atlas(tmp, n_vox)
    exp = load_config(DEMO)
    exp.brain.rois = RoiSpec(image=image, table=table, groups={"V1": ["V1d", 2], "MT": ["MT"], "PFC": [4]},
                             hierarchy=["V1", "MT", "PFC"])
    exp.analysis.reference = "baseline/noise"
    exp.analysis.responsive_fraction = 1.0
    exp.analysis.n_permutations = 0
    exp.analysis.metric = "mean_r"
    exp.timing.delays = [0]
    exp.timing.pca_components = None
    exp.encoding.alphas = [0.1, 1.0, 10.0, 100.0, 1000.0]

    rng = np.random.default_rng(7)
    spaces = []
    for layer, X in enumerate(sim.layers):
        # the unprompted features lose part of every ROI's latent block (more in later ROIs): a planted gain
        U = X.copy()
        for k, roi in enumerate(PEAKS):
            cols = slice(3 * k, 3 * k + 3)
            d = DEGRADE[roi]
            U[:, cols] = np.sqrt(1 - d) * X[:, cols] + np.sqrt(d) * rng.standard_normal((X.shape[0], 3))
        for prompt, F in (("unprompted", U), ("action", X)):
            spaces.append(pipeline.FeatureSpace(f"m/{prompt}/L{layer}", F, "model", model="m", prompt=prompt,
                                                layer=layer, depth=layer / 6))
    spaces.append(pipeline.FeatureSpace("baseline/noise", rng.standard_normal((sim.Y.shape[0], 3)).astype(np.float32),
                                        "baseline"))
    rec = Recording(data=sim.Y, runs=sim.runs, tr=2.0, mask_img=mask)
    data = pipeline.StudyData(recording=rec, events=None, stimuli=[], design=np.zeros((sim.Y.shape[0], 0)))
    masks = pipeline.load_roi_masks(exp, rec)
    run_scores, preds, _ = pipeline.cross_validate(exp, data, spaces)
    space_table = pd.DataFrame([s.info() for s in spaces])
    tables = dict(spaces=space_table, run_scores=run_scores, voxel_scores=pipeline.voxel_scores(exp, data, preds),
                  comparisons=compare_to_reference(run_scores, exp.analysis.reference, "mean_r"),
                  layers=layer_table(run_scores, space_table, "mean_r"),
                  prompt_gain=prompt_gain_table(run_scores, space_table, "unprompted", "mean_r"))
    tables.update(pipeline.roi_tables(exp, data, space_table, preds, masks, tables["layers"]))
    return dict(sim=sim, exp=exp, masks=masks, tables=tables, mask=mask, image=image, table=table)


def test_config_labels_and_groups_become_the_planted_masks(planted):
    masks, sim = planted["masks"], planted["sim"]
    assert list(masks) == ["V1", "MT", "PFC"]
    for roi in PEAKS:
        np.testing.assert_array_equal(masks[roi], sim.masks[roi])


def test_roi_scores_are_tidy_per_space_roi_and_held_out_run(planted):
    t = planted["tables"]["roi_scores"]
    assert list(t.columns[:4]) == ["space", "roi", "run", "value"]
    n_spaces = len(planted["tables"]["spaces"])
    assert len(t) == n_spaces * 3 * 4 and not t.duplicated(["space", "roi", "run"]).any()
    # the ROI mean of held-out r equals a direct computation for one space, ROI and run
    sim, mask = planted["sim"], planted["masks"]["MT"]
    row = t[(t.space == "m/action/L3") & (t.roi == "MT") & (t.run == 2)].value.item()
    assert row > 0.3  # planted signal: 40 % of the variance


def test_peak_layer_of_every_roi_is_the_planted_one(planted):
    peaks = planted["tables"]["roi_peaks"]
    got = peaks[peaks.prompt == "action"].set_index("roi")["peak_layer"].to_dict()
    assert got == PEAKS
    curves = planted["tables"]["roi_layers"]
    assert set(curves.depth.round(3)) == {round(k / 6, 3) for k in range(7)}
    assert curves.groupby(["model", "prompt", "roi"]).is_peak.sum().eq(1).all()


def test_prompt_gain_rises_along_the_hierarchy(planted):
    h = planted["tables"]["roi_hierarchy"]
    assert len(h) == 1  # the action prompt, at its best whole-brain layer
    row = h.iloc[0]
    assert row.slope > 0
    assert 0 < row.early_late_ratio < 0.8
    assert row.levels == "V1 > MT > PFC" and row.early == "V1" and row.late == "PFC"
    gain = planted["tables"]["roi_gain"]
    g = gain[gain.layer == row.layer].groupby("roi").gain.mean()
    assert g["V1"] < g["MT"] < g["PFC"]


def test_roi_comparisons_pair_over_runs_against_the_reference(planted):
    c = planted["tables"]["roi_comparisons"]
    best = c[(c.space == "m/action/L5") & (c.roi == "PFC")].iloc[0]
    assert best.n == 4 and best.n_better == 4 and best.mean_diff > 0.2


def test_report_shows_roi_sections(planted):
    from brainalign.report.html import render_report
    from brainalign.report.results import Results

    res = Results(planted["exp"], planted["tables"], mask_img=planted["mask"], manifest=dict(models={}, data={}))
    html = render_report(res)
    for title in ("ROI scores", "Layer curves per ROI", "Prompt-driven gain along the hierarchy"):
        assert title in html
    assert "early/late ratio" in html
    imgs = re.findall(r'src="data:image/png;base64,([^"]*)"', html)
    assert all(len(b) > 100 for b in imgs)
    # no ROI tables, no ROI sections
    plain = {k: v for k, v in planted["tables"].items() if not k.startswith("roi_")}
    assert "ROI scores" not in render_report(Results(planted["exp"], plain, mask_img=planted["mask"],
                                                     manifest=dict(models={}, data={})))


def test_results_round_trip_keeps_roi_tables(planted, tmp_path):
    from brainalign.report.results import Results

    res = Results(planted["exp"], planted["tables"], mask_img=planted["mask"], manifest=dict(models={}, data={}))
    back = Results.load(res.save(tmp_path))
    for name in ("roi_scores", "roi_layers", "roi_peaks", "roi_gain", "roi_hierarchy", "roi_comparisons"):
        assert len(back.tables[name]) == len(planted["tables"][name]), name


def test_unknown_labels_and_wrong_grid_are_rejected(planted, tmp_path):
    exp = planted["exp"].model_copy(deep=True)
    mask = planted["mask"]
    assert check_rois(exp, mask) == {"V1": N_VOX, "MT": N_VOX, "PFC": N_VOX}
    exp.brain.rois.groups = {"V1": ["V1d", "V3"]}
    exp.brain.rois.hierarchy = None
    with pytest.raises(ConfigError, match=r"'V3'.*available labels: \['MT', 'PFC', 'V1d', 'V1v'\]"):
        check_rois(exp, mask)
    data = planted["sim"].Y
    rec = Recording(data=data, runs=planted["sim"].runs, tr=2.0, mask_img=mask)
    with pytest.raises(ValueError, match=r"'V3'.*available: \['MT', 'PFC', 'V1d', 'V1v'\]"):
        pipeline.load_roi_masks(exp, rec)
    exp.brain.rois.groups = None
    exp.brain.rois.hierarchy = ["V1d", "LGN"]
    with pytest.raises(ConfigError, match=r"hierarchy names \['LGN'\]"):
        check_rois(exp, mask)
    small = nib.Nifti1Image(np.ones((10, 1, 1), dtype=np.uint8), np.eye(4))
    with pytest.raises(ConfigError, match="label image shape .* differs from the mask shape"):
        check_rois(exp, small)
    with pytest.raises(ValueError, match="resample the atlas"):
        pipeline.load_roi_masks(exp, Recording(data=data[:, :10], runs=rec.runs, tr=2.0, mask_img=small))


def test_roi_spec_rejects_bad_hierarchy():
    with pytest.raises(ValueError, match="at least 2 ROIs"):
        RoiSpec(image="a.nii.gz", table={1: "V1"}, hierarchy=["V1"])
    with pytest.raises(ValueError, match=r"early names \['V2'\]"):
        RoiSpec(image="a.nii.gz", table={1: "V1", 2: "MT"}, hierarchy=["V1", "MT"], early=["V2"])


def test_run_wires_rois_from_the_config_into_results_and_report(tmp_path, monkeypatch):
    """`pipeline.run` on NIfTI files + events + an atlas in tmp (model features stubbed: no model download)."""
    from brainalign.config import Experiment
    from brainalign.features.store import FeatureStore
    from brainalign.report.html import render_report
    from brainalign.report.results import Results

    rng = np.random.default_rng(0)
    n_runs, per_run, shape = 3, 48, (3, 2, 4)  # 4 slices: the glass-brain map is drawn too
    block = [0, 0, 1, 1, 1, 1, 0, 0, 2, 2, 2, 2, 0, 0, 3, 3, 3, 3, 0, 0, 4, 4, 4, 4]
    labels = np.tile(block * 2, n_runs)
    runs = np.repeat(np.arange(n_runs), per_run)
    (tmp_path / "events.txt").write_text("".join(f"{lab} {r}\n" for lab, r in zip(labels, runs)))
    n_vox = int(np.prod(shape))
    resp = rng.standard_normal((5, n_vox))
    resp[0] = 0
    bold = resp[labels] + 0.7 * rng.standard_normal((labels.size, n_vox))
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    img = nib.Nifti1Image((100 + bold.T.reshape(*shape, -1)).astype(np.float32), affine)
    img.header.set_zooms((3.0, 3.0, 3.0, 2.0))
    nib.save(img, tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(np.ones(shape, dtype=np.uint8), affine), tmp_path / "mask.nii.gz")
    atlas = np.repeat([1, 2, 3], n_vox // 3).reshape(shape)
    nib.save(nib.Nifti1Image(atlas.astype(np.int16), affine), tmp_path / "atlas.nii.gz")
    exp = Experiment.model_validate(dict(
        name="rois-smoke", brain=dict(bold="bold.nii.gz", mask="mask.nii.gz", tr=2.0, detrend=False,
                                      rois=dict(image="atlas.nii.gz", table={1: "early", 2: "middle", 3: "late"},
                                                hierarchy=["early", "middle", "late"])),
        stimuli=dict(events="events.txt", labels={1: "a", 2: "b", 3: "c", 4: "d"}),
        models=[dict(name="m", source="stub")], prompts=dict(unprompted="{stimulus}", task="do {stimulus}"),
        timing=dict(delays=[0], pca_components=None), encoding=dict(alphas=[1.0, 100.0]),
        analysis=dict(baselines=["onoff"], n_permutations=0, responsive_fraction=1.0),
    ))
    n_layers = 3
    feats = {"m": {p: rng.standard_normal((4, n_layers, 5)).astype(np.float32) for p in exp.prompts}}
    meta = {"m": dict(layers=list(range(n_layers)), n_layers=n_layers - 1, fingerprint="stub", model_id="stub",
                      texts={}, n_tokens={})}
    monkeypatch.setattr(pipeline, "model_features", lambda *a, **k: (feats, meta))
    res = pipeline.run(exp, base_dir=tmp_path, store=FeatureStore(tmp_path / "cache"))
    t = res.tables
    assert set(t["roi_scores"].roi) == {"early", "middle", "late"}
    assert len(t["roi_scores"]) == len(t["spaces"]) * 3 * n_runs
    assert set(t["roi_peaks"].roi) == {"early", "middle", "late"} and len(t["roi_hierarchy"]) == 1
    out = res.save(tmp_path / "results")
    assert (out / "roi_scores.csv").is_file() and (out / "roi_hierarchy.csv").is_file()
    html = render_report(Results.load(out))
    assert "Prompt-driven gain along the hierarchy" in html and "glass brain" in html
