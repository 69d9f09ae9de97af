"""Schema of a steering study (``brainalign steer CONFIG``): brain-guided LLMs on ds003076, or the planted setting.

A steering YAML has either a ``brain:`` section (the real ds003076 study of
Xiao et al., 2026; ``docs/steering.md``) or a ``planted:`` section (a tiny random-init causal LM and
simulated subjects, :mod:`brainalign.steering.simulate`), never both. The
analysis sections (``representations``, ``predictivity``, ``nari``,
``nari_general``, ``finetune``, ``evaluation``) map one-to-one onto the
functions named in their docstrings. Unknown keys are rejected, so a typo
fails at load time with the field's path.

Kept apart from :mod:`brainalign.config` (the encoding experiments' schema) on
purpose: the two studies share no section.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from brainalign.steering.data import BETAS, DS003076_SUBJECTS

__all__ = ["SteerConfig", "load_steer_config", "SteerConfigError", "is_steering_config"]

SEED_ALPHAS = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]


class SteerConfigError(ValueError):
    """A steering config that cannot be used; the message names the file, the field and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VoxelSelection(_Strict):
    top_fraction: float = Field(0.10, gt=0, le=1)
    by: Literal["task_t_value"] = "task_t_value"
    separate_per_task: bool = True


class Items(_Strict):
    runs: list[str] = ["syllogism_run-01", "syllogism_run-02", "transitive_run-01", "transitive_run-02"]
    drop: dict[str, list[int]] = {"transitive_run-01": [7, 13]}


class BrainSection(_Strict):
    """ds003076 inputs (brainalign.steering.data).

    ``roi`` and ``voxel_selection`` describe how the betas files were made
    (recorded with the config in the manifest); the loader reads the voxels
    the files hold and selects none itself. With the seed's own derivative
    (the default ``betas``), they must keep the values it was made with;
    betas selected otherwise (e.g. with
    :func:`brainalign.brain.betas.top_fraction_mask`) go under another
    ``betas`` pattern, and these fields then say how.
    """
    dataset: Literal["ds003076"] = "ds003076"
    root: Path
    betas: str = BETAS
    expected_files: list[str] = []          # documentation only; the check uses steering.data.expected_files
    roi: Literal["deductive_reasoning", "language", "md"] = "deductive_reasoning"
    voxel_selection: VoxelSelection = VoxelSelection()
    subjects: list[str] = list(DS003076_SUBJECTS)
    excluded_subjects: list[str] = []
    items: Items = Items()
    drop_nan_voxels: Literal["across_subjects", "per_subject"] = "across_subjects"

    @field_validator("betas")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        if "{subject}" not in v or "{task}" not in v:
            raise ValueError(f"betas={v!r} must contain the placeholders {{task}} and {{subject}}.")
        return v

    @model_validator(mode="after")
    def _selection_matches_betas(self):
        if self.betas == BETAS:
            changed = [f for f, v, d in (("roi", self.roi, "deductive_reasoning"),
                                        ("voxel_selection", self.voxel_selection, VoxelSelection())) if v != d]
            if changed:
                raise ValueError(
                    f"brain.{changed[0]} differs from the seed's derivative that brain.betas reads ({BETAS}: top 10 % "
                    "of the deductive-reasoning ROI per task t-map); the loader selects no voxels itself. Keep the "
                    "default, or select the voxels yourself (brainalign.brain.betas.top_fraction_mask), write the "
                    "betas under another brain.betas pattern and describe the selection here.")
        return self

    @model_validator(mode="after")
    def _disjoint(self):
        both = sorted(set(self.subjects) & set(self.excluded_subjects))
        if both:
            raise ValueError(f"subjects {both} are also in excluded_subjects; remove them from one list.")
        return self


class PlantedSection(_Strict):
    """The planted setting (brainalign.steering.simulate.planted_study)."""
    arch: Literal["qwen2", "llama", "gemma", "gemma2"] = "qwen2"
    hidden_size: int = Field(32, ge=8)
    num_layers: int = Field(4, ge=2)
    n_items: int = Field(40, ge=10)
    n_subjects: int = Field(2, ge=1)
    n_voxels: int = Field(80, ge=2)
    noise: float = Field(0.3, ge=0)
    kappa: Union[float, Literal["auto"]] = "auto"


