"""A sweep's Optuna study and its directory's state: made, loaded, counted, recovered after a crash.

A sweep directory `runs/<name>-sweep-<time>/` holds the sweep's config, the
Optuna study (SQLite, so a killed sweep continues where it stopped), one run
directory per trial under `trials/`, and what a user reads (`nnrun.sweep.report`):
`trials.csv`, `best.yaml` (a config to train) and `sweep.png`.

On a shared study (`nnrun.sweep.storage`) the study is in a database that
sweeps on several machines join by its name, the config's `output.name`;
each machine keeps a sweep directory of its own with the runs of the trials
it ran, and each trial records the host and sweep directory that ran it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun import atomic
from nnrun.config import loading as config_lib
from nnrun.errors import ConfigError, NnrunError, RunDirError, one_line
from nnrun.rundir import files as rundir
from nnrun.rundir import liveness, record
from nnrun.sweep import heartbeat, optuna_private
from nnrun.sweep import space as search_space
from nnrun.sweep.storage import Storage, rdb

if TYPE_CHECKING:  # Optuna is imported where used; here for annotations only
    import optuna

    from nnrun.config.schema import Config
    from nnrun.config.sweep_section import Sweep
    from nnrun.reporter import Reporter

CONFIG = "config.yaml"  # the sweep's resolved config, its sweep section included
STATE = rundir.SWEEP  # marks the folder as a sweep: status, the time it has used, its best trial
STUDY = "study.db"
TRIALS = rundir.TRIALS
WORKERS = "workers"  # the worker processes' logs, with --jobs
STUDY_NAME = "nnrun"  # the study in a sweep directory's own study.db
SPACE_ATTR = "nnrun_space"  # a shared study's metric and parameters: a sweep that joins it must search the same
STARTED_ATTR = "nnrun_started_at"  # when a shared study's first sweep started: its time budget counts from there


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


def open_study(
    sweep_dir: Path,
    config: Config,
    worker: int = 0,
    storage: Storage | None = None,
    database: optuna.storages.RDBStorage | None = None,
) -> optuna.Study:
    """The sweep's Optuna study, made or loaded (joined, on a shared database); one it cannot use is exit 2.

    Args:
        sweep_dir: the sweep directory.
        config: its `Config`.
        worker: the `--jobs` worker's number (its sampler is seeded apart).
        storage: where the study is; by default the sweep directory's study.db.
        database: that database, opened (`nnrun.sweep.storage.opened`, which closes it); by default opened here.

    Returns:
        The `optuna.Study`.
    """
    import optuna
    import sqlalchemy.exc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = storage or Storage()
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
    where = f"{storage.place}: {storage.shown}" if storage.shared else f"'{path}'"
    name = config.output.name if storage.shared else STUDY_NAME
    try:
        study = optuna.create_study(
            storage=database or rdb(storage, path),
            study_name=name,
            direction=sweep.direction,
            pruner=pruner,
            load_if_exists=True,
        )
        trials = study.get_trials(deepcopy=False)
        if storage.shared:
            _same_search(study, sweep, where)
    except (sqlalchemy.exc.SQLAlchemyError, ValueError, RuntimeError) as e:
        raise RunDirError(f"{where}: not a study nnrun can read: {storage.scrub(one_line(e, 150))}") from None
    if [d.name.lower() for d in study.directions] != [sweep.direction]:
        raise (ConfigError if storage.shared else RunDirError)(
            f"{where}: its study {name!r} is to {study.directions[0].name.lower()}, this sweep's config says "
            f"{sweep.direction}"
        )
    seed = sweep.seed if sweep.seed is not None else config.seed
    # Seeded anew from what the study holds: a continued sweep (or a second worker) must not draw
    # the points its first trials drew; nor a sweep on another machine, which starts as this one did.
    # The constant liar keeps parallel workers apart.
    apart = zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) if storage.shared else 0
    study.sampler = optuna.samplers.TPESampler(
        seed=(seed + 7919 * worker + 104729 * len(trials) + apart) % 2**32, constant_liar=True
    )
    return study


def _same_search(study, sweep, where):
    """Records a shared study's search the first time; refuses a sweep that joins it with another."""
    space = {"metric": sweep.metric, "parameters": sweep.parameters}
    recorded = study.user_attrs.get(SPACE_ATTR)
    if recorded is None:
        study.set_user_attr(SPACE_ATTR, space)
    elif json.loads(json.dumps(space)) != recorded:
        differ = [k for k in ("metric", "parameters") if json.loads(json.dumps(space[k])) != recorded.get(k)]
        raise ConfigError(
            f"{where}: its study {study.study_name!r} searches another sweep.{' and sweep.'.join(differ)} than this "
            "config; give this sweep another output.name to start a study of its own"
        )


