"""A config checked whole: the schema's errors as one line that names the place, and a sweep's paths.

`Config` validates each section; what needs the whole config is here: the
message for pydantic's first error, and whether each value a sweep will set
still makes a valid config.
"""

import copy
import re
from typing import Any

import pydantic

from nnrun.config.overrides import PathError, get_path, set_path
from nnrun.config.schema import DATA_SOURCES, Config
from nnrun.config.sweep_section import FIXED, samples
from nnrun.errors import ConfigError, did_you_mean


def validate(raw: dict[str, Any], where: str) -> Config:
    """Validates a plain dict against the schema, one error line on failure.

    Args:
        raw: the config as a plain dict.
        where: the file it came from, for messages.

    Returns:
        The `Config`.
    """
    try:
        return Config.model_validate(raw)
    except pydantic.ValidationError as e:
        errors = e.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{where}: {_describe(errors[0])}{more}") from None


def _describe(error):
    loc = [p for i, p in enumerate(error["loc"]) if not (i == 1 and error["loc"][0] == "data" and p in DATA_SOURCES)]
    place = (
        "".join(
            f"[{p}]" if isinstance(p, int) else f"['{p}']" if "." in p else f".{p}"
            for p in loc  # sweep's dotted paths
        ).lstrip(".")
        or "config"
    )
    kind, received, ctx = error["type"], error.get("input"), error.get("ctx", {})
    if kind == "missing":
        return f"{place}: missing (required)"
    if kind == "union_tag_not_found":
        return f"{place}.source: missing; one of {', '.join(DATA_SOURCES)}"
    if kind == "union_tag_invalid":
        received = ctx["tag"]
        choices = ", ".join(DATA_SOURCES)
        return f"{place}.source: must be one of {choices}; got {received!r}{did_you_mean(received, DATA_SOURCES)}"
    if kind == "value_error":
        message = str(ctx["error"])
        if repr(received) in message or f"'{received}'" in message:
            return f"{place}: {message}"
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
    if not isinstance(received, (dict, list)):
        message += f"; got {received!r}"
    if kind == "literal_error" and isinstance(received, str):
        message += did_you_mean(received, re.findall(r"'([^']*)'", ctx["expected"]))
    return f"{place}: {message}"


def check_sweep_paths(config: Config, where: str) -> None:
    """Checks that each swept path is in the config, and that each of its values makes a valid config.

    Every part of a path but the last must be there already; a last part that
    is missing is fine where the value still validates (a Keras argument such
    as `optimizer.learning_rate`, checked by Keras when the model is built).

    Args:
        config: the validated `Config`, with a sweep section.
        where: the config file, for messages.
    """
    assert config.sweep is not None  # called only with a sweep section
    resolved = without_sweep(config)
    for path, space in config.sweep.parameters.items():
        place = f"{where}: sweep.parameters['{path}']"
        section, parent = path.partition(".")[0], path.rpartition(".")[0]
        if section in FIXED:
            raise ConfigError(f"{place}: {section} cannot be swept")
        try:
            if parent:  # the last part may be new: a Keras argument not written in the config
                get_path(resolved, parent)
        except PathError as e:
            if isinstance(e.node, list):
                hint = f" ({e.parent} is a list of {len(e.node)})"
            else:
                hint = did_you_mean(e.part, list(e.node) if isinstance(e.node, dict) else [])
            raise ConfigError(f"{place}: '{e.here}' is not in the config{hint}") from None
        for value in samples(space):
            trial = copy.deepcopy(resolved)
            set_path(trial, path, value, place)
            try:
                validate(trial, "")
            except ConfigError as e:
                raise ConfigError(f"{place}: with {value!r}: {str(e).removeprefix(': ')}") from None


def without_sweep(config: Config) -> dict[str, Any]:
    """The config as a plain dict, without its sweep section: what a trial's values are set in."""
    return config.model_dump(mode="json", exclude={"sweep"})
