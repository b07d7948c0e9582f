"""Imports Keras (and so TensorFlow) quietly, once, only where it is needed.

TensorFlow costs seconds and hundreds of MB to import and prints start-up
noise from C++ straight to file descriptor 2; nothing else in nnrun imports it
at module level, so `--help`, `schema` and config validation stay fast.
"""

import logging
import os
import warnings


def keras():
    """Returns the `keras` module, importing TensorFlow with its noise silenced.

    Returns:
        The `keras` module (TensorFlow backend).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with _quiet_stderr():
        import keras
        import tensorflow as tf
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"keras\..*")
    return keras


class _quiet_stderr:
    # The C++ side logs at import time regardless of TF_CPP_MIN_LOG_LEVEL
    # (absl's "before InitializeLog" and oneDNN notices), so mute the fd itself.
    def __enter__(self):
        self.saved = None
        try:
            self.saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:
            self.saved = None

    def __exit__(self, *exc):
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)
