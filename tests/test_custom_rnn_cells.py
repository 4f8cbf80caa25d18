"""Keras's RNN(cell) with a cell of one's own (a Layer with `state_size` and call(inputs,
states) returning (output, new_states), made of ops): keras.io's Working with RNNs guide's
MinimalRNNCell, a cell of two states whose output is not its first state, and one with
get_initial_state and an output_size of its own. Outputs and states against a float64 NumPy
reference of Keras 3.15's JAX loop (return_sequences, return_state, go_backwards,
initial_state, masks with and without unroll and zero_output_for_mask), Bidirectional,
gradients against finite differences, outputs and a few epochs' losses against Keras on JAX
with the same weights, configs and .keras files both ways, refusals of bad cells."""

import os
import tempfile

import densitron
import numpy as np
import pytest
from densitron import layers
from keras_subprocess import keras_on_jax_json, run_keras_on_jax
from test_gradients_fd import fd_check

_CLASSES = {}


def cell_classes(K):
    """The cells, written against library K (densitron or keras), registered (package
    "CustomCells": Bidirectional copies its layer through its config, as Keras does): the
    guide's MinimalRNNCell, TwoStateCell (states h and a running sum s; output h + s) and
    ProjectedCell (one state of 3 values, output its projection to 2, initial state 0.5
    everywhere)."""
    if K.__name__ not in _CLASSES:
        register = K.saving.register_keras_serializable(package="CustomCells")
        _CLASSES[K.__name__] = tuple(register(c) for c in _cell_classes(K))
    return _CLASSES[K.__name__]


def _cell_classes(K):
    ops = K.ops

    class MinimalRNNCell(K.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                          initializer="uniform", name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                    initializer="uniform",
                                                    name="recurrent_kernel")
            self.built = True

        def call(self, inputs, states):
            prev_output = states[0]
            h = ops.matmul(inputs, self.kernel)
            output = h + ops.matmul(prev_output, self.recurrent_kernel)
            return output, [output]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    class TwoStateCell(K.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = [units, units]

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                    name="recurrent_kernel")
            self.bias = self.add_weight(shape=(self.units,), initializer="zeros",
                                        name="bias")

        def call(self, inputs, states):
            h, s = states
            h = ops.tanh(ops.matmul(inputs, self.kernel) +
                         ops.matmul(h, self.recurrent_kernel) + self.bias)
            s = s * 0.5 + h
            return h + s, [h, s]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    class ProjectedCell(K.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.state_size = 3
            self.output_size = 2

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], 3), name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(3, 3), name="recurrent_kernel")
            self.projection = self.add_weight(shape=(3, 2), name="projection")

        def call(self, inputs, states):
            h = ops.tanh(ops.matmul(inputs, self.kernel) +
                         ops.matmul(states[0], self.recurrent_kernel))
            return ops.matmul(h, self.projection), [h]

        def get_initial_state(self, batch_size=None):
            return [ops.ones((batch_size, 3)) * 0.5]

    class DenseCell(K.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units
            self.inner = K.layers.Dense(units, activation="tanh")

        def build(self, input_shape):
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                    name="recurrent_kernel")
            self.inner.build(input_shape)

        def call(self, inputs, states):
            h = self.inner(inputs) + ops.matmul(states[0], self.recurrent_kernel)
            return h, [h]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    return MinimalRNNCell, TwoStateCell, ProjectedCell, DenseCell


MinimalRNNCell, TwoStateCell, ProjectedCell, DenseCell = cell_classes(densitron)
CUSTOM = {c.__name__: c for c in cell_classes(densitron)}


def reference_step(kind, x, states, w):
    """One step of each cell in float64: (output, new states)."""
    w = [np.asarray(v, np.float64) for v in w]
    if kind == "MinimalRNNCell":
        out = x @ w[0] + states[0] @ w[1]
        return out, [out]
    if kind == "DenseCell":  # (recurrent_kernel, then its Dense's kernel and bias)
        out = np.tanh(x @ w[1] + w[2]) + states[0] @ w[0]
        return out, [out]
    if kind == "TwoStateCell":
        h = np.tanh(x @ w[0] + states[0] @ w[1] + w[2])
        s = states[1] * 0.5 + h
        return h + s, [h, s]
    h = np.tanh(x @ w[0] + states[0] @ w[1])
    return h @ w[2], [h]


