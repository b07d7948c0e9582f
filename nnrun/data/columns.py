"""A table's columns: what kind each is (numeric, categorical, date, or an id or free text), and dates as numbers.

Listed columns (`data.numeric`, `data.categorical`, `data.date`) are what the
config says; the rest are detected from the training split. Ids and free text
are refused: encoded, they would only teach the model the rows. An id looks
like one: whole numbers, one per row, that run nearly without gaps or sit in a
column named like an id (`id`, `CustomerId`, `user_id`, `RowNumber`); text
with nearly a value per row. A measurement whose every value differs
(a population) is a number. Every column that cannot be used is named at once.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nnrun.errors import DataError, listed

if TYPE_CHECKING:
    import pandas as pd

    from nnrun.config.schema import TableData

KINDS = ("numeric", "categorical", "date")
DROPPED = ("id", "text")  # kinds a model cannot use: `classify` names them, `kinds` refuses them
# A date becomes these numbers: its year, and where it lies in the year and the week,
# on a circle, so that December sits next to January.
DATE_PARTS = ("year", "month_sin", "month_cos", "day_of_year_sin", "day_of_year_cos", "weekday_sin", "weekday_cos")
DECIMAL_COMMA = "numbers with a decimal comma"  # a `Column.reason`: the whole file reads otherwise
_PARSED = 0.9  # share of a column's values that must read as dates in one format
_IDS_FROM = 50  # rows from which whole numbers, one per row, can be told to be an id
# Whole numbers, one per row, within a span of at most this many times the rows are a numbering:
# a measurement's values drawn at random over so narrow a span would repeat (and the training
# split keeps about 0.7 of a numbering's rows, so its span is about 1.4 times them).
_NUMBERING_SPAN = 3
_ID_NAMES = {"id", "idx", "index", "key", "uuid", "guid", "rownumber", "rownum", "rowid", "serial", "serialnumber"}
_ID_ENDING = re.compile(r"(?:^|[\s_.-])(?i:id|uuid|guid|key)$|(?<=[a-z0-9])(?:Id|ID|Uuid|UUID|Key)$|^(?i:id)[\s_.-]")


@dataclass(frozen=True)
class Column:
    """What a feature column is, and why, as `classify` decides it.

    Attributes:
        kind: one of `KINDS`, or 'id' or 'text' (`DROPPED`: a model can only memorize them).
        reason: why, in a few words: 'listed in data.numeric', 'numbers', 'text with 3 values',
            'an id: named like one, a different whole number in each of 8000 rows'.
        format: a date column's strptime format; None for other kinds.
        problem: why the column cannot be used as it is and what to write, to follow
            "column 'name' " in a message; None when it can be.
        place: the config's key a problem's message names first, where the config listed the
            column ('data.categorical', 'data.date'); None: the table (`data.path '...'`).
    """

    kind: str
    reason: str
    format: str | None = None
    problem: str | None = None
    place: str | None = None


def classify(x: pd.DataFrame, data: TableData | None = None) -> dict[str, Column]:
    """Each feature column's kind and why: as listed in the config, else detected. Raises nothing.

    Args:
        x: the training rows, a DataFrame of feature columns.
        data: the config's `data` section (`numeric`, `categorical`, `date`); None: nothing listed
            (a starter config being written from the data).

    Returns:
        column -> `Column`, in the table's order.
    """
    listed_kinds = {name: kind for kind in KINDS for name in getattr(data, kind, None) or ()}
    every_text_listed = data is not None and data.categorical is not None
    found: dict[str, Column] = {}
    for name in (str(c) for c in x.columns):
        series = x[name]
        kind = listed_kinds.get(name)
        fmt = date_format(series) if kind in (None, "date") else None
        if kind == "date" and fmt is None:
            example = series.dropna().astype(str).iloc[0] if series.notna().any() else None
            found[name] = Column(
                "date", "listed in data.date", None, f"does not read as dates (e.g. {example!r})", "data.date"
            )
        elif kind is not None:
            found[name] = Column(kind, f"listed in data.{kind}", fmt)
        else:
            found[name] = _detect(series, name, fmt, every_text_listed)
    return found


def kinds(x: pd.DataFrame, data: TableData) -> tuple[dict[str, str], dict[str, str]]:
    """Each feature column's kind (`classify`), every column that cannot be used refused in one line.

    Args:
        x: the training rows, a DataFrame of feature columns.
        data: the config's `data` section (`numeric`, `categorical`, `date`, `path`).

    Returns:
        `(kinds, formats)`: column -> 'numeric' | 'categorical' | 'date', in the
        table's order, and date column -> its strptime format.
    """
    found = classify(x, data)
    problems = {name: column for name, column in found.items() if column.problem is not None}
    if problems:
        raise DataError(refusal(problems, f"data.path '{data.path}'"))
    return (
        {name: column.kind for name, column in found.items()},
        {name: column.format for name, column in found.items() if column.format is not None},
    )


def refusal(problems: dict[str, Column], origin: str) -> str:
    """One line naming every column that cannot be used, each with why, and what to write.

    Args:
        problems: column -> its `Column`, each with a `problem`.
        origin: the table, as messages name it (`data.path 'churn.csv'`).

    Returns:
        The message: a single column's as it always read; several, with the ids and free text
        together and the `data.drop` list to write.
    """
    comma = [name for name, column in problems.items() if column.reason == DECIMAL_COMMA]
    if comma:  # the whole file reads otherwise with data.decimal: the rest may change
        problems = {comma[0]: problems[comma[0]]}
    if len(problems) == 1:
        name, column = next(iter(problems.items()))
        return f"{column.place or origin}: column '{name}' {column.problem}"
    dropped = [name for name, column in problems.items() if column.kind in DROPPED]
    parts = []
    if len(dropped) == 1:
        parts.append(f"column '{dropped[0]}' {problems[dropped[0]].problem}")
    elif dropped:
        shown = listed((f"'{name}' ({problems[name].reason})" for name in dropped), 8)
        parts.append(
            f"columns {shown} are ids or free text, which the model would only memorize: add them to data.drop "
            f"(drop: [{listed((_yaml(name) for name in dropped), 20)}]), or list one in data.numeric or "
            "data.categorical to use it"
        )
    parts += [f"column '{name}' {column.problem}" for name, column in problems.items() if name not in dropped]
    return f"{origin}: {len(problems)} columns cannot be used as they are: " + "; ".join(parts)


def _yaml(name):
    """A column's name as it can stand in a YAML list."""
    return name if re.fullmatch(r"[A-Za-z_][\w.-]*", name) else json.dumps(name)