class Loading(_Strict):
    """How every model of the study is loaded (brainalign.steering.models.load_causal_lm)."""
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="Weights and activations ('auto': the checkpoint's own). bfloat16 halves the memory; "
        "hidden states come back to the host as float32, and offsets are cast to the model's dtype.")
    device: Optional[str] = Field(
        "cpu", pattern=r"^(cpu|cuda(:[0-9]+)?|mps|auto)$",
        description="cpu, cuda, cuda:N, or auto (shard over every visible GPU with accelerate's "
        "device_map='auto', for 70B models); null: a GPU when torch sees one, else the CPU. The finetune section "
        "needs cpu.")


class Representations(_Strict):
    kinds: list[Literal["attention", "residual"]] = ["attention", "residual"]


class Ceiling(_Strict):
    method: Literal["subject_subsets"] = "subject_subsets"
    max_combinations: Optional[int] = None
    n_bootstrap: int = Field(100, ge=1)


class Predictivity(_Strict):
    """brainalign.steering.encoders.neural_predictivity."""
    n_folds: int = Field(5, ge=2)
    alphas: list[float] = SEED_ALPHAS
    alpha_mode: Literal["shared", "per_voxel"] = "shared"
    metric: Literal["pearson", "cosine"] = "pearson"
    aggregate: Literal["median_voxels>median_subjects>max_layers"] = "median_voxels>median_subjects>max_layers"
    controls: list[Literal["random_features", "untrained"]] = ["random_features", "untrained"]
    ceiling: Optional[Ceiling] = None
    within_types: bool = Field(
        True, description="Also score the model within each reasoning type (encoders fitted and tested on one "
        "type's items; the ceiling, when set, on the same items): rows with task = the type in predictivity.csv, "
        "beside task = all (row 12: predictivity lower within reasoning types).")


class Nari(_Strict):
    """brainalign.steering.directions.nari_study."""
    layers: Union[Literal["middle", "all"], list[int]] = "middle"
    loss: Literal["cosine", "mse", "pearson"] = "cosine"
    lr_factor: float = Field(0.1, gt=0)
    proj_alpha: float = Field(10.0, gt=0)
    max_steps: int = Field(200, ge=1)
    check_every: int = Field(5, ge=1)
    fit_consistent_questions: bool = Field(
        False, description="Fit each encoder on the items the model and the subject both answer correctly (the "
        "authors' -fit_consistent_questions); also the finetune section's default.")
    encoder_per_task: bool = Field(
        True, description="One encoder per subject, layer and reasoning type, and NARI per type (the authors); "
        "false pools syllogisms and transitive items into one encoder.")
    controls: list[Literal["random_direction", "random_fmri", "random_fmri_mean"]] = [
        "random_direction", "random_fmri", "random_fmri_mean"]


class Scales(_Strict):
    min: float = 0.0
    max: float = 1.0
    step: float = Field(0.1, gt=0)


class GeneratedSet(_Strict):
    syllogism: int = Field(80, ge=0)
    transitive: int = Field(80, ge=0)
    seed: int = 1


class NariGeneral(_Strict):
    """brainalign.steering.directions.general_direction + scale_sweep."""
    aggregate: Literal["per_task", "all"] = "per_task"
    normalize: bool = False
    scales: Scales = Scales()
    validation: GeneratedSet = GeneratedSet()
    test: GeneratedSet = GeneratedSet(syllogism=800, transitive=800, seed=2)


class Lora(_Strict):
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    targets: list[Literal["q_proj", "k_proj", "v_proj", "o_proj"]] = ["q_proj", "k_proj", "v_proj", "o_proj"]


class NarfArm(_Strict):
    """Pure NARF: full-parameter fine-tuning of the supervised layers' self-attention toward the brain targets
    alone (no labels; brain_finetune(adapter="full", label_weight=0))."""
    lr: float = Field(1e-6, gt=0, description="The authors' NARF learning rate (1e-6).")
    brain_weight: float = Field(1.0, gt=0, description="Weight of the brain loss, the only loss of this arm.")


class ModelFinetune(_Strict):
    """Per-model settings of the finetune section (the authors: brain weight 0.01 for Qwen2-1.5B, 50 epochs for
    the 70B models); unset fields keep the section's value."""
    brain_weight: Optional[float] = Field(None, ge=0)
    max_epoch: Optional[int] = Field(None, ge=1)


