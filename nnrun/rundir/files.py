"""The run directory: its file names, creating it, reading run.json and config.yaml.

Every file is written to a temporary name in the same folder and renamed into
place, so a crash or Ctrl-C never leaves a half-written file behind.
"""

import contextlib
import csv
import functools
import io
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun import atomic
from nnrun.errors import RunDirError
from nnrun.rundir import liveness

# No `from __future__ import annotations` here: _run_info_model's pydantic models resolve their annotations eagerly.
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
LATEST = "latest"
SWEEP = "sweep.json"  # in a sweep directory (nnrun sweep), whose runs are in trials/


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
        raise RunDirError(f"output.dir: cannot create '{root}': {e.strerror}") from None
    stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        path = root / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as e:
            raise RunDirError(f"output.dir: cannot create a run directory in '{root}': {e.strerror}") from None
        for sub in subfolders:
            (path / sub).mkdir()
        return path
    raise RunDirError(f"output.dir: too many runs named '{stem}' in '{root}'")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Reads a JSON file of a run directory, with a clear error if it is not one."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        folder = Path(path).parent
        if (folder / SWEEP).is_file():
            raise _sweep_dir(folder) from None
        raise RunDirError(f"'{folder}' is not a run directory: no {Path(path).name}") from None
    except (OSError, ValueError) as e:
        raise RunDirError(f"'{path}': cannot read: {e}") from None


def read_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads a run directory's run.json and checks the fields nnrun relies on.

    Unknown fields are kept; a known one of the wrong type (a tampered or
    damaged file) is a `RunDirError` naming it.

    Args:
        path: the run directory.

    Returns:
        The run.json dict.
    """
    import pydantic

    info = read_json(Path(path) / RUN)
    try:
        _RunInfo.model_validate(info)
    except pydantic.ValidationError as e:
        error = e.errors()[0]
        place = ".".join(str(p) for p in error["loc"]) or "its contents"
        raise RunDirError(f"'{Path(path) / RUN}': {place}: {error['msg'][0].lower()}{error['msg'][1:]}") from None
    return info


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

    Raises:
        ValueError: a value is not a number.
    """
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: int(v) if k == "epoch" else float(v or "nan") for k, v in row.items()} for row in csv.DictReader(f)]


def update_run(path: str | os.PathLike[str], **fields: object) -> dict[str, Any]:
    """Merges `fields` into the run directory's run.json, atomically."""
    run_file = Path(path) / RUN
    info = json.loads(run_file.read_text(encoding="utf-8")) if run_file.exists() else {}
    info.update(fields)
    atomic.write_json(run_file, info)
    return info


def point_latest(path: str | os.PathLike[str]) -> None:
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


def _run_info_model():
    from typing import Any, Literal

    from pydantic import BaseModel, ConfigDict, Field

    Count = Field(None, ge=0)

    class Plain(BaseModel):
        model_config = ConfigDict(extra="allow", strict=True)

    class Split(Plain):
        samples: int = Field(ge=0)
        sha256: str

    class Attempt(Plain):
        started_at: str | None = None
        duration_s: float | int | None = Count
        status: str

    class Resume(Plain):
        at: str
        from_epoch: int = Field(ge=0)

    class Export(Plain):
        file: str
        sha256: str | None = None
        model_sha256: str | None = None

    class RunInfo(Plain):
        status: Literal["running", "completed", "failed", "interrupted"]
        name: str | None = None
        started_at: str | None = None
        heartbeat_at: str | None = None
        ended_at: str | None = None
        pid: int | None = Field(None, gt=0)
        host: str | None = None
        process_started: int | None = None
        duration_s: float | int | None = Count
        epochs: int | None = Count
        epochs_completed: int | None = Count
        fine_tune_after_epoch: int | None = Count
        data_fingerprint: str | None = None
        config_sha256: str | None = None
        splits: dict[str, Split] = Field(default_factory=dict)
        resumes: list[Resume] = Field(default_factory=list)
        attempts: list[Attempt] = Field(default_factory=list)
        exports: dict[str, Export] = Field(default_factory=dict)
        error: Any = None

    return RunInfo


