"""stdout and stderr as the commands write them: lines that survive a lost terminal, rich on stderr."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console


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
