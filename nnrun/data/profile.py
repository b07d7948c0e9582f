"""What a data file or folder holds, described for `nnrun init`: its source, target, task and columns.

It reads as training reads (`csv_file.read_table`, `npz.read`, `image_folder.read`) and decides each
column's kind with `columns.kinds`, as `check` does, so that a config written from it trains as it
is. It learns nothing, trains nothing and imports no TensorFlow.
"""

from __future__ import annotations

import shlex
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from nnrun.data import columns, image_folder, npz, parquet_table
from nnrun.data.csv_file import read_table
from nnrun.errors import DataError, did_you_mean, listed

# A target of whole numbers with at most this many values is classes (ratings, codes); more is a quantity.
MAX_CLASSES = 20
# Names a target column often has, in the order suggested when --target is missing.
TARGET_NAMES = ("target", "label", "labels", "class", "y", "outcome")
_TABLE_SUFFIXES = (".npy", ".xlsx", ".xls", ".json", ".feather", ".pkl", ".pickle", ".h5", ".hdf5")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt")
_SAMPLED_IMAGES = 200  # images whose size and colours are read: enough for a median


@dataclass
class Target:
    """The column (or array) to predict and the task it makes."""

    name: str
    task: str  # classification | regression
    why: str  # how the task was decided from the values
    classes: dict[str, int] | None = None  # class -> samples, for classification
    missing: int = 0  # samples without a target, left out by training


@dataclass
class Column:
    """A feature column: its kind as `check` decides it, or why `check` refuses it."""

    name: str
    kind: str | None  # numeric | categorical | date; None when refused
    refused: str | None = None  # check's own reason
    values: int = 0  # distinct values
    missing: int = 0
    date_format: str | None = None


@dataclass
class Table:
    """A CSV table (plain or compressed, as pandas reads it) or a Parquet table (`source`)."""

    path: Path
    rows: int
    target: Target
    columns: list[Column]
    decimal: str = "."
    na_values: list[str] = field(default_factory=list)
    source: str = "csv"


@dataclass
class Images:
    """A folder of images, one sub-folder per class (or train/ and test/ with those)."""

    path: Path
    target: Target
    size: tuple[int, int]  # the median height and width
    grayscale: bool  # every image sampled has one channel
    test_folder: str | None = None  # test/ or val/, when the folder has its own test split
    test_images: int = 0
    source: str = "images"


@dataclass
class Arrays:
    """An `.npz` file of arrays."""

    path: Path
    target: Target
    samples: int
    shape: tuple[int, ...]  # of one sample
    pixels: bool  # whole numbers in 0..255: images, to rescale by 1/255
    test_samples: int = 0  # x_test's, when the file has its own test split
    outputs: int = 1  # values per sample, for a regression
    source: str = "npz"


Profile = Table | Images | Arrays


def describe(path: Path, target: str | None = None) -> Profile:
    """Describes a CSV or Parquet table, an `.npz` file or an image folder for a starter config.

    Args:
        path: the data, as the user named it.
        target: the table's column to predict (`--target`); tables only.

    Returns:
        A `Table`, `Images` or `Arrays`.
    """
    if not path.exists():
        raise DataError(f"DATA: no file or folder '{path}'")
    if path.is_dir():
        _folder_of_tables(path, target)
        _not_for(target, f"'{path}' is an image folder: its classes are its sub-folders")
        return _images(path)
    name = path.name.lower()
    if name.endswith(".npz"):
        _not_for(target, f"'{path}' is an .npz file: its targets are its y array")
        return _arrays(path)
    if name.endswith(parquet_table.SUFFIXES):
        return _table(path, target, parquet=True)
    if name.endswith(image_folder.EXTENSIONS) or name.endswith(_TABLE_SUFFIXES):
        raise DataError(
            f"DATA: '{path}' is not a CSV or Parquet table, an .npz file or a folder of images (one sub-folder "
            "per class)"
        )
    return _table(path, target)


def _folder_of_tables(path, target):
    """Refuses a folder of CSV files (not of class sub-folders, or with --target): one of them is the table."""
    tables = sorted(p.name for p in path.iterdir() if p.is_file() and p.name.lower().endswith(_CSV_SUFFIXES))
    folders = any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())
    if tables and (target is not None or not folders):
        example = shlex.join(["nnrun", "init", str(path / tables[0]), *(["--target", target] if target else [])])
        raise DataError(
            f"DATA: '{path}' is a folder of {len(tables)} table{'s' * (len(tables) > 1)} ({listed(tables)}): "
            f"nnrun init reads one table; name it, e.g. {example}"
        )


