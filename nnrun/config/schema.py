"""The config's sections and `Config`, which holds them with every default.

Everything here is plain Python and pydantic: validating a config never
imports TensorFlow. Keras names (layers, optimizers, losses, metrics,
callbacks) are only checked for shape here; `nnrun.model` resolves them
through Keras and checks their arguments against the Keras classes. Loading a
file is `nnrun.config.loading`'s; `--set` is `nnrun.config.overrides`'.
"""

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, PrivateAttr, WithJsonSchema

from nnrun.config.distribution_section import Distribution, distribution_form
from nnrun.config.keras_specs import AugmentationSpec, CallbackSpec, LayerSpec, Named
from nnrun.config.section import Section
from nnrun.config.sweep_section import Sweep
from nnrun.config.tracking_section import Tracking
from nnrun.errors import did_you_mean, quoted

SklearnDataset = Literal["digits", "iris", "wine", "breast_cancer"]
SKLEARN_DATASETS: tuple[str, ...] = get_args(SklearnDataset)
KerasDataset = Literal["mnist", "fashion_mnist", "cifar10", "cifar100", "boston_housing", "california_housing"]
KERAS_DATASETS: tuple[str, ...] = get_args(KerasDataset)
ExportFormat = Literal["onnx", "litert", "saved_model"]  # nnrun export's
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)


Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]


FRACTION = re.compile(r"^\s*[\d.]+\s*/\s*[\d.]+\s*$")


def _fraction(value):
    """`1/255` (as Keras users write it) -> 0.00392..."""
    if isinstance(value, str) and FRACTION.fullmatch(value):
        numerator, denominator = (float(v) for v in value.split("/"))
        if denominator:
            return numerator / denominator
    return value


def _stream(value):
    # Checked before the union, whose own message names each of its members ("data.stream.bool: ...").
    if isinstance(value, bool) or value == "auto":
        return value
    raise ValueError("expected true, false or auto")


class DataBase(Section):
    test_split: float = Field(
        0.2, gt=0.0, lt=1.0, description="Fraction held out for testing, when the source has no test split."
    )
    scale: Literal["none", "standard", "minmax"] = Field(
        "none", description="Feature scaling learned from the training split (tables: scale, default standard)."
    )
    rescale: Annotated[float, BeforeValidator(_fraction)] | None = Field(
        None, gt=0, description="Multiply raw values by this first, e.g. 1/255 for pixels."
    )
    augmentation: list[AugmentationSpec] = Field(
        default_factory=list,
        description="Keras Random* layers (RandomFlip, RandomRotation, ...), active in training only.",
    )
    task: Literal["auto", "classification", "regression"] = Field(
        "auto", description="auto: integer or text targets are classes, fractional numbers are regression."
    )
    scale_target: bool = Field(
        True,
        description="Regression: the network learns standardized targets; a Rescaling layer at its end "
        "(mean and std of the training split) gives outputs, loss and metrics in the target's own units.",
    )


class SklearnData(DataBase):
    """One of scikit-learn's bundled datasets: works offline."""

    source: Literal["sklearn"]
    name: SklearnDataset


class KerasData(DataBase):
    """One of Keras's built-in datasets, read from the Keras cache (KERAS_HOME, default ~/.keras)."""

    source: Literal["keras"]
    name: KerasDataset


class NpzData(DataBase):
    """A `.npz` file with `x`/`y`, or `x_train`/`y_train` (and `x_test`/`y_test`)."""

    source: Literal["npz"]
    path: Path = Field(description="Relative paths resolve from the current directory.")


def _encoding(name):
    import codecs

    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown text encoding {name!r} (e.g. utf-8, latin-1, cp1252)") from None
    return name


