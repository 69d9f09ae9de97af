"""Every name the README and docs/ tell users to import still imports from that place (refactors move code; the
documented addresses must not move with it)."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
IMPORT = re.compile(r"^\s*(from brainalign[\w.]* import [\w, ]+|import brainalign[\w.]*)\s*$", re.M)
DOTTED = re.compile(r"`(brainalign(?:\.\w+)+)`")


def _statements():
    return [(doc.name, m.group(1)) for doc in DOCS for m in IMPORT.finditer(doc.read_text())]


def _dotted():
    return sorted({(doc.name, m.group(1)) for doc in DOCS for m in DOTTED.finditer(doc.read_text())})


@pytest.mark.parametrize("doc,statement", _statements())
def test_documented_import_statements_run(doc, statement):
    exec(statement, {})


@pytest.mark.parametrize("doc,name", _dotted())
def test_documented_dotted_names_resolve(doc, name):
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            assert hasattr(obj, attr), f"{doc} names {name}, but {'.'.join(parts[:cut])} has no {attr!r}"
            obj = getattr(obj, attr)
        return
    raise AssertionError(f"{doc} names {name}, which does not import")


def test_the_docs_name_something():
    assert len(_statements()) >= 2 and len(_dotted()) >= 5
