"""Training progress: one `Reporter` says what a run does (stderr); its epochs show as a rich
progress bar on a terminal, one line per epoch elsewhere."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nnrun.data import feeding
from nnrun.training import keras_classes

if TYPE_CHECKING:
    from rich.console import Console


class Reporter:
    """Where a run says what it does: notes, warnings, plain lines, and its epochs.

    Args:
        console: the rich console to write to (stderr).
        live: show the epochs as a live progress bar (a terminal) rather than one line each.
        quiet: say nothing (a process other than 0 of a run: process 0 reports for all).
    """

    def __init__(self, console: Console, live: bool = False, quiet: bool = False) -> None:
        self.console = type(console)(stderr=True, quiet=True) if quiet else console
        self.live = live

    def say(self, text: str) -> None:
        """Prints a line as it is."""
        self.console.print(text, highlight=False, soft_wrap=True, markup=False)

    def note(self, text: str) -> None:
        """Prints a line dimmed: what the run did on its own (a default filled in, where it went)."""
        self.console.print(text, style="dim", highlight=False, soft_wrap=True, markup=False)

    def warn(self, text: str) -> None:
        """Prints a line in yellow: something the user may want to act on; the run goes on."""
        self.console.print(text, style="yellow", highlight=False, soft_wrap=True, markup=False)

    def epochs(self, epochs: int, steps: int, initial_epoch: int = 0) -> Any:
        """The Keras callback that shows the epochs; `close()` it once `fit` has returned.

        Args:
            epochs: the planned number of epochs.
            steps: batches per epoch.
            initial_epoch: epochs already done (a resumed run).

        Returns:
            A `ProgressReporter`.
        """
        return _classes.get("ProgressReporter")(self.console, epochs, steps, self.live, initial_epoch)


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
            console: the rich console to write to (stderr).
            epochs: the planned number of epochs.
            steps: batches per epoch.
            live: whether to show a live progress bar.
            initial_epoch: epochs already done (a resumed run).
        """

        # rich's Progress is thread-safe, so Keras may dispatch batch callbacks
        # asynchronously (a callback without this flag makes every step wait).
        async_safe = True

        def __init__(self, console: Console, epochs: int, steps: int, live: bool, initial_epoch: int = 0) -> None:
            super().__init__()
            self.console, self.epochs, self.steps = console, epochs, steps
            self.progress: Progress | None = None
            if live:
                self.progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    TextColumn("{task.fields[logs]}"),
                    console=console,
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
