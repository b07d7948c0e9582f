"""nnrun.config: loading, defaults, short forms, errors, --set overrides, dump, schema.

No TensorFlow here: validating a config must not pay its start-up cost.
"""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from nnrun.config import json_schema as config_schema
from nnrun.config import loading as config
from nnrun.config import overrides
from nnrun.config.schema import Config
from nnrun.errors import BadInput, ConfigError

MINIMAL = """\
data: {source: sklearn, name: iris}
model:
  layers:
  - Dense: {units: 3, activation: softmax}
loss: sparse_categorical_crossentropy
"""


def load_text(write_config, text, name="cfg.yaml", overrides=()):
    return config.load(write_config(name, text=textwrap.dedent(text)), overrides)


def load_error(write_config, text=None, name="cfg.yaml", overrides=(), **sections):
    """Loads a config that must fail; returns the one-line message."""
    path = write_config(name, text=None if text is None else textwrap.dedent(text), **sections)
    with pytest.raises(ConfigError) as info:
        config.load(path, overrides)
    message = str(info.value)
    assert "\n" not in message, message
    assert "Traceback" not in message
    return message


# --- a valid config ----------------------------------------------------------


def test_minimal_config_gets_every_default(write_config):
    c = load_text(write_config, MINIMAL, name="my-run.yaml")
    assert c.seed == 42
    assert c.training.epochs == 10
    assert c.training.batch_size == 32
    assert c.training.validation_split == 0.1
    assert c.training.callbacks == []
    assert c.optimizer == {"name": "adam"}
    assert c.loss == {"name": "sparse_categorical_crossentropy"}
    assert c.metrics == []
    assert str(c.output.dir) == "runs"
    assert c.output.name == "my-run"  # the file's stem
    assert c.data.test_split == 0.2
    assert c.data.scale == "none"


def test_tiny_config_keeps_the_files_values(write_config, tmp_path):
    c = config.load(write_config())
    assert c.seed == 7
    assert c.data.name == "iris" and c.data.scale == "standard"
    assert c.training.epochs == 2 and c.training.batch_size == 16
    assert c.optimizer == {"name": "adam", "learning_rate": 0.01}
    assert c.metrics == [{"name": "accuracy"}]
    assert c.output.dir == tmp_path / "runs"
    assert c.output.name == "tiny"


def test_output_name_from_a_stem_with_odd_characters(write_config):
    c = load_text(write_config, MINIMAL, name="my run (v2).yaml")
    assert c.output.name == "my_run__v2_"


def test_output_name_in_the_file_wins_over_the_stem(write_config):
    c = load_text(write_config, MINIMAL + "output: {name: mine}\n", name="other.yaml")
    assert c.output.name == "mine"


def test_short_forms(write_config):
    c = load_text(
        write_config,
        """\
        data: {source: sklearn, name: digits}
        model:
        - Flatten
        - Dropout: 0.2
        - Dense: {units: 10}
        optimizer: {name: adam, learning_rate: 1e-4}
        loss: sparse_categorical_crossentropy
        metrics: [accuracy]
        training:
          callbacks:
          - EarlyStopping: {patience: 3}
          - ReduceLROnPlateau
        """,
    )
    assert c.model.layers == [{"Flatten": {}}, {"Dropout": 0.2}, {"Dense": {"units": 10}}]
    lr = c.optimizer["learning_rate"]
    assert isinstance(lr, float) and lr == 0.0001  # YAML 1.1 would read '1e-4' as a string
    assert c.metrics == [{"name": "accuracy"}]
    assert c.training.callbacks == [{"EarlyStopping": {"patience": 3}}, {"ReduceLROnPlateau": {}}]


def test_optimizer_as_a_plain_name(write_config):
    c = load_text(write_config, MINIMAL + "optimizer: sgd\n")
    assert c.optimizer == {"name": "sgd"}


def test_layer_with_empty_arguments(write_config):
    c = load_text(write_config, MINIMAL.replace("- Dense: {units: 3, activation: softmax}", "- Flatten:"))
    assert c.model.layers == [{"Flatten": {}}]


@pytest.mark.parametrize("text", ["1e-4", "1E-4", "-2.5e3", ".5e1", "1.0e4"])
def test_scientific_numbers_are_floats(write_config, text):
    c = load_text(write_config, MINIMAL + f"optimizer: {{name: adam, learning_rate: {text}}}\n")
    assert c.optimizer["learning_rate"] == float(text)
    assert isinstance(c.optimizer["learning_rate"], float)


