"""CSV tables: the `csv` source and the `table` feature kind.

Numeric columns are imputed with the training median and scaled; categorical
columns are imputed with the most frequent training value and one-hot encoded;
date columns become numbers (columns.py says which column is which).
All of it is learned from the training split with scikit-learn and saved as
plain JSON, so `apply` encodes raw rows later exactly as training did.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from nnrun.atomic import sha256_file
from nnrun.data import columns, table_notes
from nnrun.data.csv_file import read_table
from nnrun.data.light_table import scaled, unseen_line
from nnrun.data.types import Raw
from nnrun.errors import DataError, did_you_mean, listed, quoted, shown

if TYPE_CHECKING:
    import pandas as pd

    from nnrun.config.schema import CsvData, TableData

KIND = "table"


def read(data: CsvData, place: str = "data.path") -> Raw:
    """Reads a CSV table: the target column, and the rest as features.

    Args:
        data: the config's `data` section (`path`, relative to the current
            directory, `target`, `drop`, the column lists, the reading options,
            `missing_target`).
        place: what errors name first: `data.path`, or the option that gave the file (`--data`).

    Returns:
        A `Raw` whose `x` is a pandas DataFrame of the feature columns and
        `y` the target column as an array.
    """
    table = read_table(data.path, reading(data), place)
    return raw(table, data, f"sha256:{sha256_file(data.path)}", place)


def raw(table: pd.DataFrame, data: TableData, fingerprint: str, place: str = "data.path") -> Raw:
    """A table read whole, as a `Raw`: its columns checked against the config, rows without a target handled.

    Args:
        table: every column of the file.
        data: the config's `data` section (`path`, `target`, `drop`, the column lists, `missing_target`).
        fingerprint: the file's.
        place: what errors name the file by (`data.path`, `--data`).

    Returns:
        A `Raw` whose `x` is a pandas DataFrame of the feature columns and `y` the target column as an array.
    """
    path = data.path
    check_columns([str(c) for c in table.columns], data)
    notes: list[str] = []
    missing = table[data.target].isna().to_numpy()
    if missing.any():
        count = f"{int(missing.sum())} of {len(table)} rows of '{path}' have no value in column '{data.target}'"
        if data.missing_target == "error" or missing.all():
            first = int(np.flatnonzero(missing)[0]) + 1
            raise DataError(f"data.target: {count} (first: data row {first}); fill them in or remove those rows")
        table = table[~missing]
        target = table[data.target]
        if target.dtype.kind == "f" and (target == target.round()).all():  # as it would read without the gaps
            table = table.astype({data.target: "int64"})
        notes.append(f"{count}: left out (data.missing_target: error refuses them)")
    return Raw(
        x=table.drop(columns=[data.target, *data.drop]),
        y=table[data.target].to_numpy(),
        origin=f"{place} '{path}'",
        names=("columns", data.target),
        fingerprint=fingerprint,
        notes=notes,
    )


def check_columns(names: list[str], data: TableData) -> None:
    """Refuses a config that names a column the table lacks, or a column twice, in one line.

    Args:
        names: the table's columns.
        data: the config's `data` section.
    """
    path = data.path
    _column(data.target, names, "data.target", path)
    seen: dict[str, str] = {}  # column -> the list naming it
    for place in ("drop", *columns.KINDS):
        for name in getattr(data, place) or ():
            _column(name, names, f"data.{place}", path)
            if name == data.target:
                raise DataError(f"data.{place}: '{name}' is data.target, the column to predict")
            if name in seen:
                raise DataError(f"data.{place}: '{name}' is also in data.{seen[name]}")
            seen[name] = place


def reading(data: TableData) -> dict[str, Any]:
    """The options a table is read with (kept in preprocessing.json, so predict reads CSV rows alike).

    `quotechar` only where the config sets it: a run's preprocessing.json then reads as before it existed.
    A Parquet table has none of its own: CSV rows given to its run are read as CSV's defaults read them.
    """
    read = {
        "sep": getattr(data, "sep", None),
        "decimal": getattr(data, "decimal", "."),
        "encoding": getattr(data, "encoding", "utf-8"),
        "na_values": list(getattr(data, "na_values", ())),
    }
    quotechar = getattr(data, "quotechar", None)
    return {**read, "quotechar": quotechar} if quotechar else read


def check(x: pd.DataFrame, name: str, origin: str) -> pd.DataFrame:
    """Returns the table of features, or says why it has none."""
    if x.shape[1] == 0:
        raise DataError(f"{origin}: no feature columns left once data.target and data.drop are taken out")
    return x


def fit(x: pd.DataFrame, data: TableData) -> dict[str, Any]:
    """Learns imputation, scaling, categories and date formats from the training split.

    Args:
        x: the training rows (a DataFrame of feature columns).
        data: the config's `data` section (the column lists, `scale`, reading options).

    Returns:
        The JSON-able preprocessing: kind, input shape, the columns, each
        numeric column's fill and scaling (date columns as their parts), each
        categorical column's fill and categories, date formats, how the file
        was read, and notes for the user.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

    missing = x.isna().sum()  # per column, at once: a table may be thousands of columns wide
    table_notes.refuse_empty([name for name in x.columns if missing[name] == len(x)], data)
    kinds, formats = columns.kinds(x, data)
    categorical = [c for c, kind in kinds.items() if kind == "categorical"]
    expanded = with_dates(x, formats)
    numeric_columns = [c for c in expanded.columns if c not in categorical]
    notes = table_notes.detection_notes(data, {c: x[c].nunique() for c in categorical}, formats)

    numeric: dict[str, dict[str, float]] = {}
    if numeric_columns:
        values = number_block(expanded, numeric_columns)
        filled = SimpleImputer(strategy="median", keep_empty_features=True).fit(values)
        scaler: Any = {"standard": StandardScaler, "minmax": MinMaxScaler}.get(data.scale)  # None: scale none
        scaler = scaler().fit(filled.transform(values)) if scaler else None
        for i, name in enumerate(numeric_columns):
            numeric[name] = {"fill": float(filled.statistics_[i])}
            if data.scale == "standard":
                numeric[name].update(mean=float(scaler.mean_[i]), scale=float(scaler.scale_[i]))
            elif data.scale == "minmax":
                numeric[name].update(min=float(scaler.min_[i]), scale=float(scaler.scale_[i]))
        for name in [c for c in x.columns if kinds[c] != "categorical"]:
            n = int(missing[name])
            median = "s of its parts" if name in formats else f" {float(format(numeric[name]['fill'], '.6g'))}"
            table_notes.note_filled(notes, name, n, f"the training median{median}")

    encoded: dict[str, dict[str, Any]] = {}
    if categorical:
        text = np.array([as_text(x[c]) for c in categorical], dtype=object).T
        filled = SimpleImputer(strategy="most_frequent", missing_values=None).fit(text)
        encoder = OneHotEncoder(handle_unknown="ignore").fit(filled.transform(text))
        for i, name in enumerate(categorical):
            encoded[name] = {"fill": str(filled.statistics_[i]), "categories": [str(c) for c in encoder.categories_[i]]}
            table_notes.note_filled(
                notes, name, sum(v is None for v in text[:, i]), f"the most frequent value {encoded[name]['fill']!r}"
            )
    return preprocessing(data, x.columns, numeric, encoded, formats, notes)


