"""Variable: a float32 array owned by Python whose memory the C++ engine reads and updates in
place. Its buffer never moves: assignment copies into it."""

import numpy as np


def assign_value(value, shape, path):
    """`value` as an array for `variable.assign(value)` of a variable of `shape` (Keras's
    ValueError when the shapes differ)."""
    value = np.asarray(value)
    if value.shape != tuple(shape):
        raise ValueError(
            f"The shape of the target variable and the shape of the target value in "
            f"`variable.assign(value)` must match. variable.shape={tuple(shape)}, "
            f"Received: value.shape={value.shape}. Target variable: {path}"
        )
    return value


class Variable:
    def __init__(self, value, name, trainable=True, path=None, regularizer=None,
                 constraint=None):
        self._value = np.array(value, dtype=np.float32, order="C", copy=True)
        self.name = name
        self.path = path or name
        self.trainable = trainable
        self.regularizer = regularizer
        self.constraint = constraint

    def engine_spec(self):
        """(array, rows, cols, l1, l2, constraint kind, min, max, rate, axis) for the engine."""
        shape = self._value.shape
        rows, cols = (shape[0], int(np.prod(shape[1:]))) if len(shape) >= 2 else (
            int(np.prod(shape)), 1)
        reg = self.regularizer
        l1, l2 = (reg.l1, reg.l2) if reg is not None else (0.0, 0.0)
        con = self.constraint.engine_spec() if self.constraint is not None else (0, 0.0, 0.0,
                                                                                  1.0, 0)
        return (self._value, rows, cols, float(l1), float(l2), *con)

    @property
    def shape(self):
        return self._value.shape

    @property
    def dtype(self):
        return "float32"

    @property
    def value(self):
        return self._value

    def numpy(self):
        return self._value.copy()

    def assign(self, value):
        value = assign_value(value, self._value.shape, self.path)
        np.copyto(self._value, value, casting="unsafe")

    def assign_add(self, value):
        """Keras's: the variable plus `value` (broadcast to its shape)."""
        self.assign(np.broadcast_to(self._value + np.asarray(value, np.float32), self.shape))

    def assign_sub(self, value):
        """Keras's: the variable minus `value` (broadcast to its shape)."""
        self.assign(np.broadcast_to(self._value - np.asarray(value, np.float32), self.shape))

    def __float__(self):
        return float(self._value)

    def __int__(self):
        return int(self._value)

    def __array__(self, dtype=None, copy=None):
        return self._value.copy() if dtype is None else self._value.astype(dtype)

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype=float32>"


# Arithmetic on a variable's value, as on Keras's variables (a metric's result(), say: `self.tp
# / (self.tp + self.fp)`), giving NumPy values. With a symbolic tensor the tensor's own
# operator answers (NotImplemented here): a layer's weight in its traced call().
_VALUES = (Variable, np.ndarray, np.generic, int, float, bool)


def _binary(ufunc):
    def op(self, other):
        return ufunc(self._value, np.asarray(other)) if isinstance(other, _VALUES) else \
            NotImplemented

    def rop(self, other):
        return ufunc(np.asarray(other), self._value) if isinstance(other, _VALUES) else \
            NotImplemented

    return op, rop


for _name, _ufunc in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                      ("truediv", np.true_divide), ("floordiv", np.floor_divide),
                      ("mod", np.mod), ("pow", np.power), ("matmul", np.matmul)]:
    _op, _rop = _binary(_ufunc)
    setattr(Variable, f"__{_name}__", _op)
    setattr(Variable, f"__r{_name}__", _rop)
for _name, _ufunc in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                      ("ge", np.greater_equal)]:
    setattr(Variable, f"__{_name}__", _binary(_ufunc)[0])
Variable.__neg__ = lambda self: np.negative(self._value)
Variable.__pos__ = lambda self: self._value.copy()
Variable.__abs__ = lambda self: np.abs(self._value)
