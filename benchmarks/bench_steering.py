"""NARI throughput on a tiny causal LM: items/second, with the hooks against the same decoding without hooks.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_steering.py [--items 48] [--steps 20] [--hidden 32]

Peers measured in the same run on the same planted study (qwen2 architecture,
4 layers, random init; ``brainalign.steering.simulate.planted_study``):

* ``decode-plain``: greedy one-token decoding of all items, no hooks;
* ``decode-hooked``: the same with :class:`LayerHooks` adding a per-item
  offset to the last-token attention output of the planted layer;
* ``nari``: a full NARI run (optimisation + a decode every 5 steps of the
  unsolved items), reported as intervened items per second.

Prints the hooked/plain ratio (hook overhead) and NARI items/s.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np


def _best(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=48)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=4)
    args = ap.parse_args()

    import torch
    from transformers.utils import logging

    from brainalign.steering import directions, encoders, simulate
    from brainalign.steering.hooks import greedy_answers

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as tmp:
        st = simulate.planted_study(tmp, seed=0, n_items=args.items, hidden_size=args.hidden,
                                    num_layers=args.layers, n_subjects=1)
    L = st.layer
    X = st.attention[:, L]
    off = {L: np.random.default_rng(0).standard_normal(X.shape).astype(np.float32) * 1e-3}
    t_plain = _best(lambda: greedy_answers(st.model, st.tokenizer, st.prompts))
    t_hook = _best(lambda: greedy_answers(st.model, st.tokenizer, st.prompts, off))
    enc = encoders.fit_encoder(X, st.subjects_Y[0])
    items = directions.intervention_set(st.model_correct, st.subjects_correct[0])
    t = time.perf_counter()
    res = directions.nari(st.model, st.tokenizer, st.prompts, st.labels, X, enc, st.subjects_Y[0], items, L,
                          max_steps=args.steps)
    t_nari = time.perf_counter() - t
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"# tiny qwen2: hidden {args.hidden}, {args.layers} layers, {args.items} items, "
          f"prompt ~{len(st.tokenizer(st.prompts[0])['input_ids'])} tokens")
    print(f"decode-plain   {args.items / t_plain:8.1f} items/s")
    print(f"decode-hooked  {args.items / t_hook:8.1f} items/s   hooked/plain time ratio {t_hook / t_plain:.3f}")
    print(f"nari           {items.size / t_nari:8.1f} intervened items/s "
          f"({items.size} items, {res.solved.sum()} flipped, {t_nari:.2f} s, up to {args.steps} steps)")


if __name__ == "__main__":
    main()
