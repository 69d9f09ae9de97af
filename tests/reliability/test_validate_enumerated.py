"""Every error the pipeline can raise after the features stage, enumerated from the code, and what stops it first.

At real size a run takes days, so an error that `run` raises after it has started computing is a lost day unless
`validate` raises it first. The raises are found by reading the source (``raise ConfigError / DataError /
ValueError`` in ``pipeline``, ``analysis``, ``timing``, ``encoding``), so a new raise fails
:func:`test_every_runtime_raise_is_listed` until it is listed here with one of:

- ``validate: <case>``: a config that triggers it, which validate rejects in under 10 s; the case is in
  ``test_validate_predicts_run.PREDICTED`` (run there) or ``test_bad_inputs.CONFIG_CASES``;
- ``schema``: the config schema rejects the value when the YAML is loaded (validate's first step);
- ``internal``: an argument check of a library function that the pipeline calls with arrays or tables it built
  itself, consistent by construction: reaching it is a bug (a traceback), not an input error;
- ``unused``: a library function the pipeline does not call (public API for notebooks);
- ``cannot: <why>``: depends on something validate does not have (computed features, loaded data of dataset
  formats, several subjects' data); the reason says what.

``pipeline/checks.py`` and ``pipeline/preflight.py`` are validate's own checks and are not listed. The same list
for ``brainalign steer`` is in ``tests/steering/test_steer_validate_only.py``.
"""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "brainalign"
PACKAGES = ("pipeline", "analysis", "timing", "encoding")
VALIDATE_ITSELF = {"pipeline/checks.py", "pipeline/preflight.py"}
ERRORS = ("ConfigError", "DataError", "ValueError")

S, I, U = "schema", "internal", "unused"
NAN_FEATURES = "cannot: NaN or inf in a model's features (e.g. float16 overflow) exist only after the features stage"
FLAT_SPACE = ("cannot: a space constant over the stimuli (a model giving every input the same vector) is known only "
              "once the features exist")
NO_FINITE = "cannot: every voxel's held-out score is NaN only after the fits"
SUBJECTS_DIFFER = ("cannot: whether every subject saw the same samples is known once each subject's data are loaded "
                   "(dataset formats: validate checks the files, not their contents)")
NO_GPU = ("cannot: whether the machine that runs the fits has a CUDA GPU (encoding.backend torch_cuda) is known only "
          "there; validate, often run on a login node, warns instead (preflight.ridge_backend_note)")
ROI_DATASET = ("validate: roi-image-wrong-shape (format nifti); for dataset formats cannot: the loader makes the mask, "
               "validate checks only that the files exist")


def scan_raises(packages=PACKAGES, skip=VALIDATE_ITSELF) -> list[tuple[str, str]]:
    """(``<file>:<function>``, exception class) of every ``raise`` of our error classes, in source order."""
    found = []
    for pkg in packages:
        for f in sorted((SRC / pkg).rglob("*.py")):
            rel = str(f.relative_to(SRC))
            if rel in skip:
                continue
            src = f.read_text()

            def visit(node, qual):
                for ch in ast.iter_child_nodes(node):
                    if isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        visit(ch, qual + [ch.name])
                        continue
                    if isinstance(ch, ast.Raise) and isinstance(ch.exc, ast.Call):
                        fn = ch.exc.func
                        name = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", None)
                        if name in ERRORS + ("SteerConfigError",):
                            found.append((f"{rel}:{'.'.join(qual)}", name))
                    visit(ch, qual)

            visit(ast.parse(src), [])
    return found


