"""Callbacks side by side with Keras 3.15's: the callback objects of both driven with the same
logs (Keras on its numpy backend, which runs callbacks but cannot train), and fits compared with
numbers measured with Keras 3.15.1 on JAX (stated where they are used)."""

import io
import os
import warnings

import densitron
import numpy as np
import pytest
from densitron import callbacks

# Keras's own Variable.__array__ predates NumPy 2's `copy` keyword (keras/src/backend/common/
# variables.py); NumPy warns each time Keras converts a variable. Ignored for Keras's modules only.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


class _Stub:
    """A stand-in model for driving callbacks by hand: an optimizer, no metrics."""

    def __init__(self, optimizer=None):
        self.optimizer = optimizer
        self.metrics = []
        self.stop_training = False


def _recorder(fw):
    class Recorder(fw.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.calls = []

        def on_epoch_end(self, epoch, *args, **kwargs):
            self.calls.append(("on_epoch_end", epoch, sorted(kwargs), _seen(args, kwargs)))
            (args[0] if args else kwargs["logs"])["added"] = 1.0

        def on_train_batch_end(self, batch, *args, **kwargs):
            self.calls.append(("on_train_batch_end", batch, sorted(kwargs), _seen(args, kwargs)))

        def on_test_batch_begin(self, batch, *args, **kwargs):
            self.calls.append(("on_test_batch_begin", batch, sorted(kwargs), _seen(args, kwargs)))

        def on_predict_batch_end(self, batch, *args, **kwargs):
            self.calls.append(("on_predict_batch_end", batch, sorted(kwargs),
                               _seen(args, kwargs)))

    return Recorder()


def _seen(args, kwargs):
    logs = args[0] if args else kwargs["logs"]
    return [(k, type(v).__name__) for k, v in logs.items()]


def test_callback_list_passes_logs_as_keras_does(keras):
    # Keras's CallbackList hands each hook a new dict of the logs, keys sorted and NumPy numbers
    # as floats, shared by the callbacks of one call but not the caller's; the batch hooks get
    # it as the keyword `logs` (a hook written `def on_train_batch_end(self, batch, **kwargs)`
    # works), the epoch hooks positionally.
    results = []
    for fw in (keras, densitron):
        rec = _recorder(fw)
        after = _recorder(fw)
        cbs = fw.callbacks.CallbackList([rec, after])
        logs = {"mse": np.float32(0.5), "loss": 1.0, "acc": np.float64(0.25)}
        cbs.on_train_batch_end(3, dict(logs))
        cbs.on_test_batch_begin(0)
        cbs.on_predict_batch_end(1, {"outputs": np.zeros((2, 1))})
        mine = dict(logs)
        cbs.on_epoch_end(0, mine)
        assert "added" not in mine  # (the callbacks' additions stay theirs)
        results.append((rec.calls, after.calls))
    assert results[1] == results[0]
    assert results[0][0][0] == ("on_train_batch_end", 3, ["logs"],
                                [("acc", "float"), ("loss", "float"), ("mse", "float")])
    assert results[0][1][-1][3][-1] == ("added", "float")  # seen by the later callback


def test_batch_hooks_that_take_no_logs_keyword_get_them_by_position():
    # (Keras's list refuses these; densitron's passes `logs` by position to a hook that cannot
    # take it as a keyword)
    seen = []

    class Hook:
        __hash__ = None  # (an unhashable callable object)

        def __call__(self, batch, log):
            seen.append(("object", batch, sorted(log)))

    cbs = callbacks.CallbackList([
        callbacks.LambdaCallback(on_train_batch_end=lambda *a: seen.append(("lambda", *a))),
        callbacks.LambdaCallback(on_train_batch_end=Hook())])
    cbs.on_train_batch_end(2, {"loss": 1.0})
    assert seen == [("lambda", 2, {"loss": 1.0}), ("object", 2, ["loss"])]


def test_history_logs_and_the_bar_in_keras_order(capsys):
    # Keras 3.15.1 (JAX) prints "loss: 0.8610 - mae: 0.7453 - learning_rate: 0.0100": the logs
    # sorted, then what a callback added (ReduceLROnPlateau's learning_rate); History's keys
    # are in the same order.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = x.sum(1, keepdims=True)
    model = densitron.Sequential([densitron.Input((4,)), densitron.layers.Dense(1)])
    model.compile(optimizer=densitron.optimizers.SGD(0.01), loss="mse", metrics=["mse", "mae"])
    h = model.fit(x, y, epochs=1, verbose=2,
                  callbacks=[callbacks.ReduceLROnPlateau("loss", patience=5)])
    assert list(h.history) == ["loss", "mae", "mse", "learning_rate"]
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.index(" loss: ") < line.index(" mae: ") < line.index(" mse: ") < line.index(
        " learning_rate: ")


def test_a_history_passed_to_several_fits_keeps_adding(keras):
    # Keras's History.on_train_begin starts `epoch` afresh but keeps `history`
    seen = []
    for fw in (keras, densitron):
        h = fw.callbacks.History()
        h.set_model(_Stub())
        for losses in ([3.0, 2.0], [1.0]):
            h.on_train_begin({})
            for epoch, loss in enumerate(losses):
                h.on_epoch_end(epoch, {"loss": loss})
        seen.append((h.history, h.epoch))
    assert seen[1] == seen[0] == ({"loss": [3.0, 2.0, 1.0]}, [0])
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 1))
    model = densitron.Sequential([densitron.Input((3,)), densitron.layers.Dense(1)])
    model.compile("sgd", "mse")
    history = callbacks.History()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[history])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[history])
    assert len(history.history["loss"]) == 3 and history.epoch == [0]


