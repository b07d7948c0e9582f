"""Is a run's process still there? What run.json records of the process, and reading it back.

SIGKILL and the OOM killer cannot be caught: a run they end stays `running` in
its run.json. The process id, host and the kernel's start time of the process
recorded there let a reader tell a run still going from one that died.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nnrun.errors import RunDirBusy, RunDirError


def timestamp(seconds: float | None = None) -> str:
    """An ISO 8601 UTC time, to the second, as run.json records times.

    Args:
        seconds: a `time.time()` value; now by default.
    """
    import datetime

    seconds = time.time() if seconds is None else seconds
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds")


def process() -> dict[str, Any]:
    """This process as run.json records it, so a reader can tell whether it still runs.

    Returns:
        `pid`, `host` and `process_started` (the kernel's start time of the
        process, where /proc has it: a pid reused by another process differs).
    """
    return of(os.getpid())


def of(pid: int) -> dict[str, Any]:
    """A process of this host as run.json records it (`process`), such as a worker this one started.

    Args:
        pid: its process id.

    Returns:
        `pid`, `host` and `process_started`.
    """
    return {"pid": pid, "host": socket.gethostname(), "process_started": _started(pid)}


def still_running(pid: object, host: object, process_started: object) -> bool:
    """Whether the process that run.json (or a sweep's state) names still runs.

    A process on another host cannot be checked from here and is taken to run;
    its run's `heartbeat_at` says when it last finished an epoch.

    Args:
        pid: the recorded process id.
        host: the recorded host name.
        process_started: the kernel's recorded start time of the process, if any.

    Returns:
        False when the process is gone, or its pid now belongs to another process.
    """
    if host != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return True
    # Started at another time than recorded: the pid now belongs to another process.
    reused = process_started is not None and _started(pid) not in (None, process_started)
    return alive(pid) and not reused


def alive(pid: int) -> bool:
    """Whether a process of this id runs on this host (not a zombie)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):  # none, or a pid no process can have
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    fields = _stat(pid)
    return fields is None or fields[0] not in ("Z", "X")  # no /proc here: the pid exists, trust it


def _started(pid: int) -> int | None:
    fields = _stat(pid)
    return None if fields is None else int(fields[19])


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state first, start time 20th), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (which may hold spaces) ends with the last ')'.
    return stat.rpartition(")")[2].split()


@contextlib.contextmanager
def claim(path: Path) -> Iterator[int]:
    """Holds a run directory for this process alone (an exclusive lock on the
    folder itself, which the system releases when the process ends, however it ends).

    Two `nnrun resume`s of one run at once: the second is refused (`RunDirBusy`).

    Args:
        path: the run directory.

    Yields:
        The lock's file descriptor: a child process given it (`pass_fds`) shares the lock, which
        then lasts until the child ends too.
    """
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise RunDirError(f"run directory '{path}' does not exist") from None
    except OSError as e:
        raise RunDirError(f"run directory '{path}': cannot open: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirBusy(f"{path}: another process is resuming this run") from None
        except OSError:
            pass  # a filesystem without locks: the status check is all there is
        yield fd
    finally:
        os.close(fd)
