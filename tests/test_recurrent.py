"""Keras's SimpleRNN, LSTM, GRU and Bidirectional: outputs and states against a float64 NumPy
reference of Keras 3.15's cells and loop (go_backwards, initial states, return_state, masks
keeping the previous state, zero_output_for_mask), against Keras itself on the same weights,
gradients against finite differences, training against Keras 3.15 (JAX)'s losses, dropout's
one mask for every step, configs, files both ways, refusals."""

import warnings

import densitron
import numpy as np
import pytest
from densitron import layers
from test_gradients_fd import fd_check

# (Keras's numpy backend's own warnings: its variables' __array__, Flatten dropping a mask)
keras_array_warning = pytest.mark.filterwarnings("ignore::DeprecationWarning")
keras_mask_warning = pytest.mark.filterwarnings("ignore:.*does not support masking")

KINDS = {"simple": (layers.SimpleRNN, {}), "lstm": (layers.LSTM, {}),
         "gru": (layers.GRU, {}), "gru_before": (layers.GRU, {"reset_after": False})}


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def cell(kind, x, states, weights):
    """One step of Keras's cell in float64: the new states (h first)."""
    w, r = weights[0], weights[1]
    bias = weights[2] if len(weights) > 2 else None
    h = states[0]
    u = r.shape[0]
    if kind == "simple":
        return [np.tanh(x @ w + h @ r + (0 if bias is None else bias))]
    if kind == "lstm":
        z = x @ w + h @ r + (0 if bias is None else bias)
        i, f, g, o = (z[:, k * u:(k + 1) * u] for k in range(4))
        c = _sigmoid(f) * states[1] + _sigmoid(i) * np.tanh(g)
        return [_sigmoid(o) * np.tanh(c), c]
    if kind == "gru":  # reset_after: bias (2, 3u), the input's and the recurrent's
        b_in, b_rec = (0, 0) if bias is None else (bias[0], bias[1])
        mx, mh = x @ w + b_in, h @ r + b_rec
        z = _sigmoid(mx[:, :u] + mh[:, :u])
        rr = _sigmoid(mx[:, u:2 * u] + mh[:, u:2 * u])
        hh = np.tanh(mx[:, 2 * u:] + rr * mh[:, 2 * u:])
    else:  # reset before the product: bias (3u,)
        mx = x @ w + (0 if bias is None else bias)
        mh = h @ r[:, :2 * u]
        z = _sigmoid(mx[:, :u] + mh[:, :u])
        rr = _sigmoid(mx[:, u:2 * u] + mh[:, u:])
        hh = np.tanh(mx[:, 2 * u:] + (rr * h) @ r[:, 2 * u:])
    return [z * h + (1 - z) * hh]


def reference(kind, x, weights, go_backwards=False, mask=None, states=None,
              zero_output_for_mask=False, unroll=False):
    """Keras's RNN loop (its JAX and NumPy backends') in float64: the outputs in the order
    the steps ran, and the final states. A masked step keeps the states; its output is the
    state (zeros with zero_output_for_mask, which the unrolled loop ignores)."""
    x = x.astype(np.float64)
    weights = [np.asarray(v, np.float64) for v in weights]
    u = weights[1].shape[0]
    n = 2 if kind == "lstm" else 1
    st = [np.zeros((len(x), u))] * n if states is None else [s.astype(np.float64)
                                                              for s in states]
    outs = []
    for t in (range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])):
        new = cell(kind, x[:, t], st, weights)
        if mask is None:
            st, out = new, new[0]
        else:
            m = mask[:, t, None]
            st = [np.where(m, a, b) for a, b in zip(new, st)]
            out = np.where(m, new[0], 0.0) if zero_output_for_mask and not unroll else st[0]
        outs.append(out)
    return np.stack(outs, 1), st


def _random_weights(layer, rng, scale=0.5):
    weights = [(rng.standard_normal(w.shape) * scale).astype(np.float32)
               for w in layer.weights]
    layer.set_weights(weights)
    return weights


def _flatten(t):
    with warnings.catch_warnings():  # (Flatten drops a returned sequence's mask)
        warnings.simplefilter("ignore")
        return layers.Flatten()(t)


