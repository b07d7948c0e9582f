"""`nnrun evaluate`: a run directory scored again, from nothing but itself and its data.

The runs it scores are trained once per session (tests/trained_runs.py).
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from nnrun.errors import BadInput
from nnrun.inference import evaluate

from trained_runs import PNG, churn_table, dense, invoke, make_image_folder, train

# --- helpers -----------------------------------------------------------------------------


def evaluate_json(*args, code=0):
    """`nnrun evaluate ... --json`: the result, and the one JSON object that is all of stdout."""
    result = invoke("evaluate", *args, "--json")
    assert result.exit_code == code, result.output
    assert result.stdout.count("\n") == 1, f"more than one JSON line on stdout:\n{result.stdout}"
    return result, json.loads(result.stdout)


def one_line_error(result, code=2):
    assert result.exit_code == code, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def read_json(path):
    return json.loads(Path(path).read_text())


def evaluations(run):
    folder = run / "evaluation"
    return set(folder.iterdir()) if folder.is_dir() else set()


def flat(text):
    """Text with rich's line wrapping undone."""
    return " ".join(text.split())


RUNS = ["iris_run", "churn_run", "image_run", "regression_run", "digits_run"]


# --- the run's own test split ------------------------------------------------------------


@pytest.mark.plots
@pytest.mark.slow
@pytest.mark.parametrize("name", RUNS)
def test_metrics_equal_the_runs_test_metrics(request, name):
    run = request.getfixturevalue(name).path
    images = name in ("image_run", "digits_run")  # an image folder, and (n, 28, 28) arrays
    _, found = evaluate_json(run, *(["--show-samples", 6] if images else []))
    expected = read_json(run / "metrics.json")["test"]
    assert found["metrics"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert found["data"] == "test split" and found["data_changed"] is False
    out = Path(found["output_dir"])
    assert out.parent == run / "evaluation"
    assert read_json(out / "metrics.json") == found
    assert (out / "samples.png").is_file() == images
    class_names = read_json(run / "preprocessing.json")["class_names"]
    kind = (
        ["classification_report", "confusion_matrix", "class_names"]
        + ["roc_auc"] * (len(class_names) == 2)
        + ["samples_shown"] * images
        if class_names is not None
        else ["regression"]
    )
    first = ["run", "run_status", "model", "data", "data_changed", "samples", "metrics"]
    assert list(found) == [*first, *kind, "output_dir"]  # the keys, in the order --json always had
    if class_names is None:
        assert not (out / "confusion_matrix.png").exists()
        assert not {"confusion_matrix", "classification_report", "roc_auc"} & set(found)
        return
    assert (out / "confusion_matrix.png").read_bytes().startswith(PNG)
    assert found["class_names"] == class_names
    matrix = np.array(found["confusion_matrix"])
    assert matrix.shape == (len(class_names), len(class_names)) and matrix.sum() == found["samples"]
    assert np.trace(matrix) / found["samples"] == pytest.approx(found["metrics"]["accuracy"], abs=1e-6)
    report = found["classification_report"]
    assert set(class_names) <= set(report) and report["accuracy"] == pytest.approx(found["metrics"]["accuracy"])
    assert sum(report[c]["support"] for c in class_names) == found["samples"]
    if len(class_names) == 2:
        assert 0.0 <= found["roc_auc"] <= 1.0
    else:
        assert "roc_auc" not in found


def test_screen_report_has_metrics_classes_confusion_matrix_and_the_failed_gate(iris_run):
    before = evaluations(iris_run.path)
    result = invoke("evaluate", iris_run.path, "--fail-under", "accuracy=1.5")
    assert result.exit_code == 3, result.output
    (made,) = evaluations(iris_run.path) - before
    assert f"saved in {made}\n" in result.stdout  # on one line, however long: a script or a paste takes it whole
    for text in (
        "accuracy",
        "loss",
        "classification report",
        "confusion matrix",
        "macro avg",
        "setosa",
        "versicolor",
        "virginica",
        "saved in",
    ):
        assert text in result.stdout, text
    assert "ROC AUC" not in result.stdout
    assert result.stderr.startswith("error: quality gate failed: accuracy") and "below 1.5" in result.stderr


@pytest.mark.plots
def test_a_copied_run_directory_evaluates_and_never_overwrites_an_evaluation(image_run, tmp_path):
    copy = tmp_path / "elsewhere" / "copied-run"
    shutil.copytree(image_run.path, copy)
    original = evaluations(image_run.path)
    before = evaluations(copy)
    _, first = evaluate_json(copy)
    assert first["run"] == str(copy) and Path(first["output_dir"]).parent == copy / "evaluation"
    assert first["metrics"] == pytest.approx(read_json(copy / "metrics.json")["test"], rel=1e-4, abs=1e-6)
    saved = {p.name: p.read_bytes() for p in Path(first["output_dir"]).iterdir()}
    assert sorted(saved) == ["confusion_matrix.png", "metrics.json"]
    _, second = evaluate_json(copy)
    assert evaluations(copy) - before == {Path(first["output_dir"]), Path(second["output_dir"])}
    assert {p.name: p.read_bytes() for p in Path(first["output_dir"]).iterdir()} == saved
    assert not [p for p in Path(second["output_dir"]).iterdir() if p.name.startswith(".")], "temporary files left"
    assert evaluations(image_run.path) == original


def test_show_samples_on_non_images_is_one_error_line(iris_run):
    line = one_line_error(invoke("evaluate", iris_run.path, "--show-samples", 6))
    assert "--show-samples" in line and "not images" in line


def test_failed_show_samples_leaves_no_half_written_evaluation(iris_run):
    before = evaluations(iris_run.path)
    assert invoke("evaluate", iris_run.path, "--show-samples", 6).exit_code == 2
    assert evaluations(iris_run.path) == before


# --- --json and quality gates --------------------------------------------------------------


def test_json_is_the_only_thing_on_stdout_even_when_a_gate_fails(churn_run):
    result, found = evaluate_json(churn_run.path, "--fail-under", "roc_auc=1.01", code=3)
    assert set(found) >= {
        "run",
        "data",
        "data_changed",
        "samples",
        "metrics",
        "classification_report",
        "confusion_matrix",
        "class_names",
        "roc_auc",
        "output_dir",
    }
    assert found["run"] == str(churn_run.path) and found["samples"] == 24
    assert f"roc_auc {found['roc_auc']:.4f} is below 1.01" in result.stderr


@pytest.mark.parametrize(
    "gates, failed",
    [
        (["--fail-under", "accuracy=0", "--fail-over", "loss=1e6"], []),
        (["--fail-under", "accuracy=1.01"], ["accuracy", "below 1.01 (--fail-under)"]),
        (["--fail-over", "loss=0"], ["loss ", "above 0 (--fail-over)"]),
        (["--fail-under", "accuracy=0", "--fail-over", "loss=0"], ["loss ", "above 0 (--fail-over)"]),
    ],
)
def test_gates_exit_3_when_a_metric_falls_short(iris_run, gates, failed):
    result, found = evaluate_json(iris_run.path, *gates, code=3 if failed else 0)
    if not failed:
        assert result.stderr == ""
        return
    message = result.stderr.strip()
    assert message.startswith("error: quality gate failed:") and len(message.splitlines()) == 1
    name = failed[0].split()[0]
    assert f"{name} {found['metrics'][name]:.4f} is {failed[1]}" in message
    assert message.count(" is ") == 1  # only the gate that failed


@pytest.mark.parametrize(
    "option, item, other",
    [
        ("--fail-under", "mae=5", "--fail-over"),
        ("--fail-under", "loss=0.3", "--fail-over"),
        ("--fail-over", "accuracy=0.9", "--fail-under"),
        ("--fail-over", "r2=0.7", "--fail-under"),
    ],
)
def test_a_gate_that_would_pass_only_worse_runs_is_refused_before_any_work(option, item, other):
    with pytest.raises(BadInput) as caught:
        evaluate.parse_gates(**{option.removeprefix("--").replace("-", "_"): [item]})
    assert str(caught.value).startswith(f"{option} {item}: a ") and str(caught.value).endswith(f"use {other} {item}")


def test_gates_the_right_way_round_are_read():
    found = evaluate.parse_gates(fail_under=["accuracy=0.9", "r2=0.5"], fail_over=["mae=5", "val_loss=0.2"])
    assert found == [
        ("--fail-under", "accuracy", 0.9),
        ("--fail-under", "r2", 0.5),
        ("--fail-over", "mae", 5.0),
        ("--fail-over", "val_loss", 0.2),
    ]


@pytest.mark.parametrize(
    "gate, fragment",
    [
        (["--fail-under", "acc=0.9"], "no metric 'acc'"),
        (["--fail-under", "accuracy"], "expected metric=number"),
        (["--fail-over", "loss=high"], "expected metric=number"),
    ],
)
def test_unknown_or_malformed_gate_exits_2(iris_run, gate, fragment):
    line = one_line_error(invoke("evaluate", iris_run.path, *gate))
    assert fragment in line and gate[0] in line
    if "no metric" in fragment:
        assert "accuracy" in line and "loss" in line  # what there is to choose from


def test_a_non_finite_metric_fails_the_gate(regression_run, tmp_path):
    x = np.full((5, 3), 1e30, dtype="float32")  # predictions ~1e30: their squares overflow float32
    np.savez(tmp_path / "huge.npz", x=x, y=np.ones(5, dtype="float32"))
    result = invoke("evaluate", regression_run.path, "--data", tmp_path / "huge.npz", "--fail-over", "loss=1")
    assert result.exit_code == 3, result.output
    assert "loss" in result.stderr


# --- --data: other data of the run's kind ----------------------------------------------------


def test_data_csv_with_shuffled_and_extra_columns_agrees_with_predict(churn_run, tmp_path):
    from sklearn.metrics import roc_auc_score

    table = churn_table(40, seed=5)
    path = tmp_path / "other.csv"
    table[["left", "city", "balance", "id", "age"]].assign(note="extra").to_csv(path, index=False)
    _, found = evaluate_json(churn_run.path, "--data", path)
    assert found["data"] == str(path) and found["samples"] == 40 and found["data_changed"] is None
    predicted = invoke("predict", path, "--run", churn_run.path, "--json")
    assert predicted.exit_code == 0, predicted.output
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    labels = np.array([int(r["label"]) for r in rows])
    assert found["metrics"]["accuracy"] == pytest.approx((labels == table["left"]).mean(), abs=1e-6)
    assert found["roc_auc"] == pytest.approx(
        roc_auc_score(table["left"], [r["probabilities"]["1"] for r in rows]), abs=1e-6
    )


@pytest.mark.plots
def test_data_image_folder_with_its_own_test_split_and_fewer_classes(image_run, tmp_path):
    root = tmp_path / "other"
    make_image_folder(root / "train", {"cat": 3, "owl": 3})
    make_image_folder(root / "test", {"cat": 2, "owl": 3})
    _, found = evaluate_json(image_run.path, "--data", root)
    assert found["samples"] == 5 and found["class_names"] == ["cat", "dog", "owl"]
    matrix = np.array(found["confusion_matrix"])
    assert matrix.sum(axis=1).tolist() == [2, 0, 3]  # true classes, by the run's names
    assert (Path(found["output_dir"]) / "confusion_matrix.png").is_file()


def test_data_npz_uses_its_test_arrays_and_agrees_with_predict(regression_run, tmp_path):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(30, 3)).astype("float32")
    y = x @ np.array([1.0, -2.0, 0.5], dtype="float32")
    np.savez(tmp_path / "other.npz", x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:])
    _, found = evaluate_json(regression_run.path, "--data", tmp_path / "other.npz")
    assert found["samples"] == 10
    np.save(tmp_path / "x_test.npy", x[20:])
    predicted = invoke("predict", tmp_path / "x_test.npy", "--run", regression_run.path, "--json")
    assert predicted.exit_code == 0, predicted.output
    values = np.array([json.loads(line)["value"] for line in predicted.stdout.splitlines()])
    assert found["metrics"]["mae"] == pytest.approx(np.abs(values - y[20:]).mean(), rel=1e-4)
    assert found["metrics"]["loss"] == pytest.approx(((values - y[20:]) ** 2).mean(), rel=1e-4)


