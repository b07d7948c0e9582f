"""nnrun's Keras classes, made on first use: importing a module of nnrun.training imports no Keras.

A class that subclasses a Keras class needs Keras when it is defined, and Keras
reads its backend when it is imported. Defined at a module's top, the first
import of that module would choose the backend, whatever `backend.use` later
says. So each such module defines its classes in a function of the `keras`
module, and its module `__getattr__` asks a `Factory` for them: they are made
once, the first time one is used (`callbacks.EpochRecorder`, `from
nnrun.training.callbacks import EpochRecorder`), by then on the chosen backend.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from nnrun.backend import keras as _keras


class Factory:
    """A module's Keras classes, made the first time one of them is asked for.

    Args:
        module: the module's `__name__`.
        names: the classes' names, known before they are made (any other name is an `AttributeError`,
            so that a lookup of something else, such as a test runner's, makes nothing).
        make: a function of the `keras` module that defines the classes and returns them.
    """

    def __init__(self, module: str, names: Iterable[str], make: Callable[[Any], Iterable[type]]) -> None:
        self.module, self.names, self.make = module, tuple(names), make
        self._classes: dict[str, type] | None = None
        self._lock = threading.RLock()

    def get(self, name: str) -> Any:
        """The class called `name`, made with its module's other classes the first time.

        Args:
            name: a class's name.

        Returns:
            The class.
        """
        if name not in self.names:
            raise AttributeError(f"module {self.module!r} has no attribute {name!r}")
        with self._lock:  # made once: a test's monkeypatch and Keras's isinstance checks see one class
            if self._classes is None:
                self._classes = {cls.__name__: cls for cls in self.make(_keras())}
                assert set(self._classes) == set(self.names), f"{self.module}: made {sorted(self._classes)}"
                for cls in self._classes.values():
                    cls.__qualname__ = cls.__name__  # as if defined at the module's top (its repr; pickle finds it)
        return self._classes[name]
