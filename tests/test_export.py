"""`nnrun export` and the runtimes predict chooses: ONNX Runtime, LiteRT, Keras."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from nnrun.backend import keras
from nnrun.cli.main import cli

from conftest import copy_run
from trained_runs import COLOURS, Trained, churn_table, digit_arrays, make_image_folder, train

# Found, not imported: importing ONNX Runtime costs every collection time. Exports trace the model: compiled.
# On JAX an export runs in a process of its own: the JAX pass exports a JAX-trained model (every format,
# each runtime against Keras, an export at the end of training); the checks of export files, records and
# predict's choice of runtime cannot differ between backends and run in the TensorFlow pass only (any_backend).
pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("onnxruntime") is None, reason="the export extra: pip install 'nnrun[export]'"
    ),
    pytest.mark.compiled,
]


def export(runner, run, *formats):
    result = runner.invoke(cli, ["export", str(run), *(a for f in formats for a in ("--format", f))])
    assert result.exit_code == 0, result.output
    return json.loads((run / "run.json").read_text())["exports"]


def predicted(runner, run, inputs, runtime):
    result = runner.invoke(cli, ["predict", *map(str, inputs), "--run", str(run), "--json", "--runtime", runtime])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_same_predictions(fast, slow):
    assert [r["label"] for r in fast] == [r["label"] for r in slow]
    for a, b in zip(fast, slow, strict=True):
        for name, p in a["probabilities"].items():
            assert p == pytest.approx(b["probabilities"][name], abs=1e-5)


@pytest.fixture(scope="session")
def digits_exported(digits_run, tmp_path_factory):
    """A copy of the digits run (28x28 arrays) with all three exports."""
    from click.testing import CliRunner

    run = copy_run(digits_run.path, tmp_path_factory.mktemp("exported"))
    records = export(CliRunner(), run, "onnx", "litert", "saved_model")
    return run, records


def test_every_format_is_written_verified_and_recorded(digits_exported):
    run, records = digits_exported
    assert set(records) == {"onnx", "litert", "saved_model"}
    assert (run / "export" / "model.onnx").is_file() and (run / "export" / "model.tflite").is_file()
    assert (run / "export" / "saved_model" / "saved_model.pb").is_file()
    for record in records.values():
        assert 0 <= record["max_abs_difference"] <= 1e-4
    assert len(records["onnx"]["sha256"]) == 64 and not list((run / "export").glob(".*")), "no temporary files left"


def test_each_runtime_predicts_what_keras_predicts(runner, digits_exported, tmp_path):
    run, _ = digits_exported
    x, _ = digit_arrays(12, seed=5)
    np.save(tmp_path / "digits.npy", x)
    slow = predicted(runner, run, [tmp_path / "digits.npy"], "keras")
    for runtime in ("onnx", "litert"):
        fast = predicted(runner, run, [tmp_path / "digits.npy"], runtime)
        assert {r["runtime"] for r in fast} == {runtime}
        assert_same_predictions(fast, slow)
    assert {r["runtime"] for r in predicted(runner, run, [tmp_path / "digits.npy"], "auto")} == {"onnx"}


@pytest.mark.any_backend
def test_predict_through_an_export_never_imports_tensorflow_or_keras(digits_exported, tmp_path):
    run, _ = digits_exported
    np.save(tmp_path / "one.npy", digit_arrays(1, seed=3)[0][0])
    code = (
        "import sys; from nnrun.inference import predict; "
        f"found = predict.predict({str(run)!r}, [{str(tmp_path / 'one.npy')!r}]); "
        "print(found.runtime, found.rows[0]['label'], 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    runtime, _, tensorflow, keras = done.stdout.split()
    assert (runtime, tensorflow, keras) == ("onnx", "False", "False")


@pytest.mark.any_backend
def test_a_damaged_export_is_named_and_never_used(runner, digits_exported, tmp_path):
    run = copy_run(digits_exported[0], tmp_path / "runs")
    np.save(tmp_path / "one.npy", digit_arrays(1, seed=3)[0][0])
    onnx = run / "export" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-200])
    result = runner.invoke(cli, ["predict", str(tmp_path / "one.npy"), "--run", str(run)])
    assert result.exit_code == 2, result.output
    assert f"'{onnx}' is not the file that was exported" in result.stderr and "nnrun export" in result.stderr


@pytest.mark.any_backend
def test_an_export_of_an_earlier_model_is_not_used(runner, digits_exported, tmp_path):
    import keras

    run = copy_run(digits_exported[0], tmp_path / "runs")
    model = keras.models.load_model(run / "model.keras")
    model.set_weights([w * 1.01 for w in model.get_weights()])  # as a resume would leave it
    model.save(run / "model.keras")
    np.save(tmp_path / "one.npy", digit_arrays(1, seed=3)[0][0])
    auto = runner.invoke(cli, ["predict", str(tmp_path / "one.npy"), "--run", str(run), "--json"])
    assert auto.exit_code == 0, auto.output
    assert "has a onnx export, but it is of an earlier model.keras" in auto.stderr
    assert json.loads(auto.stdout)["runtime"] == "keras"
    asked = runner.invoke(cli, ["predict", str(tmp_path / "one.npy"), "--run", str(run), "--runtime", "onnx"])
    assert asked.exit_code == 2 and "the export is of an earlier model.keras" in asked.stderr


@pytest.mark.any_backend
def test_formats_are_recorded_as_each_is_kept(runner, digits_run, tmp_path, monkeypatch):
    from nnrun.errors import RunFailed
    from nnrun.inference import export as export_module

    if keras().backend.backend() != "tensorflow":
        pytest.skip("runs in the tensorflow pass: on JAX, export runs in a process of its own")

    run = copy_run(digits_run.path, tmp_path / "runs")
    real = export_module._outputs

    def litert_fails(name, *args):
        if name == "litert":
            raise RunFailed("litert: the export cannot be run: simulated; it was not kept")
        return real(name, *args)

    monkeypatch.setattr(export_module, "_outputs", litert_fails)
    result = runner.invoke(cli, ["export", str(run), "--format", "onnx", "--format", "litert"])
    assert result.exit_code == 1 and "litert: the export cannot be run" in result.stderr
    assert set(json.loads((run / "run.json").read_text())["exports"]) == {"onnx"}
    assert sorted(p.name for p in (run / "export").iterdir()) == ["model.onnx"], "nothing half-made is left"


@pytest.mark.any_backend
def test_a_reader_that_stops_early_ends_predict_quietly(digits_exported, tmp_path):
    np.save(tmp_path / "many.npy", np.repeat(digit_arrays(10, seed=3)[0], 300, axis=0))
    nnrun = [
        sys.executable,
        "-m",
        "nnrun",
        "predict",
        str(tmp_path / "many.npy"),
        "--run",
        str(digits_exported[0]),
        "--json",
    ]
    with subprocess.Popen(nnrun, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert json.loads(proc.stdout.readline())["runtime"] == "onnx"
        proc.stdout.close()  # as `| head -1` does
        assert proc.wait(timeout=120) == 141
        assert proc.stderr.read() == ""


@pytest.mark.any_backend
def test_a_strangers_run_directory_cannot_make_predict_fail_or_lie(runner, digits_exported, churn_run, tmp_path):
    np.save(tmp_path / "one.npy", digit_arrays(1, seed=3)[0][0])
    best = copy_run(digits_exported[0], tmp_path / "best")
    (best / "model.best.keras").write_bytes((best / "model.keras").read_bytes())
    asked = runner.invoke(
        cli, ["predict", str(tmp_path / "one.npy"), "--run", str(best), "--model", "best", "--runtime", "onnx"]
    )
    assert asked.exit_code == 2 and "the exports are of model.keras, not model.best.keras" in asked.stderr

    garbled = copy_run(digits_exported[0], tmp_path / "garbled")
    info = json.loads((garbled / "run.json").read_text())
    (garbled / "run.json").write_text(json.dumps({**info, "exports": "x"}))
    result = runner.invoke(cli, ["predict", str(tmp_path / "one.npy"), "--run", str(garbled)])
    assert result.exit_code == 2 and "run.json': exports" in result.stderr, result.output

    swapped = copy_run(digits_exported[0], tmp_path / "swapped")  # another run's model.onnx, its sha256 recorded
    other = copy_run(churn_run.path, tmp_path / "other")
    export(runner, other, "onnx")
    (swapped / "export" / "model.onnx").write_bytes((other / "export" / "model.onnx").read_bytes())
    info = json.loads((swapped / "run.json").read_text())
    info["exports"]["onnx"]["sha256"] = json.loads((other / "run.json").read_text())["exports"]["onnx"]["sha256"]
    (swapped / "run.json").write_text(json.dumps(info))
    result = runner.invoke(cli, ["predict", str(tmp_path / "one.npy"), "--run", str(swapped), "--runtime", "onnx"])
    assert result.exit_code == 2 and "preprocessing.json': input_shape [28, 28], but the model takes" in result.stderr


@pytest.mark.slow
@pytest.mark.any_backend
def test_a_regression_in_large_units_exports(runner, write_config, tmp_path):
    x = np.random.default_rng(1).normal(size=(80, 3)).astype("float32")
    np.savez(tmp_path / "prices.npz", x=x, y=200_000 + 50_000 * x[:, 0])  # outputs whose float32 steps exceed 1e-4
    config = write_config(
        data={"source": "npz", "path": str(tmp_path / "prices.npz")},
        model=[{"Dense": {"units": 4, "activation": "relu"}}, {"Dense": 1}],
        loss="mse",
        metrics=["mae"],
        training={"epochs": 1},
        output={"dir": str(tmp_path / "runs"), "export": ["onnx"]},
    )
    result = runner.invoke(cli, ["train", str(config)])
    assert result.exit_code == 0, result.output
    assert (
        json.loads((tmp_path / "runs" / "latest" / "run.json").read_text())["exports"]["onnx"]["max_abs_difference"] < 1
    )


@pytest.mark.any_backend
def test_a_csv_run_with_categories_exports_and_predicts_rows(runner, churn_run, tmp_path):
    run = copy_run(churn_run.path, tmp_path / "runs")
    export(runner, run, "onnx")
    rows = churn_table(n=15, seed=4).drop(columns=["left"])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    assert_same_predictions(
        predicted(runner, run, [tmp_path / "rows.csv"], "onnx"),
        predicted(runner, run, [tmp_path / "rows.csv"], "keras"),
    )
    # One row, cold, as a user runs it: the CSV is read and encoded with the csv module and NumPy.
    rows.head(1).to_csv(tmp_path / "one.csv", index=False)
    args = ["-X", "importtime", "-m", "nnrun", "predict", str(tmp_path / "one.csv"), "--run", str(run), "--json"]
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert json.loads(done.stdout)["runtime"] == "onnx" and "onnxruntime" in imported
    assert not imported & {"pandas", "sklearn", "scipy", "tensorflow", "keras", "jax"}


@pytest.fixture(scope="session")
def augmented_image_run(tmp_path_factory):
    """An image-folder run with augmentation layers, exported by its config's output.export."""
    folder = tmp_path_factory.mktemp("augmented")
    make_image_folder(folder / "images", {name: 8 for name in COLOURS})
    config = {
        "seed": 7,
        "data": {
            "source": "images",
            "path": str(folder / "images"),
            "image_size": [16, 16],
            "rescale": "1/255",
            "augmentation": [{"RandomFlip": "horizontal"}, {"RandomRotation": 0.2}],
        },
        "model": [
            {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
            "Flatten",
            {"Dense": {"units": 3, "activation": "softmax"}},
        ],
        "loss": "sparse_categorical_crossentropy",
        "training": {"epochs": 1, "batch_size": 8, "validation_split": 0},
        "output": {"dir": str(folder / "runs"), "export": ["onnx"]},
    }
    (folder / "augmented.yaml").write_text(yaml.safe_dump(config))
    return Trained(train(folder / "augmented.yaml"), folder, folder / "augmented.yaml")


def test_an_image_run_exported_at_the_end_of_training_predicts_files_without_its_augmentation(
    runner,
    augmented_image_run,
):
    run = augmented_image_run.path
    assert (run / "export" / "model.onnx").is_file(), "output.export: [onnx] exported it"
    files = sorted((augmented_image_run.data / "images").rglob("*.*"))
    assert_same_predictions(predicted(runner, run, files, "onnx"), predicted(runner, run, files, "keras"))


@pytest.mark.any_backend
def test_a_missing_converter_names_the_extra(runner, write_config, digits_run, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    result = runner.invoke(cli, ["export", str(copy_run(digits_run.path, tmp_path / "runs")), "--format", "onnx"])
    assert result.exit_code == 2, result.output
    assert "--format onnx: needs tf2onnx; pip install 'nnrun[export]'" in result.stderr
    checked = runner.invoke(cli, ["check", str(write_config(output={"export": ["onnx"]}))])
    assert checked.exit_code == 2 and "output.export: onnx: needs tf2onnx" in checked.stderr


@pytest.mark.any_backend
def test_without_its_runtime_predict_says_so_and_uses_keras(runner, digits_exported, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("onnxruntime", "ai_edge_litert") else real(name, *a),
    )
    np.save(tmp_path / "one.npy", digit_arrays(1, seed=3)[0][0])
    result = runner.invoke(cli, ["predict", str(tmp_path / "one.npy"), "--run", str(digits_exported[0]), "--json"])
    assert result.exit_code == 0, result.output
    assert "has a onnx export, but onnxruntime is not installed" in result.stderr
    assert json.loads(result.stdout)["runtime"] == "keras"


def test_a_format_list_in_the_config_is_checked(runner, write_config):
    result = runner.invoke(cli, ["check", str(write_config(output={"export": ["tflite"]}))])
    assert result.exit_code == 2 and "output.export" in result.stderr and "tflite" in result.stderr


def test_an_export_is_recorded_in_run_json_as_it_always_was():
    from nnrun.inference.export import Exported

    made = Exported("onnx", "export/model.onnx", "a" * 64, 1e-7, "b" * 64, "2026-12-07T06:00:00+0000", {"keras": "3"})
    recorded = made.to_json()
    assert list(recorded) == ["file", "sha256", "max_abs_difference", "model_sha256", "exported_at", "versions"]
    assert "format" not in recorded, "run.json names it by its key"
    assert Exported.from_json("onnx", recorded) == made, "read back from run.json (an export on JAX) as it was made"


def test_the_formats_are_named_alike_everywhere():
    from nnrun.cli import options
    from nnrun.config import schema as config
    from nnrun.inference import export as export_module
    from nnrun.inference import runtimes

    assert options.FORMATS == config.EXPORT_FORMATS == tuple(runtimes.FILES) == tuple(export_module.NEEDS)


def test_the_resolved_config_of_an_exporting_run_lists_its_formats(augmented_image_run):
    assert yaml.safe_load((augmented_image_run.path / "config.yaml").read_text())["output"]["export"] == ["onnx"]
