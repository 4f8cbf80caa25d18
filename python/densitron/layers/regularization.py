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

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError("Invalid value received for argument `rate`. Expected a float value "
                             f"between 0 and 1. Received: rate={rate!r}")
        if noise_shape is not None:
            raise ValueError("`noise_shape` is not supported by densitron yet. "
                             f"Received: noise_shape={noise_shape!r}")
        self.rate = float(rate)
        self.seed = seed
        self._engine_seed = _seed(seed)

    def _engine_node(self, node, param_index):
        return engine_node(10, node, fattrs=[self.rate], iattrs=[self._engine_seed])

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed,
                "noise_shape": None}


class GaussianNoise(Layer):
    """Adds zero-centered Gaussian noise of standard deviation `stddev` in training."""

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
