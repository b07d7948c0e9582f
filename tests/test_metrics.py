"""Keras's classification metrics on every label form: sparse or one-hot, binary or multi-class.

Per-class metrics (F1Score) reach history.csv, metrics.json and evaluate as a
value per class name and their macro average; the numbers agree with scikit-learn's.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from nnrun.cli.main import cli
from nnrun.rundir import files as rundir

MULTI = [
    "accuracy",
    "F1Score",
    {"name": "FBetaScore", "beta": 2.0},
    "Precision",
    "Recall",
    "AUC",
    {"name": "PrecisionAtRecall", "recall": 0.5},
    "TruePositives",
    "CategoricalAccuracy",
]
BINARY = ["accuracy", "F1Score", "FBetaScore", "precision", "Recall", "AUC", "FalseNegatives"]
IRIS = ["setosa", "versicolor", "virginica"]


def train(runner, write_config, **config):
    result = runner.invoke(cli, ["train", str(write_config(**config)), "--quiet"])
    assert result.exit_code == 0, result.output
    return result, Path(result.stdout.strip().splitlines()[-1])


def history_columns(run):
    with open(run / rundir.HISTORY) as f:
        return next(csv.reader(f))


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_every_metric_on_three_classes(runner, write_config, loss):
    result, run = train(runner, write_config, loss=loss, metrics=MULTI)
    test = json.loads((run / rundir.METRICS).read_text())["test"]
    for name in ("f1_score", "fbeta_score"):
        per_class = [test[f"{name}.{c}"] for c in IRIS]
        assert test[f"{name}_macro"] == pytest.approx(np.mean(per_class))
        assert all(0 <= v <= 1 for v in per_class)
    for name in ("precision", "recall", "auc", "precision_at_recall", "categorical_accuracy"):
        assert 0 <= test[name] <= 1, name
    assert test["categorical_accuracy"] == pytest.approx(test["accuracy"])
    columns = history_columns(run)
    assert {"f1_score.setosa", "f1_score_macro", "val_f1_score.virginica", "val_precision"} <= set(columns)
    if loss.startswith("sparse"):
        assert "the loss is categorical_crossentropy on them" in " ".join(result.output.split())
    scored = runner.invoke(cli, ["evaluate", str(run), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["metrics"]["f1_score.versicolor"] == pytest.approx(test["f1_score.versicolor"])


@pytest.mark.slow
def test_every_metric_on_one_sigmoid_unit_agrees_with_scikit_learn(runner, write_config):
    from sklearn.metrics import f1_score, precision_score, recall_score

    _, run = train(
        runner,
        write_config,
        data={"source": "sklearn", "name": "breast_cancer", "scale": "standard"},
        model=[{"Dense": {"units": 8, "activation": "relu"}}, {"Dense": {"units": 1, "activation": "sigmoid"}}],
        loss="binary_crossentropy",
        metrics=BINARY,
    )
    test = json.loads((run / rundir.METRICS).read_text())["test"]
    scored = runner.invoke(cli, ["evaluate", str(run), "--json"])
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.stdout)
    # evaluate's predictions give scikit-learn's view of the same test split
    confusion = np.array(report["confusion_matrix"])
    y = np.repeat([0, 0, 1, 1], confusion.ravel())
    predicted = np.repeat([0, 1, 0, 1], confusion.ravel())
    assert test["precision"] == pytest.approx(precision_score(y, predicted), abs=1e-4)
    assert test["recall"] == pytest.approx(recall_score(y, predicted), abs=1e-4)
    assert test["f1_score"] == pytest.approx(f1_score(y, predicted), abs=1e-4)
    assert test["false_negatives"] == confusion[1, 0]
    assert 0.5 < test["auc"] <= 1


# --- training.class_weight ----------------------------------------------------------------


def imbalanced(tmp_path, n=600, seed=0):
    """A binary set, one class in ten, the two overlapping: unweighted, a model mostly says 'common'."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    x = rng.normal(size=(n, 4)) + y[:, None] * 1.0
    path = tmp_path / "imbalanced.npz"
    np.savez(path, x=x.astype("float32"), y=y, class_names=np.array(["common", "rare"]))
    return path


def binary_config(write_config, path, **training):
    return write_config(
        data={"source": "npz", "path": str(path)},
        model=[{"Dense": {"units": 8, "activation": "relu"}}, {"Dense": {"units": 1, "activation": "sigmoid"}}],
        loss="binary_crossentropy",
        metrics=["accuracy", "Recall"],
        training={"epochs": 5, "batch_size": 32, "validation_split": 0, **training},
    )


def run_of(runner, config_file):
    result = runner.invoke(cli, ["train", str(config_file), "--quiet"])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_balanced_class_weight_is_recorded_and_finds_the_rare_class(runner, write_config, tmp_path):
    path = imbalanced(tmp_path)
    plain = run_of(runner, binary_config(write_config, path))
    weighted = run_of(runner, binary_config(write_config, path, class_weight="balanced"))
    info = json.loads((weighted / rundir.RUN).read_text())
    assert set(info["class_weight"]) == {"common", "rare"}
    assert info["class_weight"]["rare"] > 3 * info["class_weight"]["common"]  # about 9 common to 1 rare
    assert json.loads((plain / rundir.RUN).read_text())["class_weight"] is None
    assert "class_weight: balanced" in (weighted / rundir.CONFIG).read_text()
    recall = [json.loads((run / rundir.METRICS).read_text())["test"]["recall"] for run in (plain, weighted)]
    assert recall[1] > recall[0] + 0.2, recall


@pytest.mark.backend
@pytest.mark.parametrize(
    "weights, fragment",
    [
        ({"rar": 5}, "no class 'rar'; did you mean 'rare'?"),
        ({"rare": 0}, "the weight of class 'rare' must be a positive number; got 0"),
        ("balancd", "did you mean 'balanced'?"),
    ],
)
def test_class_weight_mistakes_are_one_line_at_check(runner, write_config, tmp_path, weights, fragment):
    result = runner.invoke(cli, ["check", str(binary_config(write_config, imbalanced(tmp_path), class_weight=weights))])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "training.class_weight" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.backend
def test_class_weight_on_a_regression_is_refused(runner, write_config, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "r.npz", x=rng.normal(size=(40, 3)).astype("float32"), y=rng.normal(size=40))
    config = write_config(
        data={"source": "npz", "path": str(tmp_path / "r.npz")},
        loss="mse",
        metrics=[],
        model=[{"Dense": {"units": 1}}],
        training={"class_weight": "balanced"},
    )
    result = runner.invoke(cli, ["check", str(config)])
    assert result.exit_code == 2 and "regression" in result.output, result.output


@pytest.mark.slow
def test_the_printed_tables_leave_per_class_values_to_the_files(runner, write_config):
    result = runner.invoke(cli, ["train", str(write_config(metrics=["accuracy", "F1Score"])), "--quiet"])
    assert result.exit_code == 0, result.output
    run = Path(result.stdout.strip().splitlines()[-1])
    shown = runner.invoke(cli, ["evaluate", str(run)])
    assert "f1_score_macro" in shown.stdout and "f1_score.setosa" not in shown.stdout, shown.stdout
    assert "per class: metrics.json" in shown.stdout
    assert "f1_score.setosa" in json.loads((run / rundir.METRICS).read_text())["test"]
