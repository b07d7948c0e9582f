"""How a `--jobs` worker process starts: tied to its supervisor before it imports anything of weight.

`python -m nnrun.sweep.worker_start SWEEP_DIR K DEADLINE SUPERVISOR_PID` (`nnrun.sweep.workers`
starts it). First thing, it asks Linux for SIGTERM when its parent dies, which stops its trial as
`nnrun train` stops a run. A supervisor killed before that ask leaves it to a new parent (init, or a
subreaper): the worker sees that its parent is no longer the supervisor it was given, and exits
before it opens the study. Only the standard library is imported until both are done.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
ORPHANED = 128 + signal.SIGTERM  # as if the parent-death signal had come


def tie_to(supervisor: int) -> bool:
    """Asks for SIGTERM when this process's parent dies, then checks that the parent is still `supervisor`.

    Linux sends the signal when the thread that started this process ends: the supervisor starts
    its workers from its main thread.

    Args:
        supervisor: the process id of the supervisor that started this worker.

    Returns:
        Whether the supervisor is still this process's parent (False: it died first).
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == supervisor


def main(argv: Sequence[str]) -> int:
    """A worker process: runs trials on the sweep's study unless its supervisor is gone.

    Args:
        argv: the sweep directory, the worker's number, the deadline (0: none) and the supervisor's pid.

    Returns:
        The exit code: `ORPHANED` when the supervisor died before the worker was tied to it.
    """
    sweep_dir, k, deadline, supervisor = argv[0], int(argv[1]), float(argv[2]), int(argv[3])
    if not tie_to(supervisor):
        print(
            f"error: its sweep's supervisor (process {supervisor}) is gone; this worker runs no trial", file=sys.stderr
        )
        return ORPHANED
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from nnrun.sweep import workers

    return workers.worker(sweep_dir, k, deadline)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
