"""A sweep's search space at work: Optuna's suggestions, a trial's config, the checks before the first trial.

The space itself is the config's `sweep:` section (`nnrun.config.sweep_section`),
validated with the config; what only a sweep does with it is here.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nnrun.config.overrides import set_path
from nnrun.config.sweep_section import Sweep, is_float, samples
from nnrun.config.validation import validate, without_sweep
from nnrun.errors import ConfigError, did_you_mean
from nnrun.model.names import snake_case

if TYPE_CHECKING:
    import optuna

    from nnrun.config.schema import Config


def check_metric(config: "Config", has_validation: bool) -> str | None:
    """Refuses a sweep metric that is a typo of one the runs will log, or the test split's.

    The names are those history.csv will have: the loss and each metric of
    the config (snake_case), with `val_` when there is a validation split.
    Unlike a typo, a name nothing resembles is left for the first epoch to
    settle (Keras may name a metric its own way).

    Args:
        config: the validated `Config`, with a sweep section.
        has_validation: whether the runs have a validation split.

    Returns:
        A note for the user when the name could not be checked, else None.
    """
    assert config.sweep is not None  # called only with a sweep section
    metric = config.sweep.metric
    names = ["loss", *(snake_case(m["name"]) for m in config.metrics)]
    names += [f"{n}_macro" for n in names if n.startswith("f1_score") or n.startswith("fbeta")]
    logged = names + ([f"val_{n}" for n in names] if has_validation else [])
    if metric.startswith("test_"):
        raise ConfigError(
            "sweep.metric: a sweep chooses on the validation split, never the test split "
            f"(it would no longer be a test); use val_{metric[len('test_') :]}; got {metric!r}"
        )
    if metric.startswith("val_") and not has_validation:
        raise ConfigError(f"sweep.metric: {metric!r} needs a validation split; set training.validation_split, e.g. 0.1")
    if metric in logged or metric == "learning_rate":
        return None
    suggestion = did_you_mean(metric, logged)
    if suggestion:
        raise ConfigError(f"sweep.metric: {metric!r} is not a metric the runs log{suggestion}")
    return f"sweep.metric {metric!r} is none of {', '.join(logged)}: the first epoch will tell whether Keras logs it"


def apply(config: "Config", params: Mapping[str, Any], where: str) -> "Config":
    """The config with a trial's values set, without its sweep section.

    Args:
        config: the validated `Config`, with a sweep section.
        params: `{dotted path: value}`.
        where: what asks, for messages.

    Returns:
        The validated `Config`.
    """
    resolved = without_sweep(config)
    for path, value in params.items():
        set_path(resolved, path, value, f"{where}: sweep.parameters['{path}']")
    trial = validate(resolved, where)
    trial._backend_reason = config.backend_reason  # every trial runs on the sweep's backend, chosen once
    return trial


def contains(sweep: Sweep, params: Mapping[str, Any]) -> bool:
    """Whether values (a study's, perhaps another's) are each in the space of their parameter."""
    if set(params) != set(sweep.parameters):
        return False
    for path, value in params.items():
        space = sweep.parameters[path]
        if "choices" in space:
            if not any(type(value) is type(c) and value == c for c in space["choices"]):
                return False
        elif (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not space["low"] <= value <= space["high"]
        ):
            return False
    return True


def describe(sweep: Sweep) -> str:
    """`maximize val_accuracy over optimizer.learning_rate, units; 20 trials; median pruning`."""
    budget = " and ".join(
        filter(
            None,
            [f"{sweep.trials} trials" if sweep.trials else "", f"{sweep.time_budget:g} s" if sweep.time_budget else ""],
        )
    )
    return f"{sweep.direction} {sweep.metric} over {', '.join(sweep.parameters)}; {budget}" + (
        "; median pruning" if sweep.pruning else ""
    )


def first_point(sweep: Sweep) -> dict[str, Any]:
    """Each parameter at its first value (low, or the first choice): the config `nnrun check` builds."""
    return {path: samples(space)[0] for path, space in sweep.parameters.items()}


def suggest(trial: "optuna.Trial", sweep: Sweep) -> dict[str, Any]:
    """Asks an Optuna trial for a value of each parameter.

    Args:
        trial: an `optuna.Trial`.
        sweep: the `Sweep` section.

    Returns:
        `{dotted path: value}`.
    """
    values: dict[str, Any] = {}
    for path, space in sweep.parameters.items():
        if "choices" in space:
            values[path] = trial.suggest_categorical(path, space["choices"])
        elif not is_float(space):
            values[path] = trial.suggest_int(
                path, space["low"], space["high"], step=space["step"] or 1, log=space["log"]
            )
        else:
            values[path] = trial.suggest_float(path, space["low"], space["high"], step=space["step"], log=space["log"])
    return values
