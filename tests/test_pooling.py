"""Global pooling layers: values against NumPy, backward against finite differences (mean and
max, both data formats, 1 and 2 threads), the max's gradient shared between ties, errors and
configs. Parity with Keras itself is in test_keras_parity."""

import numpy as np
import pytest

import densitron
from densitron import layers
from densitron.models import Model
from test_gradients_fd import fd_check
from test_threads import assert_trains_alike_on_one_and_two_threads


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

    def build():
        inp = layers.Input(shape=(16, 32))
        h = layers.Dense(64, activation="relu")(inp)
        a = layers.GlobalAveragePooling1D()(h)
        b = layers.GlobalMaxPooling1D()(h)
        out = layers.Dense(10, activation="softmax")(layers.Concatenate()([a, b]))
        model = Model(inp, out)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model

    assert_trains_alike_on_one_and_two_threads(build, x, y, batch_size=128, epochs=2)


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
    assert config == {"name": "p", "trainable": True, "data_format": "channels_first",
                      "keepdims": True, "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                                  "config": {"name": "float32"},
                                                  "registered_name": None}}
    clone = layers.deserialize(layers.serialize(layer))
    assert type(clone) is layers.GlobalMaxPooling1D and clone.get_config() == config


# --- Embedding(mask_zero=True): id 0 is padding, left out of GlobalAveragePooling1D's mean ---

def _masked_model(steps=6, vocab=9, units=4, data_format="channels_last"):
    inp = layers.Input(shape=(steps,), dtype="int32")
    h = layers.Embedding(vocab, 3, mask_zero=True)(inp)
    h = layers.Dropout(0.0)(layers.Dense(units, activation="tanh",
                                         bias_initializer="random_normal")(h))
    pooled = layers.GlobalAveragePooling1D(data_format=data_format)(h)
    return Model(inp, layers.Dense(3, activation="softmax")(pooled))


def _padded_ids(rows, steps=6, vocab=9, seed=6):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(rows, steps))
    for r, n in enumerate(rng.integers(1, steps + 1, size=rows)):
        ids[r, n:] = 0  # padded after n tokens; a few rows have ids 0 inside too
    ids[::5, 0] = 0
    ids[::5, 1] = np.maximum(ids[::5, 1], 1)
    return ids


def test_masked_mean_against_numpy():
    model = _masked_model()
    ids = _padded_ids(23)
    table, k, b, *_ = model.get_weights()
    h = np.tanh(table[ids].astype(np.float64) @ k + b)
    keep = (ids != 0)[:, :, None]
    pooled = (h * keep).sum(axis=1) / keep.sum(axis=1)
    k2, b2 = model.get_weights()[3:]
    z = pooled @ k2 + b2
    want = np.exp(z - z.max(axis=1, keepdims=True))
    want /= want.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict(ids, verbose=0), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_masked_mean_backward_against_finite_differences(threads, data_format):
    rng = np.random.default_rng(7)
    densitron.set_num_threads(threads)
    # channels_first pools (batch, steps, units) over the units axis, which Keras's mask (one
    # entry per step) then covers: units = steps
    steps = 6 if data_format == "channels_last" else 4
    model = _masked_model(steps=steps, units=steps, data_format=data_format)
    ids = _padded_ids(40, steps=steps)
    fd_check(model, ids, np.eye(3)[rng.integers(0, 3, 40)], "categorical_crossentropy")


def test_masked_mean_two_threads_bitwise_like_one():
    ids = _padded_ids(1024, steps=32, vocab=50, seed=8)
    y = np.eye(3, dtype=np.float32)[np.random.default_rng(9).integers(0, 3, 1024)]

    def build():
        inp = layers.Input(shape=(32,), dtype="int32")
        h = layers.Dense(128, activation="relu")(layers.Embedding(50, 64, mask_zero=True)(inp))
        out = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling1D()(h))
        model = Model(inp, out)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model

    assert_trains_alike_on_one_and_two_threads(build, ids, y, batch_size=256, epochs=2)


def test_masks_are_dropped_passed_or_refused_as_keras_does():
    inp = layers.Input(shape=(5,), dtype="int32")
    emb = layers.Embedding(7, 3, mask_zero=True)(inp)
    assert emb._mask is inp
    assert layers.LayerNormalization()(layers.Dense(2)(emb))._mask is inp  # passed on
    with pytest.warns(UserWarning, match="destroy the mask"):
        flat = layers.Flatten()(emb)  # Keras warns and drops it
    assert flat._mask is None
    with pytest.warns(UserWarning, match="destroy the mask"):
        layers.GlobalMaxPooling1D()(emb)
    assert layers.GlobalAveragePooling1D()(emb)._mask is None  # consumed
    assert layers.Add()([emb, layers.Dense(3)(emb)])._mask is inp  # Keras's OR of one mask
    unmasked = layers.Input(shape=(5, 3))
    assert layers.Add()([emb, unmasked])._mask is None  # Keras: no mask when one has none
    for call in (lambda: layers.BatchNormalization()(emb),
                 lambda: layers.Softmax()(emb)):
        with pytest.raises(ValueError, match="Received: "):
            call()
    assert Model(inp, emb).outputs[0]._mask is inp  # (weighs the loss: test_loss_masking.py)
    with pytest.raises(ValueError, match="Received: "):  # 3 pooled values, 5 mask entries
        layers.GlobalAveragePooling1D(data_format="channels_first")(emb)
    # a nested model takes the mask in and its layers pass it on (test_loss_masking.py)
    inner_in = layers.Input(shape=(5, 3))
    inner = Model(inner_in, layers.Dense(2)(inner_in))
    assert inner(emb)._mask is not None
    assert inner(unmasked)._mask is None


def test_a_fully_padded_row_pools_to_nan_as_keras():
    model = _masked_model()
    out = model.predict(np.array([[0, 0, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0]]), verbose=0)
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()
