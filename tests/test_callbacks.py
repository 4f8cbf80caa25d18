"""Training callbacks with Keras's rules."""

import math

import numpy as np
import pytest

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
    assert callbacks.EarlyStopping(monitor="val_accuracy").mode == "max"
    assert callbacks.EarlyStopping(monitor="val_loss").mode == "min"
    with pytest.raises(ValueError, match="Received: mode='best'"):
        callbacks.EarlyStopping(mode="best")
    model, x, y = model_and_data()
    with pytest.warns(UserWarning, match="val_loss"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.EarlyStopping()])


def test_learning_rate_scheduler_sets_the_engines_rate():
    model, x, y = model_and_data(lr=0.1)
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    h = model.fit(x, y, epochs=3, verbose=0, callbacks=[sched])
    assert h.history["learning_rate"] == [0.05, 0.025, 0.0125]
    assert model.optimizer.learning_rate == 0.0125
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


def test_terminate_on_nan_stops_without_batch_by_batch_runs():
    model, x, y = model_and_data(lr=1e30)
    t = callbacks.TerminateOnNaN()
    assert not t._wants_batches()
    h = model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[t])
    assert len(h.history["loss"]) == 1 and not math.isfinite(h.history["loss"][0])


def test_lambda_callback_batch_hooks_run_per_batch():
    model, x, y = model_and_data()
    batches = []
    cb = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[cb])
    assert batches == [0, 1, 2, 3]
