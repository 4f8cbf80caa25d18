"""SimpleRNN, LSTM and GRU with stateful=True (Keras's semantics on TensorFlow and torch): the
engine's recurrent node starts every batch from the layer's states (batch × units, h and
LSTM's c) and leaves its final states there, so that row i of a batch continues row i of the
one before, across predict and fit calls, until reset_state(). Checked against the same
model without state run over the whole sequences, against Keras 3.15 on JAX driven with
explicit initial states step by step (JAX's own stateful layers never update their states),
saved files both ways, the refusals, and one thread against two."""
import os

import densitron
import numpy as np
import pytest
from densitron import layers
from keras_subprocess import run_keras_on_jax, stateful_files_both_ways

CASES = [("SimpleRNN", {}), ("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False})]
IDS = ["simple_rnn", "lstm", "gru", "gru_reset_before"]
B, F, U = 3, 4, 5


def _weights(layer, seed):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in layer.weights]


def _stateful_model(name, kwargs, steps, **more):
    inp = densitron.Input(batch_shape=(B, steps, F))
    layer = getattr(layers, name)(U, stateful=True, **{**kwargs, **more})
    return densitron.Model(inp, layer(inp)), layer


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_calls_continue_the_sequences(name, kwargs):
    # Two predict calls of two batches each on the first 3 steps, then on the next 4: each
    # batch continues from the states the batch before it left (the last batch of a call
    # hands over to the first of the next), so row i of the four batches in order is one
    # sequence of 14 steps, which the same layer without state computes in one call.
    rng = np.random.default_rng(1)
    parts = [rng.standard_normal((2 * B, t, F)).astype(np.float32) for t in (3, 4)]
    (m3, layer), (m4, _) = _stateful_model(name, kwargs, 3, return_sequences=True), (None, None)
    inp4 = densitron.Input(batch_shape=(B, 4, F))
    m4 = densitron.Model(inp4, layer(inp4))  # (the same layer on 4 steps: the same states)
    plain_in = densitron.Input((14, F))
    plain = getattr(layers, name)(U, return_sequences=True, **kwargs)
    whole = densitron.Model(plain_in, plain(plain_in))
    values = _weights(layer, 2)
    layer.set_weights(values)
    plain.set_weights(values)
    assert [s.shape for s in layer.states] == [(B, U)] * (2 if name == "LSTM" else 1)
    outs = [m3.predict(parts[0], batch_size=B, verbose=0),
            m4.predict(parts[1], batch_size=B, verbose=0)]
    # the sequence of row i: batch 0's then batch 1's rows of part 0, then of part 1
    seq = np.concatenate([parts[0][:B], parts[0][B:], parts[1][:B], parts[1][B:]], axis=1)
    expected = whole.predict(seq, verbose=0)
    got = np.concatenate([outs[0][:B], outs[0][B:], outs[1][:B], outs[1][B:]], axis=1)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(layer.states[0].numpy(), expected[:, -1], rtol=2e-5, atol=2e-6)
    # a direct call continues them too
    again = np.asarray(layer(parts[0][:B]))
    seq = np.concatenate([seq, parts[0][:B]], axis=1)
    plain_in = densitron.Input((17, F))
    longer = getattr(layers, name)(U, return_sequences=True, **kwargs)
    longer_model = densitron.Model(plain_in, longer(plain_in))
    longer.set_weights(values)
    np.testing.assert_allclose(again, longer_model.predict(seq, verbose=0)[:, -3:], rtol=2e-5,
                               atol=2e-6)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_reset_state_starts_afresh(name, kwargs):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((B, 6, F)).astype(np.float32)
    model, layer = _stateful_model(name, kwargs, 6)
    inp = densitron.Input((6, F))
    plain = getattr(layers, name)(U, **kwargs)
    fresh_model = densitron.Model(inp, plain(inp))
    plain.set_weights(layer.get_weights())
    fresh = fresh_model.predict(x, verbose=0)
    first = model.predict(x, batch_size=B, verbose=0)
    np.testing.assert_array_equal(first, fresh)  # (zero states: the same as none)
    second = model.predict(x, batch_size=B, verbose=0)
    assert np.abs(second - first).max() > 1e-3
    assert all(np.abs(s.numpy()).max() > 0 for s in layer.states)
    layer.reset_state()
    assert all(not s.numpy().any() for s in layer.states)
    np.testing.assert_array_equal(model.predict(x, batch_size=B, verbose=0), first)
    layer.reset_states()  # (Keras's alias)
    np.testing.assert_array_equal(model.predict(x, batch_size=B, verbose=0), first)


@pytest.mark.parametrize("name,kwargs", [("LSTM", {"go_backwards": True}),
                                         ("GRU", {"recurrent_dropout": 0.3})],
                         ids=["lstm_backwards", "gru_recurrent_dropout"])
def test_initial_state_of_the_call_as_keras(name, kwargs):
    # As Keras's call: initial states given to a stateful layer's call are the ones it starts
    # from, and its final states are still kept; the next call without them starts there.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((B, 5, F)).astype(np.float32)
    n = 2 if name == "LSTM" else 1
    h = [rng.standard_normal((B, U)).astype(np.float32) for _ in range(n)]
    ins = [densitron.Input(batch_shape=(B, 5, F))] + [densitron.Input(batch_shape=(B, U))
                                                      for _ in range(n)]
    layer = getattr(layers, name)(U, stateful=True, return_state=True, **kwargs)
    given = densitron.Model(ins, layer(ins[0], initial_state=ins[1:]))
    own = densitron.Model(ins[0], layer(ins[0]))
    plain = getattr(layers, name)(U, return_state=True, **kwargs)
    pin = [densitron.Input((5, F))] + [densitron.Input((U,)) for _ in range(n)]
    reference = densitron.Model(pin, plain(pin[0], initial_state=pin[1:]))
    plain.set_weights(layer.get_weights())
    out = given.predict([x, *h], batch_size=B, verbose=0)
    np.testing.assert_array_equal(out[0], reference.predict([x, *h], verbose=0)[0])
    ends = [s.numpy() for s in layer.states]
    for a, b in zip(ends, out[1:]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(own.predict(x, batch_size=B, verbose=0)[0],
                                  reference.predict([x, *ends], verbose=0)[0])


_KERAS_STEPS = r"""
import sys
import numpy as np
import keras
name, kwargs, path = sys.argv[1], eval(sys.argv[2]), sys.argv[3]
d = np.load(path + "/data.npz")
x, y, B = d["x"], d["y"], int(d["B"])
n = 2 if name == "LSTM" else 1
ins = [keras.Input(x.shape[1:])] + [keras.Input((int(d["U"]),)) for _ in range(n)]
layer = getattr(keras.layers, name)(int(d["U"]), return_state=True, **kwargs)
out, *states = layer(ins[0], initial_state=ins[1:])
dense = keras.layers.Dense(1)
model = keras.Model(ins, dense(out))
states_of = keras.Model(ins, states)
layer.set_weights([d[f"w{k}"] for k in range(len(layer.weights))])
dense.set_weights([d["d0"], d["d1"]])
model.compile(optimizer=keras.optimizers.SGD(0.2), loss="mse")
state = [np.zeros((B, int(d["U"])), np.float32) for _ in range(n)]
for k in range(len(x) // B):  # each step from the states the step before left
    xb, yb = x[k * B:(k + 1) * B], y[k * B:(k + 1) * B]
    ends = states_of.predict([xb, *state], verbose=0)
    model.train_on_batch([xb, *state], yb)
    state = [np.asarray(s) for s in (ends if isinstance(ends, list) else [ends])]
np.savez(path + "/keras.npz", *layer.get_weights(), *dense.get_weights(), *state)
"""


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_fit_steps_continue_as_keras_driven_by_hand(name, kwargs, tmp_path):
    # fit(shuffle=False) over 3 batches: each training step starts from the states the step
    # before left (its forward's final states, before its update). Keras 3.15 on JAX, given
    # those states as initial_state step by step (train_on_batch), ends with the same weights.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3 * B, 4, F)).astype(np.float32)
    y = rng.standard_normal((3 * B, 1)).astype(np.float32)
    inp = densitron.Input(batch_shape=(B, 4, F))
    layer = getattr(layers, name)(U, stateful=True, **kwargs)
    dense = layers.Dense(1)
    model = densitron.Model(inp, dense(layer(inp)))
    values = _weights(layer, 6)
    layer.set_weights(values)
    dense_values = [w.numpy() for w in dense.weights]
    np.savez(tmp_path / "data.npz", x=x, y=y, B=B, U=U, d0=dense_values[0],
             d1=dense_values[1], **{f"w{k}": v for k, v in enumerate(values)})
    model.compile(optimizer=densitron.optimizers.SGD(0.2), loss="mse")
    model.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0)
    run_keras_on_jax(_KERAS_STEPS, name, repr(kwargs), str(tmp_path))
    keras_values = np.load(tmp_path / "keras.npz")
    expected = [keras_values[f"arr_{k}"] for k in range(len(keras_values.files))]
    got = [w.numpy() for w in layer.weights + dense.weights] + [s.numpy() for s in layer.states]
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)


