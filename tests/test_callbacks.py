"""Training callbacks with Keras's rules."""

import csv
import json
import math
import os

import numpy as np
import pytest

import densitron
from densitron import callbacks, optimizers
from densitron.layers import Dense, Input
from densitron.models import Model


def model_and_data(lr=0.01):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.argmax(x[:, :3], axis=1)]
    inputs = Input(shape=(6,))
    model = Model(inputs, Dense(3, activation="softmax")(Dense(16, activation="relu")(inputs)))
    model.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model, x, y


def test_early_stopping_patience_and_restore_best_weights(capsys):
    model, x, y = model_and_data(lr=0.0)  # nothing improves: stops after `patience` epochs
    es = callbacks.EarlyStopping(monitor="loss", patience=2, verbose=1, min_delta=1e-6)
    h = model.fit(x, y, epochs=20, verbose=0, callbacks=[es])
    assert len(h.history["loss"]) == 3 and es.stopped_epoch == 2
    assert "Epoch 3: early stopping" in capsys.readouterr().out

    model, x, y = model_and_data(lr=5.0)  # a rate so large the loss gets worse after a while
    es = callbacks.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    seen = []
    log = callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((logs["loss"], model.get_weights())))
    model.fit(x, y, epochs=30, verbose=0, callbacks=[log, es])
    best = min(range(len(seen)), key=lambda i: seen[i][0])
    assert es.best_epoch == best
    for a, b in zip(model.get_weights(), seen[best][1]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_mode_and_missing_metric():
    with pytest.raises(ValueError, match="Received: mode='best'"):
        callbacks.EarlyStopping(mode="best")
    model, x, y = model_and_data()
    with pytest.warns(UserWarning, match="val_loss"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.EarlyStopping()])
    # mode="auto" as Keras 3 decides it: by the compiled metric's direction (R² grows as it
    # gets better: it was taken as a loss), and a name it cannot tell of is refused
    model.compile(optimizer="sgd", loss="categorical_crossentropy",
                  metrics=["acc", "mae", densitron.metrics.R2Score()])
    for monitor, mode in (("val_acc", "max"), ("val_mae", "min"), ("r2_score", "max"),
                          ("val_loss", "min")):
        es = callbacks.EarlyStopping(monitor=monitor)
        assert es.mode == "auto"
        model.fit(x, y, epochs=1, verbose=0, validation_split=0.25, callbacks=[es])
        assert es.mode == mode
    for monitor in ("val_los", "learning_rate"):
        with pytest.raises(ValueError, match=f"monitor={monitor}, but.*mode='max'"):
            model.fit(x, y, epochs=1, verbose=0, validation_split=0.25,
                      callbacks=[callbacks.EarlyStopping(monitor=monitor)])


def test_learning_rate_scheduler_sets_the_engines_rate():
    model, x, y = model_and_data(lr=0.1)
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    h = model.fit(x, y, epochs=3, verbose=0, callbacks=[sched])
    assert h.history["learning_rate"] == [float(np.float32(v)) for v in (0.05, 0.025, 0.0125)]
    assert model.optimizer.learning_rate == float(np.float32(0.0125))  # (a float32, as Keras)
    # a rate of zero from the schedule freezes the weights: the engine uses the new rate
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.0)])
    before = model.get_weights()
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.0)])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="should be a float"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[callbacks.LearningRateScheduler(lambda epoch: "fast")])


def test_reduce_lr_on_plateau():
    model, x, y = model_and_data(lr=1e-8)  # so small that nothing improves past min_delta
    cb = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_lr=0.0)
    h = model.fit(x, y, epochs=4, verbose=0, callbacks=[cb])
    assert h.history["learning_rate"][-1] < 1e-8
    with pytest.raises(ValueError, match="factor"):
        callbacks.ReduceLROnPlateau(factor=2.0)


