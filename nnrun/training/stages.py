"""Fine-tuning, the second stage of transfer learning (Keras's transfer-learning guide).

The config freezes a pretrained network (`trainable: false`) and trains the
new layers on top for `training.epochs`; with `training.fine_tune`, the frozen
layers are then unfrozen (all of them, or the last N of each) and training goes
on for `fine_tune.epochs` more at a low learning rate, with a fresh optimizer.
BatchNormalization layers stay frozen: a frozen one runs in inference mode in
Keras 3, so the statistics learned on millions of images are kept.

The epoch at which fine-tuning began is recorded in run.json, so a resumed
run restores each backup into the model as it was when the backup was made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun.backend import keras as _keras
from nnrun.errors import ConfigError
from nnrun.model.backbones import PREPROCESSING
from nnrun.model.build import compile_model, optimizer_from
from nnrun.rundir import record, runinfo

if TYPE_CHECKING:
    import keras

    from nnrun.config.schema import Config
    from nnrun.reporter import Reporter
    from nnrun.training.callbacks import EpochRecorder

AFTER_EPOCH = "fine_tune_after_epoch"  # run.json: the epochs done when fine-tuning began


class Stages:
    """Training, then fine-tuning when the config asks: what each stage trains and until when.

    Args:
        model: the built, compiled model, its frozen layers as the config made them.
        config: the validated `Config`.
        scope: the engine's `scope`, in which a model is compiled.
    """

    def __init__(
        self, model: keras.Model, config: Config, scope: Callable[[], contextlib.AbstractContextManager[Any]]
    ) -> None:
        self.model, self.config, self.spec, self.scope = model, config, config.training.fine_tune, scope
        self.frozen = [
            layer for layer in model.layers if not layer.trainable and not layer.name.endswith(PREPROCESSING)
        ]
        if self.spec and not self.frozen:
            raise ConfigError(
                "training.fine_tune: no layer has trainable: false, so there is nothing to unfreeze; "
                "freeze the pretrained network (e.g. MobileNetV2: {..., trainable: false})"
            )
        self.after: int | None = None  # the epochs done when fine-tuning began (a resumed run's, from run.json)
        self.tuning = False  # whether the model is unfrozen now

    @property
    def epochs(self) -> int:
        """The epochs planned in all: training's, and fine-tuning's after them."""
        return runinfo.planned_epochs(self.config, self.after)

    def resume(self, run_dir: Path) -> None:
        """Reads when a resumed run's fine-tuning began, from its run.json."""
        self.after = record.read_info(run_dir).fine_tune_after_epoch

    def stage(self) -> dict[str, bool]:
        """What a backup records of the stage it is made in."""
        return {"fine_tuning": self.tuning}

    def arrange(self, metadata: Mapping[str, Any]) -> None:
        """Puts the model in the stage a backup (its metadata) was made in."""
        tuning = bool(metadata.get("fine_tuning"))
        if tuning and self.spec is None:  # a backup from elsewhere: the config never fine-tunes
            raise ValueError("the backup was made while fine-tuning, but the config has no training.fine_tune")
        if tuning != self.tuning:
            self._unfreeze() if tuning else self._freeze()

    def ends(
        self,
        recorder: EpochRecorder,
        callbacks: Sequence[keras.callbacks.Callback],
        run_dir: Path,
        report: Reporter,
    ) -> Iterator[int]:
        """The epoch each stage with epochs still to run trains until; fine-tuning begins when it is asked for.

        Args:
            recorder: the run's `EpochRecorder`: its rows are the epochs done so far.
            callbacks: the run's; once one's `halt` is true (diverged, a stop signal, a sweep's pruning),
                fine-tuning never begins.
            run_dir: the run directory, where the start of fine-tuning is recorded.
            report: where to say that fine-tuning begins.

        Yields:
            The `epochs` to give `fit` for each stage.
        """
        first = self.after if self.after is not None else self.config.training.epochs
        if len(recorder.rows) < first:
            yield first
        if not self.spec or any(getattr(c, "halt", False) for c in callbacks):
            return
        if self.after is None:
            self.after = len(recorder.rows)
            record.update_info(run_dir, fine_tune_after_epoch=self.after, epochs=self.epochs)
        if not self.tuning:
            self._unfreeze()
        report.note(str(self.describe()))
        if len(recorder.rows) < self.epochs:
            yield self.epochs

    def describe(self) -> str | None:
        """What fine-tuning does, in a line ('fine-tuning from epoch 11: ...'); None without it."""
        if not self.spec:
            return None
        start = self.after if self.after is not None else self.config.training.epochs
        what = (
            "all frozen layers"
            if self.spec.unfreeze == "all"
            else f"the last {self.spec.unfreeze} layers of each frozen one"
        )
        return (
            f"fine-tuning from epoch {start + 1}: {what} unfrozen (BatchNormalization stays frozen), "
            f"learning rate {self._learning_rate():.3g}"
        )

    def _learning_rate(self):
        assert self.spec is not None  # called only when the config fine-tunes
        if self.spec.learning_rate is not None:
            return self.spec.learning_rate
        return float(_keras().ops.convert_to_numpy(optimizer_from(self.config.optimizer).learning_rate)) / 100

    def _unfreeze(self):
        assert self.spec is not None  # called only when the config fine-tunes
        keras = _keras()
        for layer in self.frozen:
            layer.trainable = True
            inner = _sublayers(layer)
            if self.spec.unfreeze != "all":
                for sub in inner[: max(len(inner) - self.spec.unfreeze, 0)]:
                    sub.trainable = False
            for sub in inner:
                if isinstance(sub, keras.layers.BatchNormalization):
                    sub.trainable = False
        optimizer = {**self.config.optimizer, "learning_rate": self._learning_rate()}
        with self.scope():
            compile_model(self.model, self.config.model_copy(update={"optimizer": optimizer}))
        self.tuning = True

    def _freeze(self):
        for layer in self.frozen:
            layer.trainable = False
        with self.scope():
            compile_model(self.model, self.config)
        self.tuning = False


def _sublayers(layer):
    """A nested network's layers, in order (its own `layers`), or none for a plain layer."""
    return list(getattr(layer, "layers", []))
