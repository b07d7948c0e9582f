"""A trial's heartbeat on a shared study, and how other machines tell a trial whose machine died.

On a study of the sweep directory's own study.db, a trial left running is
known dead by its process id (`nnrun.sweep.study.recover`). A process on
another machine cannot be asked; instead each trial of a shared study sets
its `heartbeat` user attribute every `INTERVAL_S` while it trains, and a
sweep that sees one keep the same value for `GRACE_S` of its own clock takes
its trial for cut off. Only the value's change is read, never its time, so
the machines' clocks need not agree. (Optuna's own heartbeat is made for
`Study.optimize`, and warns on every `ask`.)
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from nnrun.sweep import optuna_private

if TYPE_CHECKING:  # Optuna is imported where used; here for annotations only
    import optuna

INTERVAL_S = 10.0
GRACE_S = 60.0  # six heartbeats missed: a slow database or a long save does not make a trial look dead
ATTR = "heartbeat"


@contextlib.contextmanager
def beating(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Sets the trial's heartbeat every `INTERVAL_S` while the block runs, from a thread of its own.

    Args:
        study: the trial's study.
        trial: the trial, as `ask` gave it.
    """
    import optuna

    stop = threading.Event()

    def beat() -> None:
        count = 0
        while not stop.is_set():
            count += 1
            try:
                optuna_private.set_user_attr(study, trial, ATTR, count)
            except optuna.exceptions.UpdateFinishedTrialError:
                return  # another machine took it for cut off after a long silence; it runs again there
            except Exception:  # the database out of reach a while: the next beat tries again
                pass
            stop.wait(INTERVAL_S)

    thread = threading.Thread(target=beat, name="nnrun-sweep-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Watch:
    """Trials running on a shared study, as this sweep has seen their heartbeats; says which stopped."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[object, float]] = {}  # trial number -> (heartbeat, when first seen so)

    def silent(self, running: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
        """The running trials whose heartbeat has not changed for `GRACE_S`, as far as this sweep has watched.

        Args:
            running: the study's running trials, now.

        Returns:
            Those taken for cut off.
        """
        now, seen, silent = time.monotonic(), {}, []
        for trial in running:
            beat = trial.user_attrs.get(ATTR)
            last = self._seen.get(trial.number)
            seen[trial.number] = last if last is not None and last[0] == beat else (beat, now)
            if now - seen[trial.number][1] >= GRACE_S:
                silent.append(trial)
        self._seen = seen
        return silent
