"""`nnrun sweep --jobs N`: worker processes that run trials on the sweep's shared study.

The sweep's own process supervises them: it reports each trial as it ends,
passes a stop signal on (a second one kills them), and stops them all when one
fails. A worker dies with its supervisor.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from nnrun import signals
from nnrun.errors import ConfigError, Interrupted, NnrunError, RunFailed, one_line
from nnrun.reporter import Reporter
from nnrun.sweep import report as sweep_report
from nnrun.sweep.study import WORKERS, load, open_study
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
) -> None:
    """Starts `jobs` worker processes on the shared study; reports each trial as it ends."""
    workers_dir = sweep_dir / WORKERS
    workers_dir.mkdir(exist_ok=True)
    workers, logs = [], []
    try:
        for k in range(jobs):
            # O_NOFOLLOW: a log planted as a link would have us append to any file.
            fd = os.open(workers_dir / f"worker-{k}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            logs.append(os.fdopen(fd, "wb"))
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "nnrun.sweep.workers", str(sweep_dir), str(k), str(deadline or 0)],
                    stdin=subprocess.DEVNULL,
                    stdout=logs[-1],
                    stderr=subprocess.STDOUT,
                )
            )
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


def _worker(sweep_dir, k, deadline):
    """A worker process of `--jobs`: runs trials on the shared study until the budget is spent."""
    from nnrun import backend

    _die_with_parent()
    sweep_dir = Path(sweep_dir)
    try:
        config = load(sweep_dir, ())
        backend.use(config.backend)
        study = open_study(sweep_dir, config, worker=k)
        with signals.stopping() as stop:
            work(sweep_dir, config, study, Reporter(quiet=True), stop, deadline=deadline or None, reports=False)
    except KeyboardInterrupt as e:
        return e.exit_code if isinstance(e, Interrupted) else 128 + signal.SIGINT
    except NnrunError as e:
        print(f"error: {one_line(e, 500)}", file=sys.stderr)
        return e.exit_code
    return 0


def _die_with_parent() -> None:
    """Asks Linux to send this worker SIGTERM if its supervisor dies (a kill -9): it stops its trial."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(_worker(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
