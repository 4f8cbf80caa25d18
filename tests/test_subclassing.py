"""Keras's subclassing API: a Model subclass whose call() is made of densitron layers, and a
Layer subclass made of other layers, are traced on symbolic inputs into the engine's graph;
they train, evaluate, predict, nest and save like the equivalent functional models."""

import os

os.environ.setdefault("KERAS_BACKEND", "numpy")  # as tests/test_keras_parity.py

import numpy as np
import pytest

import densitron
from densitron import layers as L
from densitron.models import Model, Sequential
from keras_guides import custom_dropout_class, recommender_net, vae_classes


def lines_of(lines):
    """A summary print_fn that appends the lines of the text it is handed to `lines`."""
    return lambda text: lines.extend(text.splitlines())


def data(rows=120, width=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, width)).astype(np.float32), rng.integers(0, 3, rows)


class Residual(L.Layer):
    """A layer made of layers: x + b(a(x)), then scaled and shifted by numbers."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.a = L.Dense(units, activation="relu")
        self.b = L.Dense(units)

    def call(self, x):
        return (x + self.b(self.a(x))) * 0.5 - 1.0


class Classifier(Model):
    def __init__(self, hidden=16, **kwargs):
        super().__init__(**kwargs)
        self.first = L.Dense(hidden, activation="relu")
        self.block = Residual(hidden)
        self.drop = L.Dropout(0.25, seed=3)
        self.head = L.Dense(3, activation="softmax")

    def call(self, inputs, training=None):
        h = self.block(self.first(inputs))
        return self.head(self.drop(h, training=training))


def functional_twin(width=8, hidden=16):
    inputs = densitron.Input((width,))
    h = L.Dense(hidden, activation="relu")(inputs)
    r = L.Dense(hidden)(L.Dense(hidden, activation="relu")(h))
    h = L.Rescaling(1.0, -1.0)(L.Rescaling(0.5)(L.Add()([h, r])))
    return Model(inputs, L.Dense(3, activation="softmax")(L.Dropout(0.25, seed=3)(h)))


def compile_(m):
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_subclassed_model_trains_like_its_functional_twin():
    x, y = data()
    densitron.utils.set_random_seed(1)
    sub = compile_(Classifier())
    sub.build((None, 8))
    densitron.utils.set_random_seed(1)
    twin = compile_(functional_twin())
    for a, b in zip(sub.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    densitron.utils.set_random_seed(2)
    hs = sub.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0)
    densitron.utils.set_random_seed(2)
    ht = twin.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0)
    assert hs.history == ht.history
    assert sub.evaluate(x, y, verbose=0) == twin.evaluate(x, y, verbose=0)
    np.testing.assert_array_equal(sub.predict(x, verbose=0), twin.predict(x, verbose=0))
    np.testing.assert_array_equal(sub(x[:3]), twin(x[:3]))
    assert sub.count_params() == twin.count_params()
    assert sub.block.count_params() == 2 * (16 * 16 + 16)
    assert len(sub.block.get_weights()) == 4


def test_built_on_first_data_and_by_build():
    x, y = data()
    m = compile_(Classifier())
    # Keras's layers of a subclassed model: its attributes' (built or not)
    assert not m.built and m.weights == []
    assert m.layers == [m.first, m.block, m.drop, m.head]
    with pytest.raises(ValueError, match="not been built.*Received"):
        m.summary()
    m.fit(x, y, epochs=1, verbose=0)  # traced on fit's first data
    assert m.built and m.input_shape == (None, 8)
    p = Classifier()
    p.build((None, 8))
    lines = []
    p.summary(print_fn=lines_of(lines))
    # the composite layer one row, as Keras shows it
    assert any("(Residual)" in ln for ln in lines) and not any("(Add)" in ln for ln in lines)
    p2 = Classifier()
    assert p2.predict(x[:4], verbose=0).shape == (4, 3)  # traced by predict
    with pytest.raises(ValueError, match="input_shape.*Received"):
        Classifier().build("784")


def test_several_inputs_and_outputs_as_dicts_and_lists():
    class TwoHeads(Model):
        def __init__(self):
            super().__init__(name="two_heads")
            self.a = L.Dense(2)
            self.b = L.Dense(3, activation="softmax")
            self.cat = L.Concatenate()

        def call(self, inputs):
            u, v = inputs["u"], inputs["v"]
            return {"reg": self.a(u), "cls": self.b(self.cat([u, v]))}

    rng = np.random.default_rng(4)
    x = {"u": rng.normal(size=(30, 3)), "v": rng.normal(size=(30, 5))}
    y = {"reg": rng.normal(size=(30, 2)), "cls": rng.integers(0, 3, 30)}
    m = TwoHeads()
    m.compile("sgd", {"reg": "mse", "cls": "sparse_categorical_crossentropy"})
    h = m.fit(x, y, epochs=1, verbose=0)
    assert set(h.history) == {"loss", "reg_loss", "cls_loss"}
    out = m.predict(x, verbose=0)
    assert out["reg"].shape == (30, 2) and out["cls"].shape == (30, 3)

    class Pair(Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(4)

        def call(self, inputs):
            left, right = inputs
            return [self.d(left), self.d(right) * self.d(left)]  # a shared layer, a product

    p = Pair()
    u = x["u"].astype(np.float32)
    outs = p.predict([u, 2 * u], verbose=0)
    assert [o.shape for o in outs] == [(30, 4), (30, 4)]
    np.testing.assert_allclose(outs[1], p.d(2 * u) * outs[0], rtol=1e-5, atol=1e-6)
    assert len(p.weights) == 2  # the one shared Dense


def test_nested_in_a_functional_model_and_in_sequential():
    x, y = data()

    class Features(Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(5, activation="tanh")

        def call(self, x):
            return -self.d(x) + 2 * self.d(x)

    inputs = densitron.Input((8,))
    outer = compile_(Model(inputs, L.Dense(3, activation="softmax")(Features()(inputs))))
    assert np.isfinite(outer.fit(x, y, epochs=1, verbose=0).history["loss"][0])
    seq = compile_(densitron.Sequential([densitron.Input((8,)), Residual(8),
                                         L.Dense(3, activation="softmax")]))
    assert np.isfinite(seq.fit(x, y, epochs=1, verbose=0).history["loss"][0])


def test_saving_a_subclassed_model(tmp_path):
    x, y = data()
    m = compile_(Classifier())
    m.fit(x, y, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "sub.keras")
    m.save(path)
    back = densitron.models.load_model(path)
    assert type(back).__name__ == "Functional"  # the traced graph
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
    wpath = os.path.join(tmp_path, "sub.weights.h5")
    m.save_weights(wpath)
    fresh = Classifier()
    fresh.build((None, 8))
    fresh.load_weights(wpath)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), m.predict(x, verbose=0))
    clone = Classifier.from_config(m.get_config())  # (Keras's: the class's constructor)
    clone.build((None, 8))
    assert type(clone) is Classifier and clone.count_params() == m.count_params()


def test_subclassing_errors():
    class Numpy(Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return np.exp(self.d(x))

    with pytest.raises(TypeError, match="symbolic.*Received"):
        Numpy().predict(np.ones((2, 3)), verbose=0)

    class OwnWeights(L.Layer):
        def build(self, shape):
            self.w = self.add_weight((shape[-1],), "zeros", name="w")

        def call(self, x):
            return x - self.w  # a weight used otherwise than by matmul, + or *

    class Holder(Model):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def call(self, x):
            return self.inner(x)

    with pytest.raises(TypeError, match="weight can be added.*Received: sub"):
        Holder(OwnWeights()).predict(np.ones((2, 3)), verbose=0)

    class Forced(Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dropout(0.5)

        def call(self, x):
            return self.d(x, training=True)

    with pytest.raises(ValueError, match="training mode.*Received: training=True"):
        Forced().predict(np.ones((2, 3)), verbose=0)
    with pytest.raises(TypeError, match="subclass of Model that defines `call\\(\\)`.*Received"):
        Model()
    with pytest.raises(TypeError, match="Received"):
        Model(inputs=densitron.Input((3,)))


def test_same_code_in_keras_predicts_the_same():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "numpy":
        pytest.skip("parity tests run Keras on its numpy backend")
    x, _ = data(rows=10)

    def classes(layers_mod, base_model, base_layer):
        class Block(base_layer):
            def __init__(self, units):
                super().__init__()
                self.a = layers_mod.Dense(units, activation="relu")
                self.b = layers_mod.Dense(units)

            def call(self, x):
                return x + self.b(self.a(x))

        class Net(base_model):
            def __init__(self):
                super().__init__()
                self.first = layers_mod.Dense(6, activation="tanh")
                self.block = Block(6)
                self.head = layers_mod.Dense(3, activation="softmax")

            def call(self, inputs, training=None):
                return self.head(self.block(self.first(inputs)))

        return Net

    ours = classes(L, Model, L.Layer)()
    ours.build((None, 8))
    theirs = classes(keras.layers, keras.Model, keras.layers.Layer)()
    theirs(x[:1])  # builds it (Keras's build() would leave the sublayers unbuilt)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_lambda_layers(tmp_path):
    x, y = data()
    scaled = densitron.Sequential([densitron.Input((8,)), L.Lambda(lambda t: t / 4.0 + 1),
                                   L.Dense(3, activation="softmax")])
    compile_(scaled)
    densitron.utils.set_random_seed(5)
    scaled.fit(x, y, epochs=1, verbose=0)
    assert [type(layer).__name__ for layer in scaled.layers] == ["Lambda", "Dense"]
    # the Dense layer sees x / 4 + 1
    kernel, bias = scaled.layers[1].get_weights()
    logits = (x / 4.0 + 1) @ kernel + bias
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(scaled.predict(x, verbose=0),
                               expected / expected.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    # saved, cloned and sent through JSON as the layers the function made
    path = os.path.join(tmp_path, "lambda.keras")
    scaled.save(path)
    back = densitron.models.load_model(path)
    assert [type(layer).__name__ for layer in back._keras_layers()] == [
        "InputLayer", "MathOp", "Rescaling", "Dense"]
    # (MathOp, densitron's own op, is no Keras layer)
    assert [type(layer).__name__ for layer in back.layers] == ["InputLayer", "Rescaling",
                                                              "Dense"]
    np.testing.assert_array_equal(back.predict(x, verbose=0), scaled.predict(x, verbose=0))
    assert densitron.models.clone_model(scaled).count_params() == scaled.count_params()
    assert densitron.models.model_from_json(scaled.to_json()).count_params() == 27

    a, b = densitron.Input((3,)), densitron.Input((3,))
    out = L.Lambda(lambda t, k: (t[0] - t[1]) * k, arguments={"k": 2.0})([a, b])
    pair = Model([a, b], out)
    u, v = np.ones((2, 3), np.float32), np.full((2, 3), 0.25, np.float32)
    np.testing.assert_allclose(pair.predict([u, v], verbose=0), (u - v) * 2)
    with pytest.raises(TypeError, match="symbolic.*Received"):
        L.Lambda(lambda t: np.tanh(t))(densitron.Input((3,)))
    with pytest.raises(TypeError, match="callable.*Received"):
        L.Lambda(3)
    with pytest.raises(ValueError, match="Lambda.*Received"):
        L.Lambda.from_config({"name": "l"})


def test_training_false_turns_dropout_and_noise_off():
    x, y = data()

    class Quiet(Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(3, activation="softmax")
            self.drop = L.Dropout(0.9)
            self.noise = L.GaussianNoise(5.0)

        def call(self, inputs, training=None):
            return self.d(self.noise(self.drop(inputs, training=False), training=False))

    densitron.utils.set_random_seed(6)
    quiet = compile_(Quiet())
    quiet.build((None, 8))
    inputs = densitron.Input((8,))
    densitron.utils.set_random_seed(6)
    plain = compile_(Model(inputs, L.Dense(3, activation="softmax")(inputs)))
    assert [type(layer).__name__ for layer in quiet.layers] == ["Dense", "Dropout",
                                                               "GaussianNoise"]
    plain.set_weights(quiet.get_weights())  # (the noise layers drew seeds before the Dense)
    densitron.utils.set_random_seed(7)
    hq = quiet.fit(x, y, epochs=1, verbose=0)
    densitron.utils.set_random_seed(7)
    hp = plain.fit(x, y, epochs=1, verbose=0)
    assert hq.history == hp.history
    class FrozenNorm(Model):
        def __init__(self):
            super().__init__()
            self.norm = L.BatchNormalization()

        def call(self, inputs):
            return self.norm(inputs, training=False)

    with pytest.raises(ValueError, match="training mode.*Received: training=False"):
        FrozenNorm().predict(np.ones((2, 3)), verbose=0)


def test_training_given_while_building_a_functional_graph_is_set_by_each_run():
    # Keras 3 records `training` given to a call on symbolic tensors, and each run of the
    # model sets it again from the run's mode (checked with Keras 3.15: a BatchNormalization
    # called with training=False while building uses batch statistics in model(x,
    # training=True)). densitron's engine does the same: the model trains exactly like one
    # built without the argument.
    x, y = data()

    def build(flag):
        densitron.utils.set_random_seed(12)
        base = densitron.Sequential([densitron.Input((8,)), L.Dense(6, activation="relu"),
                                     L.BatchNormalization(), L.Dropout(0.3, seed=2)])
        inputs = densitron.Input((8,))
        h = base(inputs, training=flag) if flag is not None else base(inputs)
        h = L.Dropout(0.2, seed=3)(h, training=flag) if flag is not None else L.Dropout(
            0.2, seed=3)(h)
        return compile_(Model(inputs, L.Dense(3, activation="softmax")(h)))

    histories = []
    for flag in (None, False, True):
        m = build(flag)
        densitron.utils.set_random_seed(13)
        histories.append(m.fit(x, y, epochs=2, batch_size=16, verbose=0).history)
    assert histories[0] == histories[1] == histories[2]


def test_time_distributed_wraps_per_step_layers():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(16, 5, 4)).astype(np.float32)
    y = rng.normal(size=(16, 2)).astype(np.float32)

    def build(wrap):
        densitron.utils.set_random_seed(9)
        inputs = densitron.Input((5, 4))
        dense = L.Dense(3, activation="relu")
        h = (L.TimeDistributed(dense) if wrap else dense)(inputs)
        m = Model(inputs, L.Dense(2)(L.GlobalAveragePooling1D()(h)))
        m.compile("adam", "mse")
        return m

    a, b = build(True), build(False)
    densitron.utils.set_random_seed(1)
    ha = a.fit(x, y, epochs=2, batch_size=4, verbose=0)
    densitron.utils.set_random_seed(1)
    hb = b.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert ha.history == hb.history
    td = L.TimeDistributed(L.Dense(3), name="td")
    back = L.TimeDistributed.from_config(td.get_config())
    assert isinstance(back.layer, L.Dense) and back.layer.units == 3 and back.name == "td"
    with pytest.raises(ValueError, match="last axis.*Received"):
        L.TimeDistributed(L.Flatten())
    with pytest.raises(ValueError, match="at least 3 dimensions.*Received"):
        L.TimeDistributed(L.Dense(2))(densitron.Input((3,)))


def test_sublayers_made_in_build():
    # Keras's other way: the model's own build() makes the sublayers, with or without
    # calling super().build(); the trace of call() follows it.
    x, y = data()

    class WithSuper(Model):
        def build(self, input_shape):
            self.hidden = [L.Dense(8, activation="relu") for _ in range(2)]
            self.head = L.Dense(3, activation="softmax")
            super().build(input_shape)

        def call(self, inputs):
            for layer in self.hidden:
                inputs = layer(inputs)
            return self.head(inputs)

    class WithoutSuper(Model):
        def build(self, input_shape):
            self.head = L.Dense(3, activation="softmax")

        def call(self, inputs):
            return self.head(inputs)

    class Child(WithSuper):
        def build(self, input_shape):
            self.note = input_shape
            super().build(input_shape)

    for cls, params in ((WithSuper, 8 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3),
                        (WithoutSuper, 8 * 3 + 3), (Child, 8 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3)):
        fitted = compile_(cls())
        fitted.fit(x, y, epochs=1, verbose=0)
        built = cls()
        built.build((None, 8))
        assert fitted.count_params() == built.count_params() == params, cls.__name__
        assert built.predict(x[:2], verbose=0).shape == (2, 3)


def _linear_classes(ns, ops):
    """Keras's custom-layer tutorial: a Linear layer with its own weights, an MLP of them."""
    class Linear(ns.layers.Layer):
        def __init__(self, units=32, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                     initializer="random_normal", trainable=True, name="w")
            self.b = self.add_weight(shape=(self.units,), initializer="random_normal",
                                     trainable=True, name="b")

        def call(self, inputs):
            return ops.matmul(inputs, self.w) + self.b

    class MLPBlock(ns.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.linear_1 = Linear(8)
            self.linear_2 = Linear(1)

        def call(self, inputs):
            return self.linear_2(ops.relu(self.linear_1(inputs)))

    return Linear, MLPBlock


def test_layers_with_weights_of_their_own():
    from densitron import ops

    rng = np.random.default_rng(20)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = x.sum(1, keepdims=True)
    Linear, MLPBlock = _linear_classes(densitron, ops)
    densitron.utils.set_random_seed(21)
    block = MLPBlock()
    inputs = densitron.Input((5,))
    m = Model(inputs, block(inputs))
    m.compile("adam", "mse")
    # the same model from Dense layers with the block's initial weights
    inputs2 = densitron.Input((5,))
    twin = Model(inputs2, L.Dense(1)(L.Dense(8, activation="relu")(inputs2)))
    twin.compile("adam", "mse")
    twin.set_weights(m.get_weights())
    assert [w.path for w in m.weights] == ["linear/w", "linear/b", "linear_1/w", "linear_1/b"]
    densitron.utils.set_random_seed(22)
    hm = m.fit(x, y, epochs=3, batch_size=16, verbose=0)
    densitron.utils.set_random_seed(22)
    ht = twin.fit(x, y, epochs=3, batch_size=16, verbose=0)
    np.testing.assert_allclose(hm.history["loss"], ht.history["loss"], rtol=1e-6)
    for a, b in zip(m.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the block's own Variables are the ones trained
    np.testing.assert_array_equal(block.linear_1.w.numpy(), m.get_weights()[0])
    assert len(block.weights) == 4 and block.count_params() == 5 * 8 + 8 + 8 + 1


def test_layers_with_weights_of_their_own_gradients_and_files(tmp_path):
    from densitron import ops
    from test_gradients_fd import fd_check

    Linear, MLPBlock = _linear_classes(densitron, ops)

    class Scaled(L.Layer):
        def build(self, shape):
            self.frozen = self.add_weight((shape[-1], 2), "ones", trainable=False, name="fixed")
            self.bias = self.add_weight((2,), "zeros", name="bias",
                                        regularizer=densitron.regularizers.l2(0.1))
            self.gate = self.add_weight((2,), "random_normal", name="gate")

        def call(self, x):
            return (self.bias + ops.matmul(ops.tanh(x), self.frozen)) * self.gate

    rng = np.random.default_rng(23)
    inputs = densitron.Input((4,))
    m = Model(inputs, Scaled()(MLPBlock()(inputs)))
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 2))
    fd_check(m, x, y, "mse")
    path = os.path.join(tmp_path, "own.keras")
    m.save(path)
    back = densitron.models.load_model(path)
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))