OPTIONS = {
    "last": {},
    "sequences_backwards": {"return_sequences": True, "go_backwards": True},
    "states": {"return_state": True, "return_sequences": True},
    "masked": {"return_sequences": True},
    "masked_backwards_zeros": {"return_sequences": True, "go_backwards": True,
                               "zero_output_for_mask": True},
    "masked_unrolled": {"return_sequences": True, "zero_output_for_mask": True,
                        "unroll": True},
    "no_bias": {"use_bias": False, "return_state": True},
}


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_outputs_and_states_are_kerass_formula(kind, option):
    rng = np.random.default_rng(len(kind) * 31 + len(option))
    batch, steps, features, units = 9, 7, 5, 3
    x = rng.standard_normal((batch, steps, features)).astype(np.float32)
    cls, base = KINDS[kind]
    kwargs = {**base, **OPTIONS[option]}
    masked = option.startswith("masked")
    given = "states" in option
    inp = densitron.Input((steps, features))
    ins, seq = [inp], inp
    mask = None
    if masked:  # steps of zeros, masked by Masking (a whole sample among them)
        x[0, :3] = 0.0
        x[1, 4:] = 0.0
        x[2, 2] = 0.0
        x[3] = 0.0
        mask = np.any(x != 0, axis=-1)
        seq = layers.Masking()(inp)
    layer = cls(units, **kwargs)
    if given:
        st = [densitron.Input((units,)) for _ in range(2 if kind == "lstm" else 1)]
        ins += st
        out = layer(seq, initial_state=st)
    else:
        out = layer(seq)
    outs = list(out) if isinstance(out, tuple) else [out]
    model = densitron.Model(ins, [_flatten(o) if len(o.shape) == 3 else o for o in outs])
    weights = _random_weights(layer, rng)
    init = [rng.standard_normal((batch, units)).astype(np.float32)
            for _ in range(len(ins) - 1)]
    got = model.predict([x, *init] if init else x, verbose=0)
    got = got if isinstance(got, list) else [got]
    seq_out, states = reference(kind.split("_")[0] if kind != "gru_before" else kind, x,
                                weights, kwargs.get("go_backwards", False), mask,
                                init or None, kwargs.get("zero_output_for_mask", False),
                                kwargs.get("unroll", False))
    expected = [seq_out.reshape(batch, -1) if kwargs.get("return_sequences")
                else seq_out[:, -1]]
    if kwargs.get("return_state"):
        expected += states
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=2e-6)


def test_weights_are_kerass():
    for cls, kwargs, shapes in [
            (layers.SimpleRNN, {}, [(5, 3), (3, 3), (3,)]),
            (layers.LSTM, {}, [(5, 12), (3, 12), (12,)]),
            (layers.GRU, {}, [(5, 9), (3, 9), (2, 9)]),
            (layers.GRU, {"reset_after": False}, [(5, 9), (3, 9), (9,)]),
            (layers.LSTM, {"use_bias": False}, [(5, 12), (3, 12)])]:
        inp = densitron.Input((4, 5))
        layer = cls(3, name="rnn", **kwargs)
        densitron.Model(inp, layer(inp))
        assert [tuple(w.shape) for w in layer.weights] == shapes
        cell_name = {"SimpleRNN": "simple_rnn_cell", "LSTM": "lstm_cell",
                     "GRU": "gru_cell"}[cls.__name__]
        assert [w.path for w in layer.weights] == [
            f"rnn/{cell_name}/{n}" for n in ("kernel", "recurrent_kernel", "bias")][:len(shapes)]
        recurrent = layer.recurrent_kernel.numpy()
        if cls is layers.SimpleRNN:  # orthogonal by default
            np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(3), atol=1e-5)
    lstm = layers.LSTM(4, bias_initializer="ones")  # unit_forget_bias: the f block is ones
    lstm.build((None, 2, 3))
    np.testing.assert_array_equal(lstm.bias.numpy(), np.ones(16))
    lstm = layers.LSTM(4)
    lstm.build((None, 2, 3))
    np.testing.assert_array_equal(lstm.bias.numpy(), np.repeat([0.0, 1.0, 0.0, 0.0], 4))
    assert lstm.cell.kernel is lstm.kernel and lstm.cell.state_size == [4, 4]
    assert lstm.states is None


def _keras_pair(keras, build, scale=0.4):
    """The same model in Keras and densitron, with the same (random) weights."""
    km, dm = build(keras), build(densitron)
    rng = np.random.default_rng(5)
    weights = [(rng.standard_normal(w.shape) * scale).astype(np.float32)
               for w in km.get_weights()]
    km.set_weights(weights)
    dm.set_weights(weights)
    return km, dm


def _outputs(model, x):
    out = model.predict(x, verbose=0)
    return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else [out]


