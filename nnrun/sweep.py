"""`nnrun sweep`: a hyperparameter search with Optuna whose trials are ordinary runs.

A sweep directory `runs/<name>-sweep-<time>/` holds the sweep's config, the
Optuna study (SQLite, so a killed sweep continues where it stopped), one run
directory per trial under `trials/`, and what a user reads: `trials.csv`,
`best.yaml` (a config to train) and `sweep.png` (the metric over trials).

Trials run in this process one after another, or in `--jobs` worker
processes that share the study.
"""

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nnrun import config as config_lib, liveness, rundir, search_space, signals
from nnrun.errors import ConfigError, Interrupted, NnrunError, RunDirError, one_line

CONFIG = "config.yaml"  # the sweep's resolved config, its sweep section included
STATE = "sweep.json"  # marks the folder as a sweep; its status and best trial
STUDY = "study.db"
TRIALS = "trials"
TABLE = "trials.csv"
BEST = "best.yaml"
PLOT = "sweep.png"
WORKERS = "workers"  # the worker processes' logs, with --jobs
EXTRA = "nnrun[sweep]"
STUDY_NAME = "nnrun"
POLL_S = 1.0


def check_available():
    """Refuses a sweep when Optuna is not installed, naming the extra (exit 2)."""
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise ConfigError(f"sweep: needs optuna, which is not installed; pip install '{EXTRA}'")


def first_trial(config):
    """The config of a sweep's first point (each parameter's low or first choice), for `nnrun check`."""
    return _trial_config(config, search_space.first_point(config.sweep), config.output.dir, config.output.name)


def start(config, config_file, console, jobs=1):
    """Makes a sweep directory for a config with a sweep section, and runs the sweep.

    Args:
        config: the validated `Config`.
        config_file: its path, recorded.
        console: a rich console for progress (stderr).
        jobs: how many trials run at once, each in a process of its own.

    Returns:
        The sweep directory's `Path`.
    """
    if config.sweep is None:
        raise ConfigError(f"{config_file}: has no sweep section; add one (README: Searching for better settings)")
    check_available()
    sweep_dir = rundir.create(config.output.dir, f"{config.output.name}-sweep", subfolders=(TRIALS,))
    rundir.write_text(sweep_dir / CONFIG, config_lib.dump(config))
    _write_state(sweep_dir, status="running", config_file=str(Path(config_file).resolve()),
                 started_at=liveness.timestamp())
    return run(sweep_dir, console, jobs)


def is_sweep(path):
    """Whether a folder is a sweep directory (`nnrun sweep DIR` continues it)."""
    return Path(path).is_dir() and (Path(path) / STATE).is_file()


def run(sweep_dir, console, jobs=1, overrides=()):
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
    config = _load(sweep_dir, overrides)
    check_available()
    with liveness.claim(sweep_dir):
        study = _study(sweep_dir, config)
        _recover(study, sweep_dir, console)
        _write_state(sweep_dir, status="running")
        _say_start(sweep_dir, config, study, console, jobs)
        try:
            with signals.stopping() as stop:
                if jobs > 1:
                    _supervise(sweep_dir, study, config, console, jobs, stop)
                else:
                    _work(sweep_dir, config, study, console, stop)
        except KeyboardInterrupt as e:
            report(sweep_dir, config, study)
            _write_state(sweep_dir, status="interrupted")
            console.print(f"sweep stopped; continue with: nnrun sweep {sweep_dir}", highlight=False, soft_wrap=True)
            e.run_dir = sweep_dir
            raise
        except NnrunError as e:
            report(sweep_dir, config, study)
            _write_state(sweep_dir, status="failed", error=str(e))
            e.run_dir = sweep_dir
            raise
        best = report(sweep_dir, config, study)
        _write_state(sweep_dir, status="completed", ended_at=liveness.timestamp())
    if best is None:
        error = _NoResult(f"{sweep_dir}: no trial completed (see {TABLE}): nothing to choose from")
        error.run_dir = sweep_dir  # its path on stdout, as after a sweep that found one
        raise error
    console.print(
        f"best: trial {best.number + 1}, {config.sweep.metric} {best.value:.4g}, {_params_text(best.params)}; "
        f"train it with: nnrun train {sweep_dir / BEST}", highlight=False, soft_wrap=True,
    )
    return sweep_dir


