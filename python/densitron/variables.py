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


_AGGREGATIONS = (None, "none", "mean", "sum", "only_first_replica")
_SYNCHRONIZATIONS = (None, "none", "on_read", "on_write", "auto")


def _float_dtype(dtype):
    """Checks Keras's `dtype` argument: None or a float dtype (the variable is float32 all the
    same, its values converted); a ValueError for any other."""
    if dtype is None:
        return
    name = getattr(dtype, "name", dtype)
    try:
        kind = "f" if name == "bfloat16" else np.dtype(name).kind
    except (TypeError, ValueError):
        kind = None
    if kind != "f":
        raise ValueError("densitron's variables hold float32 values (other float dtypes are "
                         "converted): `dtype` must be a float dtype. "
                         f"Received: dtype={dtype!r}")


def _shape_arg(shape):
    """Keras's `shape` argument as a tuple of non-negative integers, or a ValueError."""
    try:
        dims = tuple(shape)
        if all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
               for d in dims):
            return tuple(int(d) for d in dims)
    except TypeError:
        pass
    raise ValueError("`shape` must be a tuple of non-negative integers. "
                     f"Received: shape={shape!r}")


class Variable:
    """Keras's Variable(initializer, shape=None, dtype=None, trainable=True, autocast=True,
    aggregation="none", synchronization="auto", name=None): its initial value is an array (or
    number, or list), or an initializer (a name, an object or a function of (shape, dtype))
    called with `shape`. Its values are float32: a float `dtype` is taken (and its values
    converted), another refused; integer or boolean arrays are converted too (Keras would keep
    their dtype). path, regularizer and constraint (keywords) are densitron's: a layer's
    weight's. (The old form Variable(value, name, trainable) still works.)"""

    def __init__(self, initializer, shape=None, dtype=None, trainable=True, autocast=True,
                 aggregation="none", synchronization="auto", name=None, *, path=None,
                 regularizer=None, constraint=None):
        if isinstance(shape, str) and name is None:  # Variable(value, name[, trainable])
            shape, name = None, shape
            if isinstance(dtype, bool):
                dtype, trainable = None, dtype
        if name is None:
            from densitron.utils.naming import uniquify

            name = uniquify("variable")
        # (a layer's weights give their path apart: MultiHeadAttention's "query/kernel")
        if not isinstance(name, str) or ("/" in name and path is None):
            raise ValueError("Argument `name` must be a string and cannot contain character "
                             f"`/`. Received: name={name!r}")
        if aggregation not in _AGGREGATIONS:
            raise ValueError("Invalid value for argument `aggregation`. Expected one of "
                             f"{list(_AGGREGATIONS)}. Received: aggregation={aggregation!r}")
        if synchronization not in _SYNCHRONIZATIONS:
            raise ValueError("Invalid value for argument `synchronization`. Expected one of "
                             f"{list(_SYNCHRONIZATIONS)}. "
                             f"Received: synchronization={synchronization!r}")
        _float_dtype(dtype)
        self._value = self._initial_value(initializer, shape)
        self.name = name
        self.path = path or name
        self.trainable = bool(trainable)
        self.aggregation = aggregation or "none"
        self.synchronization = synchronization or "none"
        self._autocast = bool(autocast)
        self.regularizer = regularizer
        self.constraint = constraint

    @staticmethod
    def _initial_value(initializer, shape):
        """The variable's float32 buffer (C order, its own) from `initializer` and `shape`."""
        if isinstance(initializer, str):
            from densitron import initializers

            initializer = initializers.get(initializer)
        if callable(initializer):
            if shape is None:
                raise ValueError("When creating a Variable from an initializer, the `shape` "
                                 f"argument should be specified. Received: "
                                 f"initializer={initializer!r} and shape=None")
            shape = _shape_arg(shape)
            value = initializer(shape, dtype="float32")
            # (an initializer's new array is the variable's own: not copied again, which would
            # double the peak memory of a large layer)
            copy = not (isinstance(value, np.ndarray) and value.base is None and
                        value.flags.owndata)
        else:
            value, copy = initializer, True
        try:
            value = np.array(value, dtype=np.float32, order="C", copy=copy or None)
        except (TypeError, ValueError):
            raise TypeError("A Variable's initial value must be an array of numbers or an "
                            f"initializer. Received: initializer={initializer!r}") from None
        if shape is not None and value.shape != _shape_arg(shape):
            raise ValueError(f"`shape` must be the initial value's shape {value.shape}. "
                             f"Received: shape={shape!r}")
        return value

    def engine_spec(self):
        """(array, rows, cols, l1, l2, constraint kind, min, max, rate, axis) for the engine."""
        shape = self._value.shape
        rows, cols = (shape[0], int(np.prod(shape[1:]))) if len(shape) >= 2 else (
            int(np.prod(shape)), 1)
        from densitron import regularizers

        l1, l2 = regularizers.coefficients(self.regularizer, shape)
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
