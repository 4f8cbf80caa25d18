"""The engine's recurrent nodes (OpType::kLSTM, kGRU, kSimpleRNN): an LSTM, GRU (reset_after
or not) or SimpleRNN (tanh or relu) with Keras's default activations runs as one node over
every step, with a mask, initial and returned states, the input's dropout (a node before it:
with a recurrent dropout, LSTM's and GRU's one copy of the features a gate) and the recurrent
dropout (one mask a gate, drawn by the node). Checked against a float64 NumPy reference of
Keras's cells and loop (the recurrent dropout's masks those of a Dropout node of the same seed),
against the steps unrolled as nodes (the path every other LSTM and GRU takes, itself checked
against Keras in test_recurrent.py), against finite differences, on one and two threads, and
against Keras at inference."""

import densitron
import numpy as np
import pytest
from densitron import layers
from densitron.layers import recurrent
from densitron.models import Model
from test_gradients_fd import fd_check
from test_threads import assert_trains_alike_on_one_and_two_threads

_LSTM, _GRU, _SIMPLE, _MATH = 36, 37, 38, 25  # OpType
OPS = {"LSTM": _LSTM, "GRU": _GRU, "GRU-before": _GRU, "SimpleRNN": _SIMPLE,
       "SimpleRNN-relu": _SIMPLE}
CELLS = ["LSTM", "GRU", "GRU-before", "SimpleRNN", "SimpleRNN-relu"]
NATIVE = {_LSTM, _GRU, _SIMPLE}


def make(cell, units, **kwargs):
    """The layer a test names: SimpleRNN-relu is SimpleRNN(activation='relu'), GRU-before
    GRU(reset_after=False)."""
    if cell == "SimpleRNN-relu":
        return layers.SimpleRNN(units, activation="relu", **kwargs)
    if cell == "GRU-before":
        return layers.GRU(units, reset_after=False, **kwargs)
    return getattr(layers, cell)(units, **kwargs)





def engine_ops(model, layer):
    node = next(n for n in model._nodes if n.layer is layer)
    param_index = {id(w): k for k, w in enumerate(model.weights)}
    items, _ = layer._engine_subgraph(node, param_index)
    return [spec[0] for _, spec in items]


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def reference(cell, x, weights, return_sequences=False, go_backwards=False, kept=None,
              zero_output=False, initial=None, return_state=False, rec_masks=None):
    """Keras's LSTM, GRU or SimpleRNN in float64 from zero states (or `initial`, [h, c] or
    [h]): a masked step (kept False) keeps the states and outputs the state h (zeros with
    zero_output_for_mask). With return_state, [output, h, (c)]. rec_masks: the recurrent
    dropout's, (samples, gates·units), gate q's product from h_{t-1}·(its q-th block)."""
    kernel, recurrent_kernel = (np.asarray(w, np.float64) for w in weights[:2])
    bias = np.asarray(weights[2], np.float64) if len(weights) == 3 else None
    x = np.asarray(x, np.float64)
    kept = np.ones(x.shape[:2], bool) if kept is None else kept
    if go_backwards:
        x, kept = x[:, ::-1], kept[:, ::-1]
    u = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[0], u))
    c = np.zeros((x.shape[0], u))
    if initial is not None:
        h = np.asarray(initial[0], np.float64)
        c = np.asarray(initial[1], np.float64) if cell == "LSTM" else c
    gates = recurrent_kernel.shape[1] // u
    masks = np.ones((x.shape[0], gates * u)) if rec_masks is None else \
        np.asarray(rec_masks, np.float64)

    def product(h, q0, q1):  # gates q0..q1-1's columns of h·recurrent_kernel, masked
        return np.concatenate([(h * masks[:, q * u:(q + 1) * u]) @
                               recurrent_kernel[:, q * u:(q + 1) * u]
                               for q in range(q0, q1)], axis=1)

    outs = []
    for t in range(x.shape[1]):
        if cell.startswith("SimpleRNN"):
            z = x[:, t] @ kernel + product(h, 0, 1) + (0.0 if bias is None else bias)
            c_new, h_new = c, np.maximum(z, 0.0) if cell.endswith("relu") else np.tanh(z)
        elif cell == "LSTM":
            z = x[:, t] @ kernel + product(h, 0, 4) + (0.0 if bias is None else bias)
            i, f, g, o = (z[:, k * u:(k + 1) * u] for k in range(4))
            c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h_new = sigmoid(o) * np.tanh(c_new)
        elif cell == "GRU-before":  # (r·h_{t-1})·R_h, one bias row
            xz = x[:, t] @ kernel + (0.0 if bias is None else bias)
            rz = product(h, 0, 2)
            z = sigmoid(xz[:, :u] + rz[:, :u])
            r = sigmoid(xz[:, u:2 * u] + rz[:, u:])
            hh = np.tanh(xz[:, 2 * u:] + (r * h * masks[:, 2 * u:]) @ recurrent_kernel[:, 2 * u:])
            c_new, h_new = c, z * h + (1.0 - z) * hh
        else:
            xz = x[:, t] @ kernel + (0.0 if bias is None else bias[0])
            rz = product(h, 0, 3) + (0.0 if bias is None else bias[1])
            z = sigmoid(xz[:, :u] + rz[:, :u])
            r = sigmoid(xz[:, u:2 * u] + rz[:, u:2 * u])
            hh = np.tanh(xz[:, 2 * u:] + r * rz[:, 2 * u:])
            c_new, h_new = c, z * h + (1.0 - z) * hh
        m = kept[:, t:t + 1]
        c = np.where(m, c_new, c)
        h = np.where(m, h_new, h)
        outs.append(np.where(m, h_new, 0.0) if zero_output else h)
    out = np.stack(outs, axis=1) if return_sequences else outs[-1]
    if return_state:
        return [out, h, c] if cell == "LSTM" else [out, h]
    return out


