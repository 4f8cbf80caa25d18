"""Batches from Python: a PyDataset (or any sequence of batches with __len__ and __getitem__)
or an iterator such as a generator, each batch an (x, y) or (x, y, sample_weight) tuple (x
alone for predict), as Keras takes them. The engine runs each batch in its own call."""

import itertools
import warnings

import numpy as np

from densitron.trainers import data as data_mod


def is_batch_source(x):
    """True for a PyDataset-like sequence of batches or an iterator; False for array data
    (arrays, lists, tuples, dicts, and objects NumPy can convert, such as DataFrames)."""
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, str, bytes, int, float)):
        return False
    if data_mod.is_sparse(x):
        return False
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return False
    if hasattr(x, "__next__"):
        return True
    return hasattr(x, "__getitem__") and hasattr(x, "__len__")


def reject_beside(**arguments):
    """ValueError for any of `arguments` given (not None): with batches from a PyDataset or a
    generator, the batches hold them."""
    for arg, value in arguments.items():
        if value is not None:
            # (an array by its type and shape: its values could fill pages)
            shape = getattr(value, "shape", None)
            received = (f"{arg} of type {type(value).__name__} with shape {tuple(shape)}"
                        if isinstance(shape, tuple) else
                        f"{arg} of type {type(value).__name__} of length {len(value)}"
                        if isinstance(value, (list, tuple, dict)) else f"{arg}={value!r}")
            raise ValueError(f"`{arg}` is not supported when `x` is a PyDataset or a generator: "
                             f"its batches hold it. Received: {received}")


class BatchSource:
    """One epoch's batches at a time: `steps` of them (all of a sequence's when None; an
    iterator's until it ends when None). With `stream` and `steps` (fit's steps_per_epoch), a
    sequence's pass over its batches runs on over the epochs, as Keras's epoch iterator does:
    each epoch takes the next `steps` batches and ends early, with Keras's warning, where the
    pass runs out; the next epoch starts a new pass (in a new order with `shuffle`).

    An iterator's first PEEKED batches are drawn when the source is made and come first in
    each pass over it, as Keras's generator adapter replays them: a pass is those batches, then
    the iterator's next ones until `steps` or its end. Each epoch (each evaluation, for
    validation data) is a new pass, except with `stream` and `steps`, where the pass runs on
    until the iterator ends. So a finite generator trains its first epoch on every batch and
    the next ones on the peeked batches (Keras warns that it ran out each time), and
    validation with validation_steps up to PEEKED evaluates the same batches every epoch.

    Keras calls the batch-begin hook of the run (of steps_per_execution batches) that meets an
    iterator's end, before it pulls from it (`stopped`: one was begun), then starts a new pass
    the next epoch. When the end is met inside the epoch's last run, or after exactly `steps`
    batches, there is no such run: the spent iterator stays for the next epoch, which begins
    its first run, trains on nothing and starts the new pass after it."""

    PEEKED = 2  # Keras's NUM_BATCHES_FOR_TENSOR_SPEC

    def __init__(self, data, steps, arg, steps_arg, shuffle=False, stream=False,
                 steps_per_execution=1):
        steps = data_mod.check_steps(steps, steps_arg)
        self.data, self.arg, self.steps_arg = data, arg, steps_arg
        self.shuffle = bool(shuffle)  # (a sequence's batches in a new order each pass)
        self.iterator = data if hasattr(data, "__next__") else None
        self.steps = steps
        self.stream = stream and steps is not None
        self.order, self.pass_done = None, 0  # a sequence's pass: its order, batches taken
        if self.iterator is None:
            n = len(data)
            if n < 1:
                raise ValueError(f"`{arg}` holds no batches. Received: len({arg}) = {n}")
            self.steps = n if steps is None else steps
        # whether the last epoch had fewer than `steps` batches (or an iterator's pass ended);
        # stopped: an iterator's end met in the epoch (Keras had begun one more run for it)
        self.short = self.stopped = False
        self.peeked, self.current = [], None  # an iterator's first batches; its current pass
        self.steps_per_execution = steps_per_execution  # (the runs taking the batches)
        if self.iterator is not None:
            self.peeked = list(itertools.islice(self.iterator, self.PEEKED))
            if not self.peeked:
                raise ValueError(f"`{arg}` must yield at least one batch. Received: an empty "
                                 "generator")

    def batches(self):
        self.short = self.stopped = False
        if self.iterator is None:
            if hasattr(self.data, "on_epoch_begin"):
                self.data.on_epoch_begin()
            if self.order is None:
                n = len(self.data)
                self.order = np.arange(n)
                if self.shuffle:  # (as Keras's PyDataset adapter, from fit's shuffle=True)
                    from densitron.utils.rng import global_generator

                    self.order = global_generator().permutation(n)
            n = self.order.shape[0]
            take = min(self.steps, n - self.pass_done)
            self.short = take < self.steps
            for i in range(self.pass_done, self.pass_done + take):
                self.pass_done += 1
                yield self.data[int(self.order[i])]
            if not self.stream or self.pass_done >= n:
                self.order, self.pass_done = None, 0
            return
        if self.current is None or not self.stream:
            self.current = itertools.chain(self.peeked, self.iterator)
        done = 0
        while self.steps is None or done < self.steps:
            try:
                batch = next(self.current)
            except StopIteration:  # (Keras warns at every pass's end, steps or none)
                spe = self.steps_per_execution
                start = -(-done // spe) * spe  # (the next run's first batch)
                self.short, self.stopped = True, self.steps is None or start < self.steps
                self.current = None if self.stopped else iter(())
                return
            done += 1
            yield batch

    def run_that_found_the_end(self, done):
        """The first batch's index of the run that met an iterator's end in the epoch, or None
        (none did): Keras calls on_*_batch_begin for that run before it pulls the batches that
        are not there (`done` batches given this epoch)."""
        if not self.stopped:
            return None
        return -(-done // self.steps_per_execution) * self.steps_per_execution

    def warn_ran_out(self):
        warnings.warn("Your input ran out of data; interrupting training. Make sure that "
                      f"`{self.arg}` can generate at least `{self.steps_arg}` batches per epoch "
                      "for every epoch.", stacklevel=3)

    def end_epoch(self):
        if self.iterator is None and hasattr(self.data, "on_epoch_end"):
            self.data.on_epoch_end()


def add_totals(acc, totals):
    """Sums the engine's (rows, loss, output losses, metrics, weights) totals of calls."""
    if acc is None:
        return [totals[0], totals[1]] + [np.array(t, dtype=np.float64) for t in totals[2:]]
    acc[0] += totals[0]
    acc[1] += totals[1]
    for k in range(2, 5):
        acc[k] += totals[k]  # (in place: acc's float64 arrays are this function's own)
    return acc
