"""Run directory -> metrics: the saved model scored on the run's test split or other data.

Needs nothing but the run directory (and the data): never the training code.
Results go to `RUN_DIR/evaluation/<timestamp>/`, never over an earlier one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
from collections.abc import Iterable
from typing import Any

import numpy as np

from nnrun import atomic, data
from nnrun.config.sweep_section import lower_is_better
from nnrun.data import feeding
from nnrun.errors import BadInput, WriteFailed
from nnrun.inference import loading
from nnrun.rundir import files as rundir
from nnrun.rundir import record

EVALUATION = rundir.EVALUATION


@dataclasses.dataclass
class Evaluation:
    """What `evaluate` found; `to_json()` is its metrics.json and `nnrun evaluate --json`."""

    run: str  # the run directory
    run_status: str
    model: str  # the model file scored
    warning: str | None  # when the run is not a completed one
    data: str  # "test split", or the --data path
    data_changed: bool | None  # the data's fingerprint differs from the run's (None for --data)
    samples: int
    metrics: dict[str, float | None]  # loss and the model's metrics; None where not finite
    output_dir: str = ""  # RUN_DIR/evaluation/<timestamp>/
    # A classification's:
    classification_report: dict[str, Any] | None = None  # scikit-learn's, per class and averaged
    confusion_matrix: list[list[int]] | None = None
    class_names: list[str] | None = None
    roc_auc: float | None = None  # two classes only; None when the targets have one class
    samples_shown: list[dict[str, Any]] | None = None  # --show-samples: {"index", "true", "predicted"}
    # A regression's: mae, rmse, r2, mae_of_the_mean.
    regression: dict[str, float | None] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict: the fields set, in the order evaluate has always written them."""
        found: dict[str, Any] = {
            "run": self.run,
            "run_status": self.run_status,
            "model": self.model,
            **({"warning": self.warning} if self.warning else {}),
            "data": self.data,
            "data_changed": self.data_changed,
            "samples": self.samples,
            "metrics": self.metrics,
        }
        if self.class_names is not None:
            found["classification_report"] = self.classification_report
            found["confusion_matrix"] = self.confusion_matrix
            found["class_names"] = self.class_names
            if len(self.class_names) == 2:
                found["roc_auc"] = self.roc_auc
            if self.samples_shown is not None:
                found["samples_shown"] = self.samples_shown
        if self.regression is not None:
            found["regression"] = self.regression
        found["output_dir"] = self.output_dir
        return found


def evaluate(
    run_dir: str | os.PathLike[str],
    data_path: str | os.PathLike[str] | None = None,
    samples: int = 0,
    model_file: str = rundir.MODEL,
) -> Evaluation:
    """Scores a run's model.

    Args:
        run_dir: the run directory.
        model_file: which model: `rundir.MODEL`, or `rundir.BEST_MODEL`.
        data_path: other data of the run's kind (CSV, image folder, .npz);
            by default the run's test split, re-created from its config.
        samples: draw this many test images with their true and predicted labels.

    Returns:
        An `Evaluation`: the run, its status and the model file used; metrics (loss and the model's metrics), and for
        classification the classification report, confusion matrix and, for
        two classes, ROC AUC; where the results were written.
    """
    run = record.read(run_dir, model_file)
    rundir.check_own_folders(run.path)
    prep, batch_size = run.preprocessing, run.config.training.batch_size
    if samples and (len(prep["input_shape"]) not in (2, 3) or prep.get("class_names") is None):
        raise BadInput(f"--show-samples: the run's inputs are not images to draw (shape {tuple(prep['input_shape'])})")
    inference = feeding.inference_batch_size(batch_size)
    model = loading.load_model(run)
    if data_path is None:
        _check_data_there(run)
        training = run.config.training
        ds = data.load(
            run.config.data, training.validation_split, run.config.seed, batch_size, shuffle=False, fitted=prep
        )
        _check_recreated(ds, run)
        x, y = ds.x_test, ds.y_test
        changed = ds.fingerprint != run.info.data_fingerprint
    else:
        x, y = data.load_other(run.config.data, prep, data_path, batch_size)
        changed = None
    if len(y) == 0:
        raise BadInput(f"{data_path or 'the test split'}: no samples to evaluate")
    class_names = prep.get("class_names")
    form = feeding.label_form(prep.get("one_hot_labels"), class_names, model.output_shape[-1])
    scored = feeding.labels(x, y, len(class_names or ()), form)
    metrics = model.evaluate(**feeding.inputs(*scored, inference), verbose=0, return_dict=True)
    result = Evaluation(
        run=str(run.path),
        run_status=run.status,
        model=run.model,
        warning=run.warning(),
        data="test split" if data_path is None else str(data_path),
        data_changed=changed,
        samples=int(len(y)),
        metrics={k: _number(v) for k, v in feeding.scalars(metrics, class_names).items()},
    )
    first = not (run.path / EVALUATION).exists()
    out = rundir.create(run.path / EVALUATION, "evaluation", subfolders=())
    try:
        _write(result, model, x, y, out, inference, class_names, samples, run.path.resolve().name)
    except BaseException as e:
        shutil.rmtree(out, ignore_errors=True)  # an evaluation's folder is whole, or not there
        if first:
            with contextlib.suppress(OSError):  # unless another evaluation has begun in it since
                os.rmdir(run.path / EVALUATION)
        if isinstance(e, WriteFailed):
            raise e.advised("nothing of this evaluation was kept") from e
        raise
    return result