def test_weights_of_their_own_predict_as_in_keras():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "numpy":
        pytest.skip("parity tests run Keras on its numpy backend")
    from densitron import ops

    x = np.random.default_rng(24).normal(size=(7, 5)).astype(np.float32)
    _, ours_cls = _linear_classes(densitron, ops)
    _, theirs_cls = _linear_classes(keras, keras.ops)
    inputs = densitron.Input((5,))
    ours = Model(inputs, ours_cls()(inputs))
    kin = keras.Input((5,))
    # (Keras's numpy backend traces call() on uninitialised placeholder arrays: NumPy may warn
    # about what it finds there)
    with np.errstate(all="ignore"):
        theirs = keras.Model(kin, theirs_cls()(kin))
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_weights_of_their_own_train_alike_on_one_and_two_threads():
    from densitron import ops
    from test_threads import assert_trains_alike_on_one_and_two_threads

    class Affine(L.Layer):
        def build(self, shape):
            self.w = self.add_weight((shape[-1], 256), name="w")
            self.b = self.add_weight((256,), "random_normal", name="b")
            self.s = self.add_weight((256,), "ones", name="s")

        def call(self, x):
            return ops.relu(ops.matmul(x, self.w) + self.b) * self.s

    rng = np.random.default_rng(25)
    x, y = rng.normal(size=(512, 300)).astype(np.float32), rng.normal(size=(512, 1))

    def build():
        inputs = densitron.Input((300,))
        m = Model(inputs, L.Dense(1)(Affine()(inputs)))
        m.compile("adam", "mse")
        return m

    assert_trains_alike_on_one_and_two_threads(build, x, y, epochs=1, batch_size=128)


