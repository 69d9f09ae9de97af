"""brainalign.pipeline.workers.run_fits in this process: every fit runs on ``blas_threads`` BLAS threads (what makes a fit's
bytes independent of where it runs), results come back in task order, checkpoints are reused, bad settings are
refused. (The same on dask workers: test_crash_resume's two-worker runs, byte for byte.)"""
from __future__ import annotations

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from brainalign.pipeline.checkpoint import EncodingCheckpoint
from brainalign.pipeline.workers import FitTask, run_fits


def _blas_threads_seen(x: np.ndarray) -> dict:
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    return dict(threads=np.array(blas), total=np.array(x.sum()))


def _tasks(n: int = 3) -> list[FitTask]:
    return [FitTask(f"space{i}", i % 2, _blas_threads_seen, (np.full(4, float(i)),), inputs=(np.full(4, float(i)),))
            for i in range(n)]


@pytest.mark.parametrize("blas_threads", [1, pytest.param(2, marks=pytest.mark.skipif(
    (os.cpu_count() or 1) < 2, reason="OpenBLAS caps its threads at the number of cores"))])
def test_fits_run_on_the_requested_blas_threads_and_in_task_order(blas_threads):
    before = [i["num_threads"] for i in threadpool_info()]
    got = list(run_fits(_tasks(), blas_threads=blas_threads))
    assert [float(g["total"]) for g in got] == [0.0, 4.0, 8.0]
    for g in got:
        assert g["threads"].size and (g["threads"] == blas_threads).all()
    assert [i["num_threads"] for i in threadpool_info()] == before  # the limit is lifted after each fit


def test_checkpointed_fits_are_read_back_not_rerun(tmp_path):
    ck = EncodingCheckpoint(tmp_path / "ck", stage="partition", unit="(partition, fold)")
    first = list(run_fits(_tasks(), checkpoint=ck))
    again = EncodingCheckpoint(tmp_path / "ck", stage="partition", unit="(partition, fold)")
    second = list(run_fits(_tasks(), checkpoint=again))
    assert (len(ck.fitted), len(again.loaded), len(again.fitted)) == (3, 3, 0)
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(first, second) for k in a)
    assert again.summary().startswith("partition checkpoints: 3 (partition, fold) fits loaded")


@pytest.mark.parametrize("kw, words", [(dict(n_workers=0), "n_workers=0"), (dict(blas_threads=0), "blas_threads=0")])
def test_bad_settings_are_refused(kw, words):
    with pytest.raises(ValueError, match=words):
        list(run_fits(_tasks(), **kw))