def test_csv_logger_writes_lists_and_missing_values_as_keras(keras, tmp_path):
    epochs = [{"loss": 0.5, "f1": np.array([0.25, 0.5], np.float32), "names": ["a", "b"]},
              {"loss": 0.25, "f1": np.array([0.5, 0.75], np.float32), "names": ("c",),
               "val_loss": 0.75}]
    written = []
    for fw in (keras, densitron):
        for sep, append in ((",", False), (";", True)):
            path = tmp_path / f"{fw.__name__}.csv"
            logger = fw.callbacks.CSVLogger(str(path), separator=sep, append=append)
            logger.on_train_begin({})
            for epoch, logs in enumerate(epochs):
                logger.on_epoch_end(epoch, dict(logs))
            logger.on_train_end({})
        written.append(path.read_bytes())
    assert written[1] == written[0]
    assert b'"""[0.25, 0.5]"""' in written[0]


def test_lambda_callback_keeps_other_arguments_as_attributes(keras):
    for fw in (keras, densitron):
        cb = fw.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: None, note="mine")
        assert cb.note == "mine"
    with pytest.raises(TypeError, match="Received: on_epoch_end=3"):
        callbacks.LambdaCallback(on_epoch_end=3)


def _drive_reduce_lr(fw, capsys, losses, **kwargs):
    cb = fw.callbacks.ReduceLROnPlateau(monitor="loss", verbose=1, **kwargs)
    cb.set_model(_Stub(fw.optimizers.SGD(learning_rate=0.05)))
    cb.on_train_begin({})
    rates, messages = [], []
    for epoch, loss in enumerate(losses):
        logs = {"loss": loss}
        cb.on_epoch_end(epoch, logs)
        rates.append(logs["learning_rate"])
        out = capsys.readouterr().out
        if out:
            messages.append(out.split(" reducing")[0].strip())
    final = float(np.asarray(cb.model.optimizer.learning_rate))
    return rates + [final], messages


