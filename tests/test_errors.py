"""nnrun.errors: the run directory travels on the error raised where it became known."""

import signal
from pathlib import Path

from nnrun import errors


def test_an_error_raised_again_carries_the_run_directory_and_keeps_its_kind():
    found = errors.carrying(errors.DataError("data.path: no such file"), Path("runs/a"))
    assert isinstance(found, errors.DataError) and found.exit_code == 2
    assert str(found) == "data.path: no such file" and found.run_dir == Path("runs/a")


def test_a_plain_ctrl_c_becomes_an_interrupt_that_carries_the_run_directory():
    found = errors.carrying(KeyboardInterrupt(), Path("runs/a"))
    assert isinstance(found, errors.Interrupted) and found.plain, "nnrun then says 'interrupted', as before"
    assert (found.name, found.exit_code, found.run_dir) == ("SIGINT", 130, Path("runs/a"))


def test_an_error_raised_again_keeps_an_exit_code_set_on_it_and_needs_no_arguments_of_its_kind():
    from nnrun.config import overrides

    failed = errors.ConfigError("export: stopped by SIGTERM")
    failed.exit_code = 143  # an export's child process, stopped by a signal
    again = errors.carrying(failed, Path("runs/a"))
    assert (type(again), again.exit_code, str(again), again.run_dir) == (
        errors.ConfigError,
        143,
        "export: stopped by SIGTERM",
        Path("runs/a"),
    )
    path_error = overrides.PathError(["training", "epochz"], 1, {"epochs": 3})
    assert errors.carrying(path_error, Path("runs/a")).here == "training.epochz"


def test_a_signal_keeps_its_name_and_exit_code():
    found = errors.carrying(errors.Interrupted(signal.SIGTERM), Path("sweeps/s"))
    assert (found.name, found.exit_code, found.run_dir) == ("SIGTERM", 143, Path("sweeps/s"))


def test_any_other_exception_is_left_as_it_is():
    error = ValueError("x")
    assert errors.carrying(error, Path("runs/a")) is error


def test_did_you_mean_offers_the_name_users_write_where_keras_has_it_in_two_cases():
    from nnrun.errors import did_you_mean

    assert did_you_mean("acuracy", ["Accuracy", "accuracy", "AUC"]) == "; did you mean 'accuracy'?"
    assert did_you_mean("acuracy", ["accuracy", "Accuracy"]) == "; did you mean 'accuracy'?"
    assert did_you_mean("dens", ["Dense", "Dropout"]) == "; did you mean 'Dense'?"
