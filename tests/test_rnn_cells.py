"""Keras's RNN(cell) with SimpleRNNCell, LSTMCell, GRUCell and StackedRNNCells (a list of
cells too): outputs and states against a float64 NumPy reference of Keras 3.15's step loop
(a stack's cells one after the other within a step; masks, go_backwards, initial states,
return_state, zero_output_for_mask), against Keras itself on the same weights (its numpy
backend here, JAX in a child process, which also trains), gradients against finite
differences, dropout, configs, weights' paths, files and weight files both ways, refusals."""

import inspect
import warnings

import densitron
import numpy as np
import pytest
from densitron import layers
from keras_subprocess import keras_on_jax_json
from test_gradients_fd import fd_check
from test_recurrent import _keras_pair, _outputs
from test_recurrent import cell as reference_cell

# (Keras's numpy backend's own warnings: its variables' __array__, Flatten dropping a mask)
keras_array_warning = pytest.mark.filterwarnings("ignore::DeprecationWarning")
keras_mask_warning = pytest.mark.filterwarnings("ignore:.*does not support masking")

CELLS = {"simple": (layers.SimpleRNNCell, {}), "lstm": (layers.LSTMCell, {}),
         "gru": (layers.GRUCell, {}), "gru_before": (layers.GRUCell, {"reset_after": False})}


def stacked_reference(kinds, x, weights, go_backwards=False, mask=None, states=None,
                      zero_output_for_mask=False):
    """Keras's RNN loop over StackedRNNCells in float64 (one cell: a list of one): each step
    runs the cells in order, a cell's output the next one's input; a masked step keeps every
    cell's states and outputs the last cell's state (zeros with zero_output_for_mask).
    `weights`: a list a cell; `states`: the flat initial states. Returns the outputs in the
    order the steps ran and the flat final states."""
    x = x.astype(np.float64)
    weights = [[np.asarray(v, np.float64) for v in w] for w in weights]
    counts = [2 if k == "lstm" else 1 for k in kinds]
    if states is None:
        states = [np.zeros((len(x), w[1].shape[0])) for w, n in zip(weights, counts)
                  for _ in range(n)]
    st, k = [], 0
    for n in counts:
        st.append([np.asarray(s, np.float64) for s in states[k:k + n]])
        k += n
    outs = []
    for t in (range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])):
        inp, new = x[:, t], []
        for kind, w, s in zip(kinds, weights, st):
            new.append(reference_cell("gru" if kind == "gru_before" and w[2].ndim == 2
                                      else kind, inp, s, w))
            inp = new[-1][0]
        if mask is None:
            st, out = new, inp
        else:
            m = mask[:, t, None]
            st = [[np.where(m, a, b) for a, b in zip(n, s)] for n, s in zip(new, st)]
            out = np.where(m, inp, 0.0) if zero_output_for_mask else st[-1][0]
        outs.append(out)
    return np.stack(outs, 1), [s for per_cell in st for s in per_cell]


def _make(kind, units, **kwargs):
    cls, own = CELLS[kind]
    return cls(units, **own, **kwargs)


OPTIONS = {
    "last": {},
    "sequences_backwards": {"return_sequences": True, "go_backwards": True},
    "states": {"return_state": True, "return_sequences": True},
    "masked": {"return_sequences": True},
    "masked_backwards_zeros": {"return_sequences": True, "go_backwards": True,
                               "zero_output_for_mask": True},
    "initial_states": {"return_state": True},
    "masked_unrolled": {"return_sequences": True, "zero_output_for_mask": True,
                        "unroll": True},
}


@keras_mask_warning
@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("kinds", [("lstm",), ("gru",), ("simple",), ("gru_before",),
                                   ("lstm", "gru_before", "simple"), ("gru", "lstm")])
