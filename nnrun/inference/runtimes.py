"""What runs a run's model for `predict`: ONNX Runtime, LiteRT or Keras.

An export (`nnrun export`) answers in a fraction of a second, where Keras
first imports TensorFlow or JAX for seconds. `choose` takes the fastest one
the run directory has and this machine can run, checks the file against the
sha256 run.json recorded for it, and says in one line why it falls back to
Keras when it must.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from nnrun import atomic
from nnrun.backend import quiet
from nnrun.errors import ConfigError, RunDirError, one_line
from nnrun.inference import loading
from nnrun.rundir import files as rundir
from nnrun.rundir import record

if TYPE_CHECKING:  # predict runs an export without TensorFlow: nothing here imports Keras (or NumPy) to be typed
    import keras
    import numpy as np

EXPORT = rundir.EXPORT
FILES = {"onnx": "model.onnx", "litert": "model.tflite", "saved_model": "saved_model"}  # format -> under export/
RUNNERS = {"onnx": "onnxruntime", "litert": "ai_edge_litert"}  # in the order predict prefers them
EXTRA = "nnrun[export]"


def choose(run: record.Run, wanted: str = "auto", say: Callable[[str], object] = print) -> Onnx | LiteRT | Keras:
    """The runtime `predict` uses for a run.

    Args:
        run: the `record.Run`.
        wanted: auto (the fastest available), onnx, litert or keras.
        say: where a one-line reason for falling back to Keras goes.

    Returns:
        A runtime: `.name`, and `.predict(x)` for a float32 batch.
    """
    if wanted == "keras":
        return Keras(run)
    exports = {name: made for name, made in run.info.exports.items() if name in RUNNERS}
    again = f"nnrun export {run.path} --format"
    # An export counts only if it was made from model.keras as it is now (hashed once, for every export).
    model = atomic.sha256_file(run.path / rundir.MODEL) if exports and run.model == rundir.MODEL else None
    if wanted != "auto":
        if run.model != rundir.MODEL:
            raise RunDirError(
                f"--runtime {wanted}: the exports are of {rundir.MODEL}, not {run.model}; use --runtime keras"
            )
        if wanted not in exports:
            raise RunDirError(f"--runtime {wanted}: '{run.path}' has no {wanted} export; {again} {wanted}")
        if importlib.util.find_spec(RUNNERS[wanted]) is None:
            raise ConfigError(f"--runtime {wanted}: {RUNNERS[wanted]} is not installed; pip install '{EXTRA}'")
        if exports[wanted].model_sha256 != model:
            raise RunDirError(
                f"--runtime {wanted}: the export is of an earlier {rundir.MODEL} (the run went on "
                f"since); {again} {wanted}"
            )
        return open_export(wanted, run.path / EXPORT / FILES[wanted], exports[wanted].sha256, run)
    if run.model != rundir.MODEL and exports:
        say(f"note: the exports are of {rundir.MODEL}; {run.model} runs with Keras")
        return Keras(run)
    unused = []
    for name in RUNNERS:
        if name not in exports:
            continue
        why = (
            f"{RUNNERS[name]} is not installed (pip install '{EXTRA}')"
            if importlib.util.find_spec(RUNNERS[name]) is None
            else f"export/{FILES[name]} is gone"
            if not (run.path / EXPORT / FILES[name]).is_file()
            else f"it is of an earlier {rundir.MODEL} (the run went on since; {again} {name})"
            if exports[name].model_sha256 != model
            else None
        )
        if why is None:
            return open_export(name, run.path / EXPORT / FILES[name], exports[name].sha256, run)
        unused.append(f"a {name} export, but {why}")
    for reason in unused:  # said only when Keras answers after all
        say(f"note: {run.path.name} has {reason}; predicting with Keras")
    return Keras(run)


def open_export(
    name: str, path: str | os.PathLike[str], sha256: str | None = None, run: record.Run | None = None
) -> Onnx | LiteRT:
    """Opens an exported model with its runtime.

    Args:
        name: onnx or litert.
        path: the exported file.
        sha256: what run.json recorded for it; a file that differs is refused.
        run: the `record.Run`, whose preprocessing.json the export's shapes must fit.

    Returns:
        The runtime.
    """
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"'{path}' is missing; export again: nnrun export {path.parent.parent} --format {name}")
    if sha256 is not None and atomic.sha256_file(path) != sha256:
        raise RunDirError(
            f"'{path}' is not the file that was exported (its sha256 differs from run.json's); "
            f"export again: nnrun export {path.parent.parent} --format {name}"
        )
    try:
        runtime = (Onnx if name == "onnx" else LiteRT)(path)
    except Exception as e:  # a damaged file: whatever the runtime's parser raised
        raise RunDirError(f"'{path}' cannot be loaded by {RUNNERS[name]}: {one_line(e, 200)}") from None
    if run is not None:
        loading.check_shapes(runtime.shapes[0][1:], runtime.shapes[1][-1], run.preprocessing, run.path)
    return runtime


class Onnx:
    """ONNX Runtime on the CPU."""

    name = "onnx"

    def __init__(self, path: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initializers are not the user's
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.path = path
        self.shapes = (self.session.get_inputs()[0].shape, self.session.get_outputs()[0].shape)

    def predict(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        try:
            return self.session.run(None, {self.input: np.asarray(x, dtype="float32")})[0]
        except Exception as e:  # an export that does not run on inputs of its own shape
            raise RunDirError(f"'{self.path}' fails on this input: {one_line(e, 200)}") from None


class LiteRT:
    """LiteRT (TensorFlow Lite) through `ai_edge_litert`."""

    name = "litert"

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path))
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch: int | None = None
        self.path = path
        self.shapes = (list(self.input["shape_signature"]), list(self.output["shape_signature"]))

    def predict(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        x = np.asarray(x, dtype="float32")
        if self.batch != len(x):  # the export takes any batch size; the interpreter is sized per call
            self.interpreter.resize_tensor_input(self.input["index"], list(x.shape))
            with quiet(2):  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self.interpreter.allocate_tensors()
            self.batch = len(x)
        try:
            self.interpreter.set_tensor(self.input["index"], x)
            with quiet(2):
                self.interpreter.invoke()
        except Exception as e:  # an export that does not run on inputs of its own shape
            raise RunDirError(f"'{self.path}' fails on this input: {one_line(e, 200)}") from None
        return self.interpreter.get_tensor(self.output["index"])


class Keras:
    """The run's Keras model, loaded in safe mode when it first predicts."""

    name = "keras"

    def __init__(self, run: record.Run) -> None:
        self.run = run
        self.model: keras.Model | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            self.model = loading.load_model(self.run)
        return self.model.predict(x, batch_size=len(x), verbose=0)
