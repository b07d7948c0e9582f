"""The config's `sweep:` section: what `nnrun sweep` optimizes, and the space it searches.

Plain pydantic, as the rest of the config: validating it imports neither
Optuna nor TensorFlow. Parameters are dotted paths into the config, as
`--set` takes them (`optimizer.learning_rate`, `model.layers.0.Dense.units`).
"""

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BeforeValidator, Field, WithJsonSchema

from nnrun.config.section import Section
from nnrun.errors import did_you_mean, quoted

DEFAULT_TRIALS = 20
MAX_PARAMETERS = 100
MAX_CHOICES = 1000
# Never swept: they say where the sweep itself goes and what it searches.
FIXED = ("sweep", "output", "backend", "distribution", "tracking")
_LOWER_IS_BETTER = re.compile(r"loss|error|(^|_)(mse|mae|mape|msle|rmse|hinge|crossentropy|kl_divergence|poisson)$")


def lower_is_better(metric: str) -> bool:
    """Whether a lower value of a metric is better: losses and errors (`loss`, `mae`, `rmse`, ...).

    Args:
        metric: the metric's name as Keras logs it, without `val_`.

    Returns:
        True for losses and errors, False for the rest (accuracy, auc, r2, ...).
    """
    return bool(_LOWER_IS_BETTER.search(metric))


_SCALAR = (str, int, float, bool, type(None))


def _space(value):
    """`[a, b]` or `{choices: [...]}` -> choices; `{low, high, log?, step?}` -> a range."""
    if isinstance(value, list):
        value = {"choices": value}
    if not isinstance(value, dict):
        raise ValueError(f"expected a list of choices, or {{low: ..., high: ...}}; got {value!r}")
    if "choices" in value:
        extra = set(value) - {"choices"}
        choices = value["choices"]
        if extra:
            raise ValueError(f"choices take no other keys; got {', '.join(sorted(extra))}")
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"choices must be a list of one or more values; got {choices!r}")
        if len(choices) > MAX_CHOICES:
            raise ValueError(f"{len(choices)} choices, more than a parameter may have ({MAX_CHOICES})")
        for choice in choices:
            if not isinstance(choice, _SCALAR):
                raise ValueError(f"each choice must be a number, text, true/false or null; got {choice!r}")
        if len({repr(c) for c in choices}) != len(choices):
            raise ValueError(f"choices are listed twice: {choices!r}")
        return {"choices": choices}
    unknown = set(value) - {"low", "high", "log", "step"}
    if unknown:
        key = sorted(unknown)[0]
        hint = (
            "; a range is {low: ..., high: ...}"
            if key in ("min", "max", "lower", "upper", "from", "to")
            else did_you_mean(key, ["low", "high", "log", "step", "choices"])
        )
        raise ValueError(f"unknown key {quoted(key)}{hint}")
    space = {
        "low": value.get("low"),
        "high": value.get("high"),
        "log": value.get("log", False),
        "step": value.get("step"),
    }
    for key in ("low", "high"):
        space[key] = _number(space[key], key)
    if space["step"] is not None:
        space["step"] = _number(space["step"], "step")
    if not isinstance(space["log"], bool):
        raise ValueError(f"log must be true or false; got {space['log']!r}")
    low, high, step = space["low"], space["high"], space["step"]
    if not low < high:
        raise ValueError(f"low must be less than high; got low {low!r}, high {high!r}")
    if space["log"] and low <= 0:
        raise ValueError(f"log: true needs low above 0; got {low!r}")
    if space["log"] and step is not None:
        raise ValueError("log and step cannot both be given (Optuna samples one or the other)")
    if step is not None and step <= 0:
        raise ValueError(f"step must be above 0; got {step!r}")
    if step is not None and abs((high - low) / step - round((high - low) / step)) > 1e-9:
        # Optuna would quietly move high to the last step below it.
        raise ValueError(f"high - low ({high - low:g}) must be a whole number of steps of {step!r}")
    return space


def _number(value, key):
    if value is None:
        raise ValueError(f"'{key}' is missing: a range needs low and high")
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 as text
        for kind in (int, float):
            try:
                value = kind(value)
                break
            except ValueError:
                pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} must be a number; got {value!r}")
    return value


