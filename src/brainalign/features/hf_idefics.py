"""IDEFICS (v1) adapter (``IdeficsForVisionText2Text``, e.g. ``HuggingFaceM4/idefics-9b-instruct``; NSD study).

IDEFICS does not put image embeddings on tokens. An image is written
``<fake_token_around_image><image><fake_token_around_image>`` in the text (one
``<image>`` token per image), the vision encoder + perceiver resampler turn it
into latents, and gated cross-attention blocks before every decoder block let
each text token attend to the latents of the most recent image before it
(``image_attention_mask``, as ``IdeficsProcessor`` builds it). Consequences
for what is read:

- ``pooling="stimulus"`` averages the ``<image>`` token(s) only (one per
  image), the positions at which image conditioning starts;
- hidden state 0 is what the library records as the first hidden state: the
  input of decoder block 1, i.e. token embeddings after the first gated
  cross-attention block;
- the "connector" component is the perceiver output (mean over latents);
  "vision" reads the vision encoder (pre-norm embeddings + every block).

Reuse across prompts works as for the other adapters: vision encoder and
perceiver once per stimulus, shared prefix once (the cross-attention keys are
the fixed latents, the self-attention cache is reused), prompt suffixes
batched; the image mask of each token follows from its position.
"""
from __future__ import annotations


import torch

from transformers.models.idefics.modeling_idefics import IdeficsBaseModelOutputWithPast

from .hf_compat import cache_kwarg, output_cache
from .hf_multimodal import VisionLanguageExtractor

__all__ = ["IdeficsExtractor", "IDEFICS_CHAT_TEMPLATE", "idefics_image_attention_mask"]

# transformers 5.24 changed how IdeficsModel takes precomputed latents: one row per (batch, image),
# (batch * n_images, n_latents, dim), where earlier releases took (batch, n_images, n_latents, dim).
# The same release replaced the output's ``image_hidden_states`` by ``image_outputs``, which is how it is detected.
_FLAT_LATENTS = "image_outputs" in IdeficsBaseModelOutputWithPast.__dataclass_fields__

# IDEFICS-instruct's dialogue layout: "<s>User:<image>{prompt}<end_of_utterance>\nAssistant:"
# (used when a checkpoint ships no chat template, as idefics-9b-instruct does not).
IDEFICS_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ message['role'].capitalize() }}:"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<image>{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def idefics_image_attention_mask(ids: torch.Tensor, image_token_id: int, eos_token_id: int | None,
                                 n_images: int) -> torch.Tensor:
    """Which image each token attends to, as ``IdeficsProcessor`` computes it.

    Parameters
    ----------
    ids : LongTensor (seq_len,)
    image_token_id, eos_token_id : int
    n_images : int

    Returns
    -------
    LongTensor (seq_len, n_images): 1 where the token attends to that image
    (the most recent ``<image>`` at or before it; none before the first image
    or after an end-of-sequence token until the next image).
    """
    current = -1
    seen_eos = False
    which = []
    for tok in ids.tolist():
        if tok == image_token_id:
            current += 1
            seen_eos = False
        which.append(-1 if seen_eos else current)
        if eos_token_id is not None and tok == eos_token_id:
            seen_eos = True
    which = torch.tensor(which)
    mask = torch.zeros(ids.numel(), max(1, n_images), dtype=torch.long)
    rows = (which >= 0).nonzero().flatten()
    mask[rows, which[rows]] = 1
    return mask


