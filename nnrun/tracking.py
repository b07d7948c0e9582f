"""Where else a run is recorded while it trains: TensorBoard and MLflow.

The run directory stays the record of truth: a tracker that fails (an
unreachable MLflow server) is a warning, and training goes on. Each tracker
is a Keras callback; `tracked` opens them for a run and closes them with the
status its run.json ends with.
"""

import contextlib
import importlib.util
import logging
import math
import os
import time
from pathlib import Path

from nnrun import feeding, rundir
from nnrun.backend import keras as _keras
from nnrun.errors import ConfigError, one_line

keras = _keras()

TENSORBOARD = "tensorboard"  # the run directory's folder
MLFLOW_DB = "mlflow.db"  # the default store, beside the runs folder
MLFLOW_ARTIFACTS = "mlartifacts"
NEEDS = {"tensorboard": ("tensorboard", "nnrun[tensorboard]"), "mlflow": ("mlflow", "nnrun[mlflow]")}
# An nnrun run's end -> an MLflow run's (a run.json still `running` ended in an error).
MLFLOW_STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED", "running": "FAILED"}
_MAX_PARAM = 6000  # MLflow's limit on a param's value


def check_available(tracking, place="tracking"):
    """Refuses trackers whose package is not installed, naming the extra (exit 2).

    Args:
        tracking: the config's `Tracking` section.
        place: where they were asked for, for the message.
    """
    for name in tracking.names():
        module, extra = NEEDS[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"{place}.{name}: needs {module}, which is not installed; pip install '{extra}'")


def mlflow_uri(settings, output_dir):
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
def tracked(config, run_dir, console, class_names=None):
    """Opens the config's trackers for a run; yields their Keras callbacks.

    On the way out, each is closed with the status run.json then records
    (completed, failed, interrupted), whether the run ended or raised.

    Args:
        config: the validated `Config`.
        run_dir: the run directory (new or resumed).
        console: a rich console for warnings (stderr).
        class_names: the classes, naming a per-class metric's values.

    Yields:
        A list of Keras callbacks.
    """
    trackers = []
    if config.tracking.tensorboard is not None:
        trackers.append(keras.callbacks.TensorBoard(
            log_dir=str(Path(run_dir) / TENSORBOARD), histogram_freq=config.tracking.tensorboard.histogram_freq,
            write_graph=config.tracking.tensorboard.write_graph, update_freq="epoch",
        ))
    if config.tracking.mlflow is not None:
        trackers.append(MlflowLogger(config, run_dir, console, class_names))
    try:
        yield trackers
    finally:
        for tracker in trackers:
            if isinstance(tracker, MlflowLogger):
                tracker.end()


class MlflowLogger(keras.callbacks.Callback):
    """One MLflow run for an nnrun run: the resolved config as params, each epoch's
    metrics as steps, the test metrics and the run directory's files at the end.

    A resumed run goes on logging into the MLflow run it started, when run.json
    records one in the same store. Any MLflow error is one warning, and the
    logger goes quiet: training never waits on it.

    Args:
        config: the validated `Config`.
        run_dir: the run directory.
        console: a rich console for the warning (stderr).
        class_names: the classes, naming a per-class metric's values.
    """

    def __init__(self, config, run_dir, console, class_names=None):
        super().__init__()
        self.run_dir, self.console, self.class_names = Path(run_dir), console, class_names
        self.settings = config.tracking.mlflow
        self.uri = mlflow_uri(self.settings, config.output.dir)
        self.client = self.run_id = None
        self._call(self._start, config)

    def _start(self, config):
        # A server that does not answer: one try, not MLflow's minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic"):  # "Creating initial MLflow database tables..." is not ours to say
            logging.getLogger(name).setLevel(logging.WARNING)

        self.client = MlflowClient(tracking_uri=self.uri)
        recorded = rundir.read_run(self.run_dir).get("mlflow") or {}
        if recorded.get("tracking_uri") == self.uri and recorded.get("run_id"):
            self.run_id = recorded["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        name = self.settings.experiment or config.output.name
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            where = None
            if not (self.settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")):
                # Beside the store, not wherever the shell stands.
                where = (Path(self.uri.removeprefix("sqlite:///")).parent / MLFLOW_ARTIFACTS).as_uri()
            experiment_id = self.client.create_experiment(name, artifact_location=where)
        run = self.client.create_run(
            experiment_id, run_name=self.run_dir.name,
            tags={"nnrun.run_dir": str(self.run_dir.resolve()), "mlflow.source.name": "nnrun"},
        )
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in flatten(_without_sweep(config)).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 per call
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        rundir.update_run(self.run_dir, mlflow={"run_id": self.run_id, "experiment_id": experiment_id,
                                                "tracking_uri": self.uri})

    def on_epoch_end(self, epoch, logs=None):
        if self.run_id is None:
            return
        row = feeding.scalars(logs or {}, self.class_names)
        row.setdefault("learning_rate", float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
        self._call(self._log, row, epoch + 1)

    def _log(self, values, step=None):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step or 0) for k, v in values.items() if isinstance(v, (int, float))]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def end(self):
        """Logs the test metrics and the run directory's files; ends the MLflow run with the run's status."""
        if self.run_id is None:
            return
        status = rundir.read_run(self.run_dir).get("status", "running")
        self._call(self._end, status)

    def _end(self, status):
        metrics_file = self.run_dir / rundir.METRICS
        if status == "completed" and metrics_file.is_file():
            test = rundir.read_json(metrics_file).get("test") or {}
            self._log({f"test_{k}": v for k, v in test.items() if v is not None and math.isfinite(v)})
        if self.settings.artifacts:
            for path in sorted(self.run_dir.iterdir()):
                if path.name == rundir.BACKUP or rundir.TMP_MARK in path.name or path.name.startswith("."):
                    continue
                if path.is_dir():
                    self.client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
                else:
                    self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, status=MLFLOW_STATUS.get(status, "FAILED"))

    def _call(self, function, *args):
        if self.client is None and function != self._start:
            return
        try:
            function(*args)
        except Exception as e:  # MLflow's errors are many kinds; none may stop training
            self.console.print(
                f"warning: mlflow ({self.uri}): {type(e).__name__}: {one_line(e, 200)}; training goes on, "
                f"the run directory has everything", style="yellow", highlight=False, soft_wrap=True,
            )
            self.client = self.run_id = None


def flatten(value, prefix=""):
    """A resolved config as MLflow params: `{'model.layers.0.Dense.units': '64', ...}`."""
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list) and value:
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): str(value)[:_MAX_PARAM]}


def _without_sweep(config):
    resolved = config.model_dump(mode="json")
    resolved.pop("sweep", None)
    return resolved