def test_quoted_scientific_string_stays_a_string(write_config):
    c = load_text(write_config, MINIMAL + "output: {name: '1e3'}\n")
    assert c.output.name == "1e3"


# --- schema errors -----------------------------------------------------------


def test_error_is_bad_input_with_exit_code_2(write_config):
    path = write_config(text=MINIMAL + "trainig: {epochs: 3}\n")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert isinstance(info.value, BadInput)
    assert info.value.exit_code == 2


def test_unknown_top_level_key_suggests(write_config):
    message = load_error(write_config, MINIMAL + "trainig: {epochs: 3}\n")
    assert "cfg.yaml" in message
    assert "unknown key 'trainig'" in message
    assert "did you mean 'training'?" in message


def test_unknown_nested_key_suggests(write_config):
    message = load_error(write_config, MINIMAL + "training: {epochz: 3}\n")
    assert "cfg.yaml: training:" in message
    assert "unknown key 'epochz'" in message
    assert "did you mean 'epochs'?" in message


def test_unknown_key_in_data_section_names_data(write_config):
    message = load_error(write_config, data={"source": "sklearn", "name": "iris", "scael": "standard"})
    assert "data: unknown key 'scael'" in message
    assert "did you mean 'scale'?" in message
    assert "sklearn" not in message.split("data:")[1]  # the union tag is not part of the place


def test_negative_epochs(write_config):
    message = load_error(write_config, training={"epochs": -3})
    assert "training.epochs" in message
    assert "greater than 0" in message
    assert "got -3" in message


def test_string_where_a_number_belongs(write_config):
    message = load_error(write_config, training={"batch_size": "ten"})
    assert "training.batch_size" in message
    assert "integer" in message
    assert "got 'ten'" in message


def test_fraction_out_of_range(write_config):
    message = load_error(write_config, training={"validation_split": 1.5})
    assert "training.validation_split" in message
    assert "got 1.5" in message


def test_wrong_dataset_name_suggests(write_config):
    message = load_error(write_config, data={"source": "sklearn", "name": "irs"})
    assert "data.name" in message
    assert "got 'irs'" in message
    assert "did you mean 'iris'?" in message
    assert "'digits'" in message  # lists the choices


def test_wrong_data_source_suggests(write_config):
    message = load_error(write_config, data={"source": "sklaern", "name": "iris"})
    assert "data.source" in message
    assert "got 'sklaern'" in message
    assert "did you mean 'sklearn'?" in message
    assert "npz" in message


def test_missing_data_source(write_config):
    message = load_error(write_config, data={"name": "iris"})
    assert "data.source" in message
    assert "missing" in message
    assert "sklearn" in message and "npz" in message


def test_npz_without_path(write_config):
    message = load_error(write_config, data={"source": "npz"})
    assert "data.path: missing" in message


def test_missing_loss(write_config):
    message = load_error(write_config, text=MINIMAL.replace("loss: sparse_categorical_crossentropy\n", ""))
    assert "loss: missing" in message


@pytest.mark.parametrize("model", ["model: []\n", "model: {layers: []}\n"])
def test_empty_layer_list(write_config, model):
    text = MINIMAL.split("model:")[0] + model + "loss: mse\n"
    message = load_error(write_config, text)
    assert "model.layers" in message
    assert "at least 1" in message


def test_layer_item_that_is_a_number(write_config):
    message = load_error(write_config, model=[{"Dense": {"units": 3}}, 5])
    assert "model.layers[1]" in message
    assert "Keras name" in message
    assert "got 5" in message


def test_unknown_callback_suggests(write_config):
    message = load_error(write_config, training={"callbacks": [{"EarlyStoping": {"patience": 2}}]})
    assert "training.callbacks[0]" in message
    assert "unknown callback 'EarlyStoping'" in message
    assert "did you mean 'EarlyStopping'?" in message


def test_several_errors_are_named_in_one_line(write_config):
    message = load_error(write_config, training={"epochs": -1, "batch_size": 0})
    assert message.endswith(
        "training.epochs: input should be greater than 0; got -1 "
        "(and 1 more: training.batch_size: input should be greater than 0; got 0)"
    ), message


def test_bad_output_name(write_config):
    message = load_error(write_config, output={"name": "a/b"})
    assert "output.name" in message
    assert "got 'a/b'" in message


# --- the file itself ---------------------------------------------------------


