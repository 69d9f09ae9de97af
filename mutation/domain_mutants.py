"""The bugs a reviewer fears, each written as one textual change to the source, with the fast tests that must
catch it. ``run_mutants.py`` applies them one at a time to a scratch copy of ``src/`` and runs those tests.

A mutant whose ``old`` text no longer occurs exactly once in its file fails the harness ("no longer applies"):
when the code moves, move the mutant with it rather than dropping it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # under src/brainalign/
    old: str
    new: str
    tests: tuple[str, ...]
    story: str  # what a reviewer would fear, in one line


MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- leakage
    Mutant(
        "pca-on-all-rows", "encoding/design.py",
        "Z = TrainPCA(k).fit(Z[train]).transform(Z)",
        "Z = TrainPCA(k).fit(Z).transform(Z)",
        ("tests/encoding/test_design_leakage.py",),
        "PCA of the feature spaces fitted on training and test rows",
    ),
    Mutant(
        "design-zscore-on-all-rows", "encoding/design.py",
        "    Z = zscore_with_train(X, train)",
        "    Z = zscore_with_train(X, np.arange(len(X)))",
        ("tests/encoding/test_design_leakage.py",),
        "features z-scored with the held-out rows' statistics too",
    ),
    Mutant(
        "partition-zscore-on-all-rows", "analysis/partition.py",
        "        Z = zscore_with_train(X, train)",
        "        Z = zscore_with_train(X, np.arange(len(X)))",
        ("tests/analysis/test_partition_leakage.py",),
        "variance partitioning z-scores X with the test rows too",
    ),
    Mutant(
        "partition-centres-y-on-all-rows", "analysis/partition.py",
        "    y_mu = Y[train].mean(0, dtype=np.float64)",
        "    y_mu = Y.mean(0, dtype=np.float64)",
        ("tests/analysis/test_partition_leakage.py",),
        "variance partitioning centres Y with the test rows too",
    ),
    Mutant(
        "responsive-voxels-from-held-out-scores", "pipeline/runner.py",
        'selections.append(responsive_voxels(res["cv_scores"], exp.analysis.responsive_fraction))',
        'selections.append(responsive_voxels(pearson_r_by_blocks(Y[test], res["P"]), exp.analysis.responsive_fraction))',
        ("tests/test_pipeline_responsive.py",),
        "responsive voxels chosen from the reference's held-out scores",
    ),
    Mutant(
        "outer-fold-trains-on-its-test-run", "encoding/splits.py",
        "return [(np.flatnonzero(runs != r), np.flatnonzero(runs == r)) for r in labels]",
        "return [(np.arange(runs.size), np.flatnonzero(runs == r)) for r in labels]",
        ("tests/encoding/test_splits.py",),
        "the held-out run is also a training run",
    ),
    # ---------------------------------------------------------------- timing
    Mutant(
        "delays-shifted-by-one-tr", "encoding/delays.py",
        "                out[start + d : stop, cols] = block[: n - d]",
        "                out[start + d + 1 : stop, cols] = block[: n - d - 1]",
        ("tests/encoding/test_delays.py",),
        "every delay shifted by one TR",
    ),
    Mutant(
        "delays-cross-run-boundaries", "encoding/delays.py",
        "    for idx in run_boundaries(runs):\n        start, stop = idx[0], idx[-1] + 1\n",
        "    for idx in [np.arange(runs.size)]:\n        start, stop = idx[0], idx[-1] + 1\n",
        ("tests/encoding/test_delays.py",),
        "delayed copies leak the end of one run into the start of the next",
    ),
    # ---------------------------------------------------------------- calibration
    Mutant(
        "permutation-ignores-autocorrelation", "pipeline/space_statistics.py",
        "        block = 1 if is_items else a.block_length  # items are exchangeable",
        "        block = 1  # items are exchangeable",
        ("tests/test_pipeline_calibration.py",),
        "block permutation with block length 1 at the pipeline's call (autocorrelation ignored)",
    ),
    Mutant(
        "fdr-by-the-wrong-procedure", "analysis/stats.py",
        'multipletests(flat[finite], alpha=q, method="fdr_bh")',
        'multipletests(flat[finite], alpha=q, method="fdr_tsbh")',
        ("tests/analysis/test_stats.py",),
        "Benjamini-Hochberg replaced by an adaptive procedure (more discoveries than BH controls)",
    ),
    # ---------------------------------------------------------------- wiring
    Mutant(
        "equal-length-prompts-swapped", "features/models.py",
        "        tick()\n    return feats, meta\n",
        "        tick()\n    if \"perceptual\" in feats and \"action\" in feats:\n"
        "        feats[\"perceptual\"], feats[\"action\"] = feats[\"action\"], feats[\"perceptual\"]\n"
        "    return feats, meta\n",
        ("tests/features/test_prompt_wiring.py",),
        "two prompts of equal token count swapped (perceptual <-> action features)",
    ),
    Mutant(
        "prompt-names-rotated", "features/hf_text.py",
        "    return {name: [tpl.format(stimulus=s) for s in stimuli] for name, tpl in prompts.items()}",
        "    names = list(prompts)\n"
        "    return {names[i - 1]: [tpl.format(stimulus=s) for s in stimuli] for i, tpl in enumerate(prompts.values())}",
        ("tests/features/test_prompt_wiring.py",),
        "prompt names rotated against their templates",
    ),
    # ---------------------------------------------------------------- steering
    Mutant(
        "steering-offset-added-at-every-token", "steering/hooks.py",
        "        if self._calls != 1:\n            return None\n        h = _first(out)\n",
        "        h = _first(out)\n        if self._calls != 1:\n            if layer in offsets:\n"
        "                d = torch.as_tensor(offsets[layer], dtype=h.dtype, device=h.device)\n"
        "                add = torch.zeros_like(h)\n                add[:, -1] = d\n"
        "                return ((h + add),) + tuple(out[1:]) if isinstance(out, tuple) else h + add\n"
        "            return None\n",
        ("tests/steering/test_steering_generate_offsets.py",),
        "steering offsets added again at every decoding step",
    ),
)
