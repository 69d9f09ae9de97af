"""The extra analyses of ``analysis:`` (ceilings, FWER, best layer, dominance/VIF, banded check, paired
partition controls, instruction coupling), each with planted truth recovered through the config."""
from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from brainalign import pipeline
from brainalign.analysis.ceiling import subject_subset_ceiling
from brainalign.analysis.compare import instruction_semantics_coupling
from brainalign.analysis.layers import best_layer
from brainalign.brain.recording import Recording
from brainalign.config import ConfigError, PartitionSpec, load_config
from brainalign.config.analysis import CouplingSpec
from brainalign.pipeline.extras import (
    best_layer_table,
    coupling_tables,
    extra_analyses,
    layer_median_table,
    normalised_score_tables,
    subject_subset_ceiling_table,
)
from brainalign.testing.planted import planted_encoding, planted_partition, planted_subjects

from test_config import DEMO


def _study(Y, runs, subject="01") -> pipeline.StudyData:
    mask = nib.Nifti1Image(np.ones((Y.shape[1], 1, 1), dtype=np.uint8), np.eye(4))
    rec = Recording(data=np.asarray(Y, np.float32), runs=np.asarray(runs), tr=2.0, mask_img=mask, subject=subject)
    return pipeline.StudyData(recording=rec, events=None, stimuli=[], design=np.zeros((Y.shape[0], 0)))


def _exp(**analysis):
    exp = load_config(DEMO)
    exp.timing.delays = [0]
    exp.timing.pca_components = None
    exp.encoding.alphas = [1.0, 10.0, 100.0, 1000.0]
    exp.analysis.controls = None
    exp.analysis.partitions = []
    for k, v in analysis.items():
        setattr(exp.analysis, k, v)
    return exp


def _vox_table(r_by_space: dict) -> pd.DataFrame:
    if not r_by_space:
        return pd.DataFrame(dict(space=pd.Series(dtype=str), voxel=pd.Series(dtype=int), r=pd.Series(dtype=float)))
    return pd.concat([pd.DataFrame(dict(space=s, voxel=np.arange(len(r)), r=r)) for s, r in r_by_space.items()],
                     ignore_index=True)


# ------------------------------------------------------------------ config: bad values name their field
@pytest.mark.parametrize("patch, field", [
    ({"ceiling": {"method": "split-half"}}, "analysis.ceiling.method"),
    ({"ceiling": {"threshold": 0}}, "analysis.ceiling.threshold"),
    ({"ceiling": {"n_averaged": 0}}, "analysis.ceiling.n_averaged"),
    ({"fwer_alpha": 1.5}, "analysis.fwer_alpha"),
    ({"group_how": "max"}, "analysis.group_how"),
    ({"coupling": {"n_permutations": 0}}, "analysis.coupling.n_permutations"),
    ({"partitions": [{"name": "p", "spaces": ["a", "b"], "control": {"c": "a~x"}}]}, "control names 'c'"),
    ({"partitions": [{"name": "p", "spaces": ["a", "b"], "control": {"a": "b"}}]}, "already a space"),
    ({"partitions": [{"name": "p", "spaces": ["a", "b"], "vif_components": 0}]}, "vif_components"),
    ({"coupling": {"layer": 3}}, "analysis.coupling needs at least 4 prompts"),
    ({"coupling": {"model": "GPT"}}, "analysis.coupling.model='GPT'"),
    ({"coupling": {"text_model": "BERT"}}, "analysis.coupling.text_model='BERT'"),
])
def test_bad_analysis_values_are_rejected_with_their_field(tmp_path, patch, field):
    cfg = yaml.safe_load(DEMO.read_text())  # builtin: data paths resolve from anywhere
    cfg["analysis"].update(patch)
    if "model" in patch.get("coupling", {}):
        cfg["prompts"].update(a="an {stimulus}", b="the {stimulus}", c="my {stimulus}")
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert field in str(err.value), str(err.value)