def test_yaml_syntax_error_names_file_and_line(write_config):
    message = load_error(write_config, "seed: 1\ndata: {source: sklearn\nmodel: [Flatten]\n", name="broken.yaml")
    assert "broken.yaml:" in message
    assert "YAML syntax error" in message
    line = int(message.split("broken.yaml:")[1].split(":")[0])
    assert line >= 2  # the flow mapping opened on line 2 is never closed


def test_yaml_syntax_error_line_is_the_bad_line(write_config):
    message = load_error(write_config, "seed: 1\ndata:\n  - a\n b: 2\n", name="broken.yaml")
    assert "broken.yaml:4:" in message


def test_python_tag_is_refused_and_never_run(write_config, tmp_path):
    marker = tmp_path / "hacked"
    message = load_error(
        write_config,
        f'seed: 1\nmodel: !!python/object/apply:os.system ["touch {marker}"]\n',
        name="evil.yaml",
    )
    assert not marker.exists()
    assert "evil.yaml:2" in message
    assert "python/object/apply:os.system" in message
    assert "not allowed" in message


@pytest.mark.parametrize("text", ["seed: !!int abc\n", "seed: !!float abc\n", "seed: !!timestamp abc\n"])
def test_standard_tag_with_bad_value_is_a_config_error(write_config, text):
    message = load_error(write_config, text, name="bad.yaml")
    assert "bad.yaml" in message


def test_unhashable_key_is_not_reported_as_a_tag(write_config):
    message = load_error(write_config, "? [a, b]\n: 1\n", name="bad.yaml")
    assert "bad.yaml:1" in message
    assert "tag" not in message
    assert "unhashable key" in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        config.load(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)
    assert "does not exist" in str(info.value)


