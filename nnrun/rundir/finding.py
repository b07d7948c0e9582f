"""Finding runs in a runs folder: its run directories, the newest completed one (`latest`), orphaned temporary files."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from nnrun import atomic
from nnrun.errors import RunDirError
from nnrun.rundir import files as rundir
from nnrun.rundir import liveness, record
from nnrun.rundir.status import Status

STALE_SECONDS = 3600  # no write of nnrun's takes this long: an older temporary file is an orphan
_LINK_TRIES = 10  # runs completing in the instant between two looks; each try makes one more unlikely


def listing(root: str | os.PathLike[str]) -> tuple[list[tuple[Path, record.RunInfo]], list[tuple[Path, str]]]:
    """The run directories directly under `root` (with a run.json), and those whose run.json is unreadable.

    Args:
        root: the runs folder.

    Returns:
        `(runs, broken)`: `(path, run.json)` pairs, and `(path, why)` pairs.
    """
    runs: list[tuple[Path, record.RunInfo]] = []
    broken: list[tuple[Path, str]] = []
    root = Path(root)
    if not root.is_dir():
        return runs, broken
    for path in sorted(root.iterdir()):
        if path.is_symlink() or not rundir.is_run_dir(path):  # runs/latest points at one listed already
            continue
        try:
            runs.append((path, record.read_info(path)))
        except RunDirError as e:
            broken.append((path, str(e)))
    return runs, broken


def newest(root: str | os.PathLike[str], hint: str = "name one with --run") -> Path:
    """Returns the newest completed run directory under `root`: the one started last.

    The one rule for "newest": `evaluate` and `predict` default to it, `latest`
    points at it (`update_latest`) and `nnrun runs` lists the runs in its order.
    By start time (then name), not by when a run completed: two runs that end
    together cannot swap places by who records it last, and a run's place never
    changes once it started. Runs that are running, crashed, failed or
    interrupted are passed over, even with a model: a default must be a finished run.

    Args:
        root: the runs folder.
        hint: how the user names a run instead, for the message when there is none.

    Returns:
        The `Path` of the completed run started last.
    """
    runs, _ = listing(root)
    done = [(p, info) for p, info in runs if record.status(info) == Status.COMPLETED and (p / rundir.MODEL).is_file()]
    if not done:
        others = sorted({record.status(info) for _, info in runs})
        unfinished = f" ({len(runs)} not completed: {', '.join(others)})" if runs else ""
        raise RunDirError(f"no completed runs in '{root}'{unfinished}; train one with 'nnrun train CONFIG', or {hint}")
    return max(done, key=lambda pair: (pair[1].started_at or "", pair[0].name))[0]


def update_latest(root: str | os.PathLike[str]) -> None:
    """Points `<root>/latest` at the newest completed run (`newest`); a run that completes calls it.

    Several runs completing together each point it once their own completion
    is recorded, then look again: whichever links last has seen every run that
    completed before its link, so `latest` ends at the newest of them.

    Args:
        root: the runs folder.
    """
    linked = None
    for _ in range(_LINK_TRIES):
        try:
            target = newest(root)
        except RunDirError:
            return  # none completed (it moved away): `latest` is left as it is
        if target == linked:
            return
        rundir.point_latest(target)
        linked = target


def sweep_stale(root: str | os.PathLike[str]) -> None:
    """Removes temporary files that dead processes left in a runs folder's run directories.

    Only files over an hour old: an `evaluate` or a `resume` may be writing
    into a run that is not `running`. A run whose process still runs keeps its
    own whatever their age.

    Args:
        root: the runs folder.
    """
    runs, _ = listing(root)
    for path, info in runs:
        if record.status(info) != Status.RUNNING:
            atomic.remove_temporary(path, older_than=STALE_SECONDS)
    for tmp in Path(root).glob(f".{rundir.LATEST}.*"):  # point_latest's, named by pid
        pid = tmp.name.rpartition(".")[2]
        if pid.isdigit() and not liveness.alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()
