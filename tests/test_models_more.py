"""Models beyond the plain functional graph: functional models whose inputs are tensors made by
layers (Keras's clone_graph_nodes: heads, feature extractors, decoders of a trained model), checked
against Keras's own numbers where Keras is installed."""

import re

import densitron
import numpy as np
import pytest
from densitron import layers
from densitron.models import Model, Sequential, load_model

# Keras's own Variable.__array__ predates NumPy 2's `copy` keyword (keras/src/backend/common/
# variables.py); NumPy warns each time Keras converts a variable. Ignored for Keras's modules only.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning:keras")


def mlp(ns):
    """x(4) -> d1(5, relu) -> d2(3, relu) -> d3(2): in densitron or Keras (`ns`: the package)."""
    inp = ns.Input((4,), name="x")
    h = ns.layers.Dense(5, activation="relu", name="d1")(inp)
    h = ns.layers.Dense(3, activation="relu", name="d2")(h)
    return ns.Model(inp, ns.layers.Dense(2, name="d3")(h), name="full")


def data(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def clone_name(name):
    """Keras names a cut tensor's Input after the tensor (keras_tensor_7CLONE), densitron after
    the layer that made it (d2CLONE): both as CLONE."""
    return re.sub(r"^.*CLONE(_\d+)?$", "CLONE", name)


def test_head_of_a_model_predicts_and_trains_the_shared_layers():
    model = mlp(densitron)
    head = Model(model.layers[2].output, model.output)
    features = Model(model.input, model.layers[2].output)
    assert [layer.name for layer in head.layers] == ["d2CLONE", "d3"]
    assert [layer.name for layer in features.layers] == ["x", "d1", "d2"]
    assert head.layers[1] is model.layers[3]
    assert [tuple(t.shape) for t in head.inputs] == [(None, 3)]
    assert head.count_params() == 8
    x = data((16, 4))
    np.testing.assert_array_equal(head.predict(features.predict(x, verbose=0), verbose=0),
                                  model.predict(x, verbose=0))
    # one full-batch SGD step of the head on MSE: the original model's d3 moves with it
    h, y = data((16, 3), 1), data((16, 2), 2)
    kernel, bias = (w.copy() for w in model.layers[3].get_weights())
    head.compile(optimizer=densitron.optimizers.SGD(0.1), loss="mse")
    head.fit(h, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    g = 2.0 * (h @ kernel + bias - y) / y.size  # d(mean squared error)/d(prediction)
    np.testing.assert_allclose(model.layers[3].kernel.numpy(), kernel - 0.1 * h.T @ g,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.layers[3].bias.numpy(), bias - 0.1 * g.sum(0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               head.predict(features.predict(x, verbose=0), verbose=0),
                               rtol=1e-6, atol=1e-6)
    assert head.evaluate(h, y, verbose=0) == pytest.approx(
        float(np.mean((h @ model.layers[3].kernel.numpy() + model.layers[3].bias.numpy()
                       - y) ** 2)), rel=1e-5)


def test_summary_lists_the_new_input():
    model = mlp(densitron)
    lines = []
    Model(model.layers[1].output, model.output).summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "d1CLONE (InputLayer)" in text and "(None, 5)" in text
    assert "Total params: 26" in text  # d2 (5*3+3) and d3 (3*2+2)


@pytest.mark.parametrize("cut", ["list", "unused", "with_input", "dict", "concat"])
def test_layers_inputs_and_predictions_as_keras(keras, cut):
    built = {}
    for ns in (densitron, keras):
        model = mlp(ns)
        d1, d2 = model.layers[1].output, model.layers[2].output
        if cut == "list":
            inputs, outputs = [d1, d2], model.output
        elif cut == "unused":
            inputs, outputs = [d2, d1], model.output
        elif cut == "with_input":
            inputs, outputs = [model.input, d2], model.output
        elif cut == "dict":
            inputs, outputs = {"d2": d2}, {"o": model.output}
        else:
            c = ns.layers.Concatenate(name="cat")([d1, d2])
            inputs, outputs = [d1, d2], ns.layers.Dense(1, name="d4")(c)
        if ns is keras and cut == "dict":  # (Keras warns that the key is not the tensor's name)
            with pytest.warns(UserWarning, match="keys in the dict must match"):
                built[ns] = (model, ns.Model(inputs, outputs))
        else:
            built[ns] = (model, ns.Model(inputs, outputs))
    dcut, kcut = built[densitron][1], built[keras][1]
    assert [clone_name(layer.name) for layer in dcut.layers] == \
        [clone_name(layer.name) for layer in kcut.layers]
    assert [type(layer).__name__ for layer in dcut.layers] == \
        [type(layer).__name__ for layer in kcut.layers]
    assert [tuple(t.shape) for t in dcut.inputs] == [tuple(t.shape) for t in kcut.inputs]
    kcut.set_weights(dcut.get_weights())
    shapes = [tuple(t.shape[1:]) for t in dcut.inputs]
    x = [data((6, *s), k) for k, s in enumerate(shapes)]
    if cut == "dict":
        x = {"d2": x[0]}
    ours, theirs = dcut.predict(x, verbose=0), kcut.predict(x, verbose=0)
    if cut == "dict":
        ours, theirs = ours["o"], theirs["o"]
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-5, atol=1e-6)


def test_outputs_the_inputs_do_not_reach_are_keras_s_error():
    model = mlp(densitron)
    d1, d2 = model.layers[1].output, model.layers[2].output
    with pytest.raises(ValueError, match=r"Output with path `` is not connected to `inputs`\. "
                                         r"Received: inputs=\['d2'\]"):
        Model(d2, d1)  # upstream of the input
    with pytest.raises(ValueError, match="Output with path `` is not connected"):
        Model(d2, d2)  # the input itself
    with pytest.raises(ValueError, match="Output with path `1` is not connected"):
        Model(d2, [model.output, d1])
    with pytest.raises(ValueError, match="Output with path `b` is not connected"):
        Model(d2, {"a": model.output, "b": d1})
    other = layers.Input((3,), name="other")
    both = layers.Add()([model.output, layers.Dense(2)(other)])
    with pytest.raises(ValueError, match="Output with path `` is not connected"):
        Model(d2, both)  # another Input needed
    with pytest.raises(ValueError, match="appears twice"):
        Model([d2, d2], model.output)
    assert len(Model([d2, other], both).inputs) == 2


def test_a_sequential_split_into_two_models():
    model = Sequential([layers.Input((4,)), layers.Dense(5, name="a"), layers.Dense(3, name="b"),
                        layers.Dense(2, name="c")])
    head = Model(model.layers[1].output, model.output)
    features = Model(model.input, model.layers[1].output)
    assert [layer.name for layer in head.layers] == ["bCLONE", "c"]
    x = data((7, 4))
    np.testing.assert_array_equal(head.predict(features.predict(x, verbose=0), verbose=0),
                                  model.predict(x, verbose=0))


def test_composite_shared_and_nested_layers_across_the_cut():
    class Block(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner, self.outer = layers.Dense(4, activation="relu"), layers.Dense(4)

        def call(self, x):
            return self.outer(self.inner(x)) + x

    i = layers.Input((4,), name="i")
    pre = layers.Dense(4, name="pre")(i)
    shared = layers.Dense(4, name="shared")
    nested = Model(i, layers.Dense(2, name="n_out")(shared(shared(i))), name="nested")
    out = layers.Dense(1, name="post")(nested(Block(name="block")(pre)))
    model = Model(i, out)
    head = Model(pre, out)
    assert [layer.name for layer in head.layers] == ["preCLONE", "block", "nested", "post"]
    x = data((5, 4))
    before = Model(i, pre).predict(x, verbose=0)
    np.testing.assert_allclose(head.predict(before, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    # a shared layer's second call alone: its first call's tensor cut
    first = shared._inbound_nodes[0].outputs[0]
    second = Model(first, nested.output)
    assert [layer.name for layer in second.layers] == ["sharedCLONE", "shared", "n_out"]
    np.testing.assert_allclose(second.predict(shared(x), verbose=0),
                               nested.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_a_mask_past_the_cut_reads_its_ids_as_in_keras(keras):
    """Keras records the mask a call applies among its arguments: a head cut after an
    Embedding(mask_zero=True) needs the ids Input too, and applies their mask."""
    ids_data = np.array([[1, 2, 0, 0, 0, 0], [3, 4, 5, 0, 0, 0]], dtype="float32")
    results = {}
    for ns in (densitron, keras):
        ids = ns.Input((6,), name="ids")
        e = ns.layers.Embedding(10, 3, mask_zero=True, name="emb")(ids)
        p = ns.layers.GlobalAveragePooling1D(name="gap")(ns.layers.Dense(3, name="td")(e))
        model = ns.Model(ids, ns.layers.Dense(1, name="out")(p))
        if ns is keras:
            model.set_weights(results[densitron][4].get_weights())
        with pytest.raises(ValueError, match="Output with path `` is not connected"):
            ns.Model(e, model.output)
        head = ns.Model([ids, e], model.output)
        emb = model.get_layer("emb").get_weights()[0][ids_data.astype(int)]
        results[ns] = (head, np.asarray(model.predict(ids_data, verbose=0)),
                       np.asarray(head.predict([ids_data, emb], verbose=0)),
                       [type(layer).__name__ for layer in head.layers], model)
    ours, theirs = results[densitron], results[keras]
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours[2], ours[1], rtol=1e-6, atol=1e-7)  # masked, as the whole
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-5, atol=1e-6)
    emb_masked = np.where(ids_data[..., None] > 0, emb, 0.0)  # (not what decides the mask)
    # (Keras lists ids before td: the op of its mask adds a depth)
    assert sorted(ours[3]) == sorted(theirs[3])
    np.testing.assert_allclose(ours[0].predict([ids_data, emb_masked], verbose=0), ours[2],
                               rtol=1e-5, atol=1e-6)


def test_files_of_a_head_load_in_both(keras, tmp_path):
    model = mlp(densitron)
    head = Model(model.layers[2].output, model.output)
    head.compile(optimizer="adam", loss="mse")
    head.fit(data((8, 3)), data((8, 2), 1), verbose=0)
    head.save(tmp_path / "ours.keras")
    x = data((5, 3), 3)
    again = load_model(tmp_path / "ours.keras")
    assert [layer.name for layer in again.layers] == ["d2CLONE", "d3"]
    np.testing.assert_array_equal(again.predict(x, verbose=0), head.predict(x, verbose=0))
    in_keras = keras.saving.load_model(tmp_path / "ours.keras", compile=False)
    assert [layer.name for layer in in_keras.layers] == ["d2CLONE", "d3"]
    np.testing.assert_allclose(np.asarray(in_keras.predict(x, verbose=0)),
                               head.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    kmodel = mlp(keras)
    khead = keras.Model(kmodel.layers[2].output, kmodel.output)
    khead.save(tmp_path / "theirs.keras")
    ours = load_model(tmp_path / "theirs.keras")
    assert [clone_name(layer.name) for layer in ours.layers] == ["CLONE", "d3"]
    np.testing.assert_allclose(ours.predict(x, verbose=0), np.asarray(khead.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    config = again.get_config()
    assert config["input_layers"] == ["d2CLONE", 0, 0]  # (Keras's: one input unlisted)
    assert Model.from_config(config).layers[0].name == "d2CLONE"


# --- subclassed models saved and loaded as their class ---------------------------------------

@densitron.saving.register_keras_serializable(package="tmm")
class TwoLayers(Model):
    """A registered subclassed model with a constructor argument and a method of its own."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = layers.Dense(units, activation="relu")
        self.out = layers.Dense(2)

    def call(self, x):
        return self.out(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}

    def doubled(self, x):
        return 2.0 * self.predict(x, verbose=0)


class Unregistered(Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.a = layers.Dense(3)
        self.b = layers.Dense(1)

    def call(self, x):
        return self.b(self.a(x))


def keras_two_layers(keras):
    """TwoLayers in Keras, registered under the same name."""

    @keras.saving.register_keras_serializable(package="tmm", name="TwoLayers")
    class KerasTwoLayers(keras.Model):
        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.hidden = keras.layers.Dense(units, activation="relu")
            self.out = keras.layers.Dense(2)

        def call(self, x):
            return self.out(self.hidden(x))

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    return KerasTwoLayers


def test_a_subclassed_model_comes_back_as_its_class(tmp_path):
    x, y = data((32, 5)), data((32, 2), 1)
    model = TwoLayers(units=6, name="mine")
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert model.get_config() == {"name": "mine", "trainable": True, "dtype": "float32",
                                  "units": 6}
    model.save(tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras")
    assert type(back) is TwoLayers and back.units == 6 and back.name == "mine"
    np.testing.assert_array_equal(back.doubled(x), 2.0 * model.predict(x, verbose=0))
    # the optimizer's state too: both go on training alike
    assert back.optimizer.iterations == model.optimizer.iterations == 8
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    back.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_allclose(back.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    clone = densitron.models.clone_model(model)  # (Keras's: the class again, new weights)
    assert type(clone) is TwoLayers and clone.units == 6 and clone.built
    assert clone.count_params() == model.count_params()


def test_an_unregistered_class_by_custom_objects_or_its_trace(tmp_path):
    x = data((6, 4))
    model = Unregistered()
    model.build((None, 4))
    model.save(tmp_path / "u.keras")
    back = load_model(tmp_path / "u.keras", custom_objects={"Unregistered": Unregistered})
    assert type(back) is Unregistered
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    # without the class: its traced graph, with the weights, as densitron loaded it before
    traced = load_model(tmp_path / "u.keras")
    assert type(traced) is Model and [layer.name for layer in traced.layers][1:] == \
        [layer.name for layer in model.layers]
    np.testing.assert_array_equal(traced.predict(x, verbose=0), model.predict(x, verbose=0))
    # weights files: Keras's layout of a subclassed model, by attribute
    model.save_weights(tmp_path / "u.weights.h5")
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "u.weights.h5") as h:
        assert sorted(h) == ["a", "b", "vars"]
    fresh = Unregistered()
    fresh.build((None, 4))
    fresh.load_weights(tmp_path / "u.weights.h5")
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))
    # the layout densitron wrote before (the trace's layers) still loads
    twin = Model.from_config(model._graph_config())
    twin.set_weights(model.get_weights())
    twin.save_weights(tmp_path / "old.weights.h5")
    older = Unregistered()
    older.build((None, 4))
    older.load_weights(tmp_path / "old.weights.h5")
    np.testing.assert_array_equal(older.predict(x, verbose=0), model.predict(x, verbose=0))


def test_subclassed_model_files_load_in_keras_and_back(keras, tmp_path):
    x = data((7, 5))
    KerasTwoLayers = keras_two_layers(keras)
    ours = TwoLayers(units=3)
    ours.build((None, 5))
    ours.save(tmp_path / "ours.keras")
    in_keras = keras.saving.load_model(tmp_path / "ours.keras")
    assert type(in_keras) is KerasTwoLayers and in_keras.units == 3
    np.testing.assert_allclose(np.asarray(in_keras.predict(x, verbose=0)),
                               ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    theirs = KerasTwoLayers(units=5)
    theirs(x)
    theirs.save(tmp_path / "theirs.keras")
    back = load_model(tmp_path / "theirs.keras")
    assert type(back) is TwoLayers and back.units == 5
    np.testing.assert_allclose(back.predict(x, verbose=0),
                               np.asarray(theirs.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    fresh = TwoLayers(units=5)
    fresh.build((None, 5))
    fresh.load_weights(tmp_path / "theirs.weights.h5")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), back.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-7)


def test_a_keras_file_of_a_class_not_at_hand_is_keras_s_error(keras, tmp_path):
    class Elsewhere(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.d = keras.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    model = Elsewhere()
    model(np.zeros((1, 3), "float32"))
    model.save(tmp_path / "e.keras")
    with pytest.raises(TypeError, match="Could not locate class 'Elsewhere'"):
        load_model(tmp_path / "e.keras")
    with pytest.raises(TypeError, match="Could not locate class 'Elsewhere'"):
        keras.saving.load_model(tmp_path / "e.keras")


# --- weight paths ----------------------------------------------------------------------------

def weight_paths(ns):
    """Each model's weight paths: Keras names a weight by the name scopes it was built in (a
    Sequential's and a subclassed model's layers in the model's, a functional model's layers
    outside any)."""
    L = ns.layers
    seq = ns.Sequential([ns.Input((3,)), L.Dense(2, name="a"), L.BatchNormalization(name="bn")],
                        name="seq")
    late = ns.Sequential([L.Dense(2, name="b")], name="late")
    late.build((None, 3))
    built = L.Dense(2, name="c")
    built.build((None, 3))
    early = ns.Sequential([built], name="early")
    early.build((None, 3))
    i = ns.Input((3,))
    inner = ns.Sequential([ns.Input((3,)), L.Dense(2, name="d")], name="inner")
    func = ns.Model(i, L.Dense(1, name="e")(inner(i)), name="func")
    nested = ns.Sequential([ns.Input((3,)), ns.Sequential([L.Dense(2, name="f")], name="in2")],
                           name="outer")
    return {name: [w.path for w in model.weights] for name, model in
            [("seq", seq), ("late", late), ("early", early), ("func", func),
             ("nested", nested)]}


def test_weight_paths_are_keras_s(keras):
    ours = weight_paths(densitron)
    assert ours == weight_paths(keras)
    assert ours["seq"][:2] == ["seq/a/kernel", "seq/a/bias"]
    assert ours["func"] == ["inner/d/kernel", "inner/d/bias", "e/kernel", "e/bias"]
    model = TwoLayers(name="two")
    model.build((None, 3))
    assert [w.path for w in model.weights] == ["two/dense/kernel", "two/dense/bias",
                                               "two/dense_1/kernel", "two/dense_1/bias"]


def test_sequential_files_with_the_model_s_paths_load_both_ways(keras, tmp_path):
    x = data((4, 3))
    ours = Sequential([layers.Input((3,)), layers.Dense(2, name="a")], name="seq")
    ours.compile(optimizer="adam", loss="mse")
    ours.fit(x, data((4, 2), 1), verbose=0)
    ours.save(tmp_path / "ours.keras")
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs = keras.saving.load_model(tmp_path / "ours.keras")
    # (the layers' build_config builds them as Keras loads them: outside the model's
    # scope, as Keras loads its own files)
    assert [w.path for w in theirs.weights] == ["a/kernel", "a/bias"]
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)),
                               ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    theirs.save(tmp_path / "theirs.keras")
    back = load_model(tmp_path / "theirs.keras")
    assert [w.path for w in back.weights] == ["seq/a/kernel", "seq/a/bias"]
    np.testing.assert_allclose(back.predict(x, verbose=0), ours.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-7)
    fresh = Sequential([layers.Input((3,)), layers.Dense(2, name="a")], name="seq")
    fresh.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), ours.predict(x, verbose=0))


def test_a_called_sequentials_input_and_output_are_its_first_calls_as_keras():
    # Keras 3's Sequential keeps Layer's input/output (its first call's tensors): the
    # autoencoder's encoder comes out as Model(ae.input, ae.get_layer("encoder").output)
    # (densitron gave the Sequential's own graph: "Graph disconnected").
    enc = densitron.Sequential([densitron.Input((20,)), layers.Dense(8),
                                layers.Dense(3, name="code")], name="encoder")
    assert enc.input is enc.inputs[0]  # never called: its own graph's (Keras 3 raises)
    inp = densitron.Input((20,))
    ae = densitron.Model(inp, layers.Dense(20)(enc(inp)))
    assert enc.input is inp and enc.inputs[0] is not inp
    encoder = densitron.Model(ae.input, ae.get_layer("encoder").output)
    x = np.random.default_rng(0).standard_normal((4, 20)).astype(np.float32)
    np.testing.assert_allclose(encoder.predict(x, verbose=0), enc.predict(x, verbose=0),
                               rtol=1e-6)
    # its own graph stays reachable through inputs/outputs; input/output now cross graphs
    inner = densitron.Model(enc.inputs, enc.get_layer("code").output)
    assert inner.predict(x, verbose=0).shape == (4, 3)
    with pytest.raises(ValueError, match="Graph disconnected"):
        densitron.Model(enc.input, enc.get_layer("code").output)
