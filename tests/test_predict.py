"""`nnrun predict`: raw images, CSV rows and .npy arrays through a saved run, bad ones listed.

The tiny runs are trained once per session (tests/trained_runs.py).
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from trained_runs import (
    COLOURS,
    DIGITS,
    churn_table,
    digit_arrays,
    invoke,
    make_image,
)

# Files of odd sizes and every common mode, for a model that takes 28x28 grayscale.
ODD_IMAGES = [
    ("rgb.png", "RGB", (50, 30)),
    ("rgba.png", "RGBA", (31, 77)),
    ("gray.png", "L", (28, 28)),
    ("palette.png", "P", (13, 13)),
    ("gray_alpha.png", "LA", (40, 20)),
    ("bilevel.png", "1", (29, 31)),
    ("photo.jpg", "RGB", (64, 48)),
    ("gray.jpeg", "L", (17, 90)),
    ("bitmap.bmp", "RGB", (30, 50)),
    ("still.gif", "P", (45, 12)),
]


def predict_json(*args, code=0):
    """`nnrun predict ... --json`: the result and its JSON lines, every stdout line one of them."""
    result = invoke("predict", *args, "--json")
    assert result.exit_code == code, result.output
    return result, [json.loads(line) for line in result.stdout.splitlines()]


def by_input(rows):
    return {Path(r["input"]).name: r for r in rows}


def assert_classes(row, class_names, k):
    """A classification row: the top-k classes by name, most probable first, label the first."""
    top = row["top"]
    assert len(top) == k and {t["class"] for t in top} <= set(class_names)
    probabilities = [t["probability"] for t in top]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probabilities) and sum(probabilities) <= 1.0 + 1e-5
    assert row["label"] == top[0]["class"] and row["probability"] == top[0]["probability"]


def failures(result):
    """The inputs the error lines on stderr name, and the summary line."""
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("error: ") for line in lines), result.stderr
    assert "Traceback" not in result.output
    return [line.removeprefix("error: ") for line in lines[:-1]], lines[-1]


# --- images -------------------------------------------------------------------------------


def test_images_of_any_size_and_mode_become_what_the_model_takes(digits_run, tmp_path):
    for name, mode, size in ODD_IMAGES:
        make_image(tmp_path / name, (90, 160, 220), size, mode)
    result, rows = predict_json(tmp_path, "--run", digits_run.path)
    assert sorted(by_input(rows)) == sorted(name for name, _, _ in ODD_IMAGES)
    for row in rows:
        assert_classes(row, DIGITS, 3)
    assert result.stderr == ""


def test_an_image_is_converted_exactly_as_the_training_arrays(digits_run, tmp_path):
    x, _ = digit_arrays(3, seed=11)
    np.save(tmp_path / "arrays.npy", x)  # the raw uint8 arrays, as in the .npz the run trained on
    gray = Image.fromarray(x[0])
    gray.save(tmp_path / "gray.png")
    gray.convert("RGB").save(tmp_path / "rgb.png")
    gray.convert("RGBA").save(tmp_path / "rgba.png")
    gray.resize((56, 56), Image.NEAREST).save(tmp_path / "big.png")  # resized back to 28x28
    inverted = Image.fromarray(255 - x[0])
    gray.save(tmp_path / "animated.gif", save_all=True, append_images=[inverted])  # only the first frame counts
    _, rows = predict_json(tmp_path, "--run", digits_run.path, "--top-k", 10)
    found = by_input(rows)
    assert sorted(found) == [
        "animated.gif",
        "arrays.npy[0]",
        "arrays.npy[1]",
        "arrays.npy[2]",
        "big.png",
        "gray.png",
        "rgb.png",
        "rgba.png",
    ]

    def probabilities(name):
        return np.array([t["probability"] for t in sorted(found[name]["top"], key=lambda t: int(t["class"]))])

    expected = probabilities("gray.png")
    for name in ("rgb.png", "rgba.png", "animated.gif", "big.png"):
        assert probabilities(name) == pytest.approx(expected, abs=1e-6), name
    # Files are read as RGB and made gray again (0.2989 R + 0.587 G + 0.114 B): as good as the array.
    assert expected == pytest.approx(probabilities("arrays.npy[0]"), abs=1e-4)
    assert probabilities("arrays.npy[1]") != pytest.approx(expected, abs=1e-4)


def test_image_folder_run_reports_top_k_classes_by_name(image_run, tmp_path):
    files = [
        make_image(tmp_path / "a.png", COLOURS["cat"], (70, 9), "RGBA"),
        make_image(tmp_path / "b.jpg", COLOURS["owl"], (16, 16), "L"),
        make_image(tmp_path / "c.bmp", COLOURS["dog"], (5, 40), "RGB"),
    ]
    for k, expected in ((None, 3), (1, 1), (2, 2), (10, 3)):
        _, rows = predict_json(*files, "--run", image_run.path, *(["--top-k", k] if k else []))
        assert [Path(r["input"]).name for r in rows] == ["a.png", "b.jpg", "c.bmp"]
        for row in rows:
            assert_classes(row, list(COLOURS), expected)


def test_files_folders_and_globs_in_one_call(image_run, tmp_path):
    folder = tmp_path / "batch"
    make_image(folder / "one.png", COLOURS["cat"])
    make_image(folder / "nested" / "two.JPG", COLOURS["dog"])
    make_image(folder / ".hidden.png", COLOURS["dog"])  # hidden: skipped
    (folder / "notes.txt").write_text("not an input")  # skipped in a folder
    make_image(tmp_path / "loose" / "three.gif", COLOURS["owl"], mode="P")
    make_image(tmp_path / "loose" / "four.bmp", COLOURS["owl"])
    _, rows = predict_json(
        folder,
        str(tmp_path / "loose" / "*.gif"),
        tmp_path / "loose" / "four.bmp",
        folder / "one.png",
        "--run",
        image_run.path,
    )
    assert [Path(r["input"]).name for r in rows] == ["two.JPG", "one.png", "three.gif", "four.bmp"]  # each once


def test_table_output_names_inputs_and_classes(image_run, tmp_path, monkeypatch):
    make_image(tmp_path / "cat.png", COLOURS["cat"])
    monkeypatch.chdir(tmp_path)  # a short name: CliRunner's console is 80 columns wide
    result = invoke("predict", "cat.png", "--run", image_run.path)
    assert result.exit_code == 0, result.output
    assert "predictions of" in result.stdout and "cat.png" in result.stdout
    assert any(name in result.stdout for name in COLOURS) and result.stderr == ""


# --- CSV rows ---------------------------------------------------------------------------------


def test_csv_rows_with_shuffled_and_extra_columns(churn_run, tmp_path):
    table = churn_table(6, seed=3)
    plain = tmp_path / "plain.csv"
    table[["age", "balance", "city"]].to_csv(plain, index=False)
    messy = tmp_path / "messy.csv"
    table[["city", "left", "balance", "id", "age"]].assign(comment="vip").to_csv(messy, index=False)
    result, rows = predict_json(plain, messy, "--run", churn_run.path)
    assert len(rows) == 12
    assert [r["input"] for r in rows[:6]] == [f"{plain}:{line}" for line in range(2, 8)]  # file:line
    assert [r["probability"] for r in rows[:6]] == pytest.approx([r["probability"] for r in rows[6:]], abs=1e-6)
    notes = " ".join(result.stderr.split())
    assert f"{messy}: ignored columns the model does not take: left, id, comment" in notes
    assert str(plain) not in notes


def test_csv_output_file_with_an_id_column(churn_run, tmp_path):
    table = churn_table(5, seed=4)
    table["id"] = [f"c-{i}" for i in range(100, 105)]
    table.to_csv(tmp_path / "rows.csv", index=False)
    output = tmp_path / "preds.csv"
    _, rows = predict_json(tmp_path / "rows.csv", "--run", churn_run.path, "--id-column", "id", "--output", output)
    assert [r["id"] for r in rows] == table["id"].tolist()
    written = pd.read_csv(output, dtype={"label": str})
    assert written["id"].tolist() == table["id"].tolist()
    assert set(written["label"]) <= {"0", "1"}
    assert written["probability"].tolist() == pytest.approx([r["probability"] for r in rows])
    assert written["probability.1"].tolist() == pytest.approx([r["probabilities"]["1"] for r in rows])
    assert (written["probability.0"] + written["probability.1"]).tolist() == pytest.approx([1.0] * 5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left"


def test_threshold_decides_the_binary_label(churn_run, tmp_path):
    churn_table(8, seed=6).to_csv(tmp_path / "rows.csv", index=False)
    labels = {}
    for threshold in (None, 0.0, 1.0):
        _, rows = predict_json(
            tmp_path / "rows.csv",
            "--run",
            churn_run.path,
            *(["--threshold", threshold] if threshold is not None else []),
        )
        assert all("top" not in r and 0.0 < r["probability"] < 1.0 for r in rows)
        assert all(sum(r["probabilities"].values()) == pytest.approx(1.0) for r in rows)
        labels[threshold] = [r["label"] for r in rows]
        if threshold is None:
            assert labels[None] == ["1" if r["probabilities"]["1"] >= 0.5 else "0" for r in rows]
            assert all(r["probability"] == r["probabilities"][r["label"]] >= 0.5 for r in rows)
    assert labels[0.0] == ["1"] * 8 and labels[1.0] == ["0"] * 8


def test_a_missing_csv_column_is_named(churn_run, tmp_path):
    path = tmp_path / "no_city.csv"
    churn_table(4)[["age", "balance"]].to_csv(path, index=False)
    result = invoke("predict", path, "--run", churn_run.path)
    assert result.exit_code == 2, result.output
    (failed,), summary = failures(result)
    assert failed.startswith(f"{path}: ") and "no column 'city'" in failed
    assert summary == "error: 1 of 1 inputs could not be predicted" and result.stdout == ""


@pytest.mark.any_backend  # reading inputs and saying what became of them
def test_every_missing_csv_column_is_named_at_once(churn_run, tmp_path):
    path = tmp_path / "balance_only.csv"
    churn_table(4)[["balance"]].assign(Age=1).to_csv(path, index=False)
    result = invoke("predict", path, "--run", churn_run.path)
    (failed,), _ = failures(result)
    assert (
        failed
        == f"{path}: the input has no columns 'age' (did you mean 'Age'?), 'city'; the model takes age, balance, city"
    )


@pytest.mark.any_backend
def test_a_csv_gz_is_read_as_training_reads_it(churn_run, tmp_path):
    table = churn_table(6, seed=3)
    table.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "gz").mkdir()
    table.to_csv(tmp_path / "gz" / "rows.csv.gz", index=False, sep=";")  # its separator sniffed inside
    _, plain = predict_json(tmp_path / "rows.csv", "--run", churn_run.path)
    _, packed = predict_json(tmp_path / "gz", "--run", churn_run.path)  # a folder's .csv.gz is taken too
    assert [r["input"] for r in packed] == [f"{tmp_path / 'gz' / 'rows.csv.gz'}:{line}" for line in range(2, 8)]
    assert [r["probability"] for r in packed] == pytest.approx([r["probability"] for r in plain], abs=1e-6)
    assert [r["label"] for r in packed] == [r["label"] for r in plain]


@pytest.mark.any_backend
def test_rows_with_missing_values_are_named_by_their_line(churn_run, tmp_path):
    table = churn_table(8, seed=2).astype({"age": "float64"})
    table.loc[[1, 4, 6], "age"] = np.nan
    table.loc[2, "city"] = "Rome"
    table.to_csv(tmp_path / "gaps.csv", index=False)
    result, rows = predict_json(tmp_path / "gaps.csv", "--run", churn_run.path)
    warnings = " ".join(result.stderr.split())
    path = tmp_path / "gaps.csv"
    assert f"warning: {path}: column 'age': 3 rows missing, filled as in training (lines 3, 6, 8)" in warnings
    assert f"warning: {path}: column 'city': 1 row with a category never seen in training, encoded" in warnings
    assert ": 'Rome' (line 4)" in warnings
    assert [r["input"] for r in rows][1] == f"{path}:3"  # the name the warning's lines match


@pytest.mark.any_backend
def test_output_prints_how_many_rows_went_where_not_the_rows(churn_run, tmp_path):
    churn_table(5, seed=4).to_csv(tmp_path / "rows.csv", index=False)
    output = tmp_path / "preds.csv"
    result = invoke("predict", tmp_path / "rows.csv", "--run", churn_run.path, "--output", output)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"5 predictions written to {output}\n"
    assert len(pd.read_csv(output)) == 5


def test_an_output_it_would_not_write_truly_or_that_exists_is_refused_before_predicting(tmp_path):
    (tmp_path / "rows.csv").write_text("a\n1\n")
    (tmp_path / "old.csv").write_text("kept\n")
    no_run = ["--run", tmp_path / "no-run"]  # refused before the run is looked for
    cases = [
        ("x.json", "writes .csv, .csv.gz, .parquet, .pq files; 'x.json' is none of them"),
        ("preds", "writes .csv, .csv.gz, .parquet, .pq files; 'preds' is none of them"),
        ("old.csv", "exists; give --overwrite to replace it"),
    ]
    for name, message in cases:
        result = invoke("predict", tmp_path / "rows.csv", *no_run, "--output", tmp_path / name)
        assert result.exit_code == 2, result.output
        assert result.stderr == f"error: --output {tmp_path / name}: {message}\n"
    result = invoke("predict", tmp_path / "rows.csv", *no_run, "--output", tmp_path / "rows.csv", "--overwrite")
    assert result.exit_code == 2 and f"is the input {tmp_path / 'rows.csv'}" in result.stderr, result.output
    for given in (tmp_path, tmp_path / "*.csv"):  # a folder's or a glob's file is an input as much
        result = invoke("predict", given, *no_run, "--output", tmp_path / "rows.csv", "--overwrite")
        assert result.exit_code == 2 and f"is the input {tmp_path / 'rows.csv'}" in result.stderr, result.output
    assert (tmp_path / "old.csv").read_text() == "kept\n" and (tmp_path / "rows.csv").read_text() == "a\n1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv", "rows.csv"]


def test_an_output_a_folder_or_a_pattern_would_read_is_an_input_refused_even_with_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rows").mkdir()
    for name in ("a.csv", "preds.csv"):
        (tmp_path / "rows" / name).write_text("a\n1\n")  # preds.csv: the last run's output, in the folder
    output = tmp_path / "rows" / "preds.csv"
    for given in (tmp_path / "rows", tmp_path / "rows" / "*.csv", "rows/../rows/preds.csv"):
        result = invoke("predict", given, "--run", tmp_path / "no-run", "--output", output, "--overwrite")
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"error: --output {output}: is the input "), result.stderr
    assert output.read_text() == "a\n1\n"


def test_a_parquet_output_without_pyarrow_is_refused_before_predicting(tmp_path, monkeypatch):
    import importlib.util

    (tmp_path / "rows.csv").write_text("a\n1\n")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    result = invoke("predict", tmp_path / "rows.csv", "--run", tmp_path / "no-run", "--output", tmp_path / "p.parquet")
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: --output {tmp_path / 'p.parquet'}: writing Parquet needs pyarrow, which is not installed: "
        "pip install 'nnrun[parquet]'\n"
    )


@pytest.mark.any_backend
def test_output_is_parquet_or_gzipped_csv_by_its_name_and_replaces_a_file_only_when_told(churn_run, tmp_path):
    table = churn_table(5, seed=4)
    table["id"] = range(100, 105)
    table.to_csv(tmp_path / "rows.csv", index=False)
    by_csv = tmp_path / "preds.csv"
    _, rows = predict_json(tmp_path / "rows.csv", "--run", churn_run.path, "--id-column", "id", "--output", by_csv)
    for name in ("preds.parquet", "preds.csv.gz"):
        (tmp_path / name).write_text("old")
        args = ["--run", churn_run.path, "--id-column", "id", "--output", tmp_path / name, "--overwrite"]
        result = invoke("predict", tmp_path / "rows.csv", *args)
        assert result.exit_code == 0, result.output
        assert result.stdout == f"5 predictions written to {tmp_path / name}\n"
    parquet = pd.read_parquet(tmp_path / "preds.parquet")
    assert parquet.columns.tolist() == ["input", "id", "label", "probability", "probability.0", "probability.1"]
    assert parquet["id"].tolist() == list(range(100, 105)) and parquet["id"].dtype == "int64"
    assert parquet["input"].tolist() == [r["input"] for r in rows]
    assert parquet["probability"].tolist() == pytest.approx([r["probability"] for r in rows])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "preds.csv.gz"), pd.read_csv(by_csv))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left"


def test_a_parquet_output_takes_rows_without_an_id_and_refuses_an_id_that_changes_type(tmp_path):
    pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
    from nnrun.errors import DataError
    from nnrun.inference import prediction_file

    row = {"input": "rows.csv:2", "label": "1", "probability": 0.75}
    written = prediction_file.opened(tmp_path / "ok.parquet", "id")
    for row_id in (None, "b"):  # the first row's id is missing: the column is still text
        written.write({**row, **({"id": row_id} if row_id else {})})
    written.close()
    assert pyarrow_parquet.read_table(tmp_path / "ok.parquet").column("id").to_pylist() == [None, "b"]
    written = prediction_file.opened(tmp_path / "mixed.parquet", "id")
    for row_id in (1, "b"):  # two CSV inputs, one's ids numbers, the other's text
        written.write({**row, "id": row_id})
    with pytest.raises(DataError, match=r"^--output .*mixed.parquet: a column's values change type in rows 1-2 "):
        written.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.parquet"], "temporary files left"


@pytest.mark.any_backend
def test_a_missing_id_is_no_id_not_nan(churn_run, tmp_path):
    table = churn_table(3, seed=4).drop(columns=["left"]).assign(id=[None, "b", "c"])
    table.to_parquet(tmp_path / "rows.parquet")
    args = [tmp_path / "rows.parquet", "--run", churn_run.path, "--id-column", "id"]
    result = invoke("predict", *args, "--json")
    assert result.exit_code == 0, result.output
    assert "NaN" not in result.stdout  # not JSON
    assert [json.loads(line).get("id") for line in result.stdout.splitlines()] == [None, "b", "c"]
    result = invoke("predict", *args, "--output", tmp_path / "preds.parquet")
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(tmp_path / "preds.parquet")["id"].tolist()[1:] == ["b", "c"]


@pytest.mark.any_backend
def test_a_parquet_file_is_predicted_in_chunks_of_rows_however_small_its_models_columns_alone_read(
    churn_run, tmp_path, monkeypatch
):
    from nnrun.data import parquet_table
    from nnrun.inference import table_rows

    table = churn_table(7, seed=3).drop(columns=["left"]).assign(comment="words " * 200)
    table.to_parquet(tmp_path / "rows.parquet")  # a few kB: a file's size says nothing of its rows
    table.to_csv(tmp_path / "rows.csv", index=False)
    monkeypatch.setattr(table_rows, "CHUNK_ROWS", 3)
    read = []
    frames = parquet_table.frames
    monkeypatch.setattr(parquet_table, "frames", lambda *a, **k: read.append(k["columns"]) or frames(*a, **k))
    prep = json.loads((churn_run.path / "preprocessing.json").read_text())
    notes = []
    chunks = list(table_rows.parts(tmp_path / "rows.parquet", True, prep, None, notes))
    assert [len(chunk) for chunk in chunks] == [3, 3, 1]
    assert read == [[c for c in table.columns if c in prep["columns"]]]
    assert notes == [f"{tmp_path / 'rows.parquet'}: ignored columns the model does not take: id, comment"]
    (whole,) = table_rows.parts(tmp_path / "rows.csv", False, prep, None, [])
    np.testing.assert_allclose(np.stack([x for _, x in sum(chunks, [])]), np.stack([x for _, x in whole]))


@pytest.mark.any_backend
def test_parquet_rows_are_named_by_their_row_from_1_where_csv_rows_are_named_by_their_line(churn_run, tmp_path):
    table = churn_table(6, seed=5).drop(columns=["left"])
    table.loc[[1, 4], "age"] = None
    table.to_parquet(tmp_path / "rows.parquet")
    table.to_csv(tmp_path / "rows.csv", index=False)
    for name, first, where in [
        ("rows.csv", "rows.csv:2", "lines 3, 6"),
        ("rows.parquet", "rows.parquet:row 1", "rows 2, 5"),
    ]:
        result, rows = predict_json(tmp_path / name, "--run", churn_run.path)
        assert rows[0]["input"] == str(tmp_path / first)
        assert f"column 'age': 2 rows missing, filled as in training ({where})" in " ".join(result.stderr.split())


@pytest.mark.any_backend
def test_options_that_change_nothing_say_why(churn_run, iris_run, regression_run, tmp_path):
    churn_table(3).to_csv(tmp_path / "rows.csv", index=False)
    np.save(tmp_path / "iris.npy", np.ones((2, 4)))
    np.save(tmp_path / "x.npy", np.ones((2, 3)))
    cases = [
        (churn_run, "rows.csv", [], None),
        (
            churn_run,
            "rows.csv",
            ["--top-k", 2],
            "--top-k 2: the model has one sigmoid output; each prediction has both",
        ),
        (churn_run, "rows.csv", ["--threshold", 0.3], None),
        (iris_run, "iris.npy", ["--top-k", 2], None),
        (iris_run, "iris.npy", ["--threshold", 0.3], "--threshold 0.3: only a model with one sigmoid output uses it"),
        (regression_run, "x.npy", ["--top-k", 2], "--top-k 2: a regression has no classes to rank"),
    ]
    for run, name, options, warning in cases:
        result, rows = predict_json(tmp_path / name, "--run", run.path, *options)
        said = " ".join(result.stderr.split())
        assert (f"warning: {warning}" in said) if warning else "warning" not in said, (options, said)
        assert "top" not in rows[0] or len(rows[0]["top"]) == (options[1] if options[:1] == ["--top-k"] else 3)


# --- .npy arrays and regression ------------------------------------------------------------------


def test_npy_one_sample_or_a_stack(iris_run, tmp_path):
    from sklearn.datasets import load_iris

    np.save(tmp_path / "one.npy", load_iris().data[0])
    np.save(tmp_path / "stack.npy", load_iris().data[[0, 50, 100]])
    _, rows = predict_json(tmp_path / "one.npy", tmp_path / "stack.npy", "--run", iris_run.path, "--top-k", 2)
    assert [Path(r["input"]).name for r in rows] == ["one.npy", "stack.npy[0]", "stack.npy[1]", "stack.npy[2]"]
    for row in rows:
        assert_classes(row, ["setosa", "versicolor", "virginica"], 2)
    assert rows[0]["top"] == rows[1]["top"]


def test_regression_values_are_the_models_outputs(regression_run, tmp_path):
    import keras

    x = np.random.default_rng(5).normal(size=(4, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    _, rows = predict_json(tmp_path / "x.npy", "--run", regression_run.path)
    model = keras.models.load_model(regression_run.path / "model.keras")
    assert [r["value"] for r in rows] == pytest.approx(model.predict(x, verbose=0)[:, 0].tolist(), rel=1e-5)
    assert all(set(r) == {"input", "value", "run", "run_status", "runtime"} and r["runtime"] == "keras" for r in rows)
    assert {r["run"] for r in rows} == {str(regression_run.path)} and {r["run_status"] for r in rows} == {"completed"}
    assert all(len(repr(r["value"]).lstrip("-").replace(".", "").lstrip("0")) <= 7 for r in rows)  # 6 digits
    table = invoke("predict", tmp_path / "x.npy", "--run", regression_run.path)
    assert table.exit_code == 0 and "predictions of" in table.stdout, table.output
    assert "value" in table.stdout and "probability" not in table.stdout, table.stdout


# --- bad inputs: exit 2, the file named, the good ones still predicted ---------------------------------


def _text_png(d):
    (d / "fake.png").write_text("not an image")
    return d / "fake.png"


def _truncated_png(d):
    data = make_image(d / "whole.png", (10, 20, 30), (40, 40)).read_bytes()
    (d / "cut.png").write_bytes(data[: len(data) // 2])
    return d / "cut.png"


def _empty_csv(d):
    (d / "empty.csv").write_text("")
    return d / "empty.csv"


def _cut_gz(d):
    churn_table(50).to_csv(d / "cut.csv.gz", index=False)
    (d / "cut.csv.gz").write_bytes((d / "cut.csv.gz").read_bytes()[:200])
    return d / "cut.csv.gz"


def _header_only_csv(d):
    (d / "header.csv").write_text("age,balance,city\n")
    return d / "header.csv"


def _npy(name, array):
    def make(d):
        np.save(d / name, np.asarray(array), allow_pickle=True)  # objects too: nnrun must never unpickle them
        return d / name

    return make


def _npy_lying(*shape):
    """A .npy whose header claims `shape` of float64, followed by only 64 bytes."""

    def make(d):
        with open(d / "lying.npy", "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": shape})
            f.write(bytes(64))
        return d / "lying.npy"

    return make


def _png_of(path, width, height):
    """A valid 1-bit PNG of width x height black pixels, written in a blink: 49 KB for 20000x20000."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    pack = zlib.compressobj(9)
    rows = bytes(1 + (width + 7) // 8) * 1000  # each row: filter byte 0, then the bits
    pixels = b"".join(pack.compress(rows) for _ in range(height // 1000))
    pixels += pack.compress(rows[: len(rows) // 1000 * (height % 1000)]) + pack.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


@pytest.mark.slow  # parametrized by trained runs (request.getfixturevalue)
@pytest.mark.parametrize(
    "run_name, make, fragment",
    [
        ("digits_run", _text_png, "not a readable image"),
        ("digits_run", _truncated_png, "not a readable image"),
        ("digits_run", lambda d: d / "missing.png", "no such file or folder"),
        ("digits_run", lambda d: d / "missing*.png", "no file matches"),
        ("digits_run", lambda d: (d / "notes.txt").write_text("x") and d / "notes.txt", "not an input nnrun predicts"),
        ("digits_run", _npy("wide.npy", np.zeros((2, 28, 27))), "shape (2, 28, 27)"),
        ("churn_run", _empty_csv, "is empty"),
        ("churn_run", _header_only_csv, "no rows"),
        (
            "churn_run",
            lambda d: (d / "t.csv.gz").write_bytes(b"id,age\n1,2\n") and d / "t.csv.gz",
            "not a readable .gz",
        ),
        ("churn_run", _cut_gz, "not a readable .gz file (cut short, damaged, or not gzip)"),
        ("churn_run", lambda d: make_image(d / "x.png"), "trained on CSV rows, not images"),
        ("iris_run", _npy("short.npy", np.zeros(3)), "the model takes (4,)"),
        ("iris_run", _npy("none.npy", np.zeros((0, 4))), "no samples"),
        (
            "iris_run",
            _npy("nan.npy", [[1, 2, 3, 4], [1, np.nan, 3, 4], [1, 2, np.inf, 4]]),
            "NaN or infinite values after preprocessing in 2 of 3 samples, the first {path}[1]",
        ),
        ("digits_run", _npy("inf.npy", np.full((28, 28), -np.inf)), "NaN or infinite values after preprocessing"),
        (
            "churn_run",
            lambda d: (
                churn_table(3)[["age", "balance", "city"]]
                .assign(balance=["1", "inf", "2"])
                .to_csv(d / "inf.csv", index=False)
                or d / "inf.csv"
            ),
            "NaN or infinite values after preprocessing in 1 of 3 samples, the first {path}:3",
        ),
        ("image_run", _npy("big.npy", np.zeros((1, 28, 28, 3))), "the model takes (16, 16, 3)"),
        (
            "iris_run",
            _npy_lying(10_000_000_000, 4),
            "shape (10000000000, 4) of float64 (298.0 GiB), but the file holds 64 bytes",
        ),
        ("iris_run", _npy("objects.npy", np.array([{"a": 1}], dtype=object)), "an array of object, not numbers"),
        (
            "iris_run",
            lambda d: (d / "cut.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8\n") and d / "cut.npy",
            "not a readable .npy array",
        ),
        ("digits_run", lambda d: _png_of(d / "huge.png", 20_000, 20_000), "20000x20000 pixels, more than the 89478485"),
        ("iris_run", lambda d: make_image(d / "x.png"), "not images"),
        ("iris_run", lambda d: churn_table(3).to_csv(d / "t.csv") or d / "t.csv", "not CSV rows"),
        ("image_run", lambda d: churn_table(3).to_csv(d / "t.csv") or d / "t.csv", "not CSV rows"),
    ],
)
def test_a_bad_input_exits_2_naming_the_file(request, tmp_path, run_name, make, fragment):
    path = make(tmp_path)
    result = invoke("predict", path, "--run", request.getfixturevalue(run_name).path)
    assert result.exit_code == 2, result.output
    (failed,), summary = failures(result)
    assert failed.startswith(f"{path}: ") and fragment.format(path=path) in failed
    assert summary == "error: 1 of 1 inputs could not be predicted" and result.stdout == ""


def test_good_inputs_are_predicted_and_bad_ones_listed(digits_run, tmp_path):
    good = [make_image(tmp_path / "good.png", (200, 200, 200), (30, 30), "L"), tmp_path / "good.npy"]
    np.save(good[1], digit_arrays(1, seed=0)[0][0])
    bad = [_text_png(tmp_path), _truncated_png(tmp_path), tmp_path / "gone.png"]
    result, rows = predict_json(good[0], bad[0], good[1], bad[1], bad[2], "--run", digits_run.path, code=2)
    assert [r["input"] for r in rows] == [str(p) for p in good]
    failed, summary = failures(result)
    assert sorted(line.split(": ")[0] for line in failed) == sorted(str(p) for p in bad)
    assert summary == "error: 3 of 5 inputs could not be predicted"


@pytest.mark.parametrize("width, height", [(10_000, 10_000), (20_000, 20_000), (30_000, 30_000)])
def test_an_image_of_too_many_pixels_is_refused_before_it_is_decoded(image_run, tmp_path, monkeypatch, width, height):
    from nnrun.data import pixels

    decoded = []
    decode = pixels._decode
    monkeypatch.setattr(pixels, "_decode", lambda path, *size: decoded.append(path) or decode(path, *size))
    huge = _png_of(tmp_path / "huge.png", width, height)  # 10000x10000: Pillow only warns; beyond 2x: it raises
    good = make_image(tmp_path / "good.png", COLOURS["dog"])
    result, rows = predict_json(huge, good, "--run", image_run.path, code=2)
    assert [r["input"] for r in rows] == [str(good)] and len(decoded) == 1
    (failed,), _ = failures(result)
    assert failed == f"{huge}: {width}x{height} pixels, more than the 89478485 nnrun decodes"
    assert "DecompressionBomb" not in result.output


def test_an_npy_header_is_checked_against_the_file_before_it_is_read(iris_run, tmp_path):
    lying = _npy_lying(10_000_000_000, 4)(tmp_path)
    assert lying.stat().st_size == 192
    np.save(tmp_path / "good.npy", np.ones((2, 4)))
    short = tmp_path / "short.npy"
    short.write_bytes((tmp_path / "good.npy").read_bytes()[:-8])
    result, rows = predict_json(lying, tmp_path / "good.npy", short, "--run", iris_run.path, code=2)
    assert [r["input"] for r in rows] == [f"{tmp_path / 'good.npy'}[{i}]" for i in (0, 1)]
    failed, summary = failures(result)
    assert failed == [
        f"{lying}: its header claims an array of shape (10000000000, 4) of float64 (298.0 GiB), "
        "but the file holds 64 bytes of data",
        f"{short}: its header claims an array of shape (2, 4) of float64 (64 bytes), "
        "but the file holds 56 bytes of data",
    ]
    assert summary == "error: 2 of 4 inputs could not be predicted"


def test_an_npy_of_the_wrong_shape_is_refused_from_its_header_alone(tmp_path, monkeypatch):
    from nnrun.errors import DataError
    from nnrun.inference import predict

    np.save(tmp_path / "wrong.npy", np.zeros((1000, 5), dtype="float32"))
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: pytest.fail("the array was read"))
    with pytest.raises(DataError) as info:
        predict._load_npy(tmp_path / "wrong.npy", (4,), table=False)
    wanted = "an array of shape (1000, 5); the model takes (4,) per sample (or a stack of them)"
    assert str(info.value) == f"{tmp_path / 'wrong.npy'}: {wanted}"


class _Planted:
    """Unpickling it touches a file: proof that something was unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_an_npy_of_objects_is_never_unpickled(iris_run, tmp_path):
    marker = tmp_path / "unpickled"
    np.save(tmp_path / "planted.npy", np.array([_Planted(marker)], dtype=object), allow_pickle=True)
    result = invoke("predict", tmp_path / "planted.npy", "--run", iris_run.path)
    assert result.exit_code == 2, result.output
    assert failures(result)[0] == [f"{tmp_path / 'planted.npy'}: an array of object, not numbers"]
    assert not marker.exists()


def test_inputs_are_read_and_predicted_batch_by_batch_in_order(iris_run, tmp_path, monkeypatch):
    from nnrun.inference import loading
    from nnrun.inference import predict as prediction

    events = []

    class Recording:
        def __init__(self, model):
            self.model = model

        def predict(self, x, **kwargs):
            events.append(f"predict {len(x)}")
            return self.model.predict(x, **kwargs)

    def read(path, *args):
        events.append(f"read {path.name}")
        yield from real_read(path, *args)

    real_read, real_load = prediction._read, loading.load_model
    monkeypatch.setattr(prediction, "_read", read)
    monkeypatch.setattr(loading, "load_model", lambda run: events.append("load") or Recording(real_load(run)))
    for name, n in (("a", 3), ("b", 1), ("c", 2)):
        np.save(tmp_path / f"{name}.npy", np.random.default_rng(n).normal(5, 1, (n, 4)))
    np.save(tmp_path / "bad.npy", np.ones((1, 5)))
    inputs = [tmp_path / f"{name}.npy" for name in ("a", "bad", "b", "c")] + [tmp_path / "gone.npy"]
    batched = prediction.predict(iris_run.path, inputs, batch_size=2)
    assert events == [
        "read a.npy",
        "load",
        "predict 2",
        "read bad.npy",
        "read b.npy",
        "predict 2",
        "read c.npy",
        "predict 2",
    ]
    whole = prediction.predict(iris_run.path, inputs, batch_size=256)
    assert (
        [r["input"] for r in batched.rows]
        == [r["input"] for r in whole.rows]
        == [f"{tmp_path / 'a.npy'}[{i}]" for i in range(3)]
        + [str(tmp_path / "b.npy")]
        + [f"{tmp_path / 'c.npy'}[{i}]" for i in range(2)]
    )
    for one, other in zip(batched.rows, whole.rows, strict=True):
        assert one["label"] == other["label"] and one["probability"] == pytest.approx(other["probability"], abs=1e-6)
    assert batched.failed == whole.failed and [f for f, _ in batched.failed] == [
        str(tmp_path / "gone.npy"),
        str(tmp_path / "bad.npy"),
    ]


def test_the_output_file_holds_the_good_predictions_when_some_fail(iris_run, tmp_path):
    np.save(tmp_path / "good.npy", np.ones((2, 4)))
    np.save(tmp_path / "bad.npy", np.ones((2, 5)))
    _, rows = predict_json(
        tmp_path / "good.npy", tmp_path / "bad.npy", "--run", iris_run.path, "--output", tmp_path / "out.csv", code=2
    )
    written = pd.read_csv(tmp_path / "out.csv")
    assert written["input"].tolist() == [r["input"] for r in rows] == [f"{tmp_path / 'good.npy'}[{i}]" for i in (0, 1)]


def test_an_npy_of_text_is_bad_input(iris_run, tmp_path):
    np.save(tmp_path / "words.npy", np.array([["a", "b", "c", "d"]]))
    result = invoke("predict", tmp_path / "words.npy", "--run", iris_run.path)
    assert result.exit_code == 2, result.output
    assert str(tmp_path / "words.npy") in result.stderr


def test_an_npy_of_pixels_for_an_image_folder_run_is_predicted_with_the_runs_rescale(image_run, tmp_path):
    pixels = np.zeros((2, 16, 16, 3), dtype="uint8")
    pixels[0], pixels[1] = COLOURS["cat"], COLOURS["owl"]
    np.save(tmp_path / "pixels.npy", pixels)
    Image.fromarray(pixels[0]).save(tmp_path / "cat.png")  # 16x16 already: resized to itself
    result, rows = predict_json(tmp_path / "pixels.npy", tmp_path / "cat.png", "--run", image_run.path)
    found = by_input(rows)
    assert sorted(found) == ["cat.png", "pixels.npy[0]", "pixels.npy[1]"] and result.stderr == ""

    def probabilities(name):
        return {t["class"]: t["probability"] for t in found[name]["top"]}

    assert probabilities("pixels.npy[0]") == pytest.approx(probabilities("cat.png"), abs=1e-5)  # 1/255 applied
    assert probabilities("pixels.npy[1]") != pytest.approx(probabilities("cat.png"), abs=1e-3)


def test_output_into_a_missing_folder_is_bad_input(iris_run, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((1, 4)))
    result = invoke("predict", tmp_path / "x.npy", "--run", iris_run.path, "--output", tmp_path / "no" / "p.csv")
    assert result.exit_code == 2, result.output
    assert "--output" in result.stderr or str(tmp_path / "no") in result.stderr


def test_a_folder_with_nothing_to_predict_is_bad_input(iris_run, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no images here")
    (tmp_path / "docs" / "photo.webp").write_bytes(b"RIFF")
    result = invoke("predict", tmp_path / "docs", "--run", iris_run.path)
    assert result.exit_code == 2, result.output
    (failed,), _ = failures(result)
    assert failed.startswith(f"{tmp_path / 'docs'}: no .png, ") and failed.endswith(
        "files in this folder (it has 2 other files: photo.webp, readme.txt)"
    )


@pytest.mark.any_backend
def test_a_folder_says_which_files_it_skipped(image_run, tmp_path):
    folder = tmp_path / "photos"
    make_image(folder / "cat.png", COLOURS["cat"])
    for i in range(7):
        Image.new("RGB", (8, 8)).save(folder / f"shot{i}.webp")
    (folder / ".DS_Store").write_bytes(b"\0")  # hidden: neither predicted nor counted
    result, rows = predict_json(folder, "--run", image_run.path)
    assert [Path(r["input"]).name for r in rows] == ["cat.png"]
    assert " ".join(result.stderr.split()) == (
        f"warning: {folder}: skipped 7 other files: shot0.webp, shot1.webp, shot2.webp, shot3.webp, shot4.webp, "
        "and 2 more (nnrun predicts .png, .jpg, .jpeg, .bmp, .gif, .csv, .csv.gz, .parquet, .pq, .npy)"
    )


# --- which run ---------------------------------------------------------------------------------------


def _copy_run(source, target, started_at):
    shutil.copytree(source, target)
    info = json.loads((target / "run.json").read_text())
    (target / "run.json").write_text(json.dumps({**info, "started_at": started_at}))
    return target


def test_the_newest_run_is_the_default(iris_run, digits_run, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    _copy_run(iris_run.path, runs / "zz-iris", "2030-01-01T00:00:00+00:00")
    _copy_run(digits_run.path, runs / "aa-digits", "2030-01-02T00:00:00+00:00")  # newer, though first by name
    (runs / "half-done").mkdir()  # no model: never the newest
    (runs / "half-done" / "run.json").write_text('{"status": "running", "started_at": "2031-01-01T00:00:00+00:00"}')
    image = make_image(tmp_path / "digit.png", (250, 250, 250), (33, 21))
    monkeypatch.chdir(tmp_path)
    _, rows = predict_json(image)
    assert rows[0]["label"] in DIGITS
    table = invoke("predict", image)
    assert table.exit_code == 0 and "aa-digits" in " ".join(table.stdout.split())
    np.save(tmp_path / "flower.npy", np.ones(4))
    result, rows = predict_json(tmp_path / "flower.npy", "--runs-dir", runs, code=2)  # digits take 28x28
    assert "the model takes (28, 28)" in result.stderr
    last = result.stderr.strip().splitlines()[-1]  # which run it was, since none was named
    assert last.endswith(f"by {runs / 'aa-digits'}, the newest completed run (name another with --run)"), last
    (runs / "aa-digits" / "model.keras").unlink()
    _, rows = predict_json(tmp_path / "flower.npy")
    assert rows[0]["label"] in ("setosa", "versicolor", "virginica")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--runs-dir", "nowhere"], "no completed runs in 'nowhere'"),
        (["--run", "nowhere"], "run directory 'nowhere' does not exist"),
    ],
)
def test_no_run_to_predict_with_is_one_error_line(tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "x.png")
    result = invoke("predict", "x.png", *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
    assert result.stdout == ""


def test_a_run_directory_without_a_model_is_one_error_line(digits_run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(digits_run.path, broken)
    (broken / "model.keras").unlink()
    result = invoke("predict", make_image(tmp_path / "x.png"), "--run", broken)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"error: '{broken}' has no model.keras: the run is completed"]


def test_a_copied_run_directory_predicts_the_same(digits_run, tmp_path):
    image = make_image(tmp_path / "x.png", (30, 200, 30), (45, 28), "RGB")
    copy = shutil.copytree(digits_run.path, tmp_path / "moved" / "run")
    _, original = predict_json(image, "--run", digits_run.path)
    _, copied = predict_json(image, "--run", copy)
    assert [{k: v for k, v in r.items() if k != "run"} for r in copied] == [
        {k: v for k, v in r.items() if k != "run"} for r in original
    ]
    assert copied[0]["run"] == str(copy)


@pytest.mark.parametrize("name", ["preds.csv", "preds.parquet"])
def test_what_a_killed_predict_left_beside_its_output_is_removed_by_the_next(tmp_path, name):
    pytest.importorskip("pyarrow.parquet")
    from nnrun import atomic
    from nnrun.inference import prediction_file

    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()  # a process that has ended: its pid names no writer now
    dead = tmp_path / f".{gone.pid}{atomic.TMP_MARK}{name}"
    living = tmp_path / f".{os.getppid()}{atomic.TMP_MARK}{name}"  # a writer still running
    other = tmp_path / f".{gone.pid}{atomic.TMP_MARK}other.csv"  # another output's
    for left in (dead, living, other):
        left.write_text("half written")
    written = prediction_file.opened(tmp_path / name, None)
    written.write({"input": "rows.csv:2", "label": "1", "probability": 0.75})
    written.close()
    assert (tmp_path / name).is_file() and not dead.exists()
    assert living.exists() and other.exists()
