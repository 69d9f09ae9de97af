"""InstructBLIP adapter: vision encoder, instruction-aware Q-Former, language model.

InstructBLIP feeds the instruction to the Q-Former too, so the image tokens
the language model sees depend on the prompt and come *first* in its input:
no key/value prefix can be shared across prompts. Reuse therefore means: the
vision encoder (by far the largest part, EVA ViT-g) runs once per image; the
Q-Former and the language model run once per image on all prompts as one
batch (Q-Former padding masked; language model right-padded, which causal
attention keeps out of real tokens).

Components: "language" (LM hidden states), "attention" (each LM block's
self-attention output), "vision" (vision encoder, prompt-independent) and
"qformer" (Q-Former hidden states; the NSD study's code stored these and the vision
states, mean over tokens).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .base import FeatureSet, stimulus_id_list
from .hf_compat import cache_kwarg, output_cache
from .hf_multimodal import VisionLanguageExtractor
from brainalign.stimuli.inputs import check_prompts
from .pooling import POOLINGS, GenerationConfig, TokenMasks, TokenSequence, check_pooling, pool_tokens

__all__ = ["InstructBlipExtractor"]

COMPONENTS = ("language", "attention", "vision", "qformer")


class InstructBlipExtractor(VisionLanguageExtractor):
    """Prompt-conditioned features of ``InstructBlipForConditionalGeneration`` (decoder-only LM).

    A :class:`~brainalign.features.hf_multimodal.VisionLanguageExtractor`
    whose connector (the Q-Former) reads the instruction: it keeps the
    contract's device, language-model hooks, decoding rules (end tokens,
    seeded generators, banned placeholders), response bookkeeping and layer
    resolution, and replaces what that changes: no chat template (the
    prompt is the LM text, after the query tokens), :meth:`tokenize` also
    gives the Q-Former ids, :meth:`process_image` gives pixel values, and
    :meth:`extract` runs the Q-Former per prompt. Takes no in-context
    examples.

    Parameters
    ----------
    model : InstructBlipForConditionalGeneration
    tokenizer : the language model's tokenizer
    qformer_tokenizer : the Q-Former's (BERT) tokenizer
    image_processor : BLIP image processor
    model_id : str
    pooling : default pooling of the language components ("mean", "stimulus",
        "prompt", "last"); the Q-Former takes "mean" (all its tokens: queries
        + instruction, as the NSD study's code) or "stimulus" (query tokens only).
    prompt_batch_size : prompts per Q-Former/LM batch in the reuse path
    meta : dict, optional
    """

    model_type = "instructblip"
    uses_chat_template = False
    takes_in_context_examples = False

    def __init__(self, model, tokenizer, qformer_tokenizer, image_processor, *, model_id: str = "",
                 pooling: str = "mean", prompt_batch_size: int = 16, meta: dict[str, Any] | None = None,
                 generation: GenerationConfig | None = None, **_ignored: Any):
        if not model.config.use_decoder_only_language_model:
            raise ValueError(f"{model_id}: only decoder-only language models are supported (not Flan-T5 variants).")
        super().__init__(model, tokenizer, image_processor, model_id=model_id, pooling=pooling,
                         generation=generation, prompt_batch_size=prompt_batch_size, meta=meta)
        self.qformer_tokenizer = qformer_tokenizer
        cfg = model.config
        self.n_qformer_layers = int(cfg.qformer_config.num_hidden_layers)
        self.num_query_tokens = int(cfg.num_query_tokens)

    @staticmethod
    def read_stimulus_token_id(config) -> int:
        return int(config.image_token_index)

    @property
    def n_vision_layers(self) -> int:
        return int(self.model.config.vision_config.num_hidden_layers)

    def component_depth(self, component: str) -> int:
        return self.n_qformer_layers if component == "qformer" else super().component_depth(component)

    @property
    def language_model(self):
        """The decoder (``LlamaModel``...) inside the causal LM."""
        return self.model.language_model.model

    # --------------------------------------------------------------- inputs
    def tokenize(self, prompt: str):
        """LM ids (query placeholders, then the prompt as InstructBlipProcessor builds them), masks, Q-Former ids.

        Returns
        -------
        ids : LongTensor (num_query_tokens + n_text,)
        masks : TokenMasks over ``ids``
        qformer_ids : LongTensor (n_qformer_text,)
        """
        enc = self.tokenizer(prompt, return_offsets_mapping=True)
        text_ids = torch.tensor(enc["input_ids"], dtype=torch.long)
        offsets = torch.tensor(enc["offset_mapping"], dtype=torch.long).reshape(-1, 2)
        special = torch.tensor([i in self.tokenizer.all_special_ids for i in enc["input_ids"]], dtype=torch.bool)
        in_prompt = (offsets[:, 1] > offsets[:, 0]) & ~special
        q = self.num_query_tokens
        ids = torch.cat([torch.full((q,), self.image_token_id, dtype=torch.long), text_ids])
        masks = TokenMasks(
            stimulus=torch.cat([torch.ones(q, dtype=torch.bool), torch.zeros(text_ids.numel(), dtype=torch.bool)]),
            prompt=torch.cat([torch.zeros(q, dtype=torch.bool), in_prompt]),
        )
        qformer_ids = torch.tensor(self.qformer_tokenizer(prompt)["input_ids"], dtype=torch.long)
        return ids, masks, qformer_ids

    def token_report(self, prompts) -> dict[str, dict]:
        """Token counts per prompt (LM and Q-Former)."""
        out = {}
        for name, text in check_prompts(prompts).items():
            ids, masks, qids = self.tokenize(text)
            out[name] = {
                "prompt_tokens": int(masks.prompt.sum()),
                "input_tokens": int(ids.numel()),
                "qformer_tokens": int(qids.numel()),
            }
        return out

    def prepare_stimuli(self, stimuli: Sequence[Any], **options: Any) -> list:
        """Validated stimuli, each a single image (a one-frame list)."""
        frames = super().prepare_stimuli(stimuli)
        if any(len(f) != 1 for f in frames):
            raise ValueError("InstructBLIP takes one image per stimulus; pass single images, not frame sequences.")
        return frames

    def process_image(self, image: np.ndarray) -> torch.Tensor:
        """Pixel values (1, 3, H, W) of one image, on the model device."""
        pix = self.image_processor(images=[image], return_tensors="pt")["pixel_values"]
        return pix.to(self.device, self.model.dtype)

    # ------------------------------------------------------------- running
    def _qformer(self, image_embeds: torch.Tensor, qformer_ids: list[torch.Tensor], want_states: bool):
        """Q-Former on one image's embeddings for several instructions (padded batch)."""
        n = len(qformer_ids)
        width = max(int(q.numel()) for q in qformer_ids)
        ids = torch.zeros(n, width, dtype=torch.long, device=self.device)
        att = torch.zeros(n, width, dtype=torch.long, device=self.device)
        for row, q in enumerate(qformer_ids):
            ids[row, : q.numel()] = q
            att[row, : q.numel()] = 1
        queries = self.model.query_tokens.expand(n, -1, -1)
        q = queries.shape[1]
        embeds = image_embeds.expand(n, -1, -1)
        out = self.model.qformer(
            input_ids=ids,
            attention_mask=torch.cat([torch.ones(n, q, dtype=torch.long, device=self.device), att], dim=1),
            query_embeds=queries,
            encoder_hidden_states=embeds,
            encoder_attention_mask=torch.ones(embeds.shape[:-1], dtype=torch.long, device=self.device),
            output_hidden_states=want_states,
            return_dict=True,
        )
        lm_inputs = self.model.language_projection(out.last_hidden_state[:, :q])
        states = None
        if want_states:
            lengths = [q + int(x.numel()) for x in qformer_ids]
            states = [torch.stack([h[row, : lengths[row]] for h in out.hidden_states]) for row in range(n)]
        return lm_inputs, states

    def _embed_rows(self, rows: list[tuple[torch.Tensor, torch.Tensor]]):
        """Right-padded input embeddings (n, width, d) of (ids, image-token embeddings) rows, and lengths."""
        n = len(rows)
        lengths = [int(ids.numel()) for ids, _ in rows]
        ids = torch.zeros(n, max(lengths), dtype=torch.long, device=self.device)
        for row, (x, _) in enumerate(rows):
            ids[row, : x.numel()] = x
        return self.embed(ids, torch.cat([img for _, img in rows])), lengths

    def _decode(self, rows: list[tuple[torch.Tensor, torch.Tensor]], gen: GenerationConfig) -> list[torch.Tensor]:
        """Responses of (ids, image-token embeddings) rows decoded together (greedy or seeded top-k).

        Right padding is masked and each row continues its own positions, so
        a row's response does not depend on the batch it is decoded in.
        """
        lm = self.model.language_model
        emb, lengths = self._embed_rows(rows)
        n, width = emb.shape[:2]
        mask = torch.zeros(n, width, dtype=torch.long, device=self.device)
        for row, length in enumerate(lengths):
            mask[row, :length] = 1
        pos = torch.arange(width, device=self.device)[None].expand(n, -1)
        out = lm(inputs_embeds=emb, attention_mask=mask, position_ids=pos, use_cache=True)
        last = torch.tensor(lengths, device=self.device) - 1
        logits = out.logits[torch.arange(n, device=self.device), last]
        eos = self.eos_token_ids()
        generators = [self.seeded_generator(gen) for _ in rows]
        new: list[list[torch.Tensor]] = [[] for _ in rows]
        done = [False] * n
        for step in range(gen.max_new_tokens):
            toks = self.next_tokens(logits, gen, generators)
            for row in range(n):
                if not done[row]:
                    new[row].append(toks[row : row + 1])
                    done[row] = int(toks[row]) in eos
            if all(done) or step == gen.max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones(n, 1, dtype=mask.dtype, device=self.device)], dim=1)
            out = lm(input_ids=toks[:, None], attention_mask=mask, **cache_kwarg(output_cache(out)),
                     position_ids=torch.tensor(lengths, device=self.device)[:, None] + step, use_cache=True)
            logits = out.logits[:, -1]
        return [torch.cat(t).cpu() if t else torch.zeros(0, dtype=torch.long) for t in new]

    def _lm_states(self, rows: list[tuple[torch.Tensor, torch.Tensor]], layers: list[int], component: str):
        """Run the LM on (ids, image-token embeddings) rows as one right-padded batch."""
        emb, lengths = self._embed_rows(rows)
        with self.capture(component, layers) as states:
            out = self.language_model(inputs_embeds=emb, output_hidden_states=True, use_cache=False)
            return [states(out, row)[:, : lengths[row]] for row in range(len(rows))]

    def _naive_lm(self, pix, ids, qids, layers, component):
        """Reference: one plain model forward per (image, prompt)."""
        with self.capture(component, layers) as states:
            out = self.model(pixel_values=pix, input_ids=ids[None].to(self.device),
                             qformer_input_ids=qids[None].to(self.device), output_hidden_states=True)
            return states(out.language_model_outputs)

    # ------------------------------------------------------------ extract
    def extract(self, stimuli: Sequence[Any], prompts, layers: Sequence[int | float] | str = "all", *,
                pooling: str | None = None, reuse: bool = True, component: str = "language",
                stimulus_ids: Sequence[str] | None = None, generation: GenerationConfig | None = None,
                **_ignored: Any) -> dict[str, FeatureSet]:
        """Features (n_stimuli, n_layers, dim) per prompt; see :class:`VisionLanguageExtractor.extract`."""
        images = [f[0] for f in self.prepare_stimuli(stimuli)]
        prompts = check_prompts(prompts)
        pooling = check_pooling(pooling or self.pooling)
        if component not in COMPONENTS:
            raise ValueError(f"component={component!r}: choose one of {COMPONENTS}.")
        gen = generation or self.generation
        if pooling == "generated" and component not in ("language", "attention"):
            raise ValueError(f"pooling='generated' is for the language components, not {component!r}.")
        if component == "vision" and pooling != "mean":
            raise ValueError(f"pooling={pooling!r}: the vision component is mean-pooled (use pooling='mean').")
        if component == "qformer" and pooling not in ("mean", "stimulus"):
            raise ValueError(f"pooling={pooling!r}: the qformer component takes 'mean' (all tokens) or 'stimulus' "
                             "(query tokens).")
        ids_ = stimulus_id_list(stimulus_ids, len(images))
        layer_idx = self.component_layers(layers, component)

        names = list(prompts)
        toks = {n: self.tokenize(prompts[n]) for n in names}
        values: dict[str, list[np.ndarray]] = {n: [] for n in names}
        texts: dict[str, list[str]] = {n: [] for n in names}
        q = self.num_query_tokens
        with torch.inference_mode():
            for img in images:
                pix = self.process_image(img)
                if component == "vision":
                    out = self.model.vision_model(pixel_values=pix, output_hidden_states=True, return_dict=True)
                    vec = torch.stack([out.hidden_states[i][0].double().mean(0) for i in layer_idx]).float()
                    for n in names:
                        values[n].append(vec.cpu().numpy())
                    continue
                if component == "qformer":
                    image_embeds = self.model.vision_model(pixel_values=pix, return_dict=True).last_hidden_state
                    groups = [names] if reuse else [[n] for n in names]
                    for group in groups:
                        _, states = self._qformer(image_embeds, [toks[n][2] for n in group], want_states=True)
                        for n, st in zip(group, states):
                            sel = st[layer_idx] if pooling == "mean" else st[layer_idx][:, :q]
                            values[n].append(sel.double().mean(1).float().cpu().numpy())
                    continue
                if reuse:
                    image_embeds = self.model.vision_model(pixel_values=pix, return_dict=True).last_hidden_state
                    step = max(1, self.prompt_batch_size)
                    for start in range(0, len(names), step):
                        chunk = names[start : start + step]
                        lm_inputs, _ = self._qformer(image_embeds, [toks[n][2] for n in chunk], want_states=False)
                        rows = [(toks[n][0], lm_inputs[r]) for r, n in enumerate(chunk)]
                        seqs = [TokenSequence(toks[n][0], toks[n][1], "") for n in chunk]
                        if pooling == "generated":
                            news = self._decode(rows, gen)
                            seqs = [self.with_response(s, t) for s, t in zip(seqs, news)]
                            rows = [(s.ids, r[1]) for s, r in zip(seqs, rows)]
                            for n, s in zip(chunk, seqs):
                                texts[n].append(s.text)
                        for n, s, h in zip(chunk, seqs, self._lm_states(rows, layer_idx, component)):
                            values[n].append(pool_tokens(h, s.masks, pooling).cpu().numpy())
                else:
                    for n in names:
                        ids, masks, qids = toks[n]
                        if pooling == "generated":
                            lm_inputs = self.model.get_image_features(
                                pixel_values=pix, qformer_input_ids=qids[None].to(self.device), return_dict=True
                            ).pooler_output
                            new = self._decode([(ids, lm_inputs[0])], gen)[0]
                            seq = self.with_response(TokenSequence(ids, masks, ""), new)
                            texts[n].append(seq.text)
                            ids, masks = seq.ids, seq.masks
                        h = self._naive_lm(pix, ids, qids, layer_idx, component)
                        values[n].append(pool_tokens(h, masks, pooling).cpu().numpy())

        meta = {**self.meta, "model_type": self.model_type, "component": component, "pooling": pooling,
                "pooling_description": POOLINGS.get(pooling, ""), "reuse": bool(reuse),
                "n_stimulus_tokens": [q] * len(images), "n_frames": [1] * len(images)}
        if pooling == "generated":
            meta["generation"] = gen.as_dict()
        return {
            n: FeatureSet(values=np.stack(values[n]).astype(np.float32), stimulus_ids=list(ids_), layers=layer_idx,
                          model=self.model_id, prompt=n,
                          meta=dict(meta, prompt_text=prompts[n],
                                    **({"generated_text": texts[n]} if pooling == "generated" else {})))
            for n in names
        }