@pytest.mark.parametrize("kwargs", [
    {"factor": 0.1, "patience": 0, "min_lr": 0.001},  # at min_lr from the third epoch
    {"factor": 0.2, "patience": 0, "min_lr": 0.002, "cooldown": 1},
    {"factor": 0.5, "patience": 1, "min_delta": 0.3, "cooldown": 2},
    {"factor": 0.5, "patience": 2, "mode": "max"},
])
def test_reduce_lr_on_plateau_as_keras(keras, capsys, kwargs):
    # A rate at min_lr is not reduced again: Keras compares the rate and min_lr in float32, so
    # 0.05 * 0.2 * 0.2 = 0.0020000000000000005 is at min_lr=0.002 (no message, no cooldown).
    losses = [3.0, 3.0, 3.0, 3.0, 2.9, 2.95, 2.0, 1.99995, 2.0, 2.0, 1.0, 1.0, 1.0]
    want_rates, want_messages = _drive_reduce_lr(keras, capsys, losses, **kwargs)
    rates, messages = _drive_reduce_lr(densitron, capsys, losses, **kwargs)
    assert messages == want_messages
    np.testing.assert_allclose(rates, want_rates, rtol=1e-6)


def _constant(rate):
    return lambda epoch, lr: rate


def test_learning_rate_scheduler_takes_floats_only(keras):
    # Keras's refuses an int from the schedule (and a float16), before setting anything
    for fw in (keras, densitron):
        for bad in (1, np.float16(0.5), True):
            cb = fw.callbacks.LearningRateScheduler(_constant(bad))
            cb.set_model(_Stub(fw.optimizers.SGD(learning_rate=0.05)))
            with pytest.raises(ValueError, match="should be a float"):
                cb.on_epoch_begin(0, {})
        for fine in (0.5, np.float32(0.5), np.float64(0.5)):
            cb = fw.callbacks.LearningRateScheduler(_constant(fine))
            cb.set_model(_Stub(fw.optimizers.SGD(learning_rate=0.05)))
            cb.on_epoch_begin(0, {})
            assert float(np.asarray(cb.model.optimizer.learning_rate)) == 0.5


def test_model_checkpoint_refuses_a_monitor_it_cannot_direct(keras, tmp_path):
    # mode="auto" is decided at each epoch's end, saving the best only or not: an unknown name
    # is Keras's ValueError, not a save of every epoch with a warning.
    for fw in (keras, densitron):
        for best_only in (True, False):
            cb = fw.callbacks.ModelCheckpoint(str(tmp_path / "m.keras"), monitor="nope",
                                              save_best_only=best_only)
            cb.set_model(_Stub())
            with pytest.raises(ValueError, match="monitor=nope, but"):
                cb.on_epoch_end(0, {"loss": 1.0})
    assert not os.listdir(tmp_path)


def test_missing_monitor_warnings_read_as_keras(keras):
    texts = []
    for fw in (keras, densitron):
        got = []
        for cb in (fw.callbacks.EarlyStopping(mode="min"),
                   fw.callbacks.ReduceLROnPlateau(mode="min")):
            cb.set_model(_Stub(fw.optimizers.SGD(learning_rate=0.05)))
            cb.on_train_begin({})
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                cb.on_epoch_end(0, {"loss": 1.0, "acc": 0.5})
            got += [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        texts.append(got)
    assert texts[1] == texts[0]
    assert texts[0][0] == ("Early stopping conditioned on metric `val_loss` which is not "
                           "available. Available metrics are: loss,acc")


def _backup_model():
    model = densitron.Sequential([densitron.Input((4,)),
                                  densitron.layers.Dense(3, activation="tanh"),
                                  densitron.layers.Dense(1)])
    rng = np.random.default_rng(42)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) * 0.5
                       for w in model.get_weights()])
    model.compile(optimizer=densitron.optimizers.Adam(learning_rate=0.01), loss="mse")
    return model


