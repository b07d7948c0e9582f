"""CSV rows for `predict` without pandas or scikit-learn: the csv module and NumPy.

One row through an ONNX export then answers in a fraction of a second, where
importing pandas and scikit-learn alone takes longer. The rows are read with the
run's reading options and encoded with its preprocessing.json exactly as
`csv_table.apply` encodes what `csv_file.read_table` reads. Whatever this
reader cannot be sure pandas reads the same way (a column pandas would read as
booleans or as floats for a category, a row of the wrong width, a date that
does not write back as it was given, a problem to report) gives None, and
predict takes the pandas path, which reads it, or says what is wrong, as before.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnrun.data import csv_file
from nnrun.errors import listed

# pandas.read_csv's default missing-value strings (pandas._libs.parsers.STR_NA_VALUES; a test checks them).
NA_VALUES = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A"]
    + ["NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
)
BOOLS = frozenset(["True", "TRUE", "true", "False", "FALSE", "false"])  # what pandas reads as booleans
INTEGER = re.compile(r"[+-]?[0-9]{1,15}")  # int64 and exact as float64; ASCII: pandas reads "١٢" as text
# Directives whose strptime and strftime agree with pandas's to_datetime for a value that writes back as given.
DATE_DIRECTIVES = frozenset("YmdHMSyBb%")
# Past this, pandas's import (~1 s) costs less than reading row by row in Python, and holds the fields in less memory.
MAX_BYTES = 4 << 20


@dataclass
class Rows:
    """A CSV file's rows as the model takes them."""

    header: list[str]  # every column of the file, in its order
    x: np.ndarray  # float32, one row per data row
    unseen: list[str]  # what the rows hold that training never saw, a line per column (as `csv_table.apply`)
    ids: list[Any]  # the id column's values (int or str, as pandas reads them), or None per row


def read(path: Path, prep: dict[str, Any], id_column: str | None = None) -> Rows | None:
    """Reads and encodes a CSV file of raw rows, or returns None where pandas must.

    Args:
        path: the CSV (or .csv.gz) file.
        prep: the run's preprocessing dict (`kind: table`).
        id_column: a column to carry into `Rows.ids`, or None.

    Returns:
        `Rows`, or None: the pandas path reads this file (or says why it cannot).
    """
    try:
        return _read(path, prep, id_column)
    except Exception:  # a file to refuse, or a case this reader does not cover: pandas's path answers
        return None


def _read(path, prep, id_column):
    gz = path.name.lower().endswith(".gz")
    if path.stat().st_size > (MAX_BYTES // 4 if gz else MAX_BYTES):
        return None
    options = prep.get("read", {})
    named = options.get("encoding") or "utf-8"
    encoding = "utf-8-sig" if named.lower().replace("_", "-") in ("utf-8", "utf8") else named
    decimal = options.get("decimal") or "."
    na = NA_VALUES | set(options.get("na_values") or ())
    if any(_number(v, ".") for v in options.get("na_values") or ()):  # pandas also matches them as numbers
        return None
    csv_file._refuse_binary(path, named, "input")
    sep, quotechar = csv_file._sniff(path, encoding, options.get("sep"), options.get("quotechar"))
    if decimal == sep:
        return None
    csv_file._check_header(path, encoding, sep, quotechar, "input")
    opener = gzip.open if gz else open
    with opener(path, "rt", encoding=encoding, newline="") as f:  # strict: pandas refuses what does not decode
        # strict: a quote left open to the end of the file is an error (pandas refuses it), not a last long field.
        reader = csv.reader(f, delimiter=sep, quotechar=quotechar, skipinitialspace=True, strict=True)
        rows = [row for row in reader if row]
    if len(rows) < 2:
        return None
    header, rows = rows[0], rows[1:]
    wanted = [*prep["columns"], *([id_column] if id_column else [])]
    if "" in header or len(set(header)) != len(header) or any(len(row) != len(header) for row in rows):
        return None  # pandas renames such columns, pads short rows, or refuses the file
    if not set(wanted) <= set(header) or len(header) == 1:
        return None
    raw = {name: [None if row[i] in na else row[i] for row in rows] for i, name in enumerate(header) if name in wanted}
    if any(v[:1].isspace() for values in raw.values() for v in values if v):
        return None  # the csv module skips only spaces after a separator; whether pandas skips a tab is its own
    dates = {name: d["format"] for name, d in prep.get("dates", {}).items()}
    numbers: dict[str, np.ndarray] = {}
    for name in prep["columns"]:
        if name in dates:
            parts = _date_parts(raw[name], dates[name], name)
            if parts is None:
                return None
            numbers.update(parts)
        elif name not in prep["categorical"]:
            values = [np.nan if v is None else _number(v, decimal) for v in raw[name]]
            if any(v is None for v in values):
                return None  # not a number: the pandas path names the row
            numbers[name] = np.array(values, dtype="float64")
    texts = {name: _texts(raw[name], decimal) for name in prep["categorical"]}
    if any(t is None for t in texts.values()):
        return None
    ids = _ids(raw[id_column], decimal) if id_column else [None] * len(rows)
    if ids is None:
        return None
    unseen = _unseen(raw, texts, prep)
    return Rows(header=header, x=_encode(numbers, texts, prep, len(rows)), unseen=unseen, ids=ids)


def _number(value, decimal):
    """A field as pandas reads a number, or None where it is not one this reader is sure of."""
    if decimal != "." and "." in value:
        return None  # pandas would read the column as text, then to_numeric reads "1.5" after all
    text = value.replace(decimal, ".")
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text) or len(text) > 25:
        return None
    number = float(text)
    # pandas reads a column of whole numbers as int64, where -0 is 0; which column it is, it decides.
    return None if number == 0 and text.startswith("-") else number


