"""nnrun check's report: what a run of the config will be (`training.check` and `sweep.command.check` judge it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nnrun.config.schema import Config
    from nnrun.model.quick import QuickSetup
    from nnrun.training.setup import Setup


def report(config: Config, setup: Setup | QuickSetup, echo: Callable[..., None]) -> None:
    """Says what a run of the config will be: model summary, data, notes, stages, devices, tracking, sweep.

    Args:
        config: the resolved config.
        setup: what `training.check.prepare` or `sweep.command.check` returned.
        echo: prints a line (`click.echo`); `err=True` for notes.
    """
    from nnrun.model.quick import QuickSetup

    ds = setup.dataset
    if isinstance(setup, QuickSetup):  # no fine-tuning nor distribution: it gave way to Keras on those
        echo(setup.summary)
    else:
        setup.model.summary(print_fn=lambda text, line_break=True: echo(text, nl=line_break))
    classes = f"{len(ds.class_names)} classes" if ds.class_names is not None else "regression"  # ds.is_classification
    val = 0 if ds.y_val is None else len(ds.y_val)
    echo(
        f"data: {len(ds.y_train)} train, {val} validation, {len(ds.y_test)} test samples of shape "
        f"{tuple(ds.preprocessing['input_shape'])}; {classes}"
    )
    for note in ds.notes:  # what was decided about the data, as train says it
        echo(f"note: {note}", err=True)
    for warning in setup.warnings:
        echo(f"warning: {warning}", err=True)
    if isinstance(setup, QuickSetup):
        return
    if setup.stages.describe():
        echo(setup.stages.describe())
    engine = setup.engine
    if engine.plan.kind:
        n = engine.plan.processes
        echo(
            f"distribution: {engine.plan.kind} over {len(engine.devices)} device{'s' * (len(engine.devices) != 1)}"
            + (f" per process, {n} processes" if n > 1 else f" ({', '.join(engine.devices)})")
            + f"; global batch {config.training.batch_size}"
        )
    tracking = config.tracking
    if tracking.names():
        from nnrun.training import mlflow_run

        where = {
            "tensorboard": f"{config.output.dir}/<run>/tensorboard",
            "mlflow": tracking.mlflow
            and mlflow_run.shown_uri(mlflow_run.mlflow_uri(tracking.mlflow, config.output.dir)),
        }
        echo("tracking: " + ", ".join(f"{name} ({where[name]})" for name in tracking.names()))
    if config.sweep:
        from nnrun.sweep import space as search_space

        echo(f"sweep: {search_space.describe(config.sweep)}")
