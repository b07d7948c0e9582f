"""The config's JSON Schema as a config is written, for editors (`nnrun schema`).

pydantic describes the validated config; a YAML file says more: numbers as
YAML 1.1 text (`1e-4`), `rescale: 1/255`, short forms of `model:` and
`tracking:`. This module widens pydantic's schema to what `config.load` accepts.
"""

from typing import Any

from nnrun.config import schema as config
from nnrun.config.keras_specs import SCIENTIFIC
from nnrun.config.tracking_section import TRACKERS


def json_schema() -> dict[str, Any]:
    """Returns the config's JSON Schema, for editors and the YAML language server."""
    schema = config.Config.model_json_schema()
    # The short forms the validators accept: `tracking: [tensorboard]`, `mlflow: true`.
    defs = schema["$defs"]
    for name in TRACKERS:
        defs["Tracking"]["properties"][name]["anyOf"].insert(1, {"type": "boolean"})
    names = {"enum": [*TRACKERS, "none"]}
    schema["properties"]["tracking"] = {
        "anyOf": [schema["properties"]["tracking"], names, {"type": "array", "items": names}]
    }
    layers = defs["Model"]["properties"]["layers"]  # `model: [layers...]`, the short form
    schema["properties"]["model"] = {
        "anyOf": [schema["properties"]["model"], {"type": "array", "minItems": 1, "items": layers["items"]}]
    }
    schema = _as_written(schema)
    for definition in defs.values():  # `rescale: 1/255`, as Keras users write it
        rescale = definition.get("properties", {}).get("rescale")
        if rescale:
            rescale["anyOf"].append({"type": "string", "pattern": config.FRACTION.pattern})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "nnrun config"
    return schema


_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}


def _as_written(node):
    """The schema of the input, not of the validated config: a number may also be text such as
    `1e-4`, which YAML 1.1 reads as a string and the validators read as a number."""
    if isinstance(node, dict):
        for bound, keyword in _BOUNDS.items():  # pydantic's names, where a validator wraps the field
            if bound in node and node.get("type") in ("number", "integer"):
                node[keyword] = node.pop(bound)
        if node.get("type") == "number":
            number = {k: v for k, v in node.items() if k not in ("default", "description", "title")}
            about = {k: v for k, v in node.items() if k in ("default", "description", "title")}
            return {**about, "anyOf": [number, {"type": "string", "pattern": SCIENTIFIC.pattern}]}
        node.update({k: _as_written(v) for k, v in node.items()})
        return node
    if isinstance(node, list):
        node[:] = [_as_written(v) for v in node]
    return node