def test_states_carry_across_epochs_and_calls_until_reset():
    # Keras resets nothing by itself: a second fit goes on from the first's states, the
    # weights then differ from a fit after reset_state()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2 * B, 4, F)).astype(np.float32)
    y = rng.standard_normal((2 * B, U)).astype(np.float32)
    results = []
    for reset in (False, True):
        densitron.utils.set_random_seed(8)
        model, layer = _stateful_model("LSTM", {}, 4)
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, y, batch_size=B, epochs=2, shuffle=False, verbose=0)
        if reset:
            layer.reset_state()
        model.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0)
        results.append(model.get_weights())
    assert any(np.abs(a - b).max() > 1e-6 for a, b in zip(*results))


def assert_last_partial_batch_refused(model, x):
    """Keras's error for a stateful model's last batch of 1 (x: B + 1 rows, batch size B)."""
    with pytest.raises(ValueError, match=r"If an RNN is stateful, the batch size of the input "
                                         r"sequences must be the same as the batch size of the "
                                         r"initial state. \n- Expected batch size: 3\n- "
                                         r"Received batch size: 1"):
        model.predict(x, batch_size=B, verbose=0)


def test_refusals():
    with pytest.raises(ValueError, match=r"When using `stateful=True` in a RNN, the batch size "
                                         r"must be static. Found dynamic batch size: "
                                         r"sequence.shape=\(None, 4, 3\)"):
        layers.LSTM(2, stateful=True)(densitron.Input((4, 3)))
    model, layer = _stateful_model("GRU", {}, 4)
    x = np.zeros((B + 1, 4, F), np.float32)
    assert_last_partial_batch_refused(model, x)
    with pytest.raises(ValueError, match="Expected batch size: 3\n- Received batch size: 4"):
        model.predict(x, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="Expected batch size: 3\n- Received batch size: 2"):
        layer(densitron.Input(batch_shape=(2, 4, F)))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="Received batch size: 1"):
        model.fit(x, np.zeros((B + 1, U), np.float32), batch_size=B, verbose=0)

    def batches():  # (a generator's batches of other sizes)
        yield np.zeros((B, 4, F), np.float32), np.zeros((B, U), np.float32)
        yield np.zeros((2, 4, F), np.float32), np.zeros((2, U), np.float32)

    with pytest.raises(ValueError, match="Received batch size: 2"):
        model.fit(batches(), epochs=1, verbose=0)
    inp = densitron.Input(batch_shape=(B, 4, F))
    with pytest.raises(ValueError, match=r"Received: stateful=True"):
        layers.RNN(layers.LSTMCell(2), stateful=True)
    with pytest.raises(ValueError, match=r"Received: stateful=True"):
        layers.ConvLSTM1D(2, 3, stateful=True)
    # an activation the engine's node lacks: the unrolled steps, which keep no state
    with pytest.raises(ValueError, match=r"stateful LSTM runs on the engine's recurrent node.*"
                                         r"Received: layer \"odd\" with stateful=True and "
                                         r"activation='relu'"):
        densitron.Model(inp, layers.LSTM(2, stateful=True, activation="relu", name="odd")(inp))


