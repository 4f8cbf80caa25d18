"""Callbacks that steer training, with Keras's names, arguments and rules: EarlyStopping,
ReduceLROnPlateau, LearningRateScheduler, TerminateOnNaN, LambdaCallback."""

import math
import warnings

import numpy as np

from densitron.callbacks.callback import Callback, check_number
from densitron.utils.io_utils import print_msg


class _Monitor(Callback):
    """Shared by the plateau callbacks: reads a monitored value and judges improvement. With
    mode="auto", as Keras 3 decides at the first epoch's end: the losses are minimized, a
    compiled metric by whether its larger or smaller values are better, and a name it cannot
    tell of (a misspelt one, a Mean of the user's) is refused."""

    # the start and end of the warning for a monitor missing from the logs (Keras's, per class)
    _conditioned, _conditioned_end = "Monitoring is", "."

    def __init__(self, monitor, mode, min_delta, name):
        super().__init__()
        if not isinstance(monitor, str):
            raise TypeError(f"`monitor` must be the name of a logged value. "
                            f"Received: monitor={monitor!r}")
        if not isinstance(mode, str) or mode not in ("auto", "min", "max"):
            raise ValueError(f"{name} mode must be one of 'auto', 'min', 'max'. "
                             f"Received: mode={mode!r}")
        self.monitor, self.mode = monitor, mode
        self.min_delta = abs(check_number("min_delta", min_delta))

    def _resolve_mode(self):
        name = self.monitor.removeprefix("val_")
        found = getattr(self.model, "_metric_directions", {}).get(name)
        if name == "loss" or name.endswith("_loss"):
            self.mode = "min"
        elif found is not None:
            self.mode = "max" if found == "up" else "min"
        else:
            raise ValueError(
                f"{type(self).__name__} callback received monitor={self.monitor}, but densitron "
                "isn't able to automatically determine whether that metric should be maximized "
                "or minimized. Pass `mode='max'` in order to monitor based on the highest "
                "metric value, or pass `mode='min'` in order to use the lowest value.")

    def _current(self, logs):
        if self.mode == "auto":
            self._resolve_mode()
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{self._conditioned} conditioned on metric `{self.monitor}` which is "
                          f"not available. Available metrics are: {','.join(logs or {})}"
                          f"{self._conditioned_end}", stacklevel=3)
        return value

    def _better(self, current, reference):
        if self.mode == "auto":
            self._resolve_mode()
        if reference is None:
            return True
        if self.mode == "min":
            return current + self.min_delta < reference
        return current - self.min_delta > reference


class EarlyStopping(_Monitor):
    """Stops training when `monitor` has stopped improving for `patience` epochs."""

    _conditioned, _conditioned_end = "Early stopping", ""  # (Keras's warning, no period)

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta, "EarlyStopping")
        self.patience = check_number("patience", patience, whole=True)
        self.verbose = verbose
        self.baseline = None if baseline is None else check_number("baseline", baseline)
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = check_number("start_from_epoch", start_from_epoch, whole=True)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._current(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._better(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print_msg(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print_msg("Restoring model weights from the end of the best epoch: "
                          f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(_Monitor):
    """Multiplies the learning rate by `factor` when `monitor` has stopped improving."""

    _conditioned, _conditioned_end = "Learning rate reduction is", "."

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        super().__init__(monitor, mode, min_delta, "ReduceLROnPlateau")
        if check_number("factor", factor) >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0. "
                             f"Received: factor={factor}")
        self.factor, self.verbose = float(factor), verbose
        self.patience = check_number("patience", patience, whole=True)
        self.cooldown = check_number("cooldown", cooldown, whole=True)
        self.min_lr = check_number("min_lr", min_lr)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.cooldown_counter = 0
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = self._current(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(self.model.optimizer.learning_rate)
                # (as Keras's, in float32: a rate already at min_lr is not reduced again)
                if np.float32(old) > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new
                    if self.verbose > 0:
                        print_msg(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                                  f"to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of every epoch to schedule(epoch, lr)."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise ValueError(f"`schedule` must be callable. Received: schedule={schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.model.optimizer.learning_rate)
        try:
            lr = self.schedule(epoch, lr)
        except TypeError:  # a schedule of the epoch alone
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, np.float32, np.float64)):  # (Keras's: not an int)
            raise ValueError("The output of the `schedule` function should be a float. "
                             f"Received: {lr!r}")
        self.model.optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class TerminateOnNaN(Callback):
    """Stops training after the first batch whose loss is NaN or infinite, as Keras's: the
    engine's runs of batches stop after that batch for it (_stops_on_nan), so fit need not
    run batch by batch; with `raise_error=True` a RuntimeError ends training at once instead,
    without the other callbacks' on_train_end."""

    _chunked_batches_ok = True
    _stops_on_nan = True

    def __init__(self, raise_error=False):
        super().__init__()
        if not isinstance(raise_error, (bool, np.bool_)):
            raise TypeError(f"`raise_error` must be a boolean. Received: "
                            f"raise_error={raise_error!r}")
        self.raise_error = bool(raise_error)

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(loss):
            return
        if self.raise_error:
            raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: "
                               f"{loss}. Terminating training immediately.")
        print_msg(f"Batch {batch}: Invalid loss, terminating training")
        self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from plain functions: on_epoch_begin(epoch, logs), on_epoch_end(epoch, logs),
    on_train_begin(logs), on_train_end(logs), on_train_batch_begin(batch, logs),
    on_train_batch_end(batch, logs)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                 "on_train_begin": on_train_begin, "on_train_end": on_train_end,
                 "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end, **kwargs}
        for name, fn in hooks.items():
            if not name.startswith("on_"):  # (as Keras's: any other argument, an attribute)
                setattr(self, name, fn)
            elif fn is not None:
                if not callable(fn):
                    raise TypeError(f"`{name}` must be a function. Received: {name}={fn!r}")
                setattr(self, name, fn)


class SwapEMAWeights(Callback):
    """Keras's SwapEMAWeights: with an optimizer's `use_ema=True`, evaluation (fit's
    validation, evaluate, predict) runs on the weights' moving averages, the trained weights
    swapped back after it; with `swap_on_epoch=True` the averages are in the model from each
    epoch's end (so callbacks such as ModelCheckpoint save them) to the next epoch's start, and
    training ends on them. (Keras forgets to swap back after predict; densitron does swap.)"""

    def __init__(self, swap_on_epoch=False):
        super().__init__()
        self.swap_on_epoch = swap_on_epoch
        self._ema_weights_in_model = False

    def _optimizer(self):
        optimizer = self.model.optimizer
        if not getattr(optimizer, "use_ema", False):
            raise ValueError("SwapEMAWeights must be used when `use_ema=True` is set on the "
                             f"optimizer. Received: use_ema={getattr(optimizer, 'use_ema', None)}")
        return optimizer

    def _swap(self, into_model):
        if self._ema_weights_in_model != into_model:
            self._optimizer()._swap_averages(self.model.trainable_weights)
            self._ema_weights_in_model = into_model

    def on_epoch_begin(self, epoch, logs=None):
        if self.swap_on_epoch:
            self._swap(False)

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch and not self._ema_weights_in_model:
            self._swap(True)
            if epoch == self.params["epochs"] - 1:  # fit's final averages are these weights
                self._optimizer()._averages_take_values(self.model.trainable_weights)

    def on_test_begin(self, logs=None):
        self._swap(True)

    def on_test_end(self, logs=None):
        self._swap(False)

    def on_predict_begin(self, logs=None):
        self._swap(True)

    def on_predict_end(self, logs=None):
        self._swap(False)
