"""Cost of per-(space, fold) checkpoints in the encoding stage, on the embedded demo data (12 runs, 530 voxels).

Runs ``pipeline.cross_validate`` three times on the same feature spaces: without checkpoints, with
checkpoints into an empty folder (fit + hash + atomic write), and resumed from the full folder (read only).
Prints wall times and the ratios to the plain run.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_resume_overhead.py
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from brainalign import pipeline
from brainalign.cli import demo_config_path
from brainalign.config import load_config
from brainalign.pipeline.checkpoint import EncodingCheckpoint


def main() -> None:
    cfg = demo_config_path()
    exp = load_config(cfg)
    data = pipeline.load_data(exp, cfg.parent)
    rng = np.random.default_rng(0)
    F = rng.standard_normal((len(data.stimuli), 64)).astype(np.float32)
    spaces = [pipeline.FeatureSpace(name=f"random/{i}", X=data.design @ (F + i), kind="model") for i in range(3)]
    spaces.append(pipeline.FeatureSpace(name="baseline/onoff", X=data.design.sum(1, keepdims=True), kind="baseline"))
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        plain = pipeline.cross_validate(exp, data, spaces)[0]
        times["plain"] = time.perf_counter() - t0
        ck = EncodingCheckpoint(Path(tmp) / "ck")
        t0 = time.perf_counter()
        first = pipeline.cross_validate(exp, data, spaces, checkpoint=ck)[0]
        times["checkpointed"] = time.perf_counter() - t0
        ck2 = EncodingCheckpoint(Path(tmp) / "ck")
        t0 = time.perf_counter()
        again = pipeline.cross_validate(exp, data, spaces, checkpoint=ck2)[0]
        times["resumed (all loaded)"] = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (Path(tmp) / "ck").iterdir())
    assert plain.equals(first) and plain.equals(again)
    assert len(ck2.loaded) == len(spaces) * 12 and not ck2.fitted
    print(f"{len(spaces)} spaces x 12 folds, {data.recording.data.shape} data; checkpoints {size / 2**20:.1f} MiB")
    for k, v in times.items():
        print(f"  {k:22s} {v:7.2f} s   ratio to plain {v / times['plain']:.3f}")


if __name__ == "__main__":
    main()
