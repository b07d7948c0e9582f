"""nnrun's cache folder, `$XDG_CACHE_HOME/nnrun` (default `~/.cache/nnrun`), and whether a place in it is private.

What a cache holds is acted on (JAX runs its compiled programs; `nnrun check` judges configs by
a Keras catalogue), so a cache others can write lets them decide what this user's commands do:
each cache is read only where this user owns it and nobody else can write it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def root() -> Path:
    """`$XDG_CACHE_HOME/nnrun`, default `~/.cache/nnrun` (it may not exist)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nnrun"


def private(path: Path, folder: bool = True) -> bool:
    """Whether `path` is a real folder (or, with `folder=False`, a regular file), not a link, of this
    user's that no one else may write. False where it is absent or the system has no users (Windows)."""
    if not hasattr(os, "getuid"):
        return False
    try:
        info = path.lstat()
    except OSError:
        return False
    kind = stat.S_ISDIR if folder else stat.S_ISREG
    return kind(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022
