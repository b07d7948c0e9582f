"""Where else a run is recorded while it trains: TensorBoard and MLflow.

The run directory stays the record of truth: a tracker that fails (an
unreachable MLflow server) is a warning, and training goes on. Each tracker
is a Keras callback; `tracked` opens them for a run and closes them with the
status its run.json ends with.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun import atomic
from nnrun.backend import keras as _keras
from nnrun.data import feeding
from nnrun.errors import ConfigError, one_line
from nnrun.rundir import files as rundir
from nnrun.rundir import record
from nnrun.rundir.status import Status
from nnrun.training import keras_classes

if TYPE_CHECKING:  # Keras ships no types; to mypy its classes are Any
    import keras
    from mlflow.tracking import MlflowClient

    from nnrun.config.schema import Config
    from nnrun.config.tracking_section import MlflowTracking, Tracking
    from nnrun.reporter import Reporter

TENSORBOARD = "tensorboard"  # the run directory's folder
MLFLOW_DB = "mlflow.db"  # the default store, beside the runs folder
MLFLOW_ARTIFACTS = "mlartifacts"
NEEDS = {"tensorboard": ("tensorboard", "nnrun[tensorboard]"), "mlflow": ("mlflow", "nnrun[mlflow]")}
# An nnrun run's end -> an MLflow run's (a run.json still `running` ended in an error).
MLFLOW_STATUS = {
    Status.COMPLETED: "FINISHED",
    Status.FAILED: "FAILED",
    Status.INTERRUPTED: "KILLED",
    Status.RUNNING: "FAILED",
}
_MAX_PARAM = 6000  # MLflow's limits on a param's value and key
_MAX_KEY = 250


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


def mlflow_uri(settings: MlflowTracking, output_dir: str | os.PathLike[str]) -> str:
    """The MLflow store a run logs to: the config's, else $MLFLOW_TRACKING_URI, else mlflow.db beside the runs folder.

    Args:
        settings: the config's `tracking.mlflow`.
        output_dir: the config's `output.dir`.

    Returns:
        A tracking URI; the default one with an absolute path.
    """
    uri = settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{Path(output_dir).resolve().parent / MLFLOW_DB}"


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
        report.note(f"tensorboard: {Path(run_dir) / TENSORBOARD} (tensorboard --logdir {config.output.dir})")
        trackers.append(
            _keras().callbacks.TensorBoard(
                log_dir=str(Path(run_dir) / TENSORBOARD),
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
        """One MLflow run for an nnrun run: the resolved config as params, each epoch's
        metrics as steps, the test metrics and the run directory's files at the end.

        A resumed run goes on logging into the MLflow run it started, when run.json
        records one in the same store made for this directory. Any MLflow error is
        one warning, and the logger goes quiet (it still tries to end the MLflow
        run): training never waits on it.

        Args:
            config: the validated `Config`.
            run_dir: the run directory.
            report: the run's `Reporter`, for where it logs and for the warning.
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
            self.run_dir, self.report, self.class_names = Path(run_dir), report, class_names
            assert config.tracking.mlflow is not None  # made only for a config that asks for MLflow
            self.settings = config.tracking.mlflow
            self.uri = mlflow_uri(self.settings, config.output.dir)
            self.client: MlflowClient | None = None
            self.run_id: str | None = None
            self.quiet = False  # after a failure: nothing more is logged, but the run is still ended
            self._call(self._start, config)

        def _start(self, config):
            # A server that does not answer: one try, not MLflow's minutes of retries.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
            from mlflow.tracking import MlflowClient

            for name in ("mlflow", "alembic"):  # "Creating initial MLflow database tables..." is not ours to say
                logging.getLogger(name).setLevel(logging.WARNING)

            self.client = MlflowClient(tracking_uri=self.uri)
            here = str(self.run_dir.resolve())
            recorded = record.read_info(self.run_dir).mlflow or {}
            if isinstance(recorded, dict) and recorded.get("tracking_uri") == shown_uri(self.uri):
                run = self._own_run(recorded.get("run_id"), here)
                if run is not None:
                    self.run_id = run.info.run_id
                    self.client.update_run(self.run_id, status="RUNNING")
                    # MLflow never changes a param: what a resume changed (training.epochs) becomes a tag.
                    for key, value in _params(config).items():
                        if run.data.params.get(key, value) != value:
                            self.client.set_tag(self.run_id, f"nnrun.resumed.{key}"[:_MAX_KEY], value)
                    self._say("continues MLflow run")
                    return
            experiment_id = self._experiment(self.settings.experiment or config.output.name)
            run = self.client.create_run(
                experiment_id, run_name=self.run_dir.name, tags={"nnrun.run_dir": here, "mlflow.source.name": "nnrun"}
            )
            self.run_id = run.info.run_id
            from mlflow.entities import Param

            params = [Param(k, v) for k, v in _params(config).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 per call
                self.client.log_batch(self.run_id, params=params[i : i + 100])
            record.update_info(
                self.run_dir,
                mlflow={"run_id": self.run_id, "experiment_id": experiment_id, "tracking_uri": shown_uri(self.uri)},
            )
            self._say("MLflow run")

        def _say(self, what: str) -> None:
            self.report.note(f"mlflow: {what} {self.run_id} in {shown_uri(self.uri)}")

        def _own_run(self, run_id, here):
            """The MLflow run run.json names, if it is this directory's (a copied or planted id is not)."""
            assert self.client is not None  # _start made it
            if not isinstance(run_id, str) or not re.fullmatch(r"[0-9a-f]{32}", run_id):
                return None
            try:
                run = self.client.get_run(run_id)
            except Exception:  # gone, or never there
                return None
            return run if run.data.tags.get("nnrun.run_dir") == here else None

        def _experiment(self, name):
            assert self.client is not None  # _start made it
            experiment = self.client.get_experiment_by_name(name)
            if experiment is not None:
                return experiment.experiment_id
            where = None
            if self.uri.startswith("sqlite:///"):  # a local store: its artifacts beside it, not where the shell stands
                where = (Path(self.uri[len("sqlite:///") :]).resolve().parent / MLFLOW_ARTIFACTS).as_uri()
            try:
                return self.client.create_experiment(name, artifact_location=where)
            except Exception:
                experiment = self.client.get_experiment_by_name(name)  # another trial made it meanwhile
                if experiment is None:
                    raise
                return experiment.experiment_id

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._call(self._log_epoch, logs or {}, epoch + 1)

        def _log_epoch(self, logs, step):
            row = feeding.scalars(logs, self.class_names)
            row.setdefault("learning_rate", float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
            self._log(row, step)

        def _log(self, values, step=None):
            from mlflow.entities import Metric

            assert self.client is not None and self.run_id is not None  # _call runs it only once _start has ended
            now = int(time.time() * 1000)
            # MLflow takes letters, digits and _ - . / : and spaces: a class named "cats & dogs" would sink the batch.
            metrics = [
                Metric(re.sub(r"[^\w./\- :]", "_", k), float(v), now, step or 0)
                for k, v in values.items()
                if isinstance(v, (int, float))
            ]
            for i in range(0, len(metrics), 1000):
                self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

        def end(self) -> None:
            """Logs the test metrics and the run directory's files; ends the MLflow run with the run's status."""
            if self.client is None or self.run_id is None:
                return
            status = record.read_info(self.run_dir).status
            self._call(self._finish, status)
            if self.run_id is not None:
                self.quiet = False
                self._call(self.client.set_terminated, self.run_id, MLFLOW_STATUS.get(status, "FAILED"))

        def _finish(self, status):
            assert self.client is not None and self.run_id is not None  # end() calls it only after _start
            metrics_file = self.run_dir / rundir.METRICS
            if status == Status.COMPLETED and metrics_file.is_file():
                test = rundir.read_json(metrics_file).get("test") or {}
                self._log({f"test_{k}": v for k, v in test.items() if v is not None and math.isfinite(v)})
            if self.settings.artifacts:
                for path, folder in _artifacts(self.run_dir):
                    self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

        def _call(self, function: Callable[..., object], *args: Any) -> None:
            if self.quiet or (self.client is None and function != self._start):
                return
            try:
                function(*args)
            except Exception as e:  # MLflow's errors are many kinds; none may stop training
                self.report.warn(
                    f"warning: mlflow ({shown_uri(self.uri)}): {type(e).__name__}: {one_line(e, 400)}; "
                    "training goes on, the run directory has everything"
                )
                self.quiet = True

    return (MlflowLogger,)


_classes = keras_classes.Factory(__name__, ("MlflowLogger",), _make)


# A run directory's own files and folders: what its MLflow run gets as artifacts (never backup/,
# never a link, which could point anywhere).
ARTIFACTS = (
    rundir.CONFIG,
    rundir.RUN,
    rundir.MODEL,
    rundir.MODEL_H5,
    rundir.BEST_MODEL,
    rundir.HISTORY,
    rundir.METRICS,
    rundir.PREPROCESSING,
    rundir.PLOTS,
    TENSORBOARD,
    "export",
    rundir.EVALUATION,
)


def _artifacts(run_dir: Path) -> Iterator[tuple[Path, str | None]]:
    """`(file, artifact folder)` for each of a run directory's own files, links left out."""
    for name in ARTIFACTS:
        top = run_dir / name
        if top.is_symlink() or not top.exists():
            continue
        if top.is_file():
            yield top, None
            continue
        for folder, dirs, files in os.walk(top):  # does not follow links to folders
            dirs[:] = sorted(d for d in dirs if not (Path(folder) / d).is_symlink())
            for file in sorted(files):
                path = Path(folder) / file
                if not path.is_symlink() and path.is_file() and atomic.TMP_MARK not in file:
                    yield path, str(Path(folder).relative_to(run_dir))


def _params(config: Config) -> dict[str, str]:
    # Where it logs is not a setting of the model, and may hold a token.
    from nnrun.config import overrides

    flat = overrides.flatten(config.model_dump(mode="json", exclude={"sweep", "tracking"}))
    return {key[:_MAX_KEY]: str(value)[:_MAX_PARAM] for key, value in flat.items()}


def shown_uri(uri: str) -> str:
    """A tracking URI without its user and password, as run.json records it and messages show it."""
    return re.sub(r"(?<=://)[^/@]*@", "", uri)
