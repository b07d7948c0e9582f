"""`nnrun check` in under a second: the config judged as `training.setup` judges it, without Keras.

Keras and TensorFlow take seconds to import; check needs only what they would say. This module walks
the same steps in the same order (the config's own mistakes, the data, each layer, the optimizer, loss
and metrics, the fit of output to data, the callbacks) with Keras's names and signatures from the
catalogue (`nnrun.model.catalogue`), the layers' shapes from `nnrun.model.shapes` and the data's
sizes from `nnrun.data.quick_summary`, and raises the same errors with the same words where it is
sure. At the first thing it does not fully understand (a layer or value it has no rule for, a source
it cannot read exactly, a sweep, tracking, distribution) it gives up (None), and `check` builds the
model with Keras, as `train` does: Keras stays the judge of everything else. A test runs both paths
over the shipped configs and the test suite's mistakes and compares what they print.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from nnrun.data import quick_summary
from nnrun.errors import ConfigError, Unsure
from nnrun.model import catalogue as catalogues
from nnrun.model import mistakes, names, shapes, summary_table
from nnrun.model.build import FORBIDDEN_LAYERS, ONE_HOT_METRICS, check_fit

if TYPE_CHECKING:
    from nnrun.config.schema import Config
    from nnrun.data import Dataset

KERAS_JSON_BYTES = 65536


@dataclass
class QuickSetup:
    """What `nnrun check` shows of a config judged without Keras (as `training.setup.Setup` holds it)."""

    dataset: Dataset  # the splits' sizes, the classes and the input shape; no samples
    summary: str  # the model's table, as Keras's `model.summary(print_fn=...)` hands it over
    warnings: list[str]  # as `Setup.warnings`


def setup(config: Config) -> QuickSetup | None:
    """Judges a config as `training.setup.setup` does, where it can without Keras.

    Args:
        config: the validated `Config`, its backend chosen.

    Returns:
        A `QuickSetup`, or None where only Keras can tell (then nothing was printed).

    Raises:
        ConfigError, DataError: what `setup` would raise, in its words.
    """
    try:
        return _setup(config)
    except Unsure:
        return None


def _setup(config: Config) -> QuickSetup:
    training = config.training
    if config.sweep or training.fine_tune or training.class_weight is not None or config.output.export:
        raise Unsure("a sweep, fine-tuning, class weights or exports")
    if config.tracking.names() or config.distribution or any(k.startswith("KERAS_DISTRIBUTION_") for k in os.environ):
        raise Unsure("tracking or distribution")
    catalogue = catalogues.load()
    if catalogue is None:
        raise Unsure("no catalogue of the installed Keras")
    _keras_json()
    _ruled(catalogue, config)  # before the data is read: a model Keras must build costs check no more than before
    warnings = mistakes.in_config(config)
    dataset = quick_summary.summary(config.data, training.validation_split)
    rows = _layers(catalogue, config, tuple(dataset.preprocessing["input_shape"]))
    output_shape = rows[-1].shape if rows else (None, *dataset.preprocessing["input_shape"])
    loss_name = _compiled(catalogue, config, output_shape)
    check_fit(SimpleNamespace(output_shape=output_shape), loss_name, dataset, config.model.layers)
    warnings += mistakes.with_data(config, loss_name, dataset)
    _callbacks(catalogue, training.callbacks)
    table = summary_table.summary(names.keras_name(str(config.output.name)), rows)
    return QuickSetup(dataset, table, warnings)


def _keras_json() -> None:
    """Gives way where Keras's own config (`keras.json`) changes the defaults the rules assume: float32
    weights, channels last."""
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    path = os.path.join(os.path.expanduser(home), "keras.json")
    if not os.path.exists(path):
        return
    try:
        with open(path, "rb") as f:
            settings = json.loads(f.read(KERAS_JSON_BYTES + 1))
    except (OSError, ValueError):
        raise Unsure("keras.json unreadable") from None
    if (
        not isinstance(settings, dict)
        or settings.get("floatx", "float32") != "float32"
        or settings.get("image_data_format", "channels_last") != "channels_last"
    ):
        raise Unsure("keras.json sets floatx or image_data_format")


def _ruled(catalogue: catalogues.Catalogue, config: Config) -> None:
    """Gives way at once where a layer of Keras's has no rule in `shapes`, or an argument its rule does not read.

    Names and arguments Keras does not have are left to `_layers`, which refuses them as `build` does.
    """
    layers = catalogue.data["layers"]
    for spec in [*config.data.augmentation, *config.model.layers]:
        layer_name, args = next(iter(spec.items()))
        if layer_name in catalogue.data["applications"]:
            raise Unsure("a pretrained network")
        if layer_name not in layers:
            continue
        rule = shapes.RULES.get(layers[layer_name]["class"])
        params = catalogue.parameters("layers", layer_name)
        if rule is None or (isinstance(args, dict) and any(k in params and k not in rule[0] for k in args)):
            raise Unsure(f"layer {layer_name} with {args!r}")


def _layers(catalogue: catalogues.Catalogue, config: Config, input_shape: tuple[int, ...]) -> list[summary_table.Row]:
    """`build.build`'s steps for each layer, giving the summary's rows."""
    layers, applications = catalogue.data["layers"], catalogue.data["applications"]
    uids = {"input_layer": 1}  # keras.Input named its layer first (keras/src/utils/naming.py uniquify)

    def known(module, value):
        return catalogue.unknown(module, value) is None

    rows = []
    shape = input_shape
    specs = [(spec, f"data.augmentation[{i}]") for i, spec in enumerate(config.data.augmentation)]
    specs += [(spec, f"model.layers[{i}]") for i, spec in enumerate(config.model.layers)]
    for spec, place in specs:
        layer_name, args = next(iter(spec.items()))
        if layer_name in applications:
            raise Unsure("a pretrained network")
        if layer_name in FORBIDDEN_LAYERS:
            raise ConfigError(f"{place}: the layer '{layer_name}' cannot be used in a config")
        key = names.lookup(layer_name, {k: k for k in layers}, place, "layer", exact=True, suggest=applications)
        entry = layers[key]
        place = f"{place} ({entry['class']})"
        for own in ("input_shape", "input_dim"):
            if isinstance(args, dict) and own in args and own not in entry["own"]:
                raise ConfigError(f"{place}: remove '{own}': the input shape is inferred from the data")
        args = names.check_parameters(catalogue.parameters("layers", key), args, place, catalogue.unknown)
        built = shapes.built(entry["class"], args, shape, known)
        prefix = entry["auto_name"]
        name = f"{prefix}_{uids[prefix]}" if prefix in uids else prefix
        uids[prefix] = uids.get(prefix, 0) + 1
        rows.append(summary_table.Row(name, entry["class"], (None, *built.shape), built.trainable, built.non_trainable))
        shape = built.shape
    return rows


def _compiled(catalogue: catalogues.Catalogue, config: Config, output_shape: Sequence[int | None]) -> str:
    """`build.compile_model`'s checks: the optimizer, loss and metrics; returns the loss's name as compiled."""
    data = catalogue.data
    spec = config.optimizer
    key = names.lookup(spec["name"], {k: k for k in data["optimizers"]}, "optimizer", "optimizer")
    place = f"optimizer ({data['optimizers'][key]['class']})"
    args = names.check_parameters(catalogue.parameters("optimizers", key), _args(spec), place, catalogue.unknown)
    _understood(args, {"learning_rate": lambda v: type(v) in (int, float)}, place)

    spec = config.loss
    key = names.lookup(spec["name"], {k: k for k in data["losses"]}, "loss", "loss", aliases=_aliases(data, "loss"))
    place = f"loss ({data['losses'][key]['class']})"
    args = names.check_parameters(catalogue.parameters("losses", key), _args(spec), place, catalogue.unknown)
    _understood(args, {"from_logits": lambda v: type(v) is bool}, place)
    loss_name = names.snake_case(data["losses"][key]["class"])

    kinds = [_metric(catalogue, m, f"metrics[{i}]") for i, m in enumerate(config.metrics)]
    # `build._labels_for_metrics`: one-hot metrics make a sparse loss its one-hot twin.
    one_hot_only = [kind for kind in kinds if kind in ONE_HOT_METRICS]
    if output_shape[-1] != 1 and one_hot_only and loss_name == "sparse_categorical_crossentropy":
        loss_name = "categorical_crossentropy"
    return loss_name


def _metric(catalogue: catalogues.Catalogue, spec: Mapping[str, Any], place: str) -> str:
    """`build.metric_from`'s checks; returns the class of the metric Keras makes ('' for a function)."""
    data = catalogue.data
    name, args = spec["name"], _args(spec)
    if not args and name not in data["metrics"]:
        if name.lower() in ("accuracy", "acc"):
            return ""  # accuracy adapts to the loss: no class of its own
        if name not in data["metric_gets"]:
            raise Unsure(f"metric {name!r}")  # Keras says whether it knows the name
        return data["metric_gets"][name]
    key = names.lookup(name, {k: k for k in data["metrics"]}, place, "metric", aliases=_aliases(data, "metric"))
    if args:
        raise Unsure("a metric's arguments")
    return data["metrics"][key]["class"]