def reference(kind, x, w, states, go_backwards=False, mask=None, unroll=False,
              zero_output_for_mask=False):
    """Keras 3's JAX loop over the cell: outputs in the order the steps ran, final states. A
    masked step keeps the states and outputs the previous first state (zeros with
    zero_output_for_mask); unrolled, the previous output (zeros at the first step)."""
    x = x.astype(np.float64)
    states = [np.asarray(s, np.float64) for s in states]
    outs, prev = [], None
    for t in (range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])):
        out, new = reference_step(kind, x[:, t], states, w)
        if mask is not None:
            m = mask[:, t, None]
            if unroll:
                out = np.where(m, out, 0.0 if prev is None else prev)
            elif zero_output_for_mask:
                out = np.where(m, out, 0.0)
            else:
                out = np.where(m, out, states[0])
            new = [np.where(m, a, b) for a, b in zip(new, states)]
        states, prev = new, out
        outs.append(out)
    return np.stack(outs, 1), states


def _make(kind):
    return ProjectedCell() if kind == "ProjectedCell" else CUSTOM[kind](5)


def _sizes(kind):
    return {"MinimalRNNCell": [5], "TwoStateCell": [5, 5], "ProjectedCell": [3],
            "DenseCell": [5]}[kind]


OPTIONS = {
    "last": {},
    "sequences_backwards": {"return_sequences": True, "go_backwards": True},
    "states": {"return_state": True, "return_sequences": True},
    "initial_states": {"return_state": True, "go_backwards": True},
    "masked": {"return_sequences": True, "return_state": True},
    "masked_backwards_zeros": {"return_sequences": True, "go_backwards": True,
                               "zero_output_for_mask": True},
    "masked_unrolled": {"return_sequences": True, "unroll": True,
                        "zero_output_for_mask": True},
}


@pytest.mark.filterwarnings("ignore:.*does not support masking")  # (Flatten's, as Keras's)
@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("kind", sorted(CUSTOM))
def test_outputs_and_states_are_kerass_loop(kind, option):
    options = OPTIONS[option]
    masked = option.startswith("masked")
    if masked and kind == "ProjectedCell" and not options.get("zero_output_for_mask"):
        pytest.skip("a masked step outputs the first state: of another size here (refused)")
    rng = np.random.default_rng(len(kind) * 11 + len(option))
    steps, features, batch = 7, 3, 9
    cell = _make(kind)
    rnn = layers.RNN(cell, **options)
    inp = densitron.Input((steps, features))
    state_inputs = [densitron.Input((n,)) for n in _sizes(kind)]
    x = rng.standard_normal((batch, steps, features)).astype(np.float32)
    if masked:
        x[1, 3:] = 0.0
        x[2, :2] = 0.0
        x[4] = 0.0
        x[5, 2] = 0.0
        out = rnn(layers.Masking()(inp))
    elif option == "initial_states":
        out = rnn(inp, initial_state=state_inputs if len(state_inputs) > 1
                  else state_inputs[0])
    else:
        out = rnn(inp)
    flat = list(out) if isinstance(out, tuple) else [out]
    flat = [layers.Flatten()(t) if len(t.shape) == 3 else t for t in flat]
    model = densitron.Model([inp, *state_inputs] if option == "initial_states" else inp, flat)
    weights = [(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in cell.weights]
    cell.set_weights(weights)
    states = [rng.standard_normal((batch, n)).astype(np.float32) for n in _sizes(kind)]
    got = model.predict([x, *states] if option == "initial_states" else x, verbose=0)
    got = got if isinstance(got, list) else [got]
    if option != "initial_states":
        states = [np.full((batch, n), 0.5 if kind == "ProjectedCell" else 0.0)
                  for n in _sizes(kind)]
    seq, final = reference(kind, x, weights, states, options.get("go_backwards", False),
                           np.any(x != 0, axis=-1) if masked else None,
                           options.get("unroll", False),
                           options.get("zero_output_for_mask", False))
    expected = [seq.reshape(batch, -1) if options.get("return_sequences") else seq[:, -1]]
    if options.get("return_state"):
        expected += final
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def stack_reference(kinds, x, weights, states, go_backwards=False, mask=None,
                    unroll=False, zero_output_for_mask=False):
    """Keras 3's JAX loop over StackedRNNCells of the cells (`weights` and `states` a list a
    cell): each step runs the cells in order, a cell's output the next one's input; a masked
    step keeps the states and outputs the previous states[0] of the loop's structure (the
    first cell's state, or the last cell's first where the first cell has a list of them)."""
    x = x.astype(np.float64)
    states = [[np.asarray(s, np.float64) for s in per_cell] for per_cell in states]
    outs, prev = [], None
    for t in (range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])):
        inp, new = x[:, t], []
        for kind, w, s in zip(kinds, weights, states):
            inp, n = reference_step(kind, inp, s, w)
            new.append(n)
        if mask is not None:
            m = mask[:, t, None]
            if unroll:
                inp = np.where(m, inp, 0.0 if prev is None else prev)
            elif zero_output_for_mask:
                inp = np.where(m, inp, 0.0)
            else:
                first = states[-1][0] if len(states[0]) > 1 else states[0][0]
                inp = np.where(m, inp, first)
            new = [[np.where(m, a, b) for a, b in zip(n, s)] for n, s in zip(new, states)]
        states, prev = new, inp
        outs.append(inp)
    return np.stack(outs, 1), states