def test_outputs_and_states_are_kerass_loop(kinds, option):
    rng = np.random.default_rng(len(kinds) * 7 + len(option))
    steps, features, sizes = 5, 3, [4, 3, 2][:len(kinds)]
    options = OPTIONS[option]
    masked = option.startswith("masked")
    cells = [_make(k, u) for k, u in zip(kinds, sizes)]
    rnn = layers.RNN(cells if len(cells) > 1 else cells[0], **options)
    inp = densitron.Input((steps, features))
    counts = [2 if k == "lstm" else 1 for k in kinds]
    state_inputs = [densitron.Input((u,)) for u, n in zip(sizes, counts) for _ in range(n)]
    x = rng.standard_normal((7, steps, features)).astype(np.float32)
    if masked:
        x[1, 3:] = 0.0
        x[2, :2] = 0.0
        x[4] = 0.0
        out = rnn(layers.Masking()(inp))
    elif option == "initial_states":
        out = rnn(inp, initial_state=state_inputs)
    else:
        out = rnn(inp)
    flat = [out] if not isinstance(out, tuple) else [
        t for o in out for t in (o if isinstance(o, list) else [o])]
    flat = [layers.Flatten()(t) if len(t.shape) == 3 else t for t in flat]
    model = densitron.Model([inp, *state_inputs] if option == "initial_states" else inp,
                            flat)
    weights = []
    for c in cells:
        weights.append([(rng.standard_normal(w.shape) * 0.5).astype(np.float32)
                        for w in c.weights])
        c.set_weights(weights[-1])
    states = [rng.standard_normal((7, s.shape[1])).astype(np.float32) for s in state_inputs]
    got = model.predict([x, *states] if option == "initial_states" else x, verbose=0)
    got = got if isinstance(got, list) else [got]
    seq, final = stacked_reference(
        kinds, x, weights, options.get("go_backwards", False),
        np.any(x != 0, axis=-1) if masked else None,
        states if option == "initial_states" else None,
        # (Keras's unrolled loop outputs the state at a masked step even so)
        options.get("zero_output_for_mask", False) and not options.get("unroll", False))
    expected = [seq.reshape(7, -1) if options.get("return_sequences") else seq[:, -1]]
    if options.get("return_state"):
        expected += final
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_return_state_and_initial_state_structures():
    """As Keras's: a cell's states flat; a stack's a list a cell (a cell of one state: the
    tensor), initial states given the same way (or flat)."""
    inp = densitron.Input((4, 3))
    out, h, c = layers.RNN(layers.LSTMCell(5), return_state=True)(inp)
    assert out.shape == h.shape == c.shape == (None, 5)
    out, (h1, c1), h2 = layers.RNN([layers.LSTMCell(5), layers.GRUCell(2)],
                                   return_state=True)(inp)
    assert (h1.shape, c1.shape, h2.shape, out.shape) == ((None, 5), (None, 5), (None, 2),
                                                         (None, 2))
    rnn = layers.RNN([layers.LSTMCell(5), layers.GRUCell(2)], return_sequences=True)
    assert rnn.state_size == [[5, 5], 2]
    assert rnn.cell.output_size == 2
    nested = rnn(inp, initial_state=[[h1, c1], h2])
    assert nested.shape == (None, 4, 2)
    assert rnn(inp, initial_state=[h1, c1, h2]).shape == (None, 4, 2)
    # called on arrays: the same structure, the values of a model of the call
    x = np.random.default_rng(2).standard_normal((3, 4, 3)).astype(np.float32)
    for layer in (layers.RNN([layers.LSTMCell(5), layers.GRUCell(2)], return_state=True),
                  layers.Bidirectional(layers.RNN([layers.GRUCell(3), layers.LSTMCell(2)],
                                                  return_state=True), merge_mode=None)):
        eager = layer(x)
        model = densitron.Model(inp, [t for o in layer(inp)
                                      for t in (o if isinstance(o, list) else [o])])
        assert [isinstance(o, list) for o in eager] == (
            [False, True, False] if isinstance(layer, layers.RNN)
            else [False, False, False, True, False, True])  # (GRUCell's h, LSTMCell's [h, c])
        flat = [t for o in eager for t in (o if isinstance(o, list) else [o])]
        for e, g in zip(flat, model.predict(x, verbose=0), strict=True):
            np.testing.assert_allclose(e, g, rtol=1e-6)


