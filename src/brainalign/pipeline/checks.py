"""Fast checks of an experiment before any compute: files, shapes, timing.

Reads only headers and small tables; never loads a model or fits anything.
"""
from __future__ import annotations

from pathlib import Path

import json
import os
import warnings

import nibabel as nib
import numpy as np

from brainalign.config import BUILTIN_PREFIX, ConfigError, Experiment, resolve_path
from brainalign.stimuli.events import read_tr_labels
from brainalign.study.data import expand_data_root

__all__ = ["with_expanded_data_root", "preflight_nifti", "check_data_root", "check_models", "check_space_names", "check_rois", "estimate_memory"]


def with_expanded_data_root(exp: Experiment, base_dir: Path | None, data_root: Path | None = None) -> Experiment:
    """``exp`` whose ``brain`` section has ``{data_root}`` in its ROI paths expanded
    (:func:`brainalign.study.data.expand_data_root`); ``exp`` itself when nothing changes."""
    brain = expand_data_root(exp.brain, base_dir, data_root)
    return exp if brain is exp.brain else exp.model_copy(update=dict(brain=brain))


def _existing(exp_file: str | None, field: str, value: str, base_dir: Path | None) -> Path:
    p = resolve_path(value, base_dir)
    if not p.is_file():
        raise ConfigError(f"{p} does not exist or is not a file; fix the path.", file=exp_file, field=field)
    return p


def check_data_root(exp: Experiment, base_dir: Path | None, data_root: Path, config_file: str | None = None) -> None:
    """Refuse config paths that leave ``data_root`` through ``..`` or a symbolic link.

    Package data (``builtin:``) and hub model ids are exempt; local model folders are checked.

    Raises
    ------
    ConfigError
        Naming the field, the resolved path and the root.
    """
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise ConfigError(f"--data-root {root} is not a folder; give the folder that holds the study's data.",
                          file=config_file, field="--data-root")
    real_root = Path(os.path.realpath(root.absolute()))
    fields = [("brain.bold", exp.brain.bold), ("brain.mask", exp.brain.mask),
              ("stimuli.events", getattr(exp.stimuli, "events", None))]
    fields = [(f, v) for f, v in fields if v is not None]
    if exp.brain.rois is not None:
        fields.append(("brain.rois.image", exp.brain.rois.image))
        if isinstance(exp.brain.rois.table, str):
            fields.append(("brain.rois.table", exp.brain.rois.table))
    for i, m in enumerate(exp.models):
        if m.kind == "baseline":  # no weights; its data paths are checked with the dataset
            continue
        local = resolve_path(m.source, base_dir)
        if (local / "BRAINALIGN_TINY_MODEL").is_file():  # a --models tiny stand-in, built in the cache: not data
            continue
        if not m.source.startswith(BUILTIN_PREFIX) and (local.exists() or m.source.startswith((".", "/", "~"))):
            fields.append((f"models.{i}.source", m.source))
    for field, value in fields:
        if value.startswith(BUILTIN_PREFIX):
            continue
        p = resolve_path(value, base_dir).absolute()
        lexical = Path(os.path.normpath(p))
        real = Path(os.path.realpath(p))
        if not lexical.is_relative_to(real_root) and not lexical.is_relative_to(root.absolute()):
            raise ConfigError(f"{value!r} resolves to {lexical}, outside the data root {real_root} (via '..' or an "
                              "absolute path); move the file under the data root or fix the path.",
                              file=config_file, field=field)
        if not real.is_relative_to(real_root):
            raise ConfigError(f"{value!r} points through a symbolic link to {real}, outside the data root "
                              f"{real_root}; copy the file under the data root or fix the link.",
                              file=config_file, field=field)