def _not_for(target, why):
    if target is not None:
        raise DataError(f"--target: {why}; leave --target out")


# --- tables ---------------------------------------------------------------------------------------


def _table(path, target, parquet=False):
    options: dict[str, Any] = {"sep": None, "decimal": ".", "encoding": "utf-8", "na_values": []}
    if parquet:  # read as training reads it: its columns as a CSV of it would read
        table = parquet_table.read_frame(path, "DATA")
    else:
        table = read_table(path, options, "DATA")
    names = [str(c) for c in table.columns]
    table = table.set_axis(names, axis=1)
    if target is None:
        raise DataError(f"DATA: '{path}' is a table: --target COLUMN names the column to predict; {_choices(names)}")
    if target not in names:
        raise DataError(
            f"--target: no column '{target}' in '{path}'{did_you_mean(target, names)} (columns: {listed(names, 15)})"
        )
    if len(names) < 2:
        raise DataError(f"DATA: '{path}' has one column, '{target}', and nothing to predict it from")
    found = _verdicts(table, target, path)
    # A column of numbers with a few words ('?', 'n/a') or decimal commas is refused by check with the
    # fix to make; try that fix, and keep it where check then takes the column.
    for fix in [] if parquet else _fixes(table, found):  # a Parquet file's columns have their types
        try:
            again = read_table(path, {**options, **fix}, "DATA").set_axis(names, axis=1)
        except DataError:  # decimal commas in a comma-separated file, for one
            continue
        verdicts = _verdicts(again, target, path)
        if sum(c.kind is None for c in verdicts) < sum(c.kind is None for c in found):
            table, found, options = again, verdicts, {**options, **fix}
    y = table[target]
    return Table(
        path=path,
        rows=len(table),
        target=_target(y.dropna().to_numpy(), target, missing=int(y.isna().sum()), place="--target"),
        columns=found,
        decimal=options["decimal"],
        na_values=options["na_values"],
        source="parquet" if parquet else "csv",
    )


def _choices(names):
    """The columns, and the one most likely to be the target: named like one, else the last."""
    lowered = {n.lower(): n for n in names}
    likely = next((lowered[t] for t in TARGET_NAMES if t in lowered), names[-1])
    return f"its columns: {listed(names, 15)}; e.g. --target {shlex.quote(likely)}"


def _verdicts(table, target, path):
    """Each feature column, with its kind as `columns.classify` decides it, or why check refuses it."""
    x = table.drop(columns=[target])
    missing = x.isna().sum()
    decided = columns.classify(x)
    found = []
    for name in x.columns:
        column = Column(name=name, kind=None, values=int(x[name].nunique()), missing=int(missing[name]))
        verdict = decided[str(name)]
        if column.missing == len(x):
            column.refused = "has no values"
        elif verdict.problem is None:
            column.kind, column.date_format = verdict.kind, verdict.format
        else:  # an id or free text says what it is; other problems say what to write
            column.refused = f"is {verdict.reason}" if verdict.kind in columns.DROPPED else verdict.problem
        found.append(column)
    return found


def _fixes(table, found):
    """Reading options that may let check take refused columns: their few words as missing, decimal commas."""
    import pandas as pd

    words: set[str] = set()
    for column in found:
        series = table[column.name]
        if column.kind is not None or pd.api.types.is_numeric_dtype(series):
            continue
        values = series.dropna().astype(str).str.strip()
        numbers = pd.to_numeric(values, errors="coerce")
        odd = set(values[numbers.isna()].unique().tolist())
        if numbers.notna().mean() >= 0.5 and len(odd) <= 3:
            words |= odd
    fixes: list[dict[str, Any]] = []
    if words:
        fixes.append({"na_values": sorted(words)})
    if any(c.kind is None for c in found):
        fixes.append({"decimal": ","})
    return fixes


# --- targets --------------------------------------------------------------------------------------


