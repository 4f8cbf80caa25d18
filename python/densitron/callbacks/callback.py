"""Callback base class, the list that dispatches to callbacks, History and ProgbarLogger."""

import functools
import inspect

import numpy as np

from densitron.utils.io_utils import print_msg
from densitron.utils.progbar import Progbar


def check_number(arg, value, whole=False):
    """value as a float (an int with `whole`); TypeError naming `arg` for anything else."""
    from densitron._checks import is_number, number_arg

    if not whole:
        return float(number_arg(arg, value))
    if not is_number(value) or not float(value).is_integer():
        raise TypeError(f"`{arg}` must be an integer. Received: {arg}={value!r}")
    return int(value)


# The hooks a training batch calls (the last two through the first two: see Callback).
TRAIN_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin",
                     "on_batch_end")


class Callback:
    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...

    # Keras's training batch hooks call its older names, so a callback that overrides
    # on_batch_begin or on_batch_end is called every training batch too.
    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...

    # A callback whose per-batch hook is fine being called once per group of batches (the
    # engine runs groups of ~0.25 s) sets this, so fit need not run batch by batch for it.
    _chunked_batches_ok = False

    def _overrides(self, *hooks):
        """Whether this callback has its own one of the hooks (Callback's are no-ops): from
        its class, or set on the instance (LambdaCallback)."""
        own = getattr(self, "__dict__", {})  # (a subclass with __slots__ has none)
        return any(h in own or getattr(type(self), h) is not getattr(Callback, h) for h in hooks)

    def _wants_batches(self):
        """True when a subclass overrides a per-batch hook: fit then runs batch by batch."""
        if self._chunked_batches_ok:
            return False
        return self._overrides(*TRAIN_BATCH_HOOKS)


class History(Callback):
    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        # (as Keras's: a History passed to several fits keeps adding to `history`)
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Prints "Epoch i/N" and Keras's bar (verbose 1) or one line per epoch (verbose 2)."""

    def __init__(self):
        super().__init__()
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        verbose = self.params.get("verbose", 1)
        if verbose:
            if self.params["epochs"] > 1:  # (as Keras: no "Epoch 1/1")
                print_msg(f"Epoch {epoch + 1}/{self.params['epochs']}")
            self._bar = Progbar(self.params.get("steps"), verbose=verbose)

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._bar.update(batch + 1, _display(logs), finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is not None:
            self._bar.update(self.params.get("steps"), _display(logs), finalize=True)
            self._bar = None


def _display(logs):
    return list((logs or {}).items())


class CallbackList:
    """Keras's CallbackList: calls each hook on every callback of the list in order; with
    `add_history`/`add_progbar`, appends a History and a ProgbarLogger unless the list holds
    its own; `model` becomes each callback's model (and its History the model's `history`);
    `**params` each callback's params."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None,
                 **params):
        self.callbacks = list(callbacks or [])
        self._history = next((c for c in self.callbacks if isinstance(c, History)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        self.model = None
        self.params = params  # shared with every callback
        self.set_model(model)
        self.set_params(params)

    def set_model(self, model):
        if model is None:
            return
        self.model = model
        if self._history is not None:
            model.history = self._history
        for c in self.callbacks:
            c.set_model(model)

    def set_params(self, params):
        self.params = params
        for c in self.callbacks:
            c.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)

    def wants_batches(self):
        return any(c._wants_batches() for c in self.callbacks
                   if not isinstance(c, (ProgbarLogger, History)))

    def overrides(self, *hooks):
        """Whether a callback of the list overrides one of the hooks."""
        return any(c._overrides(*hooks) for c in self.callbacks)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        # As Keras's list: every hook gets a logs dict ({} when there are none: a
        # LambdaCallback's `lambda epoch, logs: ...` needs the argument), one new dict a call,
        # shared by the callbacks, its keys sorted and its numbers Python floats (what a callback
        # adds, ReduceLROnPlateau's learning_rate, follows them for the later callbacks but not
        # for the caller); the batch hooks get it as the keyword `logs` when they take it so
        # (`def on_train_batch_end(self, batch, **kwargs)`), else by position (`lambda *_: ...`,
        # which Keras's refuses).
        batch_hook = hook.endswith(("_batch_begin", "_batch_end"))
        takes_index = batch_hook or hook.endswith(("_epoch_begin", "_epoch_end"))

        def call(*args):
            index, logs = (args[:1], args[1:]) if takes_index else ((), args)
            logs = _pythonified(logs[0] if logs else None)
            for c in self.callbacks:
                fn = getattr(c, hook)
                if batch_hook and _takes_logs_keyword(getattr(fn, "__func__", fn)):
                    fn(*index, logs=logs)
                else:
                    fn(*index, logs)

        return call


def _takes_logs_keyword(fn):
    """Whether a hook's function can take `logs` as a keyword (a parameter of that name, or
    **kwargs); remembered per function."""
    try:
        return _logs_keyword_of(fn)
    except TypeError:  # (an unhashable callable object)
        return _logs_keyword_of.__wrapped__(fn)


@functools.lru_cache(maxsize=1024)
def _logs_keyword_of(fn):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # (a builtin without a signature)
        return False
    return any(p.kind is p.VAR_KEYWORD or p.name == "logs" and p.kind in (
        p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)


def _pythonified(logs):
    """Keras's pythonify_logs: a new dict of the logs in sorted key order, nested dicts
    flattened into it, NumPy scalars as Python floats."""
    out = {}
    for k, v in sorted((logs or {}).items()):
        if isinstance(v, dict):
            out.update(_pythonified(v))
        elif isinstance(v, (np.floating, np.integer)) or isinstance(v, np.ndarray) and v.ndim == 0:
            out[k] = float(v)
        else:
            out[k] = v
    return out
