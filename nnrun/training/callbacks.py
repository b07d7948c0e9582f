"""nnrun's own Keras callbacks: record each epoch, stop on NaN, checkpoint atomically,
carry monitored callbacks' state over a resume."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun import atomic
from nnrun.data import feeding
from nnrun.errors import Diverged
from nnrun.rundir import files as rundir
from nnrun.rundir import liveness, record
from nnrun.training import keras_classes

if TYPE_CHECKING:  # Keras ships no types; to mypy its classes are Any
    import keras
    import numpy as np

    from nnrun.signals import Stop

NAMES = ("EpochRecorder", "StopOnNaN", "AtomicModelCheckpoint", "SeedEachEpoch", "StopOnSignal", "CarryOver")


def __getattr__(name: str) -> Any:
    """The Keras callbacks (`NAMES`), made on first use: importing this module imports no Keras."""
    return _classes.get(name)


def _make(keras: Any) -> tuple[type, ...]:
    class EpochRecorder(keras.callbacks.Callback):
        """Writes history.csv and run.json (epochs done, heartbeat) after every
        epoch and keeps the weights of the last finished epoch, so an interrupted
        run can still save them.

        Args:
            run_dir: the run directory.
            rows: the epochs already recorded (a resumed run's history).
            weights: the weights those epochs ended with (a resumed run's).
            class_names: the classes, naming a per-class metric's values (F1Score).
        """

        def __init__(
            self,
            run_dir: Path,
            rows: Iterable[dict[str, float]] = (),
            weights: list[np.ndarray] | None = None,
            class_names: Sequence[str] | None = None,
        ) -> None:
            super().__init__()
            self.run_dir = run_dir
            self.class_names = class_names
            self.rows = list(rows)
            self.weights = weights
            self.weights_epoch = len(self.rows) if weights is not None else 0  # the epoch `weights` ended

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            row = {"epoch": epoch + 1, **feeding.scalars(logs or {}, self.class_names)}
            row.setdefault("learning_rate", float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
            self.rows.append(row)
            atomic.write_text(self.run_dir / rundir.HISTORY, rundir.history_text(self.rows))
            finished = {"epochs_completed": epoch + 1} if math.isfinite(row.get("loss", 0.0)) else {}
            if finished:
                self.weights, self.weights_epoch = self.model.get_weights(), epoch + 1
            record.update_info(self.run_dir, heartbeat_at=liveness.timestamp(), **finished)

        @property
        def history(self) -> dict[str, list[float]]:
            """The epochs so far as Keras's `History.history`: name -> list of values."""
            keys = [k for k in self.rows[0] if k != "epoch"] if self.rows else []
            return {k: [r.get(k, math.nan) for r in self.rows] for k in keys}

    class StopOnNaN(keras.callbacks.Callback):
        """Stops training at the first batch whose loss is NaN or infinite, and says where."""

        # It only reads the logs and sets a flag, so Keras may keep dispatching
        # batch callbacks asynchronously, as it does for a plain `fit`.
        async_safe = True

        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.diverged_at: tuple[float, int, int] | None = None

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.diverged_at = (float(loss), self.epoch + 1, batch + 1)
                self.model.stop_training = True

        @property
        def halt(self) -> bool:
            """Whether training diverged: the run ends, not only its stage."""
            return self.diverged_at is not None

        def check(self) -> None:
            """Raises `Diverged` if the loss became NaN or infinite; `train` calls it once `fit` has returned."""
            if self.diverged_at is not None:
                loss, epoch, batch = self.diverged_at
                raise Diverged(
                    f"the loss became {loss} at epoch {epoch}, batch {batch}: training diverged; "
                    "try a lower optimizer.learning_rate"
                )

    class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
        """Keras's `ModelCheckpoint`, writing to a temporary file renamed into place."""

        def __init__(self, filepath: str, **kwargs: Any) -> None:
            self.final_path = filepath
            head, tail = os.path.split(filepath)
            super().__init__(os.path.join(head, f".{tail[: -len('.keras')]}.tmp.keras"), **kwargs)

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            with self._publishing():
                super().on_train_batch_end(batch, logs)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            with self._publishing():
                super().on_epoch_end(epoch, logs)

        @contextlib.contextmanager
        def _publishing(self):
            """Renames what Keras saved in the block into place; on failure (a full disk) removes it."""
            try:
                yield
                if os.path.exists(self.filepath):
                    os.replace(self.filepath, self.final_path)
            except BaseException as e:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.filepath)
                failed = atomic.failed_write(e, self.final_path)
                if failed is e:
                    raise
                raise failed from e

    class SeedEachEpoch(keras.callbacks.Callback):
        """Seeds NumPy's global generator from the run's seed and the epoch, as each epoch begins,
        and tells `feeding` the epoch (an image folder's order follows it).

        Keras shuffles arrays with it on the JAX backend: seeded per epoch, the
        order of an epoch does not depend on how many epochs this process ran, so a
        resumed run draws what one never stopped would have.

        Args:
            seed: the run's seed.
        """

        def __init__(self, seed: int) -> None:
            super().__init__()
            self.seed = seed

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            import numpy as np

            np.random.seed((self.seed * 1_000_003 + epoch) % 2**32)
            feeding.set_epoch(epoch)

    class StopOnSignal(keras.callbacks.Callback):
        """Raises `Interrupted` at the first safe point after a stop signal: before a
        batch, or once an epoch's records and backup are written (so it goes last).

        Args:
            stop: the `signals.Stop` the signal handler writes to.
            agree: for several processes, which must stop at the same step: a
                function from this process's signal number (0: none) to any
                process's; then they stop only at epoch ends, all together.
        """

        def __init__(self, stop: Stop, agree: Callable[[int], int] | None = None) -> None:
            super().__init__()
            self.stop, self.agree = stop, agree
            self.agreed = False  # stopped at an epoch end agreed with every process

        @property
        def halt(self) -> bool:
            """Whether a stop signal came: the run ends, not only its stage."""
            return self.stop.signum is not None

        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if self.agree is None:
                self.stop.check()

        def on_test_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if self.agree is None:
                self.stop.check()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if self.agree is not None:
                signum = self.agree(self.stop.signum or 0)
                if signum and self.stop.signum is None:
                    self.stop.signum = signum
                self.agreed = bool(signum)
            self.stop.check()

    class CarryOver(keras.callbacks.Callback):
        """On a resumed run, gives EarlyStopping, ReduceLROnPlateau and ModelCheckpoint
        the best value and the epochs since it from the history so far, as if they
        had seen every epoch (their state is not in a backup). Put it after them:
        their own `on_train_begin` resets that state.

        Args:
            callbacks: the config's callbacks.
            rows: history.csv's rows up to the resumed epoch.
        """

        def __init__(self, callbacks: Sequence[keras.callbacks.Callback], rows: Sequence[dict[str, float]]) -> None:
            super().__init__()
            self.callbacks, self.rows = callbacks, rows

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            for callback in self.callbacks:
                monitor: Any = getattr(callback, "monitor", None)  # a metric name, or None: no value is finite
                values = [row[monitor] for row in self.rows if math.isfinite(row.get(monitor, math.nan))]
                if not values or not hasattr(callback, "_is_improvement"):
                    continue
                if callback.monitor_op is None:
                    callback._set_monitor_op()
                best, best_epoch, wait = None, 0, 0
                for epoch, value in enumerate(values):
                    wait += 1
                    if callback._is_improvement(value, best):
                        best, best_epoch, wait = value, epoch, 0
                callback.best = best
                for name, value in (("wait", wait), ("best_epoch", best_epoch)):
                    if hasattr(callback, name):
                        setattr(callback, name, value)

    return EpochRecorder, StopOnNaN, AtomicModelCheckpoint, SeedEachEpoch, StopOnSignal, CarryOver


_classes = keras_classes.Factory(__name__, NAMES, _make)