# <file>:<function> -> one verdict per raise, in source order
RUNTIME_ERRORS = {
    # ---------------------------------------------------------------- pipeline
    "pipeline/ceilings.py:repeat_ceiling_table": [S],  # analysis.ceiling.n_averaged >= 1
    "pipeline/ceilings.py:subject_subset_ceiling_table": [I, I],  # called only with >= 2 subjects
    "pipeline/ceilings.py:study_ceiling_tables": [SUBJECTS_DIFFER],
    "pipeline/ceilings.py:normalised_score_tables": [I],
    # method ncsnr needs brain.options.ncsnr (check_extra_analyses), which makes the loader read it; repeats and
    # scores come from the same loaded data
    "pipeline/ceilings.py:ceiling_tables_for_run": [S, I],
    "pipeline/controls.py:scramble_prompt": ["validate: scramble-placeholder-twice", "validate: scramble-one-word-prompt"],
    "pipeline/controls.py:control_prompts": [S],  # analysis.controls.prompts is a Literal list
    "pipeline/controls.py:in_context_texts": ["validate: in-context-k-too-large", "validate: in-context-examples-too-few"],
    "pipeline/controls.py:stimulus_shuffled_features": [I, I],
    "pipeline/controls.py:ControlPlan.feature_control": [S],  # analysis.controls.features is a Literal list
    "pipeline/extras.py:layer_median_table": [I],
    "pipeline/extras.py:best_layer_table": [I],
    "pipeline/extras.py:coupling_tables": [I, "validate: coupling-model-without-layers", "validate: coupling-layer-not-fitted"],
    "pipeline/extras.py:group_analyses": [I],  # called only with >= 2 subjects
    "pipeline/partitions.py:partition_dominance_table": [I],
    "pipeline/partitions.py:partition_vif_table": [FLAT_SPACE],
    "pipeline/partitions.py:_check_names": ["validate: partition-control-space-with-controls-off"],
    "pipeline/partitions.py:partition_control_tables": [S],  # PartitionSpec: control keys are its spaces
    "pipeline/runner.py:_encode_space_by_space": ["validate: reference-not-fitted"],
    "pipeline/runner.py:partition_spaces": ["validate: partition-layer-not-fitted"],
    # the first: brain.rois without an image needs format nsd with brain.options.rois (BrainSpec), which the loader reads
    "pipeline/runner.py:load_roi_masks": [S, "validate: rois-on-surface-data", ROI_DATASET,
                                          "validate: roi-group-label-unknown"],
    "pipeline/runner.py:_with_hierarchy": ["validate: roi-hierarchy-unknown"],
    # BrainSpec allows surface_labels with format movie10 only, whose recordings have mesh vertices
    # the loader refuses arrays off brain.options.n_vertices, which validate compares the label files with
    "pipeline/runner.py:surface_roi_masks": [S, "validate: surface-labels-wrong-mesh"],
    "pipeline/workers.py:run_fits": [S, S],  # encoding.n_workers, encoding.blas_threads >= 1
    # the pipeline builds its spaces with exactly one of X / source (and dim with source)
    "timing/spaces.py:FeatureSpace.__init__": [I, I],
    # ---------------------------------------------------------------- analysis
    "analysis/ceiling.py:explainable_variance": ["cannot: the repeated presentations are read by the loader of a "
                                                 "dataset format; validate checks the files, not their contents"],
    "analysis/ceiling.py:ncsnr": ["cannot: the repeated betas are read by the dataset loader"],
    "analysis/ceiling.py:ncsnr_noise_ceiling": [S],  # n_averaged >= 1
    "analysis/ceiling.py:_check_subjects": [I, I, I],
    "analysis/ceiling.py:inter_subject_predictivity": [U, U],
    "analysis/ceiling.py:extrapolate_ceiling": [I, I, I, I],  # n_bootstrap >= 1 by the schema; fixed method
    "analysis/ceiling.py:subject_subset_ceiling": [I],
    "analysis/ceiling.py:normalise_scores": [I, S],  # threshold in (0, 1) by the schema
    "analysis/compare.py:similarity_matrix": [I, NO_FINITE, I, "cannot: an instruction map or text embedding with "
                                              "zero variance exists only after the fits"],
    "analysis/compare.py:instruction_semantics_coupling": [I, S, S],  # >= 4 instructions: check_extra_analyses
    "analysis/compare.py:match_dimensionality": [U, U, U, U, U],
    "analysis/compare.py:matched_dimensionality_scores": [U, U],
    "analysis/group.py:_need": [I],
    "analysis/group.py:_check_how": [S],
    "analysis/group.py:group_tables": ["validate: reference-not-fitted"],
    "analysis/layers.py:normalised_depth": [U],
    "analysis/layers.py:_scores3": [I],
    "analysis/layers.py:layer_curves": [I, I],
    "analysis/layers.py:best_layer": [I, NO_FINITE],
    "analysis/metrics.py:_pair": [I, "validate: run-of-one-tr"],
    "analysis/partition.py:_check_spaces": [I, S, I, I, I, I, "validate: too-few-training-runs", I, NAN_FEATURES,
                                            FLAT_SPACE],
    "analysis/partition.py:variance_partition": [I, I],
    "analysis/partition.py:_mask_dict": [I],
    "analysis/partition.py:partition_percentages": [I],
    "analysis/partition.py:dominance_analysis": [I],
    "analysis/partition.py:feature_space_vif": [I, I, I, FLAT_SPACE],
    "analysis/roi_scores.py:combine_roi_masks": ["validate: roi-group-label-unknown"],
    "analysis/roi_scores.py:roi_comparisons": ["validate: reference-not-fitted"],
    "analysis/rois.py:stat_function": [S],
    "analysis/rois.py:_scores_by_subject": [I],
    "analysis/rois.py:aggregate_rois": [U, U],
    "analysis/rois.py:group_summary": [U],
    "analysis/rois.py:prompt_gain": [I, I],
    "analysis/rois.py:hierarchy_gain": [I, "validate: roi-hierarchy-unknown", S, NO_FINITE],
    "analysis/rois.py:instruction_profiles": [U],
    "analysis/rois.py:best_instruction_per_roi": [U],
    "analysis/stats.py:_check_pair": [I],
    "analysis/stats.py:_check_runs": [I],
    "analysis/stats.py:_check_metric": [I],
    "analysis/stats.py:block_indices": [S],  # analysis.block_length >= 1
    "analysis/stats.py:permutation_test": [I, I, "validate: block-length-too-long"],  # called with n_permutations > 0
    "analysis/stats.py:fwer_max_statistic": [I],
    "analysis/stats.py:fdr_bh": [S, I],
    "analysis/stats.py:bootstrap_ci": [U, U],
    "analysis/stats.py:paired_statistics": [I, I, I],
    "analysis/stats.py:paired_test": [I, I, I, I, I],  # group tables only with >= 2 subjects
    "analysis/equivalence.py:tost_paired": [I, S, S],  # EquivalenceSpec: margin > 0, 0 < alpha < 0.5
    "analysis/equivalence.py:equivalence_table": ["validate: equivalence-space-not-fitted"],
    # analysis.arms: check_extra_analyses (schema) makes every arm's models exist and in-context arms name
    # controlled models, so each model has fitted spaces; the scores come from the same run
    "analysis/arms.py:arm_spaces": [S],
    "analysis/arms.py:arm_scores": [I],
    "analysis/summary.py:paired_test": [I],
    "analysis/summary.py:compare_to_reference": ["validate: reference-not-fitted"],
    # ---------------------------------------------------------------- timing
    "timing/grid.py:lanczos_resample": [I, I, I],  # frame times and TR grid both come from the loaded data
    # ---------------------------------------------------------------- encoding
    "encoding/_validation.py:check_X": [I, I, I, I, NAN_FEATURES],
    "encoding/_validation.py:check_alphas": [S, S],
    "encoding/_validation.py:check_runs": [I],
    "encoding/banded.py:BandedRidgeCV._check_Xs": [I, I],
    "encoding/banded.py:BandedRidgeCV.fit": [I, I, I, I],  # Y NaN: the loaders drop non-finite voxels
    "encoding/banded.py:BandedRidgeCV.predict": [I],
    "encoding/delays.py:run_boundaries": [I, "validate: runs-not-contiguous"],
    "encoding/delays.py:make_delayed": [I, S, I],  # timing.delays non-empty
    "encoding/delays.py:zscore_with_train": [I, I, I],
    "encoding/estimators.py:_as_lazy_2d": [I, I, I, "validate: every-voxel-excluded"],
    "encoding/backend.py:check_backend": [S, NO_GPU],  # encoding.backend is a Literal; validate warns on no GPU
    "encoding/estimators.py:RidgeCV.fit": [I, I, I, S, I],  # the pipeline's fits use executor='local'
    "encoding/estimators.py:RidgeCV._check_fitted_X": [I],
    "encoding/estimators.py:RidgeCV.score": [I],
    "encoding/executor.py:ChunkStore.__init__": [U],  # RidgeCV(store=...): the pipeline checkpoints per fit
    "encoding/fit_predict.py:ridge_fit_predict": [I],
    "encoding/many.py:fit_many": [I, I],
    "encoding/ridge.py:check_chunk": [I],  # the loaders drop non-finite voxels (validate reports them)
    "encoding/splits.py:_check_runs": [I],
    "encoding/splits.py:leave_one_run_out": ["validate: too-few-training-runs"],
    "encoding/splits.py:leave_runs_out": [I],
    "encoding/splits.py:train_test_by_runs": ["validate: test-run-missing", "validate: too-few-training-runs"],
    "encoding/splits.py:blocked_folds": [U, U, U],
    "encoding/splits.py:stratified_folds": [U, U],  # steering only (listed with steer)
    "encoding/splits.py:make_folds": ["validate: too-few-training-runs", I, I, I, I, I],
}


