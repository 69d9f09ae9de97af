"""Dry-runs price model forward passes on GPUs by one stated rule (features.throughput; docs/choices.md)."""
from __future__ import annotations

from pathlib import Path

import pytest

from brainalign.config import load_config
from brainalign.features.throughput import GPU_FLOPS, forward_cost, model_params, params_from_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_the_rule_per_parameter_count():
    c = forward_cost(7e9, 100, 36_000, "bfloat16")
    assert c.passes_per_second == pytest.approx(GPU_FLOPS / (2 * 7e9 * 100))
    assert c.n_gpus == 1 and c.gpu_hours == pytest.approx(36_000 / c.passes_per_second / 3600)
    assert forward_cost(7e9, 100, 36_000, "float32").gpu_hours == pytest.approx(4 * c.gpu_hours)
    # a 70B model: 140 GB in bf16 shards over 3 80-GB GPUs at 80 % use (device: auto), 280 GB in float32 over 5
    assert forward_cost(70e9, 100, 1, "bfloat16").n_gpus == 3 and forward_cost(70e9, 100, 1, "float32").n_gpus == 5
    assert forward_cost(7e9, 100, 1, "auto").dtype == "bfloat16"


def test_parameter_count_from_a_config_and_from_the_id():
    # Llama-2-7B's config.json: 6.74 B parameters
    llama = dict(hidden_size=4096, num_hidden_layers=32, intermediate_size=11008, vocab_size=32000,
                 hidden_act="silu", tie_word_embeddings=False)
    assert params_from_config(llama) == pytest.approx(6.74e9, rel=0.01)
    assert model_params("org/some-13B-chat", None) == 13e9
    notes = []
    assert model_params("org/unnamed", None, notes) == 7e9 and "7B parameters" in notes[0]


def test_study_dry_run_prints_passes_per_second_and_gpu_hours():
    from brainalign.pipeline.preflight import study_plan

    path = CONFIGS / "nsd_instruction_tuned_image.yaml"
    plan = study_plan(load_config(path), path.parent)
    blip = next(r for r in plan.rows if r["model"] == "InstructBLIP")
    assert blip["gpu_hours"] == pytest.approx(blip["forward_passes"] / blip["passes_per_second"] / 3600)
    assert plan.feature_gpu_hours == pytest.approx(sum(r["gpu_hours"] for r in plan.rows))
    text = plan.text()
    assert "passes/s" in text and f"about {plan.feature_gpu_hours:,.1f} GPU-hours" in text and "TFLOP/s" in text
    bf16 = study_plan(load_config(path, ["models.0.dtype=bfloat16"]), path.parent)
    assert bf16.rows[0]["gpu_hours"] == pytest.approx(plan.rows[0]["gpu_hours"] / 4)


def test_steer_dry_run_prices_every_model():
    from brainalign.steering.config import load_steer_config
    from brainalign.steering.plan import steer_plan

    path = CONFIGS / "deductive_reasoning_steering.yaml"
    small = ["evaluation.generalisation=[]", "evaluation.test={syllogism: 8, transitive: 8, seed: 2}",
             "nari_general.test={syllogism: 8, transitive: 8, seed: 2}"]  # fewer generated items: a fast test
    text = steer_plan(load_steer_config(path, small), path.parent)
    assert "Qwen/Qwen2-72B-Instruct: 72.70B params, float32" in text and "on 5 GPU(s)" in text
    assert "passes/s" in text and "GPU-hours in all" in text and "nari (upper bound)" in text
    bf16 = steer_plan(load_steer_config(path, small + ["loading.dtype=bfloat16", "finetune=null"]), path.parent)
    assert "72.70B params, bfloat16" in bf16 and "on 3 GPU(s)" in bf16 and "finetune" not in bf16.split("\n")[1]


def test_steer_dry_run_from_the_command_line_loads_nothing():
    from typer.testing import CliRunner

    from brainalign.cli import app

    res = CliRunner().invoke(app, ["steer", str(CONFIGS / "steer_planted_tiny.yaml"), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "planted model:" in res.output and "passes/s" in res.output and "GPU-hours in all" in res.output
