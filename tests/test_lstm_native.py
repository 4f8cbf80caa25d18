"""The engine's LSTM node (OpType::kLSTM): an LSTM with Keras's default activations and no
initial states, dropout or returned states runs as one node over every step (a mask too). Checked
against a float64 NumPy reference of Keras's LSTM, against the steps unrolled as nodes (the
path every other LSTM takes, itself checked against Keras in test_recurrent.py), against
finite differences, and on one and two threads."""

import densitron
import numpy as np
import pytest
from densitron import layers
from densitron.layers import recurrent
from densitron.models import Model
from test_gradients_fd import fd_check
from test_threads import assert_trains_alike_on_one_and_two_threads

_LSTM = 36  # OpType::kLSTM


def engine_ops(model, layer):
    node = next(n for n in model._nodes if n.layer is layer)
    param_index = {id(w): k for k, w in enumerate(model.weights)}
    items, _ = layer._engine_subgraph(node, param_index)
    return [spec[0] for _, spec in items]


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_reference(x, kernel, recurrent_kernel, bias, return_sequences, go_backwards):
    """Keras's LSTM in float64: gates i, f, g, o; zero initial states."""
    x = np.asarray(x, np.float64)
    if go_backwards:
        x = x[:, ::-1]
    u = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[0], u))
    c = np.zeros((x.shape[0], u))
    outs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent_kernel + (0.0 if bias is None else bias)
        i, f, g, o = (z[:, k * u:(k + 1) * u] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outs.append(h)
    return np.stack(outs, axis=1) if return_sequences else h


CASES = [  # (steps, features, units, arguments)
    (1, 3, 2, {}),
    (5, 7, 13, {"return_sequences": True}),
    (9, 4, 5, {"go_backwards": True}),
    (6, 1, 8, {"return_sequences": True, "go_backwards": True, "use_bias": False}),
    (28, 28, 64, {}),
]


@pytest.mark.parametrize("steps,features,units,kwargs", CASES)
@pytest.mark.parametrize("threads", [1, 2])
def test_forward_against_float64_reference(steps, features, units, kwargs, threads):
    densitron.set_num_threads(threads)
    rng = np.random.default_rng(0)
    inp = layers.Input((steps, features))
    lstm = layers.LSTM(units, bias_initializer="random_normal", **kwargs)
    model = Model(inp, lstm(inp))
    assert engine_ops(model, lstm) == [_LSTM]
    for rows in (1, 5, 37):  # (fewer samples than threads and than gradient blocks too)
        x = rng.normal(size=(rows, steps, features)).astype(np.float32)
        w = lstm.get_weights()
        want = lstm_reference(x, w[0], w[1], w[2] if len(w) == 3 else None,
                              kwargs.get("return_sequences", False),
                              kwargs.get("go_backwards", False))
        np.testing.assert_allclose(model.predict(x, verbose=0, batch_size=16), want,
                                   rtol=1e-5, atol=1e-5)


FD_CASES = [(3, 2, 3, {}), (4, 3, 2, {"return_sequences": True, "go_backwards": True}),
            (2, 2, 3, {"use_bias": False})]


@pytest.mark.parametrize("steps,features,units,kwargs", FD_CASES)
def test_gradients_against_finite_differences(steps, features, units, kwargs):
    # a Dense before the LSTM takes the input's gradient; one after reads the output
    rng = np.random.default_rng(1)
    inp = layers.Input((steps, features))
    lstm = layers.LSTM(units, bias_initializer="random_normal", **kwargs)
    h = lstm(layers.Dense(features)(inp))
    out = layers.Dense(2)(layers.Flatten()(h) if kwargs.get("return_sequences") else h)
    model = Model(inp, out)
    assert engine_ops(model, lstm) == [_LSTM]
    fd_check(model, rng.normal(size=(3, steps, features)), rng.normal(size=(3, 2)), "mse")


def _unrolled(monkeypatch):
    monkeypatch.setattr(recurrent.LSTM, "_native", lambda self, states: False)


def _text_model(kwargs, frozen=False):
    inp = layers.Input((7, 6))
    h = layers.Dense(6, activation="tanh")(inp)
    first = layers.LSTM(9, return_sequences=True, **kwargs)
    h = first(h)
    if frozen:
        first.trainable = False
    h = layers.Bidirectional(layers.LSTM(5))(h)
    model = Model(inp, layers.Dense(3, activation="softmax")(h))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("kwargs,frozen", [({}, False), ({"go_backwards": True}, False),
                                           ({"use_bias": False}, True)])
def test_trains_as_the_unrolled_steps(monkeypatch, kwargs, frozen):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(45, 7, 6)).astype(np.float32)
    y = rng.integers(0, 3, 45)
    results = []
    for native in (True, False):
        if not native:
            _unrolled(monkeypatch)
        densitron.utils.set_random_seed(3)
        model = _text_model(kwargs, frozen)
        ops = engine_ops(model, model.layers[2])
        assert (ops == [_LSTM]) == native
        loss = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history["loss"]
        results.append((loss, model.get_weights(), model.predict(x, verbose=0)))
    (loss_n, w_n, p_n), (loss_u, w_u, p_u) = results
    np.testing.assert_allclose(loss_n, loss_u, rtol=1e-5)
    for a, b in zip(w_n + [p_n], w_u + [p_u]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_trains_alike_on_one_and_two_threads():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(70, 7, 6)).astype(np.float32)
    y = rng.integers(0, 3, 70)
    assert_trains_alike_on_one_and_two_threads(lambda: _text_model({}), x, y, batch_size=32,
                                               epochs=2)