def _model_of_cells(lib):
    """Embedding(mask_zero=True) into RNNs of cells: a stack going backwards, a cell from
    given states, a stack's states, Bidirectional(RNN(cell)), a layer after a stack."""
    L = lib.layers
    ids = lib.Input((6,), name="ids")
    emb = L.Embedding(10, 3, mask_zero=True)(ids)
    h0, c0, g0 = lib.Input((4,)), lib.Input((4,)), lib.Input((2,))
    a = L.RNN([L.LSTMCell(4), L.GRUCell(3), L.SimpleRNNCell(2)], return_sequences=True,
              go_backwards=True)(emb)
    b = L.RNN(L.LSTMCell(4, unit_forget_bias=False), return_state=True)(
        emb, initial_state=[h0, c0])
    c = L.RNN([L.LSTMCell(3), L.LSTMCell(2)], return_state=True, return_sequences=True,
              zero_output_for_mask=True)(emb)
    d = L.Bidirectional(L.RNN(L.GRUCell(2, reset_after=False)))(emb)
    e = L.RNN([L.LSTMCell(4), L.GRUCell(2)])(emb, initial_state=[[h0, c0], g0])
    f = L.Bidirectional(L.RNN([L.SimpleRNNCell(3), L.LSTMCell(2)], return_sequences=True),
                        merge_mode="sum")(emb)
    g, (h1, c1), h2, *backward = L.Bidirectional(
        L.RNN([L.LSTMCell(4), L.GRUCell(2)], return_state=True))(
        emb, initial_state=[[h0, c0], g0, [c0, h0], g0])
    outs = [L.Flatten()(a), *b, L.Flatten()(c[0]), *c[1], *c[2], d, e, L.Flatten()(f), g,
            h1, c1, h2, *backward[0], backward[1]]
    return lib.Model([ids, h0, c0, g0], outs)


def _data_of_cells(rng):
    ids = rng.integers(1, 9, size=(5, 6))
    ids[0, :2] = 0
    ids[1, 3:] = 0
    ids[3] = 0
    return [ids, *(rng.standard_normal((5, n)).astype(np.float32) for n in (4, 4, 2))]


@keras_array_warning
@keras_mask_warning
def test_same_outputs_weights_and_files_as_keras(keras, tmp_path):
    keras.backend.clear_session()  # (the layers' names as densitron's, counted afresh)
    km, dm = _keras_pair(keras, _model_of_cells)
    assert [(w.path, w.shape) for w in dm.weights] == \
        [(w.path, tuple(w.shape)) for w in km.weights]
    data = _data_of_cells(np.random.default_rng(3))
    expected = _outputs(km, data)
    got = _outputs(dm, data)
    assert len(got) == len(expected) == 19
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    km.save(tmp_path / "keras.keras")
    dm.save(tmp_path / "densitron.keras")
    loaded = densitron.saving.load_model(tmp_path / "keras.keras")
    assert [w.path for w in loaded.weights] == [w.path for w in km.weights]
    for model in (loaded, keras.models.load_model(tmp_path / "densitron.keras"),
                  densitron.saving.load_model(tmp_path / "densitron.keras")):
        for e, g in zip(expected, _outputs(model, data)):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    # weight files both ways, into fresh models of other weights
    dm.save_weights(tmp_path / "densitron.weights.h5")
    km.save_weights(tmp_path / "keras.weights.h5")
    other_k, other_d = _keras_pair(keras, _model_of_cells, scale=0.1)
    other_k.load_weights(tmp_path / "densitron.weights.h5")
    other_d.load_weights(tmp_path / "keras.weights.h5")
    for model in (other_k, other_d):
        for e, g in zip(expected, _outputs(model, data)):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


_JAX_SIDE = """
import json, numpy as np, keras
import test_rnn_cells as t
result = {}
km = t._model_of_cells(keras)
rng = np.random.default_rng(5)
km.set_weights([(rng.standard_normal(w.shape) * 0.4).astype(np.float32)
                for w in km.get_weights()])
result["outputs"] = [np.asarray(o).tolist()
                     for o in km.predict(t._data_of_cells(np.random.default_rng(3)), verbose=0)]
for name in t.TRAINED:
    model, x, y = t.TRAINED[name](keras)
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    result[name] = [history.history["loss"], [w.tolist() for w in model.get_weights()]]
print(json.dumps(result))
"""


def _lstm_cell_model(lib):
    rng = np.random.default_rng(7)
    n, steps = 48, 7
    ids = rng.integers(0, 20, size=(n, steps))
    ids[:10, :3] = 0
    ids[10:14, 4:] = 0
    y = rng.integers(0, 3, size=(n,))
    i = lib.Input((steps,))
    h = lib.layers.RNN(lib.layers.LSTMCell(16, kernel_regularizer="l2"))(
        lib.layers.Embedding(20, 8, mask_zero=True)(i))
    model = lib.Model(i, lib.layers.Dense(3, activation="softmax")(h))
    return _compiled(lib, model, lib.optimizers.Adam(0.01),
                     "sparse_categorical_crossentropy"), ids, y


