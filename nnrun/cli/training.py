"""The commands that read a config: train, resume, sweep, check, and schema (the config's JSON Schema)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nnrun import errors
from nnrun.cli import streams
from nnrun.cli.options import config_argument, quiet_option, set_option, tracker_option
from nnrun.errors import BadInput, NnrunError

if TYPE_CHECKING:
    from nnrun.config.schema import Config
    from nnrun.reporter import Reporter
    from nnrun.training.distribution import Plan


@click.command()
@config_argument
@set_option
@quiet_option
@click.option(
    "--resume-if-possible",
    is_flag=True,
    help="Resume the newest unfinished run of this same config if there is one (for CI retries); else start a new run.",
)
@tracker_option
def train(
    config_file: Path, overrides: tuple[str, ...], quiet: bool, resume_if_possible: bool, trackers: tuple[str, ...]
) -> None:
    """Train the model CONFIG describes; print the new run directory last."""
    from nnrun import backend
    from nnrun.config import loading as config
    from nnrun.training import distribution

    resolved = config.load(config_file, overrides)  # before the heavy imports: a bad config fails fast
    resolved = config.with_trackers(resolved, trackers)
    if resolved.sweep:
        streams.echo(
            f"note: {config_file} has a sweep section, which nnrun sweep runs; this trains the config as it is",
            err=True,
        )
    plan = distribution.plan(resolved)
    if resume_if_possible:
        _in_one_process(plan, "--resume-if-possible")
    backend.use(resolved.backend)
    from nnrun.training import resume
    from nnrun.training import train as training

    report = streams.reporter(quiet)
    found = resume.newest_unfinished(resolved) if resume_if_possible else None
    run_dir: Path | None
    with _about(config_file, overrides):
        if found:
            report.print(f"resuming the unfinished run {found} of this config")  # wrapped, as it always was
            kept = _resumable_settings(resolved, resume.RESUMABLE)
            run_dir = resume.resume(found, report, kept, trackers=trackers)
        else:
            if resume_if_possible:
                report.note("no unfinished run of this config to resume: starting a new one")
            run_dir = training.train(resolved, report, config_file=config_file)
    if run_dir is None:  # a process other than 0 of a multi-process run: it said so
        return
    _completed(resolved, run_dir, report)


@click.command(name="resume")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@set_option
@click.option(
    "--force",
    is_flag=True,
    help="Resume even if the data changed since the run started, or the run says it runs on another host.",
)
@quiet_option
@tracker_option
def resume_command(
    run_dir: Path, overrides: tuple[str, ...], force: bool, quiet: bool, trackers: tuple[str, ...]
) -> None:
    """Continue a killed, interrupted or failed run from its last backup, in RUN_DIR.

    Only options that cannot change the result may be --set: training.epochs,
    training.fine_tune.epochs, training.backup_every_steps, output.keep_backup, output.save_h5.
    """
    from nnrun.rundir import files as rundir
    from nnrun.training import resume

    report = streams.reporter(quiet)
    run_dir = resume.resume(run_dir, report, overrides, force, trackers=trackers)
    _completed(rundir.read_config(run_dir), run_dir, report)


@click.command(name="sweep")
@click.argument("target", metavar="CONFIG|SWEEP_DIR", type=click.Path(path_type=Path))
@set_option
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Trials run at once, each in a process of its own.",
)
@click.option(
    "--storage",
    metavar="URL",
    help="The database of a study that sweeps on several machines share, e.g. postgresql://user:pw@host/db "
    "(else $NNRUN_SWEEP_STORAGE, else sweep.storage); by default a SQLite file in the sweep directory.",
)
@tracker_option
def sweep_command(
    target: Path, overrides: tuple[str, ...], jobs: int, storage: str | None, trackers: tuple[str, ...]
) -> None:
    """Search the parameters CONFIG's sweep section names; each trial is a run.

    Given a sweep directory instead, continue that sweep where it stopped
    (--set sweep.trials=N lengthens it). Prints the sweep directory last.

    With a shared study (--storage), the same command on other machines
    joins the study of the config's output.name: each runs trials, and each
    sweep directory shows the whole study.
    """
    from nnrun import backend
    from nnrun.cli import render
    from nnrun.config import loading as config
    from nnrun.sweep import command as sweep
    from nnrun.sweep import study
    from nnrun.training import distribution

    report = streams.reporter()
    if target.is_dir():
        if not sweep.is_sweep(target):
            raise click.UsageError(f"'{target}' is a folder but not a sweep directory (it has no {study.STATE})")
        if trackers:
            raise click.UsageError("a sweep continues with its own config: --tracker is for a new sweep")
        saved = config.load(target / study.CONFIG)
        _in_one_process(distribution.plan(saved), "nnrun sweep")
        backend.use(saved.backend)
        swept = sweep.run(target, report, jobs, overrides, storage)
    else:
        resolved = config.with_trackers(config.load(target, overrides), trackers)  # before the heavy imports
        if resolved.sweep is None:
            raise click.UsageError(f"{target} has no sweep section (see the README: Searching for better settings)")
        _in_one_process(distribution.plan(resolved), "nnrun sweep")
        with _about(target):
            sweep.check_available()
        shared = sweep.connect(resolved, target, storage)  # a database that fails is named before any training
        backend.use(resolved.backend)
        with _about(target, overrides):
            sweep.check(resolved, report)  # a bad space fails before the first trial
            swept = sweep.start(resolved, target, report, jobs, shared)
    report.say(render.best_trial(swept))
    click.echo(str(swept.sweep_dir))


@click.command()
@config_argument
@set_option
@click.option(
    "--storage",
    metavar="URL",
    help="A sweep's study's database, as nnrun sweep takes it (else $NNRUN_SWEEP_STORAGE, else sweep.storage): "
    "its driver and connection are tried, nothing is made in it.",
)
def check(config_file: Path, overrides: tuple[str, ...], storage: str | None) -> None:
    """Validate CONFIG, load its data and build its model, without training."""
    from nnrun import backend
    from nnrun.config import loading as config

    resolved = config.load(config_file, overrides)  # before the heavy imports: a bad config fails fast
    if storage and not resolved.sweep:
        raise click.UsageError(f"--storage: {config_file} has no sweep section")
    shared = None
    if resolved.sweep:
        from nnrun.sweep import command as sweep

        with _about(config_file, overrides):
            sweep.check_available()
        shared = sweep.probe(resolved, config_file, storage)  # names the place itself, as sweep's does
    backend.use(resolved.backend)
    from nnrun.cli import check as checking
    from nnrun.training import check as judging

    with _about(config_file, overrides):
        report = streams.reporter()
        setup = judging.prepare(resolved, report, sweep.check if resolved.sweep else None)
    checking.report(resolved, setup, click.echo)
    if shared is not None and shared.shared:
        click.echo(f"sweep storage: {shared.shown} ({shared.place})")
    click.echo(f"backend: {resolved.backend} ({resolved.backend_reason})")
    click.echo(f"{config_file}: ok")


@click.command()
def schema() -> None:
    """Print the config's JSON Schema (for editors and the YAML language server)."""
    from nnrun.config import json_schema as config_schema

    click.echo(json.dumps(config_schema.json_schema(), indent=2))