def _target(y: np.ndarray, name: str, missing: int = 0, place: str = "--target", labels_of: str = "") -> Target:
    """The task a target's values make: text or few whole numbers are classes, other numbers a quantity;
    `labels_of` says why whole numbers are classes however many there are (one-hot rows, named classes)."""
    if len(y) == 0:
        raise DataError(f"{place}: column '{name}' has no values")
    labels = np.asarray(y)
    if labels.dtype.kind == "O":
        labels = labels.astype(str)
    values, counts = np.unique(labels, return_counts=True)
    if len(values) < 2:
        raise DataError(f"{place}: '{name}' has the same value in every row: there is nothing to predict")
    numbers = labels.dtype.kind in "iuf"
    whole = numbers and bool(np.all(labels == np.round(labels)))
    if numbers and not whole:
        return Target(name, "regression", f"{len(values)} different numbers, not all whole", missing=missing)
    if whole and len(values) > MAX_CLASSES and not labels_of:
        return Target(
            name, "regression", f"{len(values)} different whole numbers, more than {MAX_CLASSES}", missing=missing
        )
    if not numbers and len(values) > max(MAX_CLASSES, len(labels) // 2):
        raise DataError(
            f"{place}: '{name}' has {len(values)} different values in {len(labels)} rows: "
            "classes need several examples each; choose the column to predict"
        )
    classes = {_class_name(v): int(c) for v, c in zip(values.tolist(), counts.tolist(), strict=True)}
    why = "text" if not numbers else f"{len(values)} different whole numbers{labels_of}"
    return Target(name, "classification", why, classes=classes, missing=missing)


def _class_name(value):
    return str(int(value)) if isinstance(value, float) else str(value)


# --- image folders and arrays ---------------------------------------------------------------------


def _images(path):
    from nnrun.config.schema import ImageData

    if not any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        raise DataError(
            f"DATA: '{path}' is a folder, but not a folder of images: it has no sub-folders (one per class)"
        )
    raw = image_folder.read(ImageData(source="images", path=path), place="DATA")
    assert raw.class_names is not None  # an image folder's classes are its sub-folders
    counts = np.bincount(raw.y, minlength=len(raw.class_names)).tolist()
    target = Target(
        "the sub-folder names",
        "classification",
        "image folders are classes",
        dict(zip(raw.class_names, counts, strict=True)),
    )
    paths = np.asarray(raw.x, dtype=str)
    sample = paths[np.linspace(0, len(paths) - 1, min(len(paths), _SAMPLED_IMAGES)).astype(int)]
    sizes, modes = [], set()
    for file in sample.tolist():
        with image_folder.opened(file) as image:
            sizes.append(image.size)
            modes.add(image.mode)
    size = (int(statistics.median(h for _, h in sizes)), int(statistics.median(w for w, _ in sizes)))
    test = next((n for n in ("test", "val") if raw.x_test is not None and (path / n).is_dir()), None)
    return Images(
        path=path,
        target=target,
        size=size,
        grayscale=modes <= {"1", "L", "LA", "I", "I;16", "F"},
        test_folder=test,
        test_images=0 if raw.x_test is None else len(np.asarray(raw.x_test)),
    )


def _arrays(path):
    from nnrun.data import arrays
    from nnrun.data.prepare import flat_labels

    raw = npz.read(SimpleNamespace(path=path))
    x = arrays.check(raw.x, raw.names[0], raw.origin)
    y = flat_labels(np.asarray(raw.y))
    if len(x) != len(y):
        raise DataError(f"{raw.origin}: {len(x)} samples but {len(y)} targets")
    outputs = 1
    if y.ndim == 2:  # several numbers per sample, not one-hot classes
        target, outputs = Target(raw.names[1], "regression", f"{y.shape[1]} numbers per sample"), y.shape[1]
    elif y.ndim != 1:
        raise DataError(f"{raw.origin}: {raw.names[1]} of shape {y.shape} is neither classes nor values")
    else:
        named = raw.class_names
        # Whole numbers are classes however many there are where the file says so, or label images.
        labels_of = (
            ", one-hot rows"
            if np.asarray(raw.y).ndim == 2 and np.asarray(raw.y).shape[1] > 1
            else ", named by class_names"
            if named is not None
            else ", labels of images"
            if x.ndim >= 3
            else ""
        )
        target = _target(y, raw.names[1], place=raw.origin, labels_of=labels_of)
        if named is not None and target.classes is not None and y.dtype.kind in "iu":
            target.classes = {named[int(k)] if int(k) < len(named) else k: c for k, c in target.classes.items()}
    return Arrays(
        path=path,
        target=target,
        samples=len(x),
        shape=tuple(int(d) for d in x.shape[1:]),
        pixels=bool(x.dtype.kind in "iu" and x.min() >= 0 and 1 < x.max() <= 255),
        test_samples=0 if raw.x_test is None else len(np.asarray(raw.x_test)),
        outputs=outputs,
    )
