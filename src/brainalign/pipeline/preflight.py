"""Checks and plans for dataset-format studies (``brain.format`` other than ``nifti``), before any compute.

:func:`preflight_dataset` lists every file the loaders will read that is
missing below the data root, each with its dataset accession and how to get
it (one error naming all of them, not the first); :func:`study_plan` prints
what a run will cost — forward passes, feature bytes, ridge fits, time and
memory — from the dataset's sizes (read from small index files when they
are present, else the dataset's published sizes, marked "assumed").
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainalign.config import ConfigError, Experiment, ImageStimuli, MovieClipStimuli, resolve_path
from brainalign.pipeline.checks import (WORKER_BASE_BYTES, statistics_memory, check_data_root, check_models, check_space_names,
                                        check_regressors,
                                        local_config, check_roi_names, check_rois_have_a_mask, model_shapes,
                                        preflight_nifti, with_expanded_data_root)
from brainalign._utils.disk import DiskNeed, check_disk
from brainalign.study.data import dataset_root

__all__ = ["preflight", "required_files", "preflight_dataset", "StudyPlan", "study_plan", "MODEL_SIZES", "DiskNeed",
           "disk_needs", "check_disk"]

#: (layers read with "all" = hidden layers + embeddings, hidden size) of the checkpoints the study configs name,
#: for plans made without the weights (from their published config.json files).
MODEL_SIZES = {
    "Salesforce/instructblip-vicuna-7b": (33, 4096),
    "Salesforce/instructblip-vicuna-13b": (41, 5120),
    "HuggingFaceM4/idefics-9b-instruct": (33, 4096),
    "google/vit-huge-patch14-224-in21k": (33, 1280),
    "openai/clip-vit-large-patch14": (25, 1024),
    "Qwen/Qwen2.5-VL-7B-Instruct": (29, 3584),
    "OpenGVLab/InternVL3-8B-hf": (29, 3584),
    "ByteDance-Seed/UI-TARS-7B-DPO": (29, 3584),
    "Qwen/Qwen2-VL-7B-Instruct": (29, 3584),
    "llava-hf/LLaVA-NeXT-Video-7B-hf": (33, 4096),
    "LanguageBind/Video-LLaVA-7B-hf": (33, 4096),
    "Qwen/Qwen2-Audio-7B-Instruct": (33, 4096),
    "MCG-NJU/videomae-base": (13, 768),
    "google/vivit-b-16x2-kinetics400": (13, 768),
    "facebook/wav2vec2-base-960h": (13, 768),
    "MIT/ast-finetuned-audioset-10-10-0.4593": (13, 768),
}
#: NSD: images seen per subject over 40 sessions (30,000 trials, 3 repeats) and nsdgeneral voxels at 1.8 mm
#: (subject 1; other subjects differ by a few thousand) — used only when the files are absent.
NSD_ASSUMED = dict(images_per_subject=10_000, shared=1_000, voxels=15_724)


def preflight(exp: Experiment, base_dir: Path | None = None, config_file: str | None = None,
              data_root: Path | None = None, memory_limit: int | None = None) -> dict:
    """Check that the data named by ``exp`` exist and agree with each other.

    Returns
    -------
    dict
        What was checked (n_trs, n_runs, n_voxels, shapes), for display.

    Raises
    ------
    ConfigError
        Naming the config file, the dotted field and the fix.
    """
    if exp.brain.format != "nifti":
        try:
            exp = with_expanded_data_root(exp, base_dir, data_root)  # {data_root} in ROI paths
        except ValueError as err:
            raise ConfigError(str(err), file=config_file, field="brain.data_root") from None
    if data_root is not None:
        check_data_root(exp, base_dir, data_root, config_file)
    check_rois_have_a_mask(exp, config_file)
    if exp.brain.format != "nifti":
        info = preflight_dataset(exp, base_dir, config_file, data_root)
    else:
        info = preflight_nifti(exp, base_dir, config_file, memory_limit)
    note = ridge_backend_note(exp)
    if note:
        info["notes"] = list(info.get("notes", [])) + [note]
    return info


def ridge_backend_note(exp: Experiment) -> str | None:
    """A warning when ``encoding.backend`` is 'torch_cuda' and this machine has no usable CUDA GPU, else None.

    A warning, not an error: the config may be checked on a login node and run on a GPU node."""
    if exp.encoding.backend != "torch_cuda":
        return None
    from brainalign.encoding.backend import check_backend

    try:
        check_backend("torch_cuda")
    except ValueError as err:
        return f"encoding.backend: {err} `run` stops at its first fit on this machine (fine if it is meant for a GPU node)."
    return None



def required_files(exp: Experiment, subject: str, root: Path | None = None):
    """RequiredFile entries (relative to the data root) that the config's loaders read for one subject.

    Gameplay frames are named from the plays export, so they are listed only when ``root`` holds it.
    """
    from brainalign.brain.loaders import brain_manifest, fill_subject
    from brainalign.brain.manifest import RequiredFile

    opts = fill_subject(dict(exp.brain.options), subject)
    files = list(brain_manifest(exp.brain.format, subject=subject, **opts))
    if exp.stimuli.format == "gameplay-frames":
        from brainalign.study.gameplay import gameplay_required_files

        files += gameplay_required_files(exp.stimuli, subject, opts.get("runs"), root)
    if isinstance(exp.stimuli, ImageStimuli) and not any(f.path == exp.stimuli.path for f in files):
        files.append(RequiredFile(exp.stimuli.path, "NSD", "nsd_stimuli.hdf5 of the NSD release"))
    if isinstance(exp.stimuli, MovieClipStimuli):
        files += movie_clip_files(exp, root)
    return files


def movie_clip_files(exp: Experiment, root: Path | None):
    """The clip and events files of every movie segment the study reads (segments end where the raw dataset's
    events files end, so a partial copy of Movie10 asks only for what it covers)."""
    from brainalign.brain.manifest import RequiredFile
    from brainalign.brain.movie10 import MOVIE10_SEGMENTS

    spec = exp.stimuli
    src = "courtois-neuromod/movie10 (DataLad; stimuli submodule movie10.stimuli)"
    out = []
    for movie in exp.brain.options.get("movies", ("bourne", "wolf", "life")):
        for seg in range(1, MOVIE10_SEGMENTS.get(movie, 0) + 1):
            events = f"{spec.raw_root}/task-{movie}{seg:02d}_events.tsv"
            first = Path(root or ".") / f"{spec.raw_root}/task-{movie}01_events.tsv"
            if root is not None and seg > 1 and first.is_file() and not (Path(root) / events).is_file():
                break  # a partial copy of the movie: it ends where its events files end
            out += [RequiredFile(events, "CNeuroMod movie10", src),
                    RequiredFile(f"{spec.path}/{movie}/{movie}{seg:02d}.mkv", "CNeuroMod movie10", src)]
    return out


def preflight_dataset(exp: Experiment, base_dir: Path | None, config_file: str | None,
                      data_root: Path | None = None) -> dict:
    """Check that every file of every subject exists below the data root.

    Raises
    ------
    ConfigError
        Listing every missing file with its accession and source (field ``brain.data_root``).
    """
    from brainalign.brain.manifest import missing_files

    try:
        root = dataset_root(exp.brain, base_dir, data_root)
    except ValueError as err:
        raise ConfigError(str(err), file=config_file, field="brain.data_root") from None
    if root.exists() and not root.is_dir():
        raise ConfigError(f"data root {root} is a file, not a folder; pass the dataset folder as --data-root.",
                          file=config_file, field="brain.data_root")
    # the regressor files' check names the model (before the list of every missing file)
    regressor_notes = check_regressors(exp, root, config_file) if root.is_dir() else []
    missing, seen = [], set()
    for subject in exp.brain.subject_list:
        try:
            files = required_files(exp, subject, root)
        except (KeyError, ValueError) as err:
            raise ConfigError(f"cannot list the files of subject {subject}: {err}", file=config_file,
                              field="brain.options") from None
        seen |= {f.path for f in files}
        missing += [f for f in missing_files(files, root) if f not in missing]
    n_files = len(seen)
    if missing:
        shown = "\n  ".join(f.describe(root) for f in missing[:60])
        more = f"\n  ... and {len(missing) - 60} more" if len(missing) > 60 else ""
        where = f"under {root}" if root.is_dir() else f"({root} does not exist: download the dataset there or pass " \
                                                       "--data-root)"
        raise ConfigError(f"{len(missing)} of {n_files} files are missing {where}:\n  {shown}{more}",
                          file=config_file, field="brain.data_root")
    check_roi_names(exp, base_dir, config_file, data_root=root)
    notes, layers = check_models(exp, base_dir, config_file)
    notes += regressor_notes
    check_space_names(exp, layers, config_file, model_shapes(exp, base_dir, config_file))
    unchecked = ("file contents are not read here: voxels constant within a run or non-finite are counted, and "
                 "excluded with a warning, when `run` loads each subject, before any model is read")
    return dict(notes=notes, unchecked=unchecked, n_subjects=len(exp.brain.subject_list), n_files=n_files,
                data_root=str(root))


#: ridge throughput assumed per CPU core (FLOP/s): 12 % of the single-core float32 GEMM peak measured on the
#: project's machine class (84 GFLOP/s, shared/reference/performance.md §4.1), a conservative figure
RIDGE_CORE_FLOPS = 10e9
#: ridge throughput assumed per GPU with ``encoding.backend: torch_cuda`` (FLOP/s): about half the float32
#: (non-tensor-core) peak of an A100 (19.5 TFLOP/s) and 15 % of an H100 SXM's (67 TFLOP/s), NVIDIA's datasheets.
#: The solver's time is large float32 GEMMs (chunk x rank @ rank x n_alphas·n_val) and the host-device copies are
#: ~1/20 of it (12 kB per voxel against ~140 MFLOP per voxel). Not measured: no GPU was available when this was
#: written; benchmarks/bench_ridge.py --backend torch_cuda measures it.
RIDGE_GPU_FLOPS = 10e12


@dataclass
class StudyPlan:
    """What a run will do and cost (see :func:`study_plan`)."""

    rows: list[dict] = field(default_factory=list)  # one per model: forward passes, feature bytes
    n_subjects: int = 0
    n_stimuli: int = 0
    n_rows: int = 0
    n_voxels: int = 0
    n_spaces: int = 0
    n_fits: int = 0
    feature_bytes: int = 0
    forward_passes: int = 0
    ridge_seconds: float = 0.0  # on one CPU core at RIDGE_CORE_FLOPS
    ridge_backend: str = "numpy"
    memory_bytes: int = 0
    prediction_bytes: int = 0  # one space's held-out predictions (the voxel statistics keep one space at a time)
    predictions_on_disk: bool = False
    statistics_bytes: int = 0  # what the voxel statistics keep of every space for the tables
    n_all_spaces: int = 0  # n_spaces + baselines and control spaces
    feature_space_bytes: int = 0  # the row-wise features held at once: one space's (a partition's spaces together)
    stimulus_feature_bytes: int = 0  # per subject, the frame baselines' (n_stimuli, 1, dim) features held in RAM
    all_feature_space_bytes: int = 0  # every model space's row-wise features (what building them all would hold)
    scratch_bytes: int = 0  # TMPDIR + the run's work folder (encoding checkpoints), per subject
    feature_gpu_hours: float = 0.0  # model forward passes on GPUs (brainalign.features.throughput.RULE)
    assumed: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"subjects: {self.n_subjects}; per subject {self.n_rows} rows × {self.n_voxels} voxels, "
                 f"{self.n_stimuli} stimuli"]
        for r in self.rows:
            lines.append(f"  {r['model']}: {r['prompts']} prompt(s) × {r['layers']} layers × {r['hidden']} dims; "
                         f"{r['forward_passes']:,} forward passes, features {r['feature_bytes'] / 2**30:.2f} GiB")
            if "gpu" in r:
                lines.append(f"    on GPU: {r['gpu']}")
        if any("gpu" in r for r in self.rows):
            from brainalign.features.throughput import RULE

            lines.append(f"feature extraction: about {self.feature_gpu_hours:,.1f} GPU-hours in all, assuming {RULE}")
        ridge = f"about {self.ridge_seconds / 3600:.1f} CPU-core-hours of ridge at {RIDGE_CORE_FLOPS / 1e9:.0f} GFLOP/s"
        chosen = "" if self.ridge_backend == "torch_cuda" else " (set it to run there)"
        ridge += (f", or {self.ridge_gpu_seconds / 3600:.2f} GPU-hours with encoding.backend torch_cuda{chosen} at "
                  f"{RIDGE_GPU_FLOPS / 1e12:.0f} TFLOP/s per GPU (a rule of thumb, unmeasured: docs/choices.md)")
        lines.append(f"feature spaces: {self.n_spaces} per subject; ridge fits: {self.n_fits:,} ({ridge})")
        lines.append(f"forward passes: {self.forward_passes:,}; features: {self.feature_bytes / 2**30:.1f} GiB; "
                     f"peak memory about {self.memory_bytes / 2**30:.1f} GiB per subject, "
                     f"{self.feature_space_bytes / 2**30:.1f} GiB of it row-wise features (made one space at a "
                     "time from the memory-mapped feature cache; a partition's spaces together; every model "
                     f"space's at once would be {self.all_feature_space_bytes / 2**30:.1f} GiB) and "
                     f"{self.stimulus_feature_bytes / 2**30:.1f} GiB the stimulus features of frame baselines "
                     "(in memory; models' stay in the feature cache, read part by part)")
        where = "memory-mapped in TMPDIR (above encoding.predictions_in_memory_gib)" if self.predictions_on_disk \
            else "in memory (counted above)"
        lines.append(f"held-out predictions: {self.prediction_bytes / 2**30:.1f} GiB, one space at a time (the voxel "
                     f"statistics of each of the {self.n_all_spaces} spaces are computed as its folds finish), {where};"
                     f" the statistics keep {self.statistics_bytes / 2**30:.1f} GiB for the tables (counted above)")
        lines.append(f"scratch disk per subject: about {self.scratch_bytes / 2**30:.1f} GiB (TMPDIR and the encoding "
                     "checkpoints beside --out; the feature cache and the results are not scratch)")
        if self.assumed:
            lines.append("assumed (files absent): " + "; ".join(self.assumed))
        return "\n".join(lines)

    @property
    def ridge_gpu_seconds(self) -> float:
        """The ridge work on one GPU at :data:`RIDGE_GPU_FLOPS`."""
        return self.ridge_seconds * RIDGE_CORE_FLOPS / RIDGE_GPU_FLOPS

    def as_dict(self) -> dict:
        return json.loads(json.dumps(dict(self.__dict__, ridge_gpu_seconds=self.ridge_gpu_seconds), default=float))


def _nsd_sizes(exp: Experiment, root: Path | None, subject: str, assumed: list[str]) -> tuple[int, int, int, int]:
    """(rows, stimuli, voxels) of one NSD subject and the images of all subjects together, from
    nsd_expdesign.mat and the mask when present."""
    from brainalign.brain.nsd import NSDLayout, read_expdesign, trial_table

    sessions = exp.brain.options.get("sessions", [])
    subjects = exp.brain.subject_list
    try:
        layout = NSDLayout(root, subject, exp.brain.options.get("resolution", "func1pt8mm"))
        design = read_expdesign(layout.require(layout.expdesign))
        trials = trial_table(design, layout.subject, sessions)
        n_images = int(trials["nsd_id"].nunique())
        union = set()
        for s in subjects:
            union |= set(trial_table(design, NSDLayout(root, s).subject, sessions)["nsd_id"].tolist())
        n_unique = len(union)
    except (FileNotFoundError, OSError, ValueError, TypeError):
        n_images = int(round(NSD_ASSUMED["images_per_subject"] * min(1.0, len(sessions) / 40)))
        n_unique = n_images * len(subjects) - (len(subjects) - 1) * NSD_ASSUMED["shared"]
        assumed.append(f"{n_images} images per subject (NSD, {len(sessions)} sessions), {NSD_ASSUMED['shared']} "
                       "shared")
    try:
        import nibabel as nib

        mask = exp.brain.options.get("mask", "nsdgeneral")
        path = layout.require(layout.roi(mask)) if mask else None
        n_vox = int((np.asarray(nib.load(path).dataobj) > 0).sum()) if path else 0
    except (FileNotFoundError, OSError, ValueError, TypeError, NameError):
        n_vox = NSD_ASSUMED["voxels"]
        assumed.append(f"{n_vox} nsdgeneral voxels")
    rows = n_images if exp.brain.options.get("average_repeats", True) else n_images * 3
    return rows, n_images, n_vox, n_unique


def _nifti_sizes(exp: Experiment, base_dir: Path | None) -> tuple[int, int, int]:
    """(TRs, mask voxels, runs) of a ``format: nifti`` study, from the BOLD header, the mask and the events table."""
    import nibabel as nib

    from brainalign.pipeline.checks import existing_file
    from brainalign.stimuli.events import read_tr_labels

    bold = existing_file(None, "brain.bold", exp.brain.bold, base_dir)
    mask = existing_file(None, "brain.mask", exp.brain.mask, base_dir)
    events = existing_file(None, "stimuli.events", exp.stimuli.events, base_dir)
    try:
        _, runs = read_tr_labels(events)
    except ValueError as err:
        raise ConfigError(str(err), field="stimuli.events") from None
    n_vox = int((np.asarray(nib.load(mask).dataobj) != 0).sum())
    return int(nib.load(bold).shape[3]), n_vox, len(np.unique(runs))


def _movie10_sizes(exp: Experiment, assumed: list[str]) -> tuple[int, int]:
    """(TRs, vertices) of one Movie10 subject: the truncation counts and fsaverage6 (or the configured sizes)."""
    from brainalign.brain.movie10 import MOVIE10_TRUNCATION

    opts = exp.brain.options
    movies = opts.get("movies", ("bourne", "wolf", "life"))
    trunc = opts.get("truncate", MOVIE10_TRUNCATION) or {}
    missing = [m for m in movies if m not in trunc]
    if missing:
        assumed.append(f"no truncation for {missing}: 4,000 TRs each")
    n_rows = sum(int(trunc.get(m, 4000)) for m in movies)
    return n_rows, int(sum(opts.get("n_vertices", (40962, 40962))))


def _model_size(spec, base_dir: Path | None, assumed: list[str]) -> tuple[int, int]:
    from brainalign.features.base import resolve_layers

    n, hidden = None, None
    cfg = local_config(spec, 0, base_dir, None)  # builtin models too
    if cfg:
        for sub in (cfg.get("text_config"), cfg.get("vision_config"), cfg):  # the first that states both
            if isinstance(sub, dict) and isinstance(sub.get("num_hidden_layers"), int) \
                    and isinstance(sub.get("hidden_size"), int):
                n, hidden = sub["num_hidden_layers"] + 1, sub["hidden_size"]
                break
    if n is None and spec.source in MODEL_SIZES:
        n, hidden = MODEL_SIZES[spec.source]
    if n is None:
        n, hidden = 33, 4096
        assumed.append(f"{spec.name}: 32 layers × 4096 dims (config not local)")
    layers = len(resolve_layers(spec.layers, n - 1)) if spec.layers != "all" else n
    return layers, int(hidden)


def study_plan(exp: Experiment, base_dir: Path | None = None, data_root: Path | None = None) -> StudyPlan:
    """Forward passes, feature bytes, ridge fits, time and memory of a run, without loading data or models."""

    plan = StudyPlan(n_subjects=len(exp.brain.subject_list), ridge_backend=exp.encoding.backend)
    root = None  # the dataset folder, where a branch below knows it
    if exp.brain.format == "nsd":
        try:
            root = dataset_root(exp.brain, base_dir, data_root)
        except ValueError:
            root = None
        plan.n_rows, plan.n_stimuli, plan.n_voxels, unique_stimuli = _nsd_sizes(
            exp, root, exp.brain.subject_list[0], plan.assumed)
        n_folds = 1 if exp.encoding.outer_cv == "split" else exp.encoding.item_folds
        k_inner = exp.encoding.item_folds
    elif exp.brain.format == "movie10":
        plan.n_rows, plan.n_voxels = _movie10_sizes(exp, plan.assumed)
        plan.n_stimuli = unique_stimuli = plan.n_rows  # one clip per TR; every subject watched the same movies
        n_runs = len(exp.brain.options.get("movies", ("bourne", "wolf", "life")))
        n_folds = n_runs if exp.encoding.outer_cv == "leave-one-run-out" else 1
        k_inner = n_runs - 1  # inner leave-one-run-out over the training runs
    elif exp.stimuli.format == "gameplay-frames":
        from brainalign.study.gameplay import gameplay_plan_sizes

        try:
            root = dataset_root(exp.brain, base_dir, data_root)
        except ValueError:
            root = None
        plan.n_rows, plan.n_stimuli, plan.n_voxels, n_runs = gameplay_plan_sizes(exp.brain, exp.stimuli, root, plan.assumed)
        unique_stimuli = plan.n_stimuli * plan.n_subjects  # every subject played (and sees) its own frames
        n_test = 1 if exp.encoding.outer_cv == "leave-one-run-out" else len(exp.encoding.outer_cv)
        n_folds = n_runs if exp.encoding.outer_cv == "leave-one-run-out" else 1
        k_inner = n_runs - n_test  # inner leave-one-run-out over the training runs
    elif exp.brain.format == "nifti":
        plan.n_rows, plan.n_voxels, n_runs = _nifti_sizes(exp, base_dir)
        plan.n_stimuli = unique_stimuli = len(exp.stimuli.labels)  # every named label is a stimulus
        n_test = 1 if exp.encoding.outer_cv == "leave-one-run-out" else len(exp.encoding.outer_cv)
        n_folds = n_runs if exp.encoding.outer_cv == "leave-one-run-out" else 1
        k_inner = n_runs - n_test
    else:
        raise ConfigError(f"--dry-run plans are written for brain.format nsd, movie10 and gameplay-frames stimuli so "
                         f"far, not '{exp.brain.format}' with '{exp.stimuli.format}'.")
    for spec in exp.models:
        if spec.kind == "baseline":
            layers, hidden = 1, baseline_dim(spec, root, plan.assumed)
        else:
            layers, hidden = _model_size(spec, base_dir, plan.assumed)
        n_prompts = len(exp.prompts_of(spec))
        passes = unique_stimuli * n_prompts
        fbytes = unique_stimuli * n_prompts * layers * hidden * 4
        plan.rows.append(dict(model=spec.name, prompts=n_prompts, layers=layers, hidden=hidden,
                              forward_passes=passes, feature_bytes=fbytes))
        if spec.kind != "baseline":  # frame baselines are computed on the CPU
            from brainalign.features.throughput import TOKENS_PER_PASS, forward_cost, model_params

            params = model_params(spec.source, local_config(spec, 0, base_dir, None), plan.assumed)
            cost = forward_cost(params, TOKENS_PER_PASS[spec.kind], passes, spec.dtype)
            plan.rows[-1].update(params=cost.params, passes_per_second=cost.passes_per_second, n_gpus=cost.n_gpus,
                                 gpu_hours=cost.gpu_hours, gpu=cost.describe())
            plan.feature_gpu_hours += cost.gpu_hours
        plan.forward_passes += passes
        plan.feature_bytes += fbytes
        spaces = n_prompts * layers
        if spec.kind == "baseline":  # frame baselines are computed in memory; text and multimodal models'
            # features are read part by part from the cache (features.store.StackedEntries)
            plan.stimulus_feature_bytes += plan.n_stimuli * n_prompts * layers * hidden * 4
        plan.all_feature_space_bytes += spaces * plan.n_rows * hidden * 4  # float32 (n_rows, hidden) per space
        plan.n_spaces += spaces
        p = min(hidden, exp.timing.pca_components or hidden) * len(exp.timing.delays if not exp.is_items else [0])
        n = plan.n_rows
        # one fit: SVD of each inner-fold design (n·p²) + alpha path on every voxel (n_alphas·p·v) + prediction
        flops = (k_inner + 1) * (n * p * p + len(exp.encoding.alphas) * p * plan.n_voxels + n * p * plan.n_voxels)
        plan.ridge_seconds += plan.n_subjects * spaces * n_folds * flops / RIDGE_CORE_FLOPS
    plan.n_fits = plan.n_subjects * plan.n_spaces * n_folds
    max_p = max((r["hidden"] for r in plan.rows), default=0)
    plan.n_all_spaces = plan.n_spaces + _extra_spaces(exp)
    outer = exp.encoding.outer_cv
    n_held_runs = len(outer) if isinstance(outer, list) else n_folds
    # while loading: the data in float64, twice while cleaning; while fitting: the float32 data, one design matrix
    # with its z-scored copy, and the voxel statistics (pipeline.checks.statistics_memory): one space's held-out
    # predictions (memory-mapped past encoding.predictions_in_memory_gib) and what every space keeps for the tables
    stats = statistics_memory(exp, plan.n_rows, plan.n_voxels, plan.n_all_spaces, n_folds, n_held_runs)
    plan.prediction_bytes = stats["buffer"]
    plan.statistics_bytes = stats["kept"]
    plan.predictions_on_disk = plan.prediction_bytes > exp.encoding.predictions_in_memory_gib * 2**30
    # the row-wise features: timing.spaces.build_feature_spaces makes a space's (n_rows, hidden) float32 features from
    # one layer of the memory-mapped cache (gathered: n_stimuli × hidden) when its fits start and drops them after,
    # so one space's are held (a partition's spaces together; on dask workers every space's, shipped at once)
    at_once = max([1] + [len(p.spaces) for p in exp.analysis.partitions])
    plan.feature_space_bytes = at_once * (plan.n_rows + plan.n_stimuli) * max_p * 4
    if exp.encoding.n_workers > 1 or exp.encoding.scheduler is not None:
        plan.feature_space_bytes = max(plan.feature_space_bytes, plan.all_feature_space_bytes)
    plan.memory_bytes = int(plan.feature_space_bytes + plan.stimulus_feature_bytes + max(
        plan.n_rows * plan.n_voxels * 8 * 2,
        plan.n_rows * plan.n_voxels * 4 + plan.n_rows * max_p * 8 * 3 + stats["work"] + stats["kept"]
        + (0 if plan.predictions_on_disk else plan.prediction_bytes)))
    plan.scratch_bytes = int((plan.prediction_bytes if plan.predictions_on_disk else 0)
                             + checkpoint_bytes(exp, plan, n_folds))
    if exp.encoding.n_workers > 1 and exp.encoding.scheduler is None:  # each LocalCluster worker: see estimate_memory

        plan.memory_bytes += exp.encoding.n_workers * int(
            WORKER_BASE_BYTES + plan.n_rows * plan.n_voxels * 4 + plan.n_rows * max_p * 8 * 3)
    return plan


#: columns assumed for a ``bson_regressors`` baseline whose file is absent (--dry-run): the DDQN's 6 Q-values
#: would be fewer; a penultimate layer more (the dataset does not document the regressors)
ASSUMED_REGRESSOR_COLUMNS = 64


def baseline_dim(spec, root: Path | None = None, assumed: list[str] | None = None) -> int:
    """Feature dimension of a ``kind: baseline`` model from its options (for ``--dry-run``); a
    ``bson_regressors`` file is read when it is under ``root``, else :data:`ASSUMED_REGRESSOR_COLUMNS` is noted in
    ``assumed``."""
    from brainalign.features.baselines import motion_energy_channels

    o = spec.options
    if spec.baseline == "bson_regressors":
        from brainalign.features.bson_reader import field_rows
        from brainalign.features.rl_regressors import regressor_documents, regressor_path

        if root is not None:
            try:
                docs = regressor_documents(regressor_path(root, o["path"]))
                return int(field_rows(docs[0], o["field"]).shape[1])
            except (OSError, ValueError, IndexError):
                pass
        if assumed is not None:
            assumed.append(f"{ASSUMED_REGRESSOR_COLUMNS} regressor columns of {spec.name}")
        return ASSUMED_REGRESSOR_COLUMNS
    if spec.baseline == "pixels":
        h, w = o.get("size", (16, 16))
        return int(h) * int(w)
    if spec.baseline == "random":
        return int(o.get("dim", 256))
    if spec.baseline == "motion_energy":
        size = tuple(o.get("size", (32, 32)))
        tfs = o.get("temporal_freqs", (0.0, 1.0, 2.0))  # estimated at run time: 3 frequencies by default
        return len(motion_energy_channels(size, o.get("spatial_freqs", (2.0, 4.0, 8.0)), tfs, o.get("n_directions", 8)))
    return 512  # rl_agent: the Nature-DQN penultimate layer


# --------------------------------------------------------------------------- disk
def disk_needs(exp: Experiment, plan: StudyPlan, out: Path | None = None, cache: Path | None = None) -> list[DiskNeed]:
    """Where a run writes and about how much, from the dry-run's plan (:func:`study_plan`).

    - the feature cache (``--cache``): the plan's feature bytes (entries already cached need no new space);
    - ``TMPDIR``: one space's held-out predictions when they are memory-mapped
      (above ``encoding.predictions_in_memory_gib``; the voxel statistics keep one space at a time);
    - beside ``--out``: the encoding checkpoints of every subject (each held-out prediction and inner-CV score,
      kept until the run ends) and the results tables.

    Counts the baselines and control spaces too (the plan counts model spaces only).
    """
    from brainalign.features.store import FeatureStore

    spaces = plan.n_spaces + _extra_spaces(exp)
    folds = max(1, plan.n_fits // max(1, plan.n_subjects * plan.n_spaces)) if plan.n_spaces else 1
    preds = plan.n_rows * plan.n_voxels * 4  # float32, one space at a time (per subject)
    results = spaces * plan.n_voxels * 64 + len(exp.analysis.partitions) * plan.n_voxels * 16 * 8
    needs = [DiskNeed(FeatureStore(cache).root, plan.feature_bytes, "model features (feature cache)", "--cache")]
    if preds > exp.encoding.predictions_in_memory_gib * 2**30:
        import tempfile

        needs.append(DiskNeed(Path(tempfile.gettempdir()), preds, "held-out predictions of one space, "
                              "memory-mapped", "TMPDIR"))
    if out is not None:
        n = plan.n_subjects
        needs.append(DiskNeed(Path(out).absolute().parent, n * (checkpoint_bytes(exp, plan, folds) + results),
                              f"encoding checkpoints and results of {n} subject(s) (beside --out {out})", "--out"))
    return needs


def _extra_spaces(exp: Experiment) -> int:
    """Feature spaces a run fits besides the models' (the plan counts model spaces only): baselines, controls."""
    from brainalign.pipeline.controls import control_plan

    n_extra = len(exp.analysis.baselines)
    for m in exp.models:
        cp = control_plan(exp, m, None, ())
        if cp is not None:
            n_extra += len(cp.space_names())
    return n_extra


