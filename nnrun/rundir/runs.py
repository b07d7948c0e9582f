"""The runs side by side: `nnrun runs` (a table), `runs diff` (two configs), `runs compare` (curves).

Reads run directories only; never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from nnrun.config import overrides
from nnrun.errors import RunDirError
from nnrun.rundir import files as rundir
from nnrun.rundir import finding, record
from nnrun.rundir.status import CUT_OFF, UNFINISHED, Status


@dataclasses.dataclass
class RunSummary:
    """What `nnrun runs` shows of one run (its --json keys, in this order)."""

    run: str  # the run directory
    name: str
    status: Status  # as `record.status` reads it
    started_at: str | None
    duration_s: float | None  # to the end, or to the last heartbeat of a run that has not ended
    epochs_completed: int | None
    epochs: int | None
    metric: str | None  # the test metric shown: the first that is not the loss
    test: float | None  # its value
    data: str | None  # `source:name`, e.g. sklearn:digits
    resumes: int
    hint: str | None  # how to continue a run that stopped
    retried_as_trial: int | None  # a sweep's trial cut off: the trial of its sweep that tries its point again


@dataclasses.dataclass
class Listing:
    """`nnrun runs`: the runs of a runs folder, newest first, and the run directories that could not be read."""

    runs: list[RunSummary]
    broken: list[tuple[Path, str]]  # (path, why)

    def to_json(self) -> list[dict[str, Any]]:
        """What `nnrun runs --json` prints: one object per run."""
        return [dataclasses.asdict(s) for s in self.runs]


@dataclasses.dataclass
class Diff:
    """`nnrun runs diff`: how two runs' configs differ, and their final metrics side by side."""

    a: str
    b: str
    status: dict[str, Status]  # {"a": ..., "b": ...}
    config: list[dict[str, Any]]  # {"key", "a", "b"} for each key path whose value differs
    metrics: list[dict[str, Any]]  # {"key", "a", "b"} for every final metric
    problems: list[str] = dataclasses.field(default_factory=list)  # why a status or metrics could not be read

    def to_json(self) -> dict[str, Any]:
        """What `nnrun runs diff --json` prints."""
        return dataclasses.asdict(self)


def summaries(root: str | os.PathLike[str], statuses: Collection[str] = (), name: str | None = None) -> Listing:
    """One summary per run directory under `root`, newest first.

    Args:
        root: the runs folder.
        statuses: keep only runs with these statuses (as `record.status` reads them).
        name: keep only runs whose name matches this glob pattern (`mnist*`) or contains it.

    Returns:
        A `Listing`: the `RunSummary`s, and `(path, why)` for unreadable run.json files.
    """
    runs, broken = finding.listing(root)
    found = [summary(path, info) for path, info in runs]
    if statuses:
        found = [s for s in found if s.status in statuses]
    if name:
        found = [s for s in found if fnmatch.fnmatch(s.name, name) or name in s.run]
    found.sort(key=lambda s: (s.started_at or "", s.run), reverse=True)
    return Listing(found, broken)


def summary(path: Path, info: record.RunInfo) -> RunSummary:
    """What `nnrun runs` shows of one run.

    Args:
        path: the run directory.
        info: its run.json.

    Returns:
        A `RunSummary`.
    """
    status = record.status(info)
    test = _metrics(path).get("test", {})
    metric = next((k for k in test if k != "loss"), "loss" if "loss" in test else None)
    return RunSummary(
        run=str(path),
        name=info.name or path.name,  # run.json may say null
        status=status,
        started_at=info.started_at,
        duration_s=info.duration_s if info.duration_s is not None else _since_start(info),
        epochs_completed=info.epochs_completed,
        epochs=info.epochs,
        metric=metric,
        test=test.get(metric) if metric else None,
        data=_data_source(path),
        resumes=len(info.resumes),
        hint=_hint(path, info, status),
        retried_as_trial=info.retried_as_trial,
    )


