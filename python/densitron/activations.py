"""Activations by Keras name, with Keras 3's signatures and formulas (keras/src/activations,
NumPy backend). Each function computes on NumPy arrays in float64 and returns the input's float
dtype (float32 for non-float input); inside a layer the C++ engine runs it, under the id and
parameters `engine_spec` gives."""

import functools
import inspect
import math

import numpy as np

from densitron._op_marks import makes_op_layers as _op_layers

# Engine ids: must match densitron::Activation in cpp/include/densitron/ops.h.
_ENGINE_IDS = {
    "linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "softmax": 4, "leaky_relu": 5, "relu6": 6,
    "elu": 7, "selu": 8, "gelu": 9, "silu": 11, "softplus": 12, "softsign": 13,
    "hard_sigmoid": 14, "hard_silu": 15, "log_softmax": 16, "exponential": 17, "mish": 18,
    "celu": 19, "hard_shrink": 20, "hard_tanh": 21, "log_sigmoid": 22, "soft_shrink": 23,
    "sparse_plus": 24, "sparse_sigmoid": 25, "squareplus": 26, "tanh_shrink": 27, "threshold": 28,
}
_GELU_APPROX = 10

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@_op_layers
def as_layer_call(fn, x, args, kwargs):
    """fn(x, *args, **kwargs) for a symbolic x (a layer's call() being traced, or densitron.ops
    on a tensor): an Activation layer of fn with Keras's arguments bound by keyword."""
    from densitron.layers import Activation

    if args or kwargs:
        try:
            bound = inspect.signature(fn).bind(x, *args, **kwargs).arguments
        except TypeError as e:
            raise TypeError(f"{fn.__name__}: {e}. Received: args={args}, kwargs={kwargs}") \
                from None
        fn = functools.partial(fn, **{k: v for k, v in bound.items() if k != "x"})
    return Activation(fn)(x)


def _traceable(fn):
    """fn on arrays as written; on a symbolic tensor, an Activation layer of it, so a custom
    layer's call() may apply densitron.activations functions as Keras's calls keras's."""
    @functools.wraps(fn)
    def activation(x, *args, **kwargs):
        from densitron.layers.layer import KerasTensor

        if isinstance(x, KerasTensor):
            return as_layer_call(activation, x, args, kwargs)
        return fn(x, *args, **kwargs)

    return activation


def _in(x):
    """x as float64 for the math, and the dtype to return."""
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype("float32")
    return x.astype(np.float64), dtype


def _out(y, dtype):
    return np.asarray(y).astype(dtype, copy=False)


@_traceable
def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """max(x, 0) by default; Keras's ReLU: x for x > threshold else 0, clipped to
    [0, max_value] when given, minus negative_slope·max(threshold - x, 0)."""
    x, dtype = _in(x)
    if negative_slope != 0.0 and max_value is None and threshold == 0:
        return _out(np.maximum(x, negative_slope * x), dtype)
    y = np.where(x > threshold, x, 0.0) if threshold != 0 else np.maximum(x, 0.0)
    if max_value is not None:
        y = np.clip(y, 0.0, max_value)
    if negative_slope != 0.0:
        y = y - negative_slope * np.maximum(threshold - x, 0.0)
    return _out(y, dtype)


@_traceable
def leaky_relu(x, negative_slope=0.2):
    x, dtype = _in(x)
    return _out(np.maximum(x, negative_slope * x), dtype)


@_traceable
def relu6(x):
    x, dtype = _in(x)
    return _out(np.minimum(np.maximum(x, 0.0), 6.0), dtype)


@_traceable
def elu(x, alpha=1.0):
    """x for x >= 0, alpha·(exp(x) - 1) below."""
    x, dtype = _in(x)
    return _out(np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0.0))), dtype)


@_traceable
def selu(x):
    """scale·elu(x, alpha) with alpha = 1.67326324, scale = 1.05070098."""
    x, dtype = _in(x)
    e = np.where(x >= 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))
    return _out(_SELU_SCALE * e, dtype)


_erfc = np.vectorize(math.erfc, otypes=[np.float64])