@pytest.mark.filterwarnings("ignore:.*does not support masking")
@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("kinds", [("MinimalRNNCell", "TwoStateCell", "DenseCell"),
                                   ("TwoStateCell", "ProjectedCell", "TwoStateCell")])
def test_stacks_of_cells_are_kerass_loop(kinds, option):
    """RNN([cells]) (Keras's StackedRNNCells): the states a list a cell (a cell's own list
    where its state_size is one), as return_state gives them and initial_state takes them."""
    options = OPTIONS[option]
    masked = option.startswith("masked")
    rng = np.random.default_rng(len(option) + len(kinds[0]))
    steps, features, batch = 5, 3, 7
    cells = [ProjectedCell() if k == "ProjectedCell" else CUSTOM[k](3) for k in kinds]
    sizes = [[3] * len(_sizes(k)) for k in kinds]
    rnn = layers.RNN(cells, **options)
    assert rnn.state_size == [c.state_size for c in cells]
    inp = densitron.Input((steps, features))
    state_inputs = [[densitron.Input((n,)) for n in per_cell] for per_cell in sizes]
    nested = [s if isinstance(c.state_size, list) else s[0]
              for c, s in zip(cells, state_inputs)]
    x = rng.standard_normal((batch, steps, features)).astype(np.float32)
    if masked:
        x[1, 3:] = 0.0
        x[4] = 0.0
        x[5, 1] = 0.0
        out = rnn(layers.Masking()(inp))
    elif option == "initial_states":
        out = rnn(inp, initial_state=nested)
    else:
        out = rnn(inp)
    flat_inputs = [t for s in state_inputs for t in s]
    outs = list(out) if isinstance(out, tuple) else [out]
    if options.get("return_state"):  # (a list for a cell of a list of states)
        assert [isinstance(o, list) for o in outs[1:]] == \
            [isinstance(c.state_size, list) for c in cells]
    flat = [t for o in outs for t in (o if isinstance(o, list) else [o])]
    flat = [layers.Flatten()(t) if len(t.shape) == 3 else t for t in flat]
    model = densitron.Model([inp, *flat_inputs] if option == "initial_states" else inp, flat)
    weights = [[(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in c.weights]
               for c in cells]
    for c, w in zip(cells, weights):
        c.set_weights(w)
    states = [[rng.standard_normal((batch, n)).astype(np.float32) for n in per_cell]
              for per_cell in sizes]
    got = model.predict([x, *[s for p in states for s in p]] if option == "initial_states"
                        else x, verbose=0)
    got = got if isinstance(got, list) else [got]
    if option != "initial_states":
        states = [[np.full((batch, n), 0.5 if k == "ProjectedCell" else 0.0) for n in p]
                  for k, p in zip(kinds, sizes)]
    seq, final = stack_reference(kinds, x, weights, states, options.get("go_backwards", False),
                                 np.any(x != 0, axis=-1) if masked else None,
                                 options.get("unroll", False),
                                 options.get("zero_output_for_mask", False))
    expected = [seq.reshape(batch, -1) if options.get("return_sequences") else seq[:, -1]]
    if options.get("return_state"):
        expected += [s for p in final for s in p]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_the_same_weights_every_step_and_keras_structure():
    cell = TwoStateCell(4)
    rnn = layers.RNN(cell, return_state=True, name="loop")
    inp = densitron.Input((6, 3))
    out, h, s = rnn(inp)
    assert out.shape == h.shape == s.shape == (None, 4)
    model = densitron.Model(inp, [out, h, s])
    assert [layer.name for layer in model.layers] == [model.layers[0].name, "loop"]
    assert [w.path for w in model.weights] == ["loop/two_state_cell/kernel",
                                               "loop/two_state_cell/recurrent_kernel",
                                               "loop/two_state_cell/bias"]
    assert rnn.state_size == [4, 4] and model.count_params() == 3 * 4 + 16 + 4
    # called on arrays: the same values as the model
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    eager = rnn(x)
    for a, b in zip(eager, model.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # a projection's output_size: the output's width
    proj = layers.RNN(ProjectedCell(), return_sequences=True)
    assert proj(inp).shape == (None, 6, 2)


def test_bidirectional():
    rng = np.random.default_rng(3)
    inp = densitron.Input((5, 3))
    bi = layers.Bidirectional(layers.RNN(TwoStateCell(4), return_sequences=True))
    model = densitron.Model(inp, bi(inp))
    assert model.output_shape == (None, 5, 8)
    fwd, bwd = bi.forward_layer, bi.backward_layer
    assert fwd.cell is not bwd.cell and bwd.go_backwards
    wf = [(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in fwd.weights]
    wb = [(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in bwd.weights]
    fwd.set_weights(wf)
    bwd.set_weights(wb)
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    zeros = [np.zeros((4, 4))] * 2
    a, _ = reference("TwoStateCell", x, wf, zeros)
    b, _ = reference("TwoStateCell", x, wb, zeros, go_backwards=True)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               np.concatenate([a, b[:, ::-1]], -1), rtol=1e-5, atol=1e-5)


def test_gradients_against_finite_differences():
    rng = np.random.default_rng(4)
    inp, h0 = densitron.Input((4, 3)), densitron.Input((3,))
    h = layers.RNN(TwoStateCell(3), return_sequences=True)(layers.Masking()(inp))
    h = layers.RNN(MinimalRNNCell(2), go_backwards=True)(h, initial_state=h0[:, :2])
    out = layers.Dense(2)(layers.Concatenate()(
        [h, layers.RNN(ProjectedCell())(inp)]))
    x = rng.normal(size=(5, 4, 3))
    x[0, 1] = 0.0
    x[2, 3] = 0.0
    model = densitron.Model([inp, h0], out)
    model.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32)
                       for w in model.get_weights()])
    fd_check(model, [x, rng.normal(size=(5, 3))], rng.normal(size=(5, 2)), "mse")


