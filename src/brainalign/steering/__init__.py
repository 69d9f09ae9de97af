"""Brain-guided language models (Xiao et al., 2026): tasks, hooks, encoders, NARI directions, NARF fine-tuning.

Submodules: :mod:`tasks` (generators, prompts, parsing), :mod:`models` (loading,
tiny builders), :mod:`hooks` (last-token capture and offsets), :mod:`encoders`
(ridge encoders, predictivity, ceiling), :mod:`directions` (NARI and general
directions), :mod:`finetune` (NARF+Label, needs ``peft``), :mod:`evaluate`,
:mod:`simulate` (the planted setting), :mod:`data` (ds003076 loader), :mod:`study` (``brainalign steer``).
"""
from __future__ import annotations

from brainalign.steering.data import DeductiveData, load_ds003076
from brainalign.steering.directions import NariResult, general_direction, intervention_set, nari, random_fmri, scale_sweep
from brainalign.steering.encoders import deductive_ceiling, fit_encoder, neural_predictivity, random_features
from brainalign.steering.evaluate import evaluate_items, intervened_accuracy
from brainalign.steering.hooks import LayerHooks, greedy_answers, last_token_states
from brainalign.steering.models import build_tiny_causal_lm, load_causal_lm, untrained_copy
from brainalign.steering.tasks import Item, generate_items, item_messages, item_prompt, parse_answer, premise_orders

__all__ = [
    "Item", "generate_items", "premise_orders", "item_messages", "item_prompt", "parse_answer",
    "LayerHooks", "last_token_states", "greedy_answers",
    "build_tiny_causal_lm", "load_causal_lm", "untrained_copy",
    "fit_encoder", "neural_predictivity", "random_features", "deductive_ceiling",
    "nari", "NariResult", "intervention_set", "random_fmri", "general_direction", "scale_sweep",
    "evaluate_items", "intervened_accuracy", "load_ds003076", "DeductiveData",
]