def check_models(exp: Experiment, base_dir: Path | None = None,
                 config_file: str | None = None) -> tuple[list[str], dict[str, list[int]]]:
    """Checks of the models that need no weights: layers within depth and PCA size within the hidden size when
    the model's config.json is local.

    Returns
    -------
    notes : list of str
        Warnings to show (e.g. ``trust_remote_code``).
    layers : dict model name → list of layer indices read (only models whose config is local)
    """
    from brainalign.features.base import resolve_layers

    notes, depth = [], {}
    for i, m in enumerate(exp.models):
        if m.trust_remote_code:
            msg = (f"models.{i} ('{m.name}') sets trust_remote_code: true; Python code shipped with {m.source} will "
                   "run with your permissions. Remove it unless you have read that code.")
            warnings.warn(msg, UserWarning, stacklevel=2)
            notes.append(msg)
        if m.kind == "baseline":  # frame features: no config.json; depth 1 (layer 0)
            depth[m.name] = [0]
            continue
        if m.source.startswith(BUILTIN_PREFIX):
            try:
                from brainalign.features.hf_text import builtin_model_path

                folder = Path(builtin_model_path(m.source[len(BUILTIN_PREFIX):])[0])
            except Exception as err:  # unknown builtin name, package missing
                raise ConfigError(f"{m.source!r} is not available: {err}", file=config_file,
                                  field=f"models.{i}.source") from None
        else:
            folder = resolve_path(m.source, base_dir)
        cfg_file = folder / "config.json"
        if not cfg_file.is_file():
            continue
        try:
            cfg = json.loads(cfg_file.read_text())
        except ValueError:
            continue
        n_layers, dim = cfg.get("num_hidden_layers"), cfg.get("hidden_size")
        if isinstance(n_layers, int):
            try:
                depth[m.name] = resolve_layers(m.layers, n_layers)
            except ValueError as err:
                raise ConfigError(f"{err} ({m.source} has {n_layers} blocks: valid layers are 0..{n_layers}, "
                                  f"or -{n_layers + 1}..-1, or depths in [0, 1]).", file=config_file,
                                  field=f"models.{i}.layers") from None
        k = exp.timing.pca_components
        if isinstance(dim, int) and k is not None and k > dim:
            raise ConfigError(f"pca_components={k} exceeds the {dim} features of model '{m.name}'; use at most "
                              f"{dim} (or null to keep all).", file=config_file, field="timing.pca_components")
    return notes, depth


def check_space_names(exp: Experiment, layers: dict[str, list[int]], config_file: str | None = None) -> None:
    """``analysis.reference`` and ``analysis.partitions[*].spaces`` must name feature spaces the run will fit
    (``<model>/<prompt>/L<layer>`` or ``baseline/<name>``); checked before any compute.

    ``layers`` (model name → layer indices) comes from :func:`check_models`; models missing from it (hub models
    not checked offline) only have their model and prompt parts checked.
    """
    exact = {f"baseline/{b}" for b in exp.analysis.baselines}
    prefixes, aliases = set(), set()
    for m in exp.models:
        for p in exp.prompts_of(m):
            if m.name in layers:
                exact |= {f"{m.name}/{p}/L{k}" for k in layers[m.name]}
                aliases |= {f"{m.name}/{p}/L-{k}" for k in range(1, len(layers[m.name]) + 1)}  # L-1 = last read
            else:
                prefixes.add(f"{m.name}/{p}/L")

    # controls (analysis.controls) add spaces named '<model>/<control prompt>/L<layer>': only the model is checked
    loose = {f"{m.name}/" for m in exp.models} if getattr(exp.analysis, "controls", None) is not None else set()

    def known(name: str) -> bool:
        return (name in exact or name in aliases or any(name.startswith(px) and name[len(px):].lstrip("-").isdigit() for px in prefixes)
                or any(name.startswith(px) for px in loose))

    choices = sorted(exact) + sorted(f"{px}<layer>" for px in prefixes)
    wanted = [("analysis.reference", exp.analysis.reference)]
    wanted += [(f"analysis.partitions.{i}.spaces", n) for i, spec in enumerate(exp.analysis.partitions)
               for n in spec.spaces]
    for field, name in wanted:
        if not known(name):
            import difflib

            hint = difflib.get_close_matches(name, sorted(exact), n=1)
            fix = f"did you mean '{hint[0]}'? " if hint else ""
            raise ConfigError(f"'{name}' is not a feature space of this run; {fix}choose one of {choices}.",
                              file=config_file, field=field)


def estimate_memory(exp: Experiment, n_trs: int, n_voxels: int, n_layers: dict[str, int] | None = None) -> int:
    """Bytes the pipeline holds at its peak (rough upper bound): the cleaned data (float64), one float32
    held-out prediction per feature space, and the ridge work arrays of one fit; with ``encoding.n_workers`` > 1,
    for every worker process also its base footprint, a copy of the data and one fit's work arrays.

    ``n_layers`` (model name → layers read) is used where known; otherwise a list of layers counts its length
    and ``'all'`` counts 49 (a deep model)."""
    known = n_layers or {}
    n_layers = 0
    for m in exp.models:
        n_layers += known.get(m.name, len(m.layers) if isinstance(m.layers, list) else 49)
    n_spaces = n_layers * len(exp.prompts) + len(exp.analysis.baselines)
    k = (exp.timing.pca_components or 1024) * len(exp.timing.delays)
    data = 8 * n_trs * n_voxels
    preds = 4 * n_trs * n_voxels * n_spaces
    fit = 8 * (n_trs * k + k * k + 3 * n_trs * n_voxels + 2 * len(exp.encoding.alphas) * n_voxels)
    need = data * 2 + preds + fit
    n_workers = exp.encoding.n_workers if exp.encoding.scheduler is None else 1  # a remote cluster is its own
    if n_workers > 1:  # each LocalCluster worker: its interpreter and imports, a float32 copy of Y, one fit
        need += n_workers * (WORKER_BASE_BYTES + 4 * n_trs * n_voxels + fit)
    return int(need)


