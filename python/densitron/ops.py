"""Low-level operations: on NumPy arrays, run by densitron's C++ engine; on symbolic tensors (in
a traced call()), the layers that compute them (a layer's weight in `matmul(x, self.w)`)."""

import builtins
import functools
import math
import types

import numpy as np

from densitron import _core
from densitron._checks import is_number

__all__ = ["abs", "absolute", "add", "all", "amax", "amin", "any", "arange", "argmax", "argmin",
           "argsort", "binary_crossentropy", "broadcast_to", "cast", "categorical_crossentropy",
           "ceil", "celu", "clip", "concatenate", "convert_to_numpy", "convert_to_tensor", "cosh",
           "cumprod", "cumsum", "deg2rad", "diag", "divide", "divide_no_nan", "dot", "einsum",
           "elu", "equal", "exp", "exp2", "expand_dims", "expm1", "eye", "fabs", "flip", "floor",
           "floor_divide", "full", "full_like", "gelu", "glu", "greater", "greater_equal",
           "hard_shrink", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "heaviside",
           "hypot", "identity", "isfinite", "isinf", "isnan", "leaky_relu", "less", "less_equal",
           "linspace", "log", "log10", "log1p", "log2", "log_sigmoid", "log_softmax", "logaddexp",
           "logical_and", "logical_not", "logical_or", "logsumexp", "matmul", "max", "maximum",
           "mean", "min", "minimum", "mod", "moments", "multiply", "nan_to_num", "negative", "norm",
           "normalize", "not_equal", "one_hot", "ones", "ones_like", "outer", "power", "prod",
           "rad2deg", "reciprocal", "relu", "relu6", "reshape", "round", "selu", "sigmoid", "sign",
           "silu", "sinh", "soft_shrink", "softmax", "softplus", "softsign", "sort",
           "sparse_categorical_crossentropy", "sparse_plus", "sparse_sigmoid", "split", "sqrt",
           "square", "squareplus", "squeeze", "stack", "std", "stop_gradient", "subtract", "sum",
           "swish", "take", "take_along_axis", "tanh", "tanh_shrink", "tensordot", "threshold",
           "tile", "trace", "transpose", "tril", "triu", "true_divide", "var", "where", "zeros",
           "zeros_like"]

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
        product = _integer_matmul(a, b, transpose_a, transpose_b, out)
        if product is not None:
            return product
        a = _as_float32_matrix(a, "a")
    if b.__class__ is not _ndarray or b.dtype is not _FLOAT32:
        b = _as_float32_matrix(b, "b")
    # Positional: pybind11's keyword matching costs more than a small product.
    return _core_matmul(a, b, transpose_a, transpose_b, out)


def _integer_matmul(a, b, transpose_a, transpose_b, out):
    """Keras's product of integer or bool arrays: int32 (bool for two bools, a logical
    product), computed by NumPy; None for any other operands (the float32 GEMM's)."""
    if out is not None or not isinstance(b, (_ndarray, list, tuple)):
        return None
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind not in "iub" or b.dtype.kind not in "iub":
        return None
    a = a.T if transpose_a else a
    b = b.T if transpose_b else b
    if a.dtype.kind == "b" and b.dtype.kind == "b":
        return np.matmul(a.astype(np.int32), b.astype(np.int32)) > 0
    return np.matmul(a.astype(np.int32), b.astype(np.int32))


def _symbolic_matmul(a, b, transpose_a, transpose_b, out):
    from densitron.layers import BatchMatMul, WeightMatMul
    from densitron.layers.layer import KerasTensor
    from densitron.variables import Variable

    if isinstance(b, KerasTensor) and out is None:  # two tensors: a product per sample
        return BatchMatMul(transpose_a, transpose_b)([a, b])
    if not isinstance(b, Variable) or transpose_a or transpose_b or out is not None:
        raise TypeError("On a symbolic tensor, matmul takes a layer's (features, units) weight "
                        "as `b` (matmul(x, self.w) in a traced call()). Received: "
                        f"b={b!r}, transpose_a={transpose_a}, transpose_b={transpose_b}")
    return WeightMatMul(b)(a)


def _activation(name, **defaults):
    def op(x, *args, **kwargs):
        from densitron import activations
        from densitron.layers.layer import KerasTensor

        fn = activations.get(name)
        if defaults and not args:  # (keras.ops's own defaults: ops.gelu's approximate=True)
            kwargs = {**defaults, **kwargs}
        if isinstance(x, KerasTensor):
            # (Keras's arguments, alpha, threshold..., bound by keyword)
            return activations.as_layer_call(fn, x, args, kwargs)
        # on values of any shape (a scalar, a list, a 1-D array): its NumPy formula; relu
        # of integers (or bools) stays integer, int32 as Keras's
        if name == "relu" and not args and not kwargs:
            ints = np.asarray(x)
            if ints.dtype.kind in "iub":
                return np.maximum(ints.astype(np.int32), 0)
        return fn(np.asarray(x, dtype=np.float32), *args, **kwargs)

    op.__name__ = op._activation_name = name  # (an activation argument: that activation)
    op.__doc__ = (f"{name}(x, ...): on a symbolic tensor (in a traced call()), an "
                  f"Activation('{name}') layer (Keras's arguments bound); on values, its "
                  "values in float32.")
    return op


relu = _activation("relu")
sigmoid = _activation("sigmoid")
tanh = _activation("tanh")
softmax = _activation("softmax")
gelu = _activation("gelu", approximate=True)  # (keras.ops.gelu's default)
silu = _activation("silu")
swish = _activation("swish")
elu = _activation("elu")
selu = _activation("selu")
softplus = _activation("softplus")
log_softmax = _activation("log_softmax")
relu6 = _activation("relu6")
leaky_relu = _activation("leaky_relu")
hard_sigmoid = _activation("hard_sigmoid")
hard_silu = _activation("hard_silu")
hard_swish = _activation("hard_swish")
softsign = _activation("softsign")
celu = _activation("celu")
hard_shrink = _activation("hard_shrink")
hard_tanh = _activation("hard_tanh")
log_sigmoid = _activation("log_sigmoid")
soft_shrink = _activation("soft_shrink")
sparse_plus = _activation("sparse_plus")
sparse_sigmoid = _activation("sparse_sigmoid")
squareplus = _activation("squareplus")
tanh_shrink = _activation("tanh_shrink")
threshold = _activation("threshold")


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


# --- elementwise math and reductions -----------------------------------------------------------
# On symbolic tensors (a traced call() or loss) each becomes one engine node (layers/math_ops.py);
# on arrays, NumPy's float32 values.

def _symbolic(*xs):
    from densitron.layers.layer import KerasTensor

    for x in xs:
        if isinstance(x, BatchReduction):
            x._refuse()
    return builtins.any(isinstance(x, KerasTensor) for x in xs)


def _number(value, name):
    if not is_number(value):
        raise TypeError(f"On a symbolic tensor, `{name}` must be a number (or, where both are "
                        f"tensors, a tensor of the same shape). Received: {name}={value!r}")
    return float(value)


def _keras_ints(x, other=None, bools=False):
    """x for NumPy to compute an op as Keras does on values: an integer array as it is, a bool
    one too (`bools`) or as int32 (Keras's ints for a bool's arithmetic), a Python number as it
    is (weakly typed, as in Keras's result_type), others as `other` (float32) or as they are."""
    if is_number(x) and not isinstance(x, np.generic):
        return x
    a = np.asarray(x)
    if a.dtype.kind in "iu" or (bools and a.dtype.kind == "b"):
        return a
    if a.dtype.kind == "b":
        return a.astype(np.int32)
    return a if other is None else a.astype(other)


