"""The run's backup/ folder: the model and its optimizer while training, for `nnrun resume`.

Keras's `BackupAndRestore` writes it, in its own layout: `latest.weights.h5`
(the weights of the model and of its optimizer: moments, step count, learning
rate) with `training_metadata.json` (the epoch), and its double checkpoint,
the previous pair as `*.bkp`. nnrun writes each file to a temporary name and
renames it (the weights made in memory first: `hdf5`), and records the weights'
sha256 in the metadata, so a pair that a kill or a full disk cut in two is
recognised and the previous pair is used instead. The
metadata also holds the random seed generators' states (dropout masks,
augmentation), which Keras leaves out of the weights.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun import atomic
from nnrun.errors import RunDirError, one_line
from nnrun.rundir import files as rundir
from nnrun.training import hdf5, keras_classes

if TYPE_CHECKING:  # Keras ships no types; to mypy its classes are Any
    import keras


def __getattr__(name: str) -> Any:
    """`Backup`, a Keras callback made on first use: importing this module imports no Keras."""
    return _classes.get(name)


def _make(keras: Any) -> tuple[type, ...]:
    class Backup(keras.callbacks.BackupAndRestore):
        """Keras's `BackupAndRestore` with atomic, verifiable writes.

        Saves at every epoch end, and every `every_steps` batches when set. Never
        saves a state whose loss is NaN or infinite. Restoring is `restore`'s job
        (before `fit`, so the run knows where it resumes), and removing the folder
        is the run's once it has completed, so neither happens here.

        Args:
            backup_dir: the run's backup folder.
            every_steps: also save every this many batches (None: epoch ends only).
        """

        def __init__(
            self,
            backup_dir: str | os.PathLike[str],
            every_steps: int | None = None,
            stage: Callable[[], Mapping[str, Any]] | None = None,
        ) -> None:
            self.stage = stage or (lambda: {})
            super().__init__(
                str(backup_dir), save_freq=every_steps or "epoch", double_checkpoint=True, delete_checkpoint=False
            )
            self.every_steps = every_steps
            # Saving only at epoch ends leaves the batch hook idle, so Keras may
            # keep dispatching batch callbacks asynchronously.
            self.async_safe = every_steps is None

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            pass

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            pass

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            # Keras only sets this at epoch ends: a resumed run's first step
            # backups would otherwise say epoch 0.
            self._current_epoch = epoch

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if _finite(logs):
                super().on_epoch_end(epoch, logs)
            else:
                self._current_epoch = epoch + 1

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if self.every_steps and _finite(logs):
                super().on_train_batch_end(batch, logs)

        def _save_model(self):
            atomic.make_folder(self.backup_dir)
            for latest, previous in (
                (self._weights_path, self._prev_weights_path),
                (self._training_metadata_path, self._prev_training_metadata_path),
            ):
                if os.path.exists(latest):
                    atomic.copy(latest, previous)
            with atomic.atomic(self._weights_path) as tmp:
                hdf5.save_weights(self.model, tmp)  # never HDF5 on the disk: a full one crashes it
            metadata = {
                "epoch": self._current_epoch,
                "batch": self._last_batch_seen,
                "iterations": int(self.model.optimizer.iterations.numpy()),
                "weights_sha256": atomic.sha256_file(self._weights_path),
                "seed_states": [v.numpy().tolist() for v in _seed_states(self.model)],
                **self.stage(),
            }
            atomic.write_json(self._training_metadata_path, metadata)

    return (Backup,)


_classes = keras_classes.Factory(__name__, ("Backup",), _make)


@dataclass
class Restored:
    """Where a restored backup leaves training."""

    epoch: int  # epochs completed: training continues with the next one
    batch: int  # the last batch of that epoch seen, for a backup taken mid-epoch (else 0)
    iterations: int  # the optimizer's step count
    previous: bool  # the latest backup was unusable and the one before it was used
    problem: str | None  # why the latest one was unusable


def restore(
    model: keras.Model,
    backup_dir: str | os.PathLike[str],
    arrange: Callable[[dict[str, Any]], None] | None = None,
) -> Restored | None:
    """Loads the newest usable backup into a compiled model (weights and optimizer state).

    Args:
        model: the model, built and compiled as when the backup was made.
        backup_dir: the run's backup folder.
        arrange: called with a backup's metadata before it is loaded, to make
            the model as it was then (fine-tuning unfreezes layers, which
            changes the optimizer's state).

    Returns:
        A `Restored`, or None when there is no backup (no epoch had finished).
    """
    backup_dir = Path(backup_dir)
    weights, metadata = backup_dir / "latest.weights.h5", backup_dir / "training_metadata.json"
    previous = [Path(f"{weights}.bkp"), Path(f"{metadata}.bkp")]
    if not any(p.exists() for p in (weights, metadata, *previous)):
        return None
    try:
        return Restored(**_load(model, weights, metadata, arrange), previous=False, problem=None)
    except _UNUSABLE as e:
        problem = f"{weights.name}: {one_line(e)}"
    if not all(p.exists() for p in previous):
        raise RunDirError(
            f"'{backup_dir}': the backup is unusable ({problem}) and there is no previous one; "
            "remove the folder to start this run again from epoch 1"
        )
    # Keras loads only `*.weights.h5` names: the previous pair is tried under one,
    # and becomes the latest only once it has loaded, so a failed try destroys nothing.
    trial = backup_dir / f".previous{atomic.TMP_MARK}weights.h5"
    try:
        shutil.copyfile(previous[0], trial)
        found = _load(model, trial, previous[1], arrange)
    except _UNUSABLE as e:
        raise RunDirError(
            f"'{backup_dir}': no usable backup ({problem}; the previous one: {one_line(e)}); "
            "remove the folder to start this run again from epoch 1"
        ) from None
    finally:
        trial.unlink(missing_ok=True)
    for source, target in zip(previous, (weights, metadata), strict=True):
        atomic.copy(source, target)
    return Restored(**found, previous=True, problem=problem)


# Whatever a damaged or foreign backup makes Keras, h5py or TensorFlow raise.
_UNUSABLE = (Exception, UserWarning)


def remove(backup_dir: str | os.PathLike[str]) -> None:
    """Removes the backup folder (a completed run needs it no more)."""
    shutil.rmtree(backup_dir, ignore_errors=True)


def _load(model, weights, metadata, arrange):
    if weights.is_symlink():  # the run's own backup only (its metadata is read by rundir's rules)
        raise ValueError("a symbolic link; a run directory holds its own files")
    info = json.loads(rundir.read_text(metadata))
    if not isinstance(info, dict):
        raise ValueError(f"{metadata.name} is not a JSON object")
    epoch, batch = info["epoch"], info.get("batch", 0)
    if not (isinstance(epoch, int) and isinstance(batch, int) and epoch >= 0 and batch >= 0):
        raise ValueError(f"epoch {epoch!r} and batch {batch!r} in {metadata.name} are not counts")
    if info.get("weights_sha256") != atomic.sha256_file(weights):
        raise ValueError(f"does not match {metadata.name} (a write was cut short)")
    if arrange:
        arrange(info)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    seeds, saved = _seed_states(model), info.get("seed_states", [])
    if not isinstance(saved, list) or len(saved) != len(seeds):
        raise ValueError(f"{metadata.name}: seed_states does not fit the model's {len(seeds)} random seed generators")
    for state in saved:
        if not (isinstance(state, list) and all(isinstance(v, int) and 0 <= v < 2**63 for v in state)):
            raise ValueError(f"{metadata.name}: seed_states holds {str(state)[:40]}, not counts")
    with warnings.catch_warnings():
        # Keras loads what matches and only warns about the rest.
        warnings.filterwarnings("error", message=".*[Ss]kipping variable loading.*")
        model.load_weights(weights)
    for variable, value in zip(seeds, saved, strict=True):
        variable.assign(value)
    return {"epoch": epoch, "batch": batch, "iterations": int(model.optimizer.iterations.numpy())}


def _seed_states(model):
    """The states of the model's random seed generators (Dropout, Random* layers).

    Keras keeps them out of the weights file; restored with it, a resumed run
    draws the same dropout masks and augmentations as one never stopped.
    """
    return [v for v in model.variables if v.name == "seed_generator_state"]


def _finite(logs):
    import math

    loss = (logs or {}).get("loss")
    return loss is None or math.isfinite(float(loss))
