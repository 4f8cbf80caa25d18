"""keras.random on NumPy arrays: the distributions Keras's random ops draw from, with Keras's
arguments and seeds. `seed=None` draws from the global generator (densitron.utils.
set_random_seed fixes it); an integer seed gives the same values on every call; a
SeedGenerator advances with each draw. The values are NumPy's draws, not the same numbers as
Keras's backends. In a model, noise comes from the engine's layers (Dropout, GaussianNoise,
...), and `normal` of a shape (ops.shape(x)[0], ...) in a traced call() from the engine's
draws for each sample; otherwise these functions refuse symbolic tensors."""

import numpy as np

from densitron._checks import number_arg, seed_arg
from densitron._op_marks import makes_op_layers
from densitron.utils.rng import make_generator


class SeedGenerator:
    """Keras's SeedGenerator: the state of a sequence of draws. Built from `seed` (an integer),
    or from the global generator when None."""

    def __init__(self, seed=None, name=None, **kwargs):
        self.seed = seed_arg(seed)
        self.name = name
        start = seed if seed is not None else int(make_generator(None).integers(2 ** 63))
        self.generator = np.random.default_rng(start)

    def get_config(self):
        return {"seed": self.seed}


def _generator(seed):
    if isinstance(seed, SeedGenerator):
        return seed.generator
    if seed is None:
        return make_generator(None)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError("`seed` must be None, a non-negative integer or a SeedGenerator. "
                         f"Received: seed={seed!r}")
    return np.random.default_rng(int(seed))


def _shape(shape):
    from densitron.ops import BatchSize

    if isinstance(shape, (list, tuple)) and any(isinstance(d, BatchSize) for d in shape):
        raise TypeError("In a model, densitron.random.normal draws values of shape "
                        "(ops.shape(x)[0], ...) for each sample; the other random functions "
                        f"take numbers only. Received: shape={tuple(shape)!r}")
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (list, tuple)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
            for d in shape):
        raise ValueError("`shape` must be a tuple of non-negative integers. "
                         f"Received: shape={shape!r}")
    return tuple(int(d) for d in shape)


def _dtype(dtype, default="float32"):
    from densitron.backend import standardize_dtype

    return np.dtype(standardize_dtype(dtype if dtype is not None else default))


def _number(name, value):
    return float(number_arg(name, value))


def _array(name, x):
    from densitron.layers.layer import KerasTensor

    if isinstance(x, KerasTensor):
        raise TypeError(f"densitron.random computes on arrays: in a model, noise comes from "
                        f"the engine's layers (Dropout, GaussianNoise, GaussianDropout). "
                        f"Received: {name}={x!r}")
    return np.asarray(x)


def _layer_seed(seed):
    """The seed of an engine layer made by a random function in a traced call(): a
    SeedGenerator's next draw (so each such layer draws its own stream), else seed as given."""
    return int(seed.generator.integers(2 ** 62)) if isinstance(seed, SeedGenerator) else seed


