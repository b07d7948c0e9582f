"""Output shapes and parameter counts of the common Keras layers, computed as Keras builds them.

For `nnrun check` without Keras (`nnrun.model.quick`): each rule takes a layer's arguments (already
checked against Keras's signature) and one sample's input shape, and gives the output shape and the
trainable and non-trainable parameter counts. A rule accepts only the arguments and values it fully
understands, those Keras accepts the same way; anything else (another argument, a value Keras might
refuse, a shape Keras would reject) raises `Unsure`, and Keras itself builds the model and judges.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nnrun.errors import Unsure

Shape = tuple[int, ...]  # one sample's shape: the batch dimension is left out


@dataclass(frozen=True)
class Built:
    """One layer as Keras builds it."""

    shape: Shape  # its output, one sample's
    trainable: int  # parameters
    non_trainable: int


def built(class_name: str, args: Mapping[str, Any], shape: Shape, known: Callable[[str, object], bool]) -> Built:
    """A layer's output shape and parameter counts.

    Args:
        class_name: the Keras class (`Dense`; an alias's class, `Conv2D` for `Convolution2D`).
        args: its arguments from the config, checked against its signature.
        shape: one sample's input shape.
        known: `(module, value)` -> whether a name argument's value (an activation, initializer,
            regularizer, constraint) is one Keras resolves; it raises `Unsure` where it cannot tell.

    Returns:
        A `Built`.

    Raises:
        Unsure: a layer, argument or value it does not fully understand.
    """
    rule = RULES.get(class_name)
    if rule is None:
        raise Unsure(f"layer {class_name}")
    own, function = rule
    for key, value in args.items():
        check = own.get(key)
        if check is None or not check(value, known):
            raise Unsure(f"{class_name}: {key}={value!r}")
    return function(dict(args), shape)


# Argument checks: (value, known) -> whether the rule understands it as Keras does.


def _whole(least: int) -> Callable[[object, Any], bool]:
    return lambda v, known: type(v) is int and v >= least


def _number(v, known):
    return type(v) in (int, float) and math.isfinite(v)


def _flag(v, known):
    return type(v) is bool


def _named(module):
    return lambda v, known: v is None or (isinstance(v, str) and known(module, v))


def _sizes(v, known):
    """An int or a list of ints, each at least 1 (`kernel_size`, `strides`, `pool_size`)."""
    return _whole(1)(v, known) or (isinstance(v, list) and len(v) > 0 and all(_whole(1)(i, known) for i in v))


def _channels_last(v, known):
    # None is keras.config.image_data_format(): channels_last unless keras.json says otherwise,
    # which `nnrun.model.quick` checks before anything is built.
    return v in (None, "channels_last")


_WEIGHTS = {
    "activation": _named("activations"),
    "use_bias": _flag,
    "kernel_initializer": _named("initializers"),
    "bias_initializer": _named("initializers"),
    "kernel_regularizer": _named("regularizers"),
    "bias_regularizer": _named("regularizers"),
    "activity_regularizer": _named("regularizers"),
    "kernel_constraint": _named("constraints"),
    "bias_constraint": _named("constraints"),
}


def _tuple(value, rank):
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _windows(shape, rank, size, strides, padding):
    """The spatial sizes after a convolution or pooling window (Keras's compute_conv_output_shape)."""
    if len(shape) != rank + 1:
        raise Unsure(f"input of rank {len(shape)} for a {rank}-D window")
    if len(size) != rank or len(strides) != rank:
        raise Unsure("window sizes of another rank")
    out = []
    for length, k, s in zip(shape[:-1], size, strides, strict=True):
        n = (length - k) // s + 1 if padding == "valid" else (length - 1) // s + 1
        if n < 1:
            raise Unsure("a window larger than its input")
        out.append(n)
    return tuple(out)


def _dense(args, shape):
    units, bias = args["units"], args.get("use_bias", True)
    return Built((*shape[:-1], units), shape[-1] * units + units * bias, 0)


def _conv(rank):
    def conv(args, shape):
        size = _tuple(args["kernel_size"], rank)
        strides = _tuple(args.get("strides", 1), rank)
        spatial = _windows(shape, rank, size, strides, args.get("padding", "valid"))
        filters, bias = args["filters"], args.get("use_bias", True)
        return Built((*spatial, filters), math.prod(size) * shape[-1] * filters + filters * bias, 0)

    return conv


def _pooling(rank):
    def pooling(args, shape):
        size = _tuple(args.get("pool_size", 2), rank)
        strides = size if args.get("strides") is None else _tuple(args["strides"], rank)
        return Built((*_windows(shape, rank, size, strides, args.get("padding", "valid")), shape[-1]), 0, 0)

    return pooling


def _global_pooling(rank):
    def pooling(args, shape):
        if len(shape) != rank + 1:
            raise Unsure(f"input of rank {len(shape)} for {rank}-D global pooling")
        return Built((shape[-1],), 0, 0)

    return pooling


def _same(args, shape):
    return Built(shape, 0, 0)


def _flatten(args, shape):
    return Built((math.prod(shape),), 0, 0)


def _batch_normalization(args, shape):
    channels = shape[-1]
    trainable = channels * (args.get("scale", True) + args.get("center", True))
    return Built(shape, trainable, 2 * channels)


def _reshape(args, shape):
    target = list(args["target_shape"])
    known_size = math.prod(d for d in target if d != -1)
    if target.count(-1) > 1 or known_size == 0:
        raise Unsure(f"target_shape {target}")
    if -1 in target:
        if math.prod(shape) % known_size:
            raise Unsure("a target_shape that does not fit")
        target[target.index(-1)] = math.prod(shape) // known_size
    if math.prod(target) != math.prod(shape):
        raise Unsure("a target_shape that does not fit")
    return Built(tuple(target), 0, 0)


def _rate(v, known):
    return _number(v, known) and 0 <= v < 1


def _padding(v, known):
    return v in ("valid", "same")


def _target_shape(v, known):
    return isinstance(v, list) and len(v) > 0 and all(type(d) is int and (d >= 1 or d == -1) for d in v)


_WINDOW = {"strides": _sizes, "padding": _padding, "data_format": _channels_last}
_CONV = {
    **_WEIGHTS,
    **_WINDOW,
    "filters": _whole(1),
    "kernel_size": _sizes,
    "dilation_rate": lambda v, known: v == 1,
    "groups": lambda v, known: v == 1,
}
_POOL = {**_WINDOW, "pool_size": _sizes, "strides": lambda v, known: v is None or _sizes(v, known)}
_GLOBAL = {"data_format": _channels_last, "keepdims": lambda v, known: v is False}

# Keras class -> (the arguments it understands, with their checks; the rule).
RULES: dict[str, tuple[dict[str, Callable[[Any, Any], bool]], Callable[[dict[str, Any], Shape], Built]]] = {
    "Dense": ({**_WEIGHTS, "units": _whole(1)}, _dense),
    "Dropout": ({"rate": _rate, "seed": lambda v, known: v is None or type(v) is int}, _same),
    "Activation": ({"activation": lambda v, known: isinstance(v, str) and known("activations", v)}, _same),
    "Flatten": ({"data_format": _channels_last}, _flatten),
    "Conv1D": (_CONV, _conv(1)),
    "Conv2D": (_CONV, _conv(2)),
    "MaxPooling1D": (_POOL, _pooling(1)),
    "MaxPooling2D": (_POOL, _pooling(2)),
    "AveragePooling1D": (_POOL, _pooling(1)),
    "AveragePooling2D": (_POOL, _pooling(2)),
    "GlobalAveragePooling1D": (_GLOBAL, _global_pooling(1)),
    "GlobalAveragePooling2D": (_GLOBAL, _global_pooling(2)),
    "GlobalMaxPooling1D": (_GLOBAL, _global_pooling(1)),
    "GlobalMaxPooling2D": (_GLOBAL, _global_pooling(2)),
    "BatchNormalization": (
        {
            "axis": lambda v, known: v == -1 and type(v) is int,
            "momentum": _number,
            "epsilon": lambda v, known: _number(v, known) and v > 0,
            "center": _flag,
            "scale": _flag,
        },
        _batch_normalization,
    ),
    "Reshape": ({"target_shape": _target_shape}, _reshape),
    "Rescaling": ({"scale": _number, "offset": _number}, _same),
}