def _math(name, x, a=0.0, b=0.0):
    from densitron.layers.math_ops import MathOp

    return MathOp(name, a, b)(x)


def _unary(name, numpy_fn):
    def op(x):
        if isinstance(x, BatchReduction):
            return x.then(name)
        if _symbolic(x):
            return _math(name, x)
        if hasattr(x, "_trace_op"):  # a regularizer's stand-in for the weights
            return x._trace_op(name)
        if name in _KEEPS_INTS:
            a = np.asarray(x)
            if a.dtype.kind in "iub":  # (Keras's integer results: abs(int32) is int32)
                return numpy_fn(a.astype(np.int32) if a.dtype == bool and name != "abs" and
                                name != "stop_gradient" else a)
        return numpy_fn(np.asarray(x, dtype=np.float32))

    op.__name__ = name
    op.__doc__ = (f"{name}(x) elementwise: on a symbolic tensor an engine op (with its "
                  "gradient), on an array NumPy's float32 values.")
    return op


# the ops whose values on integers (and bools) are Keras's of their dtype, not float32
_KEEPS_INTS = frozenset(["square", "abs", "sign", "round", "stop_gradient"])
square = _unary("square", np.square)
sqrt = _unary("sqrt", np.sqrt)
log = _unary("log", np.log)
exp = _unary("exp", np.exp)
log1p = _unary("log1p", np.log1p)
abs = _unary("abs", np.abs)  # noqa: A001 (Keras's name)
absolute = abs
# values without a gradient
stop_gradient = _unary("stop_gradient", lambda v: v)
sign = _unary("sign", np.sign)
floor = _unary("floor", np.floor)
ceil = _unary("ceil", np.ceil)
round = _unary("round", np.round)  # noqa: A001 (Keras's name; ties to even, as NumPy's)


def negative(x):
    if isinstance(x, BatchReduction) or _symbolic(x):
        return -x
    return np.negative(_keras_ints(x, np.float32))


def clip(x, x_min, x_max):
    """min(max(x, x_min), x_max); on a symbolic tensor the bounds are numbers (its gradient
    passes where x_min <= x <= x_max)."""
    if isinstance(x, BatchReduction):
        return x.then("clip", _number(x_min, "x_min"), _number(x_max, "x_max"))
    if _symbolic(x):
        return _math("clip", x, _number(x_min, "x_min"), _number(x_max, "x_max"))
    return np.clip(_keras_ints(x, np.float32), x_min, x_max)


def _min_max(x1, x2, maximum_):
    from densitron.layers import Maximum, Minimum
    from densitron.layers.layer import KerasTensor

    x1, x2 = _lift(x1, x2)
    reduced = [x for x in (x1, x2) if isinstance(x, BatchReduction)]
    if len(reduced) == 1:  # a batch's scalar and a number
        v = reduced[0]._number(x2 if reduced[0] is x1 else x1)
        return reduced[0].then("clip", v, np.inf) if maximum_ else \
            reduced[0].then("clip", -np.inf, v)
    if not _symbolic(x1, x2):
        return (np.maximum if maximum_ else np.minimum)(_keras_ints(x1, bools=True),
                                                        _keras_ints(x2, bools=True))
    if isinstance(x1, KerasTensor) and isinstance(x2, KerasTensor):
        from densitron.layers.layer import _match_batch_values

        return (Maximum if maximum_ else Minimum)()(list(_match_batch_values(x1, x2)))
    tensor, value = (x1, x2) if isinstance(x1, KerasTensor) else (x2, x1)
    v = _number(value, "x2" if tensor is x1 else "x1")
    return _math("clip", tensor, v, np.inf) if maximum_ else _math("clip", tensor, -np.inf, v)


def maximum(x1, x2):
    """The larger of x1 and x2, elementwise (a tensor and a number, or two tensors)."""
    return _min_max(x1, x2, True)


def minimum(x1, x2):
    """The smaller of x1 and x2, elementwise."""
    return _min_max(x1, x2, False)


def power(x1, x2):
    """x1 ** x2; on a symbolic tensor x2 is a number (2: x1·x1, as Keras's square)."""
    if isinstance(x1, BatchReduction) or hasattr(x1, "_trace_op"):
        return x1 ** x2
    if not _symbolic(x1, x2):
        return np.power(_keras_ints(x1), _keras_ints(x2))
    if _symbolic(x2):
        raise TypeError("On a symbolic tensor, power() takes a number as the exponent. "
                        f"Received: x2={x2!r}")
    e = _number(x2, "x2")
    return _math("square", x1) if e == 2.0 else _math("power", x1, e)


def divide(x1, x2):
    """x1 / x2, elementwise: two tensors of one shape (or a divisor per row, broadcast), or a
    tensor and a number."""
    from densitron.layers.layer import KerasTensor
    from densitron.layers.math_ops import Divide

    if isinstance(x1, BatchReduction):
        return x1 / x2
    if isinstance(x2, BatchReduction):  # (a number over a batch's scalar; a tensor refused)
        return x2.__rtruediv__(x1)
    if not _symbolic(x1, x2):
        return np.divide(np.asarray(x1, dtype=np.float32), np.asarray(x2, dtype=np.float32))
    if isinstance(x1, KerasTensor) and isinstance(x2, KerasTensor):
        from densitron.layers.layer import _match_batch_values, _row_broadcast

        x1, x2 = _match_batch_values(x1, x2)
        broadcast = _row_broadcast(x1, x2, "div")
        return broadcast if broadcast is not None else Divide()([x1, x2])
    if isinstance(x1, KerasTensor):
        return _math("divide_by", x1, _number(x2, "x2"))
    return _math("divide_into", x2, _number(x1, "x1"))


true_divide = divide


def _reduce(mode, x, axis, keepdims):
    if hasattr(x, "_trace_op"):  # a regularizer's stand-in for the weights
        return x._trace_op(mode, axis, keepdims)
    if not _symbolic(x):
        fn = {"mean": np.mean, "sum": np.sum, "max": np.max}[mode]
        return fn(_keras_ints(x, np.float32, bools=True), axis=axis, keepdims=keepdims)
    if axis is None and mode != "max":  # (the batch too: what a loss function may end with)
        return BatchReduction(x, mode)
    if axis in (0, (0,), [0]) and mode != "max" and len(x.shape) == 2:  # a column's, a batch
        return BatchColumns(x, mode)
    return _reduce_axes(mode, x, axis, keepdims)


def _reduce_axes(mode, x, axis, keepdims):
    """A reduction of a symbolic tensor over axes beside the batch axis: each run of adjacent
    axes by one Reduce, the last run first (a mean of equal groups' means is the mean)."""
    from densitron.layers.math_ops import Reduce, axis_positions

    rank = len(x.shape)
    pos = axis_positions(axis, rank)
    if pos[0] < 1 or pos[-1] >= rank:
        raise ValueError(f"On a symbolic tensor, {mode}() reduces axes beside the batch axis "
                         f"(1 to {rank - 1}, or -1 to {1 - rank}; axis=None: everything). "
                         f"Received: axis={axis!r} for a tensor of shape {x.shape}")
    runs = []
    for a in pos:
        if runs and a == runs[-1][-1] + 1:
            runs[-1].append(a)
        else:
            runs.append([a])
    for run in reversed(runs):
        x = Reduce(mode, keepdims, axis=run if len(run) > 1 else run[0])(x)
    return x


