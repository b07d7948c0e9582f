"""`nnrun sweep` and `nnrun check` of a sweep: a hyperparameter search with Optuna whose trials are ordinary runs.

Trials run in this process one after another (`nnrun.sweep.trial`), or in
`--jobs` worker processes that share the study while this one reports
(`nnrun.sweep.workers`). The sweep directory and its study are
`nnrun.sweep.study`'s.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun import atomic, errors, signals
from nnrun.config import loading as config_lib
from nnrun.config.sweep_section import samples
from nnrun.errors import ConfigError, NnrunError, RunDirBusy, RunDirError, RunFailed, WriteFailed
from nnrun.rundir import files as rundir
from nnrun.rundir import liveness
from nnrun.rundir.status import Status
from nnrun.sweep import report as sweep_report
from nnrun.sweep import space as search_space
from nnrun.sweep import storage as storage_lib
from nnrun.sweep import workers as sweep_workers
from nnrun.sweep.storage import Storage
from nnrun.sweep.study import (
    CONFIG,
    STATE,
    STUDY,
    TRIALS,
    WORKERS,
    counted,
    deadline_of,
    load,
    mark_retried,
    open_study,
    read_state,
    recover,
    write_state,
)
from nnrun.sweep.trial import spent, trial_config, work

if TYPE_CHECKING:
    from nnrun.config.schema import Config
    from nnrun.reporter import Reporter
    from nnrun.training.setup import Setup

EXTRA = "nnrun[sweep]"


@dataclass(frozen=True)
class Swept:
    """What a sweep found: its directory and its best trial, which `nnrun sweep` names.

    Attributes:
        sweep_dir: the sweep directory.
        metric: the sweep's metric (`val_loss`).
        trial: the best trial's number, counted from 1 as trials.csv counts them.
        value: its metric.
        params: its parameters, `{dotted path: value}`.
        best_config: best.yaml: its config, ready for `nnrun train`.
    """

    sweep_dir: Path
    metric: str
    trial: int
    value: float
    params: dict[str, Any]
    best_config: Path


def check_available() -> None:
    """Refuses a sweep when Optuna is not installed, naming the extra (exit 2)."""
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise ConfigError(f"sweep: needs optuna, which is not installed; pip install '{EXTRA}'")


def check(config: Config, report: Reporter) -> Setup:
    """What `nnrun check` and `nnrun sweep` check of a sweep before its first trial: the data and the
    model at every value of each parameter (the others at their first), and the metric. Its errors
    name the place in the config; the command names the file.

    Args:
        config: the validated `Config`, with a sweep section.
        report: the `Reporter`, for a note.

    Returns:
        The `Setup` of the sweep's first point.
    """
    from nnrun.training import setup

    check_available()
    assert config.sweep is not None  # a sweep's config
    first = search_space.first_point(config.sweep)
    prepared: Setup | None = None
    for path, space in config.sweep.parameters.items():
        for value in samples(space):
            point = trial_config(config, {**first, path: value}, config.output.dir, config.output.name)
            try:
                if prepared is None:
                    prepared = setup.setup(point, join=False)
                else:
                    warned = setup.check_model(point, prepared.dataset)
                    prepared.warnings += [w for w in warned if w not in prepared.warnings]
            except ConfigError as e:
                raise ConfigError(f"sweep.parameters['{path}']: with {value!r}: {e}") from None
    assert prepared is not None  # every parameter has a value to try
    note = search_space.check_metric(config, prepared.dataset.y_val is not None)
    if note:
        report.note(f"note: {note}")
    return prepared


def is_sweep(path: str | os.PathLike[str]) -> bool:
    """Whether a folder is a sweep directory (`nnrun sweep DIR` continues it)."""
    return Path(path).is_dir() and (Path(path) / STATE).is_file()


def connect(config: Config, config_file: str | os.PathLike[str], flag: str | None = None) -> Storage:
    """A new sweep's study's database: `--storage`, else `$NNRUN_SWEEP_STORAGE`, else the config's
    `sweep.storage`; one given is tried as `probe` tries it, then opened once, so that a URL or a server
    that fails is exit 2, in check's words, before anything is made or trained.

    Args:
        config: the validated `Config`, with a sweep section.
        config_file: its path, which messages name when the URL is its own.
        flag: `--storage`'s URL, if given.

    Returns:
        The `Storage`.
    """
    chosen = probe(config, config_file, flag)
    if chosen.shared:
        storage_lib.rdb(chosen).engine.dispose()
    return chosen


def probe(config: Config, config_file: str | os.PathLike[str], flag: str | None = None) -> Storage:
    """What `nnrun check` tries of the database `connect` would open, making nothing in it: the URL reads,
    its driver is installed, a server's connection opens.

    Args:
        config: the validated `Config`, with a sweep section.
        config_file: its path, which messages name when the URL is its own.
        flag: `--storage`'s URL, if given.

    Returns:
        The `Storage`.
    """
    assert config.sweep is not None  # a sweep's config
    chosen = storage_lib.choose(flag, config.sweep.storage, place=f"{config_file}: {storage_lib.KEY}")
    if chosen.shared:
        check_available()
        storage_lib.probe(chosen)
    return chosen


def start(
    config: Config,
    config_file: str | os.PathLike[str],
    report: Reporter,
    jobs: int = 1,
    storage: Storage | None = None,
) -> Swept:
    """Makes a sweep directory for a config with a sweep section, and runs the sweep.

    On a shared study (`--storage`, `$NNRUN_SWEEP_STORAGE` or `sweep.storage`, in that order) the sweep
    joins the study of its `output.name` in that database, made by the first machine to start.

    Args:
        config: the validated `Config`.
        config_file: its path, recorded.
        report: the `Reporter`, for progress.
        jobs: how many trials run at once, each in a process of its own.
        storage: where its study is (`connect`); by default what the config says.

    Returns:
        A `Swept`: the sweep directory and its best trial.

    Raises:
        RunFailed: no trial completed (it carries the sweep directory).
    """
    from nnrun.training import mlflow_run, train

    check_available()
    mlflow = config.tracking.mlflow
    if mlflow is not None and mlflow.tracking_uri is None and not os.environ.get("MLFLOW_TRACKING_URI"):
        # Fixed now: continued from elsewhere, the trials still log to the store beside these runs.
        mlflow.tracking_uri = mlflow_run.mlflow_uri(mlflow, config.output.dir)
    chosen = storage or connect(config, config_file)
    if chosen.shared:
        assert chosen.url is not None and config.sweep is not None  # shared: a URL was given, in a sweep
        # The sweep directory records where its study is, without the password.
        sweep = config.sweep.model_copy(update={"storage": storage_lib.without_password(chosen.url)})
        config = config.model_copy(update={"sweep": sweep})
    sweep_dir = rundir.create(config.output.dir, f"{config.output.name}-sweep", subfolders=(TRIALS,))
    atomic.write_text(sweep_dir / CONFIG, train.resolved_text(config))  # data paths absolute
    write_state(
        sweep_dir,
        status=Status.RUNNING,
        config_file=str(Path(config_file).resolve()),
        started_at=liveness.timestamp(),
        used_s=0.0,
        **({"study": config.output.name, "storage": chosen.shown} if chosen.shared else {}),
    )
    return run(sweep_dir, report, jobs, storage=chosen)


def run(
    sweep_dir: str | os.PathLike[str],
    report: Reporter,
    jobs: int = 1,
    overrides: Sequence[str] = (),
    storage: Storage | str | None = None,
) -> Swept:
    """Runs (or continues) the sweep in a sweep directory until its trials or time are spent.

    A sweep whose budget is spent already says so in one line and starts nothing (its reports and
    state are written if the process that ran its last trial did not live to). On a shared study it
    writes them again from the study, which other machines may have added to, once the trials still
    running elsewhere have ended.

    Args:
        sweep_dir: the sweep directory.
        report: the `Reporter`, for progress.
        jobs: how many trials run at once.
        overrides: `sweep.trials=N` or `sweep.time_budget=...`, to lengthen a sweep.
        storage: where its study is (from `start`), or `--storage`'s URL to reach the database its
            config names (the password it does not record); by default what its config says.

    Returns:
        A `Swept`: the sweep directory and its best trial.

    Raises:
        RunFailed: no trial completed (it carries the sweep directory).
    """
    sweep_dir = Path(sweep_dir)
    check_available()
    with _claim(sweep_dir) as claim, contextlib.ExitStack() as held:
        config = load(sweep_dir, overrides)
        assert config.sweep is not None  # load() refuses a config without one
        if not isinstance(storage, Storage):
            storage = storage_lib.of_sweep(sweep_dir, storage, config.sweep.storage)
        database = held.enter_context(storage_lib.opened(storage, sweep_dir / STUDY))
        study = open_study(sweep_dir, config, storage=storage, database=database)
        done = len(counted(study))
        if config.sweep.trials and config.sweep.trials < done and overrides:
            raise ConfigError(f"--set sweep.trials={config.sweep.trials}: {done} trials are done already")
        if overrides:  # the sweep's config says how long it now runs
            atomic.write_text(sweep_dir / CONFIG, config_lib.dump(config))
        if storage.shared:  # a shared study's trials are known cut off by their heartbeat (trial.work)
            mark_retried(study, sweep_dir)
        else:
            recover(study, sweep_dir, config.sweep, report)
        state = read_state(sweep_dir)
        started, used = time.time(), float(state.get("used_s") or 0)
        deadline = deadline_of(study, config.sweep, started, used, storage.shared)
        finished = spent(sweep_dir, config.sweep, study, deadline)
        if finished and state.get("status") == Status.COMPLETED and not storage.shared:
            report.say(finished)  # nothing to run, nothing to record
            best = sweep_report.best_trial(study)
        else:
            best = _run(sweep_dir, config, study, report, jobs, deadline, finished, claim, used, storage)
    if best is None:
        # Its path goes to stdout, as after a sweep that found one.
        raise RunFailed(
            f"{sweep_dir}: no trial completed (see {sweep_report.TABLE}): nothing to choose from", run_dir=sweep_dir
        )
    assert best.value is not None  # a completed trial has its value
    return Swept(
        sweep_dir, config.sweep.metric, best.number + 1, best.value, dict(best.params), sweep_dir / sweep_report.BEST
    )


def _run(sweep_dir, config, study, report, jobs, deadline, finished, claim, used, storage):
    """Runs the trials (none when `finished` says the budget is spent) and records how the sweep ended."""
    started = time.time()
    write_state(sweep_dir, status=Status.RUNNING, error=None, ended_at=None, **liveness.process())
    if finished:  # killed or stopped after its last trial: only its reports and state are missing
        report.say(finished)
    else:
        _say_start(sweep_dir, config, study, report, jobs, storage)
    if storage.shared:  # it may wait for the trials other machines run, one of which may be cut off
        finished = None
    error: str | None
    status, error = Status.FAILED, "stopped by an unexpected error"
    try:
        with signals.stopping() as stop:
            if finished:
                stop.check()
            elif jobs > 1:
                sweep_workers.supervise(sweep_dir, study, config, report, jobs, stop, deadline, claim, storage)
            else:
                work(sweep_dir, config, study, report, stop, deadline, shared=storage.shared)
        status, error = Status.COMPLETED, None
    except KeyboardInterrupt as e:
        status, error = Status.INTERRUPTED, f"stopped by {getattr(e, 'name', 'SIGINT')}"
        report.say(f"sweep stopped; continue with: nnrun sweep {sweep_dir}")
        raise errors.carrying(e, sweep_dir) from e
    except NnrunError as e:
        error = str(e)
        raise e.within(sweep_dir) from e
    finally:
        best = sweep_report.best_trial(study)
        try:
            sweep_report.write(sweep_dir, config, study)
        except WriteFailed as e:  # a full disk: sweep.json still says how the sweep ended
            status, error = Status.FAILED, str(e)
            raise e.within(sweep_dir) from None
        finally:
            write_state(
                sweep_dir,
                status=status,
                error=error,
                ended_at=liveness.timestamp(),
                used_s=round(used + time.time() - started, 1),
                best=_best_record(best, sweep_dir),
                **({"workers": []} if jobs > 1 and not finished else {}),  # all ended: supervise waited for them
            )
    return best


@contextlib.contextmanager
def _claim(sweep_dir: Path) -> Iterator[int]:
    """Holds the sweep directory for this sweep alone; yields the claim's file descriptor, which workers share."""
    if not is_sweep(sweep_dir):
        raise RunDirError(f"'{sweep_dir}' is not a sweep directory (it has no {STATE})")
    rundir.check_own_folders(sweep_dir, (STUDY, WORKERS, STATE, CONFIG, TRIALS), "sweep directory")
    with contextlib.ExitStack() as held:
        try:  # only the claim: a trial's own RunDirBusy is not this sweep's
            claim = held.enter_context(liveness.claim(sweep_dir))
        except RunDirBusy:
            raise RunDirBusy(f"{sweep_dir}: {_holders(sweep_dir)}") from None
        yield claim


