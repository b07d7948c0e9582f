"""The classic Keras mistakes (nnrun.model.mistakes): refused in one line saying what to write instead.

The rules read the config and the data, never Keras: most tests here call them on a validated config
and a small `Dataset`, without building anything; a few go through `nnrun check` and `nnrun train`,
which run them before anything trains.
"""

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nnrun.cli.main import cli
from nnrun.config import validation as config
from nnrun.data.types import Dataset
from nnrun.errors import ConfigError
from nnrun.model import mistakes

from conftest import TINY

SIGMOID_OUT = {"Dense": {"units": 1, "activation": "sigmoid"}}
UNSCALED = {"source": "sklearn", "name": "iris", "scale_target": False}


def make(layers, loss="binary_crossentropy", **sections):
    sections.setdefault("metrics", [])
    raw = {"data": {"source": "sklearn", "name": "iris"}, "model": list(layers), "loss": loss, **sections}
    return config.validate(raw, "test")


def classes(n=2):
    y = np.arange(60) % n
    return Dataset(None, y, None, None, None, y, [str(i) for i in range(n)])


def regression(y):
    y = np.asarray(y, dtype="float64")
    return Dataset(None, y, None, None, None, y, None)


def refusal(cfg, dataset, loss_name=None):
    """The one line `with_data` refuses the config with."""
    with pytest.raises(ConfigError) as info:
        mistakes.in_config(cfg)
        mistakes.with_data(cfg, loss_name or cfg.loss["name"], dataset)
    message = str(info.value)
    assert "\n" not in message, message
    return message


REFUSED = [
    pytest.param(
        make(
            [{"Dense": {"units": 3, "activation": "softmax"}}], "sparse_categorical_crossentropy", metrics=["Accuracy"]
        ),
        classes(3),
        "metrics[0]: 'Accuracy' counts outputs equal to the labels, which a classifier's probabilities never are; "
        "write 'accuracy' (Keras picks the accuracy that fits the loss)",
        id="the-Accuracy-class-on-a-classifier",
    ),
    pytest.param(
        make([{"Dense": 4}, {"Dense": {"units": 1, "activation": "softmax"}}]),
        classes(),
        "model.layers[1] (Dense): a softmax over one unit always outputs 1.0, so binary_crossentropy learns nothing "
        "(accuracy stays put while the loss falls); use activation: sigmoid",
        id="softmax-on-one-unit",
    ),
    pytest.param(
        make([{"Dense": 4}, {"Dense": 1}]),
        classes(),
        "model.layers[1] (Dense): no activation (a linear output) gives no probabilities, which binary_crossentropy "
        "takes; add activation: sigmoid",
        id="no-activation-with-bce",
    ),
    pytest.param(
        make([{"Dense": {"units": 1, "activation": "relu"}}, {"Dropout": 0.2}]),
        classes(),
        "model.layers[0] (Dense): activation 'relu' gives no probabilities, which binary_crossentropy takes; "
        "add activation: sigmoid",
        id="relu-before-dropout",
    ),
    pytest.param(
        make([{"Dense": 3}], loss="sparse_categorical_crossentropy"),
        classes(3),
        "model.layers[0] (Dense): no activation (a linear output) gives no probabilities, which "
        "sparse_categorical_crossentropy takes; add activation: softmax",
        id="no-activation-with-sparse-cce",
    ),
    pytest.param(
        make([{"Dense": 3}, {"Activation": "softmax"}], loss={"name": "categorical_crossentropy", "from_logits": True}),
        classes(3),
        "model.layers[1] (Activation): activation 'softmax' outputs probabilities, but the loss has from_logits: "
        "true, which applies softmax again; remove from_logits",
        id="softmax-twice",
    ),
    pytest.param(
        make([{"Dense": 1}], loss="mse", metrics=["accuracy"]),
        regression([0.5, 2.5, 7.0]),
        "metrics[0]: 'accuracy' counts correct classes, but the targets are continuous numbers (a regression); "
        "use mae, mse or root_mean_squared_error",
        id="accuracy-on-a-regression",
    ),
    pytest.param(
        make([{"Dense": 1}], loss="mse", metrics=["mae", {"name": "AUC"}]),
        regression([0.5, 2.5, 7.0]),
        "metrics[1]: 'AUC' counts correct classes",
        id="auc-on-a-regression",
    ),
    pytest.param(
        make([SIGMOID_OUT], loss="mse"),
        regression([0.1, 0.4, 0.9]),
        "model.layers[0] (Dense): activation 'sigmoid' outputs values in [0, 1], but with data.scale_target the "
        "network learns the targets standardized (-1.11 to 1.31); remove the activation (a linear output), or set "
        "data.scale_target: false to keep it: the targets lie in [0, 1]",
        id="sigmoid-on-a-scaled-regression",
    ),
    pytest.param(
        make([{"Dense": {"units": 1, "activation": "relu"}}], loss="mse"),
        regression([10.0, 40.0, 90.0]),
        "activation 'relu' outputs values in [0, inf), but with data.scale_target the network learns the targets "
        "standardized",
        id="relu-on-a-scaled-regression",
    ),
    pytest.param(
        make(
            [SIGMOID_OUT],
            loss="mse",
            data=UNSCALED,
        ),
        regression([12.0, 480.0]),
        "model.layers[0] (Dense): activation 'sigmoid' outputs values in [0, 1], but the targets run from 12 to 480; "
        "remove the activation (a linear output)",
        id="sigmoid-on-a-regression-beyond-it",
    ),
    pytest.param(
        make([{"Dense": {"units": 1, "activation": "softmax"}}], loss="mse"),
        regression([0.2, 0.3]),
        "model.layers[0] (Dense): a softmax over one unit always outputs 1.0; remove the activation",
        id="softmax-on-a-regression",
    ),
    pytest.param(
        make([SIGMOID_OUT], optimizer={"name": "adam", "learning_rate": -1e-3}),
        classes(),
        "optimizer (adam): argument 'learning_rate' must be more than 0, e.g. 0.001; got -0.001",
        id="negative-learning-rate",
    ),
    pytest.param(
        make([SIGMOID_OUT], optimizer={"name": "sgd", "learning_rate": 0}),
        classes(),
        "optimizer (sgd): argument 'learning_rate' must be more than 0",
        id="zero-learning-rate",
    ),
    pytest.param(
        make([{"MobileNetV2": {"include_top": False, "weights": None, "trainable": False}}, SIGMOID_OUT]),
        classes(),
        "model.layers[0] (MobileNetV2): trainable: false with weights: null freezes random weights, from which "
        "nothing is learned (the loss stays where it starts); set weights: imagenet (or a .weights.h5 file), or "
        "remove trainable: false to train it from the start",
        id="frozen-random-backbone",
    ),
]