class BatchColumns:
    """mean(x, axis=0) or sum(x, axis=0) of a symbolic (batch, n) tensor: n values a batch,
    one a column, for a Metric's update_state to add to a variable of shape (n,) (a per-class
    count). Sums and differences of them, and multiples by numbers, are again such values."""

    def __init__(self, tensor, mode):
        self.tensor, self.mode = tensor, mode
        self.shape = (tensor.shape[-1],)

    def columns(self):
        """Each column's reduction over the batch (BatchReduction of x[..., c])."""
        return [BatchReduction(self.tensor[..., c], self.mode) for c in range(self.shape[0])]

    def _same(self, other, op):
        if not isinstance(other, BatchColumns) or other.mode != self.mode or \
                other.shape != self.shape:
            raise ValueError(
                f"On a symbolic tensor, {self.mode}(x, axis=0) gives a value a column, for a "
                f"Metric's update_state to add to a variable of that shape (with another "
                f"{self.mode}(y, axis=0) of as many columns, or times a number); elsewhere "
                f"{self.mode}() reduces the last axis only (axis=-1). Received: axis=0, then "
                f"{op}" + ("" if other is None else f" with {other!r}"))
        return other.tensor

    def __add__(self, other):
        return BatchColumns(self.tensor + self._same(other, "+"), self.mode)

    def __sub__(self, other):
        return BatchColumns(self.tensor - self._same(other, "-"), self.mode)

    def __radd__(self, other):
        return BatchColumns(self._same(other, "+") + self.tensor, self.mode)

    def __rsub__(self, other):
        return BatchColumns(self._same(other, "-") - self.tensor, self.mode)

    def __mul__(self, other):
        if not is_number(other):
            self._same(other, "*")
        return BatchColumns(self.tensor * other, self.mode)

    __rmul__ = __mul__

    def __truediv__(self, other):
        if not is_number(other):
            self._same(other, "/")
        return BatchColumns(self.tensor / other, self.mode)

    def __rtruediv__(self, other):
        self._same(other, "/")

    def __array__(self, *args, **kwargs):  # (NumPy's path of an op on it: ops.sqrt(...))
        self._same(None, "an op of densitron.ops")

    def __neg__(self):
        return self * -1.0

    def __repr__(self):
        return f"<BatchColumns {self.mode}(axis=0) of {self.tensor!r}>"


class BatchReduction:
    """mean(x) or sum(x) of a symbolic tensor over every axis, the batch's included: what a
    loss or metric function may end with (Keras then reduces the scalar, or averages a metric's
    over the batches). Numbers and densitron.ops' elementwise math may follow (an RMSE's
    sqrt): the engine applies them to each batch's scalar (`tail`: (MathOp id, a, b) in order).
    Combined with a tensor or another reduction (y_true - ops.mean(y_true), an R² as 1 -
    sum(...) / sum(...)), it becomes a tensor of the batch's value in every row (as_tensor)."""

    def __init__(self, tensor, mode, tail=()):
        self.tensor, self.mode, self.tail = tensor, mode, tuple(tail)

    def then(self, op, a=0.0, b=0.0):
        from densitron.layers.math_ops import MATH_OPS

        return BatchReduction(self.tensor, self.mode,
                              self.tail + ((MATH_OPS[op], float(a), float(b)),))

    def as_tensor(self, like=None):
        """The batch's value as a symbolic tensor of shape (None, 1), the same in every row (a
        BatchReduce node, then the tail's MathOps), to meet a tensor `like` of rank 1 or 2 (a
        rank-1 one through _match_batch_values)."""
        from densitron.layers.math_ops import MATH_OPS, BatchReduce, MathOp

        if like is not None and len(like.shape) > 2:
            raise TypeError(f"{self.mode}() over the batch axis combines with tensors of a "
                            "value or a row of values a sample. Received: a tensor of shape "
                            f"{like.shape}")
        names = {v: k for k, v in MATH_OPS.items()}
        t = BatchReduce(self.mode)(self.tensor)
        for op, a, b in self.tail:
            t = MathOp(names[op], a, b)(t)
        return t

    def _refuse(self, *args, **kwargs):
        raise TypeError(f"{self.mode}() over the batch axis gives one value a batch: numbers, "
                        "elementwise math and tensors can follow it. Received: "
                        f"{self.mode}(x) of x with shape {self.tensor.shape} with {args!r}")

    def _number(self, other):
        if not is_number(other):
            self._refuse(other)
        return float(other)

    def _with(self, other, method):
        """self `method` other as tensors, for another reduction or tensor; None for others."""
        from densitron.layers.layer import KerasTensor

        if isinstance(other, BatchReduction):
            other = other.as_tensor()
        if not isinstance(other, KerasTensor):
            return None
        mine = self.as_tensor(like=other)
        if method == "__rtruediv__":  # (a tensor's own __rtruediv__ takes numbers only)
            return divide(other, mine)
        return getattr(mine, method)(other)

    def __mul__(self, other):
        t = self._with(other, "__mul__")
        return t if t is not None else self.then("multiply_by", self._number(other))

    __rmul__ = __mul__

    def __truediv__(self, other):
        t = self._with(other, "__truediv__")
        return t if t is not None else self.then("divide_by", self._number(other))

    def __rtruediv__(self, other):
        t = self._with(other, "__rtruediv__")
        return t if t is not None else self.then("divide_into", self._number(other))

    def __add__(self, other):
        t = self._with(other, "__add__")
        return t if t is not None else self.then("add", self._number(other))

    __radd__ = __add__

    def __sub__(self, other):
        t = self._with(other, "__sub__")
        return t if t is not None else self.then("add", -self._number(other))

    def __rsub__(self, other):
        t = self._with(other, "__rsub__")
        return t if t is not None else \
            self.then("multiply_by", -1.0).then("add", self._number(other))

    def __neg__(self):
        return self.then("multiply_by", -1.0)

    def __pow__(self, other):
        e = self._number(other)
        return self.then("square") if e == 2.0 else self.then("power", e)

    def __abs__(self):
        return self.then("abs")

    def __repr__(self):
        return f"<BatchReduction {self.mode} of {self.tensor!r}, then {self.tail}>"


def _lift(*xs, alone=False):
    """xs with batch reductions as tensors (as_tensor) when they meet a tensor or another
    (with `alone`, always: an op that has no scalar form)."""
    from densitron.layers.layer import KerasTensor

    reduced = [x for x in xs if isinstance(x, BatchReduction)]
    like = next((x for x in xs if isinstance(x, KerasTensor)), None)
    if reduced and (alone or len(reduced) > 1 or like is not None):
        return tuple(x.as_tensor(like) if isinstance(x, BatchReduction) else x for x in xs)
    return xs


