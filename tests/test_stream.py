"""Tables streamed in chunks (data.stream): the in-memory preprocessing, a seeded split that does not depend on the
chunks, every row fed once, evaluate re-creating the split (and scoring other data streamed), predict --output
written chunk by chunk.

Tables are tiny and read in chunks of a few rows, so that every path through the chunks is taken.
"""

import csv
import json

import numpy as np
import pandas as pd
import pytest

from nnrun import data
from nnrun.cli.main import cli
from nnrun.config import validation as config
from nnrun.data import csv_table, split_hash, streamed
from nnrun.errors import DataError
from nnrun.inference import table_rows

from trained_runs import dense, train

pytestmark = pytest.mark.any_backend


def table(n=150, seed=0):
    """Numbers with gaps, text with gaps, dates, a 0/1 target with a few gaps."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    age[::11] = np.nan
    city = rng.choice(["Berlin", "Madrid", "Paris"], n).astype(object)
    city[::13] = None
    left = ((age > 55) | (city == "Berlin")).astype(float)
    left[::29] = np.nan
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "age": age,
            "balance": rng.normal(50_000, 20_000, n).round(2),
            "city": city,
            "joined": (pd.to_datetime("2021-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")).strftime(
                "%Y-%m-%d"
            ),
            "left": left,
        }
    )


def section(path, **fields):
    fields = {"source": "csv", "path": str(path), "target": "left", "drop": ["id"], "stream": True, **fields}
    return config.validate({"data": fields, "model": ["Flatten"], "loss": "mse"}, "test").data


@pytest.mark.parametrize("scale", ["standard", "minmax"])
def test_streamed_preprocessing_is_what_the_whole_training_rows_give(tmp_path, scale):
    frame = table()
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = section(tmp_path / "t.csv", scale=scale)
    ds = streamed.load(data, 0.25, seed=4, rows=17)
    codes = split_hash.assign(np.arange(len(frame)), 4, data.test_split, 0.25)
    training = frame[(codes == split_hash.TRAIN) & frame["left"].notna()]
    whole = csv_table.fit(training.drop(columns=["left", "id"]), data)
    got = ds.preprocessing
    assert got["categorical"] == whole["categorical"] and got["dates"] == whole["dates"]
    assert got["columns"] == whole["columns"] and got["notes"] == whole["notes"]
    assert set(got["numeric"]) == set(whole["numeric"])
    for name, stats in whole["numeric"].items():
        assert got["numeric"][name] == pytest.approx(stats, rel=1e-9, abs=1e-12), name
    assert ds.class_names == ["0", "1"] and len(ds.y_train) == len(training)


def test_an_empty_column_is_refused_streamed_in_the_words_of_a_whole_table(tmp_path):
    frame = table().assign(notes=None)
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError) as whole:
        data.load(section(tmp_path / "t.csv", stream=False), 0.25, seed=4)
    with pytest.raises(DataError) as streaming:
        streamed.load(section(tmp_path / "t.csv"), 0.25, seed=4, rows=17)
    assert str(streaming.value) == str(whole.value)
    assert "column 'notes' has no values in the training split; add it to data.drop" in str(streaming.value)


def test_a_streamed_regression_on_text_targets_is_refused_in_one_line(tmp_path):
    table().assign(left=lambda f: f["city"]).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"^data.path '.*t.csv': data.task is regression but the targets are not num"):
        streamed.load(section(tmp_path / "t.csv", task="regression"), 0.25, seed=4, rows=17)


def test_the_split_is_seeded_recorded_and_the_same_in_any_chunks(tmp_path):
    frame = table()
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = section(tmp_path / "t.csv")
    small, large = streamed.load(data, 0.2, seed=1, rows=7), streamed.load(data, 0.2, seed=1, rows=1000)
    assert small.splits == large.splits
    for a, b in [(small.y_train, large.y_train), (small.y_val, large.y_val), (small.y_test, large.y_test)]:
        np.testing.assert_array_equal(a, b)
    assert sum(split["samples"] for split in small.splits.values()) == frame["left"].notna().sum()
    assert (
        f"{frame['left'].isna().sum()} rows of '{tmp_path / 't.csv'}' have no value in column 'left'" in small.notes[1]
    )
    assert streamed.load(data, 0.2, seed=2, rows=7).splits["test"] != small.splits["test"]


@pytest.mark.backend
def test_each_split_streams_every_one_of_its_rows_once_encoded_as_predict_encodes_them(tmp_path):
    frame = table()
    frame.to_csv(tmp_path / "t.csv", index=False)
    ds = streamed.load(section(tmp_path / "t.csv"), 0.2, seed=3, batch_size=8, rows=11)
    codes = split_hash.assign(np.arange(len(frame)), 3, 0.2, 0.2)
    rows = frame[(codes == split_hash.TEST) & frame["left"].notna()]
    batches = list(ds.x_test.as_numpy_iterator())
    assert all(len(y) == 8 for _, y in batches[:-1]) and len(batches) == ds.x_test.cardinality()
    x, y = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    np.testing.assert_allclose(x, csv_table.apply(rows, ds.preprocessing), rtol=1e-6)
    np.testing.assert_array_equal(y, rows["left"].astype(int))
    np.testing.assert_array_equal(y, ds.y_test)
    trained = np.concatenate([b[1] for b in ds.x_train.as_numpy_iterator()])
    assert sorted(trained) == sorted(ds.y_train) and len(trained) == len(ds.y_train)


@pytest.mark.backend
@pytest.mark.parametrize("units", [1, 3])
def test_a_streamed_splits_classes_are_predicted_a_batch_at_a_time_as_predict_gives_them(tmp_path, units):
    import keras

    from nnrun.data import feeding

    table().to_csv(tmp_path / "t.csv", index=False)
    ds = streamed.load(section(tmp_path / "t.csv"), 0.2, seed=3, batch_size=8, rows=11)
    width = ds.preprocessing["input_shape"][0]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((width,)), keras.layers.Dense(units, "sigmoid" if units == 1 else "softmax")])
    x = np.concatenate([b[0] for b in ds.x_test.as_numpy_iterator()])
    got = feeding.split_classes(model, ds.x_test, 8, max(units, 2))
    assert got.dtype == np.uint8 and len(got) == len(ds.y_test)
    np.testing.assert_array_equal(got, feeding.split_classes(model, x, 8, max(units, 2)))
    assert len(np.unique(got)) > 1  # the model's classes, not a constant


@pytest.mark.slow
def test_a_streamed_run_evaluates_refuses_a_changed_file_and_predicts_a_large_file_as_it_reads(
    runner, write_config, tmp_path, monkeypatch
):
    frame = table(300)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    monkeypatch.setattr(streamed, "CHUNK_ROWS", 40)
    config_file = write_config(
        data={"source": "csv", "path": str(path), "target": "left", "drop": ["id"], "stream": True},
        model=dense(4, 1, last="sigmoid"),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        training={"epochs": 1, "batch_size": 16, "validation_split": 0.2},
    )
    run_dir = train(config_file)
    recorded = json.loads((run_dir / "run.json").read_text())["splits"]
    assert set(recorded) == {"train", "validation", "test"}

    result = runner.invoke(cli, ["evaluate", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["samples"] == recorded["test"]["samples"]

    frame.to_parquet(tmp_path / "other.parquet")  # other data, streamed as the run's table was
    result = runner.invoke(cli, ["evaluate", str(run_dir), "--data", str(tmp_path / "other.parquet"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["samples"] == frame["left"].notna().sum()

    monkeypatch.setattr(table_rows, "STREAM_BYTES", 100)  # this small file is predicted chunk by chunk
    monkeypatch.setattr(table_rows, "CHUNK_ROWS", 64)
    output = tmp_path / "out.csv"
    result = runner.invoke(
        cli, ["predict", str(path), "--run", str(run_dir), "--id-column", "id", "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    written = list(csv.DictReader(output.read_text().splitlines()))
    assert [int(row["id"]) for row in written] == list(range(300))
    assert written[-1]["input"] == f"{path}:301" and f"300 predictions written to {output}" in result.stdout

    test_row = int(np.flatnonzero(split_hash.assign(np.arange(300), 7, 0.2, 0.2) == split_hash.TEST)[0])
    frame.loc[test_row, "left"] = 1 - frame.loc[test_row, "left"] if frame["left"].notna()[test_row] else 1
    frame.to_csv(path, index=False)
    result = runner.invoke(cli, ["evaluate", str(run_dir)])
    assert result.exit_code == 2, result.output
    assert "is not the one the run was tested on" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "target, classes",
    [
        (["low", "high", "mid"] * 40, ["high", "low", "mid"]),
        ([3, 300, -2] * 40, ["-2", "3", "300"]),
        ([0.5, 1.25, 2.0] * 40, None),
    ],
    ids=["text", "numbers", "regression"],
)
def test_streamed_classes_and_targets_are_the_in_memory_ones(tmp_path, target, classes):
    frame = table(120).assign(left=target)
    frame.to_csv(tmp_path / "t.csv", index=False)
    streamed_ds = streamed.load(section(tmp_path / "t.csv"), 0, seed=5, rows=9)
    in_memory = data.load(section(tmp_path / "t.csv", stream=False), 0, seed=5)
    assert streamed_ds.class_names == in_memory.class_names == classes
    codes = split_hash.assign(np.arange(120), 5, 0.2, 0)
    encode = {v: i for i, v in enumerate(in_memory.class_names or [])}
    values = frame["left"][codes == split_hash.TEST]
    if classes is None:
        np.testing.assert_allclose(streamed_ds.y_test, values.to_numpy(dtype="float32"))
    else:
        np.testing.assert_array_equal(streamed_ds.y_test, [encode[str(v)] for v in values])
