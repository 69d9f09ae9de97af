"""Brain-guided fine-tuning: NARF+Label (LoRA) and the label-only baseline (Xiao et al. ``finetune_model_sep.py``).

LoRA (peft; r=8, α=16, dropout 0) on q/k/v/o of the self-attention of the
supervised layers only. Loss per item = CE on the answer token ('True' /
'False' first token at the last input position) × ``label_weight`` +
``brain_weight`` × mean over subjects and supervised layers of
``1 − cos(a_ℓ W_sℓ + b_sℓ, y_s)`` with ``a_ℓ`` the last-token attention output
(recorded by a forward hook, graph kept). Gradients are accumulated over
``grad_accumulate`` items per AdamW step (the authors: all 70 fMRI items);
validation accuracy (all premise orders) after every epoch keeps the best
epoch; the adapter is merged and, with ``output_dir``, saved as safetensors.
``brain_weight=0`` is the label-only baseline with otherwise identical settings.

``adapter="full"`` is the authors' pure NARF (``finetune_model_sep.py`` without LoRA): every parameter of the
supervised layers' self-attention is trained (nothing else), with ``label_weight=0`` on the brain loss alone.
An encoder may be a :class:`~brainalign.steering.encoders.TaskEncoders` (one ridge per reasoning type, as the
authors fit them); each item is then predicted by its own type's encoder (``item_tasks``).

Needs the optional dependency ``peft`` (extra ``steering``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from brainalign.steering.encoders import LinearEncoder, TaskEncoders
from brainalign.steering.hooks import LayerHooks, attention_module, decoder_layers
from brainalign.steering.models import answer_token_ids

__all__ = ["FinetuneResult", "brain_finetune", "labels_as_fmri"]


@dataclass
class FinetuneResult:
    model: object                 # merged model
    best_epoch: int
    val_accuracy: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    brain_loss: list = field(default_factory=list)
    saved_to: Path | None = None


def labels_as_fmri(labels) -> np.ndarray:
    """The authors' ``-use_label_as_fmri`` ablation: one-hot labels (n_items, 2) in place of betas."""
    lab = np.asarray(labels, dtype=bool)
    return np.stack([lab, ~lab], 1).astype(np.float32)


def _lora(model, layers: Sequence[int], r: int, alpha: int):
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("brain_finetune needs peft: pip install 'brainalign[steering]' (or pip install peft).") from err
    names = []
    layer_list = decoder_layers(model)
    prefix = {id(m): n for n, m in model.named_modules()}[id(layer_list)]
    for k in layers:
        for n, _ in layer_list[k].named_modules():
            if n.split(".")[-1] in ("q_proj", "k_proj", "v_proj", "o_proj"):
                names.append(f"{prefix}.{k}.{n}")
    if not names:
        raise ValueError(f"no q/k/v/o projections found in layers {list(layers)}.")
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=names, bias="none")
    return get_peft_model(model, cfg)


class _FullAttention:
    """Pure NARF's trainable set: the self-attention parameters of the supervised layers, the rest frozen; it
    offers what brain_finetune uses of a peft model (the model, its trainable state, the final model)."""

    def __init__(self, model, layers: Sequence[int]):
        self.model = model
        for p in model.parameters():
            p.requires_grad_(False)
        layer_list = decoder_layers(model)
        self.named = {}
        prefix = {id(m): n for n, m in model.named_modules()}
        for k in layers:
            attn = attention_module(layer_list[k])
            for n, p in attn.named_parameters():
                p.requires_grad_(True)
                self.named[f"{prefix[id(attn)]}.{n}"] = p
        if not self.named:
            raise ValueError(f"no self-attention parameters found in layers {list(layers)}.")

    def parameters(self):
        return iter(self.named.values())

    def get_base_model(self):
        return self.model

    def trainable_state(self) -> dict:
        return {k: p.detach().clone() for k, p in self.named.items()}

    def load_trainable(self, state: dict):
        import torch

        with torch.no_grad():
            for k, v in state.items():
                self.named[k].copy_(v)

    def finish(self):
        for p in self.model.parameters():
            p.requires_grad_(True)
        return self.model