def _duration(value):
    """`3600`, `90s`, `30m`, `2h` -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected seconds, or a number with s, m or h (30m, 2h); got {value!r}")
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", value)
        if not match:
            raise ValueError(f"expected seconds, or a number with s, m or h (30m, 2h); got {value!r}")
        value = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    return value


def _database_url(value):
    """A URL as SQLAlchemy takes one (`dialect[+driver]://...`); never echoed, as it may hold a password."""
    if not isinstance(value, str) or not re.match(r"[A-Za-z][\w+.-]*://", value):
        kind = "text" if isinstance(value, str) else type(value).__name__
        raise ValueError(f"expected a database URL such as postgresql://user@host/db; got {kind} without '://'")
    return value


Space = Annotated[
    dict[str, Any],
    BeforeValidator(_space),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "minItems": 1},
                {
                    "type": "object",
                    "properties": {"choices": {"type": "array", "minItems": 1}},
                    "required": ["choices"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {
                        "low": {"type": "number"},
                        "high": {"type": "number"},
                        "log": {"type": "boolean"},
                        "step": {"type": "number"},
                    },
                    "required": ["low", "high"],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]


class Sweep(Section):
    """What `nnrun sweep` optimizes, how long, and the parameters it searches."""

    metric: str = Field(
        "val_loss",
        min_length=1,
        description="As history.csv names it (val_loss, val_accuracy, ...): a trial's result is its value "
        "for the model the run keeps (metrics.json).",
    )
    direction: Literal["minimize", "maximize"] | None = Field(
        None,
        description="By default minimize for losses and errors, else maximize.",
    )
    trials: int | None = Field(
        None,
        gt=0,
        strict=True,
        description=f"How many trials; {DEFAULT_TRIALS} unless time_budget is given.",
    )
    time_budget: (
        Annotated[
            float,
            BeforeValidator(_duration),
            Field(gt=0),
            WithJsonSchema(
                {
                    "anyOf": [
                        {"type": "number", "exclusiveMinimum": 0},
                        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[smh]?\s*$"},
                    ]
                }
            ),
        ]
        | None
    ) = Field(None, description="Start no trial after this long: seconds, or 30m, 2h.")
    parameters: dict[str, Space] = Field(
        min_length=1,
        max_length=MAX_PARAMETERS,
        description="Dotted config paths -> a list of choices, or {low, high, log, step}; "
        "e.g. optimizer.learning_rate: {low: 1e-4, high: 1e-1, log: true}",
    )
    seed: int | None = Field(
        None, strict=True, ge=0, lt=2**32, description="The sampler's seed; by default the config's."
    )
    pruning: bool = Field(
        True,
        description="Stop a trial whose metric is worse than the median of earlier trials at the same epoch "
        "(from the 6th trial, past the first third of training.epochs).",
    )
    storage: Annotated[str, BeforeValidator(_database_url)] | None = Field(
        None,
        description="A database URL (SQLAlchemy's form, e.g. postgresql://user@host/db) whose study several "
        "machines share, by output.name; by default a SQLite file in the sweep directory. nnrun sweep --storage "
        "and $NNRUN_SWEEP_STORAGE override it, and keep a password out of the config.",
    )

    @pydantic.model_validator(mode="after")
    def _defaults(self) -> "Sweep":
        if self.direction is None:
            self.direction = "minimize" if lower_is_better(self.metric.removeprefix("val_")) else "maximize"
        if self.trials is None and self.time_budget is None:
            self.trials = DEFAULT_TRIALS
        return self


def samples(space: Mapping[str, Any]) -> list[Any]:
    """Values a space can take: every choice; a range's ends and a value between them of the kind
    Optuna draws (a float range gives floats, which an integer setting refuses)."""
    if "choices" in space:
        return space["choices"]
    low, high = space["low"], space["high"]
    middle = (low + high) / 2 if is_float(space) else (low + high) // 2
    return [low, middle, high]


def is_float(space: Mapping[str, Any]) -> bool:
    """Whether a space's values are floats: choices are not; a range is unless low, high and step are whole."""
    return not (all(isinstance(space[k], int) for k in ("low", "high")) and isinstance(space["step"] or 1, int))
