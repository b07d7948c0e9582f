"""The file `nnrun predict --output` writes: CSV (`.csv`, `.csv.gz`) or Parquet (`.parquet`, `.pq`), by its name.

Rows are written as they are predicted, never all held, into a temporary file
that takes the output's name only once every row is in (nnrun.atomic): a
failed or interrupted predict leaves no file, and an existing one as it was.
An existing file is refused unless the user says `--overwrite`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nnrun import atomic
from nnrun.errors import BadInput, DataError, one_line
from nnrun.inference.table_rows import CSV_SUFFIXES, PARQUET_SUFFIXES, SUFFIXES

PARQUET_BATCH_ROWS = 10_000  # rows per row group: held as Python objects until written


def check(path: Path, overwrite: bool, inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Refuses an output nnrun cannot write, before anything is predicted.

    Args:
        path: `--output`'s file.
        overwrite: whether `--overwrite` was given.
        inputs: the files predict reads (`predict.input_files`: a folder's, a pattern's): an output that is one
            of them is refused even with `--overwrite`. Read only where the output exists.

    Raises:
        BadInput: a name of another format, an existing file without `--overwrite` (or one that is not a
            file), an input's own file, or a folder that does not exist.
        DataError: a Parquet file's name where pyarrow is not installed.
    """
    kind = _format(path)
    if kind is None:
        raise BadInput(f"--output {path}: writes {', '.join(SUFFIXES)} files; '{path.name}' is none of them")
    if kind == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise _needs_pyarrow(path)
    if not path.resolve().parent.is_dir():
        raise DataError(f"--output {path}: the folder '{path.resolve().parent}' does not exist")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise BadInput(f"--output {path}: exists and is not a plain file")
    if not path.exists():
        return
    for given in inputs:
        with contextlib.suppress(OSError):
            if path.samefile(given):
                raise BadInput(f"--output {path}: is the input {given}; write the predictions to another file")
    if not overwrite:
        raise BadInput(f"--output {path}: exists; give --overwrite to replace it")


def opened(path: str | os.PathLike[str], id_column: str | None = None) -> CsvOutput | ParquetOutput:
    """The writer for `path`'s format (see `check`).

    Args:
        path: the file.
        id_column: whether rows carry an `id` (its column follows `input`).

    Returns:
        A `CsvOutput` or a `ParquetOutput`.
    """
    kind = _format(Path(path))
    return ParquetOutput(path, id_column) if kind == "parquet" else CsvOutput(path, id_column)


def _format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    return "parquet" if name.endswith(PARQUET_SUFFIXES) else None


def _needs_pyarrow(path: Path) -> DataError:
    return DataError(
        f"--output {path}: writing Parquet needs pyarrow, which is not installed: pip install 'nnrun[parquet]'"
    )


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A prediction as one row of columns: `probabilities` spread into `probability.<class>`."""
    return {
        **{k: v for k, v in row.items() if k not in ("top", "probabilities")},
        **{f"probability.{name}": p for name, p in row.get("probabilities", {}).items()},
    }


def _columns(flat: dict[str, Any], with_id: bool) -> list[str]:
    names = [k for k in flat if k != "id"]
    names[1:1] = ["id"] if with_id else []
    return names


class _Output:
    """What both outputs keep: the file, whether rows carry an id, how many rows, the atomic write's exit."""

    def __init__(self, path: str | os.PathLike[str], id_column: str | None = None) -> None:
        self.path, self.with_id = Path(path), id_column is not None
        self.rows = 0
        self._writer: Any = None
        self._done = contextlib.ExitStack()

    def _abandon(self, error: BaseException) -> None:
        """Removes what was written: the file is not put in place."""
        self._done.__exit__(type(error), error, error.__traceback__)


class CsvOutput(_Output):
    """Predictions written to a CSV file as they come (input, id, label, probability, one
    `probability.<class>` column per class; or value), gzipped for a `.gz` name: the file appears whole,
    atomically, once `close` is called with rows written, and not at all otherwise.

    Args:
        path: the file.
        id_column: whether rows carry an `id` (its column follows `input`).
    """

    def write(self, row: dict[str, Any]) -> None:
        """Adds one prediction, as `predict` makes it."""
        import csv
        import gzip

        flat = _flat(row)
        if self._writer is None:
            tmp = self._done.enter_context(_opened(self.path))
            if self.path.name.lower().endswith(".gz"):
                file: Any = gzip.open(tmp, "wt", newline="", encoding="utf-8")
            else:
                file = open(tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed by the ExitStack)
            self._done.enter_context(file)
            self._writer = csv.DictWriter(file, _columns(flat, self.with_id), restval="", extrasaction="ignore")
            self._writer.writeheader()
        self._writer.writerow(flat)
        self.rows += 1

    def close(self, error: BaseException | None = None) -> None:
        """Puts the file in place (or, after `error`, removes what was written)."""
        if error is None:
            self._done.close()
        else:
            self._abandon(error)


class ParquetOutput(_Output):
    """Predictions written to a Parquet file, a row group of up to `PARQUET_BATCH_ROWS` at a time, with
    `CsvOutput`'s columns. Their types are the first batch's (a column empty there is text); the file
    appears whole, atomically, once `close` is called with rows written, and not at all otherwise.

    Args:
        path: the file.
        id_column: whether rows carry an `id` (its column follows `input`).
    """

    def __init__(self, path: str | os.PathLike[str], id_column: str | None = None) -> None:
        super().__init__(path, id_column)
        self._pending: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        """Adds one prediction, as `predict` makes it."""
        self._pending.append(_flat(row))
        self.rows += 1
        if len(self._pending) >= PARQUET_BATCH_ROWS:
            self._flush()

    def close(self, error: BaseException | None = None) -> None:
        """Puts the file in place (or, after `error`, removes what was written)."""
        if error is None:
            try:
                self._flush()
            except BaseException as e:
                self._abandon(e)
                raise
            self._done.close()
        else:
            self._abandon(error)

    def _flush(self) -> None:
        if not self._pending:
            return
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise _needs_pyarrow(self.path) from None
        rows, self._pending = self._pending, []
        try:
            if self._writer is None:
                # Each column's type from all of the batch's values (a row without an id has a null one),
                # not from its first row as `from_pylist` infers them.
                names = _columns(rows[0], self.with_id)
                inferred = pa.table({name: [row.get(name) for row in rows] for name in names}).schema
                schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in inferred])
                tmp = self._done.enter_context(_opened(self.path))
                self._writer = self._done.enter_context(pq.ParquetWriter(tmp, schema))
            table = pa.Table.from_pylist(rows, schema=self._writer.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:  # an id column of numbers and text
            raise DataError(
                f"--output {self.path}: a column's values change type in rows {self.rows - len(rows) + 1}-{self.rows} "
                f"({one_line(e, 150)}); a Parquet column holds one type: write a .csv"
            ) from None
        self._writer.write_table(table)


def _opened(path: Path) -> contextlib.AbstractContextManager[Path]:
    """The output's temporary file, named by this process: one a killed predict left is removed by the next."""
    atomic.remove_dead_writers(path)
    return atomic.atomic_tree(path)