class Finetune(_Strict):
    """brainalign.steering.finetune.brain_finetune."""
    mode: Literal["narf+label", "label_only"] = "narf+label"
    narf: Optional[NarfArm] = Field(None, description="Add the pure NARF arm (no labels, full self-attention).")
    lora: Lora = Lora()
    lr: float = Field(1e-4, gt=0)
    brain_weight: float = Field(0.1, ge=0)
    label_weight: float = Field(1.0, ge=0)
    grad_accumulate: int = Field(70, ge=1)
    max_epoch: int = Field(100, ge=1)
    per_model: dict[str, ModelFinetune] = Field(
        {}, description="Model name (as in 'models'; 'planted' for the planted study) -> brain_weight / max_epoch "
        "for that model.")
    fit_consistent_questions: Optional[bool] = Field(
        None, description="Fit the encoders on consistent items only; null: as nari.fit_consistent_questions "
        "(false without a nari section).")
    encoder_per_task: bool = Field(True, description="One encoder per reasoning type (the authors); false pools.")
    validation: Literal["all_premise_orders"] = "all_premise_orders"
    validation_items: GeneratedSet = GeneratedSet()   # generated problems, every premise order, pick the best epoch
    ablations: list[Literal["random_fmri", "labels_as_fmri"]] = []
    output: Literal["merged_safetensors", "none"] = "merged_safetensors"

    @property
    def n_arms(self) -> int:
        """Fine-tuned models per study model: NARF+Label and label-only (or label-only alone), pure NARF, ablations."""
        return (2 if self.mode == "narf+label" else 1) + (self.narf is not None) + len(self.ablations)

    def for_model(self, name: str) -> "Finetune":
        """This section with ``per_model[name]``'s values in place (unchanged when the model has none)."""
        own = self.per_model.get(name)
        if own is None:
            return self
        return self.model_copy(update={k: v for k, v in own.model_dump().items() if v is not None})


class Generalisation(_Strict):
    n_premises: Optional[int] = Field(None, ge=3, le=6)
    task: Optional[Literal["syllogism", "transitive", "propositional"]] = None
    n: Optional[int] = Field(None, ge=1)


class ItemFiles(_Strict):
    """The authors' own problem files (JSON, brainalign.steering.item_files), used besides the generated sets.

    ``root`` is relative to the config's folder. ``test`` and each ``generalisation`` file are evaluated as the
    sets ``file_<name>`` (the file's stem less ``deductive_reasoning_data_``) next to the generated ones;
    ``validation`` (when given) replaces the generated validation sets of ``finetune`` (best epoch) and
    ``nari_general`` (best scale).
    """
    root: Path
    validation: Optional[str] = None
    test: Optional[str] = None
    generalisation: list[str] = []

    def paths(self, base_dir: str | Path = ".") -> dict[str, Path]:
        """field (``validation``, ``test``, ``generalisation[k]``) -> resolved file path."""
        root = self.root if self.root.is_absolute() else Path(base_dir) / self.root
        out = {f: root / v for f, v in (("validation", self.validation), ("test", self.test)) if v}
        out.update({f"generalisation[{k}]": root / v for k, v in enumerate(self.generalisation)})
        return out

    @model_validator(mode="after")
    def _some_file(self):
        if not (self.validation or self.test or self.generalisation):
            raise ValueError("evaluation.files names no file; give validation, test and/or generalisation (JSON files "
                             "under root), or remove the section.")
        return self


class Evaluation(_Strict):
    """brainalign.steering.evaluate.evaluate_items."""
    all_orders: bool = True
    test: GeneratedSet = GeneratedSet(syllogism=800, transitive=800, seed=2)
    generalisation: list[Generalisation] = []
    files: Optional[ItemFiles] = None


