"""Pretrained networks from `keras.applications` as layers of a config's stack.

A config names one by its Keras name with the function's own arguments
(`MobileNetV2: {include_top: false, weights: imagenet, pooling: avg}`), plus
`trainable: false` to freeze it. The input shape comes from the data. Where the
network expects its inputs prepared (`preprocess_input`: scaled to [-1, 1],
or channels flipped and centred), a frozen layer in front does the same from
the pixels as the data gives them, so `predict` needs nothing more than the
saved model. ImageNet weights are read from Keras's cache
(`$KERAS_HOME/models/`), fetched when there is a network, and named with
where to put them when there is not.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nnrun import keras_cache
from nnrun.backend import keras as _keras
from nnrun.errors import ConfigError, DataError, did_you_mean, one_line
from nnrun.model.names import check_arguments

if TYPE_CHECKING:  # Keras ships no types; to mypy its classes are Any
    import keras

# Arguments nnrun fills in itself (the input comes from the data) or takes for the layer.
_INFERRED = ("input_shape", "input_tensor")
_POOLING = (None, "avg", "max")
_TOLERANCE = 1e-4
PREPROCESSING = "_preprocessing"  # the name's end of the layer doing a network's preprocess_input


def names() -> list[str]:
    """The Keras names of the pretrained networks a config may use (`MobileNetV2`, `ResNet50`, ...)."""
    applications = _keras().applications
    return [n for n in dir(applications) if n[:1].isupper() and callable(getattr(applications, n))]


def build(
    name: str, args: object, input_shape: Sequence[int], place: str, rescale: float | None = None
) -> list[keras.layers.Layer]:
    """Makes the layers for a pretrained network named in a config.

    Args:
        name: its Keras name, one of `names()`.
        args: the config's arguments: the function's own (`weights`,
            `include_top`, `pooling`, `alpha`, ...) and `trainable`.
        input_shape: the shape of one sample reaching it.
        place: where in the config, for messages.
        rescale: the data's `rescale` factor, which the network's own
            preprocessing undoes (it expects pixels of 0-255).

    Returns:
        A list of layers: the preprocessing one (when the network needs one)
        and the network itself, as one layer named after it.
    """
    keras = _keras()
    fn = getattr(keras.applications, name)
    args = dict(args) if isinstance(args, dict) else {}
    own = inspect.signature(fn).parameters
    for key in args:
        if key in _INFERRED:
            raise ConfigError(f"{place}: remove '{key}': the input shape is inferred from the data")
        if key not in own and key != "trainable":
            raise ConfigError(f"{place}: unknown argument '{key}'{did_you_mean(key, [*own, 'trainable'])}")
    trainable = args.pop("trainable", True)
    if not isinstance(trainable, bool):
        raise ConfigError(f"{place}: argument 'trainable': expected true or false; got {trainable!r}")
    if "pooling" in own and args.get("pooling") not in _POOLING:
        raise ConfigError(f"{place}: argument 'pooling': expected avg, max or null; got {args['pooling']!r}")
    check_arguments(fn, args, place)
    weights = args["weights"] = _weights(args.get("weights", own["weights"].default), place)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ConfigError(
            f"{place}: takes colour images (height, width, 3); the data gives {tuple(input_shape)} per sample"
            + ("; set data.color_mode: rgb" if len(input_shape) == 3 else "")
        )
    try:
        with keras_cache.Announcements(), warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            network = fn(input_shape=tuple(input_shape), **args)
    except Exception as e:
        raise _refusal(e, place, name, args, weights) from None
    for warning in said:  # Keras's own remarks (ImageNet weights of another input size): a note, not a warning
        print(f"note: {place}: {one_line(warning.message, 300)}", file=sys.stderr)
    network.trainable = trainable
    prepare = _preprocessing(fn, name, rescale)
    return [prepare, network] if prepare is not None else [network]


def absolute(spec: dict[str, Any]) -> dict[str, Any]:
    """A layer spec `{Name: args}` with a pretrained network's weights file made an absolute path."""
    name, args = next(iter(spec.items()))
    weights = args.get("weights") if isinstance(args, dict) else None
    if name not in names() or not isinstance(weights, str) or weights == "imagenet":
        return spec
    return {name: {**args, "weights": os.path.abspath(os.path.expanduser(weights))}}


