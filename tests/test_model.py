"""nnrun.model.build: config layer lists, optimizers, losses, metrics and callbacks -> Keras.

Every mistake in a config is a `ConfigError` with one line that names the
place; nothing here trains.
"""

import numpy as np
import pytest

from nnrun import data
from nnrun.config import validation as config
from nnrun.errors import ConfigError
from nnrun.model import build as model

pytestmark = pytest.mark.backend  # every test here builds Keras models, optimizers, losses and callbacks

IRIS = {"source": "sklearn", "name": "iris"}


def make(layers=({"Dense": {"units": 3, "activation": "softmax"}},), **sections):
    """A validated config: iris, the given layers, sparse categorical crossentropy."""
    raw = {"data": IRIS, "model": {"layers": list(layers)}, "loss": "sparse_categorical_crossentropy", **sections}
    return config.validate(raw, "test")


def load(cfg):
    return data.load(cfg.data, 0.1, 7)


def build(layers, input_shape=(4,)):
    return model.build(make(layers).model.layers, input_shape)


def build_error(layers, input_shape=(4,)):
    """Builds and returns the one-line ConfigError message it must raise."""
    with pytest.raises(ConfigError) as e:
        build(layers, input_shape)
    return one_line(e)


def compiled(**sections):
    """Builds the iris model of `make(**sections)` and compiles it; returns (model, loss name)."""
    cfg = make(**sections)
    m = model.build(cfg.model.layers, (4,))
    return m, model.compile_model(m, cfg)


def compile_error(**sections):
    with pytest.raises(ConfigError) as e:
        compiled(**sections)
    return one_line(e)