@contextlib.contextmanager
def _about(config_file: Path, overrides: tuple[str, ...] = ()) -> Iterator[None]:
    """Names the config file in bad-input errors found after loading it (model, data, a sweep's space).

    They are raised naming their place in the config, not the file: the command knows which file it read,
    and whether --set changed it (the value at fault may be one the file does not hold).
    """
    try:
        yield
    except BadInput as e:
        # A run or sweep that began keeps its directory: its path still goes to stdout.
        config = f"{config_file} with --set" if overrides else str(config_file)
        raise type(e)(f"{config}: {e}", run_dir=e.run_dir) from None


def _in_one_process(plan: Plan, what: str) -> None:
    """Refuses `what` under the launch variables of several processes: each would make its own directories."""
    if plan.processes > 1:
        raise click.UsageError(f"{what} runs in one process; unset the KERAS_DISTRIBUTION_* variables")


def _completed(config: Config, run_dir: Path, report: Reporter) -> None:
    """A run has completed: its final metrics, the exports its config asks for, then its path on stdout, last.

    A failed export keeps the run's path on stdout (the error carries it). A
    stop signal no longer cuts the printing short: it stops the exports, or
    nothing (exit 0) where none are asked for, the run being complete.
    """
    from nnrun import signals
    from nnrun.cli import render
    from nnrun.rundir import files as rundir

    with signals.stopping():
        report.print(render.metrics_table(rundir.read_json(Path(run_dir) / rundir.METRICS), "final metrics"))
    if config.output.export:
        from nnrun.inference import export

        try:
            if late := signals.unanswered():  # it came as the run completed, or since
                formats = " ".join(f"--format {name}" for name in config.output.export)
                report.say(f"no export made; make them with: nnrun export {run_dir} {formats}")
                raise errors.Interrupted(late)
            export.export(run_dir, config.output.export, report)
        except (NnrunError, KeyboardInterrupt) as e:
            raise errors.carrying(e, run_dir) from e
    with signals.stopping():
        click.echo(str(run_dir))


def _resumable_settings(config: Config, keys: tuple[str, ...]) -> list[str]:
    """`--set` items for the keys a resume may change, from this config: those whose section is set
    (training.fine_tune is null unless asked for)."""
    from nnrun.config import overrides

    plain = config.model_dump(mode="json")
    kept = []
    for key in keys:
        parent, _, name = key.rpartition(".")
        try:
            section = overrides.get_path(plain, parent)
        except overrides.PathError:
            continue
        kept.append(f"{key}={json.dumps(section.get(name))}")
    return kept