#: resident memory of an idle dask worker process that has imported brainalign.pipeline.runner (measured 244 MiB)
WORKER_BASE_BYTES = 256 * 2**20


def check_rois(exp: Experiment, mask_img, base_dir: Path | None = None, config_file: str | None = None) -> dict:
    """Check ``brain.rois`` against the mask: grid, label table, groups and hierarchy.

    Reads the label image (one 3-D volume) and the table; nothing is fitted.

    Returns
    -------
    dict ROI name -> number of voxels inside the mask (empty without ROIs).

    Raises
    ------
    ConfigError
        Naming the field, the offending shape/label and the available labels.
    """
    spec = exp.brain.rois
    if spec is None:
        return {}
    from brainalign.brain.atlas import load_label_table

    path = _existing(config_file, "brain.rois.image", spec.image, base_dir)
    try:
        img = nib.load(path)
    except Exception as err:  # nibabel raises several types for unreadable files
        raise ConfigError(f"cannot read the label image {path}: {err}", file=config_file, field="brain.rois.image") from None
    shape = img.shape[:3] if img.ndim == 4 and img.shape[3] == 1 else img.shape
    if shape != mask_img.shape[:3]:
        raise ConfigError(f"label image shape {img.shape} differs from the mask shape {mask_img.shape}; resample the "
                          "atlas to the BOLD grid (nilearn.image.resample_to_img, interpolation='nearest').",
                          file=config_file, field="brain.rois.image")
    if not np.allclose(img.affine, mask_img.affine, atol=1e-3):
        raise ConfigError("label image and mask affines differ; resample the atlas to the BOLD grid "
                          "(nilearn.image.resample_to_img, interpolation='nearest').", file=config_file,
                          field="brain.rois.image")
    try:
        table = spec.table if isinstance(spec.table, dict) else _existing(config_file, "brain.rois.table", spec.table,
                                                                           base_dir)
        table = load_label_table(table)
    except ValueError as err:
        raise ConfigError(str(err), file=config_file, field="brain.rois.table") from None
    data = np.asarray(img.dataobj).reshape(shape)
    if data.dtype.kind == "f" and not np.allclose(data, np.round(data)):
        raise ConfigError("the label image holds non-integer values; pass a label (dseg) image, not a probability map.",
                          file=config_file, field="brain.rois.image")
    inside = np.round(data[np.asarray(mask_img.dataobj).reshape(shape) != 0]).astype(np.int64)
    values, counts = np.unique(inside[inside != 0], return_counts=True)
    n_by_value = dict(zip(values.tolist(), counts.tolist()))
    names = {v: table.get(v, f"label_{v}") for v in n_by_value}
    by_name = {n: v for v, n in names.items()}
    available = sorted(names.values())
    if not n_by_value:
        raise ConfigError("the label image has no labelled voxel inside the mask; check the atlas and the mask.",
                          file=config_file, field="brain.rois.image")
    if spec.groups is None:
        rois = {names[v]: n for v, n in n_by_value.items()}
    else:
        rois = {}
        for roi, members in spec.groups.items():
            n = 0
            for lab in members:
                v = int(lab) if isinstance(lab, int) else by_name.get(lab)
                if v not in n_by_value:
                    raise ConfigError(f"groups[{roi!r}] names label {lab!r}, which has no voxel in the mask; "
                                      f"available labels: {available}.", file=config_file,
                                      field=f"brain.rois.groups.{roi}")
                n += n_by_value[v]
            rois[roi] = n
    missing = [r for r in (spec.hierarchy or []) if r not in rois]
    if missing:
        raise ConfigError(f"hierarchy names {missing}, which are not ROIs; available: {sorted(rois)}.",
                          file=config_file, field="brain.rois.hierarchy")
    return rois