def max(x, axis=None, keepdims=False):  # noqa: A001 (Keras's name)
    """The maximum over `axis` (on a symbolic tensor, axes beside the batch axis; its
    gradient shared between ties)."""
    return _reduce("max", x, axis, keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001 (Keras's name)
    """The minimum over `axis` (on a symbolic tensor, axes beside the batch axis): -max(-x)."""
    if not _symbolic(x):
        return np.min(_keras_ints(x, np.float32, bools=True), axis=axis, keepdims=keepdims)
    return -max(-x, axis=axis, keepdims=keepdims)


def logsumexp(x, axis=None, keepdims=False):
    """log Σ exp(x) over `axis` (on a symbolic tensor, the last axis), the maximum taken out
    first as Keras's backends do."""
    if not _symbolic(x):
        v = np.asarray(x, dtype=np.float32)
        m = np.max(v, axis=axis, keepdims=True)
        out = np.log(np.sum(np.exp(v - m), axis=axis, keepdims=True)) + m
        return out if keepdims else np.squeeze(out, axis=axis)
    m = stop_gradient(max(x, axis=axis, keepdims=True))
    out = log(sum(exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else squeeze(out, axis=-1)


def norm(x, ord=None, axis=None, keepdims=False):
    """The Euclidean norm over `axis` (on a symbolic tensor, the last axis)."""
    if not _symbolic(x):
        return np.linalg.norm(np.asarray(x, dtype=np.float32), ord=ord, axis=axis,
                              keepdims=keepdims)
    if ord not in (None, 2, "euclidean"):
        raise ValueError("On a symbolic tensor, norm() is the Euclidean one. "
                         f"Received: ord={ord!r}")
    return sqrt(sum(square(x), axis=axis, keepdims=keepdims))


def normalize(x, axis=-1, order=2, epsilon=None):
    """Keras's ops.normalize: x divided by its `order`-norm over `axis` (at least epsilon,
    1e-7 by default). On a symbolic tensor, the Euclidean norm over the last axis."""
    epsilon = 1e-7 if epsilon is None else float(epsilon)
    if _symbolic(x):
        if order != 2 or axis not in (-1, len(x.shape) - 1):
            raise ValueError("On a symbolic tensor, normalize() divides by the Euclidean norm "
                             f"over the last axis. Received: axis={axis!r}, order={order!r}")
        return x / maximum(norm(x, axis=-1, keepdims=True), epsilon)
    a = np.asarray(x, dtype=np.float32)
    if order == 2:  # (Keras's: x * min(rsqrt(sum(x²)), 1 / epsilon))
        with np.errstate(divide="ignore"):
            inv = np.minimum(1.0 / np.sqrt(np.sum(np.square(a), axis=axis, keepdims=True)),
                             1.0 / epsilon)
        return (a * inv).astype(np.float32)
    return (a / np.maximum(np.linalg.norm(a, ord=order, axis=axis, keepdims=True), epsilon)
            ).astype(np.float32)


def ones_like(x, dtype=None):
    return x * 0.0 + 1.0 if _symbolic(x) else np.ones_like(np.asarray(x), dtype=dtype)


def zeros_like(x, dtype=None):
    return x * 0.0 if _symbolic(x) else np.zeros_like(np.asarray(x), dtype=dtype)


def cosh(x):
    return (exp(x) + exp(-x)) / 2.0 if _symbolic(x) else np.cosh(np.asarray(x, np.float32))


def sinh(x):
    return (exp(x) - exp(-x)) / 2.0 if _symbolic(x) else np.sinh(np.asarray(x, np.float32))


def logical_and(x1, x2):
    """Both masks 1.0 (on symbolic 1.0/0.0 masks, their product)."""
    if not _symbolic(x1, x2):
        return np.logical_and(x1, x2)
    return x1 * x2


def logical_or(x1, x2):
    if not _symbolic(x1, x2):
        return np.logical_or(x1, x2)
    return x1 + x2 - x1 * x2


def logical_not(x):
    return 1.0 - x if _symbolic(x) else np.logical_not(x)


def _last_axis_only(name, x, axis):
    rank = len(x.shape)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    if axis is None or len(axes) != 1 or axes[0] not in (-1, rank - 1) or rank < 2:
        raise ValueError(f"On a symbolic tensor, {name}() reduces the last axis only "
                         f"(axis=-1). Received: axis={axis!r} for a tensor of shape {x.shape}")


def mean(x, axis=None, keepdims=False):
    """The mean over `axis` (on a symbolic tensor, axes beside the batch axis)."""
    return _reduce("mean", x, axis, keepdims)


def sum(x, axis=None, keepdims=False):  # noqa: A001 (Keras's name)
    """The sum over `axis` (on a symbolic tensor, axes beside the batch axis)."""
    return _reduce("sum", x, axis, keepdims)


def _arg_reduce(mode, x, axis, keepdims):
    if not _symbolic(x):
        fn = np.argmax if mode == "max" else np.argmin
        return fn(np.asarray(x, dtype=np.float32), axis=axis, keepdims=keepdims)
    from densitron.layers.math_ops import ArgReduce

    _last_axis_only(f"arg{mode}", x, axis)
    return ArgReduce(mode, keepdims)(x)


def argmax(x, axis=None, keepdims=False):
    """The index of the first maximum along `axis` (on a symbolic tensor, the last axis, as
    a float: compare it with ops.equal; no gradient)."""
    return _arg_reduce("max", x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    """The index of the first minimum along `axis` (as argmax)."""
    return _arg_reduce("min", x, axis, keepdims)


def concatenate(xs, axis=0):
    """Joins tensors along `axis`: on symbolic tensors a Concatenate layer (not the batch
    axis), on arrays NumPy's."""
    xs = list(xs)
    if not _symbolic(*xs):
        return np.concatenate([np.asarray(x) for x in xs], axis=axis)
    from densitron.layers import Concatenate

    return Concatenate(axis=axis)(xs)


def stack(xs, axis=0):
    """Stacks tensors along a new `axis`: on symbolic tensors each gains a last axis of 1 and
    they are joined there (axis=-1 only), on arrays NumPy's."""
    xs = list(xs)
    if not _symbolic(*xs):
        return np.stack([np.asarray(x) for x in xs], axis=axis)
    rank = len(xs[0].shape)
    if axis not in (-1, rank):
        raise ValueError(f"On symbolic tensors, stack() adds the last axis only (axis=-1). "
                         f"Received: axis={axis!r} for tensors of rank {rank}")
    return concatenate([expand_dims(x, -1) for x in xs], axis=-1)


# NumPy's own for arrays (Keras's ops of the same names and meaning); on a symbolic tensor
# each refuses (the engine has no node for it) with what it received.
# --- ops composed of the ones above ---------------------------------------------------------
# On arrays NumPy's own float32 function; on symbolic tensors (and a batch's mean or sum) the
# composition, so each has the gradient of its parts.

def _composite(name, numpy_fn, traced, keeps_ints=False):
    def run(*xs):
        if builtins.any(isinstance(x, BatchReduction) for x in xs) or _symbolic(*xs):
            return traced(*xs)
        if keeps_ints:
            return numpy_fn(*(_keras_ints(x) for x in xs))
        return numpy_fn(*(np.asarray(x, dtype=np.float32) for x in xs))

    if traced.__code__.co_argcount == 1:
        def op(x):
            return run(x)
    else:
        def op(x1, x2):
            return run(x1, x2)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"{name}: NumPy's np.{numpy_fn.__name__} on arrays; on symbolic tensors "
                  "composed of the engine's ops (with their gradients).")
    return op


def _safe_quotient(x1, x2):
    """x1 / x2 with 0 where x2 is 0, and no infinity in either branch (a symbolic where()
    passes the gradient of both)."""
    zero = equal(x2, 0.0)
    return where(zero, 0.0, divide(x1, where(zero, 1.0, x2)))


def _np_divide_no_nan(x1, x2):
    zero = x2 == 0
    return np.where(zero, np.float32(0), x1 / np.where(zero, np.float32(1), x2))


reciprocal = _composite("reciprocal", np.reciprocal, lambda x: divide(1.0, x))
log2 = _composite("log2", np.log2, lambda x: multiply(log(x), 1.0 / math.log(2.0)))
log10 = _composite("log10", np.log10, lambda x: multiply(log(x), 1.0 / math.log(10.0)))
exp2 = _composite("exp2", np.exp2, lambda x: exp(multiply(x, math.log(2.0))))
expm1 = _composite("expm1", np.expm1, lambda x: subtract(exp(x), 1.0))
deg2rad = _composite("deg2rad", np.deg2rad, lambda x: multiply(x, math.pi / 180.0))
rad2deg = _composite("rad2deg", np.rad2deg, lambda x: multiply(x, 180.0 / math.pi))
divide_no_nan = _composite("divide_no_nan", _np_divide_no_nan, _safe_quotient)
floor_divide = _composite("floor_divide", np.floor_divide,
                          lambda x1, x2: floor(divide(x1, x2)), keeps_ints=True)
# x1 - floor(x1 / x2)·x2: the sign of the divisor, as NumPy's (and Keras's) mod
mod = _composite("mod", np.mod, lambda x1, x2: subtract(x1, multiply(floor(divide(x1, x2)), x2)),
                 keeps_ints=True)
hypot = _composite("hypot", np.hypot, lambda x1, x2: sqrt(add(square(x1), square(x2))))
# max + log(1 + e^-|x1 - x2|): no overflow for large inputs
logaddexp = _composite("logaddexp", np.logaddexp, lambda x1, x2: add(
    maximum(x1, x2), log1p(exp(negative(abs(subtract(x1, x2)))))))
heaviside = _composite("heaviside", np.heaviside, lambda x1, x2: where(
    greater(x1, 0.0), 1.0, where(less(x1, 0.0), 0.0, x2)))
amax = max


def fabs(x):
    """|x| as a float (Keras's float32 for integers too)."""
    return abs(x) if isinstance(x, BatchReduction) or _symbolic(x) else \
        np.fabs(np.asarray(x, dtype=np.float32))


amin = min


def moments(x, axes, keepdims=False, synchronized=False):
    """(mean, variance) of x over `axes` (on a symbolic tensor, the last axis)."""
    if synchronized:
        raise ValueError("densitron runs on one device: there is nothing to synchronize. "
                         f"Received: synchronized={synchronized!r}")
    if isinstance(axes, (list, tuple)):  # (Keras takes a list of axes)
        axes = axes[0] if len(axes) == 1 else tuple(axes)
    return mean(x, axis=axes, keepdims=keepdims), var(x, axis=axes, keepdims=keepdims)


def _epsilon():
    from densitron.backend import epsilon

    return epsilon()


def binary_crossentropy(target, output, from_logits=False):
    """Keras's ops.binary_crossentropy, elementwise (no reduction): -(t·log p + (1 - t)·log(1 -
    p)), p = output (its sigmoid with from_logits) clipped to [eps, 1 - eps]."""
    if from_logits:
        output = sigmoid(output)
    p = clip(output, _epsilon(), 1.0 - _epsilon())
    return negative(add(multiply(target, log(p)),
                        multiply(subtract(1.0, target), log(subtract(1.0, p)))))


def _last_axis(name, axis):
    if axis != -1:
        raise ValueError(f"densitron's ops.{name} reduces over the last axis. "
                         f"Received: axis={axis!r}")


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Keras's ops.categorical_crossentropy: -Σ t·log p over the last axis, p = output
    normalised to sum 1 and clipped to [eps, 1 - eps] (log_softmax with from_logits)."""
    _last_axis("categorical_crossentropy", axis)
    if from_logits:
        log_p = log_softmax(output)
    else:
        p = divide(output, sum(output, axis=-1, keepdims=True))
        log_p = log(clip(p, _epsilon(), 1.0 - _epsilon()))
    return negative(sum(multiply(target, log_p), axis=-1))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """categorical_crossentropy of the one-hot rows of the class ids `target`."""
    _last_axis("sparse_categorical_crossentropy", axis)
    if not _symbolic(target):
        target = np.asarray(target)
    rows = one_hot(target, output.shape[-1])
    if len(rows.shape) == len(output.shape) + 1:  # ids in a last axis of 1
        rows = reshape(rows, (-1, *output.shape[1:]))
    return categorical_crossentropy(rows, output, from_logits)


def _numpy_only(name, fn=None):
    fn = fn if fn is not None else getattr(np, name)

    def op(*args, **kwargs):
        from densitron.layers.layer import KerasTensor

        if builtins.any(isinstance(a, KerasTensor) for a in (*args, *kwargs.values())):
            raise TypeError(f"densitron has no engine node for ops.{name} on a symbolic "
                            f"tensor; it computes on arrays only. Received: args={args!r}")
        return fn(*args, **kwargs)

    op.__name__ = name
    op.__doc__ = f"{name}: NumPy's np.{name} on arrays (no symbolic form)."
    return op


_NUMPY_ONLY = ["all", "any", "arange", "argsort", "broadcast_to", "cumprod", "cumsum", "diag",
               "dot", "einsum", "eye", "flip", "full", "full_like", "identity", "isfinite",
               "isinf", "isnan", "linspace", "nan_to_num", "ones", "outer", "prod", "sort",
               "split", "take", "take_along_axis", "tile", "trace", "transpose",
               "tril", "triu", "zeros"]
for _name in _NUMPY_ONLY:
    globals()[_name] = _numpy_only(_name)

_numpy_split = split  # noqa: F821  (the arrays' form, made above)


def split(x, indices_or_sections, axis=0):
    """Keras's ops.split: NumPy's on arrays; a symbolic tensor's pieces along one of a
    sample's axes (the batch axis stays whole), each a slice of it (the masking guide's
    TemporalSplit)."""
    if not _symbolic(x):
        return _numpy_split(x, indices_or_sections, axis=axis)
    a = _axis(x, axis)
    size = x.shape[a]
    if size is None:
        raise ValueError(f"A symbolic tensor is split along an axis of known size. Received: "
                         f"axis={axis} of a tensor of shape {x.shape}")
    if isinstance(indices_or_sections, (int, np.integer)) and not isinstance(
            indices_or_sections, bool):
        sections = int(indices_or_sections)
        if sections <= 0 or size % sections:
            raise ValueError("array split does not result in an equal division. Received: "
                             f"indices_or_sections={indices_or_sections} for an axis of "
                             f"size {size}")
        bounds = [size * k // sections for k in range(sections + 1)]
    else:
        bounds = [0, *(int(i) for i in indices_or_sections), size]
    whole = (builtins.slice(None),) * a  # (the module's own `slice` is Keras's op)
    return [x[(*whole, builtins.slice(lo, hi))] for lo, hi in zip(bounds, bounds[1:])]


def _filled(name, value_of, numpy_op):
    """ops.<name>(shape, ...): numpy_op's on a shape of numbers; a tensor of `value_of`'s
    value with a symbolic batch size first."""

    def op(shape, *args, **kwargs):
        batch = _batch_shape(shape, f"ops.{name}")
        if batch is None:
            return numpy_op(shape, *args, **kwargs)
        # (the engine's values are float32: a dtype given is taken as float32's)
        return _batch_fill(batch[0], batch[1], value_of(*args, **kwargs))

    op.__name__ = name
    op.__doc__ = (f"{name}(shape, ...): NumPy's on a shape of numbers; with a symbolic batch "
                  "size first (ops.shape(x)[0]), a tensor of that batch (float32 values).")
    return op


def _fill_value(fill_value, dtype=None):
    return _number(fill_value, "fill_value")


def _numpy_full(numpy_op):
    def full(shape, fill_value, dtype=None):  # (Keras's float32 by default)
        return numpy_op(shape, fill_value, dtype="float32" if dtype is None else dtype)

    return full


# (zeros, ones and full on the right: _numpy_only's, made above)
zeros = _filled("zeros", lambda dtype=None: 0.0, zeros)  # noqa: F821
ones = _filled("ones", lambda dtype=None: 1.0, ones)  # noqa: F821
full = _filled("full", _fill_value, _numpy_full(full))  # noqa: F821


def tensordot(x1, x2, axes=2):
    """NumPy's tensordot on arrays. On symbolic tensors: every axis of two tensors of the same
    shape contracted (axes=2 at rank 2, the batch's axis included) is the batch's sum of
    x1·x2, one value a batch (as Keras's collaborative-filtering example uses it); x1's last
    axis against a layer weight's first (axes=1) is matmul(x1, weight)."""
    from densitron.layers.layer import KerasTensor
    from densitron.variables import Variable

    if not _symbolic(x1, x2):
        return np.tensordot(x1, x2, axes)
    rank = len(x1.shape) if isinstance(x1, KerasTensor) else None

    def pairs(n):
        return [list(range(n)), list(range(n))]

    number = is_number(axes)
    if (isinstance(x1, KerasTensor) and isinstance(x2, KerasTensor) and x1.shape == x2.shape
            and ((number and axes == rank) or _as_axes(axes) == pairs(rank))):
        return sum(x1 * x2)
    if (isinstance(x1, KerasTensor) and isinstance(x2, Variable) and len(x2.shape) == 2
            and ((number and axes == 1) or _as_axes(axes) == [[rank - 1], [0]] or
                 _as_axes(axes) == [[-1], [0]])):
        return matmul(x1, x2)
    raise TypeError(
        "On symbolic tensors, tensordot contracts every axis of two tensors of the same shape "
        "(the batch's sum of their product), or a tensor's last axis with a layer weight's "
        f"first (axes=1). Received: x1={x1!r}, x2={x2!r}, axes={axes!r}")


def _as_axes(axes):
    """tensordot's axes as two lists (None when it is a number)."""
    if is_number(axes):
        return None
    try:
        pairs = [[int(a) for a in np.atleast_1d(side)] for side in axes]
    except (TypeError, ValueError):
        return None
    return pairs if len(pairs) == 2 else None


# More of Keras's NumPy-like ops, on arrays only: NumPy's functions of the same name (those
# this NumPy has), and Keras's linear algebra as np.linalg's.
_MORE_NUMPY = ["allclose", "angle", "append", "arccos", "arccosh", "arcsin", "arcsinh",
               "arctan", "arctan2", "arctanh", "argpartition", "array", "array_split",
               "average", "bartlett", "bincount", "bitwise_and", "bitwise_invert",
               "bitwise_left_shift", "bitwise_not", "bitwise_or", "bitwise_right_shift",
               "bitwise_xor", "blackman", "cbrt", "conj", "conjugate", "copy", "corrcoef",
               "correlate", "cos", "count_nonzero", "cross", "diagflat", "diagonal", "diff",
               "digitize", "dsplit", "dstack", "empty", "empty_like", "fliplr", "flipud", "fmax",
               "fmin", "fmod", "gcd", "geomspace", "hamming", "hanning", "histogram", "hsplit",
               "hstack", "i0", "imag", "inner", "isclose", "isin", "isneginf", "isposinf",
               "isreal", "kaiser", "kron", "lcm", "ldexp", "left_shift", "logaddexp2",
               "logical_xor", "logspace", "median", "meshgrid", "moveaxis", "nanargmax",
               "nanargmin", "nancumprod", "nancumsum", "nanmax", "nanmean", "nanmedian",
               "nanmin", "nanpercentile", "nanprod", "nanquantile", "nanstd", "nansum", "nanvar",
               "ndim", "nextafter", "nonzero", "pad", "percentile", "ptp", "quantile", "ravel",
               "real", "repeat", "right_shift", "roll", "rot90", "searchsorted", "select",
               "shape", "signbit", "sin", "sinc", "size", "swapaxes", "tan", "trapezoid", "tri",
               "trunc", "unique", "unravel_index", "unstack", "vander", "vdot", "vectorize",
               "vsplit", "vstack"]
_LINALG = {"cholesky": "cholesky", "det": "det", "eig": "eig", "eigh": "eigh", "inv": "inv",
           "lstsq": "lstsq", "pinv": "pinv", "qr": "qr", "slogdet": "slogdet",
           "solve": "solve", "svd": "svd", "matrix_rank": "matrix_rank"}
_MORE = [n for n in _MORE_NUMPY if hasattr(np, n)]
for _name in _MORE:
    globals()[_name] = _numpy_only(_name)
for _name, _linalg_name in _LINALG.items():
    globals()[_name] = _numpy_only(_name, getattr(np.linalg, _linalg_name))
del _name, _linalg_name


class BatchSize(BatchReduction):
    """The batch axis of a symbolic tensor's ops.shape (`source`'s row count, known only when
    the model runs): as a value, the batch's sum of a one a row (a BatchReduction: a loss
    divided by it, a Metric's count growing by it, ops.size's rows × the static size); in a
    shape, the batch axis (ops.reshape, ops.zeros/ones/full, densitron.random.normal)."""

    def __init__(self, source):
        self.source, self.mode, self.tail = source, "sum", ()
        self._ones = None

    @property
    def tensor(self):
        """A one for each sample of `source` (made when the size is first used as a value)."""
        if self._ones is None:
            self._ones = _batch_fill(self.source, (), 1.0)
        return self._ones

    def __index__(self):
        raise TypeError("The batch size of a symbolic tensor is known only when the model runs: "
                        "ops.shape(x)[0] computes as a tensor (arithmetic, ops.cast) or stands "
                        "for the batch axis in ops.reshape, ops.zeros, ops.ones, ops.full and "
                        "densitron.random.normal's shape. Received: it used as a number, of "
                        f"{self.source!r}")

    __int__ = __float__ = __index__

    def __repr__(self):
        return "None"


def _batch_fill(source, rest, value):
    """`value` in a tensor of shape (batch, *rest) of source's batch (no gradient)."""
    from densitron._op_marks import makes_op_layers
    from densitron.layers.math_ops import BatchFill

    def fill():
        t = BatchFill(rest)(source)
        return t if value == 0.0 else _math("add", t, value)

    return makes_op_layers(fill)()


def _batch_shape(shape, name):
    """(source, rest) of a shape whose first entry is a symbolic batch size (ops.shape(x)[0]),
    None for a shape without one; a ValueError for one elsewhere."""
    if not isinstance(shape, (list, tuple)):
        return None
    if builtins.any(isinstance(d, BatchSize) for d in shape[1:]) or \
            builtins.any(isinstance(d, BatchReduction) and not isinstance(d, BatchSize)
                         for d in shape):
        raise ValueError(f"A symbolic batch size (ops.shape(x)[0]) stands for the batch axis, "
                         f"the first of {name}'s shape, as it is. Received: shape={shape!r}")
    if not shape or not isinstance(shape[0], BatchSize):
        return None
    rest = tuple(shape[1:])
    if not builtins.all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
                        for d in rest):
        raise ValueError(f"The dimensions after the batch size in {name}'s shape must be "
                         f"non-negative integers. Received: shape={shape!r}")
    return shape[0].source, rest


def shape(x):
    """The shape of x as a tuple; of a symbolic tensor, its batch axis a BatchSize (a symbolic
    scalar of the batch's row count), its other axes ints."""
    from densitron.layers.layer import KerasTensor

    if isinstance(x, KerasTensor):
        return (BatchSize(x), *x.shape[1:])
    return np.shape(x)


def size(x):
    """The number of values of x; of a symbolic tensor, a symbolic scalar: its batch's rows ×
    the size of a sample."""
    from densitron.layers.layer import KerasTensor

    if isinstance(x, KerasTensor):
        per_sample = int(np.prod(x.shape[1:]))
        rows = BatchSize(x)
        return rows if per_sample == 1 else rows * float(per_sample)
    return int(np.size(x))


def _arrays_only(fn):
    """fn on arrays; a TypeError naming the op for a symbolic tensor."""
    op = _numpy_only(fn.__name__, fn)
    op.__doc__ = fn.__doc__
    return op


@_arrays_only
def logdet(x):
    """log(det(x)) of a positive-definite matrix (Keras's ops.logdet)."""
    return np.linalg.slogdet(x)[1]


@_arrays_only
def is_tensor(x):
    """Whether x is an array (densitron's tensors are NumPy arrays)."""
    return isinstance(x, np.ndarray)


@_arrays_only
def get_item(x, key):
    return np.asarray(x)[key]


@_arrays_only
def slice(inputs, start_indices, shape):  # noqa: A001 (Keras's name)
    """inputs[start:start + shape] along every axis."""
    return np.asarray(inputs)[tuple(builtins.slice(b, b + n) for b, n in zip(start_indices,
                                                                             shape))]


@_arrays_only
def top_k(x, k, sorted=True):  # (Keras's argument name)
    """(values, indices) of the k largest entries of each row of the last axis, largest first
    (ties by index)."""
    x = np.asarray(x)
    idx = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(x, idx, axis=-1), idx.astype(np.int32)


@_arrays_only
def in_top_k(targets, predictions, k):
    """Whether each row's target class is among its k largest predictions (ties count)."""
    predictions = np.asarray(predictions)
    targets = np.asarray(targets).astype(np.int64)
    target_values = np.take_along_axis(predictions, targets[:, None], axis=-1)
    return (predictions > target_values).sum(axis=-1) < k


def _erf_fn(name):
    import math

    f = np.vectorize(getattr(math, name), otypes=[np.float64])
    return lambda x: f(np.asarray(x, dtype=np.float64)).astype(np.float32)


erf = _numpy_only("erf", _erf_fn("erf"))
erfc = _numpy_only("erfc", _erf_fn("erfc"))
rsqrt = _composite("rsqrt", lambda v: 1.0 / np.sqrt(v), lambda x: divide(1.0, sqrt(x)))


@_arrays_only
def cond(pred, true_fn, false_fn):
    return true_fn() if pred else false_fn()


@_arrays_only
def switch(index, branches, *operands):
    return branches[builtins.max(0, builtins.min(int(index), len(branches) - 1))](*operands)


@_arrays_only
def while_loop(cond, body, loop_vars, maximum_iterations=None):
    single = not isinstance(loop_vars, (list, tuple))
    state = (loop_vars,) if single else tuple(loop_vars)
    steps = 0
    while cond(*state) and (maximum_iterations is None or steps < maximum_iterations):
        out = body(*state)
        state = (out,) if single else tuple(out)
        steps += 1
    return state[0] if single else type(loop_vars)(state)


@_arrays_only
def fori_loop(lower, upper, body_fun, init_val):
    value = init_val
    for i in range(lower, upper):
        value = body_fun(i, value)
    return value


@_arrays_only
def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """Keras's scan: carry, y = f(carry, x) over xs (or `length` times with x None); returns
    the last carry and the stacked ys."""
    n = len(xs) if xs is not None else length
    order = range(n - 1, -1, -1) if reverse else range(n)
    carry, ys = init, []
    for i in order:
        carry, y = f(carry, None if xs is None else xs[i])
        ys.append(y)
    if reverse:
        ys.reverse()
    return carry, (np.stack(ys) if ys and ys[0] is not None else None)


@_arrays_only
def map(f, xs):  # noqa: A001 (Keras's name)
    return np.stack([f(x) for x in xs])


_MORE += ["cholesky", "cond", "det", "eig", "eigh", "erf", "erfc", "fori_loop", "get_item",
          "in_top_k", "inv", "is_tensor", "logdet", "lstsq", "map", "matrix_rank", "pinv", "qr",
          "rsqrt", "scan", "slice", "slogdet", "solve", "svd", "switch", "top_k", "while_loop"]
__all__ += [n for n in _MORE if n not in __all__]  # (the names this NumPy has)


def glu(x, axis=-1):
    """Keras's gated linear unit: the first half of `axis` times the sigmoid of the second
    (on a symbolic tensor, the last axis: two slices, a sigmoid and a product)."""
    if not _symbolic(x):
        x = np.asarray(x, dtype=np.float32)
        if x.shape[axis] % 2 != 0:
            raise ValueError(f"axis size must be divisible by 2. Received: x.shape={x.shape} "
                             f"with axis={axis}")
        a, b = np.split(x, 2, axis)
        return (a / (1.0 + np.exp(-b.astype(np.float64)))).astype(np.float32)
    _last_axis_only("glu", x, axis)
    half = x.shape[-1] // 2
    if x.shape[-1] % 2 != 0:
        raise ValueError(f"axis size must be divisible by 2. Received: x.shape={x.shape} "
                         f"with axis={axis}")
    return x[..., :half] * sigmoid(x[..., half:])


def var(x, axis=None, keepdims=False):
    """The variance over `axis`, mean((x - mean(x))²) (on a symbolic tensor, the last axis)."""
    if not _symbolic(x):
        return np.var(np.asarray(x, dtype=np.float32), axis=axis, keepdims=keepdims)
    _last_axis_only("var", x, axis)
    centred = x - mean(x, axis=-1, keepdims=True)
    return mean(square(centred), axis=-1, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    """The standard deviation over `axis`, sqrt(var(x)) (on a symbolic tensor, the last axis)."""
    if not _symbolic(x):
        return np.std(np.asarray(x, dtype=np.float32), axis=axis, keepdims=keepdims)
    return sqrt(var(x, axis=axis, keepdims=keepdims))


def cast(x, dtype):
    """x as `dtype`. A symbolic tensor stays float32 and takes the cast's values: to a float
    dtype as it is, to bool 1.0 where nonzero, to an integer dtype truncated toward zero."""
    if not isinstance(x, BatchReduction) and not _symbolic(x):
        return np.asarray(x).astype(dtype)
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        raise ValueError(f"Invalid dtype: {dtype!r}. Received: dtype={dtype!r}") from None
    if isinstance(x, BatchReduction):  # (a batch's value: a batch size is a whole number)
        if kind == "f" or (kind in "iu" and isinstance(x, BatchSize)):
            return x
        x = x.as_tensor()
    if kind == "b":
        return not_equal(x, 0.0)
    if kind in "iu":
        return sign(x) * floor(abs(x))
    if kind != "f":
        raise ValueError(f"A symbolic tensor casts to float, int or bool dtypes. "
                         f"Received: dtype={dtype!r}")
    return x


# --- comparisons, selection and shapes ----------------------------------------------------------

def _comparison(name, numpy_fn):
    def op(x1, x2):
        from densitron.layers.layer import KerasTensor

        x1, x2 = _lift(x1, x2, alone=True)
        # (a bool against a symbolic tensor, whose masks are 1.0/0.0: ops.equal(mask, True))
        x1, x2 = (float(v) if isinstance(v, (bool, np.bool_)) else v for v in (x1, x2))
        if not _symbolic(x1, x2):
            return numpy_fn(np.asarray(x1, dtype=np.float32), np.asarray(x2, dtype=np.float32))
        if isinstance(x1, KerasTensor) and isinstance(x2, KerasTensor):
            return _math(name, x1 - x2, 0.0)  # (the difference against 0)
        if isinstance(x1, KerasTensor):
            return _math(name, x1, _number(x2, "x2"))
        flipped = {"greater": "less", "less": "greater", "greater_equal": "less_equal",
                   "less_equal": "greater_equal"}.get(name, name)
        return _math(flipped, x2, _number(x1, "x1"))

    op.__name__ = name
    op.__doc__ = (f"{name}(x1, x2) elementwise: on symbolic tensors 1.0 where it holds, else 0.0 "
                  "(no gradient, a float mask for where() or arithmetic); on arrays NumPy's.")
    return op


greater = _comparison("greater", np.greater)
greater_equal = _comparison("greater_equal", np.greater_equal)
less = _comparison("less", np.less)
less_equal = _comparison("less_equal", np.less_equal)
equal = _comparison("equal", np.equal)
not_equal = _comparison("not_equal", np.not_equal)


def where(condition, x1, x2):
    """x1 where condition holds, else x2: on symbolic tensors, with a condition of 1.0/0.0
    (a comparison's), condition·x1 + (1 - condition)·x2 (each branch takes the gradient where
    it is chosen; a NaN or infinity in the other branch still shows through)."""
    condition, x1, x2 = _lift(condition, x1, x2)
    if not _symbolic(condition, x1, x2):
        return np.where(np.asarray(condition), _keras_ints(x1, np.float32),
                        _keras_ints(x2, np.float32))
    from densitron.layers.layer import KerasTensor

    if not isinstance(condition, KerasTensor):
        raise TypeError("On symbolic tensors, where() takes a symbolic condition (a "
                        f"comparison's). Received: condition={condition!r}")
    return condition * x1 + (1.0 - condition) * x2


def _reshaped(x, shape):
    from densitron.layers import Reshape

    if tuple(shape) == tuple(x.shape[1:]):
        return x
    if [d is None for d in shape].count(True) == 1:  # (steps of any length: its -1)
        shape = [-1 if d is None else d for d in shape]
    return Reshape(tuple(shape))(x)


def reshape(x, newshape):
    """x in a new shape; on a symbolic tensor the first axis (the batch's) stays: -1 or None."""
    if not _symbolic(x):
        return np.reshape(np.asarray(x), newshape)
    shape = tuple(newshape)
    # (ops.shape(x)[0], Keras's common way to name the batch axis, stands for it as -1)
    batch = shape and isinstance(shape[0], BatchSize)
    if builtins.any(isinstance(d, BatchReduction) for d in shape[1:]) or \
            not shape or not (batch or shape[0] in (-1, None)):
        raise ValueError("On a symbolic tensor, reshape() keeps the batch axis first (-1, None "
                         "or ops.shape(x)[0]); the other dimensions are integers. "
                         f"Received: newshape={newshape!r}")
    return _reshaped(x, shape[1:])


def _axis(x, axis, extra=0):
    rank = len(x.shape) + extra
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or \
            not -rank <= axis < rank or axis % rank == 0:
        raise ValueError(f"On a symbolic tensor, `axis` must name an axis other than the "
                         f"batch's. Received: axis={axis!r} for a tensor of shape {x.shape}")
    return int(axis) % rank


def squeeze(x, axis=None):
    """x without its axes of size 1 (axis None: all but the batch's)."""
    if not _symbolic(x):
        return np.squeeze(np.asarray(x), axis=axis)
    shape = list(x.shape[1:])
    if axis is None:
        return _reshaped(x, [d for d in shape if d != 1])
    a = _axis(x, axis) - 1
    if shape[a] != 1:
        raise ValueError(f"Cannot squeeze axis {axis} of size {shape[a]}. Received: axis={axis}")
    return _reshaped(x, shape[:a] + shape[a + 1:])


def expand_dims(x, axis):
    """x with a new axis of size 1 at `axis`."""
    if not _symbolic(x):
        return np.expand_dims(np.asarray(x), axis)
    a = _axis(x, axis, extra=1) - 1
    shape = list(x.shape[1:])
    return _reshaped(x, shape[:a] + [1] + shape[a:])


def one_hot(x, num_classes):
    """Each value of x (a class id; truncated, as cast to int) as a row of num_classes with 1
    at it (none for an id outside [0, num_classes)): shape x.shape + (num_classes,). No
    gradient."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or \
            num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive integer. "
                         f"Received: num_classes={num_classes!r}")
    return _one_hot(x, int(num_classes))


def _one_hot(x, num_classes):
    if not _symbolic(x):
        ids = np.asarray(x).astype(np.int64)
        out = np.zeros(ids.shape + (num_classes,), np.float32)
        ok = (ids >= 0) & (ids < num_classes)
        np.put_along_axis(out, np.where(ok, ids, 0)[..., None], ok[..., None].astype(np.float32),
                          axis=-1)
        return out
    from densitron.layers import CategoryEncoding

    shape = tuple(x.shape[1:])
    column = _reshaped(x, (int(np.prod(shape)) if shape else 1, 1))
    return _reshaped(CategoryEncoding(int(num_classes), output_mode="one_hot")(column),
                     (*shape, int(num_classes)))


@_arrays_only
def segment_sum(data, segment_ids, num_segments=None, sorted=False):  # (Keras's names)
    """The sum of data's rows of each segment id (num_segments: the largest id + 1 when None;
    rows of an id outside [0, num_segments) are dropped), in data's dtype."""
    data, ids = np.asarray(data), np.asarray(segment_ids).astype(np.int64)
    if ids.ndim != 1 or len(ids) != len(data):
        raise ValueError("`segment_ids` must be a 1-D array of an id a row of `data`. Received: "
                         f"segment_ids.shape={ids.shape}, data.shape={data.shape}")
    n = int(ids.max()) + 1 if num_segments is None and len(ids) else int(num_segments or 0)
    out = np.zeros((n, *data.shape[1:]), data.dtype if data.dtype != bool else np.int32)
    kept = (ids >= 0) & (ids < n)
    np.add.at(out, ids[kept], data[kept])
    return out


_MORE.append("segment_sum")
__all__.append("segment_sum")
# JAX's dtypes, as Keras 3 (JAX backend, 64-bit types off) returns them for NumPy arrays
_KERAS_DTYPES = {np.dtype(np.int64): np.int32, np.dtype(np.uint64): np.uint32,
                 np.dtype(np.float64): np.float32}
# (matmul: float32 already, its fast path kept; the others give back what the user's gave)
_OWN_DTYPES = frozenset(["matmul", "shape", "size", "ndim", "is_tensor", "cond", "switch",
                         "while_loop", "fori_loop", "scan", "map", "vectorize"])


def _keras_dtype(out):
    """out (an op's value) with 64-bit arrays as Keras's 32-bit ones (a tuple's and list's)."""
    cls = out.__class__
    if cls is _ndarray or isinstance(out, np.generic):
        to = _KERAS_DTYPES.get(out.dtype)
        return out if to is None else out.astype(to)
    if cls is tuple or cls is list:
        return cls(_keras_dtype(o) for o in out)
    return out


def _keras_dtypes(fn):
    @functools.wraps(fn)
    def op(*args, **kwargs):
        return _keras_dtype(fn(*args, **kwargs))

    return op


def _mark_op_layers():
    """Every function and reduction method of ops marks the layers it makes on symbolic
    tensors as ops' (Keras's operations, which a model's `layers` leaves out)."""
    from densitron._op_marks import makes_op_layers, mark_op_methods
    from densitron.keras_format import OP_FUNCTIONS, recording

    names, marked = globals(), {}
    for name in __all__:
        fn = names.get(name)
        if isinstance(fn, types.FunctionType) and fn.__module__ == __name__:
            if id(fn) not in marked:  # (an alias stays the same function: ops.amax, ops.max)
                # (files write Keras's op of the function's own name: ops.amax's as Max)
                marked[id(fn)] = (recording(fn.__name__, fn) if fn.__name__ in OP_FUNCTIONS
                                  else makes_op_layers(fn))
                if fn.__name__ not in _OWN_DTYPES:
                    marked[id(fn)] = _keras_dtypes(marked[id(fn)])
            names[name] = marked[id(fn)]
    for cls in (BatchColumns, BatchReduction):
        mark_op_methods(cls)


_mark_op_layers()


class _Namespace(types.ModuleType):
    """Keras's sub-namespaces of ops (ops.nn.sigmoid, ops.numpy.sum, ops.linalg.inv, ...):
    each name the same function as densitron.ops's."""

    def __getattr__(self, name):
        value = globals().get(name)
        if value is None or name.startswith("_") or isinstance(value, types.ModuleType):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        return value


nn, numpy, linalg, core, image = (
    _Namespace(f"densitron.ops.{_sub}") for _sub in ("nn", "numpy", "linalg", "core", "image"))