def test_monte_carlo_dropout_with_training_true():
    # Keras's model(x, training=True) on arrays: dropout and noise active, new noise on every
    # call and for every row; the weights, and later training, untouched.
    def build():
        densitron.utils.set_random_seed(30)
        inputs = densitron.Input((4,))
        h = L.Dropout(0.5)(L.Dense(64, activation="relu")(inputs))
        m = Model(inputs, L.Dense(1)(L.GaussianNoise(0.1)(h)))
        m.compile("adam", "mse")
        return m

    rng = np.random.default_rng(31)
    x = rng.random((3, 4)).astype(np.float32)
    m = build()
    plain = m(x)
    np.testing.assert_array_equal(m(x, training=False), plain)
    draws = np.stack([m(x, training=True) for _ in range(2000)])
    assert len({d.tobytes() for d in draws[:50]}) == 50  # every call draws anew
    # dropout and zero-mean noise before linear layers keep the mean (within 5 standard errors)
    stderr = draws.std(0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(0) - plain) < 5 * stderr + 1e-6)
    rows = m(np.repeat(x[:1], 3000, axis=0), training=True)
    assert np.unique(rows).size > 2900  # rows of one call (and of its passes) differ
    np.testing.assert_array_equal(build()(x, training=True), build()(x, training=True))
    # training afterwards is as it would have been without the noisy calls
    y = rng.random((3, 1))
    a, b = build(), build()
    a(x, training=True)
    for model in (a, b):
        densitron.utils.set_random_seed(32)
        model.fit(x, y, epochs=2, verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    inputs = densitron.Input((4,))
    with_bn = Model(inputs, L.BatchNormalization()(L.Dense(2)(inputs)))
    with pytest.raises(ValueError, match="BatchNormalization.*Received: training=True"):
        with_bn(x, training=True)


def test_a_model_subclass_with_its_own_step_methods_is_refused_not_ignored():
    # The engine runs whole steps: a train_step, compute_loss... of the user's would be
    # skipped silently; compile (and predict, for predict_step) say so instead.
    class CustomStep(densitron.Model):
        def train_step(self, data):
            raise AssertionError("not reached")

    class CustomPredict(densitron.Model):
        def __init__(self):
            super().__init__()
            self.dense = densitron.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

        def predict_step(self, data):
            raise AssertionError("not reached")

    inp = densitron.Input((4,))
    model = CustomStep(inp, densitron.layers.Dense(1)(inp))
    with pytest.raises(ValueError, match=r"Received: CustomStep defining train_step$"):
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"Received: CustomPredict defining predict_step$"):
        CustomPredict().predict(np.ones((2, 4), np.float32), verbose=0)


