"""How a run ends (completed, interrupted or failed), recorded once.

`Outcome` is the block a run trains in. Whatever ends it, run.json's status is
written once, with the reason; a stop or a divergence first keeps the last
finished epoch's model; and what leaves the block carries the run directory
(`nnrun` prints its path) and the exit code: `Interrupted` (128 + the signal)
says how to continue, a `DataError` names an image that cannot be read (2),
a `WriteFailed` (a full disk, 1) names its file, nnrun's own errors keep
their kind and exit code, and anything else is a `RunFailed` (1) with its
reason. If run.json itself cannot be written, the error says so too.
"""

from __future__ import annotations

import contextlib
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from nnrun import atomic
from nnrun.errors import Diverged, Interrupted, NnrunError, RunFailed, WriteFailed
from nnrun.rundir import files as rundir
from nnrun.rundir import runinfo
from nnrun.rundir.status import Status
from nnrun.training import reasons, results

if TYPE_CHECKING:  # Keras ships no types; to mypy its classes are Any
    import keras

    from nnrun.config.schema import Config
    from nnrun.reporter import Reporter
    from nnrun.training.callbacks import EpochRecorder, StopOnSignal
    from nnrun.training.distribution import Engine


@dataclass
class LastEpoch:
    """The last finished epoch of a run, which a stop or a divergence keeps."""

    model: keras.Model  # the model being trained
    recorder: EpochRecorder  # holds the last finished epoch's weights and history
    stopper: StopOnSignal  # knows whether several processes stopped together
    engine: Engine
    config: Config

    def keep(self, run_dir: Path) -> str:
        """Saves the last finished epoch's model and its learning curves; says what was kept.

        Never raises: it runs on the way out of a run that has already failed or
        been stopped, whose status must still be recorded.

        Args:
            run_dir: the run directory.

        Returns:
            '; the model of epoch N is saved in RUN_DIR' (or why it could not be), or '' with no epoch finished.
        """
        self.engine.together = self.engine.together or self.stopper.agreed
        if self.recorder.weights is None:
            return ""
        try:
            # Past an epoch, several processes only stop together, so all of them get here.
            # The copy `local` made once fit returned, if it did: a second would check the weights with the
            # other processes again, which a stop after fit does not reach together.
            model = self.engine.local(self.engine.localized or self.model, self.config)
            model.set_weights(self.recorder.weights)
            results.save_model(model, run_dir, self.config.output.save_h5)
            results.learning_curves(self.recorder.history, run_dir, self.config.output.name or "")
        except Exception as e:
            why = str(e) if isinstance(e, NnrunError) else f"{type(e).__name__}: {e}"  # a full disk names its file
            return f"; the model of epoch {self.recorder.weights_epoch} could not be saved ({why})"
        return f"; the model of epoch {self.recorder.weights_epoch} is saved in {run_dir}"