def _encoder_tensors(enc, item_groups):
    """(coef, intercept) tensors of one encoder: (d, v), (v,) for a LinearEncoder, or stacked per reasoning type
    (n_types, d, v), (n_types, v) for a TaskEncoders (row order of ``item_groups``' codes)."""
    import torch

    if isinstance(enc, TaskEncoders):
        if item_groups is None:
            raise ValueError("the encoders are per reasoning type (TaskEncoders); pass item_tasks, the type of each "
                             "item.")
        codes, names = item_groups
        missing = sorted(set(names) - set(enc.by_task))
        if missing:
            raise ValueError(f"the encoders have no reasoning type {missing} (they have {sorted(enc.by_task)}).")
        coef = torch.as_tensor(np.stack([enc.by_task[t].coef for t in names]), dtype=torch.float32)
        icpt = torch.as_tensor(np.stack([enc.by_task[t].intercept for t in names]), dtype=torch.float32)
        return coef, icpt
    return (torch.as_tensor(enc.coef, dtype=torch.float32), torch.as_tensor(enc.intercept, dtype=torch.float32))


def _predict(a, W, codes):
    """Voxel predictions of the last-token states ``a`` (batch, d) through one encoder's tensors."""
    import torch

    coef, icpt = W
    if coef.ndim == 3:  # per reasoning type: each item through its own type's map
        return torch.einsum("bd,bdv->bv", a, coef[codes]) + icpt[codes]
    return a @ coef + icpt