def test_a_python_branch_on_training_in_call_and_passing_it_on_both_follow_the_run():
    # `if training:` is traced once per mode (the engine picks the branch at each run);
    # passing `training` on to layers keeps each run's mode too.
    class Branching(densitron.layers.Layer):
        def call(self, x, training=None):
            if training:
                return x * 0.0
            return x

    class PassesOn(densitron.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.drop = densitron.layers.Dropout(0.5, seed=1)

        def call(self, x, training=None):
            return self.drop(x, training=training)

    inp = densitron.Input((4,))
    x = np.ones((64, 4), np.float32)
    branching = densitron.Model(inp, Branching()(inp))
    np.testing.assert_array_equal(branching.predict(x, verbose=0), x)
    np.testing.assert_array_equal(np.asarray(branching(x, training=True)), 0.0 * x)
    model = densitron.Model(inp, PassesOn()(inp))
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)  # inference: no dropout
    trained = model(x, training=True)
    assert (np.asarray(trained) == 0).mean() > 0.3  # training: half dropped (the rest x2)


def test_keras_io_collaborative_filtering_example_predicts_and_trains():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "numpy":
        pytest.skip("parity tests run Keras on its numpy backend")
    rng = np.random.default_rng(0)
    x = np.stack([rng.integers(0, 50, 200), rng.integers(0, 40, 200)], 1)
    y = rng.random(200).astype(np.float32)
    ours = recommender_net(densitron, L, densitron.ops)
    theirs = recommender_net(keras, keras.layers, keras.ops)
    ours.compile(loss=densitron.losses.BinaryCrossentropy(), optimizer="adam")
    ours.predict(x[:2], verbose=0)
    theirs(x[:2])
    # the same weights in the same order (Keras's: the attributes' order, not the trace's)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.weights]
    weights = [rng.normal(size=tuple(w.shape)).astype(np.float32) * 0.1 for w in theirs.weights]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    for batch_size in (64, 200):  # the batch's sum differs with the grouping, as in Keras
        np.testing.assert_allclose(ours.predict(x, batch_size=batch_size, verbose=0),
                                   theirs.predict(x, batch_size=batch_size, verbose=0),
                                   rtol=1e-5, atol=1e-6)
    p = np.clip(theirs.predict(x, batch_size=200, verbose=0)[:, 0].astype(np.float64), 1e-7,
                1 - 1e-7)
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)) + 1e-6 * sum(
        np.sum(weights[i].astype(np.float64) ** 2) for i in (0, 2))
    np.testing.assert_allclose(ours.evaluate(x, y, batch_size=200, verbose=0), loss, rtol=1e-5)
    history = ours.fit(x, y, batch_size=64, epochs=3, verbose=0, validation_split=0.2).history
    assert history["loss"][-1] < history["loss"][0]


