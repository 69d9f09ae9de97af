"""Shared fixtures (the embedded demo is run once per session through the real CLI) and the suite's layout
over pytest-xdist workers (``make test`` runs ``-n auto --dist loadgroup``)."""
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


# ----------------------------------------------------------------------------- parallel layout
# Each test file is one xdist group, so a module-scoped fixture (a whole tiny study, a cluster) is built once, on
# one worker. Files that share a session fixture share a group, or each worker would build it (the demo: ~1-2 min).
_SHARED_GROUPS = {"test_demo.py": "demo", "test_report_browser.py": "demo"}
# The longest groups start first, so the run does not end waiting for one of them (seconds measured on 2 cores).
_LONGEST_FIRST = (
    "test_steering_narf_planted.py",  # ~250 s: five planted worlds, two fine-tunes each
    "test_demo.py", "test_report_browser.py",  # the demo (~120 s)
    "test_study_seed001.py", "test_study_seed003.py", "test_study_seed000.py",
    "test_crash_resume.py", "test_steering_seed002_config.py",
)


def pytest_configure(config):
    # One worker per core: torch's own thread pool on top of that only oversubscribes the cores.
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group(_SHARED_GROUPS.get(name, str(item.path))))
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
