"""The HDF5 files Keras writes for a run (a backup's weights, the legacy model.h5), made in memory.

HDF5 cannot fail a write safely. When the disk fills while it writes a file,
closing the file fails half-way (HDF5 writes its metadata on close) and leaves
IDs behind whose file it has already freed; at exit HDF5 closes them again and
the process dies with SIGSEGV (`H5_term_library` -> `H5I_clear_type` ->
`H5D__close_cb` -> `H5VL_set_vol_wrapper`: a use after free; h5py/h5py#914,
#1120, #2160). Made in memory, the file never meets the disk; its bytes are
then written as any other file, whose failure is an ordinary `OSError`.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Keras ships no types; to mypy its classes are Any
    import keras

SIGNATURE = b"\x89HDF\r\n\x1a\n"  # the first bytes of every HDF5 file


def save_weights(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Writes a model's weights and its optimizer's state as Keras's `.weights.h5` file (`model.save_weights`).

    Args:
        model: the model.
        path: the file to write, ending `.weights.h5` (a temporary one of `atomic`'s).
    """
    buffer = _InMemory(path)
    model.save_weights(buffer)
    _write(buffer, path)


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Writes a model as Keras's legacy `.h5` file (`model.save`, with its optimizer's state).

    Args:
        model: the model.
        path: the file to write, ending `.h5` (a temporary one of `atomic`'s).
    """
    import h5py

    class NamedFile(h5py.File):
        """An open HDF5 file that Keras takes for the file at `path`: `model.save` picks its legacy
        writer by the ending of `str(filepath)`, and that writer writes into an `h5py.File` it is given."""

        def __str__(self) -> str:
            return os.fspath(path)

    buffer = io.BytesIO()
    with NamedFile(buffer, "w") as file:
        model.save(file)
    _write(buffer, path)


class _InMemory(io.BytesIO):
    """A file in memory that Keras takes for the file at `path`.

    Keras's `save_weights` checks the ending of `str(filepath)`, then hands an
    `io.BytesIO` to h5py as a file object (`saving_lib.H5IOStore`: how it writes
    the weights inside a `.keras` archive).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = os.fspath(path)

    def __str__(self) -> str:
        return self.path


def _write(buffer: io.BytesIO, path: str | os.PathLike[str]) -> None:
    data = buffer.getbuffer()  # not a copy: the file is in memory once
    if bytes(data[: len(SIGNATURE)]) != SIGNATURE:  # a Keras that no longer writes into the object it is given
        raise RuntimeError(f"Keras did not write an HDF5 file into memory for '{path}'")
    with open(path, "wb") as f:
        f.write(data)