@_traceable
def gelu(x, approximate=False):
    """x·Φ(x) = x·(1 + erf(x/√2))/2; approximate: x·(1 + tanh(√(2/π)(x + 0.044715x³)))/2."""
    x, dtype = _in(x)
    if approximate:
        z = np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)
        return _out(x * _sigmoid(2.0 * z), dtype)  # (1 + tanh z)/2 = sigmoid(2z)
    return _out(0.5 * x * _erfc(-x / np.sqrt(2.0)), dtype)  # 1 + erf(t) = erfc(-t)


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@_traceable
def silu(x):
    """x·sigmoid(x)."""
    x, dtype = _in(x)
    return _out(x * _sigmoid(x), dtype)


swish = silu


def _softplus(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


@_traceable
def softplus(x):
    """log(exp(x) + 1)."""
    x, dtype = _in(x)
    return _out(_softplus(x), dtype)


@_traceable
def softsign(x):
    """x / (|x| + 1)."""
    x, dtype = _in(x)
    return _out(x / (np.abs(x) + 1.0), dtype)


@_traceable
def sigmoid(x):
    """1 / (1 + exp(-x))."""
    x, dtype = _in(x)
    return _out(_sigmoid(x), dtype)


@_traceable
def hard_sigmoid(x):
    """relu6(x + 3) / 6."""
    x, dtype = _in(x)
    return _out(np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0, dtype)


@_traceable
def hard_silu(x):
    """x·hard_sigmoid(x)."""
    x, dtype = _in(x)
    return _out(x * (np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0), dtype)


hard_swish = hard_silu


@_traceable
def tanh(x):
    x, dtype = _in(x)
    return _out(np.tanh(x), dtype)


@_traceable
def softmax(x, axis=-1):
    """exp(x) / Σ exp(x) along axis, with the maximum subtracted first."""
    x, dtype = _in(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return _out(e / np.sum(e, axis=axis, keepdims=True), dtype)


@_traceable
def log_softmax(x, axis=-1):
    """x - max - log Σ exp(x - max) along axis."""
    x, dtype = _in(x)
    s = x - np.max(x, axis=axis, keepdims=True)
    return _out(s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True)), dtype)


@_traceable
def exponential(x):
    x, dtype = _in(x)
    return _out(np.exp(x), dtype)


@_traceable
def mish(x):
    """x·tanh(softplus(x))."""
    x, dtype = _in(x)
    return _out(x * np.tanh(_softplus(x)), dtype)


@_traceable
def linear(x):
    """The identity."""
    return x


@_traceable
def celu(x, alpha=1.0):
    """max(x, 0) + alpha·expm1(min(x, 0)/alpha)."""
    x, dtype = _in(x)
    return _out(np.maximum(x, 0.0) + alpha * np.expm1(np.minimum(x, 0.0) / alpha), dtype)


@_traceable
def hard_shrink(x, threshold=0.5):
    """x where |x| > threshold, else 0."""
    x, dtype = _in(x)
    return _out(np.where(np.abs(x) > threshold, x, 0.0), dtype)


@_traceable
def hard_tanh(x):
    """x clipped to [-1, 1]."""
    x, dtype = _in(x)
    return _out(np.where(x > 1, 1.0, np.where(x < -1, -1.0, x)), dtype)


