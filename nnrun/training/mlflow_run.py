"""One MLflow run for an nnrun run, kept whole through a tracking server's outage.

MLflow is a second record: the run directory stays the record of truth, and
training never waits long on MLflow. A call that fails (a server that stopped
answering) is one warning; later calls are skipped until a retry is due, and
the epochs missed meanwhile are logged from history.csv once it answers again.
The MLflow run ends with its nnrun run's status, or the user is told, once, how
to end it. What MLflow prints ("View run ...") goes to stderr: stdout is the
command's (a run directory's path).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from nnrun import atomic
from nnrun.errors import one_line
from nnrun.rundir import files as rundir
from nnrun.rundir import record
from nnrun.rundir.status import Status

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from nnrun.config.schema import Config
    from nnrun.config.tracking_section import MlflowTracking
    from nnrun.reporter import Reporter

MLFLOW_DB = "mlflow.db"  # the default store, beside the runs folder
MLFLOW_ARTIFACTS = "mlartifacts"
# An nnrun run's end -> an MLflow run's (a run.json still `running` ended in an error).
MLFLOW_STATUS = {
    Status.COMPLETED: "FINISHED",
    Status.FAILED: "FAILED",
    Status.INTERRUPTED: "KILLED",
    Status.RUNNING: "FAILED",
}
_MAX_PARAM = 6000  # MLflow's limits on a param's value and key
_MAX_KEY = 250
# After a failed call, MLflow is left alone this long, doubling up to the most: a server that
# does not answer at all costs each try MLFLOW_HTTP_REQUEST_TIMEOUT, a few percent of the time.
RETRY_S = 30.0
MAX_RETRY_S = 600.0


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


# The user and password in a URL (http://user:password@host): never shown, never recorded.
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def shown_uri(uri: str) -> str:
    """A tracking URI, or any text naming it, without its user and password: as run.json and messages show it."""
    return _USERINFO.sub("", uri)


class _Shown(io.TextIOBase):
    """A text stream that writes to another with the credentials taken out of its URLs: MLflow prints its
    server's URL ("View run ... at: URL") as it was given, password and all."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(shown_uri(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class MlflowRun:
    """One MLflow run for an nnrun run: the resolved config as params, each epoch's
    metrics as steps, the test metrics and the run directory's files at the end.

    A resumed run goes on logging into the MLflow run it started, when run.json
    records one in the same store made for this directory. The first failed call
    is one warning; then MLflow is tried again after `RETRY_S` (doubling), and
    the epochs it missed are logged from history.csv when it answers.

    Args:
        config: the validated `Config` (its `tracking.mlflow` set).
        run_dir: the run directory.
        report: the run's `Reporter`, for where it logs and for the warnings.
    """

    def __init__(self, config: Config, run_dir: str | os.PathLike[str], report: Reporter) -> None:
        self.run_dir, self.report = Path(run_dir), report
        assert config.tracking.mlflow is not None  # made only for a config that asks for MLflow
        self.settings = config.tracking.mlflow
        self.uri = mlflow_uri(self.settings, config.output.dir)
        self.client: MlflowClient | None = None
        self.run_id: str | None = None
        self.missed_from: int | None = None  # the first epoch MLflow does not have
        self.failed, self.reason = 0, ""  # how many calls failed; why the last did
        self.warned = False  # the first failure is said; the others are retried quietly
        self.unreachable = False  # the last call found no server (no use trying another now)
        self.retry_at, self.delay = 0.0, RETRY_S
        self.ending = False
        self._call(self._start, config, retry=True)

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

    def log_epoch(self, row: Mapping[str, float], step: int) -> None:
        """Logs an epoch's metrics as step `step`; and first those of the epochs MLflow missed, once it answers.

        Args:
            row: metric name -> value (history.csv's row without its epoch).
            step: the epoch, counted from 1.
        """
        if self.run_id is None:
            return
        if self.missed_from is not None and not self._call(self._catch_up, step):
            return  # not yet: this epoch is in history.csv, logged with the others it missed
        if not self._call(self._log, row, step):
            self.missed_from = step

    def _catch_up(self, until: int | None) -> None:
        """Logs history.csv's epochs from the first MLflow missed to before `until` (None: to the last)."""
        assert self.missed_from is not None  # called only after a miss
        first = self.missed_from
        rows = [r for r in rundir.read_history(self.run_dir / rundir.HISTORY) if r["epoch"] >= first]
        rows = [r for r in rows if until is None or r["epoch"] < until]
        for r in rows:  # an empty cell reads NaN: a metric that epoch did not have
            self._log({k: v for k, v in r.items() if k != "epoch" and math.isfinite(v)}, int(r["epoch"]))
            self.missed_from = int(r["epoch"]) + 1  # what is logged is never logged twice
        self.missed_from = None
        last = rows[-1]["epoch"] if rows else first
        self.report.note(
            f"mlflow: {shown_uri(self.uri)} answers again; "
            + (f"the epochs it missed ({first}-{last}) logged from history.csv" if rows else "logging goes on")
        )

    def _log(self, values, step=None):
        from mlflow.entities import Metric

        assert self.client is not None and self.run_id is not None  # called only once _start has made the run
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
        """Logs what MLflow missed, the test metrics and the run directory's files; ends the MLflow run
        with the status run.json records. If it cannot be ended, says once how to end it later."""
        if self.client is None or self.run_id is None:
            return
        self.ending = True  # what fails from here is said below, once
        status = record.read_info(self.run_dir).status
        mlflow_status, ended_ms = MLFLOW_STATUS.get(status, "FAILED"), int(time.time() * 1000)
        failed = self.failed
        caught_up = self.missed_from is None or self._call(self._catch_up, None, retry=True)
        if caught_up or not self.unreachable:
            self._call(self._finish, status, retry=True)
        if not self.unreachable and self._call(
            self.client.set_terminated, self.run_id, mlflow_status, ended_ms, retry=True
        ):
            if self.failed != failed and not self.warned:
                self.report.warn(
                    f"warning: mlflow ({shown_uri(self.uri)}): {self.reason}; MLflow run {self.run_id} ended "
                    f"{mlflow_status} without all of the run: the run directory has everything"
                )
            return
        # A URI with a password came from $MLFLOW_TRACKING_URI (a config refuses one): the client reads it there.
        where = "" if shown_uri(self.uri) != self.uri else json.dumps(self.uri)
        code = (
            f"from mlflow import MlflowClient; MlflowClient({where})"
            f".set_terminated({json.dumps(self.run_id)}, {json.dumps(mlflow_status)}, {ended_ms})"
        )
        said = (
            f"mlflow ({shown_uri(self.uri)}): MLflow run {self.run_id} could not be ended "
            f"{mlflow_status} ({self.reason}) and stays RUNNING there; once the server answers, "
            f"end it with: python -c {shlex.quote(code)}"
        )
        if self.warned:  # the outage was the warning when it began: one outage, one warning
            self.report.note(said)
        else:
            self.report.warn(f"warning: {said}")

    def _finish(self, status):
        assert self.client is not None and self.run_id is not None  # end() calls it only after _start
        metrics_file = self.run_dir / rundir.METRICS
        if status == Status.COMPLETED and metrics_file.is_file():
            test = rundir.read_json(metrics_file).get("test") or {}
            self._log({f"test_{k}": v for k, v in test.items() if v is not None and math.isfinite(v)})
        if self.settings.artifacts:
            for path, folder in _artifacts(self.run_dir):
                self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def _call(self, function: Callable[..., object], *args: Any, retry: bool = False) -> bool:
        """Makes MLflow calls, whatever they print on stderr; False if they failed or were not due to be tried.

        Args:
            function: what makes the calls.
            *args: its arguments.
            retry: try even if a retry is not due yet (the run's start and end: there is no later).

        Returns:
            Whether it ran through.
        """
        if self.client is None and function != self._start:
            return False
        if not retry and time.monotonic() < self.retry_at:
            return False
        try:
            with contextlib.redirect_stdout(_Shown(sys.stderr)):
                function(*args)
        except Exception as e:  # MLflow's errors are many kinds; none may stop training
            self.failed += 1
            self.unreachable = _unreachable(e)
            self.retry_at, self.delay = time.monotonic() + self.delay, min(2 * self.delay, MAX_RETRY_S)
            self.reason = _error(e)
            if self.unreachable:  # its words were said when it stopped answering, or say nothing new
                self.reason = "it still does not answer" if self.warned else "it does not answer"
            if not self.warned and not self.ending:
                self.report.warn(
                    f"warning: mlflow ({shown_uri(self.uri)}): {_error(e)}; "
                    "training goes on, the run directory has everything"
                )
                self.warned = True
            return False
        self.unreachable, self.retry_at, self.delay = False, 0.0, RETRY_S
        return True


def _error(e: Exception) -> str:
    # Its words may name the server's URL: the credentials go before it is cut, which could cut them in two.
    return f"{type(e).__name__}: {one_line(shown_uri(str(e)), 400)}"


def _unreachable(e: BaseException) -> bool:
    """Whether an MLflow error is a server that did not answer (a refused or timed-out connection)."""
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        # Under MLflow's error, requests' and urllib3's, and under them the socket's (a full disk is no outage).
        if isinstance(cause, (ConnectionError, TimeoutError)):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


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
    rundir.TENSORBOARD,
    rundir.EXPORT,
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
    shown = {key: json.dumps(value) if isinstance(value, list) else str(value) for key, value in flat.items()}
    return {key[:_MAX_KEY]: value[:_MAX_PARAM] for key, value in shown.items()}
