"""Keras's Hashing layer and the hashes Keras's lookups take from TensorFlow: FarmHash's
Fingerprint64 (tf.strings.to_hash_bucket_fast) and SipHash-2-4 with a 128-bit key
(tf.strings.to_hash_bucket_strong), of a value's bytes (an integer's decimal digits), reduced
modulo a number of bins. Computed on NumPy arrays, outside the engine (strings cannot enter it)."""

import math
import numbers

import numpy as np

from densitron.layers.convolutional import refuse_oversized
from densitron.layers.layer import KerasTensor, Layer

_M = (1 << 64) - 1
_K0 = 0xC3A5C85C97CB3127
_K1 = 0xB492B66FBE98F273
_K2 = 0x9AE16A3B2F90404F


def _fetch64(s, i):
    return int.from_bytes(s[i:i + 8], "little")


def _fetch32(s, i):
    return int.from_bytes(s[i:i + 4], "little")


def _rotate(v, shift):
    return ((v >> shift) | (v << (64 - shift))) & _M


def _shift_mix(v):
    return v ^ (v >> 47)


def _hash_len16(u, v, mul):
    a = ((u ^ v) * mul) & _M
    a ^= a >> 47
    b = ((v ^ a) * mul) & _M
    b ^= b >> 47
    return (b * mul) & _M


def _hash_len0to16(s):
    n = len(s)
    if n >= 8:
        mul = _K2 + n * 2
        a = (_fetch64(s, 0) + _K2) & _M
        b = _fetch64(s, n - 8)
        c = (_rotate(b, 37) * mul + a) & _M
        d = ((_rotate(a, 25) + b) * mul) & _M
        return _hash_len16(c, d, mul)
    if n >= 4:
        mul = _K2 + n * 2
        return _hash_len16((n + (_fetch32(s, 0) << 3)) & _M, _fetch32(s, n - 4), mul)
    if n > 0:
        y = (s[0] + (s[n >> 1] << 8)) & 0xFFFFFFFF
        z = (n + (s[n - 1] << 2)) & 0xFFFFFFFF
        return (_shift_mix(((y * _K2) ^ (z * _K0)) & _M) * _K2) & _M
    return _K2


def _hash_len17to32(s):
    n = len(s)
    mul = _K2 + n * 2
    a = (_fetch64(s, 0) * _K1) & _M
    b = _fetch64(s, 8)
    c = (_fetch64(s, n - 8) * mul) & _M
    d = (_fetch64(s, n - 16) * _K2) & _M
    return _hash_len16((_rotate((a + b) & _M, 43) + _rotate(c, 30) + d) & _M,
                       (a + _rotate((b + _K2) & _M, 18) + c) & _M, mul)


def _hash_len33to64(s):
    n = len(s)
    mul = _K2 + n * 2
    a = (_fetch64(s, 0) * _K2) & _M
    b = _fetch64(s, 8)
    c = (_fetch64(s, n - 8) * mul) & _M
    d = (_fetch64(s, n - 16) * _K2) & _M
    y = (_rotate((a + b) & _M, 43) + _rotate(c, 30) + d) & _M
    z = _hash_len16(y, (a + _rotate((b + _K2) & _M, 18) + c) & _M, mul)
    e = (_fetch64(s, 16) * mul) & _M
    f = _fetch64(s, 24)
    g = ((y + _fetch64(s, n - 32)) * mul) & _M
    h = ((z + _fetch64(s, n - 24)) * mul) & _M
    return _hash_len16((_rotate((e + f) & _M, 43) + _rotate(g, 30) + h) & _M,
                       (e + _rotate((f + a) & _M, 18) + g) & _M, mul)


def _weak_hash32(s, i, a, b):
    w, x, y, z = (_fetch64(s, i + 8 * j) for j in range(4))
    a = (a + w) & _M
    b = _rotate((b + a + z) & _M, 21)
    c = a
    a = (a + x + y) & _M
    b = (b + _rotate(a, 44)) & _M
    return (a + z) & _M, (b + c) & _M