def test_analysis_defaults_keep_the_demo_valid(tmp_path):
    exp = load_config(DEMO)
    assert exp.analysis.ceiling.method == "none" and exp.analysis.ceiling.threshold == 0.05
    assert exp.analysis.fwer_alpha is None and exp.analysis.best_layer and exp.analysis.coupling is None
    cfg = yaml.safe_load(DEMO.read_text())
    cfg["analysis"]["ceiling"] = None  # "no ceiling" may also be written as null
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    assert load_config(tmp_path / "exp.yaml").analysis.ceiling is None


# ------------------------------------------------------------------ FWER next to FDR
def test_fwer_option_controls_family_wise_errors_on_planted_data():
    sim = planted_encoding(n_runs=6, n_samples_per_run=100, n_features=8, n_voxels=150, r2=0.25,
                           autocorrelation=0.4, seed=5)
    exp = _exp(reference="null", responsive_fraction=1.0, n_permutations=300, fwer_alpha=0.05)
    # one fixed train/test split (with leave-one-run-out the max-statistic FWER is more anticonservative still;
    # benchmarks/calib_fwer_loro.py measures both)
    exp.encoding.outer_cv = [4, 5]
    spaces = [pipeline.FeatureSpace("null", sim.X_null, "baseline"), pipeline.FeatureSpace("true", sim.X, "model")]
    data = _study(sim.Y, sim.runs)
    _, preds, _ = pipeline.cross_validate(exp, data, spaces)
    vox = pipeline.voxel_scores(exp, data, preds)
    assert {"p_fwer", "significant_fwer"} <= set(vox.columns)
    assert (vox.p_fwer >= vox.p - 1e-12).all()  # FWER is never more lenient than the uncorrected p
    true, null = vox[vox.space == "true"], vox[vox.space == "null"]
    assert null.significant_fwer.sum() <= 1 < (null.p < 0.05).sum()  # FWER: ~no null voxel, unlike uncorrected p
    assert not true.significant_fwer.to_numpy()[~sim.informative].any()
    assert true.significant_fwer.to_numpy()[sim.informative].mean() > 0.9
    assert true.significant_fwer.sum() <= true.significant.sum()  # stricter than BH-FDR


# ------------------------------------------------------------------ best layer (Xiao et al., 2026)
def test_best_layer_table_equals_the_array_version_and_finds_the_planted_peak():
    rng = np.random.default_rng(2)
    n_sub, layers, n_vox = 3, [0, 2, 4, 6], 80
    peak = np.array([0.05, 0.12, 0.2, 0.1])  # planted peak at layer 4
    scores = peak[None, :, None] + rng.normal(0, 0.05, (n_sub, len(layers), n_vox))
    spaces = pd.DataFrame([dict(space=f"M/p/L{l}", kind="model", model="M", prompt="p", layer=l, depth=l / 6)
                           for l in layers] + [dict(space="baseline/onoff", kind="baseline", model="", prompt="",
                                                    layer=-1, depth=np.nan)])
    roi = {"V1": np.arange(n_vox) < 30}
    med = pd.concat([layer_median_table(_vox_table({f"M/p/L{l}": scores[s, j] for j, l in enumerate(layers)}
                                                   | {"baseline/onoff": np.zeros(n_vox)}), spaces, roi, f"s{s}")
                     for s in range(n_sub)], ignore_index=True)
    tab = best_layer_table(med).set_index("roi")
    ref = best_layer(scores)
    assert tab.loc["all", "best_layer"] == layers[ref["best_layer"]] == 4
    assert tab.loc["all", "score"] == pytest.approx(ref["score"]) and tab.loc["all", "mad"] == pytest.approx(ref["mad"])
    ref_v1 = best_layer(scores, mask=roi["V1"])
    assert tab.loc["V1", "score"] == pytest.approx(ref_v1["score"]) and tab.loc["V1", "n_subjects"] == 3
    assert set(med.model) == {"M"}  # baselines carry no layer


