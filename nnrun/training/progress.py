"""Training progress: a run's epochs, through its `Reporter`, as a rich progress bar on a
terminal, one line per epoch elsewhere."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nnrun.data import feeding
from nnrun.training import keras_classes

if TYPE_CHECKING:
    from nnrun.reporter import Reporter


def epochs(report: Reporter, epochs: int, steps: int, initial_epoch: int = 0) -> Any:
    """The Keras callback that shows a run's epochs; `close()` it once `fit` has returned.

    Args:
        report: the run's `Reporter`: a live bar where it is live, else a line per epoch.
        epochs: the planned number of epochs.
        steps: batches per epoch.
        initial_epoch: epochs already done (a resumed run).

    Returns:
        A `ProgressReporter`.
    """
    return _classes.get("ProgressReporter")(report, epochs, steps, initial_epoch)


def format_logs(logs: Mapping[str, Any]) -> str:
    """'loss 0.1234  accuracy 0.9700' from Keras logs (learning rate left out)."""
    shown = {k: v for k, v in feeding.scalars(logs).items() if k != "learning_rate" and "." not in k}  # no per-class
    return "  ".join(f"{k} {v:.4g}" for k, v in shown.items())


def __getattr__(name: str) -> Any:
    """`ProgressReporter`, a Keras callback made on first use: importing this module imports no Keras."""
    return _classes.get(name)


def _make(keras: Any) -> tuple[type, ...]:
    class ProgressReporter(keras.callbacks.Callback):
        """Shows epochs and steps with rich on a terminal; in CI logs and with
        `--quiet`, prints one plain line per epoch.

        Args:
            report: the run's `Reporter`; its console is written to, live or a line per epoch.
            epochs: the planned number of epochs.
            steps: batches per epoch.
            initial_epoch: epochs already done (a resumed run).
        """

        # rich's Progress is thread-safe, so Keras may dispatch batch callbacks
        # asynchronously (a callback without this flag makes every step wait).
        async_safe = True

        def __init__(self, report: Reporter, epochs: int, steps: int, initial_epoch: int = 0) -> None:
            super().__init__()
            self.console, self.epochs, self.steps = report.console, epochs, steps
            self.progress: Progress | None = None
            if report.live:
                self.progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    TextColumn("{task.fields[logs]}"),
                    console=self.console,
                    transient=True,
                )
                self.all_epochs = self.progress.add_task("epochs", total=epochs, completed=initial_epoch, logs="")
                self.epoch_steps = self.progress.add_task("steps", total=steps, logs="")
                self.progress.start()

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.started = time.monotonic()
            if self.progress:
                self.progress.reset(self.epoch_steps, total=self.steps, description=f"epoch {epoch + 1}", logs="")

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if self.progress:
                self.progress.update(self.epoch_steps, completed=batch + 1, logs=format_logs(logs or {}))

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            seconds = time.monotonic() - self.started
            width = len(str(self.epochs))
            self.console.print(
                f"epoch {epoch + 1:>{width}}/{self.epochs}  {format_logs(logs or {})}  ({seconds:.1f}s)",
                highlight=False,
                soft_wrap=True,
            )
            if self.progress:
                self.progress.advance(self.all_epochs)

        def close(self) -> None:
            """Removes the live display; safe to call more than once."""
            if self.progress:
                self.progress.stop()
                self.progress = None

    return (ProgressReporter,)


_classes = keras_classes.Factory(__name__, ("ProgressReporter",), _make)
