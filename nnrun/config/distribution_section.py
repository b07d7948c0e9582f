"""The config's `distribution:` section: data-parallel training, and the names of strategies it refuses."""

import re
from typing import Any, Literal

from pydantic import Field

from nnrun.config.section import Section

# What people coming from tf.distribute or other tools write, and what to use instead.
UNSUPPORTED_DISTRIBUTIONS = {
    "multi_worker_mirrored": "Keras 3's fit does not work with tf.distribute.MultiWorkerMirroredStrategy "
    "(keras-team/keras#20585); for several machines use data_parallel with backend: jax and "
    "KERAS_DISTRIBUTION_* variables (README: Faster and bigger)",
    "mirrored": "data_parallel is MirroredStrategy on the tensorflow backend",
    "model_parallel": "nnrun shards data, not models; use data_parallel",
    "tpu": "nnrun runs on CPUs and GPUs; use data_parallel",
}


def distribution_form(value: Any) -> Any:
    """`data_parallel` or `{type: data_parallel, devices: N}` -> the mapping; known other names refused."""
    kind = value if isinstance(value, str) else value.get("type") if isinstance(value, dict) else None
    if isinstance(kind, str):  # tf.distribute.MultiWorkerMirroredStrategy -> multi_worker_mirrored
        key = re.sub(r"_?strategy$", "", re.sub(r"(?<=[a-z])(?=[A-Z])", "_", kind.rsplit(".", 1)[-1]).lower())
        if key in UNSUPPORTED_DISTRIBUTIONS:
            raise ValueError(f"{kind!r} is not supported: {UNSUPPORTED_DISTRIBUTIONS[key]}")
    return {"type": value} if isinstance(value, str) else value


class Distribution(Section):
    """Data-parallel training: each batch split over devices (and processes, on JAX)."""

    type: Literal["data_parallel"] = Field(description="data_parallel: every device holds the whole model.")
    devices: int | None = Field(
        None,
        gt=0,
        strict=True,
        description="How many of each process's devices to use; by default all (GPUs, else the CPU).",
    )