def test_the_bar_follows_the_users_callbacks(capsys):
    # Keras's order: the user's callbacks, then History, then the bar, so an epoch's line shows
    # what they logged (ReduceLROnPlateau's learning_rate) and prints after their messages.
    model, x, y = model_and_data(lr=1e-8)
    cb = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_lr=0.0,
                                     verbose=1)
    model.fit(x, y, epochs=2, verbose=2, callbacks=[cb])
    out = capsys.readouterr().out
    assert "learning_rate: 1.0000e-08" in out.splitlines()[1]
    message = out.index("Epoch 2: ReduceLROnPlateau reducing learning rate")
    assert message < out.index("learning_rate: 1.0000e-08", out.index("Epoch 2/2"))
    history = callbacks.History()  # a History of the user's is the one fit returns
    assert model.fit(x, y, epochs=1, verbose=0, callbacks=[history]) is history
    assert list(history.history) == list(model.history.history)


def _diverging_regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    model = densitron.Sequential([Input((4,)), Dense(1, kernel_initializer="ones")])
    model.compile(optimizer=optimizers.SGD(10.0), loss="mse")
    return model, x, x.sum(1, keepdims=True) * 100


def test_terminate_on_nan_stops_after_the_first_nan_batch(capsys):
    # Keras's: training ends after the batch whose loss is NaN or inf, not later in the epoch
    seen = []

    def stop_at_nan(batch, logs):  # the same rule, written out
        seen.append(batch)
        if not math.isfinite(logs["loss"]):
            reference.stop_training = True

    reference, x, y = _diverging_regression()
    want = reference.fit(x, y, epochs=10, batch_size=16, shuffle=False, verbose=0,
                         callbacks=[callbacks.LambdaCallback(on_train_batch_end=stop_at_nan)])
    assert len(want.history["loss"]) < 10 and seen[-1] < 3  # (stopped inside an epoch)
    capsys.readouterr()

    model, x, y = _diverging_regression()
    t = callbacks.TerminateOnNaN()
    assert not t._wants_batches()  # (the engine's run of batches stops after that batch)
    h = model.fit(x, y, epochs=10, batch_size=16, shuffle=False, verbose=0, callbacks=[t])
    assert len(h.history["loss"]) == len(want.history["loss"])
    np.testing.assert_array_equal(model.get_weights()[0], reference.get_weights()[0])
    assert capsys.readouterr().out == f"Batch {seen[-1]}: Invalid loss, terminating training\n"

    model, x, y = _diverging_regression()
    with pytest.raises(RuntimeError, match=f"NaN or Inf loss encountered at batch {seen[-1]}"):
        model.fit(x, y, epochs=10, batch_size=16, shuffle=False, verbose=0,
                  callbacks=[callbacks.TerminateOnNaN(raise_error=True)])
    np.testing.assert_array_equal(model.get_weights()[0], reference.get_weights()[0])
    with pytest.raises(TypeError, match="Received: raise_error='yes'"):
        callbacks.TerminateOnNaN(raise_error="yes")


def test_lambda_callback_batch_hooks_run_per_batch():
    model, x, y = model_and_data()
    batches = []
    cb = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[cb])
    assert batches == [0, 1, 2, 3]


def test_keras_older_batch_hook_names_are_called_every_training_batch():
    # Keras's on_train_batch_begin/end call on_batch_begin/end, so callbacks written against
    # the older names run on every training batch, from arrays and from a generator, as do
    # LambdaCallback's on_batch_end.
    model, x, y = model_and_data()
    seen = []

    class Old(callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            seen.append(("end", batch, "loss" in logs))

    model.fit(x, y, epochs=1, batch_size=64, verbose=0, callbacks=[Old()])
    assert seen == [("begin", 0), ("end", 0, True), ("begin", 1), ("end", 1, True)]
    seen.clear()
    with pytest.warns(UserWarning, match="ran out of data"):  # (Keras warns at a generator's end)
        model.fit(((x[i:i + 64], y[i:i + 64]) for i in (0, 64)), epochs=1, verbose=0,
                  callbacks=[Old()])
    # (and, as Keras, the begin of the step that finds the generator's end)
    assert seen == [("begin", 0), ("end", 0, True), ("begin", 1), ("end", 1, True),
                    ("begin", 2)]
    ends = []
    lam = callbacks.LambdaCallback(on_batch_end=lambda b, logs: ends.append(b))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[lam])
    assert ends == [0, 1, 2, 3]