class _NoResult(NnrunError):
    exit_code = 1


def _load(sweep_dir, overrides):
    if not is_sweep(sweep_dir):
        raise RunDirError(f"'{sweep_dir}' is not a sweep directory (it has no {STATE})")
    for item in overrides:
        if item.partition("=")[0] not in ("sweep.trials", "sweep.time_budget"):
            raise ConfigError(f"--set {item}: a sweep continues with its own config; only sweep.trials and "
                              "sweep.time_budget may change")
    try:
        config = config_lib.load(sweep_dir / CONFIG, overrides)
    except ConfigError as e:
        raise RunDirError(f"'{sweep_dir}': its {CONFIG} is not valid: {e}") from None
    if config.sweep is None:
        raise RunDirError(f"'{sweep_dir}': its {CONFIG} has no sweep section")
    if overrides:
        rundir.write_text(sweep_dir / CONFIG, config_lib.dump(config))
    return config


def _study(sweep_dir, config, worker=0):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = config.sweep
    seed = sweep.seed if sweep.seed is not None else config.seed
    # Median pruning once 5 trials have shown what is usual, and never in the first third of
    # training: a low learning rate starts slowly and may still end best.
    warmup = max(1, config.training.epochs // 3)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup) if sweep.pruning
              else optuna.pruners.NopPruner())
    # Workers share the file: wait for its lock rather than fail.
    storage = optuna.storages.RDBStorage(f"sqlite:///{(sweep_dir / STUDY).resolve()}",
                                         engine_kwargs={"connect_args": {"timeout": 60}})
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, direction=sweep.direction,
                                pruner=pruner, load_if_exists=True)
    # Seeded anew from what the study holds: a continued sweep (or a second worker) must not
    # draw the points its first trials drew.
    done = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=(seed + 7919 * worker + 104729 * done) % 2**32)
    return study


