"""Keras 3's `trainable`: setting it on a layer or model sets the flags of the weights the
layer created trainable and, recursively, of its sublayers (a model's layers, a composite
layer's); a model trains the weights whose flags are set (none when the model itself is frozen);
a frozen BatchNormalization runs in inference mode in training too. The expected counts are
Keras 3.15's (JAX backend) for the same code."""

import densitron
import numpy as np
import pytest
from densitron import layers as L
from densitron.models import Model, Sequential


def test_freezing_a_model_freezes_its_nested_models_and_layers():
    inner = Sequential([densitron.Input((3,)), L.Dense(3), L.Dense(3)])
    model = Sequential([densitron.Input((3,)), inner, L.Dense(3)])
    model.trainable = False
    assert not inner.trainable and not inner.layers[0].trainable
    assert not model.layers[1].trainable
    assert model.trainable_weights == [] and len(model.non_trainable_weights) == 6
    model.trainable = True  # every layer again, as Keras
    assert inner.trainable and all(layer.trainable for layer in inner.layers)
    assert len(model.trainable_weights) == 6


def test_a_layer_unfrozen_inside_a_frozen_model_trains():
    # Keras trains the weights whose flags are set: inner's second Dense, the head.
    inner = Sequential([densitron.Input((3,)), L.Dense(3), L.Dense(3)])
    inp = densitron.Input((3,))
    model = Model(inp, L.Dense(1)(inner(inp)))
    inner.trainable = False
    inner.layers[1].trainable = True
    assert not inner.trainable and inner.trainable_weights == []
    assert len(model.trainable_weights) == 4
    model.compile("sgd", "mse")
    before = model.get_weights()
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(16, 3)), rng.normal(size=(16, 1)), verbose=0)
    moved = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
    assert moved == [False, False, True, True, True, True]


class Block(L.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.a = L.Dense(4, activation="relu")
        self.rest = [L.Dense(4)]

    def call(self, x):
        return self.rest[0](self.a(x))


def test_freezing_a_composite_layer_freezes_its_sublayers():
    block = Block()
    inp = densitron.Input((3,))
    model = Model(inp, L.Dense(1)(block(inp)))
    block.trainable = False
    assert not block.a.trainable and not block.rest[0].trainable
    assert block.trainable_weights == [] and len(model.trainable_weights) == 2
    model.compile("sgd", "mse")
    before = [w.copy() for w in block.get_weights()]
    rng = np.random.default_rng(1)
    model.fit(rng.normal(size=(16, 3)), rng.normal(size=(16, 1)), verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, block.get_weights()))
    block.a.trainable = True  # Keras: the model trains a's weights, the block lists none
    assert block.trainable_weights == [] and len(model.trainable_weights) == 4


def test_weight_flags():
    inp = densitron.Input((3,))
    frozen = L.Dense(2, trainable=False)
    Model(inp, frozen(inp))
    assert [v.trainable for v in frozen.weights] == [False, False]
    bn = L.BatchNormalization()
    Model(inp, bn(inp))
    bn.trainable = False
    assert [v.trainable for v in bn.weights] == [False] * 4
    bn.trainable = True  # the moving statistics stay non-trainable
    assert [v.trainable for v in bn.weights] == [True, True, False, False]
    dense = L.Dense(2)
    model = Model(inp, dense(inp))
    dense.kernel.trainable = False
    assert model.trainable_weights == [dense.bias]
    model.compile("sgd", "mse")
    kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
    assert np.array_equal(kernel, dense.kernel.numpy())
    assert not np.array_equal(bias, dense.bias.numpy())


def test_a_loaded_model_keeps_its_layers_flags(tmp_path):
    inp = densitron.Input((3,))
    first = L.Dense(2, name="first")
    model = Model(inp, L.Dense(1, name="second")(first(inp)))
    first.trainable = False
    model.save(tmp_path / "m.keras")
    loaded = densitron.models.load_model(tmp_path / "m.keras")
    assert [layer.trainable for layer in loaded.layers[1:]] == [False, True]
    assert len(loaded.trainable_weights) == 2
    model.trainable = False
    model.save(tmp_path / "frozen.keras")
    loaded = densitron.models.load_model(tmp_path / "frozen.keras")
    assert not loaded.trainable and loaded.trainable_weights == []