class _CrossAttendingLM:
    """The decoder called like a plain language model by the reuse path.

    Holds the current stimulus' latents and image-token positions (set by
    :meth:`IdeficsExtractor.embed` when the prefix is embedded, through
    :meth:`set_images`) and builds each call's ``image_attention_mask`` from
    the tokens' positions.
    """

    def __init__(self, extractor: "IdeficsExtractor"):
        self.extractor = extractor
        #: (n_images, n_latents, dim) latents the text cross-attends to
        self.latents: torch.Tensor | None = None
        #: (n_images,) positions of the ``<image>`` tokens in the sequence
        self.image_positions: torch.Tensor | None = None

    def set_images(self, ids: torch.Tensor, image_embeds: torch.Tensor) -> None:
        """Keep the latents of the images whose ``<image>`` tokens ``ids`` (1-D or (1, seq_len)) holds."""
        flat = ids.reshape(-1).cpu()
        self.image_positions = (flat == self.extractor.image_token_id).nonzero().flatten()
        n_images = int(self.image_positions.numel())
        self.latents = image_embeds.reshape(n_images, -1, image_embeds.shape[-1])

    @property
    def layers(self):
        return self.extractor.model.model.layers

    def __call__(self, *, inputs_embeds, position_ids, **kwargs):
        ex = self.extractor
        latents, image_positions = self.latents, self.image_positions
        pos = position_ids.to(ex.device)
        which = (pos[..., None] >= image_positions.to(ex.device)).sum(-1) - 1  # (B, L), -1 = before any image
        n_images = latents.shape[0]
        mask = torch.nn.functional.one_hot(which.clamp(min=0), n_images) * (which >= 0)[..., None]
        return ex.model.model(
            inputs_embeds=inputs_embeds, position_ids=pos, image_attention_mask=mask.long(),
            **ex.latent_inputs(latents, inputs_embeds.shape[0]), **kwargs,
        )


