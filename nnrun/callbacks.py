"""nnrun's own Keras callbacks: record each epoch, stop on NaN, checkpoint atomically."""

import csv
import io
import math
import os

from nnrun import rundir
from nnrun.backend import keras as _keras

keras = _keras()


class EpochRecorder(keras.callbacks.Callback):
    """Writes history.csv and run.json after every epoch and keeps the weights
    of the last finished epoch, so an interrupted run can still save them.

    Args:
        run_dir: the run directory.
    """

    def __init__(self, run_dir):
        super().__init__()
        self.run_dir = run_dir
        self.rows = []
        self.weights = None

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row.setdefault("learning_rate", float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
        self.rows.append(row)
        rundir.write_text(self.run_dir / rundir.HISTORY, _csv(self.rows))
        if math.isfinite(row.get("loss", 0.0)):
            self.weights = self.model.get_weights()
            rundir.update_run(self.run_dir, epochs_completed=epoch + 1)

    @property
    def history(self):
        """The epochs so far as Keras's `History.history`: name -> list of values."""
        keys = [k for k in self.rows[0] if k != "epoch"] if self.rows else []
        return {k: [r.get(k, math.nan) for r in self.rows] for k in keys}


class StopOnNaN(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, and says where."""

    # It only reads the logs and sets a flag, so Keras may keep dispatching
    # batch callbacks asynchronously, as it does for a plain `fit`.
    async_safe = True

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.diverged_at = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_at = (float(loss), self.epoch + 1, batch + 1)
            self.model.stop_training = True


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """Keras's `ModelCheckpoint`, writing to a temporary file renamed into place."""

    def __init__(self, filepath, **kwargs):
        self.final_path = filepath
        head, tail = os.path.split(filepath)
        super().__init__(os.path.join(head, f".{tail[:-len('.keras')]}.tmp.keras"), **kwargs)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        self._publish()

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self._publish()

    def _publish(self):
        if os.path.exists(self.filepath):
            os.replace(self.filepath, self.final_path)


def _csv(rows):
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
