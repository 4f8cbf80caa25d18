"""Keras's ConvLSTM1D, ConvLSTM2D and ConvLSTM3D: outputs and states against a float64 NumPy
reference of Keras 3.15's ConvLSTM cell and loop (strides, dilation, valid and same padding,
go_backwards, initial states, return_state), against Keras itself on the same weights
(channels_first too; its numpy backend here, JAX in a child process, which also trains),
gradients against finite differences, dropout, configs, files both ways, refusals."""

import inspect

import densitron
import numpy as np
import pytest
from densitron import layers
from keras_subprocess import keras_on_jax_json
from test_gradients_fd import fd_check

keras_array_warning = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def conv(x, w, strides, dilation, padding):
    """Keras's convolution of channels_last x (batch, *spatial, channels) by w (*window,
    channels, filters) in float64 (same padding: the extra zero after)."""
    rank = w.ndim - 2
    spatial = x.shape[1:-1]
    if padding == "same":
        sizes = [-(-n // s) for n, s in zip(spatial, strides)]
        pads = [max((o - 1) * s + (k - 1) * d + 1 - n, 0)
                for o, s, k, d, n in zip(sizes, strides, w.shape[:rank], dilation, spatial)]
        x = np.pad(x, [(0, 0), *((p // 2, p - p // 2) for p in pads), (0, 0)])
    else:
        sizes = [(n - (k - 1) * d - 1) // s + 1
                 for n, k, d, s in zip(spatial, w.shape[:rank], dilation, strides)]
    out = np.zeros((x.shape[0], *sizes, w.shape[-1]))
    for pos in np.ndindex(*sizes):
        for tap in np.ndindex(*w.shape[:rank]):
            at = tuple(p * s + t * d for p, s, t, d in zip(pos, strides, tap, dilation))
            out[(slice(None), *pos)] += x[(slice(None), *at)] @ w[tap]
    return out


def reference(x, weights, strides, dilation, padding, go_backwards=False, states=None):
    """Keras's ConvLSTM loop in float64: the outputs in the order the steps ran and the final
    (h, c)."""
    kernel, recurrent = (np.asarray(w, np.float64) for w in weights[:2])
    bias = np.asarray(weights[2], np.float64) if len(weights) > 2 else 0.0
    rank, f = kernel.ndim - 2, kernel.shape[-1] // 4
    ones = (1,) * rank
    x = x.astype(np.float64)
    if states is None:
        shape = conv(x[:, 0], kernel, strides, dilation, padding).shape[:-1] + (f,)
        h, c = np.zeros(shape), np.zeros(shape)
    else:
        h, c = (s.astype(np.float64) for s in states)
    outs = []
    for t in (range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])):
        z = conv(x[:, t], kernel, strides, dilation, padding) + bias + \
            conv(h, recurrent, ones, ones, "same")
        i, fg, g, o = (z[..., q * f:(q + 1) * f] for q in range(4))
        c = _sigmoid(fg) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        outs.append(h)
    return np.stack(outs, 1), h, c


CASES = {
    "1d_valid": (layers.ConvLSTM1D, (4, 7, 3), {"kernel_size": 3}),
    "1d_same_dilated": (layers.ConvLSTM1D, (3, 8, 2), {"kernel_size": 3, "padding": "same",
                                                       "dilation_rate": 2}),
    "2d_strided_same": (layers.ConvLSTM2D, (3, 5, 6, 2), {"kernel_size": (2, 3),
                                                          "strides": (2, 1),
                                                          "padding": "same"}),
    "2d_valid": (layers.ConvLSTM2D, (4, 5, 4, 3), {"kernel_size": 2}),
    "2d_pointwise": (layers.ConvLSTM2D, (3, 3, 4, 2), {"kernel_size": 1}),
    "3d_valid": (layers.ConvLSTM3D, (2, 4, 3, 4, 2), {"kernel_size": (2, 2, 3)}),
}


@pytest.mark.parametrize("states", [False, True])
@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_and_states_are_kerass_loop(case, backwards, states):
    cls, shape, kwargs = CASES[case]
    rng = np.random.default_rng(len(case) + 2 * backwards + states)
    layer = cls(3, return_sequences=True, return_state=True, go_backwards=backwards,
                bias_initializer="random_normal", **kwargs)
    inp = densitron.Input(shape)
    x = rng.standard_normal((4, *shape)).astype(np.float32)
    state_shape = layer.compute_output_shape((None, *shape))[2:]
    ins = [inp] + ([densitron.Input(state_shape), densitron.Input(state_shape)]
                   if states else [])
    out = layer(inp, initial_state=ins[1:]) if states else layer(inp)
    assert tuple(out[1].shape[1:]) == tuple(out[2].shape[1:]) == state_shape
    model = densitron.Model(ins, [layers.Flatten()(t) for t in out])
    weights = [(rng.standard_normal(w.shape) * 0.4).astype(np.float32) for w in layer.weights]
    layer.set_weights(weights)
    given = [rng.standard_normal((4, *state_shape)).astype(np.float32) for _ in range(2)]
    got = model.predict([x, *given] if states else x, verbose=0)
    seq, h, c = reference(x, weights, layer.strides, layer.dilation_rate, layer.padding,
                          backwards, given if states else None)
    for g, e in zip(got, (seq, h, c)):
        np.testing.assert_allclose(g, e.reshape(len(x), -1), rtol=1e-5, atol=1e-5)


def _model(lib):
    L = lib.layers
    x2, x1 = lib.Input((4, 6, 5, 2)), lib.Input((3, 7, 3))
    h0, c0 = lib.Input((6, 5, 3)), lib.Input((6, 5, 3))
    a = L.ConvLSTM2D(3, 3, padding="same", return_sequences=True, return_state=True)(
        x2, initial_state=[h0, c0])
    b = L.ConvLSTM2D(2, (2, 3), strides=(2, 1), go_backwards=True)(x2)
    c = L.ConvLSTM1D(4, 3, dilation_rate=2, return_sequences=True, unit_forget_bias=False)(x1)
    d = L.ConvLSTM2D(2, 3, data_format="channels_first")(L.Permute((1, 4, 2, 3))(x2))
    e = L.ConvLSTM3D(2, 2, use_bias=False)(L.Reshape((4, 3, 2, 5, 2))(x2))
    return lib.Model([x2, x1, h0, c0], [L.Flatten()(t) for t in (*a, b, c, d, e)])


def _data(rng):
    return [rng.standard_normal(s).astype(np.float32)
            for s in ((3, 4, 6, 5, 2), (3, 3, 7, 3), (3, 6, 5, 3), (3, 6, 5, 3))]


def _same_weights(model, scale=0.4):
    rng = np.random.default_rng(5)
    model.set_weights([(rng.standard_normal(w.shape) * scale).astype(np.float32)
                       for w in model.get_weights()])
    return model


def _outputs(model, x):
    return [np.asarray(o) for o in model.predict(x, verbose=0)]


@keras_array_warning
def test_same_outputs_weights_and_files_as_keras(keras, tmp_path):
    keras.backend.clear_session()  # (the layers' names as densitron's, counted afresh)
    km, dm = _same_weights(_model(keras)), _same_weights(_model(densitron))
    assert [(w.path, w.shape) for w in dm.weights] == \
        [(w.path, tuple(w.shape)) for w in km.weights]
    data = _data(np.random.default_rng(3))
    expected = _outputs(km, data)
    assert len(expected) == 7
    for e, g in zip(expected, _outputs(dm, data)):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    km.save(tmp_path / "keras.keras")
    dm.save(tmp_path / "densitron.keras")
    for model in (densitron.saving.load_model(tmp_path / "keras.keras"),
                  keras.models.load_model(tmp_path / "densitron.keras"),
                  densitron.saving.load_model(tmp_path / "densitron.keras")):
        for e, g in zip(expected, _outputs(model, data)):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    dm.save_weights(tmp_path / "densitron.weights.h5")
    km.save_weights(tmp_path / "keras.weights.h5")
    other_k = _same_weights(_model(keras), 0.1)
    other_d = _same_weights(_model(densitron), 0.1)
    other_k.load_weights(tmp_path / "densitron.weights.h5")
    other_d.load_weights(tmp_path / "keras.weights.h5")
    for model in (other_k, other_d):
        for e, g in zip(expected, _outputs(model, data)):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def _trained(lib):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((32, 3, 5, 4, 2)).astype(np.float32)
    y = rng.standard_normal((32, 2)).astype(np.float32)
    L = lib.layers
    i = lib.Input((3, 5, 4, 2))
    h = L.ConvLSTM2D(3, 3, padding="same", return_sequences=True,
                     kernel_regularizer="l2", activity_regularizer="l2")(i)
    h = L.ConvLSTM2D(2, 2, go_backwards=True)(h)
    model = lib.Model(i, L.Dense(2)(L.Flatten()(h)))
    rng = np.random.default_rng(12)
    model.set_weights([(rng.standard_normal(w.shape) * 0.3).astype(np.float32)
                       for w in model.get_weights()])
    model.compile(optimizer=lib.optimizers.Adam(0.01), loss="mse")
    return model, x, y


_JAX_SIDE = """
import json, numpy as np, keras
import test_conv_lstm as t
km = t._same_weights(t._model(keras))
outputs = [np.asarray(o).tolist() for o in km.predict(t._data(np.random.default_rng(3)),
                                                      verbose=0)]
model, x, y = t._trained(keras)
history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
print(json.dumps([outputs, history.history["loss"],
                  [w.tolist() for w in model.get_weights()]]))
"""


def test_outputs_and_training_match_keras_on_jax():
    """Keras 3.15 on JAX (a child process): the same outputs on the same weights, and the
    same losses and weights after three epochs' training from the same weights."""
    outputs, losses, weights = keras_on_jax_json(_JAX_SIDE)
    got = _outputs(_same_weights(_model(densitron)), _data(np.random.default_rng(3)))
    for g, e in zip(got, outputs):
        np.testing.assert_allclose(g, np.asarray(e), rtol=1e-5, atol=1e-6)
    model, x, y = _trained(densitron)
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], losses, rtol=2e-5)
    for g, e in zip(model.get_weights(), weights):
        np.testing.assert_allclose(g, np.asarray(e), rtol=1e-3, atol=1e-4)


def test_gradients_against_finite_differences():
    rng = np.random.default_rng(4)
    inp = densitron.Input((3, 4, 3, 2))
    h = layers.ConvLSTM2D(2, 2, padding="same", return_sequences=True,
                          bias_initializer="random_normal")(inp)
    h = layers.ConvLSTM2D(1, (2, 1), strides=(2, 1), go_backwards=True,
                          kernel_regularizer="l2")(h)
    out = layers.Dense(2)(layers.Flatten()(h))
    fd_check(densitron.Model(inp, out), rng.normal(size=(3, 3, 4, 3, 2)),
             rng.normal(size=(3, 2)), "mse")


def test_dropout_noisy_in_training_only():
    rng = np.random.default_rng(8)
    x = rng.uniform(1, 2, size=(6, 3, 5, 4, 2)).astype(np.float32)
    inp = densitron.Input((3, 5, 4, 2))
    plain = layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True)
    a = densitron.Model(inp, plain(inp))
    for kwargs in ({"dropout": 0.3}, {"recurrent_dropout": 0.4},
                   {"dropout": 0.2, "recurrent_dropout": 0.2}):
        noisy = layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True, seed=2,
                                  **kwargs)
        b = densitron.Model(inp, noisy(inp))
        noisy.set_weights(plain.get_weights())
        np.testing.assert_allclose(b.predict(x, verbose=0), a.predict(x, verbose=0),
                                   rtol=1e-6, atol=1e-7)
        assert np.abs(np.asarray(b(x, training=True)) - a.predict(x, verbose=0)).max() > 1e-2
    # the input's masks (a gate each) are the same every step: with no recurrence and the
    # forget gate shut (its bias -100), a step's output is a function of its input and the
    # masks alone, so equal steps give equal outputs
    noisy = layers.ConvLSTM1D(2, 1, dropout=0.5, seed=4, return_sequences=True)
    inp = densitron.Input((4, 3, 2))
    model = densitron.Model(inp, noisy(inp))
    kernel = rng.standard_normal((1, 2, 8)).astype(np.float32)
    bias = np.zeros(8, np.float32)
    bias[2:4] = -100.0
    noisy.set_weights([kernel, np.zeros((1, 2, 8), np.float32), bias])
    same = np.repeat(rng.uniform(1, 2, size=(5, 1, 3, 2)).astype(np.float32), 4, axis=1)
    out = np.asarray(model(same, training=True))
    assert np.abs(out - model.predict(same, verbose=0)).max() > 1e-3
    np.testing.assert_allclose(out, np.repeat(out[:, :1], 4, axis=1), rtol=1e-6, atol=1e-7)


