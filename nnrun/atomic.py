"""Atomic writes and hashes: a file is written to a temporary name in its folder, flushed and renamed.

A crash, a signal or a full disk never leaves a half-written file behind: the
old file or the new one is there, never a part of one.
"""

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from nnrun.errors import FAULTS, NnrunError, WriteFailed

TMP_MARK = ".tmp."  # in every temporary name, so a killed process's leftovers can be found

# mkstemp makes files private (0600); run files get the user's usual mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path to write; renames it to `path` on success.

    The temporary name ends with `path`'s whole name, for writers (Keras,
    matplotlib) that choose a format by its ending (`.keras`, `.weights.h5`).
    The file is flushed to disk before the rename and the rename after it, so
    a power loss leaves the old file or the new one, never an empty one. On
    failure the temporary file is removed, and an `OSError` (a full disk),
    whoever raised it, leaves as a `WriteFailed` that names `path`.

    Args:
        path: the final path.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=f"{TMP_MARK}{path.name}")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)
        yield Path(tmp)
        _fsync(tmp, folder=False)
        os.replace(tmp, path)
        _fsync(path.parent)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        named = failed_write(e, path)
        if named is e:
            raise
        raise named from e


@contextlib.contextmanager
def atomic_tree(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Like `atomic`, for a writer that makes `path` itself, a file or a folder (Keras's exports).

    Yields a temporary path that does not exist yet; on success it replaces
    `path` (an old folder is renamed aside first, then removed); on failure
    whatever was written there is removed.

    Args:
        path: the final path.
    """
    import shutil

    path = Path(path)
    tmp = path.parent / f".{os.getpid()}{TMP_MARK}{path.name}"
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_dir():
            old = path.parent / f".old-{os.getpid()}{TMP_MARK}{path.name}"
            if path.exists():
                os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            _fsync(tmp, folder=False)
            os.replace(tmp, path)
        _fsync(path.parent)
    except BaseException as e:
        _remove(tmp)
        named = failed_write(e, path)
        if named is e:
            raise
        raise named from e


def failed_write(error: BaseException, path: str | os.PathLike[str]) -> BaseException:
    """What a failed write of `path` leaves as: an `OSError` becomes a `WriteFailed` naming `path`.

    Writers raise the system's error without the file's name, or naming the
    temporary one; some (zipfile) raise another error while cleaning up after a
    full disk, which is then found among the causes.

    Args:
        error: what the writer raised.
        path: the file it was writing, by its final name.

    Returns:
        The error to raise: a `WriteFailed`, or `error` itself.
    """
    if isinstance(error, NnrunError):
        return error  # nnrun's own, raised where its place is known
    if isinstance(error, OSError):
        return WriteFailed(path, error)
    cause, seen = error.__cause__ or error.__context__, {id(error)}
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OSError) and cause.errno in FAULTS:
            return WriteFailed(path, cause)
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return error


def make_folder(path: str | os.PathLike[str]) -> Path:
    """Makes a folder nnrun writes into, and its parents; one that cannot be made is a `WriteFailed` naming it.

    Args:
        path: the folder.

    Returns:
        `path` as a `Path`.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteFailed(path, e) from e
    return path


def remove_dead_writers(path: str | os.PathLike[str]) -> list[Path]:
    """Removes what killed writers of `path` left (`atomic_tree`'s temporary files, named by their process).

    A `kill -9` gives a writer no chance to remove its temporary file, and outside a run directory nothing
    else would: the next writer of the same path removes those whose process is gone.

    Args:
        path: the final path.

    Returns:
        The files removed.
    """
    path, removed = Path(path), []
    for left in path.parent.glob(f".*{TMP_MARK}{path.name}"):
        pid = left.name[1 : -len(f"{TMP_MARK}{path.name}")]
        if pid.isdigit() and not _alive(int(pid)) and not left.is_symlink() and left.is_file():
            _remove(left)
            removed.append(left)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def copy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Makes `target` a copy of `source`, atomically.

    A hard link where the filesystem has them, which needs no room on the disk:
    nnrun's files are only ever replaced by a rename, never written in place, so
    the link keeps the old contents for free.

    Args:
        source: the file copied.
        target: the copy.
    """
    import shutil

    with atomic(target) as tmp:
        os.unlink(tmp)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """A file's sha256, read in blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: str | os.PathLike[str], folder: bool = True) -> None:
    """Flushes a file or a folder to disk.

    A file's flush failing with a fault (a full disk: delayed allocation, NFS)
    means its contents are lost, and is raised; a folder's is not (some
    filesystems cannot sync a directory).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if not folder:
            raise
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if not folder and e.errno in FAULTS:
            raise
    finally:
        os.close(fd)


def remove_temporary(path: str | os.PathLike[str], older_than: float = 0) -> None:
    """Removes the temporary files a killed process left in a folder (and its sub-folders).

    Args:
        path: the folder: a run directory no live process writes to (`nnrun
            resume` holds it), or any, with `older_than`.
        older_than: only files last written this many seconds ago or more.
    """
    now = time.time()
    for tmp in Path(path).rglob(f".*{TMP_MARK}*"):
        with contextlib.suppress(OSError):
            if now - tmp.lstat().st_mtime >= older_than:
                _remove(tmp)  # a file, or an export's folder


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Writes text atomically."""
    with atomic(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], value: object) -> None:
    """Writes a JSON document atomically."""
    write_text(path, json.dumps(value, indent=2, allow_nan=False) + "\n")


def sha256_text(text: str) -> str:
    """The sha256 of a text file's contents as written, e.g. config.yaml's (run.json records it)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()