def checkpoint_bytes(exp: Experiment, plan: StudyPlan, n_folds: int) -> int:
    """Bytes of one subject's encoding checkpoints (the run's work folder beside ``--out``, deleted when the run
    completes). The (space, fold) fits of the space being fitted keep its held-out predictions (float32) and
    inner-CV scores (float64, per alpha), those of the next ones too while worker processes run ahead; a finished
    space keeps only its statistics (``pipeline.space_statistics``: r, p, q, FWER p, decisions and the chosen
    alphas per voxel, its per-run r with ROIs); every (partition, fold) keeps its per-voxel parts."""
    spaces = plan.n_spaces + _extra_spaces(exp)
    in_flight = 1 + (exp.encoding.n_workers if exp.encoding.n_workers > 1 or exp.encoding.scheduler else 0)
    fits = in_flight * (plan.n_rows * plan.n_voxels * 4 + n_folds * len(exp.encoding.alphas) * plan.n_voxels * 8)
    per_space = plan.n_voxels * (4 * 8 + 2 + 8 * n_folds + (8 * n_folds if exp.brain.rois is not None else 0))
    partitions = len(exp.analysis.partitions) * n_folds * plan.n_voxels * 16 * 8
    return int(min(spaces, in_flight) / in_flight * fits + spaces * per_space + partitions)