@keras_array_warning
@keras_mask_warning
@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("merge", ["plain", "concat", "sum", "mul", "ave", "none"])
def test_same_outputs_as_keras(keras, name, merge):
    """Embedding(mask_zero=True) (a masked sample and steps), return_sequences and states,
    go_backwards, initial states, in Keras and densitron on the same weights."""
    rng = np.random.default_rng(3)
    steps = 6
    ids = rng.integers(1, 9, size=(5, steps))
    ids[0, :2] = 0
    ids[1, 3:] = 0
    ids[3] = 0
    count = 2 if name == "LSTM" else 1
    state_values = [rng.standard_normal((5, 4)).astype(np.float32)
                    for _ in range(count * (1 if merge == "plain" else 2))]

    def build(lib):
        ins = lib.Input((steps,))
        seq = lib.layers.Embedding(10, 3, mask_zero=True)(ins)
        states = [lib.Input((4,)) for _ in state_values]

        def rnn(**kwargs):
            layer = getattr(lib.layers, name)(4, return_sequences=True, return_state=True,
                                              **kwargs)
            if merge == "plain":
                return layer
            return lib.layers.Bidirectional(layer,
                                            merge_mode=None if merge == "none" else merge)

        masked = rnn(go_backwards=merge == "plain")(seq)
        given = rnn()(seq, initial_state=states)
        outs = [lib.layers.Flatten()(t) if len(t.shape) == 3 else t
                for t in (*masked, *given)]
        return lib.Model([ins, *states], outs)

    km, dm = _keras_pair(keras, build)
    data = [ids, *state_values]
    expected, got = _outputs(km, data), _outputs(dm, data)
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


@keras_array_warning
def test_config_is_kerass(keras):
    import inspect

    for name in ("SimpleRNN", "LSTM", "GRU", "Bidirectional"):  # (positional order too)
        assert list(inspect.signature(getattr(layers, name)).parameters) == \
            list(inspect.signature(getattr(keras.layers, name)).parameters)
    for name, kwargs in [("SimpleRNN", {}), ("LSTM", {"unit_forget_bias": False}),
                         ("GRU", {"reset_after": False, "go_backwards": True})]:
        ours = getattr(layers, name)(5, dropout=0.25, **kwargs).get_config()
        theirs = getattr(keras.layers, name)(5, dropout=0.25, **kwargs).get_config()
        assert set(ours) == set(theirs)
        for key in ("units", "activation", "use_bias", "dropout", "go_backwards",
                    "recurrent_activation", "unit_forget_bias", "reset_after"):
            assert ours.get(key) == theirs.get(key), key
        again = getattr(layers, name).from_config(ours).get_config()
        assert {k: v for k, v in again.items() if k != "name"} == \
            {k: v for k, v in ours.items() if k != "name"}
    bi = layers.Bidirectional(layers.LSTM(3, return_sequences=True), merge_mode="ave")
    config = bi.get_config()
    assert config["layer"]["config"]["name"].startswith("forward_")
    assert config["backward_layer"]["config"]["go_backwards"] is True
    assert layers.Bidirectional.from_config(config).merge_mode == "ave"


@keras_array_warning
@keras_mask_warning
def test_files_both_ways_with_keras(keras, tmp_path):
    def build(lib):
        L = lib.layers
        x = lib.Input((5, 3))
        ids = lib.Input((5,))
        h0, c0 = lib.Input((4,)), lib.Input((4,))
        emb = L.Embedding(10, 3, mask_zero=True)(ids)
        y, h, c = L.LSTM(4, return_sequences=True, return_state=True,
                         name="lstm")(emb, initial_state=[h0, c0])
        g = L.GRU(4, return_sequences=True, go_backwards=True, name="gru")(emb)
        s = L.SimpleRNN(2, name="srnn")(g)
        bi = L.Bidirectional(L.GRU(3, return_sequences=True, reset_after=False),
                             merge_mode="sum", name="bi")(x)
        b2 = L.Bidirectional(L.LSTM(2), name="bi2")(L.Masking()(x))
        return lib.Model([x, ids, h0, c0],
                         [L.Flatten()(y), h, c, s, L.Flatten()(bi), b2])

    rng = np.random.default_rng(11)
    data = [rng.standard_normal((6, 5, 3)).astype(np.float32), rng.integers(0, 10, (6, 5)),
            rng.standard_normal((6, 4)).astype(np.float32),
            rng.standard_normal((6, 4)).astype(np.float32)]
    data[0][1, 2:] = 0.0
    km, dm = _keras_pair(keras, build)
    expected = _outputs(km, data)
    km.save(tmp_path / "keras.keras")
    dm.save(tmp_path / "densitron.keras")
    for got in (_outputs(densitron.saving.load_model(tmp_path / "keras.keras"), data),
                _outputs(keras.models.load_model(tmp_path / "densitron.keras"), data),
                _outputs(densitron.saving.load_model(tmp_path / "densitron.keras"), data)):
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    loaded = densitron.saving.load_model(tmp_path / "keras.keras")
    assert [w.path for w in loaded.weights] == [w.path for w in km.weights]


