"""One trial of a sweep: its config, its run trained, its result told to the study; and the loop that runs them.

A trial is an ordinary run under the sweep directory's `trials/`; its result
is the sweep metric of the model the run kept. A trial that fails is a result
too, unless every trial would fail the same way.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun.errors import BadInput, ConfigError, NnrunError, RunDirError, WriteFailed, one_line
from nnrun.reporter import Reporter
from nnrun.rundir import files as rundir
from nnrun.rundir import liveness, record
from nnrun.sweep import heartbeat
from nnrun.sweep import report as sweep_report
from nnrun.sweep import space as search_space
from nnrun.sweep.study import TRIALS, again, counted, recover_silent, relative

if TYPE_CHECKING:  # Optuna is imported where used; here for annotations only
    import optuna

    from nnrun.config.schema import Config
    from nnrun.config.sweep_section import Sweep
    from nnrun.signals import Stop

WAIT_S = 2.0  # how often a sweep that waits for the trials of other machines looks at the study


def work(
    sweep_dir: Path,
    config: Config,
    study: optuna.Study,
    report: Reporter,
    stop: Stop,
    deadline: float | None = None,
    reports: bool = True,
    shared: bool = False,
) -> None:
    """Runs trials in this process until the budget is spent.

    Args:
        sweep_dir: the sweep directory.
        config: the sweep's `Config`.
        study: its Optuna study.
        report: the sweep's `Reporter`, for the line per trial.
        stop: the `signals.Stop` checked between trials.
        deadline: a `time.time()` after which no trial starts; None: no time budget.
        reports: write the sweep's reports and a line per trial (not in a worker: its supervisor does).
        shared: the study is shared with sweeps on other machines: each trial sends a heartbeat, a trial
            whose heartbeat stops is run again, and once the budget is spent the sweep waits for the
            trials still running elsewhere (one may yet be cut off, and its point falls to this sweep).
    """
    import optuna

    sweep = config.sweep
    assert sweep is not None  # load() refuses a config without one
    watch = heartbeat.Watch() if shared else None
    waiting = False
    while True:
        stop.check()
        if watch is not None:
            recover_silent(study, sweep_dir, sweep, report, watch)
        out_of_trials = bool(sweep.trials and len(counted(study)) >= sweep.trials)
        out_of_time = bool(deadline and time.time() >= deadline)
        if out_of_trials or out_of_time:
            elsewhere = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)) if shared else []
            if elsewhere:
                if not waiting:
                    report.note(f"waiting for the {len(elsewhere)} trial(s) still running in other sweeps of the study")
                    waiting = True
                time.sleep(WAIT_S)
                continue
            if out_of_time and reports:
                report.say(_time_spent(sweep_dir, sweep))
            return  # out of trials: the last trial's line says so
        trial = study.ask()
        earlier = [t for t in counted(study) if t.number < trial.number]
        if sweep.trials and len(earlier) >= sweep.trials:  # another worker took the last one
            trial.set_user_attr("skipped", True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue  # on a shared study, one of those may yet be cut off
        trial.set_user_attr("process", liveness.process())
        if shared:  # trials.csv on another machine says where this trial's run is
            trial.set_user_attr("sweep_dir", str(sweep_dir.resolve()))
        try:
            with heartbeat.beating(study, trial) if shared else contextlib.nullcontext():
                _one_trial(sweep_dir, config, study, trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Its heartbeat went unseen for heartbeat.GRACE_S: another sweep took it for cut off and runs it again.
            report.note(f"trial {trial.number + 1} was taken for cut off by another sweep, which runs it again")
            continue
        if reports:
            sweep_report.tell(report, sweep_dir, config, study, trial.number)


def spent(sweep_dir: Path, sweep: Sweep, study: optuna.Study, deadline: float | None) -> str | None:
    """Whether a sweep's budget is spent before it starts a trial: the line that says so, or None.

    Args:
        sweep_dir: the sweep directory.
        sweep: its sweep section.
        study: its Optuna study.
        deadline: a `time.time()` after which no trial starts; None: no time budget.

    Returns:
        The line for the user (how to lengthen the sweep), or None while trials may start.
    """
    if sweep.trials and len(counted(study)) >= sweep.trials:
        return (
            f"all {sweep.trials} trials are done; lengthen the sweep with nnrun sweep {sweep_dir} --set sweep.trials=N"
        )
    if deadline and time.time() >= deadline:
        return _time_spent(sweep_dir, sweep)
    return None


def _time_spent(sweep_dir, sweep):
    return (
        f"the time budget ({sweep.time_budget:g} s) is spent; lengthen it with "
        f"nnrun sweep {sweep_dir} --set sweep.time_budget=..."
    )


def _one_trial(sweep_dir, config, study, trial):
    """Trains one trial's run and tells the study how it went."""
    import optuna

    from nnrun.backend import keras
    from nnrun.training import train

    fail = optuna.trial.TrialState.FAIL
    params = search_space.suggest(trial, config.sweep)
    config_of_trial = trial_config(config, params, sweep_dir / TRIALS, f"trial-{trial.number + 1:03d}")
    keras().backend.clear_session()  # nothing of the last trial's graph lingers
    pruning = _pruning(trial, config.sweep)
    started = time.time()
    try:
        run_dir = train.train(config_of_trial, Reporter(quiet=True), callbacks=[pruning])  # the sweep's line says it
        assert run_dir is not None  # a sweep runs in one process (cli refuses several), which writes
    except KeyboardInterrupt as e:
        cut_off = getattr(e, "run_dir", None)
        _record(trial, run_dir=relative(cut_off, sweep_dir), interrupted=True)
        study.tell(trial, state=fail, skip_if_finished=True)
        again(study, trial, Path(cut_off) if cut_off else None)
        raise
    except Exception as e:  # a failed trial (diverged, out of memory, a point Keras refuses) is a result
        message = str(e) if isinstance(e, NnrunError) else f"{type(e).__name__}: {one_line(e, 300)}"
        _record(trial, run_dir=relative(getattr(e, "run_dir", None), sweep_dir), error=message)
        study.tell(trial, state=fail, skip_if_finished=True)
        completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if pruning.missing or (isinstance(e, BadInput) and not completed) or isinstance(e, WriteFailed):
            raise  # every trial would fail the same way: the sweep's config is wrong, or the disk full
        return
    kept = _kept_metrics(run_dir)
    value = _value(run_dir, kept, config.sweep.metric)
    test = {f"test_{k}": v for k, v in (kept.get("test") or {}).items() if isinstance(v, (int, float))}
    _record(
        trial,
        run_dir=relative(run_dir, sweep_dir),
        duration_s=round(time.time() - started, 1),
        pruned_at_epoch=pruning.pruned_at,
        **test,
    )
    if pruning.pruned_at:
        record.update_info(run_dir, pruned_at_epoch=pruning.pruned_at)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
    elif value is None:
        _record(trial, error=f"{config.sweep.metric} is not a finite number")
        study.tell(trial, state=fail, skip_if_finished=True)
    else:
        study.tell(trial, value, skip_if_finished=True)


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


