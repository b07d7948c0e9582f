"""nnrun init: a commented starter config written from the data itself."""

from __future__ import annotations

from pathlib import Path

import click

from nnrun.cli import streams
from nnrun.errors import FAULTS, BadInput, WriteFailed


@click.command("init")
@click.argument("data", metavar="DATA", type=click.Path(path_type=Path))
@click.option("--target", metavar="COLUMN", help="The table's column to predict (tables; required for them).")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the config to this file (never over an existing one) instead of stdout.",
)
def init(data: Path, target: str | None, output: Path | None) -> None:
    """Write a starter config for DATA: a CSV table (.csv, .csv.gz), a Parquet
    table (.parquet), an .npz file, or a folder of images with one sub-folder
    per class.

    \b
    nnrun init data.csv --target y > cfg.yaml && nnrun train cfg.yaml
    nnrun init photos/ -o photos.yaml

    Every choice in it (columns dropped and why, the task, the network, the
    loss, epochs) is commented; it trains as it is.
    """
    from nnrun import atomic
    from nnrun.model import starter

    if output is not None and (output.exists() or output.is_symlink()):
        raise BadInput(f"--output: '{output}' exists; nnrun init writes a new file, never over one")
    written = starter.write(data, target)
    if output is None:
        click.echo(written.text, nl=False)
        return
    try:
        atomic.make_folder(output.parent)
        atomic.write_text(output, written.text)
    except WriteFailed as e:  # a full disk is the machine's (exit 1); a path that cannot be, the argument's
        if e.errno in FAULTS:
            raise
        raise BadInput(f"--output '{output}': {e.reason}") from None
    streams.echo(f"{output}: {written.summary}; next: nnrun check {output}, then nnrun train {output}", err=True)
