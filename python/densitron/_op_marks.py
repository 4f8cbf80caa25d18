"""Layers made by an op on symbolic tensors (arithmetic, densitron.ops, an activation
function, a custom activation's trace) are Keras's operations, not layers: a functional
model's `layers` leaves them out, as Keras's lists only Layer objects. The functions that make
them count themselves in OP_DEPTH while they run; Layer.__init__ reads it."""

import functools
import inspect

OP_DEPTH = [0]


def makes_op_layers(fn):
    """fn, marking the layers it makes as ops'."""
    @functools.wraps(fn)
    def op(*args, **kwargs):
        OP_DEPTH[0] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            OP_DEPTH[0] -= 1

    return op


def mark_op_methods(cls):
    """cls, each of its own methods marking the layers it makes."""
    for name, fn in list(vars(cls).items()):
        if inspect.isfunction(fn) and name not in ("__init__", "__repr__"):
            setattr(cls, name, makes_op_layers(fn))
    return cls