@keras_array_warning
def test_signatures_and_configs_are_kerass(keras):
    for name in ("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"):
        assert list(inspect.signature(getattr(layers, name)).parameters) == \
            list(inspect.signature(getattr(keras.layers, name)).parameters), name
    for name, kwargs in [("ConvLSTM1D", {"padding": "same", "dilation_rate": 2}),
                         ("ConvLSTM2D", {"strides": 2, "unit_forget_bias": False,
                                         "return_state": True, "dropout": 0.25}),
                         ("ConvLSTM3D", {"data_format": "channels_first", "seed": 3})]:
        ours = getattr(layers, name)(4, 3, **kwargs).get_config()
        theirs = getattr(keras.layers, name)(4, 3, **kwargs).get_config()
        assert list(ours) == list(theirs), name
        for key, value in theirs.items():
            if key not in ("name", "dtype") and not isinstance(value, dict):
                assert ours[key] == value, (name, key)
        again = getattr(layers, name).from_config(ours).get_config()
        assert {k: v for k, v in again.items() if k != "name"} == \
            {k: v for k, v in ours.items() if k != "name"}


def _raises(error, match, fn, *args, **kwargs):
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)


def test_refusals():
    _raises(ValueError, r"Received: filters=0", layers.ConvLSTM2D, 0, 3)
    _raises(ValueError, r"Received: filters=2.5", layers.ConvLSTM1D, 2.5, 3)
    _raises(ValueError, r"Received: padding='causal'", layers.ConvLSTM1D, 2, 3,
            padding="causal")
    _raises(ValueError, r"Received: strides=\(2, 2\) and dilation_rate=\(2, 2\)",
            layers.ConvLSTM2D, 2, 3, strides=2, dilation_rate=2)
    _raises(ValueError, r"kernel_size", layers.ConvLSTM2D, 2, (3, 3, 3))
    _raises(ValueError, r"data_format", layers.ConvLSTM2D, 2, 3, data_format="nhwc")
    _raises(ValueError, r"Received: stateful=True", layers.ConvLSTM2D, 2, 3, stateful=True)
    _raises(TypeError, r"Received: dropout='x'", layers.ConvLSTM2D, 2, 3, dropout="x")
    _raises(ValueError, r"expected ndim=5, found ndim=4", layers.ConvLSTM2D(2, 3),
            densitron.Input((3, 5, 5)))
    layer = layers.ConvLSTM2D(2, 3)
    layer(densitron.Input((3, 5, 5, 2)))
    _raises(ValueError, r"expected 2 channels. Received", layer, densitron.Input((3, 5, 5, 4)))
    _raises(ValueError, r"initial state 0 must have shape \(None, 3, 3, 2\)",
            layers.ConvLSTM2D(2, 3), densitron.Input((3, 5, 5, 2)),
            initial_state=[densitron.Input((5, 5, 2)), densitron.Input((3, 3, 2))])
    _raises(ValueError, r"takes 2 initial state tensor\(s\) of the convolution's output "
            r"shape\. Received: initial_state with 1", layers.ConvLSTM2D(2, 3),
            densitron.Input((3, 5, 5, 2)), initial_state=[densitron.Input((3, 3, 2))])
    masked = layers.Masking()(densitron.Input((3, 2, 2)))
    _raises(ValueError, r"takes no mask", layers.ConvLSTM1D(2, 1), masked)
    _raises(ValueError, r"wraps SimpleRNN, LSTM, GRU and RNN\. Received",
            layers.Bidirectional, layers.ConvLSTM2D(2, 3))
