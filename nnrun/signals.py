"""Stop signals as exceptions: Ctrl-C, SIGTERM and SIGHUP all stop a run cleanly.

CI runners, Kubernetes and SLURM send SIGTERM before they kill; a closed
terminal sends SIGHUP. Each is turned into `Interrupted`, which unwinds like
Ctrl-C's KeyboardInterrupt, so the run saves its last finished epoch and says
`interrupted`. From the first signal on, further ones are ignored until the
save is done: a second Ctrl-C cannot cut the save short.
"""

import contextlib
import signal
import threading

from nnrun.errors import Interrupted

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


@contextlib.contextmanager
def stopping():
    """Within this block, a stop signal raises `Interrupted` (once).

    A later signal while the first is being handled is counted in
    `state["ignored"]`, not acted on. Outside the main thread (where Python
    cannot set handlers) this does nothing: Ctrl-C stays a KeyboardInterrupt.

    Yields:
        A dict with `ignored`: how many further signals were ignored.
    """
    state = {"ignored": 0}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def ignore(signum, frame):
        state["ignored"] += 1

    def stop(signum, frame):
        for s in STOP_SIGNALS:
            signal.signal(s, ignore)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    try:
        yield state
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