def drop_mask(t, shape):
    with pytest.warns(UserWarning, match="destroy the mask"):
        return layers.Reshape(shape)(t)


CASES = [  # (steps, features, units, arguments)
    (1, 3, 2, {}),
    (5, 7, 13, {"return_sequences": True}),
    (9, 4, 5, {"go_backwards": True}),
    (6, 1, 8, {"return_sequences": True, "go_backwards": True, "use_bias": False}),
    (28, 28, 64, {}),
]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("steps,features,units,kwargs", CASES)
@pytest.mark.parametrize("threads", [1, 2])
def test_forward_against_float64_reference(cell, steps, features, units, kwargs, threads):
    densitron.set_num_threads(threads)
    rng = np.random.default_rng(0)
    inp = layers.Input((steps, features))
    rnn = make(cell, units, bias_initializer="random_normal", **kwargs)
    model = Model(inp, rnn(inp))
    assert engine_ops(model, rnn) == [OPS[cell]]
    for rows in (1, 5, 37):  # (fewer samples than threads and than gradient blocks too)
        x = rng.normal(size=(rows, steps, features)).astype(np.float32)
        want = reference(cell, x, rnn.get_weights(), kwargs.get("return_sequences", False),
                         kwargs.get("go_backwards", False))
        np.testing.assert_allclose(model.predict(x, verbose=0, batch_size=16), want,
                                   rtol=1e-5, atol=1e-5)


FD_CASES = [(3, 2, 3, {}), (4, 3, 2, {"return_sequences": True, "go_backwards": True}),
            (2, 2, 3, {"use_bias": False})]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("steps,features,units,kwargs", FD_CASES)
def test_gradients_against_finite_differences(cell, steps, features, units, kwargs):
    # a Dense before the layer takes the input's gradient; one after reads the output
    rng = np.random.default_rng(1)
    inp = layers.Input((steps, features))
    rnn = make(cell, units, bias_initializer="random_normal", **kwargs)
    h = rnn(layers.Dense(features)(inp))
    out = layers.Dense(2)(layers.Flatten()(h) if kwargs.get("return_sequences") else h)
    model = Model(inp, out)
    assert engine_ops(model, rnn) == [OPS[cell]]
    fd_check(model, rng.normal(size=(3, steps, features)), rng.normal(size=(3, 2)), "mse")