def _trained_model(lib):
    """A model of the three cells (a mask, go_backwards, Bidirectional) compiled from fixed
    weights, with its data."""
    minimal, two, projected, dense = cell_classes(lib)
    rng = np.random.default_rng(21)
    n, steps = 40, 6
    x = rng.standard_normal((n, steps, 3)).astype(np.float32)
    x[:5, 4:] = 0.0
    y = rng.standard_normal((n, 3)).astype(np.float32)
    L = lib.layers
    i = lib.Input((steps, 3))
    a = L.RNN(two(4), return_sequences=True)(L.Masking()(i))
    a = L.RNN(minimal(3), go_backwards=True)(a)
    b = L.Bidirectional(L.RNN(projected()))(i)
    c = L.RNN(dense(2), unroll=True)(L.Masking()(i))
    # stacks: a masked step outputs the first cell's state (Keras's loop's states[0])
    d = L.RNN([minimal(3), two(3)])(L.Masking()(i))
    e = L.RNN([two(2), dense(2)], go_backwards=True)(i)
    model = lib.Model(i, L.Dense(3)(L.Concatenate()([a, b, c, d, e])))
    rng = np.random.default_rng(12)
    model.set_weights([(rng.standard_normal(w.shape) * 0.3).astype(np.float32)
                       for w in model.get_weights()])
    model.compile(optimizer=lib.optimizers.Adam(0.01), loss="mse")
    return model, x, y


