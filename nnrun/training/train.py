"""Training: set up, begin the run, fit each stage, save, and record how it ended. Reads top to bottom.

Nothing is written before the config, the data and the model have all been
checked (`setup`); from then on, the run directory's run.json always says how
the run stands: running, completed, failed or interrupted (`outcome`).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun import signals
from nnrun.config import loading as config_lib
from nnrun.data import feeding
from nnrun.errors import ConfigError
from nnrun.model import backbones
from nnrun.model.build import callbacks_from
from nnrun.model.names import snake_case
from nnrun.reporter import Reporter
from nnrun.rundir import files as rundir
from nnrun.rundir import finding, record
from nnrun.training import begin, distribution, outcome, progress, results
from nnrun.training.setup import Setup, setup

if TYPE_CHECKING:  # Keras ships no types; to mypy its classes are Any
    import keras

    from nnrun.config.schema import Config


def train(
    config: Config,
    report: Reporter,
    config_file: Path | None = None,
    resume: str | os.PathLike[str] | None = None,
    prepared: Setup | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> Path | None:
    """Trains a model as the config says, into a new run directory or a resumed one.

    Args:
        config: the validated `Config`.
        report: the `Reporter` the run says what it does through; its epochs show live where it is live.
        config_file: the config's path, recorded in run.json.
        resume: a run directory to continue from its backup (`nnrun resume`), instead of a new one.
        prepared: the `Setup`, when the caller has already made it.
        callbacks: more Keras callbacks (a sweep's pruning), after the run's own; one whose `halt`
            is true ends the run, not only its stage (no fine-tuning follows).

    Returns:
        The run directory's `Path`; None on a process other than 0 of several (process 0 writes it).
    """
    from nnrun.training import tracking
    from nnrun.training.callbacks import EpochRecorder, StopOnNaN, StopOnSignal

    if resume and distribution.plan(config).processes > 1:
        raise ConfigError("a run resumes in one process: unset the KERAS_DISTRIBUTION_* variables")
    s = prepared or setup(config)
    engine, ds = s.engine, s.dataset
    said = report if engine.writer else Reporter(quiet=True)  # what the run says: process 0 says it for all
    splits = _splits(s)
    _before(said, config, s)

    with engine.finishing(), signals.stopping() as stop, contextlib.ExitStack() as trackers:
        started = time.time()
        run_dir = begin.run_dir(config, engine, resume)
        # A new run writes its files; a resumed one gets back its weights,
        # optimizer state and history up to its last backup.
        with engine.scope():  # a strategy's optimizer variables are made inside it
            rows = (
                begin.restore(run_dir, s, said)
                if resume
                else begin.new(run_dir, config, s, config_file, started, resolved_text(config))
            )
        said.note(f"run directory: {run_dir}")
        # Closed first on the way out, once run.json says how the run ended.
        tracked = (
            trackers.enter_context(tracking.tracked(config, run_dir, said, ds.class_names)) if engine.writer else []
        )
        recorder = EpochRecorder(run_dir, rows, s.model.get_weights() if rows else None, ds.class_names)
        nan_guard, stopper = StopOnNaN(), StopOnSignal(stop, engine.agree if engine.plan.processes > 1 else None)
        bar = progress.epochs(said, s.stages.epochs, math.ceil(len(ds.y_train) / config.training.batch_size), len(rows))
        every = _callbacks(config, s, run_dir, recorder, nan_guard, [*tracked, *callbacks, bar], stopper)
        last = outcome.LastEpoch(s.model, recorder, stopper, engine, config)

        with outcome.Outcome(run_dir, started, said, last, engine.writer, feeding.is_stream(ds.x_train)):
            stop.check()
            fit_started = time.time()
            with contextlib.closing(bar):
                for until in s.stages.ends(recorder, every, run_dir, said):
                    stop.check()
                    s.model.fit(
                        **_fitting(s, splits, config), epochs=until, initial_epoch=len(recorder.rows), callbacks=every
                    )
            record.update_info(run_dir, fit_s=round(time.time() - fit_started, 3))  # training alone, for benchmarks
            engine.together, model = True, engine.local(s.model, config)
            kept = results.kept(every, recorder.rows)  # EarlyStopping's restore_best_weights
            stop.check()
            nan_guard.check()
            # Its last step is the last file: from there on the run is complete, and a stop signal changes nothing.
            results.save(model, ds, splits, recorder, run_dir, config, engine.sharded, stop.check, kept)
        if engine.writer:  # stop signals still wait: never cut short
            _completed(run_dir, config, lambda: results.draw(model, ds, recorder, run_dir, config))
    _ended(said, kept, stop)
    if not engine.writer:
        _done_elsewhere(engine, report)
        return None
    return run_dir


def _ended(said: Reporter, kept: results.Kept | None, stop: signals.Stop) -> None:
    """What a completed run says last: the epoch EarlyStopping kept, a stop signal that came as it completed."""
    if kept:
        said.say(str(kept))
    if stop.signum is not None and not stop.raised:
        said.say(f"{signal.Signals(stop.signum).name} came as the run completed: it is complete")


def resolved_text(config: Config) -> str:
    """The config.yaml a run of this config gets: resolved, its data path absolute."""
    return config_lib.dump(_with_absolute_paths(config))


def _completed(run_dir: Path, config: Config, draw: Callable[[], None]) -> None:
    """A completed run's last steps: its backup removed (unless kept), `latest` pointed at the newest
    completed run, then its plots drawn (last, with the backup's room freed: a plot is not what makes
    the run completed)."""
    from nnrun.training import backup

    if not config.output.keep_backup:
        backup.remove(run_dir / rundir.BACKUP)
    finding.update_latest(run_dir.parent)
    draw()


def _done_elsewhere(engine: distribution.Engine, report: Reporter) -> None:
    """What a process other than 0 says once the run completed: process 0 wrote it."""
    p = engine.plan
    report.say(
        f"process {p.process_id} of {p.processes}: done, weights sha256 {engine.weights}; "
        "process 0 wrote the run directory"
    )


def _splits(s: Setup) -> dict[str, tuple[Any, Any]]:
    """Each split's `(x, y)`, labels as the loss takes them (one-hot or not)."""
    ds = s.dataset
    form = feeding.label_form(s.one_hot, ds.class_names, s.model.output_shape[-1])
    n_classes = len(ds.class_names or ())
    raw: dict[str, tuple[Any, Any]] = {
        "train": (ds.x_train, ds.y_train),
        "validation": (ds.x_val, ds.y_val),
        "test": (ds.x_test, ds.y_test),
    }
    return {name: feeding.labels(x, y, n_classes, form) for name, (x, y) in raw.items() if x is not None}


def _callbacks(config, s, run_dir, recorder, nan_guard, others, stopper):
    """The run's Keras callbacks, in the order they must run."""
    from nnrun.training import backup
    from nnrun.training.callbacks import AtomicModelCheckpoint, CarryOver, SeedEachEpoch

    own = callbacks_from(config.training.callbacks, run_dir / rundir.BEST_MODEL, AtomicModelCheckpoint)
    return [
        SeedEachEpoch(config.seed),
        nan_guard,
        recorder,  # before the backup: history.csv never lags behind it
        backup.Backup(run_dir / rundir.BACKUP, config.training.backup_every_steps, s.stages.stage),
        *own,
        CarryOver(own, list(recorder.rows)),  # the history this attempt began with (a resumed run's)
        *others,  # trackers, the caller's, the progress bar
        stopper,  # last: an epoch's records and backup are written before it stops
    ]


def _fitting(s: Setup, splits: dict[str, tuple[Any, Any]], config: Config) -> dict[str, Any]:
    """`fit`'s arguments but the epochs and callbacks: the data as the engine feeds it."""
    training = config.training
    return {
        **s.engine.feed(*splits["train"], training.batch_size, training.shuffle),
        "validation_data": s.engine.validation(*splits["validation"], training.batch_size)
        if "validation" in splits
        else None,
        "shuffle": training.shuffle,
        "class_weight": s.class_weight,
        "verbose": 0,
    }


def _before(said: Reporter, config: Config, s: Setup) -> None:
    """What the run says before it trains: what was done to the data, and what the config may not mean."""
    for note in s.dataset.notes + _label_notes(config, s.one_hot):
        said.note(note)
    for warning in s.warnings:
        said.warn(f"warning: {warning}")


def _label_notes(config: Config, one_hot: bool) -> list[str]:
    if not one_hot:
        return []
    if snake_case(config.loss["name"]) == "sparse_categorical_crossentropy":
        return [
            (
                "labels one-hot encoded for the metrics, which take no class indices; "
                "the loss is categorical_crossentropy on them, the same numbers as sparse_categorical_crossentropy"
            )
        ]
    return [f"labels one-hot encoded for loss '{config.loss['name']}'"]


def _with_absolute_paths(config):
    """The config with its data and weights files' paths absolute, so the run can be evaluated
    and resumed from anywhere."""
    update = {
        "model": config.model.model_copy(update={"layers": [backbones.absolute(spec) for spec in config.model.layers]})
    }
    if getattr(config.data, "path", None) is not None:
        update["data"] = config.data.model_copy(update={"path": config.data.path.resolve()})
    return config.model_copy(update=update)
