"""`nnrun sweep`: a hyperparameter search with Optuna whose trials are ordinary runs.

A sweep directory `runs/<name>-sweep-<time>/` holds the sweep's config, the
Optuna study (SQLite, so a killed sweep continues where it stopped), one run
directory per trial under `trials/`, and what a user reads (sweep_report.py):
`trials.csv`, `best.yaml` (a config to train) and `sweep.png`.

Trials run in this process one after another, or in `--jobs` worker
processes that share the study while this one reports (sweep_workers.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun import atomic, signals
from nnrun.config import loading as config_lib
from nnrun.config.sweep_section import samples
from nnrun.errors import (
    BadInput,
    ConfigError,
    NnrunError,
    RunDirError,
    RunFailed,
    one_line,
)
from nnrun.rundir import files as rundir
from nnrun.rundir import liveness
from nnrun.sweep import report as sweep_report
from nnrun.sweep import space as search_space

if TYPE_CHECKING:  # Optuna is imported where used; here for annotations only
    import optuna
    from rich.console import Console

    from nnrun.config.schema import Config
    from nnrun.signals import Stop
    from nnrun.training.train import Setup

CONFIG = "config.yaml"  # the sweep's resolved config, its sweep section included
STATE = rundir.SWEEP  # marks the folder as a sweep: status, the time it has used, its best trial
STUDY = "study.db"
TRIALS = "trials"
WORKERS = "workers"  # the worker processes' logs, with --jobs
EXTRA = "nnrun[sweep]"
STUDY_NAME = "nnrun"
MAX_STATE_BYTES = 1 << 20


def check_available() -> None:
    """Refuses a sweep when Optuna is not installed, naming the extra (exit 2)."""
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise ConfigError(f"sweep: needs optuna, which is not installed; pip install '{EXTRA}'")


def check(config: Config, where: str | os.PathLike[str], console: Console) -> Setup:
    """What `nnrun check` and `nnrun sweep` check of a sweep before its first trial: the data and the
    model at every value of each parameter (the others at their first), and the metric.

    Args:
        config: the validated `Config`, with a sweep section.
        where: the config file, for messages.
        console: a rich console for a note (stderr).

    Returns:
        The `train.Setup` of the sweep's first point.
    """
    from nnrun.training import train

    check_available()
    assert config.sweep is not None  # a sweep's config
    first = search_space.first_point(config.sweep)
    prepared: Setup | None = None
    for path, space in config.sweep.parameters.items():
        for value in samples(space):
            point = _trial_config(config, {**first, path: value}, config.output.dir, config.output.name)
            try:
                if prepared is None:
                    prepared = train.setup(point, join=False)
                else:
                    train.check_model(point, prepared.dataset)
            except ConfigError as e:
                raise ConfigError(f"{where}: sweep.parameters['{path}']: with {value!r}: {e}") from None
    assert prepared is not None  # every parameter has a value to try
    note = search_space.check_metric(config, prepared.dataset.y_val is not None, str(where))
    if note:
        console.print(f"note: {note}", style="dim", highlight=False, soft_wrap=True, markup=False)
    return prepared


def is_sweep(path: str | os.PathLike[str]) -> bool:
    """Whether a folder is a sweep directory (`nnrun sweep DIR` continues it)."""
    return Path(path).is_dir() and (Path(path) / STATE).is_file()


def start(config: Config, config_file: str | os.PathLike[str], console: Console, jobs: int = 1) -> Path:
    """Makes a sweep directory for a config with a sweep section, and runs the sweep.

    Args:
        config: the validated `Config`.
        config_file: its path, recorded.
        console: a rich console for progress (stderr).
        jobs: how many trials run at once, each in a process of its own.

    Returns:
        The sweep directory's `Path`.
    """
    from nnrun.training import tracking, train

    check_available()
    mlflow = config.tracking.mlflow
    if mlflow is not None and mlflow.tracking_uri is None and not os.environ.get("MLFLOW_TRACKING_URI"):
        # Fixed now: continued from elsewhere, the trials still log to the store beside these runs.
        mlflow.tracking_uri = tracking.mlflow_uri(mlflow, config.output.dir)
    sweep_dir = rundir.create(config.output.dir, f"{config.output.name}-sweep", subfolders=(TRIALS,))
    atomic.write_text(sweep_dir / CONFIG, train.resolved_text(config))  # data paths absolute
    _write_state(
        sweep_dir,
        status="running",
        config_file=str(Path(config_file).resolve()),
        started_at=liveness.timestamp(),
        used_s=0.0,
    )
    return run(sweep_dir, console, jobs)


def run(sweep_dir: str | os.PathLike[str], console: Console, jobs: int = 1, overrides: Sequence[str] = ()) -> Path:
    """Runs (or continues) the sweep in a sweep directory until its trials or time are spent.

    Args:
        sweep_dir: the sweep directory.
        console: a rich console for progress (stderr).
        jobs: how many trials run at once.
        overrides: `sweep.trials=N` or `sweep.time_budget=...`, to lengthen a sweep.

    Returns:
        The sweep directory's `Path`.
    """
    sweep_dir = Path(sweep_dir)
    check_available()
    with _claim(sweep_dir):
        config = load(sweep_dir, overrides)
        assert config.sweep is not None  # load() refuses a config without one
        study = open_study(sweep_dir, config)
        done = len(counted(study))
        if config.sweep.trials and config.sweep.trials < done and overrides:
            raise ConfigError(f"--set sweep.trials={config.sweep.trials}: {done} trials are done already")
        if overrides:  # the sweep's config says how long it now runs
            atomic.write_text(sweep_dir / CONFIG, config_lib.dump(config))
        _recover(study, sweep_dir, config.sweep, console)
        state = _read_state(sweep_dir)
        started, used = time.time(), float(state.get("used_s") or 0)
        budget = config.sweep.time_budget
        deadline = started + budget - used if budget else None
        _write_state(sweep_dir, status="running", error=None, ended_at=None, **liveness.process())
        _say_start(sweep_dir, config, study, console, jobs)
        error: str | None
        status, error = "failed", "stopped by an unexpected error"
        try:
            with signals.stopping() as stop:
                if jobs > 1:
                    from nnrun.sweep import workers as sweep_workers

                    sweep_workers.supervise(sweep_dir, study, config, console, jobs, stop, deadline)
                else:
                    work(sweep_dir, config, study, console, stop, deadline)
            status, error = "completed", None
        except KeyboardInterrupt as e:
            status, error = "interrupted", f"stopped by {getattr(e, 'name', 'SIGINT')}"
            console.print(f"sweep stopped; continue with: nnrun sweep {sweep_dir}", highlight=False, soft_wrap=True)
            e.run_dir = sweep_dir  # type: ignore[attr-defined]  # a plain KeyboardInterrupt too
            raise
        except NnrunError as e:
            error = str(e)
            e.run_dir = sweep_dir
            raise
        finally:
            best = sweep_report.write(sweep_dir, config, study)
            _write_state(
                sweep_dir,
                status=status,
                error=error,
                ended_at=liveness.timestamp(),
                used_s=round(used + time.time() - started, 1),
                best=_best_record(best),
            )
    if best is None:
        failed = RunFailed(f"{sweep_dir}: no trial completed (see {sweep_report.TABLE}): nothing to choose from")
        failed.run_dir = sweep_dir  # its path on stdout, as after a sweep that found one
        raise failed
    console.print(
        f"best: trial {best.number + 1}, {config.sweep.metric} {best.value:.4g}, "
        f"{sweep_report.params_text(best.params)}; train it with: nnrun train {sweep_dir / sweep_report.BEST}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    return sweep_dir


@contextlib.contextmanager
def _claim(sweep_dir: Path) -> Iterator[None]:
    if not is_sweep(sweep_dir):
        raise RunDirError(f"'{sweep_dir}' is not a sweep directory (it has no {STATE})")
    for name in (STUDY, WORKERS, STATE, CONFIG):
        if (sweep_dir / name).is_symlink():  # it would write wherever the link points
            raise RunDirError(f"'{sweep_dir / name}' is a symbolic link; a sweep directory holds its own files")
    try:
        with liveness.claim(sweep_dir):
            yield
    except RunDirError as e:
        if "another process" in str(e):
            raise RunDirError(f"{sweep_dir}: another nnrun sweep is running in it") from None
        raise


def load(sweep_dir: Path, overrides: Sequence[str]) -> Config:
    """The config in a sweep directory, with `sweep.trials` or `sweep.time_budget` overridden.

    Args:
        sweep_dir: the sweep directory.
        overrides: `key.path=value` strings; only those two keys.

    Returns:
        The validated `Config`.
    """
    for item in overrides:
        if item.partition("=")[0] not in ("sweep.trials", "sweep.time_budget"):
            raise ConfigError(
                f"--set {item}: a sweep continues with its own config; only sweep.trials and "
                "sweep.time_budget may change"
            )
    try:
        config = config_lib.load(sweep_dir / CONFIG, overrides)
    except ConfigError as e:
        raise RunDirError(f"'{sweep_dir}': its {CONFIG} is not valid: {e}") from None
    if config.sweep is None:
        raise RunDirError(f"'{sweep_dir}': its {CONFIG} has no sweep section")
    return config


def open_study(sweep_dir: Path, config: Config, worker: int = 0) -> optuna.Study:
    """The sweep's Optuna study, made or loaded; a file that is not one is exit 2."""
    import optuna
    import sqlalchemy.exc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = config.sweep
    assert sweep is not None  # load() refuses a config without one
    # Median pruning once 5 trials have shown what is usual, and never in the first third of
    # training: a low learning rate starts slowly and may still end best.
    warmup = max(1, config.training.epochs // 3) + 1  # Optuna prunes from this epoch on
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
        if sweep.pruning
        else optuna.pruners.NopPruner()
    )
    path = sweep_dir / STUDY
    try:
        # Workers share the file: they wait for its lock rather than fail.
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{path.resolve()}", engine_kwargs={"connect_args": {"timeout": 60}}
        )
        study = optuna.create_study(
            storage=storage, study_name=STUDY_NAME, direction=sweep.direction, pruner=pruner, load_if_exists=True
        )
        trials = study.get_trials(deepcopy=False)
    except (sqlalchemy.exc.SQLAlchemyError, ValueError, RuntimeError) as e:
        raise RunDirError(f"'{path}': not a study nnrun can read: {one_line(e, 150)}") from None
    if [d.name.lower() for d in study.directions] != [sweep.direction]:
        raise RunDirError(
            f"'{path}': its study is to {study.directions[0].name.lower()}, its {CONFIG} says {sweep.direction}"
        )
    seed = sweep.seed if sweep.seed is not None else config.seed
    # Seeded anew from what the study holds: a continued sweep (or a second worker) must not draw
    # the points its first trials drew. The constant liar keeps parallel workers apart.
    study.sampler = optuna.samplers.TPESampler(
        seed=(seed + 7919 * worker + 104729 * len(trials)) % 2**32, constant_liar=True
    )
    return study


