"""Config -> Keras objects: the layer stack, optimizer, loss, metrics, callbacks; compiled, checked against the data.

Every name is Keras's own, looked up through `nnrun.model.names` (the nearest
name suggested on a miss, every argument checked against the Keras class's
signature before anything is built). Only plain values reach Keras: no config
value can name a Python object to import.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nnrun.backend import keras as _keras
from nnrun.errors import ConfigError, did_you_mean, quoted
from nnrun.model import backbones, names

if TYPE_CHECKING:  # Keras ships no types; to mypy its classes are Any
    import keras

    from nnrun.config.schema import Config
    from nnrun.data import Dataset

# Layers a config may not name: they run Python, load outside files, or take
# the input shape, which nnrun infers from the data.
FORBIDDEN_LAYERS = {"Lambda", "TFSMLayer", "InputLayer", "Layer", "Input"}
# Losses that need one-hot targets; nnrun encodes integer labels for them.
ONE_HOT_LOSSES = {"categorical_crossentropy", "categorical_focal_crossentropy", "categorical_hinge", "kl_divergence"}
BINARY_LOSSES = {"binary_crossentropy", "binary_focal_crossentropy", "hinge", "squared_hinge"}
CLASSIFICATION_LOSSES = ONE_HOT_LOSSES | BINARY_LOSSES | {"sparse_categorical_crossentropy"}
REGRESSION_LOSSES = {
    "mean_squared_error",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error",
    "huber",
    "log_cosh",
}
# Keras metrics that compare labels with outputs element by element: one-hot labels only.
ONE_HOT_METRICS = {
    "FBetaScore",
    "F1Score",
    "Precision",
    "Recall",
    "AUC",
    "PrecisionAtRecall",
    "RecallAtPrecision",
    "SensitivityAtSpecificity",
    "SpecificityAtSensitivity",
    "TruePositives",
    "TrueNegatives",
    "FalsePositives",
    "FalseNegatives",
    "CategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "OneHotIoU",
    "OneHotMeanIoU",
}


def build(
    layers: Sequence[Mapping[str, Any]],
    input_shape: Sequence[int],
    name: str = "model",
    augmentation: Sequence[Mapping[str, Any]] = (),
    target_units: tuple[float, float] | None = None,
    rescale: float | None = None,
) -> keras.Sequential:
    """Builds a `keras.Sequential` from the config's layer list.

    Args:
        layers: `config.model.layers`: `{Name: args}` mappings.
        input_shape: shape of one sample, inferred from the data.
        name: the model's name.
        augmentation: `config.data.augmentation`: Keras Random* layers, put
            first; Keras runs them in training only.
        target_units: `(mean, std)` of a regression's targets, or None: a
            Rescaling layer last turns outputs of about 0 +- 1 into the
            target's units, so a network that starts near 0 starts near the mean.
        rescale: the data's `rescale`, which a pretrained network's own
            preprocessing undoes.

    Returns:
        The built (uncompiled) model.
    """
    keras = _keras()
    model = keras.Sequential(name=names.keras_name(name))
    model.add(keras.Input(shape=tuple(input_shape)))
    specs = [(spec, f"data.augmentation[{i}]") for i, spec in enumerate(augmentation)]
    specs += [(spec, f"model.layers[{i}]") for i, spec in enumerate(layers)]
    for spec, place in specs:
        layer_name, args = next(iter(spec.items()))
        if layer_name in backbones.names():
            for layer in backbones.build(
                layer_name, args, _shape_so_far(model, input_shape), f"{place} ({layer_name})", rescale
            ):
                model.add(layer)
            continue
        cls = _layer_class(layer_name, place)
        place = f"{place} ({cls.__name__})"
        own = inspect.signature(cls.__init__).parameters
        for key in ("input_shape", "input_dim"):
            # Embedding's input_dim is its vocabulary size, not a shape.
            if isinstance(args, dict) and key in args and key not in own:
                raise ConfigError(f"{place}: remove '{key}': the input shape is inferred from the data")
        layer = names.instantiate(cls, args, place)
        try:
            model.add(layer)
        except Exception as e:  # a layer built from config values fails only because of them
            raise ConfigError(f"{place}: {names.first_line(e)}") from None
    if target_units is not None:
        mean, std = target_units
        model.add(keras.layers.Rescaling(scale=std, offset=mean, name="target_units"))
    return model


def _shape_so_far(model: keras.Model, input_shape: Sequence[int]) -> tuple[int, ...]:
    """One sample's shape after the layers added so far."""
    return tuple(model.output_shape[1:]) if model.layers else tuple(input_shape)


