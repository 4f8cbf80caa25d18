"""The seed program (Keras's Functional example) trains with only its imports changed."""

import re
import subprocess
import sys

import numpy as np

import densitron
from densitron.layers import Dense, Input
from densitron.models import Model, Sequential


def seed_data(rows=2048, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.random((rows, 784)).astype(np.float32)
    # labels depend on the data (a linear map of 16 of its centred values: every class about
    # as frequent), so the loss can fall and the accuracy rise within a few epochs
    proj = rng.normal(size=(784, 10)) * (np.arange(784) < 16)[:, None]
    labels = np.eye(10, dtype=np.float32)[np.argmax((data - 0.5) @ proj, axis=1)]
    return data, labels


def test_seed_program_trains_and_loss_falls():
    data, labels = seed_data()
    inputs = Input(shape=(784,))
    x = Dense(64, activation="relu")(inputs)
    x = Dense(64, activation="relu")(x)
    predictions = Dense(10, activation="softmax")(x)

    model = Model(inputs=inputs, outputs=predictions)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(data, labels, epochs=5, verbose=0)  # starts training

    losses = history.history["loss"]
    assert len(losses) == 5 and all(np.isfinite(losses))
    assert losses[-1] < 0.95 * losses[0]
    assert history.history["accuracy"][-1] > history.history["accuracy"][0]
    assert history.params == {"verbose": 0, "epochs": 5, "steps": 64}
    assert history.epoch == [0, 1, 2, 3, 4]


def _seed_weights_after_epoch(kind):
    densitron.utils.clear_session()
    densitron.utils.set_random_seed(42)
    data, labels = seed_data(rows=500, seed=1)
    if kind == "functional":
        inputs = Input(shape=(784,))
        x = Dense(64, activation="relu")(inputs)
        x = Dense(64, activation="relu")(x)
        model = Model(inputs, Dense(10, activation="softmax")(x))
    elif kind == "sequential_list":
        model = Sequential([Input(shape=(784,)), Dense(64, activation="relu"),
                            Dense(64, activation="relu"), Dense(10, activation="softmax")])
    else:  # built on first data, layer by layer with add()
        model = Sequential()
        model.add(Dense(64, activation="relu"))
        model.add(Dense(64, activation="relu"))
        model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(data, labels, epochs=1, verbose=0)
    return model.get_weights()


def test_functional_and_sequential_bit_identical():
    ref = _seed_weights_after_epoch("functional")
    for kind in ("sequential_list", "sequential_add"):
        other = _seed_weights_after_epoch(kind)
        assert len(other) == len(ref) == 6
        for a, b in zip(ref, other):
            assert a.shape == b.shape
            assert np.array_equal(a, b), kind


def test_same_seed_same_run_different_seed_different_run():
    a = _seed_weights_after_epoch("functional")
    b = _seed_weights_after_epoch("functional")
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    densitron.utils.set_random_seed(7)
    c = Dense(3)
    c.build((None, 4))
    densitron.utils.set_random_seed(8)
    d = Dense(3)
    d.build((None, 4))
    assert not np.array_equal(c.kernel.numpy(), d.kernel.numpy())


def test_demo_reaches_95_percent():
    out = subprocess.run(
        [sys.executable, "-m", "densitron", "--verbose", "0", "--epochs", "30"],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert accuracy >= 0.95, out
    assert "training time:" in out


def test_digits_dataset_like_keras():
    (x_train, y_train), (x_test, y_test) = densitron.datasets.digits.load_data()
    assert x_train.shape == (1438, 8, 8) and x_test.shape == (359, 8, 8)
    assert y_train.shape == (1438,) and y_test.shape == (359,)
    assert x_train.dtype == np.uint8 and x_train.max() == 16
    assert set(np.unique(np.concatenate([y_train, y_test]))) == set(range(10))
