"""Dotted paths into a config (`model.layers.0.Dense.units`): read, set, and `--set` overrides.

A config here is its plain form (`Config.model_dump(mode="json")`): mappings,
and lists indexed by number. `--set` and a sweep's parameters name places the
same way, so both go through `get_path`. A layer is `model.layers.0` or
`model.0`, however the config wrote `model:`.
"""

from collections.abc import Iterable
from typing import Any

from nnrun.config.safe_yaml import parse_yaml
from nnrun.errors import ConfigError, quoted


class PathError(ConfigError):
    """A dotted path that leaves the config, and where it left it.

    Args:
        parts: the path's parts.
        depth: the index of the first part that is not there.
        node: what the path reached before it (a mapping, a list or a value).
    """

    def __init__(self, parts: list[str], depth: int, node: Any) -> None:
        self.part = parts[depth]
        self.here = ".".join(parts[: depth + 1])  # the path up to the part not there
        self.parent = ".".join(parts[:depth])
        self.node = node
        super().__init__(f"{quoted(self.here)} is not in the config")


def get_path(resolved: Any, key: str, make: bool = False) -> Any:
    """Walks a dotted path down a plain config; a null value counts as not there.

    Args:
        resolved: the config as a plain dict (lists indexed by number).
        key: the dotted path (`optimizer.learning_rate`).
        make: make a missing (or null) mapping on the way, as `--set` does for
            `optimizer.learning_rate` on `{name: adam}`; lists never grow.

    Returns:
        The value at the path.

    Raises:
        PathError: a part of the path is not there, or its parent is neither a
            mapping nor a list.
    """
    node = resolved
    parts = _parts(key)
    for depth, part in enumerate(parts):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and (make or node.get(part) is not None):
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        else:
            raise PathError(parts, depth, node)
    return node


def _parts(key):
    """A path's parts; `model.0...` is `model.layers.0...`, as a config may write `model:` as the list itself."""
    parts = key.split(".")
    if len(parts) > 1 and parts[0] == "model" and parts[1].isdigit():
        parts.insert(1, "layers")
    return parts


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
    key = ".".join(_parts(key))
    try:
        get_path(resolved, key, make=True)  # every part there, the missing mappings made
    except PathError as e:
        if isinstance(e.node, list):
            raise ConfigError(f"{where}: {quoted(e.here)} is not an index of a list of {len(e.node)}") from None
        raise ConfigError(f"{where}: {quoted(e.parent)} is {e.node!r}, not a section") from None
    parent, _, last = key.rpartition(".")
    node = get_path(resolved, parent) if parent else resolved
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


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


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a plain config by its dotted path, as `--set` names keys.

    `{"a": {"b": 1}, "c": [{"d": 2}]}` gives `{"a.b": 1, "c.0.d": 2}`; an empty
    mapping is a leaf, and so is a list of plain values (`data.drop: [id, name]`,
    set whole as `--set 'data.drop=[id, name]'`), so that a list that changed is one
    difference, not one per item.

    Args:
        value: the config as a plain dict (or any part of it).
        prefix: the path of `value` itself.

    Returns:
        `{dotted path: value}`.
    """
    items: Iterable[tuple[object, Any]]
    if isinstance(value, dict) and value:
        items = value.items()
    elif isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        items = enumerate(value)
    else:
        return {prefix: value} if prefix else {}
    flat: dict[str, Any] = {}
    for key, inner in items:
        flat.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return flat