def test_embedding_ids_from_columns_of_an_input_are_checked_there_only():
    # Column 0 holds ids below 5, column 1 anything (a float feature): only the column an
    # Embedding reads must hold its ids.
    inputs = densitron.Input((2,))
    emb = L.Flatten()(L.Embedding(5, 3)(inputs[:, 0:1]))
    model = Model(inputs, L.Dense(1)(L.Concatenate()([emb, inputs[:, 1:2]])))
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(1)
    x = np.stack([rng.integers(0, 5, 32).astype(np.float32), rng.normal(size=32) * 100], 1)
    model.fit(x, np.zeros((32, 1)), verbose=0)
    x[3, 0] = 5
    with pytest.raises(ValueError, match=r"ids must be integers in \[0, input_dim=5\)\. "
                                         r"Received: 5"):
        model.fit(x, np.zeros((32, 1)), verbose=0)
    x[3, 0] = 1.5
    with pytest.raises(ValueError, match="Received: 1.5"):
        model.predict(x, verbose=0)


def test_subclassed_weights_follow_keras_attribute_order():
    # Own weights first, then sublayers in the order set (a composite's own order inside),
    # whatever order call() uses them in.
    class Net(Model):
        def __init__(self):
            super().__init__()
            self.late = L.Dense(2)
            self.block = Residual(4)
            self.early = L.Dense(4)
            self.scale = self.add_weight(shape=(2,), initializer="ones", name="scale")

        def call(self, x):
            return self.late(self.block(self.early(x))) * self.scale

    net = Net()
    net.build((None, 3))
    shapes = [w.shape for w in net.weights]
    assert shapes == [(2,), (4, 2), (2,), (4, 4), (4,), (4, 4), (4,), (3, 4), (4,)]
    assert [w.shape for w in net.trainable_weights] == shapes
    x, _ = data(rows=16, width=3)
    net.compile(optimizer="adam", loss="mse")
    net.fit(x, np.zeros((16, 2)), verbose=0)


def test_symbolic_tensordot_and_ops_namespaces():
    a, b = densitron.Input((4,)), densitron.Input((4,))
    with pytest.raises(TypeError, match="tensordot contracts every axis.*axes=1"):
        densitron.ops.tensordot(a, b, 1)
    with pytest.raises(TypeError, match="tensordot contracts every axis.*axes=array"):
        densitron.ops.tensordot(a, b, np.zeros(3))
    assert densitron.ops.nn.sigmoid is densitron.ops.sigmoid
    assert densitron.ops.numpy.sum is densitron.ops.sum
    assert densitron.ops.linalg.inv is densitron.ops.inv
    with pytest.raises(AttributeError, match="densitron.ops.nn' has no attribute 'nope'"):
        densitron.ops.nn.nope  # noqa: B018
    model = Model([a, b], densitron.ops.tensordot(a, b, [[0, 1], [0, 1]]) + a[:, 0:1] * 0.0)
    xa, xb = np.ones((3, 4), np.float32), np.full((3, 4), 2.0, np.float32)
    np.testing.assert_allclose(model.predict([xa, xb], batch_size=3, verbose=0),
                               np.full((3, 1), 24.0))
    np.testing.assert_allclose(densitron.ops.tensordot(xa, xb, 2), 24.0)


def test_tensordot_of_a_tensor_and_a_layer_weight_is_matmul():
    class Proj(L.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 3), initializer="ones")

        def call(self, x):
            return densitron.ops.tensordot(x, self.w, axes=1)

    inputs = densitron.Input((4,))
    model = Model(inputs, Proj()(inputs))
    x, _ = data(rows=5, width=4)
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ np.ones((4, 3)), rtol=1e-6)


def test_keras_guide_vae_trains_and_samples_anew_at_every_call():
    _, VAE = vae_classes(densitron, L, densitron.ops)
    x = np.random.default_rng(3).random((640, 40)).astype(np.float32)
    losses = []
    for _ in range(2):  # built alike after the same seed: the same draws
        densitron.utils.set_random_seed(4)
        vae = VAE(40, 16, 4)
        vae.compile(densitron.optimizers.Adam(learning_rate=1e-3),
                    loss=densitron.losses.MeanSquaredError())
        losses.append(vae.fit(x, x, epochs=3, batch_size=64, verbose=0).history["loss"])
        first, second = vae.predict(x[:8], verbose=0), vae.predict(x[:8], verbose=0)
        assert np.abs(first - second).max() > 1e-3  # sampled in predict too, afresh
    assert losses[0] == losses[1] and losses[0][-1] < losses[0][0]


