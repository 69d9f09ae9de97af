"""One writer per output folder: an exclusive lock file beside it.

``brainalign run --out OUT`` holds ``<parent>/.<OUT name>.lock`` (created with
``O_CREAT | O_EXCL``, so two processes can never both create it) for the whole
run. A second run on the same folder fails at once with the holder's PID. A
lock left by a process that no longer exists (killed with ``kill -9``, machine
rebooted) is taken over with a warning.
"""
from __future__ import annotations

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


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


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
        self._held = False

    def _read_holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        info = dict(pid=os.getpid(), host=socket.gethostname(), started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(info))
            f.flush()
            os.fsync(f.fileno())
        return True

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a stale lock may be removed by a competitor between our checks
            if self._try_create():
                self._held = True
                return self
            holder = self._read_holder()
            pid, host = int(holder.get("pid", -1) or -1), holder.get("host")
            if not holder:
                # being written right now by a competitor (created, not yet filled): give it a moment
                time.sleep(0.2)
                holder = self._read_holder()
                pid, host = int(holder.get("pid", -1) or -1), holder.get("host")
            same_host = host in (None, socket.gethostname())
            if holder and same_host and not _pid_alive(pid):
                warnings.warn(
                    f"taking over the stale lock {self.path} of process {pid}, which no longer runs "
                    "(an earlier run was killed); its partial work is kept for --resume.",
                    StaleLockWarning, stacklevel=2,
                )
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            where = f"process {pid} on {host}" if holder else "another process"
            raise OutputLocked(
                f"output folder {self.out} is being written by {where} (lock file {self.path}); wait for it to "
                "finish or choose another --out. If that process is gone (e.g. on another machine), delete the "
                "lock file."
            )
        raise OutputLocked(f"could not acquire {self.path}; another run keeps creating it.")

    def release(self) -> None:
        if self._held:
            holder = self._read_holder()
            if int(holder.get("pid", -1) or -1) == os.getpid():
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
            self._held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
