"""nnrun.data: bundled and .npz sources, seeded stratified splits, scaling, fingerprints."""

import numpy as np
import pytest

from nnrun import data
from nnrun.config import validation as config
from nnrun.errors import BadInput, ConfigError, DataError

SIZES = {"iris": 150, "wine": 178, "breast_cancer": 569, "digits": 1797}
N_CLASSES = {"iris": 3, "wine": 3, "breast_cancer": 2, "digits": 10}
N_FEATURES = {"iris": 4, "wine": 13, "breast_cancer": 30, "digits": 64}


def section(**fields):
    """The validated `data` section of a config, as the CLI would give it."""
    return config.validate({"data": fields, "model": ["Flatten"], "loss": "mse"}, "test").data


def sklearn(name="iris", validation_split=0.1, seed=0, **fields):
    return data.load(section(source="sklearn", name=name, **fields), validation_split, seed)


def npz(path, validation_split=0.1, seed=0, **fields):
    return data.load(section(source="npz", path=str(path), **fields), validation_split, seed)


def counts(y, k):
    return np.bincount(y, minlength=k)


# --- scikit-learn's bundled datasets ---------------------------------------------


@pytest.mark.parametrize("name", list(SIZES))
def test_bundled_dataset_loads_and_splits_add_up(name):
    ds = sklearn(name, test_split=0.2, validation_split=0.1)
    n = SIZES[name]
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == n
    assert len(ds.x_train) == len(ds.y_train)
    assert len(ds.x_val) == len(ds.y_val)
    assert len(ds.x_test) == len(ds.y_test)
    assert ds.x_train.shape[1:] == (N_FEATURES[name],)
    assert ds.x_train.dtype == np.float32
    assert ds.y_train.dtype.kind == "i"
    assert len(ds.class_names) == N_CLASSES[name]
    assert set(np.unique(ds.y_train)) == set(range(N_CLASSES[name]))
    assert ds.is_classification
    assert ds.preprocessing["task"] == "classification"
    assert ds.preprocessing["input_shape"] == [N_FEATURES[name]]
    assert ds.preprocessing["class_names"] == ds.class_names


def test_class_names_are_recorded():
    assert sklearn("iris").class_names == ["setosa", "versicolor", "virginica"]
    assert sklearn("breast_cancer").class_names == ["malignant", "benign"]
    assert sklearn("digits").class_names == [str(i) for i in range(10)]


@pytest.mark.parametrize("test_split, validation_split", [(0.2, 0.1), (0.3, 0.25), (0.1, 0.5)])
def test_split_fractions_are_respected(test_split, validation_split):
    n = SIZES["wine"]
    ds = sklearn("wine", test_split=test_split, validation_split=validation_split)
    assert abs(len(ds.x_test) - n * test_split) <= 1
    rest = n - len(ds.x_test)
    assert abs(len(ds.x_val) - rest * validation_split) <= 1
    assert len(ds.x_train) == rest - len(ds.x_val)


def test_splits_are_stratified():
    ds = sklearn("wine", test_split=0.3, validation_split=0.2)
    everything = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    whole = counts(everything, 3) / len(everything)
    for y in (ds.y_train, ds.y_val, ds.y_test):
        expected = whole * len(y)
        assert np.all(np.abs(counts(y, 3) - expected) <= 1), (counts(y, 3), expected)


def test_splits_are_disjoint_and_cover_the_dataset():
    ds = sklearn("iris", validation_split=0.2)
    rows = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    from sklearn.datasets import load_iris

    raw = load_iris().data.astype("float32")
    assert sorted(map(tuple, rows)) == sorted(map(tuple, raw))


def test_same_seed_gives_identical_splits():
    a, b = sklearn("wine", seed=3), sklearn("wine", seed=3)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_different_seed_gives_a_different_split():
    a, b = sklearn("wine", seed=3), sklearn("wine", seed=4)
    assert a.x_test.shape == b.x_test.shape
    assert not np.array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_train, b.x_train)


def test_no_validation_split():
    ds = sklearn("iris", validation_split=0)
    assert ds.x_val is None and ds.y_val is None
    assert len(ds.x_train) + len(ds.x_test) == 150


def test_test_split_zero_is_not_silently_replaced():
    try:
        ds = sklearn("iris", test_split=0)
    except (ConfigError, DataError) as e:
        assert "test_split" in str(e)
    else:
        assert len(ds.x_test) != 30  # 0.2 of 150: the value the user did not ask for


def test_split_that_leaves_nothing_is_an_error(tmp_path):
    path = tmp_path / "few.npz"
    np.savez(path, x=np.random.rand(4, 2), y=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError) as info:
        npz(path, test_split=0.05)
    assert "data.test_split" in str(info.value)
    assert "empty split" in str(info.value)