def _stacked_model(lib):
    rng = np.random.default_rng(9)
    n, steps = 48, 6
    x = rng.standard_normal((n, steps, 4)).astype(np.float32)
    x[:6, 4:] = 0.0
    y = rng.standard_normal((n, 2)).astype(np.float32)
    i = lib.Input((steps, 4))
    L = lib.layers
    h = L.RNN([L.LSTMCell(8), L.GRUCell(6, reset_after=False), L.SimpleRNNCell(5)],
              go_backwards=True, activity_regularizer="l1")(L.Masking()(i))
    model = lib.Model(i, L.Dense(2)(h))
    return _compiled(lib, model, "rmsprop", "mse"), x, y


def _bidirectional_model(lib):
    rng = np.random.default_rng(10)
    n, steps = 32, 5
    x = rng.standard_normal((n, steps, 3)).astype(np.float32)
    y = rng.standard_normal((n, 4)).astype(np.float32)
    i = lib.Input((steps, 3))
    L = lib.layers
    h = L.Bidirectional(L.RNN([L.GRUCell(3), L.LSTMCell(2)]))(i)
    model = lib.Model(i, L.Dense(4)(h))
    return _compiled(lib, model, lib.optimizers.SGD(0.1), "mse"), x, y


def _compiled(lib, model, optimizer, loss):
    rng = np.random.default_rng(12)
    model.set_weights([(rng.standard_normal(w.shape) * 0.3).astype(np.float32)
                       for w in model.get_weights()])
    model.compile(optimizer=optimizer, loss=loss)
    return model


TRAINED = {"lstm_cell": _lstm_cell_model, "stacked": _stacked_model,
           "bidirectional": _bidirectional_model}


@keras_mask_warning
def test_outputs_and_training_match_keras_on_jax():
    """Keras 3.15 on JAX (a child process): the same outputs on the same weights, and the
    same losses and weights after three epochs' training from the same weights."""
    theirs = keras_on_jax_json(_JAX_SIDE)
    dm = _model_of_cells(densitron)
    rng = np.random.default_rng(5)
    dm.set_weights([(rng.standard_normal(w.shape) * 0.4).astype(np.float32)
                    for w in dm.get_weights()])
    got = _outputs(dm, _data_of_cells(np.random.default_rng(3)))
    assert len(got) == len(theirs["outputs"])
    for g, e in zip(got, theirs["outputs"]):
        np.testing.assert_allclose(g, np.asarray(e), rtol=1e-5, atol=1e-6)
    for name, make in TRAINED.items():
        model, x, y = make(densitron)
        history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
        losses, weights = theirs[name]
        np.testing.assert_allclose(history.history["loss"], losses, rtol=2e-5, err_msg=name)
        for g, e in zip(model.get_weights(), weights):
            np.testing.assert_allclose(g, np.asarray(e), rtol=1e-3, atol=1e-4, err_msg=name)


@keras_mask_warning
def test_gradients_against_finite_differences():
    rng = np.random.default_rng(4)
    inp, h0 = densitron.Input((4, 3)), densitron.Input((2,))
    h = layers.RNN([layers.LSTMCell(3, bias_initializer="random_normal"),
                    layers.GRUCell(2, bias_initializer="random_normal")],
                   return_sequences=True)(layers.Masking()(inp))
    h = layers.RNN(layers.SimpleRNNCell(2, kernel_regularizer="l2"), go_backwards=True)(
        h, initial_state=h0)
    out = layers.Dense(2)(h)
    x = rng.normal(size=(5, 4, 3))
    x[0, 1] = 0.0
    x[2, 3] = 0.0
    fd_check(densitron.Model([inp, h0], out), [x, rng.normal(size=(5, 2))],
             rng.normal(size=(5, 2)), "mse")


