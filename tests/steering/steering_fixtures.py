"""Tiny seeded causal LMs and planted studies for the steering tests (built once per process).

Not a conftest.py (the root conftest must not be shadowed); tests import from here.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path


@functools.lru_cache(maxsize=None)
def root() -> Path:
    r = Path(tempfile.mkdtemp(prefix="brainalign-steering-"))
    atexit.register(shutil.rmtree, r, ignore_errors=True)
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    return r


@functools.lru_cache(maxsize=None)
def tiny_lm_dir(arch: str) -> Path:
    from brainalign.steering.models import build_tiny_causal_lm

    return build_tiny_causal_lm(root() / arch, arch, hidden_size=32, num_layers=4, seed=0)


def tiny_lm(arch: str):
    from brainalign.steering.models import load_causal_lm

    return load_causal_lm(tiny_lm_dir(arch))


@functools.lru_cache(maxsize=None)
def planted(seed: int, n_items: int = 40, n_subjects: int = 1):
    from brainalign.steering.simulate import planted_study

    return planted_study(root() / f"planted{seed}-{n_items}", seed=seed, n_items=n_items, n_subjects=n_subjects)


#: Training of the acceptance worlds: 10 epochs of AdamW steps every 8 items (the first version: 20 epochs, steps
#: every 16): the same 120 optimiser steps at half the forward and backward passes (docs/steering.md).
NARF_EPOCHS, NARF_ACCUMULATE = 10, 8


def narf_world(seed: int, shared: Path) -> dict:
    """NARF+Label vs label-only and vs its random-fMRI arm on planted fine-tuning world ``seed``, computed once per
    test run.

    ``shared`` is the run's shared folder (the ``run_shared_dir`` fixture): the first worker that asks for a
    world trains both arms behind a file lock and writes the numbers; a worker that asks later (or while it is
    being trained) waits for the lock and reads them. So the five held-out worlds of the acceptance test can be
    trained on two workers at once.
    """
    import json

    from filelock import FileLock

    from brainalign.steering.simulate import compare_finetuning, planted_finetune_study

    out = shared / f"narf-world-{seed}.json"
    with FileLock(str(shared / f"narf-world-{seed}.lock")):
        if out.exists():
            return json.loads(out.read_text())
        st = planted_finetune_study(shared / f"narf-world-{seed}", seed=seed)
        res = compare_finetuning(st, seed=seed, random_fmri=True, epochs=NARF_EPOCHS, grad_accumulate=NARF_ACCUMULATE)
        arms = {arm: dict(val_accuracy=list(map(float, r.val_accuracy)), brain_loss=list(map(float, r.brain_loss)),
                          best_epoch=int(r.best_epoch))
                for arm, r in ((a, res[f"{a}_result"]) for a in ("label_only", "narf_label", "random_fmri"))}
        row = dict(seed=seed, n_test=len(st.test_prompts), n_labelled=int(st.label_mask.sum()),
                   n_fmri=len(st.prompts),
                   **{k: float(res[k]) for k in ("base", "label_only", "narf_label", "random_fmri", "margin")},
                   arms=arms)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(row))
        tmp.replace(out)
        return row
