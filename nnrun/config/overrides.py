"""`--set` overrides: a value set at a dotted path into a config (`model.layers.0.Dense.units`).

A config here is its plain form (`Config.model_dump(mode="json")`): mappings,
and lists indexed by number.
"""

from typing import Any

from nnrun.config.safe_yaml import parse_yaml
from nnrun.errors import ConfigError


def apply_override(resolved: dict[str, Any], item: str) -> None:
    """Applies one `key.path=value` override in place.

    Args:
        resolved: the config as a plain dict (lists indexed by number).
        item: `key.path=value`; the value is read as YAML (`3`, `0.01`, `[a, b]`).
    """
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item}: expected key.path=value, e.g. training.epochs=3")
    set_path(resolved, key, parse_yaml(text, f"--set {item}") if text else None, f"--set {item}")


def set_path(resolved: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Sets the value at a dotted path (`model.layers.0.Dense.units`) in place.

    Missing mappings on the way are made (`optimizer.learning_rate` on `{name: adam}`);
    lists are indexed by number and never grown.

    Args:
        resolved: the config as a plain dict.
        key: the dotted path.
        value: the plain value to set.
        where: what asked, for messages (`--set training.epochs=3`).
    """
    parts = key.split(".")
    node: Any = resolved  # mappings and lists, as the path goes down
    part: str | int  # a list's index once read
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{where}: '{here}' is not an index of a list of {len(node)}")
            part = int(part)
        elif not isinstance(node, dict):
            raise ConfigError(f"{where}: '{'.'.join(parts[:depth])}' is {node!r}, not a section")
        elif not last and node.get(part) is None:
            node[part] = {}
        if last:
            node[part] = value
        else:
            node = node[part]
