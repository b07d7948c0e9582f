"""`nnrun check` without Keras (nnrun.model.quick): where it answers, it answers as the full path does.

The full path is what `train` runs before it fits (`training.setup.setup`); the light one judges the same
config from the catalogue of Keras's names, the layers' shape rules and the data files' headers. Tests
that build with Keras are marked backend; the others read files only.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnrun.cli import check
from nnrun.config import loading
from nnrun.config import validation as config
from nnrun.data import keras_datasets, quick_summary
from nnrun.errors import BadInput, Unsure
from nnrun.model import catalogue, quick, shapes, summary_table

from conftest import TINY

REPO = Path(__file__).parent.parent
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
KERAS_HOME = "/tmp/keras_home"


def judged(prepare, cfg):
    """What `nnrun check` says of a config through one path: ('ok', lines) or ('error', exit code, message)."""
    try:
        setup = prepare(cfg)
    except BadInput as e:
        return ("error", e.exit_code, str(e))
    if setup is None:
        return None
    said = []
    check.report(cfg, setup, lambda text="", nl=True, err=False: said.append((err, str(text), nl)))
    return ("ok", said)


def full(cfg):
    from nnrun.backend import keras
    from nnrun.training import setup

    keras().backend.clear_session()  # layers are numbered per session: a fresh process's numbers
    return setup.setup(cfg, join=False)


# What the light path answers, it answers as the full path does -----------------------------------


def mistake_cases():
    """The configs of test_mistakes.py and test_check.py's bad configs, on iris."""
    import test_check
    import test_mistakes

    cases = [p.values[0] for p in test_mistakes.REFUSED + test_mistakes.ACCEPTED + test_mistakes.WARNED]
    for p in test_check.BAD:
        try:
            cases.append(config.validate({**TINY, **p.values[0]}, "tiny"))
        except BadInput:
            continue  # refused by the schema, before either path
    # A run's name, as loading a config file gives it.
    return [cfg.model_copy(update={"output": cfg.output.model_copy(update={"name": "case"})}) for cfg in cases]


@pytest.mark.backend
def test_check_and_train_judge_every_shipped_config_and_every_mistake_alike(monkeypatch):
    monkeypatch.setenv("KERAS_HOME", KERAS_HOME)
    cases = [loading.load(path, ()) for path in CONFIGS] + mistake_cases()
    answered = 0
    for cfg in cases:
        light = judged(quick.setup, cfg)
        if light is None:
            continue  # the full path judges it: nothing to compare
        answered += 1
        assert judged(full, cfg) == light, cfg.model.layers
    assert answered >= 20, answered  # the light path answers most of them, or this proves little