def _aliases(data: Mapping[str, Any], kind: str) -> dict[str, str]:
    section = data["losses" if kind == "loss" else "metrics"]
    by_class = {entry["class"]: key for key, entry in section.items()}
    return {alias: by_class[cls] for alias, cls in data[f"{kind}_aliases"].items() if cls in by_class}


def _callbacks(catalogue: catalogues.Catalogue, specs: Sequence[Mapping[str, Any]]) -> None:
    """`build.callbacks_from`'s checks."""
    for i, spec in enumerate(specs):
        name, args = next(iter(spec.items()))
        place = f"training.callbacks[{i}] ({name})"
        if not isinstance(args, dict):
            raise ConfigError(f"{place}: expected a mapping of arguments; got {args!r}")
        if name not in CALLBACK_VALUES:
            raise Unsure(f"callback {name}")
        args = names.check_parameters(catalogue.parameters("callbacks", name), args, place, catalogue.unknown)
        _understood(args, CALLBACK_VALUES[name], place)


def _understood(args: Mapping[str, Any], checks: Mapping[str, Any], place: str) -> None:
    for key, value in args.items():
        if key not in checks or not checks[key](value):
            raise Unsure(f"{place}: {key}={value!r}")


def _args(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "name"}


def _number(v):
    return type(v) in (int, float)


def _count(v):
    return type(v) is int and v >= 0


_MONITOR = {"monitor": lambda v: isinstance(v, str), "mode": lambda v: v in ("auto", "min", "max")}
# Values of the callbacks' arguments that Keras takes as they are (others: Keras judges).
CALLBACK_VALUES = {
    "EarlyStopping": {
        **_MONITOR,
        "min_delta": _number,
        "patience": _count,
        "verbose": _count,
        "baseline": lambda v: v is None or _number(v),
        "restore_best_weights": lambda v: type(v) is bool,
        "start_from_epoch": _count,
    },
    "ReduceLROnPlateau": {
        **_MONITOR,
        "factor": lambda v: _number(v) and 0 < v < 1,
        "patience": _count,
        "verbose": _count,
        "min_delta": _number,
        "cooldown": _count,
        "min_lr": lambda v: _number(v) and v >= 0,
    },
}