def _unrolled(monkeypatch):
    monkeypatch.setattr(recurrent._RNN, "_native", lambda self, states: False)


def _model(cell, kwargs, frozen=False, units=(9, 5)):
    inp = layers.Input((7, 6))
    h = layers.Dense(6, activation="tanh")(inp)
    first = make(cell, units[0], return_sequences=True, **kwargs)
    h = first(h)
    if frozen:
        first.trainable = False
    h = layers.Bidirectional(make(cell, units[1]))(h)
    model = Model(inp, layers.Dense(3, activation="softmax")(h))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _fit_native_and_unrolled(monkeypatch, build, x, y, layer_index):
    results = []
    for native in (True, False):
        if not native:
            _unrolled(monkeypatch)
        densitron.utils.set_random_seed(3)
        model = build()
        ops = engine_ops(model, model.layers[layer_index])
        assert bool(NATIVE & set(ops)) == native
        loss = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history["loss"]
        results.append((loss, model.get_weights(), model.predict(x, verbose=0)))
    (loss_n, w_n, p_n), (loss_u, w_u, p_u) = results
    np.testing.assert_allclose(loss_n, loss_u, rtol=1e-5)
    for a, b in zip(w_n + [p_n], w_u + [p_u]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kwargs,frozen", [({}, False), ({"go_backwards": True}, False),
                                           ({"use_bias": False}, True),
                                           ({"dropout": 0.3}, False)])
def test_trains_as_the_unrolled_steps(monkeypatch, cell, kwargs, frozen):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(45, 7, 6)).astype(np.float32)
    y = rng.integers(0, 3, 45)
    _fit_native_and_unrolled(monkeypatch, lambda: _model(cell, kwargs, frozen), x, y, 2)


@pytest.mark.parametrize("cell", CELLS)
def test_trains_alike_on_one_and_two_threads(cell):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(140, 7, 6)).astype(np.float32)
    y = rng.integers(0, 3, 140)
    assert_trains_alike_on_one_and_two_threads(lambda: _model(cell, {}, units=(32, 32)), x, y,
                                               batch_size=64, epochs=2)


@pytest.mark.parametrize("cell,kwargs", [
    ("LSTM", {"activation": "relu"}), ("LSTM", {"recurrent_activation": "tanh"}),
    ("GRU", {"activation": "relu"}), ("GRU-before", {"recurrent_activation": "tanh"}),
    ("SimpleRNN", {"activation": "sigmoid"})])
def test_other_layers_keep_the_unrolled_steps(cell, kwargs):
    inp = layers.Input((4, 3))
    rnn = make(cell, 5, **kwargs)
    model = Model(inp, rnn(inp))
    assert not NATIVE & set(engine_ops(model, rnn))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kwargs", [{}, {"return_sequences": True, "go_backwards": True}])
