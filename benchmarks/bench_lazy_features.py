"""Peak memory of the features' share of a run: every space built at once vs one space at a time (issue 19 §2).

A feature cache of ``--stimuli`` entries of ``--layers`` × ``--dim`` float32 (one text model, one prompt) and a
``--rows`` × n_stimuli design. Each way runs in its own subprocess (peak RSS = its ``VmHWM`` above the RSS after
imports and the design), and touches every space's X as the fits would:

- ``eager``: the way before: the cache's entries stacked in memory (``np.stack``) and every space's
  ``design @ F[:, j, :]`` built before the first fit and held to the end;
- ``lazy``: what ``run`` does now: ``FeatureStore.get_or_compute`` hands out read-only memory maps
  (``StackedEntries``) and ``build_feature_spaces`` makes each space's X when its fits start, dropped after.

Memory-mapped pages of the cache are file-backed (the kernel can drop them under pressure); they show in RSS while
touched, so the lazy figure is an upper bound. The script checks that both ways give the same X for every space and
prints the ratio.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_lazy_features.py [--stimuli 2000 --layers 12 --dim 768]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np


def _rss(field: str) -> int:
    return next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith(field))


def fill(root: Path, n_stimuli: int, layers: int, dim: int) -> None:
    from brainalign.features.store import FeatureStore

    store, rng = FeatureStore(root), np.random.default_rng(0)
    keys = [FeatureStore.key("bench", f"s{i}", range(layers)) for i in range(n_stimuli)]
    for i, key in enumerate(keys):
        store.put(key, rng.standard_normal((layers, dim)).astype(np.float32))


def worker(way: str, root: Path, n_stimuli: int, layers: int, dim: int, rows: int) -> dict:
    from brainalign.features.store import FeatureStore
    from brainalign.timing.spaces import build_feature_spaces

    rng = np.random.default_rng(1)
    design = np.zeros((rows, n_stimuli), dtype=np.float32)
    design[np.arange(rows), rng.integers(0, n_stimuli, rows)] = 1.0
    data = SimpleNamespace(design=design)
    keys = [FeatureStore.key("bench", f"s{i}", range(layers)) for i in range(n_stimuli)]
    base = _rss("VmRSS")
    store = FeatureStore(root)
    F = store.get_or_compute(keys, lambda miss: None, [{}] * n_stimuli)
    meta = {"m": dict(layers=list(range(layers)), n_layers=layers)}
    digest = hashlib.sha256()
    if way == "eager":
        F = np.asarray(F)  # stacked in memory, as get_or_compute did
        Xs = [np.asarray(design @ F[:, j, :]) for j in range(layers)]  # every space before the first fit
        for X in Xs:
            digest.update(X.tobytes())
    else:
        for sp in build_feature_spaces(data, {"m": {"none": F}}, meta, [SimpleNamespace(name="m")]):
            X = sp.X  # made when its fits start
            digest.update(X.tobytes())
            del X
    return dict(way=way, peak_mib=(_rss("VmHWM") - base) / 2**20, digest=digest.hexdigest())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stimuli", type=int, default=2000)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--worker", nargs=2, metavar=("WAY", "ROOT"))
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], Path(a.worker[1]), a.stimuli, a.layers, a.dim, a.rows)))
        return
    root = Path(tempfile.mkdtemp(prefix="bench-lazy-"))
    fill(root, a.stimuli, a.layers, a.dim)
    args = [f"--stimuli={a.stimuli}", f"--layers={a.layers}", f"--dim={a.dim}", f"--rows={a.rows}"]
    res = {}
    for way in ("eager", "lazy"):
        out = subprocess.run([sys.executable, __file__, *args, "--worker", way, str(root)], check=True,
                             capture_output=True, text=True).stdout
        res[way] = json.loads(out.strip().splitlines()[-1])
    assert res["eager"]["digest"] == res["lazy"]["digest"], "the two ways made different features"
    feat = a.stimuli * a.layers * a.dim * 4 / 2**20
    space = a.rows * a.dim * 4 / 2**20
    print(f"{a.stimuli} stimuli × {a.layers} layers × {a.dim} dims ({feat:.0f} MiB of features), {a.rows} rows "
          f"({space:.1f} MiB per space, {a.layers} spaces); same X for every space: True")
    for way in ("eager", "lazy"):
        print(f"  {way:5s}: peak RSS above the design {res[way]['peak_mib']:8.1f} MiB")
    print(f"  lazy / eager: {res['lazy']['peak_mib'] / res['eager']['peak_mib']:.3f}")


if __name__ == "__main__":
    main()