def preflight_nifti(exp: Experiment, base_dir: Path | None = None, config_file: str | None = None,
                   memory_limit: int | None = None) -> dict:
    """:func:`brainalign.pipeline.preflight.preflight` for ``brain.format: nifti`` (a BOLD file, a mask, TR labels)."""
    bold = _existing(config_file, "brain.bold", exp.brain.bold, base_dir)
    mask = _existing(config_file, "brain.mask", exp.brain.mask, base_dir)
    events = _existing(config_file, "stimuli.events", exp.stimuli.events, base_dir)
    try:
        img, mimg = nib.load(bold), nib.load(mask)
    except Exception as err:  # nibabel raises several types for unreadable files
        raise ConfigError(f"cannot read the image: {err}", file=config_file, field="brain.bold / brain.mask") from None
    if img.ndim != 4:
        raise ConfigError(f"{bold} has shape {img.shape}; a 4-D BOLD series is needed.", file=config_file,
                          field="brain.bold")
    if mimg.shape != img.shape[:3]:
        raise ConfigError(f"mask shape {mimg.shape} differs from the BOLD volume shape {img.shape[:3]}; use a mask "
                          "on the BOLD grid.", file=config_file, field="brain.mask")
    if not np.allclose(mimg.affine, img.affine, atol=1e-3):
        raise ConfigError("mask and BOLD affines differ; resample the mask to the BOLD grid.", file=config_file,
                          field="brain.mask")
    zooms = img.header.get_zooms()
    if len(zooms) > 3 and zooms[3] > 0 and abs(zooms[3] - exp.brain.tr) > 1e-3 * exp.brain.tr:
        raise ConfigError(f"tr={exp.brain.tr} s but the BOLD header says {zooms[3]} s; fix brain.tr.",
                          file=config_file, field="brain.tr")
    try:
        labels, runs = read_tr_labels(events)
    except ValueError as err:
        raise ConfigError(str(err), file=config_file, field="stimuli.events") from None
    if labels.size != img.shape[3]:
        raise ConfigError(f"{events} has {labels.size} rows but {bold} has {img.shape[3]} volumes; the stimulus "
                          "timing must cover every volume (one row per TR).", file=config_file, field="stimuli.events")
    unknown = sorted(set(np.unique(labels).tolist()) - set(exp.stimuli.labels) - set(exp.stimuli.rest))
    if unknown:
        raise ConfigError(f"label codes {unknown} occur in {events} but are not named; add them to stimuli.labels "
                          "or stimuli.rest.", file=config_file, field="stimuli.labels")
    n_runs = len(np.unique(runs))
    if exp.encoding.outer_cv == "leave-one-run-out":
        if n_runs < 3:
            raise ConfigError(f"nested leave-one-run-out needs at least 3 runs, the data have {n_runs}.",
                              file=config_file, field="encoding.outer_cv")
    else:
        missing = sorted(set(exp.encoding.outer_cv) - set(np.unique(runs).tolist()))
        if missing:
            raise ConfigError(f"test runs {missing} do not exist; the runs are {np.unique(runs).tolist()}.",
                              file=config_file, field="encoding.outer_cv")
        if n_runs - len(set(exp.encoding.outer_cv)) < 2:
            raise ConfigError("fewer than 2 training runs are left for inner cross-validation.",
                              file=config_file, field="encoding.outer_cv")
    n_vox = int((np.asarray(mimg.dataobj) != 0).sum())
    if n_vox == 0:
        raise ConfigError(f"mask {mask} selects no voxel.", file=config_file, field="brain.mask")
    rois = check_rois(exp, mimg, base_dir, config_file)
    notes, layers = check_models(exp, base_dir, config_file)
    check_space_names(exp, layers, config_file)
    need = estimate_memory(exp, int(img.shape[3]), n_vox, {m: len(v) for m, v in layers.items()})
    if memory_limit is None:
        try:
            import psutil

            memory_limit = int(psutil.virtual_memory().available)
        except Exception:  # pragma: no cover - psutil is a declared dependency
            memory_limit = None
    if memory_limit is not None and need > memory_limit and exp.encoding.n_workers > 1 and exp.encoding.scheduler is None:
        alone = estimate_memory(exp.model_copy(update=dict(encoding=exp.encoding.model_copy(update=dict(
            n_workers=1)))), int(img.shape[3]), n_vox, {m: len(v) for m, v in layers.items()})
        if alone <= memory_limit:
            raise ConfigError(f"with {exp.encoding.n_workers} worker processes the run needs about {need / 2**30:.1f} "
                              f"GiB ({alone / 2**30:.1f} GiB in one process) but {memory_limit / 2**30:.1f} GiB are "
                              "available; lower encoding.n_workers.", file=config_file, field="encoding.n_workers")
    if memory_limit is not None and need > memory_limit:
        raise ConfigError(f"the run needs about {need / 2**30:.1f} GiB but {memory_limit / 2**30:.1f} GiB are "
                          "available; analyse fewer layers or prompts, set timing.pca_components, or use a larger "
                          "machine.", file=config_file, field="models")
    k = exp.timing.pca_components
    return dict(notes=notes, rois=rois, memory_bytes=need, n_trs=int(img.shape[3]), n_runs=n_runs, n_voxels=n_vox, volume=tuple(img.shape[:3]),
                max_features=(k or 0) * len(exp.timing.delays))