def _accuracy(model, tokenizer, prompts, labels, t_id, f_id, batch_size=32) -> float:
    import torch

    correct = []
    for s in range(0, len(prompts), batch_size):
        enc = tokenizer(list(prompts[s:s + batch_size]), return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad(), LayerHooks(model, record=()) as hk:
            logits = model(**enc).logits
        last = logits[torch.arange(logits.shape[0]), hk.last_positions]
        pred = last.argmax(-1)
        lab = torch.as_tensor(np.asarray(labels[s:s + batch_size], dtype=bool))
        correct.append(((pred == t_id) & lab) | ((pred == f_id) & ~lab))
    return float(torch.cat(correct).float().mean())


def brain_finetune(model, tokenizer, prompts: Sequence[str], labels, *, layers: Sequence[int],
                   encoders: Sequence[Mapping[int, LinearEncoder]] = (), subjects_Y: Sequence[np.ndarray] = (),
                   brain_weight: float = 0.1, label_weight: float = 1.0, lr: float = 1e-4, epochs: int = 10,
                   grad_accumulate: int | None = None, batch_size: int = 8, val_prompts: Sequence[str] = (),
                   val_labels=(), lora_r: int = 8, lora_alpha: int = 16, seed: int = 0,
                   output_dir: str | Path | None = None, label_mask=None, adapter: str = "lora",
                   item_tasks=None) -> FinetuneResult:
    """LoRA (or full self-attention) fine-tuning with answer CE plus (``brain_weight > 0``) the fMRI cosine loss.

    Parameters
    ----------
    model, tokenizer : a causal LM (modified in place: the adapter is merged into it)
    prompts : list of str (n_items,); labels : bool (n_items,)
    layers : supervised decoder layers (LoRA goes on their attention only)
    encoders : per subject, {layer: LinearEncoder or TaskEncoders}; subjects_Y : per subject (n_items, n_voxels)
    grad_accumulate : items per optimiser step (None: all items, as the authors)
    val_prompts, val_labels : validation set (all premise orders); the best epoch is kept
    label_mask : bool (n_items,), optional
        Items whose label enters the CE loss (default: all). The others only
        carry betas (fMRI items without a label used for training); with
        ``brain_weight=0`` they contribute nothing.
    adapter : {"lora", "full"}
        ``"full"``: train every self-attention parameter of ``layers`` (the authors' pure NARF, with
        ``label_weight=0`` and their lr 1e-6); ``lora_r`` / ``lora_alpha`` are then unused.
    item_tasks : str (n_items,), optional
        Reasoning type of each item; needed when an encoder is a ``TaskEncoders``.

    Returns
    -------
    FinetuneResult
    """
    import torch

    labels = np.asarray(labels, dtype=bool)
    if len(prompts) != labels.size:
        raise ValueError(f"{len(prompts)} prompts but {labels.size} labels.")
    if brain_weight > 0:
        if len(encoders) != len(subjects_Y) or not encoders:
            raise ValueError("brain_weight > 0 needs one encoder mapping and one beta array per subject.")
        for s, (enc, Y) in enumerate(zip(encoders, subjects_Y)):
            if set(layers) - set(enc):
                raise ValueError(f"subject {s} has no encoder for layers {sorted(set(layers) - set(enc))}.")
            if np.asarray(Y).shape[0] != labels.size:
                raise ValueError(f"subject {s} betas have {np.asarray(Y).shape[0]} rows; expected {labels.size}.")
    label_mask = np.ones(labels.size, bool) if label_mask is None else np.asarray(label_mask, dtype=bool)
    if label_mask.shape != labels.shape:
        raise ValueError(f"label_mask has shape {label_mask.shape}; expected ({labels.size},).")
    lmask = torch.as_tensor(label_mask, dtype=torch.float32)
    if adapter not in ("lora", "full"):
        raise ValueError(f"adapter={adapter!r}; use 'lora' (NARF+Label, label-only) or 'full' (pure NARF).")
    groups = None
    if item_tasks is not None:
        item_tasks = np.asarray(item_tasks, dtype=str)
        if item_tasks.shape != labels.shape:
            raise ValueError(f"item_tasks has shape {item_tasks.shape}; expected ({labels.size},).")
        names, codes = np.unique(item_tasks, return_inverse=True)
        groups = (torch.as_tensor(codes), [str(t) for t in names])
    torch.manual_seed(seed)
    t_id, f_id = answer_token_ids(tokenizer)
    peft_model = _lora(model, layers, lora_r, lora_alpha) if adapter == "lora" else _FullAttention(model, layers)
    base = peft_model.get_base_model()  # LoRA layers live inside it; call it directly so the hooks fire
    base.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    n = labels.size
    accumulate = n if grad_accumulate is None else int(grad_accumulate)
    targets = torch.as_tensor(np.where(labels, t_id, f_id))
    Ws = [{k: _encoder_tensors(e[k], groups) for k in layers} for e in encoders] if brain_weight > 0 else []
    codes = groups[0] if groups is not None else None
    Yt = [torch.as_tensor(np.asarray(Y, dtype=np.float32)) for Y in subjects_Y] if brain_weight > 0 else []
    rng = np.random.default_rng(seed)
    res = FinetuneResult(model=None, best_epoch=-1)
    best, best_state = -1.0, None
    has_val = len(val_prompts) > 0
    def _accumulate_batch(idx, tot, tot_b):
        """Forward and backward of one batch (gradients accumulate); the running loss sums."""
        enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        with LayerHooks(base, record=("attention",), detach=False) as hk:
            logits = base(**enc).logits
        last = logits[torch.arange(len(idx)), hk.last_positions]
        ce = torch.nn.functional.cross_entropy(last, targets[idx], reduction="none")
        loss = label_weight * (ce * lmask[idx]).sum()
        bl = torch.zeros(())
        if brain_weight > 0:
            for W, Y in zip(Ws, Yt):
                for k in layers:
                    pred = _predict(hk.records["attention"][k].float(), W[k], None if codes is None else codes[idx])
                    bl = bl + (1 - torch.nn.functional.cosine_similarity(pred, Y[idx], dim=1)).sum()
            bl = bl / (len(Ws) * len(layers))
            loss = loss + brain_weight * bl
        (loss / accumulate).backward()
        tot += float(loss.detach())
        tot_b += float(bl.detach())
        return tot, tot_b

    for epoch in range(epochs):
        order = rng.permutation(n)
        tot, tot_b, pending = 0.0, 0.0, 0
        opt.zero_grad()
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            if brain_weight > 0 or label_mask[idx].any():
                tot, tot_b = _accumulate_batch(idx, tot, tot_b)
            else:
                # This batch's loss is exactly 0 (no labelled item, no brain term), and so is its gradient: skip
                # its forward and backward. Zero gradients still count for the optimiser step, as if computed
                # (AdamW moves on momentum and weight decay), so the result is the same bit for bit.
                for p in params:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
            pending += len(idx)
            if pending >= accumulate or s + batch_size >= n:
                opt.step()
                opt.zero_grad()
                pending = 0
        res.train_loss.append(tot / n)
        res.brain_loss.append(tot_b / n)
        if has_val:
            base.eval()
            acc = _accuracy(base, tokenizer, list(val_prompts), np.asarray(val_labels, dtype=bool), t_id, f_id)
            base.train()
            res.val_accuracy.append(acc)
        else:
            acc = -res.train_loss[-1]
        if acc > best:
            best, res.best_epoch = acc, epoch
            best_state = (peft_model.trainable_state() if adapter == "full" else
                          {k: v.detach().clone() for k, v in peft_model.state_dict().items() if "lora_" in k})
    if best_state is not None:
        if adapter == "full":
            peft_model.load_trainable(best_state)
        else:
            peft_model.load_state_dict(best_state, strict=False)
    merged = peft_model.finish() if adapter == "full" else peft_model.merge_and_unload()
    merged.eval()
    res.model = merged
    if output_dir is not None:
        out = Path(output_dir)
        merged.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        res.saved_to = out
    return res
