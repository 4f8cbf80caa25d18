"""`steps_per_epoch`, `validation_steps` and `steps` over arrays, as Keras's epoch iterator
runs them (keras/src/trainers/epoch_iterator.py): a pass over the rows runs on across epochs,
an epoch ends early with a warning where the pass runs out, and evaluate/predict read the
first `steps` batches. Keras-side parity for evaluate and predict is in test_keras_parity."""

import warnings

import numpy as np
import pytest

import densitron
from densitron import callbacks
from densitron.utils import PyDataset
from test_data_sources import data, model


class Listed(PyDataset):
    """Batches given as a list of (x, y) pairs: one epoch of them, in order."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


def batches_of(x, y, size, order):
    return [(x[i * size:(i + 1) * size], y[i * size:(i + 1) * size]) for i in order]


def fit_counting(m, x, y, **kwargs):
    """Trained batches per epoch and the 'ran out of data' warnings of one fit."""
    per_epoch = []
    cb = callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: per_epoch.append(0),
                                  on_train_batch_end=lambda b, logs: per_epoch.__setitem__(
                                      -1, per_epoch[-1] + 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = m.fit(x, y, verbose=0, callbacks=[cb], **kwargs)
    ran_out = [w for w in caught if "ran out of data" in str(w.message)]
    return history, per_epoch, len(ran_out)


def assert_same_weights(a, b):
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)


def test_steps_per_epoch_continues_the_pass_across_epochs():
    # 40 rows of batch 10 are 4 batches a pass; 3 steps an epoch: the epochs take batches
    # 0-2, 3 (the pass runs out: warning), 0-2, 3 (warning), 0-2.
    x, y = data(40)
    a = model()
    history, per_epoch, warned = fit_counting(a, x, y, batch_size=10, steps_per_epoch=3,
                                              epochs=5, shuffle=False)
    assert per_epoch == [3, 1, 3, 1, 3]
    assert warned == 2
    assert len(history.history["loss"]) == 5
    b = model()
    b.fit(Listed(batches_of(x, y, 10, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2])), epochs=1,
          shuffle=False, verbose=0)
    assert_same_weights(a, b)
    # each epoch's logs cover its own batches only
    c = model()
    c.fit(Listed(batches_of(x, y, 10, [0, 1, 2])), epochs=1, shuffle=False, verbose=0)
    d = Listed(batches_of(x, y, 10, [3]))
    np.testing.assert_allclose(history.history["loss"][1], c.evaluate(d, verbose=0)[0],
                               rtol=1e-6)


def test_a_shuffled_pass_is_one_permutation_over_the_epochs():
    # Two epochs of 2 steps train on the same shuffled pass as one epoch of 4 steps.
    x, y = data(40)
    a = model()
    _, per_epoch, warned = fit_counting(a, x, y, batch_size=10, steps_per_epoch=2, epochs=2)
    assert per_epoch == [2, 2] and warned == 0
    b = model()
    b.fit(x, y, batch_size=10, epochs=1, verbose=0)
    assert_same_weights(a, b)
    # The third epoch starts a new pass with a new permutation, as a new fit call does (were
    # the first pass's order reused, c would differ from a).
    a.fit(x, y, batch_size=10, steps_per_epoch=2, epochs=1, verbose=0)
    c = model()
    c.fit(x, y, batch_size=10, steps_per_epoch=2, epochs=3, verbose=0)
    assert_same_weights(a, c)


def test_batch_size_follows_steps_when_not_given():
    # Keras's array adapter: batch_size = ceil(rows / steps): 40 rows in 3 steps are 14, 14, 12
    x, y = data(40)
    a = model()
    _, per_epoch, warned = fit_counting(a, x, y, steps_per_epoch=3, epochs=2, shuffle=False)
    assert per_epoch == [3, 3] and warned == 0
    b = model()
    b.fit(x, y, batch_size=14, epochs=2, shuffle=False, verbose=0)
    assert_same_weights(a, b)


def test_more_steps_than_a_pass_stop_each_epoch_at_the_pass_end():
    x, y = data(40)
    a = model()
    _, per_epoch, warned = fit_counting(a, x, y, batch_size=10, steps_per_epoch=6, epochs=2,
                                        shuffle=False)
    assert per_epoch == [4, 4] and warned == 2
    b = model()
    b.fit(x, y, batch_size=10, epochs=2, shuffle=False, verbose=0)
    assert_same_weights(a, b)


class Counted(Listed):
    """Listed, recording the batches read and the epoch hooks called."""

    def __init__(self, batches):
        super().__init__(batches)
        self.read, self.hooks = [], []

    def __getitem__(self, i):
        self.read.append(i)
        return super().__getitem__(i)

    def on_epoch_begin(self):
        self.hooks.append("begin")

    def on_epoch_end(self):
        self.hooks.append("end")


def test_a_pydatasets_pass_runs_on_across_epochs_with_steps_per_epoch():
    # Keras's epoch iterator keeps a PyDataset's iterator between epochs when steps_per_epoch
    # is given: 4 batches at 3 steps an epoch read 0-2, 3 (warning), 0-2, 3 (warning), 0-2;
    # each epoch calls the epoch hooks. (Densitron read 0-2 every epoch, and cycled past the
    # end when steps_per_epoch exceeded len.)
    x, y = data(40)
    src = Counted(batches_of(x, y, 10, range(4)))
    a = model()
    _, per_epoch, warned = fit_counting(a, src, None, steps_per_epoch=3, epochs=5,
                                        shuffle=False)
    assert src.read == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2]
    assert per_epoch == [3, 1, 3, 1, 3] and warned == 2
    assert src.hooks == ["begin", "end"] * 5
    b = model()
    fit_counting(b, x, y, batch_size=10, steps_per_epoch=3, epochs=5, shuffle=False)
    assert_same_weights(a, b)
    # More steps than batches: every epoch stops at the end of its pass, with the warning.
    src = Counted(batches_of(x, y, 10, range(4)))
    _, per_epoch, warned = fit_counting(model(), src, None, steps_per_epoch=6, epochs=2,
                                        shuffle=False)
    assert src.read == [0, 1, 2, 3] * 2 and per_epoch == [4, 4] and warned == 2
    # Steps that divide the pass: no warning; without steps_per_epoch, a pass each epoch.
    src = Counted(batches_of(x, y, 10, range(4)))
    _, per_epoch, warned = fit_counting(model(), src, None, steps_per_epoch=2, epochs=3,
                                        shuffle=False)
    assert src.read == [0, 1, 2, 3, 0, 1] and warned == 0
    src = Counted(batches_of(x, y, 10, range(4)))
    fit_counting(model(), src, None, epochs=2, shuffle=False)
    assert src.read == [0, 1, 2, 3] * 2


def test_a_shuffled_pydataset_pass_is_one_permutation_over_the_epochs():
    x, y = data(40)
    src = Counted(batches_of(x, y, 5, range(8)))
    densitron.utils.set_random_seed(4)
    fit_counting(model(), src, None, steps_per_epoch=3, epochs=4)
    first, second = src.read[:8], src.read[8:]
    assert sorted(first) == list(range(8)) and len(second) == 3  # 3 + 3 + 2, then 3
    assert first != list(range(8))


def test_pydataset_steps_beyond_its_length_warn_in_evaluate_and_predict():
    x, y = data(30)
    m = model()
    src = Counted(batches_of(x, y, 10, range(3)))
    with pytest.warns(UserWarning, match="ran out of data"):
        loss = m.evaluate(src, steps=5, verbose=0)[0]
    assert src.read == [0, 1, 2]
    assert loss == pytest.approx(m.evaluate(x, y, batch_size=10, verbose=0)[0], rel=1e-6)
    src = Counted(batches_of(x, y, 10, range(3)))
    with pytest.warns(UserWarning, match="ran out of data"):
        assert m.predict(src, steps=4, verbose=0).shape == (30, 3)
    src = Counted(batches_of(x, y, 10, range(3)))
    m.evaluate(src, steps=2, verbose=0)
    m.evaluate(src, steps=2, verbose=0)
    assert src.read == [0, 1, 0, 1]  # each call starts at the first batch


def test_validation_steps_validate_on_the_first_batches():
    x, y = data(40)
    xv, yv = data(30, seed=3)
    a = model()
    h = a.fit(x, y, batch_size=10, epochs=1, verbose=0, validation_data=(xv, yv),
              validation_steps=2)
    head = a.evaluate(xv[:20], yv[:20], verbose=0, return_dict=True)
    whole = a.evaluate(xv, yv, verbose=0, return_dict=True)
    assert h.history["val_loss"][0] == pytest.approx(head["loss"], rel=1e-6)
    assert head["loss"] != pytest.approx(whole["loss"], rel=1e-6)  # the cut matters
    # validation_batch_size sets the batches' size; without any, the steps cover all rows
    b = model()
    h = b.fit(x, y, batch_size=10, epochs=1, verbose=0, validation_data=(xv, yv),
              validation_steps=2, validation_batch_size=5)
    assert h.history["val_loss"][0] == pytest.approx(
        b.evaluate(xv[:10], yv[:10], verbose=0)[0], rel=1e-6)
    c = model()
    h = c.fit(x, y, epochs=1, verbose=0, validation_split=0.25, validation_steps=2)
    assert h.history["val_loss"][0] == pytest.approx(c.evaluate(x[30:], y[30:], verbose=0)[0],
                                                     rel=1e-6)


def test_evaluate_and_predict_steps_read_the_first_batches():
    x, y = data(30)
    m = model()
    np.testing.assert_array_equal(m.predict(x, batch_size=8, steps=2, verbose=0),
                                  m.predict(x[:16], verbose=0))
    assert m.evaluate(x, y, batch_size=8, steps=2, verbose=0) == m.evaluate(
        x[:16], y[:16], verbose=0)
    assert m.predict(x, steps=4, verbose=0).shape == (30, 3)  # batch_size from the steps
    with pytest.warns(UserWarning, match="ran out of data"):
        assert m.predict(x, batch_size=8, steps=5, verbose=0).shape == (30, 3)
    with pytest.warns(UserWarning, match="ran out of data"):
        m.evaluate(x, y, batch_size=8, steps=5, verbose=0)


@pytest.mark.parametrize("call", [
    lambda m, x, y: m.fit(x, y, steps_per_epoch=0, verbose=0),
    lambda m, x, y: m.fit(x, y, steps_per_epoch=2.5, verbose=0),
    lambda m, x, y: m.fit(x, y, validation_split=0.5, validation_steps=-1, verbose=0),
    lambda m, x, y: m.evaluate(x, y, steps=False, verbose=0),  # (True is 1, as Keras's)
    lambda m, x, y: m.predict(x, steps="2", verbose=0),
])
def test_bad_step_counts_raise(call):
    x, y = data(20)
    m = model()
    before = m.get_weights()
    with pytest.raises(ValueError, match="Received: "):
        call(m, x, y)
    for p, q in zip(m.get_weights(), before):
        np.testing.assert_array_equal(p, q)
