"""Bidirectional around a stateful SimpleRNN, LSTM or GRU (Keras's semantics on TensorFlow and
torch): the forward and the backward layer each keep their own states (batch × units; the
backward layer's where its pass over the reversed steps ended, at the first step), every
forward (fit, evaluate, predict, direct calls) starts from them and writes its final states
back, reset_state() resets both. Checked against the same wrapper without state given the
states by hand, Keras 3.15 on torch (whose states update) over merge modes and masks in
predict and evaluate, Keras 3.15 on JAX (whose states never update) driven with explicit
initial states train step by step, saved files both ways, Keras's errors, and one thread
against two."""
import pickle

import densitron
import numpy as np
import pytest
from densitron import layers
from keras_subprocess import run_keras_on, run_keras_on_jax, stateful_files_both_ways
from test_rnn_stateful import (
    assert_last_partial_batch_refused,
    assert_stateful_trains_alike,
    assert_states_move_on_until_reset,
)

CASES = [("SimpleRNN", {}), ("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False})]
IDS = ["simple_rnn", "lstm", "gru", "gru_reset_before"]
MERGE_MODES = ["concat", "sum", "mul", "ave", None]
B, F, U = 3, 4, 5


def _set_weights(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32)
                       for w in model.weights])


def _parts(seed=1):
    """Two parts of 2 batches each (3 steps, then 4), some steps all zeros (Masking's)."""
    rng = np.random.default_rng(seed)
    parts = [rng.standard_normal((2 * B, t, F)).astype(np.float32) for t in (3, 4)]
    parts[0][0, 1] = parts[0][4, 2] = parts[1][2, 0] = parts[1][2, 3] = 0.0
    return parts


def run(lib, name, kwargs, merge_mode):
    """On `lib` (keras or densitron), from the same weights: a stateful Bidirectional (after
    Masking, return_sequences) predicts the two parts of _parts (a model of the same layers
    for each length), then evaluates the first part. The outputs and the states after each
    call. (Keras 3.15's Bidirectional.compute_mask fails when the wrapper has states and
    return_state=True, a TypeError `generator * 2`; its fit on torch fails for stateful
    LSTMs and GRUs, a state assigned in place that autograd still needs.)"""
    ly = lib.layers
    parts = _parts()
    masking = ly.Masking(0.0)
    bi = ly.Bidirectional(getattr(ly, name)(U, stateful=True, return_sequences=True, **kwargs),
                          merge_mode=merge_mode)
    models = []
    for steps in (3, 4):
        inp = ly.Input(batch_shape=(B, steps, F))
        models.append(lib.Model(inp, bi(masking(inp))))
    _set_weights(models[0], 2)
    out = {"predict": [], "states": []}
    for model, part in zip(models, parts):
        got = model.predict(part, batch_size=B, verbose=0)
        out["predict"].append([np.asarray(t) for t in (got if merge_mode is None else [got])])
        out["states"].append([np.asarray(s) for s in bi.states])
    models[0].compile(optimizer="sgd", loss="mse")
    targets = [np.zeros(t.shape, np.float32) for t in out["predict"][0]]
    out["evaluate"] = models[0].evaluate(parts[0], targets, batch_size=B, verbose=0)
    out["states"].append([np.asarray(s) for s in bi.states])
    return out


_KERAS_TORCH = r"""
import pickle, sys
import keras
import test_rnn_stateful_bidirectional as t
out = {}
for (name, kwargs), case in zip(t.CASES, t.IDS):
    for merge_mode in t.MERGE_MODES:
        out[case, merge_mode] = t.run(keras, name, kwargs, merge_mode)
with open(sys.argv[1], "wb") as f:
    pickle.dump(out, f)
"""


