"""How a run begins: its directory, then a new run's files, or a resumed run's last backup."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun import atomic
from nnrun.data import schema
from nnrun.errors import RunDirError, WriteFailed
from nnrun.rundir import files as rundir
from nnrun.rundir import finding, record, runinfo

if TYPE_CHECKING:
    from nnrun.config.schema import Config
    from nnrun.reporter import Reporter
    from nnrun.training.distribution import Engine
    from nnrun.training.setup import Setup


def run_dir(config: Config, engine: Engine, resume: str | os.PathLike[str] | None) -> Path:
    """The run's directory: the one resumed, or a new one (on process 0, after sweeping away stale temporary files).

    Args:
        config: the validated `Config`.
        engine: the run's `Engine` (only process 0 writes the real run directory).
        resume: the run directory to resume, if any.

    Returns:
        The run directory's `Path`.
    """
    if resume:
        return Path(resume)
    if engine.writer:
        finding.sweep_stale(config.output.dir)
    assert config.output.name is not None  # load() sets it
    return rundir.create(engine.output_dir(config.output.dir), config.output.name)


def new(run_dir: Path, config: Config, s: Setup, config_file: Path | None, started: float, text: str) -> list[Any]:
    """Writes a new run's files; run.json first, so the folder is a run from the start.

    If they cannot all be written (a full disk), the new folder is removed: nothing
    had been trained, and a folder without them would be no run (`nnrun runs` never
    lists it, `resume` refuses it); training the config again is what starts it.

    Args:
        run_dir: the new run directory.
        config: the validated `Config`.
        s: the run's `Setup`.
        config_file: the config's path, recorded in run.json.
        started: when the run started, a `time.time()` value.
        text: the resolved config, for config.yaml.

    Returns:
        The history so far: none.
    """
    info = runinfo.new(config, s.dataset, config_file, started, atomic.sha256_text(text))
    names = s.dataset.class_names or []
    weights = {names[i]: round(w, 6) for i, w in s.class_weight.items()} if s.class_weight else s.class_weight
    info = {**info, "distribution": s.engine.record(), "class_weight": weights, "notes": s.dataset.notes}
    preprocessing = {"version": schema.VERSION, **s.dataset.preprocessing, "one_hot_labels": s.one_hot}
    try:
        record.write_info(run_dir, **info)
        atomic.write_text(run_dir / rundir.CONFIG, text)
        atomic.write_json(run_dir / rundir.PREPROCESSING, preprocessing)
    except WriteFailed as e:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise e.advised("nothing was trained, and the new run directory is removed") from e
    return []


def restore(run_dir: Path, s: Setup, report: Reporter) -> list[dict[str, Any]]:
    """Restores a run's last backup into the model (weights, optimizer state, stage).

    Args:
        run_dir: the run directory resumed.
        s: the run's `Setup`.
        report: where to say where it resumes.

    Returns:
        history.csv's rows up to the backup's epoch.
    """
    from nnrun.training import backup

    s.stages.resume(run_dir)
    restored = backup.restore(s.model, run_dir / rundir.BACKUP, s.stages.arrange)
    epoch = restored.epoch if restored else 0
    rows = rundir.read_history(run_dir / rundir.HISTORY)[:epoch]
    if rows and "epoch" not in rows[0]:
        raise RunDirError(f"'{run_dir / rundir.HISTORY}': cannot be read: it has no epoch column")
    epochs = [r["epoch"] for r in rows]
    if len(rows) != epoch or epochs != list(range(1, epoch + 1)):
        raise RunDirError(f"'{run_dir / rundir.HISTORY}' has {len(rows)} of the {epoch} epochs its backup has")
    atomic.write_text(run_dir / rundir.HISTORY, rundir.history_text(rows))
    if restored and restored.previous:
        report.warn(f"the latest backup was unusable ({restored.problem}); using the one before it")
    entry = runinfo.resumed(run_dir, epoch, restored.batch if restored else 0, restored.iterations if restored else 0)
    where = f"epoch {epoch} (step {entry['from_step']})" if restored else "the start (no epoch had finished)"
    report.say(f"resuming {run_dir.name} from {where}")
    return rows
