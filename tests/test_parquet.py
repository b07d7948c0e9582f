"""Parquet tables: read as CSV tables are (the same preprocessing), trained, evaluated and predicted; bad files refused.

Tables are tiny and generated in tmp_path; the one CLI run trains for one epoch.
"""

import csv
import json
import sys

import numpy as np
import pandas as pd
import pytest

from nnrun import data
from nnrun.cli.main import cli
from nnrun.config import validation as config
from nnrun.data import parquet_table
from nnrun.errors import DataError
from nnrun.inference import table_rows
from nnrun.rundir import files as rundir

from trained_runs import dense, train

pyarrow = pytest.importorskip("pyarrow")

# A table becomes arrays with pandas and scikit-learn before Keras sees it: the same on both backends.
pytestmark = pytest.mark.any_backend


def table(n=120, seed=0):
    """A churn-like table with the types Parquet keeps: ints, floats with gaps, text, a dictionary column,
    dates, booleans, a 0/1 target."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    city = rng.choice(["Berlin", "Madrid", "Paris"], n)
    balance = rng.normal(50_000, 20_000, n).round(2)
    balance[::17] = np.nan
    return pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "age": age,
            "balance": balance,
            "city": city,
            "plan": pd.Categorical(rng.choice(["basic", "gold"], n)),
            "joined": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
            "active": rng.random(n) > 0.5,
            "left": ((age > 55) | (city == "Berlin")).astype(int),
        }
    )


def section(path, source, **fields):
    fields = {"source": source, "path": str(path), "target": "left", "drop": ["id"], **fields}
    return config.validate({"data": fields, "model": ["Flatten"], "loss": "mse"}, "test").data


def test_parquet_reads_as_the_same_table_written_as_csv(tmp_path):
    frame = table()
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.csv", index=False)
    from_parquet = data.load(section(tmp_path / "t.parquet", "parquet"), 0.2, seed=3)
    from_csv = data.load(section(tmp_path / "t.csv", "csv"), 0.2, seed=3)
    assert {k: v for k, v in from_parquet.preprocessing.items() if k != "read"} == {
        k: v for k, v in from_csv.preprocessing.items() if k != "read"
    }
    assert set(from_parquet.preprocessing["dates"]) == {"joined"}
    assert from_parquet.preprocessing["categorical"]["plan"]["categories"] == ["basic", "gold"]
    np.testing.assert_array_equal(from_parquet.x_train, from_csv.x_train)
    assert from_parquet.splits == from_csv.splits
    assert from_parquet.fingerprint.startswith("sha256:") and from_parquet.fingerprint != from_csv.fingerprint


def _parquet_with_a_list_column(path):
    pyarrow.parquet.write_table(pyarrow.table({"tags": [[1, 2], [3]], "left": [0, 1]}), path)


def _truncated(path):
    table().to_parquet(path)
    path.write_bytes(path.read_bytes()[:-100])


@pytest.mark.parametrize(
    "make, fragments",
    [
        pytest.param(lambda p: p.write_text("a,left\n1,0\n"), ["not a readable Parquet file"], id="csv-named-parquet"),
        pytest.param(_truncated, ["not a readable Parquet file"], id="cut-short"),
        pytest.param(lambda p: p.write_bytes(b""), ["not a readable Parquet file"], id="empty"),
        pytest.param(lambda p: None, ["does not exist"], id="absent"),
        pytest.param(_parquet_with_a_list_column, ["'tags' (ndarray values)", "data.drop"], id="list-column"),
        pytest.param(lambda p: table().iloc[:0].to_parquet(p), ["has columns but no rows"], id="no-rows"),
    ],
)
def test_a_bad_parquet_file_is_one_error_line(runner, write_config, tmp_path, make, fragments):
    path = tmp_path / "t.parquet"
    make(path)
    config_file = write_config(data={"source": "parquet", "path": str(path), "target": "left"})
    result = runner.invoke(cli, ["check", str(config_file)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "data.path: " in lines[0], result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_without_pyarrow_check_and_predict_say_what_to_install(runner, write_config, tmp_path, monkeypatch):
    table(20).to_parquet(tmp_path / "t.parquet")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # as where the parquet extra is not installed
    config_file = write_config(data={"source": "parquet", "path": str(tmp_path / "t.parquet"), "target": "left"})
    result = runner.invoke(cli, ["check", str(config_file)])
    assert result.exit_code == 2, result.output
    assert "needs pyarrow, which is not installed: pip install 'nnrun[parquet]'" in result.output, result.output
    prep = {"kind": "table", "columns": ["age"]}
    with pytest.raises(DataError, match=r"^input: reading Parquet needs pyarrow"):
        list(table_rows.parts(tmp_path / "t.parquet", True, prep, None, []))


@pytest.mark.slow
def test_a_parquet_table_trains_evaluates_and_predicts(runner, write_config, tmp_path):
    frame = table(200)
    frame.to_parquet(tmp_path / "t.parquet")
    config_file = write_config(
        data={"source": "parquet", "path": str(tmp_path / "t.parquet"), "target": "left", "drop": ["id"]},
        model=dense(8, 1, last="sigmoid"),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        training={"epochs": 1, "batch_size": 16, "validation_split": 0},
    )
    run_dir = train(config_file)
    assert json.loads((run_dir / rundir.PREPROCESSING).read_text())["kind"] == "table"

    result = runner.invoke(cli, ["evaluate", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["samples"] == 40

    rows = frame.drop(columns=["left"]).iloc[:7]
    rows.to_parquet(tmp_path / "rows.parquet")
    rows.to_csv(tmp_path / "rows.csv", index=False)
    output = tmp_path / "out.csv"
    result = runner.invoke(
        cli,
        [
            "predict",
            str(tmp_path / "rows.parquet"),
            "--run",
            str(run_dir),
            "--id-column",
            "id",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    written = list(csv.DictReader(output.read_text().splitlines()))
    assert [row["id"] for row in written] == [str(i) for i in range(1, 8)]
    assert written[0]["input"] == f"{tmp_path / 'rows.parquet'}:row 1"
    result = runner.invoke(cli, ["predict", str(tmp_path / "rows.csv"), "--run", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    from_csv = [json.loads(line)["probability"] for line in result.stdout.splitlines()]
    assert from_csv == pytest.approx([float(row["probability"]) for row in written], abs=1e-6)


def test_a_timestamp_column_reads_the_same_in_chunks_as_whole(tmp_path):
    # Later rows all at midnight: a chunk of them must not be written as dates while the rest have times
    # (it would not read in the date format learned from the first rows, and be filled as missing).
    when = pd.Series(pd.to_datetime("2020-01-01") + pd.to_timedelta(np.arange(300) * 7, unit="h"))
    when[150:] = when[150:].dt.normalize()
    frame = pd.DataFrame({"when": when, "day": when.dt.date, "left": np.arange(300) % 2})
    frame.to_parquet(tmp_path / "t.parquet")
    whole = parquet_table.read_frame(tmp_path / "t.parquet", "data.path")
    chunked = pd.concat(parquet_table.frames(tmp_path / "t.parquet", "data.path", 100))
    pd.testing.assert_frame_equal(chunked, whole, check_index_type=False)
    assert whole["when"].iloc[-1] == "2020-03-28 00:00:00" and whole["day"].iloc[-1] == "2020-03-28"


def test_stream_auto_weighs_a_parquet_file_by_its_values_not_its_size_on_disk(tmp_path, monkeypatch):
    from nnrun.data import streamed

    path = tmp_path / "t.parquet"
    pd.DataFrame({"x": np.zeros(200_000), "left": np.ones(200_000, "int64")}).to_parquet(path)
    counted = parquet_table.values_bytes(path, "data.path")
    assert counted == 200_000 * 2 * 8 > 100 * path.stat().st_size  # zeros compress to almost nothing
    monkeypatch.setattr(streamed, "STREAM_BYTES", counted // 2)  # well over the file's size on disk
    assert streamed.wanted(section(path, "parquet", stream="auto"))
    monkeypatch.setattr(streamed, "STREAM_BYTES", counted)
    assert not streamed.wanted(section(path, "parquet", stream="auto"))


@pytest.mark.parametrize(
    "place, advice",
    [("data.path", "read it with data.source: parquet"), ("input", "name it .parquet and nnrun reads it")],
)
def test_a_parquet_file_named_csv_is_told_what_to_do_where_it_was_given(tmp_path, place, advice):
    from nnrun.data import csv_file

    table().to_parquet(tmp_path / "t.csv")
    with pytest.raises(DataError) as refused:
        csv_file.read_table(tmp_path / "t.csv", {}, place)
    assert str(refused.value) == f"{place}: '{tmp_path / 't.csv'}' is not a text table: it is a Parquet file; {advice}"