def trial_config(
    config: Config, params: Mapping[str, Any], output_dir: str | os.PathLike[str], name: str | None
) -> Config:
    """The config of one trial: the sweep's, its parameters set, without the sweep section.

    Args:
        config: the sweep's `Config`.
        params: `{dotted path: value}`.
        output_dir: where the trial's run directory is made.
        name: the trial's run name (`trial-003`).

    Returns:
        The validated `Config`.
    """
    trial = search_space.apply(config, params, f"sweep trial {name}")
    update: dict[str, Any] = {"output": trial.output.model_copy(update={"dir": Path(output_dir), "name": name})}
    if trial.tracking.mlflow is not None:  # one experiment for every trial
        assert config.tracking.mlflow is not None  # the trial's tracking is the sweep's
        mlflow = trial.tracking.mlflow.model_copy(
            update={"experiment": config.tracking.mlflow.experiment or config.output.name}
        )
        update["tracking"] = trial.tracking.model_copy(update={"mlflow": mlflow})
    return trial.model_copy(update=update)


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


def _record(trial: optuna.Trial, **attrs: Any) -> None:
    """Notes how a trial went in its user attributes (trials.csv's columns); None is left out."""
    for key, value in attrs.items():
        if value is not None:
            trial.set_user_attr(key, value)
