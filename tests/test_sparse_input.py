"""SciPy sparse matrices as x. A sparse input that feeds only Dense layers is read in place:
each row's stored values times their kernel rows, and a kernel gradient over the batch's stored
columns (the update still steps the whole kernel, as Keras does); results match those on
x.toarray() to rounding (the sums skip the zeros) and are bitwise the same for any thread
count. A sparse input feeding other layers is written out densely as its rows are gathered,
and matches x.toarray() bit for bit."""

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse")

import densitron
from densitron import layers
from densitron.layers import Dense, Input
from densitron.models import Model, Sequential
from densitron.trainers import data as data_mod


def sparse_data(rows=300, width=50, density=0.1, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    x = sp.random(rows, width, density=density, format="csr", random_state=seed,
                  dtype=np.float32)
    x.data = (x.data * 4 - 2).astype(np.float32)  # negative values too
    y = rng.integers(0, classes, rows)
    return x, y


def make_model(width=50, hidden=16, seed=7, optimizer="adam"):
    densitron.utils.set_random_seed(seed)
    inputs = Input(shape=(width,))
    h = Dense(hidden, activation="relu")(inputs)
    model = Model(inputs, Dense(3, activation="softmax")(h))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def fit(model, *args, **kwargs):
    """fit with the shuffling generator seeded afresh, so two models see the same order."""
    densitron.utils.set_random_seed(11)
    return model.fit(*args, **kwargs)


def same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def close_weights(a, b, atol=2e-5):
    return all(np.allclose(u, v, rtol=1e-4, atol=atol)
               for u, v in zip(a.get_weights(), b.get_weights()))


def close_logs(a, b):
    a = a.history if hasattr(a, "history") else a
    b = b.history if hasattr(b, "history") else b
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
    return True


def close(u, v):
    np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    return True


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch_size", [1, 32, 128, 300])
def test_fit_on_sparse_equals_fit_on_dense(threads, batch_size):
    densitron.set_num_threads(threads)
    x, y = sparse_data()
    a, b = make_model(), make_model()
    ha = fit(a, x, y, batch_size=batch_size, epochs=2, verbose=0, validation_split=0.2)
    hb = fit(b, x.toarray(), y, batch_size=batch_size, epochs=2, verbose=0,
               validation_split=0.2)
    assert close_logs(ha, hb)
    assert close_weights(a, b)
    close(a.predict(x, verbose=0), b.predict(x.toarray(), verbose=0))
    close(a.evaluate(x, y, verbose=0), b.evaluate(x.toarray(), y, verbose=0))


@pytest.mark.parametrize("threads", [1, 2])
def test_wide_first_layer_cut_into_row_blocks(threads):
    # A first kernel tall enough to be cut into row blocks between the threads: each thread
    # writes the gradient rows of the blocks it owns.
    densitron.set_num_threads(threads)
    x, y = sparse_data(rows=700, width=784, density=0.03, seed=3)
    a, b = make_model(width=784, hidden=128), make_model(width=784, hidden=128)
    for shuffle in (True, False):
        ha = fit(a, x, y, batch_size=64, epochs=1, verbose=0, shuffle=shuffle,
                   validation_data=(x[:100], y[:100]))
        hb = fit(b, x.toarray(), y, batch_size=64, epochs=1, verbose=0, shuffle=shuffle,
                   validation_data=(x[:100].toarray(), y[:100]))
        assert close_logs(ha, hb)
    assert close_weights(a, b)


def test_one_and_two_threads_agree_bitwise():
    x, y = sparse_data(rows=500, width=784, density=0.03, seed=4)
    results = []
    for threads in (1, 2):
        densitron.set_num_threads(threads)
        m = make_model(width=784, hidden=128)
        m.fit(x, y, batch_size=32, epochs=1, verbose=0)
        results.append(m.get_weights())
    assert all(np.array_equal(u, v) for u, v in zip(*results))


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil", "dok", "bsr"])
def test_every_scipy_format(fmt):
    x, y = sparse_data(rows=120)
    m = make_model()
    expected = m.predict(x.toarray(), verbose=0)
    close(m.predict(x.asformat(fmt), verbose=0), expected)
    a, b = make_model(), make_model()
    fit(a, x.asformat(fmt), y, epochs=1, verbose=0)
    fit(b, x.toarray(), y, epochs=1, verbose=0)
    assert close_weights(a, b)


def test_sparse_arrays_and_unusual_storage():
    x, y = sparse_data(rows=100)
    m = make_model()
    expected = m.predict(x.toarray(), verbose=0)
    # SciPy's newer sparse arrays, float64 / integer / bool values, int64 indices, unsorted
    # indices and duplicates (which add up, as in toarray)
    close(m.predict(sp.csr_array(x), verbose=0), expected)
    close(m.predict(x.astype(np.float64), verbose=0), expected)
    wide = x.copy()
    wide.indices = wide.indices.astype(np.int64)
    wide.indptr = wide.indptr.astype(np.int64)
    close(m.predict(wide, verbose=0), expected)
    ints = sp.random(100, 50, density=0.2, format="csr", random_state=1) * 5
    ints = ints.astype(np.int32)
    close(m.predict(ints, verbose=0), m.predict(ints.toarray(), verbose=0))
    flags = ints.astype(bool)
    close(m.predict(flags, verbose=0),
                                  m.predict(flags.toarray(), verbose=0))
    coo = x.tocoo()
    dup = sp.coo_matrix((np.concatenate([coo.data, coo.data]),
                         (np.concatenate([coo.row, coo.row]), np.concatenate([coo.col, coo.col]))),
                        shape=x.shape)
    close(m.predict(dup, verbose=0), m.predict(2 * x.toarray(), verbose=0))
    order = np.random.default_rng(0).permutation(coo.nnz)
    unsorted = sp.csr_matrix((coo.data[order], (coo.row[order], coo.col[order])), shape=x.shape)
    unsorted.has_sorted_indices = False
    close(m.predict(unsorted, verbose=0), expected)
    # empty rows and an all-zero matrix
    empty = sp.csr_matrix((7, 50), dtype=np.float32)
    close(m.predict(empty, verbose=0),
                                  m.predict(np.zeros((7, 50), np.float32), verbose=0))


def test_every_entry_point_takes_sparse():
    x, y = sparse_data(rows=64)
    dense = x.toarray()
    a, b = make_model(), make_model()
    close(a(x[:5]), b(dense[:5]))
    close(a.predict_on_batch(x[:9]), b.predict_on_batch(dense[:9]))
    close(a.predict(x, batch_size=8, steps=3, verbose=0),
                                  b.predict(dense, batch_size=8, steps=3, verbose=0))
    close(a.train_on_batch(x[:16], y[:16]), b.train_on_batch(dense[:16], y[:16]))
    close(a.test_on_batch(x[:16], y[:16]), b.test_on_batch(dense[:16], y[:16]))
    close(a.evaluate(x, y, batch_size=16, steps=2, verbose=0),
          b.evaluate(dense, y, batch_size=16, steps=2, verbose=0))
    weights = np.linspace(0.5, 2.0, 64)
    ha = fit(a, x, y, sample_weight=weights, epochs=1, verbose=0, shuffle=False)
    hb = fit(b, dense, y, sample_weight=weights, epochs=1, verbose=0, shuffle=False)
    assert close_logs(ha, hb)
    ha = fit(a, x, y, class_weight={0: 1.0, 1: 2.0, 2: 0.5}, epochs=1, verbose=0,
               steps_per_epoch=1, batch_size=16)
    hb = fit(b, dense, y, class_weight={0: 1.0, 1: 2.0, 2: 0.5}, epochs=1, verbose=0,
               steps_per_epoch=1, batch_size=16)
    assert close_logs(ha, hb)
    assert close_weights(a, b)


def test_per_batch_callbacks_and_generators():
    x, y = sparse_data(rows=96)
    dense = x.toarray()
    seen = []
    cb = densitron.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    a, b = make_model(), make_model()
    fit(a, x, y, batch_size=32, epochs=1, verbose=0, callbacks=[cb], shuffle=False)
    fit(b, dense, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    assert seen == [0, 1, 2] and close_weights(a, b)

    def batches(xx):
        for lo in range(0, 96, 32):
            yield xx[lo:lo + 32], y[lo:lo + 32]

    with pytest.warns(UserWarning, match="ran out of data"):  # (Keras warns at a generator's end)
        fit(a, batches(x), epochs=1, verbose=0)
    with pytest.warns(UserWarning, match="ran out of data"):
        fit(b, batches(dense), epochs=1, verbose=0)
    assert close_weights(a, b)
    with pytest.warns(UserWarning, match="ran out of data"):
        pa = a.predict(batches(x), verbose=0)
    with pytest.warns(UserWarning, match="ran out of data"):
        pb = b.predict(batches(dense), verbose=0)
    close(pa, pb)


def test_sparse_and_dense_inputs_together_and_sparse_targets():
    rng = np.random.default_rng(2)
    xs, y = sparse_data(rows=80, width=30)
    xd = rng.normal(size=(80, 5)).astype(np.float32)

    def build():
        densitron.utils.set_random_seed(3)
        i1, i2 = Input((30,), name="words", sparse=True), Input((5,), name="num")
        h = layers.Concatenate()([Dense(8, activation="relu")(i1), i2])
        m = Model([i1, i2], Dense(3, activation="softmax")(h))
        m.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
        return m

    onehot = np.eye(3, dtype=np.float32)[y]
    a, b = build(), build()
    ha = fit(a, {"words": xs, "num": xd}, sp.csr_matrix(onehot), epochs=2, batch_size=16,
               verbose=0)
    hb = fit(b, {"words": xs.toarray(), "num": xd}, onehot, epochs=2, batch_size=16, verbose=0)
    assert close_logs(ha, hb) and close_weights(a, b)
    close(a.predict([xs, xd], verbose=0),
                                  b.predict([xs.toarray(), xd], verbose=0))


def test_sequential_builds_from_a_sparse_x():
    x, y = sparse_data(rows=40, width=12)
    densitron.utils.set_random_seed(5)
    a = Sequential([Dense(4, activation="relu"), Dense(3, activation="softmax")])
    a.compile("sgd", "sparse_categorical_crossentropy")
    densitron.utils.set_random_seed(5)
    b = Sequential([Dense(4, activation="relu"), Dense(3, activation="softmax")])
    b.compile("sgd", "sparse_categorical_crossentropy")
    fit(a, x, y, epochs=1, verbose=0)
    fit(b, x.toarray(), y, epochs=1, verbose=0)
    assert a.layers[0].kernel.shape == (12, 4) and close_weights(a, b)


def test_nan_in_sparse_x():
    x, y = sparse_data(rows=200)
    x = x.tolil()
    x[137, 4] = np.nan
    x = x.tocsr()
    m = make_model()
    before = [w.copy() for w in m.get_weights()]
    with pytest.raises(ValueError, match=r"`x` contains NaN.*row 137"):
        m.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    # a sparse x is checked whole before training (one pass over its stored values)
    assert all(np.array_equal(u, v) for u, v in zip(before, m.get_weights()))
    with pytest.raises(ValueError, match=r"`x` contains NaN.*row 137"):
        m.evaluate(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"`x` contains NaN.*row 137"):
        m.train_on_batch(x, y)
    with pytest.raises(ValueError, match=r"`x` contains NaN.*row 137"):
        m.fit(x, y, epochs=1, verbose=0, validation_split=0.5)  # rows 100..199 validate
    with pytest.raises(ValueError, match=r"validation_data\[0\].*row 137"):
        m.fit(x[:10], y[:10], epochs=1, verbose=0, validation_data=(x, y))
    out = m.predict(x, verbose=0)  # predict passes NaN through to that row
    assert np.isnan(out[137]).all()
    clean = np.delete(np.arange(200), 137)
    dense = x.toarray()
    close(out[clean], m.predict(dense, verbose=0)[clean])


def test_bad_sparse_input():
    x, y = sparse_data(rows=20, width=50)
    m = make_model()
    with pytest.raises(ValueError, match=r"expected shape \(None, 50\).*Received: x with shape "
                                         r"\(20, 49\)"):
        m.fit(x[:, :49], y, verbose=0)
    with pytest.raises(ValueError, match=r"Received: x with shape \(0, 50\)"):
        m.fit(sp.csr_matrix((0, 50), dtype=np.float32), y[:0], verbose=0)
    # (predict of no rows: outputs of no rows, as Keras's model(x))
    assert m.predict(sp.csr_matrix((0, 50), dtype=np.float32), verbose=0).shape == (0, 3)
    with pytest.raises(TypeError, match=r"Received: x with dtype complex"):
        m.predict(x.astype(np.complex64), verbose=0)
    with pytest.raises(ValueError, match="Data cardinality is ambiguous"):
        m.fit(x, y[:10], verbose=0)
    if hasattr(sp, "coo_array"):
        try:
            one_d = sp.coo_array(np.ones(50, np.float32))
        except (ValueError, TypeError):  # SciPy without 1-D sparse arrays
            one_d = None
        if one_d is not None and one_d.ndim == 1:
            with pytest.raises(ValueError, match="must be 2-D.*Received"):
                m.predict(one_d, verbose=0)
    # An Embedding's ids must be dense integers
    inputs = Input((4,))
    e = layers.Embedding(10, 3)(inputs)
    em = Model(inputs, Dense(1)(layers.Flatten()(e)))
    em.compile("sgd", "mse")
    with pytest.raises(ValueError, match="Embedding.*sparse.*Received"):
        em.fit(sp.csr_matrix(np.ones((5, 4), np.float32)), np.zeros(5), verbose=0)
    with pytest.raises(ValueError, match="ragged"):
        Input((4,), ragged=True)
    with pytest.raises(TypeError, match="sparse"):
        Input((4,), sparse="yes")


def test_engine_refuses_malformed_csr_arrays():
    m = make_model(width=6)
    m.predict(np.zeros((2, 6), np.float32), verbose=0)  # builds the engine
    good = dict(indptr=np.array([0, 1, 2], np.int64), indices=np.array([0, 5], np.int32),
                data=np.ones(2, np.float32))

    def call(**change):
        parts = dict(good, **change)
        arg = data_mod.SparseInput(parts["indptr"], parts["indices"], parts["data"], (2, 6))
        return m._graph.predict([arg], 2)

    assert call()[0].shape == (2, 3)
    with pytest.raises(ValueError, match=r"\[0, 6\).*Received: 6"):
        call(indices=np.array([0, 6], np.int32))
    with pytest.raises(ValueError, match="indices"):
        call(indices=np.array([0, -1], np.int32))
    with pytest.raises(ValueError, match="decrease"):
        call(indptr=np.array([0, 2, 1], np.int64), data=np.ones(1, np.float32),
             indices=np.array([0], np.int32))
    with pytest.raises(ValueError, match="0..nnz"):
        call(indptr=np.array([0, 1, 3], np.int64))
    with pytest.raises(TypeError, match="int32 indices"):
        call(indices=np.array([0, 5], np.int64))


def test_row_slices_share_the_arrays():
    x, _ = sparse_data(rows=30)
    s = data_mod.SparseInput.from_scipy(x, "x")
    part = s[7:19]
    np.testing.assert_array_equal(part.toarray(), x[7:19].toarray())
    assert np.shares_memory(part.data, s.data)
    assert s[25:40].shape == (5, 50) and s[10:5].shape == (0, 50)


def test_input_sparse_flag_in_config_and_files(tmp_path):
    inputs = Input((6,), sparse=True)
    m = Model(inputs, Dense(2)(inputs))
    m.compile("sgd", "mse")
    assert m.layers[0].get_config()["sparse"] is True
    clone = Model.from_config(m.get_config())
    assert clone.layers[0].sparse is True
    path = str(tmp_path / "m.keras")
    m.save(path)
    back = densitron.models.load_model(path)
    assert back.layers[0].sparse is True
    x = sp.random(5, 6, density=0.5, format="csr", random_state=0, dtype=np.float32)
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))


