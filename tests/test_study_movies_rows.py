"""The video-audio study's headline rows from its config, each on a planted miniature (methods.md §10 rows 6, 7 and
the §5.3 inter-subject ceiling): configs/movies_instruction_tuned_video_audio.yaml's ``analysis.arms``,
``analysis.coupling`` and ``analysis.ceiling`` find the truth that the data were built with.

- Row 6: subjects whose voxels read out an instruction-tuned model's features, not its non-instruction-tuned
  arm's; the group table must find the instruction-tuned arm better, paired over subjects, and the reverse when
  the arms are swapped in the config.
- Row 7: instruction maps whose similarities are the MiniLM similarities of the config's instruction texts
  (instructed maps) or their negatives (in-context maps): the coupling must have the planted sign for each.
- Ceiling: Movie10 miniature subjects sharing a planted signal (brightness on the left, loudness on the right):
  the subject-subset ceiling of the config must match the ceiling that signal and noise imply.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign import pipeline
from brainalign.brain.recording import Recording
from brainalign.config import load_config

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "movies_instruction_tuned_video_audio.yaml"
IT = ["Qwen2.5-VL", "Qwen2-VL", "LLaVA-NeXT-Video", "Video-LLaVA"]


def _study(Y, runs, subject) -> pipeline.StudyData:
    mask = nib.Nifti1Image(np.ones((Y.shape[1], 1, 1), dtype=np.uint8), np.eye(4))
    rec = Recording(data=np.asarray(Y, np.float32), runs=np.asarray(runs), tr=1.49, mask_img=mask, subject=subject)
    return pipeline.StudyData(recording=rec, events=None, stimuli=[], design=np.zeros((Y.shape[0], 0)))


def _arms_config(swap: bool = False):
    exp = load_config(CONFIG)
    exp.timing.delays, exp.timing.pca_components = [0], None
    exp.encoding.alphas = [1.0, 10.0, 100.0, 1000.0]
    exp.encoding.outer_cv = [2]
    exp.analysis.metric = "mean_r"
    exp.analysis.reference = "VideoMAE/none/L1"
    if swap:  # the non-instruction-tuned arm first: it is then the arm compared with the others
        arms = exp.analysis.arms
        exp.analysis.arms = [arms[2], arms[1], arms[0], arms[3]]
    return exp


@pytest.fixture(scope="module")
def arm_results():
    """Five subjects: informative voxels read out the instruction-tuned models' features (each model's own
    prompts share them, with prompt-specific noise), the other arms get independent features."""
    from brainalign.report.results import Results
    from brainalign.testing.planted import planted_encoding

    exp = _arms_config()
    per_subject = {}
    for s in range(5):
        sim = planted_encoding(n_runs=3, n_samples_per_run=60, n_features=6, n_voxels=30, r2=0.4,
                               autocorrelation=0.2, seed=10 + s)
        rng = np.random.default_rng(100 + s)
        spaces = []
        for m in IT:  # instruction-tuned: two prompts at layer 1 of 2, the in-context control at the same layer
            for p in ("v01", "v02"):
                spaces.append(pipeline.FeatureSpace(f"{m}/{p}/L1", sim.X + 0.3 * rng.standard_normal(sim.X.shape),
                                                    "model", m, p, 1, 0.5))
            spaces.append(pipeline.FeatureSpace(f"{m}/v01~icl2/L1", sim.X_null + sim.X * 0.5, "control", m,
                                                "v01~icl2", 1, 0.5))
        for m in ("Qwen2-VL-base", "VideoMAE", "ViViT", "ViT-H"):
            for layer in (0, 1, 2):  # the arm is scored at the layer nearest half depth: L1
                X = rng.standard_normal(sim.X.shape) if layer != 1 else sim.X_null + 0.1 * rng.standard_normal(
                    sim.X.shape)
                spaces.append(pipeline.FeatureSpace(f"{m}/none/L{layer}", X, "model", m, "none", layer, layer / 2))
        run_scores, _, _ = pipeline.cross_validate(exp, _study(sim.Y, sim.runs, f"{s:02d}"), spaces)
        table = pd.DataFrame([sp.info() for sp in spaces])
        per_subject[f"{s:02d}"] = Results(exp, dict(spaces=table, run_scores=run_scores), manifest={})
    return per_subject


@pytest.mark.parametrize("swap", [False, True])
def test_row6_instruction_tuned_arm_beats_the_planted_weaker_arms_paired_over_subjects(arm_results, swap):
    from brainalign.pipeline.group import group_results

    exp = _arms_config(swap)
    group = group_results(exp, {s: type(r)(exp, r.tables, manifest={}) for s, r in arm_results.items()})
    cmp = group.tables["arm_comparisons"].set_index("b")
    assert (cmp["unit"] == "subject").all() and (cmp["n"] == 5).all()
    scores = group.tables["arm_scores"]
    assert set(scores["arm"]) == {"instruction-tuned", "in-context", "non-instruction-tuned", "unimodal"}
    # each model weighs once: 4 instruction-tuned models × 2 prompts; the others at their half-depth layer only
    n_spaces = scores.groupby("arm")["n_spaces"].first()
    assert n_spaces["instruction-tuned"] == 8 and n_spaces["unimodal"] == 3 and n_spaces["in-context"] == 4
    if not swap:
        assert (cmp["a"] == "instruction-tuned").all()
        for arm in ("in-context", "non-instruction-tuned", "unimodal"):
            assert cmp.loc[arm, "mean_diff"] > 0.05 and cmp.loc[arm, "percent_gain"] > 0, cmp.loc[arm]
            assert cmp.loc[arm, "p_t"] < 0.01 and cmp.loc[arm, "n_better"] == 5
        # the planted in-context features carry half the signal: between the two
        assert cmp.loc["in-context", "mean_diff"] < cmp.loc["non-instruction-tuned", "mean_diff"]
    else:
        assert (cmp["a"] == "non-instruction-tuned").all()
        assert cmp.loc["instruction-tuned", "mean_diff"] < -0.05 and cmp.loc["instruction-tuned", "p_t"] < 0.01
    # one subject's table: the same arms, paired over its held-out runs (one here: Life's role)
    from brainalign.analysis.arms import arm_tables

    one = arm_tables(exp.analysis, arm_results["00"].tables["run_scores"],
                                     arm_results["00"].tables["spaces"], unit="run")
    assert (one["arm_comparisons"]["n"] == 1).all()


def test_report_shows_the_arms_figure(arm_results):
    from brainalign.pipeline.group import group_results
    from brainalign.report.html import render_report

    exp = _arms_config()
    group = group_results(exp, arm_results)
    html = render_report(group)
    assert "Model arms: instruction-tuned against each arm" in html and html.count("data:image/png") >= 1


# ------------------------------------------------------------------ row 7: instruction-semantics coupling
def _maps_with_similarity(K: np.ndarray, n_voxels: int, rng) -> np.ndarray:
    """Rows (one per instruction) whose Pearson similarities are proportional to the PSD matrix ``K``."""
    w, V = np.linalg.eigh(K)
    L = V * np.sqrt(np.clip(w, 0, None))  # L @ L.T = K
    G = rng.standard_normal((K.shape[0], n_voxels))
    G -= G.mean(1, keepdims=True)
    Q = np.linalg.qr(G.T)[0].T  # orthonormal, zero-mean rows
    return L @ Q * np.sqrt(n_voxels) + 0.02 * rng.standard_normal((K.shape[0], n_voxels))


def test_row7_coupling_recovers_the_planted_sign_for_instructed_and_in_context_maps(tmp_path):
    """Planted with the config's own text model (MiniLM) on the config's 13 instructions: instructed maps whose
    similarity is the text similarity (coupling +), in-context maps whose similarity is its negative (coupling −)."""
    from brainalign.analysis.compare import similarity_matrix
    from brainalign.features.models import make_extractor
    from brainalign.features.store import FeatureStore
    from brainalign.pipeline.extras import coupling_tables, coupling_text_spec, instruction_text

    exp = load_config(CONFIG)
    exp.analysis.coupling.n_permutations = 2000
    prompts = [f"v{i:02d}" for i in range(1, 14)]
    store = FeatureStore(tmp_path / "cache")
    text = make_extractor(coupling_text_spec(exp))
    emb = np.asarray(text.embed_cached([instruction_text(exp.prompts[p]) for p in prompts], [text.n_layers],
                                       store))[:, 0, :]
    St = similarity_matrix(emb, "cosine")
    rng = np.random.default_rng(0)
    lam = np.linalg.eigvalsh(St).max()
    maps = {"instructed": _maps_with_similarity(St, 400, rng),
            "in_context": _maps_with_similarity((lam + 0.05) * np.eye(13) - St, 400, rng)}  # off-diagonal −St
    rows = []
    for kind, M in maps.items():
        suffix = "~icl2" if kind == "in_context" else ""
        for p, v in zip(prompts, M):
            rows += [dict(space=f"Qwen2.5-VL/{p}{suffix}/L1", voxel=i, r=float(x)) for i, x in enumerate(v)]
    vox = pd.DataFrame(rows)
    spaces = pd.DataFrame([dict(space=f"Qwen2.5-VL/{p}/L1", kind="model", model="Qwen2.5-VL", prompt=p, layer=1,
                                depth=0.5) for p in prompts])
    cpl, sim = coupling_tables(exp, [], vox, store, extractor=text, spaces=spaces)
    cpl = cpl.set_index("maps")
    assert list(cpl.index) == ["instructed", "in_context_k2"] and (cpl.text_model == "coupling-text").all()
    assert cpl.loc["instructed", "r"] > 0.8 and cpl.loc["instructed", "p_value"] < 0.01
    assert cpl.loc["in_context_k2", "r"] < -0.8 and cpl.loc["in_context_k2", "p_value"] > 0.9
    assert len(sim) == 2 * 78 and set(sim["maps"]) == {"instructed", "in_context_k2"}


# ------------------------------------------------------------------ inter-subject ceiling (methods §5.3)
def test_ceiling_of_the_config_recovers_the_planted_shared_signal(tmp_path):
    """Three Movie10 miniature subjects share the planted brightness/loudness signal (independent noise): the
    config's subject-subset ceiling (scored on Life) matches sqrt(var(signal) / var(signal + noise)) per vertex."""
    from brainalign.pipeline.ceilings import add_study_ceiling
    from brainalign.pipeline.checks import with_expanded_data_root
    from brainalign.pipeline.runner import load_data, load_roi_masks
    from brainalign.report.results import Results
    from brainalign.testing.fixtures import write_movie10

    truth = write_movie10(tmp_path / "cneuromod", subjects=("01", "02", "03"), trs_per_segment=40, videos=True)
    exp = load_config(CONFIG, ["brain.subjects=['01','02','03']", "brain.options.truncate=null",
                               "brain.options.n_vertices=[42,42]"])
    exp.analysis.ceiling.n_bootstrap = 20
    exp = with_expanded_data_root(exp, None, tmp_path / "cneuromod")
    responses, per_subject, masks = {}, {}, {}
    for s in ("01", "02", "03"):
        data = load_data(exp, None, s, tmp_path / "cneuromod")
        responses[s] = (data.recording.data, data.recording.runs)
        masks[s] = load_roi_masks(exp, data.recording, None)
        n = data.recording.n_voxels
        vox = pd.DataFrame(dict(space="m", voxel=np.arange(n), r=np.full(n, 0.3)))
        per_subject[s] = Results(exp, dict(voxel_scores=vox), manifest={})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        add_study_ceiling(exp, responses, per_subject, rois=masks)
    # the planted ceiling on Life: signal = scale · 4 · (feature(t − lag) − 0.5) · w, noise sd = scale per TR
    nv, lag = truth["n_vertices"], truth["lag"]
    sig, noise = [], []
    for seg, n in enumerate(truth["seg_trs"]["life"], start=1):
        scale = 2.0 + seg
        b = np.r_[np.full(lag, 0.5), truth["brightness"][("life", seg)]][:n] - 0.5
        a = np.r_[np.full(lag, 0.5), truth["loudness"][("life", seg)]][:n] - 0.5
        sig.append(scale * 4.0 * np.c_[b[:, None] * truth["w_video"][None], a[:, None] * truth["w_audio"][None]])
        noise.append(np.full(n, scale ** 2))
    S, N = np.concatenate(sig), np.concatenate(noise)
    planted = np.sqrt(S.var(0) / (S.var(0) + N.mean()))
    for s in ("01", "02", "03"):
        t = per_subject[s].tables
        c = t["ceiling"].sort_values("voxel")["ceiling_r"].to_numpy()
        ok = np.isfinite(c)
        assert ok.mean() > 0.9
        # unbiased within 0.05 (a variance-scale ceiling, r², would sit ~0.2 below), each vertex within ~0.1 (81
        # held-out TRs), and ranked as planted
        assert abs(np.mean(c[ok] - planted[ok])) < 0.05, (s, np.c_[c, planted][:10])
        assert np.median(np.abs(c[ok] - planted[ok])) < 0.1, (s, np.c_[c, planted][:10])
        assert np.corrcoef(c[ok], planted[ok])[0, 1] > 0.4
        # normalised as the seed: r / ceiling, ceiling < 0.05 -> NaN, clipped to [0, 1]; per ROI too
        norm = t["normalised_scores"]["normalised"].to_numpy()
        assert np.nanmax(norm) <= 1.0 and np.isnan(norm[~(c >= 0.05)]).all()
        assert set(t["roi_normalised"]["roi"]) == set(exp.brain.rois.groups)