def _symbolic_batch(shape):
    """The symbolic tensor whose batch a shape's first entry is (ops.shape(x)[0]), or None."""
    from densitron.ops import BatchSize

    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], BatchSize):
        return shape[0].source
    return None


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Values ~ N(mean, stddev) of `shape`. In a traced call(), with a shape whose first entry
    is a symbolic tensor's batch (ops.shape(x)[0]), the engine's draws for each sample, anew
    at every step and call (Keras's VAE sampling); a SeedGenerator or integer seed gives its
    sequence of draws a fixed start."""
    mean, stddev = _number("mean", mean), _number("stddev", stddev)
    source = _symbolic_batch(shape)
    if source is not None:
        from densitron.layers.regularization import RandomNormalSample

        rest = _shape(tuple(shape[1:]))
        if not isinstance(seed, SeedGenerator):
            _generator(seed)  # (its checks)
        return RandomNormalSample(rest, mean, stddev, seed=_layer_seed(seed))(source)
    return _generator(seed).normal(mean, stddev, _shape(shape)).astype(_dtype(dtype))


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    minval, maxval = _number("minval", minval), _number("maxval", maxval)
    if minval >= maxval:
        raise ValueError("`minval` must be below `maxval`. "
                         f"Received: minval={minval}, maxval={maxval}")
    return _generator(seed).uniform(minval, maxval, _shape(shape)).astype(_dtype(dtype))


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal values, those beyond two standard deviations drawn again (Keras's)."""
    from densitron.initializers import _truncated_normal

    mean, stddev = _number("mean", mean), _number("stddev", stddev)
    return _truncated_normal(_generator(seed), _shape(shape), mean, stddev).astype(
        _dtype(dtype))


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers in [minval, maxval)."""
    for name, value in (("minval", minval), ("maxval", maxval)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if minval >= maxval:
        raise ValueError("`minval` must be below `maxval`. "
                         f"Received: minval={minval}, maxval={maxval}")
    return _generator(seed).integers(minval, maxval, _shape(shape)).astype(_dtype(dtype))


def shuffle(x, axis=0, seed=None):
    """x with its entries along `axis` in a random order."""
    x = _array("x", x)
    return _generator(seed).permutation(x, axis=axis)


def categorical(logits, num_samples, dtype="int32", seed=None):
    """For each row of logits (batch, classes), num_samples class ids drawn with the softmax's
    probabilities: shape (batch, num_samples)."""
    logits = _array("logits", logits).astype(np.float64)
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError("`logits` must be a 2-D array (batch, classes). "
                         f"Received: logits with shape {logits.shape}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or \
            num_samples < 0:
        raise ValueError("`num_samples` must be a non-negative integer. "
                         f"Received: num_samples={num_samples!r}")
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    u = _generator(seed).random((logits.shape[0], int(num_samples)))
    ids = (u[:, :, None] > cdf[:, None, :]).sum(axis=2)
    return np.minimum(ids, logits.shape[1] - 1).astype(_dtype(dtype))


@makes_op_layers
def dropout(inputs, rate, noise_shape=None, seed=None):
    """inputs with each value zeroed with probability `rate` and the others scaled by
    1 / (1 - rate); the zeros broadcast along the axes where noise_shape is 1. On a symbolic
    tensor in the training branch of a call() that tests `training` (Keras's CustomDropout:
    `if training: return random.dropout(...)`), the engine's Dropout."""
    from densitron.layers.layer import KerasTensor, in_training_trace

    if isinstance(inputs, KerasTensor) and in_training_trace():
        from densitron.layers.regularization import Dropout

        return Dropout(_number("rate", rate), noise_shape=noise_shape,
                       seed=_layer_seed(seed))(inputs)
    x = _array("inputs", inputs)
    rate = _number("rate", rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"`rate` must be in [0, 1). Received: rate={rate}")
    shape = x.shape if noise_shape is None else tuple(
        x.shape[i] if d is None else d for i, d in enumerate(noise_shape))
    keep = _generator(seed).random(shape) >= rate
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype("float32")
    return (x * keep / (1.0 - rate)).astype(dtype)


def gamma(shape, alpha, dtype=None, seed=None):
    return _generator(seed).gamma(_number("alpha", alpha), 1.0, _shape(shape)).astype(
        _dtype(dtype))


def beta(shape, alpha, beta, dtype=None, seed=None):
    return _generator(seed).beta(_number("alpha", alpha), _number("beta", beta),
                                 _shape(shape)).astype(_dtype(dtype))


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    return _generator(seed).binomial(counts, probabilities, _shape(shape)).astype(
        _dtype(dtype))


__all__ = ["SeedGenerator", "beta", "binomial", "categorical", "dropout", "gamma", "normal",
           "randint", "shuffle", "truncated_normal", "uniform"]