def compile_model(model: keras.Model, config: Config) -> str:
    """Compiles the model with the config's optimizer, loss and metrics.

    Args:
        model: the built model.
        config: the whole `Config`.

    Returns:
        The canonical snake_case name of the loss (e.g. 'categorical_crossentropy').
    """
    optimizer = optimizer_from(config.optimizer)
    loss, loss_name = loss_from(config.loss)
    metrics = [metric_from(m, f"metrics[{i}]") for i, m in enumerate(config.metrics)]
    loss, loss_name, metrics = _labels_for_metrics(model, loss, loss_name, metrics)
    # Under a tf.distribute strategy, Keras 3 fails with more than one step per
    # execution (keras-team/keras#19246, open).
    strategy = "tensorflow" in sys.modules and sys.modules["tensorflow"].distribute.has_strategy()
    steps = 1 if strategy else config.training.steps_per_execution
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, steps_per_execution=steps)
    return loss_name


def _labels_for_metrics(model, loss, loss_name, metrics):
    """Fits the loss and metrics to labels every metric takes; returns `(loss, loss_name, metrics)`.

    Keras's class metrics (F1Score, Precision, AUC, ...) take one-hot labels,
    not class indices: with sparse_categorical_crossentropy they fail, so the
    loss becomes categorical_crossentropy on one-hot labels (the same numbers).
    On one sigmoid unit, F1Score without a threshold would take the arg-max of
    one column (always 0): it gets 0.5, as Precision and Recall have.
    """
    keras = _keras()
    metrics = [_instance(m) for m in metrics]  # 'precision' -> Precision(), to see what it takes
    one_hot_only = [m for m in metrics if type(m).__name__ in ONE_HOT_METRICS]
    if model.output_shape[-1] == 1:
        for m in one_hot_only:
            if isinstance(m, keras.metrics.FBetaScore) and m.threshold is None:
                m.threshold = 0.5
    elif one_hot_only and loss_name == "sparse_categorical_crossentropy":
        loss = keras.losses.CategoricalCrossentropy(from_logits=loss.get_config().get("from_logits", False))
        loss_name = "categorical_crossentropy"
    return loss, loss_name, metrics


def _instance(metric):
    """A metric named by a string that Keras resolves to a class (`precision`), as that class named so."""
    keras = _keras()
    if isinstance(metric, str) and metric.lower() not in ("accuracy", "acc"):  # accuracy adapts to the loss
        found = keras.metrics.get(metric)
        if isinstance(found, keras.metrics.Metric):
            return type(found).from_config({**found.get_config(), "name": metric})
    return metric


def optimizer_from(spec: Mapping[str, Any]) -> keras.optimizers.Optimizer:
    """Returns the Keras optimizer a `{name: ..., **args}` spec names."""
    keras = _keras()
    classes = names.classes_in(
        keras.optimizers, keras.optimizers.Optimizer, exclude={"Optimizer", "LossScaleOptimizer", "MultiOptimizer"}
    )
    cls = names.lookup(spec["name"], classes, "optimizer", "optimizer")
    return names.instantiate(cls, _args(spec), f"optimizer ({cls.__name__})")


def loss_from(spec: Mapping[str, Any]) -> tuple[keras.losses.Loss, str]:
    """Returns the Keras loss a spec names, and its canonical snake_case name."""
    keras = _keras()
    classes = names.classes_in(keras.losses, keras.losses.Loss, exclude={"Loss"})
    cls = names.lookup(spec["name"], classes, "loss", "loss", aliases=names.aliases_of(keras.losses, classes))
    return names.instantiate(cls, _args(spec), f"loss ({cls.__name__})"), names.snake_case(cls.__name__)


def metric_from(spec: Mapping[str, Any], place: str) -> str | keras.metrics.Metric:
    """Returns what `compile` takes for a metric spec: its name, or an instance with its arguments."""
    keras = _keras()
    name, args = spec["name"], _args(spec)
    classes = names.classes_in(keras.metrics, keras.metrics.Metric, exclude={"Metric"})
    if not args and name not in classes:
        # Plain function names go to Keras as they are, so 'accuracy' picks the
        # right accuracy for the loss and labels, as in any Keras script.
        try:
            keras.metrics.get(name) if name.lower() not in ("accuracy", "acc") else None
        except (ValueError, TypeError):
            raise ConfigError(f"{place}: unknown metric {quoted(name)}{_nearest_metric(name, classes)}") from None
        return name
    cls = names.lookup(name, classes, place, "metric", aliases=names.aliases_of(keras.metrics, classes))
    return names.instantiate(cls, _plainly_named(cls, args), f"{place} ({cls.__name__})")


def _nearest_metric(name, classes):
    """'; did you mean ...?' for a metric, also where the name is the start of one (f1 -> F1Score)."""
    keras = _keras()
    close = did_you_mean(name, names.public_names(keras.metrics))
    starts = [c for c in classes if len(name) > 1 and c.lower().startswith(name.lower().replace("_", ""))]
    return close or (f"; did you mean '{starts[0]}'?" if len(starts) == 1 else "")


