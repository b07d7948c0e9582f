"""Training: data, seed, model, fit with callbacks, save. Reads top to bottom.

Nothing is written before the config, the data and the model have all been
checked; from then on, the run directory's run.json always says how the run
stands: running, completed, failed or interrupted.
"""

import datetime
import math
import platform
import sys
import time
import traceback
from dataclasses import dataclass

import numpy as np

from nnrun import __version__, config as config_lib, data, feeding, plots, rundir
from nnrun.backend import keras as _keras
from nnrun.errors import NnrunError, RunFailed
from nnrun.model import build, callbacks_from, check_fit, compile_model


@dataclass
class Setup:
    """Everything `train` needs before it trains; what `nnrun check` shows."""

    dataset: data.Dataset
    model: object  # keras.Model
    one_hot: bool  # integer labels are one-hot encoded for the loss


def setup(config):
    """Loads the data, seeds, builds and compiles the model, and checks they fit.

    Args:
        config: the validated `Config`.

    Returns:
        A `Setup`.
    """
    training = config.training
    dataset = data.load(config.data, training.validation_split, config.seed, training.batch_size, training.shuffle)
    keras = _keras()
    keras.utils.set_random_seed(config.seed)
    import tensorflow as tf

    # Same config and seed, same numbers: worth the small cost on CPU.
    tf.config.experimental.enable_op_determinism()
    model = build(
        config.model.layers, dataset.preprocessing["input_shape"], config.output.name, config.data.augmentation
    )
    loss_name = compile_model(model, config)
    one_hot = check_fit(model, loss_name, dataset, config.model.layers)
    from nnrun.callbacks import AtomicModelCheckpoint

    callbacks_from(config.training.callbacks, rundir.BEST_MODEL, AtomicModelCheckpoint)  # checks their arguments
    return Setup(dataset, model, one_hot)


def train(config, console, live=False, config_file=None):
    """Trains a model as the config says and writes a new run directory.

    Args:
        config: the validated `Config`.
        console: a rich console for progress (stderr).
        live: show a live progress bar (a terminal) rather than one line per epoch.
        config_file: the config's path, recorded in run.json.

    Returns:
        The run directory's `Path`.
    """
    from nnrun.callbacks import AtomicModelCheckpoint, EpochRecorder, StopOnNaN
    from nnrun.progress import ProgressReporter

    s = setup(config)
    ds, model, training = s.dataset, s.model, config.training
    splits = {"train": (ds.x_train, ds.y_train), "validation": (ds.x_val, ds.y_val), "test": (ds.x_test, ds.y_test)}
    splits = {
        name: feeding.one_hot(x, y, len(ds.class_names)) if s.one_hot else (x, y)
        for name, (x, y) in splits.items()
        if x is not None
    }
    for note in ds.notes + ([f"labels one-hot encoded for loss '{config.loss['name']}'"] if s.one_hot else []):
        console.print(note, style="dim", highlight=False, soft_wrap=True)

    run_dir = rundir.create(config.output.dir, config.output.name)
    started = time.time()
    rundir.write_text(run_dir / rundir.CONFIG, config_lib.dump(_with_absolute_path(config)))
    rundir.write_json(run_dir / rundir.PREPROCESSING, {**ds.preprocessing, "one_hot_labels": s.one_hot})
    rundir.write_json(run_dir / rundir.RUN, {**_run_info(config, ds, config_file, started), "notes": ds.notes})
    rundir.point_latest(run_dir)
    console.print(f"run directory: {run_dir}", style="dim", highlight=False)

    recorder, nan_guard = EpochRecorder(run_dir), StopOnNaN()
    steps = math.ceil(len(ds.y_train) / training.batch_size)
    reporter = ProgressReporter(console, training.epochs, steps, live)
    callbacks = [
        nan_guard,
        recorder,
        *callbacks_from(training.callbacks, run_dir / rundir.BEST_MODEL, AtomicModelCheckpoint),
        reporter,
    ]
    try:
        try:
            model.fit(
                **feeding.inputs(*splits["train"], training.batch_size),
                validation_data=feeding.validation_data(*splits["validation"]) if "validation" in splits else None,
                epochs=training.epochs,
                shuffle=training.shuffle,
                callbacks=callbacks,
                verbose=0,
            )
        finally:
            reporter.close()
        if nan_guard.diverged_at:
            loss, epoch, batch = nan_guard.diverged_at
            raise RunFailed(
                f"the loss became {loss} at epoch {epoch}, batch {batch}: training diverged; "
                "try a lower optimizer.learning_rate"
            )
        _save_model(model, run_dir, config.output.save_h5)
        inference = feeding.inference_batch_size(training.batch_size)
        metrics = _final_metrics(model, splits, recorder, inference)
        rundir.write_json(run_dir / rundir.METRICS, {k: _floats(v) for k, v in metrics.items()})
        _plot(model, ds, recorder.history, run_dir, config.output.name, inference)
    except KeyboardInterrupt:
        saved = recorder.weights is not None
        if saved:
            model.set_weights(recorder.weights)
            _save_model(model, run_dir, config.output.save_h5)
            plots.learning_curves(recorder.history, run_dir / rundir.PLOTS / "learning_curves.png", config.output.name)
        _finish(run_dir, started, "interrupted", error="interrupted by the user (Ctrl-C)")
        done = len(recorder.rows)
        console.print(
            f"interrupted after {done} epoch{'s' * (done != 1)}: "
            + (f"the model of epoch {done} is saved in {run_dir}" if saved else f"no epoch finished; see {run_dir}"),
            highlight=False,
        )
        raise
    except NnrunError as e:
        _finish(run_dir, started, "failed", error=str(e))
        raise
    except Exception as e:
        reason = _reason(e, streamed=feeding.is_stream(ds.x_train))
        _finish(run_dir, started, "failed", error=reason, traceback=traceback.format_exc())
        raise RunFailed(f"{reason} (details in {run_dir / rundir.RUN})") from e
    _finish(run_dir, started, "completed")
    return run_dir


