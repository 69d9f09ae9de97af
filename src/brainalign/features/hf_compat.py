"""What changed in transformers' call conventions, in one place.

transformers 5.24 renamed the key/value cache of every model call and output
from ``past_key_values`` to ``cache`` (the old name is a deprecated alias until
5.40). brainalign follows the new name where the installed transformers has it
and falls back to the old one on older releases, so the adapters pass on both
the locked version and the newest one. Detected from the library's own output
class (a feature, not a version string).
"""
from __future__ import annotations

from typing import Any

from transformers.modeling_outputs import BaseModelOutputWithPast

__all__ = ["CACHE_KWARG", "cache_kwarg", "output_cache"]

#: the keyword a model call takes its key/value cache by: "cache" (>= 5.24) or "past_key_values"
CACHE_KWARG: str = "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"


def cache_kwarg(cache: Any) -> dict[str, Any]:
    """``{CACHE_KWARG: cache}``, to splat into a model call."""
    return {CACHE_KWARG: cache}


def output_cache(out: Any) -> Any:
    """The key/value cache a model call returned (``out.cache`` or, before 5.24, ``out.past_key_values``)."""
    return getattr(out, CACHE_KWARG)
