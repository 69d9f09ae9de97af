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

__all__ = ["with_expanded_data_root", "preflight_nifti", "check_data_root", "model_shapes", "check_models",
           "PlannedSpaces", "check_space_names", "check_rois", "check_roi_names", "check_rois_have_a_mask",
           "estimate_memory", "statistics_memory", "check_regressors", "local_config",
           "nifti_excluded_voxels"]


def with_expanded_data_root(exp: Experiment, base_dir: Path | None, data_root: Path | None = None) -> Experiment:
    """``exp`` whose ``brain`` section has ``{data_root}`` in its ROI paths expanded
    (:func:`brainalign.study.data.expand_data_root`); ``exp`` itself when nothing changes."""
    brain = expand_data_root(exp.brain, base_dir, data_root)
    return exp if brain is exp.brain else exp.model_copy(update=dict(brain=brain))


def existing_file(exp_file: str | None, field: str, value: str, base_dir: Path | None) -> Path:
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
    if exp.brain.rois is not None and exp.brain.rois.image is not None:
        fields.append(("brain.rois.image", exp.brain.rois.image))
    if exp.brain.rois is not None:
        fields += [(f"brain.rois.surface_labels.{i}", v) for i, v in enumerate(exp.brain.rois.surface_labels or [])]
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


def check_regressors(exp: Experiment, root: Path, config_file: str | None = None) -> list[str]:
    """Every ``baseline: bson_regressors`` model's file exists under the data root and has the configured fields
    for every subject × run (the file is read: the check a run would otherwise fail after hours of features).

    Returns
    -------
    notes : list of str
        One per model: the regressors' width, and whether ``timing.pca_components`` keeps them whole.

    Raises
    ------
    ConfigError
        Naming the model, the field (``models.<i>.options.path`` / ``.where`` / ``.field``) and the fix.
    """
    from brainalign.config import RegressorOptions
    from brainalign.features.rl_regressors import regressor_documents, regressor_path, run_documents, run_regressors

    notes = []
    for i, m in enumerate(exp.models):
        if m.baseline != "bson_regressors":
            continue
        opts = RegressorOptions(**m.options)
        try:
            path = regressor_path(root, opts.path)
        except FileNotFoundError:
            raise ConfigError(f"models[{m.name}]: the regressor file {Path(root) / opts.path} does not exist. Untar "
                              f"ds004323's behavior/dump.tar.gz under the data root {root} (tar xzf; the collections "
                              "are dump/<db>/<collection>.bson, no mongorestore needed), or fix the path (relative to "
                              "the data root).", file=config_file, field=f"models.{i}.options.path") from None
        except ValueError as err:
            raise ConfigError(f"models[{m.name}]: {err}", file=config_file, field=f"models.{i}.options.path") from None
        try:
            docs = regressor_documents(path)
        except ValueError as err:
            raise ConfigError(f"models[{m.name}]: {err}", file=config_file, field=f"models.{i}.options.path") from None
        dim = None
        for subject in exp.brain.subject_list:
            for run in exp.brain.options.get("runs") or []:
                try:
                    chosen = run_documents(docs, opts.where, subject, int(run), name=m.name, path=path)
                except ValueError as err:
                    raise ConfigError(str(err), file=config_file, field=f"models.{i}.options.where") from None
                try:
                    rows, _ = run_regressors(chosen, opts, name=m.name)
                except ValueError as err:
                    why = str(err).removeprefix(f"models[{m.name}]: ")
                    raise ConfigError(f"models[{m.name}], subject {subject} run {run}: {why}", file=config_file,
                                      field=f"models.{i}.options.field") from None
                dim = rows.shape[1]
        k = exp.timing.pca_components
        if dim is not None:
            kept = "kept whole (fewer columns than timing.pca_components)" if k is not None and dim < k else \
                f"reduced to {k} principal components" if k is not None else "kept whole"
            notes.append(f"models[{m.name}]: {dim} regressor columns, {kept}.")
    return notes


