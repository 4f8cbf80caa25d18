"""float64, int32, int64 and uint8 inputs are read as they are: the engine converts each row to
float32 as it gathers it (rounding as NumPy's astype would), so no converted copy of x is made.
Every result must be bit for bit the one of the float32 copy."""

import tracemalloc

import densitron
import numpy as np
import pytest
from densitron import layers
from densitron.layers import Dense, Input
from densitron.models import Model, Sequential


TYPES = ["float64", "int32", "int64", "uint8"]


def data(dtype="float64", rows=300, width=20, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "float64":  # values that are not float32 values: the rounding must match
        x = rng.normal(size=(rows, width)) * (1 + 1e-9)
    elif dtype == "uint8":
        x = rng.integers(0, 256, (rows, width)).astype(np.uint8)
    else:  # integers beyond float32's 24 bits round too
        x = rng.integers(-300, 300, (rows, width)).astype(dtype)
        x[::7, 3] = 16777217 * (1 + np.arange(len(x[::7])) % 3)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, rows)]
    return x, y


def model(seed=1):
    densitron.utils.set_random_seed(seed)
    inputs = Input(shape=(20,))
    h = Dense(16, activation="relu")(inputs)
    m = Model(inputs, Dense(3, activation="softmax")(h))
    m.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return m