@pytest.mark.parametrize("cfg, dataset, expected", REFUSED)
def test_each_mistake_is_refused_in_one_line_saying_what_to_write(cfg, dataset, expected):
    assert expected in refusal(cfg, dataset)


def test_the_loss_is_known_by_its_canonical_name_whatever_the_config_calls_it():
    cfg = make([{"Dense": 1}], loss="bce")
    assert "which binary_crossentropy takes" in refusal(cfg, classes(), loss_name="binary_crossentropy")


ACCEPTED = [
    pytest.param(make([{"Dense": 4}, SIGMOID_OUT, {"Dropout": 0.1}]), classes(), id="sigmoid-with-bce"),
    pytest.param(
        make([{"Dense": 3}, "Softmax"], loss="categorical_crossentropy", metrics=["accuracy"]),
        classes(3),
        id="a-softmax-layer",
    ),
    pytest.param(
        make(
            [SIGMOID_OUT],
            loss="mse",
            metrics=["mae"],
            data=UNSCALED,
        ),
        regression([0.0, 0.4, 1.0]),
        id="sigmoid-on-fractions-unscaled",
    ),
    pytest.param(make([{"Dense": 1}], loss="mse", metrics=["mae", "rmse"]), regression([-3.0, 8.0]), id="linear"),
    pytest.param(
        make([{"Dense": {"units": 1, "activation": "relu"}}], loss="mse", data=UNSCALED),
        regression([0.0, 8.0]),
        id="relu-on-counts-unscaled",
    ),
    pytest.param(make([{"Conv1D": {"filters": 1, "kernel_size": 1}}]), classes(), id="a-layer-it-cannot-read"),
    pytest.param(make([{"Dense": {"units": 1, "activation": "my_own"}}]), classes(), id="an-unknown-activation"),
]


