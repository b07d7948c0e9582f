"""The `nnrun` command: its group of commands, and every error mapped to one line and an exit code.

What a command is for goes to stdout (the run directory's path, check's
report, the schema); progress and messages go to stderr. The commands are in
init, training (train, resume, sweep, check, schema), inference (evaluate,
predict, export) and runs (runs, runs diff, runs compare).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from nnrun import __version__, signals
from nnrun.cli import inference, init, runs, streams, training
from nnrun.errors import Interrupted, NnrunError

EXIT_INTERRUPTED = 130


class _Group(click.Group):
    """A click group that reports every error in one line with its exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,  # always False: errors are reported here
        **extra: Any,
    ) -> NoReturn:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help())
            code = 0
        except click.UsageError as e:
            # `nnrun runs` lists through a hidden `list` sub-command: point at what users type.
            hint = f" (see '{e.ctx.command_path.removesuffix(' list')} --help')" if e.ctx else ""
            code = _fail(f"{e.format_message()}{hint}", e.exit_code)
        except click.ClickException as e:
            code = _fail(e.format_message(), e.exit_code)
        except (click.Abort, KeyboardInterrupt) as e:
            # click turns a KeyboardInterrupt into Abort; the signal is in its cause.
            stopped = e.__context__ if isinstance(e, click.Abort) and e.__context__ else e
            _print_run_dir(stopped)
            if isinstance(stopped, Interrupted) and not stopped.plain:
                code = _fail(f"stopped by {stopped.name}", stopped.exit_code)
            else:
                code = _fail("interrupted", EXIT_INTERRUPTED)
        except NnrunError as e:
            _print_run_dir(e)
            code = _fail(str(e), e.exit_code)
        except _ReaderGone:
            # Whoever read stdout stopped (`| head`): not an error of ours, and nothing more to say.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            code = 128 + 13  # SIGPIPE, as a shell reports it
        except Exception as e:
            if os.environ.get("NNRUN_DEBUG"):
                raise
            code = _fail(f"unexpected {type(e).__name__}: {e} (set NNRUN_DEBUG=1 for the traceback)", 1)
        sys.exit(code or 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as e:  # click would exit 1 on it
            raise _ReaderGone() from e


class _ReaderGone(Exception):
    """stdout's reader closed the pipe."""


def _print_run_dir(error: BaseException) -> None:
    # A run that stopped or failed still has a run directory (to resume, to
    # look at): stdout gets its path, as after a completed run.
    run_dir = getattr(error, "run_dir", None)
    if run_dir:
        streams.echo(str(run_dir))


def _fail(message: str, code: int) -> int:
    streams.echo(f"error: {message}", err=True)
    return code


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nnrun")
def cli() -> None:
    """Train Keras neural networks from YAML configs.

    \b
    nnrun init data.csv --target y > my.yaml  a commented starter config from the data
    nnrun train configs/quickstart.yaml      train; prints the run directory last
    nnrun check configs/quickstart.yaml      validate and build the model, no training
    nnrun resume runs/quickstart-...         continue a killed or interrupted run
    nnrun runs                               every run: status, epochs, test metric
    nnrun sweep configs/quickstart_sweep.yaml  search settings; each trial is a run
    nnrun schema > nnrun.schema.json         the config's JSON Schema

    Exit codes: 0 ok, 1 the run failed, 2 bad input, 3 quality gate,
    128+N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
    """


for command in (
    init.init,
    training.train,
    training.resume_command,
    training.sweep_command,
    training.check,
    training.schema,
    inference.evaluate,
    inference.predict,
    inference.export_command,
    runs.runs,
):
    cli.add_command(command)


def main(args: Sequence[str] | None = None, prog_name: str = "nnrun") -> NoReturn:
    """The console script's entry point."""
    signals.at_start()  # before anything else: a stop signal stops nnrun the same way from here to the end
    try:
        cli.main(args, prog_name=prog_name)
    finally:
        signals.at_exit()  # the exit code is decided: a signal in Python's teardown must not change it
