"""fit, evaluate and predict on batches from a PyDataset or a generator, as Keras takes them."""

import re
import warnings

import numpy as np
import pytest

import densitron
from densitron import callbacks, layers
from densitron.layers import Dense, Input
from densitron.models import Model
from densitron.utils import PyDataset


def data(rows=100, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.argmax(x[:, :3], axis=1)]
    return x, y


def model(seed=1):
    densitron.utils.set_random_seed(seed)
    inputs = Input(shape=(6,))
    m = Model(inputs, Dense(3, activation="softmax")(Dense(8, activation="relu")(inputs)))
    m.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return m


class Batches(PyDataset):
    def __init__(self, x, y, batch_size, weights=None):
        super().__init__(workers=2)
        self.x, self.y, self.bs, self.w = x, y, batch_size, weights
        self.epochs_seen = 0

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, i):
        s = slice(i * self.bs, (i + 1) * self.bs)
        if self.w is None:
            return self.x[s], self.y[s]
        return self.x[s], self.y[s], self.w[s]

    def on_epoch_end(self):
        self.epochs_seen += 1


def test_pydataset_trains_exactly_as_the_same_arrays_unshuffled():
    # The same 32-row batches in the same order (the last one short): the same weights bit for
    # bit and the same logs; validation from a PyDataset too.
    x, y = data()
    xv, yv = data(40, seed=2)
    a, b = model(), model()
    ha = a.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0, validation_data=(xv, yv))
    ds = Batches(x, y, 32)
    hb = b.fit(ds, epochs=3, shuffle=False, verbose=0, validation_data=Batches(xv, yv, 40))
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)
    assert sorted(ha.history) == sorted(hb.history)
    for k in ha.history:
        np.testing.assert_allclose(hb.history[k], ha.history[k], rtol=1e-12, err_msg=k)
    assert ds.epochs_seen == 3
    assert b.evaluate(Batches(xv, yv, 7), verbose=0) == pytest.approx(
        a.evaluate(xv, yv, verbose=0), rel=1e-6)
    np.testing.assert_array_equal(b.predict(Batches(xv, yv, 7), verbose=0),
                                  a.predict(xv, verbose=0))


def test_generator_with_steps_per_epoch_and_validation_steps():
    x, y = data()
    drawn = []

    def endless(bs):
        i = 0
        while i < 200:  # ends, so that a run ignoring the steps fails instead of hanging
            lo = (i * bs) % 96
            drawn.append(lo)
            yield x[lo:lo + bs], y[lo:lo + bs]
            i += 1

    m = model()
    h = m.fit(endless(16), steps_per_epoch=5, epochs=2, verbose=0,
              validation_data=endless(8), validation_steps=3)
    assert len(h.history["loss"]) == 2 and "val_accuracy" in h.history
    # Nothing drawn beyond the steps asked for; as Keras's generator adapter, the first two
    # batches of each generator are drawn once and replayed at the start of each new pass:
    # training runs on over the epochs (2 + 3, then 5 new), each validation replays its two
    # and draws one more (Keras 3.15 draws the same 14 batches).
    assert len(drawn) == 10 + 2 + 2
    assert m.optimizer.iterations == 10


def test_a_finite_generator_replays_its_first_batches_as_keras():
    # Keras's fit on a generator of 4 batches without steps_per_epoch: the first epoch trains
    # all 4, each later one the 2 batches its adapter peeked (warning that it ran out).
    x, y = data()
    gen = ((x[i:i + 25], y[i:i + 25]) for i in range(0, 100, 25))
    a = model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = a.fit(gen, epochs=3, verbose=0, shuffle=False)
    assert len(h.history["loss"]) == 3 and a.optimizer.iterations == 8
    assert sum("ran out of data" in str(w.message) for w in caught) == 3
    b = model()
    b.fit(x, y, batch_size=25, epochs=1, shuffle=False, verbose=0)
    b.fit(x[:50], y[:50], batch_size=25, epochs=2, shuffle=False, verbose=0)
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7)
    # A finite validation generator validates on its first two batches after its first pass
    # (it raised "an exhausted generator" at the second epoch).
    val = ((x[i:i + 10], y[i:i + 10]) for i in range(0, 40, 10))
    c = model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h = c.fit(x, y, epochs=2, verbose=0, validation_data=val)
    assert h.history["val_loss"][1] == pytest.approx(
        c.evaluate(x[:20], y[:20], verbose=0)[0], rel=1e-6)
    with pytest.raises(ValueError, match="at least one batch. Received: an empty generator"):
        model().fit(iter([]), verbose=0)