@pytest.mark.parametrize("cfg, dataset", ACCEPTED)
def test_what_fits_passes_without_a_word(cfg, dataset):
    assert mistakes.in_config(cfg) == []
    assert mistakes.with_data(cfg, cfg.loss["name"], dataset) == []


# Configs that train but that evaluate and predict would misread: a warning, the same through check and train
# (test_quick_check.py runs them through both of check's paths).
WARNED = [
    pytest.param(
        make([{"Dense": {"units": 3, "activation": activation}}], loss),
        classes(3),
        f"model.layers[0] (Dense): activation '{activation}' gives each class a probability of its own, which "
        f"{loss} rescales to sum to 1 while training, but nnrun's evaluate and predict read them as they are "
        "(a sample's need not sum to 1); use activation: softmax",
        id=f"{activation}-with-{loss}",
    )
    for activation, loss in [
        ("sigmoid", "sparse_categorical_crossentropy"),
        ("hard_sigmoid", "categorical_crossentropy"),
    ]
]


@pytest.mark.parametrize("cfg, dataset, message", WARNED)
def test_a_sigmoid_per_class_with_a_categorical_crossentropy_trains_but_is_a_warning(cfg, dataset, message):
    assert mistakes.in_config(cfg) == []
    assert mistakes.with_data(cfg, cfg.loss["name"], dataset) == [message]


@pytest.mark.parametrize(
    "loss, n, wanted",
    [("binary_crossentropy", 2, "sigmoid"), ("sparse_categorical_crossentropy", 3, "softmax")],
)
def test_raw_scores_with_from_logits_train_but_are_a_warning_as_evaluate_and_predict_read_probabilities(
    loss, n, wanted
):
    cfg = make([{"Dense": 1 if n == 2 else n}], loss={"name": loss, "from_logits": True})
    assert mistakes.with_data(cfg, loss, classes(n)) == [
        "model.layers[0] (Dense): no activation (a linear output) with the loss's from_logits: true outputs raw "
        f"scores, which nnrun's evaluate and predict read as probabilities; add activation: {wanted} and remove "
        "from_logits"
    ]


def test_a_frozen_random_backbone_that_fine_tuning_trains_is_a_warning_saying_what_to_change():
    cfg = make(
        [{"MobileNetV2": {"include_top": False, "weights": None, "trainable": False}}, SIGMOID_OUT],
        training={"fine_tune": {"epochs": 2}},
    )
    assert mistakes.in_config(cfg) == [
        "model.layers[0] (MobileNetV2): trainable: false with weights: null: training.epochs train the layers after "
        "it on random features, and only fine-tuning trains it; set weights: imagenet (or a .weights.h5 file), or "
        "remove trainable: false to train it from the start"
    ]


@pytest.mark.parametrize(
    "layers, expected",
    [
        ([{"Dense": 3}], ("model.layers[0] (Dense)", "linear")),
        ([{"Dense": {"units": 3, "activation": None}}], ("model.layers[0] (Dense)", "linear")),
        ([{"Dense": {"units": 1, "activation": "Sigmoid"}}, "Flatten"], ("model.layers[0] (Dense)", "sigmoid")),
        ([{"Dense": 3}, {"Activation": {"activation": "softmax"}}], ("model.layers[1] (Activation)", "softmax")),
        ([{"Dense": 3}, "ReLU"], ("model.layers[1] (ReLU)", "relu")),
        ([{"Dense": 3}, "GlobalAveragePooling1D"], None),
        ([{"Dropout": 0.5}], None),
    ],
)
def test_the_output_activation_is_read_from_the_config(layers, expected):
    assert mistakes.output_activation(make(layers).model.layers) == expected


LAYER_NAMES = ["Dense", "Activation", "Softmax", "ReLU", "Dropout", "Flatten", "Conv2D", "MobileNetV2", "Reshape"]
ACTIVATIONS = [None, "linear", "relu", "sigmoid", "softmax", "tanh", "elu", "Softmax", "swish", 3, ""]
LOSSES = [
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "mean_squared_error",
    "hinge",
]
layer_specs = st.builds(
    lambda name, args: {name: args},
    st.sampled_from(LAYER_NAMES),
    st.one_of(
        st.integers(0, 4),
        st.sampled_from(ACTIVATIONS),
        st.fixed_dictionaries(
            {},
            optional={
                "units": st.integers(1, 4),
                "activation": st.sampled_from(ACTIVATIONS),
                "trainable": st.booleans(),
                "weights": st.sampled_from([None, "imagenet"]),
            },
        ),
    ),
)


