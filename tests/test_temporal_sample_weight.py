"""Keras's temporal sample weights: for an output of shape (rows, T, C), sample_weight of shape
(rows, T) (or (rows, T, 1)) weighs each of a sample's T loss rows on its own. Keras 3's loss
multiplies the (rows, T) losses by them and divides by rows·T (sum_over_batch_size) or by their
sum (mean_with_sample_weight); a weighted metric gives Σ v·w / Σ w. A Dense applied to
(rows, T, F) works row by row, so training on temporal weights is training on the (rows·T, F)
rows with one weight each: the tests compare the two, and the losses with NumPy's."""

import densitron
import numpy as np
import pytest
from densitron import layers, losses

B, T, F, C = 12, 5, 4, 3


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, F)).astype(np.float32)
    y = np.eye(C, dtype=np.float32)[rng.integers(0, C, (B, T))]
    w = rng.random((B, T)).astype(np.float32)
    return x, y, w


def model(shape, loss="categorical_crossentropy", seed=1, **compile_args):
    densitron.utils.set_random_seed(seed)
    m = densitron.Sequential([densitron.Input(shape), layers.Dense(C, activation="softmax")])
    m.compile(optimizer=densitron.optimizers.SGD(0.5), loss=loss, **compile_args)
    return m


def reference(m, x, y, w):
    """Keras's numbers in float64: the loss Σ l·w / (rows·T), weighted accuracy Σ a·w / Σ w."""
    p = m.predict(x, verbose=0).astype(np.float64)
    ce = -np.log(np.clip((p * y).sum(-1), 1e-7, 1.0))
    acc = (p.argmax(-1) == y.argmax(-1)).astype(np.float64)
    return (ce * w).sum() / ce.size, (acc * w).sum() / w.sum(), acc.mean()


