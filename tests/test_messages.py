"""Messages in nnrun's words: each mistake a newcomer makes is one line naming the place, the value and the fix.

Every config here is refused before data is read or Keras loaded; numbers in tables are
checked on run directories written by hand.
"""

import json
import textwrap

import pytest
import yaml

from nnrun.cli.main import cli
from nnrun.config import loading as config
from nnrun.errors import quoted, shown

IMAGES = {"source": "images", "path": "photos", "image_size": [16, 16]}
CSV = {"source": "csv", "path": "table.csv", "target": "left", "drop": ["id"]}


def refused(runner, path, *overrides):
    """`nnrun check` on a config that must be refused: exit 2 and one line; returns the line after the file."""
    args = ["check", str(path), *(item for o in overrides for item in ("--set", o))]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), result.output
    return lines[0].split(": ", 2)[2]


@pytest.mark.parametrize("size", ["64", "[64]", "[64, 64, 3]", "[0, 64]", "[64, -1]", "[a, b]", "[true, 4]"])
def test_an_image_size_that_is_not_height_and_width_says_what_to_write(runner, write_config, size):
    line = refused(runner, write_config(data=IMAGES), f"data.image_size={size}")
    got = repr(yaml.safe_load(size))
    assert line == f"data.image_size: expected [height, width] of positive integers, e.g. [64, 64]; got {got}"


def test_a_list_written_with_commas_says_to_write_brackets(runner, write_config):
    line = refused(runner, write_config(data=CSV), "data.drop=A,B")
    assert line == "data.drop: expected a list; got 'A,B': write [A, B]"


@pytest.mark.parametrize("value, got", [("sometimes", "'sometimes'"), ("2", "2")])
def test_a_stream_that_is_not_true_false_or_auto_says_which_it_takes(runner, write_config, value, got):
    line = refused(runner, write_config(data=CSV), f"data.stream={value}")
    assert line == f"data.stream: expected true, false or auto; got {got}"


