"""brainalign.analysis: scores, ceilings, statistics, partitions, ROIs, layers, comparisons.

Plain functions over arrays that return arrays or tidy pandas tables.
"""
from brainalign.analysis.ceiling import (
    explainable_variance,
    extrapolate_ceiling,
    inter_subject_predictivity,
    ncsnr,
    ncsnr_noise_ceiling,
    normalisation_convention,
    normalise_scores,
    subject_subset_ceiling,
)
from brainalign.analysis.compare import (
    instruction_semantics_coupling,
    match_dimensionality,
    matched_dimensionality_scores,
    similarity_matrix,
)
from brainalign.analysis.group import (
    group_comparisons,
    group_layer_table,
    group_summary_table,
    group_tables,
    subject_table,
)
from brainalign.analysis.layers import best_layer, layer_curves, normalised_depth, peak_layers
from brainalign.analysis.metrics import cosine_similarity, pearson_r, r2_score
from brainalign.analysis.partition import (
    dominance_analysis,
    feature_space_vif,
    part_columns,
    partition_percentages,
    variance_partition,
)
from brainalign.analysis.roi_scores import (
    combine_roi_masks,
    roi_comparisons,
    roi_gain_tables,
    roi_prompt_table,
    roi_layer_tables,
    roi_run_scores,
)
from brainalign.analysis.rois import (
    aggregate_rois,
    best_instruction_per_roi,
    glasser_group_masks,
    glasser_groups,
    group_summary,
    hierarchy_gain,
    hierarchy_levels,
    instruction_profiles,
    load_label_image,
    load_label_table,
    prompt_gain,
    roi_masks,
)
from brainalign.analysis.stats import (
    block_indices,
    block_permutations,
    bootstrap_ci,
    fdr_bh,
    fwer_max_statistic,
    mad,
    paired_statistics,
    paired_test,
    permutation_test,
    sem,
)

__all__ = [
    "pearson_r", "r2_score", "cosine_similarity",
    "permutation_test", "block_indices", "block_permutations", "fdr_bh", "fwer_max_statistic",
    "bootstrap_ci", "paired_statistics", "paired_test", "mad", "sem",
    "subject_table", "group_summary_table", "group_comparisons", "group_layer_table", "group_tables",
    "explainable_variance", "ncsnr", "ncsnr_noise_ceiling", "inter_subject_predictivity",
    "extrapolate_ceiling", "subject_subset_ceiling", "normalise_scores", "normalisation_convention",
    "variance_partition", "part_columns", "partition_percentages", "dominance_analysis", "feature_space_vif",
    "load_label_table", "load_label_image", "roi_masks", "glasser_groups", "glasser_group_masks",
    "hierarchy_levels", "aggregate_rois", "group_summary", "prompt_gain", "hierarchy_gain",
    "instruction_profiles", "best_instruction_per_roi",
    "normalised_depth", "layer_curves", "peak_layers", "best_layer",
    "similarity_matrix", "instruction_semantics_coupling", "match_dimensionality",
    "matched_dimensionality_scores",
    "roi_run_scores", "roi_comparisons", "roi_layer_tables", "roi_gain_tables", "roi_prompt_table", "combine_roi_masks",
]