def deadline_of(study: optuna.Study, sweep: Sweep, started: float, used: float, shared: bool) -> float | None:
    """The `time.time()` after which no trial starts; None without a time budget.

    Args:
        study: the sweep's study.
        sweep: its sweep section.
        started: when this sweep (or this continuation) started.
        used: the seconds this sweep directory's earlier runs used.
        shared: on a shared study the budget counts from the study's first start, on any machine;
            in a sweep directory's own study, the time its runs used.
    """
    if not sweep.time_budget:
        return None
    if not shared:
        return started + sweep.time_budget - used
    first = study.user_attrs.get(STARTED_ATTR)
    if not isinstance(first, (int, float)):
        study.set_user_attr(STARTED_ATTR, started)  # two first sweeps each set it, a moment apart
        first = started
    return first + sweep.time_budget


def recover(study: optuna.Study, sweep_dir: Path, sweep: Sweep, report: Reporter) -> None:
    """Trials left running by a sweep that died are marked interrupted, and their points tried again."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        process = trial.user_attrs.get("process")
        if isinstance(process, dict) and liveness.still_running(
            process.get("pid"), process.get("host"), process.get("process_started")
        ):
            continue  # a worker of a killed sweep, still finishing its trial
        attrs: dict[str, Any] = {"interrupted": True}
        if "run_dir" not in trial.user_attrs:  # killed before train returned it
            found = sorted(sweep_dir.glob(f"{TRIALS}/trial-{trial.number + 1:03d}-*"))
            attrs["run_dir"] = relative(found[-1], sweep_dir) if found else None
        for key, value in attrs.items():
            if value is not None:
                optuna_private.set_user_attr(study, trial, key, value)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        if search_space.contains(sweep, trial.params):
            again(study, trial, _trial_run(sweep_dir, trial.user_attrs.get("run_dir") or attrs.get("run_dir")))
            report.note(f"trial {trial.number + 1} was cut off when the sweep stopped: it runs again")


def recover_silent(study: optuna.Study, sweep_dir: Path, sweep: Sweep, report: Reporter, watch: heartbeat.Watch) -> int:
    """On a shared study: trials whose heartbeat stopped (their machine died, or their sweep was killed) are
    marked interrupted and their points tried again, by whichever sweep sees it first.

    Args:
        study: the shared study.
        sweep_dir: this sweep's directory (a cut-off trial of its own gets its run marked).
        sweep: its sweep section.
        report: the `Reporter`, for a note.
        watch: the `heartbeat.Watch` this sweep keeps of the running trials.

    Returns:
        How many trials it found cut off.
    """
    import optuna

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    found = 0
    for trial in watch.silent(running):
        try:
            optuna_private.set_user_attr(study, trial, "interrupted", True)
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)  # no skip: raises for all but one sweep
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
            continue  # finished meanwhile, or another sweep recovered it first
        found += 1
        host = (trial.user_attrs.get("process") or {}).get("host", "another machine")
        if search_space.contains(sweep, trial.params):
            again(study, trial, _own_run(sweep_dir, trial))
            report.note(f"trial {trial.number + 1} (on {host}) stopped sending its heartbeat: it runs again")
    return found


def mark_retried(study: optuna.Study, sweep_dir: Path) -> None:
    """On a shared study, as a sweep continues: the runs of its own trials that another sweep found cut off
    (this one was killed) say which trial runs their point again, so that none is offered to resume."""
    import optuna

    retries = {t.user_attrs.get("retry_of"): t.number for t in study.get_trials(deepcopy=False)}
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        run_dir = _own_run(sweep_dir, trial) if trial.user_attrs.get("interrupted") else None
        if run_dir is None or trial.number + 1 not in retries:
            continue
        with contextlib.suppress(NnrunError, OSError):  # best effort, as again()'s
            if record.read_info(run_dir).retried_as_trial is None:
                record.update_info(run_dir, retried_as_trial=retries[trial.number + 1] + 1)


def _own_run(sweep_dir, trial):
    """The run directory of a trial this sweep directory ran, when it began one (a killed trial's run is
    found by its name); None for another machine's trial."""
    if trial.user_attrs.get("sweep_dir") != str(sweep_dir.resolve()):
        return None
    recorded = trial.user_attrs.get("run_dir")
    if recorded is None:
        found = sorted(sweep_dir.glob(f"{TRIALS}/trial-{trial.number + 1:03d}-*"))
        recorded = relative(found[-1], sweep_dir) if found else None
    run_dir = _trial_run(sweep_dir, recorded)
    return run_dir if run_dir is not None and not run_dir.is_symlink() and rundir.is_run_dir(run_dir) else None


