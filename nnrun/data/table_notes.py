"""What a table's learned preprocessing tells the user: columns refused, kinds detected, values filled.

The same words whether the training split was read whole (`csv_table.fit`) or learned chunk by chunk
(`table_stats`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnrun.errors import DataError, listed

if TYPE_CHECKING:
    from nnrun.config.schema import TableData


def refuse_empty(empty: list[str], data: TableData) -> None:
    """Refuses, in one line, the feature columns that have no values in the training split.

    Args:
        empty: the columns without a value, in the table's order (none: nothing is refused).
        data: the config's `data` section, whose path the line names.

    Raises:
        DataError: naming the columns and the fix (`data.drop`).
    """
    if empty:
        many = len(empty) > 1
        raise DataError(
            f"data.path '{data.path}': column{'s' * many} {listed(repr(c) for c in empty)} "
            f"ha{'ve' if many else 's'} no values in the training split; add {'them' if many else 'it'} to data.drop"
        )


def detection_notes(data: TableData, categorical: dict[str, int], formats: dict[str, str]) -> list[str]:
    """The notes on the columns whose kind was detected, not set in the config.

    Args:
        data: the config's `data` section.
        categorical: each categorical column's number of different values.
        formats: each date column's format.

    Returns:
        The notes (none, one or two).
    """
    notes = []
    detected = [c for c in categorical if c not in (data.categorical or ())]
    if detected:
        found = listed(f"{c} ({categorical[c]} values)" for c in detected)
        notes.append(
            f"categorical columns detected (not numbers), one-hot encoded: {found}; set data.categorical to choose"
        )
    detected = [c for c in formats if c not in data.date]
    if detected:
        found = listed(f"{c} ({formats[c]})" for c in detected)
        notes.append(
            f"date columns detected, read as year, month, day of year and weekday: {found}; set data.date to choose"
        )
    return notes


def note_filled(notes: list[str], name: str, n: int, value: str) -> None:
    """Adds the note that `n` missing values of a column were filled with `value`, if there were any.

    Args:
        notes: the notes so far, added to.
        name: the column.
        n: how many of its values were missing in the training split.
        value: what filled them, as the note says it ("the training median 3.5").
    """
    if n:
        notes.append(f"{name}: {n} missing value{'s' * (n != 1)} in the training split filled with {value}")