def model_shapes(exp: Experiment, base_dir: Path | None = None,
                 config_file: str | None = None) -> dict[str, tuple[int, int | None]]:
    """``(blocks, feature width)`` of every model whose ``config.json`` is local (builtin models included), read
    without the weights. The width is the text model's ``hidden_size`` (None for other kinds: their features
    come from a component); frame baselines count as 0 blocks (one layer, 0) of unknown width.

    Raises
    ------
    ConfigError
        For a ``builtin:`` model that does not exist (field ``models.<i>.source``).
    """
    out = {}
    for i, m in enumerate(exp.models):
        if m.kind == "baseline":  # frame features: no config.json; depth 0 (layer 0)
            out[m.name] = (0, None)
            continue
        cfg = local_config(m, i, base_dir, config_file)
        n_layers, dim = cfg.get("num_hidden_layers"), cfg.get("hidden_size")
        if isinstance(n_layers, int):
            out[m.name] = (n_layers, dim if isinstance(dim, int) and m.kind == "text" else None)
    return out


def local_config(m, i: int, base_dir: Path | None, config_file: str | None) -> dict:
    """The model's config.json when it is local (builtin models included), else ``{}``."""
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
        return {}
    try:
        cfg = json.loads(cfg_file.read_text())
    except ValueError:
        return {}
    return cfg if isinstance(cfg, dict) else {}


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
    from brainalign.features.hf_loading import check_device

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
        try:  # a GPU named in the config must be here (--dry-run, which plans for another machine, skips this)
            check_device(m.device, f"models.{i}.device")
        except ValueError as err:
            raise ConfigError(str(err), file=config_file, field=f"models.{i}.device") from None
        cfg = local_config(m, i, base_dir, config_file)
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


class PlannedSpaces:
    """Every feature space name a run of ``exp`` will fit, known from the config and the models' depths alone:
    model × prompt × layer, ``L-k`` aliases of the layers read, baselines, and the control spaces
    (:func:`brainalign.pipeline.controls.control_plan`, the plan the run follows).

    Models whose depth is not known offline (hub models) contribute patterns with ``<layer>`` (and ``<dim>`` for
    a Gaussian control of unknown width) instead of names.
    """

    def __init__(self, exp: Experiment, layers: dict[str, list[int]],
                 shapes: dict[str, tuple[int, int | None]] | None = None):
        import re

        from brainalign.pipeline.controls import control_plan
        from brainalign.timing.spaces import LAYER_PLACEHOLDER, baseline_space_name, space_name

        shapes = shapes or {}
        self.exact = {baseline_space_name(b) for b in exp.analysis.baselines}
        self.aliases: set[str] = set()
        planned: set[str] = set()  # names with <layer>/<dim> placeholders
        for m in exp.models:
            for p in exp.prompts_of(m):
                if m.name in layers:
                    self.exact |= {space_name(m.name, p, k) for k in layers[m.name]}
                    self.aliases |= {space_name(m.name, p, -k) for k in range(1, len(layers[m.name]) + 1)}
                else:
                    planned.add(space_name(m.name, p, LAYER_PLACEHOLDER))
            known_depth = m.name in layers and m.name in shapes
            plan = control_plan(exp, m, shapes[m.name][0] if known_depth else None, layers.get(m.name, ()))
            if plan is not None:
                for name in plan.space_names(shapes[m.name][1] if known_depth else None):
                    (planned if "<" in name else self.exact).add(name)
        self.planned = sorted(planned)
        self._patterns = [re.compile(re.escape(n).replace(re.escape(LAYER_PLACEHOLDER), r"-?\d+")
                                     .replace(re.escape("<dim>"), r"\d+") + "$") for n in self.planned]

    def known(self, name: str) -> bool:
        return name in self.exact or name in self.aliases or any(p.match(name) for p in self._patterns)

    def choices(self) -> list[str]:
        return sorted(self.exact) + self.planned

    def problem(self, name: str) -> str:
        """The message for an unknown ``name``: did-you-mean and the choices."""
        from brainalign.timing.spaces import unknown_space_hint

        return (f"'{name}' is not a feature space of this run; {unknown_space_hint(name, self.exact)}"
                f"choose one of {self.choices()}.")