@pytest.mark.parametrize("threads", [1, 2])
def test_initial_and_returned_states_against_float64_reference(cell, kwargs, threads):
    densitron.set_num_threads(threads)
    rng = np.random.default_rng(11)
    n_states = 2 if cell == "LSTM" else 1
    seq = layers.Input((6, 4))
    states = [layers.Input((5,)) for _ in range(n_states)]
    rnn = make(cell, 5, return_state=True, bias_initializer="random_normal",
                                **kwargs)
    outs = rnn(seq, initial_state=states)
    model = Model([seq, *states], outs)
    assert OPS[cell] in engine_ops(model, rnn)
    x = rng.normal(size=(19, 6, 4)).astype(np.float32)
    init = [rng.normal(size=(19, 5)).astype(np.float32) for _ in range(n_states)]
    got = model.predict([x, *init], verbose=0, batch_size=8)
    want = reference(cell, x, rnn.get_weights(), kwargs.get("return_sequences", False),
                     kwargs.get("go_backwards", False), initial=init, return_state=True)
    assert len(got) == len(want) == 1 + n_states
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_states_gradients_against_finite_differences(cell):
    # the initial states from Dense layers of a second input (their gradients are the states'),
    # the returned states read by the loss
    rng = np.random.default_rng(12)
    seq, side = layers.Input((3, 2)), layers.Input((2,))
    n_states = 2 if cell == "LSTM" else 1
    states = [layers.Dense(3)(side) for _ in range(n_states)]
    rnn = make(cell, 3, return_state=True, return_sequences=True,
                                bias_initializer="random_normal")
    outs = rnn(seq, initial_state=states)
    joined = layers.Concatenate()([layers.Flatten()(outs[0]), *outs[1:]])
    model = Model([seq, side], layers.Dense(2)(joined))
    assert OPS[cell] in engine_ops(model, rnn)
    fd_check(model, [rng.normal(size=(3, 3, 2)), rng.normal(size=(3, 2))],
             rng.normal(size=(3, 2)), "mse")


def _seq2seq(cell):
    """keras.io's character-level sequence-to-sequence model, small: the encoder's states
    start the decoder."""
    enc_in, dec_in = layers.Input((6, 5)), layers.Input((4, 5))
    _, *states = make(cell, 8, return_state=True)(enc_in)
    dec = make(cell, 8, return_sequences=True, return_state=True)
    out, *_ = dec(dec_in, initial_state=states)
    model = Model([enc_in, dec_in], layers.Dense(5, activation="softmax")(out))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    return model


@pytest.mark.parametrize("cell", CELLS)
def test_seq2seq_trains_as_the_unrolled_steps(monkeypatch, cell):
    rng = np.random.default_rng(13)
    x = [rng.normal(size=(40, 6, 5)).astype(np.float32),
         rng.normal(size=(40, 4, 5)).astype(np.float32)]
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, (40, 4))]
    _fit_native_and_unrolled(monkeypatch, lambda: _seq2seq(cell), x, y, 2)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kwargs", [{}, {"return_sequences": True},
                                    {"go_backwards": True, "return_sequences": True},
                                    {"zero_output_for_mask": True, "return_sequences": True},
                                    {"zero_output_for_mask": True}])
@pytest.mark.parametrize("threads", [1, 2])
def test_masked_forward_against_float64_reference(cell, kwargs, threads):
    densitron.set_num_threads(threads)
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 4, (23, 9))  # (0 masks the step: some first, some last)
    ids[0, :] = 0
    ids[1, -3:] = 0
    inp = layers.Input((9,))
    emb = layers.Embedding(4, 3, mask_zero=True)
    rnn = make(cell, 6, bias_initializer="random_normal", **kwargs)
    out = rnn(emb(inp))
    if kwargs.get("return_sequences"):  # (the mask may not reach an output)
        out = drop_mask(out, (9, 6))
    model = Model(inp, out)
    assert engine_ops(model, rnn)[-2:] == [_MATH, OPS[cell]]
    want = reference(cell, emb.get_weights()[0][ids], rnn.get_weights(),
                     kwargs.get("return_sequences", False), kwargs.get("go_backwards", False),
                     ids != 0, kwargs.get("zero_output_for_mask", False))
    np.testing.assert_allclose(model.predict(ids, verbose=0, batch_size=8), want, rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kwargs", [{"return_sequences": True}, {"go_backwards": True},
                                    {"zero_output_for_mask": True, "return_sequences": True}])
def test_masked_gradients_against_finite_differences(cell, kwargs):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 5, 2))
    x[0, 1] = 0.0  # (masked steps: inside, first and last)
    x[1, 0] = 0.0
    x[2, 4] = 0.0
    inp = layers.Input((5, 2))
    rnn = make(cell, 3, bias_initializer="random_normal", **kwargs)
    h = rnn(layers.Masking(0.0)(inp))
    out = layers.Dense(2)(drop_mask(h, (15,)) if kwargs.get("return_sequences") else h)
    model = Model(inp, out)
    assert engine_ops(model, rnn)[-1] == OPS[cell]
    fd_check(model, x, rng.normal(size=(3, 2)), "mse")