def test_model_checkpoint_best_only_saves_improvements(tmp_path, capsys):
    # val_loss falls then rises (the learning rate jumps): the file holds the best epoch's model.
    model, x, y = model_and_data(lr=0.05)
    path = tmp_path / "best.keras"
    ckpt = callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True, verbose=1)

    class Spy(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                model.optimizer.learning_rate = 50.0  # diverges from here
    h = model.fit(x, y, epochs=6, verbose=0, validation_split=0.25, callbacks=[ckpt, Spy()])
    losses = h.history["val_loss"]
    best = int(np.argmin(losses))
    assert ckpt.best == pytest.approx(losses[best])
    clone = densitron.models.load_model(path)
    xv, yv = x[96:], y[96:]
    assert clone.evaluate(xv, yv, verbose=0)[0] == pytest.approx(losses[best], rel=1e-6)
    out = capsys.readouterr().out
    assert f"Epoch {best + 1}: val_loss improved from" in out
    assert f"Epoch {best + 1}: finished saving model to {path}" in out
    assert "did not improve from" in out  # the diverged epochs


def test_model_checkpoint_every_epoch_formatted_paths_and_weights(tmp_path):
    model, x, y = model_and_data()
    ckpt = callbacks.ModelCheckpoint(tmp_path / "sub" / "w-{epoch:02d}-{loss:.3f}.weights.npz",
                                     save_weights_only=True)
    assert not ckpt._wants_batches()  # saving per epoch keeps the engine's batch groups
    h = model.fit(x, y, epochs=3, verbose=0, callbacks=[ckpt])
    names = sorted(os.listdir(tmp_path / "sub"))
    assert names == [f"w-{e + 1:02d}-{h.history['loss'][e]:.3f}.weights.npz" for e in range(3)]
    other, _, _ = model_and_data()
    other.load_weights(tmp_path / "sub" / names[-1])
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_save_freq_in_batches(tmp_path):
    model, x, y = model_and_data()  # 128 rows, batch 32: 4 batches an epoch
    ckpt = callbacks.ModelCheckpoint(tmp_path / "e{epoch}-b{batch}.keras", save_freq=3)
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[ckpt])
    # batches seen 3 and 6 of 8: epoch 1 batch 3, epoch 2 batch 2
    assert sorted(os.listdir(tmp_path)) == ["e1-b3.keras", "e2-b2.keras"]


@pytest.mark.parametrize("make", [
    lambda p: callbacks.ModelCheckpoint(p / "m.txt"),
    lambda p: callbacks.ModelCheckpoint(p / "m.keras", save_weights_only=True),
    lambda p: callbacks.ModelCheckpoint(p / "m.keras", save_freq="batch"),
    lambda p: callbacks.ModelCheckpoint(p / "m.keras", mode="best"),
    lambda p: callbacks.CSVLogger(p / "log.csv", separator=";;"),
])
def test_file_callbacks_reject_bad_arguments(tmp_path, make):
    with pytest.raises(ValueError, match="Received"):
        make(tmp_path)


def test_model_checkpoint_to_a_legacy_h5_file(tmp_path):
    # Keras 3 still writes whole models to .h5 files (the older tutorials' 'best_model.h5')
    model, x, y = model_and_data()
    path = tmp_path / "best_model.h5"
    h = model.fit(x, y, epochs=3, verbose=0, validation_split=0.25,
                  callbacks=[callbacks.ModelCheckpoint(path, save_best_only=True)])
    back = densitron.models.load_model(path)
    assert back.evaluate(x[96:], y[96:], verbose=0)[0] == pytest.approx(
        min(h.history["val_loss"]), rel=1e-6)