@_traceable
def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x)."""
    x, dtype = _in(x)
    return _out(-_softplus(-x), dtype)


@_traceable
def soft_shrink(x, threshold=0.5):
    """x - threshold above threshold, x + threshold below -threshold, else 0."""
    x, dtype = _in(x)
    return _out(np.where(x > threshold, x - threshold,
                         np.where(x < -threshold, x + threshold, 0.0)), dtype)


@_traceable
def sparse_plus(x):
    """0 for x <= -1, x for x >= 1, (x + 1)²/4 between."""
    x, dtype = _in(x)
    return _out(np.where(x <= -1, 0.0, np.where(x >= 1, x, (x + 1) ** 2 / 4)), dtype)


@_traceable
def sparse_sigmoid(x):
    """0 for x <= -1, 1 for x >= 1, (x + 1)/2 between."""
    x, dtype = _in(x)
    return _out(np.where(x <= -1, 0.0, np.where(x >= 1, 1.0, 0.5 * (x + 1))), dtype)


@_traceable
def squareplus(x, b=4):
    """(x + sqrt(x² + b))/2."""
    x, dtype = _in(x)
    return _out((x + np.sqrt(x * x + b)) / 2, dtype)


@_traceable
def tanh_shrink(x):
    """x - tanh(x)."""
    x, dtype = _in(x)
    return _out(x - np.tanh(x), dtype)


@_traceable
def threshold(x, threshold, default_value):
    """x where x > threshold, else default_value."""
    x, dtype = _in(x)
    return _out(np.where(x > threshold, x, default_value), dtype)


_BY_NAME = {
    fn.__name__: fn
    for fn in (relu, leaky_relu, relu6, elu, selu, gelu, silu, softplus, softsign, sigmoid,
               hard_sigmoid, hard_silu, tanh, softmax, log_softmax, exponential, mish, linear,
               celu, hard_shrink, hard_tanh, log_sigmoid, soft_shrink, sparse_plus,
               sparse_sigmoid, squareplus, tanh_shrink, threshold)
}
_ALIASES = {"swish": silu, "hard_swish": hard_silu}
_FUNCTIONS = {id(fn): name for name, fn in _BY_NAME.items()}

for _name, _fn in _BY_NAME.items():
    _fn._engine_id = _ENGINE_IDS[_name]


def _valid_names():
    return sorted(list(_BY_NAME) + list(_ALIASES))


def _base(fn):
    """(name, keyword arguments) of one of this module's functions or a partial of one."""
    kwargs = {}
    if isinstance(fn, functools.partial):
        if fn.args:
            raise ValueError("An activation given as functools.partial must bind keyword "
                             f"arguments only. Received: activation={fn!r}")
        kwargs = dict(fn.keywords)
        fn = fn.func
    name = _FUNCTIONS.get(id(fn))
    if name is None:
        raise ValueError(
            "densitron runs activations inside its C++ engine, so an activation must be one of "
            f"{_valid_names()} (a name, a densitron.activations function, or a "
            f"functools.partial of one with keyword arguments). Received: activation={fn!r}"
        )
    params = inspect.signature(fn).parameters
    for key in kwargs:
        if key == "x" or key not in params:
            raise ValueError(f"Activation {name!r} has no argument {key!r}; it takes "
                             f"{[p for p in params if p != 'x']}. Received: {key}={kwargs[key]!r}")
    return name, kwargs


def is_traced(fn):
    """Whether activation fn is a Python function of the user's (not one the engine runs):
    a layer then applies it as traced densitron.ops after its own output."""
    from densitron.layers.layer import Layer

    return (callable(fn) and not isinstance(fn, (type, functools.partial, Layer))
            and id(fn) not in _FUNCTIONS and getattr(fn, "_activation_name", None) is None)


@_op_layers
def apply_traced(fn, x, layer_name):
    """A Python activation fn of the user's on a layer's symbolic output: traced (its
    densitron.ops become engine nodes after the layer's)."""
    from densitron.layers.layer import KerasTensor

    try:
        out = fn(x)
    except (TypeError, ValueError, AttributeError) as e:
        raise ValueError(
            f"Layer \"{layer_name}\": densitron traces an activation written in Python on "
            f"symbolic tensors once: write it with densitron.ops (relu, sigmoid, tanh, "
            f"arithmetic, ...). Tracing it failed: {e} Received: activation={fn!r}") from e
    if not isinstance(out, KerasTensor) or out.shape != x.shape:
        raise ValueError(
            f"Layer \"{layer_name}\": an activation must give a tensor of its input's shape "
            f"{x.shape}. Received: {out!r} from activation={fn!r}")
    if out is not x:  # (the layer's output: the mask its values carry, not its ops' none)
        out._mask = x._mask
    return out