def test_quick_check_answers_the_quickstart_and_mnist_without_keras_sklearn_or_pandas():
    script = (
        "import sys\nfrom nnrun.cli.main import main\n"
        "try:\n    main(sys.argv[1:])\nfinally:\n"
        "    print('loaded:', sorted(m for m in ('keras', 'tensorflow', 'jax', 'sklearn', 'pandas', 'scipy')"
        " if m in sys.modules), file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_HOME": KERAS_HOME}
    for name in ("quickstart", "mnist_mlp"):
        if name == "mnist_mlp" and not (Path(KERAS_HOME) / "datasets" / "mnist.npz").exists():
            continue
        proc = subprocess.run(
            [sys.executable, "-c", script, "check", f"configs/{name}.yaml"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert "loaded: []" in proc.stderr, proc.stderr
        assert "Total params:" in proc.stdout and proc.stdout.endswith(f"configs/{name}.yaml: ok\n")


def test_a_layer_typo_and_an_argument_typo_are_named_without_keras(write_config):
    cfg = loading.load(write_config(model=[{"Dnse": 3}]), ())
    with pytest.raises(BadInput, match=r"model.layers\[0\]: unknown layer 'Dnse'; did you mean 'Dense'\?"):
        quick.setup(cfg)
    cfg = loading.load(write_config(model=[{"Dense": {"unitz": 3}}]), ())
    with pytest.raises(BadInput, match=r"model.layers\[0\] \(Dense\): unknown argument 'unitz'; did you mean 'units'"):
        quick.setup(cfg)


@pytest.mark.parametrize(
    "sections",
    [
        {"model": [{"Dense": {"units": 3, "activation": "softmax", "name": "out"}}]},  # an argument it has no rule for
        {"model": [{"MobileNetV2": {"weights": None}}, {"Dense": 3}]},  # a pretrained network
        {"model": [{"Dense": {"units": 3, "activation": "rellu"}}]},  # a value only Keras can refuse
        {"data": {"source": "npz", "path": "x.npz"}},  # a source it does not read
        {"training": {"epochs": 2, "class_weight": "balanced"}},
    ],
)
def test_what_it_does_not_fully_understand_goes_to_keras(write_config, sections):
    assert quick.setup(loading.load(write_config(**sections), ())) is None


# The catalogue -------------------------------------------------------------------------------------


@pytest.mark.backend
def test_the_shipped_catalogue_is_the_installed_keras_s():
    shipped = json.loads(catalogue.SHIPPED.read_text())
    made = json.loads(json.dumps(catalogue.make()))
    assert shipped["keras"] == made["keras"], "remake it: python -m nnrun.model.catalogue"
    assert shipped == made, "remake it: python -m nnrun.model.catalogue"


def test_a_catalogue_that_is_damaged_too_large_or_of_another_version_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(catalogue, "SHIPPED", tmp_path / "absent.json")
    version = catalogue.installed_version()
    assert version and catalogue.load() is None
    good = json.loads((REPO / "nnrun" / "model" / "keras_catalogue.json").read_text())
    path = catalogue.cache_path(version)
    path.parent.mkdir(parents=True)
    for damaged in (
        {**good, "keras": "0.0.1"},
        {**good, "layers": {"Dense": {"class": "Dense", "params": [["units", "NOT_A_KIND"]]}}},
        {**good, "named": {}},
        [good],
    ):
        path.write_text(json.dumps(damaged))
        assert catalogue.load() is None
    path.write_text(json.dumps(good) + " " * catalogue.MAX_BYTES)
    assert catalogue.load() is None
    path.write_text(json.dumps(good))
    assert catalogue.load() is not None


def test_a_cached_catalogue_others_could_write_is_not_read(tmp_path, monkeypatch):
    # It decides check's verdicts: one planted in a shared cache folder must not.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(catalogue, "SHIPPED", tmp_path / "absent.json")
    path = catalogue.cache_path(catalogue.installed_version())
    path.parent.mkdir(mode=0o700)
    path.write_text((REPO / "nnrun" / "model" / "keras_catalogue.json").read_text())
    path.chmod(0o644)
    assert catalogue.load() is not None
    path.chmod(0o666)
    assert catalogue.load() is None
    path.chmod(0o644)
    path.parent.chmod(0o777)
    assert catalogue.load() is None
    path.parent.chmod(0o700)
    path.rename(tmp_path / "elsewhere.json")
    path.symlink_to(tmp_path / "elsewhere.json")
    assert catalogue.load() is None


# The data, read without the loaders ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["digits", "iris", "wine", "breast_cancer"])
def test_sklearn_s_files_read_as_its_loaders_read_them(name):
    from nnrun.data import bundled

    expected = bundled.read(config.validate({**TINY, "data": {"source": "sklearn", "name": name}}, "t").data)
    read = quick_summary._bundled(name)
    np.testing.assert_array_equal(read.x, expected.x)
    np.testing.assert_array_equal(read.y, expected.y)
    assert read.x.dtype == expected.x.dtype and read.class_names == expected.class_names


def test_the_mnist_hash_is_the_one_keras_checks():
    import importlib.util

    source = Path(importlib.util.find_spec("keras").origin).parent / "src" / "datasets" / "mnist.py"
    assert keras_datasets.MNIST_SHA256 in source.read_text()


def test_an_mnist_file_keras_would_not_read_goes_to_keras(tmp_path, monkeypatch):
    (tmp_path / "datasets").mkdir()
    np.savez(tmp_path / "datasets" / "mnist.npz", x_train=np.zeros((4, 2, 2), "uint8"), y_train=np.arange(4))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(Unsure):
        quick_summary.summary(config.validate({**TINY, "data": {"source": "keras", "name": "mnist"}}, "t").data, 0)


# Shapes and parameter counts against Keras's own ------------------------------------------------------

ACTIVATIONS = [None, "relu", "softmax", "tanh", "rellu"]
SIZES = st.one_of(st.integers(0, 4), st.lists(st.integers(1, 3), min_size=1, max_size=3))
LAYERS = st.one_of(
    st.builds(
        lambda units, activation, bias: {"Dense": {"units": units, "activation": activation, "use_bias": bias}},
        st.integers(0, 6),
        st.sampled_from(ACTIVATIONS),
        st.booleans(),
    ),
    st.builds(lambda rate: {"Dropout": rate}, st.sampled_from([0, 0.25, 0.5, 1, 1.5])),
    st.just({"Flatten": {}}),
    st.builds(lambda a: {"Activation": a}, st.sampled_from(["relu", "sigmoid", "rellu"])),
    st.builds(
        lambda conv, filters, size, strides, padding: {
            conv: {"filters": filters, "kernel_size": size, "strides": strides, "padding": padding}
        },
        st.sampled_from(["Conv1D", "Conv2D", "Convolution2D"]),
        st.integers(0, 4),
        SIZES,
        st.integers(1, 3),
        st.sampled_from(["valid", "same", "causal"]),
    ),
    st.builds(
        lambda pool, size, strides, padding: {pool: {"pool_size": size, "strides": strides, "padding": padding}},
        st.sampled_from(["MaxPooling1D", "MaxPooling2D", "AveragePooling2D", "MaxPool2D"]),
        SIZES,
        st.sampled_from([None, 1, 2]),
        st.sampled_from(["valid", "same"]),
    ),
    st.sampled_from(
        [{"GlobalAveragePooling1D": {}}, {"GlobalAveragePooling2D": {}}, {"GlobalMaxPooling2D": {}}, {"Dnse": 3}]
    ),
    st.builds(
        lambda center, scale, axis: {"BatchNormalization": {"center": center, "scale": scale, "axis": axis}},
        st.booleans(),
        st.booleans(),
        st.sampled_from([-1, 1]),
    ),
    st.builds(lambda t: {"Reshape": {"target_shape": t}}, st.sampled_from([[-1], [2, -1], [4, 3], [0]])),
    st.just({"Rescaling": {"scale": 0.5, "offset": 1}}),
    st.just({"Dense": {"unitz": 3}}),
)


def light_summary(layers, input_shape):
    cfg = config.validate({**TINY, "model": layers}, "stack")
    rows = quick._layers(catalogue.load(), cfg, input_shape)
    return summary_table.summary("stack", rows)


def keras_summary(layers, input_shape):
    from nnrun.backend import keras
    from nnrun.model import build

    keras().backend.clear_session()
    cfg = config.validate({**TINY, "model": layers}, "stack")
    said = []
    build.build(cfg.model.layers, input_shape, "stack").summary(print_fn=said.append)
    return said[0]


def outcome(summarize, layers, input_shape):
    try:
        return summarize(layers, input_shape)
    except BadInput as e:
        return f"error: {e}"


@pytest.mark.backend
# 25 stacks a pass (two passes a CI run, new ones each time: no database): 60 took 30 s under coverage.
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layers=st.lists(LAYERS, min_size=1, max_size=4),
    input_shape=st.sampled_from([(8,), (9, 4), (12, 10, 3), (6, 6, 2)]),
)
def test_random_stacks_get_keras_s_shapes_counts_and_verdict(layers, input_shape):
    try:
        light = outcome(light_summary, layers, input_shape)
    except Unsure:
        return
    assert outcome(keras_summary, layers, input_shape) == light


def test_every_rule_is_for_a_layer_of_the_catalogue():
    classes = {entry["class"] for entry in catalogue.load().data["layers"].values()}
    assert set(shapes.RULES) <= classes


def test_the_quickstart_s_table_has_keras_s_names_and_numbers():
    text = quick.setup(loading.load(REPO / "configs" / "quickstart.yaml", ())).summary
    assert "│ dense_1 (Dense)" in text and "Total params: 4,810 (18.79 KB)" in text
