"""Evaluation over all premise orders (Xiao et al., 2026: ``test_model.py -test_all_order``)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from brainalign.steering.hooks import greedy_answers
from brainalign.steering.tasks import Item, item_prompt, parse_answer, premise_orders

__all__ = ["evaluate_items", "intervened_accuracy"]


def evaluate_items(model, tokenizer, items: Sequence[Item], all_orders: bool = True,
                   offsets: Mapping[int, np.ndarray] | None = None, max_new_tokens: int = 1,
                   batch_size: int = 16) -> dict:
    """Greedy answers to every item (under every premise order) and accuracy per task.

    Invalid answers (not starting with 'True' / 'False') count as wrong.

    Returns
    -------
    dict with ``accuracy`` (over all item × order rows), ``invalid`` (fraction),
    ``by_task`` (task -> accuracy), ``table`` (DataFrame: item_id, order, task,
    label, answer, correct).
    """
    if not items:
        raise ValueError("items is empty; generate some with brainalign.steering.tasks.generate_items.")
    rows = [(it, o) for it in items for o in (premise_orders(it) if all_orders else [it])]
    prompts = [item_prompt(o, tokenizer) for _, o in rows]
    texts = greedy_answers(model, tokenizer, prompts, offsets, max_new_tokens=max_new_tokens, batch_size=batch_size)
    ans = [parse_answer(t) for t in texts]
    table = pd.DataFrame({"item_id": [it.item_id for it, _ in rows], "order": [o.item_id for _, o in rows],
                          "task": [it.task for it, _ in rows], "label": [it.label for it, _ in rows],
                          "answer": ans, "response": texts})
    table["correct"] = [a is not None and a == y for a, y in zip(ans, table["label"])]
    return {"accuracy": float(table["correct"].mean()), "invalid": float(table["answer"].isna().mean()),
            "by_task": table.groupby("task")["correct"].mean().to_dict(), "table": table}


def intervened_accuracy(model_correct, solved_items) -> float:
    """(items the model already gets right + items NARI solved) / n_items."""
    mc = np.asarray(model_correct, dtype=bool)
    solved = np.asarray(solved_items, dtype=int)
    if solved.size and (mc[solved].any() or solved.max() >= mc.size):
        raise ValueError("solved_items must index items the model got wrong.")
    return float((mc.sum() + np.unique(solved).size) / mc.size)