def test_model_checkpoint_unknown_format_field(tmp_path):
    model, x, y = model_and_data()
    ckpt = callbacks.ModelCheckpoint(tmp_path / "{nope}.keras")
    with pytest.raises(KeyError, match="nope"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ckpt])


def test_csv_logger_rows_and_append(tmp_path):
    model, x, y = model_and_data()
    path = tmp_path / "log.csv"
    h = model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(path)])
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1"]
    assert float(rows[2][2]) == pytest.approx(h.history["loss"][1])
    assert rows[1][3] == "NA"
    model.fit(x, y, epochs=1, verbose=0, validation_split=0.25,
              callbacks=[callbacks.CSVLogger(path, separator=";", append=True)])
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines) == 4 and lines[3].startswith("0;")  # no second header


def test_per_class_logs_print_as_their_mean_and_reach_the_csv(tmp_path, capsys):
    # F1Score without an average logs one value per class: the progress bar prints their mean
    # (Keras's Progbar averages an array) and CSVLogger writes them as Keras does.
    rng = np.random.default_rng(9)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 40)]
    inp = densitron.layers.Input(shape=(6,))
    model = densitron.models.Model(inp, densitron.layers.Dense(3, activation="softmax")(inp))
    model.compile(optimizer="adam", loss="categorical_crossentropy",
                  metrics=[densitron.metrics.F1Score(name="f1")])
    history = model.fit(x, y, epochs=1, verbose=2,
                        callbacks=[densitron.callbacks.CSVLogger(str(tmp_path / "log.csv"))])
    assert np.shape(history.history["f1"][0]) == (3,)
    mean = float(np.mean(history.history["f1"][0]))
    assert f"f1: {mean:.4f}" in capsys.readouterr().out
    assert '"[' in (tmp_path / "log.csv").read_text()


