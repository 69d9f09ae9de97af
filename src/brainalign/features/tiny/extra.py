"""Tiny, seeded, config-built video-LLaVA and IDEFICS checkpoints (see :mod:`.models`).

- :func:`build_tiny_llava_next_video`: LLaVA-NeXT-Video (anyres images, pooled video frames).
- :func:`build_tiny_video_llava`: Video-LLaVA (separate image and video CLIP towers).
- :func:`build_tiny_idefics`: IDEFICS v1 (CLIP-style vision, perceiver, Llama with gated cross-attention),
  with the two image tokens in the decoupled "additional" vocabulary as in ``idefics-9b-instruct``.

Video processors of transformers 5 need torchvision; these checkpoints
therefore carry their ``video_preprocessor_config.json`` written as plain JSON
(the same keys the library writes), which the adapters read without
torchvision.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..hf_idefics import IDEFICS_CHAT_TEMPLATE
from .models import LLAVA_SPECIALS
from .tokenizer import save_tokenizer, train_bpe

__all__ = ["build_tiny_llava_next_video", "build_tiny_video_llava", "build_tiny_idefics", "VIDEO_LLAVA_CHAT_TEMPLATE",
           "IDEFICS_CHAT_TEMPLATE"]

VIDEO_SPECIALS = LLAVA_SPECIALS + ["<video>"]

# "USER: <video>\n{prompt} ASSISTANT:" (llava-hf video checkpoints' layout)
VIDEO_LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<image>\n"
    "{% elif content['type'] == 'video' %}<video>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %} {% else %}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def _write_video_processor_config(folder: Path, processor_type: str, size: int) -> None:
    cfg = {
        "video_processor_type": processor_type,
        "do_resize": True, "size": {"shortest_edge": size},
        "do_center_crop": True, "crop_size": {"height": size, "width": size},
        "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": _CLIP_MEAN, "image_std": _CLIP_STD,
        "do_convert_rgb": True, "resample": 3,
    }
    (folder / "video_preprocessor_config.json").write_text(json.dumps(cfg, indent=2))


def _llama_text_config(tok, ids, hidden_size, num_layers):
    n_heads = max(1, hidden_size // 16)
    return dict(model_type="llama", vocab_size=tok.get_vocab_size(), hidden_size=hidden_size,
                intermediate_size=2 * hidden_size, num_hidden_layers=num_layers, num_attention_heads=n_heads,
                num_key_value_heads=n_heads, max_position_embeddings=2048, bos_token_id=ids["<s>"],
                eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"])


def _clip_vision_config(vision_hidden, vision_layers, image_size):
    return dict(model_type="clip_vision_model", hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                num_hidden_layers=vision_layers, num_attention_heads=2, image_size=image_size, patch_size=14,
                projection_dim=vision_hidden)


def build_tiny_llava_next_video(folder: str | Path, *, hidden_size: int = 64, num_layers: int = 2,
                                vision_hidden: int = 32, vision_layers: int = 2, tile: int = 56,
                                vocab_size: int = 400, seed: int = 0) -> Path:
    """Write a tiny random LLaVA-NeXT-Video checkpoint (CLIP tiles of ``tile`` px, 2x2 average-pooled video, Llama).

    A video frame gives ``(tile / 14 / 2) ** 2`` tokens (4 with the default tile).
    """
    import torch
    from transformers import AutoTokenizer, LlavaNextImageProcessorPil, LlavaNextVideoConfig, \
        LlavaNextVideoForConditionalGeneration

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(VIDEO_SPECIALS, vocab_size, qwen_split=False)
    save_tokenizer(tok, folder, "PreTrainedTokenizerFast", VIDEO_LLAVA_CHAT_TEMPLATE, unk_token="<unk>",
                    bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    ids = {t: tok.token_to_id(t) for t in VIDEO_SPECIALS}
    pinpoints = [[tile, tile], [tile, 2 * tile], [2 * tile, tile], [2 * tile, 2 * tile]]
    config = LlavaNextVideoConfig(
        vision_config=_clip_vision_config(vision_hidden, vision_layers, tile),
        text_config=_llama_text_config(tok, ids, hidden_size, num_layers),
        image_token_index=ids["<image>"], video_token_index=ids["<video>"], image_grid_pinpoints=pinpoints,
        vision_feature_layer=-2, vision_feature_select_strategy="default", spatial_pool_mode="average",
        spatial_pool_stride=2,
    )
    torch.manual_seed(seed)
    model = LlavaNextVideoForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["</s>"]
    model.save_pretrained(folder, safe_serialization=True)
    LlavaNextImageProcessorPil(size={"shortest_edge": tile}, crop_size={"height": tile, "width": tile},
                               image_grid_pinpoints=pinpoints).save_pretrained(folder)
    _write_video_processor_config(folder, "LlavaNextVideoVideoProcessor", tile)
    AutoTokenizer.from_pretrained(folder, local_files_only=True)  # fail here, not in a test, if it does not load
    return folder


def build_tiny_video_llava(folder: str | Path, *, hidden_size: int = 64, num_layers: int = 2, vision_hidden: int = 32,
                           vision_layers: int = 2, image_size: int = 56, vocab_size: int = 400,
                           seed: int = 0) -> Path:
    """Write a tiny random Video-LLaVA checkpoint (image and video CLIP towers, shared projector, Llama).

    An image gives ``(image_size / 14) ** 2`` tokens (CLS dropped), a video
    frame one more (the CLS is kept for videos, as in ``VideoLlavaProcessor``).
    """
    import torch
    from transformers import VideoLlavaConfig, VideoLlavaForConditionalGeneration, VideoLlavaImageProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(VIDEO_SPECIALS, vocab_size, qwen_split=False)
    save_tokenizer(tok, folder, "PreTrainedTokenizerFast", VIDEO_LLAVA_CHAT_TEMPLATE, unk_token="<unk>",
                    bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    ids = {t: tok.token_to_id(t) for t in VIDEO_SPECIALS}
    config = VideoLlavaConfig(
        vision_config=_clip_vision_config(vision_hidden, vision_layers, image_size),
        text_config=_llama_text_config(tok, ids, hidden_size, num_layers),
        image_token_index=ids["<image>"], video_token_index=ids["<video>"], vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = VideoLlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["</s>"]
    model.save_pretrained(folder, safe_serialization=True)
    VideoLlavaImageProcessor(size={"shortest_edge": image_size},
                             crop_size={"height": image_size, "width": image_size}).save_pretrained(folder)
    _write_video_processor_config(folder, "VideoLlavaVideoProcessor", image_size)
    return folder


IDEFICS_SPECIALS = ["<unk>", "<s>", "</s>", "<end_of_utterance>"]
IDEFICS_IMAGE_TOKENS = ["<fake_token_around_image>", "<image>"]


def build_tiny_idefics(folder: str | Path, *, hidden_size: int = 64, num_layers: int = 2, vision_hidden: int = 32,
                       vision_layers: int = 2, n_latents: int = 4, image_size: int = 56, vocab_size: int = 400,
                       seed: int = 0) -> Path:
    """Write a tiny random IDEFICS (v1) checkpoint with its ``IdeficsProcessor``.

    As in ``HuggingFaceM4/idefics-9b-instruct``: the perceiver resampler is
    on, every decoder block has a gated cross-attention to the image latents,
    and ``<fake_token_around_image>`` / ``<image>`` are the two ids past the
    base vocabulary (``additional_vocab_size=2``). The cross-attention gates
    are drawn at random (the library's default initialises them to 0, which
    would make the image invisible to a random model).
    """
    import torch
    from tokenizers import processors
    from transformers import AutoTokenizer, IdeficsConfig, IdeficsForVisionText2Text, IdeficsImageProcessorPil, \
        IdeficsProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(IDEFICS_SPECIALS, vocab_size, qwen_split=False)
    base_vocab = tok.get_vocab_size()
    tok.add_special_tokens(IDEFICS_IMAGE_TOKENS)
    # like idefics' LlamaTokenizerFast: BOS added unless add_special_tokens=False (the processor turns it off)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    save_tokenizer(tok, folder, "PreTrainedTokenizerFast", IDEFICS_CHAT_TEMPLATE, unk_token="<unk>",
                    bos_token="<s>", eos_token="</s>", pad_token="<unk>")
    ids = {t: tok.token_to_id(t) for t in IDEFICS_SPECIALS + IDEFICS_IMAGE_TOKENS}
    assert ids["<image>"] >= base_vocab and ids["<fake_token_around_image>"] >= base_vocab
    config = IdeficsConfig(
        vocab_size=base_vocab, additional_vocab_size=2, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=max(1, hidden_size // 16), cross_layer_interval=1,
        use_resampler=True,
        vision_config=dict(embed_dim=vision_hidden, image_size=image_size, patch_size=14,
                           num_hidden_layers=vision_layers, num_attention_heads=2, intermediate_size=2 * vision_hidden),
        perceiver_config=dict(use_resampler=True, resampler_n_latents=n_latents, resampler_depth=1,
                              resampler_n_heads=2, resampler_head_dim=16),
        bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<unk>"],
    )
    torch.manual_seed(seed)
    model = IdeficsForVisionText2Text(config).eval()
    with torch.no_grad():  # (alpha_initializer="normal" fails in transformers 5.23: torch.normal(size=int))
        for layer in model.model.gated_cross_attn_layers:
            layer.alpha_cross_attn.normal_(0.0, 1.0)
            layer.alpha_dense.normal_(0.0, 1.0)
    model.generation_config.eos_token_id = [ids["</s>"], ids["<end_of_utterance>"]]
    model.save_pretrained(folder, safe_serialization=True)
    imp = IdeficsImageProcessorPil(image_size=image_size)
    lm_tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    IdeficsProcessor(imp, lm_tok, image_size=image_size).save_pretrained(folder)
    return folder
