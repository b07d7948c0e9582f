"""YAML as `yaml.safe_load` reads it, within bounds: configs come from other people."""

import re
from typing import TYPE_CHECKING, Any

import yaml

from nnrun.errors import ConfigError, quoted

# Configs are a few KB. These bounds keep a hostile one (an alias bomb, deep
# nesting) to one line and exit 2, in well under a second.
MAX_CONFIG_BYTES = 1 << 20
MAX_NODES = 100_000  # counted with every alias expanded
MAX_DEPTH = 64


if TYPE_CHECKING:  # CSafeLoader reads alike; mypy needs one static base
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):
    """PyYAML's safe loader, libyaml's where installed."""


def parse_yaml(text: str, where: str) -> Any:
    """Reads YAML as `yaml.safe_load` does, within bounds, with errors that name the line.

    Refused (`ConfigError`): text over `MAX_CONFIG_BYTES`; a document of more
    than `MAX_NODES` nodes once its aliases are expanded, or nested deeper
    than `MAX_DEPTH`; a key given twice in one mapping (both lines named).

    Args:
        text: the YAML text.
        where: the file (or option) it came from, for messages.

    Returns:
        The plain Python value.
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: {len(text)} characters, more than a config may have ({MAX_CONFIG_BYTES})")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, where)
        return loader.construct_document(node)
    except yaml.constructor.ConstructorError as e:
        line = f":{e.problem_mark.line + 1}" if e.problem_mark else ""
        tag = re.match(r"could not determine a constructor for the tag '([^']*)'", str(e.problem))
        if not tag:
            raise ConfigError(f"{where}{line}: {e.problem}") from None
        raise ConfigError(
            f"{where}{line}: the YAML tag '{tag.group(1)}' is not allowed: "
            "configs are plain YAML and cannot construct Python objects"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        tab = _tab_at(text, mark)
        if mark is not None and tab is not None:
            at = f"{where}:{mark.line + 1}:{tab + 1}"
            raise ConfigError(f"{at}: a tab; YAML does not allow tabs for indentation: indent with spaces") from None
        line = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{where}{line}: YAML syntax error: {problem}") from None
    except (ValueError, TypeError, AttributeError) as e:
        # A standard tag with a value it cannot take, e.g. `!!int abc`.
        raise ConfigError(f"{where}: invalid YAML value: {e}") from None
    finally:
        loader.dispose()


def _tab_at(text, mark):
    """The column of the tab that YAML stopped at (or that indents its line), or None."""
    if mark is None:
        return None
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    if line[mark.column : mark.column + 1] == "\t":
        return mark.column
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    return indent.index("\t") if "\t" in indent else None


def _check_nodes(root: yaml.Node, where: str) -> None:
    """Walks the composed document as its values would be built, aliases expanded,
    and stops at the first bound it passes. Iterative: depth cannot overflow Python's stack."""
    count, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        line = node.start_mark.line + 1
        if count > MAX_NODES:
            raise ConfigError(f"{where}:{line}: more than {MAX_NODES} values once its aliases are expanded")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{where}:{line}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}  # key -> its line
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        raise ConfigError(
                            f"{where}:{key.start_mark.line + 1}: {quoted(key.value)} is given twice in one mapping "
                            f"(first on line {seen[key.value]}); remove one"
                        )
                    seen[key.value] = key.start_mark.line + 1
                stack += [(key, depth + 1), (value, depth + 1)]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(item, depth + 1) for item in node.value]
