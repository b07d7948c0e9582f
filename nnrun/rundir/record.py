"""run.json as one typed record (read and checked, updated atomically), and a run as evaluate and predict read it.

Unknown fields are kept (a newer nnrun may add some); a known one of the wrong
type, in a tampered or damaged file, is a `RunDirError` naming it. Imported
where run.json is read, not at a command's start: pydantic builds its models
when this module loads.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from nnrun import atomic
from nnrun.errors import RunDirError, place
from nnrun.rundir import liveness
from nnrun.rundir.files import (
    BEST_MODEL,
    CONFIG,
    MODEL,
    PREPROCESSING,
    RUN,
    check_run_dir,
    read_config,
    read_json,
    read_text,
)
from nnrun.rundir.status import RECORDED, Status

if TYPE_CHECKING:
    from nnrun.config.schema import Config


def _recorded(value: object) -> Status:
    if isinstance(value, str) and value in {s.value for s in RECORDED}:
        return Status(value)
    words = ", ".join(f"'{s.value}'" for s in RECORDED[:-1]) + f" or '{RECORDED[-1].value}'"
    raise PydanticCustomError("literal_error", f"Input should be {words}")


Count = Field(None, ge=0)


class _Plain(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Split(_Plain):
    """Which samples a split held (evaluate refuses a re-created test split that differs)."""

    samples: int = Field(ge=0)
    sha256: str
    paths: str | None = None  # 'relative': image files named relative to data.path (nnrun 0.2 named them as read)


class Attempt(_Plain):
    """One attempt at the run: the first, or a resume."""

    started_at: str | None = None
    duration_s: float | int | None = Count
    status: str


class Resume(_Plain):
    """A resume: when, from which epoch, and how the run stood before it."""

    at: str
    from_epoch: int = Field(ge=0)


class Export(_Plain):
    """An export that `nnrun export` verified (fields in the order export.py writes them)."""

    file: str
    sha256: str | None = None
    max_abs_difference: float | int | None = None
    model_sha256: str | None = None


class RunInfo(_Plain):
    """A run directory's run.json."""

    status: Annotated[Status, BeforeValidator(_recorded)]
    name: str | None = None
    backend: str | None = None  # the Keras backend it trained on (evaluate and predict load its model there)
    backend_reason: str | None = None  # why: "named in the config", "$KERAS_BACKEND", "auto: ..."
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
    # The epoch (from 1, counting a resumed run's earlier epochs) whose weights EarlyStopping gave the model
    # back (restore_best_weights); absent when model.keras is the last epoch's.
    restored_epoch: int | None = Field(None, gt=0)
    data_fingerprint: str | None = None
    config_sha256: str | None = None
    splits: dict[str, Split] = Field(default_factory=dict)
    resumes: list[Resume] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    exports: dict[str, Export] = Field(default_factory=dict)
    mlflow: Any = None  # {tracking_uri, run_id}; tracking checks what it finds
    error: Any = None
    retried_as_trial: int | None = Field(None, gt=0)  # a sweep's trial cut off: its sweep tries its point again


def read_info(path: str | os.PathLike[str]) -> RunInfo:
    """Reads a run directory's run.json and checks the fields nnrun relies on.

    Args:
        path: the run directory.

    Returns:
        The `RunInfo`.
    """
    return _checked(read_json(Path(path) / RUN), Path(path))


def status(info: RunInfo) -> Status:
    """A run's status as a reader should see it: `crashed` for a `running` run whose process is gone.

    Args:
        info: the run's `RunInfo`.

    Returns:
        The `Status`.
    """
    if info.status == Status.RUNNING and not liveness.still_running(info.pid, info.host, info.process_started):
        return Status.CRASHED
    return info.status


def update_info(path: str | os.PathLike[str], remove: Iterable[str] = (), /, **fields: Any) -> None:
    """Merges `fields` into the run directory's run.json, atomically; the others are kept as they were.

    The file is not checked here: a run whose run.json was damaged while it
    trained still records its heartbeat and how it ended (readers check it).

    Args:
        path: the run directory.
        remove: fields to leave out (what no longer holds, such as a resumed run's `error`).
        **fields: run.json's fields to set (`Status` values are written as their words).
    """
    run_file = Path(path) / RUN
    try:
        recorded = json.loads(read_text(run_file))
    except FileNotFoundError:
        recorded = {}
    kept = {key: value for key, value in recorded.items() if key not in set(remove)}
    atomic.write_json(run_file, {**kept, **json.loads(json.dumps(fields))})  # plain JSON values


def write_info(path: str | os.PathLike[str], **fields: Any) -> RunInfo:
    """Writes a new run.json with these fields only (a run that begins), atomically.

    Args:
        path: the run directory.
        **fields: run.json's fields.

    Returns:
        The `RunInfo` written.
    """
    plain = json.loads(json.dumps(fields))
    info = _checked(plain, Path(path))
    atomic.write_json(Path(path) / RUN, plain)
    return info


def _checked(plain: Any, path: Path) -> RunInfo:
    try:
        return RunInfo.model_validate(plain)
    except ValidationError as e:
        error = e.errors()[0]
        raise RunDirError(
            f"'{path / RUN}': {place(error['loc'])}: {error['msg'][0].lower()}{error['msg'][1:]}"
        ) from None


@dataclass
class Run:
    """A run directory as evaluate and predict need it: what it recorded."""

    path: Path
    info: RunInfo
    preprocessing: dict[str, Any]
    model: str = MODEL  # the model file used: MODEL or BEST_MODEL
    status: Status = Status.COMPLETED  # as `status` reads it (a dead `running` run is `crashed`)

    @functools.cached_property
    def config(self) -> Config:
        """The resolved `Config`, read when first asked for (predict never needs it: it starts faster)."""
        return read_config(self.path)

    def warning(self) -> str | None:
        """A line for stderr when the run is not a completed one, else None."""
        if self.status == Status.COMPLETED:
            return None
        done = f"{_or_unknown(self.info.epochs_completed)} of {_or_unknown(self.info.epochs)} epochs"
        return f"warning: {self.path} is {self.status} ({done}): its model may not be the final one"


def _or_unknown(count: int | None) -> object:
    return "?" if count is None else count


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
    info = read_info(path)
    seen = status(info)
    if (path / model).is_symlink():  # Keras would load whatever it points at
        raise RunDirError(f"'{path / model}' is a symbolic link; a run directory holds its own files")
    for name in (model, CONFIG):
        if (path / name).exists() and not (path / name).is_file():
            raise RunDirError(f"'{path / name}' is not a file")
    if not (path / model).is_file():
        why = "the config has no ModelCheckpoint callback" if model == BEST_MODEL else f"the run is {seen}"
        error = f" ({info.error})" if info.error and model == MODEL else ""
        raise RunDirError(f"'{path}' has no {model}: {why}{error}")
    run = Run(path, info, {}, model, seen)  # preprocessing: read below, once the config is checked
    if config:
        run.config  # noqa: B018 (read now: a config that is not valid is named before anything else)
    elif not (path / CONFIG).is_file():
        raise RunDirError(f"'{path}' has no {CONFIG}")
    from nnrun.data import schema

    run.preprocessing = schema.check(read_json(path / PREPROCESSING), path / PREPROCESSING)
    return run


def plain(items: Iterable[BaseModel]) -> list[dict[str, Any]]:
    """A record's list (attempts, resumes) as run.json holds it, to write it back with one more."""
    return [item.model_dump(mode="json", exclude_unset=True) for item in items]
