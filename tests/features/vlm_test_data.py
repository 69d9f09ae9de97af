"""Constants shared by the feature tests (a uniquely named module, so no clash with other conftests)."""
from __future__ import annotations

ARCHS = ["qwen2_5_vl", "qwen2_vl", "llava", "internvl"]

PROMPTS = {
    "caption": "What is the caption of the image?",
    "describe": "Describe this image in detail.",
    "people": "Are there any people in this image? If yes, describe them.",
}
