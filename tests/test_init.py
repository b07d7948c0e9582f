"""nnrun init: a starter config written from the data, that validates, says why, and trains as it is.

Tables, arrays and image folders are tiny and generated in tmp_path; every test but the last reads
the data and writes YAML without Keras. The last trains one generated config for one epoch.
"""

import gzip
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from nnrun.cli.main import cli
from nnrun.config import loading

from trained_runs import make_image, make_image_folder

CITIES = ["Berlin", "Madrid", "Paris"]


def table(n=120, seed=0):
    """What newcomers' tables hold: an id, free text, missing values, dates, text classes."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    age[[3, 17]] = np.nan
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "comment": [f"called on day {i} about the bill" for i in range(n)],
            "age": age,
            "city": rng.choice(CITIES, n),
            "joined": pd.date_range("2020-01-01", periods=n, freq="3D").strftime("%Y-%m-%d"),
            "country": "DE",
            "plan": rng.choice(["basic", "plus", "pro"], n),
        }
    )


def assert_one_error_line(result, *fragments):
    """Exit 2, one `error:` line on stderr holding each fragment, nothing on stdout."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and result.stdout == "", result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def init(runner, *args):
    return runner.invoke(cli, ["init", *map(str, args)])


def written(result):
    """The config on stdout: read back as `nnrun train` reads it, and as plain YAML."""
    assert result.exit_code == 0, result.output
    loading.from_text(result.stdout, "starter.yaml")  # the schema, with every default
    return yaml.safe_load(result.stdout)


def line_of(text, start):
    """The line of the YAML that starts with `start` (indentation ignored), with its comment."""
    return next(line for line in text.splitlines() if line.strip().startswith(start))


# --- tables --------------------------------------------------------------------------------------------


def test_a_table_gets_its_columns_decided_as_check_decides_them_each_with_why(runner, tmp_path):
    path = tmp_path / "customers.csv"
    table().to_csv(path, index=False)
    result = init(runner, path, "--target", "plan")
    config = written(result)
    data = config["data"]
    assert (data["source"], data["path"], data["target"], data["task"]) == ("csv", str(path), "plan", "classification")
    assert data["drop"] == ["customer_id", "comment", "country"]
    text = result.stdout
    assert "customer_id is an id: numbered from 1 to 120" in text  # check's own reason, above the column
    assert "comment is free text: 120 different values in 120 rows" in text
    assert "country has the same value in every row" in text
    assert data["categorical"] == ["city"] and "3 categories" in line_of(text, "- city")
    assert data["date"] == ["joined"] and "%Y-%m-%d" in line_of(text, "- joined")
    assert data["numeric"] == ["age"] and "2 missing, filled with the training median" in line_of(text, "- age")
    assert "3 classes, basic" in text
    assert config["model"]["layers"][-1] == {"Dense": {"units": 3, "activation": "softmax"}}
    assert config["loss"] == "sparse_categorical_crossentropy" and config["metrics"] == ["accuracy"]
    assert config["training"]["callbacks"][0]["EarlyStopping"]["restore_best_weights"] is True
    # Every value a person may wonder about says why, beside it or above it.
    for start in ("seed:", "task:", "scale:", "test_split:", "loss:", "metrics:", "epochs:", "batch_size:"):
        assert "#" in line_of(text, start), start


def test_a_parquet_table_gets_the_config_its_csv_gets(runner, tmp_path):
    table().to_csv(tmp_path / "c.csv", index=False)
    table().to_parquet(tmp_path / "c.parquet")
    from_csv = written(init(runner, tmp_path / "c.csv", "--target", "plan"))
    result = init(runner, tmp_path / "c.parquet", "--target", "plan")
    from_parquet = written(result)
    assert from_parquet["data"] == {**from_csv["data"], "source": "parquet", "path": str(tmp_path / "c.parquet")}
    assert {k: v for k, v in from_parquet.items() if k != "data"} == {k: v for k, v in from_csv.items() if k != "data"}
    assert "# a Parquet table of 120 rows" in line_of(result.stdout, "source:")


def test_two_classes_get_one_sigmoid_unit_and_imbalance_is_pointed_out(runner, tmp_path):
    path = tmp_path / "churn.csv"
    frame = table().assign(left=[1 if i % 6 == 0 else 0 for i in range(120)]).drop(columns="plan")
    frame.to_csv(path, index=False)
    result = init(runner, path, "--target", "left")
    config = written(result)
    assert config["data"]["task"] == "classification"
    assert config["model"]["layers"][-1] == {"Dense": {"units": 1, "activation": "sigmoid"}}
    assert config["loss"] == "binary_crossentropy"
    assert "probability of '1'" in result.stdout
    assert "class '1' is 17% of the samples" in result.stdout and "# class_weight: balanced" in result.stdout