class TableData(DataBase):
    """What every table source shares: one target column; numeric columns scaled, text ones one-hot encoded."""

    source: Literal["csv", "parquet"]
    path: Path = Field(description="Relative paths resolve from the current directory.")
    target: str = Field(description="The column to predict.")
    drop: list[str] = Field(default_factory=list, description="Columns to ignore (ids, names).")
    categorical: list[str] | None = Field(
        None, description="Columns to one-hot encode; by default text columns that are not dates, ids or free text."
    )
    numeric: list[str] = Field(
        default_factory=list, description="Columns used as numbers even where they look like ids."
    )
    date: list[str] = Field(
        default_factory=list,
        description="Columns of dates, read as year, month, day of year and weekday; "
        "by default text that parses as dates.",
    )
    scale: Literal["none", "standard", "minmax"] = Field(
        "standard", description="Scaling of the numeric columns, learned from the training split."
    )
    missing_target: Literal["drop", "error"] = Field(
        "drop", description="Rows without a target: left out (with a note saying how many), or an error."
    )
    stream: Annotated[bool | Literal["auto"], BeforeValidator(_stream)] = Field(
        "auto",
        description="Read the table in chunks, never whole: a first pass learns the preprocessing and the split, "
        "then batches are read as Keras takes them. auto: past 1 GiB of CSV, or of a Parquet file's values "
        "at 8 bytes each.",
    )


class CsvData(TableData):
    """A CSV table: one target column; numeric columns scaled, text ones one-hot encoded, dates as numbers."""

    source: Literal["csv"]
    sep: str | None = Field(
        None, min_length=1, max_length=1, description="The column separator; by default sniffed (, ; tab |)."
    )
    quotechar: str | None = Field(
        None, min_length=1, max_length=1, description="The quote around fields; by default sniffed (\" or ')."
    )
    decimal: str = Field(".", min_length=1, max_length=1, description="The decimal mark: '.', or ',' (50,5).")
    encoding: Annotated[str, AfterValidator(_encoding)] = Field("utf-8", description="The file's text encoding.")
    na_values: list[str] = Field(
        default_factory=list, description="More values that mean missing, besides empty, NA, NaN, null and the like."
    )


class ParquetData(TableData):
    """A Parquet table (pyarrow): as a CSV table, its column types read from the file."""

    source: Literal["parquet"]


def _image_size(value):
    """`[height, width]`, each a positive whole number; anything else refused in one line that says so."""
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ValueError(f"expected [height, width] of positive integers, e.g. [64, 64]; got {value!r}")
    return tuple(value)


Side = Annotated[int, Field(gt=0)]
ImageSize = Annotated[tuple[Side, Side], BeforeValidator(_image_size)]


class ImageData(DataBase):
    """A folder with one sub-folder of images per class (optionally under train/ and test/ or val/)."""

    source: Literal["images"]
    path: Path = Field(description="Relative paths resolve from the current directory.")
    image_size: ImageSize = Field((64, 64), description="Height and width every image is resized to.")
    color_mode: Literal["rgb", "grayscale"] = "rgb"
    cache: bool = Field(False, description="Keep decoded images in memory after the first epoch.")


DATA_SOURCES = ("sklearn", "keras", "npz", "csv", "parquet", "images")
Data = Annotated[SklearnData | KerasData | NpzData | CsvData | ParquetData | ImageData, Field(discriminator="source")]


class Model(Section):
    layers: list[LayerSpec] = Field(min_length=1, description="The layer stack, first to last.")

    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"layers": data} if isinstance(data, list) else data


def _class_weight(value):
    """None, 'balanced', or `{class name: weight}` (YAML reads names that are numbers as numbers: `{0: 1, 1: 5}`)."""
    if value is None or value == "balanced":
        return value
    if not isinstance(value, dict):
        raise ValueError(
            "expected balanced, or a mapping of class names to weights; "
            f"got {value!r}{did_you_mean(str(value), ['balanced'])}"
        )
    for name, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < float("inf"):
            raise ValueError(f"the weight of class {quoted(name)} must be a positive number; got {weight!r}")
    return {str(name): float(weight) for name, weight in value.items()}


ClassWeight = Annotated[
    Any,
    BeforeValidator(_class_weight),
    WithJsonSchema(
        {
            "anyOf": [
                {"const": "balanced"},
                {"type": "null"},
                {"type": "object", "additionalProperties": {"type": "number", "exclusiveMinimum": 0}},
            ]
        }
    ),
]


def _unfreeze(value):
    if value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise ValueError(f"expected all, or how many of the last layers to unfreeze (1 or more); got {value!r}")


