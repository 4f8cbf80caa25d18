"""compile(steps_per_execution=N) as Keras 3 runs it: the batch hooks of fit, evaluate and
predict come once a run of N batches (on_*_batch_begin with the run's first batch, on_*_batch_end
with first + N - 1, also for a last run cut short), predict's hooks get the run's outputs, an
epoch of steps_per_epoch batches trains whole runs; the training itself is unchanged."""

import densitron as dt
import numpy as np
import pytest

# (the PyDataset's second epoch and the generator run out, with Keras's warning)
pytestmark = pytest.mark.filterwarnings("ignore:Your input ran out of data")


def _data():
    rng = np.random.default_rng(1)
    return rng.random((50, 3), dtype=np.float32), rng.random((50, 1), dtype=np.float32)


class _Recorder(dt.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("b", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("e", batch))

    def on_test_batch_begin(self, batch, logs=None):
        self.calls.append(("tb", batch))

    def on_test_batch_end(self, batch, logs=None):
        self.calls.append(("t", batch))

    def on_predict_batch_begin(self, batch, logs=None):
        self.calls.append(("pb", batch))

    def on_predict_batch_end(self, batch, logs=None):
        self.calls.append(("p", batch, logs["outputs"].shape[0]))


def _model(lib, spe):
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1)])
    model.compile("sgd", "mse", steps_per_execution=spe)
    model.set_weights([np.full((3, 1), 0.1, np.float32), np.zeros(1, np.float32)])
    return model


def _batches_class(base):
    """A PyDataset class of n batches of 5 rows of x and y, on the given PyDataset class."""
    class Batches(base):
        def __init__(self, x, y, n):
            super().__init__()
            self.x, self.y, self.n = x, y, n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return self.x[i * 5:(i + 1) * 5], self.y[i * 5:(i + 1) * 5]

    return Batches


_Batches = _batches_class(dt.utils.PyDataset)


def _run(lib, recorder_class, batches_class):
    """Every hook call of fit (arrays with validation, a PyDataset over two epochs of
    steps_per_epoch=5, a generator), evaluate and predict at steps_per_execution=3, batch 5."""
    x, y = _data()
    model, out = _model(lib, 3), []
    rec = recorder_class()
    model.fit(x, y, batch_size=5, verbose=0, callbacks=[rec], validation_split=0.2,
              shuffle=False)
    model.fit(batches_class(x, y, 8), verbose=0, callbacks=[rec], epochs=2, steps_per_epoch=5,
              shuffle=False)
    model.fit(((x[i * 5:(i + 1) * 5], y[i * 5:(i + 1) * 5]) for i in range(7)), verbose=0,
              callbacks=[rec])
    out.append(model.evaluate(x, y, batch_size=5, verbose=0, callbacks=[rec]))
    out.append(model.evaluate(batches_class(x, y, 8), verbose=0, callbacks=[rec]))
    out.append(model.predict(x, batch_size=5, verbose=0, callbacks=[rec]))
    out.append(model.predict(batches_class(x, y, 8), verbose=0, callbacks=[rec]))
    return rec.calls, out, model.get_weights()


# Keras 3.15's (JAX) calls for _run (on_train_batch_begin once more at the generator's end, for
# the run that finds it empty, as densitron calls it too).
KERAS_CALLS = (
    [("b", 0), ("e", 2), ("b", 3), ("e", 5), ("b", 6), ("e", 8), ("tb", 0), ("t", 2)]
    + [("b", 0), ("e", 2), ("b", 3), ("e", 5), ("b", 0), ("e", 2)]
    + [("b", 0), ("e", 2), ("b", 3), ("e", 5), ("b", 6), ("e", 8), ("b", 9)]
    + [("tb", 0), ("t", 2), ("tb", 3), ("t", 5), ("tb", 6), ("t", 8), ("tb", 9), ("t", 11)]
    + [("tb", 0), ("t", 2), ("tb", 3), ("t", 5), ("tb", 6), ("t", 8)]
    + [("pb", 0), ("p", 2, 15), ("pb", 3), ("p", 5, 15), ("pb", 6), ("p", 8, 15),
       ("pb", 9), ("p", 11, 5)]
    + [("pb", 0), ("p", 2, 15), ("pb", 3), ("p", 5, 15), ("pb", 6), ("p", 8, 10)])


def test_hooks_come_once_a_run_as_keras_calls_them():
    calls, _, _ = _run(dt, _Recorder, _Batches)
    assert calls == KERAS_CALLS


def test_runs_train_evaluate_and_predict_as_single_steps():
    # The same batches in the same order: the weights, losses and outputs of
    # steps_per_execution=3 equal those of 1 (hooks or none).
    x, y = _data()
    results = []
    for spe, callbacks in ((1, []), (3, []), (3, [_Recorder()])):
        model = _model(dt, spe)
        h = model.fit(x, y, batch_size=5, epochs=2, verbose=0, shuffle=False,
                      callbacks=callbacks)
        results.append((h.history["loss"], model.get_weights(),
                        model.evaluate(x, y, batch_size=5, verbose=0, callbacks=callbacks),
                        model.predict(x, batch_size=5, verbose=0, callbacks=callbacks)))
    for other in results[1:]:
        assert other[0] == results[0][0]
        for a, b in zip(other[1], results[0][1]):
            np.testing.assert_array_equal(a, b)
        assert other[2] == results[0][2]
        np.testing.assert_array_equal(other[3], results[0][3])


def test_an_epoch_of_steps_per_epoch_trains_whole_runs():
    # steps_per_epoch=5 at 3 a run trains 6 batches an epoch, as Keras's epoch iterator.
    x, y = _data()
    ran = []

    class Count(dt.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ran.append(self.model.optimizer.iterations)

    model = _model(dt, 3)
    model.fit(x, y, batch_size=5, epochs=1, steps_per_epoch=5, verbose=0, callbacks=[Count()])
    assert ran == [6]


@pytest.mark.parametrize("value", [0, -2, 1.5, "3", None])
def test_bad_steps_per_execution_is_refused(value):
    model = dt.Sequential([dt.Input((3,)), dt.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"steps_per_execution.*Received: "
                                         r"steps_per_execution="):
        model.compile("sgd", "mse", steps_per_execution=value)
    assert not model.compiled


def _keras_run():
    """_run on Keras (in a process of its own on JAX, which trains), as JSON."""
    import json

    import keras

    class KerasRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.calls = []

    for hook in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
                 "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end"):
        setattr(KerasRecorder, hook, getattr(_Recorder, hook))

    calls, outs, weights = _run(keras, KerasRecorder, _batches_class(keras.utils.PyDataset))
    print(json.dumps([calls, [np.asarray(o).tolist() for o in outs],
                      [w.tolist() for w in weights]]))


def test_matches_keras():
    from keras_subprocess import keras_on_jax_json

    calls, outs, weights = keras_on_jax_json("import test_steps_per_execution as t; "
                                             "t._keras_run()")
    calls = [tuple(c) for c in calls]
    assert calls == KERAS_CALLS
    _, d_outs, d_weights = _run(dt, _Recorder, _Batches)
    for a, b in zip(d_weights, weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(d_outs, outs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
