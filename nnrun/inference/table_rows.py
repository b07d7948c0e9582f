"""Table rows for `predict`: a CSV or Parquet file of raw rows, whole or chunk by chunk.

A small CSV takes light_table's path (no pandas to import); the rest is read as
training reads it and encoded with the run's preprocessing by csv_table. A CSV
past `STREAM_BYTES` and every Parquet file are never held whole: each chunk of `CHUNK_ROWS` rows is encoded, predicted
and handed on before the next is read, so predict's memory stays flat however
long the file is. Rows are named by their place in the file, as a user finds them:
a CSV's by its line (`rows.csv:2` is the first row, after the header line), as an
editor or `sed -n 2p` counts; a Parquet file has no lines, so its rows say so
(`rows.parquet:row 1`), counted from 1 as a table viewer numbers them. Warnings
about values name them the same way (`lines 3, 6`; `rows 2, 5`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nnrun.data.parquet_table import SUFFIXES as PARQUET_SUFFIXES
from nnrun.errors import DataError, listed

CSV_SUFFIXES = (".csv", ".csv.gz")  # read as training reads them (pandas decompresses by the name)
SUFFIXES = (*CSV_SUFFIXES, *PARQUET_SUFFIXES)
# Past this on disk, a file is read and predicted in chunks: pandas holds a CSV in several times its size.
STREAM_BYTES = 64 << 20
CHUNK_ROWS = 50_000
MAX_WARNINGS = 20  # lines about values training never saw, per file: a long file would repeat them for pages

Sample = tuple[tuple[str, Any], np.ndarray]  # ((name, id), model input)


def parts(path: Path, parquet: bool, prep: dict[str, Any], id_column: str | None, notes: list[str]) -> Iterator[list]:
    """A table file's rows as the model takes them, in lists: the whole file, or one chunk after another.

    Args:
        path: the CSV or Parquet file.
        parquet: whether it is Parquet (by its name).
        prep: the run's preprocessing dict (`kind: table`).
        id_column: a column to carry into each sample's id.
        notes: where columns ignored and values training never saw are said.

    Yields:
        Lists of `((name, id), model input)`.
    """
    from nnrun.data import light_table, parquet_table

    light = None if parquet else light_table.read(path, prep, id_column)
    if light is not None:
        _ignored(path, light.header, prep, id_column, notes)
        notes += [f"warning: {path}: {line}" for line in light.unseen]
        rows = zip(light.x, light.ids, strict=True)
        yield [((f"{path}:{i + 2}", row_id), row) for i, (row, row_id) in enumerate(rows)]
        return
    said: list[str] = []
    header = parquet_table.column_names(path, "input") if parquet else None
    for i, frame in enumerate(_frames(path, parquet, header, prep, id_column)):
        encoded = _encoded(frame, path, parquet, prep, id_column, said)
        if i == 0:  # named once the file is known to be a table of the model's columns
            _ignored(path, header or [str(c) for c in frame.columns], prep, id_column, notes)
        yield encoded
    if len(said) > MAX_WARNINGS:
        said[MAX_WARNINGS:] = [f"{len(said) - MAX_WARNINGS} more lines like these, about later rows"]
    notes += [f"warning: {path}: {line}" for line in said]


def _frames(path, parquet, header, prep, id_column):
    """The file's rows as DataFrames indexed by their row in the file (from 0): one, or chunks.

    A Parquet file is read in chunks of rows whatever its size (compressed, it may hold a hundred times
    its size in values), and only its columns the model or the id takes; a CSV is chunked past
    `STREAM_BYTES`.
    """
    from nnrun.data import csv_file, parquet_table

    if parquet:
        taken = [name for name in header or () if name in {*prep["columns"], id_column}]
        yield from parquet_table.frames(path, "input", CHUNK_ROWS, columns=taken or None)
    elif path.stat().st_size > STREAM_BYTES:
        yield from csv_file.read_chunks(path, prep.get("read", {}), "input", CHUNK_ROWS)
    else:
        yield csv_file.read_table(path, prep.get("read", {}), "input")


def _encoded(frame, path, parquet, prep, id_column, said):
    """One DataFrame of raw rows as samples named by their place in the file."""
    from nnrun.data import csv_table

    if id_column is not None and id_column not in frame.columns:
        raise DataError(f"{path}: no id column '{id_column}'")
    start = int(frame.index[0]) if len(frame) else 0
    first, unit = (start + 1, "row") if parquet else (start + 2, "line")
    try:
        x = csv_table.apply(frame, prep, said, first_line=first, unit=unit)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    ids = [None] * len(frame)
    if id_column:  # a missing id is None, as where there is no id: pandas's NaN (or NA) is no JSON and no text
        ids = frame[id_column].astype(object).where(frame[id_column].notna(), None).tolist()
    at = f"{path}:row " if parquet else f"{path}:"
    return [((f"{at}{first + i}", row_id), row) for i, (row, row_id) in enumerate(zip(x, ids, strict=True))]


def _ignored(path, header, prep, id_column, notes):
    """Says which of the file's columns the model does not take (once the file is known to be a table of its own)."""
    taken = set(prep["columns"])
    ignored = [c for c in header if c not in taken and c != id_column]
    if ignored:
        notes.append(f"{path}: ignored columns the model does not take: {listed(ignored)}")
