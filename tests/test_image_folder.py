"""Image folders: listing, splits, the tf.data stream, apply, errors and `nnrun train` end to end.

Every image is generated: tiny PNG, JPEG, BMP and GIF files of varied sizes and
modes, each class its own colour, each file its own shade so it can be told apart.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnrun import data
from nnrun.cli.main import cli
from nnrun.config import validation as config
from nnrun.data import image_folder
from nnrun.errors import DataError

from conftest import interrupt_after

REPO = Path(__file__).resolve().parent.parent
COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "owl": (40, 40, 200)}
FORMATS = [("RGB", "png"), ("L", "png"), ("RGBA", "png"), ("P", "png"), ("RGB", "jpg"), ("L", "jpeg")]


def make_image(path, colour, size=(20, 24), mode="RGB"):
    image = Image.new("RGB", size, colour)
    image.putpixel((0, 0), (255, 255, 255))  # something for a flip or a resize to move
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert(mode).save(path)
    return path


def make_folder(root, counts=None, formats=FORMATS):
    """`root/<class>/<class>_<i>.<ext>`: a few images per class, sizes 16..40, modes and formats mixed."""
    counts = counts or {name: 8 for name in COLOURS}
    for k, (name, n) in enumerate(counts.items()):
        base = COLOURS.get(name, (120, 120, 120))
        for i in range(n):
            mode, ext = formats[(i + k) % len(formats)]
            size = (16 + (7 * i) % 25, 16 + (11 * i + 3 * k) % 25)
            make_image(root / name / f"{name}_{i}.{ext}", tuple(min(c + 4 * i, 255) for c in base), size, mode)
    return root


def section(path, **fields):
    """The validated `data` section of an images config."""
    raw = {
        "data": {"source": "images", "path": str(path), "image_size": [16, 16], **fields},
        "model": ["Flatten"],
        "loss": "mse",
    }
    return config.validate(raw, "test").data


def prep(**fields):
    return {
        "image_size": [16, 16],
        "input_shape": [16, 16, 3],
        "color_mode": "rgb",
        "rescale": None,
        "cache": False,
        **fields,
    }


def last_line(result):
    return Path(result.stdout.strip().splitlines()[-1])


def collect(stream):
    """All (images, labels) of a stream of batches, concatenated."""
    batches = list(stream.as_numpy_iterator())
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def cnn_config(path, **data_fields):
    return {
        "data": {"source": "images", "path": str(path), "image_size": [16, 16], **data_fields},
        "model": [
            {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
            "Flatten",
            {"Dense": {"units": 3, "activation": "softmax"}},
        ],
    }


# reading a folder -----------------------------------------------------------------


def test_read_lists_images_with_sorted_class_names(tmp_path):
    root = make_folder(tmp_path / "imgs", {"owl": 3, "cat": 5, "dog": 4})
    (root / "cat" / "notes.txt").write_text("not an image")  # ignored
    (root / "cat" / "._cat_0.png").write_bytes(b"macOS resource fork")  # hidden: ignored
    make_image(root / ".ipynb_checkpoints" / "x.png", (0, 0, 0))  # hidden folder: not a class
    make_image(root / "dog" / "puppies" / "p.PNG", (0, 0, 0))  # nested, upper-case extension: found
    raw = image_folder.read(section(root))
    assert raw.class_names == ["cat", "dog", "owl"]
    assert np.bincount(raw.y).tolist() == [5, 5, 3]
    assert all(
        Path(p).parent.name == raw.class_names[label] or Path(p).parent.name == "puppies"
        for p, label in zip(raw.x, raw.y, strict=True)
    )
    assert raw.x_test is None and raw.names == ("images", "labels")
    assert raw.origin == f"data.path '{root}'" and raw.fingerprint.startswith("sha256:")


@pytest.mark.slow  # ~4 s on JAX
def test_train_and_test_folders_give_the_test_split(tmp_path):
    root = tmp_path / "imgs"
    make_folder(root / "train", {"cat": 10, "dog": 10, "owl": 10})
    make_folder(root / "test", {"cat": 2, "dog": 3, "owl": 4})
    raw = image_folder.read(section(root))
    assert all("/test/" in p for p in raw.x_test) and not any("/test/" in p for p in raw.x)
    ds = data.load(section(root), 0.1, seed=0)
    assert np.bincount(ds.y_test).tolist() == [2, 3, 4]  # the folder's own, nothing held out
    assert len(ds.y_train) + len(ds.y_val) == 30
    assert ds.class_names == ["cat", "dog", "owl"]


def test_val_folder_is_the_test_split_when_there_is_no_test_folder(tmp_path):
    root = tmp_path / "imgs"
    make_folder(root / "train", {"cat": 6, "dog": 6})
    make_folder(root / "val", {"cat": 1, "dog": 2})
    ds = data.load(section(root), 0.0, seed=0)
    assert np.bincount(ds.y_test).tolist() == [1, 2] and len(ds.y_train) == 12


def test_splits_are_stratified_and_seeded(tmp_path):
    root = make_folder(tmp_path / "imgs", {"cat": 10, "dog": 10, "owl": 10})
    ds = data.load(section(root, test_split=0.2), 0.25, seed=3)
    assert np.bincount(ds.y_test).tolist() == [2, 2, 2]
    assert np.bincount(ds.y_val).tolist() == [2, 2, 2] and np.bincount(ds.y_train).tolist() == [6, 6, 6]
    again = data.load(section(root, test_split=0.2), 0.25, seed=3)
    assert collect(ds.x_test)[0].tobytes() == collect(again.x_test)[0].tobytes()


def test_fingerprint_follows_the_pixels(tmp_path):
    root = make_folder(tmp_path / "imgs")
    bmp = make_image(root / "dog" / "extra.bmp", (10, 200, 10))
    first, size = image_folder.read(section(root)).fingerprint, bmp.stat().st_size
    assert image_folder.read(section(root)).fingerprint == first
    make_image(bmp, (11, 200, 10))  # one shade off: same name, same number of bytes
    assert bmp.stat().st_size == size
    changed = image_folder.read(section(root)).fingerprint
    assert changed != first
    bmp.rename(root / "owl" / "extra.bmp")  # same bytes, other class
    assert image_folder.read(section(root)).fingerprint not in (first, changed)


def test_splits_and_fingerprint_are_the_same_however_the_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(image_folder, "feed", lambda *args: None)  # the records are the point, not the streams
    root = make_folder(tmp_path / "project" / "imgs", {"cat": 5, "dog": 5})
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(root, target_is_directory=True)
    first = data.load(section(root), 0.25, seed=1)
    assert {split["paths"] for split in first.splits.values()} == {"relative"}
    for where, named in (
        ("project", "imgs"),
        ("project", "./imgs/"),
        ("project/imgs", "."),
        ("elsewhere", "../project/imgs"),
        ("elsewhere", str(tmp_path / "link")),
    ):
        monkeypatch.chdir(tmp_path / where)
        again = data.load(section(named), 0.25, seed=1)
        assert (again.splits, again.fingerprint) == (first.splits, first.fingerprint), (where, named)


def test_a_split_recorded_by_nnrun_0_2_is_known_again(tmp_path, monkeypatch):
    """nnrun 0.2 named image files as training read them; evaluate re-creates the split from the absolute path."""
    import importlib

    prepare = importlib.import_module("nnrun.data.prepare")  # the package's `prepare` is its function
    monkeypatch.setattr(image_folder, "feed", lambda *args: None)
    root = make_folder(tmp_path / "project" / "imgs", {"cat": 5, "dog": 5})
    (tmp_path / "elsewhere").mkdir()
    own = prepare._split_id

    def recorded(where, named):
        """The test split as nnrun 0.2 recorded it, training in `where` on `named`."""
        monkeypatch.chdir(tmp_path / where)
        with monkeypatch.context() as m:
            m.setattr(prepare, "_split_id", lambda x, y, root=None: own(x, y))  # the paths as read
            return data.load(section(named), 0.25, seed=1).splits["test"]

    assert "paths" not in recorded("project", str(root))
    for where, named in (("project", str(root)), ("project", "imgs"), ("project/imgs", "."), ("/", str(root)[1:])):
        old = recorded(where, named)
        for evaluated_in in ("elsewhere", "project"):
            monkeypatch.chdir(tmp_path / evaluated_in)
            assert old in data.load(section(root), 0.25, seed=1).test_split_before(), (where, named, evaluated_in)
    # Through '..', it is known where training ran; from elsewhere, it is not.
    old = recorded("elsewhere", "../project/imgs")
    assert old in data.load(section(root), 0.25, seed=1).test_split_before()
    monkeypatch.chdir(tmp_path / "project")
    assert old not in data.load(section(root), 0.25, seed=1).test_split_before()


# the stream -----------------------------------------------------------------------


def test_feed_yields_rescaled_float_batches_and_int_labels(tmp_path):
    root = make_folder(tmp_path / "imgs")
    raw = image_folder.read(section(root))
    stream = image_folder.feed(raw.x, raw.y, prep(rescale=1 / 255), 5, training=False, seed=0)
    import tensorflow as tf

    assert isinstance(stream, tf.data.Dataset)
    batches = list(stream.as_numpy_iterator())
    assert [len(b[1]) for b in batches] == [5, 5, 5, 5, 4]
    images, labels = batches[0]
    assert images.shape == (5, 16, 16, 3) and images.dtype == np.float32 and labels.dtype == np.int64
    every = np.concatenate([b[0] for b in batches])
    assert 0.0 <= every.min() and every.max() <= 1.0 and every.max() > 0.7
    raw_pixels = collect(image_folder.feed(raw.x, raw.y, prep(), 5, training=False, seed=0))[0]
    assert raw_pixels.max() > 200  # no rescale: pixels stay 0..255
    np.testing.assert_allclose(every, raw_pixels / 255, atol=1e-6)


def test_feed_reads_files_as_it_goes(tmp_path):
    root = make_folder(tmp_path / "imgs")
    raw = image_folder.read(section(root))
    stream = image_folder.feed(raw.x, raw.y, prep(), 4, training=False, seed=0)
    make_image(Path(raw.x[0]), (0, 0, 0), size=(30, 30))  # changed after the stream was made
    assert collect(stream)[0][0][8, 8].tolist() == [0, 0, 0]  # the new black, not the old red


@pytest.mark.parametrize("cache", [False, True])
def test_training_stream_reshuffles_each_epoch_and_other_streams_keep_label_order(tmp_path, cache):
    root = make_folder(tmp_path / "imgs")
    raw = image_folder.read(section(root))
    ids = np.arange(len(raw.x))  # each file's own label, to see the order
    expected = image_folder.apply(raw.x, prep(cache=cache))
    fixed = image_folder.feed(raw.x, ids, prep(cache=cache), 4, training=False, seed=0)
    for _ in range(2):
        images, order = collect(fixed)
        assert order.tolist() == ids.tolist()
        np.testing.assert_array_equal(images, expected)
    from nnrun.data import feeding

    shuffled = image_folder.feed(raw.x, ids, prep(cache=cache), 4, training=True, seed=0)
    feeding.set_epoch(1)  # as SeedEachEpoch does when an epoch begins
    images_1, epoch_1 = collect(shuffled)
    for _ in range(3):
        iter(shuffled)  # Keras opens a stream more often than once an epoch
    assert collect(shuffled)[1].tolist() == epoch_1.tolist(), "an epoch's order follows the epoch, not the reads"
    feeding.set_epoch(2)
    epoch_2 = collect(shuffled)[1]
    assert sorted(epoch_1) == ids.tolist() and epoch_1.tolist() != ids.tolist() and epoch_1.tolist() != epoch_2.tolist()
    np.testing.assert_array_equal(images_1, expected[epoch_1])  # images travel with their labels
    feeding.set_epoch(0)


@pytest.mark.slow
def test_an_image_folder_run_resumed_ends_as_one_never_stopped(runner, write_config, tmp_path, monkeypatch):
    root = make_folder(tmp_path / "imgs", {"cat": 6, "dog": 6, "owl": 6})
    config = write_config(
        data={
            "source": "images",
            "path": str(root),
            "image_size": [12, 12],
            "rescale": "1/255",
            "augmentation": [{"RandomFlip": "horizontal"}],
        },
        model=["Flatten", {"Dense": {"units": 3, "activation": "softmax"}}],
        training={"epochs": 3, "batch_size": 4, "validation_split": 0},
    )
    whole = runner.invoke(cli, ["train", str(config)])
    assert whole.exit_code == 0, whole.output
    interrupt_after(monkeypatch, 1)
    assert runner.invoke(cli, ["train", str(config)]).exit_code == 130
    run = next(p for p in (tmp_path / "runs").iterdir() if not p.is_symlink() and p.name != last_line(whole).name)
    resumed = runner.invoke(cli, ["resume", str(run)])
    assert resumed.exit_code == 0, resumed.output
    assert (run / "history.csv").read_text() == (last_line(whole) / "history.csv").read_text()


@pytest.mark.parametrize("size", [[16, 16], [23, 41], [64, 48]])
@pytest.mark.parametrize("color_mode", ["rgb", "grayscale"])
def test_pillow_reads_images_as_training_reads_them(tmp_path, size, color_mode):
    from nnrun.data import pixels

    formats = [*FORMATS, ("RGB", "jpeg"), ("P", "gif"), ("RGB", "bmp")]
    paths = [str(p) for p in sorted(make_folder(tmp_path / "imgs", formats=formats).rglob("*.*"))]
    noise = np.random.default_rng(0).integers(0, 256, (37, 29, 3), dtype="uint8")
    for ext in ("png", "jpg"):
        Image.fromarray(noise).save(tmp_path / f"noise.{ext}")
        paths.append(str(tmp_path / f"noise.{ext}"))
    Image.fromarray(noise[..., 0].astype("uint16") * 257).save(tmp_path / "grey16.png")  # 16 bits per pixel
    paths.append(str(tmp_path / "grey16.png"))
    preprocessing = prep(image_size=size, color_mode=color_mode, rescale=1 / 255)
    np.testing.assert_allclose(pixels.read(paths, preprocessing), image_folder.apply(paths, preprocessing), atol=1e-5)


def test_apply_prepares_images_exactly_as_the_stream(tmp_path):
    root = make_folder(tmp_path / "imgs", formats=FORMATS + [("RGB", "bmp"), ("P", "gif")])
    raw = image_folder.read(section(root))
    preprocessing = prep(rescale=1 / 255, image_size=[12, 20], input_shape=[12, 20, 3])
    applied = image_folder.apply(raw.x, preprocessing)
    assert applied.shape == (len(raw.x), 12, 20, 3) and applied.dtype == np.float32
    np.testing.assert_array_equal(applied, collect(image_folder.feed(raw.x, raw.y, preprocessing, 7, False, 0))[0])
    cat = image_folder.apply([raw.x[0]], preprocessing)[0]
    assert cat[8, 10].tolist() == pytest.approx([200 / 255, 40 / 255, 40 / 255], abs=0.02)  # red stays red


def test_grayscale_gives_one_channel_for_every_format(tmp_path):
    root = make_folder(tmp_path / "imgs", formats=FORMATS + [("RGB", "bmp"), ("P", "gif")])
    raw = image_folder.read(section(root))
    preprocessing = image_folder.fit(raw.x, section(root, color_mode="grayscale", rescale="1/255"))
    assert preprocessing["input_shape"] == [16, 16, 1] and preprocessing["rescale"] == pytest.approx(1 / 255)
    images = image_folder.apply(raw.x, preprocessing)
    assert images.shape == (len(raw.x), 16, 16, 1)
    np.testing.assert_array_equal(images, collect(image_folder.feed(raw.x, raw.y, preprocessing, 8, False, 0))[0])
    assert json.loads(json.dumps(preprocessing)) == preprocessing


def test_apply_names_a_file_that_is_not_an_image(tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("this is text, not a PNG")
    with pytest.raises(DataError, match=r"photo\.png: not a readable image: Unknown image file format"):
        image_folder.apply([str(fake)], prep())
    with pytest.raises(DataError, match=r"missing\.jpg: no such file"):
        image_folder.apply([str(tmp_path / "missing.jpg")], prep())


# bad folders, through `nnrun check` ------------------------------------------------


def flat(root):
    make_folder(root)


def split(root, test_classes):
    make_folder(root / "train")
    make_folder(root / "test", {name: 2 for name in test_classes})


BAD_FOLDERS = [
    pytest.param(None, ["no such folder"], id="missing"),
    pytest.param(lambda r: r.write_text("x"), ["is a file"], id="a-file"),
    pytest.param(lambda r: r.mkdir(), ["has no class sub-folders"], id="empty"),
    pytest.param(
        lambda r: make_image(r / "a.png", (0, 0, 0)),
        ["no class sub-folders", "1 images must go into"],
        id="loose-images",
    ),
    pytest.param(lambda r: (flat(r), (r / "eel").mkdir()), ["class folder 'eel' has no images"], id="empty-class"),
    pytest.param(lambda r: make_folder(r, {"cat": 4}), ["1 class folder ('cat')", "at least 2"], id="one-class"),
    pytest.param(
        lambda r: split(r, ["cat", "dog"]), ["test/ has classes", "missing in test/: owl"], id="test-classes-differ"
    ),
    pytest.param(
        lambda r: (flat(r), (r / "dog" / "fake.jpg").write_text("text")),
        ["1 of 25 images cannot be decoded: dog/fake.jpg (not a readable image"],
        id="not-an-image",
    ),
]


@pytest.mark.parametrize("make, fragments", BAD_FOLDERS)
def test_bad_folder_is_one_error_line_naming_data_path(runner, write_config, tmp_path, make, fragments):
    root = tmp_path / "imgs"
    if make:
        make(root)
    result = runner.invoke(cli, ["check", str(write_config(**cnn_config(root)))])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    for fragment in [f"data.path '{root}'", *fragments]:
        assert fragment in lines[0], lines[0]


@pytest.mark.backend
def test_check_a_grayscale_folder(runner, write_config, tmp_path):
    root = make_folder(tmp_path / "imgs")
    result = runner.invoke(cli, ["check", str(write_config(**cnn_config(root, color_mode="grayscale")))])
    assert result.exit_code == 0, result.output
    assert "of shape (16, 16, 1); 3 classes" in result.stdout


# end to end -------------------------------------------------------------------------


@pytest.mark.plots
@pytest.mark.slow
@pytest.mark.any_backend  # the shipped config's files and plumbing; JAX trains images in test_workflows, test_export
def test_shipped_config_trains_on_a_folder(runner, tmp_path):
    root = make_folder(tmp_path / "imgs", {"cat": 10, "dog": 10, "owl": 10})
    overrides = [
        f"data.path={root}",
        "data.image_size=[16, 16]",
        "training.epochs=1",
        f"output.dir={tmp_path / 'runs'}",
    ]
    result = runner.invoke(
        cli,
        ["train", str(REPO / "configs" / "images_cnn.yaml"), "--quiet", *(a for o in overrides for a in ("--set", o))],
    )
    assert result.exit_code == 0, result.output
    run = Path(result.stdout.strip().splitlines()[-1])
    assert (run / "model.keras").is_file() and (run / "plots" / "confusion_matrix.png").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"train", "validation", "test"} and 0 <= metrics["test"]["accuracy"] <= 1
    prep_saved = json.loads((run / "preprocessing.json").read_text())
    assert prep_saved["kind"] == "images" and prep_saved["class_names"] == ["cat", "dog", "owl"]
    assert prep_saved["input_shape"] == [16, 16, 3] and prep_saved["rescale"] == pytest.approx(1 / 255)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["data_fingerprint"] == image_folder.read(section(root)).fingerprint
    import keras

    model = keras.saving.load_model(run / "model.keras")
    assert type(model.layers[0]).__name__ == "RandomFlip"
    # predict's path: raw files through the saved preprocessing and the saved model
    probs = model.predict(data.transform(np.array([str(root / "cat" / "cat_0.png")]), prep_saved), verbose=0)
    assert probs.shape == (1, 3) and probs.sum() == pytest.approx(1, abs=1e-4)


# damaged files ----------------------------------------------------------------------


def truncated_jpeg(path):
    """A JPEG of noise cut in half: its header is fine, its pixels stop midway."""
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype="uint8")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise).save(path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def test_check_decodes_every_image_and_names_the_damaged_ones(runner, write_config, tmp_path):
    root = make_folder(tmp_path / "imgs")
    truncated_jpeg(root / "dog" / "broken.jpg")
    (root / "owl" / "empty.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # a signature and nothing else
    result = runner.invoke(cli, ["check", str(write_config(**cnn_config(root)))])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "Traceback" not in line, result.output
    assert "2 of 26 images cannot be decoded" in line, line
    assert "dog/broken.jpg (" in line and "truncated" in line and "owl/empty.png (" in line, line


@pytest.mark.slow
def test_a_damaged_image_met_in_training_is_named_and_exits_2(runner, write_config, tmp_path):
    root = make_folder(tmp_path / "imgs")
    truncated_jpeg(root / "cat" / "broken.jpg")
    result = runner.invoke(cli, ["train", str(write_config(**cnn_config(root))), "--quiet"])
    run = next((tmp_path / "runs").glob("tiny-*"))
    info = json.loads((run / "run.json").read_text())
    assert result.exit_code == 2, result.output  # TensorFlow's "jpeg::Uncompress failed", with no file named
    assert "cat/broken.jpg (" in result.output and "cannot be decoded" in result.output, result.output
    assert info["status"] == "failed" and "cat/broken.jpg" in info["error"]


def test_predict_decodes_an_image_without_a_full_size_copy_of_numbers(tmp_path):
    import tracemalloc

    from PIL import Image

    from nnrun.data import pixels

    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (2_000, 3_000, 3), dtype="uint8")
    Image.fromarray(big).save(tmp_path / "big.png", compress_level=0)
    prep = {"image_size": [16, 16], "color_mode": "rgb", "rescale": 1 / 255}
    tracemalloc.start()  # sees NumPy's arrays (Pillow's decoded image is the budget, MAX_PIXELS of 3 bytes)
    try:
        got = pixels.read([tmp_path / "big.png"], prep)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < big.nbytes / 10, f"{peak} bytes of arrays for an image of {big.nbytes}"
    np.testing.assert_allclose(got[0], pixels.resize(big, 16, 16) / 255, rtol=1e-6)