def _plainly_named(cls, args):
    """Keras numbers a second metric of a class in one process (precision_1); its logs keep the plain name."""
    name = names.parameters(cls).get("name")
    if isinstance(args, dict) and "name" not in args and name is not None and name.default is None:
        return {**args, "name": names.snake_case(cls.__name__)}
    return args


def callbacks_from(
    specs: Sequence[Mapping[str, Any]],
    best_model_path: str | os.PathLike[str],
    checkpoint_class: type[keras.callbacks.ModelCheckpoint],
) -> list[keras.callbacks.Callback]:
    """Returns the Keras callbacks the config's `training.callbacks` name.

    Args:
        specs: `{Name: args}` mappings; the schema allows only a few names.
        best_model_path: where `ModelCheckpoint` saves: the run directory.
        checkpoint_class: the `ModelCheckpoint` subclass to use (nnrun's
            atomic one).

    Returns:
        A list of callback instances.
    """
    keras = _keras()
    made = []
    for i, spec in enumerate(specs):
        name, args = next(iter(spec.items()))
        place = f"training.callbacks[{i}] ({name})"
        if not isinstance(args, dict):
            raise ConfigError(f"{place}: expected a mapping of arguments; got {args!r}")
        if name == "ModelCheckpoint":
            if "filepath" in args:
                raise ConfigError(f"{place}: remove 'filepath': the best model is saved in the run directory")
            args = {"filepath": str(best_model_path), "save_best_only": True, **args}
            made.append(names.instantiate(checkpoint_class, args, place))
        else:
            made.append(names.instantiate(getattr(keras.callbacks, name), args, place))
    return made


def check_fit(model: keras.Model, loss_name: str, dataset: Dataset, layers: Sequence[Mapping[str, Any]]) -> bool:
    """Checks that the output layer and loss fit the data, before any training.

    Args:
        model: the built model.
        loss_name: the loss's canonical name.
        dataset: the `Dataset`.
        layers: `config.model.layers`, to name the output layer in messages.

    Returns:
        Whether integer labels must be one-hot encoded for the loss.
    """
    units = model.output_shape[-1] if len(model.output_shape) > 1 else 1
    last = f"model.layers[{len(layers) - 1}] ({next(iter(layers[-1]))})"
    if len(model.output_shape) > 2 and (dataset.is_classification or dataset.y_train.ndim < 3):
        raise ConfigError(
            f"{last}: the model outputs shape {tuple(model.output_shape[1:])} per sample, "
            "not one vector; add Flatten (or a pooling layer) before it"
        )
    if not dataset.is_classification:
        if loss_name in CLASSIFICATION_LOSSES:
            raise ConfigError(
                f"loss: '{loss_name}' is for classes, but the targets are continuous numbers; "
                "use e.g. mean_squared_error"
            )
        width = dataset.y_train.shape[1] if dataset.y_train.ndim > 1 else 1
        if units != width:
            raise ConfigError(f"{last}: the model outputs {units} values per sample but the targets have {width}")
        return False
    assert dataset.class_names is not None  # is_classification
    n = len(dataset.class_names)
    numbers = all(re.fullmatch(r"-?\d+", name) for name in dataset.class_names)
    if loss_name in REGRESSION_LOSSES:
        read_as = (
            f"{n} classes (whole numbers: {', '.join(dataset.class_names[:3])}, ...)" if numbers else f"{n} classes"
        )
        raise ConfigError(
            f"loss: '{loss_name}' is for continuous targets, but they read as {read_as}; "
            + (
                "set data.task: regression"
                if numbers
                else "use a classification loss such as sparse_categorical_crossentropy"
            )
        )
    if loss_name in BINARY_LOSSES:
        if n != 2:
            raise ConfigError(
                f"loss: '{loss_name}' needs 2 classes, the data has {n}; use sparse_categorical_crossentropy "
                f"with {n} output units"
            )
        if units != 1:
            raise ConfigError(f"{last}: '{loss_name}' needs 1 output unit (a sigmoid); the model has {units}")
        return False
    if units != n:
        quantities = "; or, if they are quantities, data.task: regression" if numbers and n > 20 else ""
        raise ConfigError(
            f"{last}: the output has {units} unit{'s' * (units != 1)} but the data has {n} classes "
            f"({', '.join(dataset.class_names[:5])}{', ...' if n > 5 else ''}); set units: {n}{quantities}"
        )
    return loss_name in ONE_HOT_LOSSES


def _layer_class(name, place):
    keras = _keras()
    classes = names.classes_in(keras.layers, keras.layers.Layer, exclude=FORBIDDEN_LAYERS)
    if name in FORBIDDEN_LAYERS:
        raise ConfigError(f"{place}: the layer '{name}' cannot be used in a config")
    return names.lookup(name, classes, place, "layer", exact=True, suggest=backbones.names())


def _args(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "name"}
