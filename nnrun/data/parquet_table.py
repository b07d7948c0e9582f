"""Parquet tables: the `parquet` source, read with pyarrow whole or in batches, as a CSV table is read.

A Parquet file carries its column types, so nothing is sniffed; the columns come
to pandas as a CSV's would (numbers, text, booleans), dates as ISO text that the
date columns of csv_table read as they read a CSV's. Its rows are then encoded
by csv_table exactly as a CSV's: the run's preprocessing is a table's, and
predict takes CSV or Parquet rows for it alike.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nnrun.atomic import sha256_file
from nnrun.data import csv_table
from nnrun.data.csv_file import MAX_COLUMNS, check_file
from nnrun.data.types import Raw
from nnrun.errors import DataError, listed

if TYPE_CHECKING:
    import pandas as pd

    from nnrun.config.schema import ParquetData

SUFFIXES = (".parquet", ".pq")


def read(data: ParquetData, place: str = "data.path") -> Raw:
    """Reads a Parquet table: the target column, and the rest as features.

    Args:
        data: the config's `data` section (`path`, `target`, `drop`, the column lists, `missing_target`).
        place: what errors name first: `data.path`, or the option that gave the file (`--data`).

    Returns:
        A `Raw` whose `x` is a pandas DataFrame of the feature columns and `y` the target column as an array.
    """
    table = read_frame(data.path, place, skip=data.drop)
    return csv_table.raw(table, data, f"sha256:{sha256_file(data.path)}", place)


def read_frame(path: Path, place: str, skip: Collection[str] = ()) -> pd.DataFrame:
    """A whole Parquet file as a pandas DataFrame, its columns as a CSV's would read.

    Args:
        path: the file.
        place: what errors name first ('data.path', or 'input' for predict).
        skip: columns left as pyarrow gives them (dropped ones): no column of theirs is refused.

    Returns:
        A DataFrame with at least one row.
    """
    parquet = _opened(path, place)
    try:
        table = parquet.read()
    except Exception as e:  # pyarrow's errors (ArrowInvalid, OSError) say what is wrong, never quote the data
        raise _unreadable(path, place, e) from None
    frame = _as_csv_reads(
        table.to_pandas(date_as_object=False), path, place, skip, _whole_days(table.schema, table.to_batches())
    )
    if frame.empty:
        raise DataError(f"{place}: '{path}' has columns but no rows")
    return frame


def column_names(path: Path, place: str) -> list[str]:
    """A Parquet file's column names, from its footer.

    Args:
        path: the file.
        place: what errors name first.

    Returns:
        The names, in the file's order.
    """
    return [str(name) for name in _opened(path, place).schema_arrow.names]


def frames(
    path: Path, place: str, rows: int, skip: Collection[str] = (), columns: Sequence[str] | None = None
) -> Iterator[pd.DataFrame]:
    """A Parquet file in DataFrames of up to `rows` rows, indexed by their row number in the file.

    Memory follows `rows`, not the file: pyarrow decodes a batch at a time (a well-compressed file holds
    many times its size in values).

    Args:
        path: the file.
        place: what errors name first.
        rows: rows per DataFrame.
        skip: columns left as pyarrow gives them, as `read_frame`'s.
        columns: the file's columns to read (by default all).

    Yields:
        DataFrames, as `read_frame`'s rows read, in the file's order.
    """
    parquet = _opened(path, place)
    if parquet.metadata.num_rows == 0:
        raise DataError(f"{place}: '{path}' has columns but no rows")
    start = 0
    read = set(parquet.schema_arrow.names if columns is None else columns) - set(skip)
    timestamps = [name for name in _timestamps(parquet.schema_arrow) if name in read]
    whole_days = _whole_days(parquet.schema_arrow, _batches(parquet, path, place, rows, timestamps))
    for batch in _each(parquet.iter_batches(batch_size=rows, columns=columns), path, place):
        frame = _as_csv_reads(batch.to_pandas(date_as_object=False), path, place, skip, whole_days)
        frame.index = range(start, start + len(frame))
        start += len(frame)
        yield frame


def _timestamps(schema):
    """The names of a table's timestamp columns (dates are whole days by their type)."""
    import pyarrow as pa

    return [field.name for field in schema if pa.types.is_timestamp(field.type)]


