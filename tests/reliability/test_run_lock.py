"""RunLock: exclusive between processes; a dead holder's lock is taken over with a warning."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from brainalign._utils.locking import OutputLocked, RunLock, StaleLockWarning, lock_path

HOLDER = """
import sys, time
from brainalign._utils.locking import RunLock
with RunLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_live_holder_in_another_process_refuses_us_fast(tmp_path):
    out = tmp_path / "results"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(OutputLocked, match=f"being written by process {holder.pid}.*choose another --out"):
            RunLock(out).acquire()
        assert time.monotonic() - t0 < 2
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: its lock is stale and is taken over, loudly
    assert lock_path(out).exists()
    with pytest.warns(StaleLockWarning, match=f"stale lock .* of process {holder.pid}"):
        with RunLock(out):
            assert lock_path(out).exists()
    assert not lock_path(out).exists()  # released on exit


def test_lock_is_exclusive_within_a_process_and_released_on_error(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="boom"):
        with RunLock(out):
            with pytest.raises(OutputLocked):
                RunLock(out).acquire()
            raise RuntimeError("boom")
    assert not lock_path(out).exists()
    with RunLock(out):
        pass


RACER = """
import os, sys, time
from pathlib import Path
from brainalign._utils.locking import OutputLocked, RunLock
go = Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
try:
    with RunLock(sys.argv[1]):
        print("won", flush=True)
        time.sleep(4)
except OutputLocked:
    print("locked", flush=True)
"""


def test_exactly_one_of_many_simultaneous_runs_gets_the_lock(tmp_path):
    out, go = tmp_path / "results", tmp_path / "go"
    lock_path(out).write_text('{"pid": 999999999, "host": "x"}')  # and they all race for a stale lock
    racers = [subprocess.Popen([sys.executable, "-W", "ignore", "-c", RACER, str(out), str(go)],
                               stdout=subprocess.PIPE, text=True) for _ in range(6)]
    assert all(p.stdout.readline().strip() == "ready" for p in racers)  # all wait at the barrier
    go.touch()
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert outcomes == ["locked"] * 5 + ["won"]
    assert not lock_path(out).exists()
