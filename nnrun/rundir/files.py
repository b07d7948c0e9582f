"""The run directory: its file names, creating it, reading its JSON files, history.csv and config.yaml.

Every file is written to a temporary name in the same folder and renamed into
place, so a crash or Ctrl-C never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import shutil
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun.errors import FAULTS, NnrunError, RunDirError, WriteFailed

if TYPE_CHECKING:
    from nnrun.config.schema import Config

CONFIG = "config.yaml"
RUN = "run.json"
MODEL = "model.keras"
MODEL_H5 = "model.h5"
BEST_MODEL = "model.best.keras"
HISTORY = "history.csv"
METRICS = "metrics.json"
PREPROCESSING = "preprocessing.json"
PLOTS = "plots"
BACKUP = "backup"
EVALUATION = "evaluation"  # nnrun evaluate's results, a folder each
TENSORBOARD = "tensorboard"  # the TensorBoard tracker's event files
EXPORT = "export"  # nnrun export's verified exports
LATEST = "latest"
SWEEP = "sweep.json"  # in a sweep directory (nnrun sweep), whose runs are in TRIALS
TRIALS = "trials"

# What a run directory's files may weigh, checked before reading: run directories come from other
# people. Far above what any run writes (a run.json of 10,000 resumes is 2 MB short of its bound).
MAX_BYTES = 1 << 20  # run.json, metrics.json, config.yaml, sweep.json and the rest
MAX_FILE_BYTES = {HISTORY: 4 << 20, PREPROCESSING: 16 << 20}  # 40 metrics of 10,000 epochs; vocabularies


def create(root: str | os.PathLike[str], name: str, subfolders: Iterable[str] = (PLOTS,)) -> Path:
    """Makes a new, empty run directory `root/<name>-<YYYYmmdd-HHMMSS>`.

    Never reuses a directory: a clash (two runs in the same second) gets a
    `-2`, `-3`, ... suffix. `os.mkdir` fails on an existing path, so two
    processes can never both get the same one.

    Args:
        root: the runs folder; made if missing.
        name: the run's name.
        subfolders: empty folders to make inside it.

    Returns:
        The new directory's `Path`.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _cannot_create(root, e, f"output.dir: cannot create '{root}'") from None
    stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        path = root / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as e:
            raise _cannot_create(path, e, f"output.dir: cannot create a run directory in '{root}'") from None
        try:
            for sub in subfolders:
                (path / sub).mkdir()
        except OSError as e:
            shutil.rmtree(path, ignore_errors=True)  # a folder half-made is no run
            raise WriteFailed(path / sub, e) from None
        return path
    raise RunDirError(f"output.dir: too many runs named '{stem}' in '{root}'")


def _cannot_create(path: Path, error: OSError, place: str) -> NnrunError:
    """A folder that cannot be made: the machine's fault (a full disk, exit 1), or the config's (exit 2)."""
    if error.errno in FAULTS:
        return WriteFailed(path, error)
    return RunDirError(f"{place}: {error.strerror}")