def _batches(parquet, path, place, rows, names):
    """The file's columns `names` alone, in batches (nothing when there are none)."""
    if not names:
        return
    yield from _each(parquet.iter_batches(batch_size=max(rows, 1 << 16), columns=names), path, place)


def _each(batches, path, place):
    """pyarrow's batches, a damaged file's error on the way read as one line naming the file."""
    while True:
        try:
            batch = next(batches, None)
        except Exception as e:
            raise _unreadable(path, place, e) from None
        if batch is None:
            return
        yield batch


def _whole_days(schema, batches):
    """The columns written as dates, as a CSV writes them: dates, and timestamps whose every value in the
    file is a midnight.

    Decided over the whole file, not a chunk: a chunk of midnights written as dates, in a file whose
    other rows have times, would not read in the date format learned from those rows (filled as missing).
    """
    import pyarrow as pa

    whole = set(_timestamps(schema))
    for batch in batches:
        for name in [n for n in batch.schema.names if n in whole]:
            column = batch.column(name).to_pandas().dropna()
            if not (column.dt.normalize() == column).all():
                whole.discard(name)
        if not whole:
            break
    return whole | {field.name for field in schema if pa.types.is_date(field.type)}


def values_bytes(path: Path, place: str) -> int:
    """What a Parquet file's values take read whole, at the least: 8 bytes each (pandas reads numbers as
    float64 or int64; text takes more), from its footer's counts (nothing else is read).

    Args:
        path: the file.
        place: what errors name first.

    Returns:
        Rows times columns times 8.
    """
    metadata = _opened(path, place).metadata
    return metadata.num_rows * metadata.num_columns * 8


def _opened(path, place):
    """The file as a `pyarrow.parquet.ParquetFile`, its footer read and its width bounded."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{place}: reading Parquet needs pyarrow, which is not installed: pip install 'nnrun[parquet]'"
        ) from None
    check_file(path, place)
    try:
        parquet = pq.ParquetFile(path)
    except Exception as e:
        raise _unreadable(path, place, e) from None
    width = parquet.metadata.num_columns
    if width > MAX_COLUMNS:
        raise DataError(f"{place}: '{path}' has {width} columns, more than nnrun reads ({MAX_COLUMNS})")
    return parquet


def _unreadable(path, place, error):
    """One line for a file pyarrow cannot read: its reason, without the paths and buffers it names."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    reason = reason.split("': ", 1)[-1] if reason.startswith("Could not open Parquet input source") else reason
    return DataError(f"{place}: '{path}' is not a readable Parquet file: {reason[:200]}")


def _as_csv_reads(frame, path, place, skip, whole_days):
    """A table's columns as reading a CSV would give them: numbers, booleans, text, dates as ISO text
    (`whole_days`: the timestamp columns written without their time, by `_whole_days`).

    Columns of lists, structs or bytes have no CSV form and are refused, all named at once.
    """
    import pandas as pd

    frame.columns = [str(c) for c in frame.columns]
    odd = []
    for name in [c for c in frame.columns if c not in skip]:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):  # a dictionary-encoded column: its values, as text
            frame[name] = column.astype(object).where(column.notna(), None)
        elif pd.api.types.is_datetime64_any_dtype(column.dtype):
            frame[name] = column.dt.strftime("%Y-%m-%d" if name in whole_days else "%Y-%m-%d %H:%M:%S")
        elif pd.api.types.is_timedelta64_dtype(column.dtype):
            odd.append(f"'{name}' (durations)")
        elif column.dtype == object:
            sample = column.dropna()
            first = sample.iloc[0] if len(sample) else None
            if first is not None and not isinstance(first, (str, int, float, bool)):
                odd.append(f"'{name}' ({type(first).__name__} values)")
    if odd:
        raise DataError(
            f"{place}: '{path}' has columns that are not numbers, text or dates: {listed(odd)}; add them to data.drop"
        )
    return frame
