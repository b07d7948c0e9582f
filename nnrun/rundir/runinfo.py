"""run.json's story of a run: how it starts, each resume, and how it ends.

Every write goes through the typed record (`record`), atomically; every status a
reader sees goes through `record.status`.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun import __version__
from nnrun.errors import RunDirError
from nnrun.rundir import liveness, record
from nnrun.rundir.status import Status

if TYPE_CHECKING:
    from nnrun.config.schema import Config
    from nnrun.data.types import Dataset


def planned_epochs(config: Config, after: int | None = None) -> int:
    """The epochs a config plans: training's, and fine-tuning's after them.

    Args:
        config: the `Config`.
        after: the epochs done when fine-tuning began (run.json's
            `fine_tune_after_epoch`), once it has.

    Returns:
        The number of epochs.
    """
    start = after if after is not None else config.training.epochs
    return start + config.training.fine_tune.epochs if config.training.fine_tune else config.training.epochs


def new(
    config: Config, dataset: Dataset, config_file: str | os.PathLike[str] | None, started: float, config_sha256: str
) -> dict[str, Any]:
    """run.json of a run that starts now.

    Args:
        config: the resolved `Config`.
        dataset: the `Dataset`: its fingerprint and which samples each split holds.
        config_file: the config's path, or None.
        started: its start, a `time.time()` value.
        config_sha256: the sha256 of the config.yaml written (a resume checks it).

    Returns:
        The JSON-able dict.
    """
    import keras
    import numpy as np
    import sklearn

    return {
        "status": Status.RUNNING,
        "name": config.output.name,
        "backend": keras.backend.backend(),
        "backend_reason": config.backend_reason,  # e.g. "auto: dense layers only; JAX measured ..."
        "started_at": liveness.timestamp(started),
        "ended_at": None,
        "heartbeat_at": liveness.timestamp(started),
        **liveness.process(),
        "duration_s": None,
        "epochs": planned_epochs(config),
        "epochs_completed": 0,
        "seed": config.seed,
        "data_fingerprint": dataset.fingerprint,
        "splits": dataset.splits,  # evaluate refuses a re-created test split that differs
        "config_file": None if config_file is None else str(config_file),
        "config_sha256": config_sha256,
        "command": recorded_command(sys.argv),
        "versions": {
            "python": platform.python_version(),
            "nnrun": __version__,
            "tensorflow": _installed("tensorflow", "tensorflow-cpu"),  # imported on JAX only if needed
            "keras": keras.__version__,
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            **({"jax": sys.modules["jax"].__version__} if keras.backend.backend() == "jax" else {}),
        },
    }


def recorded_command(argv: list[str]) -> list[str]:
    """The command line as run.json records it: a URL's password masked, in any argument.

    `nnrun sweep --storage postgresql://user:PASSWORD@host/db` is documented use, and a trial's run.json (and
    MLflow, which is given the run directory's files) must never hold the password.

    Args:
        argv: `sys.argv`.

    Returns:
        The arguments, each with `://user:PASSWORD@` and `password=...` query values shown as `***`.
    """
    return [_PASSWORD_IN_QUERY.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1:***@", arg)) for arg in argv]


_PASSWORD_IN_URL = re.compile(r"(://[^/@:\s]*):[^/\s]*@")  # to the last @: a password may hold one
_PASSWORD_IN_QUERY = re.compile(r"([?&](?:password|passwd|pwd)=)[^&\s]*", re.IGNORECASE)


def resumed(run_dir: Path, epoch: int, batch: int, step: int) -> dict[str, Any]:
    """Records in run.json that this process resumes the run, and returns what it recorded.

    The run is `running` again, in this process; how it ended before is kept in
    `resumes` (and, for a crashed attempt that could not say so itself, in
    `attempts`, timed by its last heartbeat).

    Args:
        run_dir: the run directory.
        epoch: epochs done at the backup.
        batch: the batch of a mid-epoch backup (else 0).
        step: the optimizer's step count at the backup.

    Returns:
        The `resumes` entry.
    """
    info = record.read_info(run_dir)
    previous = record.status(info)
    entry = {
        "at": liveness.timestamp(),
        "from_epoch": epoch,
        "from_batch": batch,
        "from_step": step,
        "previous_status": previous,
        **liveness.process(),
    }
    attempts = record.plain(info.attempts)
    if previous not in (Status.INTERRUPTED, Status.FAILED):  # a crashed attempt could not say so itself
        begun = info.resumes[-1].at if info.resumes else info.started_at
        seconds = _seconds(begun, info.heartbeat_at)
        attempts.append({"started_at": begun, "duration_s": seconds, "status": Status.CRASHED})
    record.update_info(
        run_dir,
        ("ended_at", "error", "signal", "traceback", "restored_epoch"),  # how it ended before no longer holds
        status=Status.RUNNING,
        epochs_completed=epoch,
        heartbeat_at=liveness.timestamp(),
        resumes=[*record.plain(info.resumes), entry],
        attempts=attempts,
        **liveness.process(),
    )
    return entry


def finish(run_dir: Path, started: float, status: Status, **fields: object) -> None:
    """Records how this attempt ended in run.json.

    Args:
        run_dir: the run directory.
        started: this attempt's start, a `time.time()` value.
        status: completed, failed or interrupted.
        **fields: more to record (error, signal, traceback, ...).

    Raises:
        WriteFailed: run.json could not be written (a full disk); it still says `running`,
            which reads as `crashed` once this process has ended.
    """
    ended = time.time()
    try:
        attempts = record.plain(record.read_info(run_dir).attempts)
    except RunDirError:
        attempts = []
    # A resumed run adds this attempt's time to the earlier ones'.
    before = sum(a.get("duration_s") or 0 for a in attempts)
    attempt = {"started_at": liveness.timestamp(started), "duration_s": round(ended - started, 3), "status": status}
    record.update_info(
        run_dir,
        status=status,
        ended_at=liveness.timestamp(ended),
        duration_s=round(before + ended - started, 3),
        attempts=[*attempts, attempt],
        **fields,
    )


def _seconds(start, end):
    try:
        return round((datetime.datetime.fromisoformat(end) - datetime.datetime.fromisoformat(start)).total_seconds(), 3)
    except (TypeError, ValueError):
        return None


def _installed(*distributions):
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return None
