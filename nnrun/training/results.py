"""What a trained run leaves: the model and metrics.json with the final metrics, then the plots."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnrun import atomic, plots
from nnrun.data import feeding
from nnrun.errors import RunFailed, WriteFailed, one_line
from nnrun.rundir import files as rundir
from nnrun.rundir import record
from nnrun.training import hdf5

if TYPE_CHECKING:  # Keras ships no types; to mypy its classes are Any
    import keras

    from nnrun.config.schema import Config
    from nnrun.data import Dataset
    from nnrun.training.callbacks import EpochRecorder


def save(
    model: keras.Model,
    dataset: Dataset,
    splits: dict[str, tuple[Any, Any]],
    recorder: EpochRecorder,
    run_dir: Path,
    config: Config,
    sharded: bool,
    check: Callable[[], None] = lambda: None,
    kept: Kept | None = None,
) -> None:
    """Saves what makes a run completed: the trained model and, last, its final metrics (metrics.json).

    A run whose metrics.json is written is complete: `check` is called between the steps
    before it (a stop signal stops the run there), never after. Its plots are drawn once
    it is recorded completed (`draw`).

    Args:
        model: the trained model (on one device).
        dataset: the run's `data.Dataset`.
        splits: `(x, y)` of each split the model saw, labels as the loss takes them.
        recorder: the run's `EpochRecorder`.
        run_dir: the run directory.
        config: the validated `Config`.
        sharded: whether batches were split over devices (the validation split then gets another pass).
        check: raises if the run must stop (`signals.Stop.check`).
        kept: the epoch whose weights EarlyStopping gave the model back (`kept`), recorded in run.json.
    """
    save_model(model, run_dir, config.output.save_h5)
    check()
    batch_size = feeding.inference_batch_size(config.training.batch_size)
    fresh = ("validation", "test") if sharded else ("test",)
    metrics = final_metrics(model, splits, recorder, batch_size, dataset.class_names, fresh)
    check()
    if kept:  # past the last check: a stopped run keeps the last epoch's model, not this one
        record.update_info(run_dir, restored_epoch=kept.epoch)
    atomic.write_json(run_dir / rundir.METRICS, {k: _floats(v) for k, v in metrics.items()})


def draw(model: keras.Model, dataset: Dataset, recorder: EpochRecorder, run_dir: Path, config: Config) -> None:
    """Draws a completed run's plots: its learning curves, and a classification's confusion matrix.

    They are drawn once the run has completed, its backup removed: a plot that cannot be
    written (a full disk) fails the command, not the run, whose model and metrics are saved.

    Args:
        model: the trained model (on one device).
        dataset: the run's `data.Dataset`.
        recorder: the run's `EpochRecorder`.
        run_dir: the run directory.
        config: the validated `Config`.
    """
    try:
        learning_curves(recorder.history, run_dir, f"{config.output.name}: learning curves")
        if dataset.is_classification:
            batch_size = feeding.inference_batch_size(config.training.batch_size)
            title = f"{config.output.name}: confusion matrix (test split)"
            _confusion_matrix(model, dataset, batch_size, run_dir, title)
    except WriteFailed as e:
        raise e.advised("the run completed: its model and metrics are saved, not all of its plots", run_dir) from e
    except Exception as e:  # out of memory predicting the test split, matplotlib: the run itself is done
        raise RunFailed(
            f"its plots could not be drawn ({type(e).__name__}: {one_line(e)}); "
            "the run completed: its model and metrics are saved",
            run_dir,
        ) from e


def save_model(model: keras.Model, run_dir: Path, save_h5: bool) -> None:
    """Saves the model as model.keras (and model.h5 when asked), each written atomically.

    Args:
        model: the model.
        run_dir: the run directory.
        save_h5: also save the legacy .h5 file.
    """
    with atomic.atomic(run_dir / rundir.MODEL) as tmp:
        model.save(tmp)
    if save_h5:
        with atomic.atomic(run_dir / rundir.MODEL_H5) as tmp:
            hdf5.save_model(model, tmp)  # never HDF5 on the disk: a full one crashes it


def learning_curves(history: dict[str, list[float]], run_dir: Path, title: str) -> None:
    """Plots the epochs so far into plots/learning_curves.png, marking where fine-tuning began
    and the epoch whose weights EarlyStopping kept.

    Args:
        history: the epochs as Keras's `History.history`.
        run_dir: the run directory.
        title: the plot's title.
    """
    info = record.read_info(run_dir)
    path = run_dir / rundir.PLOTS / "learning_curves.png"
    plots.learning_curves(history, path, title, info.fine_tune_after_epoch, kept=info.restored_epoch)


@dataclass(frozen=True)
class Kept:
    """The epoch whose weights an EarlyStopping (`restore_best_weights`) gave the model back as training ended."""

    epoch: int  # from 1, counting every epoch of the run: a resumed run's before the resume too
    epochs: int  # the epochs trained
    monitor: str
    value: float | None  # the monitored value at that epoch, as history.csv has it
    best: float | None  # the best value EarlyStopping knew of (one from before a resume, if no epoch since beat it)

    def __str__(self) -> str:
        said = f"EarlyStopping kept the weights of epoch {self.epoch} of {self.epochs}"
        said += f" ({self.monitor} {_number(self.value)}): model.keras and the final metrics are that epoch's"
        if self.best is not None and self.value is not None and not math.isclose(self.best, self.value):
            said += (
                f"; its best {self.monitor}, {_number(self.best)}, came before the resume, "
                "and a backup keeps only the last epoch's weights"
            )
        return said


def kept(callbacks: Sequence[keras.callbacks.Callback], rows: Sequence[Mapping[str, float]]) -> Kept | None:
    """The epoch whose weights the model holds when an EarlyStopping restored them at the end of training.

    Keras's EarlyStopping with `restore_best_weights` sets its `best_weights` and `best_epoch` together
    and gives the model those weights in `on_train_end`; each `fit` starts them afresh. `fit` numbers
    epochs from its `initial_epoch`, so `best_epoch` counts the epochs before a resume. A resumed
    EarlyStopping has no weights from before it: it takes those of its first epoch, whatever their value.

    Args:
        callbacks: the callbacks of the last `fit`.
        rows: history.csv's rows, every epoch of the run.

    Returns:
        A `Kept`, or None when no EarlyStopping restored weights, or restored the last epoch's.
    """
    restoring = [c for c in callbacks if getattr(c, "restore_best_weights", False) and c.best_weights is not None]
    if not restoring:
        return None
    stopping = restoring[-1]  # the last to end: its weights are the ones set last
    epoch = stopping.best_epoch + 1
    if epoch >= len(rows):
        return None
    value, best = rows[epoch - 1].get(stopping.monitor), stopping.best
    return Kept(epoch, len(rows), stopping.monitor, value, None if best is None else float(best))


def final_metrics(
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

    Args:
        model: the trained model.
        splits: `(x, y)` of each split.
        recorder: the run's `EpochRecorder`.
        batch_size: the batch size to evaluate with.
        class_names: the classes, naming a per-class metric's values.
        fresh: the splits evaluated again in any case.

    Returns:
        Each split's metrics: `{"train": {"loss": ...}, ...}`.
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


def _confusion_matrix(model, dataset, batch_size, run_dir, title):
    predicted = feeding.split_classes(model, dataset.x_test, batch_size, len(dataset.class_names))
    plots.confusion_matrix(
        dataset.y_test, predicted, dataset.class_names, run_dir / rundir.PLOTS / "confusion_matrix.png", title
    )


def _number(value: float | None) -> str:
    return "?" if value is None else f"{value:.4g}"


def _floats(metrics: dict[str, Any]) -> dict[str, float | None]:
    return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}