def check_space_names(exp: Experiment, layers: dict[str, list[int]], config_file: str | None = None,
                      shapes: dict[str, tuple[int, int | None]] | None = None,
                      n_stimuli: int | None = None) -> PlannedSpaces:
    """Every cross-reference of the config to a feature space, a prompt or a layer, resolved before any compute:
    ``analysis.reference``, ``analysis.partitions[*].spaces`` and ``.control``, ``analysis.equivalence[*].a``/``.b``, ``analysis.controls`` (layer,
    prompts to scramble, in-context examples) and ``analysis.coupling`` (a fitted layer).

    ``layers`` (model name → layer indices) and ``shapes`` (model name → blocks, width) come from
    :func:`check_models` / :func:`model_shapes`; models missing from them (hub models not checked offline) only
    have their model and prompt parts checked. ``n_stimuli`` (when known) checks ``in_context.k``.

    Returns
    -------
    PlannedSpaces
        The names the run will fit.

    Raises
    ------
    ConfigError
        Naming the field, the unknown name, the closest known one and the choices.
    """
    from brainalign.features.base import resolve_layers
    from brainalign.pipeline.controls import control_prompts

    shapes = shapes if shapes is not None else {}
    ctl = exp.analysis.controls
    if ctl is not None:
        for m in exp.models:
            if m.kind == "baseline" or m.prompts == "none":
                continue
            if m.name in shapes:
                n = shapes[m.name][0]
                try:
                    resolve_layers([ctl.layer], n)
                except ValueError as err:
                    raise ConfigError(f"{err} (model '{m.name}' has {n} blocks: the control layer must be in "
                                      f"0..{n}, -{n + 1}..-1, or a depth in [0, 1]).", file=config_file,
                                      field="analysis.controls.layer") from None
            try:
                control_prompts(exp.prompts_of(m), exp.analysis.unprompted, ctl.prompts, ctl.neutral_prompt, exp.seed)
            except ValueError as err:
                raise ConfigError(f"{err} Reword the prompt, make it analysis.unprompted, or drop 'scrambled' from "
                                  "analysis.controls.prompts.", file=config_file,
                                  field="analysis.controls.prompts") from None
        icl = ctl.in_context
        if icl is not None and icl.examples is not None and len(icl.examples) < icl.k:
            raise ConfigError(f"in_context.examples has {len(icl.examples)} names but k={icl.k}; give at least k.",
                              file=config_file, field="analysis.controls.in_context.examples")
        if icl is not None and icl.examples is None and n_stimuli is not None and icl.k > n_stimuli - 1:
            raise ConfigError(f"k={icl.k} in-context examples need at least k+1={icl.k + 1} stimuli, the data have "
                              f"{n_stimuli}; lower k or list analysis.controls.in_context.examples.",
                              file=config_file, field="analysis.controls.in_context.k")
    planned = PlannedSpaces(exp, layers, shapes)
    wanted = [("analysis.reference", exp.analysis.reference)]
    for i, spec in enumerate(exp.analysis.partitions):
        wanted += [(f"analysis.partitions.{i}.spaces", n) for n in spec.spaces]
        wanted += [(f"analysis.partitions.{i}.control", n) for n in (spec.control or {}).values()]
    for i, spec in enumerate(exp.analysis.equivalence):
        wanted += [(f"analysis.equivalence.{i}.{side}", n) for side in ("a", "b") for n in getattr(spec, side)]
    for field, name in wanted:
        if not planned.known(name):
            raise ConfigError(planned.problem(name), file=config_file, field=field)
    _check_coupling(exp, layers, shapes, planned, config_file)
    return planned