def read_text(path: str | os.PathLike[str], limit: int | None = None, kind: str = "run directory") -> str:
    """Reads a file of a run or sweep directory: never through a symbolic link, never past its bound.

    The file is opened without following a link (`O_NOFOLLOW`) and its size
    checked before anything is read; messages name the file, never its content.

    Args:
        path: the file.
        limit: the most bytes it may have; by default its name's in `MAX_FILE_BYTES`, else `MAX_BYTES`.
        kind: what holds it, for messages.

    Returns:
        Its text.

    Raises:
        FileNotFoundError: it does not exist (the caller knows what that means).
        RunDirError: it is a link, not a file, too big, unreadable or not UTF-8 text.
    """
    path = Path(path)
    limit = MAX_FILE_BYTES.get(path.name, MAX_BYTES) if limit is None else limit
    if path.is_symlink():  # also where the system has no O_NOFOLLOW
        raise RunDirError(f"'{path}' is a symbolic link; a {kind} holds its own files")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:  # non-blocking: a named pipe in its place is refused below rather than waited on
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RunDirError(f"'{path}' is a symbolic link; a {kind} holds its own files") from None
        raise RunDirError(f"'{path}': cannot read: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        found = os.fstat(f.fileno())
        if not stat.S_ISREG(found.st_mode):
            raise RunDirError(f"'{path}' is not a file")
        data = f.read(limit + 1) if found.st_size <= limit else b""
    if found.st_size > limit or len(data) > limit:
        size = max(found.st_size, len(data))
        raise RunDirError(f"'{path}': {size} bytes, more than a {path.name} may have ({limit})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RunDirError(f"'{path}': cannot read: not UTF-8 text (byte {e.start})") from None


def read_json(path: str | os.PathLike[str]) -> Any:
    """Reads a JSON file of a run directory (`read_text`'s rules), with a clear error if it is not one."""
    try:
        text = read_text(path)
    except FileNotFoundError:
        folder = Path(path).parent
        if (folder / SWEEP).is_file():
            raise _sweep_dir(folder) from None
        raise RunDirError(f"'{folder}' is not a run directory: no {Path(path).name}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:  # its message gives the place, never the text
        raise RunDirError(f"'{path}': cannot read: not JSON: {e}") from None
    except ValueError:  # a number of more digits than Python converts
        raise RunDirError(f"'{path}': cannot read: a number too long") from None
    except RecursionError:
        raise RunDirError(f"'{path}': cannot read: nested too deeply") from None


def history_text(rows: Sequence[Mapping[str, object]]) -> str:
    """history.csv's text from its rows (dicts of epoch and metrics)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def read_history(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """history.csv's rows as dicts of numbers (an empty value is NaN); none when it is absent.

    Args:
        path: the file, read by `read_text`'s rules.

    Returns:
        One dict per epoch.

    Raises:
        RunDirError: a value is not a number (its line and column named, not its text).
    """
    try:
        text = read_text(path)
    except FileNotFoundError:
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        columns = next(reader, [])
    except csv.Error:
        raise RunDirError(f"'{path}': cannot be read: not CSV") from None
    rows = []
    for line, values in enumerate(_csv_lines(reader, path), start=2):
        try:
            pairs = zip(columns, values, strict=True)
            rows.append({k: int(v) if k == "epoch" else float(v or "nan") for k, v in pairs})
        except ValueError:
            raise RunDirError(f"'{path}': cannot be read: line {line} is not {len(columns)} numbers") from None
    return rows


def _csv_lines(reader, path):
    try:
        yield from reader
    except csv.Error:  # a field past the csv module's limit, a quote left open
        raise RunDirError(f"'{path}': cannot be read: not CSV") from None


def point_latest(path: str | os.PathLike[str]) -> None:
    """Points `<runs folder>/latest` at the run directory `path`, atomically (`finding.update_latest` chooses which)."""
    path = Path(path)
    link = path.parent / LATEST
    tmp = path.parent / f".{LATEST}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        tmp.symlink_to(path.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        # Filesystems without symlinks: `newest` finds runs without it.
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a run directory: a folder with a run.json (readable or not)."""
    path = Path(path)
    return path.is_dir() and (path / RUN).exists()


def check_run_dir(path: str | os.PathLike[str]) -> Path:
    """Checks that `path` is a run directory (`is_run_dir`), with a `RunDirError` that says why not.

    Args:
        path: what the user named as a run directory.

    Returns:
        `path` as a `Path`.
    """
    path = Path(path)
    if path.name == LATEST and path.is_symlink() and path.resolve().parent != path.parent.resolve():
        raise RunDirError(f"'{path}' points outside its runs folder (at '{path.resolve()}'); name that run instead")
    if is_run_dir(path):
        return path
    if not path.is_dir():
        raise RunDirError(
            f"run directory '{path}' " + ("is a file, not a directory" if path.exists() else "does not exist")
        )
    if (path / SWEEP).is_file():
        raise _sweep_dir(path)
    raise RunDirError(f"'{path}' is not a run directory: no {RUN}")


def check_own_folders(
    path: str | os.PathLike[str],
    names: Iterable[str] = (PLOTS, BACKUP, EVALUATION, TENSORBOARD),
    kind: str = "run directory",
) -> None:
    """Refuses a directory whose parts that nnrun writes into are symbolic links.

    Commands that write into a run directory (evaluate, resume) or a sweep directory would
    write wherever such a link points: one copied from someone else holds its own files only.

    Args:
        path: a run directory (or a sweep directory).
        names: the parts to check; by default a run's plots/, backup/, evaluation/ and tensorboard/.
        kind: what `path` is, for the message.
    """
    for name in names:
        if (Path(path) / name).is_symlink():
            raise RunDirError(f"'{Path(path) / name}' is a symbolic link; a {kind} holds its own files")


def sweep_of(path: str | os.PathLike[str]) -> Path | None:
    """The sweep directory whose trial a run directory is (`<sweep>/trials/<run>`), or None.

    A trial continues with its sweep (`nnrun sweep SWEEP_DIR`), which tries its point again
    and counts it; `nnrun resume` of the trial would not.

    Args:
        path: a run directory.

    Returns:
        The sweep directory, as `path` names it (made absolute only for `.`), or None.
    """
    path = Path(path)
    parent = (path if path.name not in ("", "..") else path.resolve()).parent  # as named, but `.` has no parent
    return parent.parent if parent.name == TRIALS and (parent.parent / SWEEP).is_file() else None


def _sweep_dir(path: Path) -> RunDirError:
    return RunDirError(
        f"'{path}' is a sweep directory, not a run: its runs are in {path / TRIALS}, "
        f"its best config is {path / 'best.yaml'}"
    )


def read_config(path: str | os.PathLike[str]) -> Config:
    """Reads and validates a run directory's config.yaml (the resolved config it was trained with).

    Args:
        path: the run directory.

    Returns:
        The `Config`; one that is not valid is a `RunDirError`.
    """
    from nnrun.config import loading as config_lib
    from nnrun.config.safe_yaml import MAX_CONFIG_BYTES
    from nnrun.errors import ConfigError

    file = Path(path) / CONFIG
    try:
        text = read_text(file, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise RunDirError(f"'{path}' has no {CONFIG}") from None
    try:
        return config_lib.from_text(text, file)
    except ConfigError as e:
        raise RunDirError(f"'{path}': its {CONFIG} is not valid: {e}") from None


def read_config_yaml(path: str | os.PathLike[str]) -> Any:
    """A run directory's config.yaml as written, unvalidated (to compare runs key by key).

    Args:
        path: the run directory, checked to be one.

    Returns:
        What the YAML holds (a mapping, unless the file was damaged).
    """
    from nnrun.config.safe_yaml import MAX_CONFIG_BYTES, parse_yaml

    file = check_run_dir(path) / CONFIG
    try:
        text = read_text(file, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise RunDirError(f"'{path}' has no {CONFIG}") from None
    return parse_yaml(text, str(file))
