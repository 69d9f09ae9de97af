"""kill -9 during feature extraction and again during fitting, then --resume: byte-identical tables, and the log
shows that finished work was read back, not recomputed. Along the way: the lock refuses a second writer, and
interrupted work is neither overwritten nor silently reused. The same with the fits on 2 worker processes
(``encoding.n_workers``), killed while partitioning and resumed on 1: byte-identical tables again."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from typer.testing import CliRunner

from brainalign.cli import app
from brainalign._utils.locking import StaleLockWarning

from small_experiment import (ONE_PARTITION, PARTITION_TABLES, TABLES, cli, make_small_experiment, one_line,
                              run_until_stalled_then_kill, with_workers)

N_FOLDS = 4
N_FITS = 6 * N_FOLDS  # (2 layers x 2 prompts + 2 baselines) spaces x 4 outer folds
N_FEATURES = 2 * 8  # prompts x stimuli
N_PARTITION_FITS = 1 * 4  # partitions x outer folds
N_PERM = 50  # block permutations per space


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The small experiment and its uninterrupted results (own feature cache), with block permutations on, so
    the byte-identical comparisons cover the p and q values too."""
    root = tmp_path_factory.mktemp("small")
    cfg = make_small_experiment(root, **{"analysis.partitions": ONE_PARTITION, "analysis.n_permutations": N_PERM})
    proc = cli("run", str(cfg), "--out", str(root / "reference"), "--cache", str(root / "cache-ref"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = one_line(proc.stderr)
    assert f"features: 0 cached, {N_FEATURES} computed" in log
    assert "encoding checkpoints: 0 (space, fold) fits loaded" in log and f"{N_FITS} fitted" in log
    assert f"partition checkpoints: 0 (partition, fold) fits loaded" in log and f"{N_PARTITION_FITS} fitted" in log
    voxels = pd.read_parquet(root / "reference" / "voxel_scores.parquet")
    assert voxels[["p", "q"]].notna().all().all() and voxels["p"].nunique() > 1  # real p and q values to compare
    return cfg, root / "reference"


def _invoke(*args: str):
    """The CLI in this process (a second process next to the one under test)."""
    return CliRunner(env={"COLUMNS": "400"}).invoke(app, list(args))


def test_sigkill_in_features_then_in_fitting_then_resume_is_byte_identical(small, tmp_path):
    cfg, reference = small
    out, cache = tmp_path / "out", tmp_path / "cache"
    work = tmp_path / ".out.work"
    args = ["run", str(cfg), "--out", str(out), "--cache", str(cache)]

    # 1. killed while extracting features: 11 of 16 entries are complete on disk. Before the kill, a second
    #    writer (this process) is refused at once by the lock, with or without --resume/--force.
    def second_writer(pid: int) -> None:
        for extra in ([], ["--resume"], ["--force"]):
            t0 = time.monotonic()
            second = _invoke(*args, *extra)
            assert second.exit_code == 2
            msg = one_line(second.stderr)
            assert f"being written by process {pid}" in msg and "choose another --out" in msg
            assert "Traceback" not in msg
            assert time.monotonic() - t0 < 20  # checks the config, then stops: no model, no fit

    run_until_stalled_then_kill(args, "feature-put:11", tmp_path / "stalled-1", while_stalled=second_writer)
    entries = sorted((cache / "features").rglob("*.npy"))
    assert len(entries) == 11
    mtimes = {p: p.stat().st_mtime_ns for p in entries}
    assert not out.exists()  # results appear only when complete

    # without --resume the interrupted work is neither overwritten nor silently reused
    with pytest.warns(StaleLockWarning, match="stale lock"):  # the killed run's lock is taken over
        refused = _invoke(*args)
    assert refused.exit_code == 2
    assert "interrupted run" in one_line(refused.stderr) and "--resume" in one_line(refused.stderr)

    # 2. resumed, then killed while fitting, after 10 (space, fold) fits
    err = one_line(run_until_stalled_then_kill(args + ["--resume"], "encoding-fit:10", tmp_path / "stalled-2"))
    assert f"features: 11 cached, {N_FEATURES - 11} computed" in err
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())  # finished entries were not rewritten
    # 10 fits of 4 folds each space: 2 finished spaces kept as statistics entries (their fold entries, which
    # hold predictions, deleted) and 2 fold entries of the third
    assert len(list((work / "checkpoints").glob("*.npz"))) == 10 % N_FOLDS
    assert len(list((work / "checkpoints" / "statistics").glob("*.npz"))) == 10 // N_FOLDS

    # 3. resumed to the end: nothing finished is recomputed, and the tables equal the uninterrupted run's
    resumed = cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = one_line(resumed.stderr)
    assert f"features: {N_FEATURES} cached, 0 computed" in log
    assert "encoding checkpoints: 10 (space, fold) fits loaded" in log and f"{N_FITS - 10} fitted" in log
    for name in TABLES + PARTITION_TABLES:
        assert (reference / name).read_bytes() == (out / name).read_bytes(), f"{name} differs"
    # the work folder, the lock and the killed runs' temporary folders are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "out", "stalled-1", "stalled-2"]


def test_killed_on_two_workers_while_partitioning_then_resumed_on_one(small, tmp_path):
    """Determinism across worker counts, with a crash in between: every (space, fold) fit and half the
    (partition, fold) fits are made on 2 worker processes, the rest in one process, and the tables equal the
    single-process run's byte for byte. Checkpoints are written by the parent as results arrive; the workers die
    with it; the resume (a worker count is not part of the config hash) refits nothing that was finished."""
    cfg, reference = small
    out, cache = tmp_path / "out", reference.parent / "cache-ref"  # features all cached: this is about fitting
    workers: list[psutil.Process] = []

    def note_workers(pid: int) -> None:
        workers.extend(psutil.Process(pid).children(recursive=True))
        assert len(workers) >= 2  # the LocalCluster's worker processes

    err = one_line(run_until_stalled_then_kill(["run", str(with_workers(cfg, 2)), "--out", str(out), "--cache",
                                                str(cache)], "partition-fit:2", tmp_path / "stalled",
                                               while_stalled=note_workers))
    assert "encoding checkpoints: 0 (space, fold) fits loaded" in err and f"{N_FITS} fitted" in err
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, f"worker processes outlived the killed run: {alive}"
    checkpoints = tmp_path / ".out.work" / "checkpoints"
    assert not list(checkpoints.glob("*.npz"))  # every space finished: its statistics entry replaced its folds'
    assert len(list((checkpoints / "statistics").glob("*.npz"))) == N_FITS // N_FOLDS
    assert len(list((checkpoints / "partition").glob("*.npz"))) == 2

    resumed = cli("run", str(cfg), "--out", str(out), "--cache", str(cache), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = one_line(resumed.stderr)
    assert f"encoding checkpoints: {N_FITS} (space, fold) fits loaded" in log and "0 fitted" in log
    assert "partition checkpoints: 2 (partition, fold) fits loaded" in log and f"{N_PARTITION_FITS - 2} fitted" in log
    for name in TABLES + PARTITION_TABLES:
        assert (reference / name).read_bytes() == (out / name).read_bytes(), f"{name} differs"


def test_resume_refuses_work_of_a_different_config(small, tmp_path):
    cfg, _ = small
    out = tmp_path / "out"
    work = tmp_path / ".out.work"
    work.mkdir()
    (work / "config_hash").write_text("0" * 64 + "\n")
    res = _invoke("run", str(cfg), "--out", str(out), "--resume", "--cache", str(tmp_path / "cache"))
    assert res.exit_code == 2
    msg = one_line(res.stderr)
    assert "cannot resume" in msg and "different config" in msg and "--force" in msg
    assert (work / "config_hash").read_text().startswith("0" * 64)  # left untouched


def test_resume_refuses_finished_results_of_a_different_config(small, tmp_path):
    cfg, reference = small
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"config_hash": "abc"}')
    res = _invoke("run", str(cfg), "--out", str(out), "--resume", "--cache", str(tmp_path / "cache"))
    assert res.exit_code == 2
    assert "holds results of a different config" in one_line(res.stderr)
    assert (out / "manifest.json").read_text() == '{"config_hash": "abc"}'


def test_force_and_resume_together_are_refused(small, tmp_path):
    cfg, _ = small
    res = _invoke("run", str(cfg), "--out", str(tmp_path / "o"), "--resume", "--force")
    assert res.exit_code == 2 and "contradict" in one_line(res.stderr)