# ------------------------------------------------------------------ noise ceilings
def test_repeat_ceiling_is_recovered_and_scores_are_normalised_with_the_stated_convention():
    sim = planted_subjects(n_subjects=2, n_runs=4, n_samples_per_run=150, n_voxels=60, n_repeats=4,
                           signal_fraction=(0.0, 0.6), seed=1)
    data = _study(sim.responses[0], sim.runs)
    data.repeats = sim.repeats
    r = np.linspace(-0.1, 0.5, 60)
    tables = dict(spaces=pd.DataFrame(columns=["space", "kind"]), voxel_scores=_vox_table({"m": r}))
    exp = _exp(best_layer=False)
    exp.analysis.ceiling.method, exp.analysis.ceiling.threshold = "repeats", 0.3
    out = extra_analyses(exp, data, [], tables)
    ceil = out["ceiling"]["ceiling_r"].to_numpy()
    ok = sim.ceiling_r > 0.3
    assert np.median(np.abs(ceil[ok] - sim.ceiling_r[ok])) < 0.03
    norm = out["normalised_scores"]["normalised"].to_numpy()
    keep = np.isfinite(ceil) & (ceil >= 0.3)
    np.testing.assert_allclose(norm[keep], r[keep] / ceil[keep])
    assert np.isnan(norm[~keep]).all() and (~keep).any()
    summ = out["normalised_summary"].iloc[0]
    assert "< 0.3" in summ.convention and "not clipped" in summ.convention and summ.n_excluded == (~keep).sum()
    _, clipped = normalised_score_tables(tables["voxel_scores"], out["ceiling"], 0.3, clip=True)
    assert "clipped to [0, 1]" in clipped.convention.iloc[0]


def test_missing_repeats_or_single_subject_give_a_clear_message_not_a_ceiling():
    data = _study(np.random.default_rng(0).standard_normal((40, 5)), np.repeat([0, 1], 20))
    tables = dict(spaces=pd.DataFrame(columns=["space", "kind"]), voxel_scores=_vox_table({"m": np.zeros(5)}))
    for method, needle in (("repeats", "needs repeated presentations"), ("subject_subset", "needs several subjects")):
        exp = _exp(best_layer=False)
        exp.analysis.ceiling.method = method
        lines = []
        with pytest.warns(UserWarning, match=needle):
            out = extra_analyses(exp, data, [], tables, log=lines.append)
        assert "ceiling" not in out and needle in lines[0] and "method: none" in lines[0]


def test_subject_subset_ceiling_table_keys_subjects_by_name():
    sim = planted_subjects(n_subjects=3, n_runs=4, n_samples_per_run=60, n_voxels=6, seed=0)
    names = ["sub-03", "sub-07", "sub-11"]
    tab = subject_subset_ceiling_table(dict(zip(names, sim.responses)), sim.runs, [3], alphas=[1.0, 100.0], seed=4)
    direct = subject_subset_ceiling(sim.responses, sim.runs, [3], alphas=[1.0, 100.0], n_folds=3,
                                    max_combinations=10, n_bootstrap=100, seed=4)
    assert list(tab.subject.unique()) == names
    np.testing.assert_allclose(tab.ceiling_r.to_numpy(), direct.v0.to_numpy())
    with pytest.raises(ValueError, match=">= 3 subjects"):
        subject_subset_ceiling_table(dict(zip(names[:2], sim.responses)), sim.runs, [3])


