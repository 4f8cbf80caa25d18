"""Weight regularizers (Keras's names and defaults): a penalty added to the loss, its gradient
added to the weight's, both computed by the engine."""

import numpy as np

from densitron.utils import serialization


class Regularizer:
    """Keras's base class. densitron's engine computes the penalties l1·Σ|x| + l2·Σx²: a
    subclass of the user's sets `l1` and `l2`, or writes `__call__(self, x)` as such a penalty
    with densitron.ops (or NumPy), e.g. `self.strength * ops.sum(ops.square(x))`; plain
    functions of the weights are taken too. Their penalty is read off once per weight by
    calling them on a stand-in for the weights (see coefficients)."""

    l1 = 0.0
    l2 = 0.0

    def __call__(self, x):
        """The penalty of the weights `x` (a float32 scalar): l1·Σ|x| + l2·Σx²."""
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"A regularizer is called on an array of numbers. Received: "
                            f"x={x!r}") from None
        return np.float32(self.l1 * np.abs(x).sum() + self.l2 * np.square(x).sum())

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _Traced:
    """What a regularizer written in Python computes from the weights, met one operation at a
    time: an elementwise scale·f(x) with f one of x, |x| and x² (`kind`), or after a sum or
    a mean over every value the penalty l1·Σ|x| + l2·Σx² (`kind` "penalty"). Any other
    operation (a sum of x itself, a square root, an axis) raises a ValueError."""

    def __init__(self, kind, scale=1.0, size=None, l1=0.0, l2=0.0):
        self.kind, self.scale, self.size, self.l1, self.l2 = kind, scale, size, l1, l2

    def _elementwise(self, kind, scale):
        return _Traced(kind, scale, self.size)

    def _need(self, *kinds):
        if self.kind not in kinds:
            raise _Untraceable()

    # elementwise
    def _trace_op(self, name, axis=None, keepdims=False):
        if name in ("square", "power2"):
            self._need("x", "abs")
            return self._elementwise("square", self.scale * self.scale)
        if name in ("abs", "absolute"):
            self._need("x", "abs", "square")
            return self._elementwise("abs" if self.kind != "square" else "square",
                                     abs(self.scale))
        if name in ("sum", "mean"):
            self._need("abs", "square")
            if axis is not None and not _all_axes(axis, self.size):
                raise _Untraceable()
            scale = self.scale
            if name == "mean":
                if self.size is None:  # (an activity's: the values of a sample are not known)
                    raise _Untraceable()
                scale /= self.size[1]
            return _Traced("penalty", l1=scale if self.kind == "abs" else 0.0,
                           l2=scale if self.kind == "square" else 0.0)
        raise _Untraceable()

    def _times(self, c):
        if not _is_number(c):
            raise _Untraceable()
        c = float(c)
        if self.kind == "penalty":
            return _Traced("penalty", l1=self.l1 * c, l2=self.l2 * c)
        return self._elementwise(self.kind, self.scale * c)

    def __mul__(self, c):
        return self._times(c)

    __rmul__ = __mul__

    def __truediv__(self, c):
        if not _is_number(c) or c == 0:
            raise _Untraceable()
        return self._times(1.0 / float(c))

    def __neg__(self):
        return self._times(-1.0)

    def __pos__(self):
        return self

    def __abs__(self):
        return self._trace_op("abs")

    def __pow__(self, p):
        if not _is_number(p) or p != 2:
            raise _Untraceable()
        return self._trace_op("square")

    def __add__(self, other):
        if _is_number(other) and other == 0:  # (Python's sum() starts from 0)
            return self
        if not isinstance(other, _Traced) or self.kind != "penalty" or other.kind != "penalty":
            raise _Untraceable()
        return _Traced("penalty", l1=self.l1 + other.l1, l2=self.l2 + other.l2)

    __radd__ = __add__

    def sum(self, axis=None, keepdims=False):
        return self._trace_op("sum", axis)

    def mean(self, axis=None, keepdims=False):
        return self._trace_op("mean", axis)

    # NumPy's functions on the stand-in: np.square, np.abs, np.sum, np.mean, np.power(x, 2)
    __array_priority__ = 1000

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if (method == "__call__" and len(inputs) == 1 and inputs[0] is self and not kwargs
                and ufunc.__name__ in ("square", "absolute")):
            return self._trace_op(ufunc.__name__)
        if method == "__call__" and ufunc.__name__ == "multiply" and len(inputs) == 2:
            other = inputs[1] if inputs[0] is self else inputs[0]
            return self._times(other)
        if method == "__call__" and ufunc.__name__ == "power" and inputs[0] is self:
            return self ** inputs[1]
        raise _Untraceable()

    def __array_function__(self, func, types, args, kwargs):
        if func.__name__ in ("sum", "mean") and args and args[0] is self:
            return self._trace_op(func.__name__, kwargs.get("axis", args[1] if len(args) > 1
                                                            else None))
        raise _Untraceable()


