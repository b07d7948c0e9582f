"""Shared fixtures (a CLI runner, tiny configs that train in seconds) and the suite's markers.

Markers (pyproject.toml lists them):

- `slow`: trains. Given to every user of a training fixture; a test that calls `fit` unmarked fails.
- `backend`: depends on Keras's backend: the JAX pass (`KERAS_BACKEND=jax pytest -m backend`) runs
  these. Given to every `slow` test but those marked `any_backend`; a test that loads Keras through
  nnrun marked neither fails.
- `any_backend`: trains, but what it checks (a listing of runs, a table's columns, a sweep's
  bookkeeping) cannot differ between backends: it runs once, in the TensorFlow pass.
- `compiled`: trains with Keras's compiled (traced) step functions. Others run eagerly on TensorFlow,
  which on data this small is faster than tracing; on JAX every test trains compiled (see `_eager`).
  Shared runs (module and session fixtures) are made the same way whatever test asks for them first.
- `plots`: nnrun draws its figures. Others get plot functions that draw and write nothing.

As Keras's own conftest does, the backend is read from the environment (`KERAS_BACKEND`), not from
Keras: collecting the tests imports no TensorFlow (`test_collection.py` checks it).
"""

import contextlib
import functools
import inspect
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from nnrun import backend, plots

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# JAX compiles each step function (and, run eagerly, each op) with XLA. One compilation cache on disk,
# shared by both xdist workers and the processes tests start, compiles each once per checkout; its
# entries are keyed by what was compiled, so a stale one is never used.
for _name, _value in {
    "JAX_COMPILATION_CACHE_DIR": str(Path(__file__).parent.parent / ".pytest_cache" / "jax-compilation-cache"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    # Bounded, JAX reads and writes each entry under a file lock (jax/_src/lru_cache.py); unbounded, it
    # writes in place, and a worker could read an entry another process was still writing.
    "JAX_COMPILATION_CACHE_MAX_SIZE": str(1 << 30),
}.items():
    os.environ.setdefault(_name, _value)

# The signal tests send SIGINT and SIGHUP and expect nnrun to act on them. A launcher may have left them
# ignored, and nnrun keeps an ignored signal ignored (as `nohup nnrun train &` asks): a background job of a
# script (`bash .ci/run &`) starts with SIGINT ignored, a `nohup` one with SIGHUP too. Those tests then
# trained until their timeout and took their xdist workers with them. Each test process starts from the
# defaults, as a terminal's job does.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)

# The backend this pass runs on: $KERAS_BACKEND, else TensorFlow. Set for the whole session (and the processes
# tests start), since a config that names none would otherwise run on what `backend: auto` picks for its model.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
BACKEND = backend.default()

# Fixtures that train: a test that uses one, directly or through another fixture, is marked slow.
TRAINING_FIXTURES = {
    "tiny_template",
    "iris_run",
    "churn_run",
    "image_run",
    "regression_run",
    "digits_run",
    "interrupted_template",
    "killed_template",
    "interrupted_here",
    "augmented_image_run",
    "never_stopped",
    "finished_template",
}

# Heavy modules that collecting the tests must not import (nnrun imports them where it uses them).
HEAVY = ("tensorflow", "keras", "jax")
imported_at_collection: list[str] = []  # filled once collection ends; test_collection.py asserts it is empty


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") and not item.get_closest_marker("any_backend"):
            item.add_marker(pytest.mark.backend)
    # Slow tests first, each file's in its order: xdist hands tests out in this order, so both workers
    # end on sub-second tests rather than one waiting on the other's last training.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_collection_finish(session):
    imported_at_collection[:] = sorted(name for name in HEAVY if name in sys.modules)


class _Allowed:
    """What the test being set up, run or torn down may do; decided from its markers."""

    train = True  # calls Model.fit (marked slow)
    load_keras = True  # loads Keras through nnrun.backend (marked backend)
    eager = False  # trains eagerly (not marked compiled)
    plots = True  # draws figures (marked plots)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before the test's fixtures: what it may do, from its markers."""
    _Allowed.train = item.get_closest_marker("slow") is not None
    _Allowed.load_keras = any(item.get_closest_marker(name) for name in ("backend", "any_backend"))
    _Allowed.eager = item.get_closest_marker("compiled") is None
    _Allowed.plots = item.get_closest_marker("plots") is not None


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """A run shared by several tests is made the same way whichever test asks for it first: eager, no plots."""
    if fixturedef.scope == "function":
        yield
        return
    saved = _Allowed.eager, _Allowed.plots
    _Allowed.eager, _Allowed.plots = True, False
    try:
        yield
    finally:
        _Allowed.eager, _Allowed.plots = saved


def _guarded_keras(load_keras):
    """`nnrun.backend.keras`, which every nnrun module loads Keras through, with the markers enforced.

    `Model.fit` fails in a test not marked slow; `fit`, `evaluate` and `predict` run eagerly unless the
    test is marked compiled. A test that trains in a child process is beyond it: mark that one by hand.
    """

    @functools.wraps(load_keras)
    def keras():
        if not _Allowed.load_keras:  # pytest.fail: a BaseException, which nnrun's `except Exception` lets through
            pytest.fail("this test loads Keras but is not marked backend: add @pytest.mark.backend", False)
        module = load_keras()
        model = module.Model
        if not getattr(model.fit, "guarded", False):
            fit, evaluate, predict = model.fit, model.evaluate, model.predict

            def guarded_fit(self, *args, **kwargs):
                if not _Allowed.train:
                    pytest.fail("this test trains (Model.fit) but is not marked slow: add @pytest.mark.slow", False)
                if _signals:
                    kwargs["callbacks"] = [*(kwargs.get("callbacks") or ()), _signaller(module)]
                epochs = kwargs.get("epochs", 1) - kwargs.get("initial_epoch", 0)
                _eager(self, args, kwargs, epochs)
                return fit(self, *args, **kwargs)

            def eager_evaluate(self, *args, **kwargs):
                _eager(self, args, kwargs)
                return evaluate(self, *args, **kwargs)

            def eager_predict(self, *args, **kwargs):
                _eager(self, args, kwargs)
                return predict(self, *args, **kwargs)

            guarded_fit.guarded = True
            # Not compile: Keras skips compiling a loaded model whose class overrides compile.
            model.fit, model.evaluate, model.predict = guarded_fit, eager_evaluate, eager_predict
            assert module.backend.backend() == BACKEND, (module.backend.backend(), BACKEND)
        return module

    return keras


def _without_autotune(load_tensorflow):
    """`nnrun.backend.tensorflow`, with every `tf.data` iterator made without tf.data's autotuning thread.

    An iterator that the garbage collector frees late (its last reference in a cycle, freed in a later
    test) waits for that thread to end, and the thread ends only when its optimization period does, up
    to a minute: such waits, with no CPU used, took 60-130 s of a worker's wall time in the TensorFlow
    pass (py-spy and gdb: ~IteratorResource -> RootDataset::Iterator waiting on Model::OptimizeLoop).
    What the tests read from a stream does not depend on it; only how many elements are made at once.
    `_apply_debug_options` is the one place every iterator (a plain one, a distributed one's
    multi-device iterators, `reduce`) passes its dataset through: tf.data's debug mode disables
    autotuning there too. A TensorFlow without it fails here rather than letting the waits back in.
    """

    @functools.wraps(load_tensorflow)
    def tensorflow():
        tf = load_tensorflow()
        apply_debug_options = tf.data.Dataset._apply_debug_options
        if not getattr(apply_debug_options, "without_autotune", False):
            options = tf.data.Options()
            options.autotune.enabled = False

            def _apply_debug_options(self):
                return apply_debug_options(self).with_options(options)

            _apply_debug_options.without_autotune = True
            tf.data.Dataset._apply_debug_options = _apply_debug_options
        return tf

    return tensorflow


# On TensorFlow, tracing a step function costs 1-3 CPU-s; an eager step costs some 40 ms more than a
# traced one (measured on this suite's iris and digits configs): eager pays off up to about 50 steps.
# On JAX an eager step compiles each op it meets for the first time (hundreds on a CNN), and compiled
# steps are kept in the compilation cache above: compiled is faster everywhere (the JAX pass took 355 s
# instead of 488 s, `KERAS_BACKEND=jax pytest -n 2 -m backend`).
EAGER_STEPS = 50


def _eager(model, args, kwargs, epochs=1):
    """On TensorFlow, unless the test is marked compiled, a short fit, evaluate or predict runs eagerly.

    Short: at most `EAGER_STEPS` batches of arrays; datasets and long runs (epochs: 100000) stay traced.
    `run_eagerly` is an attribute of the model: nothing saved changes.
    """
    x = kwargs.get("x", args[0] if args else None)
    if not _Allowed.eager or BACKEND != "tensorflow" or not hasattr(x, "shape"):
        return
    steps = -(-len(x) // (kwargs.get("batch_size") or 32)) * max(epochs, 1)
    model.run_eagerly = steps <= EAGER_STEPS


# Before any test module imports nnrun's modules, which may bind `keras` from nnrun.backend at import.
backend.keras = _guarded_keras(backend.keras)
backend.tensorflow = _without_autotune(backend.tensorflow)  # keras() loads TensorFlow through it too

# Runs trained once per session, shared by the evaluate and predict tests (trained_runs imports nnrun's CLI).
from trained_runs import churn_run, digits_run, image_run, iris_run, regression_run  # noqa: E402, F401

_signals: list[tuple[int, int]] = []  # (signal, epochs): what `signalled` sends to the next training


@contextlib.contextmanager
def signalled(signum, epochs):
    """Within this block, training gets `signum` from `kill` (to this process) once `epochs` epochs are done.

    The signal arrives as one from outside would, at an epoch's end after its records and backup
    (the callback goes after nnrun's own), and nnrun's handler acts on it at its next safe point.
    """
    _signals.append((signum, epochs))
    try:
        yield
    finally:
        _signals.remove((signum, epochs))


def _signaller(keras):
    signum, epochs = _signals[-1]

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == epochs:
                os.kill(os.getpid(), signum)

    return Kill()


def _drawn_only_if_marked(draw):
    """A plot function that draws only in a test marked plots, and otherwise writes nothing."""

    signature = inspect.signature(draw)

    @functools.wraps(draw)
    def plot(*args, **kwargs):
        if _Allowed.plots:
            return draw(*args, **kwargs)
        return Path(signature.bind(*args, **kwargs).arguments["path"])

    return plot


for _name in ("learning_curves", "compare_curves", "confusion_matrix", "regression", "samples", "sweep"):
    setattr(plots, _name, _drawn_only_if_marked(getattr(plots, _name)))


TINY = {
    "seed": 7,
    "data": {"source": "sklearn", "name": "iris", "scale": "standard"},
    "model": {
        "layers": [{"Dense": {"units": 8, "activation": "relu"}}, {"Dense": {"units": 3, "activation": "softmax"}}]
    },
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "loss": "sparse_categorical_crossentropy",
    "metrics": ["accuracy"],
    "training": {"epochs": 2, "batch_size": 16},
}


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def write_config(tmp_path):
    """Returns a function that writes a config (TINY, updated) and gives its path.

    Runs go to `tmp_path/runs`. Pass `text=` to write raw YAML instead.
    """

    def write(name="tiny.yaml", text=None, **sections):
        path = tmp_path / name
        if text is None:
            config = {**TINY, "output": {"dir": str(tmp_path / "runs")}, **sections}
            text = yaml.safe_dump(config, sort_keys=False)
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def tiny_template(tmp_path_factory):
    """A completed TINY run trained once per session; tests get copies (`tiny_run`)."""
    from nnrun.cli.main import cli

    root = tmp_path_factory.mktemp("tiny-template")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "output": {"dir": str(root / "runs")}}, sort_keys=False))
    result = CliRunner().invoke(cli, ["train", str(config)])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def tiny_run(tiny_template, tmp_path):
    """A completed TINY run of this test's own, in `tmp_path/runs` (a copy of the session's)."""
    return copy_run(tiny_template, tmp_path / "runs")


