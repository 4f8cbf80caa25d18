"""Weight constraints (Keras's names, arguments and formulas), applied by the engine to a
weight after every optimizer update; called on an array, a constraint gives the constrained
array (NumPy, float32) as Keras's do, over the array's own axes (the engine reads a weight of
rank above 2 as shape[0] rows of the other axes' values)."""

import numbers

import numpy as np

from densitron._checks import number_arg
from densitron.utils import serialization

# Engine ids: must match densitron::ConstraintKind in cpp/include/densitron/graph.h.
_MAX_NORM, _MIN_MAX_NORM, _NON_NEG, _UNIT_NORM = 1, 2, 3, 4


_EPSILON = np.float32(1e-7)  # Keras's backend.epsilon()


class Constraint:
    _engine_id = 0

    def __call__(self, w):
        """The constrained weight (Keras's base constraint: `w` as it is)."""
        return w

    def engine_spec(self):
        """(kind, min, max, rate, axis) for the engine."""
        return (self._engine_id, 0.0, 0.0, 1.0, 0)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _axis(axis):
    """The `axis` argument (Keras's, kept for __call__ and the config) once checked."""
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool) and axis in (0, 1, -1):
        return int(axis)
    raise ValueError(f"densitron's norm constraints take axis 0 or 1 (-1). Received: axis={axis!r}")


def _engine_axis(axis):
    """The engine's axis of a (rows, cols) weight: -1 is its columns'."""
    return 1 if axis == -1 else axis


def _weights(w):
    """`w` as a float32 array (Keras's constraints compute in the float dtype)."""
    try:
        return np.asarray(w, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"A constraint is called on an array of numbers. Received: w={w!r}") \
            from None


def _norms(w, axis):
    """The L2 norms of `w` along `axis`, kept as an axis of 1 (an error naming the axis when
    `w` has none such)."""
    if not -w.ndim <= axis < w.ndim:
        raise ValueError(f"`axis` {axis} is out of bounds for an array of rank {w.ndim}. "
                         f"Received: w with shape {w.shape}")
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


def _float(name, value):
    return float(number_arg(name, value))


class MaxNorm(Constraint):
    _engine_id = _MAX_NORM

    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = _float("max_value", max_value), _axis(axis)

    def __call__(self, w):
        """w scaled so that its norms along `axis` are at most max_value."""
        w = _weights(w)
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0.0, np.float32(self.max_value))
        return w * (desired / (_EPSILON + norms))

    def engine_spec(self):
        return (self._engine_id, 0.0, self.max_value, 1.0, _engine_axis(self.axis))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class MinMaxNorm(Constraint):
    _engine_id = _MIN_MAX_NORM

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _float("min_value", min_value)
        self.max_value = _float("max_value", max_value)
        self.rate, self.axis = _float("rate", rate), _axis(axis)

    def __call__(self, w):
        """w scaled toward norms along `axis` in [min_value, max_value], by `rate`."""
        w = _weights(w)
        norms = _norms(w, self.axis)
        rate = np.float32(self.rate)
        desired = (rate * np.clip(norms, np.float32(self.min_value), np.float32(self.max_value))
                   + (np.float32(1.0) - rate) * norms)
        return w * (desired / (_EPSILON + norms))

    def engine_spec(self):
        return (self._engine_id, self.min_value, self.max_value, self.rate,
                _engine_axis(self.axis))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


class NonNeg(Constraint):
    _engine_id = _NON_NEG

    def __call__(self, w):
        """w with its negative values zeroed."""
        return np.maximum(_weights(w), np.float32(0.0))


class UnitNorm(Constraint):
    _engine_id = _UNIT_NORM

    def __init__(self, axis=0):
        self.axis = _axis(axis)

    def __call__(self, w):
        """w divided by its norms along `axis`."""
        w = _weights(w)
        return w / (_EPSILON + _norms(w, self.axis))

    def engine_spec(self):
        return (self._engine_id, 0.0, 0.0, 1.0, _engine_axis(self.axis))

    def get_config(self):
        return {"axis": self.axis}


max_norm = MaxNorm
min_max_norm = MinMaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
_BY_NAME = {"max_norm": MaxNorm, "min_max_norm": MinMaxNorm, "non_neg": NonNeg,
            "unit_norm": UnitNorm, "MaxNorm": MaxNorm, "MinMaxNorm": MinMaxNorm,
            "NonNeg": NonNeg, "UnitNorm": UnitNorm}


def serialize(constraint):
    return serialization.serialize_in_keras_form(constraint, "keras.constraints")


def deserialize(config, custom_objects=None):
    return serialization.deserialize_with(get, config, custom_objects)


def get(identifier):
    con = serialization.get(
        identifier, Constraint, _BY_NAME, "constraint",
        "max_norm, min_max_norm, non_neg and unit_norm (names or densitron.constraints objects)")
    if con is not None and con.engine_spec()[0] == Constraint._engine_id:
        # a subclass of the user's with its own __call__: the engine applies its own kinds
        raise ValueError(
            "densitron applies constraints in its engine: max_norm, min_max_norm, non_neg and "
            "unit_norm (names or densitron.constraints objects), not a Constraint subclass "
            f"computing in __call__. Received: constraint {type(con).__name__}")
    return con
