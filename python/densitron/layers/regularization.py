"""Dropout and GaussianNoise: active only in training. The engine draws their randomness from a
counter-based hash of (seed, step, element), so a seed gives the same masks on any thread count."""

import numpy as np

from densitron.layers.layer import Layer, engine_node
from densitron.utils.rng import global_generator


def _seed(seed):
    if seed is None:
        return int(global_generator().integers(0, 2**62))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer or None. Received: seed={seed!r}")
    return int(seed)


class Dropout(Layer):
    """Sets a fraction `rate` of inputs to 0 in training and scales the rest by 1/(1-rate)."""
    _identity_outside_training = True  # training=False in a call: the input as is
    _mask_rule = "pass"
    # Keras takes rate 1: every value dropped, zeros in training (no value is scaled by 1/0).
    # AlphaDropout's a·x + b has no value at 1 (Keras's call fails).
    _rate_one = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (
                0 <= rate <= 1 if self._rate_one else 0 <= rate < 1):
            raise ValueError("Invalid value received for argument `rate`. Expected a float value "
                             f"between 0 and 1{'' if self._rate_one else ' (1 excluded)'}. "
                             f"Received: rate={rate!r}")
        if noise_shape is not None:
            if not isinstance(noise_shape, (list, tuple)) or not all(
                    d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                                  and d >= 1) for d in noise_shape):
                raise ValueError("`noise_shape` must be a tuple of positive integers or None, "
                                 f"one per input axis. Received: noise_shape={noise_shape!r}")
            noise_shape = tuple(None if d is None else int(d) for d in noise_shape)
        self.noise_shape = noise_shape
        self.rate = float(rate)
        self.seed = seed
        self._engine_seed = _seed(seed)

    def _engine_node(self, node, param_index):
        # iattrs: the seed, then with noise_shape the axes along which the mask is shared
        # (1) or not (0), the batch axis first, then the input's dims after the batch axis.
        iattrs = [self._engine_seed]
        if self.noise_shape is not None:
            shape = node.inputs[0].shape
            if len(self.noise_shape) != len(shape) or any(
                    d is not None and d != 1 and d != s
                    for d, s in zip(self.noise_shape[1:], shape[1:])):
                raise ValueError(f"`noise_shape` must broadcast to the input: one entry per axis,"
                                 f" each None, 1 or the axis's size. Received: noise_shape="
                                 f"{self.noise_shape} for an input of shape {shape}")
            shared = [int(d == 1 and (k == 0 or s != 1))
                      for k, (d, s) in enumerate(zip(self.noise_shape, shape))]
            if any(shared):
                iattrs += shared + [int(s) for s in shape[1:]]
        return engine_node(10, node, fattrs=self._engine_fattrs(), iattrs=iattrs)

    def _engine_fattrs(self):
        return [self.rate]

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape)}


class RandomNormalSample(Layer):
    """densitron's own layer, made by densitron.random.normal(shape=(ops.shape(x)[0], ...))
    in a traced call(): values ~ N(mean, stddev) of `shape` for each sample of its input's
    batch, drawn anew at every step and every call, training or not (as keras.random.normal
    in a layer's call); its input gives only the batch size."""

    def __init__(self, shape, mean=0.0, stddev=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.shape = tuple(int(d) for d in shape)
        self.mean, self.stddev, self.seed = float(mean), float(stddev), seed
        self._engine_seed = _seed(seed)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.shape)

    def _engine_subgraph(self, node, param_index):
        from densitron.layers.layer import node_spec
        from densitron.layers.math_ops import _MATH, MATH_OPS

        width = int(np.prod(self.shape))
        last = self.shape[-1] if self.shape else 1
        zeros = node_spec(20, width, last, iattrs=[-1] * width)  # kIndexMap: all zeros
        noise = node_spec(11, width, last, fattrs=[self.stddev],
                          iattrs=[self._engine_seed, 0, 1])  # kGaussianNoise, always
        shift = node_spec(_MATH, width, last, fattrs=[self.mean, 0.0],
                          iattrs=[MATH_OPS["add"]])
        return [([("in", 0)], zeros), ([("node", 0)], noise), ([("node", 1)], shift)], [2]

    def get_config(self):
        return {**super().get_config(), "shape": list(self.shape), "mean": self.mean,
                "stddev": self.stddev, "seed": self.seed}


