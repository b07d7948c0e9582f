"""Data-parallel training on Keras's own engines: one machine's devices, or several processes.

JAX: `keras.distribution.DataParallel`; several processes (one machine or
many) join through `keras.distribution.initialize` and its
`KERAS_DISTRIBUTION_*` variables. TensorFlow: `tf.distribute.MirroredStrategy`
over one machine's devices. The config's `batch_size` is the global batch.

Every process runs the same program, so their collective steps always match;
only process 0 writes the run directory. The others write into a scratch
folder of their own, removed when they finish.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun.backend import keras as _keras
from nnrun.backend import quiet, tensorflow
from nnrun.errors import ConfigError, DataError, RunFailed

if TYPE_CHECKING:
    import keras
    import numpy as np

    from nnrun.config.schema import Config

ADDRESSES, PROCESSES, PROCESS_ID = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


@dataclass(frozen=True)
class Plan:
    """What the config and the environment ask for; checked without importing Keras."""

    kind: str | None  # "data_parallel", or None: one device
    devices: int | None  # per process; None: all
    processes: int = 1
    process_id: int = 0
    addresses: str | None = None  # host:port of process 0 first (JAX reads only that one)


def plan(config: Config, environ: Mapping[str, str] | None = None) -> Plan:
    """Reads the config's `distribution` and the `KERAS_DISTRIBUTION_*` variables.

    Args:
        config: the validated `Config`.
        environ: the environment (default `os.environ`).

    Returns:
        A `Plan`.
    """
    environ = os.environ if environ is None else environ
    d = config.distribution
    processes = _whole(environ, PROCESSES, 1, 1)
    if processes == 1:
        return Plan(d.type if d else None, d.devices if d else None)
    process_id = _whole(environ, PROCESS_ID, None, 0)
    if process_id is None:
        raise ConfigError(f"{PROCESSES}={processes} needs {PROCESS_ID}: this process's number, 0 to {processes - 1}")
    if process_id >= processes:
        raise ConfigError(f"{PROCESS_ID}: must be below {PROCESSES} ({processes}); got {process_id}")
    addresses = environ.get(ADDRESSES, "").strip()
    first = addresses.split(",")[0].strip()
    if not re.fullmatch(r"\[?[\w.:-]+\]?:\d{1,5}", first):
        raise ConfigError(f"{ADDRESSES}: must start with process 0's host:port, e.g. 10.0.0.1:7777; got {addresses!r}")
    if d is None:
        raise ConfigError(
            f"{PROCESSES}={processes}, but the config has no distribution; add distribution: data_parallel"
        )
    if config.backend != "jax":
        raise ConfigError(
            f"backend: {config.backend} trains in one process (Keras 3 has no multi-worker fit on TensorFlow, "
            f"keras-team/keras#20585); several processes need backend: jax"
        )
    return Plan(d.type, d.devices, processes, process_id, addresses)


def _whole(environ, name, default, least):
    text = environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < least:
        raise ConfigError(f"{name}: must be a whole number of at least {least}; got {text!r}")
    return int(text)


class Engine:
    """The devices and processes a run trains on, and what differs from one device.

    Args:
        plan: the `Plan`.
        devices: names of the devices used, every process's.
        strategy: TensorFlow's `MirroredStrategy`, if any.
    """

    def __init__(self, plan: Plan, devices: Iterable[str], strategy: Any = None) -> None:
        self.plan, self.devices, self.strategy = plan, list(devices), strategy
        self.scratch: str | None = None
        self.together = False  # every process is past fit: none is inside a step the others wait for
        self.localized: keras.Model | None = None  # the model `local` made
        self.weights: str | None = None  # digest of the trained weights, every process's (several processes)

    @property
    def writer(self) -> bool:
        """Whether this process writes the run directory (process 0)."""
        return self.plan.process_id == 0

    @property
    def sharded(self) -> bool:
        """Whether batches are split over devices: they must then divide evenly
        (JAX requires it; TensorFlow's MirroredStrategy fails on uneven splits,
        keras-team/keras#19246)."""
        return self.plan.kind is not None

    def record(self) -> dict[str, Any]:
        """What run.json says of the engine."""
        import keras

        return {
            "type": self.plan.kind or "one_device",
            "backend": keras.backend.backend(),
            "processes": self.plan.processes,
            "devices": len(self.devices),
            "device_names": self.devices,
        }

    def scope(self) -> contextlib.AbstractContextManager[Any]:
        """Where the model must be built and compiled."""
        return self.strategy.scope() if self.strategy else contextlib.nullcontext()

    def output_dir(self, wanted: Path) -> Path | str:
        """Where this process makes its run directory: `wanted` on process 0, scratch elsewhere."""
        if self.writer:
            return wanted
        self.scratch = tempfile.mkdtemp(prefix=f"nnrun-process-{self.plan.process_id}-")
        return self.scratch

    def feed(self, x: Any, y: np.ndarray, batch_size: int, shuffle: bool = False) -> dict[str, Any]:
        """`fit` keyword arguments for a split.

        Arrays go to Keras as they are, unless batches are split over
        devices: then every batch is trimmed to a multiple of the devices (at most
        devices - 1 samples of an epoch are left out, different ones each
        epoch when shuffled) and each process keeps its own slice of it.

        Args:
            x, y: the split: arrays, or `x` a `tf.data.Dataset` of batches.
            batch_size: the global batch size.
            shuffle: shuffle arrays anew each epoch (see `callbacks.SeedEachEpoch`).

        Returns:
            Keyword arguments for `fit`/`evaluate`.
        """
        from nnrun.data import feeding

        if not self.sharded:
            return feeding.inputs(x, y, batch_size)
        import numpy as np

        tf = tensorflow()
        if feeding.is_stream(x):
            batches = x
        else:
            xs, ys, n = tf.constant(x), tf.constant(y), len(y)
            order = tf.data.Dataset.range(n)
            if shuffle:
                # Drawn as each epoch's iterator starts, from NumPy's generator, which
                # SeedEachEpoch seeds from the seed and the epoch: every process
                # draws the same order, and a resumed run the one it would have.
                order = tf.data.Dataset.from_generator(
                    lambda: iter([np.random.permutation(n)]), output_signature=tf.TensorSpec([n], tf.int64)
                ).unbatch()
            batches = order.batch(batch_size).map(lambda i: (tf.gather(xs, i), tf.gather(ys, i)))
        replicas, processes, me = len(self.devices), self.plan.processes, self.plan.process_id

        def own_slice(xb: Any, yb: Any) -> tuple[Any, Any]:
            per_process = tf.shape(yb)[0] // replicas * replicas // processes
            return xb[me * per_process : (me + 1) * per_process], yb[me * per_process : (me + 1) * per_process]

        batches = batches.map(own_slice).filter(lambda xb, yb: tf.shape(yb)[0] > 0)
        return {"x": batches.prefetch(tf.data.AUTOTUNE)}

    def validation(self, x: Any, y: np.ndarray, batch_size: int) -> Any:
        """What `fit(validation_data=...)` takes for a split."""
        from nnrun.data import feeding

        return self.feed(x, y, batch_size)["x"] if self.sharded else feeding.validation_data(x, y)

    def agree(self, signum: int) -> int:
        """The stop signal any process got (0: none); a collective step on several processes."""
        if self.plan.processes == 1:
            return signum or 0
        return int(self._gather([signum or 0]).max())

    def same(self, what: str, text: str, error: type[Exception] = DataError) -> None:
        """Refuses to go on unless every process has the same `text` (a fingerprint).

        Args:
            what: what `text` describes, for the message.
            text: this process's fingerprint of it.
            error: the exception class to raise if they differ.
        """
        if self.plan.processes == 1:
            return
        digest = list(hashlib.sha256(text.encode()).digest())
        gathered = self._gather(digest)
        differ = [i for i, row in enumerate(gathered) if list(row) != digest]
        if differ:
            raise error(f"{what} differ between processes: process {differ[0]}'s are not this one's")

    def local(self, model: keras.Model, config: Config) -> keras.Model:
        """The trained model on this process alone, for saving, test metrics and plots.

        Several processes first check that they all ended with the same weights.

        Distributed variables would make every save and prediction a step all
        processes must take together, with batches that divide evenly; a copy
        without the distribution has neither constraint.
        """
        if not self.sharded or model is self.localized:
            return model
        import keras
        import numpy as np

        from nnrun.model.build import compile_model

        weights = model.get_weights()
        if self.plan.processes > 1:
            self.weights = digest(weights)
            self.same("the trained weights", self.weights, RunFailed)
        if self.strategy is None:
            keras.distribution.set_distribution(None)
        copy = keras.models.clone_model(model)
        compile_model(copy, config)
        copy.set_weights(weights)
        copy.optimizer.build(copy.trainable_variables)
        # Paired by position, as Keras builds them; one without a same-shaped partner keeps its fresh value.
        for mine, theirs in zip(copy.optimizer.variables, model.optimizer.variables, strict=False):
            if tuple(mine.shape) == tuple(theirs.shape):
                mine.assign(np.asarray(theirs))
        self.localized = copy
        return copy

    @contextlib.contextmanager
    def finishing(self) -> Iterator[None]:
        """Around a run: removes the scratch folder, and once `together` is set
        (every process is past `fit`), waits for the others at the end, so
        none exits while process 0 still writes; a failure of process 0 fails
        them all."""
        failed = True
        try:
            yield
            failed = False
        finally:
            if self.scratch:
                shutil.rmtree(self.scratch, ignore_errors=True)
            if self.sharded and self.strategy is None:
                _keras().distribution.set_distribution(None)  # the process may train again (tests do)
            if self.together and self.plan.processes > 1:
                first_failed = self._gather([int(failed)])[0]
                if first_failed and not failed and not self.writer:
                    raise RunFailed("process 0 failed (its output says why); it writes the run directory")

    def _gather(self, values):
        import numpy as np
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(np.asarray(values, dtype="int32")))


