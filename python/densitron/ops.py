"""Low-level operations: on NumPy arrays, run by densitron's C++ engine; on symbolic tensors (in
a traced call()), the layers that compute them (a layer's weight in `matmul(x, self.w)`)."""

import numpy as np

from densitron import _core

__all__ = ["add", "convert_to_numpy", "convert_to_tensor", "elu", "gelu", "matmul", "multiply",
           "relu", "selu", "sigmoid", "silu", "softmax", "softplus", "subtract", "swish", "tanh"]

_NUMERIC_KINDS = "biuf"
_ndarray = np.ndarray
_FLOAT32 = np.dtype(np.float32)
_core_matmul = _core.matmul


def _as_float32_matrix(x, name):
    if type(x) is np.ndarray and x.dtype == np.float32:
        return x  # _core reads any row stride and copies other layouts itself
    if isinstance(x, np.ndarray) and x.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(
            f"`{name}` must be a real numeric array. Received: {name}.dtype={x.dtype}"
        )
    try:
        arr = np.ascontiguousarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"`{name}` must be convertible to a float32 array. Received: {name}={x!r:.80}"
        ) from e
    return arr


def matmul(a, b, transpose_a=False, transpose_b=False, out=None):
    """Matrix product op(a) @ op(b) in float32.

    Args:
        a: 2-D array; with `transpose_a=True` it is passed as stored (k × m) and used
            transposed.
        b: 2-D array; with `transpose_b=True` it is passed as stored (n × k).
        transpose_a: use aᵀ.
        transpose_b: use bᵀ.
        out: optional float32 array of shape (m, n) with unit column stride to write into.

    Returns:
        The (m, n) float32 product (`out` when given).
    """
    # Fast path first: a small product costs less than a few Python calls.
    if a.__class__ is not _ndarray or a.dtype is not _FLOAT32:
        from densitron.layers.layer import KerasTensor

        if isinstance(a, KerasTensor):
            return _symbolic_matmul(a, b, transpose_a, transpose_b, out)
        a = _as_float32_matrix(a, "a")
    if b.__class__ is not _ndarray or b.dtype is not _FLOAT32:
        b = _as_float32_matrix(b, "b")
    # Positional: pybind11's keyword matching costs more than a small product.
    return _core_matmul(a, b, transpose_a, transpose_b, out)


def _symbolic_matmul(a, b, transpose_a, transpose_b, out):
    from densitron.layers import WeightMatMul
    from densitron.variables import Variable

    if not isinstance(b, Variable) or transpose_a or transpose_b or out is not None:
        raise TypeError("On a symbolic tensor, matmul takes a layer's (features, units) weight "
                        "as `b` (matmul(x, self.w) in a traced call()). Received: "
                        f"b={b!r}, transpose_a={transpose_a}, transpose_b={transpose_b}")
    return WeightMatMul(b)(a)


def _activation(name):
    def op(x):
        from densitron.layers import Activation

        return Activation(name)(x)

    op.__name__ = name
    op.__doc__ = (f"{name}(x): on a symbolic tensor (in a traced call()), an Activation('{name}') "
                  "layer; on a 2-D array, its values.")
    return op


relu = _activation("relu")
sigmoid = _activation("sigmoid")
tanh = _activation("tanh")
softmax = _activation("softmax")
gelu = _activation("gelu")
silu = _activation("silu")
swish = _activation("swish")
elu = _activation("elu")
selu = _activation("selu")
softplus = _activation("softplus")


def add(x1, x2):
    """x1 + x2: Add or WeightAdd layers on symbolic tensors, NumPy's sum on arrays."""
    return x1 + x2 if not isinstance(x1, np.ndarray) else np.add(x1, x2)


def subtract(x1, x2):
    return x1 - x2 if not isinstance(x1, np.ndarray) else np.subtract(x1, x2)


def multiply(x1, x2):
    return x1 * x2 if not isinstance(x1, np.ndarray) else np.multiply(x1, x2)


def convert_to_numpy(x):
    """Keras's backend-neutral way to a NumPy array (densitron's values already are)."""
    return np.asarray(x)


def convert_to_tensor(x, dtype=None):
    """Keras's convert_to_tensor: a NumPy array (of `dtype` when given)."""
    return np.asarray(x, dtype=dtype)