class GaussianNoise(Layer):
    """Adds zero-centered Gaussian noise of standard deviation `stddev` in training."""
    _identity_outside_training = True  # training=False in a call: the input as is
    _mask_rule = "pass"

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) or stddev < 0:
            raise ValueError("Invalid value received for argument `stddev`. Expected a float "
                             f"value >= 0. Received: stddev={stddev!r}")
        self.stddev = float(stddev)
        self.seed = seed
        self._engine_seed = _seed(seed)

    def _engine_node(self, node, param_index):
        return engine_node(11, node, fattrs=[self.stddev], iattrs=[self._engine_seed])

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(Layer):
    """Multiplies its inputs by 1-centered Gaussian noise of standard deviation
    sqrt(rate / (1 - rate)) in training."""
    _identity_outside_training = True  # training=False in a call: the input as is
    _mask_rule = "pass"

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError("Invalid value received for argument `rate`. Expected a float value "
                             f"between 0 and 1 (1 excluded). Received: rate={rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self._engine_seed = _seed(seed)

    def _engine_node(self, node, param_index):
        stddev = float(np.sqrt(self.rate / (1.0 - self.rate)))
        return engine_node(11, node, fattrs=[stddev], iattrs=[self._engine_seed, 1])

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class ActivityRegularization(Layer):
    """Returns its inputs unchanged and adds l1·Σ|x| + l2·Σx² over the batch, divided by the
    batch size, to the loss (Keras's activity regularization)."""
    _mask_rule = "pass"

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        from densitron import regularizers

        kwargs.pop("activity_regularizer", None)  # Keras's own config may carry it
        super().__init__(activity_regularizer=regularizers.L1L2(l1=l1, l2=l2), **kwargs)
        self.l1, self.l2 = self.activity_regularizer.l1, self.activity_regularizer.l2

    def _engine_node(self, node, param_index):
        return engine_node(14, node)

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)
        return {**config, "l1": self.l1, "l2": self.l2}


class _SpatialDropout(Dropout):
    """Dropout of whole channels: one mask value per sample and channel, shared over the other
    axes (Keras's SpatialDropout1D/2D/3D)."""
    _rank = None

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)
        if data_format is None:
            data_format = "channels_last"
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError("The `data_format` argument must be one of 'channels_first', "
                             f"'channels_last'. Received: data_format={data_format!r}")
        self.data_format = data_format

    def _check_inputs(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) != self._rank:
            raise ValueError(f"Input 0 of layer \"{self.name}\" is incompatible with the layer: "
                             f"expected ndim={self._rank}, found ndim={len(input_shape)}. "
                             f"Received: input_shape={input_shape}")

    def _engine_node(self, node, param_index):
        shape = node.inputs[0].shape
        ones = [1] * (len(shape) - 2)
        self.noise_shape = (tuple([None, *ones, shape[-1]]) if self.data_format ==
                            "channels_last" else tuple([None, shape[1], *ones]))
        return super()._engine_node(node, param_index)

    def get_config(self):
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": "float32"}


class SpatialDropout1D(_SpatialDropout):
    _rank = 3

    def __init__(self, rate, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)


class SpatialDropout2D(_SpatialDropout):
    _rank = 4

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class SpatialDropout3D(_SpatialDropout):
    _rank = 5

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class AlphaDropout(Dropout):
    """Keras's AlphaDropout for SELU networks: dropped values become SELU's negative saturation
    alpha' = -alpha·scale, then a·x + b keeps the mean and variance; identity outside
    training."""
    _ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
    _rate_one = False

    def _engine_fattrs(self):
        rate, alpha_p = self.rate, self._ALPHA_P
        a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
        return [rate, a, -a * alpha_p * rate, alpha_p]
