"""Tables larger than memory: a CSV or Parquet file read in chunks, never whole.

`data.stream: true` (or `auto`, past `STREAM_BYTES` of values in the file) takes this path.
A first pass over the file learns, chunk by chunk, what training needs: the
classes, each row's split (split_hash.py: seeded, by its row number), the
preprocessing of the training rows (table_stats.py: the dict `csv_table.fit`
makes, so predict, evaluate and exports are unchanged) and the fingerprints.
Only the targets are kept, one small number per row. Training then reads the
file again each epoch: each chunk's rows of a split are encoded by
`csv_table.apply` and handed to Keras in batches (a `tf.data.Dataset`), the
training rows shuffled within their chunk, anew each epoch.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from nnrun.atomic import sha256_file
from nnrun.data import csv_file, csv_table, parquet_table, split_hash
from nnrun.data.table_stats import Learner
from nnrun.data.types import Dataset
from nnrun.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from nnrun.config.schema import TableData

# `stream: auto` streams a table whose values take more than this: a CSV's size on disk (its text), a
# Parquet file's values at 8 bytes each (its footer counts them; compressed, the file may be a hundredth of
# that). pandas holds a table in several times either.
STREAM_BYTES = 1 << 30
CHUNK_ROWS = 100_000


def wanted(data: object, place: str = "data.path") -> bool:
    """Whether a config's table is read in chunks: `data.stream`, or its size when that is `auto`."""
    stream = getattr(data, "stream", False)
    if stream != "auto":
        return bool(stream)
    path = data.path  # type: ignore[attr-defined]
    if not path.is_file():
        return False  # the reader names it
    if data.source == "parquet":  # type: ignore[attr-defined]
        return parquet_table.values_bytes(path, place) > STREAM_BYTES
    return path.stat().st_size > STREAM_BYTES


def chunks(
    data: TableData, rows: int, dropped: list[int] | None = None, place: str = "data.path"
) -> Iterator[pd.DataFrame]:
    """The table's rows with a target, in DataFrames indexed by their data row in the file (from 0).

    Args:
        data: the config's `data` section.
        rows: rows per chunk (before those without a target are left out).
        dropped: a list to which each chunk's count of rows without a target is added, or None.
        place: what errors name the file by (`data.path`, `--data`).
    """
    if data.source == "parquet":
        frames = parquet_table.frames(data.path, place, rows, skip=data.drop)
    else:
        frames = csv_file.read_chunks(data.path, csv_table.reading(data), place, rows)
    for i, frame in enumerate(frames):
        frame.columns = [str(c) for c in frame.columns]
        if i == 0:
            csv_table.check_columns(list(frame.columns), data)
        missing = frame[data.target].isna().to_numpy()
        if missing.any() and data.missing_target == "error":
            first = int(frame.index[np.flatnonzero(missing)[0]]) + 1
            raise DataError(
                f"data.target: rows of '{data.path}' have no value in column '{data.target}' (first: data row "
                f"{first}); fill them in or remove those rows"
            )
        if dropped is not None:
            dropped.append(int(missing.sum()))
        yield frame[~missing] if missing.any() else frame