def _masked_text_model(cell, units=(7, 4)):
    inp = layers.Input((8,))
    h = layers.Embedding(6, 5, mask_zero=True)(inp)
    h = make(cell, units[0], return_sequences=True)(h)
    h = layers.Bidirectional(make(cell, units[1]))(h)
    model = Model(inp, layers.Dense(3, activation="softmax")(h))
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    return model


def _padded_ids(rng, rows):
    x = rng.integers(0, 6, (rows, 8))
    x[:, 5:] *= rng.integers(0, 2, (rows, 1))  # (padded tails)
    return x


@pytest.mark.parametrize("cell", CELLS)
def test_masked_model_trains_as_the_unrolled_steps(monkeypatch, cell):
    rng = np.random.default_rng(7)
    x = _padded_ids(rng, 40)
    y = rng.integers(0, 3, 40)
    _fit_native_and_unrolled(monkeypatch, lambda: _masked_text_model(cell), x, y, 2)


@pytest.mark.parametrize("cell", CELLS)
def test_masked_model_trains_alike_on_one_and_two_threads(cell):
    rng = np.random.default_rng(9)
    x = _padded_ids(rng, 140)
    y = rng.integers(0, 3, 140)
    assert_trains_alike_on_one_and_two_threads(lambda: _masked_text_model(cell, (32, 32)), x,
                                               y, batch_size=64, epochs=2)


@pytest.mark.parametrize("op,gates,bias", [(_LSTM, 4, 8), (_GRU, 3, 12)])
def test_engine_refuses_malformed_attributes(op, gates, bias):
    from densitron import _core

    linear = (0.0, -1.0, 0.0, 1.0)
    weights = [np.zeros(3 * 2 * gates, np.float32), np.zeros(2 * 2 * gates, np.float32),
               np.zeros(bias, np.float32)]

    def graph(iattrs, width=2, in_width=12, bias_slot=2, fattrs=()):
        nodes = [(0, [], in_width, 1, 0, linear, [], [], [], (0.0, 0.0)),
                 (op, [0], width, 2, 0, linear, [0, 1, bias_slot], list(fattrs), iattrs,
                  (0.0, 0.0))]
        params = [(w, 1, w.size, 0.0, 0.0, 0, 0.0, 0.0, 1.0, 0) for w in weights]
        return _core.Graph(nodes, params, [0], [1])

    graph([4, 3, 2, 0, 0])
    graph([4, 3, 2, 1, 1, 1], width=8)
    graph([4, 3, 2, 0, 0], bias_slot=-1)
    for iattrs, width in [([4, 3, 2, 0], 2), ([4, 3, 2, 0, 2], 2), ([4, 3, 2, 1, 0], 2),
                          ([5, 3, 2, 0, 0], 2), ([4, 3, 2, 0, 0], 4), ([4, 3, 2, 1, 0], 6),
                          ([4, 3, 2, 0, 0, 3], 2)]:
        with pytest.raises(ValueError, match="a recurrent layer"):
            graph(iattrs, width)
    with pytest.raises(ValueError, match="recurrent layer weight sizes"):
        graph([4, 4, 2, 0, 0], in_width=16)
    # with a recurrent dropout: {.., variant, gate_inputs, seed}, f {rate}
    base = [4, 3, 2, 0, 0, 0, 0, 0, 0]
    graph(base + [0, 0, 7], fattrs=[0.25])
    graph(base + [0, 1, 7], fattrs=[0.0], in_width=12 * gates)  # (one copy a gate)
    for iattrs, fattrs, in_width in [
            (base + [0, 0, 7], [], 12), (base + [0, 0, 7], [0.2, 0.1], 12),
            (base + [0, 0, 7], [1.5], 12), (base + [0, 0, 7], [-0.1], 12),
            (base + [0, 0, 7], [float("nan")], 12), (base + [0, 0, -1], [0.2], 12),
            (base + [0, 2, 7], [0.2], 12), (base + [0, 1, 7], [0.2], 12),
            (base + [2, 0, 7], [0.2], 12), (base + [0, 0], [0.2], 12),
            (base + [0], [0.2], 12), (base, [0.2], 12)]:
        with pytest.raises(ValueError, match="a recurrent layer"):
            graph(iattrs, fattrs=fattrs, in_width=in_width)
    if op == _LSTM:  # (no variant)
        with pytest.raises(ValueError, match="a recurrent layer"):
            graph(base + [1])
    else:  # GRU's reset before the product: one bias row
        graph(base + [1], bias_slot=-1)
        with pytest.raises(ValueError, match="recurrent layer weight sizes"):
            graph(base + [1])