def named_like_id(name: str) -> bool:
    """Whether a column's name says it holds ids: `id`, `index`, `RowNumber`, `CustomerId`, `user_id`, `id_user`."""
    flat = re.sub(r"[\s_.-]", "", name.lower())
    return flat in _ID_NAMES or bool(re.fullmatch(r"unnamed:?\d+", flat)) or bool(_ID_ENDING.search(name))


def _detect(series, name, fmt, every_text_listed):
    """The kind of a column the config does not list; `fmt` is its date format, if it has one."""
    values = series.dropna()
    n, distinct = len(values), values.nunique()
    if _is_numeric(series):
        numbers = values.to_numpy(dtype="float64")
        if n >= _IDS_FROM and distinct == n and np.all(numbers == np.round(numbers)):
            low, high = int(numbers.min()), int(numbers.max())
            why = (
                f"numbered from {low} to {high}"
                if high - low + 1 <= _NUMBERING_SPAN * n
                else "named like one"
                if named_like_id(name)
                else None
            )
            if why is not None:
                reason = f"an id: {why}, a different whole number in each of {n} rows"
                return Column("id", reason, None, _memorized(f"is {reason}", "data.numeric"))
        return Column("numeric", "numbers")
    if fmt is not None:
        return Column("date", f"dates in {fmt}", fmt)
    example = repr(str(values.iloc[0])[:40])
    if values.astype(str).str.fullmatch(r"[-+]?\d*,\d+").mean() >= _PARSED:
        return Column(
            "numeric",
            DECIMAL_COMMA,
            None,
            f"holds numbers with a decimal comma (e.g. {example}); set data.decimal: ','",
        )
    import pandas as pd

    text = values[pd.to_numeric(values, errors="coerce").isna()]
    if 0 < len(text) <= (1 - _PARSED) * n:  # numbers, and a few words
        words = f"{len(text)} text value{'s' * (len(text) != 1)}"
        return Column(
            "numeric",
            f"numbers and {words}",
            None,
            f"holds numbers and {words} (e.g. {str(text.iloc[0])[:40]!r}); if they mean missing, "
            "add them to data.na_values, else list the column in data.categorical",
        )
    if distinct > max(20, math.sqrt(10 * n)):
        codes = distinct == n and not values.astype(str).str.contains(r"\s").any()
        kind = "id" if named_like_id(name) or codes else "text"
        reason = f"{'an id' if kind == 'id' else 'free text'}: {distinct} different values in {n} rows"
        problem = f"has {distinct} different values in {n} rows (e.g. {example}): an id or free text"
        return Column(kind, reason, None, _memorized(problem, "data.categorical"))
    if every_text_listed:
        return Column(
            "categorical",
            f"text with {distinct} values, not in data.categorical",
            None,
            f"holds text (e.g. {values.iloc[0]!r}) but is not listed; add it to data.categorical or data.drop",
            "data.categorical",
        )
    return Column("categorical", f"text with {distinct} value{'s' * (distinct != 1)}")