def load(
    data: TableData,
    validation_split: float,
    seed: int,
    batch_size: int = 32,
    shuffle: bool = True,
    fitted: dict[str, Any] | None = None,
    rows: int | None = None,
) -> Dataset:
    """A table's splits as streams of batches, after one pass that learns what training needs.

    Args:
        data: the config's `data` section (a CSV or Parquet table).
        validation_split: the share of the non-test rows validated on.
        seed: the seed of the split.
        batch_size: rows per batch.
        shuffle: whether the training rows are shuffled (within each chunk, anew each epoch).
        fitted: a run's preprocessing, applied instead of learned (what evaluate re-creates the test split with).
        rows: rows per chunk (None: `CHUNK_ROWS`).

    Returns:
        A `Dataset` whose `x_*` are `tf.data.Dataset`s of `(x, y)` batches and `y_*` the targets in order.
    """
    rows = rows or CHUNK_ROWS
    learner = None if fitted else Learner(data, seed)
    targets: dict[int, list[np.ndarray]] = {code: [] for code in (0, 1, 2)}
    digests = {code: hashlib.sha256() for code in (0, 1, 2)}
    labels = _Labels()
    left_out: list[int] = []
    for frame in chunks(data, rows, left_out):
        index = np.asarray(frame.index, dtype="int64")
        codes = split_hash.assign(index, seed, data.test_split, validation_split)
        y = labels.add(frame[data.target])
        for code in (0, 1, 2):
            chosen = codes == code
            targets[code].append(y[chosen])
            digests[code].update(index[chosen].tobytes())
        if learner is not None:
            learner.add(frame.loc[codes == split_hash.TRAIN].drop(columns=[data.target, *data.drop]))
    every = [t for parts in targets.values() for t in parts]
    class_names, encode = labels.finish(data.task, data.path, every)
    del every
    y_split = {}
    for code in (0, 1, 2):  # chunk by chunk, each freed once encoded: no copy of a long table's targets at once
        parts, targets[code] = targets[code], []
        encoded = [encode(parts.pop(0)) for _ in range(len(parts))]
        y_split[code] = np.concatenate(encoded) if encoded else encode(np.zeros(0))
    for code, name in ((0, "training"), (2, "test")):
        if len(y_split[code]) == 0:
            raise DataError(f"data.test_split: {data.test_split} of '{data.path}' leaves an empty {name} split")
    if validation_split and len(y_split[1]) == 0:
        raise DataError(f"training.validation_split: {validation_split} of '{data.path}' leaves an empty split")
    preprocessing = fitted or {
        **learner.fitted(),  # type: ignore[union-attr]
        "task": "classification" if class_names is not None else "regression",
        "class_names": class_names,
    }
    dropped = sum(left_out)
    notes = [f"{dropped} rows of '{data.path}' have no value in column '{data.target}': left out"] if dropped else []
    splits = {}
    for code, name in ((0, "train"), (1, "validation"), (2, "test")):
        if code == 1 and not validation_split:
            continue
        digest, y = digests[code], y_split[code]
        for at in range(0, len(y), rows):  # as `prepare` records it: int64 classes, float32 values
            digest.update(y[at : at + rows].astype("int64" if class_names is not None else "float32").tobytes())
        splits[name] = {"samples": int(len(y)), "sha256": digest.hexdigest()}

    def stream(code, training):
        return feed(data, code, y_split[code], preprocessing, batch_size, training, seed, validation_split, rows)

    return Dataset(
        x_train=stream(0, shuffle),
        y_train=y_split[0],
        x_val=stream(1, False) if validation_split else None,
        y_val=y_split[1] if validation_split else None,
        x_test=stream(2, False),
        y_test=y_split[2],
        class_names=class_names,
        preprocessing=preprocessing,
        fingerprint=f"sha256:{sha256_file(data.path)}",
        notes=[f"'{data.path}' streamed in chunks of {rows} rows", *notes, *preprocessing.get("notes", [])],
        splits=splits,
    )


def feed(
    data: TableData,
    code: int | None,
    y: np.ndarray,
    preprocessing: dict[str, Any],
    batch_size: int,
    training: bool,
    seed: int,
    validation_split: float,
    rows: int,
) -> Any:
    """One split of the table as a `tf.data.Dataset` of `(x, y)` batches, read from the file as Keras takes them.

    Args:
        data: the config's `data` section.
        code: the split (`split_hash.TRAIN`, `VALIDATION` or `TEST`); None: every row.
        y: its targets, in the file's order.
        preprocessing: the run's preprocessing dict.
        batch_size: rows per batch.
        training: shuffle each chunk's rows, anew each epoch (`feeding.epoch`), from the seed.
        seed: the seed of the split and the shuffle.
        validation_split: the share of the non-test rows validated on.
        rows: rows per chunk.

    Returns:
        The `tf.data.Dataset`: `ceil(len(y) / batch_size)` batches.
    """
    from nnrun.backend import tensorflow
    from nnrun.data import feeding

    tf = tensorflow()
    width = int(preprocessing["input_shape"][0])
    kind = "int64" if y.dtype.kind in "iub" else "float32"  # each batch's: `y` stays a byte a row
    drop = [data.target, *data.drop]

    def parts():
        epoch, start = feeding.epoch(), 0
        for i, frame in enumerate(chunks(data, rows)):
            chosen = split_hash.assign(np.asarray(frame.index, "int64"), seed, data.test_split, validation_split)
            part = frame if code is None else frame.loc[chosen == code]
            if not len(part):
                continue
            x = csv_table.apply(part.drop(columns=drop), preprocessing)
            targets, start = y[start : start + len(part)].astype(kind), start + len(part)
            if training:
                order = np.random.default_rng([seed, epoch, i]).permutation(len(part))
                x, targets = x[order], targets[order]
            yield x, targets

    signature = (tf.TensorSpec((None, width), tf.float32), tf.TensorSpec((None,), tf.as_dtype(kind)))
    # A chunk's rows at a time from Python (a batch at a time costs more than the reading), cut into batches
    # as `unbatch().batch()` would cut them, across the chunks.
    stream = tf.data.Dataset.from_generator(parts, output_signature=signature).rebatch(batch_size)
    stream = stream.apply(tf.data.experimental.assert_cardinality(math.ceil(len(y) / batch_size)))
    return stream.prefetch(tf.data.AUTOTUNE)


