"""Training in a real process, to kill and signal it as CI runners and schedulers do."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# Keeps the loop going long enough to be killed; tests pass training.epochs to resume.
FOREVER = "training.epochs=100000"


def start(config, *args, wrapper=None):
    """Starts `nnrun train CONFIG --quiet ARGS` in a new process.

    Args:
        config: the config file.
        args: more command-line arguments.
        wrapper: Python code run first in the process (to patch nnrun in a
            test-only way), before the command line is parsed.
    """
    code = f"{wrapper or ''}\nfrom nnrun.cli.main import main\nmain()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "train", str(config), "--quiet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_for(proc, check, what, timeout=120):
    """Waits until `check()` returns something true, and returns it; fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}:\n{err[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}")


def run_dir(runs):
    """The one run directory in a runs folder, once it exists."""
    found = [p for p in Path(runs).glob("*-*") if p.is_dir() and not p.is_symlink()]
    return found[0] if len(found) == 1 else None


def backed_up(runs, epochs=1):
    """The run directory once its backup holds at least `epochs` epochs."""
    import json

    run = run_dir(runs)
    metadata = run and run / "backup" / "training_metadata.json"
    try:
        return run if metadata and json.loads(metadata.read_text())["epoch"] >= epochs else None
    except (OSError, ValueError):
        return None


def stop(proc, signum=signal.SIGKILL, timeout=60):
    """Sends a signal and waits for the process to end; returns (exit code, stderr)."""
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err
