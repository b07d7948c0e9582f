"""The `nnrun` command: parse, call one function, print with rich, map errors to exit codes.

What a command is for goes to stdout (the run directory's path, check's
report, the schema); progress and messages go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from nnrun import __version__
from nnrun.errors import BadInput, Interrupted, NnrunError

if TYPE_CHECKING:
    from rich.console import Console

    from nnrun.config.schema import Config
    from nnrun.training.distribution import Plan

EXIT_INTERRUPTED = 130
MODELS = {"final": "model.keras", "best": "model.best.keras"}
FORMATS = ("onnx", "litert", "saved_model")  # nnrun export's; the config's output.export takes the same
RUNTIMES = ("auto", "onnx", "litert", "keras")


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
            if isinstance(stopped, Interrupted):
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
        _echo(str(run_dir))


def _fail(message: str, code: int) -> int:
    _echo(f"error: {message}", err=True)
    return code


def _echo(text: str, err: bool = False) -> None:
    # After SIGHUP the terminal may be gone: the run is already recorded, and
    # the exit code still tells a script what happened.
    try:
        click.echo(text, err=err)
    except OSError:
        pass


@contextlib.contextmanager
def _about(config_file: Path) -> Iterator[None]:
    """Names the config file in bad-input errors found after loading it (model, data)."""
    try:
        yield
    except BadInput as e:
        if str(e).startswith(str(config_file)):
            raise
        named = type(e)(f"{config_file}: {e}")
        named.run_dir = getattr(e, "run_dir", None)  # a run or sweep that began: its path still goes to stdout
        raise named from None


def _console() -> Console:
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
TRACKERS = ("tensorboard", "mlflow", "none")
tracker_option = click.option(
    "--tracker",
    "trackers",
    multiple=True,
    type=click.Choice(TRACKERS),
    help="Also record the run in TensorBoard or MLflow (repeatable); none turns off the config's tracking.",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nnrun")
def cli() -> None:
    """Train Keras neural networks from YAML configs.

    \b
    nnrun train configs/quickstart.yaml      train; prints the run directory last
    nnrun check configs/quickstart.yaml      validate and build the model, no training
    nnrun resume runs/quickstart-...         continue a killed or interrupted run
    nnrun runs                               every run: status, epochs, test metric
    nnrun sweep configs/quickstart_sweep.yaml  search settings; each trial is a run
    nnrun schema > nnrun.schema.json         the config's JSON Schema

    Exit codes: 0 ok, 1 the run failed, 2 bad input, 3 quality gate,
    128+N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
    """


@cli.command()
@config_argument
@set_option
@click.option("-q", "--quiet", is_flag=True, help="One plain line per epoch instead of a progress bar.")
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
    from nnrun.config import schema as config
    from nnrun.training import distribution

    resolved = config.load(config_file, overrides)  # before the heavy imports: a bad config fails fast
    resolved = config.with_trackers(resolved, trackers)
    if resolved.sweep:
        _echo(
            f"note: {config_file} has a sweep section, which nnrun sweep runs; this trains the config as it is",
            err=True,
        )
    plan = distribution.plan(resolved)
    if resume_if_possible:
        _in_one_process(plan, "--resume-if-possible")
    backend.use(resolved.backend)
    from nnrun.training import resume
    from nnrun.training import train as training

    console = _console()
    live = console.is_terminal and not quiet
    found = resume.newest_unfinished(resolved) if resume_if_possible else None
    run_dir: Path | None
    with _about(config_file):
        if found:
            console.print(f"resuming the unfinished run {found} of this config", highlight=False)
            kept = [f"{key}={json.dumps(_get(resolved, key))}" for key in resume.RESUMABLE if _has(resolved, key)]
            run_dir = resume.resume(found, console, kept, live=live, trackers=trackers)
        else:
            if resume_if_possible:
                console.print("no unfinished run of this config to resume: starting a new one", style="dim")
            run_dir = training.train(resolved, console, live=live, config_file=config_file)
    if run_dir is None:  # a process other than 0 of a multi-process run: it said so
        return
    _print_metrics(console, run_dir)
    _export_as_asked(resolved, run_dir, console)
    click.echo(str(run_dir))


@cli.command(name="resume")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@set_option
@click.option(
    "--force",
    is_flag=True,
    help="Resume even if the data changed since the run started, or the run says it runs on another host.",
)
@click.option("-q", "--quiet", is_flag=True, help="One plain line per epoch instead of a progress bar.")
@tracker_option
def resume_command(
    run_dir: Path, overrides: tuple[str, ...], force: bool, quiet: bool, trackers: tuple[str, ...]
) -> None:
    """Continue a killed, interrupted or failed run from its last backup, in RUN_DIR.

    Only options that cannot change the result may be --set: training.epochs,
    training.fine_tune.epochs, training.backup_every_steps, output.keep_backup, output.save_h5.
    """
    from nnrun.training import resume

    console = _console()
    run_dir = resume.resume(
        run_dir, console, overrides, force, live=console.is_terminal and not quiet, trackers=trackers
    )
    _print_metrics(console, run_dir)
    from nnrun.rundir import files as rundir

    _export_as_asked(rundir.read_config(run_dir), run_dir, console)
    click.echo(str(run_dir))


@cli.command(name="sweep")
@click.argument("target", metavar="CONFIG|SWEEP_DIR", type=click.Path(path_type=Path))
@set_option
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Trials run at once, each in a process of its own.",
)
@tracker_option
def sweep_command(target: Path, overrides: tuple[str, ...], jobs: int, trackers: tuple[str, ...]) -> None:
    """Search the parameters CONFIG's sweep section names; each trial is a run.

    Given a sweep directory instead, continue that sweep where it stopped
    (--set sweep.trials=N lengthens it). Prints the sweep directory last.
    """
    from nnrun import backend
    from nnrun.config import schema as config
    from nnrun.sweep import study as sweep
    from nnrun.training import distribution

    console = _console()
    if target.is_dir():
        if not sweep.is_sweep(target):
            raise click.UsageError(f"'{target}' is a folder but not a sweep directory (it has no {sweep.STATE})")
        if trackers:
            raise click.UsageError("a sweep continues with its own config: --tracker is for a new sweep")
        saved = config.load(target / sweep.CONFIG)
        _in_one_process(distribution.plan(saved), "nnrun sweep")
        backend.use(saved.backend)
        sweep_dir = sweep.run(target, console, jobs, overrides)
    else:
        resolved = config.with_trackers(config.load(target, overrides), trackers)  # before the heavy imports
        if resolved.sweep is None:
            raise click.UsageError(f"{target} has no sweep section (see the README: Searching for better settings)")
        _in_one_process(distribution.plan(resolved), "nnrun sweep")
        with _about(target):
            sweep.check_available()
        backend.use(resolved.backend)
        with _about(target):
            sweep.check(resolved, target, console)  # a bad space fails before the first trial
            sweep_dir = sweep.start(resolved, target, console, jobs)
    click.echo(str(sweep_dir))


def _in_one_process(plan: Plan, what: str) -> None:
    """Refuses `what` under the launch variables of several processes: each would make its own directories."""
    if plan.processes > 1:
        raise click.UsageError(f"{what} runs in one process; unset the KERAS_DISTRIBUTION_* variables")


def _export_as_asked(config: Config, run_dir: Path, console: Console) -> None:
    """The config's output.export, once its run has completed; a failed export keeps the run's path on stdout."""
    if not config.output.export:
        return
    from nnrun.inference import export

    try:
        export.export(run_dir, config.output.export, console)
    except (NnrunError, KeyboardInterrupt) as e:
        e.run_dir = run_dir  # type: ignore[union-attr]  # a plain KeyboardInterrupt takes it too (read by getattr)
        raise


def _get(config: Config, key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _has(config: Config, key: str) -> bool:
    """Whether the section holding `key` is set (training.fine_tune is null unless asked for)."""
    parent, _, _ = key.rpartition(".")
    return _get(config, parent) is not None


@cli.command()
@config_argument
@set_option
def check(config_file: Path, overrides: tuple[str, ...]) -> None:
    """Validate CONFIG, load its data and build its model, without training."""
    from nnrun import backend
    from nnrun.config import schema as config

    resolved = config.load(config_file, overrides)  # before the heavy imports: a bad config fails fast
    if resolved.sweep:
        from nnrun.sweep import study as sweep

        with _about(config_file):
            sweep.check_available()
    backend.use(resolved.backend)
    from nnrun.cli import check as checking

    with _about(config_file):
        setup = checking.prepare(resolved, config_file, _console())
    checking.report(resolved, setup, click.echo)
    click.echo(f"{config_file}: ok")


model_option = click.option(
    "--model",
    "model",
    type=click.Choice(list(MODELS)),
    default="final",
    show_default=True,
    help="final: model.keras; best: model.best.keras, written by a ModelCheckpoint callback.",
)
runs_dir_option = click.option(
    "--runs-dir",
    type=click.Path(path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Where to look for the newest completed run.",
)


def _chosen_run(run_dir: Path | None, runs_dir: Path, hint: str) -> Path:
    """The run named, or the newest completed one in runs_dir."""
    from nnrun.rundir import finding

    return run_dir or finding.newest(runs_dir, hint)


@cli.command()
@click.argument("run_dir", metavar="[RUN_DIR]", required=False, type=click.Path(path_type=Path))
@runs_dir_option
@model_option
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path),
    help="Score other data of the run's kind (CSV, image folder, .npz) instead of its test split.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object to stdout and nothing else there.")
@click.option(
    "--fail-under",
    multiple=True,
    metavar="METRIC=VALUE",
    help="Exit 3 if the metric is below VALUE, e.g. accuracy=0.97.",
)
@click.option(
    "--fail-over", multiple=True, metavar="METRIC=VALUE", help="Exit 3 if the metric is above VALUE, e.g. loss=0.1."
)
@click.option(
    "--show-samples",
    type=click.IntRange(0, 100),
    default=0,
    metavar="N",
    help="Draw N test images with true and predicted labels (samples.png).",
)
def evaluate(
    run_dir: Path | None,
    runs_dir: Path,
    model: str,
    data_path: Path | None,
    as_json: bool,
    fail_under: tuple[str, ...],
    fail_over: tuple[str, ...],
    show_samples: int,
) -> None:
    """Score the model of RUN_DIR (default: the newest completed run) on its test split
    (or --data); save to RUN_DIR/evaluation/."""
    from nnrun.cli import render as report
    from nnrun.errors import GateFailed
    from nnrun.inference import evaluate as evaluation

    gates = evaluation.parse_gates(fail_under, fail_over)
    result = evaluation.evaluate(
        _chosen_run(run_dir, runs_dir, "name one as RUN_DIR"), data_path, show_samples, MODELS[model]
    )
    failures = evaluation.gate(result, gates)
    if result.get("warning"):
        _console().print(result["warning"], style="yellow", soft_wrap=True)
    if result["data_changed"]:
        _console().print(
            "warning: the data differs from what the run was trained on (its fingerprint changed)", style="yellow"
        )
    if as_json:
        click.echo(json.dumps(result))
    else:
        report.print_evaluation(result)
    if failures:
        raise GateFailed("quality gate failed: " + "; ".join(failures))


@cli.command()
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(path_type=Path),
    help="The run directory (default: the newest completed run in --runs-dir).",
)
@runs_dir_option
@model_option
@click.option("--top-k", type=click.IntRange(1), default=3, show_default=True, help="Classes to show per input.")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="For a sigmoid output: the probability from which the positive class is predicted.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input (JSON lines) on stdout.")
@click.option("--output", type=click.Path(path_type=Path), help="Also write the predictions to this CSV file.")
@click.option("--id-column", help="A CSV column to carry into each prediction (shown, and written with --output).")
@click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    default="auto",
    show_default=True,
    help="What runs the model: auto takes an ONNX or LiteRT export when the run has one (nnrun export).",
)
def predict(
    inputs: tuple[str, ...],
    run_dir: Path | None,
    runs_dir: Path,
    model: str,
    top_k: int,
    threshold: float,
    as_json: bool,
    output: Path | None,
    id_column: str | None,
    runtime: str,
) -> None:
    """Predict images, CSV rows or .npy arrays (files, folders, globs) with a trained run."""
    from nnrun.cli import render as report
    from nnrun.errors import DataError
    from nnrun.inference import predict as prediction

    if output and not output.resolve().parent.is_dir():
        raise DataError(f"--output {output}: the folder '{output.resolve().parent}' does not exist")
    run_dir = _chosen_run(run_dir, runs_dir, "name one with --run")
    found = prediction.predict(run_dir, inputs, top_k, threshold, id_column, model_file=MODELS[model], runtime=runtime)
    console = _console()
    if found.run.warning():
        console.print(found.run.warning(), style="yellow", soft_wrap=True)
    for note in found.notes:
        console.print(note, style="yellow" if note.startswith("warning:") else "dim", soft_wrap=True)
    if as_json:
        for row in found.rows:
            click.echo(
                json.dumps(
                    {**row, "run": str(found.run.path), "run_status": found.run.status, "runtime": found.runtime}
                )
            )
    elif found.rows:
        if found.runtime != "keras":  # an export answered (--json rows say which, always)
            console.print(f"runtime: {found.runtime} (export/)", style="dim", highlight=False)
        report.print_predictions(found.rows, run_dir)
    if output and found.rows:
        prediction.write_csv(found, output)
    for name, why in found.failed:
        console.print(f"error: {name}: {why}", soft_wrap=True)
    if found.failed:
        raise DataError(f"{len(found.failed)} of {len(found.failed) + len(found.rows)} inputs could not be predicted")


@cli.command(name="export")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(FORMATS),
    default=("onnx",),
    show_default=True,
    help="The format (repeatable). onnx and litert need pip install 'nnrun[export]'.",
)
def export_command(run_dir: Path, formats: tuple[str, ...]) -> None:
    """Export RUN_DIR's model into RUN_DIR/export/, verified against Keras; predict then runs without TensorFlow."""
    from nnrun.inference import export

    export.export(run_dir, list(dict.fromkeys(formats)), _console())
    click.echo(str(Path(run_dir) / "export"))


