"""The brain-guided LLM study's own problem files (JSON), read into :class:`~brainalign.steering.tasks.Item`.

The authors' repository (``pkuxmq/Brain-guided_LLM``, folder ``data/``) ships its validation, test and
generalisation sets as JSON, one list of problems per reasoning type::

    {"syllogisms": [{"premise1": "All wofs are cowardly.", "premise2": "...", "premise3": "...",
                     "conclusion": "Taz is cowardly.", "trial_type": "2_true_affirm"}, ...],
     "transitive": [...]}

- ``deductive_reasoning_data_val_new.json`` (validation, 80 + 80) and ``..._test.json`` (test, 800 + 800):
  three premises, keys ``syllogisms`` and ``transitive``;
- ``..._test_{4,5,6}premises.json``: ``premise1`` .. ``premiseN``;
- ``..._test_propositional.json``: key ``propositional``, two premises, ``trial_type`` like
  ``modus_ponens_true``.

The validity is the ``true`` / ``false`` word of ``trial_type`` (``2_true_affirm``, ``modus_tollens_false``).
Premises and conclusion keep their text without the final period (the prompt template adds it, as for
every :class:`~brainalign.steering.tasks.Item`). ``tests/data/steering_item_files/`` holds a miniature in this
layout.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from brainalign.steering.tasks import Item

__all__ = ["FILE_TASKS", "read_item_file"]

#: top-level key of an item file -> task of its items
FILE_TASKS = {"syllogisms": "syllogism", "syllogism": "syllogism", "transitive": "transitive",
              "propositional": "propositional"}

_PREMISE = re.compile(r"^premise(\d+)$")


def _label(trial_type, where: str) -> bool:
    words = str(trial_type).lower().split("_")
    found = {w for w in words if w in ("true", "false")}
    if len(found) != 1:
        raise ValueError(f"{where}: trial_type {trial_type!r} names no validity; it must contain the word 'true' or "
                         "'false' between underscores (e.g. '2_true_affirm', 'modus_ponens_false').")
    return found == {"true"}


def _text(value, where: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip().rstrip(".").strip():
        raise ValueError(f"{where}: field {field!r} is {value!r}; give the sentence as a non-empty string.")
    return value.strip().rstrip(".").strip()


def read_item_file(path: str | Path, name: str | None = None) -> list[Item]:
    """All problems of one of the authors' JSON files, in file order (types in the file's key order).

    Parameters
    ----------
    path : a JSON file in the layout of the module docstring
    name : prefix of the item ids (default: the file's stem); ids are ``{name}/{task}-{k}``

    Returns
    -------
    list of Item (n_items,): ``premises`` (tuple of ``premise1`` .. ``premiseN``), ``conclusion``, ``label``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Not JSON, no known type key, or an item missing ``premise1``/``conclusion``/``trial_type``, with a gap in
        its premise numbers, or with a ``trial_type`` that names no validity; the message names the file, the
        type, the item's index and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"item file {path} does not exist; give one of the JSON files of the authors' data/ "
                                "folder (pkuxmq/Brain-guided_LLM), e.g. deductive_reasoning_data_test.json.")
    try:
        raw = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(raw, dict) or not set(raw) & set(FILE_TASKS):
        keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{path} holds {keys}; an item file is a mapping with one or more of the keys "
                         f"{sorted(FILE_TASKS)}, each a list of problems.")
    unknown = sorted(set(raw) - set(FILE_TASKS))
    if unknown:
        raise ValueError(f"{path} has the keys {unknown}, which are no reasoning type; use {sorted(FILE_TASKS)}.")
    name = path.stem if name is None else name
    items: list[Item] = []
    for key, rows in raw.items():
        task = FILE_TASKS[key]
        if not isinstance(rows, list):
            raise ValueError(f"{path}: {key!r} is a {type(rows).__name__}; give a list of problems.")
        for k, row in enumerate(rows):
            where = f"{path}: {key}[{k}]"
            if not isinstance(row, dict):
                raise ValueError(f"{where} is a {type(row).__name__}; give a mapping with premise1.., conclusion, "
                                 "trial_type.")
            missing = [f for f in ("premise1", "conclusion", "trial_type") if f not in row]
            if missing:
                raise ValueError(f"{where} lacks the field {missing[0]!r}; each problem has premise1.. premiseN, "
                                 "conclusion and trial_type.")
            numbers = sorted(int(m.group(1)) for m in map(_PREMISE.match, row) if m)
            if numbers != list(range(1, len(numbers) + 1)):
                raise ValueError(f"{where} has the premises {numbers}; number them premise1 .. premiseN without gaps.")
            premises = tuple(_text(row[f"premise{j}"], where, f"premise{j}") for j in numbers)
            items.append(Item(task, premises, _text(row["conclusion"], where, "conclusion"),
                              _label(row["trial_type"], where), f"{name}/{task}-{k}"))
    if not items:
        raise ValueError(f"{path} holds no problem; its lists are empty.")
    return items