def _cases() -> set[str]:
    from test_bad_inputs import CONFIG_CASES
    from test_validate_predicts_run import PREDICTED

    # cases run in other files: rois-on-surface-data (test_bad_inputs), surface-labels-wrong-mesh
    # (tests/brain/test_dataset_rois.py::test_validate_compares_the_surface_label_files_with_the_mesh)
    return set(PREDICTED) | set(CONFIG_CASES) | {"rois-on-surface-data", "surface-labels-wrong-mesh"}


def check_listing(found: list[tuple[str, str]], listed: dict[str, list[str]], cases: set[str]) -> None:
    counts = Counter(key for key, _ in found)
    unlisted = {k: n for k, n in counts.items() if k not in listed}
    assert not unlisted, f"raises with no verdict (add them, with the case that validate rejects or why not): {unlisted}"
    gone = sorted(set(listed) - set(counts))
    assert not gone, f"listed functions that no longer raise (remove them): {gone}"
    wrong = {k: (counts[k], len(v)) for k, v in listed.items() if counts[k] != len(v)}
    assert not wrong, f"(raises in the code, verdicts listed) differ; list one verdict per raise: {wrong}"
    for key, verdicts in listed.items():
        for v in verdicts:
            assert v in (S, I, U) or v.startswith(("validate: ", "cannot: ")), (key, v)
            if v.startswith("validate: "):
                case = v.split()[1]
                assert case in cases, f"{key}: no config case {case!r} that validate rejects"