def test_data_npz_with_class_names_for_a_named_class_run(iris_run, tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris()
    np.savez(tmp_path / "iris.npz", x=iris.data, y=iris.target, class_names=iris.target_names)
    _, found = evaluate_json(iris_run.path, "--data", tmp_path / "iris.npz")
    assert found["samples"] == 150 and np.array(found["confusion_matrix"]).sum(axis=1).tolist() == [50, 50, 50]


def test_data_npz_with_integer_labels_for_a_named_class_run(iris_run, tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris()
    np.savez(tmp_path / "iris.npz", x=iris.data, y=iris.target)
    _, found = evaluate_json(iris_run.path, "--data", tmp_path / "iris.npz")
    assert found["samples"] == 150


def test_data_npz_of_the_wrong_shape_is_bad_input(regression_run, tmp_path):
    np.savez(tmp_path / "wide.npz", x=np.zeros((4, 5), dtype="float32"), y=np.zeros(4, dtype="float32"))
    line = one_line_error(invoke("evaluate", regression_run.path, "--data", tmp_path / "wide.npz"))
    assert "wide.npz" in line


def test_data_csv_missing_a_column_names_it_and_the_file(churn_run, tmp_path):
    path = tmp_path / "no_age.csv"
    churn_table(20).drop(columns="age").to_csv(path, index=False)
    line = one_line_error(invoke("evaluate", churn_run.path, "--data", path))
    assert "'age'" in line and str(path) in line


@pytest.mark.slow  # parametrized by trained runs (request.getfixturevalue)
@pytest.mark.parametrize(
    "run_name, make, place, fragment",
    [
        ("churn_run", lambda d: d / "missing.csv", "--data", "does not exist"),
        ("churn_run", lambda d: (d / "x.parquet").write_text("a,b\n1,2\n") and d / "x.parquet", "--data", "Parquet"),
        (
            "churn_run",
            lambda d: churn_table(10).drop(columns="left").to_csv(d / "x.csv", index=False) or d / "x.csv",
            "data.target",  # the run's own column, as its config names it
            "no column 'left'",
        ),
        (
            "image_run",
            lambda d: churn_table(10).to_csv(d / "x.csv", index=False) or d / "x.csv",
            "--data",
            "not a folder",
        ),
        (
            "regression_run",
            lambda d: np.save(d / "x.npy", np.zeros((3, 3))) or d / "x.npy",
            "--data",
            "single .npy array",
        ),
    ],
)
def test_bad_data_is_one_error_line_naming_the_option_and_the_file(request, tmp_path, run_name, make, place, fragment):
    path = make(tmp_path)
    line = one_line_error(invoke("evaluate", request.getfixturevalue(run_name).path, "--data", path))
    assert line.startswith(f"error: {place}") and str(path) in line and fragment in line, line


# --- the run directory alone ------------------------------------------------------------------


@pytest.mark.slow
def test_data_changed_since_training_is_reported(write_config, tmp_path, monkeypatch):
    path = tmp_path / "table.csv"
    churn_table(60).to_csv(path, index=False)
    config = write_config(
        data={"source": "csv", "path": str(path), "target": "left", "drop": ["id"]},
        model=dense(1, last="sigmoid"),
        loss="binary_crossentropy",
        training={"epochs": 1, "batch_size": 16, "validation_split": 0},
    )
    run = train(config)
    result, same = evaluate_json(run)
    assert same["data_changed"] is False and result.stderr == ""
    changed = churn_table(60)
    changed["balance"] += 1.0  # the same rows, other values: scaling learned again would differ
    changed.to_csv(path, index=False)
    # Scored with the run's own preprocessing.json, as the model saw its inputs: nothing is learned again.
    from nnrun.data import csv_table

    def refit(*args):
        raise AssertionError("evaluate learned the preprocessing again")

    monkeypatch.setattr(csv_table, "fit", refit)
    result, scored = evaluate_json(run)
    assert scored["data_changed"] is True and "changed" in result.stderr, result.output
    assert scored["samples"] == same["samples"]
    # Scoring it as other data is what --data is for; it is prepared with the run's own preprocessing.
    _, other = evaluate_json(run, "--data", path)
    assert other["data"] == str(path) and other["samples"] == 60


def test_an_edited_seed_or_split_is_refused_not_scored(churn_run, tmp_path):
    for key, value in (("seed", 12345), ("test_split", 0.3)):
        copy = tmp_path / f"edited-{key}"
        shutil.copytree(churn_run.path, copy)
        config = yaml.safe_load((copy / "config.yaml").read_text())
        (config if key == "seed" else config["data"])[key] = value
        (copy / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        result = invoke("evaluate", copy)
        assert result.exit_code == 2, result.output
        assert "the test split re-created from its config.yaml and data is not the one the run was tested on" in flat(
            result.stderr
        )


def test_a_run_whose_data_has_moved_says_to_put_it_back_or_use_data(churn_run, tmp_path):
    copy = tmp_path / "copied"
    shutil.copytree(churn_run.path, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["data"]["path"] = str(tmp_path / "moved" / "churn.csv")  # as on another machine
    (copy / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    line = one_line_error(invoke("evaluate", copy))
    assert line == (
        f"error: {copy}: its data is no longer at data.path '{tmp_path / 'moved' / 'churn.csv'}' (config.yaml), so "
        "its test split cannot be re-created; put the data back there, or score other data with --data"
    )


def test_the_original_config_file_is_not_needed(churn_run):
    assert read_json(churn_run.path / "run.json")["config_file"] == str(churn_run.config_file)
    churn_run.config_file.unlink(missing_ok=True)
    _, found = evaluate_json(churn_run.path)
    assert found["metrics"] == pytest.approx(read_json(churn_run.path / "metrics.json")["test"], rel=1e-4)


def test_model_is_loaded_in_safe_mode(iris_run, tmp_path):
    import keras

    copy = tmp_path / "tampered"
    shutil.copytree(iris_run.path, copy)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2), keras.layers.Dense(3, activation="softmax")]
    )
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(copy / "model.keras")
    line = one_line_error(invoke("evaluate", copy))
    assert str(copy / "model.keras") in line and "cannot be loaded" in line and "Lambda" in line


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda d: d / "nowhere", "does not exist"),
        (lambda d: d, "not a run directory: no run.json"),
        (
            lambda d: (d / "run.json").write_text('{"status": "failed", "error": "training diverged"}') and d,
            "has no model.keras: the run is failed (training diverged)",
        ),
    ],
)
def test_a_directory_that_is_no_usable_run_exits_2(tmp_path, make, fragment):
    path = make(tmp_path)
    line = one_line_error(invoke("evaluate", path))
    assert fragment in line and str(path) in line


