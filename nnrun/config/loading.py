"""A config file read, validated and resolved (`load`), and written back (`dump`).

Precedence: the schema's defaults < the file < `--set` overrides. The backend
(`auto`: see `auto_backend`) and the run's name are resolved here, so the run
directory says which ran.
"""

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from nnrun.config import auto_backend
from nnrun.config.overrides import apply_override
from nnrun.config.safe_yaml import MAX_CONFIG_BYTES, parse_yaml
from nnrun.config.schema import MAX_NAME_BYTES, Config, DataBase
from nnrun.config.tracking_section import Tracking
from nnrun.config.validation import check_sweep_paths, validate
from nnrun.errors import ConfigError


def load(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Config:
    """Reads, validates and resolves a config file.

    Args:
        path: the YAML file.
        overrides: `key.path=value` strings, applied after the file.

    Returns:
        The validated `Config`, defaults filled in, `output.name` set.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist" if not path.exists() else f"'{path}' is not a file")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:  # before reading it
            raise ConfigError(f"{path}: {size} bytes, more than a config may have ({MAX_CONFIG_BYTES})")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    return from_text(text, path, overrides)


def from_text(text: str, path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Config:
    """Validates and resolves a config's text, read by the caller (a run directory's, by its own rules).

    Args:
        text: the YAML.
        path: the file it was read from, for messages and the run's default name.
        overrides: `key.path=value` strings, applied after the text.

    Returns:
        The validated `Config`, as `load` returns it.
    """
    path = Path(path)
    raw = parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections, got {type(raw).__name__}")
    config = validate(raw, str(path))
    if overrides:
        resolved = config.model_dump(mode="json")
        for item in overrides:
            apply_override(resolved, item)
        config = validate(resolved, f"{path} with --set")
    if config.sweep:
        check_sweep_paths(config, str(path))
    choice = auto_backend.resolve(config)  # resolved here, so the run directory says which ran
    config.backend = choice.backend  # type: ignore[assignment]  # any $KERAS_BACKEND: backend.use() checks it
    config._backend_reason = choice.reason
    if config.output.name is None:
        stem = re.sub(r"[^\w.-]", "_", path.stem).strip(".") or "run"
        config.output.name = stem.encode()[:MAX_NAME_BYTES].decode(errors="ignore")
    return config


def with_trackers(config: Config, names: Iterable[str]) -> Config:
    """The config with the trackers `--tracker` names turned on; `none` turns the config's off first.

    Args:
        config: the validated `Config`.
        names: tracker names (`TRACKERS`, or `none`), in the order given.

    Returns:
        The `Config`.
    """
    tracking = config.tracking.model_dump()  # the trackers on, each with its settings
    for name in names:
        if name == "none":
            tracking = {}
        elif tracking.get(name) is None:
            tracking[name] = {}
    return config.model_copy(update={"tracking": Tracking.model_validate(tracking)})


def dump(config: Config) -> str:
    """Returns the config as YAML text that `load` reads back to the same config."""
    resolved = config.model_dump(mode="json")
    data = resolved.pop("data")
    # The source and its own fields first: they say what the rest means.
    own = {k: v for k, v in data.items() if k not in DataBase.model_fields}
    data = {"source": own.pop("source"), **own, **{k: v for k, v in data.items() if k in DataBase.model_fields}}
    resolved = {"backend": resolved.pop("backend"), "seed": resolved.pop("seed"), "data": data, **resolved}
    # Sections left out unless used: a config written before they existed reads the same.
    for key in ("tracking", "sweep"):
        if not resolved[key]:
            del resolved[key]
    return yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True)
