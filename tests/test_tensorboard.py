"""The TensorBoard callback writes TensorBoard's event files without TensorFlow: Keras's tags
and steps, values equal to the logs, records framed with TFRecord's masked CRC-32C."""

import glob
import os

import numpy as np
import pytest

import densitron
from densitron.callbacks.tensorboard import (EventFileWriter, TensorBoard, crc32c,
                                             read_scalars)
from densitron.layers import Dense, Input
from densitron.models import Model


def model(optimizer="adam", metrics=("accuracy",)):
    inputs = Input((4,))
    m = Model(inputs, Dense(3, activation="softmax")(Dense(6, activation="relu")(inputs)))
    m.compile(optimizer, "sparse_categorical_crossentropy", metrics=list(metrics))
    return m


def data(rows=80):
    rng = np.random.default_rng(0)
    return rng.normal(size=(rows, 4)), rng.integers(0, 3, rows)


def scalars(log_dir, sub):
    files = glob.glob(os.path.join(log_dir, sub, "events.out.tfevents.*"))
    assert len(files) == 1, files
    out = {}
    for tag, step, value in read_scalars(files[0]):
        out.setdefault(tag, []).append((step, value))
    return out


def test_crc32c_and_records():
    assert crc32c(b"123456789") == 0xE3069283  # the Castagnoli check value
    assert crc32c(b"") == 0


def test_epoch_logs_and_validation(tmp_path):
    x, y = data()
    m = model()
    cb = TensorBoard(log_dir=tmp_path)
    assert not cb._wants_batches()  # fit keeps running groups of batches
    h = m.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, callbacks=[cb])
    train, val = scalars(tmp_path, "train"), scalars(tmp_path, "validation")
    assert set(train) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}
    for name in ("loss", "accuracy"):
        assert [s for s, _ in train[f"epoch_{name}"]] == [0, 1, 2]
        np.testing.assert_allclose([v for _, v in train[f"epoch_{name}"]],
                                   h.history[name], rtol=1e-6)
        np.testing.assert_allclose([v for _, v in val[f"epoch_{name}"]],
                                   h.history[f"val_{name}"], rtol=1e-6)
        # evaluation_<name>_vs_iterations at the optimizer's step count: 4 batches an epoch
        assert [s for s, _ in val[f"evaluation_{name}_vs_iterations"]] == [4, 8, 12]
    np.testing.assert_allclose([v for _, v in train["epoch_learning_rate"]], [1e-3] * 3)


@pytest.mark.parametrize("update_freq,steps", [("batch", [1, 2, 3, 4, 5, 6]), (4, [4])])
def test_batch_logs(tmp_path, update_freq, steps):
    x, y = data(rows=96)
    m = model()
    cb = TensorBoard(log_dir=tmp_path, update_freq=update_freq)
    assert cb._wants_batches()
    seen = []
    batch_logs = densitron.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: seen.append(logs["loss"]))
    m.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[cb, batch_logs])
    train = scalars(tmp_path, "train")
    assert [s for s, _ in train["batch_loss"]] == steps
    np.testing.assert_allclose([v for _, v in train["batch_loss"]],
                               [seen[s - 1] for s in steps], rtol=1e-6)


def test_schedules_steps_per_second_and_array_logs(tmp_path):
    x, y = data()
    schedule = densitron.optimizers.schedules.ExponentialDecay(0.1, decay_steps=5,
                                                               decay_rate=0.5)
    m = model(optimizer=densitron.optimizers.SGD(schedule),
              metrics=["accuracy", densitron.metrics.F1Score(average=None)])
    y1 = np.eye(3)[y]
    m.compile(m.optimizer, "categorical_crossentropy",
              metrics=["accuracy", densitron.metrics.F1Score(average=None)])
    rates = []
    lr_probe = densitron.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: rates.append(float(m.optimizer.learning_rate)))
    m.fit(x, y1, epochs=2, batch_size=16, verbose=0,
          callbacks=[TensorBoard(tmp_path, write_steps_per_second=True), lr_probe])
    train = scalars(tmp_path, "train")
    assert "epoch_f1_score" not in train  # a per-class array is not a scalar
    np.testing.assert_allclose([v for _, v in train["epoch_learning_rate"]], rates, rtol=1e-6)
    assert all(v > 0 for _, v in train["epoch_steps_per_second"])
    assert "batch_steps_per_second" not in train  # batch scalars only with update_freq
    m.fit(x, y1, epochs=1, batch_size=16, verbose=0,
          callbacks=[TensorBoard(tmp_path / "b", write_steps_per_second=True, update_freq=2)])
    assert [s for s, _ in scalars(tmp_path / "b", "train")["batch_steps_per_second"]] == [2, 4]


def test_unsupported_arguments():
    for kwargs in ({"histogram_freq": 1}, {"write_images": True}, {"profile_batch": 2},
                   {"embeddings_freq": 1}, {"update_freq": 0}, {"update_freq": "step"}):
        with pytest.raises(ValueError, match="Received"):
            TensorBoard(**kwargs)


def test_a_corrupt_record_is_detected(tmp_path):
    w = EventFileWriter(str(tmp_path))
    w.scalar("a", 1.5, 3)
    w.close()
    assert read_scalars(w.path) == [("a", 3, 1.5)]
    with open(w.path, "rb") as f:
        raw = bytearray(f.read())
    raw[-6] ^= 0xFF
    with open(w.path, "wb") as f:
        f.write(bytes(raw))
    with pytest.raises(ValueError, match="corrupt"):
        read_scalars(w.path)


def test_tensorboard_reads_the_files(tmp_path):
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    x, y = data()
    h = model().fit(x, y, epochs=2, validation_split=0.25, verbose=0,
                    callbacks=[TensorBoard(tmp_path)])
    ea = accumulator.EventAccumulator(os.path.join(tmp_path, "train"))
    ea.Reload()
    np.testing.assert_allclose([e.value for e in ea.Scalars("epoch_loss")], h.history["loss"],
                               rtol=1e-6)