class FineTune(Section):
    """A second stage of transfer learning: the frozen layers unfrozen, trained on at a low learning rate."""

    epochs: int = Field(gt=0, strict=True, description="Epochs of fine-tuning, after training.epochs.")
    learning_rate: float | None = Field(
        None,
        gt=0,
        description="The optimizer's learning rate while fine-tuning; default: a hundredth of its own.",
    )
    unfreeze: Annotated[
        Any,
        BeforeValidator(_unfreeze),
        WithJsonSchema({"anyOf": [{"const": "all"}, {"type": "integer", "minimum": 1}]}),
    ] = Field("all", description="all, or the last N layers of each frozen network (BatchNormalization stays frozen).")


class Training(Section):
    epochs: int = Field(10, gt=0, strict=True)
    batch_size: int = Field(32, gt=0, strict=True)
    validation_split: Fraction = Field(0.1, description="Taken from training data, stratified.")
    shuffle: bool = True
    steps_per_execution: int = Field(
        16,
        gt=0,
        strict=True,
        description="Batches run per call into TensorFlow (Keras's compile option): same results, less overhead.",
    )
    callbacks: list[CallbackSpec] = Field(default_factory=list)
    class_weight: ClassWeight = Field(
        None,
        description="Weigh classes in the loss: balanced (inverse frequency in the training split), "
        "or {class name: weight}, others 1.",
    )
    fine_tune: FineTune | None = Field(
        None,
        description="After training.epochs, unfreeze the layers with trainable: false and train on.",
    )
    backup_every_steps: int | None = Field(
        None,
        gt=0,
        strict=True,
        description="Also back up every this many batches, not only at epoch ends (for long epochs).",
    )


MAX_NAME_BYTES = 100  # the run directory's name adds a timestamp; file names stop at 255 bytes


def _run_name(name):
    if not re.fullmatch(r"[\w.-]+", name):
        raise ValueError(f"use letters, digits, '_', '-' and '.' only; got {name!r}")
    if name in (".", "..") or len(name.encode()) > MAX_NAME_BYTES:
        raise ValueError(
            f"must be a folder name of at most {MAX_NAME_BYTES} bytes; got {name[:40]!r}"
            + ("..." if len(name) > 40 else "")
        )
    return name


class Output(Section):
    dir: Path = Field(Path("runs"), description="Where run directories are made.")
    name: Annotated[str, AfterValidator(_run_name)] | None = Field(
        None, description="Names the run directory; defaults to the config file's name."
    )
    save_h5: bool = Field(False, description="Also save model.h5 (model.keras is always saved).")
    keep_backup: bool = Field(False, description="Keep backup/ (model and optimizer state) after the run completes.")
    export: list[ExportFormat] = Field(
        default_factory=list,
        description="Export the model when training completes (nnrun export), verified.",
    )


class Config(Section):
    """The whole config; every default lives here."""

    backend: Literal["auto", "tensorflow", "jax"] = Field(
        "auto",
        description="Keras's backend. auto: $KERAS_BACKEND if set, else the one measured fastest for this model "
        "(JAX for dense networks, TensorFlow for convolutions and image folders; see bench/README.md).",
    )
    # Why the backend above was chosen, set where `auto` is resolved (loading); run.json records it.
    _backend_reason: str | None = PrivateAttr(None)
    seed: int = Field(42, strict=True, ge=0, lt=2**32, description="Seeds Python, NumPy, Keras and the splits.")
    data: Data
    model: Model
    optimizer: Named = Field(default_factory=lambda: {"name": "adam"})
    loss: Named
    metrics: list[Named] = Field(default_factory=list)
    training: Training = Field(default_factory=Training)
    distribution: Annotated[Distribution, BeforeValidator(distribution_form)] | None = Field(
        None,
        description="data_parallel: split each batch over this machine's devices, or several processes' (JAX).",
    )
    output: Output = Field(default_factory=Output)
    tracking: Tracking = Field(default_factory=Tracking)
    sweep: Sweep | None = Field(None, description="nnrun sweep: the metric to optimize and the parameters to search.")

    @property
    def backend_reason(self) -> str | None:
        """Why `backend` is the one it is (run.json's `backend_reason`); None before loading resolved it."""
        return self._backend_reason