def linked_elsewhere(run, folder, tmp_path):
    """Replaces `run/folder` (if there) by a symbolic link to an empty folder; returns the link and that folder."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = run / folder
    if link.is_dir():
        link.rename(tmp_path / f"{folder}.real")
    link.symlink_to(elsewhere, target_is_directory=True)
    return link, elsewhere


def copy_run(run, runs, name=None):
    """Copies a run directory into the folder `runs`, as `name` (default its own)."""
    copy = runs / (name or run.name)
    shutil.copytree(run, copy, symlinks=True)
    return copy


def interrupt_after(monkeypatch, epochs):
    """Makes the next training stop as Ctrl-C would, once `epochs` epochs are done and backed up."""
    import signal

    from nnrun.errors import Interrupted
    from nnrun.training import callbacks

    own = callbacks.StopOnSignal.on_epoch_end

    def stop(self, epoch, logs=None):
        if epoch + 1 == epochs:
            monkeypatch.setattr(callbacks.StopOnSignal, "on_epoch_end", own)
            raise Interrupted(signal.SIGINT)
        own(self, epoch, logs)

    monkeypatch.setattr(callbacks.StopOnSignal, "on_epoch_end", stop)


def full_disk(monkeypatch, name, after=0):
    """Makes the disk full when a file whose name ends with `name` is flushed, once `after` such files were.

    nnrun flushes every file it writes (`os.fsync`) before renaming it into place (nnrun.atomic), which is
    where a full disk often shows first (delayed allocation, network filesystems); whatever wrote the file
    (Keras, h5py, matplotlib, nnrun) wrote it whole. The error is the system's own: ENOSPC, no file named.

    Returns:
        The files that met the full disk (their temporary names), as they do.
    """
    import errno

    real, seen, failed = os.fsync, [], []

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.endswith(name) and os.path.isfile(path):
            seen.append(path)
            if len(seen) > after:
                failed.append(path)
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return failed
