"""Before a run trains: the data loaded, the seed set, the model built and compiled, and all of it checked.

Nothing is written before these have all been checked; `nnrun check` shows the same `Setup`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nnrun import data
from nnrun.backend import keras as _keras
from nnrun.data import feeding
from nnrun.model import mistakes
from nnrun.model.build import build, callbacks_from, check_fit, compile_model
from nnrun.rundir import files as rundir
from nnrun.training import distribution
from nnrun.training import stages as fine_tune

if TYPE_CHECKING:  # Keras ships no types; to mypy its classes are Any
    import keras

    from nnrun.config.schema import Config


@dataclass
class Setup:
    """Everything `train` needs before it trains; what `nnrun check` shows."""

    dataset: data.Dataset
    model: keras.Model
    one_hot: bool  # integer labels are one-hot encoded for the loss
    class_weight: dict[int, float] | None  # class index -> weight in the loss
    engine: distribution.Engine  # the devices and processes it trains on
    stages: fine_tune.Stages  # training, then fine-tuning when the config asks
    warnings: list[str]  # what the config may not mean (`nnrun.model.mistakes`), a line each


def setup(config: Config, join: bool = True) -> Setup:
    """Loads the data, seeds, builds and compiles the model, and checks they fit.

    Args:
        config: the validated `Config`.
        join: join the other processes of a multi-process run (`check` does not).

    Returns:
        A `Setup`.
    """
    training = config.training
    warnings = mistakes.in_config(config)  # before the data is read: the config alone shows them
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
    warnings += mistakes.with_data(config, loss_name, dataset)
    from nnrun.training.callbacks import AtomicModelCheckpoint

    callbacks_from(config.training.callbacks, rundir.BEST_MODEL, AtomicModelCheckpoint)  # checks their arguments
    weights = feeding.class_weight(config.training.class_weight, dataset.class_names, dataset.y_train)
    from nnrun.inference import export

    export.check_available(config.output.export, "output.export:")  # before training, not after
    from nnrun.training import tracking

    tracking.check_available(config.tracking)
    return Setup(dataset, model, one_hot, weights, engine, stages, warnings)


def check_model(config: Config, dataset: data.Dataset) -> list[str]:
    """Builds and compiles the config's model for data already loaded, and checks they fit
    (a sweep's other points, on the data of its first).

    Args:
        config: the validated `Config`.
        dataset: the `data.Dataset` it trains on.

    Returns:
        Warnings, as `Setup.warnings`.
    """
    warnings = mistakes.in_config(config)
    model, loss_name = _built(config, dataset)
    check_fit(model, loss_name, dataset, config.model.layers)
    return warnings + mistakes.with_data(config, loss_name, dataset)


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


def _target_units(dataset, data):
    """(mean, std) of a regression's single target in the training split, when the config scales it."""
    if dataset.is_classification or not data.scale_target:  # before a float64 copy of what may be a long table's
        return None
    y = np.asarray(dataset.y_train, dtype="float64")
    if y.ndim > 1 and y.shape[1] != 1:
        return None
    std = float(y.std())
    return float(y.mean()), std if std > 0 else 1.0
