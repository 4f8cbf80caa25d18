"""Variable: a float32 array owned by Python whose memory the C++ engine reads and updates in
place. Its buffer never moves: assignment copies into it."""

import numpy as np


class Variable:
    def __init__(self, value, name, trainable=True, path=None):
        self._value = np.array(value, dtype=np.float32, order="C", copy=True)
        self.name = name
        self.path = path or name
        self.trainable = trainable

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
        value = np.asarray(value)
        if value.shape != self._value.shape:
            raise ValueError(
                f"The shape of the target variable and the shape of the target value in "
                f"`variable.assign(value)` must match. variable.shape={self._value.shape}, "
                f"Received: value.shape={value.shape}. Target variable: {self.path}"
            )
        np.copyto(self._value, value, casting="unsafe")

    def __array__(self, dtype=None, copy=None):
        return self._value.copy() if dtype is None else self._value.astype(dtype)

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype=float32>"