class _Interrupt(callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("interrupted")


def test_backup_and_restore_resumes_a_fit_killed_mid_epoch_as_keras(tmp_path):
    # Backups every 2 batches (5 an epoch), killed before epoch 2's batch 3: the backup holds
    # the weights and Adam's state after epoch 2's batch 2 and {"epoch": 2, "batch": 1}; the
    # new fit starts epoch 2 over from its first batch on those weights. The numbers are Keras
    # 3.15.1's on JAX for the same weights, data and calls.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (x @ rng.normal(size=(4, 1)) + 0.1 * rng.normal(size=(40, 1))).astype(np.float32)
    backup = tmp_path / "backup"
    with pytest.raises(RuntimeError, match="interrupted"):
        _backup_model().fit(x, y, batch_size=8, epochs=6, shuffle=False, verbose=0,
                            callbacks=[callbacks.BackupAndRestore(backup, save_freq=2),
                                       _Interrupt(2, 3)])
    assert (backup / "training_metadata.json").read_text() == '{"epoch": 2, "batch": 1}'
    model = _backup_model()
    h = model.fit(x, y, batch_size=8, epochs=6, shuffle=False, verbose=0,
                  callbacks=[callbacks.BackupAndRestore(backup, save_freq=2)])
    assert h.epoch == [2, 3, 4, 5]
    np.testing.assert_allclose(h.history["loss"], [0.710391, 0.592833, 0.493854, 0.4075],
                               rtol=2e-5)
    assert int(model.optimizer.iterations) == 32  # 12 before the kill, 20 after
    np.testing.assert_allclose(model.get_weights()[0][0], [-0.12985, -0.29188, 0.07026],
                               atol=2e-5)
    assert not backup.exists()


def test_csv_logger_output_is_readable_back(tmp_path):
    # (the cell of a list reads back as Keras's text, quotes included)
    import csv

    logger = callbacks.CSVLogger(str(tmp_path / "log.csv"))
    logger.on_train_begin({})
    logger.on_epoch_end(0, {"f1": np.array([0.5, 0.25]), "loss": 1.0})
    logger.on_train_end({})
    rows = list(csv.reader(io.StringIO((tmp_path / "log.csv").read_text())))
    assert rows[1] == ["0", '"[0.5, 0.25]"', "1.0", "NA", "NA"]


def _small_model():
    densitron.utils.set_random_seed(4)
    model = densitron.Sequential([densitron.Input((3,)), densitron.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_evaluate_and_predict_callbacks_get_keras_params():
    # Keras's params for evaluate and predict: the call's verbose, one epoch, its batches
    seen = {}

    class Params(callbacks.Callback):
        def on_test_begin(self, logs=None):
            seen["test"] = dict(self.params)

        def on_predict_begin(self, logs=None):
            seen["predict"] = dict(self.params)

    model = _small_model()
    x, y = np.zeros((70, 3), np.float32), np.zeros((70, 2), np.float32)
    model.evaluate(x, y, batch_size=32, verbose=0, callbacks=[Params()])
    model.predict(x, batch_size=10, verbose=0, callbacks=[Params()])
    assert seen == {"test": {"verbose": 0, "epochs": 1, "steps": 3},
                    "predict": {"verbose": 0, "epochs": 1, "steps": 7}}


@pytest.mark.parametrize("hook", ["on_train_begin", "on_epoch_begin"])
def test_a_stop_asked_before_the_first_batch_trains_one_batch(hook):
    # Keras trains the epoch's first batch, then stops (its loop checks after each batch)
    class Stop(callbacks.Callback):
        pass

    setattr(Stop, hook, lambda self, *args, **kwargs: setattr(self.model, "stop_training",
                                                              True))
    model = _small_model()
    x, y = np.ones((320, 3), np.float32), np.ones((320, 2), np.float32)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[Stop()])
    assert int(model.optimizer.iterations) == 1


def test_the_bar_formats_small_and_negative_values_as_keras():
    from densitron.utils.progbar import format_value

    assert format_value(0.0) == "0.0000e+00"  # Keras: 4 decimals only above 1e-3
    assert format_value(1e-3) == "1.0000e-03"
    assert format_value(-0.5) == "-0.5000"
    assert format_value(-0.5, signed=True) == "-5.0000e-01"  # verbose=2's test has no abs()
    assert format_value(np.array([0.2, 0.4])) == "0.3000"  # an array by its mean