def _relative_csv(project):
    churn_table(60).to_csv(project / "table.csv", index=False)
    return {"source": "csv", "path": "table.csv", "target": "left", "drop": ["id"]}, 2


def _relative_images(project):
    make_image_folder(project / "photos" / "images", {"cat": 4, "dog": 4})
    return {"source": "images", "path": "./photos/images", "image_size": [8, 8]}, 2


def _relative_npz(project):
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    (project / "arrays").mkdir()
    np.savez(project / "arrays" / "xy.npz", x=x, y=(x[:, 0] > 0).astype("int64"))
    return {"source": "npz", "path": "arrays/../arrays/xy.npz"}, 2


@pytest.mark.slow
@pytest.mark.any_backend  # how a split is recorded cannot differ between backends
@pytest.mark.parametrize("make", [_relative_csv, _relative_images, _relative_npz], ids=["csv", "images", "npz"])
def test_a_run_trained_with_a_relative_data_path_evaluates_from_elsewhere(tmp_path, monkeypatch, make):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    data, classes = make(project)
    (project / "rel.yaml").write_text(
        yaml.safe_dump(
            {
                "seed": 7,
                "data": data,
                "model": ["Flatten", {"Dense": {"units": classes, "activation": "softmax"}}],
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
                "training": {"epochs": 1, "validation_split": 0},
                "output": {"dir": "runs"},
            }
        )
    )
    monkeypatch.chdir(project)
    run = train("rel.yaml").resolve()
    monkeypatch.chdir(elsewhere)  # config.yaml has the data's absolute path; the split names files relative to it
    _, found = evaluate_json(run)
    assert found["data_changed"] is False
    assert found["metrics"] == pytest.approx(read_json(run / "metrics.json")["test"], rel=1e-4, abs=1e-6)


