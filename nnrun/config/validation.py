"""A config checked whole: the schema's errors as one line that names the place, and a sweep's paths.

`Config` validates each section; what needs the whole config is here: the
schema's errors in one line (`nnrun.config.messages` words each), and whether
each value a sweep will set still makes a valid config.
"""

import copy
from typing import Any

import pydantic

from nnrun.config.messages import describe
from nnrun.config.overrides import PathError, get_path, set_path
from nnrun.config.schema import Config
from nnrun.config.sweep_section import FIXED, samples
from nnrun.errors import ConfigError, did_you_mean, quoted

MORE_NAMED = 3  # the other errors named after the first; past that, counted


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
        lines = list(dict.fromkeys(describe(error) for error in e.errors()))
        raise ConfigError(f"{where}: {lines[0]}{_more(lines[1:])}") from None


def _more(lines: list[str]) -> str:
    """` (and 2 more: a; b)`: the other errors, named, a few at most, so that one round fixes them."""
    if not lines:
        return ""
    named = "; ".join(lines[:MORE_NAMED]) + ("; ..." if len(lines) > MORE_NAMED else "")
    return f" (and {len(lines)} more: {named})"


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
        place = f"{where}: sweep.parameters[{quoted(path)}]"
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
            raise ConfigError(f"{place}: {quoted(e.here)} is not in the config{hint}") from None
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
