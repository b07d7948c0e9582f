"""The options several commands share, and the choices they offer, written once."""

from __future__ import annotations

from pathlib import Path

import click

MODELS = {"final": "model.keras", "best": "model.best.keras"}
FORMATS = ("onnx", "litert", "saved_model")  # nnrun export's; the config's output.export takes the same
RUNTIMES = ("auto", "onnx", "litert", "keras")
TRACKERS = ("tensorboard", "mlflow", "none")

config_argument = click.argument("config_file", metavar="CONFIG", type=click.Path(path_type=Path))
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a config value, e.g. --set training.epochs=3 (repeatable; the value is read as YAML).",
)
tracker_option = click.option(
    "--tracker",
    "trackers",
    multiple=True,
    type=click.Choice(TRACKERS),
    help="Also record the run in TensorBoard or MLflow (repeatable); none turns off the config's tracking.",
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="One plain line per epoch instead of a progress bar.")
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