@pytest.mark.parametrize(
    ("values", "why"),
    [
        (lambda rng, n: rng.integers(20, 400, n), "different whole numbers, more than 20"),
        (lambda rng, n: rng.normal(3.5, 1.0, n), "not all whole"),
    ],
)
def test_a_quantity_is_a_regression_with_a_linear_unit_and_mae(runner, tmp_path, values, why):
    path = tmp_path / "prices.csv"
    table().assign(price=values(np.random.default_rng(1), 120)).to_csv(path, index=False)
    result = init(runner, path, "--target", "price")
    config = written(result)
    assert config["data"]["task"] == "regression" and config["data"]["scale_target"] is True
    assert why in line_of(result.stdout, "task:")
    assert config["model"]["layers"][-1] == {"Dense": {"units": 1}}
    assert (config["loss"], config["metrics"]) == ("mean_squared_error", ["mae"])
    assert "stratified" not in line_of(result.stdout, "test_split:")


def test_a_gzipped_table_with_words_for_missing_numbers(runner, tmp_path):
    frame = table().drop(columns=["comment", "joined"])
    frame["age"] = ["?" if pd.isna(age) else str(int(age)) for age in frame["age"]]
    path = tmp_path / "customers.csv.gz"
    with gzip.open(path, "wt") as f:
        frame.to_csv(f, index=False)
    result = init(runner, path, "--target", "plan")
    data = written(result)["data"]
    assert data["na_values"] == ["?"] and "age" in data["numeric"]
    assert "gzip-compressed" in line_of(result.stdout, "source:")


def test_decimal_commas_are_read_as_numbers(runner, tmp_path):
    path = tmp_path / "weights.csv"
    rows = [f"{i % 20};{50 + i % 7},{i % 10};{'ab'[i % 2]}" for i in range(60)]
    path.write_text("n;weight;kind\n" + "\n".join(rows) + "\n")
    data = written(init(runner, path, "--target", "kind"))["data"]
    assert data["decimal"] == "," and data["numeric"] == ["n", "weight"]


# --- arrays and image folders ------------------------------------------------------------------------


def test_npz_arrays_get_a_network_for_their_shape(runner, tmp_path):
    rng = np.random.default_rng(0)
    features = tmp_path / "features.npz"
    np.savez(features, x=rng.normal(size=(60, 4)), y=np.arange(60) % 3)
    config = written(init(runner, features))
    assert config["data"] == {"source": "npz", "path": str(features), "task": "classification", **_split(config)}
    assert config["data"]["scale"] == "standard"
    assert config["model"]["layers"][0] == {"Dense": {"units": 32, "activation": "relu"}}

    pixels = tmp_path / "pixels.npz"
    np.savez(pixels, x_train=rng.integers(0, 256, (50, 10, 10, 1)), y_train=np.eye(5)[np.arange(50) % 5])
    config = written(init(runner, pixels))
    assert config["data"]["rescale"] == "1/255"
    assert config["model"]["layers"][0]["Conv2D"]["padding"] == "same"  # 10 pixels: two valid 3x3s and poolings fail
    assert config["model"]["layers"][-1] == {"Dense": {"units": 5, "activation": "softmax"}}


def test_npz_labels_of_images_or_one_hot_are_classes_however_many(runner, tmp_path):
    # CIFAR-100's layout: 100 whole numbers label images; a table's 100 whole numbers would be a quantity.
    rng = np.random.default_rng(0)
    images, one_hot = tmp_path / "images.npz", tmp_path / "one_hot.npz"
    np.savez(images, x=rng.integers(0, 256, (300, 8, 8, 3)), y=np.arange(300) % 100)
    np.savez(one_hot, x=rng.normal(size=(300, 4)), y=np.eye(30)[np.arange(300) % 30])
    for path, classes in ((images, 100), (one_hot, 30)):
        config = written(init(runner, path))
        assert config["data"]["task"] == "classification", path
        assert config["model"]["layers"][-1] == {"Dense": {"units": classes, "activation": "softmax"}}
        assert config["loss"] == "sparse_categorical_crossentropy"


def _split(config):
    return {k: config["data"][k] for k in ("scale", "test_split") if k in config["data"]}


def test_an_image_folder_gets_a_small_cnn_sized_to_its_images(runner, tmp_path):
    root = make_image_folder(tmp_path / "photos", {"cat": 4, "dog": 3, "owl": 3})
    config = written(init(runner, root))
    data = config["data"]
    assert (data["source"], data["path"], data["color_mode"], data["rescale"]) == ("images", str(root), "rgb", "1/255")
    assert data["image_size"] == [28, 17]  # the median height and width, kept where they are small
    assert data["augmentation"][0] == {"RandomFlip": "horizontal"} and data["cache"] is True
    assert config["model"]["layers"][0]["Conv2D"] == {"filters": 16, "kernel_size": 3, "activation": "relu"}
    assert config["model"]["layers"][-1] == {"Dense": {"units": 3, "activation": "softmax"}}


def test_an_image_folder_with_its_own_test_split_and_gray_images(runner, tmp_path):
    root = tmp_path / "digits"
    for split, n in (("train", 3), ("test", 1)):
        for name in ("one", "two"):
            for i in range(n):
                make_image(root / split / name / f"{i}.png", (200, 200, 200), (300, 150), "L")
    result = init(runner, root)
    data = written(result)["data"]
    assert data["color_mode"] == "grayscale" and data["image_size"] == [32, 64]  # 150x300, at most 64 a side
    assert "test_split" not in data and "the folder's test/ (2 images)" in result.stdout


