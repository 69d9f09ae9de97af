"""brainalign.config: the typed experiment configuration, loaded from YAML.

The lowest layer above ``_utils``: it imports nothing else of brainalign (the brain-format options are checked by
:mod:`brainalign.brain.loaders` at run time, not here). ``experiment`` holds :class:`Experiment` and its loader,
``data`` the brain and stimulus sections, ``analysis`` the analysis options; everything public is re-exported
here, so ``from brainalign.config import Experiment, load_config`` is the one documented spelling.
"""
from brainalign._utils.errors import ConfigError, DataError
from brainalign.config._base import BUILTIN_PREFIX, StrictModel, resolve_path
from brainalign.config.analysis import ArmSpec, CeilingSpec, CouplingSpec, EquivalenceSpec, check_extra_analyses
from brainalign.config.data import (BRAIN_FORMATS, STIMULUS_FORMATS, BrainSpec, GameplayStimuli, ImageStimuli,
                                    MovieClipStimuli, RoiSpec, Stimuli, StimulusSpec, TextItemStimuli)
from brainalign.config.experiment import (AnalysisSpec, ControlSpec, EncodingSpec, Experiment, InContextSpec,
                                          ModelSpec, PartitionSpec, RegressorOptions, TimingSpec, apply_overrides,
                                          format_validation_error, load_config)

__all__ = [
    "BrainSpec", "RoiSpec", "StimulusSpec", "ModelSpec", "RegressorOptions", "GameplayStimuli", "TimingSpec", "EncodingSpec",
    "AnalysisSpec", "PartitionSpec", "ControlSpec", "InContextSpec", "Experiment", "ConfigError", "load_config",
    "apply_overrides", "resolve_path", "BUILTIN_PREFIX",
    # also importable from here, as from the former single module
    "ArmSpec", "CeilingSpec", "CouplingSpec", "EquivalenceSpec", "BRAIN_FORMATS", "STIMULUS_FORMATS", "ImageStimuli", "MovieClipStimuli",
    "Stimuli", "TextItemStimuli", "format_validation_error",
    "DataError", "StrictModel", "check_extra_analyses",
]