_JAX_SIDE = """
import json
import numpy as np
import keras
import test_custom_rnn_cells as t
with np.errstate(all="ignore"):
    model, x, y = t._trained_model(keras)
result = {"outputs": model.predict(x, verbose=0).tolist()}
history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
result["losses"] = history.history["loss"]
result["weights"] = [w.tolist() for w in model.get_weights()]
print(json.dumps(result))
"""


def test_outputs_and_training_match_keras_on_jax():
    theirs = keras_on_jax_json(_JAX_SIDE)
    model, x, y = _trained_model(densitron)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.asarray(theirs["outputs"]),
                               rtol=1e-5, atol=1e-6)
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], theirs["losses"], rtol=2e-5)
    for g, e in zip(model.get_weights(), theirs["weights"]):
        np.testing.assert_allclose(g, np.asarray(e), rtol=1e-3, atol=1e-4)


def test_config_is_kerass(keras):
    ours = layers.RNN(TwoStateCell(4), return_sequences=True, go_backwards=True)
    with np.errstate(all="ignore"):
        theirs = keras.layers.RNN(cell_classes(keras)[1](4), return_sequences=True,
                                  go_backwards=True)
    config, keras_config = ours.get_config(), theirs.get_config()
    assert list(config) == list(keras_config)
    assert {k: v for k, v in config.items() if k not in ("name", "cell")} == \
        {k: v for k, v in keras_config.items() if k not in ("name", "cell")}
    cell, keras_cell = config["cell"], keras_config["cell"]
    assert cell["class_name"] == keras_cell["class_name"] == "TwoStateCell"
    assert {k: v for k, v in cell["config"].items() if k != "name"} == \
        {k: v for k, v in keras_cell["config"].items() if k != "name"}
    assert ours.state_size == theirs.state_size
    # back from the config (the cell's class given as a custom object)
    again = layers.deserialize(layers.serialize(ours), custom_objects=CUSTOM)
    assert isinstance(again.cell, TwoStateCell) and again.cell.units == 4
    assert again.go_backwards and again.cell is not ours.cell


_KERAS_FILES = """
import sys
import numpy as np
import keras
import test_custom_rnn_cells as t
custom = {c.__name__: c for c in t.cell_classes(keras)}
x = np.load(sys.argv[1])
with np.errstate(all="ignore"):
    theirs = keras.saving.load_model(sys.argv[2], custom_objects=custom)
np.save(sys.argv[3], theirs.predict(x, verbose=0))
with np.errstate(all="ignore"):
    model, _, _ = t._trained_model(keras)
model.save(sys.argv[4])
np.save(sys.argv[5], model.predict(x, verbose=0))
"""


def test_files_both_ways():
    model, x, _ = _trained_model(densitron)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, name) for name in
                 ("x.npy", "ours.keras", "theirs_of_ours.npy", "theirs.keras",
                  "theirs.npy")]
        np.save(paths[0], x)
        model.save(paths[1])
        run_keras_on_jax(_KERAS_FILES, *paths)
        # Keras loads densitron's file: the same values
        np.testing.assert_allclose(np.load(paths[2]), model.predict(x, verbose=0),
                                   rtol=1e-5, atol=1e-6)
        # densitron loads Keras's file (and its own again)
        loaded = densitron.saving.load_model(paths[3], custom_objects=CUSTOM)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), np.load(paths[4]),
                                   rtol=1e-5, atol=1e-6)
        again = densitron.saving.load_model(paths[1], custom_objects=CUSTOM)
        np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                                   rtol=1e-6)
        assert sorted(type(layer.cell).__name__ for layer in again.layers
                      if isinstance(layer, layers.RNN)) == \
            ["DenseCell", "MinimalRNNCell", "StackedRNNCells", "StackedRNNCells",
             "TwoStateCell"]
        # (the Dense inside DenseCell: its weights below its name, as Keras's paths)
        assert [len(w.path.split("/")) for w in again.weights if "dense_cell" in w.path] == \
            [3, 4, 4, 4, 5, 5]


