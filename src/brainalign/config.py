"""Typed experiment configuration, loaded from YAML.

One :class:`Experiment` names the brain data, the stimuli, the models ×
prompts × layers, the timing, the encoding and the analyses. Every model
forbids unknown keys, so a misspelt key fails at load time with its dotted
path and the closest valid name.
"""
from __future__ import annotations

import difflib
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, field_validator, model_validator

__all__ = [
    "BrainSpec",
    "RoiSpec",
    "StimulusSpec",
    "ModelSpec",
    "TimingSpec",
    "EncodingSpec",
    "AnalysisSpec",
    "PartitionSpec",
    "ControlSpec",
    "InContextSpec",
    "Experiment",
    "ConfigError",
    "load_config",
    "resolve_path",
    "BUILTIN_PREFIX",
]

BUILTIN_PREFIX = "builtin:"


class ConfigError(ValueError):
    """A configuration problem, with the file and dotted field it concerns."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        self.file = file
        self.field = field
        where = ", ".join(p for p in (f"file {file}" if file else "", f"field '{field}'" if field else "") if p)
        super().__init__(f"{where}: {message}" if where else message)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class RoiSpec(_Strict):
    """Regions of interest from a label (dseg) image on the BOLD grid, and their hierarchy."""

    image: str = Field(description="3-D NIfTI label image on the BOLD grid (same shape and affine as brain.mask).")
    table: str | dict[int, str] = Field(
        description="Label value → ROI name: a mapping, or a CSV/TSV (index, name), JSON or '<index> <name>' text file."
    )
    groups: dict[str, list[str | int]] | None = Field(
        None, description="ROI name → the labels (names or values) it joins; null = every label is its own ROI."
    )
    hierarchy: list[str] | None = Field(
        None, description="ROI names ordered early → late (e.g. early visual … motor) for the prompt-gain slope."
    )
    early: list[str] | None = Field(None, description="ROIs of the early end of the ratio (default: first of hierarchy).")
    late: list[str] | None = Field(None, description="ROIs of the late end of the ratio (default: last of hierarchy).")
    how: Literal["mean", "median"] = Field("mean", description="Statistic over an ROI's voxels.")

    @model_validator(mode="after")
    def _hierarchy_ok(self) -> RoiSpec:
        h = self.hierarchy
        if h is not None:
            if len(h) < 2:
                raise ValueError(f"brain.rois.hierarchy needs at least 2 ROIs for a slope, got {h}.")
            if len(set(h)) != len(h):
                raise ValueError(f"brain.rois.hierarchy has duplicates: {h}.")
            for nm, ends in (("early", self.early), ("late", self.late)):
                bad = [r for r in (ends or []) if r not in h]
                if bad:
                    raise ValueError(f"brain.rois.{nm} names {bad}, which are not in brain.rois.hierarchy {h}.")
        elif self.early or self.late:
            raise ValueError("brain.rois.early/late need brain.rois.hierarchy; list the ROIs in order first.")
        if self.groups is not None:
            empty = [g for g, m in self.groups.items() if not m]
            if empty:
                raise ValueError(f"brain.rois.groups {empty} list no labels; give at least one label per group.")
        return self


class BrainSpec(_Strict):
    """One fMRI recording: a 4-D BOLD image, a brain mask and the run of every volume."""

    bold: str = Field(description="4-D NIfTI BOLD image (runs concatenated).")
    mask: str = Field(description="3-D NIfTI mask; non-zero voxels are analysed.")
    tr: PositiveFloat = Field(description="Repetition time in seconds.")
    subject: str = "01"
    detrend: bool = Field(True, description="Remove a linear trend within each run.")
    standardize: bool = Field(True, description="Z-score each voxel within each run.")
    rois: RoiSpec | None = Field(None, description="Regions of interest (null = whole-brain results only).")


class StimulusSpec(_Strict):
    """Stimulus timing given as one label per TR (blocked designs such as Haxby 2001)."""

    events: str = Field(description="Table with one row per TR: '<label> <run>' (whitespace separated).")
    format: Literal["tr-labels"] = "tr-labels"
    labels: dict[int, str] = Field(description="Label code → stimulus name (the text put into prompts).")
    rest: list[int] = Field(default_factory=lambda: [0], description="Label codes meaning 'no stimulus'.")

    @field_validator("labels")
    @classmethod
    def _names_not_empty(cls, v: dict[int, str]) -> dict[int, str]:
        if not v:
            raise ValueError("labels is empty; map every stimulus code to a name, e.g. {1: face}.")
        for code, name in v.items():
            if not str(name).strip():
                raise ValueError(f"label {code} has an empty name; give the text that goes into the prompts.")
        return v


class ModelSpec(_Strict):
    """A pretrained model read layer by layer."""

    name: str = Field(description="Short name used in tables and figures.")
    source: str = Field(description="Hugging Face model id, local folder, or 'builtin:minilm'.")
    kind: Literal["text"] = "text"
    layers: Literal["all"] | list[int | float] = "all"
    pooling: Literal["mean", "last", "cls"] = "mean"
    revision: str | None = None
    trust_remote_code: bool = False
    batch_size: int = Field(32, gt=0)
    weights: Literal["pretrained", "random"] = Field(
        "pretrained",
        description="'random' = untrained control: the same architecture from its config, seeded random init "
        "(transformers' per-layer initialisation), same tokenizer and pooling.",
    )
    init_seed: int = Field(0, description="Seed of the random initialisation (weights: random only).")


class TimingSpec(_Strict):
    """From stimulus features to the TR grid."""

    delays: list[int] = Field(default_factory=lambda: [1, 2, 3, 4], description="FIR delays in TRs.")
    pca_components: int | None = Field(
        16,
        gt=0,
        description="Reduce every feature space to this many principal components, fit on training runs "
        "only (matched dimensionality). null keeps all features.",
    )

    @field_validator("delays")
    @classmethod
    def _delays_ok(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("delays is empty; use e.g. [1, 2, 3, 4] (TRs).")
        if any(d < 0 for d in v):
            raise ValueError(f"delays must be >= 0 TRs, got {v}.")
        if len(set(v)) != len(v):
            raise ValueError(f"delays has duplicates: {v}.")
        return v


class EncodingSpec(_Strict):
    """Cross-validated voxelwise ridge."""

    alphas: list[PositiveFloat] = Field(default_factory=lambda: np.logspace(-1, 5, 13).tolist())
    outer_cv: Literal["leave-one-run-out"] | list[int] = Field(
        "leave-one-run-out",
        description="'leave-one-run-out' (nested: every run is held out once) or a list of test run ids.",
    )
    inner_cv: Literal["leave-one-run-out"] = "leave-one-run-out"
    # Where the fits run, not what they compute: results are byte-identical for any value, so both are left out
    # of the config hash and the saved config.yaml (a run may be resumed with another worker count).
    n_workers: int = Field(
        1, ge=1, exclude=True,
        description="Worker processes for the (space, fold) and (partition, fold) fits; 1 fits in this process, "
        "more start a dask LocalCluster of single-threaded workers. Results are identical for any value.",
    )
    scheduler: str | None = Field(
        None, exclude=True,
        description="Address of a running dask scheduler (e.g. 'tcp://host:8786') to fit on instead of a "
        "LocalCluster; its workers need brainalign installed. Overrides n_workers.",
    )
    blas_threads: int = Field(
        1, ge=1,
        description="BLAS/OpenMP threads of each fit, in this process or in a worker. Multi-threaded BLAS rounds "
        "differently (last bits), so this one is part of the config; one thread per fit is also the fast choice for "
        "many small fits on a shared machine. Raise it for a few large fits on a quiet machine.",
    )

    @field_validator("alphas")
    @classmethod
    def _alphas_ok(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("alphas is empty; use e.g. a log-spaced grid from 0.1 to 1e5.")
        return sorted(v)

    @field_validator("scheduler")
    @classmethod
    def _scheduler_ok(cls, v: str | None) -> str | None:
        if v is not None and "://" not in v:
            raise ValueError(f"scheduler={v!r} is not a dask scheduler address; give e.g. 'tcp://host:8786', or leave "
                             "it out to fit on a LocalCluster of n_workers processes.")
        return v


class PartitionSpec(_Strict):
    """Variance partitioning between 2 or 3 fitted feature spaces (methods.md §6)."""

    name: str = Field(description="Label of this partition in tables and figures.")
    spaces: list[str] = Field(
        min_length=2, max_length=3,
        description="Feature space names as fitted, e.g. 'MiniLM-L6/action/L3' or 'baseline/onoff'; fix layers in "
        "advance rather than picking them on test data.",
    )
    min_r2_joint: float = Field(0.0, description="Voxels entering the percentages need joint R² above this.")

    @field_validator("spaces")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"partition spaces must differ, got {v}.")
        return v


class InContextSpec(_Strict):
    """In-context prompts (seed 001's ICL baseline): k worked examples before the query, excluded from pooling."""

    k: int = Field(2, ge=1, description="Number of worked examples before the query.")
    examples: list[str] | None = Field(
        None, description="Example stimulus names (text-only); null = the k next other stimuli of the study."
    )
    separator: str = Field(" ", description="Text between examples and before the query.")


class ControlSpec(_Strict):
    """Controls fitted next to the effects they control, at one fixed layer (methods: 'compared with what?')."""

    prompts: list[Literal["scrambled", "neutral"]] = Field(
        default_factory=list,
        description="'scrambled': every prompt other than the unprompted one with its words shuffled (seeded, "
        "same tokens); 'neutral': the neutral_prompt template. The unprompted prompt is the empty-instruction control.",
    )
    features: list[Literal["stimulus_shuffled", "gaussian"]] = Field(
        default_factory=list,
        description="'stimulus_shuffled': model features with the stimulus → feature assignment permuted "
        "within each run (seeded); 'gaussian': random normal features per stimulus, same dimensionality.",
    )
    feature_prompts: list[str] | None = Field(
        None, description="Prompts whose features get the feature controls (null = every prompt)."
    )
    in_context: InContextSpec | None = Field(
        None, description="Add an in-context version of every prompt but the unprompted one (null = none)."
    )
    layer: int | float = Field(0.5, description="The one layer (index, or relative depth in [0, 1]) of all controls.")
    neutral_prompt: str = Field("Look at the {stimulus}.", description="Template of the neutral prompt.")
    max_token_difference: int = Field(5, ge=0, description="Warn when compared prompts differ by more tokens.")
    alpha: float = Field(0.05, gt=0, lt=1, description="An effect 'survives' its control when paired p < alpha.")

    @field_validator("neutral_prompt")
    @classmethod
    def _neutral_ok(cls, v: str) -> str:
        if "{stimulus}" not in v:
            raise ValueError(f"neutral_prompt ({v!r}) has no '{{stimulus}}' placeholder, e.g. 'Look at the {{stimulus}}.'")
        return v


class AnalysisSpec(_Strict):
    """What to compute from the held-out predictions."""

    baselines: list[Literal["onoff", "category", "category_shuffled"]] = Field(
        default_factory=lambda: ["onoff", "category", "category_shuffled"]
    )
    reference: str = Field("baseline/onoff", description="Feature space every other one is compared against.")
    unprompted: str | None = Field(
        "unprompted", description="Prompt name whose features define the prompt-driven gain (or null)."
    )
    responsive_fraction: float = Field(
        0.2, gt=0, le=1,
        description="Share of voxels, ranked by the reference model's inner-CV score on training runs, "
        "whose mean r is the headline metric (1.0 = all voxels).",
    )
    metric: Literal["mean_r_responsive", "mean_r", "median_r"] = Field(
        "mean_r_responsive", description="Run-level score used for comparisons, layer curves and gains."
    )
    n_permutations: int = Field(1000, ge=0, description="Permutations for voxelwise p-values (0 = skip).")
    block_length: int = Field(10, ge=1, description="TRs per block in the block permutation (keeps autocorrelation).")
    fdr_q: float = Field(0.05, gt=0, lt=1, description="Benjamini–Hochberg false discovery rate over voxels.")
    partitions: list[PartitionSpec] = Field(default_factory=list)
    controls: ControlSpec | None = Field(None, description="Controls reported beside their effects (null = none).")


class Experiment(_Strict):
    """A whole study: data, stimuli, models × prompts × layers, timing, encoding, analyses."""

    name: str
    seed: int = 0
    brain: BrainSpec
    stimuli: StimulusSpec
    models: list[ModelSpec]
    prompts: dict[str, str] = Field(description="Prompt name → template containing '{stimulus}'.")
    timing: TimingSpec = Field(default_factory=TimingSpec)
    encoding: EncodingSpec = Field(default_factory=EncodingSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)

    @field_validator("prompts")
    @classmethod
    def _prompts_ok(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("prompts is empty; give at least one template such as 'a photo of a {stimulus}'.")
        for name, text in v.items():
            if not text.strip():
                raise ValueError(f"prompt '{name}' is empty; write a template containing '{{stimulus}}'.")
            if "{stimulus}" not in text:
                raise ValueError(f"prompt '{name}' ({text!r}) has no '{{stimulus}}' placeholder.")
            try:
                text.format(stimulus="x")
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(
                    f"prompt '{name}' ({text!r}) has a placeholder other than {{stimulus}}: {err}; "
                    "write literal braces as '{{' and '}}'."
                ) from None
        return v

    @model_validator(mode="after")
    def _names_unique(self) -> Experiment:
        names = [m.name for m in self.models]
        if not names:
            raise ValueError("models is empty; name at least one model.")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique, {dupes} repeat.")
        labels = [p.name for p in self.analysis.partitions]
        if len(set(labels)) != len(labels):
            raise ValueError(f"analysis.partitions names must be unique, got {labels}.")
        if self.analysis.unprompted is not None and self.analysis.unprompted not in self.prompts:
            raise ValueError(
                f"analysis.unprompted='{self.analysis.unprompted}' is not a prompt name; "
                f"choose one of {sorted(self.prompts)} or null."
            )
        ctl = self.analysis.controls
        if ctl is not None and ctl.feature_prompts is not None:
            unknown = [p for p in ctl.feature_prompts if p not in self.prompts]
            if unknown:
                raise ValueError(f"analysis.controls.feature_prompts names {unknown}, which are not prompts; "
                                 f"choose from {sorted(self.prompts)}.")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def config_hash(self) -> str:
        """sha256 of the canonical JSON form: equal configs have equal hashes."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def resolve_path(path: str, base: Path | None = None) -> Path:
    """Resolve a config path: ``builtin:<rel>`` → package data, relative → next to the config."""
    if path.startswith(BUILTIN_PREFIX):
        rel = path[len(BUILTIN_PREFIX) :]
        return Path(str(resources.files("brainalign") / "data" / rel))
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return p


def _known_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names valid at ``loc`` (for the 'did you mean' hint)."""
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)) or part not in cur.model_fields:
            return []
        ann = cur.model_fields[part].annotation
        args = getattr(ann, "__args__", None)
        cur = next((a for a in (args or (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), ann)
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return list(cur.model_fields)
    return []


def format_validation_error(err: ValidationError, file: str | None) -> ConfigError:
    """Turn pydantic's error list into one message with dotted paths and hints."""
    lines = []
    first_field = None
    for e in err.errors():
        loc = tuple(e["loc"])
        dotted = ".".join(str(p) for p in loc) or "<top level>"
        first_field = first_field or dotted
        if e["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[-1]), _known_fields(Experiment, loc), n=1)
            fix = f" Did you mean '{hint[0]}'?" if hint else " Remove it."
            lines.append(f"'{dotted}': unknown key.{fix}")
        elif e["type"] == "missing":
            lines.append(f"'{dotted}': required key is missing.")
        else:
            lines.append(f"'{dotted}': {e['msg']} (got {e.get('input')!r}).")
    return ConfigError("invalid config:\n  " + "\n  ".join(lines), file=file, field=first_field)


def load_config(path: str | Path) -> Experiment:
    """Read and validate an experiment YAML file (``yaml.safe_load`` only).

    Raises
    ------
    ConfigError
        With the file, the dotted field and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("file not found; check the path.", file=str(path))
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"YAML syntax error{where}: {getattr(err, 'problem', err)}", file=str(path)) from None
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping of keys (name, brain, stimuli, ...).", file=str(path))
    try:
        return Experiment.model_validate(raw)
    except ValidationError as err:
        raise format_validation_error(err, str(path)) from None
