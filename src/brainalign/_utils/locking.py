"""One writer per output folder: an exclusive lock file beside it.

``brainalign run --out OUT`` holds ``<parent>/.<OUT name>.lock`` for the whole run: an ``flock`` on the open file
(released by the kernel when the process dies, however it dies) plus the holder's PID and host written inside. A
second run on the same folder fails at once, naming the holder. A lock file left by a process that was killed
(its ``flock`` is gone, its PID still written) is taken over with a warning. A clean exit deletes the file.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import warnings
from pathlib import Path

__all__ = ["OutputLocked", "StaleLockWarning", "RunLock", "lock_path"]


class OutputLocked(RuntimeError):
    """Another live process is writing the same output folder."""


class StaleLockWarning(UserWarning):
    """A lock of a dead process was taken over."""


def lock_path(out: str | Path) -> Path:
    """The lock file guarding ``out``: a hidden sibling, so it exists before ``out`` does."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.lock"


class RunLock:
    """Exclusive lock on an output folder (a context manager).

    Parameters
    ----------
    out : path
        The output folder to guard (it need not exist yet).

    Raises
    ------
    OutputLocked
        On entry, when a live process holds the lock.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = lock_path(out)
        self._fd: int | None = None

    def _read_holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = self._read_holder()
                where = f"process {holder.get('pid')} on {holder.get('host')}" if holder else "another process"
                raise OutputLocked(
                    f"output folder {self.out} is being written by {where} (lock file {self.path}); wait for it "
                    "to finish or choose another --out."
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder released (and deleted) it between our open and our flock: try again
                os.close(fd)
                continue
            with os.fdopen(os.dup(fd), "r+") as f:
                old = f.read()
                if old.strip():
                    try:
                        prev = json.loads(old)
                    except ValueError:
                        prev = {}
                    warnings.warn(
                        f"taking over the stale lock {self.path} of process {prev.get('pid', '?')} on "
                        f"{prev.get('host', '?')}, which ended without releasing it (an earlier run was killed); "
                        "its partial work is kept for --resume.", StaleLockWarning, stacklevel=2,
                    )
                info = dict(pid=os.getpid(), host=socket.gethostname(),
                            started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
                f.seek(0)
                f.truncate()
                f.write(json.dumps(info))
                f.flush()
                os.fsync(f.fileno())
            self._fd = fd
            return self
        raise OutputLocked(f"could not acquire {self.path}; other runs keep taking and releasing it.")

    def release(self) -> None:
        if self._fd is not None:
            try:
                self.path.unlink()  # while still holding the flock: a waiter then sees a new inode and retries
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
