"""A run's saved Keras model loaded, in Keras's safe mode, and checked against the run's preprocessing.json."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun.errors import RunDirError, one_line
from nnrun.rundir import files as rundir
from nnrun.rundir import record

if TYPE_CHECKING:  # Keras ships no types; to mypy its classes are Any
    import keras

# Keras's safe mode had bypasses before 3.14 (CVE-2025-1550, CVE-2025-8747,
# CVE-2025-9906, CVE-2026-1462): models from other people load only on newer.
MIN_KERAS = (3, 14)


def load_model(run: record.Run) -> keras.Model:
    """Loads a run's model in Keras's safe mode (no code in it can run).

    Args:
        run: a `record.Run`.

    Returns:
        The compiled Keras model.
    """
    from nnrun import backend

    backend.use_for_run(run.info.backend)
    keras = backend.keras()
    if tuple(int(p) for p in keras.__version__.split(".")[:2] if p.isdigit()) < MIN_KERAS:
        raise RunDirError(
            f"refusing to load '{run.path / run.model}' with Keras {keras.__version__}: its safe mode has known "
            f"bypasses; pip install 'keras>={'.'.join(map(str, MIN_KERAS))}'"
        )
    file = run.path / run.model
    import zipfile

    if not zipfile.is_zipfile(file):  # Keras would say "File not found"
        raise RunDirError(f"'{file}' is not a Keras model file (a .keras file is a zip archive)")
    try:
        model = keras.models.load_model(file, safe_mode=True, compile=True)
    except Exception as e:  # a damaged or foreign file: say so, whatever Keras raised
        raise RunDirError(f"'{file}' cannot be loaded: {one_line(e, 300)}") from None
    # The model takes the inputs preprocessing.json describes and gives one output per class.
    check_shapes(model.input_shape[1:], model.output_shape[-1], run.preprocessing, run.path)
    return model


def check_shapes(
    inputs: Iterable[int | str | None], outputs: int | str | None, preprocessing: Mapping[str, Any], path: Path
) -> None:
    """A model's sample shape and output width fit preprocessing.json (Keras's, or an export's).

    Args:
        inputs: one sample's shape the model takes.
        outputs: the width of its output.
        preprocessing: the run's preprocessing dict.
        path: the run directory, for messages.
    """
    inputs = tuple(inputs)
    if inputs != tuple(preprocessing["input_shape"]):
        raise RunDirError(
            f"'{path / rundir.PREPROCESSING}': input_shape {preprocessing['input_shape']}, "
            f"but the model takes {list(inputs)}"
        )
    classes = preprocessing.get("class_names")
    if classes is not None and outputs != len(classes) and not (outputs == 1 and len(classes) == 2):
        raise RunDirError(
            f"'{path / rundir.PREPROCESSING}': {len(classes)} class_names, but the model has {outputs} outputs"
        )