class _Untraceable(Exception):
    pass



def _is_number(c):
    return isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, bool) or (
        isinstance(c, np.ndarray) and c.ndim == 0)


def _all_axes(axis, shape):
    if shape is None:
        return False
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    rank = len(shape[0])
    try:
        return sorted(int(a) % rank for a in axes) == list(range(rank))
    except (TypeError, ValueError, ZeroDivisionError):
        return False


def coefficients(regularizer, shape=None):
    """(l1, l2) of the penalty `regularizer` computes on weights of `shape` (None: an
    activity's, any shape): densitron's own regularizers' attributes; for a function or a
    Regularizer subclass with its own __call__, what it computes on a stand-in for the
    weights. ValueError when that is not of the form l1·Σ|x| + l2·Σx² with l1, l2 >= 0."""
    if regularizer is None:
        return 0.0, 0.0
    if isinstance(regularizer, Regularizer) and type(regularizer).__call__ is Regularizer.__call__:
        return float(regularizer.l1), float(regularizer.l2)
    size = None if shape is None else (tuple(shape), max(1, int(np.prod(shape))))
    name = getattr(regularizer, "__name__", None) or type(regularizer).__name__
    try:
        out = regularizer(_Traced("x", 1.0, size))
        if not isinstance(out, _Traced) or out.kind != "penalty" or out.l1 < 0 or out.l2 < 0:
            raise _Untraceable()
    except _Untraceable:
        raise ValueError(
            "densitron computes regularization in its engine: a regularizer of your own must "
            "compute l1·sum(|x|) + l2·sum(x²) of the weights x (or their means, for weights), "
            "with l1, l2 >= 0, written with densitron.ops or NumPy: e.g. `0.01 * "
            "ops.sum(ops.square(x))`. Received: regularizer " + repr(name)) from None
    return float(out.l1), float(out.l2)


def _check(name, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Value for argument `{name}` should be a number. "
                         f"Received: {name}={value!r}") from None
    if not value >= 0:  # (NaN too)
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float. "
                         f"Received: {name}={value}")
    return value


class L1(Regularizer):
    def __init__(self, l1=0.01):
        self.l1 = _check("l1", l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2=0.01):
        self.l2 = _check("l2", l2)

    def get_config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _check("l1", l1)
        self.l2 = _check("l2", l2)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


l1 = L1
l2 = L2
l1_l2 = L1L2
# Keras 3's names: the class names and their snake case ('l1l2', L1L2 with zeros: Keras 3
# has no 'l1_l2' string, Keras 2's L1L2(l1=0.01, l2=0.01))
_BY_NAME = {"l1": L1, "l2": L2, "l1l2": L1L2, "L1": L1, "L2": L2, "L1L2": L1L2}


def serialize(regularizer):
    if callable(regularizer) and not isinstance(regularizer, Regularizer):
        # a function of the user's: by name, as Keras serializes it
        return {"module": "builtins", "class_name": "function",
                "config": getattr(regularizer, "__name__", type(regularizer).__name__),
                "registered_name": "function"}
    return serialization.serialize_in_keras_form(regularizer, "keras.regularizers")


def deserialize(config, custom_objects=None):
    return serialization.deserialize_with(get, config, custom_objects)


def get(identifier):
    if identifier == "l1_l2":
        raise ValueError(
            "Could not interpret regularizer identifier: Keras 3 has no 'l1_l2' name (Keras "
            "2's L1L2(l1=0.01, l2=0.01)); pass densitron.regularizers.L1L2(l1=0.01, l2=0.01), "
            "or 'l1l2' for L1L2 with zeros. Received: regularizer='l1_l2'")
    if isinstance(identifier, dict) and identifier.get("class_name") == "function":
        name = identifier.get("config")
        reg = serialization._custom(name) if isinstance(name, str) else None
        if reg is None:
            raise ValueError("Could not interpret regularizer identifier: the function "
                             f"{name!r} is not among the custom objects (pass it to load_model "
                             f"as `custom_objects={{{name!r}: function}}`). Received: "
                             f"regularizer={identifier!r}")
    elif callable(identifier) and not isinstance(identifier, (type, Regularizer)):
        reg = identifier  # a function of the weights (Keras takes any callable)
    else:
        reg = serialization.get(identifier, Regularizer, _BY_NAME, "regularizer",
                                "'l1', 'l2' and 'l1l2' (names or densitron.regularizers "
                                "objects, subclasses and functions)")
    if reg is not None:
        coefficients(reg, (1,))  # a penalty of another form is refused here, as it is made
    return reg