def one_line(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


def fit_error(cfg, dataset):
    m = model.build(cfg.model.layers, dataset.preprocessing["input_shape"])
    loss_name = model.compile_model(m, cfg)
    with pytest.raises(ConfigError) as e:
        model.check_fit(m, loss_name, dataset, cfg.model.layers)
    return one_line(e)


def fits(cfg, dataset):
    m = model.build(cfg.model.layers, dataset.preprocessing["input_shape"])
    return model.check_fit(m, model.compile_model(m, cfg), dataset, cfg.model.layers)


@pytest.fixture
def regression_npz(tmp_path):
    """An .npz with float targets: a regression problem."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype("float32")
    path = tmp_path / "regression.npz"
    np.savez(path, x=x, y=(x @ np.array([1.0, -2.0, 0.5]) + 0.1).astype("float32"))
    return path


# build ------------------------------------------------------------------------


def test_short_forms_build_the_expected_model():
    cfg = make([{"Dense": {"units": 8, "activation": "relu"}}, {"Dropout": 0.2}, "Flatten", {"Dense": 3}])
    m = model.build(cfg.model.layers, (4,))
    assert m.output_shape == (None, 3)
    # 4*8+8 and 8*3+3; Dropout and Flatten have no weights.
    assert m.count_params() == 67
    assert [type(layer).__name__ for layer in m.layers] == ["Dense", "Dropout", "Flatten", "Dense"]
    assert m.layers[1].rate == pytest.approx(0.2)
    assert m.layers[0].activation.__name__ == "relu"


def test_input_shape_is_inferred_from_the_data():
    cfg = make(data={"source": "sklearn", "name": "digits"}, layers=[{"Dense": 10}])
    dataset = load(cfg)
    m = model.build(cfg.model.layers, dataset.preprocessing["input_shape"])
    assert m.input_shape == (None, 64)
    assert m.count_params() == 64 * 10 + 10


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, keras_name",
    [
        ("my-run", "my-run"),
        ("naïve-名前", "na_ve-__"),
        ("_draft", "model_draft"),
        ("-rf", "model-rf"),
    ],
)
def test_the_model_takes_a_name_tensorflow_accepts_and_trains(name, keras_name):
    import numpy as np

    cfg = make()
    m = model.build(cfg.model.layers, (4,), name=name)
    assert m.name == keras_name
    model.compile_model(m, cfg)
    # TensorFlow checks the name (as a name scope) only once it traces fit.
    m.fit(np.zeros((4, 4), "float32"), np.zeros(4, "int64"), epochs=1, verbose=0)


@pytest.mark.parametrize(
    "layers, expected",
    [
        ([{"Dnse": {"units": 3}}], "model.layers[0]: unknown layer 'Dnse'; did you mean 'Dense'?"),
        ([{"dense": {"units": 3}}], "model.layers[0]: unknown layer 'dense'; did you mean 'Dense'?"),
        ([{"Dense": {"unitz": 3}}], "model.layers[0] (Dense): unknown argument 'unitz'; did you mean 'units'?"),
        ([{"Dense": {}}], "model.layers[0] (Dense): missing argument 'units'"),
        (["Dense"], "model.layers[0] (Dense): missing argument 'units'"),
    ],
    ids=["layer-typo", "layer-case", "argument-typo", "missing-argument", "bare-name"],
)
def test_name_and_argument_mistakes(layers, expected):
    assert build_error(layers) == expected


def test_mistake_in_a_later_layer_names_its_index():
    message = build_error([{"Dense": 8}, {"Dropout": 0.2}, {"Dense": {"units": 3, "activaton": "softmax"}}])
    assert message.startswith("model.layers[2] (Dense): unknown argument 'activaton'")
    assert "did you mean 'activation'?" in message


def test_invalid_value_names_the_layer_and_the_value():
    message = build_error([{"Dense": {"units": -3}}])
    assert message.startswith("model.layers[0] (Dense): ")
    assert "units" in message and "-3" in message


def test_activation_typo_suggests_the_keras_name():
    message = build_error([{"Dense": {"units": 3, "activation": "rleu"}}])
    assert message == "model.layers[0] (Dense): argument 'activation': unknown activation 'rleu'; did you mean 'relu'?"


def test_activation_layer_checks_its_name_too():
    message = build_error([{"Activation": "sofmax"}, {"Dense": 3}])
    assert message.startswith("model.layers[0] (Activation): ")
    assert "did you mean 'softmax'?" in message


def test_initializer_typo_suggests_the_keras_name():
    message = build_error([{"Dense": {"units": 3, "kernel_initializer": "glorot_unifrom"}}])
    assert message.startswith("model.layers[0] (Dense): argument 'kernel_initializer': unknown initializer")
    assert "did you mean 'glorot_uniform'?" in message


@pytest.mark.parametrize("key", ["input_shape", "input_dim"])
def test_input_shape_is_refused_as_inferred(key):
    message = build_error([{"Dense": {"units": 3, key: [4] if key == "input_shape" else 4}}])
    assert message.startswith("model.layers[0] (Dense): ")
    assert key in message and "inferred from the data" in message


def test_embedding_takes_its_vocabulary_size():
    m = build([{"Embedding": {"input_dim": 50, "output_dim": 8}}, "Flatten", {"Dense": 3}], input_shape=(10,))
    assert m.output_shape == (None, 3)
    assert m.count_params() == 50 * 8 + 10 * 8 * 3 + 3


@pytest.mark.parametrize("name", ["Lambda", "TFSMLayer", "InputLayer"])
def test_layers_that_run_python_or_take_the_input_shape_are_refused(name):
    message = build_error([{name: {}}])
    assert message == f"model.layers[0]: the layer '{name}' cannot be used in a config"


def test_serialized_keras_objects_are_refused():
    spec = {"units": 3, "kernel_initializer": {"class_name": "system", "module": "os", "config": {}}}
    message = build_error([{"Dense": spec}])
    assert message.startswith("model.layers[0] (Dense): argument 'kernel_initializer': ")
    assert "serialized Keras objects are not allowed" in message


def test_incompatible_layer_names_the_layer():
    message = build_error([{"Conv2D": {"filters": 4, "kernel_size": 3}}, "Flatten", {"Dense": 3}])
    assert message.startswith("model.layers[0] (Conv2D): ")
    assert "ndim" in message


def test_axis_out_of_range_is_a_config_error():
    message = build_error([{"BatchNormalization": {"axis": 3}}, {"Dense": 3}])
    assert message.startswith("model.layers[0] (BatchNormalization): ")


def test_shape_errors_have_no_terminal_escape_codes():
    message = build_error([{"Reshape": [3, 3]}, "Flatten", {"Dense": 3}])
    assert message.startswith("model.layers[0] (Reshape): ")
    assert "\x1b" not in message
    assert "KerasTensor" not in message


# compile_model ----------------------------------------------------------------


def test_compile_uses_the_configured_optimizer_loss_and_metrics():
    m, loss_name = compiled(optimizer={"name": "adam", "learning_rate": 0.05}, metrics=["accuracy"])
    assert loss_name == "sparse_categorical_crossentropy"
    assert type(m.optimizer).__name__ == "Adam"
    assert float(np.asarray(m.optimizer.learning_rate)) == pytest.approx(0.05)


def test_optimizer_typo_suggests_the_keras_name():
    assert compile_error(optimizer="adamm") == "optimizer: unknown optimizer 'adamm'; did you mean 'adam'?"


def test_optimizer_arguments_are_checked():
    message = compile_error(optimizer={"name": "adam", "learning_rat": 0.01})
    assert message == "optimizer (Adam): unknown argument 'learning_rat'; did you mean 'learning_rate'?"


def test_invalid_optimizer_value_names_the_optimizer():
    message = compile_error(optimizer={"name": "sgd", "momentum": -1})
    assert message.startswith("optimizer (SGD): ") and "momentum" in message


@pytest.mark.parametrize("name, cls", [("sgd", "SGD"), ("rmsprop", "RMSprop"), ("Adam", "Adam"), ("adamw", "AdamW")])
def test_optimizer_names_resolve_like_keras(name, cls):
    m, _ = compiled(optimizer=name)
    assert type(m.optimizer).__name__ == cls


def test_loss_typo_suggests_the_keras_name():
    message = compile_error(loss="sparse_categorical_crossentropi")
    assert (
        message
        == "loss: unknown loss 'sparse_categorical_crossentropi'; did you mean 'sparse_categorical_crossentropy'?"
    )


@pytest.mark.parametrize(
    "loss, canonical",
    [
        ("categorical_crossentropy", "categorical_crossentropy"),
        ("CategoricalCrossentropy", "categorical_crossentropy"),
        ("mse", "mean_squared_error"),
        ("mae", "mean_absolute_error"),
        ("kld", "kl_divergence"),
        ("KLDivergence", "kl_divergence"),
        ({"name": "CategoricalCrossentropy", "label_smoothing": 0.1}, "categorical_crossentropy"),
    ],
    ids=["snake", "camel", "alias-mse", "alias-mae", "alias-kld", "camel-acronym", "with-args"],
)
def test_losses_resolve_to_their_canonical_name(loss, canonical):
    _, loss_name = compiled(loss=loss)
    assert loss_name == canonical


def test_loss_arguments_reach_keras():
    m, _ = compiled(loss={"name": "CategoricalCrossentropy", "label_smoothing": 0.1})
    assert m.loss.get_config()["label_smoothing"] == pytest.approx(0.1)


def test_loss_arguments_are_checked():
    message = compile_error(loss={"name": "CategoricalCrossentropy", "label_smothing": 0.1})
    assert (
        message == "loss (CategoricalCrossentropy): unknown argument 'label_smothing'; did you mean 'label_smoothing'?"
    )


def test_metric_typo_suggests_the_keras_name():
    message = compile_error(metrics=["accuracy", "acuracy"])
    assert message.startswith("metrics[1]: unknown metric 'acuracy'")
    assert "did you mean 'accuracy'?" in message.lower()


@pytest.mark.parametrize("written, meant", [("f1", "F1Score"), ("fbeta", "FBetaScore")])
def test_a_metric_named_by_the_start_of_its_name_gets_it_suggested(written, meant):
    assert compile_error(metrics=[written]).endswith(f"unknown metric '{written}'; did you mean '{meant}'?")


def test_metric_with_arguments():
    m, _ = compiled(metrics=["accuracy", {"name": "AUC", "num_thresholds": 50}])
    assert m is not None  # compiled without error


def test_metric_arguments_are_checked():
    message = compile_error(metrics=[{"name": "AUC", "num_treshold": 50}])
    assert message == "metrics[0] (AUC): unknown argument 'num_treshold'; did you mean 'num_thresholds'?"


def test_metric_missing_argument_says_which():
    message = compile_error(metrics=["MeanIoU"])
    assert message == "metrics[0] (MeanIoU): missing argument 'num_classes'"


# check_fit --------------------------------------------------------------------


def test_output_units_must_match_the_class_count():
    cfg = make([{"Dense": 8}, {"Dense": {"units": 4, "activation": "softmax"}}])
    message = fit_error(cfg, load(cfg))
    assert message.startswith("model.layers[1] (Dense): ")
    assert "4 units" in message and "3 classes" in message
    assert message.endswith("set units: 3")


def test_binary_loss_needs_two_classes():
    cfg = make([{"Dense": {"units": 1, "activation": "sigmoid"}}], loss="binary_crossentropy")
    message = fit_error(cfg, load(cfg))
    assert message.startswith("loss: 'binary_crossentropy' needs 2 classes, the data has 3")


def test_binary_loss_on_two_classes_with_one_sigmoid_unit_fits():
    cfg = make(
        [{"Dense": 8}, {"Dense": {"units": 1, "activation": "sigmoid"}}],
        data={"source": "sklearn", "name": "breast_cancer"},
        loss="binary_crossentropy",
    )
    assert fits(cfg, load(cfg)) is False


def test_binary_loss_with_two_output_units_names_the_last_layer():
    cfg = make(
        [{"Dense": {"units": 2, "activation": "softmax"}}],
        data={"source": "sklearn", "name": "breast_cancer"},
        loss="binary_crossentropy",
    )
    message = fit_error(cfg, load(cfg))
    assert message.startswith("model.layers[0] (Dense): ") and "1 output unit" in message


def test_categorical_crossentropy_on_integer_labels_asks_for_one_hot():
    cfg = make(loss="categorical_crossentropy")
    assert fits(cfg, load(cfg)) is True


def test_sparse_loss_keeps_integer_labels():
    cfg = make()
    assert fits(cfg, load(cfg)) is False


def test_classification_loss_on_regression_targets_is_refused(regression_npz):
    cfg = make([{"Dense": 1}], data={"source": "npz", "path": str(regression_npz)})
    message = fit_error(cfg, load(cfg))
    assert message.startswith("loss: 'sparse_categorical_crossentropy' is for classes")


def test_regression_fits_with_one_output(regression_npz):
    cfg = make([{"Dense": 8}, {"Dense": 1}], data={"source": "npz", "path": str(regression_npz)}, loss="mse")
    assert fits(cfg, load(cfg)) is False


def test_regression_output_width_must_match_the_targets(regression_npz):
    cfg = make([{"Dense": 8}, {"Dense": 2}], data={"source": "npz", "path": str(regression_npz)}, loss="mse")
    message = fit_error(cfg, load(cfg))
    assert message.startswith("model.layers[1] (Dense): ") and "2 values" in message


def test_output_must_be_one_vector_per_sample(tmp_path):
    path = tmp_path / "sequences.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(size=(60, 4, 5)).astype("float32"), y=np.arange(60) % 3)
    cfg = make([{"Dense": {"units": 3, "activation": "softmax"}}], data={"source": "npz", "path": str(path)})
    message = fit_error(cfg, load(cfg))
    assert message.startswith("model.layers[0] (Dense): ")


# callbacks_from ---------------------------------------------------------------


def callbacks(specs, tmp_path):
    # Imported here: nnrun.training.callbacks loads Keras, which collecting the tests must not.
    from nnrun.training.callbacks import AtomicModelCheckpoint

    return model.callbacks_from(specs, tmp_path / "best.keras", AtomicModelCheckpoint)


def test_early_stopping_arguments_reach_keras(tmp_path):
    (cb,) = callbacks([{"EarlyStopping": {"monitor": "val_loss", "patience": 3}}], tmp_path)
    assert type(cb).__name__ == "EarlyStopping" and cb.patience == 3


def test_callback_arguments_are_checked(tmp_path):
    with pytest.raises(ConfigError) as e:
        callbacks([{"EarlyStopping": {"patience": 3}}, {"EarlyStopping": {"patince": 3}}], tmp_path)
    assert one_line(e) == "training.callbacks[1] (EarlyStopping): unknown argument 'patince'; did you mean 'patience'?"


def test_model_checkpoint_filepath_is_refused(tmp_path):
    with pytest.raises(ConfigError) as e:
        callbacks([{"ModelCheckpoint": {"filepath": "elsewhere.keras"}}], tmp_path)
    message = one_line(e)
    assert message.startswith("training.callbacks[0] (ModelCheckpoint): ") and "filepath" in message


def test_model_checkpoint_saves_the_best_model_by_default(tmp_path):
    from nnrun.training.callbacks import AtomicModelCheckpoint

    (cb,) = callbacks([{"ModelCheckpoint": {}}], tmp_path)
    assert isinstance(cb, AtomicModelCheckpoint)
    assert cb.save_best_only is True
    assert not list(tmp_path.iterdir())  # nothing written before training


def test_model_checkpoint_best_only_can_be_turned_off(tmp_path):
    (cb,) = callbacks(
        [{"ModelCheckpoint": {"save_best_only": False, "monitor": "val_accuracy", "mode": "max"}}], tmp_path
    )
    assert cb.save_best_only is False


# security: nothing in a config can import Python --------------------------------


@pytest.mark.parametrize("name", ["os.system", "__import__", "builtins.eval", "keras.layers.Lambda"])
def test_python_names_are_unknown_layers(name):
    assert build_error([{name: {}}]) == f"model.layers[0]: unknown layer '{name}'"


@pytest.mark.parametrize(
    "section",
    [
        {"optimizer": "os.system"},
        {"loss": "builtins.eval"},
        {"metrics": ["os.system"]},
        {"metrics": [{"name": "__import__", "thresholds": 0.5}]},
        {"layers": [{"Dense": {"units": 3, "activation": "os.system"}}]},
        {"optimizer": {"name": "adam", "learning_rate": {"class_name": "system", "module": "os", "config": {}}}},
    ],
    ids=["optimizer", "loss", "metric", "metric-with-args", "activation", "serialized-argument"],
)
def test_python_names_are_refused_everywhere(section):
    assert compile_error(**section)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"Dense": {"units": 3, "use_bias": "yes"}}, "argument 'use_bias': expected true or false; got 'yes'"),
        ({"Dropout": {"rate": 0.2, "seed": "x"}}, None),  # seed defaults to None: any type is Keras's to judge
        ({"BatchNormalization": {"momentum": "high"}}, "argument 'momentum': expected a number; got 'high'"),
    ],
)
def test_argument_types_are_checked_where_the_default_tells(spec, fragment):
    if fragment is None:
        with pytest.raises(ConfigError):  # Keras itself refuses a string seed
            build([spec, {"Dense": 3}])
        return
    assert fragment in build_error([spec, {"Dense": 3}])
