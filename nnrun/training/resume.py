"""`nnrun resume`: continue a killed, interrupted or failed run in its own directory.

The run's saved config is used as it is; only options that cannot change the
result may be overridden. The data must be what the run was trained on (its
fingerprint), unless forced. Training itself is `train.train`'s, which
restores the backup and carries on the history.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nnrun import atomic, backend
from nnrun.config import loading as config_lib
from nnrun.config import overrides
from nnrun.errors import ConfigError, DataError, RunDirError
from nnrun.rundir import files as rundir
from nnrun.rundir import finding, liveness, record, runinfo
from nnrun.rundir.status import CUT_OFF, UNFINISHED, Status

if TYPE_CHECKING:
    from nnrun.config.schema import Config
    from nnrun.reporter import Reporter

# Options a resumed run may change: how long it trains and what it keeps,
# never what it computes.
RESUMABLE = (
    "training.epochs",
    "training.fine_tune.epochs",
    "training.backup_every_steps",
    "output.keep_backup",
    "output.save_h5",
)


def resume(
    run_dir: str | os.PathLike[str],
    report: Reporter,
    overrides: Sequence[str] = (),
    force: bool = False,
    trackers: Sequence[str] = (),
) -> Path:
    """Continues a run from its last backup, in the same run directory.

    Args:
        run_dir: the run directory.
        report: the `Reporter` the run says what it does through.
        overrides: `key.path=value` strings; only `RESUMABLE` keys.
        force: resume even though the data's fingerprint changed.
        trackers: `--tracker` names: where else the rest of the run is recorded (none: nowhere else).

    Returns:
        The run directory's `Path`.
    """
    run_dir = Path(run_dir)
    with liveness.claim(run_dir):
        config, info = resumable(run_dir, overrides, force)
        if trackers:  # recording elsewhere never changes the result
            config = config_lib.with_trackers(config, trackers)
        backend.use(config.backend)  # the run's own
        return _resume(run_dir, config, info, report, overrides, force)


def _resume(
    run_dir: Path,
    config: Config,
    info: record.RunInfo,
    report: Reporter,
    overrides: Sequence[str],
    force: bool,
) -> Path:
    from nnrun.training import setup, train

    prepared = setup.setup(config)
    recorded = info.data_fingerprint
    if prepared.dataset.fingerprint != recorded:
        if not force:
            raise DataError(
                f"{run_dir}: the data differs from what the run was trained on (fingerprint "
                f"{prepared.dataset.fingerprint[:19]}..., recorded {str(recorded)[:19]}...); "
                "resume with --force to train on it anyway"
            )
        report.warn("warning: the data changed since the run started; resuming on it (--force)")
    atomic.remove_temporary(run_dir)
    if overrides:  # the run directory's config.yaml stays the config it was trained with
        planned = runinfo.planned_epochs(config, info.fine_tune_after_epoch)
        _rewrite_config(run_dir, train.resolved_text(config), planned)
    resumed = train.train(config, report, resume=run_dir, prepared=prepared)
    assert resumed is not None  # a run resumes in one process, which writes its run directory
    return resumed


def _rewrite_config(run_dir: Path, text: str, epochs: int) -> None:
    """Writes config.yaml with the overrides, and run.json its sha256 and epochs: both, or neither.

    One without the other would read as a config edited since the run started, which resume refuses.
    """
    config_file = run_dir / rundir.CONFIG
    before = run_dir / f".before{atomic.TMP_MARK}{rundir.CONFIG}"
    atomic.copy(config_file, before)
    try:
        atomic.write_text(config_file, text)
        record.update_info(run_dir, epochs=epochs, config_sha256=atomic.sha256_text(text))
    except BaseException:
        os.replace(before, config_file)  # a rename: it needs no room on a full disk
        raise
    finally:
        before.unlink(missing_ok=True)


def resumable(
    run_dir: str | os.PathLike[str], overrides: Sequence[str] = (), force: bool = False
) -> tuple[Config, record.RunInfo]:
    """Checks that a run can be resumed and returns its config with the allowed overrides.

    Args:
        run_dir: the run directory.
        overrides: `key.path=value` strings.
        force: also resume a run that says it is running on another host
            (whose process this host cannot see).

    Returns:
        `(config, info)`: the run's `Config` with the overrides, and its run.json.
    """
    run_dir = rundir.check_run_dir(run_dir)
    rundir.check_own_folders(run_dir)
    info = record.read_info(run_dir)
    status = record.status(info)
    if status == Status.COMPLETED:
        raise RunDirError(f"{run_dir}: the run is completed; there is nothing to resume")
    if status == Status.RUNNING:  # on another host, whose processes this one cannot see
        here = info.host == liveness.process()["host"]
        if here or not force:
            raise RunDirError(
                f"{run_dir}: the run is still running (process {info.pid} on {info.host}, "
                f"last heartbeat {info.heartbeat_at})"
                + ("" if here else "; if that process is gone, resume with --force")
            )
    _not_a_trial(run_dir, info, status)
    try:
        text = rundir.read_text(run_dir / rundir.CONFIG, config_lib.MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise RunDirError(f"'{run_dir}' has no {rundir.CONFIG}") from None
    if info.config_sha256 not in (None, atomic.sha256_text(text)):
        raise RunDirError(
            f"'{run_dir / rundir.CONFIG}' was edited since the run started; resuming it would not continue the same "
            "run: train the edited config as a new run"
        )
    try:
        config = config_lib.from_text(text, run_dir / rundir.CONFIG)
    except ConfigError as e:
        raise RunDirError(f"'{run_dir}': its {rundir.CONFIG} is not valid: {e}") from None
    if overrides:  # the run's own config is valid: what fails now is the user's --set, named as given
        config = config_lib.from_text(text, run_dir / rundir.CONFIG, overrides)  # a misspelt key is named first
    for item in overrides:
        key = item.partition("=")[0]
        if key not in RESUMABLE:
            raise ConfigError(
                f"--set {item}: '{key}' cannot change when resuming (it would change the result); "
                f"only {', '.join(RESUMABLE)} can"
            )
    after = info.fine_tune_after_epoch
    if after is not None and config.training.fine_tune is None:  # a config.yaml edited where no hash guards it
        raise RunDirError(
            f"{run_dir}: run.json says fine-tuning began after epoch {after}, "
            f"but its {rundir.CONFIG} has no training.fine_tune"
        )
    if after is not None and config.training.epochs != rundir.read_config(run_dir).training.epochs:
        raise ConfigError(
            f"{run_dir}: fine-tuning began after epoch {after}, so training.epochs no longer counts; "
            "train longer with --set training.fine_tune.epochs=N"
        )
    done = info.epochs_completed or 0
    if done > 0 and not (run_dir / rundir.BACKUP).is_dir():
        raise RunDirError(
            f"{run_dir}: {done} epochs finished but there is no {rundir.BACKUP}/ to resume from "
            "(it was removed); train the config again as a new run"
        )
    planned = runinfo.planned_epochs(config, after)
    if planned < done:
        key = "training.fine_tune.epochs" if after is not None else "training.epochs"
        now = (
            config.training.fine_tune.epochs
            if config.training.fine_tune and after is not None
            else config.training.epochs
        )
        raise ConfigError(
            f"{run_dir}: {done} epochs are done, more than the config plans ({planned}); "
            f"resume with --set {key}=N (N >= {done - planned + now})"
        )
    return config, info


def _not_a_trial(run_dir: Path, info: record.RunInfo, status: Status) -> None:
    """Refuses a sweep's trial cut off: its sweep tries the point again and counts it; a resumed one counts nowhere."""
    sweep = rundir.sweep_of(run_dir)
    if info.retried_as_trial:
        raise RunDirError(
            f"{run_dir}: a sweep's trial, whose point its sweep tries again as trial {info.retried_as_trial}; "
            "there is nothing to resume" + (f" (the sweep: {sweep})" if sweep else "")
        )
    if sweep and status in CUT_OFF:
        raise RunDirError(
            f"{run_dir}: a trial of the sweep {sweep}, which tries its point again when it continues: "
            f"nnrun sweep {sweep}"
        )