def _refusal(error, place, name, args, weights):
    """The one-line error for what building a pretrained network raised."""
    reason = keras_cache.download_failure(error)
    if reason is not None:
        return DataError(_absent(place, error, reason))
    if weights not in (None, "imagenet") and isinstance(error, (OSError, ValueError, KeyError)):
        tops = "include_top: true or false as when they were saved, " if "include_top" in args else ""
        return DataError(
            f"{place}: argument 'weights': '{weights}' are not weights of this {name} "
            f"({one_line(error, 200)}); they must come from the same network, with {tops}the same arguments"
        )
    if isinstance(error, (ValueError, TypeError)):
        hint = "; the input shape comes from data.image_size" if "input_shape" in str(error) else ""
        return ConfigError(f"{place}: {one_line(error, 300)}{hint}; got {args}")
    return error


def _weights(weights, place):
    """`imagenet`, None, or the absolute path of an existing weights file."""
    if weights is None or weights == "imagenet":
        return weights
    if not isinstance(weights, str):
        raise ConfigError(f"{place}: argument 'weights': expected imagenet, null or a file's path; got {weights!r}")
    path = os.path.abspath(os.path.expanduser(weights))
    if os.path.isdir(path):
        raise DataError(f"{place}: argument 'weights': '{weights}' is a folder; name the weights file in it")
    if not os.path.isfile(path):
        raise DataError(
            f"{place}: argument 'weights': no file '{weights}'"
            + (did_you_mean(weights, ["imagenet"]) or " (expected imagenet, null or a .weights.h5 file)")
        )
    if not path.endswith((".h5", ".keras")):
        raise ConfigError(f"{place}: argument 'weights': '{weights}' is not a Keras weights file (.weights.h5, .h5)")
    return path


def _absent(place, error, reason):
    """Where to put the ImageNet weights file Keras could not download."""
    where, home = keras_cache.folder("models")
    found = re.search(r"URL fetch failure on (\S+?): ", str(error))
    url = found.group(1) if found else None
    file = os.path.basename(url) if url else "the weights file"
    return (
        f"{place}: the ImageNet weights are not in the Keras cache and could not be downloaded ({reason}): "
        f"put {file}{f' (from {url})' if url else ''} in {where}/{keras_cache.fallback_note(where, home)}, "
        "or set weights: path/to/file.weights.h5, or weights: null to train it from random weights "
        "(without trainable: false)"
    )


def _preprocessing(fn, name, rescale):
    """A frozen layer doing the network's `preprocess_input`, or None where it needs none.

    Every network in `keras.applications` prepares a pixel by an affine map of
    its channels (scaling to [-1, 1], per-channel standardizing, or RGB to BGR
    minus the ImageNet mean). That map is measured from `preprocess_input`
    itself and held by a Dense layer on the channel axis: plain weights, saved
    with the model and loaded in safe mode, where a Lambda would not be.
    """
    keras = _keras()
    preprocess = getattr(sys.modules[fn.__module__], "preprocess_input", None)
    if preprocess is None:
        return None
    scale = 1.0 / rescale if rescale else 1.0  # the data arrives as pixels * rescale
    probe = np.zeros((4, 1, 1, 3), dtype="float32")
    for c in range(3):
        probe[c + 1, 0, 0, c] = 255.0
    out = np.asarray(preprocess(probe.copy()), dtype="float64")[:, 0, 0, :]
    bias = out[0]
    kernel = (out[1:] - bias) / 255.0  # row c: what one unit of channel c adds to each output channel
    pixels = np.random.default_rng(0).uniform(0, 255, size=(8, 1, 1, 3)).astype("float32")
    expected = np.asarray(preprocess(pixels.copy()), dtype="float64")[:, 0, 0, :]
    if not np.allclose(pixels[:, 0, 0, :] @ kernel + bias, expected, atol=1e-3):
        raise ConfigError(
            f"{name}: its preprocess_input is not a per-pixel affine map; nnrun cannot save it with the model"
        )
    if np.allclose(kernel * scale, np.eye(3), atol=_TOLERANCE) and np.allclose(bias, 0, atol=_TOLERANCE):
        return None  # the network prepares its inputs itself, or needs nothing
    layer = keras.layers.Dense(3, trainable=False, name=f"{name.lower()}{PREPROCESSING}")
    layer.build((None, 3))
    layer.set_weights([(kernel * scale).astype("float32"), bias.astype("float32")])
    return layer
