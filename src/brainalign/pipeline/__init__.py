"""brainalign.pipeline: run an experiment, data → features → TR grid → cross-validated ridge → scores → tables.

The top library layer: the only one that takes the whole :class:`~brainalign.config.Experiment` apart and hands
each stage its part. ``runner`` holds the stages and :func:`run_study`; ``extras``, ``ceilings``, ``partitions``,
``controls`` and ``group`` the optional analyses; ``workers`` and ``checkpoint`` the dask fits and resumable runs;
``checks`` and ``preflight`` the checks that run before any compute. The names below are the public entry points.
"""
from brainalign.pipeline.runner import (FeatureSpace, StudyData, build_feature_spaces, cross_validate,
                                        cross_validate_statistics, load_data,
                                        load_roi_masks, make_extractor, model_features, partition_spaces,
                                        prepare_design, responsive_voxels, roi_tables, run, run_study, run_subject,
                                        voxel_scores)

__all__ = ["StudyData", "FeatureSpace", "load_data", "model_features", "build_feature_spaces", "cross_validate",
           "cross_validate_statistics", "run",
           "run_subject", "run_study", "make_extractor", "load_roi_masks", "roi_tables",
           # used as brainalign.pipeline.<name> by tests and benchmarks before the split
           "partition_spaces", "prepare_design", "responsive_voxels", "voxel_scores"]