def _number_like(value, decimal):
    """Whether pandas might read a field as a number or a boolean (Python's float takes more than pandas)."""
    if value in BOOLS:
        return True
    try:
        float(value.replace(decimal, "."))
    except ValueError:
        return False
    return True


def _texts(values, decimal):
    """A categorical column's values as `csv_table.as_text` gives them from pandas's column, None where missing.

    A column of whole numbers reads as integers ('007' is '7'); one of other numbers or booleans: None (pandas).
    """
    present = [v for v in values if v is not None]
    if present and all(INTEGER.fullmatch(v) for v in present):
        return [None if v is None else str(int(v)) for v in values]
    if present and all(_number_like(v, decimal) for v in present):
        return None
    return [None if v is None else v.strip() for v in values]


def _ids(values, decimal):
    """The id column's values as pandas's `tolist` gives them, or None where this reader is not sure."""
    if any(v is None for v in values):
        return None
    if all(INTEGER.fullmatch(v) for v in values):
        return [int(v) for v in values]
    return None if all(_number_like(v, decimal) for v in values) else list(values)


def _date_parts(values, fmt, name):
    """A date column as `columns.date_parts` gives it, or None unless every date writes back as it was given."""
    if set(re.findall(r"%(.)", fmt)) - DATE_DIRECTIVES:
        return None
    present = [v for v in values if v is not None]
    if present and all(_number_like(v, ".") for v in present):
        return None  # pandas reads them as numbers, then as text again
    when: list[datetime.datetime | None] = []
    for value in values:
        text = None if value is None else value.strip()
        day = None if text is None else datetime.datetime.strptime(text, fmt)
        if day is not None and day.strftime(fmt) != text:
            return None
        when.append(day)
    nan = float("nan")
    year, month, day_of_year, weekday = (
        np.array([nan if d is None else float(get(d)) for d in when], dtype="float64")
        for get in (lambda d: d.year, lambda d: d.month, lambda d: d.timetuple().tm_yday, lambda d: d.weekday())
    )
    turns = {"month": (month - 1) / 12, "day_of_year": (day_of_year - 1) / 365.25, "weekday": weekday / 7}
    parts = {f"{name}.year": year}
    for part, turn in turns.items():
        angle = 2 * np.pi * turn
        parts[f"{name}.{part}_sin"], parts[f"{name}.{part}_cos"] = np.sin(angle), np.cos(angle)
    return parts


def unseen_line(
    name: str,
    where: Sequence[bool] | np.ndarray,
    what: str,
    values: Iterable[object] = (),
    first_line: int = 2,
    unit: str = "line",
) -> str:
    """One line about a column's rows that training never saw, naming a few values and the rows' lines.

    Args:
        name: the column.
        where: for each row, whether it is one of them.
        what: what they hold, e.g. "missing, filled as in training".
        values: the values to name (the first 5 different ones are shown).
        first_line: the line of the first row (2: a file's first, after its header).
        unit: what the numbers count: a CSV's `line`s, a Parquet file's `row`s.

    Returns:
        "column 'city': 2 rows with ...: 'Oslo' (lines 3, 6)", the lines counted in the file after its header.
    """
    lines = np.flatnonzero(where) + first_line
    rows = f"{len(lines)} row{'s' * (len(lines) != 1)}"
    shown = ", ".join(repr(str(v)[:40]) for v in list(dict.fromkeys(values))[:5])
    at = f" ({unit}{'s' * (len(lines) > 1)} {listed(lines.tolist())})"
    return f"column '{name}': {rows} {what}" + (f": {shown}" if shown else "") + at


def _unseen(raw, texts, prep):
    """What the rows hold that training never saw, worded as `csv_table._unseen` words it."""
    found = []

    def say(name, where, what, values=()):
        found.append(unseen_line(name, where, what, values))

    for name, stats in prep["categorical"].items():
        known = set(stats["categories"])
        new = [v is not None and v not in known for v in texts[name]]
        if any(new):
            unknown = [v for v, n in zip(texts[name], new, strict=True) if n]
            say(name, new, "with a category never seen in training, encoded as none of them", unknown)
    for name in prep["columns"]:
        missing = [v is None for v in raw[name]]
        if any(missing):
            say(name, missing, "missing, filled as in training")
    return found


def scaled(values: np.ndarray, numeric: dict[str, Any]) -> np.ndarray:
    """Numeric columns as the model takes them: gaps filled, then scaled with the training split's statistics.

    Args:
        values: float64, one column per entry of `numeric`, NaN where a value is missing.
        numeric: preprocessing.json's `numeric`: column -> `fill`, and `mean`/`scale` or `min`/`scale`.

    Returns:
        float64 values, in the same order of operations on every path (so their numbers are equal).
    """
    stats = list(numeric.values())
    values = np.where(np.isnan(values), [s["fill"] for s in stats], values)
    if "mean" in stats[0]:
        return (values - [s["mean"] for s in stats]) / [s["scale"] for s in stats]
    if "min" in stats[0]:
        return values * [s["scale"] for s in stats] + [s["min"] for s in stats]
    return values


def _encode(numbers, texts, prep, count):
    """The model's inputs, computed as `csv_table.apply` computes them (the same operations, in float64)."""
    parts = []
    numeric = prep["numeric"]
    if numeric:
        parts.append(scaled(np.column_stack([numbers[name] for name in numeric]), numeric))
    for name, stats in prep["categorical"].items():
        filled = [stats["fill"] if v is None else v for v in texts[name]]
        parts.append(np.array([[v == c for c in stats["categories"]] for v in filled], dtype="float64"))
    return np.concatenate(parts, axis=1).astype("float32") if parts else np.zeros((count, 0), "float32")