def get(identifier):
    """The activation for None (linear), a Keras name, one of this module's functions, a
    functools.partial of one with keyword arguments, a dict from `serialize`, or a Python
    function of the user's (traced after the layer: see is_traced)."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = _BY_NAME.get(identifier) or _ALIASES.get(identifier)
        if fn is None:
            raise ValueError(
                f"Could not interpret activation function identifier: {identifier!r}. "
                f"Expected one of {_valid_names()}. Received: activation={identifier!r}"
            )
        return fn
    from densitron.layers.layer import Layer

    if isinstance(identifier, Layer) and hasattr(identifier, "activation"):
        # an activation layer as the activation (Keras takes any callable): ReLU(max_value=6),
        # LeakyReLU(0.1), ELU, Softmax, Activation('gelu') run as their functions
        return identifier.activation
    name = getattr(identifier, "_activation_name", None)
    if name is not None:  # densitron.ops.relu and its kind
        return get(name)
    if isinstance(identifier, dict) and identifier.get("class_name") == "function":
        fn = get(identifier.get("config"))
        kwargs = identifier.get("kwargs") or {}
        return functools.partial(fn, **kwargs) if kwargs else fn
    if callable(identifier):
        if not is_traced(identifier):
            _base(identifier)  # raises for what the engine cannot run (a partial's arguments)
        return identifier
    raise ValueError(
        "Could not interpret activation function identifier. An activation must be None, a "
        f"name among {_valid_names()}, or a densitron.activations function. "
        f"Received: activation={identifier!r}"
    )


def serialize(activation):
    """The Keras name; for a partial,
    {"class_name": "function", "config": name, "kwargs": {...}}."""
    name, kwargs = _base(activation)
    if not kwargs:
        return name
    return {"class_name": "function", "config": name, "kwargs": kwargs}


def deserialize(config, custom_objects=None):
    """The activation of a name or a serialized function (Keras's {"class_name": "function",
    ...} included), functions of `custom_objects` found too."""
    from densitron.utils import serialization

    return serialization.deserialize_with(get, config, custom_objects)


def _param(kwargs, key, default):
    value = kwargs.get(key, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Activation argument {key} must be a number. "
                         f"Received: {key}={value!r}") from None


def softmax_axis(fn):
    """The axis a softmax or log_softmax normalises over (-1 by default); None for others."""
    name, kwargs = _base(fn)
    if name not in ("softmax", "log_softmax"):
        return None
    axis = kwargs.get("axis", -1)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ValueError(f"densitron normalises {name} over one axis. Received: axis={axis!r}")
    return axis


def engine_spec(fn, allow_axis=False):
    """(engine id, (negative_slope, max_value or -1.0, threshold, alpha)): what the C++ executor
    runs for this activation. The softmaxes' axis is passed separately (see softmax_axis) by the
    layers that support it (`allow_axis`); otherwise only the last axis is accepted."""
    name, kwargs = _base(fn)
    slope, max_value, threshold, alpha = 0.0, -1.0, 0.0, 1.0
    engine = _ENGINE_IDS[name]
    if name == "relu":
        slope = _param(kwargs, "negative_slope", 0.0)
        threshold = _param(kwargs, "threshold", 0.0)
        if kwargs.get("max_value") is not None:
            max_value = _param(kwargs, "max_value", None)
            if max_value < 0:
                raise ValueError("relu's max_value must be None or >= 0. "
                                 f"Received: max_value={kwargs['max_value']!r}")
    elif name == "leaky_relu":
        slope = _param(kwargs, "negative_slope", 0.2)
    elif name in ("elu", "celu"):
        alpha = _param(kwargs, "alpha", 1.0)
    elif name in ("hard_shrink", "soft_shrink"):
        threshold = _param(kwargs, "threshold", 0.5)
    elif name == "squareplus":
        alpha = _param(kwargs, "b", 4.0)
    elif name == "threshold":
        missing = [k for k in ("threshold", "default_value") if k not in kwargs]
        if missing:
            raise ValueError(
                "The threshold activation has required arguments threshold and default_value; "
                "pass functools.partial(densitron.activations.threshold, threshold=..., "
                f"default_value=...). Received: activation={fn!r} without {missing}")
        threshold = _param(kwargs, "threshold", None)
        alpha = _param(kwargs, "default_value", None)
    elif name == "gelu":
        if kwargs.get("approximate", False):
            engine = _GELU_APPROX
    elif name in ("softmax", "log_softmax"):
        axis = kwargs.get("axis", -1)
        if axis != -1 and not allow_axis:
            raise ValueError(f"densitron computes {name} over the last axis only. "
                             f"Received: axis={axis!r}")
    return engine, (slope, max_value, threshold, alpha)


def engine_id(fn):
    return engine_spec(fn)[0]