def _hint(path: Path, info: record.RunInfo, status: Status) -> str | None:
    """How to continue a run that stopped; a sweep's trial cut off, with its sweep (none once that retries it)."""
    if status not in UNFINISHED or info.retried_as_trial:
        return None
    sweep = rundir.sweep_of(path) if status in CUT_OFF else None
    return f"nnrun sweep {sweep}" if sweep else f"nnrun resume {path}"


def diff(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> Diff:
    """The differences between two runs' resolved configs, and their metrics.

    Args:
        a: a run directory.
        b: another.

    Returns:
        A `Diff`.
    """
    configs = [overrides.flatten(rundir.read_config_yaml(p)) for p in (a, b)]
    keys = sorted(set(configs[0]) | set(configs[1]))
    missing = object()
    changed = [
        {"key": k, "a": configs[0].get(k), "b": configs[1].get(k)}
        for k in keys
        if configs[0].get(k, missing) != configs[1].get(k, missing)
    ]
    problems: list[str] = []
    metrics = [overrides.flatten(_metrics(p, problems)) for p in (a, b)]
    scores = [
        {"key": k, "a": metrics[0].get(k), "b": metrics[1].get(k)} for k in dict.fromkeys([*metrics[0], *metrics[1]])
    ]
    status = {k: _status(p, problems) for k, p in (("a", a), ("b", b))}
    return Diff(str(a), str(b), status, changed, scores, problems)


def compare(run_dirs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str] | None = None) -> Path:
    """Plots the learning curves of several runs on one figure.

    Args:
        run_dirs: two or more run directories.
        output: the PNG to write; by default `compare-<time>.png` in the
            first run's runs folder.

    Returns:
        The PNG's `Path`.
    """
    histories = {}
    for path in map(Path, run_dirs):
        rundir.check_run_dir(path)
        rows = rundir.read_history(path / rundir.HISTORY)
        if not rows:
            raise RunDirError(f"'{path}' has no finished epoch to plot (no {rundir.HISTORY})")
        status = _status(path)
        name = path.resolve().name  # runs/latest: the run's own name on the plot
        histories[name if status == Status.COMPLETED else f"{name} ({status})"] = rows
    output = Path(output) if output else Path(run_dirs[0]).parent / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.png"
    if not output.parent.is_dir():
        raise RunDirError(f"--output {output}: the folder '{output.parent}' does not exist")
    from nnrun import plots  # matplotlib, once there is something to plot

    return plots.compare_curves(histories, output, f"{len(histories)} runs compared")


def _since_start(info: record.RunInfo) -> float | None:
    """A run that has not ended (or died): the time from its start to its last heartbeat."""
    import datetime

    if info.started_at is None or info.heartbeat_at is None:
        return None
    try:
        start, beat = (datetime.datetime.fromisoformat(t) for t in (info.started_at, info.heartbeat_at))
    except ValueError:
        return None
    return round((beat - start).total_seconds(), 3)


def _status(path, problems=None):
    """A run's status, `unknown` when its run.json cannot be read (and why, added to `problems`)."""
    try:
        return record.status(record.read_info(path))
    except RunDirError as e:
        if problems is not None:
            problems.append(str(e))
        return Status.UNKNOWN


def _metrics(path, problems=None):
    """A run's metrics.json, empty when it has none or it cannot be read (and why, added to `problems`)."""
    file = Path(path) / rundir.METRICS
    try:
        found = rundir.read_json(file)
    except RunDirError as e:
        if problems is not None and (file.exists() or file.is_symlink()):  # a run without metrics yet is no problem
            problems.append(str(e))
        return {}
    if not isinstance(found, dict):
        if problems is not None:
            problems.append(f"'{file}': expected a JSON object, got {type(found).__name__}")
        return {}
    return found


def _data_source(path):
    try:
        data = rundir.read_config_yaml(path).get("data", {})
    except Exception:  # a listing shows what it can of a damaged run
        return None
    where = data.get("name") or (Path(data["path"]).name if data.get("path") else None)
    return f"{data.get('source')}:{where}" if where else data.get("source")
