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
