"""Where else a run is recorded while it trains: TensorBoard and MLflow.

The run directory stays the record of truth: a tracker that fails (an
unreachable MLflow server) is a warning, and training goes on. Each tracker
is a Keras callback; `tracked` opens them for a run and closes them with the
status its run.json ends with.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun.backend import keras as _keras
from nnrun.data import feeding
from nnrun.errors import ConfigError
from nnrun.rundir import files as rundir
from nnrun.training import keras_classes, mlflow_run

if TYPE_CHECKING:  # Keras ships no types; to mypy its classes are Any
    import keras

    from nnrun.config.schema import Config
    from nnrun.config.tracking_section import Tracking
    from nnrun.reporter import Reporter

# TensorBoard follows symbolic links and has no way to skip one (tensorflow/tensorboard#70), so
# `tensorboard --logdir runs` lists the newest run twice, once under runs/latest. Its run filter,
# set from the address, hides every .../latest/... run: each run is shown once.
TENSORBOARD_VIEW = "http://localhost:6006/?runFilter=^(?!(.*/)?latest/)"
NEEDS = {"tensorboard": ("tensorboard", "nnrun[tensorboard]"), "mlflow": ("mlflow", "nnrun[mlflow]")}


def check_available(tracking: Tracking, place: str = "tracking") -> None:
    """Refuses trackers whose package is not installed, naming the extra (exit 2).

    Args:
        tracking: the config's `Tracking` section.
        place: where they were asked for, for the message.
    """
    for name in tracking.names():
        module, extra = NEEDS[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"{place}.{name}: needs {module}, which is not installed; pip install '{extra}'")


@contextlib.contextmanager
def tracked(
    config: Config, run_dir: str | os.PathLike[str], report: Reporter, class_names: Sequence[str] | None = None
) -> Iterator[list[keras.callbacks.Callback]]:
    """Opens the config's trackers for a run; yields their Keras callbacks.

    On the way out, each is closed with the status run.json then records
    (completed, failed, interrupted), whether the run ended or raised.

    Args:
        config: the validated `Config`.
        run_dir: the run directory (new or resumed).
        report: the run's `Reporter`, for where they log and for warnings.
        class_names: the classes, naming a per-class metric's values.

    Yields:
        A list of Keras callbacks.
    """
    trackers = []
    if config.tracking.tensorboard is not None:
        where = Path(run_dir) / rundir.TENSORBOARD
        report.note(f"tensorboard: {where} (tensorboard --logdir {config.output.dir}, then {TENSORBOARD_VIEW})")
        trackers.append(
            _keras().callbacks.TensorBoard(
                log_dir=str(Path(run_dir) / rundir.TENSORBOARD),
                histogram_freq=config.tracking.tensorboard.histogram_freq,
                write_graph=config.tracking.tensorboard.write_graph,
                update_freq="epoch",
            )
        )
    mlflow_logger = _classes.get("MlflowLogger")
    if config.tracking.mlflow is not None:
        trackers.append(mlflow_logger(config, run_dir, report, class_names))
    try:
        yield trackers
    finally:
        for tracker in trackers:
            if isinstance(tracker, mlflow_logger):
                tracker.end()


def __getattr__(name: str) -> Any:
    """`MlflowLogger`, a Keras callback made on first use: importing this module imports no Keras."""
    return _classes.get(name)


def _make(keras: Any) -> tuple[type, ...]:
    class MlflowLogger(keras.callbacks.Callback):
        """Feeds an `MlflowRun` each epoch's metrics (as history.csv has them); `end` ends it.

        Args:
            config: the validated `Config`.
            run_dir: the run directory.
            report: the run's `Reporter`, for where it logs and for warnings.
            class_names: the classes, naming a per-class metric's values.
        """

        def __init__(
            self,
            config: Config,
            run_dir: str | os.PathLike[str],
            report: Reporter,
            class_names: Sequence[str] | None = None,
        ) -> None:
            super().__init__()
            self.class_names = class_names
            self.run = mlflow_run.MlflowRun(config, run_dir, report)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            row = feeding.scalars(logs or {}, self.class_names)
            row.setdefault("learning_rate", float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
            self.run.log_epoch(row, epoch + 1)

        def end(self) -> None:
            """Ends the MLflow run with the status run.json records."""
            self.run.end()

    return (MlflowLogger,)


_classes = keras_classes.Factory(__name__, ("MlflowLogger",), _make)
