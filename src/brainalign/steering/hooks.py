"""Plain torch forward hooks: last-input-token self-attention output and residual stream per layer, and offsets.

Works on any Hugging Face transformer whose layers sit in one ``nn.ModuleList``
of length ``config.num_hidden_layers`` (decoder LMs: ``model.model.layers``;
BERT-style encoders: ``encoder.layer``), with the attention sub-module named
``self_attn``, ``attn``, ``self_attention`` or ``attention``. No nnsight.

The "last input token" of each row is the last position where
``attention_mask`` is 1 (left or right padding both work); it is read by a
pre-hook on the root module at the first (prefill) call, so during
``generate`` offsets are added once, at the prompt's last token, as in the authors' code.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

import numpy as np

__all__ = ["decoder_layers", "attention_module", "LayerHooks", "last_token_states", "greedy_answers", "seed_layer_stack"]

_ATTN_NAMES = ("self_attn", "attn", "self_attention", "attention")


def decoder_layers(model):
    """The ``nn.ModuleList`` of transformer layers of ``model``."""
    import torch

    n = getattr(model.config, "num_hidden_layers", None)
    best = None
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) > 0 and (n is None or len(mod) == n):
            if best is None or name.count(".") < best[0].count("."):
                best = (name, mod)
    if best is None:
        raise ValueError(f"no ModuleList of {n} layers found in {type(model).__name__}; pass a transformer model.")
    return best[1]


def attention_module(layer):
    """The self-attention sub-module of one layer."""
    for name in _ATTN_NAMES:
        if hasattr(layer, name):
            return getattr(layer, name)
    raise ValueError(f"layer {type(layer).__name__} has none of the attributes {_ATTN_NAMES}.")


def _first(out):
    return out[0] if isinstance(out, tuple) else out


class LayerHooks:
    """Record and/or shift the last-input-token outputs of attention modules and layers.

    Parameters
    ----------
    model : transformers PreTrainedModel
    record : sequence of {"attention", "residual"}
        Which outputs to record, for every layer.
    offsets : mapping layer -> tensor or ndarray of shape (batch, d) or (d,)
        Added to the last-token self-attention output of that layer.
    residual_offsets : mapping layer -> tensor of shape (batch, d) or (d,)
        Added to the last-token layer output (residual stream).
    detach : bool
        Record detached tensors (False keeps the graph, for fine-tuning losses).

    Use as a context manager; after a forward pass ``self.records[kind]`` is
    a list over layers of tensors of shape (batch, d).
    """

    def __init__(self, model, record: Sequence[str] = ("attention", "residual"),
                 offsets: Mapping[int, object] | None = None, residual_offsets: Mapping[int, object] | None = None,
                 detach: bool = True):
        bad = set(record) - {"attention", "residual"}
        if bad:
            raise ValueError(f"record={list(record)}: unknown {sorted(bad)}; use 'attention' and/or 'residual'.")
        self.model = model
        self.layers = decoder_layers(model)
        self.record = tuple(record)
        self.offsets = dict(offsets or {})
        self.residual_offsets = dict(residual_offsets or {})
        for k in list(self.offsets) + list(self.residual_offsets):
            if not 0 <= k < len(self.layers):
                raise ValueError(f"offset layer {k} is out of range; the model has {len(self.layers)} layers.")
        self.detach = detach
        self.records: dict[str, list] = {}
        self._handles = []
        self._calls = 0
        self._last = None

    @property
    def last_positions(self):
        """Index of each row's last real token in the forward pass just run.

        Returns
        -------
        torch.LongTensor, shape (n_rows,)
            Position of the last non-padding token per row (the read-out and steering position), or ``None``
            before the first forward pass inside the ``with`` block.
        """
        return self._last

    # -- hook bodies
    def _pre(self, module, args, kwargs):
        import torch

        self._calls += 1
        if self._calls == 1:
            mask = kwargs.get("attention_mask")
            ids = kwargs.get("input_ids", args[0] if args else None)
            if mask is None:
                n, t = (ids.shape if ids is not None else kwargs["inputs_embeds"].shape[:2])
                self._last = torch.full((n,), t - 1, dtype=torch.long)
            else:
                t = mask.shape[1]
                pos = torch.arange(t, device=mask.device).expand_as(mask)
                self._last = torch.where(mask.bool(), pos, -1).max(1).values
            self.records = {k: [None] * len(self.layers) for k in self.record}
        return None

    def _apply(self, out, kind, layer, offsets):
        import torch

        if self._calls != 1:
            return None
        h = _first(out)
        rows = torch.arange(h.shape[0], device=h.device)
        last = self._last.to(h.device)  # a sharded model's layers sit on several devices
        if layer in offsets:
            d = torch.as_tensor(offsets[layer], dtype=h.dtype, device=h.device)
            add = torch.zeros_like(h)
            add[rows, last] = d.expand(h.shape[0], h.shape[-1]) if d.ndim == 1 else d
            h = h + add
        if kind in self.records:
            v = h[rows, last]
            self.records[kind][layer] = v.detach() if self.detach else v
        if layer in offsets:
            return (h,) + tuple(out[1:]) if isinstance(out, tuple) else h
        return None

    def __enter__(self) -> "LayerHooks":
        self._calls = 0
        self._handles.append(self.model.register_forward_pre_hook(self._pre, with_kwargs=True))
        for k, layer in enumerate(self.layers):
            att = attention_module(layer)
            self._handles.append(att.register_forward_hook(
                lambda m, a, o, k=k: self._apply(o, "attention", k, self.offsets)))
            self._handles.append(layer.register_forward_hook(
                lambda m, a, o, k=k: self._apply(o, "residual", k, self.residual_offsets)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def stacked(self, kind: str):
        """Records of ``kind`` as a tensor of shape (batch, n_layers, d)."""
        import torch

        if kind not in self.records:
            raise ValueError(f"kind={kind!r} was not recorded; record={self.record}.")
        recs = self.records[kind]
        return torch.stack([r.to(recs[0].device) for r in recs], 1)


def _batches(n: int, size: int) -> Iterator[slice]:
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


def last_token_states(model, tokenizer, prompts: Sequence[str], batch_size: int = 16,
                      kinds: Sequence[str] = ("attention", "residual"), return_logits: bool = False) -> dict:
    """Last-input-token states of every layer for every prompt (one forward pass each batch).

    Inputs go to the device of the model's input embeddings; the states come back to the host as float32
    whatever the model's dtype.

    Returns
    -------
    dict kind -> float32 ndarray of shape (n_prompts, n_layers, d); with
    ``return_logits`` also ``"logits"`` of shape (n_prompts, vocab) at the last token.
    """
    import torch

    from brainalign.features.hf_loading import input_device

    dev = input_device(model)
    out = {k: [] for k in kinds}
    logits = []
    for sl in _batches(len(prompts), batch_size):
        enc = tokenizer(list(prompts[sl]), return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
        with torch.no_grad(), LayerHooks(model, record=kinds) as hk:
            res = model(**enc)
        for k in kinds:
            out[k].append(hk.stacked(k).float().cpu().numpy())
        if return_logits:
            rows = torch.arange(enc["input_ids"].shape[0], device=res.logits.device)
            logits.append(res.logits[rows, hk.last_positions.to(rows.device)].float().cpu().numpy())
    arrays = {k: np.concatenate(v) for k, v in out.items()}
    if return_logits:
        arrays["logits"] = np.concatenate(logits)
    return arrays


def greedy_answers(model, tokenizer, prompts: Sequence[str], offsets: Mapping[int, np.ndarray] | None = None,
                   max_new_tokens: int = 1, batch_size: int = 16) -> list[str]:
    """Greedy responses (``do_sample=False``), optionally with per-prompt offsets on attention outputs.

    ``offsets[layer]`` has shape (n_prompts, d) (row i is added to prompt i)
    or (d,) (the same offset for all). Offsets are cast to each layer's dtype and device (a bfloat16 model on
    a GPU takes float32 numpy offsets).
    """
    import torch

    from brainalign.features.hf_loading import input_device

    dev = input_device(model)
    texts: list[str] = []
    for sl in _batches(len(prompts), batch_size):
        enc = tokenizer(list(prompts[sl]), return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
        off = {k: (np.asarray(v)[sl] if np.ndim(v) == 2 else v) for k, v in (offsets or {}).items()}
        with torch.no_grad(), LayerHooks(model, record=(), offsets=off) as hk:
            if max_new_tokens == 1:
                logits = model(**enc).logits
                rows = torch.arange(logits.shape[0], device=logits.device)
                nxt = logits[rows, hk.last_positions.to(logits.device)].argmax(-1)
                texts += tokenizer.batch_decode(nxt[:, None].cpu(), skip_special_tokens=True)
            else:
                gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                                     pad_token_id=tokenizer.pad_token_id)
                texts += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:].cpu(), skip_special_tokens=True)
    return texts


@contextmanager
def no_hooks_left(model):
    """Assert that a block leaves no forward hooks behind (used by tests)."""
    # torch has no public way to count a module's hooks; these dicts are what register_forward_hook fills.
    before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    yield
    after = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    if after != before:
        raise RuntimeError(f"{after - before} hooks were left on the model.")


def seed_layer_stack(states: dict) -> np.ndarray:
    """The authors' layout: ``[attention layers..., residual layers...]`` → (n_items, 2 n_layers, d)."""
    a, r = np.asarray(states["attention"]), np.asarray(states["residual"])
    if a.shape != r.shape:
        raise ValueError(f"attention {a.shape} and residual {r.shape} differ; the layout stacks equal shapes only.")
    return np.concatenate([a, r], axis=1)