def test_sample_weights_and_class_weight_in_batches():
    x, y = data()
    w = np.linspace(0.0, 2.0, 100).astype(np.float32)
    a, b = model(), model()
    a.fit(x, y, sample_weight=w, batch_size=50, shuffle=False, epochs=2, verbose=0)
    b.fit(Batches(x, y, 50, w), epochs=2, shuffle=False, verbose=0)
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)
    c, d = model(), model()
    cw = {0: 2.0, 1: 0.5}
    c.fit(x, y, class_weight=cw, batch_size=50, shuffle=False, verbose=0)
    d.fit(Batches(x, y, 50), class_weight=cw, shuffle=False, verbose=0)
    for p, q in zip(c.get_weights(), d.get_weights()):
        np.testing.assert_array_equal(p, q)


def test_progress_bar_and_callbacks_see_the_batches(capsys):
    x, y = data()
    seen = []
    cb = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    model().fit(Batches(x, y, 20), epochs=1, verbose=1, callbacks=[cb])
    assert seen == [0, 1, 2, 3, 4]
    assert "5/5" in capsys.readouterr().out


@pytest.mark.parametrize("call", [
    lambda m, x, y: m.fit(Batches(x, y, 10), y, verbose=0),
    lambda m, x, y: m.fit(Batches(x, y, 10), validation_split=0.2, verbose=0),
    lambda m, x, y: m.fit(iter([x[:10]]), verbose=0),  # no targets
    lambda m, x, y: m.fit(iter([(x[:10], y[:10], None, None)]), verbose=0),
    lambda m, x, y: m.fit(Batches(x, y, 10), steps_per_epoch=0, verbose=0),
    lambda m, x, y: m.fit(x, y, steps_per_epoch=0, verbose=0),  # arrays
    lambda m, x, y: m.evaluate(Batches(x, y, 10), y, verbose=0),
    lambda m, x, y: m.predict(Batches(x, y, 10), batch_size=4, verbose=0),
    lambda m, x, y: m.evaluate(iter([]), verbose=0),
    lambda m, x, y: m.fit(Batches(x[:0], y[:0], 10), verbose=0),
])
def test_bad_sources_raise_with_received(call):
    x, y = data()
    with pytest.raises(ValueError, match="Received"):
        call(model(), x, y)


