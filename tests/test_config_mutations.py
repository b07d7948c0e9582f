"""Random mutations of the shipped configs: each is a valid config, or bad input in one line, never a crash.

A config is what a newcomer edits first; whatever they break (a key dropped, a value
of the wrong type or out of range, a key misspelt or put elsewhere, a layer renamed,
a tab) must come back as exit 2 and one line naming the place, never a traceback
and never exit 1. Validation only: no data is read and Keras is not loaded.
"""

import copy
import math
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nnrun.config import loading
from nnrun.config.schema import Config
from nnrun.errors import BadInput

# NNRUN_EXPLORE=5000 draws that many new examples per test instead of the fixed few CI runs.
EXPLORE = int(os.environ.get("NNRUN_EXPLORE", "0"))
SHIPPED = {path.name: path.read_text() for path in sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))}
PLAIN = {name: yaml.safe_load(text) for name, text in SHIPPED.items()}

# Keys that exist somewhere in a config: a mutation that moves one is the mistake people make.
KNOWN_KEYS = [
    *("epochs", "batch_size", "learning_rate", "name", "source", "target", "layers", "units", "scale", "path"),
    *("distribution", "tracking", "sweep", "fine_tune", "callbacks", "class_weight", "image_size", "quotechar"),
]
LAYERS = ["Dense", "Dropout", "Flatten", "Conv2D", "MaxPooling2D", "BatchNormalization", "Dnse", "Input", ""]
# Text YAML writes as itself (safe_dump cannot write lone surrogates).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.sampled_from(["1e-3", "1/255", "relu", "adam", "all", "balanced", "data_parallel", "[64, 64]", ""]),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.one_of(TEXT, st.sampled_from(KNOWN_KEYS)), SCALARS, max_size=2),
)
OUT_OF_RANGE = st.sampled_from([0, -1, -0.5, 0.0, 1.0, 1.5, 2**33, 1e300, -1e-9, math.inf, -math.inf, math.nan])


