"""`nnrun export`: a run's model as ONNX, LiteRT or a TensorFlow SavedModel, verified against Keras.

Keras's own `Model.export` writes each format, on the TensorFlow backend,
where every format has its converter (tf2onnx, TensorFlow's LiteRT converter);
a `.keras` file is the same on either backend, so a run trained on JAX exports
the same way. Each export is written under a temporary name in the run's
`export/` folder, and kept only when the same inputs through it and through
Keras agree to `TOLERANCE`; run.json records it (file, sha256, the largest
difference), which `predict` reads to choose a runtime.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nnrun import atomic, signals
from nnrun.errors import FAULTS, ConfigError, RunFailed, one_line
from nnrun.inference import loading, runtimes
from nnrun.rundir import files as rundir
from nnrun.rundir import record

if TYPE_CHECKING:
    from nnrun.reporter import Reporter

KERAS_FORMATS = {"onnx": "onnx", "litert": "litert", "saved_model": "tf_saved_model"}
# What each format needs besides TensorFlow: the converter, and what runs the export to verify it.
NEEDS = {"onnx": ("tf2onnx", "onnx", "onnxruntime"), "litert": ("ai_edge_litert",), "saved_model": ()}
TOLERANCE = 1e-4
PROBES = 32  # generated inputs fed through both


@dataclass(frozen=True)
class Exported:
    """A format exported and verified against Keras: what run.json records of it, and its name.

    Attributes:
        format: onnx, litert or saved_model.
        file: where it is in the run directory (`export/model.onnx`).
        sha256: its file's hash; None for a folder (a SavedModel).
        max_abs_difference: the largest difference between its outputs and Keras's on the probes.
        model_sha256: the model.keras it was made from (a resumed run's new one is not).
        exported_at: when, local time with its offset.
        versions: `{package: version}` of Keras and the converter.
    """

    format: str
    file: str
    sha256: str | None
    max_abs_difference: float
    model_sha256: str | None
    exported_at: str | None
    versions: dict[str, str | None]

    def to_json(self) -> dict[str, Any]:
        """What run.json's `exports` records for it, under its format's name."""
        recorded = asdict(self)
        del recorded["format"]
        return recorded

    @classmethod
    def from_json(cls, name: str, recorded: Mapping[str, Any]) -> Exported:
        """The export run.json records under `name`, its format."""
        return cls(
            name,
            recorded["file"],
            recorded.get("sha256"),
            recorded["max_abs_difference"],
            recorded.get("model_sha256"),
            recorded.get("exported_at"),
            recorded.get("versions") or {},
        )


def check_available(formats: Iterable[str], place: str = "--format") -> None:
    """Refuses formats whose converter is not installed, naming the extra to install (exit 2).

    Args:
        formats: format names.
        place: where they were asked for, for the message.
    """
    for name in formats:
        missing = [m for m in NEEDS[name] if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(f"{place} {name}: needs {', '.join(missing)}; pip install '{runtimes.EXTRA}'")


def export(run_dir: str | os.PathLike[str], formats: Sequence[str], report: Reporter) -> list[Exported]:
    """Exports a run's final model in each format and verifies it against Keras.

    Args:
        run_dir: the run directory.
        formats: format names: onnx, litert, saved_model.
        report: the `Reporter`, for progress (a line per export as it is kept).

    Returns:
        An `Exported` per format, in the order asked for: what run.json records of each.
    """
    check_available(formats)
    run = record.read(run_dir)
    rundir.check_own_folders(run.path, (runtimes.EXPORT,))
    if warning := run.warning():
        report.warn(warning)
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != "tensorflow":
        return _in_its_own_process(run.path, formats)  # Keras runs on JAX here: the converters need TensorFlow
    with signals.stopping() as stop:  # a stop is acted on between steps: converters swallow KeyboardInterrupt
        return _export(run, formats, report, stop)


def _export(run, formats, report, stop):
    """`export`'s work, on TensorFlow; `stop.check()` at each safe point."""
    from nnrun import backend

    backend.use("tensorflow")  # every format's converter is there; a .keras file loads on either backend
    keras = backend.keras()
    model = _without_augmentation(loading.load_model(run), len(run.config.data.augmentation), keras)
    shape = tuple(run.preprocessing["input_shape"])
    probes = _probes(shape, run.preprocessing)
    expected = np.asarray(model.predict(probes, verbose=0))
    folder = atomic.make_folder(run.path / runtimes.EXPORT)
    made = []
    source = atomic.sha256_file(run.path / rundir.MODEL)
    for name in formats:
        target = folder / runtimes.FILES[name]
        stop.check()
        with report.status(f"exporting {name}"), atomic.atomic_tree(target) as tmp:
            try:
                with backend.quiet(2):
                    model.export(
                        str(tmp),
                        format=KERAS_FORMATS[name],
                        verbose=False,
                        input_signature=[keras.InputSpec(shape=(None, *shape), dtype="float32")],
                    )
            except Exception as e:  # the converter's own failure: an op it does not know, say
                if isinstance(e, OSError) and e.errno in FAULTS:
                    raise  # a full disk: the export named, as any file nnrun writes (atomic_tree)
                raise RunFailed(f"{name}: the converter failed: {type(e).__name__}: {one_line(e, 300)}") from None
            stop.check()  # before it is kept: a stop during the converter keeps nothing
            got = _outputs(name, tmp, probes, keras)
            if got.shape != expected.shape:
                raise RunFailed(
                    f"{name}: the export gives outputs of shape {got.shape}, Keras {expected.shape}; it was not kept"
                )
            difference = float(np.max(np.abs(got - expected))) if got.size else 0.0
            # Relative where outputs are large (a regression in its target's units): float32 steps grow with them.
            if not np.all(np.abs(got - expected) <= TOLERANCE * np.maximum(1.0, np.abs(expected))):
                raise RunFailed(
                    f"{name}: the export's outputs differ from the Keras model's by up to {difference:.3g} "
                    f"(more than {TOLERANCE} of max(1, |output|)) on {len(probes)} inputs; it was not kept"
                )
        made.append(
            Exported(
                name,
                file=f"{runtimes.EXPORT}/{target.name}",
                sha256=atomic.sha256_file(target) if target.is_file() else None,
                max_abs_difference=float(difference),
                model_sha256=source,
                exported_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                versions={p: _version(p) for p in ("keras", *NEEDS[name][:1])},
            )
        )
        size = _size(target)
        # Recorded as soon as it is in place: a stop before the next format leaves run.json true.
        exports = record.read_info(run.path).exports
        kept = dict(zip(exports, record.plain(exports.values()), strict=True))
        record.update_info(run.path, exports={**kept, name: made[-1].to_json()})
        report.say(f"{name}: {target} ({size}); largest difference from Keras {difference:.1e} on {len(probes)} inputs")
    return made


def _without_augmentation(model, n, keras):
    """The model without its first `n` layers, the data's augmentation (Random*).

    They do nothing at inference, but their random ops stay in the traced
    graph, and converters such as tf2onnx do not know them.
    """
    if not n:
        return model
    if not all(type(layer).__name__.startswith("Random") for layer in model.layers[:n]):
        raise RunFailed(f"the model's first {n} layers are not the config's augmentation layers")
    return keras.Sequential([keras.Input(model.input_shape[1:]), *model.layers[n:]], name=model.name)


def _in_its_own_process(run_dir, formats):
    """`nnrun export` in a process on TensorFlow; its messages pass through, its failure is ours."""
    args = [sys.executable, "-m", "nnrun", "export", str(run_dir), *(a for name in formats for a in ("--format", name))]
    done = subprocess.run(
        args,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    sys.stderr.write(done.stderr)
    if done.returncode:
        lines = done.stderr.strip().splitlines()
        error = (RunFailed if done.returncode == 1 else ConfigError)(
            lines[-1].removeprefix("error: ") if lines else f"nnrun export exited with {done.returncode}"
        )
        error.exit_code = done.returncode
        raise error
    exports = record.read_info(run_dir).exports
    return [
        Exported.from_json(name, recorded)
        for name, recorded in zip(formats, record.plain(exports[name] for name in formats), strict=True)
    ]


def _probes(shape, preprocessing):
    """Inputs of the model's shape and of the scale its data has: pixels, or standardized columns."""
    rng = np.random.default_rng(0)
    if preprocessing.get("kind") == "images":
        return (rng.uniform(0, 255, (PROBES, *shape)) * (preprocessing.get("rescale") or 1)).astype("float32")
    return rng.normal(size=(PROBES, *shape)).astype("float32")


def _outputs(name, path, probes, keras):
    """What an export gives for `probes`."""
    try:
        if name == "saved_model":
            layer = keras.layers.TFSMLayer(str(path), call_endpoint="serve")
            got = keras.ops.convert_to_numpy(layer(probes))
        else:
            got = runtimes.open_export(name, path).predict(probes)
    except Exception as e:  # what the converter wrote does not load or run
        raise RunFailed(f"{name}: the export cannot be run: {one_line(e, 300)}; it was not kept") from None
    return np.asarray(got)


def _version(package):
    try:
        return importlib.metadata.version(package.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return None


def _size(path):
    total = (
        path.stat().st_size
        if path.is_file()
        else sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    )
    return f"{total / 1e6:.1f} MB" if total >= 1e5 else f"{total / 1e3:.1f} kB"