def test_random_normal_of_a_batch_shape_draws_standard_normals():
    Sampling, _ = vae_classes(densitron, L, densitron.ops)
    z = densitron.Input((50,))
    model = Model(z, Sampling()((z, z * 0.0)))  # z + exp(0)·ε
    zeros = np.zeros((400, 50), np.float32)
    a, b = model.predict(zeros, batch_size=64, verbose=0), model.predict(zeros, verbose=0)
    for eps in (a, b):
        assert abs(eps.mean()) < 0.02 and abs(eps.std() - 1.0) < 0.02
        assert abs(np.mean(eps ** 4) - 3.0) < 0.15  # a normal's fourth moment
    assert np.abs(a - b).min() >= 0.0 and not np.allclose(a, b)
    assert abs(np.corrcoef(a[:, 0], a[:, 1])[0, 1]) < 0.15  # columns drawn apart
    inputs = densitron.Input((3,))
    with pytest.raises(TypeError, match="normal draws values of shape.*take numbers only"):
        densitron.random.uniform(densitron.ops.shape(inputs))
    with pytest.raises(TypeError, match="batch size of a symbolic tensor is known only"):
        np.zeros(densitron.ops.shape(inputs))


def test_keras_guide_vae_computes_as_keras_without_noise():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "numpy":
        pytest.skip("parity tests run Keras on its numpy backend")
    x = np.random.default_rng(5).random((96, 40)).astype(np.float32)
    _, ours_cls = vae_classes(densitron, L, densitron.ops, stddev=0.0)
    _, theirs_cls = vae_classes(keras, keras.layers, keras.ops, stddev=0.0)
    ours, theirs = ours_cls(40, 16, 4), theirs_cls(40, 16, 4)
    ours.compile("adam", loss=densitron.losses.MeanSquaredError())
    ours.predict(x[:2], verbose=0)
    theirs(x[:2])
    weights = [np.random.default_rng(6).normal(size=tuple(w.shape)).astype(np.float32) * 0.3
               for w in theirs.weights]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    h = np.maximum(x @ weights[0] + weights[1], 0)  # the loss: MSE + the batch's KL mean
    z_mean, z_log_var = h @ weights[2] + weights[3], h @ weights[4] + weights[5]
    kl = -0.5 * np.mean(z_log_var - z_mean ** 2 - np.exp(z_log_var) + 1)
    mse = np.mean((theirs.predict(x, verbose=0) - x) ** 2)
    np.testing.assert_allclose(ours.evaluate(x, x, batch_size=96, verbose=0), mse + kl,
                               rtol=1e-5)


CustomDropout = custom_dropout_class(densitron)


def test_a_call_that_branches_on_training_is_traced_once_per_mode():
    # CustomDropout trains exactly as Dropout with the seed its SeedGenerator gives, leaves
    # its input as is in predict and evaluate, and drops in a noisy predict.
    x, y = data(rows=96)
    seed = int(np.random.default_rng(1337).integers(2 ** 62))
    results = []
    for make in (lambda: CustomDropout(0.5), lambda: L.Dropout(0.5, seed=seed)):
        densitron.utils.set_random_seed(2)
        inputs = densitron.Input((8,))
        h = make()(L.Dense(16, activation="relu")(inputs))
        model = Model(inputs, L.Dense(3, activation="softmax")(h))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0).history
        results.append((history["loss"], model.get_weights(), model.predict(x, verbose=0)))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(results[0][2], results[1][2])
    ones = np.ones((64, 8), np.float32)
    inputs = densitron.Input((8,))
    model = Model(inputs, CustomDropout(0.5)(inputs * 1.0))
    np.testing.assert_array_equal(model.predict(ones, verbose=0), ones)
    noisy = np.asarray(model(ones, training=True))
    assert set(np.unique(noisy)) == {0.0, 2.0}