def digest(weights: Iterable[np.ndarray]) -> str:
    """A short sha256 of a model's weights (a list of arrays), to compare processes' models."""
    h = hashlib.sha256()
    for w in weights:
        h.update(str(w.shape).encode() + w.tobytes())
    return h.hexdigest()[:16]


def start(config: Config, join: bool = True) -> Engine:
    """Chooses the devices, joins the other processes and sets Keras's distribution.

    Args:
        config: the validated `Config`, its backend in use.
        join: join the other processes (`nnrun check` does not).

    Returns:
        An `Engine`.
    """
    p = plan(config)
    keras = _keras()
    if p.kind is None:
        return Engine(p, [_default_device(keras)])
    if keras.backend.backend() == "jax":
        return _start_jax(keras, p, join)
    return _start_tensorflow(p)


def _default_device(keras):
    if keras.backend.backend() == "jax":
        import jax

        device = jax.local_devices()[0]
        return f"{device.platform}:{device.id}"
    import tensorflow as tf

    return (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0].name


def _start_jax(keras, p, join):
    import jax

    if p.processes > 1 and join:
        try:
            with quiet(1):  # gloo's "Rank 0 is connected..." would mix with the run directory's path
                keras.distribution.initialize(p.addresses, p.processes, p.process_id)
        except Exception as e:  # a port taken, a coordinator that never came up
            raise RunFailed(f"could not join the other processes at {p.addresses}: {type(e).__name__}: {e}") from None
    local = jax.local_devices()
    _enough(p.devices, [f"{d.platform}:{d.id}" for d in local], "XLA_FLAGS=--xla_force_host_platform_device_count=N")
    take = p.devices or len(local)
    chosen = [d for d in jax.devices() if _local_rank(d, jax.devices()) < take] if join else local[:take]
    names = [f"{d.platform}:{d.id}" for d in chosen]
    if join:  # `check` builds its model without: nothing global is left behind
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=names, auto_shard_dataset=False))
    return Engine(p, names)


def _local_rank(device, devices):
    return [d for d in devices if d.process_index == device.process_index].index(device)


def _start_tensorflow(p):
    import tensorflow as tf

    pool = [d.name for d in tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")]
    _enough(p.devices, pool, "a GPU per device")
    chosen = pool[: p.devices or len(pool)]
    return Engine(p, chosen, tf.distribute.MirroredStrategy(chosen))


def _enough(wanted, available, how):
    if wanted and wanted > len(available):
        raise ConfigError(
            f"distribution.devices: {wanted}, but this process has {len(available)} "
            f"({', '.join(available)}); lower it or leave it out to use all (more CPU devices need {how})"
        )
