"""Batches of different lengths within one fit, evaluate or predict, as Keras users train
text models (keras.io's examples pad each batch to its own longest sequence, from a
generator or a keras.utils.PyDataset): a model with Input(shape=(None,)) runs each batch on
the engine graph of its lengths (built once a length), the optimizer's state going on across
them. Losses, metrics and weights against Keras 3.15 on JAX (which retraces per shape) over
several epochs of a PyDataset and of a generator of three to four lengths, validation on
mixed lengths, evaluate, predict, and the batch methods with a new length each call."""

import densitron
import numpy as np
import pytest
import test_variable_length as variable_length
from keras_subprocess import keras_on_jax_json

VOCAB = 19
# each batch's (rows, length): four lengths, not in order, one met twice in a row
PLAN = [(4, 5), (4, 8), (3, 3), (4, 8), (4, 6), (2, 5)]


def lstm_model(lib):
    """Embedding(mask_zero=True) into an LSTM (the mask of each batch's padding)."""
    L = lib.layers
    inp = lib.Input(shape=(None,), dtype="int32")
    x = L.Embedding(VOCAB, 5, mask_zero=True)(inp)
    x = L.LSTM(4)(x)
    return lib.Model(inp, L.Dense(1, activation="sigmoid")(x))


def gru_model(lib):
    """A Sequential: Embedding(mask_zero=True), GRU over the steps, GlobalAveragePooling1D
    (of the unmasked steps)."""
    L = lib.layers
    return lib.Sequential([lib.Input(shape=(None,), dtype="int32"),
                           L.Embedding(VOCAB, 4, mask_zero=True),
                           L.GRU(5, return_sequences=True), L.GlobalAveragePooling1D(),
                           L.Dense(1, activation="sigmoid")])


def conv_model(lib):
    """keras.io's text classification from scratch, small: Embedding, Conv1D,
    GlobalMaxPooling1D, Dense."""
    L = lib.layers
    inp = lib.Input(shape=(None,), dtype="int64")
    x = L.Embedding(VOCAB, 6)(inp)
    x = L.Conv1D(5, 3, padding="same", activation="relu")(x)
    x = L.GlobalMaxPooling1D()(x)
    return lib.Model(inp, L.Dense(1, activation="sigmoid")(L.Dense(4, activation="tanh")(x)))


def tagger(lib):
    """A tag a step (targets of each batch's length): Embedding, LSTM over the steps, a
    softmax Dense a step."""
    L = lib.layers
    inp = lib.Input(shape=(None,), dtype="int32")
    x = L.LSTM(4, return_sequences=True)(L.Embedding(VOCAB, 3)(inp))
    return lib.Model(inp, L.Dense(3, activation="softmax")(x))


# name: (builder, optimizer, loss)
CASES = {"lstm": (lstm_model, "adam", "binary_crossentropy"),
         "gru": (gru_model, "rmsprop", "binary_crossentropy"),
         "conv": (conv_model, "adam", "binary_crossentropy"),
         "tagger": (tagger, "sgd", "sparse_categorical_crossentropy")}


def batch(seed, rows, length, tags=False):
    """Ids padded with zeros after each row's own length (the batch padded to its longest
    row), and binary targets (a class id a step with `tags`)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, (rows, length))
    for r in range(1, rows):
        x[r, rng.integers(1, length + 1):] = 0
    if tags:
        return x, rng.integers(0, 3, (rows, length))
    return x, rng.integers(0, 2, (rows, 1)).astype(np.float32)


def batches(offset=0, plan=PLAN, tags=False):
    return [batch(offset + k, rows, length, tags) for k, (rows, length) in enumerate(plan)]


def same_weights(model, seed=5):
    """test_variable_length's seeded weights, at a scale of 0.3."""
    return variable_length.same_weights(model, seed, scale=0.3)


def dataset(lib, items):
    """A PyDataset of the given batches, in order."""
    class Batches(lib.utils.PyDataset):
        def __len__(self):
            return len(items)

        def __getitem__(self, i):
            return items[i]

    return Batches()


def repeating(items):
    while True:
        yield from items