def test_every_runtime_raise_is_listed():
    check_listing(scan_raises(), RUNTIME_ERRORS, _cases())


def test_the_listing_catches_a_new_raise():
    found = scan_raises()
    with pytest.raises(AssertionError, match="no verdict"):
        check_listing(found + [("pipeline/runner.py:new_stage", "ConfigError")], RUNTIME_ERRORS, _cases())
    with pytest.raises(AssertionError, match="one verdict per raise"):
        check_listing(found + [("pipeline/runner.py:_encode_space_by_space", "ConfigError")], RUNTIME_ERRORS, _cases())
    bad = dict(RUNTIME_ERRORS, **{"pipeline/runner.py:_encode_space_by_space": ["validate: no-such-case"]})
    with pytest.raises(AssertionError, match="no config case"):
        check_listing(found, bad, _cases())


def test_the_config_errors_of_the_pipeline_are_all_predicted():
    """Of our own input errors (ConfigError, DataError) raised after the features, all but those that need the
    features, several subjects' data or a dataset's mask are rejected by validate."""
    found = scan_raises()
    ours = [k for k, exc in found if exc in ("ConfigError", "DataError")]
    verdicts = []
    for key in dict.fromkeys(ours):
        raises = [exc for k, exc in found if k == key]
        verdicts += [v for v, exc in zip(RUNTIME_ERRORS[key], raises) if exc in ("ConfigError", "DataError")]
    not_predicted = [v for v in verdicts if not v.startswith("validate: ") and v not in (S,)]
    assert not_predicted == [FLAT_SPACE], not_predicted
