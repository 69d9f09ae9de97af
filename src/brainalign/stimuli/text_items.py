"""Text of ds003076 reasoning items, in the user-turn format of Xiao et al. (2026).

Xiao et al. (2026) (code: ``pkuxmq/Brain-guided_LLM``, ``utils.py``) present each item as::

    Premises:
    1. <premise1>.
    2. <premise2>.
    3. <premise3>.
    Conclusion:
    <conclusion>.

Items with a missing premise (``n/a`` in events.tsv) are numbered over the
premises present.
"""
from __future__ import annotations

import pandas as pd

from brainalign._utils.errors import DataError

__all__ = ["reasoning_item_text", "item_texts"]


def _clean(v) -> str | None:
    if v is None or (isinstance(v, float) and v != v):
        return None
    s = str(v).strip()
    if not s or s.lower() == "n/a":
        return None
    return s.rstrip(".")


def reasoning_item_text(row) -> str:
    """The user turn of one item (a mapping/row with premise1..3 and conclusion)."""
    get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))
    premises = [p for p in (_clean(get(f"premise{i}")) for i in (1, 2, 3)) if p is not None]
    conclusion = _clean(get("conclusion"))
    if not premises or conclusion is None:
        raise DataError(f"item {get('item', '?')!r} lacks premises or a conclusion; is it a control trial?")
    lines = ["Premises:"] + [f"{i}. {p}." for i, p in enumerate(premises, 1)] + ["Conclusion:", f"{conclusion}."]
    return "\n".join(lines)


def item_texts(items: pd.DataFrame) -> pd.Series:
    """``item`` → text for every row of an item table (from :func:`brainalign.brain.betas.items_from_events`)."""
    missing = {"premise1", "conclusion"} - set(items.columns)
    if missing:
        raise DataError(f"the item table lacks {sorted(missing)}; build it from the ds003076 events.tsv.")
    return pd.Series([reasoning_item_text(r) for _, r in items.iterrows()], index=items["item"], name="text")