class _RunsGroup(click.Group):
    """`nnrun runs [RUNS_DIR]` lists the runs; `diff` and `compare` are its sub-commands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=_RunsGroup)
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
    type=click.Choice(["running", "completed", "failed", "interrupted", "crashed"]),
    help="Only runs with this status (repeatable).",
)
@click.option("--name", help="Only runs whose name matches this pattern (e.g. 'mnist*') or contains it.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array on stdout.")
def list_runs(runs_dir: Path, statuses: tuple[str, ...], name: str | None, as_json: bool) -> None:
    """The runs in RUNS_DIR (default: runs), newest first."""
    from nnrun.cli import render as report
    from nnrun.errors import RunDirError
    from nnrun.rundir import runs as runs_lib

    if not runs_dir.is_dir():
        raise RunDirError(f"runs folder '{runs_dir}' does not exist")
    found, broken = runs_lib.summaries(runs_dir, statuses, name)
    console = _console()
    for path, why in broken:
        console.print(f"warning: {path}: skipped: {why}", style="yellow", soft_wrap=True)
    if as_json:
        click.echo(json.dumps(found))
    else:
        report.print_runs(found, runs_dir, filtered=bool(statuses or name))


@runs.command(name="diff")
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def diff_runs(a: Path, b: Path, as_json: bool) -> None:
    """How two runs' resolved configs differ (key paths as --set names them), and their metrics."""
    from nnrun.cli import render as report
    from nnrun.rundir import runs as runs_lib

    found = runs_lib.diff(a, b)
    if as_json:
        click.echo(json.dumps(found))
    else:
        report.print_diff(found)


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


@cli.command()
def schema() -> None:
    """Print the config's JSON Schema (for editors and the YAML language server)."""
    from nnrun.config import json_schema as config_schema

    click.echo(json.dumps(config_schema.json_schema(), indent=2))


def _print_metrics(console: Console, run_dir: Path) -> None:
    from nnrun.cli import render as report
    from nnrun.rundir import files as rundir

    console.print(report.metrics_table(rundir.read_json(Path(run_dir) / rundir.METRICS), "final metrics"))


def main(args: Sequence[str] | None = None, prog_name: str = "nnrun") -> NoReturn:
    """The console script's entry point."""
    cli.main(args, prog_name=prog_name)