def test_gradients_against_finite_differences():
    rng = np.random.default_rng(4)
    inp = densitron.Input((4, 3))
    h = layers.LSTM(3, return_sequences=True, bias_initializer="random_normal")(
        layers.Masking()(inp))
    h = layers.GRU(2, go_backwards=True, bias_initializer="random_normal")(h)
    out = layers.Dense(2)(h)
    x = rng.normal(size=(5, 4, 3))
    x[0, 1] = 0.0
    x[2, 3] = 0.0
    fd_check(densitron.Model(inp, out), x, rng.normal(size=(5, 2)), "mse")


def test_gradients_with_states_and_bidirectional():
    rng = np.random.default_rng(6)
    inp, state = densitron.Input((3, 2)), densitron.Input((3,))
    h = layers.GRU(3, reset_after=False, return_sequences=True,
                   bias_initializer="random_normal")(inp, initial_state=state)
    h = layers.Bidirectional(layers.SimpleRNN(2, kernel_regularizer="l2",
                                              activity_regularizer="l1"),
                             merge_mode="sum")(h)
    model = densitron.Model([inp, state], layers.Dense(1)(h))
    fd_check(model, [rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 3))],
             rng.normal(size=(4, 1)), "mse")


def test_training_matches_keras_losses():
    """Keras 3.15 (JAX) trained these models from the same weights (golden numbers)."""
    def fits_as_keras(model, x, y, losses, layer, weight_sum):
        model.set_weights([(rng.standard_normal(w.shape) * 0.3).astype(np.float32)
                           for w in model.get_weights()])
        history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
        np.testing.assert_allclose(history.history["loss"], losses, rtol=2e-6)
        assert abs(np.abs(model.layers[layer].get_weights()[1]).sum() - weight_sum) < 1e-3

    rng = np.random.default_rng(7)
    n, steps = 48, 7
    ids = rng.integers(0, 20, size=(n, steps))
    ids[:10, :3] = 0
    ids[10:14, 4:] = 0
    y = rng.integers(0, 3, size=(n,))
    i = densitron.Input((steps,))
    h = layers.LSTM(16)(layers.Embedding(20, 8, mask_zero=True)(i))
    model = densitron.Model(i, layers.Dense(3, activation="softmax")(h))
    model.compile(optimizer=densitron.optimizers.Adam(0.01),
                  loss="sparse_categorical_crossentropy")
    fits_as_keras(model, ids, y,
                  [1.2093247175216675, 1.1307475566864014, 1.0840364694595337],
                  2, 256.4593505859375)

    x = rng.standard_normal((n, steps, 4)).astype(np.float32)
    yr = rng.standard_normal((n, 2)).astype(np.float32)
    i = densitron.Input((steps, 4))
    h = layers.GRU(12, return_sequences=True)(i)
    h = layers.GRU(6, go_backwards=True, reset_after=False)(h)
    model = densitron.Model(i, layers.Dense(2)(h))
    model.compile(optimizer="rmsprop", loss="mse")
    fits_as_keras(model, x, yr,
                  [1.0333263874053955, 1.0243254899978638, 1.0198273658752441],
                  1, 106.7427749633789)