# --- scaling -------------------------------------------------------------------


def test_standard_scaling_centres_train_features():
    ds = sklearn("digits", scale="standard")
    from sklearn.datasets import load_digits

    varying = load_digits().data.std(axis=0) > 0
    mean, std = ds.x_train.mean(axis=0), ds.x_train.std(axis=0)
    assert np.allclose(mean, 0, atol=1e-4)
    nonconstant = std > 0
    assert nonconstant.sum() >= 50
    assert np.allclose(std[nonconstant], 1, atol=1e-3)
    assert np.allclose(ds.x_train[:, ~varying], 0)  # constant pixels become 0, not NaN
    assert np.isfinite(ds.x_test).all() and np.isfinite(ds.x_val).all()

    scaling = ds.preprocessing["scaling"]
    assert scaling["method"] == "standard"
    assert len(scaling["mean"]) == len(scaling["scale"]) == 64
    assert all(isinstance(v, float) for v in scaling["mean"] + scaling["scale"])


@pytest.mark.parametrize("method", ["standard", "minmax"])
def test_transform_reapplies_the_learned_scaling(method):
    raw = sklearn("wine", scale="none", seed=5)
    scaled = sklearn("wine", scale=method, seed=5)
    assert scaled.preprocessing["scaling"]["method"] == method
    np.testing.assert_array_equal(raw.y_test, scaled.y_test)  # same split either way
    again = data.transform(raw.x_test, scaled.preprocessing)
    assert again.dtype == np.float32
    np.testing.assert_allclose(again, scaled.x_test, rtol=0, atol=1e-6)
    np.testing.assert_allclose(data.transform(raw.x_train, scaled.preprocessing), scaled.x_train, atol=1e-6)
    assert not np.allclose(raw.x_test, scaled.x_test)


def test_transform_of_preprocessing_read_back_from_json():
    import json

    raw = sklearn("iris", seed=1)
    scaled = sklearn("iris", scale="standard", seed=1)
    saved = json.loads(json.dumps(scaled.preprocessing))  # what preprocessing.json holds
    np.testing.assert_allclose(data.transform(raw.x_val, saved), scaled.x_val, atol=1e-6)


def test_standard_scaling_uses_training_statistics_only():
    raw = sklearn("wine", seed=2)
    scaled = sklearn("wine", scale="standard", seed=2)
    np.testing.assert_allclose(scaled.preprocessing["scaling"]["mean"], raw.x_train.mean(axis=0), rtol=1e-5)
    assert not np.allclose(scaled.x_test.mean(axis=0), 0, atol=1e-3)


def test_minmax_scaling_keeps_train_within_0_1():
    ds = sklearn("breast_cancer", scale="minmax")
    assert ds.x_train.min() >= -1e-6
    assert ds.x_train.max() <= 1 + 1e-6
    assert np.allclose(ds.x_train.min(axis=0), 0, atol=1e-6)
    assert np.allclose(ds.x_train.max(axis=0), 1, atol=1e-6)
    scaling = ds.preprocessing["scaling"]
    assert scaling["method"] == "minmax"
    assert len(scaling["min"]) == len(scaling["scale"]) == 30


def test_no_scaling_leaves_features_unchanged():
    ds = sklearn("iris", scale="none", validation_split=0)
    assert ds.preprocessing["scaling"] is None
    from sklearn.datasets import load_iris

    raw = load_iris().data.astype("float32")
    rows = set(map(tuple, raw))
    assert set(map(tuple, ds.x_train)) <= rows and set(map(tuple, ds.x_test)) <= rows
    np.testing.assert_array_equal(data.transform(ds.x_test, ds.preprocessing), ds.x_test)


def test_scaling_of_image_shaped_features(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, size=(40, 4, 4, 1)).astype("float32")
    path = tmp_path / "images.npz"
    np.savez(path, x=x, y=np.arange(40) % 2)
    ds = npz(path, scale="standard")
    assert ds.x_train.shape[1:] == (4, 4, 1)
    assert ds.preprocessing["input_shape"] == [4, 4, 1]
    assert np.allclose(ds.x_train.reshape(len(ds.x_train), -1).mean(axis=0), 0, atol=1e-4)


# --- fingerprint ------------------------------------------------------------------


