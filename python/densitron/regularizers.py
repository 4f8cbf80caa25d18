"""Weight regularizers (Keras's names and defaults): a penalty added to the loss, its gradient
added to the weight's, both computed by the engine."""

import numpy as np

from densitron.utils import serialization


class Regularizer:
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


def _check(name, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Value for argument `{name}` should be a number. "
                         f"Received: {name}={value!r}") from None
    if value < 0:
        raise ValueError(f"Value for argument `{name}` should be non-negative. "
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
    return serialization.serialize(regularizer)


def deserialize(config, custom_objects=None):
    return serialization.deserialize_with(get, config, custom_objects)


def get(identifier):
    if identifier == "l1_l2":
        raise ValueError(
            "Could not interpret regularizer identifier: Keras 3 has no 'l1_l2' name (Keras "
            "2's L1L2(l1=0.01, l2=0.01)); pass densitron.regularizers.L1L2(l1=0.01, l2=0.01), "
            "or 'l1l2' for L1L2 with zeros. Received: regularizer='l1_l2'")
    reg = serialization.get(identifier, Regularizer, _BY_NAME, "regularizer",
                            "'l1', 'l2' and 'l1l2' (names or densitron.regularizers objects)")
    if reg is not None and type(reg).__call__ is not Regularizer.__call__:
        # a subclass of the user's computing its own penalty: the engine has only l1 and l2
        raise ValueError(
            "densitron computes regularization in its engine: l1, l2 and l1_l2 (names or "
            "densitron.regularizers objects, or a Regularizer subclass that sets l1 and l2), "
            "not a penalty written in __call__. Received: regularizer "
            f"{type(reg).__name__}")
    return reg