def _check_coupling(exp: Experiment, layers, shapes, planned: PlannedSpaces, config_file: str | None) -> None:
    """``analysis.coupling.layer`` must be a layer the run fits for every instruction of the coupling model."""
    from brainalign.config.analysis import coupling_instructions, coupling_model
    from brainalign.features.base import resolve_layers
    from brainalign.timing.spaces import space_name

    cpl = exp.analysis.coupling
    if cpl is None:
        return
    spec = coupling_model(exp)
    if spec.name not in shapes or spec.name not in layers:
        return  # depth unknown offline: checked when the run has fitted the spaces
    n_layers = shapes[spec.name][0]
    if (cpl.text_model or spec.name) != spec.name and not any(k > 0 for k in layers[spec.name]):
        raise ConfigError(f"analysis.coupling.model={spec.name!r} has no fitted layer above the embeddings (layers "
                          f"{layers[spec.name]}); read deeper layers in models[{spec.name}].layers.",
                          file=config_file, field="analysis.coupling.model")
    try:
        layer = resolve_layers([cpl.layer], n_layers)[0]
    except ValueError as err:
        raise ConfigError(f"{err} (model '{spec.name}' has {n_layers} blocks).", file=config_file,
                          field="analysis.coupling.layer") from None
    missing = [n for n in (space_name(spec.name, p, layer) for p in coupling_instructions(exp, spec))
               if not planned.known(n)]
    if missing:
        raise ConfigError(f"analysis.coupling.layer={cpl.layer!r} is layer {layer}, but {missing} will not be "
                          f"fitted; choose a layer listed in models[{spec.name}].layers ({layers[spec.name]}).",
                          file=config_file, field="analysis.coupling.layer")


#: voxel columns per block when held-out predictions are scored (``brainalign.pipeline.space_statistics.VOXEL_BLOCK``) and
#: per batch of the permutation test (``permutation_test(voxel_batch=1024)``)
_R_BLOCK, _PERM_BATCH = 4096, 1024
#: bytes per (space, voxel) row of the voxel table while it is built: space, voxel, r, p, q, significant,
#: p_fwer, significant_fwer, alpha (~58), twice while the spaces' tables are joined
_VOXEL_ROW_BYTES = 2 * 64


def statistics_memory(exp: Experiment, n_rows: int, n_voxels: int, n_spaces: int, n_folds: int,
                      n_runs: int) -> dict[str, int]:
    """Bytes of the voxel statistics of one subject, computed space by space as its folds finish
    (:func:`brainalign.pipeline.runner.cross_validate_statistics`).

    Returns
    -------
    dict with
        ``buffer``: one space's held-out predictions, float32 (n_rows, n_voxels): the only array of that size,
        whatever the number of spaces (in RAM, or memory-mapped in TMPDIR past
        ``encoding.predictions_in_memory_gib``);
        ``work``: the largest working set while a space is scored (float64 copies of a block of voxel columns for
        r; a permutation batch of 1024 voxels, its block-pair products and its null);
        ``kept``: what every space leaves until the tables are written: its rows of the voxel table, its chosen
        alphas (float64, per outer fold) and, with ``brain.rois``, its per-run r (float64, per voxel).
    """
    a = exp.analysis
    buffer = 4 * n_rows * n_voxels
    work = 4 * 8 * n_rows * min(n_voxels, _R_BLOCK)
    if a.n_permutations > 0:
        batch = min(n_voxels, _PERM_BATCH)
        work = max(work, batch * (56 * n_rows + 12 * a.n_permutations) + 8 * a.n_permutations * n_rows)
    per_space = n_voxels * (_VOXEL_ROW_BYTES + 8 * n_folds + (8 * n_runs if exp.brain.rois is not None else 0))
    return dict(buffer=int(buffer), work=int(work), kept=int(n_spaces * per_space))


