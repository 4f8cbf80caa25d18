"""Dense inputs that are mostly zeros (multi-hot and count vectors, as in Keras's IMDB and
Reuters examples): `fit` over two epochs or more converts such an x (wide, large, at most 2%
non-zero, read only by Dense layers) to CSR once and trains through the sparse path, with the
same results as a SciPy CSR x. The converter itself is checked against NumPy for every input
type."""

import numpy as np
import pytest

import densitron
from densitron import _core
from densitron.layers import Concatenate, Dense, Input, LayerNormalization
from densitron.models import Model
from densitron.trainers import data as data_mod

TYPES = [np.float32, np.float64, np.int32, np.int64, np.uint8]


def multi_hot(rows=400, width=1100, density=0.008, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = (rng.random((rows, width)) < density).astype(dtype)
    if np.dtype(dtype).kind == "f":
        x *= rng.integers(1, 4, x.shape).astype(dtype)  # counts, not only ones
    return x


@pytest.mark.parametrize("dtype", TYPES)
@pytest.mark.parametrize("width", [1, 15, 16, 17, 100])
def test_dense_to_csr_matches_numpy(dtype, width):
    rng = np.random.default_rng(width)
    x = (rng.random((37, width)) < 0.3) * rng.integers(1, 200, (37, width))
    x = x.astype(dtype)
    if x.dtype.kind == "f":
        x[3, 0] = -0.0  # not stored
        x[5, width - 1] = -2.5
    x[7] = 0  # an empty row
    indptr, indices, data, nan_row = _core._dense_to_csr(x)
    rows, cols = np.nonzero(x)
    assert indptr.dtype == np.int64 and indices.dtype == np.int32 and data.dtype == np.float32
    np.testing.assert_array_equal(indptr, np.concatenate([[0], np.cumsum((x != 0).sum(1))]))
    np.testing.assert_array_equal(indices, cols)
    np.testing.assert_array_equal(data, x[rows, cols].astype(np.float32))
    assert nan_row == -1
    assert _core._stored_fraction(x, 37) == pytest.approx(np.count_nonzero(x) / x.size)


def test_dense_to_csr_keeps_nan_and_infinity_and_rounds_float64():
    x = np.zeros((6, 40), dtype=np.float64)
    x[4, 33] = np.nan
    x[2, 1] = np.inf
    x[1, 20] = 0.1  # rounded to the nearest float32, as astype
    x[5, 39] = np.nan
    indptr, indices, data, nan_row = _core._dense_to_csr(x)
    assert nan_row == 4
    np.testing.assert_array_equal(indptr, [0, 0, 1, 2, 2, 3, 4])
    np.testing.assert_array_equal(indices, [20, 1, 33, 39])
    assert data[0] == np.float32(0.1) and data[1] == np.inf and np.isnan(data[2:]).all()


def test_dense_to_csr_on_many_rows_uses_threads_in_row_order():
    x = multi_hot(rows=3000, width=1500)  # over 2^20 values: split between threads
    for threads in (1, 2, 3):
        densitron.set_num_threads(threads)
        indptr, indices, data, _ = _core._dense_to_csr(x)
        rows, cols = np.nonzero(x)
        np.testing.assert_array_equal(indices, cols)
        np.testing.assert_array_equal(data, x[rows, cols])
        assert indptr[-1] == len(rows)


def test_dense_to_csr_refuses_other_arrays():
    with pytest.raises(TypeError, match="C-contiguous 2-D"):
        _core._dense_to_csr(np.zeros(5, np.float32))
    with pytest.raises(TypeError, match="C-contiguous 2-D"):
        _core._dense_to_csr(np.zeros((4, 5), np.float32, order="F"))
    with pytest.raises(TypeError, match="float16"):
        _core._dense_to_csr(np.zeros((4, 5), np.float16))


def make_model(width, seed=3):
    densitron.utils.set_random_seed(seed)
    inp = Input((width,))
    h = Dense(16, activation="relu")(inp)
    model = Model(inp, Dense(3, activation="softmax")(h))
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def fit(model, x, y, **kw):
    densitron.utils.set_random_seed(11)
    return model.fit(x, y, batch_size=32, verbose=0, **kw)


def converted(monkeypatch):
    """Counts the conversions of dense inputs to CSR."""
    calls = []
    real = _core._dense_to_csr

    def spy(x):
        calls.append(x.shape)
        return real(x)

    monkeypatch.setattr(_core, "_dense_to_csr", spy)
    return calls


@pytest.fixture(autouse=True)
def small_thresholds(monkeypatch):
    # Small test arrays count as large enough (the size floor is about speed, not results).
    monkeypatch.setattr(data_mod, "_SPARSE_MIN_VALUES", 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_fit_on_a_mostly_zero_x_trains_as_on_its_csr(monkeypatch, dtype):
    sp = pytest.importorskip("scipy.sparse")
    x = multi_hot(dtype=dtype)
    y = np.random.default_rng(1).integers(0, 3, len(x))
    xv, yv = multi_hot(rows=90, seed=5, dtype=dtype), y[:90]
    calls = converted(monkeypatch)
    dense = make_model(x.shape[1])
    h_dense = fit(dense, x, y, epochs=3, validation_data=(xv, yv))
    assert calls == [x.shape, xv.shape]
    reference = make_model(x.shape[1])
    h_csr = fit(reference, sp.csr_matrix(x.astype(np.float32)), y, epochs=3,
                validation_data=(sp.csr_matrix(xv.astype(np.float32)), yv))
    for a, b in zip(dense.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h_dense.history == h_csr.history


def test_validation_split_of_a_converted_x(monkeypatch):
    sp = pytest.importorskip("scipy.sparse")
    x = multi_hot()
    y = np.random.default_rng(1).integers(0, 3, len(x))
    calls = converted(monkeypatch)
    a, b = make_model(x.shape[1]), make_model(x.shape[1])
    ha = fit(a, x, y, epochs=2, validation_split=0.25)
    hb = fit(b, sp.csr_matrix(x), y, epochs=2, validation_split=0.25)
    assert len(calls) == 1 and ha.history == hb.history
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_not_converted_where_it_would_not_pay(monkeypatch):
    x = multi_hot()
    y = np.random.default_rng(1).integers(0, 3, len(x))
    calls = converted(monkeypatch)
    model = make_model(x.shape[1])
    fit(model, x, y, epochs=1)  # one epoch: the conversion costs about one
    fit(model, x, y, epochs=3, initial_epoch=2)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    fit(model, multi_hot(density=0.2), y, epochs=2)  # too dense
    fit(model, multi_hot(density=0.015), y, epochs=2)  # too dense at this width: 1% at most
    assert calls == []
    wide = make_model(6000)
    fit(wide, multi_hot(width=6000, density=0.015), y, epochs=2)  # 2% at most from 5000
    assert calls == [(400, 6000)]
    calls.clear()
    assert calls == []
    narrow = make_model(500)
    fit(narrow, multi_hot(width=500), y, epochs=2)  # too narrow
    assert calls == []
    # An input also read by another layer than Dense stays dense.
    densitron.utils.set_random_seed(3)
    inp = Input((1100,))
    h = Concatenate()([Dense(8)(inp), LayerNormalization()(inp)])
    other = Model(inp, Dense(3, activation="softmax")(h))
    other.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    fit(other, x, y, epochs=2)
    assert calls == []


def test_misjudged_density_keeps_the_dense_x(monkeypatch):
    # Rows sampled for the estimate are empty; the rest are dense: the CSR is dropped.
    x = np.ones((400, 1100), np.float32)
    x[::7] = 0
    monkeypatch.setattr(data_mod, "_SPARSE_SAMPLE_ROWS", 2)  # rows 0 and 399 (=7·57)
    calls = converted(monkeypatch)
    model = make_model(1100)
    assert data_mod.sparsify_inputs(model, [x])[0] is x  # (not compiled yet: left dense)
    model.train_on_batch(x[:2], np.zeros(2))
    assert data_mod.sparsify_inputs(model, [x])[0] is x
    assert len(calls) == 1


def test_nan_in_a_converted_x_names_its_row():
    x = multi_hot()
    x[123, 7] = np.nan
    y = np.zeros(len(x), np.int64)
    with pytest.raises(ValueError, match=r"`x` contains NaN.*row 123"):
        fit(make_model(x.shape[1]), x, y, epochs=2)
    xv = multi_hot(rows=50, seed=2)
    xv[17, 0] = np.nan
    with pytest.raises(ValueError, match=r"`validation_data\[0\]` contains NaN.*row 17"):
        fit(make_model(x.shape[1]), multi_hot(), y, epochs=2, validation_data=(xv, y[:50]))


def test_converted_input_beside_a_dense_one_with_weights_and_normalization(monkeypatch):
    # Two inputs, the mostly-zero one converted and the other left dense; sample weights and
    # a BatchNormalization after the Dense reading the converted one: the same training as
    # with its SciPy CSR form.
    sp = pytest.importorskip("scipy.sparse")
    from densitron.layers import BatchNormalization
    x = multi_hot(rows=300)
    rng = np.random.default_rng(4)
    other = rng.normal(size=(300, 6)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    w = rng.random(300).astype(np.float32)

    def model():
        densitron.utils.set_random_seed(3)
        a, b = Input((1100,)), Input((6,))
        h = BatchNormalization()(Dense(12, activation="relu")(a))
        h = Concatenate()([h, Dense(4)(b)])
        m = Model([a, b], Dense(3, activation="softmax")(h))
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        return m

    calls = converted(monkeypatch)
    m1, m2 = model(), model()
    h1 = fit(m1, [x, other], y, epochs=3, sample_weight=w, validation_split=0.2)
    h2 = fit(m2, [sp.csr_matrix(x), other], y, epochs=3, sample_weight=w,
             validation_split=0.2)
    assert calls == [x.shape]
    assert h1.history == h2.history
    for u, v in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(u, v)
    # evaluate and predict on the dense x agree with the trained model's CSR results
    np.testing.assert_allclose(m1.predict([x, other], verbose=0),
                               m2.predict([sp.csr_matrix(x), other], verbose=0), rtol=1e-5,
                               atol=1e-6)
