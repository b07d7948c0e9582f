"""`backend: auto`: which Keras backend trains a config fastest, decided from the config alone, before Keras loads.

Precedence: the config's own `backend` (tensorflow or jax, or `--set
backend=...`) > `$KERAS_BACKEND` (Keras's own variable) > auto. What auto
picks rests on bench/engines.py's measurements on CPU (bench/README.md,
"Which engine auto picks"): JAX ran the dense networks' epochs in 0.22-0.66
of TensorFlow's time, TensorFlow ran the CIFAR-10 CNN's 6x faster than JAX,
and XLA on TensorFlow won clearly nowhere (MNIST 1.25, CIFAR-10 0.91 within
the noise), so it stays off as Keras leaves it on CPU. The resolved config written into a run
directory names the backend chosen, so resume, evaluate, predict, export and
sweeps use the same one; run.json keeps the reason.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nnrun.backend import BACKENDS
from nnrun.errors import ConfigError

if TYPE_CHECKING:
    from nnrun.config.schema import Config

# Layers that only multiply by matrices, act element by element or reshape: the dense networks
# bench/engines.py measured faster on JAX. Any other layer (convolutions, pooling, recurrent,
# attention, a pretrained backbone, augmentation) keeps TensorFlow, faster or not measured.
DENSE_LAYERS = frozenset(
    {
        "Dense",
        "Dropout",
        "Flatten",
        "Activation",
        "BatchNormalization",
        "LayerNormalization",
        "Reshape",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "ReLU",
        "LeakyReLU",
        "PReLU",
        "ELU",
        "Softmax",
    }
)
# The figures the reasons quote (bench/README.md, bench/engines.py: later epochs' time, JAX / TensorFlow).
JAX_ON_DENSE = "JAX measured 0.66 of TensorFlow's epoch time on MNIST's MLP, 0.45 on Fashion-MNIST's, 0.22 on churn's"
TF_ON_CONV = "TensorFlow measured 6x faster than JAX an epoch on the CIFAR-10 CNN on CPU"
WHERE = "(bench/README.md)"
PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"  # Keras's variable; nnrun.training.distribution reads it too


@dataclass(frozen=True)
class Choice:
    """The backend a config trains on, and why, in the words run.json and `nnrun check` show."""

    backend: str
    reason: str


def resolve(config: Config, environ: Mapping[str, str] | None = None) -> Choice:
    """The backend a config trains on: its own, else $KERAS_BACKEND, else `choose`.

    Args:
        config: the validated `Config`; `backend` is tensorflow, jax or auto.
        environ: the environment (default `os.environ`).

    Returns:
        A `Choice`.
    """
    environ = os.environ if environ is None else environ
    if config.backend != "auto":
        return Choice(config.backend, "named in the config")
    if environ.get("KERAS_BACKEND"):
        name = environ["KERAS_BACKEND"]
        if name not in BACKENDS:  # Keras's own variable, perhaps set for torch: name it, not the config
            raise ConfigError(
                f"$KERAS_BACKEND: nnrun trains on {' or '.join(BACKENDS)}; unset it for backend: auto; got {name!r}"
            )
        return Choice(name, "$KERAS_BACKEND")
    return choose(config, environ)


def choose(config: Config, environ: Mapping[str, str] | None = None) -> Choice:
    """What `backend: auto` picks for a config, from the measurements quoted in the reasons.

    Args:
        config: the validated `Config`.
        environ: the environment, for Keras's multi-process variables (default `os.environ`).

    Returns:
        A `Choice` whose reason starts with "auto:".
    """
    environ = os.environ if environ is None else environ
    if config.distribution is not None and environ.get(PROCESSES, "1").strip() not in ("", "1"):
        return _jax_or_tensorflow("several processes train together only on JAX (keras.distribution)")
    if config.data.source == "images":
        return Choice("tensorflow", f"auto: an image folder streams through tf.data; {TF_ON_CONV} {WHERE}")
    others = sorted({name for name in _layer_names(config) if name not in DENSE_LAYERS})
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        return Choice("tensorflow", f"auto: {shown} layers; {TF_ON_CONV} {WHERE}")
    return _jax_or_tensorflow(f"dense layers only; {JAX_ON_DENSE} {WHERE}")


def _jax_or_tensorflow(why: str) -> Choice:
    if importlib.util.find_spec("jax") is None:
        return Choice("tensorflow", f"auto: JAX is not installed (it would be chosen: {why})")
    return Choice("jax", f"auto: {why}")


def _layer_names(config: Config) -> list[str]:
    """The Keras names of the config's layers, augmentation included (a Random* layer works on images)."""
    return [next(iter(spec)) for spec in [*config.data.augmentation, *config.model.layers]]
