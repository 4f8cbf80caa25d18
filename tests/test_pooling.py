"""Global pooling layers: values against NumPy, backward against finite differences (mean and
max, both data formats, 1 and 2 threads), the max's gradient shared between ties, errors and
configs. Parity with Keras itself is in test_keras_parity."""

import numpy as np
import pytest

import densitron
from densitron import layers
from densitron.models import Model
from test_gradients_fd import fd_check


@pytest.mark.parametrize("cls,reduce", [
    (layers.GlobalAveragePooling1D, np.mean), (layers.GlobalMaxPooling1D, np.max)])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_values_against_numpy(cls, reduce, data_format, keepdims):
    x = np.random.default_rng(1).normal(size=(37, 9, 5)).astype(np.float32)
    inp = layers.Input(shape=(9, 5))
    out = cls(data_format=data_format, keepdims=keepdims)(inp)
    axis = 1 if data_format == "channels_last" else 2
    want = reduce(x.astype(np.float64), axis=axis, keepdims=keepdims)
    assert out.shape == (None, *want.shape[1:])
    np.testing.assert_allclose(Model(inp, out).predict(x, verbose=0), want, rtol=1e-6,
                               atol=1e-6)


@pytest.mark.parametrize("cls", [layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_2d_values_against_numpy(cls, data_format):
    x = np.random.default_rng(2).normal(size=(11, 4, 3, 6)).astype(np.float32)
    inp = layers.Input(shape=(4, 3, 6))
    out = cls(data_format=data_format)(inp)
    reduce = np.max if cls is layers.GlobalMaxPooling2D else np.mean
    axes = (1, 2) if data_format == "channels_last" else (2, 3)
    np.testing.assert_allclose(Model(inp, out).predict(x, verbose=0),
                               reduce(x.astype(np.float64), axis=axes), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cls", [layers.GlobalAveragePooling1D, layers.GlobalMaxPooling1D])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_backward_against_finite_differences(threads, cls, data_format):
    rng = np.random.default_rng(3)
    densitron.set_num_threads(threads)
    inp = layers.Input(shape=(6, 4))
    h = layers.Dense(5, activation="tanh", bias_initializer="random_normal")(inp)
    out = layers.Dense(3, activation="softmax")(cls(data_format=data_format)(h))
    y = np.eye(3)[rng.integers(0, 3, 64)]
    fd_check(Model(inp, out), rng.normal(size=(64, 6, 4)), y, "categorical_crossentropy")


def test_two_threads_train_bitwise_like_one():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(512, 16, 32)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 512)]
    results = []
    for threads in (1, 2):
        densitron.set_num_threads(threads)
        densitron.utils.set_random_seed(5)  # the same initial weights, a fresh optimizer
        inp = layers.Input(shape=(16, 32))
        h = layers.Dense(64, activation="relu")(inp)
        a = layers.GlobalAveragePooling1D()(h)
        b = layers.GlobalMaxPooling1D()(h)
        out = layers.Dense(10, activation="softmax")(layers.Concatenate()([a, b]))
        model = Model(inp, out)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        h = model.fit(x, y, batch_size=128, epochs=2, verbose=0, profile=True)
        assert len(h.profile["barrier_waits"]) == (2 if threads == 2 else 0)  # split or not
        results.append((h.history["loss"], model.get_weights()))
    assert results[0][0] == results[1][0]
    for p, q in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(p, q)


def test_max_gradient_is_shared_between_ties():
    # Table rows 1 and 2 are equal: ids [1, 2] tie at the maximum, and each row's gradient is
    # half of what one row would take (JAX and TensorFlow split a max's gradient so).
    table = np.zeros((4, 3), np.float32)
    table[1] = table[2] = [0.5, -1.0, 2.0]
    table[3] = [-5.0, -5.0, -5.0]
    inp = layers.Input(shape=(3,))
    emb = layers.Embedding(4, 3)
    pooled = layers.GlobalMaxPooling1D()(emb(inp))
    dense = layers.Dense(1, use_bias=False)
    model = Model(inp, dense(pooled))
    emb.set_weights([table])
    dense.set_weights([np.array([[1.0], [2.0], [3.0]], np.float32)])
    model.compile(optimizer="sgd", loss="mse")
    grads = model._compute_gradients(np.array([[1, 2, 3]]), np.zeros((1, 1), np.float32))
    # loss = z², z = pooled · k = 0.5 - 2 + 6 = 4.5: dL/dpooled = 2·4.5·k
    dpooled = 2 * 4.5 * np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(grads[0][1], dpooled / 2, rtol=1e-6)
    np.testing.assert_allclose(grads[0][2], dpooled / 2, rtol=1e-6)
    np.testing.assert_array_equal(grads[0][3], 0.0)


@pytest.mark.parametrize("make,shape", [
    (lambda: layers.GlobalAveragePooling1D(), (4,)),
    (lambda: layers.GlobalMaxPooling2D(), (4, 3)),
    (lambda: layers.GlobalAveragePooling1D(data_format="channels_middle"), None),
])
def test_bad_input_raises(make, shape):
    with pytest.raises(ValueError, match="Received: "):
        layer = make()
        layer(layers.Input(shape=shape))


def test_config_round_trip_and_aliases():
    layer = layers.GlobalMaxPool1D(data_format="channels_first", keepdims=True, name="p")
    assert type(layer) is layers.GlobalMaxPooling1D
    config = layer.get_config()
    assert config == {"name": "p", "trainable": True, "dtype": "float32",
                      "data_format": "channels_first", "keepdims": True}
    clone = layers.deserialize(layers.serialize(layer))
    assert type(clone) is layers.GlobalMaxPooling1D and clone.get_config() == config
