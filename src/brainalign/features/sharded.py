"""Scale-out: (model, stimulus shard) extraction tasks, run locally or on a ``dask.distributed`` cluster.

Every task writes into the same :class:`~brainalign.features.store.FeatureStore`
(entries are written atomically, one file per (prompt, stimulus), so workers
never write the same file). The driver first works out, without loading any
model, which shards still miss entries; only those become tasks, so a rerun
after a finished (or killed) run computes only what is missing, and nothing
at all when the cache is complete. The final arrays are read back from the
store.

Any ``distributed.Client`` works: a ``LocalCluster`` on one machine, or a
``dask_jobqueue.SLURMCluster`` on a cluster whose nodes share the store's
file system (each worker loads a model once and keeps it for the shards it
runs; it uses a GPU when torch sees one).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["ShardTask", "ShardedFeatures", "plan_shards", "run_shard", "extract_sharded"]

_LOAD_KEYS = ("trust_remote_code", "revision", "device", "dtype")

#: extractors loaded by this process (a dask worker keeps its models between tasks)
_LOADED: dict[tuple, Any] = {}


@dataclass(frozen=True)
class ShardTask:
    """One unit of work: stimuli ``start:stop`` of one model."""

    model: str
    start: int
    stop: int


@dataclass
class ShardedFeatures:
    """Result of :func:`extract_sharded`.

    Attributes
    ----------
    features : dict model -> ndarray (n_prompts, n_stimuli, n_layers, dim), float32
    tasks_run : list of ShardTask
        The tasks that had missing entries and were run (empty on a rerun
        with a complete cache).
    entries_written : int
        Store entries computed by those tasks.
    """

    features: dict[str, np.ndarray]
    tasks_run: list[ShardTask] = field(default_factory=list)
    entries_written: int = 0


def _split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    load = {k: v for k, v in options.items() if k in _LOAD_KEYS}
    return load, {k: v for k, v in options.items() if k not in _LOAD_KEYS}


def plan_shards(models: Sequence[str | Path], stimuli: Sequence[Any], prompts, layers="all", pooling: str = "mean",
                *, store, shard_size: int = 8, **options: Any) -> list[ShardTask]:
    """The (model, shard) tasks that still miss at least one store entry (no model is loaded).

    Only the entries' existence is checked; a corrupt entry is found (and
    recomputed) when the features are read back.
    """
    from .extract import cache_keys
    from brainalign.stimuli.inputs import check_prompts

    prompts = check_prompts(prompts)
    load_opts, extract_opts = _split_options(options)
    tasks = []
    for model in models:
        _, _, _, keys = cache_keys(str(model), stimuli, prompts, layers, pooling, load_opts, extract_opts)
        have = {k: store.has(key) for k, key in keys.items()}  # existence only: cheap on large caches
        for start in range(0, len(stimuli), shard_size):
            stop = min(start + shard_size, len(stimuli))
            if not all(have[(name, i)] for name in prompts for i in range(start, stop)):
                tasks.append(ShardTask(str(model), start, stop))
    return tasks


def run_shard(task: ShardTask, stimuli: Sequence[Any], prompts, layers, pooling: str, reuse: bool,
              store_root: str, chunk_size: int, options: dict[str, Any]) -> int:
    """Fill the store for one task (the stimuli of its shard); returns the entries computed.

    Runs in a worker process; the model is loaded once per process and kept.
    """
    import torch

    from .extract import extract_features
    from .registry import load_extractor
    from .store import FeatureStore

    if torch.get_num_threads() > 1 and torch.cuda.device_count() == 0:
        torch.set_num_threads(1)  # one thread per dask worker on CPU; the cluster sets the parallelism
    load_opts, extract_opts = _split_options(options)
    key = (task.model, tuple(sorted(load_opts.items())))
    if key not in _LOADED:
        _LOADED[key] = load_extractor(task.model, **load_opts)
    store = FeatureStore(store_root)
    extract_features(_LOADED[key], list(stimuli), prompts, layers, pooling, reuse, store=store,
                     chunk_size=chunk_size, **extract_opts)
    return store.misses


def extract_sharded(
    models: str | Path | Sequence[str | Path],
    stimuli: Sequence[Any],
    prompts,
    layers: Sequence[int | float] | str | None = None,
    pooling: str = "mean",
    reuse: bool = True,
    *,
    store,
    shard_size: int = 8,
    client: Any = None,
    chunk_size: int = 4,
    **options: Any,
) -> ShardedFeatures:
    """Features of every model, computed shard by shard, locally or on a dask cluster.

    Parameters
    ----------
    models : model path / cached hub id, or a list of them
        Paths, not loaded extractors: each worker loads its own copy.
    stimuli : sequence of stimuli (as :func:`~brainalign.features.extract.extract_features`)
    prompts : dict name -> text, list of texts, or one text
    layers, pooling, reuse : as ``extract_features``
    store : FeatureStore
        Shared by every worker (same file system).
    shard_size : int
        Stimuli per task.
    client : distributed.Client, optional
        Run the tasks on this cluster; None runs them here, one after another.
    chunk_size : int
        Stimuli per extraction call inside a task (each chunk is written
        before the next starts).
    **options
        ``device``/``dtype``/``revision``/``trust_remote_code`` for loading;
        the rest (``component``, ``generation``, ``sampling_rate``) for extraction.

    Returns
    -------
    ShardedFeatures
        ``features[model]`` equals ``extract_features(model, stimuli, prompts, ...)``.
    """
    from .extract import extract_features
    from brainalign.stimuli.inputs import check_prompts

    models = [str(models)] if isinstance(models, (str, Path)) else [str(m) for m in models]
    if not models:
        raise ValueError("models is empty: pass at least one model path.")
    if int(shard_size) < 1:
        raise ValueError(f"shard_size={shard_size!r} must be a positive integer.")
    if isinstance(stimuli, np.ndarray) and stimuli.ndim == 4:
        stimuli = list(stimuli)
    stimuli = list(stimuli)
    if not stimuli:
        raise ValueError("stimuli is empty: pass at least one stimulus.")
    prompts = check_prompts(prompts)
    layers = "all" if layers is None else layers
    tasks = plan_shards(models, stimuli, prompts, layers, pooling, store=store, shard_size=int(shard_size),
                        **options)
    args = (prompts, layers, pooling, reuse, str(store.root), int(chunk_size), dict(options))
    if client is None:
        written = [run_shard(t, stimuli[t.start:t.stop], *args) for t in tasks]
    else:
        futures = [client.submit(run_shard, t, stimuli[t.start:t.stop], *args, pure=False) for t in tasks]
        written = client.gather(futures)
    load_opts, extract_opts = _split_options(options)
    features = {}
    for model in models:  # every entry exists now: read back without loading the model
        features[model] = extract_features(model, stimuli, prompts, layers, pooling, reuse, store=store,
                                           **load_opts, **extract_opts)
    return ShardedFeatures(features, tasks, int(sum(written)))