def fingerprint64(data):
    """FarmHash's Fingerprint64 of bytes (farmhashna::Hash64, TensorFlow's Fingerprint64)."""
    s = bytes(data)
    n = len(s)
    if n <= 16:
        return _hash_len0to16(s)
    if n <= 32:
        return _hash_len17to32(s)
    if n <= 64:
        return _hash_len33to64(s)
    seed = 81
    x = seed
    y = (seed * _K1 + 113) & _M
    z = (_shift_mix((y * _K2 + 113) & _M) * _K2) & _M
    v = (0, 0)
    w = (0, 0)
    x = (x * _K2 + _fetch64(s, 0)) & _M
    end = ((n - 1) // 64) * 64
    last64 = end + ((n - 1) & 63) - 63
    i = 0
    while True:
        x = (_rotate((x + y + v[0] + _fetch64(s, i + 8)) & _M, 37) * _K1) & _M
        y = (_rotate((y + v[1] + _fetch64(s, i + 48)) & _M, 42) * _K1) & _M
        x ^= w[1]
        y = (y + v[0] + _fetch64(s, i + 40)) & _M
        z = (_rotate((z + w[0]) & _M, 33) * _K1) & _M
        v = _weak_hash32(s, i, (v[1] * _K1) & _M, (x + w[0]) & _M)
        w = _weak_hash32(s, i + 32, (z + w[1]) & _M, (y + _fetch64(s, i + 16)) & _M)
        z, x = x, z
        i += 64
        if i == end:
            break
    mul = _K1 + ((z & 0xFF) << 1)
    i = last64
    w = ((w[0] + ((n - 1) & 63)) & _M, w[1])
    v = ((v[0] + w[0]) & _M, v[1])
    w = ((w[0] + v[0]) & _M, w[1])
    x = (_rotate((x + y + v[0] + _fetch64(s, i + 8)) & _M, 37) * mul) & _M
    y = (_rotate((y + v[1] + _fetch64(s, i + 48)) & _M, 42) * mul) & _M
    x ^= (w[1] * 9) & _M
    y = (y + v[0] * 9 + _fetch64(s, i + 40)) & _M
    z = (_rotate((z + w[0]) & _M, 33) * mul) & _M
    v = _weak_hash32(s, i, (v[1] * mul) & _M, (x + w[0]) & _M)
    w = _weak_hash32(s, i + 32, (z + w[1]) & _M, (y + _fetch64(s, i + 16)) & _M)
    z, x = x, z
    return _hash_len16((_hash_len16(v[0], w[0], mul) + _shift_mix(y) * _K0 + z) & _M,
                       (_hash_len16(v[1], w[1], mul) + x) & _M, mul)


def _rotl(v, shift):
    return ((v << shift) | (v >> (64 - shift))) & _M


def siphash(key, data):
    """SipHash-2-4 of bytes with the key (k0, k1) (TensorFlow's StrongKeyedHash)."""
    k0, k1 = (int(k) & _M for k in key)
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D,
         k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def rounds(count):
        for _ in range(count):
            v[0] = (v[0] + v[1]) & _M
            v[1] = _rotl(v[1], 13) ^ v[0]
            v[0] = _rotl(v[0], 32)
            v[2] = (v[2] + v[3]) & _M
            v[3] = _rotl(v[3], 16) ^ v[2]
            v[0] = (v[0] + v[3]) & _M
            v[3] = _rotl(v[3], 21) ^ v[0]
            v[2] = (v[2] + v[1]) & _M
            v[1] = _rotl(v[1], 17) ^ v[2]
            v[2] = _rotl(v[2], 32)

    s = bytes(data)
    full = len(s) - len(s) % 8
    for i in range(0, full, 8):
        m = _fetch64(s, i)
        v[3] ^= m
        rounds(2)
        v[0] ^= m
    b = ((len(s) & 0xFF) << 56) | int.from_bytes(s[full:], "little")
    v[3] ^= b
    rounds(2)
    v[0] ^= b
    v[2] ^= 0xFF
    rounds(4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def _token_bytes(value, encoding="utf-8"):
    """A value's bytes as TensorFlow hashes them: a string's encoding, an integer's digits."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):  # (bytes that were not UTF-8: as they were, see as_value_array)
        return value.encode(encoding, "surrogateescape")
    return str(int(value)).encode()


def hash_buckets(values, num_buckets, salt=None):
    """tf.strings.to_hash_bucket_fast (salt None) or _strong (salt [k0, k1]) of each value of
    an array (strings, or integers hashed by their decimal digits), as int64."""
    values = np.asarray(values)
    if values.size == 0:
        return np.zeros(values.shape, np.int64)
    uniques, inverse = np.unique(values.reshape(-1), return_inverse=True)
    if salt is None:
        hashed = [fingerprint64(_token_bytes(u)) % num_buckets for u in uniques.tolist()]
    else:
        hashed = [siphash(salt, _token_bytes(u)) % num_buckets for u in uniques.tolist()]
    return np.asarray(hashed, np.int64)[inverse].reshape(values.shape)


def as_value_array(inputs, what):
    """A call's inputs (array, list, number or string) as a NumPy array of numbers or
    strings (bytes decoded as UTF-8; bytes that are not UTF-8 kept as they are, as
    surrogates, so that they hash and look up as TensorFlow's raw bytes do)."""
    try:
        array = np.asarray(inputs)
    except ValueError:
        raise ValueError(f"{what} takes an array: rows of one length. Received: inputs of type "
                         f"{type(inputs).__name__}") from None
    if array.dtype.kind == "S":
        array = np.char.decode(array, "utf-8", "surrogateescape")
    elif array.dtype.kind == "O":
        flat = [v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v
                for v in array.reshape(-1)]
        if flat and all(isinstance(v, str) for v in flat):
            array = np.array(flat, dtype=str).reshape(array.shape)
        elif flat and all(isinstance(v, numbers.Number) for v in flat):
            array = np.array(flat).reshape(array.shape)
    if array.dtype.kind not in "biufU":
        raise TypeError(f"{what} takes numbers or strings. Received: inputs of dtype "
                        f"{array.dtype}")
    return array


def encode_ids(ids, output_mode, depth, dtype, layer=None, depth_arg=None):
    """Keras's encode_categorical_inputs of int64 ids (an id outside [0, depth) sets nothing):
    "one_hot" a row per id (a last axis of 1 squeezed first); "multi_hot" and "count" reduce
    the one-hot rows over axis 1 as Keras does (the sample's ids for (batch, ids) inputs; the
    second axis of higher ranks; a scalar is one sample of one id). Only the output is
    allocated, refused (naming `depth_arg`) when it would not fit the machine's memory."""
    if ids.ndim == 0:
        ids = ids[None]
    if output_mode == "one_hot" and ids.ndim > 1 and ids.shape[-1] == 1:
        ids = ids[..., 0]
    if output_mode != "one_hot":  # (the reduced axis last)
        ids = np.moveaxis(ids, 1 if ids.ndim > 1 else 0, -1)
    shape = (*ids.shape, depth) if output_mode == "one_hot" else (*ids.shape[:-1], depth)
    if layer is not None:
        refuse_oversized(layer, f"its {output_mode} output of shape {shape}",
                         math.prod(shape) * np.dtype(dtype).itemsize,
                         f"inputs with {ids.size} ids and {depth_arg}")
    counts = np.zeros(shape, np.int64 if output_mode == "count" else dtype)
    at = np.nonzero((ids >= 0) & (ids < depth))
    if output_mode == "one_hot":
        counts[(*at, ids[at])] = 1
        return counts
    np.add.at(counts, (*at[:-1], ids[at]), 1)
    if output_mode == "multi_hot":
        return (counts > 0).astype(dtype)
    return counts.astype(dtype)


def refuse_in_model(layer, inputs):
    """The layer called on symbolic tensors: refused (its lookup runs on arrays only)."""
    flat = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    if any(isinstance(t, KerasTensor) for t in flat):
        raise ValueError(
            f"densitron's {type(layer).__name__} runs on NumPy data, not in a model (as Keras's "
            "on a backend other than TensorFlow): apply it to the data before fit, e.g. "
            f"`x = {layer.name}(x)`, and give the model its outputs. Received: a symbolic "
            f"input to layer {layer.name!r}")


def check_array_call(layer, inputs, args, kwargs):
    """A call of a layer that runs on arrays only: its inputs not symbolic, `training` taken
    and ignored (Keras's call takes none: the lookup is the same), nothing else."""
    refuse_in_model(layer, inputs)
    kwargs.pop("training", None)
    if args or kwargs:
        raise TypeError(f"Layer {layer.name} takes only its inputs when called. "
                        f"Received: args={args}, kwargs={kwargs}")


class Hashing(Layer):
    """Keras's Hashing: each value (a string, or an integer: floats truncated) to a bin in
    [0, num_bins), FarmHash Fingerprint64 of its bytes modulo the bins (SipHash-2-4 with
    `salt`); with `mask_value`, that value is bin 0 and the others hash into the rest. Output
    as ids ("int", int64) or encoded ("one_hot", "multi_hot", "count", float32), as Keras's
    with TensorFlow. Runs on arrays (strings cannot enter the engine)."""

    def __init__(self, num_bins, mask_value=None, salt=None, output_mode="int", sparse=False,
                 **kwargs):
        dtype = kwargs.pop("dtype", None)
        if isinstance(dtype, dict):  # (Keras's serialized policy)
            dtype = dtype.get("config", {}).get("name")
        if dtype is None:
            dtype = "int64" if output_mode == "int" else "float32"
        super().__init__(**kwargs)
        if num_bins is None or isinstance(num_bins, bool) or not isinstance(
                num_bins, numbers.Integral) or num_bins <= 0:
            raise ValueError("The `num_bins` for `Hashing` cannot be `None` or non-positive "
                             f"values. Received: num_bins={num_bins}.")
        if num_bins >= 2**63:  # (the bins are int64)
            raise ValueError("The `num_bins` for `Hashing` must be below 2**63 (its bins are "
                             f"int64). Received: num_bins={num_bins}.")
        if output_mode == "int" and dtype not in ("int32", "int64"):
            raise ValueError("When `output_mode=\"int\"`, `dtype` should be an integer type, "
                             f"'int32' or 'in64'. Received: dtype={dtype}")
        if dtype not in ("int32", "int64", "float32", "float64"):
            raise ValueError(f"densitron's Hashing outputs int32, int64, float32 or float64. "
                             f"Received: dtype={dtype!r}")
        modes = ("int", "one_hot", "multi_hot", "count")
        if output_mode not in modes:
            raise ValueError("Invalid value for argument `output_mode`. Expected one of "
                             f"{modes}. Received: output_mode={output_mode}")
        if sparse and output_mode == "int":
            raise ValueError("`sparse` may only be true if `output_mode` is `\"one_hot\"`, "
                             f"`\"multi_hot\"`, or `\"count\"`. Received: sparse={sparse} and "
                             f"output_mode={output_mode}")
        if sparse:
            raise ValueError("`sparse=True` can only be used with the TensorFlow backend. "
                             f"Received: sparse={sparse}")
        if salt is not None:
            if isinstance(salt, (tuple, list)) and len(salt) == 2 and all(
                    isinstance(s, numbers.Integral) for s in salt):
                salt = [int(s) for s in salt]
            elif isinstance(salt, numbers.Integral) and not isinstance(salt, bool):
                salt = [int(salt), int(salt)]
            else:
                raise ValueError("The `salt` argument for `Hashing` can only be a tuple of "
                                 f"size 2 integers, or a single integer. Received: salt={salt}.")
        self.num_bins = int(num_bins)
        self.mask_value = mask_value
        self.strong_hash = salt is not None
        self.salt = salt
        self.output_mode = output_mode
        self.sparse = False
        self._output_dtype = dtype

    @property
    def dtype(self):
        return self._output_dtype

    def __call__(self, inputs, *args, **kwargs):
        check_array_call(self, inputs, args, kwargs)
        values = as_value_array(inputs, f"Layer {self.name}")
        if self.output_mode == "one_hot" and values.ndim > 0 and values.shape[-1] == 1:
            values = values[..., 0]
        bins = self._hash_values_to_bins(values)
        if self.output_mode == "int":
            return bins.astype(self._output_dtype)
        return encode_ids(bins, self.output_mode, self.num_bins, self._output_dtype, self,
                          f"num_bins={self.num_bins}")

    def _hash_values_to_bins(self, values):
        hash_bins = self.num_bins
        mask = None
        if self.mask_value is not None and hash_bins > 1:
            hash_bins -= 1
            mask = values == self.mask_value
        if values.dtype.kind == "f":  # (Keras casts floats to int64 before hashing)
            with np.errstate(invalid="ignore"):
                values = values.astype(np.int64)
        elif values.dtype.kind == "b":  # (TensorFlow's as_string of booleans)
            values = np.where(values, "true", "false")
        bins = hash_buckets(values, hash_bins, self.salt)
        if mask is not None:
            bins = np.where(mask, 0, bins + 1)
        return bins

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        if len(input_shape) == 0:
            return (self.num_bins,)
        return tuple(input_shape[:-1]) + (self.num_bins,)

    def get_config(self):
        config = super().get_config()
        config["dtype"] = self._output_dtype
        config.update(num_bins=self.num_bins, salt=self.salt, mask_value=self.mask_value,
                      output_mode=self.output_mode, sparse=False)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


_CROSS_KEY = 0xDECAFCAFFE  # (tf.sparse.cross_hashed's default hash key)
_CAT_MUL = 0xC6A4A7935BD1E995


def fingerprint_cat64(fp1, fp2):
    """TensorFlow's FingerprintCat64: two fingerprints combined, in order."""
    result = fp1 ^ _CAT_MUL
    result ^= (_shift_mix((fp2 * _CAT_MUL) & _M) * _CAT_MUL) & _M
    result = (result * _CAT_MUL) & _M
    result = (_shift_mix(result) * _CAT_MUL) & _M
    return _shift_mix(result)


class HashedCrossing(Layer):
    """Keras's HashedCrossing: the features of two or more inputs (strings or integers, one a
    sample: shapes (), (batch,) or (batch, 1)) crossed into one of `num_bins` bins, as
    TensorFlow's sparse.cross_hashed (each feature's Fingerprint64, an integer's own bits,
    folded with FingerprintCat64 from its key); output as ids ("int", int64) or "one_hot"
    (float32). Runs on arrays (strings cannot enter the engine)."""

    def __init__(self, num_bins, output_mode="int", sparse=False, name=None, dtype=None,
                 **kwargs):
        if isinstance(dtype, dict):  # (Keras's serialized policy)
            dtype = dtype.get("config", {}).get("name")
        if output_mode == "int" and dtype is None:
            dtype = "int64"
        super().__init__(name=name, **kwargs)
        if sparse:
            raise ValueError("`sparse=True` can only be used with the TensorFlow backend. "
                             f"Received: sparse={sparse}")
        if output_mode not in ("int", "one_hot"):
            raise ValueError(f"Unknown value for `output_mode` argument of HashedCrossing. "
                             f"Allowed values are: ('int', 'one_hot'). Received: "
                             f"output_mode={output_mode}")
        if isinstance(num_bins, bool) or not isinstance(num_bins, numbers.Integral) or \
                num_bins < 1:
            raise ValueError(f"`num_bins` must be a positive integer. "
                             f"Received: num_bins={num_bins!r}")
        if num_bins >= 2**63:  # (the bins are int64)
            raise ValueError("`num_bins` must be below 2**63 (the bins are int64). "
                             f"Received: num_bins={num_bins!r}")
        dtype = dtype or "float32"
        if dtype not in ("int32", "int64", "float32", "float64"):
            raise ValueError(f"densitron's HashedCrossing outputs int32, int64, float32 or "
                             f"float64. Received: dtype={dtype!r}")
        self.num_bins = int(num_bins)
        self.output_mode = output_mode
        self.sparse = False
        self._output_dtype = dtype

    @property
    def dtype(self):
        return self._output_dtype

    def __call__(self, inputs, *args, **kwargs):
        check_array_call(self, inputs, args, kwargs)
        if not isinstance(inputs, (list, tuple)):  # (Keras's ValueError)
            raise ValueError(  # noqa: TRY004
                "`HashedCrossing` should be called on a list or tuple of inputs. "
                f"Received: inputs={inputs}")
        if len(inputs) < 2:
            raise ValueError("`HashedCrossing` should be called on at least two inputs. "
                             f"Received: inputs={inputs}")
        arrays = [as_value_array(x, f"Layer {self.name}") for x in inputs]
        shape = arrays[0].shape
        if len(shape) > 2 or (len(shape) == 2 and shape[-1] != 1):
            raise ValueError("All `HashedCrossing` inputs should have shape `()`, "
                             f"`(batch_size)` or `(batch_size, 1)`. Received: inputs={inputs}")
        if any(a.shape != shape for a in arrays[1:]):
            raise ValueError("All `HashedCrossing` inputs should have equal shape. "
                             f"Received: inputs={inputs}")
        if any(a.dtype.kind not in "iuU" for a in arrays):
            raise ValueError("All `HashedCrossing` inputs should have an integer or string "
                             f"dtype. Received: inputs={inputs}")
        columns = [a.reshape(-1) for a in arrays]
        # (a string's Fingerprint64; an integer is its own 64 bits, as TensorFlow's crosser)
        fingerprints = [[fingerprint64(_token_bytes(v)) if isinstance(v, str) else int(v) & _M
                         for v in c.tolist()] for c in columns]
        bins = []
        for row in zip(*fingerprints):
            crossed = _CROSS_KEY
            for fp in row:
                crossed = fingerprint_cat64(crossed, fp)
            bins.append(crossed % self.num_bins)
        ids = np.asarray(bins, np.int64).reshape(shape)
        if self.output_mode == "int":
            return ids.astype(self._output_dtype)
        return encode_ids(ids, "one_hot", self.num_bins, self._output_dtype, self,
                          f"num_bins={self.num_bins}")

    def compute_output_shape(self, input_shape):
        first = tuple(input_shape[0])
        if self.output_mode == "int":
            return first
        if first and first[-1] != 1:
            return first + (self.num_bins,)
        return first[:-1] + (self.num_bins,)

    def get_config(self):
        return {"num_bins": self.num_bins, "output_mode": self.output_mode, "sparse": False,
                "name": self.name, "dtype": self._output_dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
