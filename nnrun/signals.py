"""Stop signals: Ctrl-C, SIGTERM and SIGHUP all stop a run cleanly, at a safe point.

CI runners, Kubernetes and SLURM send SIGTERM before they kill; a closed
terminal sends SIGHUP. The handler only notes the signal: an exception raised
from a handler could land anywhere (inside h5py holding a lock, inside a
finalizer that swallows it), so `Interrupted` is raised where training can
stop safely: between batches (`callbacks.StopOnSignal`) and between the steps
of `train`. Signals after the first are ignored, so a second Ctrl-C cannot cut
the save short.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from nnrun.errors import Interrupted

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


class Stop:
    """What the stop signals said: the first one's number, and how many more came."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.ignored = 0
        self.raised = False

    def note(self, signum: int, frame: FrameType | None = None) -> None:
        """The signal handler: remembers the first signal, counts the others."""
        if self.signum is None:
            self.signum = signum
        else:
            self.ignored += 1

    def check(self) -> None:
        """Raises `Interrupted` if a stop signal came, once; a safe point calls it."""
        if self.signum is not None and not self.raised:
            self.raised = True
            raise Interrupted(self.signum)


@contextlib.contextmanager
def stopping() -> Iterator[Stop]:
    """Within this block, stop signals are noted in the yielded `Stop`, not acted on.

    Outside the main thread (where Python cannot set handlers) this changes
    nothing: Ctrl-C stays a KeyboardInterrupt.

    Yields:
        A `Stop`, for the safe points to `check()`.
    """
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    outer = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
    if isinstance(outer, Stop):
        # Within another stopping block (a sweep's trial): one signal stops both, wherever it lands.
        yield outer
        return
    previous = {s: signal.signal(s, stop.note) for s in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