def test_predict_on_sparse_before_any_training():
    x, _ = sparse_data(rows=50)
    m = make_model()
    close(m.predict(x, verbose=0), m.predict(x.toarray(), verbose=0))


def test_sparse_input_feeding_other_layers_is_gathered_densely_and_bitwise():
    # Concatenate reads the input itself: its rows are written out densely as gathered.
    xs, y = sparse_data(rows=90, width=20)

    def build():
        densitron.utils.set_random_seed(4)
        i = Input((20,))
        h = layers.Concatenate()([i, Dense(6, activation="relu")(i)])
        m = Model(i, Dense(3, activation="softmax")(h))
        m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    a, b = build(), build()
    ha = fit(a, xs, y, epochs=2, batch_size=16, verbose=0)
    hb = fit(b, xs.toarray(), y, epochs=2, batch_size=16, verbose=0)
    assert ha.history == hb.history and same_weights(a, b)
    np.testing.assert_array_equal(a.predict(xs, verbose=0), b.predict(xs.toarray(), verbose=0))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("width,hidden", [(50, 16), (784, 128)])
def test_sparse_gradients_against_float64_reference(threads, width, hidden):
    densitron.set_num_threads(threads)
    x, y = sparse_data(rows=37, width=width, density=0.05, seed=6)
    m = make_model(width=width, hidden=hidden)
    w1, b1, w2, b2 = [w.astype(np.float64) for w in m.get_weights()]
    xd = x.toarray().astype(np.float64)
    z = xd @ w1 + b1
    h = np.maximum(z, 0)
    logits = h @ w2 + b2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dlogits = (p - np.eye(3)[y]) / len(y)
    dh = dlogits @ w2.T * (z > 0)
    expected = [xd.T @ dh, dh.sum(0), h.T @ dlogits, dlogits.sum(0)]
    grads = m._compute_gradients(x, y)
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)
    # steps after a first one: the rows of the last step's gradient are set back to zero
    fit(m, x, y, batch_size=8, epochs=1, verbose=0)
    w1, b1, w2, b2 = [w.astype(np.float64) for w in m.get_weights()]
    z = xd @ w1 + b1
    grads = m._compute_gradients(x, y)
    h = np.maximum(z, 0)
    logits = h @ w2 + b2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dh = ((p - np.eye(3)[y]) / len(y)) @ w2.T * (z > 0)
    np.testing.assert_allclose(grads[0], xd.T @ dh, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
def test_regularized_kernel_and_two_dense_consumers(threads):
    densitron.set_num_threads(threads)
    x, y = sparse_data(rows=200, width=60, seed=8)

    def build():
        densitron.utils.set_random_seed(9)
        i = Input((60,))
        a = Dense(8, activation="relu", kernel_regularizer=densitron.regularizers.l2(0.01))(i)
        b = Dense(8, activation="tanh")(i)
        m = Model(i, Dense(3, activation="softmax")(layers.Add()([a, b])))
        m.compile(densitron.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        return m

    a, b = build(), build()
    ha = fit(a, x, y, epochs=3, batch_size=16, verbose=0)
    hb = fit(b, x.toarray(), y, epochs=3, batch_size=16, verbose=0)
    assert close_logs(ha, hb) and close_weights(a, b)


@pytest.mark.parametrize("optimizer", [
    "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "ftrl", "lion", "adamw",
    {"class_name": "Adam", "config": {"clipnorm": 0.01}},
    {"class_name": "SGD", "config": {"global_clipnorm": 0.01, "momentum": 0.5}},
    {"class_name": "RMSprop", "config": {"clipvalue": 0.001}},
])
def test_every_optimizer_and_clipping_on_a_sparse_input(optimizer):
    x, y = sparse_data(rows=120, width=40, seed=12)

    def build():
        densitron.utils.set_random_seed(13)
        i = Input((40,))
        h = Dense(8, activation="relu", use_bias=False)(i)
        m = Model(i, Dense(3, activation="softmax")(h))
        opt = optimizer
        if isinstance(optimizer, dict):
            opt = getattr(densitron.optimizers, optimizer["class_name"])(**optimizer["config"])
        m.compile(opt, "sparse_categorical_crossentropy")
        return m

    a, b = build(), build()
    ha = fit(a, x, y, epochs=2, batch_size=16, verbose=0)
    hb = fit(b, x.toarray(), y, epochs=2, batch_size=16, verbose=0)
    assert close_logs(ha, hb) and close_weights(a, b)


def test_frozen_first_layer_on_a_sparse_input():
    x, y = sparse_data(rows=64, width=30)
    m = make_model(width=30)
    m.layers[1].trainable = False
    m.compile("adam", "sparse_categorical_crossentropy")
    kernel = m.layers[1].get_weights()[0].copy()
    fit(m, x, y, epochs=1, batch_size=16, verbose=0)
    np.testing.assert_array_equal(m.layers[1].get_weights()[0], kernel)


@pytest.mark.parametrize("activation,loss,binary", [
    ("softmax", "sparse_categorical_crossentropy", False),
    ("sigmoid", "binary_crossentropy", True)])
def test_linear_classifier_on_a_sparse_input(activation, loss, binary):
    # the output layer itself reads the sparse input (its activation fused with the loss)
    x, y = sparse_data(rows=150, width=80, seed=14)
    y = (y > 0).astype(np.float32) if binary else y

    def build():
        densitron.utils.set_random_seed(15)
        inputs = Input((80,))
        m = Model(inputs, Dense(1 if binary else 3, activation=activation)(inputs))
        m.compile("adam", loss, metrics=["accuracy"])
        return m

    a, b = build(), build()
    ha = fit(a, x, y, epochs=3, batch_size=16, verbose=0)
    hb = fit(b, x.toarray(), y, epochs=3, batch_size=16, verbose=0)
    assert close_logs(ha, hb) and close_weights(a, b)
