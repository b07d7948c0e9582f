"""The run directory: its file names, creating it, atomic writes, finding runs.

Every file is written to a temporary name in the same folder and renamed into
place, so a crash or Ctrl-C never leaves a half-written file behind.
"""

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

from nnrun.errors import RunDirError

CONFIG = "config.yaml"
RUN = "run.json"
MODEL = "model.keras"
MODEL_H5 = "model.h5"
BEST_MODEL = "model.best.keras"
HISTORY = "history.csv"
METRICS = "metrics.json"
PREPROCESSING = "preprocessing.json"
PLOTS = "plots"
LATEST = "latest"

# mkstemp makes files private (0600); run files get the user's usual mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


def create(root, name):
    """Makes a new, empty run directory `root/<name>-<YYYYmmdd-HHMMSS>`.

    Never reuses a directory: a clash (two runs in the same second) gets a
    `-2`, `-3`, ... suffix. `os.mkdir` fails on an existing path, so two
    processes can never both get the same one.

    Args:
        root: the runs folder; made if missing.
        name: the run's name.

    Returns:
        The new directory's `Path`.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"output.dir: cannot create '{root}': {e.strerror}") from None
    stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        path = root / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        (path / PLOTS).mkdir()
        return path
    raise RunDirError(f"output.dir: too many runs named '{stem}' in '{root}'")


@contextlib.contextmanager
def atomic(path):
    """Yields a temporary path to write; renames it to `path` on success.

    The temporary name keeps `path`'s suffix, for writers (Keras, matplotlib)
    that choose a format by it. On failure the temporary file is removed.

    Args:
        path: the final path.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path, text):
    """Writes text atomically."""
    with atomic(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, value):
    """Writes a JSON document atomically."""
    write_text(path, json.dumps(value, indent=2, allow_nan=False) + "\n")


def read_json(path):
    """Reads a JSON file of a run directory, with a clear error if it is not one."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"'{Path(path).parent}' is not a run directory: no {Path(path).name}") from None
    except (OSError, ValueError) as e:
        raise RunDirError(f"'{path}': cannot read: {e}") from None


def update_run(path, **fields):
    """Merges `fields` into the run directory's run.json, atomically."""
    run_file = Path(path) / RUN
    info = json.loads(run_file.read_text(encoding="utf-8")) if run_file.exists() else {}
    info.update(fields)
    write_json(run_file, info)
    return info


def point_latest(path):
    """Points `<runs folder>/latest` at the run directory `path`, atomically."""
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


def newest(root):
    """Returns the newest run directory under `root` (by its start time).

    Args:
        root: the runs folder.

    Returns:
        The `Path` of the run started last.
    """
    runs = [p.parent for p in Path(root).glob(f"*/{RUN}") if not p.parent.is_symlink()]
    if not runs:
        raise RunDirError(f"no runs in '{root}'; train one with 'nnrun train CONFIG', or name one with --run")
    return max(runs, key=lambda p: (read_json(p / RUN).get("started_at", ""), p.name))