class _Lazy:
    # pydantic's models are built on first use: rundir is imported by every command.
    def __getattr__(self, name: str) -> Any:
        model = _run_info_model()
        globals()["_RunInfo"] = model
        return getattr(model, name)


_RunInfo = _Lazy()


@dataclass
class Run:
    """A run directory as evaluate and predict need it: what it recorded."""

    path: Path
    info: dict[str, Any]  # run.json
    preprocessing: dict[str, Any]
    model: str = MODEL  # the model file used: MODEL or BEST_MODEL
    status: str = "completed"  # as `status` reads it (a dead `running` run is `crashed`)

    @functools.cached_property
    def config(self) -> "Config":
        """The resolved `Config`, read when first asked for (predict never needs it: it starts faster)."""
        return read_config(self.path)

    def warning(self) -> str | None:
        """A line for stderr when the run is not a completed one, else None."""
        if self.status == "completed":
            return None
        done = f"{self.info.get('epochs_completed', '?')} of {self.info.get('epochs', '?')} epochs"
        return f"warning: {self.path} is {self.status} ({done}): its model may not be the final one"


def read(path: str | os.PathLike[str], model: str = MODEL, config: bool = True) -> Run:
    """Reads a run directory, checking it is one and has the model asked for.

    Args:
        path: the run directory.
        model: the model file: `MODEL`, or `BEST_MODEL` (ModelCheckpoint's).
        config: read and check config.yaml now; predict, which needs only
            preprocessing.json, leaves it (and pydantic's schema) until asked.

    Returns:
        A `Run`.
    """
    path = check_run_dir(path)
    info = read_run(path)
    if not (path / model).is_file():
        why = (
            "the config has no ModelCheckpoint callback"
            if model == BEST_MODEL
            else f"the run is {liveness.status(info)}"
        )
        error = f" ({info['error']})" if info.get("error") and model == MODEL else ""
        raise RunDirError(f"'{path}' has no {model}: {why}{error}")
    run = Run(path, info, {}, model, liveness.status(info))  # preprocessing: read below, once the config is checked
    if config:
        run.config  # noqa: B018 (read now: a config that is not valid is named before anything else)
    elif not (path / CONFIG).is_file():
        raise RunDirError(f"'{path}' has no {CONFIG}")
    from nnrun.data import schema

    run.preprocessing = schema.check(read_json(path / PREPROCESSING), path / PREPROCESSING)
    return run


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
    if is_run_dir(path):
        return path
    if not path.is_dir():
        raise RunDirError(
            f"run directory '{path}' " + ("is a file, not a directory" if path.exists() else "does not exist")
        )
    if (path / SWEEP).is_file():
        raise _sweep_dir(path)
    raise RunDirError(f"'{path}' is not a run directory: no {RUN}")


def _sweep_dir(path: Path) -> RunDirError:
    return RunDirError(
        f"'{path}' is a sweep directory, not a run: its runs are in {path / 'trials'}, "
        f"its best config is {path / 'best.yaml'}"
    )


def read_config(path: str | os.PathLike[str]) -> "Config":
    """Reads and validates a run directory's config.yaml (the resolved config it was trained with).

    Args:
        path: the run directory.

    Returns:
        The `Config`; one that is not valid is a `RunDirError`.
    """
    from nnrun.config import loading as config_lib
    from nnrun.errors import ConfigError

    try:
        return config_lib.load(Path(path) / CONFIG)
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
        size = file.stat().st_size
        if size > MAX_CONFIG_BYTES:  # before reading it: run directories come from other people
            raise RunDirError(f"'{file}': {size} bytes, more than a config may have ({MAX_CONFIG_BYTES})")
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RunDirError(f"'{file}': cannot read: {getattr(e, 'strerror', None) or e}") from None
    return parse_yaml(text, str(file))
