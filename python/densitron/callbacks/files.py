"""Callbacks that write files, with Keras's names, arguments and rules: ModelCheckpoint,
CSVLogger and BackupAndRestore."""

import collections.abc
import csv
import json
import os
import shutil
import warnings

import numpy as np

from densitron._checks import path_arg
from densitron.callbacks.callback import Callback
from densitron.callbacks.training import _Monitor
from densitron.utils.io_utils import print_msg

_WEIGHTS_SUFFIXES = (".weights.h5", ".weights.npz")


class _SaveFreq:
    """The `save_freq` rule of ModelCheckpoint and BackupAndRestore: "epoch", or a save every
    `save_freq` batches (counted across epochs)."""

    def _set_save_freq(self, save_freq, message):
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq < 1):
            raise ValueError(f"{message} Received: save_freq={save_freq!r}")
        self.save_freq = save_freq
        self._batches_since_save = 0

    # Per-batch saving needs the per-batch hook; saving per epoch does not.
    def _wants_batches(self):
        return self.save_freq != "epoch"

    def _batch_save_due(self):
        """Counts a finished batch (with an integer save_freq); whether a save is due."""
        self._batches_since_save += 1
        if self._batches_since_save < self.save_freq:
            return False
        self._batches_since_save = 0
        return True


class ModelCheckpoint(_SaveFreq, _Monitor):
    """Saves the model (or its weights) at the end of every epoch or every `save_freq`
    batches; with `save_best_only`, only when `monitor` improved. `filepath` may hold
    `str.format` fields: `{epoch}` (1-based), `{batch}` with an integer `save_freq`, and any
    log, e.g. "ckpt-{epoch:02d}-{val_loss:.3f}.keras". Files are replaced atomically."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__(monitor, mode, 0, "ModelCheckpoint")
        self.filepath = path_arg("filepath", filepath)
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self._set_save_freq(save_freq, "Unrecognized save_freq: expected 'epoch' or a "
                                       "positive integer (batches).")
        if self.save_weights_only and not self.filepath.endswith(_WEIGHTS_SUFFIXES):
            raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the "
                             "filepath must end in `.weights.h5` (Keras weights format) or "
                             f"`.weights.npz`. Received: filepath={self.filepath}")
        if not self.save_weights_only and not self.filepath.endswith((".keras", ".h5")):
            raise ValueError("The filepath provided must end in `.keras` (Keras model format). "
                             f"Received: filepath={self.filepath}")
        self.best = initial_value_threshold
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq != "epoch" and self._batch_save_due():
            self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.mode == "auto":  # (Keras's decides here, saving the best only or not)
            self._resolve_mode()
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch, batch, logs):
        fields = dict(logs or {})
        fields["epoch"] = epoch + 1
        if batch is not None:
            fields.setdefault("batch", batch + 1)
        try:
            return self.filepath.format(**fields)
        except (KeyError, IndexError) as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". '
                           f"Reason: {e!r}. Received: logs with keys {sorted(logs or {})}"
                           ) from None

    def _save(self, epoch, batch, logs):
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            current = (logs or {}).get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available.",
                              stacklevel=3)
            elif not self._better(current, self.best):
                if self.verbose > 0:
                    best = "None" if self.best is None else f"{self.best:.5f}"
                    print_msg(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
                return
            else:
                if self.verbose > 0:
                    best = "None" if self.best is None else f"{self.best:.5f}"
                    print_msg(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                              f"{current:.5f}, saving model to {path}")
                self.best = current
        elif self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: saving model to {path}")
        if os.path.isdir(path):
            raise IsADirectoryError("Please specify a non-directory filepath for "
                                    f"ModelCheckpoint. Received: filepath={path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)
        if self.verbose > 0:  # (Keras 3.15's second message)
            print_msg(f"\nEpoch {epoch + 1}: finished saving model to {path}")


class CSVLogger(Callback):
    """Streams each epoch's logs to a CSV file: a header `epoch,<log names sorted>`, then one
    row an epoch, flushed as it is written. `append=True` continues an existing file."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = path_arg("filename", filename)
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError("`separator` must be a single character. "
                             f"Received: separator={separator!r}")
        self.sep = separator
        self.append = bool(append)
        self._file = None
        self._writer = None
        self._keys = None

    def on_train_begin(self, logs=None):
        header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as f:
                header = not f.readline()
        self._close()
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._header = header
        self._writer = None
        self._keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
            # Without validation this epoch, leave room for the validation logs of later ones.
            if self._keys and not any(k.startswith("val_") for k in self._keys):
                self._keys += [f"val_{k}" for k in self._keys]
        if self._writer is None:
            self._writer = csv.writer(self._file, delimiter=self.sep)
            if self._header:
                self._writer.writerow(["epoch"] + self._keys)
        self._writer.writerow([epoch] + [_csv_value(logs.get(k, "NA")) for k in self._keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._writer = None


def _csv_value(v):
    """Keras's cell of a log value: a list's or an array's items in brackets inside quotes of
    their own (which the CSV writer doubles: three quotes each side), else the value."""
    if isinstance(v, str) or isinstance(v, np.ndarray) and v.ndim == 0:
        return v
    if isinstance(v, collections.abc.Iterable):
        return f'"[{", ".join(map(str, v))}]"'
    return v


class BackupAndRestore(_SaveFreq, Callback):
    """Keras's fault-tolerant training: at the end of every epoch (or every `save_freq`
    batches) the weights and the optimizer's state go to `backup_dir`/latest.weights.h5 (Keras's
    layout, replaced atomically) and the epoch to training_metadata.json; a `fit` that starts
    with a backup there restores both and resumes at that epoch. The backup is deleted when
    `fit` ends (unless `delete_checkpoint=False`); `double_checkpoint` keeps the previous one
    as a fallback for a backup that cannot be read."""

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError(f"Empty `backup_dir` argument passed. Received: "
                             f"backup_dir={backup_dir!r}")
        self._set_save_freq(save_freq, "Invalid value for argument `save_freq`. Expected "
                                       "either 'epoch' or a positive integer.")
        self.backup_dir = path_arg("backup_dir", backup_dir)
        self.double_checkpoint = bool(double_checkpoint)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._weights_path = os.path.join(self.backup_dir, "latest.weights.h5")
        self._metadata_path = os.path.join(self.backup_dir, "training_metadata.json")
        self._prev_weights_path = self._weights_path + ".bkp"
        self._prev_metadata_path = self._metadata_path + ".bkp"
        self._epoch = 0
        self._last_batch = 0

    def on_train_begin(self, logs=None):
        try:
            self._restore()
        except (OSError, ValueError):
            if not os.path.exists(self._prev_weights_path):
                raise
            shutil.copyfile(self._prev_weights_path, self._weights_path)
            if os.path.exists(self._prev_metadata_path):
                shutil.copyfile(self._prev_metadata_path, self._metadata_path)
            elif os.path.exists(self._metadata_path):
                os.remove(self._metadata_path)
            self._restore()

    def _restore(self):
        from densitron import saving

        if os.path.exists(self._weights_path):
            saving.load_state(self.model, self._weights_path)
        if os.path.exists(self._metadata_path):
            with open(self._metadata_path) as f:
                metadata = json.load(f)
            self._epoch = int(metadata["epoch"])
            self.model._initial_epoch = self._epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._last_batch = 0

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch + 1
        self._last_batch = 0
        if self.save_freq == "epoch":
            self._save()

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._last_batch = batch
        if self._batch_save_due():
            self._save()

    def _save(self):
        from densitron import saving

        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint:
            for path, prev in ((self._weights_path, self._prev_weights_path),
                               (self._metadata_path, self._prev_metadata_path)):
                if os.path.exists(path):
                    shutil.copyfile(path, prev)
        saving.save_state(self.model, self._weights_path)
        payload = json.dumps({"epoch": self._epoch, "batch": self._last_batch})
        saving.write_atomically(self._metadata_path, lambda f: f.write(payload.encode()))

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.backup_dir):
            shutil.rmtree(self.backup_dir)
