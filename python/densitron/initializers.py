"""Weight initializers with Keras's names and formulas (seedable)."""

import math

import numpy as np

from densitron._checks import number_arg, seed_arg
from densitron.utils.rng import make_generator


class Initializer:
    def __call__(self, shape, dtype=None):
        raise NotImplementedError(
            f"{type(self).__name__} must implement `__call__(self, shape, dtype=None)`, "
            f"returning the initial values. Received: shape={shape!r}")

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# Values drawn at a time (8 MB of float64): the weights are made in float32 a chunk at a time,
# the same values as one draw, without a float64 array of the whole shape (three times the
# weights' memory at the peak: Dense(50000) on 50,000 features, 10 GB of float32, was killed
# for memory on a 24 GB machine).
_CHUNK = 1 << 20


def _drawn(shape, draw):
    """An array of `shape` in float32 of draw(n) (n float64 values), a chunk at a time."""
    out = np.empty(shape, np.float32)
    flat = out.reshape(-1)
    for i in range(0, flat.size, _CHUNK):
        n = min(_CHUNK, flat.size - i)
        flat[i:i + n] = draw(n)
    return out


class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return np.zeros(shape, dtype=np.float32)


class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return np.ones(shape, dtype=np.float32)


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = number_arg("value", value)

    def __call__(self, shape, dtype=None):
        return np.full(shape, self.value, dtype=np.float32)

    def get_config(self):
        return {"value": self.value}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval = number_arg("minval", minval), number_arg("maxval", maxval)
        if minval > maxval:
            raise ValueError("`minval` must not exceed `maxval`. "
                             f"Received: minval={minval!r}, maxval={maxval!r}")
        self.seed = seed_arg(seed)

    def __call__(self, shape, dtype=None):
        rng = make_generator(self.seed)
        return _drawn(shape, lambda n: rng.uniform(self.minval, self.maxval, size=n))

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev = number_arg("mean", mean), number_arg("stddev", stddev)
        if stddev < 0:
            raise ValueError(f"`stddev` must be >= 0. Received: stddev={stddev!r}")
        self.seed = seed_arg(seed)

    def __call__(self, shape, dtype=None):
        rng = make_generator(self.seed)
        return _drawn(shape, lambda n: rng.normal(self.mean, self.stddev, size=n))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated_normal(rng, shape, mean, stddev):
    # Values beyond two standard deviations are redrawn, after the first draw of them all and
    # in the order of their positions (round after round), a chunk at a time.
    bad, first = [], 0

    def draw(n):
        nonlocal first
        z = rng.normal(0.0, 1.0, size=n)
        bad.append(np.flatnonzero(np.abs(z) > 2.0) + first)
        first += n
        return mean + stddev * z

    out = _drawn(shape, draw)
    flat = out.reshape(-1)
    bad = np.concatenate(bad) if bad else np.zeros(0, np.int64)
    while bad.size:
        z = rng.normal(0.0, 1.0, size=bad.size)
        keep = np.abs(z) <= 2.0
        flat[bad[keep]] = mean + stddev * z[keep]
        bad = bad[~keep]
    return out


class TruncatedNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev = number_arg("mean", mean), number_arg("stddev", stddev)
        if stddev < 0:
            raise ValueError(f"`stddev` must be >= 0. Received: stddev={stddev!r}")
        self.seed = seed_arg(seed)

    def __call__(self, shape, dtype=None):
        return _truncated_normal(make_generator(self.seed), shape, self.mean, self.stddev)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _fans(shape, input_axes=None, output_axes=None):
    if input_axes is not None and output_axes is not None:  # (Keras's: both, or neither)
        return (math.prod(shape[a] for a in input_axes),
                math.prod(shape[a] for a in output_axes))
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _axes_arg(name, axes):
    """input_axes/output_axes: None or a list of axis indices (Keras's fan axes)."""
    if axes is None:
        return None
    if not isinstance(axes, (list, tuple)) or not all(
            isinstance(a, int) and not isinstance(a, bool) for a in axes):
        raise ValueError(f"`{name}` is None or a list of integer axes. Received: "
                         f"{name}={axes!r}")
    return list(axes)


class VarianceScaling(Initializer):
    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        if number_arg("scale", scale) <= 0.0:
            raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
        if not isinstance(mode, str) or mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(
                "Invalid `mode` argument: expected one of {'fan_in', 'fan_out', 'fan_avg'}. "
                f"Received: mode={mode}"
            )
        if not isinstance(distribution, str) or distribution not in (
                "uniform", "truncated_normal", "untruncated_normal"):
            raise ValueError(
                "Invalid `distribution` argument: expected one of {'uniform', "
                f"'truncated_normal', 'untruncated_normal'}}. Received: distribution={distribution}"
            )
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.seed = seed_arg(seed)
        self.input_axes = _axes_arg("input_axes", input_axes)
        self.output_axes = _axes_arg("output_axes", output_axes)

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = _fans(tuple(shape), self.input_axes, self.output_axes)
        denom = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        scale = self.scale / max(1.0, denom[self.mode])
        rng = make_generator(self.seed)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * scale)
            return _drawn(shape, lambda n: rng.uniform(-limit, limit, size=n))
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(scale) / 0.87962566103423978
            return _truncated_normal(rng, shape, 0.0, stddev)
        return _drawn(shape, lambda n: rng.normal(0.0, math.sqrt(scale), size=n))

    def get_config(self):
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }


class Orthogonal(Initializer):
    """A random orthogonal matrix (rows or columns orthonormal) times `gain`; shapes of rank
    above 2 are flattened to (prod(shape[:-1]), shape[-1])."""

    def __init__(self, gain=1.0, seed=None):
        self.gain, self.seed = number_arg("gain", gain), seed_arg(seed)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError("The tensor to initialize must be at least two-dimensional. "
                             f"Received: shape={shape} of rank {len(shape)}.")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = make_generator(self.seed).normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(np.float32)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """`gain` times the identity matrix (2-D shapes only)."""

    def __init__(self, gain=1.0):
        self.gain = number_arg("gain", gain)

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError("Identity matrix initializer can only be used for 2D matrices. "
                             f"Received: shape={shape} of rank {len(shape)}.")
        return (self.gain * np.eye(*shape)).astype(np.float32)

    def get_config(self):
        return {"gain": self.gain}


def _variance_scaling(name, scale, mode, distribution):
    class _Init(VarianceScaling):
        def __init__(self, seed=None, input_axes=None, output_axes=None):
            super().__init__(scale=scale, mode=mode, distribution=distribution, seed=seed,
                             input_axes=input_axes, output_axes=output_axes)

        def get_config(self):
            return {"seed": self.seed, "input_axes": self.input_axes,
                    "output_axes": self.output_axes}

    _Init.__name__ = _Init.__qualname__ = name
    return _Init


GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")

_BY_NAME = {
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "random_uniform": RandomUniform,
    "random_normal": RandomNormal,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal,
    "identity": Identity,
}
_CLASS_NAMES = {cls.__name__: cls for cls in _BY_NAME.values()}
# Keras's aliases (the RNN guide's MinimalRNNCell: initializer="uniform")
_ALIASES = {"normal": RandomNormal, "one": Ones, "uniform": RandomUniform, "zero": Zeros}
# Keras's other exported names for them: OrthogonalInitializer, IdentityInitializer, and each
# class under its snake_case name (`initializers.he_normal(seed=1)` is a HeNormal, as in Keras)
OrthogonalInitializer, IdentityInitializer = Orthogonal, Identity
zeros, ones, constant, identity, orthogonal = Zeros, Ones, Constant, Identity, Orthogonal
random_uniform, random_normal, truncated_normal = RandomUniform, RandomNormal, TruncatedNormal
variance_scaling, glorot_uniform, glorot_normal = VarianceScaling, GlorotUniform, GlorotNormal
he_uniform, he_normal, lecun_uniform, lecun_normal = HeUniform, HeNormal, LecunUniform, LecunNormal
_CLASS_NAMES.update(OrthogonalInitializer=Orthogonal, IdentityInitializer=Identity)


def serialize(initializer):
    if not hasattr(initializer, "get_config") and callable(initializer):
        # a function (an array's initializer from get): by name, as Keras serializes it
        return {"module": "builtins", "class_name": "function",
                "config": getattr(initializer, "__name__", type(initializer).__name__),
                "registered_name": "function"}
    from densitron.utils import serialization

    return serialization.serialize_in_keras_form(initializer, "keras.initializers")


def deserialize(config):
    cls = _CLASS_NAMES.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown initializer: {config.get('class_name')!r}. Received: {config}")
    return cls.from_config(config.get("config", {}))


def get(identifier):
    if identifier is None:
        return None
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _CLASS_NAMES.get(identifier) or \
            _ALIASES.get(identifier)
        if cls is None:
            raise ValueError(
                f"Could not interpret initializer identifier. Expected one of "
                f"{sorted(_BY_NAME)}. Received: initializer={identifier!r}"
            )
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, (np.ndarray, np.generic)):
        return _tensor_initializer(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret initializer identifier. Received: {identifier!r}")


def _tensor_initializer(tensor):
    """Keras's initializer of an array: a function of (shape, dtype) giving the array (cast
    to dtype, float32 by default), for that shape only."""
    def initialize_fn(shape, dtype=None):
        if tuple(int(d) for d in shape) != tensor.shape:
            raise ValueError(f"Expected `shape` to be {tensor.shape} for direct tensor as "
                             f"initializer. Received shape={shape}")
        return np.array(tensor, dtype=dtype or "float32")

    return initialize_fn
