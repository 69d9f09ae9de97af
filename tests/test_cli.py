"""CLI behaviour that protects results: no silent overwrite, atomic replacement."""
from __future__ import annotations

from pathlib import Path

import pytest

from brainalign.cli.main import _replace_dir

from conftest import run_cli
from test_config import DEMO


def test_run_refuses_existing_results_without_force(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "precious.csv").write_text("keep me")
    proc = run_cli("run", str(DEMO), "--out", str(out))
    assert proc.returncode == 2
    assert "already exists" in proc.stderr and "--force" in proc.stderr
    assert (out / "precious.csv").read_text() == "keep me"


def test_replace_dir_keeps_old_results_when_the_new_run_fails(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "report.html").write_text("old")

    def crash(tmp: Path):
        (tmp / "report.html").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        _replace_dir(out, crash)
    assert (out / "report.html").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no temporary leftovers

    def ok(tmp: Path):
        (tmp / "report.html").write_text("new")
        return tmp / "report.html"

    assert _replace_dir(out, ok) == out / "report.html"
    assert (out / "report.html").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
