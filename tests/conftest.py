"""Shared fixtures: the embedded demo is run once per session through the real CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BRAINALIGN = str(Path(sys.executable).with_name("brainalign"))


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    """Run the installed ``brainalign`` command; returns the completed process (never raises)."""
    env = dict(os.environ, **kw.pop("env", {}))
    return subprocess.run([BRAINALIGN, *args], capture_output=True, text=True, env=env, **kw)


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory, feature_cache) -> Path:
    """Results of `brainalign demo` on the real embedded data and the real MiniLM model."""
    out = tmp_path_factory.mktemp("demo") / "results"
    proc = run_cli("demo", "--out", str(out), "--cache", str(feature_cache))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