def _reason(error, streamed):
    """Why a run failed, in one line a user can act on."""
    kind, first = type(error).__name__, " ".join(str(error).split())[:300]
    if kind == "ResourceExhaustedError":
        return "ran out of memory; try a smaller training.batch_size"
    if kind == "InvalidArgumentError" and streamed:
        return f"a file of the data could not be read during training (a corrupt image?): {first}"
    return f"{kind}: {first}"


def _final_metrics(model, splits, recorder, batch_size):
    """Final train/validation/test metrics of the saved model.

    Unless a callback restored other weights, the last epoch's logs already
    hold them: Keras's validation metrics are computed with the final
    weights, and the training metrics are Keras's own over the last epoch.
    Only the test split then needs another pass.
    """
    last = recorder.rows[-1] if recorder.rows else {}
    final = recorder.weights is not None and all(
        np.array_equal(a, b) for a, b in zip(model.get_weights(), recorder.weights)
    )
    logged = {
        "train": {k: v for k, v in last.items() if k not in ("epoch", "learning_rate") and not k.startswith("val_")},
        "validation": {k[len("val_"):]: v for k, v in last.items() if k.startswith("val_")},
    }
    return {
        name: logged[name] if final and name != "test" and logged[name] else
        model.evaluate(**feeding.inputs(*split, batch_size), verbose=0, return_dict=True)
        for name, split in splits.items()
    }


def _with_absolute_path(config):
    """The config with its data path absolute, so the run can be evaluated from anywhere."""
    if getattr(config.data, "path", None) is None:
        return config
    data = config.data.model_copy(update={"path": config.data.path.resolve()})
    return config.model_copy(update={"data": data})


def _save_model(model, run_dir, save_h5):
    with rundir.atomic(run_dir / rundir.MODEL) as tmp:
        model.save(tmp)
    if save_h5:
        with rundir.atomic(run_dir / rundir.MODEL_H5) as tmp:
            model.save(tmp)


def _plot(model, ds, history, run_dir, name, batch_size):
    plots.learning_curves(history, run_dir / rundir.PLOTS / "learning_curves.png", f"{name}: learning curves")
    if ds.is_classification:
        predicted = feeding.predicted_classes(model.predict(ds.x_test, batch_size=batch_size, verbose=0))
        plots.confusion_matrix(
            ds.y_test, predicted, ds.class_names, run_dir / rundir.PLOTS / "confusion_matrix.png",
            f"{name}: confusion matrix (test split)",
        )


def _run_info(config, ds, config_file, started):
    import keras
    import sklearn
    import tensorflow as tf

    return {
        "status": "running",
        "name": config.output.name,
        "started_at": _iso(started),
        "ended_at": None,
        "duration_s": None,
        "epochs": config.training.epochs,
        "epochs_completed": 0,
        "seed": config.seed,
        "data_fingerprint": ds.fingerprint,
        "config_file": None if config_file is None else str(config_file),
        "command": sys.argv,
        "versions": {
            "python": platform.python_version(),
            "nnrun": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
        },
    }


def _finish(run_dir, started, status, **fields):
    ended = time.time()
    rundir.update_run(run_dir, status=status, ended_at=_iso(ended), duration_s=round(ended - started, 3), **fields)


def _iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds")


def _floats(metrics):
    return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}