def again(
    study: optuna.Study, trial: optuna.trial.FrozenTrial | optuna.trial.Trial, run_dir: Path | None = None
) -> None:
    """Queues a cut-off trial's point, so that the sweep's next trial tries it; its run says which trial.

    Args:
        study: the sweep's study.
        trial: the trial cut off.
        run_dir: its run directory, if it began one: its run.json gets `retried_as_trial`, so that
            neither `nnrun runs` nor `nnrun resume` offers to resume it.
    """
    import optuna

    retry_of = trial.number + 1
    study.enqueue_trial(trial.params, user_attrs={"retry_of": retry_of})
    if run_dir is None or run_dir.is_symlink() or not rundir.is_run_dir(run_dir):
        return  # killed before its run.json: no run to mark
    # A queued trial keeps the number it is made with: the trial that will run the point.
    queued = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    number = max((t.number for t in queued if t.user_attrs.get("retry_of") == retry_of), default=None)
    if number is None:  # another worker has already taken it
        return
    # Best effort: the point runs again either way; a run.json that cannot be written says crashed or interrupted.
    with contextlib.suppress(NnrunError, OSError):
        record.update_info(run_dir, retried_as_trial=number + 1)


def _trial_run(sweep_dir, recorded):
    """A trial's run directory as study.db records it, if it is one in trials/ (study.db may come from elsewhere)."""
    path = Path(recorded) if isinstance(recorded, str) else None
    return sweep_dir / path if path and path.parent == Path(TRIALS) and path.name not in ("", ".", "..") else None


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that use the budget: all but those interrupted, skipped or queued."""
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if not (t.user_attrs.get("interrupted") or t.user_attrs.get("skipped")) and t.state.name != "WAITING"
    ]


def relative(run_dir: str | os.PathLike[str] | None, sweep_dir: Path) -> str | None:
    """A trial's run directory as recorded: from the sweep directory, which may move."""
    return os.path.relpath(run_dir, sweep_dir) if run_dir else None


def read_state(sweep_dir: Path) -> dict[str, Any]:
    path = sweep_dir / STATE
    try:
        state = json.loads(rundir.read_text(path, kind="sweep directory"))
    except FileNotFoundError:
        return {}
    except ValueError:  # json's messages give the place, never the text
        raise RunDirError(f"'{path}': cannot read: not JSON") from None
    except RecursionError:
        raise RunDirError(f"'{path}': cannot read: nested too deeply") from None
    if not isinstance(state, dict):
        raise RunDirError(f"'{path}': expected a JSON object, got {type(state).__name__}")
    return state


def write_state(sweep_dir: Path, **fields: Any) -> None:
    atomic.write_json(sweep_dir / STATE, {**read_state(sweep_dir), **fields})
