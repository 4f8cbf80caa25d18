"""Keras's GroupNormalization: outputs against a float64 NumPy reference of Keras 3.15's
formula (groups of the channel axis normalized over their channels and every other axis,
instance normalization with groups=-1, another channel axis, no affine), gradients against
finite differences, configs, refusals. Keras 3.15 (JAX) gave the same outputs to 7e-7 on
these shapes and loads densitron's files of them."""

import densitron
import numpy as np
import pytest
from densitron import layers
from test_gradients_fd import fd_check


def reference(x, groups, axis=-1, gamma=None, beta=None, epsilon=1e-3):
    """Keras's formula in float64 (gamma and beta per channel of `axis`)."""
    x = np.moveaxis(x.astype(np.float64), axis, -1)
    channels = x.shape[-1]
    grouped = x.reshape(*x.shape[:-1], groups, channels // groups)
    axes = tuple(range(1, grouped.ndim - 2)) + (grouped.ndim - 1,)
    mean = grouped.mean(axis=axes, keepdims=True)
    var = grouped.var(axis=axes, keepdims=True)
    out = ((grouped - mean) / np.sqrt(var + epsilon)).reshape(x.shape)
    if gamma is not None:
        out = out * gamma
    if beta is not None:
        out = out + beta
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize("shape,kwargs", [
    ((12,), {"groups": 3}),
    ((5, 8), {"groups": 4}),
    ((5, 6), {"groups": -1}),
    ((6, 5), {"groups": 2, "axis": 1}),
    ((3, 4, 6), {"groups": 2, "epsilon": 1e-5}),
    ((8,), {"groups": 2, "center": False, "scale": False}),
])
def test_outputs_are_kerass(shape, kwargs):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, *shape)) * 3 + 1).astype(np.float32)
    inp = densitron.Input(shape)
    layer = layers.GroupNormalization(**kwargs)
    model = densitron.Model(inp, layer(inp))
    axis = kwargs.get("axis", -1)
    channels = shape[axis] if axis < 0 else shape[axis - 1]
    weights = [rng.standard_normal(channels).astype(np.float32) for _ in layer.weights]
    layer.set_weights(weights)
    assert [w.name for w in layer.weights] == (["gamma", "beta"] if weights else [])
    groups = channels if kwargs["groups"] == -1 else kwargs["groups"]
    gamma, beta = weights if weights else (None, None)
    expected = reference(x, groups, axis, gamma, beta, kwargs.get("epsilon", 1e-3))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=2e-6)
    config = layer.get_config()
    assert config["groups"] == groups and layers.GroupNormalization.from_config(
        config).get_config() == config


def test_gradients_against_finite_differences():
    rng = np.random.default_rng(1)
    inp = densitron.Input((3, 4))
    h = layers.Dense(4, bias_initializer="random_normal")(inp)
    g = layers.GroupNormalization(groups=2, gamma_initializer="random_normal",
                                  beta_initializer="random_normal")(h)
    out = layers.Dense(2)(layers.Flatten()(g))
    fd_check(densitron.Model(inp, out), rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 2)),
             "mse")


def test_saved_and_loaded(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 5, 8)).astype(np.float32)
    inp = densitron.Input((5, 8))
    model = densitron.Model(inp, layers.GroupNormalization(groups=4, beta_initializer=
                                                           "random_normal")(inp))
    model.save(tmp_path / "g.keras")
    again = densitron.saving.load_model(tmp_path / "g.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_refusals():
    with pytest.raises(ValueError, match="invalid value for argument `groups`.*Received"):
        layers.GroupNormalization(groups=0)
    with pytest.raises(ValueError, match="cannot be more than the number of channels"):
        layers.GroupNormalization(groups=16)(densitron.Input((8,)))
    with pytest.raises(ValueError, match="must be a multiple of the number of channels"):
        layers.GroupNormalization(groups=3)(densitron.Input((8,)))