@pytest.fixture(scope="module")
def keras_torch(tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "torch.pkl"
    run_keras_on("torch", _KERAS_TORCH, str(path))
    with open(path, "rb") as f:
        return pickle.load(f)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("merge_mode", MERGE_MODES, ids=[str(m) for m in MERGE_MODES])
@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_calls_continue_as_keras_on_torch(name, kwargs, merge_mode, keras_torch):
    # Keras on torch updates the states as on TensorFlow: each batch of predict and evaluate
    # continues from where the one before left both layers, masked steps keeping them
    theirs = keras_torch[IDS[CASES.index((name, kwargs))], merge_mode]
    ours = run(densitron, name, kwargs, merge_mode)
    np.testing.assert_allclose(ours["evaluate"], theirs["evaluate"], rtol=1e-4)
    for key in ("predict", "states"):
        assert len(ours[key]) == len(theirs[key])
        for mine, keras_values in zip(ours[key], theirs[key]):
            assert len(mine) == len(keras_values) == (2 if key == "predict" and
                                                      merge_mode is None else
                                                      1 if key == "predict" else
                                                      4 if name == "LSTM" else 2)
            for a, b in zip(mine, keras_values):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_the_backward_layer_continues_its_reversed_passes(name, kwargs):
    # What each layer's states mean, against the wrapper without state given them by hand:
    # the forward layer's half is the plain layer over the whole sequence, the backward
    # layer's half is not (each call's reversed pass starts where the previous call's
    # reversed pass ended, at that call's first step), and so on in direct calls; then
    # reset_state() starts both afresh
    rng = np.random.default_rng(3)
    x = rng.standard_normal((B, 10, F)).astype(np.float32)
    chunks = [x[:, :4], x[:, 4:]]
    n = 2 if name == "LSTM" else 1
    bi = layers.Bidirectional(getattr(layers, name)(U, stateful=True, return_sequences=True,
                                                    return_state=True, **kwargs))
    models = []
    for steps in (4, 6):
        inp = densitron.Input(batch_shape=(B, steps, F))
        models.append(densitron.Model(inp, bi(inp)))
    _set_weights(models[0], 4)
    assert bi.stateful and [s.shape for s in bi.states] == [(B, U)] * 2 * n
    ref = layers.Bidirectional(getattr(layers, name)(U, return_sequences=True,
                                                     return_state=True, **kwargs))
    ins = [densitron.Input((None, F))] + [densitron.Input((U,)) for _ in range(2 * n)]
    reference = densitron.Model(ins, ref(ins[0], initial_state=ins[1:]))
    ref.set_weights(bi.get_weights())
    states = [np.zeros((B, U), np.float32)] * (2 * n)
    for model, chunk in zip(models, chunks):
        got = model.predict(chunk, batch_size=B, verbose=0)
        expected = reference.predict([chunk, *states], verbose=0)
        assert len(got) == 1 + 2 * n
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
        states = expected[1:]
        for a, b in zip(bi.states, states):
            np.testing.assert_allclose(a.numpy(), b, rtol=2e-5, atol=2e-6)
    direct = np.asarray(bi(chunks[0])[0])  # (a direct call continues them too)
    expected = reference.predict([chunks[0], *states], verbose=0)
    np.testing.assert_allclose(direct, expected[0], rtol=2e-5, atol=2e-6)
    # the whole sequence from the states before the second round of calls
    bi.reset_state()
    assert all(not s.numpy().any() for s in bi.states)
    outs = np.concatenate([m.predict(c, batch_size=B, verbose=0)[0]
                           for m, c in zip(models, chunks)], axis=1)
    whole = reference.predict([x, *[np.zeros((B, U), np.float32)] * (2 * n)], verbose=0)[0]
    np.testing.assert_allclose(outs[..., :U], whole[..., :U], rtol=2e-5, atol=2e-6)
    assert np.abs(outs[..., U:] - whole[..., U:]).max() > 1e-3
    bi.reset_states()  # (Keras's alias)
    np.testing.assert_array_equal(models[0].predict(chunks[0], batch_size=B, verbose=0)[0],
                                  outs[:, :4])



def test_initial_state_of_the_call_as_keras():
    # As Keras's call: initial states given to a stateful wrapper (the forward layer's then
    # the backward layer's) are the ones its layers start from, and their final states are
    # still kept; the next call without them starts there.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((B, 5, F)).astype(np.float32)
    h = [rng.standard_normal((B, U)).astype(np.float32) for _ in range(4)]
    ins = [densitron.Input(batch_shape=(B, 5, F))] + [densitron.Input(batch_shape=(B, U))
                                                      for _ in range(4)]
    bi = layers.Bidirectional(layers.LSTM(U, stateful=True, return_state=True),
                              merge_mode=None)
    given = densitron.Model(ins, bi(ins[0], initial_state=ins[1:]))
    own = densitron.Model(ins[0], bi(ins[0]))
    ref = layers.Bidirectional(layers.LSTM(U, return_state=True), merge_mode=None)
    pin = [densitron.Input((5, F))] + [densitron.Input((U,)) for _ in range(4)]
    reference = densitron.Model(pin, ref(pin[0], initial_state=pin[1:]))
    _set_weights(given, 5)
    ref.set_weights(bi.get_weights())
    out = given.predict([x, *h], batch_size=B, verbose=0)
    expected = reference.predict([x, *h], verbose=0)
    assert len(out) == len(expected) == 6
    for a, b in zip(out, expected):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(bi.states, expected[2:]):
        np.testing.assert_array_equal(a.numpy(), b)
    again = own.predict(x, batch_size=B, verbose=0)
    for a, b in zip(again, reference.predict([x, *expected[2:]], verbose=0)):
        np.testing.assert_array_equal(a, b)

_KERAS_STEPS = r"""
import sys
import numpy as np
import keras
import test_rnn_stateful_bidirectional as t
path = sys.argv[1]
d = np.load(path + "/data.npz")
x, y, epochs = d["x"], d["y"], int(d["epochs"])
out = {}
for name, kwargs, merge_mode in t.FIT_CASES:
    n = 2 if name == "LSTM" else 1
    ins = [keras.Input(x.shape[1:])] + [keras.Input((t.U,)) for _ in range(2 * n)]
    bi = keras.layers.Bidirectional(getattr(keras.layers, name)(t.U, return_state=True,
                                                                **kwargs),
                                    merge_mode=merge_mode)
    got = bi(ins[0], initial_state=ins[1:])
    first = 2 if merge_mode is None else 1
    h = keras.layers.Concatenate()(list(got[:2])) if merge_mode is None else got[0]
    model = keras.Model(ins, keras.layers.Dense(1)(h))
    states_of = keras.Model(ins, list(got[first:]))
    t._set_weights(model, 6)
    model.compile(optimizer=keras.optimizers.SGD(0.2), loss="mse")
    state = [np.zeros((t.B, t.U), np.float32) for _ in range(2 * n)]
    for _ in range(epochs):
        for k in range(len(x) // t.B):  # each step from the states the step before left
            xb, yb = x[k * t.B:(k + 1) * t.B], y[k * t.B:(k + 1) * t.B]
            ends = states_of.predict([xb, *state], verbose=0)
            model.train_on_batch([xb, *state], yb)
            state = [np.asarray(s) for s in ends]
    out[f"{name}{kwargs}{merge_mode}"] = [np.asarray(w) for w in model.get_weights()] + state
np.savez(path + "/keras.npz", **{f"{key}/{k}": v for key, values in out.items()
                                 for k, v in enumerate(values)})
"""
FIT_CASES = [(name, kwargs, "concat") for name, kwargs in CASES] + \
    [("LSTM", {}, merge_mode) for merge_mode in MERGE_MODES[1:]]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fit_steps_continue_as_keras_driven_by_hand(tmp_path):
    # fit(shuffle=False), 2 epochs of 3 batches: each training step starts both layers from
    # the states the step before left (its forward's final states, before its update; no
    # reset between epochs). Keras 3.15 on JAX, given those states as initial_state step by
    # step (train_on_batch), ends with the same weights and states.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3 * B, 4, F)).astype(np.float32)
    y = rng.standard_normal((3 * B, 1)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=y, epochs=2)
    ours = {}
    for name, kwargs, merge_mode in FIT_CASES:
        inp = densitron.Input(batch_shape=(B, 4, F))
        bi = layers.Bidirectional(getattr(layers, name)(U, stateful=True, **kwargs),
                                  merge_mode=merge_mode)
        h = bi(inp)
        h = layers.Concatenate()(list(h)) if merge_mode is None else h
        model = densitron.Model(inp, layers.Dense(1)(h))
        _set_weights(model, 6)
        model.compile(optimizer=densitron.optimizers.SGD(0.2), loss="mse")
        model.fit(x, y, batch_size=B, epochs=2, shuffle=False, verbose=0)
        ours[f"{name}{kwargs}{merge_mode}"] = (model.get_weights() +
                                               [s.numpy() for s in bi.states])
    run_keras_on_jax(_KERAS_STEPS, str(tmp_path))
    theirs = np.load(tmp_path / "keras.npz")
    for key, values in ours.items():
        assert len([k for k in theirs.files if k.startswith(key + "/")]) == len(values)
        for k, a in enumerate(values):
            np.testing.assert_allclose(a, theirs[f"{key}/{k}"], rtol=1e-4, atol=2e-6,
                                       err_msg=key)


def test_errors_as_keras():
    with pytest.raises(ValueError, match=r"When using `stateful=True` in a RNN, the batch size "
                                         r"must be static. Found dynamic batch size: "
                                         r"sequence.shape=\(None, 4, 3\)"):
        layers.Bidirectional(layers.LSTM(2, stateful=True))(densitron.Input((4, 3)))
    with pytest.raises(ValueError, match=r'the same value for attribute "stateful", got "True" '
                                         r'for forward layer and "False" for backward layer'):
        layers.Bidirectional(layers.GRU(2, stateful=True),
                             backward_layer=layers.GRU(2, go_backwards=True))
    with pytest.raises(AttributeError, match=r"^Layer must be stateful.$"):
        layers.Bidirectional(layers.GRU(2)).reset_state()
    plain = layers.Bidirectional(layers.GRU(2))
    plain(densitron.Input((4, 3)))
    assert not plain.stateful and plain.states is None
    inp = densitron.Input(batch_shape=(B, 4, F))
    bi = layers.Bidirectional(layers.SimpleRNN(U, stateful=True))
    model = densitron.Model(inp, bi(inp))
    x = np.zeros((B + 1, 4, F), np.float32)
    assert_last_partial_batch_refused(model, x)
    with pytest.raises(ValueError, match="Expected batch size: 3\n- Received batch size: 2"):
        bi(densitron.Input(batch_shape=(2, 4, F)))
    with pytest.raises(ValueError, match="Expected batch size: 3\n- Received batch size: 4"):
        bi(x)
    model.compile(optimizer="sgd", loss="mse")

    def batches():  # (a generator's batches of other sizes)
        yield np.zeros((B, 4, F), np.float32), np.zeros((B, 2 * U), np.float32)
        yield np.zeros((2, 4, F), np.float32), np.zeros((2, 2 * U), np.float32)

    with pytest.raises(ValueError, match="Received batch size: 2"):
        model.fit(batches(), epochs=1, verbose=0)


_KERAS_FILES = r"""
import sys
import numpy as np
import keras
path = sys.argv[1]
x = np.load(path + "/x.npy")
mine = keras.saving.load_model(path + "/densitron.keras")
bi = mine.get_layer("bi")
assert bi.stateful and [tuple(s.shape) for s in bi.states] == [(3, 5)] * 4
assert len(mine.weights) == 8
np.save(path + "/keras_on_densitron.npy", mine.predict(x, batch_size=3, verbose=0))
inp = keras.Input(batch_shape=(3, 6, 4))
bi = keras.layers.Bidirectional(keras.layers.LSTM(5, stateful=True), merge_mode="sum",
                                name="bi")
model = keras.Model(inp, keras.layers.Dense(2)(bi(inp)))
model.set_weights([np.random.default_rng(k).standard_normal(w.shape).astype("float32")
                   for k, w in enumerate(model.weights)])
model.save(path + "/keras.keras")
np.save(path + "/keras.npy", model.predict(x, batch_size=3, verbose=0))
"""


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_saved_both_ways_with_keras(tmp_path):
    # The states are not weights (Keras's are not): the files hold the same weights as a
    # wrapper without state, with stateful=True in the layers' configs; Keras 3.15 loads
    # densitron's file (its predict from fresh states the same) and densitron loads Keras's.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    inp = densitron.Input(batch_shape=(3, 6, 4))
    bi = layers.Bidirectional(layers.LSTM(5, stateful=True), name="bi")
    model = densitron.Model(inp, layers.Dense(2)(bi(inp)))
    assert len(model.weights) == 8 and len(bi.weights) == 6
    config = bi.get_config()
    assert config["layer"]["config"]["stateful"] is True
    assert config["backward_layer"]["config"]["stateful"] is True
    theirs, first = stateful_files_both_ways(model, x, _KERAS_FILES, tmp_path)
    loaded = theirs.get_layer("bi")
    assert loaded.stateful and loaded.merge_mode == "sum"
    assert [s.shape for s in loaded.states] == [(3, 5)] * 4
    loaded.reset_state()
    np.testing.assert_array_equal(theirs.predict(x, batch_size=3, verbose=0), first)


def test_sequential_built_with_a_batch_size():
    model = densitron.Sequential([
        layers.Bidirectional(layers.GRU(4, stateful=True, return_sequences=True)),
        layers.Bidirectional(layers.SimpleRNN(3, stateful=True), merge_mode="ave")])
    model.build((2, 5, 3))  # (Keras's InputLayer(batch_shape=input_shape))
    assert [s.shape for s in model.layers[0].states] == [(2, 4)] * 2
    assert [s.shape for s in model.layers[1].states] == [(2, 3)] * 2
    assert_states_move_on_until_reset(model, (2, 5, 3))


@pytest.mark.parametrize("merge_mode", ["concat", None], ids=["concat", "none"])
def test_trains_alike_on_one_and_two_threads(merge_mode):
    def output(inp):
        h = layers.Bidirectional(layers.LSTM(32, stateful=True, return_sequences=True,
                                             recurrent_dropout=0.2), merge_mode=merge_mode)(inp)
        h = layers.Concatenate()(list(h)) if merge_mode is None else h
        h = layers.Bidirectional(layers.GRU(32, stateful=True), merge_mode="sum")(h)
        return layers.Dense(1)(h)

    assert_stateful_trains_alike(output)