def preprocessing(
    data: TableData,
    names: Iterable[object],
    numeric: dict[str, dict[str, float]],
    encoded: dict[str, dict[str, Any]],
    formats: dict[str, str],
    notes: list[str],
) -> dict[str, Any]:
    """The JSON-able preprocessing of a table (what `fit` returns, and a streamed table's `table_stats`).

    Args:
        data: the config's `data` section.
        names: the feature columns, in order.
        numeric: each scaled column's fill and scaling (a date column's as its parts).
        encoded: each categorical column's fill and categories.
        formats: each date column's format.
        notes: for the user.

    Returns:
        The dict `apply` encodes rows with.
    """
    return {
        "kind": KIND,
        "input_shape": [len(numeric) + sum(len(c["categories"]) for c in encoded.values())],
        "columns": [str(c) for c in names],
        "numeric": numeric,
        "categorical": encoded,
        "dates": {name: {"format": fmt} for name, fmt in formats.items()},
        "read": reading(data),
        "rescale": None,
        "notes": notes,
    }


def apply(
    x: pd.DataFrame,
    preprocessing: dict[str, Any],
    warnings_out: list[str] | None = None,
    first_line: int = 2,
    unit: str = "line",
) -> np.ndarray:
    """Encodes raw rows exactly as the training rows were encoded.

    Args:
        x: raw rows, a DataFrame (or anything `pandas.DataFrame` takes) with
            the training feature columns in any order; other columns are ignored.
        preprocessing: the run's preprocessing dict.
        warnings_out: a list to which what the rows hold that training never
            saw is added, a line per column (unseen categories, values that
            are not dates, missing values) naming the rows by their line in a
            CSV file with one header line, as predict names them; or None.
        first_line: the line the first of the rows is named by (a later chunk of a file starts further on).
        unit: what the warnings' numbers count: a CSV's `line`s, a Parquet file's `row`s (from 1).

    Returns:
        float32 features, numeric columns first, then each categorical
        column one-hot in its saved category order (unseen categories: all zeros).
    """
    import pandas as pd
    from sklearn.preprocessing import OneHotEncoder

    x = x if isinstance(x, pd.DataFrame) else pd.DataFrame(x)
    have = [str(c) for c in x.columns]
    x = x.set_axis(have, axis=1)
    present = set(have)
    if len(have) == 1 and have[0] not in preprocessing["columns"]:  # not a table (never echo what it holds)
        columns = listed(preprocessing["columns"])
        raise DataError(f"the input reads as a single column, not a table of the model's columns {columns}")
    missing = [c for c in preprocessing["columns"] if c not in present]
    if missing:  # all of them at once: one round of fixing the file
        # A hint only among the columns the model does not take: one it takes is not a misspelling.
        extra = [c for c in have if c not in preprocessing["columns"]]
        hints = [did_you_mean(name, extra).removeprefix("; ") for name in missing]  # "did you mean 'x'?"
        named = [f"'{name}'" + (f" ({hint})" if hint else "") for name, hint in zip(missing, hints, strict=True)]
        what = f"no column {named[0]}" if len(named) == 1 else f"no columns {listed(named, 10)}"
        raise DataError(f"the input has {what}; the model takes {listed(preprocessing['columns'], 15)}")
    if warnings_out is not None:
        warnings_out += _unseen(x, preprocessing, first_line, unit)
    x = with_dates(x, {name: d["format"] for name, d in preprocessing.get("dates", {}).items()})
    parts = []
    numeric = preprocessing["numeric"]
    if numeric:
        parts.append(scaled(number_block(x, list(numeric)), numeric))
    categorical = preprocessing["categorical"]
    if categorical:
        text = (
            np.array(
                [[s["fill"] if v is None else v for v in as_text(x[c])] for c, s in categorical.items()], dtype=object
            )
            .reshape(len(categorical), len(x))
            .T
        )
        encoder = OneHotEncoder(categories=[s["categories"] for s in categorical.values()], handle_unknown="ignore")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unseen categories are meant to encode as zeros
            parts.append(encoder.fit(text).transform(text).toarray())
    return np.concatenate(parts, axis=1).astype("float32") if parts else np.zeros((len(x), 0), "float32")