# ------------------------------------------------------------------ partitions: dominance, VIF, banded, controls
def _partition_study(seed=0, n_runs=8):
    sim = planted_partition(("a", "b"), n_runs=n_runs, n_samples_per_run=100, n_latent=3, n_voxels=60,
                            null_fraction=0.0, total_r2=(0.3, 0.6), seed=seed)
    rng = np.random.default_rng(seed + 100)
    noise = rng.standard_normal(sim.spaces["a"].shape).astype(np.float32)

    def shuffled(X):  # each run's time course rolled by half a run: same features, broken mapping
        out = X.copy()
        for r in np.unique(sim.runs):
            sel = sim.runs == r
            out[sel] = np.roll(X[sel], sel.sum() // 2, axis=0)
        return out

    spaces = [pipeline.FeatureSpace(n, X, "model") for n, X in
              (("a", sim.spaces["a"]), ("b", sim.spaces["b"]), ("n", noise), ("a~shuffled", shuffled(sim.spaces["a"])),
               ("n~shuffled", shuffled(noise)))]
    return sim, _study(sim.Y, sim.runs), spaces


def test_planted_unique_effect_survives_its_control_and_planted_null_does_not():
    sim, data, spaces = _partition_study()
    exp = _exp(partitions=[
        PartitionSpec(name="effect", spaces=["a", "b"], dominance=False, control={"a": "a~shuffled"}),
        PartitionSpec(name="null", spaces=["n", "b"], dominance=False, control={"n": "n~shuffled"}),
    ])
    out = extra_analyses(exp, data, spaces, dict(spaces=pd.DataFrame([s.info() for s in spaces]),
                                                 voxel_scores=_vox_table({})), )
    ctl = out["partition_controls"].set_index("partition")
    assert ctl.loc["effect", "survives"] and ctl.loc["effect", "n_better"] == 8 and ctl.loc["effect", "p"] < 0.01
    # the planted unique fraction of a is recovered per run (mean over voxels), the control's is ~0
    runs = out["partition_control_runs"]
    eff = runs[runs.partition == "effect"]
    assert abs(eff.unique_effect.median() - sim.fractions["unique_a"].mean()) < 0.03
    assert abs(eff.unique_control.median()) < 0.02
    assert not ctl.loc["null", "survives"] and abs(ctl.loc["null", "mean_diff"]) < 0.01
    assert set(runs.run) == set(range(8)) and list(ctl.control) == ["a~shuffled", "n~shuffled"]


def test_dominance_and_vif_recover_the_planted_structure_through_the_pipeline():
    sim, data, spaces = _partition_study(seed=3, n_runs=4)
    exp = _exp(partitions=[PartitionSpec(name="ab", spaces=["a", "b"]), PartitionSpec(name="nb", spaces=["n", "b"])])
    vox, pct = pipeline.partition_spaces(exp, data, spaces)
    tables = dict(spaces=pd.DataFrame([s.info() for s in spaces]), voxel_scores=_vox_table({}),
                  partition_voxels=vox, partition=pct)
    out = extra_analyses(exp, data, spaces, tables)
    dom = out["partition_dominance"].set_index(["partition", "space"])
    # percentages of the joint R² sum to 100; for two spaces dominance = unique + half the shared part
    assert dom.loc["ab", "percent_of_joint"].sum() == pytest.approx(100.0)
    ab = vox[vox.partition == "ab"]
    sel = ab.r2_joint.to_numpy() > 0
    planted_a = (sim.fractions["unique_a"] + sim.fractions["shared"] / 2)[sel].mean()
    assert dom.loc[("ab", "a"), "mean_dominance"] == pytest.approx(planted_a, abs=0.03)
    assert dom.loc[("ab", "a"), "n_voxels"] == sel.sum()
    assert dom.loc[("nb", "b"), "percent_of_joint"] > 90  # the noise space explains nothing
    vif = out["partition_vif"].groupby("partition").vif.max()
    assert vif["ab"] > 10  # a and b share a latent block: collinear components
    assert vif["nb"] < 1.5  # independent spaces


def test_banded_check_agrees_with_ridge_on_well_posed_planted_data():
    sim, data, spaces = _partition_study(seed=4, n_runs=4)
    exp = _exp(partitions=[PartitionSpec(name="ab", spaces=["a", "b"], banded=True, dominance=False)])
    exp.encoding.outer_cv = [3]
    vox, pct = pipeline.partition_spaces(exp, data, spaces)
    out = extra_analyses(exp, data, spaces, dict(spaces=pd.DataFrame([s.info() for s in spaces]),
                                                 voxel_scores=_vox_table({}), partition_voxels=vox, partition=pct))
    b = out["partition_banded"]
    assert set(b.part) == {"unique_s0", "unique_s1", "shared"} and set(b.space) == {"a", "b", "shared"}
    rom = b[b.aggregation == "ratio_of_means"].set_index("part")
    planted = {k: 100 * sim.fractions[k].mean() / sum(f.mean() for f in sim.fractions.values())
               for k in ("unique_a", "unique_b", "shared")}
    for part, key in (("unique_s0", "unique_a"), ("unique_s1", "unique_b"), ("shared", "shared")):
        assert abs(rom.loc[part, "difference"]) < 8, rom
        assert abs(rom.loc[part, "percent_banded"] - planted[key]) < 10, (part, rom.loc[part], planted[key])


# ------------------------------------------------------------------ instruction-semantics coupling (video-audio study)
class _FakeText:
    """An extractor whose instruction embeddings are planted."""

    n_layers = 6

    def __init__(self, emb):
        self.emb = emb
        self.texts = None

    def embed_cached(self, texts, layers, store, pool_from=None):
        self.texts = list(texts)
        return self.emb[:, None, :]


@pytest.mark.parametrize("coupled", [True, False])
def test_coupling_finds_planted_coupling_and_not_a_planted_null(coupled):
    rng = np.random.default_rng(7)
    prompts = {"unprompted": "{stimulus}", **{f"q{i}": f"question {i} about the {{stimulus}}" for i in range(8)}}
    emb = rng.standard_normal((8, 16))
    base = rng.standard_normal(200)
    maps = (emb @ rng.standard_normal((16, 200)) if coupled else rng.standard_normal((8, 200))) * 0.3 + base
    exp = load_config(DEMO)
    exp.prompts = prompts
    exp.analysis.controls, exp.analysis.partitions = None, []
    exp.analysis.coupling = CouplingSpec(layer=3, n_permutations=500)
    vox = _vox_table({f"MiniLM-L6/q{i}/L3": maps[i] for i in range(8)} | {"MiniLM-L6/unprompted/L3": base})
    ex = _FakeText(emb)
    cpl, sim = coupling_tables(exp, [], vox, store=None, extractor=ex)
    assert ex.texts[0] == "question 0 about the"  # the instruction without the stimulus slot
    ref = instruction_semantics_coupling(emb, maps, n_permutations=500, seed=exp.seed)
    assert cpl.r.iloc[0] == pytest.approx(ref["r"]) and cpl.p_value.iloc[0] == pytest.approx(ref["p_value"])
    assert cpl.n_instructions.iloc[0] == 8 and len(sim) == 28 and cpl.text_layer.iloc[0] == 6
    if coupled:
        assert cpl.r.iloc[0] > 0.5 and cpl.p_value.iloc[0] < 0.01
    else:
        assert cpl.p_value.iloc[0] > 0.05
    exp.analysis.coupling.layer = 2
    with pytest.raises(ValueError, match="analysis.coupling.layer=2"):
        coupling_tables(exp, [], vox, extractor=ex)


# ------------------------------------------------------------------ end to end: the config reaches Results
def test_extra_tables_land_in_results_from_the_config(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "reliability"))
    from small_experiment import make_small_experiment

    from brainalign.features.store import FeatureStore
    from brainalign.report.results import Results

    cfg = make_small_experiment(tmp_path / "exp", n_runs=4, layers=(3, 6), **{
        "prompts": {"unprompted": "{stimulus}", "action": "what you would do with a {stimulus}",
                    "see": "the shape and color of a {stimulus}", "hear": "the sound made by a {stimulus}",
                    "smell": "the smell of a {stimulus}"},
        "analysis.n_permutations": 100, "analysis.fwer_alpha": 0.05,
        "analysis.coupling": {"layer": 3, "n_permutations": 100},
        "analysis.partitions": [{"name": "p", "spaces": ["MiniLM-L6/action/L3", "baseline/onoff"]}],
    })
    exp = load_config(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = pipeline.run(exp, base_dir=cfg.parent, store=FeatureStore(tmp_path / "cache"))
    t = res.tables
    for name in ("best_layer", "layer_medians", "partition_dominance", "partition_vif", "coupling"):
        assert name in t and len(t[name]), name
    vox = t["voxel_scores"]
    assert (vox.p_fwer >= vox.p - 1e-12).all()
    # best layer = argmax over layers of the voxel median of the held-out r, per prompt
    for prompt, row in t["best_layer"].set_index("prompt").iterrows():
        med = {l: vox[vox.space == f"MiniLM-L6/{prompt}/L{l}"].r.median() for l in (3, 6)}
        assert row.best_layer == max(med, key=med.get) and row.score == pytest.approx(max(med.values()))
    assert t["partition_dominance"].percent_of_joint.sum() == pytest.approx(100.0)
    out = res.save(tmp_path / "out")
    back = Results.load(out)
    for name in ("best_layer", "partition_dominance", "partition_vif", "coupling", "coupling_similarity"):
        assert (out / f"{name}.csv").is_file() and name in back.tables
    from brainalign.report.html import render_report

    html = render_report(back)
    for title in ("Best layer", "Dominance analysis", "Collinearity between partition spaces", "Instruction-semantics"):
        assert title in html, title


# ------------------------------------------------------------------ several subjects' Results -> group tables
def test_group_results_from_per_subject_results():
    from brainalign.pipeline.extras import group_analyses
    from brainalign.report.results import Results

    rng = np.random.default_rng(3)
    base = load_config(DEMO)
    spaces = pd.DataFrame([dict(space="baseline/onoff", kind="baseline", model="", prompt="", layer=-1, depth=np.nan)]
                          + [dict(space=f"MiniLM-L6/{p}/L{l}", kind="model", model="MiniLM-L6", prompt=p, layer=l,
                                  depth=l / 6) for p in ("unprompted", "action") for l in (2, 4)])
    results = {}
    for s in range(6):
        level = rng.normal(0.1, 0.05)
        rs, med = [], []
        for sp in spaces.itertuples():
            v = level + (0.0 if sp.kind == "baseline" else 0.02 + 0.01 * (sp.layer == 4))  # planted: layer 4 best
            v += 0.01 * (sp.prompt == "action" and sp.layer == 4)  # planted prompt gain at layer 4 only
            rs += [dict(space=sp.space, run=r, mean_r_responsive=v + rng.normal(0, 0.002)) for r in range(4)]
            if sp.kind == "model":
                med.append(dict(subject="x", model=sp.model, prompt=sp.prompt, roi="all", layer=sp.layer,
                                depth=sp.depth, median_r=v + rng.normal(0, 0.002), n_voxels=100))
        results[f"sub-{s}"] = Results(base, dict(run_scores=pd.DataFrame(rs), spaces=spaces,
                                                 layer_medians=pd.DataFrame(med)), manifest={})
    out = group_analyses(base, results)
    cmp = out["group_comparisons"].set_index("a")
    assert (cmp.b == "baseline/onoff").all() and (cmp.p_wilcoxon < 0.05).all() and (cmp.n == 6).all()
    gain = out["group_prompt_gain"].set_index("layer")
    assert gain.loc[4, "p_t"] < 0.01 and gain.loc[2, "p_t"] > 0.05
    best = out["group_best_layer"].set_index("prompt")
    assert (best.best_layer == 4).all() and (best.n_subjects == 6).all()
    assert set(out["group_scores"].space) == set(spaces.space) and (out["group_scores"].n_subjects == 6).all()
    with pytest.raises(ValueError, match="at least 2"):
        group_analyses(base, {"sub-0": results["sub-0"]})


def test_study_ceiling_recovers_the_planted_inter_subject_ceiling():
    from brainalign.pipeline.extras import add_study_ceiling, study_ceiling_tables

    sim = planted_subjects(n_subjects=5, n_runs=4, n_samples_per_run=250, n_voxels=12, signal_fraction=(0.2, 0.7),
                           seed=2)
    exp = _exp()
    exp.encoding.outer_cv = [3]
    exp.encoding.alphas = [0.1, 1.0, 10.0, 100.0, 1000.0]
    exp.analysis.ceiling.method, exp.analysis.ceiling.threshold = "subject_subset", 0.2
    names = ["s1", "s2", "s3", "s4", "s5"]
    r = {s: np.linspace(0.0, 0.4, 12) for s in names}
    tabs = study_ceiling_tables(exp, {s: (Y, sim.runs) for s, Y in zip(names, sim.responses)},
                                {s: _vox_table({"m": r[s]}) for s in names})
    for s in names:
        c = tabs[s]["ceiling"].ceiling_r.to_numpy()
        assert np.median(np.abs(c - sim.ceiling_r)) < 0.05, (s, c, sim.ceiling_r)
        norm = tabs[s]["normalised_scores"].normalised.to_numpy()
        ok = c >= 0.2
        np.testing.assert_allclose(norm[ok], r[s][ok] / c[ok])
    with pytest.raises(ValueError, match="same samples"):
        study_ceiling_tables(exp, {"a": (sim.responses[0], sim.runs), "b": (sim.responses[1][:-5], sim.runs[:-5])},
                             {})
    with pytest.warns(UserWarning, match="at least 3 subjects"):
        add_study_ceiling(exp, {s: (Y, sim.runs) for s, Y in zip(names[:2], sim.responses)}, {})


def test_run_study_adds_the_subject_subset_ceiling_from_the_config(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "reliability"))
    from small_experiment import make_small_experiment

    from brainalign.features.store import FeatureStore

    # three "subjects" with the same recording: the same ceiling for each, far above any model's r
    cfg = make_small_experiment(tmp_path / "exp", n_runs=3, layers=(6,), **{
        "brain.subjects": ["a", "b", "c"], "prompts": {"unprompted": "{stimulus}"},
        "analysis.baselines": ["onoff"], "analysis.ceiling": {"method": "subject_subset", "n_bootstrap": 20},
        "encoding.outer_cv": [2],
    })
    exp = load_config(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "needs several subjects" warning in a study
        warnings.filterwarnings("ignore", category=UserWarning, module="(?!brainalign)")
        per, group = pipeline.run_study(exp, base_dir=cfg.parent, store=FeatureStore(tmp_path / "cache"))
    ceil = {s: per[s].tables["ceiling"].ceiling_r.to_numpy() for s in ("a", "b", "c")}
    assert np.median(np.abs(ceil["a"] - ceil["b"])) < 0.02 and np.median(np.abs(ceil["a"] - ceil["c"])) < 0.02
    for s in ("a", "b", "c"):
        t = per[s].tables
        assert np.median(ceil[s]) > 0.6 > t["voxel_scores"].r.median()
        vox = t["normalised_scores"].merge(t["voxel_scores"][["space", "voxel", "r"]], on=["space", "voxel"])
        ok = vox.ceiling_r >= 0.05
        np.testing.assert_allclose(vox.normalised[ok], vox.r_x[ok] / vox.ceiling_r[ok])
    assert "group_best_layer" in group.tables and group.tables["group_comparisons"].n.eq(3).all()
