"""A run directory's lock: one run at a time writes into a directory.

A run takes ``DIR/run.lock`` when it starts: an exclusive ``flock`` on that file, held
as long as the run lives, with the holder's pid, host, start time and command written
into it. A second run into the directory is refused in one line naming the holder. When
a holder dies (killed, crashed, machine reset) the kernel drops its flock, so the lock
is stale: the next run takes it, and says whose it was. Where ``flock`` is missing
(not POSIX) the file alone is the lock and a stale one is recognised by its holder's
pid no longer running on this host.

Within one process a new lock on the same directory takes over from an earlier one:
the engine runs one run at a time per process (a script or a test that builds a second
Runner into the same directory has finished with the first).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from .errors import SemflowError

try:
    import fcntl
except ImportError:          # not POSIX
    fcntl = None

LOCK_NAME = "run.lock"
_HELD: dict[str, "RunLock"] = {}     # locks this process holds, by resolved directory


class RunLock:
    """``RunLock(directory).acquire()`` -> the lock (``.stale``: the dead holder's info)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.fd: int | None = None
        self.stale: dict | None = None

    # ---- taking and giving back -----------------------------------------------------
    def acquire(self) -> "RunLock":
        key = str(self.directory.resolve())
        earlier = _HELD.pop(key, None)
        if earlier is not None:
            earlier.release()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    raise SemflowError(self._refusal(_read(fd))) from None
                self.stale = _read(fd)          # written by a holder that never released it
            else:
                holder = _read(fd)
                if holder and not _dead(holder):
                    raise SemflowError(self._refusal(holder))
                self.stale = holder
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(_me()).encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        _HELD[key] = self
        return self

    def release(self) -> None:
        """Give the lock back (an empty lock file: nobody holds it). Safe to call twice."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)                            # drops the flock
        key = str(self.directory.resolve())
        if _HELD.get(key) is self:
            del _HELD[key]

    def __del__(self):
        self.release()

    # ---- messages ---------------------------------------------------------------------
    def _refusal(self, holder: dict | None) -> str:
        who = describe(holder) if holder else "a process that has not written its details yet"
        return (f"{self.directory}: another run is writing into this directory ({who}): wait for it to "
                f"finish, or choose another --out")

    def stale_note(self) -> str | None:
        if not self.stale:
            return None
        return (f"note: {self.directory}: the previous run ({describe(self.stale)}) ended without releasing "
                f"its lock; taking it over")


def describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"started {holder.get('started', '?')}")


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": " ".join(sys.argv)[:500]}


def _read(fd: int) -> dict | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        return json.loads(data) if data.strip() else None
    except (OSError, ValueError):
        return {"pid": "?", "host": "?", "started": "? (unreadable lock file)"}


def _dead(holder: dict) -> bool:
    """Without flock: is the holder recorded in the file certainly gone?"""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False          # another machine's process cannot be checked from here
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
