"""The benchmarks are run by hand, so nothing else notices when a refactor moves a name they import: every
``brainalign`` import statement in ``benchmarks/*.py`` must still resolve."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_imports_resolve(path):
    imports = [node for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, (ast.Import, ast.ImportFrom)) and "brainalign" in ast.unparse(node)]
    for node in imports:
        exec(compile(ast.unparse(node), f"{path.name}:{node.lineno}", "exec"), {})  # raises ImportError if moved


def test_benchmarks_are_found():
    assert len(BENCHMARKS) >= 5
