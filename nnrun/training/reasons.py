"""Why a run failed, in one line a user can act on; the backends' errors known by their class."""

from __future__ import annotations

import errno
import sys
from typing import Literal

from nnrun.errors import one_line

BackendErrorKind = Literal["invalid_argument", "out_of_memory"]
# TensorFlow's class for each kind (tf.data and TensorFlow's ops raise them, on either Keras backend).
_TENSORFLOW = {"invalid_argument": "InvalidArgumentError", "out_of_memory": "ResourceExhaustedError"}
# JAX raises one class for every XLA failure, whose message begins with XLA's status code: the only
# way it tells running out of memory. (Its invalid arguments are not tf.data's unreadable files.)
_XLA_STATUS = {"out_of_memory": "RESOURCE_EXHAUSTED:"}


def reason(error: BaseException, streamed: bool) -> str:
    """Why a run failed, in one line a user can act on.

    Args:
        error: what ended the run.
        streamed: whether its training data was streamed from files (an image folder).

    Returns:
        The reason, as run.json records it.
    """
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:  # a write outside nnrun's own (`atomic`'s)
        return f"no space left on device writing '{error.filename}'" if error.filename else "no space left on device"
    if is_backend_error(error, "out_of_memory"):
        return "ran out of memory; try a smaller training.batch_size"
    if is_backend_error(error, "invalid_argument") and streamed:
        return f"a file of the data could not be read during training (a corrupt image?): {one_line(error, 300)}"
    return f"{type(error).__name__}: {one_line(error, 300)}"


def is_backend_error(error: BaseException, kind: BackendErrorKind) -> bool:
    """Whether `error` is TensorFlow's or JAX's error of this kind, known by its class.

    Neither is imported here: an error of theirs comes only from a process that has
    already loaded them.

    Args:
        error: an exception.
        kind: invalid_argument (tf.data could not decode a file) or out_of_memory.

    Returns:
        True when it is that backend error.
    """
    tensorflow_errors = getattr(sys.modules.get("tensorflow"), "errors", None)
    tensorflow_class = getattr(tensorflow_errors, _TENSORFLOW[kind], None)
    if tensorflow_class is not None and isinstance(error, tensorflow_class):
        return True
    jax_class = getattr(sys.modules.get("jax.errors"), "JaxRuntimeError", None)
    status = _XLA_STATUS.get(kind)
    return (
        jax_class is not None and status is not None and isinstance(error, jax_class) and str(error).startswith(status)
    )