def _recover(study, sweep_dir, sweep, console):
    """Trials left running by a sweep that died are marked interrupted, and their points tried again."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        process = trial.user_attrs.get("process")
        if isinstance(process, dict) and liveness.status({**process, "status": "running"}) == "running":
            continue  # a worker of a killed sweep, still finishing its trial
        attrs: dict[str, Any] = {"interrupted": True}
        if "run_dir" not in trial.user_attrs:  # killed before train returned it
            found = sorted(sweep_dir.glob(f"{TRIALS}/trial-{trial.number + 1:03d}-*"))
            attrs["run_dir"] = _relative(found[-1], sweep_dir) if found else None
        _record(study, trial._trial_id, **attrs)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        if search_space.contains(sweep, trial.params):
            _again(study, trial)
            console.print(f"trial {trial.number + 1} was cut off when the sweep stopped: it runs again", style="dim")


def _again(study: optuna.Study, trial: optuna.trial.FrozenTrial | optuna.trial.Trial) -> None:
    """Queues a cut-off trial's point, so that the sweep's next trial tries it."""
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number + 1})


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that use the budget: all but those interrupted, skipped or queued."""
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if not (t.user_attrs.get("interrupted") or t.user_attrs.get("skipped")) and t.state.name != "WAITING"
    ]


