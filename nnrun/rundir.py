"""The run directory: its file names, creating it, atomic writes, finding runs.

Every file is written to a temporary name in the same folder and renamed into
place, so a crash or Ctrl-C never leaves a half-written file behind.
"""

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
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


def create(root, name, subfolders=(PLOTS,)):
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
        raise RunDirError(f"output.dir: cannot create '{root}': {e.strerror}") from None
    stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        path = root / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        for sub in subfolders:
            (path / sub).mkdir()
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


@dataclass
class Run:
    """A run directory as evaluate and predict need it: what it recorded."""

    path: Path
    info: dict  # run.json
    config: object  # the resolved Config
    preprocessing: dict


def read(path):
    """Reads a run directory, checking it is one and has a model.

    Args:
        path: the run directory.

    Returns:
        A `Run`.
    """
    from nnrun import config as config_lib
    from nnrun.errors import ConfigError

    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"run directory '{path}' does not exist")
    info = read_json(path / RUN)
    if not (path / MODEL).is_file():
        raise RunDirError(f"'{path}' has no {MODEL}: the run is {info.get('status', 'unknown')}" + (
            f" ({info['error']})" if info.get("error") else ""))
    try:
        resolved = config_lib.load(path / CONFIG)
    except ConfigError as e:
        raise RunDirError(f"'{path}': its {CONFIG} is not valid: {e}") from None
    return Run(path, info, resolved, read_json(path / PREPROCESSING))


def load_model(path):
    """Loads a run's model.keras in Keras's safe mode (no code in it can run)."""
    from nnrun.backend import keras as _keras

    try:
        return _keras().models.load_model(Path(path) / MODEL, safe_mode=True, compile=True)
    except Exception as e:  # a damaged or foreign file: say so, whatever Keras raised
        raise RunDirError(f"'{Path(path) / MODEL}' cannot be loaded: {' '.join(str(e).split())[:300]}") from None


def newest(root):
    """Returns the newest run directory under `root` that has a model (by its start time).

    Args:
        root: the runs folder.

    Returns:
        The `Path` of the run started last.
    """
    runs = [p.parent for p in Path(root).glob(f"*/{MODEL}") if not p.parent.is_symlink()]
    if not runs:
        raise RunDirError(f"no trained runs in '{root}'; train one with 'nnrun train CONFIG', or name one with --run")
    return max(runs, key=lambda p: (read_json(p / RUN).get("started_at", ""), p.name))
