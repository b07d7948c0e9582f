"""A table's columns: what kind each is (numeric, categorical, date), and dates as numbers.

Listed columns (`data.numeric`, `data.categorical`, `data.date`) are what the
config says; the rest are detected from the training split. Columns that are
ids or free text (nearly one value per row, or far more distinct values than
rows per value) are refused: encoded, they would only teach the model the rows.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

from nnrun.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from nnrun.config.schema import CsvData

KINDS = ("numeric", "categorical", "date")
# A date becomes these numbers: its year, and where it lies in the year and the week,
# on a circle, so that December sits next to January.
DATE_PARTS = ("year", "month_sin", "month_cos", "day_of_year_sin", "day_of_year_cos", "weekday_sin", "weekday_cos")
_PARSED = 0.9  # share of a column's values that must read as dates in one format


def kinds(x: pd.DataFrame, data: CsvData) -> tuple[dict[str, str], dict[str, str]]:
    """Each feature column's kind: as listed in the config, else detected.

    Args:
        x: the training rows, a DataFrame of feature columns.
        data: the config's `data` section (`numeric`, `categorical`, `date`, `path`).

    Returns:
        `(kinds, formats)`: column -> 'numeric' | 'categorical' | 'date', in the
        table's order, and date column -> its strptime format.
    """
    listed = {name: kind for kind in KINDS for name in getattr(data, kind, None) or ()}
    found: dict[str, str] = {}
    formats: dict[str, str] = {}
    for name in (str(c) for c in x.columns):
        series = x[name]
        fmt = date_format(series) if listed.get(name) in (None, "date") else None
        kind = listed.get(name) or _detect(series, name, data, fmt)
        if kind == "date":
            if fmt is None:
                example = series.dropna().astype(str).iloc[0] if series.notna().any() else None
                raise DataError(f"data.date: column '{name}' does not read as dates (e.g. {example!r})")
            formats[name] = fmt
        found[name] = kind
    return found, formats


def _detect(series, name, data, fmt):
    """The kind of a column the config does not list; `fmt` is its date format, if it has one."""
    values = series.dropna()
    n, distinct = len(values), values.nunique()
    if _is_numeric(series):
        numbers = values.to_numpy(dtype="float64")
        if n >= 50 and distinct == n and np.all(numbers == np.round(numbers)):
            _refuse(name, distinct, n, values, data, "data.numeric")
        return "numeric"
    if fmt is not None:
        return "date"
    if values.astype(str).str.fullmatch(r"[-+]?\d*,\d+").mean() >= _PARSED:
        raise DataError(
            f"data.path '{data.path}': column '{name}' holds numbers with a decimal comma "
            f"(e.g. {str(values.iloc[0])!r}); set data.decimal: ','"
        )
    import pandas as pd

    text = values[pd.to_numeric(values, errors="coerce").isna()]
    if 0 < len(text) <= (1 - _PARSED) * n:  # numbers, and a few words
        raise DataError(
            f"data.path '{data.path}': column '{name}' holds numbers and {len(text)} text values "
            f"(e.g. {str(text.iloc[0])[:40]!r}); if they mean missing, add them to data.na_values, "
            "else list the column in data.categorical"
        )
    if distinct > max(20, math.sqrt(10 * n)):
        _refuse(name, distinct, n, values, data, "data.categorical")
    if data.categorical is not None:
        raise DataError(
            f"data.categorical: column '{name}' holds text (e.g. {values.iloc[0]!r}) but is not listed; "
            "add it to data.categorical or data.drop"
        )
    return "categorical"


def _refuse(name, distinct, n, values, data, keep):
    example = str(values.iloc[0])[:40]
    raise DataError(
        f"data.path '{data.path}': column '{name}' has {distinct} different values in {n} rows (e.g. {example!r}): "
        f"an id or free text, which the model would only memorize; add it to data.drop, or to {keep} to use it"
    )


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