# ------------------------------------------------------------------ the new config fields reject bad values
@pytest.mark.parametrize("patch,field", [
    ({"arms": [{"name": "it", "models": ["Qwen2.5-VL"]}]}, "at least 2 arms"),
    ({"arms": [{"name": "it", "models": ["Qwen2.5-VL"]}, {"name": "x", "models": ["GPT"]}]}, "names models ['GPT']"),
    ({"arms": [{"name": "it", "models": ["Qwen2.5-VL"]}, {"name": "it", "models": ["VideoMAE"]}]}, "distinct names"),
    ({"arms": [{"name": "it", "models": ["Qwen2.5-VL", "Qwen2.5-VL"]}, {"name": "u", "models": ["VideoMAE"]}]},
     "repeat"),
    ({"controls": None}, "configure analysis.controls.in_context"),
    ({"controls": {"in_context": {"k": 2}, "models": ["Qwen2-VL"]}}, "left out of analysis.controls.models"),
    ({"controls": {"in_context": {"k": 2}, "models": ["BERT"]}}, "analysis.controls.models names ['BERT']"),
    ({"coupling": {"text_source": "builtin:minilm", "text_model": "VideoMAE"}}, "keep one"),
    ({"arm_layer": 0.75}, "set both to the same layer"),
])
def test_bad_arm_control_and_coupling_values_are_rejected_with_their_field(tmp_path, patch, field):
    import yaml

    from brainalign.config import ConfigError

    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["analysis"].update(patch)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert field in str(err.value), str(err.value)


