"""Run directory + raw inputs -> predictions: images, CSV rows and .npy arrays.

Raw inputs are prepared with the run's own preprocessing.json, so a user
hands over files as they are. Bad inputs are collected, not fatal: the good
ones are still predicted.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from nnrun import data
from nnrun.data import feeding
from nnrun.errors import DataError, listed, one_line
from nnrun.inference import table_rows
from nnrun.rundir import files as rundir
from nnrun.rundir import record

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SUFFIXES = (*IMAGE_SUFFIXES, *table_rows.SUFFIXES, ".npy")
TOP_K, THRESHOLD = 3, 0.5  # what --top-k and --threshold are when not given


@dataclass
class Predictions:
    """What `predict` returns: one row per predicted input, and the inputs that failed."""

    run: record.Run
    runtime: str | None = None  # what ran the model: onnx, litert or keras
    rows: list[dict[str, Any]] = field(default_factory=list)  # {"input": ..., "id": ..., **prediction}
    count: int = 0  # rows predicted: `rows`'s, or those handed to `predict`'s sink and not kept
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input, why)
    notes: list[str] = field(default_factory=list)  # things the user should know (ignored columns)

    def to_json(self) -> list[dict[str, Any]]:
        """What `nnrun predict --json` prints: one object per row (JSON lines), each naming the run and runtime."""
        return [
            {**row, "run": str(self.run.path), "run_status": self.run.status, "runtime": self.runtime}
            for row in self.rows
        ]


def predict(
    run_dir: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str]],
    top_k: int | None = None,
    threshold: float | None = None,
    id_column: str | None = None,
    batch_size: int = 256,
    model_file: str = rundir.MODEL,
    runtime: str = "auto",
    sink: Callable[[dict[str, Any]], None] | None = None,
) -> Predictions:
    """Predicts raw inputs with a run's model.

    Args:
        run_dir: the run directory.
        model_file: which model: `rundir.MODEL`, or `rundir.BEST_MODEL`.
        inputs: files, folders (their files, sorted) and glob patterns.
        top_k: how many classes to report for classification (None: `TOP_K`).
        threshold: for a single sigmoid output, the probability from which the
            positive class is predicted (None: `THRESHOLD`).
        id_column: a CSV column to carry into each row's `id`.
        batch_size: samples per predict batch.
        runtime: auto (the fastest the run has: an ONNX or LiteRT export),
            onnx, litert or keras; see `runtimes.choose`.
        sink: where each row goes as it is predicted, not kept in `Predictions.rows` (a file being
            written): memory then stays flat however many rows there are. None: kept.

    Returns:
        `Predictions`.
    """
    from nnrun.inference import runtimes

    run = record.read(run_dir, model_file, config=False)
    prep = run.preprocessing
    result = Predictions(run=run)
    model = runtimes.choose(run, runtime, say=result.notes.append)
    result.runtime = model.name
    k, cut = top_k or TOP_K, THRESHOLD if threshold is None else threshold
    first = None
    # Batch by batch, so memory stays flat however many files are given.
    for batch in _batches(_samples(_expand(inputs, result), prep, id_column, result), batch_size):
        names, samples = zip(*batch, strict=True)
        outputs = model.predict(np.stack(samples))
        for (name, row_id), output in zip(names, outputs, strict=True):
            row = {"input": name, **({"id": row_id} if row_id is not None else {})}
            row.update(_describe(output, prep.get("class_names"), k, cut))
            (sink or result.rows.append)(row)
            first = first or row
            result.count += 1
    if first:
        result.notes += _unused(first, top_k, threshold)
    return result


def _unused(row, top_k, threshold):
    """Warnings for --top-k or --threshold given where they change nothing, saying why."""
    regression, binary = "value" in row, "label" in row and "top" not in row  # binary: one sigmoid unit
    found = []
    if top_k is not None and regression:
        found.append(f"warning: --top-k {top_k}: a regression has no classes to rank")
    elif top_k is not None and binary:
        found.append(
            f"warning: --top-k {top_k}: the model has one sigmoid output; each prediction has both classes' "
            "probabilities, and its label is the one --threshold picks"
        )
    if threshold is not None and not binary:
        why = "a regression has no classes" if regression else "the label is the most probable class"
        found.append(f"warning: --threshold {threshold:g}: only a model with one sigmoid output uses it; {why}")
    return found


def _samples(paths, prep, id_column, result):
    """Every sample of every file, in order; a bad file goes to `result.failed` whole.

    Args:
        paths: the input files.
        prep: the run's preprocessing dict.
        id_column: a CSV column to carry into each sample's id.
        result: the `Predictions` whose `failed` and `notes` collect problems.

    Yields:
        `((name, id), model input)`.
    """
    for path in paths:
        try:
            # A large table comes in chunks: each is predicted before the next is read.
            for found in _read(path, prep, id_column, result.notes):
                _check_finite(path, found)
                yield from found
        except DataError as e:
            result.failed.append((str(path), str(e).removeprefix(f"{path}: ")))


def _check_finite(path, found):
    """Refuses a file with NaN or infinite values in its prepared samples, as training refuses them."""
    bad = [name for (name, _), x in found if not np.isfinite(x).all()]
    if bad:
        which = f" in {len(bad)} of {len(found)} samples, the first {bad[0]}" if len(found) > 1 else ""
        raise DataError(f"{path}: NaN or infinite values after preprocessing{which}")


def _batches(items, size):
    """Lists of up to `size` consecutive items."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _describe(output, class_names, top_k, threshold):
    """One model output as a prediction a person reads: a label, its probability and every class's; or values.

    `probability` is always the label's (1 - p when one sigmoid unit says the negative class).
    """
    output = np.asarray(output, dtype="float64")
    if class_names is None:
        values = [float(f"{v:.6g}") for v in output.reshape(-1)]  # float32 outputs: more digits are noise
        return {"value": values if len(values) > 1 else values[0]}
    every = {name: float(p) for name, p in zip(class_names, feeding.class_probabilities(output[None])[0], strict=True)}
    if output.shape[-1] == 1:
        label = class_names[int(output[0] >= threshold)]
        return {"label": label, "probability": every[label], "probabilities": every}
    order = np.argsort(-output)[: max(1, top_k)]
    top = [{"class": class_names[i], "probability": float(output[i])} for i in order]
    return {"label": top[0]["class"], "probability": top[0]["probability"], "top": top, "probabilities": every}


