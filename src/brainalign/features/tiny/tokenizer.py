"""Offline BPE tokenizers of the tiny models (and of steering's tiny language models).

Trained with the ``tokenizers`` library on a fixed text, so every build gives
the same vocabulary; saved as transformers fast tokenizers with a chat template.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

__all__ = ["TRAINING_TEXT", "train_bpe", "save_tokenizer"]

# Qwen2's pre-tokenisation regex (transformers 5.x rebuilds Qwen2Tokenizer from
# vocab + merges with this regex, so the trainer must split the same way).
_QWEN2_SPLIT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

TRAINING_TEXT = [
    "You are a helpful assistant.",
    "Describe this image in detail.",
    "What is the caption of the image?",
    "What is in this image? Are there any people in this image? If yes, describe them.",
    "What primary colors dominate the scene? Is the setting indoors or outdoors?",
    "Which action should the player take next to reach the goal?",
    "Why is the player moving toward that object, and what does it reveal?",
    "How many animals are there in the image? List any food items visible.",
    "The quick brown fox jumps over the lazy dog. 0123456789 !?.,;:'\"()[]{}",
    "user assistant system USER ASSISTANT",
]


def train_bpe(specials: Sequence[str], vocab_size: int, qwen_split: bool, extra_text: Sequence[str] = ()):
    """A byte-level BPE tokenizer trained offline on :data:`TRAINING_TEXT` (+ ``extra_text``), deterministic.

    Parameters
    ----------
    specials : sequence of str
        Special tokens, given the first ids in this order.
    vocab_size : int
    qwen_split : bool
        Pre-tokenize with Qwen2's regex (what ``Qwen2Tokenizer`` rebuilds with); else plain byte-level.
    extra_text : sequence of str
        More training sentences (e.g. a study's prompts).

    Returns
    -------
    tokenizers.Tokenizer
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None if qwen_split else "<unk>"))
    if qwen_split:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((list(TRAINING_TEXT) + list(extra_text)) * 4, trainer=trainer)
    return tok


def save_tokenizer(tok, folder: Path, tokenizer_class: str, chat_template: str, **special) -> dict[str, int]:
    """Save ``tok`` in ``folder`` as a transformers fast tokenizer of class ``tokenizer_class`` with a chat template.

    Parameters
    ----------
    tok : tokenizers.Tokenizer
    folder : Path
    tokenizer_class : str
        Written as ``tokenizer_class`` of ``tokenizer_config.json`` (e.g. "Qwen2Tokenizer").
    chat_template : str
    **special
        Special-token arguments (``eos_token``, ``pad_token``...).

    Returns
    -------
    dict token -> id of the whole vocabulary.
    """
    import json

    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **special)
    fast.chat_template = chat_template
    fast.save_pretrained(folder)
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = tokenizer_class
    cfg["chat_template"] = chat_template
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return {t: tok.token_to_id(t) for t in tok.get_vocab()}
