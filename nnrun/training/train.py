"""Training: data, seed, model, fit with callbacks, save. Reads top to bottom.

Nothing is written before the config, the data and the model have all been
checked; from then on, the run directory's run.json always says how the run
stands: running, completed, failed or interrupted.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnrun import atomic, data, plots, signals
from nnrun.backend import keras as _keras
from nnrun.config import schema as config_lib
from nnrun.data import feeding, schema
from nnrun.errors import ConfigError, Interrupted, NnrunError, RunDirError, RunFailed
from nnrun.model import backbones
from nnrun.model.build import build, callbacks_from, check_fit, compile_model, snake_case
from nnrun.rundir import files as rundir
from nnrun.rundir import runinfo
from nnrun.training import distribution, reasons
from nnrun.training import stages as fine_tune

if TYPE_CHECKING:  # Keras ships no types; to mypy its classes are Any
    import keras
    from rich.console import Console

    from nnrun.config.schema import Config
    from nnrun.training.callbacks import EpochRecorder


@dataclass
class Setup:
    """Everything `train` needs before it trains; what `nnrun check` shows."""

    dataset: data.Dataset
    model: keras.Model
    one_hot: bool  # integer labels are one-hot encoded for the loss
    class_weight: dict[int, float] | None  # class index -> weight in the loss
    engine: distribution.Engine  # the devices and processes it trains on
    stages: fine_tune.Stages  # training, then fine-tuning when the config asks


def setup(config: Config, join: bool = True) -> Setup:
    """Loads the data, seeds, builds and compiles the model, and checks they fit.

    Args:
        config: the validated `Config`.
        join: join the other processes of a multi-process run (`check` does not).

    Returns:
        A `Setup`.
    """
    training = config.training
    dataset = data.load(config.data, training.validation_split, config.seed, training.batch_size, training.shuffle)
    keras = _keras()
    engine = distribution.start(config, join)  # before anything runs on a device
    keras.utils.set_random_seed(config.seed)
    engine.same("the data", dataset.fingerprint)
    if "tensorflow" in sys.modules:  # it runs the model, or tf.data feeds it (JAX needs nothing)
        # Same config and seed, same numbers: worth the small cost on CPU.
        sys.modules["tensorflow"].config.experimental.enable_op_determinism()
    with engine.scope():
        model, loss_name = _built(config, dataset)
        stages = fine_tune.Stages(model, config, engine.scope)
    one_hot = check_fit(model, loss_name, dataset, config.model.layers)
    from nnrun.training.callbacks import AtomicModelCheckpoint

    callbacks_from(config.training.callbacks, rundir.BEST_MODEL, AtomicModelCheckpoint)  # checks their arguments
    weights = feeding.class_weight(config.training.class_weight, dataset.class_names, dataset.y_train)
    from nnrun.inference import export

    export.check_available(config.output.export, "output.export:")  # before training, not after
    from nnrun.training import tracking

    tracking.check_available(config.tracking)
    return Setup(dataset, model, one_hot, weights, engine, stages)


def check_model(config: Config, dataset: data.Dataset) -> None:
    """Builds and compiles the config's model for data already loaded, and checks they fit
    (a sweep's other points, on the data of its first).

    Args:
        config: the validated `Config`.
        dataset: the `data.Dataset` it trains on.
    """
    model, loss_name = _built(config, dataset)
    check_fit(model, loss_name, dataset, config.model.layers)


def _built(config, dataset):
    model = build(
        config.model.layers,
        dataset.preprocessing["input_shape"],
        config.output.name,
        config.data.augmentation,
        _target_units(dataset, config.data),
        config.data.rescale,
    )
    return model, compile_model(model, config)


def train(
    config: Config,
    console: Console,
    live: bool = False,
    config_file: Path | None = None,
    resume: str | os.PathLike[str] | None = None,
    prepared: Setup | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> Path | None:
    """Trains a model as the config says, into a new run directory or a resumed one.

    Args:
        config: the validated `Config`.
        console: a rich console for progress (stderr).
        live: show a live progress bar (a terminal) rather than one line per epoch.
        config_file: the config's path, recorded in run.json.
        resume: a run directory to continue from its backup (`nnrun resume`)
            instead of making a new one.
        prepared: the `Setup`, when the caller has already made it.
        callbacks: more Keras callbacks (a sweep's pruning), after the run's own; one whose `halt`
            is true ends the run, not only its stage (no fine-tuning follows).

    Returns:
        The run directory's `Path`; None on a process other than 0 of a
        multi-process run (process 0 writes the run directory).
    """
    from nnrun.training import backup, tracking
    from nnrun.training.callbacks import (
        AtomicModelCheckpoint,
        CarryOver,
        EpochRecorder,
        SeedEachEpoch,
        StopOnNaN,
        StopOnSignal,
    )
    from nnrun.training.progress import ProgressReporter

    if resume and distribution.plan(config).processes > 1:
        raise ConfigError("a run resumes in one process: unset the KERAS_DISTRIBUTION_* variables")
    s = prepared or setup(config)
    ds, model, training, engine = s.dataset, s.model, config.training, s.engine
    report = console
    if not engine.writer:
        console = type(console)(stderr=True, quiet=True)  # process 0 reports for all
    splits: dict[str, tuple[Any, Any]] = {
        "train": (ds.x_train, ds.y_train),
        "validation": (ds.x_val, ds.y_val),
        "test": (ds.x_test, ds.y_test),
    }
    form = feeding.label_form(s.one_hot, ds.class_names, model.output_shape[-1])
    n_classes = len(ds.class_names or ())
    splits = {name: feeding.labels(x, y, n_classes, form) for name, (x, y) in splits.items() if x is not None}
    for note in ds.notes + _label_notes(config, s.one_hot):
        console.print(note, style="dim", highlight=False, soft_wrap=True)

    with engine.finishing(), signals.stopping() as stop, contextlib.ExitStack() as trackers:
        started = time.time()
        if not resume and engine.writer:
            rundir.sweep_stale(config.output.dir)
        assert config.output.name is not None  # load() sets it
        run_dir = Path(resume) if resume else rundir.create(engine.output_dir(config.output.dir), config.output.name)
        # A new run writes its files; a resumed one gets back its weights,
        # optimizer state and history up to its last backup.
        with engine.scope():  # a strategy's optimizer variables are made inside it
            rows = _restore(run_dir, s, console) if resume else _begin(run_dir, config, s, config_file, started)
        console.print(f"run directory: {run_dir}", style="dim", highlight=False, soft_wrap=True)
        # Closed first on the way out, once run.json says how the run ended.
        tracked = (
            trackers.enter_context(tracking.tracked(config, run_dir, console, ds.class_names)) if engine.writer else []
        )

        recorder = EpochRecorder(run_dir, rows, model.get_weights() if rows else None, ds.class_names)
        nan_guard = StopOnNaN()
        own = callbacks_from(training.callbacks, run_dir / rundir.BEST_MODEL, AtomicModelCheckpoint)
        steps = math.ceil(len(ds.y_train) / training.batch_size)
        reporter = ProgressReporter(console, s.stages.epochs, steps, live, initial_epoch=len(rows))
        stopper = StopOnSignal(stop, engine.agree if engine.plan.processes > 1 else None)
        callbacks = [
            SeedEachEpoch(config.seed),
            nan_guard,
            recorder,  # before the backup: history.csv never lags behind it
            backup.Backup(run_dir / rundir.BACKUP, training.backup_every_steps, s.stages.stage),
            *own,
            CarryOver(own, rows),
            *tracked,
            *callbacks,
            reporter,
            stopper,  # last: an epoch's records and backup are written before it stops
        ]
        try:
            stop.check()
            fit_started = time.time()
            try:
                for until in s.stages.ends(
                    lambda: len(recorder.rows),
                    run_dir,
                    console,
                    lambda: bool(
                        nan_guard.diverged_at or stop.signum or any(getattr(c, "halt", False) for c in callbacks)
                    ),
                ):
                    if nan_guard.diverged_at or len(recorder.rows) >= until:
                        continue
                    stop.check()
                    model.fit(
                        **engine.feed(*splits["train"], training.batch_size, training.shuffle),
                        validation_data=engine.validation(*splits["validation"], training.batch_size)
                        if "validation" in splits
                        else None,
                        epochs=until,
                        initial_epoch=len(recorder.rows),
                        shuffle=training.shuffle,
                        class_weight=s.class_weight,
                        callbacks=callbacks,
                        verbose=0,
                    )
            finally:
                reporter.close()
            rundir.update_run(run_dir, fit_s=round(time.time() - fit_started, 3))  # training alone, for benchmarks
            engine.together, model = True, engine.local(model, config)
            stop.check()
            if nan_guard.diverged_at:
                loss, epoch, batch = nan_guard.diverged_at
                kept = _keep_last_epoch(model, recorder, run_dir, config, engine)
                raise RunFailed(
                    f"the loss became {loss} at epoch {epoch}, batch {batch}: training diverged; "
                    f"try a lower optimizer.learning_rate{kept}"
                )
            _save_model(model, run_dir, config.output.save_h5)
            inference = feeding.inference_batch_size(training.batch_size)
            metrics = _final_metrics(
                model,
                splits,
                recorder,
                inference,
                ds.class_names,
                fresh=("validation", "test") if engine.sharded else ("test",),
            )
            atomic.write_json(run_dir / rundir.METRICS, {k: _floats(v) for k, v in metrics.items()})
            _plot(model, ds, recorder.history, run_dir, config.output.name, inference)
            stop.check()
        except KeyboardInterrupt as e:
            # Further stop signals are ignored from here on (signals.stopping).
            why = (
                f"stopped by {e.name}" if isinstance(e, Interrupted) and e.name != "SIGINT" else "interrupted (Ctrl-C)"
            )
            engine.together = engine.together or stopper.agreed
            kept = _keep_last_epoch(model, recorder, run_dir, config, engine)
            # A signal in the middle of an epoch's end may have cut its records short:
            # the run ends at the last epoch whose model is kept.
            done = recorder.weights_epoch if recorder.weights is not None else 0
            if len(recorder.rows) > done:
                atomic.write_text(run_dir / rundir.HISTORY, rundir.history_text(recorder.rows[:done]))
            runinfo.finish(
                run_dir,
                started,
                "interrupted",
                console,
                error=why,
                signal=getattr(e, "name", "SIGINT"),
                epochs_completed=done,
            )
            console.print(
                f"{why} after {done} epoch{'s' * (done != 1)}{kept or '; no epoch finished'}; "
                f"continue with: nnrun resume {run_dir}",
                highlight=False,
                soft_wrap=True,
            )
            e.run_dir = run_dir if engine.writer else None  # type: ignore[attr-defined]  # a plain KeyboardInterrupt too
            raise
        except NnrunError as e:
            runinfo.finish(run_dir, started, "failed", console, error=str(e))
            e.run_dir = run_dir
            raise
        except Exception as e:
            if config.data.source == "images" and reasons.is_backend_error(e, "invalid_argument"):
                # tf.data could not decode a file, and does not say which: name it (exit 2).
                from nnrun.data import image_folder

                try:
                    image_folder.verify(config.data)
                except NnrunError as unreadable:
                    runinfo.finish(run_dir, started, "failed", console, error=str(unreadable))
                    unreadable.run_dir = run_dir
                    raise unreadable from None
            reason = reasons.reason(e, streamed=feeding.is_stream(ds.x_train))
            runinfo.finish(run_dir, started, "failed", console, error=reason, traceback=traceback.format_exc())
            failed = RunFailed(f"{reason} (details in {run_dir / rundir.RUN}; nnrun resume {run_dir} continues it)")
            failed.run_dir = run_dir
            raise failed from e
        runinfo.finish(run_dir, started, "completed", console)
    if not config.output.keep_backup:
        backup.remove(run_dir / rundir.BACKUP)
    rundir.point_latest(run_dir)
    if not engine.writer:
        p = engine.plan
        report.print(
            f"process {p.process_id} of {p.processes}: done, weights sha256 {engine.weights}; "
            f"process 0 wrote the run directory",
            highlight=False,
            soft_wrap=True,
        )
        return None
    return run_dir


def resolved_text(config: Config) -> str:
    """The config.yaml a run of this config gets: resolved, its data path absolute."""
    return config_lib.dump(_with_absolute_paths(config))


def _begin(run_dir, config, s, config_file, started):
    """Writes a new run's files; run.json first, so the folder is a run from the start."""
    text = resolved_text(config)
    info = runinfo.new(config, s.dataset, config_file, started, atomic.sha256_text(text))
    weights = s.class_weight and {s.dataset.class_names[i]: round(w, 6) for i, w in s.class_weight.items()}
    info = {**info, "distribution": s.engine.record(), "class_weight": weights, "notes": s.dataset.notes}
    atomic.write_json(run_dir / rundir.RUN, info)
    atomic.write_text(run_dir / rundir.CONFIG, text)
    preprocessing = {"version": schema.VERSION, **s.dataset.preprocessing, "one_hot_labels": s.one_hot}
    atomic.write_json(run_dir / rundir.PREPROCESSING, preprocessing)
    return []


def _restore(run_dir, s, console):
    """Restores a run's last backup into the model; returns its history up to it."""
    from nnrun.training import backup

    s.stages.resume(run_dir)
    restored = backup.restore(s.model, run_dir / rundir.BACKUP, s.stages.arrange)
    epoch = restored.epoch if restored else 0
    try:
        rows = rundir.read_history(run_dir / rundir.HISTORY)[:epoch]
        epochs = [r["epoch"] for r in rows]
    except (ValueError, KeyError, TypeError) as e:
        raise RunDirError(f"'{run_dir / rundir.HISTORY}': cannot be read: {type(e).__name__} {e}") from None
    if len(rows) != epoch or epochs != list(range(1, epoch + 1)):
        raise RunDirError(f"'{run_dir / rundir.HISTORY}' has {len(rows)} of the {epoch} epochs its backup has")
    atomic.write_text(run_dir / rundir.HISTORY, rundir.history_text(rows))
    if restored and restored.previous:
        console.print(f"the latest backup was unusable ({restored.problem}); using the one before it", style="yellow")
    entry = runinfo.resumed(run_dir, epoch, restored.batch if restored else 0, restored.iterations if restored else 0)
    where = f"epoch {epoch} (step {entry['from_step']})" if restored else "the start (no epoch had finished)"
    console.print(f"resuming {run_dir.name} from {where}", highlight=False)
    return rows


def _keep_last_epoch(model, recorder, run_dir, config, engine):
    """Saves the last finished epoch's model (after a stop or divergence); says what was kept.

    Never raises: it runs on the way out of a run that has already failed or
    been stopped, whose status must still be recorded.
    """
    if recorder.weights is None:
        return ""
    try:
        # Past an epoch, several processes only stop together, so all of them get here.
        model = engine.local(model, config)
        model.set_weights(recorder.weights)
        _save_model(model, run_dir, config.output.save_h5)
        plots.learning_curves(
            recorder.history,
            run_dir / rundir.PLOTS / "learning_curves.png",
            config.output.name,
            rundir.read_run(run_dir).get(fine_tune.AFTER_EPOCH),
        )
    except Exception as e:
        return f"; the model of epoch {recorder.weights_epoch} could not be saved ({type(e).__name__}: {e})"
    return f"; the model of epoch {recorder.weights_epoch} is saved in {run_dir}"


def _target_units(dataset, data):
    """(mean, std) of a regression's single target in the training split, when the config scales it."""
    y = np.asarray(dataset.y_train, dtype="float64")
    if dataset.is_classification or not data.scale_target or (y.ndim > 1 and y.shape[1] != 1):
        return None
    std = float(y.std())
    return float(y.mean()), std if std > 0 else 1.0


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


def _final_metrics(
    model: keras.Model,
    splits: dict[str, tuple[Any, Any]],
    recorder: EpochRecorder,
    batch_size: int,
    class_names: Sequence[str] | None,
    fresh: Sequence[str] = ("test",),
) -> dict[str, dict[str, Any]]:
    """Final train/validation/test metrics of the saved model.

    Unless a callback restored other weights, the last epoch's logs already
    hold them: Keras's validation metrics are computed with the final
    weights, and the training metrics are Keras's own over the last epoch.
    Only the splits in `fresh` get another pass: the test split, and the
    validation split when batches split over devices left a few samples out.
    """
    last = recorder.rows[-1] if recorder.rows else {}
    final = recorder.weights is not None and all(
        np.array_equal(a, b) for a, b in zip(model.get_weights(), recorder.weights, strict=True)
    )
    logged = {
        "train": {k: v for k, v in last.items() if k not in ("epoch", "learning_rate") and not k.startswith("val_")},
        "validation": {k[len("val_") :]: v for k, v in last.items() if k.startswith("val_")},
    }
    return {
        name: logged[name]
        if final and name not in fresh and logged[name]
        else feeding.scalars(
            model.evaluate(**feeding.inputs(*split, batch_size), verbose=0, return_dict=True), class_names
        )
        for name, split in splits.items()
    }


def _with_absolute_paths(config):
    """The config with its data and weights files' paths absolute, so the run can be evaluated
    and resumed from anywhere."""
    update = {
        "model": config.model.model_copy(update={"layers": [backbones.absolute(spec) for spec in config.model.layers]})
    }
    if getattr(config.data, "path", None) is not None:
        update["data"] = config.data.model_copy(update={"path": config.data.path.resolve()})
    return config.model_copy(update=update)


def _save_model(model: keras.Model, run_dir: Path, save_h5: bool) -> None:
    with atomic.atomic(run_dir / rundir.MODEL) as tmp:
        model.save(tmp)
    if save_h5:
        with atomic.atomic(run_dir / rundir.MODEL_H5) as tmp:
            model.save(tmp)


def _plot(model, ds, history, run_dir, name, batch_size):
    plots.learning_curves(
        history,
        run_dir / rundir.PLOTS / "learning_curves.png",
        f"{name}: learning curves",
        rundir.read_run(run_dir).get(fine_tune.AFTER_EPOCH),
    )
    if ds.is_classification:
        predicted = feeding.predicted_classes(model.predict(ds.x_test, batch_size=batch_size, verbose=0))
        plots.confusion_matrix(
            ds.y_test,
            predicted,
            ds.class_names,
            run_dir / rundir.PLOTS / "confusion_matrix.png",
            f"{name}: confusion matrix (test split)",
        )


def _floats(metrics: dict[str, Any]) -> dict[str, float | None]:
    return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}
