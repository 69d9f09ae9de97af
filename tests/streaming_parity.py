"""The voxel statistics and ROI run scores computed as before streaming (every space's held-out predictions kept,
then the statistics over all of them), to assert that :func:`brainalign.pipeline.cross_validate_statistics`, which
keeps one space at a time, gives the very same tables."""
from __future__ import annotations

import numpy as np
import pandas as pd

from brainalign.analysis.metrics import pearson_r
from brainalign.analysis.roi_scores import roi_run_scores
from brainalign.analysis.stats import fdr_bh, permutation_test
from brainalign.pipeline import runner as pipeline


def tables_kept_whole(exp, data, spaces, masks=None):
    """(run_scores, voxel table, best_alphas, roi scores or None) the pre-streaming way: ``cross_validate`` keeps
    every space's predictions, then the statistics run over each full (n_rows, n_voxels) array, written out here
    (not through the pipeline's per-space helper) from the analysis functions."""
    a = exp.analysis
    Y, runs = data.recording.data, data.recording.runs
    run_scores, preds, best_alphas = pipeline.cross_validate(exp, data, spaces)
    frames = []
    for name, P in preds.items():
        held = np.isfinite(P).all(1)
        if a.n_permutations > 0:
            block = 1 if exp.is_items else a.block_length
            r, p, *fwer = permutation_test(Y[held], P[held], runs[held], block_length=block,
                                           n_permutations=a.n_permutations, metric="r", seed=exp.seed,
                                           return_fwer=a.fwer_alpha is not None)
            significant, q = fdr_bh(p, a.fdr_q)
        else:
            r, fwer = pearson_r(Y[held], P[held]), []
            p = q = np.full(r.size, np.nan)
            significant = np.zeros(r.size, dtype=bool)
        frame = pd.DataFrame(dict(space=name, voxel=np.arange(r.size), r=r, p=p, q=q, significant=significant))
        if a.fwer_alpha is not None:
            frame["p_fwer"] = fwer[0] if fwer else np.nan
            frame["significant_fwer"] = (frame["p_fwer"] < a.fwer_alpha).to_numpy()
        frames.append(frame)
    how = exp.brain.rois.how if exp.brain.rois is not None else "mean"
    roi = roi_run_scores(Y, runs, preds, masks, how) if masks else None
    preds.close()
    return run_scores, pd.concat(frames, ignore_index=True), best_alphas, roi


def assert_streamed_equals_kept_whole(exp, data, spaces, masks=None) -> pd.DataFrame:
    """Bit-for-bit equality of every table (and the ROI voxel r) of both ways; returns the streamed voxel table."""
    old = tables_kept_whole(exp, data, spaces, masks)
    new = pipeline.cross_validate_statistics(exp, data, spaces, masks=masks)
    pd.testing.assert_frame_equal(new[0], old[0], check_exact=True)
    pd.testing.assert_frame_equal(new[1], old[1], check_exact=True)
    assert list(new[2]) == list(old[2])
    for name in old[2]:
        np.testing.assert_array_equal(new[2][name], old[2][name])
    assert (new[3] is None) == (old[3] is None)
    if old[3] is not None:
        pd.testing.assert_frame_equal(new[3][0], old[3][0], check_exact=True)
        assert new[3][1].keys() == old[3][1].keys()
        for name, by_run in old[3][1].items():
            assert by_run.keys() == new[3][1][name].keys()
            for run, r in by_run.items():
                np.testing.assert_array_equal(new[3][1][name][run], r)
    return new[1]


def assert_study_streamed_equals_kept_whole(config, sets, data_root, cache, subject, n_spaces: int = 4):
    """The equality on one subject of a shipped config run on a miniature study (``--models tiny``, ``--set sets``),
    with the features its CLI run cached in ``cache``: the reference and the next ``n_spaces - 1`` spaces."""
    from brainalign.cli.main import _load
    from brainalign.features.store import FeatureStore
    from brainalign.pipeline.checks import with_expanded_data_root
    from brainalign.timing.spaces import build_feature_spaces, resolved_names

    base = config.parent
    exp = with_expanded_data_root(_load(config, sets, "tiny", cache), base, data_root)
    data = pipeline.load_data(exp, base, subject, data_root)
    store = FeatureStore(cache)
    feats, meta = pipeline.model_features(exp, data, store, base_dir=base)
    assert store.misses == 0  # the CLI run's features: this test fits and scores only
    spaces = build_feature_spaces(data, feats, meta, exp.models, exp.analysis.baselines, exp.seed)
    exp = exp.model_copy(update=dict(analysis=resolved_names(exp.analysis, spaces)))
    ref = [sp for sp in spaces if sp.name == exp.analysis.reference]
    keep = ref + [sp for sp in spaces if sp.name != exp.analysis.reference][: n_spaces - 1]
    return assert_streamed_equals_kept_whole(exp, data, keep, pipeline.load_roi_masks(exp, data.recording, base))