def test_fingerprint_is_stable_and_depends_on_the_data(tmp_path):
    a, b = sklearn("iris", seed=1), sklearn("iris", seed=2, scale="standard")
    assert a.fingerprint.startswith("sha256:")
    assert len(a.fingerprint) == len("sha256:") + 64
    assert a.fingerprint == b.fingerprint  # the raw data, not the split or scaling
    assert sklearn("wine").fingerprint != a.fingerprint

    x, y = np.arange(60, dtype="float32").reshape(30, 2), np.arange(30) % 3
    np.savez(tmp_path / "a.npz", x=x, y=y)
    first = npz(tmp_path / "a.npz").fingerprint
    assert npz(tmp_path / "a.npz").fingerprint == first
    x[7, 1] += 1
    np.savez(tmp_path / "a.npz", x=x, y=y)
    assert npz(tmp_path / "a.npz").fingerprint != first
    y[0] = 2
    np.savez(tmp_path / "b.npz", x=x, y=y)
    assert npz(tmp_path / "b.npz").fingerprint not in (first, npz(tmp_path / "a.npz").fingerprint)


# --- .npz files -------------------------------------------------------------------


def test_npz_with_its_own_test_split(tmp_path):
    rng = np.random.default_rng(0)
    x_train, y_train = rng.random((50, 3)), np.arange(50) % 2
    x_test, y_test = rng.random((11, 3)), np.arange(11) % 2
    path = tmp_path / "keras.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    ds = npz(path, validation_split=0.2, test_split=0.5)
    np.testing.assert_array_equal(ds.x_test, x_test.astype("float32"))  # as-is, in order
    np.testing.assert_array_equal(ds.y_test, y_test)
    assert len(ds.x_train) == 40 and len(ds.x_val) == 10  # validation from the training arrays
    assert ds.class_names == ["0", "1"]


def test_npz_test_shape_mismatch(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((10, 3)), y_train=np.arange(10) % 2, x_test=np.zeros((4, 2)), y_test=[0, 1, 0, 1])
    with pytest.raises(DataError) as info:
        npz(path)
    assert "x_test" in str(info.value)


def test_npz_with_x_and_y(tmp_path):
    path = tmp_path / "xy.npz"
    np.savez(path, x=np.random.rand(100, 5), y=np.arange(100) % 4)
    ds = npz(path, test_split=0.25, validation_split=0.2)
    assert len(ds.x_test) == 25 and len(ds.x_val) == 15 and len(ds.x_train) == 60
    assert ds.class_names == ["0", "1", "2", "3"]
    assert ds.x_train.dtype == np.float32


def test_npz_relative_path_resolves_from_current_directory(tmp_path, monkeypatch):
    np.savez(tmp_path / "rel.npz", x=np.random.rand(20, 2), y=np.arange(20) % 2)
    monkeypatch.chdir(tmp_path)
    ds = data.load(section(source="npz", path="rel.npz"), 0.1, 0)
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 20


def test_one_hot_targets_become_class_indices(tmp_path):
    labels = np.arange(30) % 3
    path = tmp_path / "onehot.npz"
    np.savez(path, x=np.random.rand(30, 2), y=np.eye(3, dtype="float32")[labels])
    ds = npz(path, validation_split=0)
    assert ds.y_train.ndim == 1 and ds.y_train.dtype.kind == "i"
    assert ds.class_names == ["0", "1", "2"]
    assert ds.is_classification
    assert sorted(np.concatenate([ds.y_train, ds.y_test]).tolist()) == sorted(labels.tolist())


def test_one_hot_with_class_names(tmp_path):
    labels = np.arange(30) % 3
    path = tmp_path / "onehot.npz"
    np.savez(
        path,
        x_train=np.random.rand(30, 2),
        y_train=np.eye(3)[labels],
        x_test=np.random.rand(6, 2),
        y_test=np.eye(3)[np.arange(6) % 3],
        class_names=np.array(["cat", "dog", "bird"]),
    )
    ds = npz(path)
    assert ds.class_names == ["cat", "dog", "bird"]
    np.testing.assert_array_equal(ds.y_test, np.arange(6) % 3)


def test_integer_labels_that_are_not_0_to_k(tmp_path):
    y = np.where(np.arange(40) % 2, 7, 3)
    path = tmp_path / "sparse.npz"
    np.savez(path, x=np.random.rand(40, 2), y=y)
    ds = npz(path)
    assert ds.class_names == ["3", "7"]
    assert set(np.unique(ds.y_train)) == {0, 1}
    assert ds.y_train.max() < len(ds.class_names)


def test_string_labels(tmp_path):
    y = np.array(["dog", "cat", "bird"] * 10)
    x = np.arange(30, dtype="float32")[:, None] * np.ones((1, 2), "float32")
    path = tmp_path / "strings.npz"
    np.savez(path, x=x, y=y)
    ds = npz(path, validation_split=0)
    assert ds.class_names == ["bird", "cat", "dog"]
    # each row's feature tells which label it had: row i has label y[i]
    for row, label in zip(ds.x_test, ds.y_test, strict=True):
        assert ds.class_names[label] == y[int(row[0])]


