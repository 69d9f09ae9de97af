"""RunLock: exclusive between processes; a dead holder's lock is taken over with a warning."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from brainalign.locking import OutputLocked, RunLock, StaleLockWarning, lock_path

HOLDER = """
import sys, time
from brainalign.locking import RunLock
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
