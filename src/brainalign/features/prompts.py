"""Prompt registries of the bundled studies (``docs/studies.md``), and token-count checks.

- :data:`DEDUCTIVE_CHAT`: the brain-guided LLM study's (Xiao et al., 2026) chat prompts, verbatim
  (``pkuxmq/Brain-guided_LLM``, ``utils.py`` / ``make_intervention_sep.py``);
  :func:`deductive_messages` builds one chat.
- :data:`NSD_INSTRUCTIONS`: the NSD instruction-tuning study's (Oota et al., 2025) pool of 66
  prompts in 13 categories, verbatim from ``subbareddy248/mllm_instruction_brain``
  ``brain_activity_prediction/extract_image_embeddings/prompts.py`` (commit
  c9197a3; the Visual Dialogue prompts 67-71 are commented out there and left
  out here). :data:`NSD_CONFIRMED_INSTRUCTIONS` marks the ones the authors' slides show
  as used in the paper (the exact list of 10 was not found).
- :data:`GAMEPLAY_PROMPT_PAIRS`: action-focused vs reasoning-focused prompt pairs for
  gameplay frames (the gameplay study, Oota et al., 2026). The paper's templates were not found; these are our
  defaults, written in parallel syntax and length-matched (token counts within
  5 of each other: :func:`check_length_matched`).
- :data:`MOVIE_INSTRUCTIONS`: the video-audio study's (Oota et al., 2025) instruction set as
  configuration; only the two example templates from the slides are known.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

__all__ = [
    "DEDUCTIVE_CHAT",
    "deductive_messages",
    "NSD_INSTRUCTIONS",
    "NSD_INSTRUCTION_CATEGORIES",
    "NSD_CONFIRMED_INSTRUCTIONS",
    "nsd_instructions",
    "PromptPair",
    "GAMEPLAY_PROMPT_PAIRS",
    "gameplay_prompts",
    "MOVIE_INSTRUCTIONS",
    "count_tokens",
    "token_report",
    "check_length_matched",
]

# --------------------------------------------------------------------------- deductive reasoning (ds003076)
DEDUCTIVE_CHAT: dict[str, str] = {
    "system_syllogism": (
        "You are an expert in performing logical reasoning. I will present three premises and one conclusion each "
        "round. The premises describe a series of relationships among monosyllabic pseudowords and adjectives. "
        "Assume all premises are True. You should use deductive reasoning to determine if the conclusion can be "
        "drawn from the premises logically. Answer 'True' if the conclusion can be drawn logically; otherwise you "
        "should answer 'False'. Only answer 'True' or 'False' at the beginning of the response."
    ),
    "system_transitive": (
        "You are an expert in performing logical reasoning. I will present three premises and one conclusion each "
        "round. The premises describe relationships among imaginary characters with comparative adjectives. "
        "Assume all premises are True. You should use deductive reasoning to determine if the conclusion can be "
        "drawn from the premises logically. Answer 'True' if the conclusion can be drawn logically; otherwise you "
        "should answer 'False'. Only answer 'True' or 'False' at the beginning of the response."
    ),
    "assistant_ack": (
        "Understood. I will do my best to determine if the conclusion can be logically drawn from the given "
        "premises, and only answer 'True' or 'False' at the beginning of the response."
    ),
    "user_template": "Premises:\n1. %s.\n2. %s.\n3. %s.\nConclusion:\n%s.",
}


def deductive_messages(task: str, premises: Sequence[str], conclusion: str) -> list[dict[str, str]]:
    """The brain-guided LLM study's chat for one item (Xiao et al., 2026): instruction turn, acknowledgement, question.

    Parameters
    ----------
    task : {"syllogism", "transitive"}
    premises : three premise sentences (no final period)
    conclusion : the conclusion sentence (no final period)
    """
    if task not in ("syllogism", "transitive"):
        raise ValueError(f"task={task!r}: use 'syllogism' or 'transitive'.")
    if len(premises) != 3:
        raise ValueError(f"premises has {len(premises)} items; the brain-guided LLM study's items have exactly 3.")
    return [
        {"role": "user", "content": DEDUCTIVE_CHAT[f"system_{task}"]},
        {"role": "assistant", "content": DEDUCTIVE_CHAT["assistant_ack"]},
        {"role": "user", "content": DEDUCTIVE_CHAT["user_template"] % (*premises, conclusion)},
    ]


# --------------------------------------------------------------------------- NSD instructions
NSD_INSTRUCTIONS: dict[int, str] = {
    # Image Captioning
    1: "In this task, you will look at the image and briefly describe the image.",
    2: "What is the caption of the image?",
    3: "Generate some text to describe the image.",
    4: "Look at image and tell me what is the content.",
    5: "In this task, you are given an image and you will need to generate some text to describe it.",
    # VQA
    6: "What is in this image?",
    7: "Are there any people in this image? If yes, describe them.",
    8: "What is the foreground of the image? What is in the background?",
    9: "What primary colors dominate the scene?",
    # Visual Relationship
    10: "What kind of interaction is happening between the animate and inanimate objects here?",
    11: "What objects are being used by the largest animal in this image?",
    12: "Which animal is interacting with the water body?",
    13: "Locate the food item closest to the cooking appliance.",
    14: "Determine the position of the bird in the forest.",
    # Commonsense Reasoning
    15: "Identify if the object on the left is larger than the object on the right.",
    16: "Based on the image, decide if it is daytime.",
    17: "What time of the day does the image likely represent?",
    18: "From the image, can you conclude if it is currently raining?",
    19: "What type of environment is shown in the image?",
    # Image Understanding
    20: "Describe the most dominant color in the image.",
    21: "Is the setting indoors or outdoors?",
    22: "List any food items visible.",
    23: "Which object is closest to the camera?",
    24: "Are there any trees in the image?",
    25: "How many animals are there in the image?",
    26: "Is the focus of the camera on the foreground or background?",
    27: "Is there any object that could help in cooking?",
    28: "Does the image feel chaotic or peaceful?",
    29: "Identify any sports equipment displayed in the image.",
    # Temporal Ordering
    30: "Given the context of the image, predict the immediate next action.",
    # Grounded Generation
    31: "Describe the top-left quarter of the image.",
    32: "Highlight the area that shows a natural outdoor scene.",
    33: "What are the regions containing animals?",
    34: "Highlight the regions where text is visible in the image.",
    35: "Highlight the region containing the animal on the left, which is sitting.",
    36: "Generate the referring expression for the tree in the top left corner of the image.",
    37: "Determine the type of primary object in the bottom centre of the image.",
    # Grounded Matching
    38: "Check if the two clothing items in the image are identical.",
    39: "Which of the four corners of the image shows sports equipment?",
    40: "Which of the four corners of the image shows the person wearing the red shirt?",
    41: "Do the two animals depicted belong to the same genus?",
    42: "Which of the four quarters of the image contains a vehicle?",
    # Region Understanding
    43: "Estimate the area covered by the vehicle displayed in the image.",
    44: "Which of the four corners of the image overlaps the most with the region of the animal in the photo?",
    45: "Select a region that does not overlap with the water body in the image.",
    46: "Which of the four corners of the image overlaps the least with the region containing the sports equipment?",
    47: "Estimate the area of the image which is not covered by the grass.",
    # Image-Text Matching (48-49 keep the source's triple-quoted layout, indentation included)
    48: "Chose the option that best matches what is happening in the image\n"
    "        a. Sports activity\n"
    "        b. Indoor activity\n"
    "        c. Animals roaming around\n"
    "        d. None of the above\n"
    "    ",
    49: "Chose the option that best matches what is depicted in the image\n"
    "        a. People having a meal\n"
    "        b. Furniture decoration in a house\n"
    "        c. Vehicles parked on a road\n"
    "        d. None of the above\n"
    "    ",
    50: "Decide if the image contains an answer to the question, \u201cIs there any wildlife in the image?\u201d",
    51: "Decide if the image contains an answer to the question, \u201cIs there any vehicles present in the image\u201d?",
    # Text Legibility
    52: "Decide if the text in the image is readable.",
    53: "Determine the clarity of the text.",
    54: "Confirm the legibility of the text based on its appearance.",
    55: "Check the text for readability issues.",
    56: "Is the text present in the image unclear to read?",
    # Visual Text Extraction
    57: "Extract the text from the image.",
    58: "Identify and extract all the text from the image.",
    59: "Transcribe any and all the text from the image.",
    60: "Gather all the textual content from the image.",
    61: "Read and extract the text from the picture.",
    # Disaster Type Classification
    62: "Identify the type of disaster depicted in the image.",
    63: "Classify the disaster shown in the picture.",
    64: "Assess the nature of the disaster occurring in the image.",
    65: "Evaluate the type of disaster shown.",
    66: "Specify the disaster type based on the image.",
}

#: Category of each NSD instruction number (inclusive ranges, as in the source comments).
NSD_INSTRUCTION_CATEGORIES: dict[str, range] = {
    "image_captioning": range(1, 6),
    "vqa": range(6, 10),
    "visual_relationship": range(10, 15),
    "commonsense_reasoning": range(15, 20),
    "image_understanding": range(20, 30),
    "temporal_ordering": range(30, 31),
    "grounded_generation": range(31, 38),
    "grounded_matching": range(38, 43),
    "region_understanding": range(43, 48),
    "image_text_matching": range(48, 52),
    "text_legibility": range(52, 57),
    "visual_text_extraction": range(57, 62),
    "disaster_type_classification": range(62, 67),
}

#: Prompts shown as used in the paper (authors' slides, p. 19). The full list
#: of the paper's 10 instructions was not found: configure it.
NSD_CONFIRMED_INSTRUCTIONS: dict[int, str] = {
    2: "image captioning (IC)",
    20: "image understanding",
    11: "visual relationship (VR)",
}


def nsd_instructions(numbers: Sequence[int] | None = None, *, confirmed_only: bool = False) -> dict[str, str]:
    """NSD instructions as ``{"p02_image_captioning": text, ...}``.

    Parameters
    ----------
    numbers : prompt numbers (1..66); default all.
    confirmed_only : keep only :data:`NSD_CONFIRMED_INSTRUCTIONS`.
    """
    if numbers is None:
        numbers = sorted(NSD_CONFIRMED_INSTRUCTIONS) if confirmed_only else sorted(NSD_INSTRUCTIONS)
    out = {}
    for n in numbers:
        if n not in NSD_INSTRUCTIONS:
            raise ValueError(f"NSD instruction-pool prompt number {n} does not exist (valid: 1..66).")
        if confirmed_only and n not in NSD_CONFIRMED_INSTRUCTIONS:
            continue
        cat = next(c for c, r in NSD_INSTRUCTION_CATEGORIES.items() if n in r)
        out[f"p{n:02d}_{cat}"] = NSD_INSTRUCTIONS[n]
    return out


# --------------------------------------------------------------------------- gameplay prompt pairs
@dataclass(frozen=True)
class PromptPair:
    """An action-focused and a reasoning-focused prompt about the same frame."""

    name: str
    action: str
    reasoning: str


#: Default pairs (ours; the paper's App. D templates were not found). Parallel
#: syntax, token counts within 5 of each other (checked in the tests with the
#: real all-MiniLM-L6-v2 WordPiece tokenizer; check your model's tokenizer
#: with :func:`check_length_matched`).
GAMEPLAY_PROMPT_PAIRS: tuple[PromptPair, ...] = (
    PromptPair(
        "next_move",
        "Look at this game frame. Which key should the player press next?",
        "Look at this game frame. Why is the player in this situation now?",
    ),
    PromptPair(
        "goal",
        "Which action moves the player closest to the goal in this frame?",
        "Which rule of the game explains what happens in this frame?",
    ),
    PromptPair(
        "danger",
        "What should the player do right now to avoid losing a life?",
        "What could cause the player to lose a life in this scene?",
    ),
    PromptPair(
        "objects",
        "Which object should the player move toward or away from next?",
        "Which object matters most for understanding this game's goal?",
    ),
    PromptPair(
        "plan",
        "Describe the next three moves the player should make, in order.",
        "Describe the reasoning that links the objects in this scene.",
    ),
)


def gameplay_prompts(regime: str) -> dict[str, str]:
    """``{"next_move": text, ...}`` for ``regime`` in {"action", "reasoning"}."""
    if regime not in ("action", "reasoning"):
        raise ValueError(f"regime={regime!r}: use 'action' or 'reasoning'.")
    return {p.name: getattr(p, regime) for p in GAMEPLAY_PROMPT_PAIRS}


# --------------------------------------------------------------------------- movie (video/audio) instructions
#: The 13 video instructions and the audio instructions were not found; these
#: are the two templates shown on the authors' slides. Supply the full set
#: through the experiment config.
MOVIE_INSTRUCTIONS: dict[str, dict[str, str]] = {
    "video": {"describe": "Describe this video in detail"},
    "audio": {"describe": "Describe this audio in detail"},
}


# --------------------------------------------------------------------------- checks
def count_tokens(text: str, tokenizer: Any) -> int:
    """Tokens of ``text`` alone (no special tokens) under ``tokenizer``."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def token_report(prompts: Mapping[str, str], tokenizer: Any) -> dict[str, int]:
    """``{name: n_tokens}`` of each prompt text alone.

    For counts inside a model's chat template (template and stimulus tokens
    included) use the adapter's ``token_report``.
    """
    return {name: count_tokens(text, tokenizer) for name, text in prompts.items()}


def check_length_matched(
    pairs: Sequence[PromptPair], tokenizer: Any, tolerance: int = 5
) -> dict[str, tuple[int, int]]:
    """Check that each pair's prompts have token counts within ``tolerance``.

    Returns
    -------
    dict name -> (action tokens, reasoning tokens)

    Raises
    ------
    ValueError
        Naming every pair that differs by more than ``tolerance`` tokens.
    """
    counts = {p.name: (count_tokens(p.action, tokenizer), count_tokens(p.reasoning, tokenizer)) for p in pairs}
    bad = {name: c for name, c in counts.items() if abs(c[0] - c[1]) > tolerance}
    if bad:
        detail = ", ".join(f"{n}: action {a} vs reasoning {r} tokens" for n, (a, r) in bad.items())
        raise ValueError(
            f"prompt pairs not length-matched within {tolerance} tokens ({detail}); "
            "rephrase the longer prompt or raise tolerance."
        )
    return counts