# --- where it goes, and what it refuses -----------------------------------------------------------------


def test_output_writes_a_new_file_and_never_over_one(runner, tmp_path):
    path = tmp_path / "customers.csv"
    table().to_csv(path, index=False)
    target = tmp_path / "configs" / "customers.yaml"
    result = init(runner, path, "--target", "plan", "-o", target)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "nnrun train" in result.stderr
    assert loading.load(target).data.target == "plan"
    before = target.read_text()
    result = init(runner, path, "--target", "plan", "--output", target)
    assert_one_error_line(result, "--output", "exists")
    assert target.read_text() == before


def test_an_output_that_cannot_be_written_is_the_arguments_fault_and_a_full_disk_the_machines(
    runner, tmp_path, monkeypatch
):
    import errno

    from nnrun import atomic
    from nnrun.errors import WriteFailed

    path = tmp_path / "customers.csv"
    table().to_csv(path, index=False)
    under_a_file = path / "customers.yaml"  # a folder where a file is
    line = assert_one_error_line(
        init(runner, path, "--target", "plan", "-o", under_a_file), f"--output '{under_a_file}'"
    )
    assert "file exists" in line

    def full(file, text):
        raise WriteFailed(file, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(atomic, "write_text", full)
    result = init(runner, path, "--target", "plan", "-o", tmp_path / "customers.yaml")
    assert result.exit_code == 1, result.output
    assert "no space left on device writing" in result.output


def test_tables_need_a_target_and_say_which_columns_there_are(runner, tmp_path):
    path = tmp_path / "t.csv"
    table().assign(Label=1).drop(columns="plan").to_csv(path, index=False)
    line = assert_one_error_line(init(runner, path), "--target COLUMN", "customer_id, comment")
    assert line.endswith("e.g. --target Label")  # named like a target, else the last column
    assert_one_error_line(init(runner, path, "--target", "labell"), "no column 'labell'", "did you mean 'Label'?")


Y = ["--target", "y"]


def ids_only(path):
    pd.DataFrame({"id": range(60), "y": [0, 1] * 30}).to_csv(path)  # and pandas's index, unnamed


def tables(path):
    """A folder of CSV files, as data often comes: not the table itself."""
    path.mkdir()
    table().to_csv(path / "a.csv", index=False)
    table().to_csv(path / "b.csv.gz", index=False)


@pytest.mark.parametrize(
    ("name", "make", "args", "fragments"),
    [
        ("missing", lambda p: None, [], ["no file or folder"]),
        ("empty", lambda p: p.write_text(""), Y, ["is empty"]),
        ("no-rows", lambda p: p.write_text("a,y\n"), Y, ["has a header but no rows"]),
        ("one-value", lambda p: p.write_text("a,y\n1,5\n2,5\n"), Y, ["same value in every row"]),
        ("only-ids", ids_only, Y, ["no column is left to predict y from", "check refuses Unnamed: 0, id"]),
        ("data.png", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n"), [], ["not a CSV or Parquet table, an .npz file"]),
        ("empty-folder", lambda p: p.mkdir(), [], ["not a folder of images", "no sub-folders"]),
        ("no-images", lambda p: [(p / name).mkdir(parents=True) for name in ("a", "b")], [], ["'a' has no images"]),
        ("one-class", lambda p: make_image_folder(p, {"cat": 2}), [], ["error: DATA '", "1 class folder ('cat')"]),
        ("target-on-images", lambda p: make_image_folder(p, {"cat": 2, "dog": 2}), Y, ["classes are its sub-folders"]),
        ("tables", tables, [], ["a folder of 2 tables (a.csv, b.csv.gz)", "name it, e.g. nnrun init ", "/a.csv"]),
        ("tables-t", tables, Y, ["a folder of 2 tables", "/a.csv --target y"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(runner, tmp_path, name, make, args, fragments):
    make(tmp_path / name)
    assert_one_error_line(init(runner, tmp_path / name, *args), *fragments)


def test_init_imports_no_tensorflow(runner, tmp_path, monkeypatch):
    path = tmp_path / "customers.csv"
    table().to_csv(path, index=False)
    root = make_image_folder(tmp_path / "photos", {"cat": 2, "dog": 2})
    for name in ("tensorflow", "keras", "jax"):
        monkeypatch.setitem(sys.modules, name, None)  # importing one now fails
    written(init(runner, path, "--target", "plan"))
    written(init(runner, root))


# --- trains as it is -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.any_backend  # what is checked is that the written config trains; Keras's numbers are not
def test_a_written_config_trains_as_it_is(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table().to_csv("customers.csv", index=False)
    result = init(runner, "customers.csv", "--target", "plan", "-o", "customers.yaml")
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["train", "customers.yaml", "--set", "training.epochs=1"])
    assert result.exit_code == 0, result.output
    assert "date columns detected" not in result.output  # init listed them: nothing is left to detection