def input_files(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files `predict` reads from `inputs`: paths, folders' files and glob patterns' matches, each once.

    Args:
        inputs: what `predict` takes.

    Returns:
        The files, in the order `predict` reads them (inputs that name nothing are left out).
    """
    return _expand(inputs, SimpleNamespace(failed=[], notes=[]))  # what it would say is said by `predict`


def _expand(inputs, result):
    """Files from paths, folders and glob patterns, each once, in the order given.

    A folder's files that nnrun does not predict are skipped, and said so in
    `result.notes` (or `result.failed`, when nothing else is there); hidden ones
    (`.DS_Store`, `.ipynb_checkpoints/`) are not counted.
    """
    found, failed = [], result.failed
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if not _hidden(p, path) and p.is_file())
            taken = [p for p in files if _suffix(p) in SUFFIXES]
            skipped = [p.relative_to(path).as_posix() for p in files if _suffix(p) not in SUFFIXES]
            found += taken
            others = f"{len(skipped)} other file{'s' * (len(skipped) != 1)}: {listed(skipped)}"
            if not taken:
                failed.append(
                    (
                        str(item),
                        f"no {', '.join(SUFFIXES)} files in this folder" + (f" (it has {others})" if skipped else ""),
                    )
                )
            elif skipped:
                result.notes.append(f"warning: {item}: skipped {others} (nnrun predicts {', '.join(SUFFIXES)})")
        elif path.exists():
            found.append(path)
        elif any(c in str(item) for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
            found += matches
            if not matches:
                failed.append((str(item), "no file matches"))
        else:
            failed.append((str(item), "no such file or folder"))
    return list(dict.fromkeys(found))


def _suffix(path):
    """What kind of input a file's name says it is: its suffix, `.csv.gz` as one."""
    name = path.name.lower()
    return ".csv.gz" if name.endswith(".csv.gz") else path.suffix.lower()


def _hidden(path, folder):
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def _read(path, prep, id_column, notes):
    """Yields lists of `((name, id), model input)`: one file's samples, or a large table's chunk by chunk."""
    if not path.is_file():  # a named pipe would be waited on
        raise DataError(f"{path}: not a file")
    suffix = _suffix(path)
    if suffix in table_rows.SUFFIXES:
        if prep.get("kind") != "table":
            what = "Parquet" if suffix in table_rows.PARQUET_SUFFIXES else "CSV"
            raise DataError(f"{path}: this run was trained on {_kind(prep)}, not {what} rows")
        yield from table_rows.parts(path, suffix in table_rows.PARQUET_SUFFIXES, prep, id_column, notes)
    elif suffix == ".npy":
        yield list(_arrays(path, prep))
    elif suffix in IMAGE_SUFFIXES:
        yield [((str(path), None), _image(path, prep))]
    else:
        raise DataError(f"{path}: not an input nnrun predicts ({', '.join(SUFFIXES)})")


def _arrays(path, prep):
    """Yields `((name, None), model input)` for each sample of a .npy file: one sample or a stack."""
    x = _load_npy(path, tuple(prep["input_shape"]), table=prep.get("kind") == "table")
    if not len(x):
        raise DataError(f"{path}: no samples")
    if prep.get("kind") == "images":  # pixels already sized: only the run's rescale applies
        from nnrun.data import arrays

        x = arrays.apply(x, {"rescale": prep.get("rescale")})
    else:
        x = data.transform(x, prep)
    for i, sample in enumerate(x):
        yield (f"{path}[{i}]" if len(x) > 1 else str(path), None), sample


def _load_npy(path, sample, table):
    """Reads a .npy array of samples once its header has been checked against the file and the model.

    The header is read first: an array of numbers (never objects: nothing is
    unpickled), of the model's sample shape or a stack of them, whose size is
    exactly what the file holds; so nothing is read of an array that would be
    refused, and a small file cannot make nnrun allocate what its header claims.

    Args:
        path: the .npy file.
        sample: the shape of one sample the model takes.
        table: the run was trained on a table (its inputs are CSV rows, not arrays).

    Returns:
        The array, a stack of samples.
    """
    try:
        with open(path, "rb") as f:
            shape, dtype = _npy_header(f, path)
            if dtype.kind not in "biuf":
                raise DataError(f"{path}: an array of {dtype}, not numbers")
            if shape != sample and shape[1:] != sample or table:
                raise DataError(
                    f"{path}: an array of shape {shape}; the model takes {sample} per sample (or a stack of them)"
                )
            claimed, held = math.prod(shape) * dtype.itemsize, os.fstat(f.fileno()).st_size - f.tell()
            if claimed != held:
                raise DataError(
                    f"{path}: its header claims an array of shape {shape} of {dtype} ({_bytes(claimed)}), "
                    f"but the file holds {_bytes(held)} of data"
                )
            f.seek(0)
            x = np.lib.format.read_array(f, allow_pickle=False)
            return x[None] if shape == sample else x
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npy array: {one_line(e)}") from None


def _npy_header(f, path):
    """The shape and dtype a .npy file's header claims; `f` is left where the data starts."""
    fmt = np.lib.format
    if f.read(len(fmt.MAGIC_PREFIX)) != fmt.MAGIC_PREFIX:  # numpy's message would quote what it holds
        raise DataError(f"{path}: not a .npy array (it does not begin as one)")
    f.seek(0)
    try:
        version = fmt.read_magic(f)
        read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if read_header is None:  # 3.0 is only written for structured arrays with unicode field names
            raise DataError(
                f"{path}: a .npy array of format version {version[0]}.{version[1]}; nnrun reads 1.0 and 2.0"
            )
        shape, _, dtype = read_header(f)
    except DataError:
        raise
    except Exception:  # numpy's parser raises ValueError, TypeError, TokenError..., quoting the header
        raise DataError(f"{path}: not a readable .npy array: its header cannot be read") from None
    if any(n < 0 for n in shape):
        raise DataError(f"{path}: not a readable .npy array: its header claims a negative size")
    return shape, dtype


def _bytes(n):
    """A number of bytes as a person reads it: 192 bytes, 4.0 KiB, 298.0 GiB."""
    if abs(n) < 1024:
        return f"{n} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"


def _image(path, prep):
    """An image file as the model takes it: resized, channels converted, the run's scaling."""
    from nnrun.data import pixels

    if prep.get("kind") == "images":
        return pixels.read([str(path)], prep)[0]
    shape = tuple(prep["input_shape"])
    channels = shape[2] if len(shape) == 3 else 1
    if prep.get("kind") == "table" or len(shape) not in (2, 3) or channels not in (1, 3):
        raise DataError(f"{path}: this run was trained on {_kind(prep)}, not images")
    raw = {"image_size": list(shape[:2]), "color_mode": "rgb" if channels == 3 else "grayscale", "rescale": None}
    values = pixels.read([str(path)], raw)  # 0..255, as the training arrays were before scaling
    return data.transform(values.reshape((1, *shape)), prep)[0]


def _kind(prep):
    shape = "x".join(map(str, prep["input_shape"]))
    return {"table": "CSV rows", "images": "image files"}.get(prep.get("kind"), f"arrays of shape {shape}")
