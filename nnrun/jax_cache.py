"""JAX's persistent compilation cache, in a folder private to this user.

JAX compiles the train, evaluate and predict steps of every run anew: on a
2-core CPU that is about 4 s of MNIST's 24 s run (the build's small programs
and the first epoch's step). With the cache, the next run of the same model
(another seed, a resume, a sweep's next trial, an evaluate) reads them back.

JAX runs what the cache holds, so a cache others can write lets them run code
as this user (JAX's own warning): the folder is used only when this user owns
it and nobody else can write it or its parent. A bounded size (least recently
used entries go first) keeps it from growing without end; the bound makes JAX
lock the folder for each entry, so processes training at once (`sweep --jobs`)
never read an entry half-written.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from nnrun import user_cache

MAX_BYTES = 1 << 30
# JAX's own variables (jax/_src/config.py): nnrun only ever sets what the user has not.
DIR, MAX_SIZE, MIN_COMPILE_S = (
    "JAX_COMPILATION_CACHE_DIR",
    "JAX_COMPILATION_CACHE_MAX_SIZE",
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
)


def folder() -> Path:
    """Where nnrun keeps JAX's cache: `$XDG_CACHE_HOME/nnrun/jax`, default `~/.cache/nnrun/jax`.

    Returns:
        The folder's path (it may not exist).
    """
    return user_cache.root() / "jax"


def enable() -> Path | None:
    """Points JAX's persistent compilation cache at `folder()`, before JAX is imported.

    A `JAX_COMPILATION_CACHE_DIR` of the user's own wins (and
    `JAX_ENABLE_COMPILATION_CACHE=false` turns any cache off, in JAX itself).
    Nothing happens where the folder cannot be made private to this user, or
    where `filelock`, which JAX needs to bound the cache, is missing.

    Returns:
        The folder used, or None.
    """
    if DIR in os.environ or not hasattr(os, "getuid") or importlib.util.find_spec("filelock") is None:
        return None
    path = folder()
    try:
        # Both made private: with a umask of 002, a parent made by mkdir(parents=True) would be group-writable.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        if not all(user_cache.private(p) for p in (path.parent, path)):
            return None
    except OSError:  # a read-only home, a file where the folder should be: compile as before
        return None
    os.environ[DIR] = str(path)
    os.environ.setdefault(MAX_SIZE, str(MAX_BYTES))
    # JAX caches only compilations over 1 s by default; a dense network's are shorter, and add up.
    os.environ.setdefault(MIN_COMPILE_S, "0")
    return path
