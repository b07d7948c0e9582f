"""stdout and stderr as the commands write them: lines that survive a lost terminal, rich on stderr."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console

    from nnrun.reporter import Reporter


def echo(text: str, err: bool = False) -> None:
    """A line to stdout (or stderr), dropped when the terminal is gone.

    After SIGHUP the terminal may be gone: the run is already recorded, and the
    exit code still tells a script what happened.
    """
    try:
        click.echo(text, err=err)
    except OSError:
        pass


def console() -> Console:
    """A rich console on stderr, for progress, notes and warnings."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def reporter(quiet: bool = False) -> Reporter:
    """The command's one `Reporter`, on stderr: live where stderr is a terminal, unless `--quiet`.

    Args:
        quiet: `--quiet`: a plain line per epoch even on a terminal (no live bar).

    Returns:
        A `Reporter`.
    """
    from nnrun.reporter import Reporter

    report = Reporter()
    report.live = report.console.is_terminal and not quiet
    return report