class Outcome:
    """The block a run trains in, which records how it ended in run.json, once.

    Args:
        run_dir: the run directory.
        started: when this attempt started, a `time.time()` value.
        report: the run's `Reporter`.
        last: the `LastEpoch`, kept on a stop or a divergence.
        writer: whether this process writes the run directory (an interruption names it only there).
        streamed: whether the training data is streamed from files.
    """

    def __init__(
        self, run_dir: Path, started: float, report: Reporter, last: LastEpoch, writer: bool, streamed: bool
    ) -> None:
        self.run_dir, self.started, self.report, self.last = run_dir, started, report, last
        self.writer, self.streamed = writer, streamed

    def __enter__(self) -> Outcome:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if error is None:
            unrecorded = self._finish(Status.COMPLETED)
            if unrecorded:
                raise unrecorded.advised(
                    "the run's model and metrics are saved, but its run.json could not record that it completed",
                    self.run_dir,
                )
            return
        if not isinstance(error, (KeyboardInterrupt, Exception)):
            return  # not a run's ending (SystemExit, a test's failure): it passes through untouched
        if isinstance(error, KeyboardInterrupt):
            raise self._interrupted(error) from error
        raise self._failed(error) from error

    def _interrupted(self, error: KeyboardInterrupt) -> Interrupted:
        # Further stop signals are ignored from here on (signals.stopping).
        signum, plain = (error.signum, error.plain) if isinstance(error, Interrupted) else (signal.SIGINT, True)
        stopped = Interrupted(signum, run_dir=self.run_dir if self.writer else None, plain=plain)
        why = f"stopped by {stopped.name}" if stopped.name != "SIGINT" else "interrupted (Ctrl-C)"
        kept = self.last.keep(self.run_dir)
        # A signal in the middle of an epoch's end may have cut its records short:
        # the run ends at the last epoch whose model is kept.
        recorder = self.last.recorder
        done = recorder.weights_epoch if recorder.weights is not None else 0
        if len(recorder.rows) > done:
            # A full disk leaves the longer history, which a resume cuts to its backup's epochs anyway.
            with contextlib.suppress(WriteFailed):
                atomic.write_text(self.run_dir / rundir.HISTORY, rundir.history_text(recorder.rows[:done]))
        unrecorded = self._finish(Status.INTERRUPTED, error=why, signal=stopped.name, epochs_completed=done)
        if unrecorded:
            self.report.say(_not_recorded(unrecorded, Status.INTERRUPTED, why))
        self.report.say(
            f"{why} after {done} epoch{'s' * (done != 1)}{kept or '; no epoch finished'}; "
            f"continue with: nnrun resume {self.run_dir}"
        )
        return stopped

    def _failed(self, error: Exception) -> NnrunError:
        failed, recorded = self._ending(error)
        unrecorded = self._finish(Status.FAILED, **recorded)
        if unrecorded:  # said in the same line: run.json still says running, which reads as crashed
            failed = failed.within(self.run_dir)
            failed.args = (f"{failed} ({_not_recorded(unrecorded, Status.FAILED)})",)
        return failed

    def _ending(self, error: Exception) -> tuple[NnrunError, dict[str, str]]:
        """The error that leaves the run, and what run.json records of it."""
        if isinstance(error, Diverged):
            failed: NnrunError = Diverged(f"{error}{self.last.keep(self.run_dir)}", run_dir=self.run_dir)
        elif isinstance(error, WriteFailed):  # the file is named; there is nothing more to tell in run.json
            again = f"nnrun resume {self.run_dir} continues it"
            return error.advised(again, self.run_dir), {"error": error.reason}
        elif isinstance(error, NnrunError):
            failed = error.within(self.run_dir)
        elif (unreadable := self._unreadable_image(error)) is not None:
            failed = unreadable
        else:
            reason = reasons.reason(error, self.streamed)
            details = f"details in {self.run_dir / rundir.RUN}; nnrun resume {self.run_dir} continues it"
            return RunFailed(f"{reason} ({details})", run_dir=self.run_dir), {
                "error": reason,
                "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
            }
        return failed, {"error": str(failed)}

    def _unreadable_image(self, error: Exception) -> NnrunError | None:
        """tf.data could not decode a file, and does not say which: the file named (exit 2)."""
        data = self.last.config.data
        if data.source != "images" or not reasons.is_backend_error(error, "invalid_argument"):
            return None
        from nnrun.data import image_folder

        try:
            image_folder.verify(data)
        except NnrunError as unreadable:
            return unreadable.within(self.run_dir)
        return None

    def _finish(self, status: Status, **fields: Any) -> WriteFailed | None:
        """Records how the run ended; returns why it could not be (a full disk), or None."""
        try:
            runinfo.finish(self.run_dir, self.started, status, **fields)
        except WriteFailed as e:
            return e
        return None


def _not_recorded(unrecorded: WriteFailed, status: Status, why: str = "") -> str:
    """Says that run.json could not record how the run ended, and why."""
    said = f"could not record '{status}' in {unrecorded.path}: {unrecorded.error.strerror or unrecorded.error}"
    return f"error: {said}; the run {status}: {why}" if why else said
