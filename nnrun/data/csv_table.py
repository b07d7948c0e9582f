"""CSV tables: the `csv` source and the `table` feature kind.

Numeric columns are imputed with the training median and scaled; categorical
columns are imputed with the most frequent training value and one-hot encoded.
All of it is learned from the training split with scikit-learn and saved as
plain JSON, so `apply` encodes raw rows later exactly as training did.
"""

import hashlib
import warnings

import numpy as np

from nnrun.data.prepare import Raw
from nnrun.errors import DataError, did_you_mean

KIND = "table"


def read(data):
    """Reads a CSV table: the target column, and the rest as features.

    Args:
        data: the config's `data` section (`path`, relative to the current
            directory, `target`, `drop`, `categorical`).

    Returns:
        A `Raw` whose `x` is a pandas DataFrame of the feature columns and
        `y` the target column as an array.
    """
    import pandas as pd

    path = data.path
    if not path.is_file():
        raise DataError(f"data.path: file '{path}' does not exist" if not path.exists() else f"data.path: '{path}' is not a file")
    try:
        # utf-8-sig drops a byte-order mark (Excel writes one); the parser takes CRLF as it comes.
        table = pd.read_csv(path, encoding="utf-8-sig", skipinitialspace=True, low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"data.path: '{path}' is empty") from None
    except UnicodeDecodeError as e:
        byte = f"byte {e.object[e.start]:#04x} at offset {e.start}"
        raise DataError(f"data.path: '{path}' is not UTF-8 text ({byte}); save it as UTF-8 CSV") from None
    except (pd.errors.ParserError, ValueError) as e:
        reason = str(e).strip().splitlines()[-1].replace("Error tokenizing data. C error: ", "")
        raise DataError(f"data.path: '{path}' is not a readable CSV file: {reason}") from None
    if table.empty:
        raise DataError(f"data.path: '{path}' has a header but no rows")
    columns = [str(c) for c in table.columns]
    _column(data.target, columns, "data.target", path)
    for place in ("drop", "categorical"):
        for name in getattr(data, place) or ():
            _column(name, columns, f"data.{place}", path)
            if name == data.target:
                raise DataError(f"data.{place}: '{name}' is data.target, the column to predict")
    both = [name for name in data.categorical or () if name in data.drop]
    if both:
        raise DataError(f"data.categorical: '{both[0]}' is also in data.drop")
    missing = int(table[data.target].isna().sum())
    if missing:
        first = int(np.flatnonzero(table[data.target].isna())[0]) + 1
        raise DataError(
            f"data.target: column '{data.target}' has no value in {missing} of {len(table)} rows of '{path}' "
            f"(first: data row {first}); fill them in or remove those rows"
        )
    x = table.drop(columns=[data.target, *data.drop])
    if data.categorical is not None:
        for name in x.columns:
            if name not in data.categorical and not _is_numeric(x[name]):
                example = x[name].dropna().iloc[0]
                raise DataError(
                    f"data.categorical: column '{name}' holds text (e.g. {example!r}) but is not listed; "
                    "add it to data.categorical or data.drop"
                )
    return Raw(
        x=x,
        y=table[data.target].to_numpy(),
        origin=f"data.path '{path}'",
        names=("columns", data.target),
        fingerprint=f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}",
    )


def check(x, name, origin):
    """Returns the table of features, or says why it has none."""
    if x.shape[1] == 0:
        raise DataError(f"{origin}: no feature columns left once data.target and data.drop are taken out")
    return x


