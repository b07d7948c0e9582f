"""What `nnrun check` judges of a config: its data loaded and its model built as training would, without
training."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nnrun.config.schema import Config, ImageData
    from nnrun.model.quick import QuickSetup
    from nnrun.reporter import Reporter
    from nnrun.training.setup import Setup


def prepare(
    config: Config, report: Reporter, build: Callable[[Config, Reporter], Setup] | None = None
) -> Setup | QuickSetup:
    """Loads the data and builds and compiles the model, as `train` would, without training.

    Where it can be sure without Keras (`nnrun.model.quick`: the common layers, the bundled
    datasets), it judges the config so, in a fraction of a second; otherwise Keras builds the model.
    An image folder's every file is decoded first, so that a damaged one is named now rather than
    mid-training.

    Args:
        config: the resolved config.
        report: the `Reporter`, for progress and notes.
        build: what builds the model instead of `setup.setup` (a sweep's check: at every value it may try).

    Returns:
        The `Setup` (dataset, model, stages and devices), or the `QuickSetup` where Keras was not needed.
    """
    from nnrun.model import catalogue, quick
    from nnrun.training import setup

    quick_setup = quick.setup(config)
    if quick_setup is not None:
        return quick_setup
    if config.data.source == "images":
        _decode_every_image(config.data, report)
    full = build(config, report) if build else setup.setup(config, join=False)
    catalogue.remember()  # Keras is loaded: the next check of this Keras version need not load it
    return full


def _decode_every_image(data: ImageData, report: Reporter) -> None:
    from rich.progress import Progress

    from nnrun.data import image_folder

    console = report.console
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("decoding images", total=None)
        image_folder.verify(data, lambda done, total: progress.update(task, completed=done, total=total))
