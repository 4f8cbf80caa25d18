"""LayerNormalization over several axes (axis a list, as Keras's): each sample normalized over
the values of those axes together, gamma and beta of those axes' shape (sorted, as Keras's
build sorts them), by index maps moving the axes last around the engine's layer norm."""

import numpy as np
import pytest
from densitron import layers
from densitron.models import Model
from test_gradients_fd import fd_check

AXES = [[1, 2], [2, 3], (-1, -2), [1, 3], [1, 2, 3], [3, 1]]


def _reference(x, gamma, beta, axes, eps):
    """Keras's formula in float64: (x - mean)·rsqrt(var + eps)·gamma + beta."""
    x = x.astype(np.float64)
    axes = sorted(a % x.ndim for a in axes)
    mean = x.mean(axis=tuple(axes), keepdims=True)
    var = x.var(axis=tuple(axes), keepdims=True)
    shape = [x.shape[d] if d in axes else 1 for d in range(x.ndim)]
    return (x - mean) / np.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape)


def _model(axis, **kwargs):
    inp = layers.Input((3, 4, 5))
    norm = layers.LayerNormalization(axis=axis, **kwargs)
    return Model(inp, norm(inp)), norm


@pytest.mark.parametrize("axis", AXES)
def test_matches_the_formula(axis):
    rng = np.random.default_rng(0)
    model, norm = _model(axis, epsilon=1e-2)
    axes = sorted(a % 4 for a in axis)
    assert norm.axis == sorted(axis) and norm.gamma.shape == tuple((3, 4, 5)[a - 1]
                                                                    for a in axes)
    gamma = rng.standard_normal(norm.gamma.shape).astype(np.float32)
    beta = rng.standard_normal(norm.beta.shape).astype(np.float32)
    model.set_weights([gamma, beta])
    x = (rng.standard_normal((7, 3, 4, 5)) * 3 + 1).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               _reference(x, gamma, beta, axes, 1e-2), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("axis", [[1, 2], [1, 3]])
def test_backward(axis):
    rng = np.random.default_rng(1)
    inp = layers.Input((3, 4, 5))
    h = layers.Dense(5, activation="tanh", bias_initializer="random_normal")(inp)
    h = layers.LayerNormalization(axis=axis, gamma_initializer="random_normal",
                                  beta_initializer="random_normal")(h)
    model = Model(inp, layers.Dense(2)(layers.Flatten()(h)))
    fd_check(model, rng.normal(size=(4, 3, 4, 5)), rng.normal(size=(4, 2)), "mse")


def test_config_and_scale_center_off():
    model, norm = _model([2, 1], center=False)
    assert norm.get_config()["axis"] == [1, 2] and norm.beta is None
    again = layers.LayerNormalization.from_config(norm.get_config())
    assert again.axis == [1, 2]
    x = np.random.default_rng(2).standard_normal((3, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               _reference(x, np.ones((3, 4)), np.zeros((3, 4)), [1, 2], 1e-3),
                               rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("axis,error", [([1, 1], ValueError), ([0, 1], ValueError),
                                        ([1, 4], ValueError), ([1, "2"], TypeError)])
def test_bad_axes_are_refused(axis, error):
    with pytest.raises(error, match="Received: axis="):
        layers.LayerNormalization(axis=axis)(layers.Input((3, 4, 5)))


@pytest.mark.filterwarnings(  # (Keras's numpy backend's own)
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning:keras")
def test_matches_keras_and_files_load_both_ways(keras, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 3, 4, 5)).astype(np.float32)
    for axis in AXES:
        k_in = keras.Input((3, 4, 5))
        k_model = keras.Model(k_in, keras.layers.LayerNormalization(axis=axis)(k_in))
        weights = [rng.standard_normal(tuple(w.shape)).astype(np.float32)
                   for w in k_model.weights]
        k_model.set_weights(weights)
        model, _ = _model(axis)
        model.set_weights(weights)
        expected = np.asarray(k_model.predict(x, verbose=0))
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=2e-5)
        k_model.save(tmp_path / "k.keras")
        from densitron.saving import load_model

        np.testing.assert_allclose(load_model(tmp_path / "k.keras").predict(x, verbose=0),
                                   expected, rtol=1e-5, atol=2e-5)
        model.save(tmp_path / "d.keras")
        np.testing.assert_allclose(
            np.asarray(keras.saving.load_model(tmp_path / "d.keras").predict(x, verbose=0)),
            expected, rtol=1e-5, atol=2e-5)
