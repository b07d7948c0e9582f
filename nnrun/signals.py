"""Stop signals: Ctrl-C, SIGTERM and SIGHUP stop nnrun from its first line to its exit, a run at a safe point.

CI runners, Kubernetes and SLURM send SIGTERM before they kill; a closed
terminal sends SIGHUP. `at_start` (the command line's first step) makes each
of them raise where it lands, as Python makes Ctrl-C raise `KeyboardInterrupt`.
Within `stopping` (a run, a sweep, an export) the handler only notes the
signal: an exception raised from a handler could land anywhere (inside h5py
holding a lock, inside a finalizer that swallows it), so `Interrupted` is
raised where the work can stop safely: between batches
(`callbacks.StopOnSignal`) and between the steps of `train`. Signals after the
first are ignored, so a second Ctrl-C cannot cut the save short, nor the last
words of a process on its way out; once the exit code is decided (`at_exit`),
all are.

A signal ignored when nnrun starts stays ignored throughout: `nohup` ignores
SIGHUP, `trap '' TERM` SIGTERM, on purpose. SIGINT is the exception: a shell
ignores it in every background job of a script (`nnrun train ... &`), asked by
no one, and the script's `kill -INT` (its Ctrl-C trap) must still stop the job.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from nnrun.errors import Interrupted

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


class Stop:
    """What the stop signals said: the first one's number, and how many more came.

    Args:
        deferred: whether the first signal is only noted, for a safe point to `check()`;
            otherwise it raises `Interrupted` where it lands (`at_start`).
    """

    def __init__(self, deferred: bool = True) -> None:
        self.deferred = deferred
        self.signum: int | None = None
        self.ignored = 0
        self.raised = False

    def note(self, signum: int, frame: FrameType | None = None) -> None:
        """The signal handler: remembers the first signal (raising it unless deferred), counts the others."""
        if self.signum is not None:
            self.ignored += 1
            return
        self.signum = signum
        if not self.deferred:
            self.raised = True
            raise Interrupted(signum, plain=signum == signal.SIGINT)  # Ctrl-C reads as Python's own

    def check(self) -> None:
        """Raises `Interrupted` if a stop signal came, once; a safe point calls it."""
        if self.signum is not None and not self.raised:
            self.raised = True
            raise Interrupted(self.signum)


def at_start() -> None:
    """Makes every stop signal stop this process wherever it lands, from here on: the command line's first step.

    SIGINT is handled even if the process started with it ignored (a script's
    background job); SIGTERM and SIGHUP stay ignored if they were (`nohup`).
    Outside the main thread this changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    first = Stop(deferred=False)
    for s in STOP_SIGNALS:
        now = signal.getsignal(s)
        if now == signal.SIG_DFL or now is signal.default_int_handler or (s == signal.SIGINT and now == signal.SIG_IGN):
            signal.signal(s, first.note)
    if not getattr(sys.unraisablehook, "sends_again", False):  # once, however often a process starts a command
        sys.unraisablehook = _sending_again(sys.unraisablehook)


def _sending_again(hook: Callable[[Any], object]) -> Callable[[Any], None]:
    """An unraisable-exception hook that sends a stop signal again when Python swallowed its `Interrupted`.

    A handler raises at the next bytecode, which may be in a gc callback or a finalizer, whose exceptions
    Python only prints ("Exception ignored in"): JAX's gc callback, run after each collection while Keras
    imports, swallowed a Ctrl-C nnrun then never acted on (the first signal is remembered: later ones too).
    Sent again a moment later, from a thread, it lands once the swallowing code has returned.

    Args:
        hook: the hook until now, for every other exception.

    Returns:
        The hook.
    """

    def handle(unraisable: Any) -> None:
        error, stop = unraisable.exc_value, _handling()
        if isinstance(error, Interrupted) and stop is not None and not stop.deferred and stop.signum == error.signum:
            stop.signum, stop.raised = None, False  # not acted on: the signal sent again must raise
            again = threading.Timer(0.05, os.kill, (os.getpid(), error.signum))
            again.daemon = True
            again.start()
            return
        hook(unraisable)

    handle.sends_again = True  # type: ignore[attr-defined]
    return handle


def at_exit() -> None:
    """Ignores the stop signals from here on: the command line's last step, its exit code decided.

    What is left is Python's teardown (a second or two with TensorFlow loaded),
    with nothing in it to stop: a signal there would only turn the exit code of
    a command that has done its work into 128 + N. SIGKILL still ends it.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


@contextlib.contextmanager
def stopping() -> Iterator[Stop]:
    """Within this block, stop signals are noted in the yielded `Stop`, not acted on.

    A signal ignored as the block begins stays ignored (`at_start`). Outside the
    main thread (where Python cannot set handlers) this changes nothing: Ctrl-C
    stays a KeyboardInterrupt.

    Yields:
        A `Stop`, for the safe points to `check()`.
    """
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    outer = _handling()
    if outer is not None and outer.deferred:
        # Within another stopping block (a sweep's trial): one signal stops both, wherever it lands.
        yield outer
        return
    previous = {s: signal.signal(s, stop.note) for s in STOP_SIGNALS if signal.getsignal(s) != signal.SIG_IGN}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if outer is not None and outer.signum is None and stop.signum is not None:
            # Later signals are the ignored ones after the first; `unanswered` tells one no safe point acted on.
            outer.signum, outer.raised = stop.signum, stop.raised


def unanswered() -> int | None:
    """The stop signal that came in a `stopping` block after its last safe point, if one did (a run then completed).

    Only under `at_start`, whose handler keeps it once the block is over.

    Returns:
        The signal's number, or None.
    """
    stop = _handling()
    return stop.signum if stop is not None and not stop.raised else None


def _handling() -> Stop | None:
    """The `Stop` whose handler takes the stop signals now, if one does."""
    for s in STOP_SIGNALS:
        found = getattr(signal.getsignal(s), "__self__", None)
        if isinstance(found, Stop):
            return found
    return None