def test_dropout_of_the_cells():
    rng = np.random.default_rng(8)
    steps, features = 5, 6
    x = rng.uniform(1, 2, size=(8, steps, features)).astype(np.float32)
    inp = densitron.Input((steps, features))
    # the identity kernel, no recurrence: each output step is its input step dropped, by
    # one mask a sample for every step
    cell = layers.SimpleRNNCell(features, activation=None, use_bias=False, dropout=0.5,
                                seed=3)
    model = densitron.Model(inp, layers.RNN(cell, return_sequences=True)(inp))
    cell.set_weights([np.eye(features, dtype=np.float32),
                      np.zeros((features, features), np.float32)])
    np.testing.assert_allclose(model.predict(x, verbose=0), x)  # inference: no dropout
    ratio = np.asarray(model(x, training=True)) / x
    assert set(np.unique(np.round(ratio, 5))) == {0.0, 2.0}
    np.testing.assert_array_equal(ratio, np.repeat(ratio[:, :1], steps, axis=1))
    # a stack: the second cell's input (the first's output) dropped by its own mask
    first = layers.SimpleRNNCell(features, activation=None, use_bias=False)
    second = layers.SimpleRNNCell(features, activation=None, use_bias=False, dropout=0.5,
                                  seed=5)
    model = densitron.Model(inp, layers.RNN([first, second], return_sequences=True)(inp))
    eye, zero = np.eye(features, dtype=np.float32), np.zeros((features,) * 2, np.float32)
    model.set_weights([eye, zero, eye, zero])
    np.testing.assert_allclose(model.predict(x, verbose=0), x)
    ratio = np.asarray(model(x, training=True)) / x
    assert set(np.unique(np.round(ratio, 5))) == {0.0, 2.0}
    np.testing.assert_array_equal(ratio, np.repeat(ratio[:, :1], steps, axis=1))
    # LSTMCell and GRUCell (one mask a gate with a recurrent dropout): noisy in training only
    for cls, kwargs in [(layers.LSTMCell, {}), (layers.GRUCell, {}),
                        (layers.GRUCell, {"reset_after": False})]:
        plain = layers.RNN([cls(4, **kwargs), cls(3, **kwargs)], return_sequences=True)
        noisy = layers.RNN([cls(4, **kwargs), cls(3, dropout=0.3, recurrent_dropout=0.4,
                                                  **kwargs)], return_sequences=True)
        a = densitron.Model(inp, plain(inp))
        b = densitron.Model(inp, noisy(inp))
        noisy.set_weights(plain.get_weights())
        np.testing.assert_allclose(b.predict(x, verbose=0), a.predict(x, verbose=0),
                                   rtol=1e-6, atol=1e-7)
        assert np.abs(np.asarray(b(x, training=True)) - a.predict(x, verbose=0)).max() > 1e-2


@keras_array_warning
def test_signatures_and_configs_are_kerass(keras):
    for name in ("RNN", "SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells"):
        assert list(inspect.signature(getattr(layers, name)).parameters) == \
            list(inspect.signature(getattr(keras.layers, name)).parameters), name
    for name, kwargs in [("SimpleRNNCell", {"seed": 3}),
                         ("LSTMCell", {"unit_forget_bias": False, "recurrent_dropout": 0.5}),
                         ("GRUCell", {"reset_after": False, "activation": "relu"})]:
        ours = getattr(layers, name)(5, dropout=0.25, **kwargs)
        theirs = getattr(keras.layers, name)(5, dropout=0.25, **kwargs)
        assert list(ours.get_config()) == list(theirs.get_config()), name
        for key, value in theirs.get_config().items():
            if key not in ("name", "dtype") and not isinstance(value, dict):
                assert ours.get_config()[key] == value, (name, key)
        assert ours.state_size == theirs.state_size
        assert ours.output_size == theirs.output_size
        again = getattr(layers, name).from_config(ours.get_config())
        assert again.get_config() == ours.get_config()
    for kwargs in ({}, {"return_sequences": True, "go_backwards": True, "unroll": True,
                        "zero_output_for_mask": True, "return_state": True}):
        ours = layers.RNN([layers.LSTMCell(3), layers.GRUCell(2)], **kwargs)
        theirs = keras.layers.RNN([keras.layers.LSTMCell(3), keras.layers.GRUCell(2)],
                                  **kwargs)
        config, keras_config = ours.get_config(), theirs.get_config()
        assert list(config) == list(keras_config)
        assert {k: v for k, v in config.items() if k not in ("name", "dtype", "cell")} == \
            {k: v for k, v in keras_config.items() if k not in ("name", "dtype", "cell")}
        assert config["cell"]["class_name"] == "StackedRNNCells"
        assert [c["class_name"] for c in config["cell"]["config"]["cells"]] == \
            ["LSTMCell", "GRUCell"]
        assert ours.state_size == theirs.state_size
        again = layers.RNN.from_config(config)
        assert isinstance(again.cell, layers.StackedRNNCells)
        assert [c.units for c in again.cell.cells] == [3, 2]
        assert {k: v for k, v in again.get_config().items() if k != "cell"} == \
            {k: v for k, v in config.items() if k != "cell"}
    # a config Keras wrote, loaded by densitron
    kc = keras.layers.serialize(keras.layers.RNN(keras.layers.GRUCell(3, reset_after=False),
                                                 go_backwards=True))
    loaded = layers.deserialize(kc)
    assert isinstance(loaded.cell, layers.GRUCell) and loaded.cell.reset_after is False
    assert loaded.go_backwards is True