def work(
    sweep_dir: Path,
    config: Config,
    study: optuna.Study,
    console: Console,
    stop: Stop,
    deadline: float | None = None,
    reports: bool = True,
) -> None:
    """Runs trials in this process until the budget is spent.

    Args:
        sweep_dir: the sweep directory.
        config: the sweep's `Config`.
        study: its Optuna study.
        console: a rich console for the line per trial (stderr).
        stop: the `signals.Stop` checked between trials.
        deadline: a `time.time()` after which no trial starts; None: no time budget.
        reports: write the sweep's reports and a line per trial (not in a worker: its supervisor does).
    """
    import optuna

    sweep = config.sweep
    assert sweep is not None  # load() refuses a config without one
    started_any = False
    while True:
        stop.check()
        if sweep.trials and len(counted(study)) >= sweep.trials:
            if reports and not started_any:
                console.print(
                    f"all {sweep.trials} trials are done; lengthen the sweep with "
                    f"nnrun sweep {sweep_dir} --set sweep.trials=N",
                    highlight=False,
                    soft_wrap=True,
                    markup=False,
                )
            return
        if deadline and time.time() >= deadline:
            if reports:
                console.print(
                    f"the time budget ({sweep.time_budget:g} s) is spent; lengthen it with "
                    f"nnrun sweep {sweep_dir} --set sweep.time_budget=...",
                    highlight=False,
                    soft_wrap=True,
                    markup=False,
                )
            return
        trial = study.ask()
        earlier = [t for t in counted(study) if t.number < trial.number]
        if sweep.trials and len(earlier) >= sweep.trials:  # another worker took the last one
            trial.set_user_attr("skipped", True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        trial.set_user_attr("process", liveness.process())
        started_any = True
        _one_trial(sweep_dir, config, study, trial)
        if reports:
            sweep_report.write(sweep_dir, config, study)
            console.print(
                sweep_report.line(study, trial.number, config, counted(study)),
                highlight=False,
                soft_wrap=True,
                markup=False,
            )


def _one_trial(sweep_dir, config, study, trial):
    """Trains one trial's run and tells the study how it went."""
    import optuna

    from nnrun.backend import keras
    from nnrun.training import train

    fail = optuna.trial.TrialState.FAIL
    params = search_space.suggest(trial, config.sweep)
    trial_config = _trial_config(config, params, sweep_dir / TRIALS, f"trial-{trial.number + 1:03d}")
    keras().backend.clear_session()  # nothing of the last trial's graph lingers
    pruning = _pruning(trial, config.sweep)
    started = time.time()
    try:
        run_dir = train.train(trial_config, quiet_console(), callbacks=[pruning])
        assert run_dir is not None  # a sweep runs in one process (cli refuses several), which writes
    except KeyboardInterrupt as e:
        _record(study, trial._trial_id, run_dir=_relative(getattr(e, "run_dir", None), sweep_dir), interrupted=True)
        study.tell(trial, state=fail, skip_if_finished=True)
        _again(study, trial)
        raise
    except Exception as e:  # a failed trial (diverged, out of memory, a point Keras refuses) is a result
        message = str(e) if isinstance(e, NnrunError) else f"{type(e).__name__}: {one_line(e, 300)}"
        _record(study, trial._trial_id, run_dir=_relative(getattr(e, "run_dir", None), sweep_dir), error=message)
        study.tell(trial, state=fail, skip_if_finished=True)
        completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if pruning.missing or (isinstance(e, BadInput) and not completed):
            raise  # every trial would fail the same way: the sweep's config is wrong
        return
    kept = _kept_metrics(run_dir)
    value = _value(run_dir, kept, config.sweep.metric)
    test = {f"test_{k}": v for k, v in (kept.get("test") or {}).items() if isinstance(v, (int, float))}
    _record(
        study,
        trial._trial_id,
        run_dir=_relative(run_dir, sweep_dir),
        duration_s=round(time.time() - started, 1),
        pruned_at_epoch=pruning.pruned_at,
        **test,
    )
    if pruning.pruned_at:
        rundir.update_run(run_dir, pruned_at_epoch=pruning.pruned_at)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
    elif value is None:
        _record(study, trial._trial_id, error=f"{config.sweep.metric} is not a finite number")
        study.tell(trial, state=fail, skip_if_finished=True)
    else:
        study.tell(trial, value, skip_if_finished=True)


def quiet_console() -> Console:
    """A console that prints nothing: a trial's run speaks through the sweep's one line."""
    from rich.console import Console

    return Console(stderr=True, quiet=True)


def _pruning(trial, sweep):
    """A Keras callback: reports each epoch's metric to the trial, and halts the run when the pruner says so."""
    from nnrun.backend import keras
    from nnrun.data import feeding

    class Pruning(keras().callbacks.Callback):  # type: ignore[misc]  # a base class made at run time
        def __init__(self) -> None:
            super().__init__()
            self.pruned_at: int | None = None
            self.missing = False
            self.halt = False  # train's stages read it: a pruned trial is not fine-tuned either

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = feeding.scalars(logs or {})  # named as history.csv names them (f1_score_macro)
            if sweep.metric not in logs:
                self.missing = True
                raise ConfigError(
                    f"sweep.metric: '{sweep.metric}' is not among the metrics logged each epoch "
                    f"({', '.join(sorted(logs))})"
                )
            value = logs[sweep.metric]
            if not math.isfinite(value):
                return
            trial.report(value, epoch + 1)
            if sweep.pruning and trial.should_prune():
                self.pruned_at = epoch + 1
                self.halt = self.model.stop_training = True

    return Pruning()


def _trial_config(config, params, output_dir, name):
    """The config of one trial: the sweep's, its parameters set, without the sweep section."""
    trial = search_space.apply(config, params, f"sweep trial {name}")
    update: dict[str, Any] = {"output": trial.output.model_copy(update={"dir": Path(output_dir), "name": name})}
    if trial.tracking.mlflow is not None:  # one experiment for every trial
        mlflow = trial.tracking.mlflow.model_copy(
            update={"experiment": config.tracking.mlflow.experiment or config.output.name}
        )
        update["tracking"] = trial.tracking.model_copy(update={"mlflow": mlflow})
    return trial.model_copy(update=update)


def _relative(run_dir, sweep_dir):
    """A trial's run directory as recorded: from the sweep directory, which may move."""
    return run_dir and os.path.relpath(run_dir, sweep_dir)


def _kept_metrics(run_dir):
    """metrics.json of a trial's run: the final metrics of the model it kept; {} when missing."""
    try:
        return rundir.read_json(Path(run_dir) / rundir.METRICS)
    except RunDirError:
        return {}


def _value(run_dir, kept, metric):
    """A trial's result: the metric of the model its run kept (`kept`, its metrics.json: EarlyStopping
    may have restored an earlier epoch's weights), else its last epoch's; None when not a finite number."""
    split, name = ("validation", metric[len("val_") :]) if metric.startswith("val_") else ("train", metric)
    value = (kept.get(split) or {}).get(name)
    if value is None:
        rows = rundir.read_history(Path(run_dir) / rundir.HISTORY)
        value = rows[-1].get(metric) if rows else None
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _record(study: optuna.Study, trial_id: int, **attrs: Any) -> None:
    # Optuna has no public way to note a finished trial; its storage's does, for our own trials.
    for key, value in attrs.items():
        if value is not None:
            study._storage.set_trial_user_attr(trial_id, key, value)


def _best_record(best):
    if best is None:
        return None
    return {
        "trial": best.number + 1,
        "value": best.value,
        "params": best.params,
        "run_dir": best.user_attrs.get("run_dir"),
    }


def _read_state(sweep_dir: Path) -> dict[str, Any]:
    path = sweep_dir / STATE
    try:
        if path.stat().st_size > MAX_STATE_BYTES:
            raise RunDirError(f"'{path}': larger than a sweep's state may be ({MAX_STATE_BYTES} bytes)")
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise RunDirError(f"'{path}': cannot read: {one_line(e)}") from None
    if not isinstance(state, dict):
        raise RunDirError(f"'{path}': expected a JSON object, got {type(state).__name__}")
    return state


def _write_state(sweep_dir: Path, **fields: Any) -> None:
    atomic.write_json(sweep_dir / STATE, {**_read_state(sweep_dir), **fields})


def _say_start(sweep_dir, config, study, console, jobs):
    done = len([t for t in counted(study) if t.state.is_finished()])
    console.print(
        f"sweep {sweep_dir.name}: {search_space.describe(config.sweep)}"
        + (f"; {done} done before" if done else "")
        + (f"; {jobs} at a time" if jobs > 1 else ""),
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    console.print(f"sweep directory: {sweep_dir}", style="dim", highlight=False, soft_wrap=True, markup=False)
