"""`nnrun sweep --jobs N`: worker processes that run trials on the sweep's shared study.

The sweep's own process supervises them: it reports each trial as it ends,
passes a stop signal on (a second one kills them), and stops them all when one
fails. A worker dies with its supervisor (`nnrun.sweep.worker_start`), and
shares its claim on the sweep directory while it lives: another `nnrun sweep`
of the directory is refused until the last of them has ended. sweep.json
records the workers, so that the refusal names them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun import signals
from nnrun.errors import ConfigError, Interrupted, NnrunError, RunFailed, one_line
from nnrun.reporter import Reporter
from nnrun.rundir import liveness
from nnrun.sweep import report as sweep_report
from nnrun.sweep import storage as storage_lib
from nnrun.sweep.storage import ENV, Storage, of_sweep
from nnrun.sweep.study import STUDY, WORKERS, load, open_study, write_state
from nnrun.sweep.trial import work

if TYPE_CHECKING:  # Optuna is imported where used; here for annotations only
    import optuna

    from nnrun.config.schema import Config
    from nnrun.signals import Stop

POLL_S = 1.0


def supervise(
    sweep_dir: Path,
    study: optuna.Study,
    config: Config,
    report: Reporter,
    jobs: int,
    stop: Stop,
    deadline: float | None,
    claim: int | None = None,
    storage: Storage | None = None,
) -> None:
    """Starts `jobs` worker processes on the shared study; reports each trial as it ends.

    Args:
        sweep_dir: the sweep directory.
        study: its Optuna study.
        config: the sweep's `Config`.
        report: the sweep's `Reporter`.
        jobs: how many workers.
        stop: the `signals.Stop` passed on to them.
        deadline: a `time.time()` after which no trial starts; None: no time budget.
        claim: the file descriptor of this process's claim on the sweep directory, which the workers share.
        storage: where the study is; a shared study's URL reaches the workers in their environment, never
            on their command line, which other users of the machine can read.
    """
    workers_dir = sweep_dir / WORKERS
    workers_dir.mkdir(exist_ok=True)
    env = {**os.environ, ENV: storage.url} if storage is not None and storage.url else None
    workers, logs = [], []
    try:
        for k in range(jobs):
            # O_NOFOLLOW: a log planted as a link would have us append to any file.
            fd = os.open(workers_dir / f"worker-{k}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            logs.append(os.fdopen(fd, "wb"))
            args = [str(sweep_dir), str(k), str(deadline or 0), str(os.getpid())]
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "nnrun.sweep.worker_start", *args],
                    stdin=subprocess.DEVNULL,
                    stdout=logs[-1],
                    stderr=subprocess.STDOUT,
                    pass_fds=() if claim is None else (claim,),
                    env=env,
                )
            )
            write_state(sweep_dir, workers=[liveness.of(w.pid) for w in workers])
        shown = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        cause, sent = None, None  # the worker that failed first; the signal sent to the others
        while True:
            running = [w for w in workers if w.poll() is None]
            for t in study.get_trials(deepcopy=False):
                if t.state.is_finished() and t.number not in shown and not t.user_attrs.get("skipped"):
                    shown.add(t.number)
                    sweep_report.tell(report, sweep_dir, config, study, t.number)
            if cause is None and not stop.signum:
                cause = next((k for k, w in enumerate(workers) if w.returncode not in (None, 0)), None)
            if not running:
                break
            # Each worker stops its trial as nnrun train stops a run; a second signal stops them at once.
            wanted = signal.SIGKILL if stop.ignored else signal.SIGINT if stop.signum or cause is not None else None
            if wanted is not None and wanted != sent:
                sent = wanted
                for w in running:
                    with contextlib.suppress(ProcessLookupError):
                        w.send_signal(wanted)
            time.sleep(POLL_S)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
        for log in logs:
            log.close()
    stop.check()
    if cause is not None:
        log_file = workers_dir / f"worker-{cause}.log"
        last = log_file.read_text(errors="replace").strip().splitlines()
        code = workers[cause].returncode
        why = last[-1] if last else f"exit {code}"
        raise (ConfigError if code == 2 else RunFailed)(f"sweep worker {cause} stopped: {why} (log: {log_file})")


def worker(sweep_dir: str, k: int, deadline: float) -> int:
    """A worker process of `--jobs` (`nnrun.sweep.worker_start` starts it): runs trials on the shared study
    until the budget is spent.

    Args:
        sweep_dir: the sweep directory.
        k: the worker's number (its sampler is seeded apart).
        deadline: a `time.time()` after which no trial starts; 0: no time budget.

    Returns:
        The process's exit code.
    """
    from nnrun import backend

    try:
        config = load(Path(sweep_dir), ())
        assert config.sweep is not None  # load() refuses a config without one
        backend.use(config.backend)
        storage = of_sweep(Path(sweep_dir), None, config.sweep.storage)
        database = storage_lib.opened(storage, Path(sweep_dir) / STUDY)
        with database as opened, signals.stopping() as stop:
            study = open_study(Path(sweep_dir), config, worker=k, storage=storage, database=opened)
            work(
                Path(sweep_dir),
                config,
                study,
                Reporter(quiet=True),
                stop,
                deadline=deadline or None,
                reports=False,
                shared=storage.shared,
            )
    except KeyboardInterrupt as e:
        return e.exit_code if isinstance(e, Interrupted) else 128 + signal.SIGINT
    except NnrunError as e:
        print(f"error: {one_line(e, 500)}", file=sys.stderr)
        return e.exit_code
    return 0


def still_running(state: dict[str, Any]) -> tuple[int | None, list[int]]:
    """The processes of a sweep that sweep.json records and that still run: its supervisor and its workers.

    Args:
        state: sweep.json's contents.

    Returns:
        `(supervisor, workers)`: the supervisor's pid (None when it is gone), and the pids of the live workers.
    """
    recorded = state.get("workers")
    workers = [w for w in recorded if isinstance(w, dict)] if isinstance(recorded, list) else []
    return state["pid"] if _running(state) else None, [w["pid"] for w in workers if _running(w)]


def _running(process):
    """Whether a process as sweep.json records it (`liveness.process`) still runs."""
    pid = process.get("pid")
    return isinstance(pid, int) and liveness.still_running(pid, process.get("host"), process.get("process_started"))
