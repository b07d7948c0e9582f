"""CSV tables: reading, one-hot and scaling from the training split, imputation, apply, errors.

Tables are tiny and generated in tmp_path; CLI runs train for one epoch.
"""

import csv
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nnrun import data
from nnrun.cli.main import cli
from nnrun.config import validation as config
from nnrun.data import csv_table
from nnrun.errors import DataError
from nnrun.rundir import files as rundir

# A table becomes arrays with pandas and scikit-learn before Keras sees it: the same on both backends.
pytestmark = pytest.mark.any_backend

CITIES = ["Berlin", "Madrid", "Paris"]


def table(n=120, seed=0):
    """A churn-like table: ids and names to drop, two numeric and two text columns, a 0/1 target."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    city = rng.choice(CITIES, n)
    return pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "name": [f"customer{i}" for i in range(n)],
            "age": age,
            "balance": rng.normal(50_000, 20_000, n).round(2),
            "city": city,
            "gender": rng.choice(["F", "M"], n),
            "left": ((age > 55) | (city == "Berlin")).astype(int),
        }
    )


def write(tmp_path, frame, name="table.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def section(path, **fields):
    """The validated `data` section of a config, as the CLI would give it."""
    fields = {"source": "csv", "path": str(path), "target": "left", "drop": ["id", "name"], **fields}
    return config.validate({"data": fields, "model": ["Flatten"], "loss": "mse"}, "test").data


def load(path, validation_split=0, seed=0, **fields):
    return data.load(section(path, **fields), validation_split, seed)


def csv_config(write_config, path, target="left", units=1, activation="sigmoid", loss="binary_crossentropy", **fields):
    """A config that trains one epoch on the CSV at `path`."""
    return write_config(
        data={"source": "csv", "path": str(path), "target": target, "drop": ["id", "name"], **fields},
        model={
            "layers": [
                {"Dense": {"units": 8, "activation": "relu"}},
                {"Dense": {"units": units, "activation": activation}},
            ]
        },
        loss=loss,
        metrics=["accuracy"] if loss != "mse" else [],
        training={"epochs": 1, "batch_size": 16, "validation_split": 0},
    )


def train(runner, config_file):
    result = runner.invoke(cli, ["train", str(config_file), "--quiet"])
    assert result.exit_code == 0, result.output
    return result, Path(result.stdout.strip().splitlines()[-1])


# --- columns: categorical, one-hot, scaling -----------------------------------------


def test_text_columns_are_detected_as_categorical_and_one_hot_encoded(tmp_path):
    ds = load(write(tmp_path, table()), drop=["id", "name"])
    pre = ds.preprocessing
    assert pre["kind"] == "table"
    assert pre["columns"] == ["age", "balance", "city", "gender"]
    assert list(pre["numeric"]) == ["age", "balance"]
    assert list(pre["categorical"]) == ["city", "gender"]
    assert pre["categorical"]["city"]["categories"] == CITIES
    assert pre["categorical"]["gender"]["categories"] == ["F", "M"]
    assert pre["input_shape"] == [2 + 3 + 2]
    assert ds.x_train.shape == (96, 7) and ds.x_train.dtype == np.float32
    # every row has exactly one city and one gender
    np.testing.assert_array_equal(ds.x_train[:, 2:5].sum(axis=1), 1)
    np.testing.assert_array_equal(ds.x_train[:, 5:7].sum(axis=1), 1)
    assert any("detected" in n and "city (3 values)" in n and "gender (2 values)" in n for n in ds.notes), ds.notes


def test_explicit_categorical_columns_include_numbers(tmp_path):
    frame = table()
    frame["zone"] = np.arange(len(frame)) % 4 + 1  # numbers that are codes, not quantities
    ds = load(write(tmp_path, frame), drop=["id", "name"], categorical=["zone", "city", "gender"])
    pre = ds.preprocessing
    assert list(pre["categorical"]) == ["city", "gender", "zone"]  # in the table's column order
    assert pre["categorical"]["zone"]["categories"] == ["1", "2", "3", "4"]
    assert list(pre["numeric"]) == ["age", "balance"]
    assert pre["input_shape"] == [2 + 3 + 2 + 4]
    assert not any("detected" in n for n in ds.notes)


def test_one_hot_positions_follow_the_saved_categories(tmp_path):
    pre = load(write(tmp_path, table()), drop=["id", "name"], scale="none").preprocessing
    rows = pd.DataFrame({"age": [30, 60], "balance": [1.0, 2.0], "city": ["Paris", "Berlin"], "gender": ["M", "F"]})
    encoded = csv_table.apply(rows, pre)
    np.testing.assert_array_equal(encoded[:, :2], [[30, 1], [60, 2]])  # scale: none leaves numbers as they are
    np.testing.assert_array_equal(encoded[:, 2:], [[0, 0, 1, 0, 1], [1, 0, 0, 1, 0]])


@pytest.mark.parametrize("method", ["standard", "minmax"])
def test_scaling_statistics_come_from_the_training_split_only(tmp_path, method):
    frame = table(200)
    path = write(tmp_path, frame)
    ids = {"drop": ["name"], "numeric": ["id"]}  # the id column says which rows trained
    raw = load(path, validation_split=0.2, seed=3, scale="none", **ids)
    scaled = load(path, validation_split=0.2, seed=3, scale=method, **ids)
    train_rows = frame.set_index("id").loc[raw.x_train[:, 0].astype(int)]
    stats = scaled.preprocessing["numeric"]
    if method == "standard":
        assert stats["age"]["mean"] == pytest.approx(train_rows["age"].mean())
        assert stats["age"]["scale"] == pytest.approx(train_rows["age"].std(ddof=0))
        assert stats["age"]["mean"] != pytest.approx(frame["age"].mean(), rel=1e-9, abs=0)
        np.testing.assert_allclose(scaled.x_train[:, :3].mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(scaled.x_train[:, :3].std(axis=0), 1, atol=1e-4)
    else:
        assert 1 / stats["balance"]["scale"] == pytest.approx(np.ptp(train_rows["balance"]))
        np.testing.assert_allclose(scaled.x_train[:, :3].min(axis=0), 0, atol=1e-6)
        np.testing.assert_allclose(scaled.x_train[:, :3].max(axis=0), 1, atol=1e-6)
    assert not np.allclose(scaled.x_test[:, :3].mean(axis=0), 0, atol=1e-3)
    # one-hot columns are not scaled
    assert set(np.unique(scaled.x_train[:, 3:])) == {0.0, 1.0}


# --- missing values -------------------------------------------------------------------


def with_gaps(n=120):
    frame = table(n).astype({"age": "float64"})
    frame.loc[[3, 10, 50, 77], "age"] = np.nan
    frame.loc[[5, 60], "city"] = np.nan
    return frame


def test_missing_values_are_filled_from_the_training_split(tmp_path):
    frame = with_gaps()
    ds = load(write(tmp_path, frame), drop=["name"], numeric=["id"], scale="none")
    train_rows = frame.set_index("id").loc[ds.x_train[:, 0].astype(int)]
    pre = ds.preprocessing
    assert pre["numeric"]["age"]["fill"] == train_rows["age"].median()
    assert pre["categorical"]["city"]["fill"] == train_rows["city"].mode()[0]
    for x in (ds.x_train, ds.x_test):
        assert np.isfinite(x).all()
    gaps = train_rows["age"].isna().to_numpy()
    assert gaps.any()
    np.testing.assert_array_equal(ds.x_train[gaps, 1], pre["numeric"]["age"]["fill"])
    n_missing = int(gaps.sum())
    median = pre["numeric"]["age"]["fill"]
    assert (
        f"age: {n_missing} missing value{'s' * (n_missing != 1)} in the training split "
        f"filled with the training median {median}" in ds.notes
    )


# --- targets and training end to end --------------------------------------------------


@pytest.mark.slow
def test_binary_target_trains_with_a_sigmoid_and_predicts_from_raw_rows(runner, write_config, tmp_path):
    """One training on a table with gaps: the notes about them, then raw rows through preprocessing.json."""
    import keras

    frame = with_gaps(200)
    config_file = csv_config(write_config, write(tmp_path, frame), drop=["id", "name"], scale="standard")
    result, run_dir = train(runner, config_file)
    notes = rundir.read_json(run_dir / rundir.RUN)["notes"]
    age = [n for n in notes if n.startswith("age: ")]
    city = [n for n in notes if n.startswith("city: ")]
    assert len(age) == 1 and "training median" in age[0]
    assert len(city) == 1 and "most frequent value" in city[0]
    printed = " ".join(result.output.split())  # rich wraps long lines when stderr is not a terminal
    for note in age + city:
        assert note in printed
    assert rundir.read_json(run_dir / rundir.PREPROCESSING)["notes"] == notes
    metrics = rundir.read_json(run_dir / rundir.METRICS)
    assert 0 <= metrics["test"]["accuracy"] <= 1
    pre = json.loads((run_dir / rundir.PREPROCESSING).read_text())
    assert pre["kind"] == "table" and pre["class_names"] == ["0", "1"]
    # preprocessing.json alone turns raw rows into what the model was trained on
    ds = load(config_file.parent / "table.csv", drop=["id", "name"], scale="standard", seed=7)
    encoded = csv_table.apply(frame, pre)
    assert sorted(map(tuple, encoded)) == sorted(map(tuple, np.concatenate([ds.x_train, ds.x_test])))
    model = keras.models.load_model(run_dir / rundir.MODEL)
    test_rows = [np.flatnonzero((encoded == row).all(axis=1))[0] for row in ds.x_test]
    predicted = (model.predict(encoded[test_rows], verbose=0)[:, 0] > 0.5).astype(int)
    assert (predicted == frame["left"].to_numpy()[test_rows]).mean() == pytest.approx(metrics["test"]["accuracy"])


@pytest.mark.slow
def test_string_target_with_three_classes(runner, write_config, tmp_path):
    frame = table(90)
    frame["plan"] = np.array(["gold", "basic", "silver"])[np.arange(90) % 3]
    path = write(tmp_path, frame.drop(columns="left"))
    ds = load(path, target="plan")
    assert ds.class_names == ["basic", "gold", "silver"]
    assert sorted(np.bincount(ds.y_test).tolist()) == [6, 6, 6]  # stratified
    config_file = csv_config(
        write_config, path, target="plan", units=3, activation="softmax", loss="sparse_categorical_crossentropy"
    )
    _, run_dir = train(runner, config_file)
    assert rundir.read_json(run_dir / rundir.PREPROCESSING)["class_names"] == ["basic", "gold", "silver"]


@pytest.mark.slow
def test_float_target_is_regression(runner, write_config, tmp_path):
    frame = table(60)
    frame["spend"] = frame["balance"] / 1000 + 0.5
    path = write(tmp_path, frame.drop(columns="left"))
    ds = load(path, target="spend")
    assert ds.class_names is None and ds.preprocessing["task"] == "regression"
    assert ds.y_train.dtype == np.float32
    config_file = csv_config(write_config, path, target="spend", activation="linear", loss="mse")
    _, run_dir = train(runner, config_file)
    assert "loss" in rundir.read_json(run_dir / rundir.METRICS)["test"]


# --- apply: raw rows later ------------------------------------------------------------


def test_apply_ignores_column_order_and_extra_columns(tmp_path):
    frame = table()
    pre = json.loads(json.dumps(load(write(tmp_path, frame), drop=["name"], numeric=["id"]).preprocessing))
    expected = csv_table.apply(frame, pre)
    shuffled = frame[["gender", "left", "balance", "name", "city", "age", "id"]].assign(extra="whatever")
    np.testing.assert_array_equal(csv_table.apply(shuffled, pre), expected)
    np.testing.assert_array_equal(csv_table.apply(frame.iloc[:1].to_dict("records"), pre), expected[:1])


def test_unknown_category_encodes_as_zeros(tmp_path):
    pre = load(write(tmp_path, table()), drop=["id", "name"]).preprocessing
    rows = pd.DataFrame({"age": [40, 40], "balance": [0.0, 0.0], "city": ["Rome", "Paris"], "gender": ["F", "F"]})
    encoded = csv_table.apply(rows, pre)
    np.testing.assert_array_equal(encoded[0, 2:5], [0, 0, 0])
    np.testing.assert_array_equal(encoded[1, 2:5], [0, 0, 1])
    np.testing.assert_array_equal(encoded[0, [0, 1, 5, 6]], encoded[1, [0, 1, 5, 6]])


def test_number_codes_match_however_the_rows_were_read(tmp_path):
    frame = table()
    frame["zone"] = np.arange(len(frame)) % 3
    pre = load(write(tmp_path, frame), drop=["id", "name"], categorical=["zone", "city", "gender"]).preprocessing
    rows = frame.iloc[:4].copy()
    as_floats = rows.astype({"zone": "float64"})  # what pandas reads when a column has a gap
    np.testing.assert_array_equal(csv_table.apply(as_floats, pre), csv_table.apply(rows, pre))


def test_apply_names_every_missing_column(tmp_path):
    pre = load(write(tmp_path, table()), drop=["id", "name"]).preprocessing
    with pytest.raises(DataError) as info:
        csv_table.apply(table().drop(columns="age").rename(columns={"balance": "Age"}), pre)
    assert str(info.value) == (  # every one at once
        "the input has no columns 'age' (did you mean 'Age'?), 'balance'; the model takes age, balance, city, gender"
    )


def test_apply_suggests_no_column_the_model_takes_for_a_missing_one(tmp_path):
    frame = table().rename(columns={"age": "Time", "balance": "Income"})
    pre = load(write(tmp_path, frame), drop=["id", "name"]).preprocessing
    with pytest.raises(DataError) as info:  # 'Income' is close to 'Time', but it is there and taken as itself
        csv_table.apply(frame.drop(columns="Time"), pre)
    assert str(info.value) == "the input has no column 'Time'; the model takes Time, Income, city, gender"


def test_apply_refuses_text_in_a_numeric_column(tmp_path):
    pre = load(write(tmp_path, table()), drop=["id", "name"]).preprocessing
    rows = table(3).astype({"age": object})
    rows.loc[1, "age"] = "forty"
    with pytest.raises(DataError) as info:
        csv_table.apply(rows, pre)
    assert "'age'" in str(info.value) and "'forty'" in str(info.value)


# --- reading --------------------------------------------------------------------------


def test_crlf_and_byte_order_mark_read_like_a_plain_file(tmp_path):
    frame = table()
    plain = write(tmp_path, frame)
    windows = tmp_path / "windows.csv"
    windows.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes().replace(b"\n", b"\r\n"))
    a, b = load(plain), load(windows)
    assert b.preprocessing["columns"] == a.preprocessing["columns"]  # no BOM stuck to the first name
    assert b.preprocessing["categorical"] == a.preprocessing["categorical"]  # no '\r' in the last
    np.testing.assert_array_equal(b.x_train, a.x_train)
    np.testing.assert_array_equal(b.y_test, a.y_test)


def test_relative_path_resolves_from_the_current_directory(tmp_path, monkeypatch):
    write(tmp_path, table(30))
    monkeypatch.chdir(tmp_path)
    ds = load("table.csv")
    assert len(ds.x_train) + len(ds.x_test) == 30


def test_fingerprint_is_the_file_checksum(tmp_path):
    path = write(tmp_path, table(30))
    assert load(path).fingerprint == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


# --- errors: exit 2, one line naming the place ----------------------------------------

TABLE = "a,b,city,left\n" + "".join(f"{i},{i % 7},{'xy'[i % 2]},{i % 2}\n" for i in range(20))

ERRORS = [
    pytest.param(None, {}, ["data.path", "missing.csv", "does not exist"], id="missing-file"),
    pytest.param("", {}, ["data.path", "is empty"], id="empty-file"),
    pytest.param("a,b,left\n", {}, ["data.path", "no rows"], id="header-only"),
    pytest.param("a,b,left\n1,2,0\n3,4,5,6\n", {}, ["data.path", "not a readable CSV", "line 3"], id="ragged-rows"),
    pytest.param(
        b"\x89PNG\r\n\x1a\n\x00\x00", {}, ["data.path", "is not a text table: it is a PNG image"], id="png-file"
    ),
    pytest.param(b"GIF89a\x10\x00", {}, ["data.path", "it is a GIF image", "data.source: images"], id="gif-file"),
    pytest.param(b"a,b\x00\x01,c\n", {}, ["data.path", "binary data (it holds NUL bytes)"], id="nul-bytes"),
    pytest.param(b"\xff\xfeabc", {}, ["data.path", "not UTF-8 text", "data.encoding"], id="utf-16-not-binary"),
    pytest.param(
        TABLE,
        {"target": "lefft"},
        ["data.target", "no column 'lefft'", "did you mean 'left'?", "columns: a, b, city, left"],
        id="target-typo",
    ),
    pytest.param(TABLE, {"drop": ["bb"]}, ["data.drop", "no column 'bb'", "did you mean 'b'?"], id="drop-absent"),
    pytest.param(
        TABLE,
        {"categorical": ["cty"]},
        ["data.categorical", "no column 'cty'", "did you mean 'city'?"],
        id="categorical-absent",
    ),
    pytest.param(TABLE, {"drop": ["left"]}, ["data.drop", "'left' is data.target"], id="drop-the-target"),
    pytest.param(
        TABLE, {"categorical": ["a"]}, ["data.categorical", "'city'", "holds text (e.g. '"], id="text-not-listed"
    ),
    pytest.param(TABLE, {"drop": ["a", "b", "city"]}, ["data.path", "no feature columns"], id="nothing-left"),
    pytest.param(
        "a,left\n1,0\n2,\n3,1\n4,\n5,1\n",
        {"missing_target": "error"},
        ["data.target", "column 'left'", "2 of 5 rows", "data row 2"],
        id="target-gaps",
    ),
    pytest.param("a,left\n1,\n2,\n", {}, ["data.target", "2 of 2 rows"], id="no-targets-at-all"),
    pytest.param(
        TABLE,
        {"categorical": ["city"], "numeric": ["city"]},
        ["data.categorical", "'city' is also in data.numeric"],
        id="listed-twice",
    ),
    pytest.param(TABLE, {"date": ["city"]}, ["data.date", "'city'", "does not read as dates (e.g. '"], id="not-dates"),
    pytest.param(TABLE, {"encoding": "klingon"}, ["data.encoding", "'klingon'"], id="unknown-encoding"),
    pytest.param(TABLE, {"sep": ";;"}, ["data.sep"], id="long-separator"),
]


@pytest.mark.parametrize("content, fields, fragments", ERRORS)
def test_bad_csv_is_one_error_line_through_check(runner, write_config, tmp_path, content, fields, fragments):
    path = tmp_path / "missing.csv"
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    config_file = write_config(data={"source": "csv", "path": str(path), "target": "left", **fields})
    result = runner.invoke(cli, ["check", str(config_file)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_churn_config_is_the_tutorial():
    churn = yaml.safe_load((Path(__file__).parent.parent / "configs" / "churn_ann.yaml").read_text())
    parsed = config.validate(churn, "churn_ann.yaml")
    assert parsed.data.source == "csv" and parsed.data.target == "Exited"
    assert parsed.data.categorical == ["Geography", "Gender"] and parsed.data.scale == "standard"
    assert [next(iter(layer)) for layer in parsed.model.layers] == ["Dense", "Dense", "Dense"]
    assert parsed.model.layers[-1]["Dense"]["activation"] == "sigmoid"
    assert (parsed.training.epochs, parsed.training.batch_size, parsed.training.validation_split) == (100, 10, 0)


# --- what users' own tables need --------------------------------------------------------


def test_numeric_columns_are_standardized_unless_the_config_says_otherwise(tmp_path):
    path = write(tmp_path, table(200))
    ds = load(path)
    assert section(path).scale == "standard"
    np.testing.assert_allclose(ds.x_train[:, :2].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train[:, :2].std(axis=0), 1, atol=1e-4)
    assert "mean" not in load(path, scale="none").preprocessing["numeric"]["age"]


def dated(n=200, seed=0):
    frame = table(n, seed)
    days = np.random.default_rng(seed).integers(0, 3 * 365, n)
    frame["signup"] = (pd.Timestamp("2012-01-01") + pd.to_timedelta(days, unit="D")).strftime("%Y/%m/%d")
    return frame


def test_a_date_column_becomes_year_and_cyclic_parts(tmp_path):
    frame = dated()
    ds = load(write(tmp_path, frame), scale="none")
    pre = ds.preprocessing
    assert pre["dates"] == {"signup": {"format": "%Y/%m/%d"}}
    parts = [name for name in pre["numeric"] if name.startswith("signup.")]
    assert parts == [
        "signup.year",
        "signup.month_sin",
        "signup.month_cos",
        "signup.day_of_year_sin",
        "signup.day_of_year_cos",
        "signup.weekday_sin",
        "signup.weekday_cos",
    ]
    assert pre["input_shape"] == [2 + 7 + 3 + 2]
    assert any("date columns detected" in n and "signup (%Y/%m/%d)" in n for n in ds.notes), ds.notes
    row = pd.DataFrame({"age": [30], "balance": [1.0], "city": ["Paris"], "gender": ["F"], "signup": ["2013/04/01"]})
    encoded = csv_table.apply(row, pre)[0]
    april = 2 * np.pi * 3 / 12
    np.testing.assert_allclose(encoded[2:5], [2013, np.sin(april), np.cos(april)], atol=1e-6)
    np.testing.assert_allclose(encoded[7:9], [np.sin(2 * np.pi * 0 / 7), np.cos(0)], atol=1e-6)  # a Monday


@pytest.mark.slow
def test_a_date_column_trains_and_predicts_from_raw_rows(runner, write_config, tmp_path):
    frame = dated(120)
    frame.loc[3, "signup"] = None
    config_file = csv_config(write_config, write(tmp_path, frame))
    checked = runner.invoke(cli, ["check", str(config_file)])
    assert checked.exit_code == 0 and "note: date columns detected" in checked.output, checked.output
    _, run_dir = train(runner, config_file)
    rows = frame.drop(columns="left").iloc[:5]
    rows.to_csv(tmp_path / "new.csv", index=False)
    result = runner.invoke(cli, ["predict", str(tmp_path / "new.csv"), "--run", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 5  # a JSON line per row


def test_dates_listed_in_the_config_are_read_as_dates(tmp_path):
    frame = table(60)
    frame["when"] = ["1970-01-01", "1971-01-01", "1972-01-01"] * 20
    pre = load(write(tmp_path, frame), date=["when"]).preprocessing
    assert pre["dates"] == {"when": {"format": "%Y-%m-%d"}}
    assert not any("date columns detected" in n for n in pre["notes"])


@pytest.mark.parametrize(
    "column, values, keep",
    [
        ("name", lambda n: [f"customer {i}" for i in range(n)], "data.categorical"),
        ("ticket", lambda n: [f"T{i % 90}" for i in range(n)], "data.categorical"),
        ("id", lambda n: np.arange(1000, 1000 + n), "data.numeric"),
    ],
)
def test_ids_and_free_text_are_refused_at_check(runner, write_config, tmp_path, column, values, keep):
    frame = table(200).drop(columns=["id", "name"])
    frame[column] = values(len(frame))
    config_file = csv_config(write_config, write(tmp_path, frame), drop=[])
    result = runner.invoke(cli, ["check", str(config_file)])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line, result.output
    assert f"column '{column}'" in line and "data.drop" in line and keep in line, line
    listed = {"data.categorical": "categorical", "data.numeric": "numeric"}[keep]
    lists = {"categorical": [column, "city", "gender"]} if listed == "categorical" else {"numeric": [column]}
    kept = load(write(tmp_path, frame), drop=[], **lists)
    assert column in kept.preprocessing[listed]


def test_one_check_names_every_column_to_drop_with_the_list_to_write(runner, write_config, tmp_path):
    frame = table(200)  # an id, and three columns of free text
    frame["comment"] = [f"called {i} times about the card" for i in range(len(frame))]
    frame["ticket"] = [f"T{i % 90}" for i in range(len(frame))]
    result = runner.invoke(cli, ["check", str(csv_config(write_config, write(tmp_path, frame), drop=[]))])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line, result.output
    assert "4 columns cannot be used as they are: columns 'id' (an id: numbered from 1 to 200, " in line, line
    assert "'name' (an id: 160 different values in 160 rows), 'comment' (free text: 160 different" in line, line
    assert "'ticket' (free text: 85 different values in 160 rows) are ids or free text" in line, line
    assert "add them to data.drop (drop: [id, name, comment, ticket])" in line, line


def test_rows_without_a_target_are_left_out_with_a_note(runner, write_config, tmp_path):
    frame = table(120).astype({"left": "float64"})
    frame.loc[[4, 40, 90], "left"] = np.nan
    path = write(tmp_path, frame)
    ds = load(path)
    assert len(ds.y_train) + len(ds.y_test) == 117
    assert (
        f"3 of 120 rows of '{path}' have no value in column 'left': left out (data.missing_target: error refuses them)"
        in ds.notes
    )
    assert ds.class_names == ["0", "1"]  # not "0.0", "1.0": the gaps made the column floats
    result = runner.invoke(cli, ["check", str(csv_config(write_config, path, missing_target="error"))])
    assert result.exit_code == 2 and "3 of 120 rows" in result.output, result.output


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_the_separator_is_sniffed_or_given(tmp_path, sep):
    frame = table(60)
    path = tmp_path / "table.csv"
    frame.to_csv(path, sep=sep, index=False)
    expected = load(write(tmp_path, table(60), "comma.csv")).x_train
    np.testing.assert_allclose(load(path).x_train, expected, rtol=1e-6)
    np.testing.assert_allclose(load(path, sep=sep).x_train, expected, rtol=1e-6)
    assert load(path).preprocessing["read"] == {"sep": None, "decimal": ".", "encoding": "utf-8", "na_values": []}


def test_single_quoted_headers_and_text_are_sniffed_or_given(tmp_path):
    path = tmp_path / "quoted.csv"
    table(60).to_csv(path, index=False, quotechar="'", quoting=csv.QUOTE_NONNUMERIC)
    assert path.read_text().startswith("'id','name','age',")
    expected = load(write(tmp_path, table(60), "plain.csv"))
    sniffed = load(path)
    np.testing.assert_allclose(sniffed.x_train, expected.x_train, rtol=1e-6)
    assert sniffed.preprocessing["categorical"] == expected.preprocessing["categorical"]
    assert "quotechar" not in sniffed.preprocessing["read"]  # sniffed again where predict reads rows
    assert load(path, quotechar="'").preprocessing["read"]["quotechar"] == "'"
    with pytest.raises(DataError) as info:
        load(path, quotechar='"')
    message = str(info.value)
    assert message.startswith(f"data.target: no column 'left' in '{path}'; did you mean \"'left'\"? "), message
    assert "(columns: \"'id'\", \"'name'\", " in message


def test_words_in_single_quotes_in_text_do_not_make_it_the_quote_character(tmp_path):
    # Most reviews quote a word ('plot'); the few with a comma are double-quoted, as csv writers do.
    # csv.Sniffer takes ' for the quote here, and the double-quoted commas then split their rows.
    n = 100
    reviews = [f"Good, the 'twist' of {i}" if i % 5 == 0 else f"The 'plot' of {i} was thin" for i in range(n)]
    frame = pd.DataFrame({"stars": np.arange(n) % 5, "review": reviews, "label": ["pos", "neg"] * (n // 2)})
    path = write(tmp_path, frame)
    assert "\n0,\"Good, the 'twist' of 0\",pos\n" in path.read_text()
    ds = load(path, target="label", drop=["review"], test_split=0.2)
    assert len(ds.x_train) + len(ds.x_test) == n
    assert ds.class_names == ["neg", "pos"]


def test_na_values_and_encoding_are_options(tmp_path):
    frame = table(60)
    frame["city"] = frame["city"].replace("Madrid", "Málaga")
    frame["age"] = frame["age"].astype(object)
    frame.loc[[1, 2], "age"] = "?"
    path = tmp_path / "latin.csv"
    frame.to_csv(path, index=False, encoding="latin-1")
    with pytest.raises(DataError) as info:
        load(path)
    assert "not UTF-8 text" in str(info.value) and "data.encoding" in str(info.value)
    with pytest.raises(DataError) as info:
        load(path, encoding="latin-1")
    assert "column 'age'" in str(info.value) and "'?'" in str(info.value) and "data.na_values" in str(info.value)
    ds = load(path, encoding="latin-1", na_values=["?"])
    assert "Málaga" in ds.preprocessing["categorical"]["city"]["categories"]
    assert any(n.startswith("age: ") and "missing value" in n for n in ds.notes), ds.notes


@pytest.mark.slow
def test_predict_reads_a_table_as_training_did(runner, write_config, tmp_path):
    frame = table(120)
    path = tmp_path / "spaced.csv"
    path.write_text(frame.to_csv(index=False, sep=";").replace(";", "; "))
    _, run_dir = train(runner, csv_config(write_config, path))
    rows = tmp_path / "rows.csv"
    rows.write_text(frame.drop(columns="left").iloc[:3].to_csv(index=False, sep=";").replace(";", "; "))
    result = runner.invoke(cli, ["predict", str(rows), "--run", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["input"] for line in result.stdout.splitlines()] == [f"{rows}:{i}" for i in (2, 3, 4)]


@pytest.mark.slow
def test_predict_warns_of_what_training_never_saw_naming_the_values(runner, write_config, tmp_path):
    frame = dated(120)
    _, run_dir = train(runner, csv_config(write_config, write(tmp_path, frame)))
    rows = frame.drop(columns="left").iloc[:4].copy()
    rows["city"] = ["Rome", "Paris", "Rome", "Oslo"]
    rows["signup"] = ["2013/02/01", "15/01/2017", "garbage", None]
    rows["age"] = rows["age"].astype(float)
    rows.loc[rows.index[0], "age"] = np.nan
    rows.to_csv(tmp_path / "new.csv", index=False)
    result = runner.invoke(cli, ["predict", str(tmp_path / "new.csv"), "--run", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert (  # the rows named by their line, as predict names them
        "column 'city': 3 rows with a category never seen in training, encoded as none of them: 'Rome', 'Oslo' "
        "(lines 2, 4, 5)" in said
    )
    assert (
        "column 'signup': 2 rows not dates in %Y/%m/%d, filled as missing: '15/01/2017', 'garbage' (lines 3, 4)" in said
    )
    assert "column 'signup': 1 row missing, filled as in training (line 5)" in said
    assert "column 'age': 1 row missing, filled as in training (line 2)" in said
    assert len(result.stdout.splitlines()) == 4


def test_a_decimal_comma_is_named_and_then_read(tmp_path):
    frame = table(60)
    path = tmp_path / "european.csv"
    frame.to_csv(path, sep=";", decimal=",", index=False)
    with pytest.raises(DataError) as info:
        load(path)
    assert "column 'balance' holds numbers with a decimal comma" in str(info.value)
    assert "set data.decimal: ','" in str(info.value)
    np.testing.assert_allclose(load(path, decimal=",").x_train, load(write(tmp_path, frame)).x_train, rtol=1e-6)


def test_a_cell_that_is_not_a_number_is_named_by_its_row(tmp_path):
    pre = load(write(tmp_path, table())).preprocessing
    rows = table(5).astype({"age": object})
    rows.loc[3, "age"] = "forty"
    with pytest.raises(DataError) as info:
        csv_table.apply(rows, pre)
    assert str(info.value) == "column 'age' must hold numbers; got 'forty' (data row 4)"


@pytest.mark.parametrize("name", ["wide.csv", "wide.csv.gz"])
@pytest.mark.parametrize(
    "header, expected",
    [
        (",".join(f"c{i}" for i in range(10_001)), "'{path}' has 10001 columns, more than nnrun reads (10000)"),
        ("x" * (1 << 20) + "1", "the first line of '{path}' is longer than 1048576 characters"),
    ],
)
def test_a_table_too_wide_is_refused_before_pandas_reads_it(tmp_path, monkeypatch, header, expected, name):
    import gzip

    from nnrun.data import csv_file

    path = tmp_path / name
    text = f"{header}\n" + "1," * 10_000 + "1\n"
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: pytest.fail("pandas read it"))
    with pytest.raises(DataError) as info:
        csv_file.read_table(path, {}, "data.path")
    assert str(info.value) == f"data.path: {expected.format(path=path)}"


def test_a_wide_table_is_read_and_its_columns_listed_with_a_count(tmp_path):
    frame = pd.DataFrame(np.arange(30 * 2_000).reshape(30, 2_000) % 7, columns=[f"c{i}" for i in range(2_000)])
    frame.insert(0, "left", np.arange(30) % 2)
    ds = load(write(tmp_path, frame), drop=[], scale="none")
    assert ds.x_train.shape[1] == 2_000
    with pytest.raises(DataError) as info:
        csv_table.apply(frame.drop(columns=[f"c{i}" for i in range(1_990)]), ds.preprocessing)
    assert str(info.value) == (
        "the input has no columns 'c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9', and 1980 more; "
        "the model takes c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, and 1985 more"
    )


def test_a_csv_gz_is_read_as_its_csv_and_a_damaged_one_is_one_line(tmp_path):
    import gzip

    from nnrun.data import csv_file

    frame = table(20)
    path = tmp_path / "rows.csv.gz"
    path.write_bytes(gzip.compress(frame.to_csv(index=False, sep=";").encode()))  # the separator sniffed inside
    pd.testing.assert_frame_equal(csv_file.read_table(path, {}, "data.path"), frame)
    for damaged in (path.read_bytes()[:40], frame.to_csv(index=False).encode()):  # cut short; not gzip at all
        path.write_bytes(damaged)
        with pytest.raises(DataError) as info:
            csv_file.read_table(path, {}, "data.path")
        assert str(info.value) == f"data.path: '{path}' is not a readable .gz file (cut short, damaged, or not gzip)"


def test_a_table_that_cannot_be_opened_is_one_line_and_exit_2(runner, tmp_path, monkeypatch):
    from nnrun.data import csv_file

    path = write(tmp_path, table(20))

    def denied(file, *args, **kwargs):  # chmod 000 is read anyway by root
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(csv_file, "open", denied, raising=False)
    result = runner.invoke(cli, ["init", str(path), "--target", "left"])
    assert result.exit_code == 2, result.output
    assert result.output == f"error: DATA: cannot read '{path}': Permission denied\n"


def test_a_file_that_is_not_a_table_is_refused_without_quoting_it(tmp_path):
    ds = load(write(tmp_path, table(60)))
    with pytest.raises(DataError) as info:
        csv_table.apply(pd.DataFrame({"root:x:0:0:secret": ["a", "b"]}), ds.preprocessing)
    assert str(info.value) == (
        "the input reads as a single column, not a table of the model's columns age, balance, city, gender"
    )


@pytest.mark.parametrize("whole", [True, False])
def test_a_missing_table_is_named_before_pandas_is_imported(tmp_path, monkeypatch, whole):
    from nnrun.data import csv_file

    monkeypatch.setitem(sys.modules, "pandas", None)  # importing it now fails: the check came first
    path = tmp_path / "missing.csv"
    with pytest.raises(DataError, match=r"^data.path: file '.*missing.csv' does not exist$"):
        csv_file.read_table(path, {}, "data.path") if whole else next(csv_file.read_chunks(path, {}, "data.path", 10))


_SPACE = st.sampled_from(["", " ", "\t", "\xa0", "\u3000", "\x1c", "\n"])  # Python's str.strip takes them all
_VALUES = st.one_of(
    st.builds(lambda a, t, b: a + t + b, _SPACE, st.text(max_size=4), _SPACE),
    st.sampled_from([None, np.nan, pd.NA, "1", "1.0", " 1", "nan", "None"]),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=False),
)


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(_VALUES, max_size=6), st.sampled_from([object, "str", "string"]))
def test_a_columns_categories_read_at_once_are_what_they_are_value_by_value(values, dtype):
    # A list takes as_text's path value by value; a column of text alone, its path at once.
    try:
        column = pd.Series(values, dtype=dtype)
    except (TypeError, ValueError):  # a text dtype refuses numbers
        return
    assert csv_table.as_text(column) == csv_table.as_text(column.tolist())