def fit(x, data):
    """Learns imputation, scaling and categories from the training split.

    Args:
        x: the training rows (a DataFrame of feature columns).
        data: the config's `data` section (`categorical`, `scale`).

    Returns:
        The JSON-able preprocessing: kind, input shape, the columns, each
        numeric column's fill and scaling, each categorical column's fill and
        categories, and notes for the user.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

    columns = [str(c) for c in x.columns]
    for name in columns:
        if x[name].isna().all():
            raise DataError(f"data.path '{data.path}': column '{name}' has no values in the training split; add it to data.drop")
    categorical = data.categorical if data.categorical is not None else [c for c in columns if not _is_numeric(x[c])]
    categorical = [c for c in columns if c in categorical]
    numeric_columns = [c for c in columns if c not in categorical]
    notes = []
    if data.categorical is None and categorical:
        found = ", ".join(f"{c} ({x[c].nunique()} values)" for c in categorical)
        notes.append(f"categorical columns detected (not numbers), one-hot encoded: {found}; set data.categorical to choose")

    numeric = {}
    if numeric_columns:
        values = np.column_stack([_numbers(x[c], c) for c in numeric_columns])
        filled = SimpleImputer(strategy="median").fit(values)
        scaler = {"standard": StandardScaler, "minmax": MinMaxScaler}.get(data.scale)
        scaler = scaler().fit(filled.transform(values)) if scaler else None
        for i, name in enumerate(numeric_columns):
            numeric[name] = {"fill": float(filled.statistics_[i])}
            if data.scale == "standard":
                numeric[name].update(mean=float(scaler.mean_[i]), scale=float(scaler.scale_[i]))
            elif data.scale == "minmax":
                numeric[name].update(min=float(scaler.min_[i]), scale=float(scaler.scale_[i]))
            median = float(f"{filled.statistics_[i]:.6g}")
            _note_filled(notes, name, int(np.isnan(values[:, i]).sum()), f"the training median {median}")

    encoded = {}
    if categorical:
        text = np.array([_as_text(x[c]) for c in categorical], dtype=object).T
        filled = SimpleImputer(strategy="most_frequent", missing_values=None).fit(text)
        encoder = OneHotEncoder(handle_unknown="ignore").fit(filled.transform(text))
        for i, name in enumerate(categorical):
            encoded[name] = {"fill": str(filled.statistics_[i]), "categories": [str(c) for c in encoder.categories_[i]]}
            _note_filled(notes, name, sum(v is None for v in text[:, i]), f"the most frequent value {encoded[name]['fill']!r}")
    width = len(numeric) + sum(len(c["categories"]) for c in encoded.values())
    return {
        "kind": KIND,
        "input_shape": [width],
        "columns": columns,
        "numeric": numeric,
        "categorical": encoded,
        "rescale": None,
        "notes": notes,
    }


def apply(x, preprocessing):
    """Encodes raw rows exactly as the training rows were encoded.

    Args:
        x: raw rows, a DataFrame (or anything `pandas.DataFrame` takes) with
            the training feature columns in any order; other columns are ignored.
        preprocessing: the run's preprocessing dict.

    Returns:
        float32 features, numeric columns first, then each categorical
        column one-hot in its saved category order (unseen categories: all zeros).
    """
    import pandas as pd
    from sklearn.preprocessing import OneHotEncoder

    x = x if isinstance(x, pd.DataFrame) else pd.DataFrame(x)
    have = [str(c) for c in x.columns]
    x = x.set_axis(have, axis=1)
    for name in preprocessing["columns"]:
        if name not in have:
            raise DataError(
                f"the input has no column '{name}'{did_you_mean(name, have)}; "
                f"the model takes {', '.join(preprocessing['columns'])}"
            )
    parts = []
    numeric = preprocessing["numeric"]
    if numeric:
        values = np.column_stack([_numbers(x[c], c) for c in numeric])
        stats = list(numeric.values())
        values = np.where(np.isnan(values), [s["fill"] for s in stats], values)
        if "mean" in stats[0]:
            values = (values - [s["mean"] for s in stats]) / [s["scale"] for s in stats]
        elif "min" in stats[0]:
            values = values * [s["scale"] for s in stats] + [s["min"] for s in stats]
        parts.append(values)
    categorical = preprocessing["categorical"]
    if categorical:
        text = np.array(
            [[s["fill"] if v is None else v for v in _as_text(x[c])] for c, s in categorical.items()], dtype=object
        ).reshape(len(categorical), len(x)).T
        encoder = OneHotEncoder(categories=[s["categories"] for s in categorical.values()], handle_unknown="ignore")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unseen categories are meant to encode as zeros
            parts.append(encoder.fit(text).transform(text).toarray())
    return np.concatenate(parts, axis=1).astype("float32") if parts else np.zeros((len(x), 0), "float32")


def feed(x, y, preprocessing, batch_size, training, seed):
    """What Keras is given for a split: the encoded array (Keras batches it)."""
    return apply(x, preprocessing)


def _note_filled(notes, name, n, value):
    if n:
        notes.append(f"{name}: {n} missing value{'s' * (n != 1)} in the training split filled with {value}")


def _column(name, columns, place, path):
    if name in columns:
        return
    if len(columns) == 1:
        # Not a comma-separated table (or not a table at all: never echo what it holds).
        raise DataError(f"{place}: no column '{name}' in '{path}': it reads as a single column; is it a comma-separated table?")
    shown = [c if len(c) <= 40 else c[:37] + "..." for c in columns]
    listing = f" (columns: {', '.join(shown)})" if len(columns) <= 15 else ""
    raise DataError(f"{place}: no column '{name}' in '{path}'{did_you_mean(name, columns)}{listing}")


def _is_numeric(series):
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) or series.isna().all()


def _numbers(series, name):
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce").astype("float64")
    bad = values.isna() & series.notna()
    if bad.any():
        raise DataError(f"column '{name}' must hold numbers; got {str(series[bad].iloc[0])[:40]!r}")
    return values.to_numpy()


def _as_text(series):
    """Categories as text, None where missing."""
    import pandas as pd

    def text(v):
        if pd.isna(v):
            return None
        # A whole file may read as 1, a few rows with a gap as 1.0: the same category.
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip()

    return [text(v) for v in series.tolist()]