def newest_unfinished(config: Config) -> Path | None:
    """The newest resumable run made from the same config, if any (for `train --resume-if-possible`).

    Same config means the same resolved config.yaml, apart from the options a
    resume may change.

    Args:
        config: the validated `Config` about to be trained.

    Returns:
        The run directory's `Path`, or None.
    """
    from nnrun.training.train import resolved_text

    wanted = _comparable(config_lib.parse_yaml(resolved_text(config), "config"))
    candidates = []
    for path, info in finding.listing(config.output.dir)[0]:
        if record.status(info) not in UNFINISHED or info.name != config.output.name:
            continue
        if info.retried_as_trial or (rundir.sweep_of(path) and record.status(info) in CUT_OFF):  # with its sweep
            continue
        try:
            text = rundir.read_text(path / rundir.CONFIG, config_lib.MAX_CONFIG_BYTES)
            saved = config_lib.parse_yaml(text, str(path))
        except (OSError, RunDirError, ConfigError):
            continue
        if _comparable(saved) == wanted:
            candidates.append((info.started_at or "", path.name, path))
    return max(candidates)[2] if candidates else None


def _comparable(resolved):
    """A resolved config without what a resume may change (RESUMABLE keys, tracking), to compare two runs'."""
    if not isinstance(resolved, dict):
        return resolved
    resolved = copy.deepcopy({k: v for k, v in resolved.items() if k != "tracking"})
    for key in RESUMABLE:
        parent, _, name = key.rpartition(".")
        with contextlib.suppress(overrides.PathError):
            section = overrides.get_path(resolved, parent)
            if isinstance(section, dict):
                section.pop(name, None)
    return resolved