def places(node, path=()):
    """Every place in a plain config: the path of each mapping key and list item."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, inner in items:
        found.append((*path, key))
        found += places(inner, (*path, key))
    return found


def leaves(node):
    if isinstance(node, dict):
        return [leaf for inner in node.values() for leaf in leaves(inner)]
    if isinstance(node, list):
        return [leaf for inner in node for leaf in leaves(inner)]
    return [node]


def parent_of(config, path):
    node = config
    for part in path[:-1]:
        node = node[part]
    return node


def typo(data, word):
    word = str(word)
    if not word:
        return "x"
    i = data.draw(st.integers(0, len(word) - 1))
    how = data.draw(st.sampled_from(["drop", "double", "swap", "replace", "case"]))
    if how == "drop":
        return word[:i] + word[i + 1 :] or "x"
    if how == "double":
        return word[:i] + word[i] + word[i:]
    if how == "swap" and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if how == "case":
        return word.swapcase()
    return word[:i] + data.draw(st.sampled_from("aeiouxz_-.0")) + word[i + 1 :]


def mutate(data, config, sections=None):
    """One mistake, drawn, made in place (within `sections` where given)."""
    paths = [p for p in places(config) if sections is None or p[0] in sections] or places(config)
    kind = data.draw(st.sampled_from(["drop", "retype", "range", "rename", "insert", "layer"]))
    if kind == "layer":
        layers = config.get("model", {}).get("layers") if isinstance(config.get("model"), dict) else None
        if isinstance(layers, list) and layers:
            i = data.draw(st.integers(0, len(layers) - 1))
            layer = layers[i]
            if isinstance(layer, dict) and len(layer) == 1:
                name, args = next(iter(layer.items()))
            else:  # already broken by an earlier mutation
                name, args = str(layer), {}
            how = data.draw(st.sampled_from(["name", "typo", "argument", "arguments", "value"]))
            if how == "name":
                name = data.draw(st.sampled_from(LAYERS))
            elif how == "typo":
                name = typo(data, name)
            elif how == "argument" and isinstance(args, dict) and args:
                key = data.draw(st.sampled_from(sorted(args)))
                args = {**args, typo(data, key): args[key]}
                del args[key]
            elif how == "arguments":
                args = data.draw(VALUES)
            else:
                args = (
                    {
                        **args,
                        data.draw(st.sampled_from(["units", "activation", "rate", "filters", "x"])): data.draw(VALUES),
                    }
                    if isinstance(args, dict)
                    else data.draw(VALUES)
                )
            layers[i] = {name: args}
            return
        kind = "retype"
    path = data.draw(st.sampled_from(paths))
    parent, last = parent_of(config, path), path[-1]
    if kind == "drop":
        del parent[last]
    elif kind == "retype":
        parent[last] = data.draw(VALUES)
    elif kind == "range":
        parent[last] = data.draw(OUT_OF_RANGE)
    elif kind == "rename" and isinstance(parent, dict):
        parent[typo(data, last)] = parent.pop(last)
    else:
        where = parent if isinstance(parent, dict) else config
        where[data.draw(st.one_of(st.sampled_from(KNOWN_KEYS), TEXT))] = data.draw(VALUES)


def mutate_text(data, text):
    """A mistake in the file's text: a tab, a line lost, the file cut short."""
    lines = text.splitlines(keepends=True)
    i = data.draw(st.integers(0, len(lines) - 1))
    how = data.draw(st.sampled_from(["tab", "drop", "cut", "dedent"]))
    if how == "tab":
        lines[i] = "\t" + lines[i]
    elif how == "drop":
        del lines[i]
    elif how == "cut":
        lines = lines[:i] + [lines[i][: len(lines[i]) // 2]]
    else:
        lines[i] = lines[i].lstrip(" ")
    return "".join(lines)


def outcome(text):
    """Validates a config's text as `nnrun check` first does; returns the Config, or the one-line refusal."""
    try:
        return loading.from_text(text, "mutant.yaml")
    except BadInput as e:  # exit 2; anything else is exit 1 or a traceback, and fails the test
        message = str(e)
        assert "\n" not in message and "Traceback" not in message, message
        assert message.startswith("mutant.yaml"), message
        return message


@settings(
    max_examples=EXPLORE or 150,
    deadline=None,  # the first example pays for imports
    derandomize=not EXPLORE,  # the same examples on every run: CI is never red by chance
    database=None,  # leaves no .hypothesis folder behind
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data(), name=st.sampled_from(sorted(PLAIN)), count=st.integers(1, 3))
def test_a_mutated_shipped_config_is_valid_or_one_line(data, name, count):
    config = copy.deepcopy(PLAIN[name])
    for _ in range(count):
        if config:
            mutate(data, config)
    result = outcome(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    assert isinstance(result, (Config, str))


@settings(max_examples=EXPLORE or 60, deadline=None, derandomize=not EXPLORE, database=None)
@given(data=st.data(), name=st.sampled_from(sorted(SHIPPED)))
def test_a_shipped_config_with_its_text_damaged_is_valid_or_one_line(data, name):
    result = outcome(mutate_text(data, SHIPPED[name]))
    assert isinstance(result, (Config, str))


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_config_is_valid_as_it_is(name):
    assert isinstance(outcome(SHIPPED[name]), Config)


# One sample's shape for each shipped config whose model Keras can build offline (no pretrained weights).
INPUT_SHAPES = {
    "churn_ann.yaml": (12,),
    "cifar10_cnn.yaml": (32, 32, 3),
    "fashion_mnist_mlp.yaml": (28, 28),
    "images_cnn.yaml": (64, 64, 3),
    "mnist_mlp.yaml": (28, 28),
    "quickstart.yaml": (64,),
    "quickstart_sweep.yaml": (64,),
}


@pytest.mark.backend
@settings(max_examples=EXPLORE or 25, deadline=None, derandomize=not EXPLORE, database=None)
@given(data=st.data(), name=st.sampled_from(sorted(INPUT_SHAPES)), count=st.integers(1, 2))
def test_a_mutated_model_builds_and_compiles_or_is_one_line(data, name, count):
    """Past the schema, Keras's own checks of layer, optimizer, loss, metric and callback names and arguments."""
    from nnrun.backend import keras
    from nnrun.model import build

    config = copy.deepcopy(PLAIN[name])
    for _ in range(count):
        mutate(data, config, sections=("model", "optimizer", "loss", "metrics", "training"))
    # A layer of billions of units is refused too, but only once TensorFlow fails to allocate it (seconds).
    assume(not any(isinstance(v, int) and v > 100_000 for v in leaves(config.get("model"))))
    valid = outcome(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    if not isinstance(valid, Config):
        return
    try:
        model = build.build(valid.model.layers, INPUT_SHAPES[name])
        build.compile_model(model, valid)
        build.callbacks_from(valid.training.callbacks, "best.keras", keras().callbacks.ModelCheckpoint)
    except BadInput as e:  # exit 2, one line that names the place
        assert "\n" not in str(e) and str(e).split(" ")[0].split("[")[0].rstrip(":") in PLACES, str(e)


PLACES = ("model.layers", "optimizer", "loss", "metrics", "training.callbacks", "data.augmentation")