@settings(max_examples=200, deadline=None, database=None)
@given(
    layers=st.lists(layer_specs, min_size=1, max_size=4),
    loss=st.sampled_from(LOSSES),
    from_logits=st.booleans(),
    metrics=st.lists(st.sampled_from(["accuracy", "mae", "AUC", "binary_accuracy", "Precision", "mse"]), max_size=2),
    rate=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 2)),
    task=st.sampled_from(["binary", "three", "fractions", "prices", "two_targets"]),
    scale_target=st.booleans(),
)
def test_any_config_passes_or_is_refused_in_one_line_naming_its_place(
    layers, loss, from_logits, metrics, rate, task, scale_target
):
    optimizer = {"name": "adam", **({} if rate is None else {"learning_rate": rate})}
    cfg = make(
        layers,
        loss={"name": loss, "from_logits": from_logits},
        metrics=metrics,
        optimizer=optimizer,
        data={"source": "sklearn", "name": "iris", "scale_target": scale_target},
    )
    dataset = {
        "binary": classes(2),
        "three": classes(3),
        "fractions": regression(np.linspace(0, 1, 9)),
        "prices": regression(np.linspace(1e4, 9e5, 9)),
        "two_targets": regression(np.linspace(-1, 1, 18).reshape(9, 2)),
    }[task]
    try:
        warned = mistakes.in_config(cfg) + mistakes.with_data(cfg, loss, dataset)
    except ConfigError as e:
        message = str(e)
        assert "\n" not in message and message.startswith(("model.layers[", "metrics[", "optimizer (")), message
    else:
        assert all("\n" not in line and line.startswith("model.layers[") for line in warned), warned


# Through the commands: check and train refuse alike, before anything trains.


@pytest.mark.backend
def test_check_and_train_refuse_a_softmax_over_one_unit_alike_and_train_writes_nothing(runner, write_config, tmp_path):
    path = write_config(
        data={"source": "sklearn", "name": "breast_cancer", "scale": "standard"},
        model=[{"Dense": {"units": 4, "activation": "relu"}}, {"Dense": {"units": 1, "activation": "softmax"}}],
        loss="binary_crossentropy",
    )
    said = []
    for command in ("check", "train"):
        result = runner.invoke(cli, [command, str(path)])
        assert result.exit_code == 2, result.output
        assert result.stdout == "" and len(result.output.strip().splitlines()) == 1, result.output
        said.append(result.output)
    assert said[0] == said[1]
    assert said[0].startswith(f"error: {path}: model.layers[1] (Dense): a softmax over one unit always outputs 1.0")
    assert "use activation: sigmoid" in said[0]
    assert not (tmp_path / "runs").exists()


def test_a_negative_learning_rate_is_refused_before_the_data_is_read(runner, write_config, tmp_path):
    path = write_config(data={"source": "npz", "path": str(tmp_path / "absent.npz")})
    result = runner.invoke(cli, ["check", str(path), "--set", "optimizer.learning_rate=-0.01"])
    assert result.exit_code == 2, result.output
    # The value is --set's, not the file's: the message says so.
    assert result.output.startswith(
        f"error: {path} with --set: optimizer (adam): argument 'learning_rate' must be more than 0"
    ), result.output


@pytest.mark.backend
def test_check_prints_the_warnings_on_stderr_and_passes(runner, write_config, monkeypatch):
    monkeypatch.setattr(mistakes, "in_config", lambda config: ["model.layers[0] (Dense): it may not mean this"])
    result = runner.invoke(cli, ["check", str(write_config())])
    assert result.exit_code == 0, result.output
    assert "warning: model.layers[0] (Dense): it may not mean this" in result.stderr
    assert "warning:" not in result.stdout


def test_no_shipped_config_nor_the_tests_tiny_one_makes_a_mistake_the_config_alone_shows():
    from pathlib import Path

    for path in sorted((Path(__file__).parent.parent / "configs").glob("*.yaml")):
        assert mistakes.in_config(config.validate(yaml.safe_load(path.read_text()), str(path))) == [], path
    assert mistakes.in_config(config.validate(TINY, "tiny")) == []