class SteerConfig(_Strict):
    """A whole steering study. Exactly one of ``brain`` / ``planted``."""
    name: str
    seed: int = 0
    brain: Optional[BrainSection] = None
    planted: Optional[PlantedSection] = None
    models: list[str] = []
    prompts: Literal["deductive-reasoning"] = "deductive-reasoning"  # tasks.item_messages (DEDUCTIVE_CHAT)
    loading: Loading = Loading()
    representations: Representations = Representations()
    predictivity: Optional[Predictivity] = Predictivity()    # null: skip the section
    nari: Optional[Nari] = Nari()
    nari_general: Optional[NariGeneral] = None
    finetune: Optional[Finetune] = None
    evaluation: Evaluation = Evaluation()

    @field_validator("prompts", mode="before")
    @classmethod
    def _renamed_prompts(cls, value):
        # "seed002": the old name of this value (from an internal numbering of the studies), still accepted.
        if value == "seed002":
            warnings.warn("prompts: 'seed002' is renamed 'deductive-reasoning' (the same chat prompts); "
                          "write prompts: deductive-reasoning in the config.", FutureWarning, stacklevel=2)
            return "deductive-reasoning"
        return value

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data):
        if isinstance(data, dict) and "controls_models" in data:
            raise ValueError("controls_models is not a key: the untrained control is predictivity.controls: "
                             "[untrained] (a random-init copy of each model), and base (non-instruct) checkpoints are "
                             "models like any other; list them under 'models' (e.g. Qwen/Qwen2-7B).")
        return data

    @model_validator(mode="after")
    def _one_source(self):
        if (self.brain is None) == (self.planted is None):
            raise ValueError("give exactly one of the sections 'brain' (ds003076) and 'planted' (simulated study).")
        if self.brain is not None and not self.models:
            raise ValueError("'models' is empty; list at least one checkpoint id or local folder for the brain study.")
        if self.planted is not None:  # the planted fMRI items are generated with `seed`: keep other sets disjoint
            sets = {"evaluation.test": self.evaluation.test}
            if self.nari_general is not None:
                sets.update({"nari_general.validation": self.nari_general.validation,
                             "nari_general.test": self.nari_general.test})
            if self.finetune is not None:
                sets["finetune.validation_items"] = self.finetune.validation_items
            clash = [k for k, v in sets.items() if v.seed == self.seed]
            if clash:
                raise ValueError(f"{', '.join(clash)} use seed {self.seed}, the seed of the planted fMRI items; give "
                                 "them another seed so that they hold new problems.")
        if self.finetune is not None and self.loading.device != "cpu":
            raise ValueError(f"finetune runs on the CPU so far (its losses and LoRA weights live there), but "
                             f"loading.device is {self.loading.device!r}; set loading.device: cpu, or remove the "
                             "finetune section to steer on the GPU.")
        if self.nari_general is not None and self.nari is None:
            raise ValueError("nari_general averages NARI's successful offsets; give a 'nari' section too.")
        if self.finetune is not None and self.finetune.per_model:
            names = ["planted"] if self.planted is not None else list(self.models)
            unknown = [k for k in self.finetune.per_model if k not in names]
            if unknown:
                raise ValueError(f"finetune.per_model has {unknown}, which is not a model of this study; use names "
                                 f"exactly as listed in 'models' ({names})" + (" ('planted' for the planted model)"
                                                                              if self.planted is not None else "") + ".")
        return self


def load_steer_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SteerConfig:
    """Read and validate a steering YAML after ``--set KEY=VALUE`` overrides; errors name the file and the field
    path."""
    path = Path(path)
    if not path.is_file():
        raise SteerConfigError(f"config file {path} does not exist; pass the path of a steering YAML.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SteerConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise SteerConfigError(f"{path} must hold a mapping of sections (name, brain or planted, nari, ...).")
    from brainalign.config import ConfigError, apply_overrides

    try:
        raw = apply_overrides(raw, overrides, str(path))
    except ConfigError as err:
        raise SteerConfigError(str(err)) from None
    try:
        return SteerConfig.model_validate(raw)
    except ValidationError as err:
        msgs = []
        for e in err.errors():
            loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
            msgs.append(f"{loc}: {e['msg']}")
        raise SteerConfigError(f"{path} is not a valid steering config:\n  " + "\n  ".join(msgs)) from None


def is_steering_config(path: str | Path) -> bool:
    """True when a YAML file is a steering study (a ``planted:`` section or ``brain.dataset: ds003076``)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    if not isinstance(raw, dict):
        return False
    brain = raw.get("brain")
    return ("planted" in raw or bool({"nari", "nari_general", "finetune"} & set(raw))
            or (isinstance(brain, dict) and brain.get("dataset") == "ds003076"))
