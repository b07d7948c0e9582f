"""Keras's own names: a config's layer, optimizer, loss or metric looked up in Keras, its arguments checked.

A name is found case- and underscore-insensitively where Keras's is
(`adam`, `Adam`), with the nearest name suggested on a miss; arguments are
checked against the Keras class's signature before it is made, so a typo is one
line that names its place (`model.layers[2] (Dense): unknown argument 'unitz';
did you mean 'units'?`). Only plain values reach Keras.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from nnrun.backend import keras as _keras
from nnrun.errors import ConfigError, did_you_mean, quoted

# Argument-name suffixes whose string values Keras resolves by name.
NAMED_ARGUMENTS = {
    "activation": "activations",
    "initializer": "initializers",
    "regularizer": "regularizers",
    "constraint": "constraints",
}
_SERIALIZED_KEYS = {"class_name", "module", "registered_name", "config"}


def keras_name(name: str) -> str:
    """A model name TensorFlow takes as a name scope, from a run's name.

    The run directory keeps the user's name (`naïve-名前`, `_draft`, `-rf`);
    TensorFlow wants ASCII that starts with a letter, digit or dot.

    Args:
        name: the run's name.

    Returns:
        The name for `keras.Model(name=...)`.
    """
    ascii_name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return ascii_name if re.match(r"[A-Za-z0-9.]", ascii_name) else f"model{ascii_name}"


def snake_case(name: str) -> str:
    """'CategoricalCrossentropy' -> 'categorical_crossentropy', 'KLDivergence' -> 'kl_divergence'."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def instantiate(cls: Callable[..., Any], args: object, place: str) -> Any:
    """Makes `cls(**args)` after checking `args` against the class's signature.

    Args:
        cls: a Keras class.
        args: a mapping of arguments, or one value for the first parameter
            (`Dropout: 0.2`).
        place: where in the config, for messages.

    Returns:
        The instance.
    """
    args = check_arguments(cls, args, place)
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{place}: {first_line(e)}; got {args}") from None
    except Exception as e:  # Keras checks few types: a wrong one fails anywhere (padding: null -> AttributeError)
        raise ConfigError(f"{place}: Keras cannot use these arguments ({first_line(e)}); got {args}") from None


def check_arguments(target: Callable[..., Any], args: object, place: str) -> dict[str, Any]:
    """Checks a config's arguments against what a Keras class or function accepts.

    Args:
        target: a Keras class, or a function such as `keras.applications.ResNet50`.
        args: a mapping of arguments, or one value for the first parameter.
        place: where in the config, for messages.

    Returns:
        The arguments as a mapping.
    """
    return check_parameters(parameters(target), args, place, unknown_name)


def check_parameters(
    params: Mapping[str, inspect.Parameter],
    args: object,
    place: str,
    unknown: Callable[[str, str], list[str] | None],
) -> dict[str, Any]:
    """Checks a config's arguments against a signature's parameters (`check_arguments`, or the
    catalogue's copy of Keras's signatures in `nnrun.model.catalogue`).

    Args:
        params: `{name: inspect.Parameter}`, as `parameters` gives.
        args: a mapping of arguments, or one value for the first parameter.
        place: where in the config, for messages.
        unknown: `(module, name)` -> None where the Keras module (`activations`) knows the
            name, else the names it offers, for the message.

    Returns:
        The arguments as a mapping.
    """
    positional = [n for n, p in params.items() if p.kind == p.POSITIONAL_OR_KEYWORD]
    if not isinstance(args, dict):
        if not positional:
            raise ConfigError(f"{place}: takes no positional value; got {args!r}")
        args = {positional[0]: args}
    for key, value in args.items():
        if key not in params:
            raise ConfigError(f"{place}: unknown argument {quoted(key)}{did_you_mean(key, params)}")
        _check_value(key, value, params[key].default, f"{place}: argument {quoted(key)}", unknown)
    missing = [
        n for n, p in params.items() if p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD and n not in args
    ]
    if missing:
        raise ConfigError(f"{place}: missing argument '{missing[0]}'")
    return args