def test_per_mode_branches_in_a_subclassed_model():
    # `x = ... if training else ...` in a Model subclass: the training branch's extra layers
    # act in fit only; outputs must agree in structure; add_loss is refused there.
    class Net(Model):
        def __init__(self, penalty=False):
            super().__init__()
            self.hidden = L.Dense(8, activation="relu")
            self.noise = L.GaussianNoise(5.0)
            self.out = L.Dense(3)
            self.penalty = penalty

        def call(self, x, training=None):
            h = self.hidden(x)
            if training:
                h = self.noise(h, training=True)
                if self.penalty:
                    self.add_loss(ops.mean(h))
            return self.out(h)

    from densitron import ops

    x, y = data(rows=64)
    net = Net()
    net.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
    net.fit(x, y, batch_size=16, verbose=0)
    twin = Model(net.inputs, net.out(net.hidden(net.inputs[0])))
    np.testing.assert_allclose(net.predict(x, verbose=0), twin.predict(x, verbose=0),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="branches on `training` cannot also add_loss"):
        Net(penalty=True).build((None, 8))

    class Mismatch(Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = L.Dense(2), L.Dense(3)

        def call(self, x, training=None):
            return self.a(x) if training else self.b(x)

    with pytest.raises(ValueError, match="same structure and shapes with training=True"):
        Mismatch().build((None, 8))


def test_get_layer_finds_composite_layers_and_a_subclassed_models_attributes():
    inputs = densitron.Input((8,))
    block = Residual(8, name="res_block")
    model = Model(inputs, L.Dense(2)(block(inputs)))
    assert model.get_layer("res_block") is block
    assert [layer.name for layer in model.layers][1:2] == ["res_block"]  # Keras's list
    with pytest.raises(ValueError, match="No such layer"):  # (a sublayer, as in Keras)
        model.get_layer(block.a.name)
    sub = Classifier()
    sub.build((None, 8))
    assert sub.get_layer(sub.block.name) is sub.block
    with pytest.raises(ValueError, match="No such layer: nothing"):
        model.get_layer("nothing")


class CalledOutOfOrder(L.Layer):
    """Its sublayers set in one order and called in the other: Keras's weights order (by
    attribute) is not its graph's (by call)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.second = L.Dense(8)
        self.first = L.Dense(8, activation="tanh")

    def call(self, x):
        return self.second(self.first(x))


def test_composite_model_files_resume_training_alike(tmp_path):
    # Files list weights and optimizer slots in the graph's order, which the model and the
    # model loaded from its file (whose composite layer is its sublayers) share: the loaded
    # model resumes training exactly as the original, and .weights.npz files go both ways.
    x, y = data(seed=5)
    inputs = densitron.Input((8,))
    h = L.Dense(8, activation="relu")(inputs)
    block = CalledOutOfOrder()
    model = compile_(Model(inputs, L.Dense(3, activation="softmax")(block(h))))
    assert model.weights[2] is block.second.kernel  # (Keras's order)
    model.fit(x, y, epochs=2, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras")
    loaded = densitron.models.load_model(tmp_path / "m.keras")
    assert len(loaded.layers) > len(model.layers)  # (its sublayers, listed)
    for m in (model, loaded):
        m.fit(x, y, epochs=2, verbose=0, shuffle=False)
    for a, b in zip(model._graph_weights(), loaded._graph_weights()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    model.save_weights(tmp_path / "w.weights.npz")
    fresh = densitron.models.load_model(tmp_path / "m.keras")
    fresh.load_weights(tmp_path / "w.weights.npz")
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))
    loaded.save_weights(tmp_path / "w2.weights.npz")
    model.load_weights(tmp_path / "w2.weights.npz")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


class NamedInside(L.Layer):
    """Its sublayer named as the user names it: two of them repeat the name, as in Keras."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = L.Dense(8, activation="relu", name="inner")

    def call(self, x):
        return self.inner(x) + x


def test_two_composite_layers_with_sublayers_of_one_name_build_save_and_load(tmp_path):
    x, y = data(seed=6)
    inputs = densitron.Input((8,))
    model = compile_(Model(inputs, L.Dense(3, activation="softmax", name="inner")(
        NamedInside()(NamedInside()(inputs)))))
    assert [layer.name for layer in model._graph_layers()].count("inner") == 3
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = densitron.models.load_model(tmp_path / "m.keras")
    names = [layer.name for layer in loaded.layers]
    assert len(set(names)) == len(names) and "inner" in names
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


class Mix(L.Layer):
    """call(a, b): a layer of the user's given two tensors."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d = L.Dense(3)

    def call(self, a, b):
        return self.d(a) * 0.5 + b


def test_composite_layers_take_keras_s_place_and_files_keep_registered_ones(tmp_path):
    # Keras lists a composite layer by its depth among the model's calls (both inputs before
    # it); a registered class is kept as itself in files (two tensors as two arguments),
    # an unregistered one as its sublayers' calls.
    from densitron.saving import register_keras_serializable

    a, b = densitron.Input((4,)), densitron.Input((3,))
    plain = Model([a, b], Mix()(a, b))
    assert [type(layer).__name__ for layer in plain.layers] == [
        "InputLayer", "InputLayer", "Mix"]
    x = [np.ones((2, 4), np.float32), np.full((2, 3), 2.0, np.float32)]
    plain.save(tmp_path / "flat.keras")
    flat = densitron.models.load_model(tmp_path / "flat.keras")
    assert "Mix" not in [type(layer).__name__ for layer in flat.layers]
    np.testing.assert_array_equal(flat.predict(x, verbose=0), plain.predict(x, verbose=0))
    registered = register_keras_serializable(package="densitron_test")(
        type("RegisteredMix", (Mix,), {}))
    model = Model([a, b], registered()(a, b))
    model.save(tmp_path / "kept.keras")
    kept = densitron.models.load_model(tmp_path / "kept.keras")
    assert isinstance(kept.layers[-1], registered)
    np.testing.assert_array_equal(kept.predict(x, verbose=0), model.predict(x, verbose=0))


class TwoOutputs(L.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.a, self.b = L.Dense(8), L.Dense(2)

    def call(self, x):
        return {"p": self.a(x), "q": self.b(x)}


class Outer(L.Layer):
    """A composite layer holding another, called twice in a model."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner, self.d = TwoOutputs(), L.Dense(8)

    def call(self, x):
        return self.d(self.inner(x)["p"]) + x


@pytest.mark.parametrize("kind", ["sequential", "shared", "two_outputs"])
def test_composite_layers_save_and_load_in_every_placement(kind, tmp_path):
    x, y = data(seed=7)
    if kind == "sequential":
        model = Sequential([densitron.Input((8,)), Outer(), L.Dense(3, activation="softmax")])
    elif kind == "shared":
        inputs, block = densitron.Input((8,)), Outer()
        model = Model(inputs, L.Dense(3, activation="softmax")(block(block(inputs))))
    else:
        inputs = densitron.Input((8,))
        out = TwoOutputs()(inputs)
        model = Model(inputs, L.Dense(3, activation="softmax")(L.Concatenate()(
            [out["p"], out["q"]])))
    compile_(model).fit(x, y, epochs=1, verbose=0)
    lines = []
    model.summary(print_fn=lines_of(lines))
    assert any("(Outer)" in ln or "(TwoOutputs)" in ln for ln in lines)
    model.save(tmp_path / "m.keras")
    loaded = densitron.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    loaded.fit(x, y, epochs=1, verbose=0, shuffle=False)  # (its optimizer's state too)
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_layer_built_by_hand_stays_built_with_its_build_config():
    # The subclassing guide's Linear: build() without super().build(), called by hand; its
    # first call must not build it again (it made a second kernel and dropped the first).
    class Linear(L.Layer):
        def __init__(self, units=4):
            super().__init__()
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                     initializer="random_normal")

        def call(self, inputs):
            return densitron.ops.matmul(inputs, self.w)

    layer = Linear()
    assert not layer.built and layer.get_build_config() is None
    layer.build((None, 3))
    assert layer.built and len(layer.weights) == 1
    assert layer.get_build_config() == {"input_shape": (None, 3)}
    kernel = layer.w.numpy().copy()
    inp = L.Input((3,))
    model = Model(inp, layer(inp))
    assert len(model.weights) == 1
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ kernel, rtol=1e-6)
    other = Linear()
    other.build_from_config(layer.get_build_config())
    assert other.built and other.w.shape == (3, 4)

    class TwoArgs(L.Layer):  # the saving guide's build(input_shape, layer_init)
        def build(self, input_shape, layer_init):
            self.w = self.add_weight(shape=(input_shape[-1], 2), initializer=layer_init)

        def call(self, inputs):
            return densitron.ops.matmul(inputs, self.w)

    two = TwoArgs()
    two.build(input_shape=(None, 5), layer_init="ones")
    assert two.get_build_config() == {
        "shapes_dict": {"input_shape": (None, 5), "layer_init": "ones"}}
    np.testing.assert_allclose(two(np.ones((1, 5), np.float32)), [[5.0, 5.0]])