@pytest.mark.parametrize("kwargs", [{"activation": "relu"}, {"recurrent_activation": "tanh"},
                                    {"dropout": 0.2}, {"recurrent_dropout": 0.2},
                                    {"return_state": True}])
def test_other_lstms_keep_the_unrolled_steps(kwargs):
    inp = layers.Input((4, 3))
    lstm = layers.LSTM(5, **kwargs)
    out = lstm(inp)
    model = Model(inp, out)
    assert _LSTM not in engine_ops(model, lstm)


def test_initial_state_lstm_keeps_the_unrolled_steps():
    seq, h0, c0 = layers.Input((4, 3)), layers.Input((5,)), layers.Input((5,))
    lstm = layers.LSTM(5)
    model = Model([seq, h0, c0], lstm(seq, initial_state=[h0, c0]))
    assert _LSTM not in engine_ops(model, lstm)


def masked_reference(x, kept, kernel, recurrent_kernel, bias, return_sequences, go_backwards,
                     zero_output):
    """Keras's masked LSTM in float64: a masked step keeps the states; its output is the
    state h (zeros with zero_output_for_mask)."""
    x = np.asarray(x, np.float64)
    if go_backwards:
        x, kept = x[:, ::-1], kept[:, ::-1]
    u = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[0], u))
    c = np.zeros((x.shape[0], u))
    outs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = (z[:, k * u:(k + 1) * u] for k in range(4))
        c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h_new = sigmoid(o) * np.tanh(c_new)
        m = kept[:, t:t + 1]
        c = np.where(m, c_new, c)
        h = np.where(m, h_new, h)
        outs.append(np.where(m, h_new, 0.0) if zero_output else h)
    return np.stack(outs, axis=1) if return_sequences else outs[-1]


@pytest.mark.parametrize("kwargs", [{}, {"return_sequences": True},
                                    {"go_backwards": True, "return_sequences": True},
                                    {"zero_output_for_mask": True, "return_sequences": True},
                                    {"zero_output_for_mask": True}])
@pytest.mark.parametrize("threads", [1, 2])
def test_masked_forward_against_float64_reference(kwargs, threads):
    densitron.set_num_threads(threads)
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 4, (23, 9))  # (0 masks the step: some first, some last)
    ids[0, :] = 0
    ids[1, -3:] = 0
    inp = layers.Input((9,))
    emb = layers.Embedding(4, 3, mask_zero=True)
    lstm = layers.LSTM(6, bias_initializer="random_normal", **kwargs)
    out = lstm(emb(inp))
    if kwargs.get("return_sequences"):  # (the mask may not reach an output)
        out = drop_mask(out, (9, 6))
    model = Model(inp, out)
    assert _MATH_THEN_LSTM == engine_ops(model, lstm)[-2:]
    w = lstm.get_weights()
    want = masked_reference(emb.get_weights()[0][ids], ids != 0, *w,
                            kwargs.get("return_sequences", False),
                            kwargs.get("go_backwards", False),
                            kwargs.get("zero_output_for_mask", False))
    np.testing.assert_allclose(model.predict(ids, verbose=0, batch_size=8), want, rtol=1e-5,
                               atol=1e-5)