@pytest.mark.any_backend
def test_an_image_run_recorded_by_nnrun_0_2_still_evaluates(image_run, tmp_path, monkeypatch):
    """nnrun 0.2 recorded an image run's test split by its files' paths as training was given the folder."""
    import importlib

    from nnrun import data
    from nnrun.data import image_folder
    from nnrun.rundir.files import read_config

    prepare = importlib.import_module("nnrun.data.prepare")  # the package's `prepare` is its function
    copy = shutil.copytree(image_run.path, tmp_path / "runs" / "old")
    config = read_config(copy)
    folder, own = config.data.path, prepare._split_id  # config.yaml: the folder's absolute path

    def trained(where, named):
        """The copy's run.json as nnrun 0.2 recorded it, trained in `where` on `data.path: named`."""
        where.mkdir(exist_ok=True)
        monkeypatch.chdir(where)
        with monkeypatch.context() as m:
            m.setattr(prepare, "_split_id", lambda x, y, root=None: own(x, y))  # the paths as read
            m.setattr(image_folder, "feed", lambda *args: None)
            section = config.data.model_copy(update={"path": Path(named)})
            test = data.load(section, config.training.validation_split, config.seed).splits["test"]
        info = read_json(copy / "run.json")
        (copy / "run.json").write_text(json.dumps({**info, "splits": {**info["splits"], "test": test}}))
        monkeypatch.chdir(tmp_path)  # evaluated elsewhere

    trained(folder.parent, folder.name)
    _, found = evaluate_json(copy)
    assert found["data_changed"] is False
    # A data.path through '..' is known again only where training ran.
    trained(tmp_path / "beside", os.path.relpath(folder, tmp_path / "beside"))
    line = one_line_error(invoke("evaluate", copy))
    assert "other samples" in line and "data.path with '..' in it, evaluate in the folder it was trained in" in line