def test_evaluate_weighs_each_loss_row():
    x, y, w = data()
    m = model((T, F), weighted_metrics=["accuracy"], metrics=["accuracy"])
    logs = m.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    loss, weighted_acc, acc = reference(m, x, y, w)
    assert logs["loss"] == pytest.approx(loss, rel=1e-5)
    assert logs["weighted_accuracy"] == pytest.approx(weighted_acc, rel=1e-6)
    assert logs["accuracy"] == pytest.approx(acc, rel=1e-6)  # (compile metrics: unweighted)
    # (rows, T, 1) as (rows, T); in batches of 5 (a last batch of 2), the same totals
    logs3 = m.evaluate(x, y, sample_weight=w[:, :, None], batch_size=5, verbose=0,
                       return_dict=True)
    assert logs3["loss"] == pytest.approx(loss, rel=1e-5)
    assert logs3["weighted_accuracy"] == pytest.approx(weighted_acc, rel=1e-6)
    # weights equal along T are the same as one weight a sample
    per_sample = w[:, 0]
    a = m.evaluate(x, y, sample_weight=np.repeat(per_sample[:, None], T, 1), verbose=0)
    b = m.evaluate(x, y, sample_weight=per_sample, verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_mean_with_sample_weight_divides_by_every_weight():
    x, y, w = data()
    m = model((T, F), loss=losses.CategoricalCrossentropy(reduction="mean_with_sample_weight"))
    p = m.predict(x, verbose=0).astype(np.float64)
    ce = -np.log((p * y).sum(-1))
    got = m.evaluate(x, y, sample_weight=w, batch_size=B, verbose=0)
    assert got == pytest.approx((ce * w).sum() / w.sum(), rel=1e-5)
    m = model((T, F), loss=losses.CategoricalCrossentropy(reduction="sum"))
    got = m.evaluate(x, y, sample_weight=w, batch_size=B, verbose=0)
    assert got == pytest.approx((ce * w).sum(), rel=1e-5)


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64])  # (float64: gathered rows)
def test_fit_with_temporal_weights_trains_as_the_flattened_rows(x_dtype):
    x, y, w = data()
    a = model((T, F), weighted_metrics=["accuracy"])
    h = a.fit(x.astype(x_dtype), y, sample_weight=w, batch_size=4, epochs=3, shuffle=False,
              verbose=0)
    b = model((F,), weighted_metrics=["accuracy"])
    g = b.fit(x.reshape(-1, F).astype(x_dtype), y.reshape(-1, C), sample_weight=w.reshape(-1),
              batch_size=4 * T, epochs=3, shuffle=False, verbose=0)
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(p, q, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(h.history["loss"], g.history["loss"], rtol=2e-5)
    # (named "accuracy": Keras adds "weighted_" only beside an unweighted one of the name)
    np.testing.assert_allclose(h.history["accuracy"], g.history["accuracy"], rtol=1e-6)


def test_shuffled_fit_on_one_and_two_threads_alike():
    # Large enough to split (the next batch's rows, weights included, gathered while thread 0
    # runs the small output layer and the loss alone); bitwise the same on 1 and 2 threads.
    if not densitron.cpu_info()["openmp"]:
        pytest.skip("built without OpenMP")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((96, 8, 256)).astype(np.float32)
    y = np.eye(C, dtype=np.float32)[rng.integers(0, C, (96, 8))]
    w = rng.random((96, 8)).astype(np.float32)
    runs = []
    before = densitron.get_num_threads()
    try:
        for threads in (1, 2):
            densitron.set_num_threads(threads)
            densitron.utils.set_random_seed(3)
            m = densitron.Sequential([densitron.Input((8, 256)), layers.Dense(256, "relu"),
                                      layers.Dense(C, activation="softmax")])
            m.compile(optimizer="adam", loss="categorical_crossentropy",
                      weighted_metrics=["accuracy"])
            h = m.fit(x, y, sample_weight=w, batch_size=16, epochs=2, verbose=0, profile=True)
            assert len(h.profile["barrier_waits"]) == (2 if threads == 2 else 0)
            runs.append((h.history, m.get_weights()))
    finally:
        densitron.set_num_threads(before)
    assert runs[0][0] == runs[1][0]
    for p, q in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(p, q)


def test_shuffled_fit_and_validation_take_temporal_weights():
    x, y, w = data()
    xv, yv, wv = data(5)
    m = model((T, F), weighted_metrics=["accuracy"])
    h = m.fit(x, y, sample_weight=w, batch_size=4, epochs=2, verbose=0,
              validation_data=(xv, yv, wv))
    loss, weighted_acc, _ = reference(m, xv, yv, wv)
    assert h.history["val_loss"][-1] == pytest.approx(loss, rel=1e-5)
    assert h.history["val_accuracy"][-1] == pytest.approx(weighted_acc, rel=1e-6)
    # zero weights on a sample's every step leave it out of training
    w0 = w.copy()
    w0[3] = 0.0
    c = model((T, F))
    c.fit(x, y, sample_weight=w0, batch_size=B, epochs=1, verbose=0)
    y2 = y.copy()
    y2[3] = y2[3, :, ::-1]
    d = model((T, F))
    d.fit(x, y2, sample_weight=w0, batch_size=B, epochs=1, verbose=0)
    for p, q in zip(c.get_weights(), d.get_weights()):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("bad", [
    np.ones((B, T + 1), np.float32),
    np.ones((B, T, 2), np.float32),
    np.ones((B - 1, T), np.float32),
    np.ones((B, 1, T), np.float32),
])
def test_weights_of_another_shape_are_refused(bad):
    x, y, _ = data()
    m = model((T, F))
    before = m.get_weights()
    with pytest.raises(ValueError, match=r"sample_weight.*Received: sample_weight with shape"):
        m.fit(x, y, sample_weight=bad, verbose=0)
    for p, q in zip(m.get_weights(), before):
        np.testing.assert_array_equal(p, q)
    # a rank-2 output takes one weight a sample only
    flat = model((F,))
    with pytest.raises(ValueError, match=r"one weight per sample: shape \(12,\)\. Received"):
        flat.evaluate(x[:, 0], y[:, 0], sample_weight=np.ones((B, T), np.float32), verbose=0)
