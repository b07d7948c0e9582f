"""`nnrun runs`: the runs side by side (a table), `runs diff` (two configs), `runs compare` (curves)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from nnrun.cli import streams
from nnrun.rundir.status import Status


class _RunsGroup(click.Group):
    """`nnrun runs [RUNS_DIR]` lists the runs; `diff` and `compare` are its sub-commands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_RunsGroup)
def runs() -> None:
    """The runs side by side.

    \b
    nnrun runs [RUNS_DIR] [--status S] [--name PATTERN] [--json]   a table, newest first
    nnrun runs diff A B                                         config differences and metrics
    nnrun runs compare A B ... [--output PNG]                   learning curves on one plot
    """


@runs.command(name="list", hidden=True)
@click.argument("runs_dir", metavar="[RUNS_DIR]", required=False, default=Path("runs"), type=click.Path(path_type=Path))
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in Status if s is not Status.UNKNOWN]),
    help="Only runs with this status (repeatable).",
)
@click.option("--name", help="Only runs whose name matches this pattern (e.g. 'mnist*') or contains it.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array on stdout.")
def list_runs(runs_dir: Path, statuses: tuple[str, ...], name: str | None, as_json: bool) -> None:
    """The runs in RUNS_DIR (default: runs), newest first."""
    from nnrun.cli import render
    from nnrun.errors import RunDirError
    from nnrun.rundir import runs as runs_lib

    if not runs_dir.is_dir():
        raise RunDirError(f"runs folder '{runs_dir}' does not exist")
    found = runs_lib.summaries(runs_dir, statuses, name)
    console = streams.console()
    for path, why in found.broken:
        console.print(f"warning: {path}: skipped: {why}", style="yellow", soft_wrap=True, markup=False)
    if as_json:
        click.echo(json.dumps(found.to_json()))
    else:
        render.print_runs(found.runs, runs_dir, filtered=bool(statuses or name))


@runs.command(name="diff")
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def diff_runs(a: Path, b: Path, as_json: bool) -> None:
    """How two runs' resolved configs differ (key paths as --set names them), and their metrics."""
    from nnrun.cli import render
    from nnrun.rundir import runs as runs_lib

    found = runs_lib.diff(a, b)
    console = streams.console()
    for problem in found.problems:
        console.print(f"warning: {problem}", style="yellow", soft_wrap=True, markup=False)
    if as_json:
        click.echo(json.dumps(found.to_json()))
    else:
        render.print_diff(found)


@runs.command(name="compare")
@click.argument("run_dirs", metavar="RUN_DIR...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--output", type=click.Path(path_type=Path), help="The PNG to write (default: compare-<time>.png beside the runs)."
)
def compare_runs(run_dirs: tuple[Path, ...], output: Path | None) -> None:
    """Plot the learning curves of several runs on one figure; print its path."""
    from nnrun.rundir import runs as runs_lib

    if len({p.resolve() for p in run_dirs}) < 2:
        raise click.UsageError("give at least two different run directories to compare")
    click.echo(str(runs_lib.compare(run_dirs, output)))
