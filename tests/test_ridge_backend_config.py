"""encoding.backend: in the config (and its hash), passed to the pipeline's fits, reported by validate and the dry-run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from brainalign import pipeline
from brainalign.config import ConfigError, load_config
from brainalign.config.experiment import EncodingSpec
from brainalign.pipeline import runner
from brainalign.pipeline.preflight import RIDGE_CORE_FLOPS, RIDGE_GPU_FLOPS, ridge_backend_note, study_plan
from brainalign.testing.planted import planted_encoding

from test_config import DEMO, _demo_dict, _write
from test_pipeline_planted import _study

torch = pytest.importorskip("torch")
NSD = Path(__file__).resolve().parents[1] / "configs" / "nsd_instruction_tuned_image.yaml"


def _with_backend(exp, backend):
    return exp.model_copy(update=dict(encoding=exp.encoding.model_copy(update=dict(backend=backend))))


def test_backend_in_config_hash_except_the_default(tmp_path):
    exp = load_config(DEMO)
    assert exp.encoding.backend == "numpy" and "backend" not in exp.model_dump()["encoding"]
    d = _demo_dict()
    d.setdefault("encoding", {})["backend"] = "numpy"
    assert load_config(_write(tmp_path, d)).config_hash() == exp.config_hash()  # old configs keep their hash
    d["encoding"]["backend"] = "torch"
    torch_exp = load_config(_write(tmp_path, d))
    assert torch_exp.encoding.backend == "torch" and torch_exp.config_hash() != exp.config_hash()
    assert load_config(_write(tmp_path, yaml.safe_load(torch_exp.to_yaml()))) == torch_exp  # round trip


def test_bad_backend_and_gpu_with_workers_rejected(tmp_path):
    d = _demo_dict()
    d.setdefault("encoding", {})["backend"] = "cuda"
    with pytest.raises(ConfigError, match=r"encoding\.backend"):
        load_config(_write(tmp_path, d))
    with pytest.raises(ValueError, match="set n_workers: 1 and no scheduler"):
        EncodingSpec(backend="torch_cuda", n_workers=2)
    assert EncodingSpec(backend="torch", n_workers=2).n_workers == 2  # torch on the CPU may use workers


def test_pipeline_fits_use_the_configured_backend(monkeypatch):
    used = []

    class Spy(runner.RidgeCV):
        def fit(self, X, y, runs=None):
            used.append(self.backend)
            return super().fit(X, y, runs)

    monkeypatch.setattr(runner, "RidgeCV", Spy)
    sim = planted_encoding(n_runs=4, n_samples_per_run=50, n_features=6, n_voxels=40, r2=0.3, seed=4)
    exp = load_config(DEMO)
    exp.analysis.reference = "null"
    exp.analysis.responsive_fraction = 1.0
    exp.timing.delays = [0]
    spaces = [pipeline.FeatureSpace("null", sim.X_null, "baseline"), pipeline.FeatureSpace("true", sim.X, "model")]
    scores = {}
    for backend in ("numpy", "torch"):
        scores[backend], _, _ = pipeline.cross_validate(_with_backend(exp, backend), _study(sim), spaces)
    assert used == ["numpy"] * 8 + ["torch"] * 8  # 2 spaces x 4 outer folds each
    np.testing.assert_allclose(scores["torch"]["mean_r"], scores["numpy"]["mean_r"], atol=1e-5, rtol=0)


def test_dry_run_prints_ridge_gpu_hours_next_to_cpu_core_hours():
    exp = load_config(NSD)
    cpu = study_plan(exp)
    gpu = study_plan(_with_backend(exp, "torch_cuda"))
    # both figures in both plans; the CPU plan says how to get the GPU one
    assert "GPU-hours with encoding.backend torch_cuda (set it to run there)" in cpu.text()
    assert "CPU-core-hours of ridge" in cpu.text() and "(set it to run there)" not in gpu.text()
    assert gpu.ridge_seconds == cpu.ridge_seconds  # the same work, counted in the same FLOPs
    expected = cpu.ridge_seconds * RIDGE_CORE_FLOPS / RIDGE_GPU_FLOPS / 3600
    assert f"or {expected:.2f} GPU-hours with encoding.backend torch_cuda at 10 TFLOP/s per GPU (a rule of thumb" in gpu.text()
    assert gpu.as_dict()["ridge_gpu_seconds"] == pytest.approx(expected * 3600)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_validate_warns_when_the_gpu_backend_has_no_gpu_here():
    # validate prints these notes as warnings (the backend itself is on its ok line: test_config.py)
    assert ridge_backend_note(load_config(DEMO)) is None
    assert ridge_backend_note(_with_backend(load_config(DEMO), "torch")) is None
    note = ridge_backend_note(_with_backend(load_config(DEMO), "torch_cuda"))
    assert note.startswith("encoding.backend: backend='torch_cuda' needs a CUDA GPU") and "CPU-only build" in note
    assert "stops at its first fit on this machine" in note