def test_engine_refuses_a_simple_rnn_with_input_copies():
    from densitron import _core

    linear = (0.0, -1.0, 0.0, 1.0)
    weights = [np.zeros(6, np.float32), np.zeros(4, np.float32), np.zeros(2, np.float32)]
    params = [(w, 1, w.size, 0.0, 0.0, 0, 0.0, 0.0, 1.0, 0) for w in weights]
    for gate_inputs, ok in [(0, True), (1, False)]:
        nodes = [(0, [], 12, 1, 0, linear, [], [], [], (0.0, 0.0)),
                 (_SIMPLE, [0], 2, 2, 0, linear, [0, 1, 2], [0.3],
                  [4, 3, 2, 0, 0, 0, 0, 0, 0, 1, gate_inputs, 5], (0.0, 0.0))]
        if ok:
            _core.Graph(nodes, params, [0], [1])
        else:
            with pytest.raises(ValueError, match="a recurrent layer"):
                _core.Graph(nodes, params, [0], [1])


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_after_a_larger_predict(cell):
    # a predict of more rows than the batch trained next leaves the node's buffers holding
    # its values (shrunk, not cleared): the gradients must not read them
    rng = np.random.default_rng(14)
    x = rng.normal(size=(12, 7, 5)).astype(np.float32)
    y = rng.normal(size=(12, 3)).astype(np.float32)
    grads = []
    for predict_rows in (0, 12):
        densitron.utils.set_random_seed(15)
        inp = layers.Input((7, 5))
        model = Model(inp, make(cell, 3, bias_initializer="random_normal")(inp))
        model.compile("sgd", "mse")
        if predict_rows:
            model.predict(x[:predict_rows], verbose=0)
        grads.append(model._compute_gradients(x[:4], y[:4]))
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


# --- the recurrent dropout ------------------------------------------------------------------
GATES = {"LSTM": 4, "GRU": 3, "GRU-before": 3, "SimpleRNN": 1, "SimpleRNN-relu": 1}


def _with_masks(cell, steps, features, units, rate, **kwargs):
    """A model of the layer (recurrent_dropout `rate`) and, as a second output, a Dropout
    node of the seed the layer's masks take on a second input of ones (gates·units): in a
    training run, the masks of each sample."""
    width = GATES[cell] * units
    seq, ones = layers.Input((steps, features)), layers.Input((width,))
    rnn = make(cell, units, bias_initializer="random_normal", recurrent_dropout=rate,
               **kwargs)
    out = rnn(seq)
    drop = layers.Dropout(rate)
    drop._engine_seed = rnn._rec_seed()  # (the layer's masks' seed)
    model = Model([seq, ones], [out, drop(ones)])
    assert engine_ops(model, rnn) == [OPS[cell]]
    return model, rnn, width


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("steps,features,units,kwargs", [
    (5, 3, 7, {}), (6, 4, 5, {"return_sequences": True, "go_backwards": True}),
    (3, 2, 9, {"use_bias": False, "return_sequences": True})])