def test_directory_as_config(tmp_path):
    with pytest.raises(ConfigError) as info:
        config.load(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "not a file" in str(info.value)


def test_top_level_list(write_config):
    message = load_error(write_config, "- seed: 1\n- loss: mse\n", name="list.yaml")
    assert "list.yaml" in message
    assert "mapping" in message
    assert "list" in message.split("list.yaml")[1]


def test_empty_file(write_config):
    message = load_error(write_config, "", name="empty.yaml")
    assert "empty.yaml" in message
    assert "mapping" in message


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"seed: 1\nloss: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert "latin.yaml" in str(info.value)
    assert "cannot read" in str(info.value)


# --- --set overrides ---------------------------------------------------------


def test_overrides_are_typed(write_config):
    c = load_text(
        write_config,
        MINIMAL + "optimizer: adam\n",
        overrides=["training.epochs=3", "optimizer.learning_rate=0.01", "training.shuffle=false"],
    )
    assert c.training.epochs == 3 and isinstance(c.training.epochs, int)
    assert c.optimizer == {"name": "adam", "learning_rate": 0.01}
    assert isinstance(c.optimizer["learning_rate"], float)
    assert c.training.shuffle is False


def test_override_scientific_float(write_config):
    c = load_text(write_config, MINIMAL, overrides=["optimizer.learning_rate=1e-3"])
    assert c.optimizer["learning_rate"] == 0.001


def test_override_later_wins(write_config):
    c = load_text(write_config, MINIMAL, overrides=["training.epochs=3", "training.epochs=5"])
    assert c.training.epochs == 5


def test_override_list_index(write_config):
    path = write_config(model=[{"Dense": {"units": 8}}, {"Dropout": 0.2}, {"Dense": {"units": 3}}])
    c = config.load(path, ["model.layers.1.Dropout=0.3", "model.layers.2.Dense.units=4"])
    assert c.model.layers == [{"Dense": {"units": 8}}, {"Dropout": 0.3}, {"Dense": {"units": 4}}]


def test_override_yaml_value(write_config):
    c = load_text(write_config, MINIMAL, overrides=["metrics=[accuracy, mae]"])
    assert c.metrics == [{"name": "accuracy"}, {"name": "mae"}]


def test_override_of_output_name(write_config):
    c = load_text(write_config, MINIMAL, name="file.yaml", overrides=["output.name=custom"])
    assert c.output.name == "custom"


def test_invalid_override_is_validated_like_the_file(write_config):
    message = load_error(write_config, MINIMAL, overrides=["training.epochs=-1"])
    assert "--set" in message
    assert "training.epochs" in message
    assert "got -1" in message


def test_override_without_equals(write_config):
    message = load_error(write_config, MINIMAL, overrides=["training.epochs"])
    assert "--set training.epochs" in message
    assert "key.path=value" in message


def test_override_with_empty_key(write_config):
    message = load_error(write_config, MINIMAL, overrides=["=3"])
    assert "key.path=value" in message


@pytest.mark.parametrize(
    "item, bad, good",
    [("trainig.epochs=3", "trainig", "training"), ("training.epochz=3", "epochz", "epochs")],
)
def test_override_of_unknown_key_suggests(write_config, item, bad, good):
    message = load_error(write_config, MINIMAL, overrides=[item])
    assert "--set" in message
    assert f"unknown key '{bad}'" in message
    assert f"did you mean '{good}'?" in message


@pytest.mark.parametrize("index", ["5", "x", "-1"])
def test_override_index_not_in_list(write_config, index):
    message = load_error(write_config, MINIMAL, overrides=[f"model.layers.{index}.Dropout=0.3"])
    assert f"--set model.layers.{index}.Dropout=0.3" in message
    assert f"'model.layers.{index}' is not an index of a list of 1" in message


def test_override_through_a_value(write_config):
    message = load_error(write_config, MINIMAL, overrides=["seed.x=1"])
    assert "'seed' is 42, not a section" in message


def test_override_with_bad_yaml_value(write_config):
    message = load_error(write_config, MINIMAL, overrides=["metrics=[accuracy"])
    assert "--set metrics=[accuracy" in message
    assert "YAML syntax error" in message


def test_apply_override_in_place():
    resolved = {"training": {"epochs": 10}, "model": {"layers": [{"Dense": {"units": 3}}]}}
    overrides.apply_override(resolved, "training.epochs=3")
    overrides.apply_override(resolved, "model.layers.0.Dense.units=7")
    overrides.apply_override(resolved, "optimizer.learning_rate=0.5")  # makes missing sections
    assert resolved == {
        "training": {"epochs": 3},
        "model": {"layers": [{"Dense": {"units": 7}}]},
        "optimizer": {"learning_rate": 0.5},
    }


def test_get_path_walks_mappings_and_lists_and_names_where_it_left():
    resolved = {"model": {"layers": [{"Dense": {"units": 3}}]}, "training": {"fine_tune": None}, "seed": 42}
    assert overrides.get_path(resolved, "model.layers.0.Dense.units") == 3
    with pytest.raises(overrides.PathError) as listed:
        overrides.get_path(resolved, "model.layers.1.Dense")
    assert (listed.value.here, listed.value.parent, listed.value.node) == (
        "model.layers.1",
        "model.layers",
        [{"Dense": {"units": 3}}],
    )
    with pytest.raises(overrides.PathError) as null:  # a null section is not there
        overrides.get_path(resolved, "training.fine_tune.epochs")
    assert (null.value.here, null.value.part) == ("training.fine_tune", "fine_tune")
    with pytest.raises(overrides.PathError) as scalar:
        overrides.get_path(resolved, "seed.x")
    assert (scalar.value.parent, scalar.value.node) == ("seed", 42)
    assert overrides.get_path(resolved, "training.fine_tune.epochs", make=True) == {}
    assert resolved["training"] == {"fine_tune": {"epochs": {}}}


# --- dump ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        MINIMAL,
        """\
        seed: 3
        data: {source: npz, path: data/arrays.npz, scale: minmax, test_split: 0.25}
        model:
        - Flatten
        - Dense: {units: 3, kernel_regularizer: {class_name: L2, config: {l2: 1e-10}}}
        optimizer: {name: adam, learning_rate: 1e-4}
        loss: mse
        metrics: [mae]
        training: {epochs: 4, callbacks: [{EarlyStopping: {patience: 2}}]}
        output: {dir: elsewhere, save_h5: true}
        """,
    ],
)
def test_dump_round_trips(write_config, tmp_path, text):
    first = load_text(write_config, text, name="orig.yaml")
    dumped = tmp_path / "resolved.yaml"
    dumped.write_text(config.dump(first))
    again = config.load(dumped)
    assert again.model_dump() == first.model_dump()
    assert again.output.name == "orig"  # the resolved name, not the dump's file stem


def test_dump_with_overrides_round_trips(write_config, tmp_path):
    first = load_text(write_config, MINIMAL, overrides=["training.epochs=3", "optimizer.learning_rate=0.01"])
    dumped = tmp_path / "resolved.yaml"
    dumped.write_text(config.dump(first))
    again = config.load(dumped)
    assert again.model_dump() == first.model_dump()
    assert again.training.epochs == 3