def estimate_memory(exp: Experiment, n_trs: int, n_voxels: int, n_layers: dict[str, int] | None = None,
                    n_runs: int = 16) -> int:
    """Bytes the pipeline holds at its peak (rough upper bound): the cleaned data (float64, twice while loading),
    then during the fits the float32 data, the ridge work arrays of one fit and the voxel statistics
    (:func:`statistics_memory`: one space's held-out predictions, unless memory-mapped, and what each space keeps
    for the tables); with ``encoding.n_workers`` > 1, for every worker process also its base footprint, a copy of
    the data and one fit's work arrays.

    ``n_layers`` (model name → layers read) is used where known; otherwise a list of layers counts its length
    and ``'all'`` counts 49 (a deep model); ``n_runs`` (outer folds = held-out runs) scales what each space keeps."""
    known = n_layers or {}
    n_layers = 0
    for m in exp.models:
        n_layers += known.get(m.name, len(m.layers) if isinstance(m.layers, list) else 49)
    n_spaces = n_layers * len(exp.prompts) + len(exp.analysis.baselines)
    k = (exp.timing.pca_components or 1024) * len(exp.timing.delays)
    data = 8 * n_trs * n_voxels
    fit = 8 * (n_trs * k + k * k + 3 * n_trs * n_voxels + 2 * len(exp.encoding.alphas) * n_voxels)
    stats = statistics_memory(exp, n_trs, n_voxels, n_spaces, n_runs, n_runs)
    buffer = 0 if stats["buffer"] > exp.encoding.predictions_in_memory_gib * 2**30 else stats["buffer"]
    need = max(data * 2, data // 2 + fit + buffer + stats["work"] + stats["kept"])
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

    path = existing_file(config_file, "brain.rois.image", spec.image, base_dir)
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
        table = spec.table if isinstance(spec.table, dict) else existing_file(config_file, "brain.rois.table", spec.table,
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


#: dataset formats whose recordings have no volume mask (surface vertices, pre-masked voxels): no label image applies
MASKLESS_FORMATS = ("movie10", "vwt_hdf5")


def check_rois_have_a_mask(exp: Experiment, config_file: str | None = None) -> None:
    """``brain.rois`` needs a format whose recordings have a volume mask (config only)."""
    if exp.brain.rois is not None and exp.brain.rois.surface_labels is not None:
        return  # surface label files select vertices (BrainSpec allows them with format movie10 only)
    if exp.brain.rois is not None and exp.brain.format in MASKLESS_FORMATS:
        raise ConfigError(f"brain.format '{exp.brain.format}' gives data without a volume mask (surface vertices or "
                          "pre-masked voxels), so a label image cannot select ROIs; give brain.rois.surface_labels "
                          "(format movie10) or remove brain.rois.",
                          file=config_file, field="brain.rois")


def _dataset_roi_labels(exp: Experiment, data_root: Path | None, config_file: str | None) -> dict[int, str]:
    """Label names of the dataset's own ROI files (format nsd, ``brain.options.rois``), from their label tables.

    Keys are running numbers (the files reuse label values), so groups must name these labels, not values.
    """
    from brainalign.brain.atlas import load_label_table
    from brainalign.brain.nsd import NSDLayout

    if data_root is None:
        return {}
    opts = exp.brain.options
    layout = NSDLayout(data_root, int(exp.brain.subject_list[0]), opts.get("resolution", "func1pt8mm"),
                       opts.get("glm", "betas_fithrf_GLMdenoise_RR"))
    names: list[str] = []
    for roi in opts["rois"]:
        path = next((layout.root / t for t in layout.label_table(roi) if (layout.root / t).is_file()), None)
        if path is None:
            raise ConfigError(f"brain.options.rois names {roi!r}, whose label table is missing (looked for "
                              f"{layout.label_table(roi)} under {data_root}).", file=config_file,
                              field="brain.options.rois")
        names += [n for k, n in load_label_table(path).items() if k > 0]
    ints = {roi: [m for m in members if isinstance(m, int)] for roi, members in (exp.brain.rois.groups or {}).items()}
    ints = {roi: m for roi, m in ints.items() if m}
    if ints:
        raise ConfigError(f"brain.rois.groups name label values {ints}; the dataset's ROI files reuse values, so name "
                          "their labels (e.g. 'FFA-1').", file=config_file, field="brain.rois.groups")
    return dict(enumerate(names, start=1))


def check_roi_names(exp: Experiment, base_dir: Path | None = None, config_file: str | None = None,
                    data_root: Path | None = None) -> None:
    """``brain.rois`` of a dataset format, checked without the loader's mask: the format has a volume mask, the label
    table can be read, ``groups`` name labels of the table and ``hierarchy`` names ROIs. (Whether each label has
    voxels inside the mask is known only once the loader has read the mask; ``format: nifti`` checks that too,
    :func:`check_rois`.)

    Raises
    ------
    ConfigError
        Naming the field and the available labels or ROIs.
    """
    spec = exp.brain.rois
    if spec is None:
        return
    check_rois_have_a_mask(exp, config_file)
    from brainalign.brain.atlas import load_label_table

    if spec.surface_labels is not None:  # left and right label files: their embedded tables (or spec.table)
        from brainalign.brain.atlas import load_surface_labels

        paths = [resolve_path(p, base_dir) for p in spec.surface_labels]
        for i, p in enumerate(paths):
            if not p.is_file():
                raise ConfigError(f"{p} does not exist or is not a file; fix the path.", file=config_file,
                                  field=f"brain.rois.surface_labels.{i}")
        try:
            labels, table = load_surface_labels(paths)
            mesh = tuple(exp.brain.options.get("n_vertices") or (40962, 40962))  # the movie10 loader's default
            if labels.size != sum(mesh):
                raise ValueError(f"the label files hold {labels.size} vertices but the recordings are on a mesh of "
                                 f"{sum(mesh)} (brain.options.n_vertices = {list(mesh)}); use label files of the "
                                 "recordings' mesh (fsaverage6: 40962 per hemisphere).")
            if spec.table is not None:
                table = load_label_table(spec.table if isinstance(spec.table, dict) else
                                         resolve_path(spec.table, base_dir))
        except (ValueError, OSError) as err:
            raise ConfigError(str(err), file=config_file, field="brain.rois.surface_labels") from None
    elif spec.image is None:  # the dataset's own ROI files (format nsd): their label tables name the labels
        table = _dataset_roi_labels(exp, data_root, config_file)
    else:
        if isinstance(spec.table, str) and not resolve_path(spec.table, base_dir).is_file():
            raise ConfigError(f"{resolve_path(spec.table, base_dir)} does not exist or is not a file; fix the path.",
                              file=config_file, field="brain.rois.table")
        try:
            table = load_label_table(spec.table if isinstance(spec.table, dict) else resolve_path(spec.table, base_dir))
        except ValueError as err:
            raise ConfigError(str(err), file=config_file, field="brain.rois.table") from None
    names = set(table.values())
    for roi, members in (spec.groups or {}).items():
        bad = [lab for lab in members if (int(lab) not in table if isinstance(lab, int) else lab not in names)]
        if bad:
            raise ConfigError(f"groups[{roi!r}] names labels {bad}, which are not in the label table; available "
                              f"labels: {sorted(names)}.", file=config_file, field=f"brain.rois.groups.{roi}")
    rois = set(spec.groups) if spec.groups is not None else names
    missing = [r for r in (spec.hierarchy or []) if r not in rois]
    if missing:
        raise ConfigError(f"hierarchy names {missing}, which are not ROIs; available: {sorted(rois)}.",
                          file=config_file, field="brain.rois.hierarchy")


def preflight_nifti(exp: Experiment, base_dir: Path | None = None, config_file: str | None = None,
                   memory_limit: int | None = None) -> dict:
    """:func:`brainalign.pipeline.preflight.preflight` for ``brain.format: nifti`` (a BOLD file, a mask, TR labels)."""
    bold = existing_file(config_file, "brain.bold", exp.brain.bold, base_dir)
    mask = existing_file(config_file, "brain.mask", exp.brain.mask, base_dir)
    events = existing_file(config_file, "stimuli.events", exp.stimuli.events, base_dir)
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
    from brainalign.encoding.delays import run_boundaries

    try:
        run_boundaries(runs)
    except ValueError as err:
        raise ConfigError(f"{events}: {err} Sort the rows run by run (the BOLD volumes must be in the same order).",
                          file=config_file, field="stimuli.events") from None
    short = {int(r): int(c) for r, c in zip(*np.unique(runs, return_counts=True)) if c < 2}
    if short:
        raise ConfigError(f"runs {sorted(short)} of {events} have a single TR; a held-out run needs at least 2 to be "
                          "scored. Merge or drop those rows (and their volumes).", file=config_file,
                          field="stimuli.events")
    if exp.analysis.n_permutations > 0:
        from brainalign.analysis.stats import has_exchangeable_blocks

        held = runs if exp.encoding.outer_cv == "leave-one-run-out" else runs[np.isin(runs, exp.encoding.outer_cv)]
        if held.size and not has_exchangeable_blocks(held, exp.analysis.block_length):
            longest = int(np.unique(held, return_counts=True)[1].max())
            raise ConfigError(f"block_length={exp.analysis.block_length} TRs leaves no two exchangeable blocks in any "
                              f"held-out run (the longest has {longest} TRs), so the permutation test cannot run; "
                              "use a shorter analysis.block_length or set analysis.n_permutations: 0.", file=config_file, field="analysis.block_length")
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
    # every named label is a stimulus (stimulus order = sorted codes), shown or not: brainalign.study.load
    check_space_names(exp, layers, config_file, model_shapes(exp, base_dir, config_file), len(exp.stimuli.labels))
    unseen = sorted(set(exp.stimuli.labels) - set(np.unique(labels).tolist()))
    if unseen:
        notes.append(f"stimuli.labels {[f'{k}: {exp.stimuli.labels[k]}' for k in unseen]} occur in no row of "
                     f"{events}: these stimuli get features but no TR (their design column is empty). Remove them "
                     "from stimuli.labels, or fix stimuli.events.")
    dropped, message = nifti_excluded_voxels(img, mimg, runs, bold)
    if dropped == n_vox:
        raise ConfigError(f"every one of the {n_vox} voxels of {mask} is constant within some run of {bold} or "
                          "non-finite, so nothing is left to fit; check brain.bold (all zeros? wrong file?) and "
                          "brain.mask.", file=config_file, field="brain.bold")
    if message:
        notes.append(f"{message} Fix {bold} (brain.bold), or leave these voxels out of brain.mask to silence this.")
    need = estimate_memory(exp, int(img.shape[3]), n_vox, {m: len(v) for m, v in layers.items()}, n_runs)
    if memory_limit is None:
        try:
            import psutil

            memory_limit = int(psutil.virtual_memory().available)
        except Exception:  # pragma: no cover - psutil is a declared dependency
            memory_limit = None
    if memory_limit is not None and need > memory_limit and exp.encoding.n_workers > 1 and exp.encoding.scheduler is None:
        alone = estimate_memory(exp.model_copy(update=dict(encoding=exp.encoding.model_copy(update=dict(
            n_workers=1)))), int(img.shape[3]), n_vox, {m: len(v) for m, v in layers.items()}, n_runs)
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
                max_features=(k or 0) * len(exp.timing.delays), excluded_voxels=dropped,
                n_stimuli=len(exp.stimuli.labels), layers={m: len(v) for m, v in layers.items()})


def nifti_excluded_voxels(img, mask_img, runs: np.ndarray, source) -> tuple[int, str | None]:
    """How many mask voxels the NIfTI loader will exclude (constant within a run, or non-finite anywhere), and its
    warning: :func:`brainalign.brain.voxels.varying_voxels`, the rule every loader applies, on the BOLD read one
    run at a time (one run in memory).

    Returns
    -------
    n_excluded : int
    message : str or None
        The loader's own message, with the count per run.
    """
    from brainalign.brain.voxels import varying_voxels

    inside = np.asarray(mask_img.dataobj).reshape(img.shape[:3]) != 0
    labels = np.unique(runs)
    sds = []
    for r in labels:
        idx = np.flatnonzero(runs == r)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        block = np.asarray(img.dataobj[..., lo:hi])[..., idx - lo]  # (x, y, z, n_run_trs)
        sds.append(block[inside].astype(np.float64).std(1))
    keep, message = varying_voxels(sds, str(source), run_names=[f"run {r}" for r in labels])
    return int((~keep).sum()), message
