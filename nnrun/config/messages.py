"""The config schema's errors in nnrun's words: one line that names the place, the value and what to write.

pydantic's own messages ("input should be a valid tuple") say what its types
are; these say what the config should hold. An unknown key that another
section (or another data source) takes says where it belongs.
"""

import functools
import re
from typing import Any, get_args

from nnrun.config.schema import DATA_SOURCES, Config, DataBase
from nnrun.config.section import Masked, Section, UnknownKeys
from nnrun.errors import did_you_mean, quoted

# Keys people write in the wrong place that are Keras arguments, not fields of a section.
KERAS_HOMES = {"learning_rate": "optimizer.learning_rate"}
# Values that may hold a password (a database URL): their messages never show what was received.
SECRET = ("sweep.storage",)


def describe(error: Any) -> str:
    """One pydantic error as `place: what is wrong; got value`.

    Args:
        error: one of `pydantic.ValidationError.errors()`.

    Returns:
        The line, without the file's name.
    """
    loc = [p for i, p in enumerate(error["loc"]) if not (i == 1 and error["loc"][0] == "data" and p in DATA_SOURCES)]
    place = (
        "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" if re.fullmatch(r"\w+", p) else f"[{quoted(p)}]"
            for p in loc  # a sweep's dotted paths, keys from the file
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
    if kind == "value_error" and isinstance(ctx.get("error"), Masked):
        return f"{place}: {ctx['error']}"
    if kind == "value_error" and isinstance(ctx.get("error"), UnknownKeys):
        return f"{place}: {_unknown(ctx['error'], place)}"
    if kind in ("list_type", "tuple_type", "set_type"):
        return f"{place}: expected a list{_as_list(received)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{place}: expected a mapping (key: value lines, or {{key: value}}); got {received!r}"
    if kind in ("too_short", "too_long") and isinstance(received, (list, tuple)):
        bound = f"at least {ctx.get('min_length')}" if kind == "too_short" else f"at most {ctx.get('max_length')}"
        return f"{place}: expected {bound} items; got {len(received)}"
    if kind == "value_error":
        message = str(ctx["error"])
        if repr(received) in message or f"'{received}'" in message:
            return f"{place}: {message}"
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
    if not isinstance(received, (dict, list)) and place not in SECRET:
        message += f"; got {received!r}"
    if kind == "literal_error" and isinstance(received, str):
        message += did_you_mean(received, re.findall(r"'([^']*)'", ctx["expected"]))
    return f"{place}: {message}"


def _as_list(received):
    """`; got 'A,B': write [A, B]`: a list where one value was given, as --set writes it."""
    if isinstance(received, str):
        items = [item.strip() for item in received.split(",") if item.strip()]
        fix = f": write [{', '.join(items)}]" if items and received.isprintable() else ""
        return f"; got {received!r}{fix}"
    if isinstance(received, dict):
        return " (- item lines, or [a, b]); got a mapping"
    return f"; got {received!r}: write [{received!r}]" if isinstance(received, (int, float)) else ""


def _unknown(error, place):
    """The message for keys a section does not take: where each belongs, when another section takes it."""
    section, keys = error.section, error.keys
    if issubclass(section, DataBase):
        source = _source(section)
        elsewhere = [k for k in keys if any(k in other.model_fields for other in _data_sources().values())]
        if elsewhere:
            takers = [s for s, other in _data_sources().items() if set(elsewhere) & set(other.model_fields)]
            return (
                f"source {quoted(source)} does not take {', '.join(elsewhere)} "
                f"(key{'s' * (len(elsewhere) > 1)} of source {' and '.join(takers)}); remove "
                f"{'them' if len(elsewhere) > 1 else 'it'} or set data.source to what the data is"
            )
    key = keys[0]
    homes = [h for h in _homes(key) if not (place != "config" and h == f"{place}.{key}")]
    if not homes:
        return str(error)
    shallowest = min(h.count(".") for h in homes)
    homes = [h for h in homes if h.count(".") == shallowest]
    if shallowest == 0:
        return f"unknown key {quoted(key)}; it is a top-level key ({key}: at the start of a line)"
    parent = homes[0].rpartition(".")[0]
    where = f"under {parent} ({homes[0]})" if len(homes) == 1 else f"under {' or '.join(homes)}"
    return f"unknown key {quoted(key)}; it belongs {where}"


def _homes(key):
    """Every dotted path at which the config takes `key`, besides Keras arguments."""
    found = [path for path in _paths() if path.rpartition(".")[2] == key]
    return found + ([KERAS_HOMES[key]] if key in KERAS_HOMES else [])


@functools.cache
def _paths():
    """The dotted path of every field of every section, `data.target` for each source's own."""
    paths: list[str] = []

    def walk(model, prefix):
        for name, field in model.model_fields.items():
            path = f"{prefix}.{name}" if prefix else name
            if path not in paths:
                paths.append(path)
            for inner in _sections(field.annotation):
                if prefix.count(".") < 3:
                    walk(inner, path)

    walk(Config, "")
    return tuple(paths)


def _sections(annotation):
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return [annotation]
    return [s for arg in get_args(annotation) for s in _sections(arg)]


@functools.cache
def _data_sources():
    return {_source(s): s for s in _sections(Config.model_fields["data"].annotation)}


def _source(section):
    return get_args(section.model_fields["source"].annotation)[0]