def test_class_names_array(tmp_path):
    path = tmp_path / "named.npz"
    np.savez(path, x=np.random.rand(30, 2), y=np.arange(30) % 3, class_names=np.array(["cat", "dog", "bird"]))
    ds = npz(path)
    assert ds.class_names == ["cat", "dog", "bird"]
    assert ds.preprocessing["class_names"] == ["cat", "dog", "bird"]


def test_class_names_array_keeps_classes_absent_from_the_data(tmp_path):
    path = tmp_path / "named.npz"
    np.savez(path, x=np.random.rand(30, 2), y=np.arange(30) % 2 * 2, class_names=np.array(["a", "b", "c"]))
    ds = npz(path)
    assert ds.class_names == ["a", "b", "c"]  # the model needs 3 outputs
    assert set(np.unique(ds.y_train)) == {0, 2}


def test_float_targets_are_regression(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "reg.npz"
    y = rng.normal(size=30)
    np.savez(path, x=rng.random((30, 2)), y=y)
    ds = npz(path)
    assert ds.class_names is None
    assert not ds.is_classification
    assert ds.preprocessing["task"] == "regression"
    assert ds.preprocessing["class_names"] is None
    assert ds.y_train.dtype == np.float32
    got = np.sort(np.concatenate([ds.y_train, ds.y_val, ds.y_test]))
    np.testing.assert_allclose(got, np.sort(y).astype("float32"))


# --- .npz errors ------------------------------------------------------------------


def npz_error(path, **fields):
    with pytest.raises(DataError) as info:
        npz(path, **fields)
    assert isinstance(info.value, BadInput) and info.value.exit_code == 2
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_npz_file(tmp_path):
    message = npz_error(tmp_path / "missing.npz")
    assert "data.path" in message
    assert "missing.npz" in message
    assert "does not exist" in message


def test_text_file_is_not_an_npz(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("these are not arrays\n")
    message = npz_error(path)
    assert "data.path" in message
    assert "notes.npz" in message
    assert "not an .npz archive" in message


def test_text_file_message_does_not_advise_pickle(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("these are not arrays\n")
    message = npz_error(path)
    assert "pickle" not in message


def test_npy_file_is_refused(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((10, 2)))
    message = npz_error(path)
    assert "data.path" in message
    assert "x.npy" in message
    assert "numpy.savez" in message


def test_npz_without_the_arrays_lists_what_it_has(tmp_path):
    path = tmp_path / "keys.npz"
    np.savez(path, features=np.zeros((3, 2)), labels=np.zeros(3))
    message = npz_error(path)
    assert "data.path" in message and "keys.npz" in message
    assert "x_train and y_train" in message and "x and y" in message
    assert "features, labels" in message


def test_npz_x_and_y_lengths_differ(tmp_path):
    path = tmp_path / "mismatch.npz"
    np.savez(path, x=np.zeros((10, 2)), y=np.zeros(9))
    message = npz_error(path)
    assert "10 samples but 9 targets" in message


def test_npz_nan_in_x(tmp_path):
    x = np.random.rand(20, 2)
    x[3, 1] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, x=x, y=np.arange(20) % 2)
    message = npz_error(path)
    assert "NaN" in message


@pytest.mark.parametrize("case", ["mismatch", "nan"])
def test_npz_content_errors_name_the_file(tmp_path, case):
    x = np.random.rand(20, 2)
    y = np.arange(20) % 2
    if case == "mismatch":
        y = y[:-1]
    else:
        x[3, 1] = np.nan
    path = tmp_path / f"{case}.npz"
    np.savez(path, x=x, y=y)
    message = npz_error(path)
    assert "data.path" in message
    assert f"{case}.npz" in message


def test_npz_one_dimensional_x(tmp_path):
    path = tmp_path / "flat.npz"
    np.savez(path, x=np.arange(10.0), y=np.arange(10) % 2)
    message = npz_error(path)
    assert "shape (10,)" in message


def test_one_registry_names_every_source_the_config_accepts_and_imports_nothing_heavy():
    import subprocess
    import sys

    from nnrun.config import schema as config
    from nnrun.data import registry

    assert set(registry.SOURCES) == set(config.DATA_SOURCES)
    assert set(registry.FEATURE_KINDS) == {"array", "table", "images"}
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, nnrun.data; "
            "print(sorted({'pandas', 'PIL', 'keras', 'tensorflow', 'sklearn'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
