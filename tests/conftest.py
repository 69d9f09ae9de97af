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
def run_shared_dir(tmp_path_factory, worker_id) -> Path:
    """A folder shared by every pytest-xdist worker of this run (and only of this run): what one worker
    computes behind a file lock there, the others read instead of computing it again."""
    if worker_id == "master":  # no xdist
        return tmp_path_factory.getbasetemp()
    root = tmp_path_factory.getbasetemp().parent / "shared"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def demo_dir(run_shared_dir, feature_cache) -> Path:
    """Results of `brainalign demo` on the real embedded data and the real MiniLM model.

    Run once per test session: under pytest-xdist the first worker that needs it runs the demo while holding a
    file lock in the run's shared temporary folder; any other worker waits for it and reads the same results.
    """
    from filelock import FileLock

    root = run_shared_dir / "demo"
    root.mkdir(exist_ok=True)
    out, done = root / "results", root / "done"
    with FileLock(str(root / "demo.lock")):
        if not done.exists():
            proc = run_cli("demo", "--out", str(out), "--cache", str(feature_cache))
            assert proc.returncode == 0, proc.stderr[-3000:]
            done.touch()
    return out


# ----------------------------------------------------------------------------- parallel layout
# `make test` runs `-n auto --dist loadfile --no-loadscope-reorder`: a test file runs on one worker, so its module
# fixtures (a whole tiny study, a cluster) are built once, and files are handed out in the order below (xdist would
# otherwise reorder them by their number of tests). The longest files start first, so the run does not end waiting
# for one of them (seconds measured on 2 cores).
_LONGEST_FIRST = (
    # five planted worlds, three fine-tunes each (10 epochs; ~40 CPU-s a world): the second file trains worlds 4 and 3 while the
    # first trains 0, 1, 2 and then reads 3 and 4 (tests/steering/steering_fixtures.narf_world)
    "test_steering_narf_planted.py", "test_steering_narf_worlds.py",
    "test_study_nsd.py", "test_demo.py", "test_study_movies.py", "test_study_gameplay.py",
    "test_crash_resume.py", "test_steering_deductive_config.py", "test_report_browser.py",
)


def pytest_configure(config):
    # One worker per core: torch's own thread pool on top of that only oversubscribes the cores.
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        share = max(1, (os.cpu_count() or 1) // int(workers))
        torch.set_num_threads(share)
        # the same share for the `brainalign` commands that tests start (their torch and OpenMP pools); fits pin
        # their BLAS threads themselves (encoding.blas_threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(share))


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