def _holders(sweep_dir):
    """Who holds a sweep directory, in words: its supervisor, or the workers that outlived it."""
    try:
        supervisor, workers = sweep_workers.still_running(read_state(sweep_dir))
    except RunDirError:
        supervisor, workers = None, []
    pids = ", ".join(map(str, workers))
    if supervisor is not None:
        return f"another nnrun sweep is running in it (process {supervisor}" + (f", workers {pids})" if pids else ")")
    if workers:
        return (
            f"the workers of a sweep whose supervisor is gone still run in it (processes {pids}); "
            "continue it once they have ended"
        )
    return "another nnrun sweep is running in it"


def _best_record(best, sweep_dir):
    if best is None:
        return None
    return {
        "trial": best.number + 1,
        "value": best.value,
        "params": best.params,
        "run_dir": sweep_report.run_path(best, sweep_dir) or None,
    }


def _say_start(sweep_dir, config, study, report, jobs, storage):
    done = len([t for t in counted(study) if t.state.is_finished()])
    report.say(
        f"sweep {sweep_dir.name}: {search_space.describe(config.sweep)}"
        + (f"; {done} done before" if done else "")
        + (f"; {jobs} at a time" if jobs > 1 else "")
    )
    if storage.shared:
        report.note(f"study {study.study_name!r} in {storage.shown}, shared with the sweeps that join it")
    report.note(f"sweep directory: {sweep_dir}")
