"""Batches from Python: a PyDataset (or any sequence of batches with __len__ and __getitem__)
or an iterator such as a generator, each batch an (x, y) or (x, y, sample_weight) tuple (x
alone for predict), as Keras takes them. The engine runs each batch in its own call."""

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
            raise ValueError(f"`{arg}` is not supported when `x` is a PyDataset or a generator: "
                             f"its batches hold it. Received: {arg}={value!r}")


class BatchSource:
    """One epoch's batches at a time: `steps` of them (all of a sequence's when None; an
    iterator's until it ends when None). With `stream` and `steps` (fit's steps_per_epoch), a
    sequence's pass over its batches runs on over the epochs, as Keras's epoch iterator does:
    each epoch takes the next `steps` batches and ends early, with Keras's warning, where the
    pass runs out; the next epoch starts a new pass (in a new order with `shuffle`)."""

    def __init__(self, data, steps, arg, steps_arg, shuffle=False, stream=False):
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
        self.ran_out = False  # an iterator ended: no batches for another epoch
        self.short = False  # the last epoch had fewer than `steps` batches

    def batches(self):
        self.short = False
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
        done = 0
        while self.steps is None or done < self.steps:
            try:
                batch = next(self.iterator)
            except StopIteration:
                # short of `steps`, or empty: a generator used up by the epochs before
                self.ran_out = self.steps is not None or done == 0
                self.short = self.ran_out
                return
            done += 1
            yield batch

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
