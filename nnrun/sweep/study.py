"""A sweep's Optuna study and its directory's state: made, loaded, counted, recovered after a crash.

A sweep directory `runs/<name>-sweep-<time>/` holds the sweep's config, the
Optuna study (SQLite, so a killed sweep continues where it stopped), one run
directory per trial under `trials/`, and what a user reads (`nnrun.sweep.report`):
`trials.csv`, `best.yaml` (a config to train) and `sweep.png`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun import atomic
from nnrun.config import loading as config_lib
from nnrun.errors import ConfigError, NnrunError, RunDirError, one_line
from nnrun.rundir import files as rundir
from nnrun.rundir import liveness, record
from nnrun.sweep import optuna_private
from nnrun.sweep import space as search_space

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
STUDY_NAME = "nnrun"


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
