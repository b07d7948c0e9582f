"""The commands that put a run's model to use: evaluate, predict, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from nnrun.cli import streams
from nnrun.cli.options import FORMATS, MODELS, RUNTIMES, model_option, runs_dir_option


@click.command()
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
    from nnrun.cli import render
    from nnrun.errors import GateFailed
    from nnrun.inference import evaluate as evaluation

    gates = evaluation.parse_gates(fail_under, fail_over)
    result = evaluation.evaluate(
        _chosen_run(run_dir, runs_dir, "name one as RUN_DIR"), data_path, show_samples, MODELS[model]
    )
    failures = evaluation.gate(result, gates)
    if result.warning:
        streams.console().print(result.warning, style="yellow", soft_wrap=True)
    if result.data_changed:
        streams.console().print(
            "warning: the data differs from what the run was trained on (its fingerprint changed)",
            style="yellow",
            soft_wrap=True,  # one line in a log, however narrow the terminal rich assumes
        )
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        render.print_evaluation(result)
    if failures:
        raise GateFailed("quality gate failed: " + "; ".join(failures))


@click.command()
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(path_type=Path),
    help="The run directory (default: the newest completed run in --runs-dir).",
)
@runs_dir_option
@model_option
@click.option("--top-k", type=click.IntRange(1), help="Classes to show per input of a softmax output.  [default: 3]")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    help="For one sigmoid output: the probability from which the positive class is predicted.  [default: 0.5]",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input (JSON lines) on stdout.")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="Write the predictions to this .csv, .csv.gz or .parquet file (and print how many, not them; --json "
    "still prints them).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --output file (else it is refused).")
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
    top_k: int | None,
    threshold: float | None,
    as_json: bool,
    output: Path | None,
    overwrite: bool,
    id_column: str | None,
    runtime: str,
) -> None:
    """Predict images, table rows (.csv, .csv.gz, .parquet) or .npy arrays (files, folders, globs) with a run."""
    from nnrun.cli import render
    from nnrun.errors import DataError
    from nnrun.inference import predict as prediction
    from nnrun.inference import prediction_file

    if output:
        prediction_file.check(output, overwrite, prediction.input_files(inputs))
    elif overwrite:
        raise click.UsageError("--overwrite: there is no --output file to replace")
    chosen = run_dir is None
    run_dir = _chosen_run(run_dir, runs_dir, "name one with --run")
    # Rows go to --output as they are predicted, never all held: a large table's file is written as it is read.
    written = prediction_file.opened(output, id_column) if output else None
    kept: list[dict[str, Any]] = []  # with --json as well, the rows are printed once all are predicted

    def sink(row: dict[str, Any]) -> None:
        assert written is not None
        written.write(row)
        if as_json:
            kept.append(row)

    try:
        found = prediction.predict(
            run_dir,
            inputs,
            top_k,
            threshold,
            id_column,
            model_file=MODELS[model],
            runtime=runtime,
            sink=sink if written else None,
        )
    except BaseException as e:
        if written:
            written.close(e)
        raise
    if written:
        written.close()
        found.rows = kept
    console = streams.console()
    if found.run.warning():
        console.print(found.run.warning(), style="yellow", soft_wrap=True)
    for note in found.notes:
        console.print(note, style="yellow" if note.startswith("warning:") else "dim", soft_wrap=True)
    if as_json:
        for line in found.to_json():
            click.echo(json.dumps(line))
    elif found.count and found.runtime != "keras":  # an export answered (--json rows say which)
        console.print(f"runtime: {found.runtime} (export/)", style="dim", highlight=False)
    if written and found.count:
        if not as_json:  # the rows are in the file: the terminal gets what became of them
            streams.echo(f"{found.count} prediction{'s' * (found.count != 1)} written to {output}")
    elif found.rows and not as_json:
        render.print_predictions(found.rows, run_dir)
    for name, why in found.failed:
        console.print(f"error: {name}: {why}", soft_wrap=True)
    if found.failed:
        newest = f" by {run_dir}, the newest completed run (name another with --run)" if chosen else ""
        raise DataError(
            f"{len(found.failed)} of {len(found.failed) + found.count} inputs could not be predicted{newest}"
        )


@click.command(name="export")
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

    export.export(run_dir, list(dict.fromkeys(formats)), streams.reporter())
    click.echo(str(Path(run_dir) / "export"))


def _chosen_run(run_dir: Path | None, runs_dir: Path, hint: str) -> Path:
    """The run named, or the newest completed one in runs_dir."""
    from nnrun.rundir import finding

    return run_dir or finding.newest(runs_dir, hint)