def test_automatic_config_of_a_layer_class_without_get_config(tmp_path):
    # Keras 3's: a custom layer that defines no get_config has its constructor's plain
    # arguments in its config, so from_config, clone_model and files rebuild it.
    @densitron.saving.register_keras_serializable(package="tests_auto")
    class Scale(L.Layer):
        def __init__(self, factor, offsets=(1.0, 2.0), note=None, **kwargs):
            super().__init__(**kwargs)
            self.factor, self.offsets, self.note = factor, offsets, note

        def call(self, x):
            return x * self.factor + self.offsets[0]

    layer = Scale(3.0, note="n", name="s")
    # (the arguments given, as Keras keeps them; defaults come back as defaults)
    assert layer.get_config() == {"name": "s", "factor": 3.0, "note": "n", "trainable": True,
                                  "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                            "config": {"name": "float32"},
                                            "registered_name": None}}
    again = Scale.from_config(layer.get_config())
    assert (again.factor, again.note, again.name) == (3.0, "n", "s")

    class Holder(L.Layer):  # an argument that is no plain value: no automatic config
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

    assert set(Holder(L.Dense(2)).get_config()) == {"trainable", "dtype"}
    inp = L.Input((2,))
    model = Model(inp, Scale(2.0)(inp))
    path = str(tmp_path / "auto.keras")
    model.save(path)
    back = densitron.models.load_model(path)
    assert type(back.layers[1]) is Scale and back.layers[1].factor == 2.0
    np.testing.assert_allclose(back.predict(np.ones((1, 2)), verbose=0), [[3.0, 3.0]])


def test_a_layer_of_ones_own_called_with_several_tensors():
    # keras.io's Deep & Cross layer call(self, x0, x): build(input_shape) gets the first
    # argument's shape, as in Keras (it got the list of both); build(x0_shape, x_shape) gets
    # each by name; a tensor given by keyword; the same layer on arrays
    class Cross(L.Layer):
        def build(self, input_shape):
            self.dense = L.Dense(input_shape[-1], kernel_initializer="ones")

        def call(self, x0, x):
            return x0 * self.dense(x) + x

    class Named(L.Layer):
        def build(self, x0_shape, x_shape):
            self.shapes = (x0_shape, x_shape)

        def call(self, x0, x):
            return x0 + x

    class Gate(L.Layer):
        def call(self, inputs, context):
            return inputs * densitron.ops.sigmoid(context)

    a, b = L.Input((3,)), L.Input((3,))
    cross = Cross()
    model = Model([a, b], cross(a, b))
    x0, x = np.full((2, 3), 2.0, np.float32), np.ones((2, 3), np.float32)
    expected = x0 * x.sum(axis=1, keepdims=True) + x  # (a ones kernel: each unit sums x)
    np.testing.assert_allclose(model.predict([x0, x], verbose=0), expected, rtol=1e-6)
    np.testing.assert_allclose(cross(x0, x), expected, rtol=1e-6)
    named = Named()
    named(a, b)
    assert named.shapes == ((None, 3), (None, 3))
    gated = Model([a, b], Gate()(a, context=b))
    np.testing.assert_allclose(gated.predict([x0, x], verbose=0),
                               x0 / (1.0 + np.exp(-x)), rtol=1e-6)
    with pytest.raises(TypeError, match="Received"):
        Gate()(a, context=b, other=3)


def test_a_layer_of_ones_own_called_on_a_dict_of_tensors(tmp_path):
    # The structured-data example's Classifier(features): call() reads its inputs by name;
    # build gets the dict of their shapes; a registered one is saved as its sublayers' calls
    @densitron.saving.register_keras_serializable(package="tests_dict")
    class Classifier(L.Layer):
        def build(self, input_shape):
            self.shapes = input_shape
            self.dense = L.Dense(1, kernel_initializer="ones")

        def call(self, inputs):
            return self.dense(L.Concatenate()([inputs["a"], inputs["b"]]))

    feats = {"a": L.Input((1,), name="a"), "b": L.Input((2,), name="b")}
    layer = Classifier()
    model = Model(feats, layer(feats))
    assert layer.shapes == {"a": (None, 1), "b": (None, 2)}
    data = {"a": np.ones((2, 1), np.float32), "b": np.full((2, 2), 2.0, np.float32)}
    np.testing.assert_allclose(model.predict(data, verbose=0), [[5.0], [5.0]])
    path = str(tmp_path / "dict.keras")
    model.save(path)
    np.testing.assert_allclose(densitron.models.load_model(path).predict(data, verbose=0),
                               [[5.0], [5.0]])


def test_a_built_in_layers_subclass_calls_super_call(tmp_path):
    # The saving guide's LayerWithCustomVariables: class MyDense(Dense) whose call() wraps
    # super().call(inputs) (Dense had no call)
    @densitron.saving.register_keras_serializable(package="tests_super")
    class ScaledDense(L.Dense):
        def call(self, inputs):
            return super().call(inputs) * 2.0

    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    inp = L.Input((4,))
    layer = ScaledDense(3, activation="relu")
    model = Model(inp, layer(inp))
    assert [type(m).__name__ for m in model.layers] == ["InputLayer", "ScaledDense"]
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               2.0 * np.maximum(x @ kernel + bias, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer(x), 2.0 * np.maximum(x @ kernel + bias, 0), rtol=1e-5,
                               atol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.ones((6, 3)), epochs=2, verbose=0)
    assert not np.allclose(layer.get_weights()[0], kernel)  # it trains
    path = str(tmp_path / "scaled.keras")
    model.save(path)
    back = densitron.models.load_model(path)
    assert type(back.layers[1]) is ScaledDense
    np.testing.assert_allclose(back.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
