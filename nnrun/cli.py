"""The `nnrun` command: parse, call one function, print with rich, map errors to exit codes.

What a command is for goes to stdout (the run directory's path, check's
report, the schema); progress and messages go to stderr.
"""

import contextlib
import json
import os
import sys
from pathlib import Path

import click

from nnrun import __version__
from nnrun.errors import BadInput, NnrunError

EXIT_INTERRUPTED = 130


class _Group(click.Group):
    """A click group that reports every error in one line with its exit code."""

    def main(self, args=None, prog_name=None, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            code = super().main(args, prog_name, **kwargs)
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help())
            code = 0
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
            code = _fail(f"{e.format_message()}{hint}", e.exit_code)
        except click.ClickException as e:
            code = _fail(e.format_message(), e.exit_code)
        except (click.Abort, KeyboardInterrupt):
            code = _fail("interrupted", EXIT_INTERRUPTED)
        except NnrunError as e:
            code = _fail(str(e), e.exit_code)
        except Exception as e:
            if os.environ.get("NNRUN_DEBUG"):
                raise
            code = _fail(f"unexpected {type(e).__name__}: {e} (set NNRUN_DEBUG=1 for the traceback)", 1)
        sys.exit(code or 0)


def _fail(message, code):
    click.echo(f"error: {message}", err=True)
    return code


@contextlib.contextmanager
def _about(config_file):
    """Names the config file in bad-input errors found after loading it (model, data)."""
    try:
        yield
    except BadInput as e:
        if str(e).startswith(str(config_file)):
            raise
        raise type(e)(f"{config_file}: {e}") from None


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


config_argument = click.argument("config_file", metavar="CONFIG", type=click.Path(path_type=Path))
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a config value, e.g. --set training.epochs=3 (repeatable; the value is read as YAML).",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nnrun")
def cli():
    """Train Keras neural networks from YAML configs.

    \b
    nnrun train configs/quickstart.yaml      train; prints the run directory last
    nnrun check configs/quickstart.yaml      validate and build the model, no training
    nnrun schema > nnrun.schema.json         the config's JSON Schema

    Exit codes: 0 ok, 1 the run failed, 2 bad input, 3 quality gate, 130 interrupted.
    """


@cli.command()
@config_argument
@set_option
@click.option("-q", "--quiet", is_flag=True, help="One plain line per epoch instead of a progress bar.")
def train(config_file, overrides, quiet):
    """Train the model CONFIG describes; print the new run directory last."""
    from nnrun import config, train as training

    resolved = config.load(config_file, overrides)
    console = _console()
    with _about(config_file):
        run_dir = training.train(resolved, console, live=console.is_terminal and not quiet, config_file=config_file)
    _print_metrics(console, run_dir)
    click.echo(str(run_dir))


@cli.command()
@config_argument
@set_option
def check(config_file, overrides):
    """Validate CONFIG, load its data and build its model, without training."""
    from nnrun import config, train as training

    resolved = config.load(config_file, overrides)
    with _about(config_file):
        setup = training.setup(resolved)
    ds = setup.dataset
    setup.model.summary(print_fn=lambda text, line_break=True: click.echo(text, nl=line_break))
    classes = f"{len(ds.class_names)} classes" if ds.is_classification else "regression"
    val = 0 if ds.y_val is None else len(ds.y_val)
    click.echo(
        f"data: {len(ds.y_train)} train, {val} validation, {len(ds.y_test)} test samples of shape "
        f"{tuple(ds.preprocessing['input_shape'])}; {classes}"
    )
    click.echo(f"{config_file}: ok")


@cli.command()
def schema():
    """Print the config's JSON Schema (for editors and the YAML language server)."""
    from nnrun import config

    click.echo(json.dumps(config.json_schema(), indent=2))


def _print_metrics(console, run_dir):
    from rich.table import Table

    from nnrun import rundir

    metrics = rundir.read_json(Path(run_dir) / rundir.METRICS)
    names = list(dict.fromkeys(k for split in metrics.values() for k in split))
    table = Table("split", *names, title="final metrics")
    for split, values in metrics.items():
        table.add_row(split, *("-" if values.get(n) is None else f"{values[n]:.4f}" for n in names))
    console.print(table)


def main(args=None, prog_name="nnrun"):
    """The console script's entry point."""
    cli.main(args, prog_name=prog_name)