class _TextOnlyTokenizer:
    """The tokenizer with ``add_special_tokens=False`` by default.

    ``IdeficsProcessor`` writes ``<s>`` into the text and tokenizes without
    special tokens; a Llama tokenizer called with its defaults would add a
    second BOS.
    """

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __call__(self, text, **kwargs):
        kwargs.setdefault("add_special_tokens", False)
        return self._tokenizer(text, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


class IdeficsExtractor(VisionLanguageExtractor):
    """IDEFICS v1 (``IdeficsForVisionText2Text``): gated cross-attention to perceiver latents.

    Parameters are those of
    :class:`~brainalign.features.hf_multimodal.VisionLanguageExtractor`;
    ``chat_template`` defaults to :data:`IDEFICS_CHAT_TEMPLATE` when neither
    the processor nor the tokenizer has one. Stimuli are images or frame
    sequences (several images before the prompt); videos as such are not
    supported by the architecture.
    """

    model_type = "idefics"
    image_token = "<image>"
    fake_token = "<fake_token_around_image>"

    def __init__(self, model, tokenizer, image_processor, *, chat_template: str | None = None, **kwargs):
        template = chat_template or getattr(tokenizer, "chat_template", None)
        self.template_note = "checkpoint" if template else "brainalign default (IDEFICS_CHAT_TEMPLATE)"
        tokenizer = tokenizer if isinstance(tokenizer, _TextOnlyTokenizer) else _TextOnlyTokenizer(tokenizer)
        super().__init__(model, tokenizer, image_processor, chat_template=template or IDEFICS_CHAT_TEMPLATE,
                         **kwargs)
        self.meta.setdefault("chat_template", self.template_note)
        self.image_token_id = int(tokenizer.convert_tokens_to_ids(self.image_token))
        if self.image_token_id == tokenizer.unk_token_id or self.image_token_id is None:
            raise ValueError(f"{self.model_id}: the tokenizer has no {self.image_token!r} token.")
        self._lm = _CrossAttendingLM(self)

    @staticmethod
    def read_stimulus_token_id(config) -> int:
        return -1  # IdeficsConfig has no image token id; set from the tokenizer in __init__

    def placeholder_token_ids(self) -> list[int]:
        return sorted({self.image_token_id, int(self.tokenizer.convert_tokens_to_ids(self.fake_token))})

    @property
    def n_vision_layers(self) -> int:
        return int(self.model.config.vision_config.num_hidden_layers)

    @property
    def language_model(self):
        return self._lm

    def expand_placeholder(self, n_stimulus_tokens):
        return (self.fake_token + self.image_token + self.fake_token) * n_stimulus_tokens

    def postprocess_text(self, text):
        # consecutive images share their separator, as the processor writes them
        return text.replace(self.fake_token + self.fake_token, self.fake_token)

    def process_frames(self, frames):
        pix = self.image_processor(list(frames), return_tensors="pt")
        pix = pix["pixel_values"] if hasattr(pix, "keys") else pix
        return {"pixel_values": pix[None].to(self.device, self.model.dtype), "_n": len(frames)}

    def tokens_per_frame(self, image_inputs):
        return [1] * int(image_inputs["_n"])

    def _mask(self, ids: torch.Tensor, n_images: int) -> torch.Tensor:
        return idefics_image_attention_mask(ids.reshape(-1).cpu(), self.image_token_id, self.tokenizer.eos_token_id,
                                            n_images)[None].to(self.device)

    def model_inputs(self, input_ids, image_inputs):
        return {"input_ids": input_ids, "pixel_values": image_inputs["pixel_values"],
                "image_attention_mask": self._mask(input_ids, int(image_inputs["_n"]))}

    def position_ids(self, input_ids, image_inputs):
        return torch.arange(input_ids.shape[-1], device=self.device)[None]

    def encode_image(self, image_inputs, vision_states=False):
        """Perceiver latents (n_images * n_latents, vision_dim) and the vision encoder's states."""
        inner = self.model.model
        pix = image_inputs["pixel_values"][0]
        states: list[torch.Tensor] = []
        handles = []
        if vision_states:
            vm = inner.vision_model
            handles.append(vm.pre_layrnorm.register_forward_hook(lambda m, a, o: states.append(o)))
            for block in vm.encoder.layers:
                handles.append(block.register_forward_hook(
                    lambda m, a, o: states.append(o[0] if isinstance(o, tuple) else o)))
        try:
            hidden = inner.vision_model(pixel_values=pix).last_hidden_state
        finally:
            for h in handles:
                h.remove()
        if self.model.config.use_resampler:
            hidden = inner.perceiver_resampler(hidden)
        embeds = hidden.reshape(-1, hidden.shape[-1])
        return embeds, (tuple(s.reshape(-1, s.shape[-1]) for s in states) if vision_states else None)

    def latent_inputs(self, latents: torch.Tensor, batch: int) -> dict[str, torch.Tensor]:
        """Keyword arguments that give ``IdeficsModel`` precomputed image latents for ``batch`` sequences.

        Parameters
        ----------
        latents : Tensor (n_images, n_latents, dim)
            Perceiver output (or vision encoder output without a resampler).
        batch : int
            Rows of the text batch; every row attends to the same images.

        Returns
        -------
        ``{"perceiver_embeddings" | "image_encoder_embeddings": Tensor}`` in the
        layout the installed transformers expects.
        """
        key = "perceiver_embeddings" if self.model.config.use_resampler else "image_encoder_embeddings"
        rows = latents[None].expand(batch, *latents.shape)
        return {key: rows.reshape(-1, *latents.shape[1:]) if _FLAT_LATENTS else rows}

    def embed(self, ids, image_embeds):
        """Token embeddings only; encoder output given here is kept for the cross-attention of the next calls."""
        if image_embeds is not None:
            self._lm.set_images(ids, image_embeds)
        return self.model.get_input_embeddings()(ids.to(self.device))

    @torch.inference_mode()
    def generate_response(self, seq, image_inputs, gen):
        """Greedy / seeded decoding with the plain model forward, passing latents and the image mask each step."""
        eos = self.eos_token_ids()
        generator = self.seeded_generator(gen)
        ids = seq.ids[None].to(self.device)
        inputs = self.model_inputs(ids, image_inputs)
        step_mask = inputs["image_attention_mask"][:, -1:]
        # the images are encoded once, as the model encodes them, and every call gets the latents (what a model
        # output carries for reuse changed in transformers 5.24, so it is not read back from there)
        embeds, _ = self.encode_image(image_inputs)
        latents = self.latent_inputs(embeds.reshape(int(image_inputs["_n"]), -1, embeds.shape[-1]), 1)
        del inputs["pixel_values"]
        out = self.model(**inputs, **latents, use_cache=True, logits_to_keep=1)
        new: list[torch.Tensor] = []
        for _ in range(gen.max_new_tokens):
            tok = self.next_tokens(out.logits[:, -1], gen, [generator])
            new.append(tok)
            if int(tok) in eos:
                break
            out = self.model(input_ids=tok.view(1, 1), **cache_kwarg(output_cache(out)), use_cache=True,
                             logits_to_keep=1, image_attention_mask=step_mask, **latents)
        return self.with_response(seq, torch.cat(new) if new else torch.zeros(0, dtype=torch.long))