def drop_mask(t, shape):
    with pytest.warns(UserWarning, match="destroy the mask"):
        return layers.Reshape(shape)(t)


_MATH_THEN_LSTM = [25, _LSTM]  # (the mask's kept steps: ids != 0)


@pytest.mark.parametrize("kwargs", [{"return_sequences": True}, {"go_backwards": True},
                                    {"zero_output_for_mask": True, "return_sequences": True}])
def test_masked_gradients_against_finite_differences(kwargs):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 5, 2))
    x[0, 1] = 0.0  # (masked steps: inside, first and last)
    x[1, 0] = 0.0
    x[2, 4] = 0.0
    inp = layers.Input((5, 2))
    lstm = layers.LSTM(3, bias_initializer="random_normal", **kwargs)
    h = lstm(layers.Masking(0.0)(inp))
    out = layers.Dense(2)(drop_mask(h, (15,)) if kwargs.get("return_sequences") else h)
    model = Model(inp, out)
    assert engine_ops(model, lstm)[-1] == _LSTM
    fd_check(model, x, rng.normal(size=(3, 2)), "mse")


def _masked_text_model():
    inp = layers.Input((8,))
    h = layers.Embedding(6, 5, mask_zero=True)(inp)
    h = layers.LSTM(7, return_sequences=True)(h)
    h = layers.Bidirectional(layers.LSTM(4))(h)
    model = Model(inp, layers.Dense(3, activation="softmax")(h))
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    return model


def test_masked_model_trains_as_the_unrolled_steps(monkeypatch):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 6, (40, 8))
    x[:, 5:] *= rng.integers(0, 2, (40, 1))  # (padded tails)
    y = rng.integers(0, 3, 40)
    results = []
    for native in (True, False):
        if not native:
            _unrolled(monkeypatch)
        densitron.utils.set_random_seed(8)
        model = _masked_text_model()
        assert (engine_ops(model, model.layers[2])[-1] == _LSTM) == native
        loss = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history["loss"]
        results.append((loss, model.get_weights(), model.predict(x, verbose=0)))
    (loss_n, w_n, p_n), (loss_u, w_u, p_u) = results
    np.testing.assert_allclose(loss_n, loss_u, rtol=1e-5)
    for a, b in zip(w_n + [p_n], w_u + [p_u]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_masked_model_trains_alike_on_one_and_two_threads():
    rng = np.random.default_rng(9)
    x = rng.integers(0, 6, (70, 8))
    y = rng.integers(0, 3, 70)
    assert_trains_alike_on_one_and_two_threads(_masked_text_model, x, y, batch_size=32,
                                               epochs=2)


def test_engine_refuses_malformed_lstm_attributes():
    from densitron import _core

    linear = (0.0, -1.0, 0.0, 1.0)
    kernel = np.zeros(3 * 8, np.float32)
    rec = np.zeros(2 * 8, np.float32)
    bias = np.zeros(8, np.float32)

    def graph(iattrs, width=2, in_width=12, bias_slot=2):
        nodes = [(0, [], in_width, 1, 0, linear, [], [], [], (0.0, 0.0)),
                 (_LSTM, [0], width, 2, 0, linear, [0, 1, bias_slot], [], iattrs, (0.0, 0.0))]
        params = [(kernel, 3, 8, 0.0, 0.0, 0, 0.0, 0.0, 1.0, 0),
                  (rec, 2, 8, 0.0, 0.0, 0, 0.0, 0.0, 1.0, 0),
                  (bias, 1, 8, 0.0, 0.0, 0, 0.0, 0.0, 1.0, 0)]
        return _core.Graph(nodes, params, [0], [1])

    graph([4, 3, 2, 0, 0])
    graph([4, 3, 2, 1, 1], width=8)
    graph([4, 3, 2, 0, 0], bias_slot=-1)
    for iattrs, width, in_width in [([4, 3, 2, 0], 2, 12), ([4, 3, 2, 0, 2], 2, 12),
                                    ([4, 3, 2, 1, 0], 2, 12), ([5, 3, 2, 0, 0], 2, 12),
                                    ([4, 3, 2, 0, 0], 4, 12), ([4, 3, 2, 1, 0], 6, 12)]:
        with pytest.raises(ValueError, match="an LSTM takes"):
            graph(iattrs, width, in_width)
    with pytest.raises(ValueError, match="LSTM weight sizes"):
        graph([4, 4, 2, 0, 0], in_width=16)
