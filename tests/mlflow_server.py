"""A real MLflow tracking server (`mlflow server`, from the mlflow extra) on a loopback port, for the tests.

It keeps its runs (SQLite) and artifacts in a folder of its own, answers on http://127.0.0.1:PORT, and
is read back through its REST API with plain HTTP: what any client of the server sees.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

# `mlflow server` imports MLflow's server twice (itself, then uvicorn's worker): seconds on a busy machine.
START_TIMEOUT = 90


class MlflowServer:
    """`mlflow server` in a process group of its own; `stop` ends the whole group (uvicorn's worker too).

    Args:
        folder: where its SQLite store, artifacts and log go.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "server.log"
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.artifacts = folder / "artifacts"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "mlflow", "server"),
                    *("--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"),
                    *("--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"),
                    *("--artifacts-destination", str(self.artifacts)),
                ],
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches uvicorn's worker too
                # No job runner: it starts a dozen huey consumers that the tracking API does not use.
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            )

    def wait_until_up(self) -> None:
        """Returns once /health answers OK; fails with the server's log if it exits or takes too long."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"mlflow server exited ({self.process.returncode}):\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"mlflow server did not answer /health in {START_TIMEOUT} s:\n{self.tail()}")

    def freeze(self) -> None:
        """Stops the server's processes where they are (SIGSTOP): it still takes connections, and never answers."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def stop(self) -> None:
        """Ends the server's whole process group: SIGTERM, then SIGKILL what is left after 10 s."""
        for signum in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, signum)
                os.killpg(self.process.pid, signal.SIGCONT)  # a frozen one acts on it
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 10
            while _group_alive(self.process.pid) and time.monotonic() < deadline:
                self.process.poll()  # reaps the leader, so that its group can go
                time.sleep(0.05)
        self.process.wait(10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def get(self, endpoint: str, **query: str) -> dict:
        """GET /api/2.0/mlflow/ENDPOINT?QUERY, as JSON."""
        url = f"{self.uri}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            return json.load(answer)


def _free_port() -> int:
    """A loopback port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
