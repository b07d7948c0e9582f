"""How a config names Keras things: a layer, a callback or an augmentation layer as `{Name: arguments}`, an
optimizer or loss as `name` or `{name: ..., arguments}`; the forms pydantic validates and the JSON Schema shows.

Only the shape is checked here; `nnrun.model` resolves the names through Keras and checks their arguments.
"""

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from nnrun.errors import did_you_mean, quoted

CALLBACKS = ("EarlyStopping", "ReduceLROnPlateau", "ModelCheckpoint")


def _named(value):
    """`adam` or `{name: adam, learning_rate: 0.01}` -> `{name: adam, ...}`."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return _floats(value)
    raise ValueError("expected a name such as 'adam', or a mapping with 'name' and Keras arguments")


def _one_key(value):
    """`Flatten`, `{Dropout: 0.2}` or `{Dense: {units: 64}}` -> `{Name: args}`."""
    if isinstance(value, str):
        return {value: {}}
    if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value)), str):
        name, args = next(iter(value.items()))
        return {name: {} if args is None else _floats(args)}
    raise ValueError(
        "expected a Keras name with its arguments, e.g. '{Dense: {units: 64}}', '{Dropout: 0.2}' or 'Flatten'"
    )


def _callback(value):
    value = _one_key(value)
    name = next(iter(value))
    if name not in CALLBACKS:
        choices = ", ".join(CALLBACKS)
        raise ValueError(f"unknown callback {quoted(name)}{did_you_mean(name, CALLBACKS)} (one of {choices})")
    return value


_ONE_KEY_SCHEMA = {
    "anyOf": [
        {"type": "string"},
        {"type": "object", "minProperties": 1, "maxProperties": 1},
    ]
}
_NAMED_SCHEMA = {
    "anyOf": [
        {"type": "string"},
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    ]
}
Named = Annotated[dict[str, Any], BeforeValidator(_named), WithJsonSchema(_NAMED_SCHEMA)]
LayerSpec = Annotated[dict[str, Any], BeforeValidator(_one_key), WithJsonSchema(_ONE_KEY_SCHEMA)]
CallbackSpec = Annotated[
    dict[str, Any],
    BeforeValidator(_callback),
    WithJsonSchema({**_ONE_KEY_SCHEMA, "description": "one of " + ", ".join(CALLBACKS)}),
]


def _augmentation(value):
    value = _one_key(value)
    name = next(iter(value))
    if not name.startswith("Random"):
        raise ValueError(
            f"{quoted(name)} is not an augmentation layer; use Keras's Random* layers (RandomFlip, RandomRotation, ...)"
        )
    return value


AugmentationSpec = Annotated[dict[str, Any], BeforeValidator(_augmentation), WithJsonSchema(_ONE_KEY_SCHEMA)]


SCIENTIFIC = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _floats(value):
    # PyYAML follows YAML 1.1, which reads `1e-4` as a string; every Keras user
    # writes learning rates that way, so Keras arguments read it as YAML 1.2
    # does. Our own fields are typed, and pydantic reads "1e-4" as a float.
    if isinstance(value, str) and SCIENTIFIC.match(value):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value
