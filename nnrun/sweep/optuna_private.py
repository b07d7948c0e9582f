"""The two places where a sweep needs Optuna's private API, each behind one function that says why.

`tests/test_sweep.py` runs both on a real study, so an Optuna release that
changes them fails a test rather than a sweep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Optuna is imported where used; here for annotations only
    import optuna


def trial_id(trial: optuna.trial.FrozenTrial | optuna.Trial) -> int:
    """The id of a trial in its study's storage (not its number).

    Optuna's public API has no way to read it, from a `Trial` or a
    `FrozenTrial` (`_trial_id` on both); the storage's methods take it.

    Args:
        trial: a trial of the study.

    Returns:
        Its storage id.
    """
    return trial._trial_id


def set_user_attr(study: optuna.Study, trial: optuna.trial.FrozenTrial | optuna.Trial, key: str, value: Any) -> None:
    """Sets a user attribute on a running trial that this process did not `ask` for.

    Optuna's public `Trial.set_user_attr` needs the `Trial` object `ask`
    returned; a trial left running by a sweep that died is only a
    `FrozenTrial` to the process that recovers it, and nothing public sets
    an attribute on one: its study's storage (`study._storage`) does.

    Args:
        study: the trial's study.
        trial: the trial, as `study.get_trials()` gives it.
        key: the attribute's name.
        value: a JSON-serializable value.
    """
    study._storage.set_trial_user_attr(trial_id(trial), key, value)