_KERAS_FILES = r"""
import sys
import numpy as np
import keras
path = sys.argv[1]
d = np.load(path + "/x.npz")
mine = keras.saving.load_model(path + "/densitron.keras")
layer = mine.get_layer("rec")
assert layer.stateful and [tuple(s.shape) for s in layer.states] == [(3, 5), (3, 5)]
assert len(mine.weights) == 5
np.save(path + "/keras_on_densitron.npy", mine.predict(d["x"], batch_size=3, verbose=0))
inp = keras.Input(batch_shape=(3, 6, 4))
model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.LSTM(5, stateful=True,
                                                                 name="rec")(inp)))
model.set_weights([np.random.default_rng(k).standard_normal(w.shape).astype("float32")
                   for k, w in enumerate(model.weights)])
model.save(path + "/keras.keras")
np.save(path + "/keras.npy", model.predict(d["x"], batch_size=3, verbose=0))
"""


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_saved_both_ways_with_keras(tmp_path):
    # The states are not weights (Keras's are not): the files hold the same weights as a
    # layer without state, with stateful=True in the config; Keras 3.15 loads densitron's file
    # (its predict from fresh states the same) and densitron loads Keras's.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    inp = densitron.Input(batch_shape=(3, 6, 4))
    layer = layers.LSTM(5, stateful=True, name="rec")
    model = densitron.Model(inp, layers.Dense(2)(layer(inp)))
    assert len(model.weights) == 5 and len(layer.weights) == 3
    assert layer.get_config()["stateful"] is True
    theirs, first = stateful_files_both_ways(model, x, _KERAS_FILES, tmp_path)
    rec = theirs.get_layer("rec")
    assert rec.stateful and [s.shape for s in rec.states] == [(3, 5), (3, 5)]
    theirs.save(tmp_path / "again.keras")
    again = densitron.saving.load_model(tmp_path / "again.keras")
    for a, b in zip(again.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.predict(x, batch_size=3, verbose=0), first)
    assert os.path.getsize(tmp_path / "again.keras") > 0