def test_dump_is_readable_yaml_with_source_first(write_config):
    c = config.load(write_config())
    text = config.dump(c)
    plain = yaml.safe_load(text)
    assert list(plain)[:3] == ["backend", "seed", "data"]
    assert plain["backend"] in ("tensorflow", "jax")
    assert list(plain["data"])[0] == "source"
    assert list(plain["data"])[:2] == ["source", "name"]
    assert plain["data"] == {
        "source": "sklearn",
        "name": "iris",
        "test_split": 0.2,
        "scale": "standard",
        "rescale": None,
        "augmentation": [],
        "task": "auto",
        "scale_target": True,
    }
    assert plain["training"]["epochs"] == 2
    assert plain["output"]["name"] == "tiny"
    assert "!!" not in text  # plain YAML, no Python tags


# --- schema -------------------------------------------------------------------


def test_json_schema():
    schema = config_schema.json_schema()
    assert isinstance(schema, dict)
    for key in ("seed", "data", "model", "optimizer", "loss", "metrics", "training", "output"):
        assert key in schema["properties"], key
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"data", "model", "loss"}
    text = json.dumps(schema)
    assert json.loads(text) == schema
    assert "EarlyStopping" in text  # the callback names reach editors


# --- no TensorFlow -------------------------------------------------------------


def test_config_data_and_rundir_do_not_import_tensorflow(write_config):
    path = write_config()
    code = textwrap.dedent(
        f"""
        import sys
        import nnrun.config.loading, nnrun.data, nnrun.rundir.files
        nnrun.config.loading.load({str(path)!r}, ["training.epochs=1"])
        heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
        print("imported:", heavy)
        sys.exit(1 if heavy else 0)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported: []" in done.stdout


def test_backend_is_the_configs_then_keras_backend_then_auto(write_config, monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert config.load(write_config()).backend == "jax"  # auto, on a dense network (test_auto_backend.py)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert config.load(write_config()).backend == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert config.load(write_config()).backend == "jax"
    assert config.load(write_config(backend="tensorflow")).backend == "tensorflow"
    message = load_error(write_config, backend="torch")
    assert "backend: input should be 'auto', 'tensorflow' or 'jax'; got 'torch'" in message


# --- the schema against what nnrun accepts (as editors' validators use it) ---------------

ROOT = Path(__file__).resolve().parent.parent


def schema_validator(fragment=False):
    jsonschema = pytest.importorskip("jsonschema")
    schema = config_schema.json_schema()
    if fragment:  # a README example shows some sections, not a whole config
        schema = {**schema, "required": []}
    return jsonschema.Draft202012Validator(schema)


def readme_examples():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    examples = []
    for block in blocks:
        try:
            value = yaml.safe_load(block)
        except yaml.YAMLError:
            continue
        if isinstance(value, dict) and set(value) <= set(Config.model_fields):
            examples.append(value)
    return examples


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_shipped_config_is_valid_against_the_schema(name):
    errors = list(schema_validator().iter_errors(yaml.safe_load((ROOT / "configs" / name).read_text())))
    assert not errors, [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors]


def test_the_readmes_examples_are_valid_against_the_schema():
    examples = readme_examples()
    assert len(examples) >= 6, "the README's yaml examples are found"
    validator = schema_validator(fragment=True)
    for example in examples:
        errors = list(validator.iter_errors(example))
        assert not errors, (example, [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors])


@pytest.mark.parametrize(
    "change",
    [
        {"trainig": {"epochs": 3}},
        {"training": {"epochs": "ten"}},
        {"data": {"source": "sklearn", "name": "digits", "rescale": "a/b"}},
        {"data": {"source": "spreadsheet", "path": "x.csv"}},
        {"optimizer": 3},
        {"sweep": {"parameters": {"optimizer.learning_rate": {"low": 1e-4, "hihg": 1e-1}}}},
    ],
)
def test_bad_configs_are_rejected_by_the_schema_too(change):
    good = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    assert not list(schema_validator().iter_errors(good))
    assert list(schema_validator().iter_errors({**good, **change})), change


def test_flatten_names_every_leaf_as_set_does():
    from nnrun.config import overrides

    flat = overrides.flatten({"a": {"b": 1}, "c": [{"d": 2}, 3], "e": {}, "f": [], "g": None, "h": ["x", "y"]})
    assert flat == {"a.b": 1, "c.0.d": 2, "c.1": 3, "e": {}, "f": [], "g": None, "h": ["x", "y"]}
    resolved = {"model": {"layers": [{"Dense": {"units": 8}}]}, "data": {"drop": ["id", "name"]}}
    for key, value in overrides.flatten(resolved).items():
        assert overrides.get_path(resolved, key) == value, "each flattened key walks back to its value"