def test_nan_in_a_batch_stops_fit_and_evaluate_before_that_batch():
    # The engine checks each batch's x as it copies its rows: the error names x and the row of
    # the batch; the batches before it trained, but the refused fit then puts the weights and
    # the optimizer's state back as they were before its first step.
    x, y = data()
    bad = x.copy()
    bad[45, 2] = np.nan  # batch 2 (rows 40-59), its row 5
    m, ref = model(), model()
    # (the batch is named too, counted from 0: "row 5" alone was found by fuzzing)
    with pytest.raises(ValueError, match=r"`x` contains NaN.*Received: x with NaN at row 5 of "
                                         r"batch 2$"):
        m.fit(Batches(bad, y, 20), epochs=1, shuffle=False, verbose=0)
    assert int(m.optimizer.iterations) == 0
    for p, q in zip(m.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(ValueError, match=r"`x` contains NaN.*at row 5 of batch 2$"):
        m.evaluate(Batches(bad, y, 20), verbose=0)
    # a NaN in a later batch's targets or weights: named alike, and fit restores the model too
    bad_y = y.copy()
    bad_y[23, 1] = np.nan
    with pytest.raises(ValueError, match=r"`y` contains NaN.*at row 3 of batch 1$"):
        m.fit(Batches(x, bad_y, 20), epochs=1, shuffle=False, verbose=0)
    bad_w = np.ones(len(x))
    bad_w[61] = np.nan
    with pytest.raises(ValueError, match=r"`sample_weight` contains NaN.*at row 1 of batch 3$"):
        m.fit(Batches(x, y, 20, bad_w), epochs=1, shuffle=False, verbose=0)
    assert int(m.optimizer.iterations) == 0
    for p, q in zip(m.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(ValueError, match=r"`y` contains NaN.*at row 3 of batch 1$"):
        m.evaluate(Batches(x, bad_y, 20), verbose=0)


def test_arrays_beside_a_source_are_named_by_type_and_shape():
    # (the message printed the whole array: found by fuzzing)
    x, y = data()
    for value, received in ((y, "y of type ndarray with shape (100, 3)"),
                            (y.tolist(), "y of type list of length 100"), (3, "y=3")):
        with pytest.raises(ValueError, match=r"`y` is not supported when `x` is a PyDataset "
                                             r"or a generator.*Received: " + re.escape(received)
                                             + "$"):
            model().fit(Batches(x, y, 10), value, verbose=0)
    with pytest.raises(ValueError, match=r"Received: sample_weight of type ndarray with shape "
                                         r"\(100,\)$"):
        model().evaluate(iter([(x, y)]), sample_weight=np.ones(100), verbose=0)


def test_batches_needing_conversion_train_as_float32_batches():
    # float64, Fortran-order, strided and read-only batches, and float64 targets, train
    # exactly like the float32 C-contiguous batches they hold (the quick path takes only
    # those; the others are converted first).
    x, y = data()
    a, b = model(), model()
    a.fit(Batches(x, y, 25), epochs=2, shuffle=False, verbose=0)

    class Odd(PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            xb, yb = x[i * 25:(i + 1) * 25], y[i * 25:(i + 1) * 25]
            if i == 0:
                return xb.astype(np.float64), yb.astype(np.float64)
            if i == 1:
                return np.asfortranarray(xb), yb
            if i == 2:
                wide = np.zeros((25, 12), np.float32)
                wide[:, ::2] = xb
                return wide[:, ::2], yb
            ro = xb.copy()
            ro.flags.writeable = False
            return ro, yb

    b.fit(Odd(), epochs=2, shuffle=False, verbose=0)
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(ValueError, match=r"expected shape \(None, 6\).*Received: x with shape"):
        b.fit(iter([(x[:5, :5], y[:5])]), verbose=0)
    with pytest.raises(ValueError, match=r"target.shape=.*Received: y with shape"):
        b.fit(iter([(x[:5], y[:5, :2])]), verbose=0)


def test_timeseries_dataset_from_array():
    # Keras's documented examples, then other strides, rates and bounds against the windows
    # written out, a model trained on it, and bad arguments.
    data = np.arange(100)
    ds = densitron.utils.timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10)
    inputs, targets = ds[0]
    np.testing.assert_array_equal(inputs[0], data[:10])
    assert targets[0] == data[10]
    steps = np.arange(100).reshape(50, 2).astype(np.float32)
    for kw in (dict(sequence_length=4, sequence_stride=3, sampling_rate=2, batch_size=7),
               dict(sequence_length=3, start_index=5, end_index=40, batch_size=4)):
        ds = densitron.utils.timeseries_dataset_from_array(steps, np.arange(50) * 10, **kw)
        start, end = kw.get("start_index", 0), kw.get("end_index", 50)
        rate, stride = kw.get("sampling_rate", 1), kw.get("sequence_stride", 1)
        firsts = np.arange(0, end - start - (kw["sequence_length"] - 1) * rate, stride)
        want_x = np.stack([steps[start + p + np.arange(kw["sequence_length"]) * rate]
                           for p in firsts])
        got = [ds[i] for i in range(len(ds))]
        np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), want_x)
        np.testing.assert_array_equal(np.concatenate([g[1] for g in got]),
                                      (start + firsts) * 10)
    shuffled = densitron.utils.timeseries_dataset_from_array(steps, None, 3, shuffle=True,
                                                             seed=4, batch_size=None)
    firsts = [int(shuffled[i][0, 0]) // 2 for i in range(len(shuffled))]
    assert sorted(firsts) == list(range(48)) and firsts != sorted(firsts)
    model = densitron.Sequential([layers.Input((5, 2)), layers.Flatten(), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    train = densitron.utils.timeseries_dataset_from_array(steps / 100, np.arange(50) / 50, 5,
                                                          batch_size=8)
    history = model.fit(train, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    for kw, match in ((dict(sequence_length=0), "sequence_length"),
                      (dict(sequence_length=3, sampling_rate=60), "sampling_rate"),
                      (dict(sequence_length=3, start_index=60), "start_index"),
                      (dict(sequence_length=3, start_index=10, end_index=5), "end_index"),
                      (dict(sequence_length=60), "No window fits")):
        with pytest.raises(ValueError, match=match + ".*Received"):
            densitron.utils.timeseries_dataset_from_array(steps, None, **kw)


def test_a_pydatasets_batches_come_in_a_new_order_each_epoch_with_shuffle():
    # Keras's PyDataset adapter under fit's shuffle=True (the default): every batch once an
    # epoch, in a new order (they came in order); batch_size, which the batches hold, is left
    # unused as Keras leaves it
    x, y = data()
    seen = []

    class Logged(Batches):
        def __getitem__(self, i):
            seen.append(i)
            return super().__getitem__(i)

    densitron.utils.set_random_seed(0)
    model().fit(Logged(x, y, 20), epochs=3, batch_size=7, verbose=0)
    n = -(-len(x) // 20)
    epochs = [seen[k * n:(k + 1) * n] for k in range(3)]
    assert all(sorted(e) == list(range(n)) for e in epochs)
    assert any(e != list(range(n)) for e in epochs) and epochs[0] != epochs[1]
    seen.clear()
    model().fit(Logged(x, y, 20), epochs=1, shuffle=False, verbose=0)
    assert seen == list(range(n))