@pytest.mark.plots
def test_a_regression_gets_mae_rmse_r2_and_its_plots(regression_run):
    from PIL import Image

    _, found = evaluate_json(regression_run.path)
    report = found["regression"]
    assert report["rmse"] >= report["mae"] > 0 and report["mae_of_the_mean"] > 0
    assert report["r2"] <= 1
    assert found["metrics"]["mae"] == pytest.approx(report["mae"], rel=1e-4)  # Keras's and scikit-learn's agree
    plot = Path(found["output_dir"]) / "predicted_vs_actual.png"
    with Image.open(plot) as image:
        assert image.size[0] > 500
    table = invoke("evaluate", regression_run.path)
    assert "MAE of predicting the mean" in table.stdout and "R²" in table.stdout, table.output
    passed = invoke("evaluate", regression_run.path, "--fail-under", f"r2={report['r2'] - 0.01}")
    failed = invoke("evaluate", regression_run.path, "--fail-under", f"r2={report['r2'] + 0.01}")
    assert passed.exit_code == 0 and failed.exit_code == 3, (passed.output, failed.output)


def test_show_samples_puts_wrong_predictions_first_and_spreads_over_the_classes(image_run):
    _, found = evaluate_json(image_run.path, "--show-samples", 12)
    shown, matrix = found["samples_shown"], np.array(found["confusion_matrix"])
    assert len(shown) == found["samples"] == 5  # fewer than asked: every test image
    flags = [s["true"] != s["predicted"] for s in shown]
    assert flags == sorted(flags, reverse=True) and sum(flags) == int(matrix.sum() - np.trace(matrix))  # wrong first
    for group in ([s for s in shown if s["true"] != s["predicted"]], [s for s in shown if s["true"] == s["predicted"]]):
        classes = {s["true"] for s in group}
        assert len({s["true"] for s in group[: len(classes)]}) == len(classes)  # one of each class in turn


def test_preprocessing_written_by_a_newer_nnrun_is_refused_not_misread(iris_run, tmp_path):
    copy = tmp_path / "newer"
    shutil.copytree(iris_run.path, copy)
    prep = read_json(copy / "preprocessing.json")
    assert prep["version"] == 1
    (copy / "preprocessing.json").write_text(json.dumps({**prep, "version": 2}))
    line = one_line_error(invoke("evaluate", copy))
    assert "version 2, written by a newer nnrun (this one reads version 1); upgrade nnrun" in line