def _recover(study, study_dir, console):
    """Trials left running by a killed sweep are marked interrupted, and their points tried again."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        if "run_dir" not in trial.user_attrs:  # killed before train returned it
            found = sorted(study_dir.glob(f"{TRIALS}/trial-{trial.number + 1:03d}-*"))
            if found:
                study._storage.set_trial_user_attr(trial._trial_id, "run_dir", _relative(found[-1], study_dir))
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        _again(study, trial)
        console.print(f"trial {trial.number + 1} was cut off when the sweep stopped: it runs again", style="dim")


def _again(study, trial):
    """Queues a cut-off trial's point, so that the sweep's next trial tries it."""
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number + 1})


def _counted(study):
    """Trials that use the budget: all but those interrupted or skipped."""
    return [t for t in study.get_trials(deepcopy=False)
            if not (t.user_attrs.get("interrupted") or t.user_attrs.get("skipped"))
            and t.state.name != "WAITING"]


def _work(sweep_dir, config, study, console, stop, deadline=None):
    """Runs trials in this process until the budget is spent."""
    import optuna

    sweep = config.sweep
    deadline = deadline or (time.time() + sweep.time_budget if sweep.time_budget else None)
    while True:
        stop.check()
        if (sweep.trials and len(_counted(study)) >= sweep.trials) or (deadline and time.time() >= deadline):
            return
        trial = study.ask()
        earlier = [t for t in _counted(study) if t.number < trial.number]
        if sweep.trials and len(earlier) >= sweep.trials:  # another worker took the last one
            study._storage.set_trial_user_attr(trial._trial_id, "skipped", True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        _one_trial(sweep_dir, config, study, trial, console)
        report(sweep_dir, config, study, console, trial.number)


def _one_trial(sweep_dir, config, study, trial, console):
    """Trains one trial's run and tells the study how it went."""
    import optuna

    from nnrun import train
    from nnrun.backend import keras

    params = search_space.suggest(trial, config.sweep)
    trial_config = _trial_config(config, params, sweep_dir / TRIALS, f"trial-{trial.number + 1:03d}")
    keras().backend.clear_session()  # nothing of the last trial's graph lingers
    pruning = _pruning(trial, config.sweep)
    quiet = type(console)(stderr=True, quiet=True)
    started = time.time()
    try:
        run_dir = train.train(trial_config, quiet, callbacks=[pruning])
    except KeyboardInterrupt as e:
        _record(study, trial, run_dir=_relative(getattr(e, "run_dir", None), sweep_dir), interrupted=True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        _again(study, trial)
        raise
    except NnrunError as e:
        _record(study, trial, run_dir=_relative(getattr(e, "run_dir", None), sweep_dir), error=str(e))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if isinstance(e, ConfigError):  # the space itself is wrong (or the metric): every trial would fail
            raise
        return
    value = _value(run_dir, config.sweep.metric)
    _record(study, trial, run_dir=_relative(run_dir, sweep_dir), duration_s=round(time.time() - started, 1),
            pruned_at_epoch=pruning.pruned_at, **_test_metrics(run_dir))
    if pruning.pruned_at:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    elif value is None:
        _record(study, trial, error=f"{config.sweep.metric} is not a finite number")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(trial, value)


def _pruning(trial, sweep):
    """A Keras callback: reports each epoch's metric to the trial, and stops it when the pruner says so."""
    from nnrun.backend import keras

    class Pruning(keras().callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.pruned_at = None

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if sweep.metric not in logs:
                raise ConfigError(
                    f"sweep.metric: '{sweep.metric}' is not among the metrics logged each epoch "
                    f"({', '.join(sorted(logs))})"
                )
            value = float(logs[sweep.metric])
            if not math.isfinite(value):
                return
            trial.report(value, epoch + 1)
            if sweep.pruning and trial.should_prune():
                self.pruned_at = epoch + 1
                self.model.stop_training = True

    return Pruning()


def _trial_config(config, params, output_dir, name):
    """The config of one trial: the sweep's, its parameters set, without the sweep section."""
    from nnrun import tracking

    resolved = config.model_dump(mode="json")
    resolved.pop("sweep")
    for path, value in params.items():
        config_lib.set_path(resolved, path, value, f"sweep.parameters['{path}']")
    resolved["output"].update(dir=str(output_dir), name=name)
    if resolved["tracking"].get("mlflow") is not None:  # one experiment and store for every trial
        settings = config.tracking.mlflow
        resolved["tracking"]["mlflow"].update(experiment=settings.experiment or config.output.name,
                                              tracking_uri=tracking.mlflow_uri(settings, config.output.dir))
    return config_lib.validate(resolved, f"sweep trial {name}")


def _relative(run_dir, sweep_dir):
    """A trial's run directory as recorded: from the sweep directory, which may move."""
    return run_dir and os.path.relpath(run_dir, sweep_dir)


def _value(run_dir, metric):
    """A trial's result: the metric of the model its run kept (metrics.json: EarlyStopping may have
    restored an earlier epoch's weights), else its last epoch's; None when not a finite number."""
    split, name = ("validation", metric[len("val_"):]) if metric.startswith("val_") else ("train", metric)
    try:
        value = (rundir.read_json(Path(run_dir) / rundir.METRICS).get(split) or {}).get(name)
    except RunDirError:
        value = None
    if value is None:
        rows = rundir.read_history(Path(run_dir) / rundir.HISTORY)
        value = rows[-1].get(metric) if rows else None
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _test_metrics(run_dir):
    try:
        test = rundir.read_json(Path(run_dir) / rundir.METRICS).get("test") or {}
    except RunDirError:
        return {}
    return {f"test_{k}": v for k, v in test.items() if isinstance(v, (int, float))}


def _record(study, trial, **attrs):
    for key, value in attrs.items():
        if value is not None:
            study._storage.set_trial_user_attr(trial._trial_id, key, str(value) if isinstance(value, Path) else value)


def report(sweep_dir, config, study, console=None, number=None):
    """Writes trials.csv, best.yaml and sweep.png from the study; prints the line of trial `number`.

    Returns:
        The best `FrozenTrial`, or None before any trial completed.
    """
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("skipped") and t.state.name != "WAITING"]
    try:
        best = study.best_trial
    except ValueError:
        best = None
    rundir.write_text(sweep_dir / TABLE, _table(trials, config.sweep))
    if best is not None:
        rundir.write_text(sweep_dir / BEST, _best_text(sweep_dir, config, best))
        _write_state(sweep_dir, best={"trial": best.number + 1, "value": best.value, "params": best.params,
                                      "run_dir": best.user_attrs.get("run_dir")})
    from nnrun import plots

    plots.sweep(_points(trials), sweep_dir / PLOT, f"{config.output.name}: {config.sweep.metric} over trials",
                config.sweep.metric, config.sweep.direction)
    if console is not None and number is not None:
        console.print(_line(study, number, config, best), highlight=False, soft_wrap=True)
    return best


def _line(study, number, config, best):
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    sweep = config.sweep
    done = len([t for t in _counted(study) if t.state.is_finished()])
    total = f"{done}/{sweep.trials}" if sweep.trials else f"{done} done"
    state = trial.state.name
    if state == "COMPLETE":
        result = f"{sweep.metric} {trial.value:.4g}"
    elif state == "PRUNED":
        last = trial.intermediate_values.get(trial.user_attrs.get("pruned_at_epoch"))
        result = f"pruned at epoch {trial.user_attrs.get('pruned_at_epoch')}" + (f" ({sweep.metric} {last:.4g})" if last is not None else "")
    else:
        result = f"failed: {trial.user_attrs.get('error', 'see its run directory')}"
    so_far = f"best {best.value:.4g} (trial {best.number + 1})" if best is not None else "no result yet"
    took = f"  {trial.user_attrs['duration_s']:.0f}s" if "duration_s" in trial.user_attrs else ""
    return f"[{total}] trial {number + 1}  {_params_text(trial.params)}  {result}  {so_far}{took}"


def _params_text(params):
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _table(trials, sweep):
    import csv
    import io

    names = list(sweep.parameters)
    tests = sorted({k for t in trials for k in t.user_attrs if k.startswith("test_")})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", "state", sweep.metric, *names, "pruned_at_epoch", *tests, "duration_s", "run_dir", "error"])
    for t in trials:
        state = "interrupted" if t.user_attrs.get("interrupted") else t.state.name.lower()
        writer.writerow([
            t.number + 1, state, "" if t.value is None else t.value, *(t.params.get(n, "") for n in names),
            t.user_attrs.get("pruned_at_epoch", ""), *(t.user_attrs.get(k, "") for k in tests),
            t.user_attrs.get("duration_s", ""), t.user_attrs.get("run_dir", ""), t.user_attrs.get("error", ""),
        ])
    return out.getvalue()


def _points(trials):
    """(trial number, value, state) for the plot: a pruned trial at its last reported value."""
    points = []
    for t in trials:
        value = t.value
        if t.state.name == "PRUNED" and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        if value is not None and math.isfinite(value):
            points.append((t.number, value, t.state.name.lower()))
    return points


def _best_text(sweep_dir, config, best):
    resolved = config.model_dump(mode="json")
    resolved.pop("sweep")
    for path, value in best.params.items():
        config_lib.set_path(resolved, path, value, f"sweep.parameters['{path}']")
    text = config_lib.dump(config_lib.validate(resolved, f"{sweep_dir / BEST}"))
    header = (f"# The best trial of the sweep {sweep_dir.name}: trial {best.number + 1}, "
              f"{config.sweep.metric} {best.value:.6g} ({best.user_attrs.get('run_dir', '')}).\n"
              f"# Train it with: nnrun train {sweep_dir / BEST}\n")
    return header + text


def _write_state(sweep_dir, **fields):
    path = Path(sweep_dir) / STATE
    state = rundir.read_json(path) if path.is_file() else {}
    rundir.write_json(path, {**state, **fields})


def _say_start(sweep_dir, config, study, console, jobs):
    sweep = config.sweep
    done = len([t for t in _counted(study) if t.state.name != "RUNNING"])
    budget = " and ".join(filter(None, [
        f"{sweep.trials} trials" if sweep.trials else "", f"{sweep.time_budget:g} s" if sweep.time_budget else "",
    ]))
    console.print(
        f"sweep {sweep_dir.name}: {sweep.direction} {sweep.metric} over {len(sweep.parameters)} parameters, "
        f"{budget}" + (f", {done} done before" if done else "") + (f", {jobs} at a time" if jobs > 1 else ""),
        highlight=False, soft_wrap=True,
    )
    console.print(f"sweep directory: {sweep_dir}", style="dim", highlight=False, soft_wrap=True)


def _supervise(sweep_dir, study, config, console, jobs, stop):
    """Starts `jobs` worker processes on the shared study; prints each trial as it ends."""
    (sweep_dir / WORKERS).mkdir(exist_ok=True)
    deadline = time.time() + config.sweep.time_budget if config.sweep.time_budget else 0
    workers, logs = [], []
    for k in range(jobs):
        log = open(sweep_dir / WORKERS / f"worker-{k}.log", "ab")  # noqa: SIM115 (closed below)
        logs.append(log)
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "nnrun.sweep", str(sweep_dir), str(k), str(deadline)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        ))
    shown = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    try:
        while True:
            running = [w for w in workers if w.poll() is None]
            for t in study.get_trials(deepcopy=False):
                if t.state.is_finished() and t.number not in shown and not t.user_attrs.get("skipped"):
                    shown.add(t.number)
                    report(sweep_dir, config, study, console, t.number)
            if not running:
                break
            if stop.signum:
                for w in running:
                    with contextlib.suppress(ProcessLookupError):
                        w.send_signal(signal.SIGINT)
                for w in running:
                    w.wait()
                stop.check()
            time.sleep(POLL_S)
    finally:
        for log in logs:
            log.close()
    failed = [(k, w.returncode) for k, w in enumerate(workers) if w.returncode not in (0, None)]
    if failed:
        k, code = failed[0]
        last = (sweep_dir / WORKERS / f"worker-{k}.log").read_text(errors="replace").strip().splitlines()
        why = last[-1] if last else f"exit {code}"
        error = ConfigError if code == 2 else NnrunError
        raise error(f"sweep worker {k} stopped: {why} (log: {sweep_dir / WORKERS / f'worker-{k}.log'})")


def _worker(sweep_dir, k, deadline):
    """A worker process of `--jobs`: runs trials on the shared study until the budget is spent."""
    from rich.console import Console

    from nnrun import backend

    sweep_dir = Path(sweep_dir)
    config = _load(sweep_dir, ())
    backend.use(config.backend)
    console = Console(stderr=True, highlight=False)
    study = _study(sweep_dir, config, worker=k)
    try:
        with signals.stopping() as stop:
            _work(sweep_dir, config, study, console, stop, deadline=deadline or None)
    except KeyboardInterrupt as e:
        return e.exit_code if isinstance(e, Interrupted) else 128 + signal.SIGINT
    except NnrunError as e:
        print(f"error: {one_line(e, 500)}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(_worker(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