def test_dropout_one_mask_for_every_step():
    rng = np.random.default_rng(8)
    steps, features = 5, 6
    x = rng.uniform(1, 2, size=(8, steps, features)).astype(np.float32)
    inp = densitron.Input((steps, features))
    # the identity kernel, no recurrence: each output step is its input step dropped
    layer = layers.SimpleRNN(features, activation=None, use_bias=False, return_sequences=True,
                             dropout=0.5, seed=3)
    model = densitron.Model(inp, layer(inp))
    layer.set_weights([np.eye(features, dtype=np.float32),
                       np.zeros((features, features), np.float32)])
    np.testing.assert_allclose(model.predict(x, verbose=0), x)  # inference: no dropout
    ratio = np.asarray(model(x, training=True)) / x
    assert set(np.unique(np.round(ratio, 5))) == {0.0, 2.0}
    np.testing.assert_array_equal(ratio, np.repeat(ratio[:, :1], steps, axis=1))
    # the recurrence only, from a given state: each step's h is the last times one mask
    state = densitron.Input((features,))
    layer = layers.SimpleRNN(features, activation=None, use_bias=False, return_sequences=True,
                             recurrent_dropout=0.5, seed=4)
    model = densitron.Model([inp, state], layer(inp, initial_state=state))
    layer.set_weights([np.zeros((features, features), np.float32),
                       np.eye(features, dtype=np.float32)])
    h0 = rng.uniform(1, 2, size=(8, features)).astype(np.float32)
    out = np.asarray(model([x, h0], training=True))
    kept = out[:, 0] != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(out[:, 0], np.where(kept, 2 * h0, 0.0), rtol=1e-6)
    for t in range(1, steps):
        np.testing.assert_allclose(out[:, t], np.where(kept, 2 * out[:, t - 1], 0.0),
                                   rtol=1e-6)
    # LSTM and GRU (one mask a gate with a recurrent dropout): noisy in training only
    for cls, kwargs in [(layers.LSTM, {}), (layers.GRU, {}),
                        (layers.GRU, {"reset_after": False})]:
        plain = cls(4, return_sequences=True, **kwargs)
        noisy = cls(4, dropout=0.3, recurrent_dropout=0.4, return_sequences=True, **kwargs)
        a = densitron.Model(inp, plain(inp))
        b = densitron.Model(inp, noisy(inp))
        noisy.set_weights(plain.get_weights())
        np.testing.assert_allclose(b.predict(x, verbose=0), a.predict(x, verbose=0),
                                   rtol=1e-6, atol=1e-7)
        assert np.abs(np.asarray(b(x, training=True)) - a.predict(x, verbose=0)).max() > 1e-2
    # rate 1, as Keras's cells test it: SimpleRNN's drops every input, LSTM's none
    simple = layers.SimpleRNN(3, dropout=1.0, use_bias=False)
    assert not np.any(np.asarray(densitron.Model(inp, simple(inp))(x, training=True)))
    lstm = layers.LSTM(3, dropout=1.0)
    model = densitron.Model(inp, lstm(inp))
    np.testing.assert_array_equal(np.asarray(model(x, training=True)),
                                  model.predict(x, verbose=0))


def test_refusals():
    inp = densitron.Input((4, 3))
    with pytest.raises(ValueError, match="stateful"):  # (on a dynamic batch size)
        layers.LSTM(3, stateful=True)(inp)
    with pytest.raises(ValueError, match="units"):
        layers.GRU(0)
    with pytest.raises(TypeError, match="time_major"):
        layers.SimpleRNN(2, time_major=True)
    with pytest.raises(ValueError, match="use_cudnn"):
        layers.LSTM(2, use_cudnn="yes")
    with pytest.raises(ValueError, match="use_cudnn=True"):
        layers.LSTM(2, use_cudnn=True)(inp)
    with pytest.raises(ValueError, match="number of features"):  # (steps: None, the data's)
        layers.LSTM(2)(densitron.Input((3, None)))
    with pytest.raises(ValueError, match="expected ndim=3"):
        layers.GRU(2)(densitron.Input((3,)))
    with pytest.raises(ValueError, match="initial_state with 1"):
        layers.LSTM(2)(inp, initial_state=[densitron.Input((2,))])
    with pytest.raises(ValueError, match=r"initial state 0 must have shape \(batch, 2\)"):
        layers.GRU(2)(inp, initial_state=densitron.Input((3,)))
    with pytest.raises(ValueError, match=r"mask.shape=\(None, 5\)"):
        layers.GRU(2)(inp, mask=densitron.Input((5,)))
    with pytest.raises(TypeError, match="mask of a symbolic input must be a symbolic tensor"):
        layers.GRU(2)(inp, mask=np.ones((1, 4), bool))
    with pytest.raises(ValueError, match="activation"):
        layers.SimpleRNN(2, activation=lambda t: t * 2)
    with pytest.raises(ValueError, match="go_backwards"):
        layers.Bidirectional(layers.LSTM(2, go_backwards=True))
    with pytest.raises(ValueError, match="wraps SimpleRNN, LSTM, GRU and RNN"):
        layers.Bidirectional(layers.Dense(2))
    with pytest.raises(ValueError, match="Invalid merge mode"):
        layers.Bidirectional(layers.LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="return_sequences"):
        layers.Bidirectional(layers.LSTM(2), backward_layer=layers.LSTM(
            2, go_backwards=True, return_sequences=True))
