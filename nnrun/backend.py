"""Keras's backend, chosen once, and Keras (and TensorFlow) imported quietly, only where needed.

TensorFlow costs seconds and hundreds of MB to import and prints start-up
noise from C++ straight to file descriptor 2; nothing else in nnrun imports it
at module level, so `--help`, `schema` and config validation stay fast.
On JAX it is imported only when something needs it (`tf.data` streams image
folders), through `tensorflow()`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import warnings
from typing import Any

from nnrun import jax_cache
from nnrun.errors import ConfigError

BACKENDS = ("tensorflow", "jax")
EXTRAS = {"jax": "nnrun[jax]"}  # what to install for a backend that is not a dependency


def default() -> str:
    """The backend where no config or run says which (a config's `auto` is resolved by
    `nnrun.config.auto_backend`): $KERAS_BACKEND, else TensorFlow."""
    return os.environ.get("KERAS_BACKEND") or "tensorflow"


def use_for_run(name: str | None) -> None:
    """Loads a saved run's model on the backend that trained it, where this process has not loaded Keras yet.

    A `.keras` file loads on either backend, so where Keras is already loaded
    (on another), or the run's is unknown or not installed, `keras()`'s own
    choice stands.

    Args:
        name: run.json's `backend`.
    """
    if "keras" in sys.modules or name not in BACKENDS:
        return
    if name in EXTRAS and importlib.util.find_spec(name) is None:
        return
    os.environ["KERAS_BACKEND"] = name


def use(name: str | None) -> str:
    """Chooses Keras's backend for this process; it must come before Keras is imported.

    Args:
        name: tensorflow or jax.

    Returns:
        The name.
    """
    if name not in BACKENDS:
        raise ConfigError(f"backend: must be one of {', '.join(BACKENDS)}; got {name!r}")
    if name in EXTRAS and importlib.util.find_spec(name) is None:
        raise ConfigError(f"backend: {name} is not installed; pip install '{EXTRAS[name]}'")
    if "keras" in sys.modules:
        running = sys.modules["keras"].backend.backend()
        if running != name:
            raise ConfigError(f"backend: {name}, but this process already runs Keras on {running}")
    os.environ["KERAS_BACKEND"] = name
    return name


def keras() -> Any:  # Keras ships no types; `keras.Model` etc. are Any to mypy
    """Returns the `keras` module, importing it with its noise silenced (and TensorFlow on that backend).

    Returns:
        The `keras` module, on the backend `use` chose (default: `default()`).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", default())
    if os.environ["KERAS_BACKEND"] == "jax" and "jax" not in sys.modules:
        jax_cache.enable()  # JAX reads where its cache is when it is imported
    with quiet(2):
        import keras
    if keras.backend.backend() == "tensorflow":
        tensorflow()
    else:
        _tell_keras_whether_tensorflow_is_loaded()
    warnings.filterwarnings("ignore", module=r"keras\..*")
    return keras


def tensorflow() -> Any:
    """Returns the `tensorflow` module, imported with its start-up noise silenced.

    Returns:
        The `tensorflow` module (on either Keras backend).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet(2):
        import tensorflow as tf
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    if "keras" in sys.modules:
        _tell_keras_whether_tensorflow_is_loaded()
    return tf


def _tell_keras_whether_tensorflow_is_loaded():
    # Keras asks `tf.available` before it saves a model or sets a seed
    # (serialization_lib, rng_utils), and asking imports TensorFlow: 2-3 s on
    # JAX for nothing, since no TensorFlow object or seed can exist before
    # TensorFlow is imported. So Keras is told "available" once it is loaded.
    from keras.src.utils import module_utils

    lazy: Any = getattr(module_utils, "tensorflow", None)
    if hasattr(lazy, "_available"):
        lazy._available = "tensorflow" in sys.modules


class quiet:
    """Within this block, what C++ code writes to a file descriptor goes nowhere.

    TensorFlow's C++ side logs at import time regardless of TF_CPP_MIN_LOG_LEVEL
    (absl's "before InitializeLog", oneDNN notices) and gloo prints to stdout
    when processes join, so the descriptor itself is muted.

    Args:
        fd: 1 (stdout) or 2 (stderr).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        self.saved: int | None = None
        try:
            getattr(sys, {1: "stdout", 2: "stderr"}[self.fd]).flush()
            self.saved = os.dup(self.fd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.fd)
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            self.saved = None

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            os.dup2(self.saved, self.fd)
            os.close(self.saved)
