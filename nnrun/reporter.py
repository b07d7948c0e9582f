"""Where a command says what it does while it works: one `Reporter`, on stderr.

A command's result is data that the CLI renders; progress, notes and warnings
go through the reporter the CLI made, so stdout carries only what scripts read.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from rich.console import Console


class Reporter:
    """Says what a command does, on stderr: plain lines, notes, warnings, a spinner.

    Args:
        live: show progress live (a bar, a spinner) rather than one line per step;
            true where stderr is a terminal and the user did not ask for `--quiet`.
        quiet: say nothing at all (a process other than 0 of a run, a sweep's trial).
    """

    def __init__(self, live: bool = False, quiet: bool = False) -> None:
        self.live, self.quiet = live, quiet

    @functools.cached_property
    def console(self) -> Console:
        """The rich console on stderr that everything is said on, made on first use."""
        from rich.console import Console

        return Console(stderr=True, highlight=False, quiet=self.quiet)

    def say(self, text: str) -> None:
        """Prints a line as it is."""
        self.console.print(text, highlight=False, soft_wrap=True, markup=False)

    def note(self, text: str) -> None:
        """Prints a line dimmed: what was done on its own (a default filled in, where a run went)."""
        self.console.print(text, style="dim", highlight=False, soft_wrap=True, markup=False)

    def warn(self, text: str) -> None:
        """Prints a line in yellow: something the user may want to act on; the work goes on."""
        self.console.print(text, style="yellow", highlight=False, soft_wrap=True, markup=False)

    def print(self, renderable: Any) -> None:
        """Prints a rich renderable (a table) as rich lays it out."""
        self.console.print(renderable)

    def status(self, text: str) -> AbstractContextManager[Any]:
        """A spinner with `text` while the block runs (shown on a terminal only).

        Args:
            text: what is being done ('exporting onnx').

        Returns:
            A context manager.
        """
        return self.console.status(text)
