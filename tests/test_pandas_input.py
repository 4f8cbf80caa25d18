"""pandas DataFrames and Series as x, y and sample weights, as Keras takes them (read through
NumPy once per call): the same results as their NumPy arrays."""

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

import densitron
from densitron.layers import Concatenate, Dense, Input
from densitron.models import Model


def model(width=4):
    densitron.utils.set_random_seed(3)
    inputs = Input((width,))
    m = Model(inputs, Dense(3, activation="softmax")(Dense(5, activation="relu")(inputs)))
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_dataframe_and_series_equal_their_arrays():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(90, 4)), columns=list("abcd"))
    y = pd.Series(rng.integers(0, 3, 90))
    w = pd.Series(np.linspace(0.5, 1.5, 90))
    a, b = model(), model()
    densitron.utils.set_random_seed(9)
    ha = a.fit(df, y, sample_weight=w, validation_split=0.2, epochs=2, batch_size=16, verbose=0)
    densitron.utils.set_random_seed(9)
    hb = b.fit(df.to_numpy(), y.to_numpy(), sample_weight=w.to_numpy(), validation_split=0.2,
               epochs=2, batch_size=16, verbose=0)
    assert ha.history == hb.history
    assert a.evaluate(df, y, verbose=0) == b.evaluate(df.to_numpy(), y.to_numpy(), verbose=0)
    np.testing.assert_array_equal(a.predict(df, verbose=0), b.predict(df.to_numpy(), verbose=0))
    np.testing.assert_array_equal(a(df.iloc[:5]), b(df.to_numpy()[:5]))
    # nullable integer labels
    assert a.evaluate(df, y.astype("Int64"), verbose=0) == a.evaluate(df, y, verbose=0)


def test_dict_of_frames_for_named_inputs_and_a_bad_column():
    rng = np.random.default_rng(1)
    df = pd.DataFrame(rng.normal(size=(40, 4)), columns=list("abcd"))
    i1, i2 = Input((2,), name="left"), Input((2,), name="right")
    m = Model([i1, i2], Dense(1)(Concatenate()([i1, i2])))
    m.compile("sgd", "mse")
    h = m.fit({"left": df[["a", "b"]], "right": df[["c", "d"]]}, df["a"], epochs=1, verbose=0)
    assert np.isfinite(h.history["loss"][0])
    bad = df.assign(e=["x"] * 40)
    single = model(width=5)
    with pytest.raises(TypeError, match="must hold numbers.*Received: x with dtype object"):
        single.fit(bad, np.zeros(40), verbose=0)


def test_dummy_columns_through_np_array_adapt_and_train():
    # Keras's regression tutorial: pd.get_dummies adds bool columns beside float ones;
    # np.array of the frame is an object array of numbers, which Keras's adapt takes, and
    # fit takes the frame (an object array it refuses, as Keras).
    rng = np.random.default_rng(1)
    df = pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"])
    df["origin"] = rng.integers(1, 4, 60)
    df = pd.get_dummies(df, columns=["origin"])
    arr = np.array(df)
    assert arr.dtype == object
    as_float = arr.astype(np.float64)
    norm = densitron.layers.Normalization()
    norm.adapt(arr)
    np.testing.assert_allclose(norm.adapt_mean.numpy(), as_float.mean(axis=0), rtol=1e-6,
                               atol=1e-7)
    y = rng.integers(0, 3, 60)
    a, b = model(5), model(5)
    ha = a.fit(df, y, epochs=2, verbose=0, shuffle=False).history
    hb = b.fit(as_float, y, epochs=2, verbose=0, shuffle=False).history
    assert ha == hb
    with pytest.raises(TypeError, match="must hold numbers.*dtype object"):
        a.fit(arr, y, verbose=0)
    with pytest.raises(TypeError, match="numeric data.*dtype object"):
        densitron.layers.Normalization().adapt(np.array([["x", 1.0]], dtype=object))