def feed(
    x: pd.DataFrame, y: np.ndarray, preprocessing: dict[str, Any], batch_size: int, training: bool, seed: int
) -> np.ndarray:
    """What Keras is given for a split: the encoded array (Keras batches it)."""
    return apply(x, preprocessing)


def _unseen(x, preprocessing, first_line, unit):
    """What raw rows hold that training never saw, a line per column, naming the values and the rows."""
    found = []

    def say(name, where, what, values=()):
        found.append(unseen_line(name, where, what, values, first_line, unit))

    for name, stats in preprocessing["categorical"].items():
        known = set(stats["categories"])
        text = as_text(x[name])
        new = [v is not None and v not in known for v in text]
        if any(new):
            unknown = [v for v, n in zip(text, new, strict=True) if n]
            say(name, new, "with a category never seen in training, encoded as none of them", unknown)
    for name, spec in preprocessing.get("dates", {}).items():
        bad = x[name].index.isin(columns.unparsed(x[name], spec["format"]).index)
        if bad.any():
            say(name, bad, f"not dates in {spec['format']}, filled as missing", x[name][bad].tolist())
    missing = x[preprocessing["columns"]].isna()
    counts = missing.sum()  # per column, at once: a table may be thousands of columns wide
    for name in preprocessing["columns"]:
        if counts[name]:
            say(name, missing[name].to_numpy(), "missing, filled as in training")
    return found


