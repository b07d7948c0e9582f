"""preprocessing.json's schema: what a run directory may say about its inputs, checked on load.

A run directory comes from someone else as often as not; evaluate and predict
apply its preprocessing.json to raw inputs, so a missing key, a wrong type or a
huge rescale must be refused in one line (exit 2), not turn into a KeyError in
the middle of predicting, or into silently wrong numbers.
"""

import math
import os
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from nnrun.data.columns import DATE_PARTS
from nnrun.errors import RunDirError, place

# What this nnrun writes and reads; a run written by a newer one is refused, not misread.
VERSION = 1

Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
# Printed in predict's table: no control characters (a terminal's escape sequences).
Name = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"^[^\x00-\x1f\x7f]*$")]
# Pixels are scaled by 1/255 or 1/65535; nothing sane multiplies inputs by more.
Rescale = Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Common(_Strict):
    version: Literal[1] = 1  # runs written before the version was recorded have none
    input_shape: list[Annotated[int, Field(gt=0, le=100_000)]] = Field(min_length=1, max_length=4)
    rescale: Rescale = None
    task: Literal["classification", "regression"]
    class_names: list[Name] | None = Field(None, min_length=2, max_length=100_000)
    one_hot_labels: bool = False
    notes: list[Annotated[str, Field(max_length=100_000)]] = Field(default_factory=list, max_length=100_000)


class Standard(_Strict):
    method: Literal["standard"]
    mean: list[Finite]
    scale: list[Positive]


class MinMax(_Strict):
    method: Literal["minmax"]
    min: list[Finite]
    scale: list[Positive]


class ArrayPreprocessing(_Common):
    kind: Literal["array"]
    scaling: Annotated[Standard | MinMax, Field(discriminator="method")] | None = None


class Numeric(_Strict):
    fill: Finite
    mean: Finite | None = None
    min: Finite | None = None
    scale: Positive | None = None


class Categorical(_Strict):
    fill: str
    categories: list[str] = Field(min_length=1)


class DateColumn(_Strict):
    format: str = Field(min_length=2, max_length=100)


class Reading(_Strict):
    sep: str | None = Field(None, min_length=1, max_length=1)
    quotechar: str | None = Field(None, min_length=1, max_length=1)
    decimal: str = Field(".", min_length=1, max_length=1)
    encoding: str = Field("utf-8", pattern=r"^[A-Za-z0-9_.:-]{1,40}$")
    na_values: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=1000)


class TablePreprocessing(_Common):
    kind: Literal["table"]
    columns: list[Name] = Field(min_length=1)
    numeric: dict[str, Numeric]
    categorical: dict[str, Categorical]
    dates: dict[str, DateColumn] = Field(default_factory=dict)
    read: Reading = Field(default_factory=Reading)


class ImagePreprocessing(_Common):
    kind: Literal["images"]
    image_size: list[Annotated[int, Field(gt=0, le=10_000)]] = Field(min_length=2, max_length=2)
    color_mode: Literal["rgb", "grayscale"]
    cache: bool = False


Preprocessing = pydantic.TypeAdapter(
    Annotated[ArrayPreprocessing | TablePreprocessing | ImagePreprocessing, Field(discriminator="kind")]
)


def check(preprocessing: Any, where: str | os.PathLike[str]) -> dict[str, Any]:
    """Validates a run's preprocessing.json, and that its parts agree with each other.

    Args:
        preprocessing: the parsed JSON.
        where: the file, for messages.

    Returns:
        The same dict, once it is known to be sound.
    """
    if isinstance(preprocessing, dict) and "kind" not in preprocessing:
        preprocessing = {**preprocessing, "kind": "array"}  # runs written before `kind` existed
    version = preprocessing.get("version", 1) if isinstance(preprocessing, dict) else 1
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise RunDirError(
            f"'{where}': version {version}, written by a newer nnrun (this one reads version {VERSION}); upgrade nnrun"
        )
    try:
        found = Preprocessing.validate_python(preprocessing)
    except pydantic.ValidationError as e:
        error = e.errors()[0]
        where_in = place(p for p in error["loc"][1:] if p != "function-after")
        # The place and the rule, never the value: a run directory's files are named, not quoted.
        raise RunDirError(f"'{where}': {where_in}: {error['msg'][0].lower()}{error['msg'][1:]}") from None
    problem = _disagreement(found)
    if problem:
        raise RunDirError(f"'{where}': {problem}")
    return preprocessing


def _disagreement(p):
    """What in a preprocessing contradicts the rest of it, or None."""
    if (p.task == "classification") != (p.class_names is not None):
        return f"task is {p.task} but class_names is {'missing' if p.class_names is None else 'given'}"
    if p.class_names is not None and len(set(p.class_names)) != len(p.class_names):
        return "class_names has the same name twice"
    width = math.prod(p.input_shape)
    if p.kind == "array" and p.scaling is not None:
        sizes = {len(v) for k, v in p.scaling.model_dump().items() if k != "method"}
        if sizes != {width}:
            return f"scaling has {sorted(sizes)} values for inputs of {width} features"
    if p.kind == "table":
        methods = {(c.mean is not None, c.min is not None, c.scale is not None) for c in p.numeric.values()}
        if len(methods) > 1 or methods - {(False, False, False), (True, False, True), (False, True, True)}:
            return "numeric columns must all have mean and scale, all min and scale, or none of them"
        encoded = len(p.numeric) + sum(len(c.categories) for c in p.categorical.values())
        plain = set(p.columns) - set(p.categorical) - set(p.dates)
        parts = {f"{name}.{part}" for name in p.dates for part in DATE_PARTS}
        if (
            encoded != width
            or set(p.numeric) != plain | parts
            or not set(p.categorical) | set(p.dates) <= set(p.columns)
        ):
            return f"columns, numeric, categorical and dates do not make the model's {width} inputs"
        if set(p.categorical) & set(p.dates):
            return "a column is both categorical and a date"
    if p.kind == "images":
        channels = 1 if p.color_mode == "grayscale" else 3
        if p.input_shape != [*p.image_size, channels]:
            return f"input_shape {p.input_shape} is not image_size {p.image_size} with {channels} channel(s)"
    return None