def assert_same_weights(a, b):
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("dtype", TYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_training_on_an_input_type_is_training_on_its_float32_copy(threads, dtype):
    x64, y = data(dtype)
    x32 = x64.astype(np.float32)
    if dtype != "uint8":
        assert not np.array_equal(x64, x32)
    densitron.set_num_threads(threads)
    try:
        a, b = model(), model()
        densitron.utils.set_random_seed(7)  # (the same shuffles for both)
        ha = a.fit(x64, y, batch_size=32, epochs=2, validation_split=0.2, verbose=0)
        densitron.utils.set_random_seed(7)
        hb = b.fit(x32, y, batch_size=32, epochs=2, validation_split=0.2, verbose=0)
        assert ha.history == hb.history
        assert_same_weights(a, b)
        np.testing.assert_array_equal(a.predict(x64, verbose=0), b.predict(x32, verbose=0))
        assert a.evaluate(x64, y, verbose=0) == b.evaluate(x32, y, verbose=0)
        # one batch, unshuffled: train_on_batch and test_on_batch
        a.train_on_batch(x64[:50], y[:50])
        b.train_on_batch(x32[:50], y[:50])
        assert_same_weights(a, b)
        assert a.test_on_batch(x64, y) == b.test_on_batch(x32, y)
    finally:
        densitron.set_num_threads(2)


@pytest.mark.parametrize("dtype", TYPES)
def test_fit_makes_no_float32_copy_of_x(dtype):
    x64, y = data(dtype, rows=20000)
    m = model()
    m.fit(x64[:100], y[:100], verbose=0)
    tracemalloc.start()
    try:
        m.fit(x64, y, batch_size=64, epochs=1, verbose=0)
        m.predict(x64, verbose=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the float32 copy alone would be 1.6 MB; predict's output is 240 KB
    assert peak < x64.size * 4 / 2, peak


def test_nan_in_float64_x_is_found_as_in_float32():
    x64, y = data()
    x64[123, 4] = np.nan
    m = model()
    with pytest.raises(ValueError, match="row 123"):
        m.fit(x64, y, batch_size=32, verbose=0)
    with pytest.raises(ValueError, match="row 123"):
        m.evaluate(x64, y, verbose=0)
    out = m.predict(x64, verbose=0)
    assert np.isnan(out[123]).all() and np.isfinite(np.delete(out, 123, axis=0)).all()


def test_float64_in_other_layouts_and_shapes():
    x64, _ = data()
    x32 = x64.astype(np.float32)
    m = model()
    ref = m.predict(x32, verbose=0)
    for xv in (np.asfortranarray(x64), x64[:, ::1], x64.reshape(300, 4, 5)):
        if xv.ndim == 3:
            seq = Sequential([Input((4, 5)), layers.Flatten()] + m.layers[1:])
            np.testing.assert_array_equal(seq.predict(xv, verbose=0), ref)
        else:
            np.testing.assert_array_equal(m.predict(xv, verbose=0), ref)


@pytest.mark.parametrize("dtype", TYPES)
def test_embedding_ids_of_every_type(dtype):
    ids = np.array([[0, 3, 9], [2, 2, 1]], dtype=dtype)
    m = Sequential([Input((3,)), layers.Embedding(10, 4), layers.GlobalAveragePooling1D(),
                    Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    np.testing.assert_array_equal(m.predict(ids, verbose=0),
                                  m.predict(ids.astype(np.float32), verbose=0))
    m.fit(ids, np.ones(2), verbose=0)
    bad = [ids * 10]
    if dtype == "float64":
        bad.append(ids + 1e-9)
    elif dtype != "uint8":
        bad.append(ids - 1)
    for b in bad:
        with pytest.raises(ValueError, match="integers in \\[0, input_dim=10\\)"):
            m.fit(b, np.ones(2), verbose=0)
        with pytest.raises(ValueError, match="integers in \\[0, input_dim=10\\)"):
            m.predict(b, verbose=0)


def test_a_list_of_one_array_is_the_one_input_and_output():
    """Keras takes [x] (and (x,), [y]) for a model of one input (output), a Functional built
    on [input] included; a plain nested list of numbers stays one array."""
    rng = np.random.default_rng(3)
    x = rng.random((9, 5)).astype(np.float32)
    y = rng.random((9, 2)).astype(np.float32)
    for inputs in (Input((5,)), None):
        i = inputs if inputs is not None else Input((5,))
        model = Model([i] if inputs is None else i, Dense(2)(i))
        want = model.predict(x, verbose=0)
        np.testing.assert_array_equal(model.predict([x], verbose=0), want)
        np.testing.assert_array_equal(model.predict((x,), verbose=0), want)
        model.compile("sgd", "mse")
        assert model.evaluate([x], [y], verbose=0) == model.evaluate(x, y, verbose=0)
        model.fit([x], [y], epochs=1, verbose=0)
        assert model.predict([[0.5] * 5], verbose=0).shape == (1, 2)
    with pytest.raises(ValueError, match="expected shape"):
        model.predict([x, x], verbose=0)


def test_scalar_features_of_input_shape_empty():
    # keras.io's Wide & Deep / structured-data inputs: Input(shape=()) is one value a sample
    # (ids for an Embedding or CategoryEncoding, a number reshaped to a column), fed 1-D data
    ids = np.array([0, 3, 1, 4, 2, 3], np.int64)
    num = np.linspace(-1.0, 1.0, 6).astype(np.float32)
    cat = densitron.Input(shape=(), name="cat", dtype="int32")
    val = densitron.Input(shape=(), name="num")
    assert cat.shape == (None,) and cat.dtype == "int32" and val.dtype == "float32"
    onehot = densitron.layers.CategoryEncoding(5, output_mode="one_hot")(cat)
    column = densitron.layers.Reshape((1,))(val)
    assert onehot.shape == (None, 5)
    model = densitron.Model({"cat": cat, "num": val},
                            densitron.layers.Concatenate()([onehot, column]))
    out = model.predict({"cat": ids, "num": num}, verbose=0)
    np.testing.assert_array_equal(out[:, :5], np.eye(5)[ids])
    np.testing.assert_allclose(out[:, 5], num)
    norm = densitron.layers.Normalization(axis=None)
    norm.adapt(num)
    np.testing.assert_allclose(norm(num), (num - num.mean()) / num.std(), rtol=1e-5)
    emb = densitron.layers.Embedding(5, 2)
    assert emb(ids).shape == (6, 2)
    with pytest.raises(ValueError, match="min_ndim=2.*Received"):
        densitron.layers.Dense(2)(val)
