"""Keras's download cache (`$KERAS_HOME`, default `~/.keras`): where Keras looks
for a file, why a missing one could not be fetched, and Keras's download
messages kept off stdout."""

from __future__ import annotations

import contextlib
import os
import sys
import urllib.error
from typing import Any


def folder(subdir: str) -> tuple[str, str]:
    """Where `keras.utils.get_file` keeps files of `subdir` (datasets, models).

    Args:
        subdir: the cache's sub-folder.

    Returns:
        `(folder, home)`: the folder Keras uses, and `$KERAS_HOME` (or
        `~/.keras`); Keras falls back to /tmp/.keras when home is not writable.
    """
    home = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    return os.path.join(home if os.access(home, os.W_OK) else os.path.join("/tmp", ".keras"), subdir), home


def fallback_note(where: str, home: str) -> str:
    """' (... not writable ...)' when Keras uses /tmp/.keras instead of `home`."""
    return "" if where.startswith(home) else f" ('{home}' is not writable, so Keras uses /tmp/.keras)"


def download_failure(error: BaseException) -> BaseException | str | None:
    """Why a Keras download failed, when `error` is one; else None.

    Keras wraps the URL error in a plain Exception, so its context is looked at.
    """
    failed = error if isinstance(error, OSError) else error.__context__
    if isinstance(failed, (urllib.error.URLError, ConnectionError, TimeoutError)):
        return failed if isinstance(failed, urllib.error.HTTPError) else getattr(failed, "reason", failed)
    return None


class Announcements(contextlib.redirect_stdout):
    """Sends Keras's download messages to stderr (stdout is the command's own).

    Keras announces a download before it connects; that line is held back
    until more follows, so a download that cannot start leaves only our error.
    """

    def __init__(self) -> None:
        super().__init__(self)
        self.held: str | None = None

    def write(self, text: str) -> int:
        if self.held is None:
            self.held = text
        else:
            sys.stderr.write(self.held + text)
            self.held = ""
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()

    def __exit__(self, kind: type[BaseException] | None, *rest: Any) -> None:
        if kind is None and self.held:
            sys.stderr.write(self.held)
        return super().__exit__(kind, *rest)