def _memorized(what, keep):
    return f"{what}, which the model would only memorize; add it to data.drop, or to {keep} to use it"


def _is_numeric(series):
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) or series.isna().all()


def date_format(series: pd.Series) -> str | None:
    """The strptime format most of a text column's values read in, or None if it does not hold dates."""
    import pandas as pd
    from pandas.tseries.api import guess_datetime_format

    if _is_numeric(series):
        return None
    text = series.dropna().astype(str).str.strip()
    best, parsed = None, 0.0
    for dayfirst in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            candidate = guess_datetime_format(text.iloc[0], dayfirst=dayfirst)
        if candidate is None:
            continue
        share = pd.to_datetime(text, format=candidate, errors="coerce").notna().mean()
        if share > parsed:
            best, parsed = candidate, share
    return best if parsed >= _PARSED else None


def date_parts(series: pd.Series, fmt: str, name: str) -> dict[str, np.ndarray]:
    """A date column as `DATE_PARTS` numbers (NaN where a value is missing or not a date in `fmt`).

    Args:
        series: the raw column.
        fmt: its strptime format.
        name: the column's name, which prefixes each part's ('signup.year').

    Returns:
        A dict part name -> float64 array.
    """
    when = _dates(series, fmt)
    turns = {
        "month": (when.dt.month - 1) / 12,
        "day_of_year": (when.dt.day_of_year - 1) / 365.25,
        "weekday": when.dt.day_of_week / 7,
    }
    parts = {f"{name}.year": when.dt.year.astype("float64").to_numpy()}
    for part, turn in turns.items():
        angle = 2 * np.pi * turn.astype("float64").to_numpy()
        parts[f"{name}.{part}_sin"], parts[f"{name}.{part}_cos"] = np.sin(angle), np.cos(angle)
    return parts


def unparsed(series: pd.Series, fmt: str) -> pd.Series:
    """The values of a date column that are present but not dates in `fmt`."""
    return series[_dates(series, fmt).isna() & series.notna()]


def _dates(series, fmt):
    """A column read as dates in `fmt`: NaT where a value is missing or not such a date."""
    import pandas as pd

    return pd.to_datetime(series.astype("string").str.strip(), format=fmt, errors="coerce")
