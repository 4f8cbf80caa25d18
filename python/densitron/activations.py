"""Activations by Keras name. Each function computes on NumPy arrays (for direct use) and
carries the engine id under which the C++ core runs it inside a layer."""

import numpy as np

# Engine ids: must match densitron::Activation in cpp/include/densitron/ops.h.
_LINEAR, _RELU, _SIGMOID, _TANH, _SOFTMAX = 0, 1, 2, 3, 4


def linear(x):
    return np.asarray(x)


def relu(x):
    return np.maximum(np.asarray(x), 0)


def sigmoid(x):
    x = np.asarray(x)
    return 1.0 / (1.0 + np.exp(-x))


def tanh(x):
    return np.tanh(np.asarray(x))


def softmax(x, axis=-1):
    x = np.asarray(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


for _fn, _id in ((linear, _LINEAR), (relu, _RELU), (sigmoid, _SIGMOID), (tanh, _TANH),
                 (softmax, _SOFTMAX)):
    _fn._engine_id = _id

_BY_NAME = {"linear": linear, "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax}


def serialize(activation):
    return activation.__name__


def get(identifier):
    """Returns the activation function for a name, None, or one of this module's functions."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = _BY_NAME.get(identifier)
        if fn is None:
            raise ValueError(
                f"Could not interpret activation function identifier: {identifier!r}. "
                f"Expected one of {sorted(_BY_NAME)}. Received: activation={identifier!r}"
            )
        return fn
    if callable(identifier) and hasattr(identifier, "_engine_id"):
        return identifier
    raise ValueError(
        "densitron runs activations inside its C++ engine, so an activation must be one of "
        f"{sorted(_BY_NAME)} (a name or densitron.activations function). "
        f"Received: activation={identifier!r}"
    )


def engine_id(fn):
    return fn._engine_id
