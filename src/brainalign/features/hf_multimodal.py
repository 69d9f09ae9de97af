"""Adapters over Hugging Face multimodal LLMs (native transformers classes only).

One class, :class:`VisionLanguageExtractor`, implements the whole
prompt-conditioned extraction contract (validation, chat templates, token
roles, pooling, decoding, naive and reuse-across-prompts paths). Each
architecture subclass only says how to preprocess a stimulus, how many
placeholder tokens it takes, how to run the modality encoder, and which
position ids its language model expects. The subclasses live in
:mod:`~brainalign.features.hf_vlm_families` (vision) and
:mod:`~brainalign.features.hf_audio_llm` (audio):

- :class:`QwenVLExtractor`: Qwen2-VL / Qwen2.5-VL (also UI-TARS): images,
  frame sequences and :class:`Video` clips; M-RoPE 3-D positions computed
  from ``mm_token_type_ids``.
- :class:`LlavaExtractor`: LLaVA-1.5 (CLIP vision tower + projector + Llama).
- :class:`InternVLExtractor`: InternVL ``-hf`` checkpoints (tiled images).
- :class:`QwenAudioExtractor`: Qwen2-Audio (waveforms).
- :class:`Idefics2Extractor`: Idefics2 (SigLIP, perceiver resampler, Mistral).
- :class:`LlavaNextExtractor`: LLaVA-NeXT / LLaVA-1.6 (any-resolution tiles + newline tokens).

InstructBLIP, whose connector reads the instruction, is a subclass in
:mod:`brainalign.features.hf_instructblip` that replaces the extraction loop
(no shared prefix); unimodal baselines are in
:mod:`~brainalign.features.hf_vision` and :mod:`~brainalign.features.hf_audio`.
Use :func:`brainalign.features.registry.load_extractor` to build any of them
from a model id or a local folder.

Stimuli and prompts are validated by :mod:`brainalign.stimuli.inputs`
(re-exported here).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from .hf_compat import cache_kwarg, output_cache
from .base import FeatureSet, resolve_layers, stimulus_id_list
from .hf_loading import input_device
from .pooling import POOLINGS, GenerationConfig, TokenMasks, TokenSequence, check_pooling, next_tokens, pool_tokens
from .reuse import generate_with_shared_prefix, hidden_with_shared_prefix
from brainalign.stimuli.inputs import Video, check_images, check_prompts, check_stimuli, stimulus_digest

__all__ = ["VisionLanguageExtractor", "COMPONENTS", "Video", "check_images", "check_stimuli", "stimulus_digest",
           "check_prompts"]

#: What can be read: the language model's hidden states (residual stream; one
#: slice per decoder block + embeddings at index 0), the output of each
#: block's self-attention (index i = block i, 1..n_layers; Xiao et al. read it at
#: the last token), the modality encoder's hidden states ("vision"; "audio"
#: for audio LLMs), or the connector's output (one slice, index 0).
COMPONENTS = ("language", "attention", "vision", "connector")


class VisionLanguageExtractor:
    """Prompt-conditioned layer-wise features from an image-text-to-text model.

    Parameters
    ----------
    model : PreTrainedModel
        A native transformers vision-language model, in eval mode.
    tokenizer : PreTrainedTokenizerFast
        Its tokenizer (offsets are used to find the prompt's tokens).
    image_processor : BaseImageProcessor
        Its image processor.
    model_id : str
        Name recorded in every FeatureSet.
    chat_template : str, optional
        Jinja template; defaults to the processor's / tokenizer's.
    pooling : str
        Default pooling (see :data:`brainalign.features.pooling.POOLINGS`).
    generation : GenerationConfig, optional
        Decoding for ``pooling="generated"`` (greedy by default).
    prompt_batch_size : int
        How many prompt suffixes run together in the reuse path.
    batch_size : int
        How many stimuli the modality encoder reads in one call (families with
        :attr:`batch_keys`; images are concatenated, not padded, so a batch
        gives the features of one-by-one encoding up to float rounding). The
        language model then reads each stimulus with its prompts.
    meta : dict, optional
        Extra provenance stored in every FeatureSet (revision, loader notes).
    """

    model_type: ClassVar[str] = ""
    #: the token that stands for one stimulus embedding in the LM input
    image_token: ClassVar[str] = ""
    #: what the chat template renders for an image (defaults to image_token)
    placeholder: ClassVar[str] = ""
    #: the token of one video embedding (video-capable adapters only)
    video_token: ClassVar[str] = ""
    #: whether prompts are rendered with a chat template (one is then required)
    uses_chat_template: ClassVar[bool] = True
    #: whether :func:`~brainalign.features.in_context_extract.extract_in_context` can put worked examples first
    takes_in_context_examples: ClassVar[bool] = True
    #: processor outputs that several stimuli concatenate along dim 0 into one :meth:`encode_image` call, whose
    #: output rows then follow the stimuli in order (empty: the family encodes one stimulus per call)
    batch_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        model,
        tokenizer,
        image_processor,
        *,
        model_id: str = "",
        chat_template: str | None = None,
        pooling: str = "mean",
        generation: GenerationConfig | None = None,
        prompt_batch_size: int = 16,
        batch_size: int = 8,
        meta: dict[str, Any] | None = None,
    ):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size}; give at least 1 stimulus per encoder call.")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.model_id = model_id or getattr(model.config, "_name_or_path", "") or self.model_type
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None)
        if self.uses_chat_template and not self.chat_template:
            raise ValueError(
                f"{self.model_id}: no chat template found on the processor or tokenizer; pass chat_template=."
            )
        self.pooling = check_pooling(pooling)
        self.generation = generation or GenerationConfig()
        self.prompt_batch_size = int(prompt_batch_size)
        self.batch_size = int(batch_size)
        self.meta = dict(meta or {})
        self.model_type = str(getattr(model.config, "model_type", self.model_type))
        text_cfg = model.config.get_text_config()
        self.n_layers = int(text_cfg.num_hidden_layers)
        self.image_token_id = self.read_stimulus_token_id(model.config)
        self._token_cache: dict[tuple[str, int], TokenSequence] = {}
        self._position_cache: dict[tuple, torch.Tensor] = {}

    @classmethod
    def checkpoint_options(cls, path: str, hf: dict[str, Any], image_processor) -> tuple[dict, dict]:
        """What a checkpoint gives this adapter beyond model, tokenizer, image processor and chat template.

        Called by :func:`brainalign.features.hf_loading.chat_model_factory`
        before the adapter is built.

        Parameters
        ----------
        path : str
            Local folder or cached hub id.
        hf : dict
            Its ``from_pretrained`` keyword arguments (offline).
        image_processor : BaseImageProcessor

        Returns
        -------
        meta : dict
            Extra provenance for ``meta``.
        kwargs : dict
            Extra keyword arguments of the constructor. None by default.
        """
        return {}, {}

    # ------------------------------------------------------------------ hooks
    #: name of the modality-encoder component ("vision"; "audio" for audio LLMs)
    encoder_component: ClassVar[str] = "vision"

    @staticmethod
    def read_stimulus_token_id(config) -> int:
        """Id of the placeholder token of one stimulus embedding."""
        return int(config.image_token_id)

    def prepare_stimuli(self, stimuli: Sequence[Any], **options: Any) -> list:
        """Validate stimuli (images, frame sequences, :class:`Video`)."""
        if options.get("sampling_rate") is not None:
            raise ValueError(f"sampling_rate is for audio stimuli; {self.model_type} takes images.")
        return check_stimuli(stimuli, "stimuli")

    def process_stimulus(self, stimulus) -> tuple[dict[str, torch.Tensor], str]:
        """Processor output of one validated stimulus and its kind ("image", "video", "audio")."""
        if isinstance(stimulus, Video):
            return self.process_video(stimulus), "video"
        return self.process_frames(stimulus), "image"

    @staticmethod
    def process_kind(stimulus) -> str:
        return "video" if isinstance(stimulus, Video) else "image"

    @staticmethod
    def stimulus_frames(stimulus) -> int:
        return len(stimulus.frames) if isinstance(stimulus, Video) else len(stimulus)

    @property
    def device(self) -> torch.device:
        return input_device(self.model)

    @property
    def n_vision_layers(self) -> int:
        raise NotImplementedError

    @property
    def language_model(self):
        return self.model.model.language_model

    def component_depth(self, component: str) -> int:
        """Blocks of ``component``: its states are indices 0..depth (the connector has one state, index 0)."""
        if component in ("language", "attention"):
            return self.n_layers
        if component == self.encoder_component:
            return self.n_vision_layers
        if component == "connector":
            return 0
        raise ValueError(f"{self.model_id} has no {component!r} component.")

    def component_layers(self, layers: Sequence[int | float] | str, component: str = "language") -> list[int]:
        """Absolute state indices of ``component`` that a layer request names.

        Parameters
        ----------
        layers : "all", ints (negative from the end) or floats in [0, 1]
            See :func:`~brainalign.features.base.resolve_layers`.
        component : str
            "attention" has no state 0 (``"all"`` means blocks 1..n_layers).

        Returns
        -------
        list of int, sorted
        """
        try:
            idx = resolve_layers(layers, self.component_depth(component))
        except ValueError as err:
            raise ValueError(f"layers={layers!r} for the {component} component of {self.model_id}: {err}") from None
        if component == "attention":
            if layers == "all":
                idx = [i for i in idx if i > 0]
            elif 0 in idx:
                raise ValueError(
                    f"layers={layers!r}: the attention component has no layer 0 (embeddings); "
                    f"use block indices 1..{self.n_layers} (or negative ones)."
                )
        return idx

    def process_frames(self, frames: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """Image processor output for the frames of one stimulus (tensors on the model device)."""
        raise NotImplementedError

    def process_image(self, image: np.ndarray) -> dict[str, torch.Tensor]:
        """Image processor output for one image."""
        return self.process_frames([image])

    def process_video(self, video: Video) -> dict[str, torch.Tensor]:
        """Processor output for one clip given as a video."""
        raise ValueError(
            f"the {self.model_type} adapter takes no video input; pass the clip's frames as a list or a "
            "(n_frames, H, W, 3) array instead (they enter as consecutive images)."
        )

    def tokens_per_frame(self, image_inputs: dict[str, torch.Tensor]) -> list[int]:
        """Number of placeholder tokens of each frame, in order."""
        raise NotImplementedError

    def n_stimulus_tokens(self, image_inputs: dict[str, torch.Tensor]) -> int:
        """Total placeholder tokens of a stimulus."""
        return int(sum(self.tokens_per_frame(image_inputs)))

    def encode_image(self, image_inputs: dict[str, torch.Tensor], vision_states: bool = False):
        """Run the modality encoder once.

        Returns
        -------
        embeds : Tensor of shape (n_stimulus_tokens, lm_dim)
            Connector output that replaces the placeholder tokens (all
            frames, in order).
        states : tuple of Tensor (n_patches, vision_dim), or None
            Vision encoder hidden states (embeddings + every block; patches
            of all frames) when ``vision_states``.
        """
        raise NotImplementedError

    def encode_stimuli(self, inputs: Sequence[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
        """Connector output of several stimuli: one :meth:`encode_image` call where :attr:`batch_keys` allow it.

        Parameters
        ----------
        inputs : sequence of dict
            :meth:`process_stimulus` outputs.

        Returns
        -------
        list of Tensor, one (n_stimulus_tokens_i, lm_dim) per stimulus
        """
        inputs = list(inputs)
        keys = set(self.batch_keys)
        if len(inputs) < 2 or not keys or any({k for k in d if not k.startswith("_")} != keys for d in inputs):
            return [self.encode_image(d)[0] for d in inputs]
        merged = {k: torch.cat([d[k] for d in inputs]) for k in self.batch_keys}
        embeds = self.encode_image(merged)[0]
        return list(torch.split(embeds, [self.n_stimulus_tokens(d) for d in inputs]))

    def position_ids(self, input_ids: torch.Tensor, image_inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Language-model position ids of one sequence, shape (..., 1, seq_len)."""
        raise NotImplementedError

    def model_inputs(self, input_ids: torch.Tensor, image_inputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Keyword arguments of ``model(...)`` for (1, seq_len) ids (keys starting with "_" are ours)."""
        return {"input_ids": input_ids, **{k: v for k, v in image_inputs.items() if not k.startswith("_")}}

    def placeholder_token_ids(self) -> list[int]:
        """Token ids that stand for stimulus slots (never generated; replaced by encoder output)."""
        ids = {self.image_token_id}
        for attr in ("video_token_id", "audio_token_id"):
            value = getattr(self.model.config, attr, None)
            if isinstance(value, int):
                ids.add(value)
        return sorted(ids)

    def reset_state(self) -> None:
        """Clear state a model keeps between calls (e.g. Qwen's rope_deltas)."""

    # --------------------------------------------------------------- tokens
    def expand_placeholder(self, n_stimulus_tokens: int) -> str:
        """Text that replaces the rendered image placeholder (as the model's processor does)."""
        return self.image_token * n_stimulus_tokens

    def postprocess_text(self, text: str) -> str:
        """Processor-specific fix-ups of the expanded text (none by default)."""
        return text

    def render(self, prompt: str, n_frames: int = 1, kind: str = "image") -> str:
        """The chat-templated text of one prompt after ``n_frames`` image (or video) placeholders."""
        content = [{"type": kind} for _ in range(n_frames)] + [{"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
        )

    def tokenize(self, prompt: str, n_stimulus_tokens: int | Sequence[int], kind: str = "image") -> TokenSequence:
        """Input ids + token roles of one prompt.

        ``n_stimulus_tokens``: placeholder tokens of the (single) image, or one
        count per frame of a multi-frame stimulus; ``kind="video"`` for a
        stimulus given as one video.
        """
        counts = (int(n_stimulus_tokens),) if np.ndim(n_stimulus_tokens) == 0 else tuple(map(int, n_stimulus_tokens))
        n_stimulus_tokens = sum(counts)
        key = (prompt, counts, kind)
        if key in self._token_cache:
            return self._token_cache[key]
        text = self.render(prompt, len(counts), kind)
        if kind == "video":
            placeholder, token, token_id = self.video_token, self.video_token, self.video_token_id
        else:
            placeholder, token, token_id = self.placeholder or self.image_token, self.image_token, self.image_token_id
        if text.count(placeholder) != len(counts):
            raise ValueError(
                f"the chat template of {self.model_id} rendered {text.count(placeholder)} "
                f"'{placeholder}' placeholders for {len(counts)} frame(s)."
            )
        pieces = text.split(placeholder)
        expand = (lambda c: token * c) if kind == "video" else self.expand_placeholder
        text = self.postprocess_text(pieces[0] + "".join(expand(c) + piece for c, piece in zip(counts, pieces[1:])))
        start = text.rfind(prompt)
        if start < 0:
            raise ValueError(f"the chat template of {self.model_id} altered the prompt text {prompt!r}.")
        end = start + len(prompt)
        enc = self.tokenizer(text, return_offsets_mapping=True)
        ids = torch.tensor(enc["input_ids"], dtype=torch.long)
        offsets = torch.tensor(enc["offset_mapping"], dtype=torch.long).reshape(-1, 2)
        stimulus = ids == token_id
        if int(stimulus.sum()) != n_stimulus_tokens:
            raise ValueError(
                f"{self.model_id}: tokenizing the template gave {int(stimulus.sum())} {kind} tokens, expected "
                f"{n_stimulus_tokens}; is '{token}' a single special token of the tokenizer?"
            )
        in_prompt = (offsets[:, 0] < end) & (offsets[:, 1] > start) & ~stimulus
        seq = TokenSequence(ids, TokenMasks(stimulus=stimulus, prompt=in_prompt), text)
        self._token_cache[key] = seq
        return seq

    def token_report(self, prompts: dict[str, str] | Sequence[str], n_stimulus_tokens: int = 1) -> dict[str, dict]:
        """Token counts per prompt.

        Returns
        -------
        dict name -> {"prompt_tokens": tokens of the prompt text alone,
        "prompt_tokens_in_context": tokens attributed to the prompt inside the
        chat template, "template_tokens": other non-stimulus input tokens,
        "input_tokens": total with ``n_stimulus_tokens`` stimulus tokens}.
        """
        prompts = check_prompts(prompts)
        report = {}
        for name, text in prompts.items():
            seq = self.tokenize(text, n_stimulus_tokens)
            n_prompt = int(seq.masks.prompt.sum())
            report[name] = {
                "prompt_tokens": len(self.tokenizer(text, add_special_tokens=False)["input_ids"]),
                "prompt_tokens_in_context": n_prompt,
                "template_tokens": int(seq.ids.numel()) - n_prompt - n_stimulus_tokens,
                "input_tokens": int(seq.ids.numel()),
            }
        return report

    # -------------------------------------------------------------- forward
    def embed(self, ids: torch.Tensor, image_embeds: torch.Tensor | None) -> torch.Tensor:
        """Language-model input embeddings of token ids, the stimulus' encoder output on its placeholders.

        Parameters
        ----------
        ids : LongTensor of shape (seq_len,) or (batch, seq_len)
        image_embeds : Tensor of shape (n_stimulus_tokens, lm_dim), optional
            :meth:`encode_image` output, in the order of the placeholder
            tokens of ``ids``; None for ids without placeholders (prompt
            suffixes, generated tokens).

        Returns
        -------
        Tensor of shape (*ids.shape, lm_dim), on the model device
        """
        emb = self.model.get_input_embeddings()(ids.to(self.device))
        if image_embeds is not None:
            placeholders = torch.tensor(self.placeholder_token_ids(), device=self.device)
            mask = torch.isin(ids.to(self.device), placeholders)
            emb = emb.clone()
            emb[mask] = image_embeds.to(emb.dtype).reshape(-1, emb.shape[-1])
        return emb

    @contextmanager
    def capture(self, component: str, layers: list[int]):
        """Record what ``component`` reads during language-model calls.

        Yields a function ``states(output, row=0) -> Tensor (n_layers_sel, seq, dim)``
        that returns the states of the latest call, for batch row ``row``.
        """
        if component == "language":
            yield lambda out, row=0: torch.stack([out.hidden_states[i][row] for i in layers])
            return
        store: dict[int, torch.Tensor] = {}

        def hook(i):
            def _hook(module, args, output):
                store[i] = output[0] if isinstance(output, tuple) else output

            return _hook

        blocks = self.language_model.layers
        handles = [blocks[i - 1].self_attn.register_forward_hook(hook(i)) for i in layers]
        try:
            yield lambda out, row=0: torch.stack([store[i][row] for i in layers])
        finally:
            for h in handles:
                h.remove()

    # ------------------------------------------------------------- decoding
    def eos_token_ids(self) -> set[int]:
        """End-of-response token ids (generation config, else tokenizer)."""
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set([eos] if isinstance(eos, int) else list(eos or []))

    def next_tokens(self, logits: torch.Tensor, gen: GenerationConfig, generators: Sequence[torch.Generator]):
        """One token per row (see :func:`brainalign.features.pooling.next_tokens`); placeholders banned."""
        return next_tokens(logits, gen, list(generators), self.placeholder_token_ids())

    def seeded_generator(self, gen: GenerationConfig) -> torch.Generator:
        """A random generator on the model device seeded by ``gen.seed`` (one per decoded sequence)."""
        return torch.Generator(device=self.device).manual_seed(int(gen.seed))

    def with_response(self, seq: TokenSequence, new_tokens: torch.Tensor) -> TokenSequence:
        """``seq`` followed by generated tokens, with the generated mask set."""
        new = new_tokens.to("cpu", torch.long)
        n_in = seq.ids.numel()
        pad = torch.zeros(new.numel(), dtype=torch.bool)
        masks = TokenMasks(
            stimulus=torch.cat([seq.masks.stimulus, pad]),
            prompt=torch.cat([seq.masks.prompt, pad]),
            generated=torch.cat([torch.zeros(n_in, dtype=torch.bool), torch.ones(new.numel(), dtype=torch.bool)]),
        )
        return TokenSequence(torch.cat([seq.ids, new]), masks, self.tokenizer.decode(new, skip_special_tokens=True))

    @torch.inference_mode()
    def generate_response(self, seq: TokenSequence, image_inputs: dict[str, torch.Tensor],
                          gen: GenerationConfig) -> TokenSequence:
        """Append the model's response to ``seq``: plain model forwards with a KV cache, one token at a time.

        Decoding is fully set by ``gen`` (greedy, or seeded top-k sampling);
        extras of the checkpoint's own generation config (repetition
        penalty...) are not applied, so naive and reuse paths decode alike.

        Parameters
        ----------
        seq : TokenSequence
            Input ids of one chat, shape (seq_len,), with their token roles.
        image_inputs : dict
            :meth:`process_stimulus` output of its stimulus.
        gen : GenerationConfig

        Returns
        -------
        TokenSequence
            ids of shape (seq_len + n_new,), ``masks.generated`` marking the
            response, decoded response in ``.text``.
        """
        self.reset_state()
        eos = self.eos_token_ids()
        generator = self.seeded_generator(gen)
        ids = seq.ids[None].to(self.device)
        out = self.model(**self.model_inputs(ids, image_inputs), use_cache=True, logits_to_keep=1)
        new: list[torch.Tensor] = []
        for _ in range(gen.max_new_tokens):
            tok = self.next_tokens(out.logits[:, -1], gen, [generator])
            new.append(tok)
            if int(tok) in eos:
                break
            out = self.model(
                input_ids=tok.view(1, 1), **cache_kwarg(output_cache(out)), use_cache=True, logits_to_keep=1
            )
        self.reset_state()
        return self.with_response(seq, torch.cat(new) if new else torch.zeros(0, dtype=torch.long))

    @torch.inference_mode()
    def naive_hidden(
        self, seq: TokenSequence, image_inputs: dict[str, torch.Tensor], layers: list[int], component: str = "language"
    ) -> torch.Tensor:
        """States of ``component`` from one full model forward (the reference the reuse path must equal).

        Parameters
        ----------
        seq : TokenSequence
            Input ids of one chat, shape (seq_len,).
        image_inputs : dict
            :meth:`process_stimulus` output of its stimulus.
        layers : list of int
            Absolute state indices (see :meth:`component_layers`).
        component : {"language", "attention"}

        Returns
        -------
        Tensor of shape (n_layers_sel, seq_len, dim)
        """
        self.reset_state()
        ids = seq.ids[None].to(self.device)
        with self.capture(component, layers) as states:
            out = self.model(**self.model_inputs(ids, image_inputs), output_hidden_states=True, use_cache=False)
            result = states(out)
        self.reset_state()
        return result

    def _extract_one(self, image_inputs, kind, embeds, prompts, names, layer_idx, component, pooling, gen, reuse,
                     values, texts, n_tokens) -> None:
        """Pooled features of one processed stimulus under every prompt, appended to ``values`` (and ``texts``).

        ``embeds`` is the stimulus' connector output when :meth:`encode_stimuli` computed it with other stimuli
        (None: not needed, or computed here).
        """
        n_tok = tuple(self.tokens_per_frame(image_inputs))
        n_tokens.append(int(sum(n_tok)))
        if component in (self.encoder_component, "connector"):
            if component == self.encoder_component:
                states = self.encode_image(image_inputs, vision_states=True)[1]
                vec = torch.stack([states[i].double().mean(0).float() for i in layer_idx])
            else:
                vec = embeds.double().mean(0).float()[None]
            for name in names:
                values[name].append(vec.cpu().numpy())
            return
        seqs = [self.tokenize(prompts[n], n_tok, kind) for n in names]
        if pooling == "generated":
            if reuse:
                seqs = generate_with_shared_prefix(self, seqs, image_inputs, gen, image_embeds=embeds)
            else:
                seqs = [self.generate_response(s, image_inputs, gen) for s in seqs]
            for name, s in zip(names, seqs):
                texts[name].append(s.text)
        if reuse:
            hiddens = hidden_with_shared_prefix(self, seqs, image_inputs, layer_idx, component, image_embeds=embeds)
        else:
            hiddens = (self.naive_hidden(s, image_inputs, layer_idx, component) for s in seqs)
        for name, s, h in zip(names, seqs, hiddens):
            values[name].append(pool_tokens(h, s.masks, pooling).float().cpu().numpy())

    # ------------------------------------------------------------ extraction
    def extract(
        self,
        stimuli: Sequence[Any],
        prompts: dict[str, str] | Sequence[str],
        layers: Sequence[int | float] | str = "all",
        *,
        pooling: str | None = None,
        reuse: bool = True,
        component: str = "language",
        stimulus_ids: Sequence[str] | None = None,
        generation: GenerationConfig | None = None,
        sampling_rate: int | None = None,
    ) -> dict[str, FeatureSet]:
        """Features of every stimulus under every prompt.

        Parameters
        ----------
        stimuli : sequence of stimuli
            Each a uint8 array (H, W, 3) or PIL image, or a sequence of frames
            (uint8 array (n_frames, H, W, 3) or list of images), which enter
            the chat as consecutive images before the prompt.
        prompts : dict name -> text, or list of texts
        layers : "all", ints (negative from the end) or floats in [0, 1]
            Hidden-state indices (0 = embeddings) of ``component``.
        pooling : str, optional
            Overrides the extractor's default; see ``POOLINGS``.
        reuse : bool
            True: modality encoder and shared prompt prefix once per stimulus,
            prompt suffixes batched (same features as ``reuse=False``).
        component : {"language", "attention", "vision", "connector"}
            "language": residual stream (hidden states); "attention": each
            block's self-attention output (layers 1..n_layers). "vision" and
            "connector" do not depend on the prompt (mean over patches /
            connector tokens); every prompt gets the same values.
        stimulus_ids : list of str, optional
            Defaults to "0", "1", ...
        generation : GenerationConfig, optional
            Decoding for ``pooling="generated"``; generated texts go in
            ``meta["generated_text"]``.
        sampling_rate : int, optional
            For audio stimuli (1-D float waveforms) of audio LLMs.

        Returns
        -------
        dict prompt name -> FeatureSet with values (n_stimuli, n_layers, dim)
        """
        images = self.prepare_stimuli(stimuli, sampling_rate=sampling_rate)
        prompts = check_prompts(prompts)
        pooling = check_pooling(pooling or self.pooling)
        gen = generation or self.generation
        encoder = self.encoder_component
        components = ("language", "attention", encoder, "connector")
        if component not in components:
            raise ValueError(f"component={component!r}: choose one of {components}.")
        stimulus_ids = stimulus_id_list(stimulus_ids, len(images))
        if component in (encoder, "connector") and pooling != "mean":
            raise ValueError(
                f"pooling={pooling!r} is only for component='language'; the {component} component is "
                "mean-pooled over its tokens (use pooling='mean')."
            )
        layer_idx = self.component_layers(layers, component)

        names = list(prompts)
        values = {name: [] for name in names}
        texts: dict[str, list[str]] = {name: [] for name in names}
        n_tokens: list[int] = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start:start + self.batch_size]
                processed = [self.process_stimulus(frames) for frames in chunk]
                # the modality encoder reads the chunk's stimuli together (shared by decoding and reading)
                batched = (self.encode_stimuli([p[0] for p in processed])
                           if component == "connector" or (reuse and component != encoder) else [None] * len(chunk))
                for (image_inputs, kind), embeds in zip(processed, batched):
                    self._extract_one(image_inputs, kind, embeds, prompts, names, layer_idx, component, pooling,
                                      gen, reuse, values, texts, n_tokens)

        meta_common = {
            **self.meta,
            "model_type": self.model_type,
            "component": component,
            "pooling": pooling,
            "pooling_description": POOLINGS[pooling] if component in ("language", "attention") else "mean over tokens",
            "stimulus_kind": sorted({self.process_kind(f) for f in images}),
            "reuse": bool(reuse),
            "n_stimulus_tokens": n_tokens,
            "n_frames": [self.stimulus_frames(f) for f in images],
            "as_video": [isinstance(f, Video) for f in images],
        }
        if pooling == "generated":
            meta_common["generation"] = gen.as_dict()
        out = {}
        for name in names:
            meta = dict(meta_common, prompt_text=prompts[name])
            if pooling == "generated":
                meta["generated_text"] = texts[name]
            out[name] = FeatureSet(
                values=np.stack(values[name]).astype(np.float32),
                stimulus_ids=list(stimulus_ids),
                layers=layer_idx,
                model=self.model_id,
                prompt=name,
                meta=meta,
            )
        return out