def with_dates(x: pd.DataFrame, formats: dict[str, str]) -> pd.DataFrame:
    """The table with each date column replaced, in place, by its numeric parts."""
    import pandas as pd

    if not formats:
        return x
    out = {}
    for name in x.columns:
        if name in formats:
            out.update(columns.date_parts(x[name], formats[name], name))
        else:
            out[name] = x[name].to_numpy()
    return pd.DataFrame(out, index=x.index)


def _column(name, names, place, path):
    if name in names:
        return
    if len(names) == 1:
        # Not a comma-separated table (or not a table at all: never echo what it holds).
        raise DataError(
            f"{place}: no column {quoted(name)} in '{path}': it reads as a single column; "
            "set data.sep if its columns are separated by something else"
        )
    cut = [shown(c) if len(c) <= 40 else shown(c[:37]) + "..." for c in names]
    listing = f" (columns: {', '.join(cut)})" if len(names) <= 15 else ""
    raise DataError(f"{place}: no column {quoted(name)} in '{path}'{did_you_mean(name, names)}{listing}")


def number_block(frame: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The columns `names` of `frame` as one float64 array; at once where pandas read them as numbers."""
    import pandas as pd

    block = frame[names]
    if all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in block.dtypes):
        return block.to_numpy(dtype="float64", na_value=np.nan)
    return np.column_stack([_numbers(block[c], c) for c in names])


def _numbers(series, name):
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce").astype("float64")
    bad = values.isna() & series.notna()
    if bad.any():
        row = series.index[bad.to_numpy()][0]
        where = f" (data row {row + 1})" if isinstance(row, (int, np.integer)) else ""
        raise DataError(f"column '{name}' must hold numbers; got {str(series[bad].iloc[0])[:40]!r}{where}")
    return values.to_numpy()


def as_text(series: pd.Series | list[Any]) -> list[str | None]:
    """Categories as text, None where missing."""
    import pandas as pd

    def text(v):
        if pd.isna(v):
            return None
        # A whole file may read as 1, a few rows with a gap as 1.0: the same category.
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip()

    # Text alone (pandas 3's `str` columns, or `object` ones of text): at once, not value by value.
    if (
        isinstance(series, pd.Series)
        and pd.api.types.is_string_dtype(series.dtype)
        and pd.api.types.infer_dtype(series) == "string"
    ):
        stripped = series.str.strip().astype(object)  # object: where None can stand for a missing value
        return stripped.where(series.notna().to_numpy(), None).tolist()
    return [text(v) for v in (series.tolist() if hasattr(series, "tolist") else series)]