class _NoStateSize(layers.Layer):
    def call(self, inputs, states):
        return inputs, states


class _BadReturn(layers.Layer):
    def __init__(self, returns, state_size=2, **kwargs):
        super().__init__(**kwargs)
        self.state_size = state_size
        self.returns = returns

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 2), name="kernel")

    def call(self, inputs, states):
        from densitron import ops

        h = ops.matmul(inputs, self.kernel)
        if self.returns == "output only":
            return h
        if self.returns == "three":
            return h, [h], h
        if self.returns == "wrong state":
            return h, [inputs]
        if self.returns == "two states":
            return h, [h, h]
        if self.returns == "no tensor":
            return h, [np.zeros((1, 2))]
        return np.asarray(states[0]), [h]


@pytest.mark.parametrize("returns, message", [
    ("output only", r"must return \(output, new_states\). Received: "),
    ("three", r"must return \(output, new_states\). Received: "),
    ("wrong state", r"1 new state\(s\) of shapes \[\(None, 2\)\].*Received: new_states="),
    ("two states", r"Received: new_states="),
    ("no tensor", r"Received: new_states="),
])
def test_cells_returning_the_wrong_structure_are_refused(returns, message):
    inp = densitron.Input((4, 3))
    with pytest.raises(ValueError, match=message):
        layers.RNN(_BadReturn(returns))(inp)


def test_refusals():
    inp = densitron.Input((4, 3))
    with pytest.raises(ValueError, match=r"should have a `state_size` attribute .*Received: "
                                         r"cell="):
        layers.RNN(_NoStateSize())
    for bad in ("2", 0, [2, None], [], True, 2.5):
        with pytest.raises(ValueError, match=r"Received: state_size="):
            layers.RNN(_BadReturn("ok", state_size=bad))
    # a call that is not made of ops on the step's tensors
    with pytest.raises(TypeError, match=r"RNN cell .*Received: "):
        layers.RNN(_BadReturn("array"))(inp)
    # a mask where the first state is not the output's size
    with pytest.raises(ValueError, match=r"a state of the output's size 2 there\. Received: "
                                         r"state_size=\[3\]"):
        densitron.Model(inp, layers.RNN(ProjectedCell())(layers.Masking()(inp)))
    # an input of another step shape than the layer was built for
    rnn = layers.RNN(MinimalRNNCell(2))
    rnn(inp)
    with pytest.raises(ValueError, match=r"Received: input shape \(None, 4, 5\)"):
        rnn(densitron.Input((4, 5)))
    with pytest.raises(ValueError, match=r"Received: shape \(None, 3\)"):
        layers.RNN(MinimalRNNCell(2))(inp, initial_state=densitron.Input((3,)))
    # still refused: stateful, a stack of Keras's cells and cells of one's own
    with pytest.raises(ValueError, match=r"Received: stateful=True"):
        layers.RNN(MinimalRNNCell(2), stateful=True)
    with pytest.raises(ValueError, match=r"not both.*Received: cells=\['LSTMCell', "
                                         r"'MinimalRNNCell'\]"):
        layers.RNN([layers.LSTMCell(2), MinimalRNNCell(2)])
    # a masked stack whose first cell has a list of states and last cell one state (Keras's
    # loop would output a row of that state)
    with pytest.raises(ValueError, match=r"last cell's first.*Received: state_size="):
        densitron.Model(inp, layers.RNN([TwoStateCell(2), MinimalRNNCell(2)])(
            layers.Masking()(inp)))