def _write(result, model, x, y, out, batch_size, class_names, samples, title):
    """Fills an evaluation's folder: its plots, then metrics.json with the rest of `result`."""
    from nnrun import plots  # matplotlib, once there is something to plot: a refused run never pays for it

    if class_names is not None:
        probabilities = model.predict(x, batch_size=batch_size, verbose=0)
        predicted = feeding.predicted_classes(probabilities)
        _classification(result, y, predicted, probabilities, class_names)
        plots.confusion_matrix(y, predicted, class_names, out / "confusion_matrix.png", f"{title}: {result.data}")
        if samples:
            result.samples_shown = _draw_samples(x, y, predicted, class_names, samples, out / "samples.png", title)
    else:
        predicted = model.predict(x, batch_size=batch_size, verbose=0).reshape(np.shape(y))
        result.regression = _regression(y, predicted)
        plots.regression(y, predicted, out / "predicted_vs_actual.png", f"{title}: {result.data}")
    result.output_dir = str(out)
    atomic.write_json(out / "metrics.json", result.to_json())


def _check_data_there(run):
    """Refuses, saying what to do, a run whose data has moved since it was trained (a copied run directory)."""
    path = getattr(run.config.data, "path", None)
    if path is not None and not os.path.exists(path):
        raise BadInput(
            f"{run.path}: its data is no longer at data.path '{path}' (config.yaml), so its test split cannot be "
            "re-created; put the data back there, or score other data with --data"
        )


def _check_recreated(ds, run):
    """Refuses a re-created test split, or classes, other than the run's own.

    An edited seed or test_split in config.yaml, or changed data, would
    otherwise be scored as if it were the run's test split. The run's own
    preprocessing.json prepares it: nothing is learned again.
    """
    recorded = run.info.splits.get("test")  # runs from before nnrun recorded it have none
    found = recorded.model_dump(mode="json", exclude_unset=True) if recorded else None
    if recorded and found != ds.splits["test"] and found not in ds.test_split_before():
        # nnrun 0.2 named image files by data.path as given: one through '..' only where training ran.
        older = recorded.paths is None and "paths" in ds.splits["test"]
        hint = "; a run nnrun 0.2 trained on a data.path with '..' in it, evaluate in the folder it was trained in"
        raise BadInput(
            f"{run.path}: the test split re-created from its config.yaml and data is not the one the run was tested on "
            f"({recorded.samples} samples then, {ds.splits['test']['samples']} now, other samples): the config or "
            "the data changed; score other data with --data" + (hint if older else "")
        )
    if ds.class_names != run.preprocessing.get("class_names"):
        raise BadInput(
            f"{run.path}: the data now has classes {ds.class_names}, the run was trained on "
            f"{run.preprocessing.get('class_names')}: the config or the data changed; score other data with --data"
        )


def parse_gates(fail_under: Iterable[str] = (), fail_over: Iterable[str] = ()) -> list[tuple[str, str, float]]:
    """Reads `--fail-under`/`--fail-over` options before any work is done.

    Args:
        fail_under: `metric=value` strings: the metric must be at least value.
        fail_over: `metric=value` strings: the metric must be at most value.

    Returns:
        A list of `(option, metric, threshold)`.
    """
    gates = []
    for option, items in (("--fail-under", fail_under), ("--fail-over", fail_over)):
        for item in items:
            name, _, threshold = item.partition("=")
            try:
                gates.append((option, name, float(threshold)))
            except ValueError:
                raise BadInput(f"{option} {item}: expected metric=number, e.g. accuracy=0.97") from None
            if lower_is_better(name) == (option == "--fail-under"):  # the gate would pass only the worse runs
                other, which = ("--fail-over", "lower") if option == "--fail-under" else ("--fail-under", "higher")
                raise BadInput(
                    f"{option} {item}: a {which} {name} is better, so this gate fails the better runs; "
                    f"use {other} {item}"
                )
    return gates