def test_image_encoders_read_each_clips_middle_frame(tmp_path):
    """ViT-H (row 6's unimodal arm) reads one image per TR: the middle of the clip's sampled frames, whose grey level
    is the brightness planted in that TR."""
    from brainalign.features.models import IMAGE_MODEL_TYPES
    from brainalign.pipeline.checks import with_expanded_data_root
    from brainalign.pipeline.runner import load_data
    from brainalign.testing.fixtures import write_movie10

    truth = write_movie10(tmp_path / "cneuromod", subjects=("01",), segments={"bourne": 1, "wolf": 1, "life": 1},
                          trs_per_segment=6, videos=True)
    exp = load_config(CONFIG, ["brain.subjects=['01']", "brain.options.truncate=null",
                               "brain.options.n_vertices=[42,42]", "stimuli.size=32", "stimuli.n_frames=4"])
    exp = with_expanded_data_root(exp, None, tmp_path / "cneuromod")
    data = load_data(exp, None, "01", tmp_path / "cneuromod")
    images, clips = data.load_stimuli("image"), data.load_stimuli("video")
    assert "vit" in IMAGE_MODEL_TYPES and len(images) == len(clips) == len(data.stimuli)
    for i in (0, 3, 7, len(images) - 1):
        assert images[i].shape == (32, 32, 3)
        np.testing.assert_array_equal(images[i], clips[i].frames[2])
    planted = np.concatenate([truth["brightness"][(m, 1)] for m in ("bourne", "wolf", "life")])
    grey = np.array([images[i].mean() / 255 for i in range(len(images))])
    assert np.abs(grey - planted).max() < 0.05  # the TR's own frame, not a neighbour's
