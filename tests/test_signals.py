"""nnrun.signals: a stop signal stops nnrun the same way from its first line to its exit.

The decisions are tested in this process, each signal raised at a chosen point
(`signal.raise_signal` runs the handler before it returns); one child process
shows the start of a real process, as a script's background job begins.
"""

import gc
import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from nnrun import signals
from nnrun.errors import Interrupted
from nnrun.reporter import Reporter


@pytest.fixture
def handlers():
    """The stop signals' handlers, put back after the test (at_start and at_exit change them for the process)."""
    saved, hook = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}, sys.unraisablehook
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)
    sys.unraisablehook = hook


def test_a_stop_signal_raises_from_the_start_even_ctrl_c_that_a_script_made_ignored(handlers):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # how a script's `nnrun train ... &` starts
    signals.at_start()
    with pytest.raises(Interrupted) as caught:
        signal.raise_signal(signal.SIGINT)
    assert caught.value.plain and caught.value.exit_code == 130, "nnrun says 'interrupted', as for any Ctrl-C"
    signal.raise_signal(signal.SIGTERM)  # a second signal, while the first unwinds: ignored


def test_a_stop_signal_that_lands_in_a_gc_callback_still_stops_nnrun(handlers):
    # Python swallows what a gc callback raises; JAX runs one after each collection while Keras imports, and a
    # Ctrl-C handled there was lost: the run went on to the end, exit 0.
    signals.at_start()

    def during_collection(phase, info):
        if phase == "start":
            signal.raise_signal(signal.SIGTERM)  # its handler raises at this callback's next bytecode

    gc.callbacks.append(during_collection)
    try:
        with pytest.raises(Interrupted) as caught:
            gc.collect()
            time.sleep(5)  # the signal, sent again, interrupts this
    finally:
        gc.callbacks.remove(during_collection)
    assert caught.value.exit_code == 143


def test_a_process_that_starts_many_commands_wraps_the_unraisable_hook_once(handlers):
    signals.at_start()
    hook = sys.unraisablehook
    for _ in range(3):
        signals.at_start()  # CliRunner-style callers start a command per call: the hooks must not nest
    assert sys.unraisablehook is hook


def test_sigterm_before_a_run_stops_nnrun_with_143_as_during_one(handlers):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signals.at_start()
    with pytest.raises(Interrupted) as caught:
        signal.raise_signal(signal.SIGTERM)
    assert (caught.value.name, caught.value.exit_code, caught.value.plain) == ("SIGTERM", 143, False)


def test_nohup_keeps_hangups_ignored_throughout_while_other_signals_stop_a_run(handlers):
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as `nohup` starts a command
    signals.at_start()
    signal.raise_signal(signal.SIGHUP)  # nothing: not before a run...
    with signals.stopping() as stop:
        signal.raise_signal(signal.SIGHUP)  # ...nor during one
        assert stop.signum is None
        signal.raise_signal(signal.SIGTERM)
        assert stop.signum == signal.SIGTERM, "noted, for the next safe point"
        with pytest.raises(Interrupted):
            stop.check()
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN


def test_a_signal_after_the_last_safe_point_is_answered_by_the_finished_work(handlers):
    signals.at_start()
    with signals.stopping():
        signal.raise_signal(signal.SIGTERM)  # the run's last file is being written: it completes
    assert signals.unanswered() == signal.SIGTERM, "what comes next (an export) can still stop for it"
    signal.raise_signal(signal.SIGINT)  # the printing of a completed run is not cut short
    signals.at_exit()
    signal.raise_signal(signal.SIGTERM)  # nor Python's teardown: the exit code is decided
    assert all(signal.getsignal(s) == signal.SIG_IGN for s in signals.STOP_SIGNALS)


def test_a_signal_as_the_run_completed_stops_its_exports_and_says_how_to_make_them(handlers, tmp_path, capsys):
    from nnrun.cli import training
    from nnrun.inference import export

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"test": {"loss": 0.5}}))
    config = SimpleNamespace(output=SimpleNamespace(export=["onnx"]))
    signals.at_start()
    with signals.stopping():
        signal.raise_signal(signal.SIGTERM)
    exported = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export, "export", lambda *args: exported.append(args))
        with pytest.raises(Interrupted) as caught:
            training._completed(config, run, Reporter())
    assert (caught.value.exit_code, caught.value.run_dir, exported) == (143, run, [])
    assert f"no export made; make them with: nnrun export {run} --format onnx" in capsys.readouterr().err


def test_a_background_job_of_a_script_stops_on_ctrl_c_from_its_first_seconds_and_keeps_nohup(tmp_path):
    # `nohup nnrun train CONFIG &` in a script: SIGINT and SIGHUP ignored from the start. The config
    # is "loading" for 30 s, so both signals land before anything trains (nor is TensorFlow loaded).
    config, err = tmp_path / "c.yaml", tmp_path / "err.txt"
    config.write_text("{}")
    code = (
        "import sys, time\n"
        "from nnrun.config import loading\n"
        "def load(*args):\n"
        "    print('loading', file=sys.stderr, flush=True)\n"
        "    time.sleep(30)\n"
        "loading.load = load\n"
        "from nnrun.cli.main import main\n"
        "main()\n"
    )
    script = f'nohup "$@" </dev/null 2>"{err}" & echo $!; wait $!'
    shell = subprocess.Popen(
        ["sh", "-c", script, "sh", sys.executable, "-c", code, "train", str(config)], stdout=subprocess.PIPE, text=True
    )
    pid = int(shell.stdout.readline())
    try:
        deadline = time.monotonic() + 30
        while "loading" not in (err.read_text() if err.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "loading" in err.read_text(), err.read_text()
        os.kill(pid, signal.SIGHUP)
        time.sleep(0.3)
        assert shell.poll() is None, f"a hangup stopped a nohup job: {err.read_text()}"
        os.kill(pid, signal.SIGINT)  # as the script's Ctrl-C trap forwards it
        assert shell.wait(timeout=10) == 130, err.read_text()
    finally:
        if shell.poll() is None:
            os.kill(pid, signal.SIGKILL)
            shell.wait()
        shell.stdout.close()
    assert err.read_text().strip().splitlines()[-1] == "error: interrupted"