@pytest.mark.parametrize("threads", [1, 2])
def test_recurrent_dropout_against_float64_reference(cell, steps, features, units, kwargs,
                                                     threads):
    densitron.set_num_threads(threads)
    rng = np.random.default_rng(21)
    model, rnn, width = _with_masks(cell, steps, features, units, 0.4, **kwargs)
    x = rng.normal(size=(21, steps, features)).astype(np.float32)
    ones = np.ones((21, width), np.float32)
    out, masks = model([x, ones], training=True)
    out, masks = np.asarray(out), np.asarray(masks)
    assert 0.2 < np.mean(masks == 0.0) < 0.6  # (masks drawn; kept values 1/(1 - rate))
    np.testing.assert_allclose(masks[masks != 0.0], 1.0 / 0.6, rtol=1e-6)
    seqs, back = kwargs.get("return_sequences", False), kwargs.get("go_backwards", False)
    want = reference(cell, x, rnn.get_weights(), seqs, back, rec_masks=masks)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    undropped = reference(cell, x, rnn.get_weights(), seqs, back)
    assert np.max(np.abs(undropped - want)) > 1e-2  # (the masks matter)
    # inference: no dropout
    got = model.predict([x, ones], verbose=0, batch_size=8)[0]
    np.testing.assert_allclose(got, undropped, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kwargs", [{}, {"dropout": 0.3, "return_sequences": True},
                                    {"go_backwards": True}])
def test_recurrent_dropout_gradients_against_finite_differences(cell, kwargs):
    # (the training-mode loss: each evaluation draws the same masks)
    rng = np.random.default_rng(22)
    inp = layers.Input((4, 3))
    rnn = make(cell, 3, bias_initializer="random_normal", recurrent_dropout=0.4, **kwargs)
    h = rnn(layers.Dense(3)(inp))
    out = layers.Dense(2)(layers.Flatten()(h) if kwargs.get("return_sequences") else h)
    model = Model(inp, out)
    ops = engine_ops(model, rnn)
    assert ops[-1] == OPS[cell]
    fd_check(model, rng.normal(size=(4, 4, 3)), rng.normal(size=(4, 2)), "mse")


@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_dropout_with_states_and_mask_against_finite_differences(cell):
    rng = np.random.default_rng(23)
    seq, side = layers.Input((4, 2)), layers.Input((2,))
    n_states = 2 if cell == "LSTM" else 1
    states = [layers.Dense(3)(side) for _ in range(n_states)]
    rnn = make(cell, 3, return_state=True, bias_initializer="random_normal",
               recurrent_dropout=0.3, dropout=0.2)
    outs = rnn(seq, initial_state=states)
    model = Model([seq, side], layers.Dense(2)(layers.Concatenate()(list(outs))))
    assert OPS[cell] in engine_ops(model, rnn)
    fd_check(model, [rng.normal(size=(4, 4, 2)), rng.normal(size=(4, 2))],
             rng.normal(size=(4, 2)), "mse")
    x = rng.normal(size=(3, 5, 2))
    x[0, 1] = x[1, 0] = x[2, 4] = 0.0  # (masked steps)
    inp = layers.Input((5, 2))
    rnn = make(cell, 3, bias_initializer="random_normal", recurrent_dropout=0.3)
    model = Model(inp, layers.Dense(2)(rnn(layers.Masking(0.0)(inp))))
    assert engine_ops(model, rnn)[-1] == OPS[cell]
    fd_check(model, x, rng.normal(size=(3, 2)), "mse")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kwargs", [{"recurrent_dropout": 0.3},
                                    {"recurrent_dropout": 0.25, "dropout": 0.2},
                                    {"recurrent_dropout": 0.2, "go_backwards": True},
                                    {"recurrent_dropout": 1.0, "dropout": 0.2}])
