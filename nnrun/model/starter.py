"""`nnrun init`: a starter config written from the data itself, every choice commented, that trains as it is.

The data is described by `nnrun.data.profile` (the source, the target and its
task, each column's kind as `check` decides it); this module picks what fits
it: the output layer and loss for the task and class count, a small network
(Dense layers for tables, a small CNN for images, as the shipped configs
have), and epochs, batch size and early stopping for the data's size. The
config is validated before it is handed back. No TensorFlow is imported.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from nnrun.config.commented_yaml import CommentedYaml
from nnrun.data import profile as profiles
from nnrun.data.profile import Arrays, Images, Profile, Table, Target
from nnrun.errors import DataError, listed

SEED = 42
IMBALANCED = 3.0  # the largest class this many times the smallest: say how to weigh them
MAX_LISTED = 40  # more numeric columns than this are one flow list, not a line each
CACHE_BYTES = 1 << 30  # decoded images up to this size are kept in memory after the first epoch
MAX_IMAGE_SIDE = 64  # images are resized to at most this: a small CNN trains in minutes on a CPU
MIN_IMAGE_SIDE = 16  # the CNN's two 3x3 convolutions and poolings need this much


@dataclass
class Starter:
    """A starter config and what it decided, in a line."""

    text: str  # the commented YAML
    summary: str  # for stderr: the source, task and what was dropped


def write(path: Path, target: str | None = None) -> Starter:
    """Describes the data and writes a commented starter config for it.

    Args:
        path: a CSV table (`.csv`, `.csv.gz`, ...), a Parquet table, an `.npz` file or a folder of images
            with one sub-folder per class; written into the config as given.
        target: the table's column to predict (tables only).

    Returns:
        A `Starter`, its YAML checked against the config schema.
    """
    found = profiles.describe(path, target)
    out = CommentedYaml()
    command = shlex.join(["nnrun", "init", str(path), *(["--target", target] if target else [])])
    out.comment("A starter config that nnrun init wrote from the data itself:")
    out.comment(f"  {command}")
    out.comment(
        "It trains as it is (nnrun train THIS_FILE); each value says why it is what it is. Change what you "
        "know better: nnrun check THIS_FILE shows what a run of it will be, without training."
    )
    out.key("seed", SEED, "seeds the splits, the initial weights and the shuffling: reruns match")
    out.key("data")
    samples = _data(out, found)
    head = _head(found.target, getattr(found, "outputs", 1))
    out.key("model")
    out.key("layers", indent=1)
    for layer, comment in [*_network(found, samples), (head.layer, head.layer_why)]:
        out.item(layer, comment, indent=2)
    out.key("optimizer", {"name": "adam", "learning_rate": 1e-3}, "Adam at its usual rate: a safe start")
    out.key("loss", head.loss, head.loss_why)
    out.key("metrics", [head.metric], head.metric_why)
    _training(out, found, samples)
    out.key("output")
    out.key("dir", "runs", "each training makes a new run directory here", indent=1)
    _validate(out.text(), path)
    return Starter(out.text(), _summary(found))


# --- data -----------------------------------------------------------------------------------------


def _data(out: CommentedYaml, found: Profile) -> int:
    """The `data` section; returns how many samples training will have, test split included."""
    if isinstance(found, Table):
        return _table(out, found)
    out.key("source", found.source, indent=1)
    out.key("path", str(found.path), indent=1)
    if isinstance(found, Images):
        return _images(out, found)
    return _arrays(out, found)


def _table(out: CommentedYaml, table: Table) -> int:
    kind = "a gzip-compressed CSV table" if table.path.name.lower().endswith(".gz") else "a CSV table"
    kind = "a Parquet table" if table.source == "parquet" else kind
    out.key("source", table.source, f"{kind} of {table.rows} rows", indent=1)
    out.key("path", str(table.path), "relative paths resolve from where nnrun runs", indent=1)
    if table.na_values:
        out.key("na_values", table.na_values, "mean missing: they stand among numbers", indent=1)
    if table.decimal != ".":
        out.key("decimal", table.decimal, "numbers are written 50,5", indent=1)
    _target(out, table.target, "rows")
    dropped = [c for c in table.columns if c.kind is None or c.values < 2]
    if len(dropped) == len(table.columns):
        raise DataError(
            f"DATA: '{table.path}': no column is left to predict {table.target.name} from; "
            f"check refuses {listed(c.name for c in dropped)}"
        )
    out.key("drop", None if dropped else [], "left out, each with why" if dropped else "none", indent=1)
    for column in dropped:
        reason = column.refused or (
            f"has one value where it has any ({column.missing} rows have none): nothing to learn from"
            if column.missing
            else "has the same value in every row: nothing to learn from"
        )
        out.comment(f"{column.name} {reason}", indent=2)
        out.item(column.name, indent=2)
    kept = [c for c in table.columns if c not in dropped]
    categorical = [c for c in kept if c.kind == "categorical"]
    _listing(out, "categorical", categorical, "text: one-hot encoded, each category an input", _categories)
    dates = [c for c in kept if c.kind == "date"]
    _listing(
        out,
        "date",
        dates,
        "dates: each becomes its year and, as sine and cosine, its month, day and weekday",
        lambda c: f"{c.date_format}" + _missing(c, "the training median of its parts"),
    )
    numeric = [c for c in kept if c.kind == "numeric"]
    _listing(
        out, "numeric", numeric, "numbers: scaled below", lambda c: _missing(c, "the training median").lstrip("; ")
    )
    out.key("scale", "standard", "numbers to mean 0, standard deviation 1 (the training split's)", indent=1)
    test = round((table.rows - table.target.missing) * 0.2)
    out.key("test_split", 0.2, f"{test} rows held out{_stratified(table.target)} for the test metrics", indent=1)
    return table.rows - table.target.missing


def _stratified(target):
    return ", stratified," if target.task == "classification" else ""


def _listing(out, key, found, comment, describe):
    """A list of columns, a line each with what there is to say of it, or one flow list when long."""
    if not found:
        out.key(key, [], "none", indent=1)
    elif len(found) > MAX_LISTED:
        out.key(key, [c.name for c in found], f"{len(found)} columns; {comment}", indent=1)
    else:
        out.key(key, None, comment, indent=1)
        for column in found:
            out.item(column.name, describe(column), indent=2)


def _categories(column):
    return f"{column.values} categories" + _missing(column, "the most frequent")


def _missing(column, filled):
    return f"; {column.missing} missing, filled with {filled}" if column.missing else ""


def _target(out: CommentedYaml, target: Target, what: str) -> None:
    out.key("target", target.name, "the column to predict", indent=1)
    if target.missing:
        out.comment(f"{target.missing} {what} have no {target.name}: training leaves them out, with a note", indent=1)
    out.key("task", target.task, f"{target.why}{_classes(target)}", indent=1)
    if target.task == "regression":
        out.key("scale_target", True, "learned standardized; outputs in the target's units", indent=1)


def _classes(target: Target) -> str:
    if not target.classes:
        return ""
    shown = [f"{name} ({count})" for name, count in list(target.classes.items())[:5]]
    more = f", and {len(target.classes) - 5} more" if len(target.classes) > 5 else ""
    return f": {len(target.classes)} classes, {', '.join(shown)}{more}"


def _images(out: CommentedYaml, images: Images) -> int:
    count = sum((images.target.classes or {}).values())
    out.comment(f"{count} images in class folders{_classes(images.target)}", indent=1)
    height, width = _image_size(images.size)
    out.key(
        "image_size",
        [height, width],
        f"the images are about {images.size[0]}x{images.size[1]} (median); every one is resized to this",
        indent=1,
    )
    grey = "grayscale" if images.grayscale else "rgb"
    out.key("color_mode", grey, "every image sampled is gray" if images.grayscale else "colour images", indent=1)
    out.key("rescale", "1/255", "pixels 0..255 -> 0..1", indent=1)
    channels = 1 if images.grayscale else 3
    decoded = (count + images.test_images) * height * width * channels * 4
    if decoded <= CACHE_BYTES:
        out.key("cache", True, f"decoded images kept in memory after the first epoch ({decoded >> 20} MB)", indent=1)
    out.key("augmentation", None, "Keras Random* layers, active in training only: more varied examples", indent=1)
    out.item({"RandomFlip": "horizontal"}, "remove it where a mirrored image means another thing (digits)", 2)
    out.item({"RandomRotation": 0.05}, "up to 18 degrees either way", indent=2)
    if images.test_folder:
        out.comment(f"the test split is the folder's {images.test_folder}/ ({images.test_images} images)", indent=1)
    else:
        out.key("test_split", 0.2, f"{round(count * 0.2)} images held out, stratified, for the test metrics", indent=1)
    return count + images.test_images


def _image_size(size):
    """The size images are resized to: their own, at most `MAX_IMAGE_SIDE` a side, keeping their shape."""
    height, width = size
    scale = min(1.0, MAX_IMAGE_SIDE / max(height, width))
    return max(MIN_IMAGE_SIDE, round(height * scale)), max(MIN_IMAGE_SIDE, round(width * scale))


def _arrays(out: CommentedYaml, arrays: Arrays) -> int:
    test = f", and {arrays.test_samples} test samples (x_test)" if arrays.test_samples else ""
    out.comment(f"{arrays.samples} samples of shape {list(arrays.shape)}{test}", indent=1)
    out.key("task", arrays.target.task, f"{arrays.target.why}{_classes(arrays.target)}", indent=1)
    if arrays.target.task == "regression":
        out.key("scale_target", True, "learned standardized; outputs in the target's units", indent=1)
    if arrays.pixels:
        out.key("rescale", "1/255", "whole numbers 0..255: pixels, to 0..1", indent=1)
    elif len(arrays.shape) == 1:
        out.key(
            "scale", "standard", "each feature to mean 0 and standard deviation 1, from the training split", indent=1
        )
    if not arrays.test_samples:
        out.key(
            "test_split",
            0.2,
            f"{round(arrays.samples * 0.2)} samples held out{_stratified(arrays.target)} for the test metrics",
            indent=1,
        )
    return arrays.samples + arrays.test_samples


# --- the network ----------------------------------------------------------------------------------


def _network(found: Profile, samples: int) -> list[tuple[object, str]]:
    """The hidden layers: a small CNN for images, Dense layers for tables and other arrays."""
    if isinstance(found, Images):
        return _cnn(same=False)  # resized to at least MIN_IMAGE_SIDE a side
    if isinstance(found, Arrays) and len(found.shape) > 1:
        if len(found.shape) == 3 and min(found.shape[:2]) >= 4:
            return _cnn(same=min(found.shape[:2]) < MIN_IMAGE_SIDE)
        shape = "x".join(map(str, found.shape))
        return [
            ("Flatten", f"{shape} -> {math.prod(found.shape)} inputs"),
            ({"Dense": {"units": 128, "activation": "relu"}}, "one hidden layer, as Keras's classic MNIST tutorials"),
            ({"Dropout": 0.2}, "against memorizing the training samples"),
        ]
    units = 64 if samples >= 1000 else 32
    inputs = _inputs(found)
    return [
        ({"Dense": {"units": units, "activation": "relu"}}, f"{inputs}; two hidden layers for {samples} samples"),
        ({"Dropout": 0.2}, "against memorizing the training rows"),
        ({"Dense": {"units": units // 2, "activation": "relu"}}, ""),
    ]


def _inputs(found):
    if isinstance(found, Arrays):
        return f"{found.shape[0]} inputs"
    width = 0
    for column in found.columns:
        if column.kind is not None and column.values >= 2:
            width += {"numeric": 1, "date": 7, "categorical": column.values}[column.kind]
    return f"about {width} inputs once encoded"


def _cnn(same: bool) -> list[tuple[object, str]]:
    """Two convolutions and poolings, as configs/images_cnn.yaml; `same`: padded, for images under 16 pixels."""
    padding = {"padding": "same"} if same else {}
    return [
        (
            {"Conv2D": {"filters": 16, "kernel_size": 3, **padding, "activation": "relu"}},
            "a small CNN, as configs/images_cnn.yaml" + ("; padded: the images are small" if same else ""),
        ),
        ({"MaxPooling2D": 2}, ""),
        ({"Conv2D": {"filters": 32, "kernel_size": 3, **padding, "activation": "relu"}}, ""),
        ({"MaxPooling2D": 2}, ""),
        ("Flatten", ""),
        ({"Dense": {"units": 64, "activation": "relu"}}, ""),
        ({"Dropout": 0.3}, "against memorizing the training images"),
    ]


class Head(NamedTuple):
    """The output layer, loss and metric that fit a task, each with why."""

    layer: dict[str, Any]
    layer_why: str
    loss: str
    loss_why: str
    metric: str
    metric_why: str


def _head(target: Target, outputs: int) -> Head:
    """The output layer, loss and metric for the task and the number of classes."""
    if target.task == "regression":
        per_sample = f", {outputs} per sample" if outputs > 1 else ""
        return Head(
            {"Dense": {"units": outputs}},
            f"no activation: any value{per_sample}",
            "mean_squared_error",
            "for values: the mean squared difference",
            "mae",
            "mean absolute error, in the target's own units",
        )
    classes = list(target.classes or {})
    right = "the share of samples classified right"
    if len(classes) == 2:
        return Head(
            {"Dense": {"units": 1, "activation": "sigmoid"}},
            f"2 classes: one unit, the probability of {classes[1]!r}",
            "binary_crossentropy",
            "for one sigmoid unit",
            "accuracy",
            right,
        )
    return Head(
        {"Dense": {"units": len(classes), "activation": "softmax"}},
        f"{len(classes)} classes: a probability each",
        "sparse_categorical_crossentropy",
        "for softmax over classes given as indices",
        "accuracy",
        right,
    )


# --- training -------------------------------------------------------------------------------------


def _training(out: CommentedYaml, found: Profile, samples: int) -> None:
    images = isinstance(found, Images) or (isinstance(found, Arrays) and len(found.shape) >= 2)
    if samples >= 100_000:
        epochs, batch = 20, 256
    elif samples >= 20_000:
        epochs, batch = 30, 128
    elif samples >= 5_000:
        epochs, batch = 50 if images else 100, 64
    else:
        epochs, batch = 50 if images else 200, 32
    # A validation split of a few hundred samples is noisy: early stopping needs room not to stop on noise.
    patience = 10
    validation = 0.1 if samples >= 5_000 else 0.2
    out.key("training")
    out.key("epochs", epochs, "at most: early stopping (below) ends sooner", indent=1)
    out.key("batch_size", batch, f"for {samples} samples", indent=1)
    out.key("validation_split", validation, "of the training samples: what early stopping watches", indent=1)
    out.key("callbacks", None, indent=1)
    out.item(
        {"EarlyStopping": {"monitor": "val_loss", "patience": patience, "restore_best_weights": True}},
        f"stop after {patience} epochs without a better val_loss; keep the best weights",
        indent=2,
    )
    classes = found.target.classes
    if classes and max(classes.values()) >= IMBALANCED * min(classes.values()):
        small = min(classes, key=lambda name: classes[name])
        share = classes[small] / sum(classes.values())
        out.comment(
            f"class {small!r} is {share:.0%} of the samples: accuracy alone can flatter the model. "
            "To weigh each class equally in the loss, uncomment:",
            indent=1,
        )
        out.comment("class_weight: balanced", indent=1)


# --- checks ---------------------------------------------------------------------------------------


def _validate(text: str, path: Path) -> None:
    """The written config, read back as `nnrun train` reads it: a starter that does not validate is a bug."""
    from nnrun.config import loading
    from nnrun.errors import ConfigError

    try:
        loading.from_text(text, Path("starter.yaml"))
    except ConfigError as e:  # not the user's to fix: exit 1, not 2
        raise AssertionError(f"the starter config for '{path}' does not validate: {e}") from None


def _summary(found: Profile) -> str:
    task = found.target.task
    what = f"{task} of {found.target.name}"
    if found.target.classes:
        what += f" ({len(found.target.classes)} classes)"
    if isinstance(found, Table):
        dropped = [c.name for c in found.columns if c.kind is None or c.values < 2]
        return f"{found.source}: {what}; {len(dropped)} column{'s' * (len(dropped) != 1)} dropped" + (
            f" ({', '.join(dropped[:5])}{', ...' if len(dropped) > 5 else ''})" if dropped else ""
        )
    return f"{found.source}: {what}"