def bn_model(seed=2):
    rng = np.random.default_rng(seed)
    inp = densitron.Input((4,))
    first, bn = L.Dense(3, bias_initializer="random_normal"), L.BatchNormalization()
    head = L.Dense(2)
    model = Model(inp, head(bn(first(inp))))
    bn.set_weights([rng.uniform(0.5, 2.0, 3).astype(np.float32),
                    rng.normal(size=3).astype(np.float32),
                    rng.normal(size=3).astype(np.float32),
                    rng.uniform(0.5, 3.0, 3).astype(np.float32)])
    return model, first, bn, head


def test_frozen_batch_normalization_trains_in_inference_mode():
    # One full-batch SGD step against float64 NumPy: the moving statistics normalize the
    # batch, stay as they are, and the gradient reaches the Dense before the layer through
    # gamma/sqrt(moving_variance + epsilon) alone.
    model, first, bn, head = bn_model()
    bn.trainable = False
    model.compile(densitron.optimizers.SGD(0.1), "mse")
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(8, 4)), rng.normal(size=(8, 2))
    w1, b1 = (v.astype(np.float64) for v in first.get_weights())
    gamma, beta, mm, mv = (v.astype(np.float64) for v in bn.get_weights())
    w2, b2 = (v.astype(np.float64) for v in head.get_weights())
    h = x @ w1 + b1
    scale = gamma / np.sqrt(mv + bn.epsilon)
    z = (h - mm) * scale + beta
    out = z @ w2 + b2
    loss = np.mean((out - y) ** 2)
    d_out = 2 * (out - y) / out.size
    d_h = (d_out @ w2.T) * scale
    hist = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(hist.history["loss"][0], loss, rtol=1e-5)
    np.testing.assert_allclose(first.get_weights()[0], w1 - 0.1 * x.T @ d_h, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(head.get_weights()[0], w2 - 0.1 * z.T @ d_out, rtol=1e-5,
                               atol=1e-6)
    assert np.array_equal(bn.get_weights()[2], mm.astype(np.float32))
    assert np.array_equal(bn.get_weights()[1], beta.astype(np.float32))  # frozen too
    # unfrozen (and compiled again, as Keras asks): batch statistics again
    bn.trainable = True
    model.compile(densitron.optimizers.SGD(0.1), "mse")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert not np.array_equal(bn.get_weights()[2], mm.astype(np.float32))


@pytest.mark.parametrize("nested", [False, True])
def test_a_frozen_base_model_keeps_its_batch_statistics(nested):
    # The transfer-learning recipe: base.trainable = False freezes the BatchNormalization
    # inside it too, so fitting the head leaves every weight of the base as it was.
    rng = np.random.default_rng(4)
    bi = densitron.Input((6,))
    base = Model(bi, L.Dense(8, activation="relu")(L.BatchNormalization()(L.Dense(8)(bi))))
    inp = densitron.Input((6,))
    feats = base(inp) if nested else base.output
    model = Model(inp if nested else bi, L.Dense(3, activation="softmax")(feats))
    for layer in (base.layers if nested else model.layers[:-1]):
        layer.trainable = False
    if nested:
        base.trainable = False
    model.compile("adam", "sparse_categorical_crossentropy")
    before = [w.copy() for w in base.get_weights()]
    model.fit(rng.normal(2, 3, (64, 6)), rng.integers(0, 3, 64), batch_size=16, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, base.get_weights()))


def test_freezing_after_fit_takes_effect_without_a_new_compile():
    # Keras asks for compile() after changing `trainable`; densitron's engine ignored a layer
    # frozen or unfrozen after its first fit. Now it compiles again itself, the optimizer's
    # state of the weights that go on training carried over (Adam's steps go on counting).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.normal(size=(64, 1)).astype(np.float32)
    inp = L.Input((4,))
    first, second = L.Dense(8, activation="tanh"), L.Dense(1)
    model = Model(inp, second(first(inp)))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    steps = int(model.optimizer.iterations)
    first.trainable = False
    frozen = first.get_weights()
    before = second.get_weights()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(first.get_weights(), frozen):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(second.get_weights()[0], before[0])
    assert int(model.optimizer.iterations) == steps + 4
    first.trainable = True
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert not np.allclose(first.get_weights()[0], frozen[0])