def parameters(cls: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The arguments a Keras class accepts: its own, and the optional ones of its bases (or a function's)."""
    if not inspect.isclass(cls):
        return dict(inspect.signature(cls).parameters)
    params: dict[str, inspect.Parameter] = {}
    own = True
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        sig = inspect.signature(vars(klass)["__init__"])  # the __init__ this class defines (klass.__init__)
        for n, p in list(sig.parameters.items())[1:]:
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and (own or p.default is not p.empty):
                params.setdefault(n, p)
        own = False
        if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            break
    return params


def _check_value(key, value, default, place, unknown):
    if isinstance(value, dict) and _SERIALIZED_KEYS & set(value):
        raise ConfigError(f"{place}: serialized Keras objects are not allowed in a config; use a name")
    # Keras checks few types in constructors; where the default says what the
    # argument is, catch a wrong type now rather than mid-training.
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ConfigError(f"{place}: expected true or false; got {value!r}")
    if type(default) in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{place}: expected a number; got {value!r}")
    suffix = next((s for s in NAMED_ARGUMENTS if key == s or key.endswith(f"_{s}")), None)
    if suffix and isinstance(value, str):
        offered = unknown(NAMED_ARGUMENTS[suffix], value)
        if offered is not None:
            raise ConfigError(f"{place}: unknown {suffix} {quoted(value)}{did_you_mean(value, offered)}")


def unknown_name(module_name: str, name: str) -> list[str] | None:
    """None where Keras's module (`activations`, `initializers`, ...) resolves `name`; else its public names.

    Args:
        module_name: the module's name in `keras`.
        name: the name in the config.

    Returns:
        None, or the names the module offers.
    """
    module = getattr(_keras(), module_name)
    try:
        module.get(name)
    except (ValueError, TypeError):
        return public_names(module)
    return None


def lookup(
    name: str,
    classes: Mapping[str, Any],
    place: str,
    kind: str,
    aliases: Mapping[str, Any] | None = None,
    exact: bool = False,
    suggest: Iterable[str] = (),
) -> Any:
    """Finds a class by its Keras name, case- and underscore-insensitively unless `exact`.

    Args:
        name: the name in the config (`adam`, `Adam`, `mse`).
        classes: `{Keras name: class}`, as `classes_in` gives.
        place: where in the config, for messages.
        kind: what is looked up (`layer`, `loss`), for messages.
        aliases: short names Keras knows (`mse`) -> their class.
        exact: the name must be the class's own (layers).
        suggest: more names the message may suggest (pretrained networks).

    Returns:
        The class.
    """
    if name in classes:
        return classes[name]
    if not exact:
        key = name.lower().replace("_", "")
        for cls_name, cls in classes.items():
            if cls_name.lower() == key:
                return cls
        if aliases and name in aliases:
            return aliases[name]
    choices = list(classes) + [snake_case(c) for c in classes] * (not exact) + list(suggest)
    raise ConfigError(f"{place}: unknown {kind} {quoted(name)}{did_you_mean(name, choices)}")


def classes_in(module: Any, base: type, exclude: Collection[str] = ()) -> dict[str, Any]:
    """`{name: class}` of a Keras module's public subclasses of `base` (`keras.losses`, `keras.losses.Loss`)."""
    return {
        n: c
        for n in public_names(module)
        if n not in exclude and inspect.isclass(c := getattr(module, n)) and issubclass(c, base)
    }


def aliases_of(module: Any, classes: Mapping[str, Any]) -> dict[str, Any]:
    """Short names Keras knows for functions ('mse') -> the class of the same loss/metric."""
    by_snake = {snake_case(n): c for n, c in classes.items()}
    found = {}
    for name in ("mse", "mae", "mape", "msle", "kld", "logcosh", "bce", "cce"):
        try:
            fn = module.get(name)
        except (ValueError, TypeError):
            continue
        cls = by_snake.get(getattr(fn, "__name__", ""))
        if cls is not None:
            found[name] = cls
    return found


def public_names(module: Any) -> list[str]:
    """The names a Keras module offers a config (`keras.activations`: relu, ...), without its own helpers."""
    return [n for n in dir(module) if not n.startswith("_") and n not in ("get", "serialize", "deserialize")]


def first_line(error: BaseException) -> str:
    """Keras's message without its terminal colours and argument dump, on one line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split("Arguments received by")[0]
    text = re.sub(r"^Exception encountered when calling \S+\.\s*", "", " ".join(text.split()))
    return text[:300] + ("..." if len(text) > 300 else "")