class _Crash(callbacks.Callback):
    """Raises at the end of epoch `at`: a run killed after that epoch's backup."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt("killed")


def _backup_model(seed=5):
    densitron.utils.set_random_seed(seed)
    inp = Input(shape=(6,))
    model = Model(inp, Dense(3)(Dense(16, activation="relu")(inp)))
    model.compile(optimizer="adam", loss="mse")
    return model


def test_backup_and_restore_resumes_where_a_killed_fit_stopped(tmp_path):
    # Killed after epoch 2's backup, a new fit restores the weights and Adam's state and runs
    # epochs 3 and 4 only: the same weights, bit for bit, as five epochs without the kill.
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = rng.normal(size=(64, 3)).astype(np.float32)
    straight = _backup_model()
    straight.fit(x, y, epochs=5, batch_size=16, shuffle=False, verbose=0)
    backup = callbacks.BackupAndRestore(tmp_path / "backup", double_checkpoint=True)
    killed = _backup_model()
    with pytest.raises(KeyboardInterrupt):
        killed.fit(x, y, epochs=5, batch_size=16, shuffle=False, verbose=0,
                   callbacks=[backup, _Crash(2)])
    assert (tmp_path / "backup" / "latest.weights.h5").exists()
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 3
    resumed = _backup_model(seed=99)  # other initial weights: all of them come from the backup
    history = resumed.fit(x, y, epochs=5, batch_size=16, shuffle=False, verbose=0,
                          callbacks=[callbacks.BackupAndRestore(tmp_path / "backup")])
    assert history.epoch == [3, 4]
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "backup").exists()  # deleted when fit ends
    # the next fit starts from epoch 0 again
    assert resumed.fit(x, y, epochs=1, verbose=0).epoch == [0]


def test_backup_and_restore_falls_back_to_the_previous_backup(tmp_path):
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(32, 6)), rng.normal(size=(32, 3))
    model = _backup_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=4, batch_size=8, verbose=0,
                  callbacks=[callbacks.BackupAndRestore(tmp_path, double_checkpoint=True),
                             _Crash(1)])
    (tmp_path / "latest.weights.h5").write_bytes(b"torn write")
    history = _backup_model().fit(x, y, epochs=4, batch_size=8, verbose=0,
                                  callbacks=[callbacks.BackupAndRestore(
                                      tmp_path, delete_checkpoint=False)])
    assert history.epoch == [1, 2, 3]  # the previous backup (after epoch 0)
    assert (tmp_path / "latest.weights.h5").exists()  # kept


def test_backup_and_restore_every_n_batches_and_bad_arguments(tmp_path):
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 3))
    model = _backup_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=3, batch_size=8, verbose=0,
                  callbacks=[callbacks.BackupAndRestore(tmp_path, save_freq=3), _Crash(0)])
    meta = json.loads((tmp_path / "training_metadata.json").read_text())
    assert meta == {"epoch": 0, "batch": 2}  # after batch 3 of epoch 0's 5
    for bad in ({"backup_dir": ""}, {"backup_dir": tmp_path, "save_freq": 0},
                {"backup_dir": tmp_path, "save_freq": "batch"}):
        with pytest.raises(ValueError, match="Received"):
            callbacks.BackupAndRestore(**bad)


def test_evaluate_predict_and_validation_call_the_test_and_predict_hooks():
    import densitron as dn

    rng = np.random.default_rng(0)
    x, y = rng.random((50, 3)), rng.integers(0, 2, 50)
    inputs = dn.Input((3,))
    m = dn.Model(inputs, dn.layers.Dense(2, activation="softmax")(inputs))
    m.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    events = []

    class Recorder(dn.callbacks.Callback):
        def on_test_begin(self, logs=None):
            events.append("test_begin")

        def on_test_batch_end(self, batch, logs=None):
            events.append(("test_batch", batch, logs["loss"]))

        def on_test_end(self, logs=None):
            events.append(("test_end", logs["loss"]))

        def on_predict_begin(self, logs=None):
            events.append("predict_begin")

        def on_predict_batch_end(self, batch, logs=None):
            events.append(("predict_batch", batch, logs["outputs"].shape))

        def on_predict_end(self, logs=None):
            events.append("predict_end")

    loss, acc = m.evaluate(x, y, batch_size=16, verbose=0, callbacks=[Recorder()])
    assert [loss, acc] == m.evaluate(x, y, batch_size=16, verbose=0)
    assert events[0] == "test_begin" and [e[1] for e in events[1:5]] == [0, 1, 2, 3]
    assert events[4][2] == events[5][1] == loss  # the last batch's running logs are the result
    events.clear()
    out = m.predict(x, batch_size=16, verbose=0, callbacks=[Recorder()])
    np.testing.assert_array_equal(out, m.predict(x, verbose=0))
    assert events == ["predict_begin"] + [("predict_batch", b, (16 if b < 3 else 2, 2))
                                          for b in range(4)] + ["predict_end"]
    events.clear()
    h = m.fit(x, y, batch_size=16, epochs=2, validation_split=0.2, verbose=0,
              callbacks=[Recorder()])
    ends = [e for e in events if isinstance(e, tuple) and e[0] == "test_end"]
    assert [e[1] for e in ends] == h.history["val_loss"]
    assert events.count("test_begin") == 2


def _ema_model(seed=3):
    densitron.utils.set_random_seed(seed)
    model = densitron.Sequential([densitron.Input((5,)),
                                  densitron.layers.Dense(8, activation="relu"),
                                  densitron.layers.Dense(1)])
    model.compile(optimizer=densitron.optimizers.Adam(0.05, use_ema=True, ema_momentum=0.9),
                  loss="mse")
    return model


def test_swap_ema_weights_evaluates_on_the_averages():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(256, 5)).astype(np.float32)
    y = x[:, :1] * 3.0
    val = (x[:64], y[:64])
    plain = _ema_model()  # (each model made just before its fit: the same shuffles)
    hp = plain.fit(x, y, batch_size=32, epochs=2, verbose=0, validation_data=val)
    swapped = _ema_model()
    seen = []
    record = densitron.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(swapped.get_weights()))
    hs = swapped.fit(x, y, batch_size=32, epochs=2, verbose=0, validation_data=val,
                     callbacks=[densitron.callbacks.SwapEMAWeights(), record])
    assert hs.history["loss"] == hp.history["loss"]  # training itself is untouched
    assert hs.history["val_loss"] != hp.history["val_loss"]
    # the last validation ran on the averages, which fit's end puts in the model
    assert swapped.evaluate(*val, verbose=0) == pytest.approx(hs.history["val_loss"][-1],
                                                              rel=1e-6)
    for a, b in zip(swapped.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    # during the epochs the trained weights were in the model, not the averages
    assert any(np.any(a != b) for a, b in zip(seen[-1], swapped.get_weights()))

    # swap_on_epoch: from each epoch's end the averages are in the model; training resumes
    # from the trained weights, and ends on the averages
    on_epoch = _ema_model()
    seen.clear()
    record = densitron.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(on_epoch.get_weights()))
    he = on_epoch.fit(x, y, batch_size=32, epochs=2, verbose=0,
                      callbacks=[densitron.callbacks.SwapEMAWeights(swap_on_epoch=True), record])
    assert he.history["loss"] == hp.history["loss"]
    for a, b in zip(seen[-1], plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(on_epoch.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)

    # predict with the callback: the averages' predictions, the weights as they were after
    trained = _ema_model()
    trained.fit(x, y, batch_size=32, epochs=1, verbose=0)
    before = [w + 0.01 for w in trained.get_weights()]  # (fit ended on the averages: off them)
    trained.set_weights(before)
    averages = trained.predict(x, verbose=0, callbacks=[densitron.callbacks.SwapEMAWeights()])
    for a, b in zip(trained.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(averages, trained.predict(x, verbose=0))
    with pytest.raises(ValueError, match="use_ema.*Received"):
        model = densitron.Sequential([densitron.Input((5,)), densitron.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, epochs=1, verbose=0, validation_data=val,
                  callbacks=[densitron.callbacks.SwapEMAWeights()])


def test_swap_ema_weights_after_the_graph_is_rebuilt_for_a_loss_function():
    # A loss function rebuilds the model's engine graph at each compile; the optimizer keeps
    # the graph the model runs, so the averages are swapped once, from that graph.
    rng = np.random.default_rng(9)
    x = rng.normal(size=(128, 5)).astype(np.float32)
    y = x[:, :1] * 2.0

    def mse(t, p):
        return densitron.ops.mean(densitron.ops.square(t - p), axis=-1)

    runs = []
    for loss in ("mse", mse):
        model = _ema_model(seed=4)
        optimizer = model.optimizer
        model.compile(optimizer=optimizer, loss=loss)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        model.compile(optimizer=optimizer, loss=loss)  # (the same optimizer, a new graph)
        h = model.fit(x, y, batch_size=16, epochs=1, verbose=0, validation_data=(x, y),
                      callbacks=[densitron.callbacks.SwapEMAWeights()])
        assert len(optimizer._graphs) == 1
        runs.append((h.history, model.get_weights()))
    np.testing.assert_allclose(runs[1][0]["val_loss"], runs[0][0]["val_loss"], rtol=1e-5)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_callback_list_as_keras_builds_it_and_model_history_is_set_from_the_start():
    # Keras's CallbackList(callbacks, add_history, add_progbar, model, **params), and fit's
    # History is the model's `history` already in the first epoch's callbacks.
    seen = []

    class Peek(densitron.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.history)

    model, x, y = model_and_data()
    cbs = densitron.callbacks.CallbackList([Peek()], add_history=True, model=model, epochs=3)
    assert isinstance(model.history, densitron.callbacks.History)
    assert [type(c).__name__ for c in cbs.callbacks] == ["Peek", "History"]
    assert cbs.callbacks[0].params == {"epochs": 3} and cbs.callbacks[0].model is model
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[Peek()])
    assert seen == [history, history]