def test_recurrent_dropout_trains_as_the_unrolled_steps(monkeypatch, cell, kwargs):
    # (the same masks: the node's are the unrolled steps' Dropout nodes'; at rate 1 LSTM and
    # GRU drop nothing recurrent, but take the per-gate input dropout, SimpleRNN drops all h)
    rng = np.random.default_rng(24)
    x = rng.normal(size=(45, 7, 6)).astype(np.float32)
    y = rng.integers(0, 3, 45)
    _fit_native_and_unrolled(monkeypatch, lambda: _model(cell, kwargs), x, y, 2)


@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_dropout_masked_model_trains_as_the_unrolled_steps(monkeypatch, cell):
    rng = np.random.default_rng(25)
    x = _padded_ids(rng, 40)
    y = rng.integers(0, 3, 40)

    def build():
        inp = layers.Input((8,))
        h = layers.Embedding(6, 5, mask_zero=True)(inp)
        h = make(cell, 7, return_sequences=True, recurrent_dropout=0.3, dropout=0.1)(h)
        h = layers.Bidirectional(make(cell, 4, recurrent_dropout=0.2))(h)
        model = Model(inp, layers.Dense(3, activation="softmax")(h))
        model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
        return model

    _fit_native_and_unrolled(monkeypatch, build, x, y, 2)


@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_dropout_trains_alike_on_one_and_two_threads(cell):
    rng = np.random.default_rng(26)
    x = rng.normal(size=(140, 7, 6)).astype(np.float32)
    y = rng.integers(0, 3, 140)
    kwargs = {"recurrent_dropout": 0.25, "dropout": 0.1}
    assert_trains_alike_on_one_and_two_threads(lambda: _model(cell, kwargs, units=(32, 32)),
                                               x, y, batch_size=64, epochs=2)


def test_simple_rnn_recurrent_dropout_of_one_drops_every_value():
    # (SimpleRNN's cell drops for any rate above 0: at 1, h_{t-1} is all zeros in training)
    rng = np.random.default_rng(27)
    inp = layers.Input((4, 3))
    rnn = layers.SimpleRNN(5, recurrent_dropout=1.0, bias_initializer="random_normal",
                           return_sequences=True)
    model = Model(inp, rnn(inp))
    assert engine_ops(model, rnn) == [_SIMPLE]
    x = rng.normal(size=(6, 4, 3)).astype(np.float32)
    kernel, _, bias = rnn.get_weights()
    np.testing.assert_allclose(np.asarray(model(x, training=True)), np.tanh(x @ kernel + bias),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Keras's arrays under NumPy 2)
@pytest.mark.parametrize("name,kwargs", [
    ("LSTM", {"recurrent_dropout": 0.3, "dropout": 0.2}),
    ("GRU", {"recurrent_dropout": 0.3}),
    ("GRU", {"reset_after": False, "recurrent_dropout": 0.3, "dropout": 0.2}),
    ("GRU", {"reset_after": False}),
    ("SimpleRNN", {"recurrent_dropout": 0.3})])
def test_inference_same_as_keras(keras, name, kwargs):
    """At inference the dropouts do nothing: Keras's outputs on the same weights (and its
    weights' shapes: GRU(reset_after=False)'s one bias row)."""
    rng = np.random.default_rng(28)
    x = rng.normal(size=(5, 6, 3)).astype(np.float32)

    def build(lib):
        inp = lib.layers.Input((6, 3))
        layer = getattr(lib.layers, name)(4, return_sequences=True, return_state=True,
                                          **kwargs)
        return lib.Model(inp, layer(inp)), layer

    (km, _), (dm, layer) = build(keras), build(densitron)
    assert OPS[name] in engine_ops(dm, layer)
    weights = [(rng.standard_normal(w.shape) * 0.5).astype(np.float32)
               for w in km.get_weights()]
    km.set_weights(weights)
    dm.set_weights(weights)
    for k, d in zip(km.predict(x, verbose=0), dm.predict(x, verbose=0)):
        np.testing.assert_allclose(d, np.asarray(k), rtol=1e-5, atol=1e-5)
