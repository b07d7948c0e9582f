"""The classic Keras mistakes that build and train without an error but to nonsense, refused before training.

Each is one line that says what to write instead: a softmax over one unit
(always 1.0) with binary_crossentropy, an output that is no probability for a
crossentropy without `from_logits`, an output activation that cannot reach a
regression's targets, accuracy on a regression, a learning rate of 0 or less,
a frozen network with random weights. Where a config can mean it, or it trains
but evaluate and predict would misread its outputs (raw scores, a sigmoid per
class under a categorical crossentropy), a warning says what to change
instead. The rules read the config and the data, never Keras: they hold
whatever backend builds the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nnrun.errors import ConfigError

if TYPE_CHECKING:
    from nnrun.config.schema import Config
    from nnrun.data import Dataset

BINARY_CROSSENTROPY = {"binary_crossentropy", "binary_focal_crossentropy"}
CROSSENTROPY = BINARY_CROSSENTROPY | {
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "sparse_categorical_crossentropy",
}
# Outputs a crossentropy reads as probabilities: one per unit, or a distribution over the units.
SIGMOIDS = {"sigmoid", "hard_sigmoid", "sparse_sigmoid"}
SOFTMAXES = {"softmax", "sparsemax"}
# The values an output activation can take, lowest and highest.
RANGES = {
    **dict.fromkeys(SIGMOIDS | SOFTMAXES, (0.0, 1.0)),
    **dict.fromkeys(("tanh", "softsign", "hard_tanh"), (-1.0, 1.0)),
    **dict.fromkeys(("relu", "softplus", "exponential"), (0.0, math.inf)),
    "relu6": (0.0, 6.0),
    "elu": (-1.0, math.inf),
    "selu": (-1.7581, math.inf),
}
# Other Keras activations, whose outputs are no probabilities either.
NOT_PROBABILITIES = set(RANGES) - SIGMOIDS - SOFTMAXES | {
    "linear",
    "leaky_relu",
    "log_softmax",
    "log_sigmoid",
    "gelu",
    "silu",
    "swish",
    "hard_silu",
    "hard_swish",
    "mish",
    "celu",
    "glu",
    "squareplus",
    "sparse_plus",
}
# Layers that pass their input's values on (at prediction): the output's activation is before them.
PASS_THROUGH = {
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Flatten",
    "Reshape",
    "Identity",
}
ACTIVATION_LAYERS = {"Softmax": "softmax", "ReLU": "relu", "ELU": "elu"}
LINEAR_BY_DEFAULT = {"Dense", "EinsumDense"}  # without `activation`, their output is linear
# Metrics that count classes: on continuous targets they count nothing meaningful
# ('accuracy' becomes BinaryAccuracy on one output: output > 0.5 == target). Compared lower-case, without '_'.
CLASS_METRICS = {
    "accuracy",
    "acc",
    "binaryaccuracy",
    "categoricalaccuracy",
    "sparsecategoricalaccuracy",
    "topkcategoricalaccuracy",
    "sparsetopkcategoricalaccuracy",
    "precision",
    "recall",
    "auc",
    "f1score",
    "fbetascore",
    "precisionatrecall",
    "recallatprecision",
    "sensitivityatspecificity",
    "specificityatsensitivity",
    "truepositives",
    "truenegatives",
    "falsepositives",
    "falsenegatives",
}
REGRESSION_METRICS = "mae, mse or root_mean_squared_error"


def in_config(config: Config) -> list[str]:
    """The mistakes the config alone shows, before the data is read or anything is built.

    Args:
        config: the validated `Config`.

    Returns:
        Warnings, one line each (without `warning: `), for what a config can mean.

    Raises:
        ConfigError: a learning rate of 0 or less, or a frozen network with random weights
            that nothing would ever train.
    """
    _learning_rate(config.optimizer)
    return [warning for i, spec in enumerate(config.model.layers) if (warning := _frozen_random(i, spec, config))]


def with_data(config: Config, loss_name: str, dataset: Dataset) -> list[str]:
    """The mistakes the config makes for its data: the output layer, loss and metrics against the task.

    Runs once the model is built and fits the data (`check_fit`): the output has
    the units the task needs.

    Args:
        config: the validated `Config`.
        loss_name: the loss's canonical snake_case name, as compiled.
        dataset: the loaded `Dataset` (its task, classes and training targets).

    Returns:
        Warnings, one line each: an output of raw scores (`from_logits: true`), which nnrun's
        evaluate and predict read as probabilities.

    Raises:
        ConfigError: the first mistake found, in one line saying what to write instead.
    """
    output = output_activation(config.model.layers)
    if dataset.is_classification:
        _exact_accuracy(config.metrics)
        if output is None:
            return []
        warning = _probabilities(output, loss_name, bool(config.loss.get("from_logits", False)))
        return [warning] if warning else []
    _regression_metrics(config.metrics)
    if output is not None:
        _reachable(output, dataset.y_train, config.data.scale_target)
    return []


def output_activation(layers: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """The activation of a config's output layer, as far as the config says it.

    Args:
        layers: `config.model.layers`: `{Name: args}` mappings.

    Returns:
        `(place, activation)`: where the layer is (`model.layers[2] (Dense)`) and
        its activation's lower-case Keras name (`linear` where it has none); or
        None where the config does not tell (a layer of another kind last, an
        activation given as an object).
    """
    for i in range(len(layers) - 1, -1, -1):
        name, args = next(iter(layers[i].items()))
        place = f"model.layers[{i}] ({name})"
        if name in PASS_THROUGH:
            continue
        if name in ACTIVATION_LAYERS:
            return place, ACTIVATION_LAYERS[name]
        if name == "Activation":
            activation = args.get("activation") if isinstance(args, dict) else args
        elif isinstance(args, dict) and "activation" in args:
            activation = args["activation"]
        elif name in LINEAR_BY_DEFAULT:
            activation = None
        else:
            return None
        if activation is None:
            return place, "linear"
        return (place, activation.lower()) if isinstance(activation, str) else None
    return None


def _learning_rate(optimizer):
    rate = optimizer.get("learning_rate")
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and not rate > 0:
        raise ConfigError(
            f"optimizer ({optimizer['name']}): argument 'learning_rate' must be more than 0, e.g. 0.001; got {rate!r}"
        )


def _frozen_random(i, spec, config):
    """A frozen pretrained network whose weights are random (`weights: null`): refused, or a warning
    where fine-tuning will train it later."""
    name, args = next(iter(spec.items()))
    frozen = isinstance(args, dict) and args.get("trainable") is False
    if not (frozen and "weights" in args and args["weights"] is None):
        return None
    place = f"model.layers[{i}] ({name})"
    instead = "set weights: imagenet (or a .weights.h5 file), or remove trainable: false to train it from the start"
    if config.training.fine_tune is None:
        raise ConfigError(
            f"{place}: trainable: false with weights: null freezes random weights, from which nothing is learned "
            f"(the loss stays where it starts); {instead}"
        )
    return (
        f"{place}: trainable: false with weights: null: training.epochs train the layers after it on random "
        f"features, and only fine-tuning trains it; {instead}"
    )


def _probabilities(output, loss_name, from_logits):
    """A crossentropy takes probabilities, or with `from_logits` raw scores: the output layer must give them.

    nnrun's evaluate and predict read a classifier's outputs as probabilities (one
    unit's class at 0.5), so raw scores are a warning even where the loss takes them.
    """
    place, activation = output
    probabilities = SIGMOIDS | SOFTMAXES
    if loss_name not in CROSSENTROPY or activation not in probabilities | NOT_PROBABILITIES:
        return None  # an activation nnrun does not know: Keras has checked it
    wanted = "sigmoid" if loss_name in BINARY_CROSSENTROPY else "softmax"
    what = "no activation (a linear output)" if activation == "linear" else f"activation '{activation}'"
    if from_logits:
        if activation in probabilities:
            raise ConfigError(
                f"{place}: activation '{activation}' outputs probabilities, but the loss has from_logits: true, "
                f"which applies {'softmax' if activation in SOFTMAXES else 'sigmoid'} again; remove from_logits"
            )
        return (
            f"{place}: {what} with the loss's from_logits: true outputs raw scores, which nnrun's evaluate and "
            f"predict read as probabilities; add activation: {wanted} and remove from_logits"
        )
    if activation in SOFTMAXES and wanted == "sigmoid":
        raise ConfigError(
            f"{place}: a softmax over one unit always outputs 1.0, so {loss_name} learns nothing "
            "(accuracy stays put while the loss falls); use activation: sigmoid"
        )
    if activation not in (SIGMOIDS if wanted == "sigmoid" else probabilities):
        raise ConfigError(f"{place}: {what} gives no probabilities, which {loss_name} takes; add activation: {wanted}")
    if activation in SIGMOIDS and wanted == "softmax":
        # Keras divides the outputs by their sum before the log, so the classes are learned; the saved model's
        # outputs are still one sigmoid per class.
        return (
            f"{place}: activation '{activation}' gives each class a probability of its own, which {loss_name} "
            "rescales to sum to 1 while training, but nnrun's evaluate and predict read them as they are "
            "(a sample's need not sum to 1); use activation: softmax"
        )
    return None


def _exact_accuracy(metrics):
    """Keras's `Accuracy` class counts outputs equal to the labels: a classifier's probabilities never are
    (and sparse labels do not even broadcast against them, a crash an epoch in)."""
    for i, spec in enumerate(metrics):
        if spec["name"] == "Accuracy":
            raise ConfigError(
                f"metrics[{i}]: 'Accuracy' counts outputs equal to the labels, which a classifier's probabilities "
                "never are; write 'accuracy' (Keras picks the accuracy that fits the loss)"
            )


def _regression_metrics(metrics):
    for i, spec in enumerate(metrics):
        name = spec["name"]
        if name.lower().replace("_", "") in CLASS_METRICS:
            raise ConfigError(
                f"metrics[{i}]: '{name}' counts correct classes, but the targets are continuous numbers "
                f"(a regression); use {REGRESSION_METRICS}"
            )


def _reachable(output, y_train, scale_target):
    """A regression's output activation must be able to give the values the network learns."""
    place, activation = output
    if activation not in RANGES:
        return
    y = np.asarray(y_train, dtype="float64")
    width = y.shape[1] if y.ndim > 1 else 1
    if activation in SOFTMAXES and width == 1:
        raise ConfigError(
            f"{place}: a softmax over one unit always outputs 1.0; remove the activation (a linear output)"
        )
    low, high = RANGES[activation]
    outputs = f"outputs values in {_interval(low, high)}"
    least, most = float(np.nanmin(y)), float(np.nanmax(y))
    fits_raw = low <= least and most <= high
    if scale_target and width == 1:  # a Rescaling layer after it gives mean + std * output (`_target_units`)
        mean, std = float(y.mean()), float(y.std()) or 1.0
        z_least, z_most = (least - mean) / std, (most - mean) / std
        if low <= z_least and z_most <= high:
            return
        keep = f", or set data.scale_target: false to keep it: the targets lie in {_interval(low, high)}"
        raise ConfigError(
            f"{place}: activation '{activation}' {outputs}, but with data.scale_target the network learns the "
            f"targets standardized ({z_least:.3g} to {z_most:.3g}); remove the activation (a linear output)"
            + (keep if fits_raw else "")
        )
    if not fits_raw:
        raise ConfigError(
            f"{place}: activation '{activation}' {outputs}, but the targets run from {least:.4g} to {most:.4g}; "
            "remove the activation (a linear output)"
        )


def _interval(low, high):
    return f"[{low:g}, {high:g}]" if high < math.inf else f"[{low:g}, inf)"