@pytest.mark.parametrize("name,kwargs", [("LSTM", {"recurrent_dropout": 0.2}), ("GRU", {}),
                                         ("SimpleRNN", {})], ids=["lstm", "gru", "simple_rnn"])
def test_trains_alike_on_one_and_two_threads(name, kwargs):
    def output(inp):
        rec = getattr(layers, name)(32, stateful=True, return_sequences=True, **kwargs)
        return layers.Dense(1)(getattr(layers, name)(32, stateful=True)(rec(inp)))

    assert_stateful_trains_alike(output)


def assert_stateful_trains_alike(output):
    """A model of output(Input(batch_shape=(16, 7, 6))) and Dense(1)'s mse, trained 2 epochs
    of 4 batches in order under Adam: bitwise the same on one and two threads."""
    from test_threads import assert_trains_alike_on_one_and_two_threads

    rows = 16
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4 * rows, 7, 6)).astype(np.float32)
    y = rng.standard_normal((4 * rows, 1)).astype(np.float32)

    def build():
        inp = densitron.Input(batch_shape=(rows, 7, 6))
        model = densitron.Model(inp, output(inp))
        model.compile(optimizer="adam", loss="mse")
        return model

    assert_trains_alike_on_one_and_two_threads(build, x, y, batch_size=rows, epochs=2,
                                               shuffle=False)


def test_generation_one_step_a_call_and_masks():
    # keras.io's character-level generation: Input(batch_shape=(1, None)), one id a call,
    # each call continuing the sequence (the engine's graphs of each length share the states)
    rng = np.random.default_rng(11)
    inp = densitron.Input(batch_shape=(1, None))
    rec = layers.LSTM(6, stateful=True, return_sequences=True)
    model = densitron.Model(inp, layers.Dense(10)(rec(layers.Embedding(10, 4)(inp))))
    ids = rng.integers(0, 10, (1, 7))
    whole = model.predict(ids, verbose=0)
    rec.reset_state()
    steps = [model.predict(ids[:, k:k + 1], verbose=0) for k in range(7)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), whole, rtol=2e-5, atol=2e-6)
    # a masked step keeps the states, across calls too
    ids = rng.integers(1, 10, (2, 8))
    ids[0, 2] = ids[1, 5] = ids[1, 6] = 0
    outs = []
    for steps, chunks in ((8, [ids]), (4, [ids[:, :4], ids[:, 4:]])):
        inp = densitron.Input(batch_shape=(2, steps))
        gru = layers.GRU(5, stateful=True)
        embed = layers.Embedding(10, 3, mask_zero=True,
                                 embeddings_initializer=densitron.initializers.RandomNormal(
                                     seed=1))
        model = densitron.Model(inp, layers.Dense(2)(gru(embed(inp))))
        model.set_weights([np.random.default_rng(k).standard_normal(w.shape).astype(np.float32)
                           for k, w in enumerate(model.weights)])
        outs.append([model.predict(c, verbose=0) for c in chunks][-1])
    np.testing.assert_allclose(outs[1], outs[0], rtol=2e-5, atol=2e-6)


def test_sequential_built_with_a_batch_size():
    model = densitron.Sequential([layers.LSTM(4, stateful=True, return_sequences=True),
                                  layers.SimpleRNN(3, stateful=True)])
    model.build((2, 5, 3))  # (Keras's InputLayer(batch_shape=input_shape))
    assert [s.shape for s in model.layers[0].states] == [(2, 4), (2, 4)]
    assert [s.shape for s in model.layers[1].states] == [(2, 3)]
    assert_states_move_on_until_reset(model, (2, 5, 3))


def assert_states_move_on_until_reset(model, shape):
    """A second predict of the same rows differs (the states moved on); after every layer's
    reset_state, predict gives the first result again."""
    x = np.random.default_rng(12).standard_normal(shape).astype(np.float32)
    first = model.predict(x, verbose=0)
    assert np.abs(model.predict(x, verbose=0) - first).max() > 1e-4
    for layer in model.layers:
        layer.reset_state()
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)