def gate(result: Evaluation, gates: Iterable[tuple[str, str, float]]) -> list[str]:
    """Checks quality gates against an evaluation.

    Args:
        result: what `evaluate` returned.
        gates: what `parse_gates` returned.

    Returns:
        One line per gate that failed; empty when all passed.
    """
    found = result.to_json()  # the names --json shows
    values = {
        **found["metrics"],
        **({"roc_auc": found["roc_auc"]} if "roc_auc" in found else {}),
        **found.get("regression", {}),
    }
    failures = []
    for option, name, threshold in gates:
        if name not in values:
            raise BadInput(f"{option} {name}={threshold:g}: no metric '{name}'; the evaluation has {', '.join(values)}")
        value = values[name]
        under = option == "--fail-under"
        if value is None or (value < threshold if under else value > threshold):
            shown = "not finite" if value is None else f"{value:.4f}"
            failures.append(f"{name} {shown} is {'below' if under else 'above'} {threshold:g} ({option})")
    return failures


def _classification(result, y, predicted, probabilities, class_names):
    """Sets the evaluation's classification report, confusion matrix and, for two classes, ROC AUC."""
    from sklearn.metrics import classification_report, confusion_matrix, roc_auc_score

    labels = list(range(len(class_names)))
    report = classification_report(
        y, predicted, labels=labels, target_names=class_names, output_dict=True, zero_division=0
    )
    result.classification_report = {
        k: ({m: _number(v) for m, v in r.items()} if isinstance(r, dict) else _number(r)) for k, r in report.items()
    }
    result.confusion_matrix = confusion_matrix(y, predicted, labels=labels).tolist()
    result.class_names = class_names
    if len(class_names) == 2:
        # ROC AUC needs both classes among the targets.
        positive = feeding.class_probabilities(probabilities)[:, 1]
        result.roc_auc = _number(roc_auc_score(y, positive)) if len(np.unique(y)) == 2 else None


def _regression(y, predicted):
    """scikit-learn's regression report, and what predicting the mean would score, for scale."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y = np.asarray(y, dtype="float64")
    baseline = np.broadcast_to(y.mean(axis=0), y.shape)
    return {
        "mae": _number(mean_absolute_error(y, predicted)),
        "rmse": _number(np.sqrt(mean_squared_error(y, predicted))),
        "r2": _number(r2_score(y, predicted)) if len(y) > 1 else None,
        "mae_of_the_mean": _number(mean_absolute_error(y, baseline)),
    }


def _draw_samples(x, y, predicted, class_names, n, path, title):
    """Draws n test samples, wrong predictions first, each kind taken across the classes in turn.

    Returns:
        What the grid shows, in its order: `{"index", "true", "predicted"}` per sample.
    """
    chosen = _across_classes(np.asarray(y), np.asarray(predicted), n)
    wanted, found, start = set(chosen), {}, 0
    for batch in x if feeding.is_stream(x) else [(x, None)]:  # a stream keeps the order of y
        batch = np.asarray(batch[0])
        found.update({start + i: batch[i] for i in range(len(batch)) if start + i in wanted})
        start += len(batch)
        if len(found) == len(wanted):
            break
    images = np.asarray([found[i] for i in chosen])
    if images.ndim not in (3, 4):
        raise BadInput(f"--show-samples: the inputs are not images (shape {images.shape[1:]} per sample)")
    shown = [{"index": int(i), "true": class_names[y[i]], "predicted": class_names[predicted[i]]} for i in chosen]
    from nnrun import plots

    plots.samples(images, [s["true"] for s in shown], [s["predicted"] for s in shown], path, title)
    return shown


def _across_classes(y, predicted, n):
    """Up to n sample indices: the wrong predictions, then the right ones, each round-robin over the true classes."""
    order: list[np.intp] = []
    for group in (np.flatnonzero(y != predicted), np.flatnonzero(y == predicted)):
        queues = [list(group[y[group] == c]) for c in np.unique(y[group])]
        while len(order) < n and any(queues):
            order += [queue.pop(0) for queue in queues if queue][: n - len(order)]
    return order


def _number(value):
    value = float(value)
    return value if math.isfinite(value) else None