def test_a_tab_in_yaml_is_named_with_its_line_and_column(runner, write_config):
    path = write_config(text="data: {source: sklearn, name: iris}\nmodel:\n  layers:\n\t- Flatten\nloss: mse\n")
    result = runner.invoke(cli, ["check", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output == (
        f"error: {path}:4:1: a tab; YAML does not allow tabs for indentation: indent with spaces\n"
    )


@pytest.mark.parametrize(
    "override, expected",
    [
        ("epochs=3", "config: unknown key 'epochs'; it belongs under training (training.epochs)"),
        (
            "learning_rate=0.1",
            "config: unknown key 'learning_rate'; it belongs under optimizer (optimizer.learning_rate)",
        ),
        ("training.scale=minmax", "training: unknown key 'scale'; it belongs under data (data.scale)"),
        ("data.batch_size=8", "data: unknown key 'batch_size'; it belongs under training (training.batch_size)"),
        ("training.optimizer=sgd", "training: unknown key 'optimizer'; it is a top-level key (optimizer: at the start"),
        ("training.epochz=3", "training: unknown key 'epochz'; did you mean 'epochs'?"),
    ],
)
def test_a_key_in_the_wrong_section_says_where_it_belongs(runner, write_config, override, expected):
    assert refused(runner, write_config(), override).startswith(expected)


def test_a_top_level_key_of_a_section_in_the_file_says_where_it_belongs(runner, write_config):
    path = write_config(
        text="data: {source: sklearn, name: iris}\nmodel: [{Dense: 3}]\nloss: mse\nepochs: 3\nbatch_size: 8\n"
    )
    line = refused(runner, path)
    assert line.startswith("config: unknown key 'epochs'; it belongs under training (training.epochs)"), line


def test_another_source_names_the_keys_it_does_not_take_and_suggests_none(runner, write_config):
    line = refused(runner, write_config(data=CSV), "data.source=images")
    assert line.startswith("data: source 'images' does not take target, drop, categorical, numeric, date, "), line
    assert "sep" in line and "(keys of source csv and parquet)" in line and "did you mean" not in line, line
    line = refused(runner, write_config(), "data.image_size=[8, 8]")
    assert line.startswith("data: source 'sklearn' does not take image_size (key of source images)"), line


def test_other_errors_are_named_not_only_counted(runner, write_config):
    path = write_config(text="data: {source: excel, path: x.xlsx}\nmodel: [Flatten]\n")
    line = refused(runner, path)
    assert line == (
        "data.source: must be one of sklearn, keras, npz, csv, parquet, images; got 'excel' "
        "(and 1 more: loss: missing (required))"
    )


@pytest.mark.parametrize("written", ["list", "mapping"])
@pytest.mark.parametrize("path", ["model.0.Dense.units", "model.layers.0.Dense.units"])
def test_a_layer_is_addressed_either_way_whichever_way_the_model_was_written(write_config, written, path):
    layers = [{"Dense": {"units": 8, "activation": "relu"}}, {"Dense": {"units": 3, "activation": "softmax"}}]
    model = layers if written == "list" else {"layers": layers}
    loaded = config.load(write_config(model=model), [f"{path}=5"])
    assert loaded.model.layers[0] == {"Dense": {"units": 5, "activation": "relu"}}
    swept = config.load(write_config(model=model, sweep={"parameters": {path: [4, 6]}}))
    assert list(swept.sweep.parameters) == [path]


def test_a_layer_index_past_the_end_names_the_list(write_config):
    with pytest.raises(Exception) as info:
        config.load(write_config(model=[{"Dense": 3}]), ["model.4.Dense.units=5"])
    assert str(info.value) == "--set model.4.Dense.units=5: 'model.layers.4' is not an index of a list of 1"


@pytest.mark.parametrize(
    "name, in_quotes, in_a_list",
    [
        ("vote", "'vote'", "vote"),
        ("'vote'", "\"'vote'\"", "\"'vote'\""),
        ("a b", "'a b'", "a b"),
        ("a,b", "'a,b'", "'a,b'"),
    ],
)
def test_names_are_shown_so_that_what_is_shown_is_what_to_write(name, in_quotes, in_a_list):
    assert quoted(name) == in_quotes and shown(name) == in_a_list


def made_run(root, name, learning_rate, metrics):
    """A completed run directory written by hand: run.json, a config and metrics."""
    run = root / name
    run.mkdir(parents=True)
    (run / "run.json").write_text(
        json.dumps({"status": "completed", "name": name, "started_at": "2026-01-01T00:00:00"})
    )
    (run / "config.yaml").write_text(
        textwrap.dedent(f"""\
            data: {{source: sklearn, name: iris}}
            model: [{{Dense: 3}}]
            optimizer: {{name: adam, learning_rate: {learning_rate}}}
            """)
    )
    (run / "metrics.json").write_text(json.dumps({"test": metrics}))
    return run


def test_runs_diff_and_runs_never_print_different_numbers_the_same(runner, tmp_path):
    a = made_run(tmp_path, "a", "1.0e-05", {"loss": 0.50001, "accuracy": 0.95001})
    b = made_run(tmp_path, "b", "3.0e-05", {"loss": 0.5, "accuracy": 0.95004})
    result = runner.invoke(cli, ["runs", "diff", str(a), str(b)])
    assert result.exit_code == 0, result.output
    rows = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
        for line in result.stdout.splitlines()
        if line.count("│") >= 4
    }
    assert rows["optimizer.learning_rate"] == ["1e-05", "3e-05"]
    assert rows["test.accuracy"] == ["0.95001", "0.95004", "+3e-05"]
    assert rows["test.loss"] == ["0.50001", "0.50000", "-1e-05"]
    listing = runner.invoke(cli, ["runs", str(tmp_path)])
    assert listing.exit_code == 0, listing.output
    assert "0.95001" in listing.stdout and "0.95004" in listing.stdout, listing.stdout


def test_runs_diff_shows_a_changed_list_of_names_as_one_row(tmp_path):
    from nnrun.rundir import runs

    a = made_run(tmp_path, "a", "0.001", {"accuracy": 0.9})
    b = made_run(tmp_path, "b", "0.001", {"accuracy": 0.9})
    with (a / "config.yaml").open("a") as f:
        f.write("training: {callbacks: []}\nmetrics: []\n")
    with (b / "config.yaml").open("a") as f:
        f.write("training: {callbacks: [{EarlyStopping: {patience: 3}}]}\nmetrics: [accuracy, auc]\n")
    changed = {row["key"]: (row["a"], row["b"]) for row in runs.diff(a, b).config}
    assert changed == {  # a list of names is one row, as --set writes it; a list of mappings is by item
        "metrics": ([], ["accuracy", "auc"]),
        "training.callbacks": ([], None),
        "training.callbacks.0.EarlyStopping.patience": (None, 3),
    }


def test_runs_diff_shows_a_list_in_a_hand_edited_metrics_json_instead_of_failing(runner, tmp_path):
    a = made_run(tmp_path, "a", "0.001", {"accuracy": [0.9, 0.8]})
    b = made_run(tmp_path, "b", "0.001", {"accuracy": 0.85})
    result = runner.invoke(cli, ["runs", "diff", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "[0.9, 0.8]" in result.stdout and "0.8500" in result.stdout