def run_case(lib, name):
    """fit on a PyDataset of mixed lengths (validated on another; the logs each batch), then
    on a generator with steps_per_epoch, evaluate and predict on mixed lengths (the tagger's
    outputs, of each batch's length, on one length), then the batch methods with a new
    length each call: every log, the weights after each phase, the outputs."""
    build, optimizer, loss = CASES[name]
    tags = name == "tagger"
    model = same_weights(build(lib))
    model.compile(optimizer=optimizer, loss=loss,
                  metrics=["accuracy"] if tags else ["accuracy", "mae"])
    train, val = batches(tags=tags), batches(100, [(3, 7), (4, 4), (3, 7)], tags)
    batch_logs = []

    class Record(lib.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batch_logs.append(dict(logs))

    out = {}
    out["fit"] = model.fit(dataset(lib, train), epochs=3, shuffle=False, verbose=0,
                           validation_data=dataset(lib, val), callbacks=[Record()]).history
    out["batch_logs"] = batch_logs
    out["weights_fit"] = [w.tolist() for w in model.get_weights()]
    out["fit_gen"] = model.fit(repeating(train[::-1]), steps_per_epoch=len(train), epochs=2,
                               verbose=0).history
    out["weights_gen"] = [w.tolist() for w in model.get_weights()]
    out["evaluate"] = model.evaluate(dataset(lib, val + train[:2]), verbose=0,
                                     return_dict=True)
    out["predict"] = np.asarray(model.predict(
        dataset(lib, [(x,) for x, _ in (val[::2] if tags else val)]), verbose=0)).tolist()
    on_batch = []
    for x, y in train[:4]:
        on_batch.append(model.train_on_batch(x, y, return_dict=True))
        on_batch.append(model.test_on_batch(x[:, :-1], y[:, :-1] if tags else y,
                                            return_dict=True))
        on_batch.append(np.asarray(model.predict_on_batch(x[:, :2])).tolist())
    out["on_batch"] = on_batch
    out["weights_end"] = [w.tolist() for w in model.get_weights()]
    out["iterations"] = int(model.optimizer.iterations)
    return out


_JAX_SIDE = """
import json, keras
import test_variable_batches as t
print(json.dumps({name: t.run_case(keras, name) for name in t.CASES}))
"""


@pytest.fixture(scope="module")
def keras_results():
    return keras_on_jax_json(_JAX_SIDE)


def _close(got, expected, rtol, atol, what):
    if isinstance(expected, dict):
        assert sorted(got) == sorted(expected), what
        for k in expected:
            _close(got[k], expected[k], rtol, atol, f"{what}[{k!r}]")
    elif isinstance(expected, list) and expected and isinstance(expected[0], (dict, list)):
        assert len(got) == len(expected), what
        for k, (g, e) in enumerate(zip(got, expected)):
            _close(g, e, rtol, atol, f"{what}[{k}]")
    else:
        np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(expected),
                                   rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("name", list(CASES))
def test_mixed_lengths_match_keras_on_jax(name, keras_results):
    """The same losses and metrics each epoch (validation on mixed lengths too), the same
    weights after each phase, evaluate's and predict's results and the batch methods' at a
    new length each call: one optimizer state all along, up to float32 rounding."""
    got, expected = run_case(densitron, name), keras_results[name]
    assert got["iterations"] == expected["iterations"] == 3 * 6 + 2 * 6 + 4
    for key in ("fit", "batch_logs", "fit_gen", "evaluate", "on_batch", "predict"):
        _close(got[key], expected[key], 1e-5, 1e-6, key)
    for key in ("weights_fit", "weights_gen", "weights_end"):
        _close(got[key], expected[key], 1e-4, 2e-6, key)


def test_predict_of_outputs_of_several_lengths_raises_as_keras(keras):
    """predict over batches whose outputs differ in length (a tag a step) joins them as
    Keras does, so it raises Keras's (NumPy's) error; each batch alone predicts."""
    model = same_weights(tagger(densitron))
    items = batches(7, [(2, 3), (2, 5)], True)
    with pytest.raises(ValueError, match="dimensions except for the concatenation axis must "
                       "match exactly, but along dimension 1, the array at index 0 has size 3 "
                       "and the array at index 1 has size 5"):
        model.predict(dataset(densitron, [(x,) for x, _ in items]), verbose=0)
    for x, _ in items:
        assert model.predict_on_batch(x).shape == (2, x.shape[1], 3)


OPTIMIZERS = {
    "accumulating": lambda lib: lib.optimizers.Adam(0.01, gradient_accumulation_steps=2),
    "ema": lambda lib: lib.optimizers.SGD(0.1, momentum=0.9, use_ema=True,
                                          ema_overwrite_frequency=3),
    "loss_scale": lambda lib: lib.optimizers.LossScaleOptimizer(
        lib.optimizers.Adam(0.01), initial_scale=2.0 ** 10, dynamic_growth_steps=2),
    "clipped": lambda lib: lib.optimizers.AdamW(0.01, global_clipnorm=0.5),
    "schedule": lambda lib: lib.optimizers.RMSprop(
        lib.optimizers.schedules.ExponentialDecay(0.05, 3, 0.5)),
}


def run_optimizer(lib, name):
    """Three epochs of the LSTM model over the mixed lengths: the losses, the weights, the
    step count and (LossScaleOptimizer) the loss scale and its counter."""
    model = same_weights(lstm_model(lib))
    optimizer = OPTIMIZERS[name](lib)
    model.compile(optimizer, "binary_crossentropy")
    losses = model.fit(dataset(lib, batches()), epochs=3, shuffle=False,
                       verbose=0).history["loss"]
    state = [int(optimizer.iterations)]
    if name == "loss_scale":
        state += [float(np.asarray(optimizer.dynamic_scale)),
                  int(np.asarray(optimizer.step_counter))]
    return {"losses": losses, "weights": [w.tolist() for w in model.get_weights()],
            "state": state}


_JAX_OPTIMIZERS = """
import json, keras
import test_variable_batches as t
print(json.dumps({name: t.run_optimizer(keras, name) for name in t.OPTIMIZERS}))
"""


def test_optimizer_state_goes_on_across_lengths_as_keras():
    """Gradient accumulation, EMA with overwrites, a loss scale growing every two steps,
    global clipping with decoupled decay and a schedule go on from one length's graph to
    the next as Keras's one optimizer state does."""
    expected = keras_on_jax_json(_JAX_OPTIMIZERS)
    for name in OPTIMIZERS:
        got = run_optimizer(densitron, name)
        assert got["state"] == expected[name]["state"], name
        _close(got["losses"], expected[name]["losses"], 1e-5, 1e-6, name)
        _close(got["weights"], expected[name]["weights"], 1e-4, 5e-6, name)


def test_more_lengths_than_graphs_kept():
    """An epoch over 20 lengths keeps at most _KEPT_SHAPES engine graphs, and trains as the
    same batches given one by one to train_on_batch (whose logs are each batch's alone):
    the same weights and step count, the epoch's loss the batches' mean by rows."""
    plan = [(3, 2 + k) for k in range(20)] + [(2, 4), (3, 21)]
    items = batches(50, plan)
    model = same_weights(lstm_model(densitron))
    model.compile("adam", "binary_crossentropy")
    history = model.fit(dataset(densitron, items), shuffle=False, verbose=0).history
    assert len(model._specialisations) <= model._KEPT_SHAPES
    again = same_weights(lstm_model(densitron))
    again.compile("adam", "binary_crossentropy")
    losses = [again.train_on_batch(x, y) for x, y in items]
    rows = [r for r, _ in plan]
    np.testing.assert_allclose(history["loss"][0], np.dot(losses, rows) / sum(rows), rtol=1e-6)
    assert int(model.optimizer.iterations) == int(again.optimizer.iterations) == len(plan)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def subclassed(lib):
    """A Model subclass of Embedding(mask_zero=True), LSTM and Dense (no input shape)."""
    L = lib.layers

    class TextModel(lib.Model):
        def __init__(self):
            super().__init__()
            self.embed = L.Embedding(VOCAB, 4, mask_zero=True)
            self.rnn = L.LSTM(3)
            self.head = L.Dense(1, activation="sigmoid")

        def call(self, x):
            return self.head(self.rnn(self.embed(x)))

    return TextModel()


def run_lazy(lib, kind="sequential"):
    """A Sequential given no Input (or a Model subclass), built by predict on a first batch,
    then trained on a PyDataset of mixed lengths and on arrays of another length,
    predicting at a new one."""
    L = lib.layers
    model = subclassed(lib) if kind == "subclassed" else lib.Sequential([
        L.Embedding(VOCAB, 4, mask_zero=True), L.LSTM(3), L.Dense(1, activation="sigmoid")])
    items = batches(30)
    first = model.predict(items[0][0], verbose=0)
    same_weights(model)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(dataset(lib, items), epochs=2, shuffle=False, verbose=0).history
    x, y = batch(40, 6, 9)
    history_arrays = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    return {"first": np.asarray(first).shape, "fit": history, "fit_arrays": history_arrays,
            "predict": np.asarray(model.predict(batch(41, 3, 11)[0], verbose=0)).tolist(),
            "weights": [w.tolist() for w in model.get_weights()]}


_JAX_LAZY = """
import json, keras
import test_variable_batches as t
print(json.dumps({kind: t.run_lazy(keras, kind) for kind in ("sequential", "subclassed")}))
"""


def test_models_built_from_data_follow_new_lengths_as_keras():
    """A Sequential (no Input) or a Model subclass built from its first data runs later
    data of other lengths as Keras's does (it calls its layers again): the same logs,
    outputs and weights."""
    results = keras_on_jax_json(_JAX_LAZY)
    for kind, expected in results.items():
        got = run_lazy(densitron, kind)
        assert list(got.pop("first")) == expected.pop("first") == [4, 1]
        _close(got, expected, 1e-4, 2e-6, kind)


def test_refused_lengths_leave_the_model_as_it_was():
    """Data whose shape a layer refuses (an image smaller than the kernel; features a built
    Dense does not take) raises a ValueError naming it and leaves the model running its
    shapes: it trains on as before."""
    rng = np.random.default_rng(8)
    inp = densitron.Input((None, None, 3))
    x = densitron.layers.GlobalAveragePooling2D()(densitron.layers.Conv2D(2, 3)(inp))
    model = densitron.Model(inp, densitron.layers.Dense(1)(x))
    model.compile("adam", "mse")
    images, y = rng.standard_normal((2, 6, 7, 3)), np.ones((2, 1))
    model.fit(images, y, verbose=0)
    with pytest.raises(ValueError, match=r"Computed output size would be zero or negative. "
                       r"Received: inputs shape=\(None, 2, 2, 3\)"):
        model.fit(rng.standard_normal((2, 2, 2, 3)), y, verbose=0)
    model.fit(images, y, verbose=0)
    assert int(model.optimizer.iterations) == 2

    stack = densitron.Sequential([densitron.layers.Dense(2), densitron.layers.Dense(1)])
    stack.compile("adam", "mse")
    stack.fit(np.ones((3, 4)), np.ones((3, 1)), verbose=0)
    for bad in (np.ones((3, 5)), np.ones((3, 4, 2))):
        with pytest.raises(ValueError, match=r"expected shape \(None, 4\), but received input "
                           r"with shape \(3, [45]"):
            stack.predict(bad, verbose=0)
        with pytest.raises(ValueError, match=r"expected shape \(None, 4\)"):
            stack.fit(bad, np.ones((3, 1)), verbose=0)
    stack.fit(np.ones((3, 4)), np.ones((3, 1)), verbose=0)
    assert int(stack.optimizer.iterations) == 2 and not stack.__dict__.get("_dynamic")


def _compiled_graphs(model):
    """The model's compiled engine graphs: the running one and those kept for other shapes."""
    kept = [state["_graph"] for state in model._specialisations.values()
            if state.get("_engine_compiled")]
    return [model._graph] + kept


def test_graphs_of_lengths_share_one_optimizer_state():
    """The engine graphs of a model's lengths hold one optimizer slot buffer (a switch of
    length copies no slot): after an epoch over 20 lengths every kept graph has the same
    buffer, a slot written through one graph is read through another, switching lengths
    keeps the buffer; compile with another optimizer gives the graphs a fresh one (shared
    again), zero slots and a step count from zero."""
    plan = [(3, 2 + k) for k in range(20)] + [(2, 4), (3, 21)]
    model = same_weights(lstm_model(densitron))
    model.compile("adam", "binary_crossentropy")
    model.fit(dataset(densitron, batches(50, plan)), shuffle=False, verbose=0)
    graphs = _compiled_graphs(model)
    assert len(graphs) == model._KEPT_SHAPES
    ids = {g.optimizer_state_id for g in graphs}
    assert len(ids) == 1
    assert np.any(model._graph.get_slot(0, 0) != 0)  # (trained: Adam's m)
    values = np.arange(model._graph.get_slot(1, 2).size, dtype=np.float32)
    graphs[3].set_slot(1, 2, values)
    for g in graphs:
        np.testing.assert_array_equal(g.get_slot(1, 2), values)
    for rows, length in [(2, 20), (3, 21), (2, 20)]:  # (kept lengths: a switch a call)
        model.train_on_batch(*batch(1, rows, length))
        assert model._graph.optimizer_state_id in ids
    old = ids.pop()
    model.compile("adam", "binary_crossentropy")  # (a new optimizer: a new state)
    model.train_on_batch(*batch(2, 2, 20))
    first = model._graph
    assert first.optimizer_state_id != old and first.iterations == 1
    model.train_on_batch(*batch(3, 3, 21))
    assert model._graph is not first and model._graph.iterations == 2
    assert model._graph.optimizer_state_id == first.optimizer_state_id != old


def test_share_optimizer_state_refuses_other_layouts():
    """share_optimizer_state joins graphs of one parameter layout and optimizer only."""
    def trained(units, optimizer):
        L = densitron.layers
        inp = densitron.Input(shape=(None,), dtype="int32")
        x = L.LSTM(units)(L.Embedding(VOCAB, 5, mask_zero=True)(inp))
        model = densitron.Model(inp, L.Dense(1)(x))
        model.compile(optimizer, "mse")
        model.train_on_batch(*batch(0, 3, 6))
        return model._graph

    graph = trained(4, "adam")
    with pytest.raises(ValueError, match="parameter 1 of 80 values and of 100.*"):
        graph.share_optimizer_state(trained(5, "adam"))
    with pytest.raises(ValueError, match="optimizers differ. Received: 2 slots"):
        graph.share_optimizer_state(trained(4, "adagrad"))
    same = trained(4, "adam")
    same.share_optimizer_state(graph)
    assert same.optimizer_state_id == graph.optimizer_state_id
