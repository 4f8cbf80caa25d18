"""densitron.random (keras.random on NumPy arrays): shapes, dtypes, ranges and moments, the
three kinds of seed (None: the global generator; an integer: the same values each call; a
SeedGenerator: advancing), and the refusals."""

import densitron
import numpy as np
import pytest
from densitron import random


def test_shapes_dtypes_and_ranges():
    x = random.normal((2000, 3), mean=1.0, stddev=2.0, seed=1)
    assert x.shape == (2000, 3) and x.dtype == np.float32
    assert abs(x.mean() - 1.0) < 0.1 and abs(x.std() - 2.0) < 0.1
    u = random.uniform((1000,), minval=-2, maxval=3, seed=2, dtype="float64")
    assert u.dtype == np.float64 and u.min() >= -2 and u.max() < 3
    t = random.truncated_normal((5000,), stddev=0.5, seed=3)
    assert np.abs(t).max() <= 1.0 + 1e-6 and abs(t.std() - 0.5 * 0.8796) < 0.03
    r = random.randint((4, 5), 3, 7, seed=4)
    assert r.dtype == np.int32 and r.min() >= 3 and r.max() <= 6
    g = random.gamma((4000,), alpha=2.0, seed=5)
    assert abs(g.mean() - 2.0) < 0.15
    b = random.beta((4000,), alpha=2.0, beta=2.0, seed=6)
    assert 0 <= b.min() and b.max() <= 1 and abs(b.mean() - 0.5) < 0.03
    n = random.binomial((4000,), counts=10, probabilities=0.3, seed=7)
    assert abs(n.mean() - 3.0) < 0.15
    assert random.normal(3, seed=1).shape == (3,)


def test_categorical_shuffle_and_dropout():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.0001, 0.0001, 0.9998]]))
    ids = random.categorical(logits, 4000, seed=8)
    assert ids.shape == (2, 4000) and ids.dtype == np.int32
    np.testing.assert_allclose(np.bincount(ids[0], minlength=3) / 4000, [0.7, 0.2, 0.1],
                               atol=0.03)
    assert (ids[1] == 2).mean() > 0.99
    x = np.arange(20).reshape(10, 2)
    s = random.shuffle(x, seed=9)
    assert sorted(map(tuple, s)) == sorted(map(tuple, x)) and not np.array_equal(s, x)
    ones = np.ones((400, 50), np.float32)
    d = random.dropout(ones, 0.25, seed=10)
    kept = d != 0
    assert abs(kept.mean() - 0.75) < 0.02 and np.allclose(d[kept], 1 / 0.75)
    d = random.dropout(ones, 0.5, noise_shape=(400, 1), seed=11)
    assert np.all((d == 0).all(axis=1) | (d == 2.0).all(axis=1))  # whole rows dropped


def test_seeds():
    np.testing.assert_array_equal(random.normal((5,), seed=3), random.normal((5,), seed=3))
    gen = random.SeedGenerator(42)
    a, b = random.uniform((5,), seed=gen), random.uniform((5,), seed=gen)
    assert not np.array_equal(a, b)  # it advances
    again = random.SeedGenerator(42)
    np.testing.assert_array_equal(random.uniform((5,), seed=again), a)
    densitron.utils.set_random_seed(7)
    first = random.normal((5,))
    densitron.utils.set_random_seed(7)
    np.testing.assert_array_equal(random.normal((5,)), first)
    assert not np.array_equal(random.normal((5,)), first)


def test_refusals():
    with pytest.raises(TypeError, match="Received: x=<KerasTensor"):
        random.shuffle(densitron.Input((3,)))
    with pytest.raises(TypeError, match="Received: inputs=<KerasTensor"):
        random.dropout(densitron.Input((3,)), 0.5)
    for bad, match in ((lambda: random.normal((2,), seed="a"), "Received: seed='a'"),
                       (lambda: random.normal((2,), seed=-1), "Received: seed=-1"),
                       (lambda: random.SeedGenerator(1.5), "Received: seed=1.5"),
                       (lambda: random.normal("x"), "Received: shape='x'"),
                       (lambda: random.uniform((2,), 1.0, 1.0), "Received: minval=1.0"),
                       (lambda: random.dropout(np.ones(3), 1.0), "Received: rate=1.0"),
                       (lambda: random.categorical(np.ones(3), 2), "Received: logits with"),
                       (lambda: random.categorical(np.ones((1, 3)), -1),
                        "Received: num_samples=-1"),
                       (lambda: random.normal((2,), dtype="nope"), "Received: dtype='nope'")):
        with pytest.raises(ValueError, match=match):
            bad()
    with pytest.raises(TypeError, match="Received: mean='x'"):
        random.normal((2,), mean="x")
    with pytest.raises(TypeError, match="Received: minval=1.5"):
        random.randint((2,), 1.5, 3)