class _OwnCell(layers.Layer):
    """A cell of one's own (an arbitrary Python call)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def call(self, inputs, states):
        return inputs, states


def _raises(error, match, fn, *args, **kwargs):
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)


def test_refusals():
    inp = densitron.Input((4, 3))
    # (cells of one's own run: tests/test_custom_rnn_cells.py; not in a stack with Keras's)
    _raises(ValueError, r"not both.*Received: cells=\['LSTMCell', '_OwnCell'\]", layers.RNN,
            [layers.LSTMCell(2), _OwnCell(3)])
    _raises(ValueError, r"should have a `call` method. Received: cell=", layers.RNN, 3)
    _raises(ValueError, r"All cells must have a `call` method. Received: cell=",
            layers.StackedRNNCells, [layers.LSTMCell(2), "lstm"])
    _raises(ValueError, r"Received: cells=", layers.StackedRNNCells, [])
    _raises(ValueError, r"StackedRNNCells.*Received: cell=", layers.StackedRNNCells,
            [layers.StackedRNNCells([layers.LSTMCell(2)])])
    _raises(ValueError, r"Received: stateful=True", layers.RNN, layers.LSTMCell(2),
            stateful=True)
    for bad in (0, -2, 2.5, True, "3"):
        _raises(ValueError, r"Received: units=", layers.GRUCell, bad)
    _raises(TypeError, r"Received: dropout='high'", layers.LSTMCell, 2, dropout="high")
    _raises(TypeError, r"Received: recurrent_dropout=None", layers.SimpleRNNCell, 2,
            recurrent_dropout=None)
    _raises(ValueError, r"Received: activation=", layers.SimpleRNNCell, 2,
            activation=lambda t: t * 2)
    _raises(ValueError, r"Received: activation=.no_such_activation", layers.LSTMCell, 2,
            recurrent_activation="no_such_activation")
    _raises(TypeError, r"Unrecognized keyword arguments.*Received: kwargs=",
            layers.LSTMCell, 2, units_forget=True)
    _raises(TypeError, r"inside keras.layers.RNN.*Received: a call", layers.LSTMCell(2),
            inp, [inp])
    rnn = layers.RNN([layers.LSTMCell(2), layers.SimpleRNNCell(3)])
    _raises(ValueError, r"takes 3 initial state tensor\(s\) of shapes \(batch, 2\), "
            r"\(batch, 2\), \(batch, 3\)\. Received: initial_state with 2",
            rnn, inp, initial_state=[densitron.Input((2,)), densitron.Input((2,))])
    _raises(ValueError, r"initial state 2 must have shape \(batch, 3\)\. Received",
            rnn, inp, initial_state=[[densitron.Input((2,))] * 2, densitron.Input((2,))])
    rnn(inp)
    _raises(ValueError, r"expected axis -1 of input shape to have value 3\. Received",
            rnn, densitron.Input((4, 5)))
    _raises(ValueError, r"expected ndim=3, found ndim=2", layers.RNN(layers.GRUCell(2)),
            densitron.Input((4,)))
    _raises(ValueError, r"wraps SimpleRNN, LSTM, GRU and RNN\. Received",
            layers.Bidirectional, layers.LSTMCell(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert layers.RNN(layers.LSTMCell(2), unroll=True)(inp).shape == (None, 2)