def load_other(
    data: TableData, preprocessing: dict[str, Any], batch_size: int, place: str = "data.path"
) -> tuple[Any, np.ndarray]:
    """Every row of another table with a run's columns, as a stream, and its targets encoded with the run's classes
    (what `evaluate --data` scores when the table streams).

    Args:
        data: the run's `data` section, its `path` and `source` the other table's.
        preprocessing: the run's preprocessing dict.
        batch_size: rows per batch.
        place: what errors name the file by (`--data`).

    Returns:
        `(x, y)`: a `tf.data.Dataset` of `(x, y)` batches, and the targets.
    """
    from nnrun.data.prepare import encode_targets

    origin, class_names = f"'{data.path}'", preprocessing.get("class_names")
    frames = chunks(data, CHUNK_ROWS, place=place)
    parts = [encode_targets(f[data.target].to_numpy(), None, class_names, origin) for f in frames]
    y = np.concatenate(parts)
    if class_names is not None:
        y = y.astype("uint8" if len(class_names) <= 255 else "int32")
    return feed(data, None, y, preprocessing, batch_size, False, 0, 0, CHUNK_ROWS), y


class _Labels:
    """The targets, chunk by chunk, as small numbers; then the classes and their encoding, as `prepare` makes them.

    A chunk's targets are numbers (kept in the smallest signed or float type that holds them) or text
    (kept as unsigned codes of the texts, in order of appearance): the type says which.
    """

    def __init__(self) -> None:
        self.text: dict[str, int] = {}  # a text target -> its code
        self.whole = True  # whether every number is a whole number

    def add(self, target: pd.Series) -> np.ndarray:
        import pandas as pd

        if pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target):
            values = target.to_numpy(dtype="float64")
            whole = bool(np.all(values == np.round(values)))
            self.whole = self.whole and whole
            return _smallest(values, whole)
        keys = [str(v) for v in csv_table.as_text(target)]
        codes = np.array([self.text.setdefault(k, len(self.text)) for k in keys], dtype="int64")
        return codes.astype(next(t for t in ("uint8", "uint16", "uint32") if len(self.text) <= np.iinfo(t).max + 1))

    def finish(self, task: str, path: object, parts: list[np.ndarray]) -> tuple[list[str] | None, Any]:
        """(class names or None, a function from what `add` gave to encoded targets), from every split's targets."""
        if task == "regression" or (task == "auto" and not self.text and not self.whole):
            if self.text:
                raise DataError(f"data.path '{path}': data.task is regression but the targets are not numbers")
            return None, lambda y: np.asarray(y, dtype="float32")
        numbers = [np.unique(p).astype("float64") for p in parts if p.dtype.kind != "u"]
        values = np.unique(np.concatenate(numbers)) if numbers else np.zeros(0)
        number_names = [str(int(v)) for v in values.tolist()]
        text_names = list(self.text)
        # Numbers alone are classes in numeric order (np.unique's, as `prepare` orders them); with text, as text.
        class_names = sorted(set(number_names) | set(text_names)) if self.text else number_names
        order = {n: i for i, n in enumerate(class_names)}
        by_number = np.array([order[n] for n in number_names], dtype="int64")
        by_code = np.array([order[n] for n in text_names], dtype="int64")
        dtype = "uint8" if len(class_names) <= 255 else "int32"  # a byte a row: the table may be long

        def encode(y):
            if not len(y):
                return np.zeros(0, dtype)
            found = by_code[y] if y.dtype.kind == "u" else by_number[np.searchsorted(values, y.astype("float64"))]
            return found.astype(dtype)

        return class_names, encode


def _smallest(values: np.ndarray, whole: bool) -> np.ndarray:
    """Targets kept until the classes are known, in the smallest type that holds them exactly: a byte a row
    for the classes of most tables."""
    if whole and len(values):
        low, high = values.min(), values.max()
        for dtype in ("int8", "int16", "int32"):
            if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
                return values.astype(dtype)
    small = values.astype("float32")
    return small if np.array_equal(small, values) else values
