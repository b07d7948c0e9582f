"""The table `model.summary()` prints for a Sequential model, drawn without Keras, character for character.

What Keras's `print_summary` (keras/src/utils/summary_utils.py) does for a Sequential model given a
`print_fn`: the same rich table, widths, markup and size arithmetic. `nnrun check` prints it where it
judged the model without Keras (`nnrun.model.quick`); a test compares the two on every model the
light path builds.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One layer of the table."""

    name: str  # as Keras names it (`dense_1`)
    class_name: str
    shape: tuple[int | None, ...]  # its output, the batch dimension (None) first
    trainable: int  # parameters
    non_trainable: int


def summary(model_name: str, rows: Sequence[Row]) -> str:
    """The text Keras's `model.summary(print_fn=...)` hands its `print_fn` for a built, compiled
    (not yet trained) Sequential model.

    Args:
        model_name: the model's name.
        rows: its layers, in order (float32 weights).

    Returns:
        The text, ending in a line break, as Keras gives it.
    """
    import rich.console
    import rich.markup
    import rich.table

    line_length = min(88, shutil.get_terminal_size().columns - 4)
    widths, current = [], 0
    for position in (0.45, 0.80, 1.0):
        width = int(position * line_length) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        widths.append(width)
        current += width
    columns = [
        rich.table.Column(name, justify=justify, width=width)  # type: ignore[arg-type]
        for name, justify, width in zip(
            ("Layer (type)", "Output Shape", "Param #"), ("left", "left", "right"), widths, strict=True
        )
    ]
    table = rich.table.Table(*columns, width=line_length, show_lines=True)
    for row in rows:
        name = f"{rich.markup.escape(row.name)} ({_symbol(rich.markup.escape(row.class_name))})"
        shape = f"({', '.join(_number(d) for d in row.shape)})"
        table.add_row(name, shape, _number(f"{row.trainable + row.non_trainable:,}"))
    trainable = sum(row.trainable for row in rows)
    non_trainable = sum(row.non_trainable for row in rows)

    console = rich.console.Console(highlight=False, force_terminal=False, color_system=None)
    console.begin_capture()
    console.print(_bold(f'Model: "{rich.markup.escape(model_name)}"'))
    console.print(table)
    for label, count in (
        (" Total params: ", trainable + non_trainable),
        (" Trainable params: ", trainable),
        (" Non-trainable params: ", non_trainable),
    ):
        console.print(_bold(label) + _number(f"{count:,}") + f" ({_readable(count * 4)})")
    return console.end_capture()


def _number(x: object) -> str:
    return f"[color(45)]{x}[/]" if x is None else f"[color(34)]{x}[/]"


def _symbol(x: str) -> str:
    return f"[color(33)]{x}[/]"


def _bold(x: str) -> str:
    return f"[bold]{x}[/]"


def _readable(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"
