"""densitron.ops composed of the engine's ops (reciprocal, log2, log10, exp2, expm1, deg2rad,
rad2deg, divide_no_nan, floor_divide, mod, hypot, logaddexp, heaviside, moments, and the
cross-entropies of keras.ops): on arrays against NumPy and Keras's own ops, and in a traced loss
against a float64 reference of the loss and finite differences of its gradient."""


import numpy as np
import pytest
from densitron import Input, layers, ops
from densitron.models import Model
from test_gradients_fd import fd_check

RNG = np.random.default_rng(3)
A = RNG.normal(size=(6, 5)).astype(np.float32)
B = RNG.normal(size=(6, 5)).astype(np.float32)
POS = (np.abs(A) + 0.1).astype(np.float32)

UNARY = ["reciprocal", "log2", "log10", "exp2", "expm1", "deg2rad", "rad2deg", "fabs"]
BINARY = ["divide_no_nan", "floor_divide", "mod", "hypot", "logaddexp", "heaviside"]


def test_on_arrays_as_numpy():
    for name in UNARY:
        ref = {"fabs": np.abs}.get(name, getattr(np, name, None))
        np.testing.assert_allclose(getattr(ops, name)(POS), ref(POS), rtol=1e-6, err_msg=name)
    b = B.copy()
    b[0, :2] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(ops.divide_no_nan(A, b), np.where(b == 0, 0, A / np.where(
            b == 0, 1, b)))
        for name in ("floor_divide", "mod"):
            np.testing.assert_array_equal(getattr(ops, name)(A, B), getattr(np, name)(A, B))
    np.testing.assert_allclose(ops.hypot(A, B), np.hypot(A, B), rtol=1e-6)
    np.testing.assert_allclose(ops.logaddexp(A, B), np.logaddexp(A, B), rtol=1e-6)
    np.testing.assert_array_equal(ops.heaviside(np.array([-1.0, 0.0, 2.0]), 0.5), [0, 0.5, 1])
    assert ops.amax is ops.max and ops.amin is ops.min
    mean, var = ops.moments(A, axes=-1)
    np.testing.assert_allclose(mean, A.mean(-1), rtol=1e-6)
    np.testing.assert_allclose(var, A.var(-1), rtol=1e-5)
    with pytest.raises(ValueError, match="Received: synchronized=True"):
        ops.moments(A, axes=-1, synchronized=True)
    # each takes its own arguments, named in Python's errors
    with pytest.raises(TypeError, match="log10\\(\\) takes 1 positional argument"):
        ops.log10(A, B)
    with pytest.raises(TypeError, match="mod\\(\\) missing 1 required positional"):
        ops.mod(A)
    with pytest.raises(ValueError, match="Received: num_classes="):
        ops.one_hot(np.array([1]), np.ones(2))


def test_on_arrays_as_keras(keras):
    for name in UNARY:
        np.testing.assert_allclose(getattr(ops, name)(POS), getattr(keras.ops, name)(POS),
                                   rtol=2e-6, err_msg=name)
    for name in ("divide_no_nan", "hypot", "logaddexp", "floor_divide", "mod"):
        np.testing.assert_allclose(getattr(ops, name)(A, B + 3.0),
                                   getattr(keras.ops, name)(A, B + 3.0), rtol=2e-6,
                                   err_msg=name)
    probs = np.abs(A) / np.abs(A).sum(-1, keepdims=True)
    onehot = np.eye(5, dtype=np.float32)[RNG.integers(0, 5, 6)]
    ids = onehot.argmax(-1)
    sig = 1 / (1 + np.exp(-A))
    for ours, theirs in (
            (ops.binary_crossentropy(onehot, sig), keras.ops.binary_crossentropy(onehot, sig)),
            (ops.binary_crossentropy(onehot, A, from_logits=True),
             keras.ops.binary_crossentropy(onehot, A, from_logits=True)),
            (ops.categorical_crossentropy(onehot, probs),
             keras.ops.categorical_crossentropy(onehot, probs)),
            (ops.categorical_crossentropy(onehot, A, from_logits=True),
             keras.ops.categorical_crossentropy(onehot, A, from_logits=True)),
            (ops.sparse_categorical_crossentropy(ids, probs),
             keras.ops.sparse_categorical_crossentropy(ids, probs))):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    m1, v1 = ops.moments(A, axes=[1], keepdims=True)
    m2, v2 = keras.ops.moments(A, axes=[1], keepdims=True)
    np.testing.assert_allclose(m1, m2, rtol=1e-6)
    np.testing.assert_allclose(v1, v2, rtol=1e-5)


def _model(outputs, activation=None, seed=2):
    inp = Input((4,))
    h = layers.Dense(5, activation="tanh", kernel_initializer=layers.Dense(
        1).kernel_initializer.__class__(seed=seed))(inp)
    return Model(inp, layers.Dense(outputs, activation=activation)(h))


# (loss on tensors, the same loss on float64 arrays, output activation, targets)
CASES = {
    "reciprocal": (lambda t, p: ops.mean(ops.reciprocal(1.0 + ops.square(p - t))),
                   lambda t, p: np.mean(1 / (1 + (p - t) ** 2)), None, "real"),
    "log2": (lambda t, p: ops.mean(ops.log2(1.0 + ops.square(p - t))),
             lambda t, p: np.mean(np.log2(1 + (p - t) ** 2)), None, "real"),
    "log10": (lambda t, p: ops.mean(ops.log10(1.0 + ops.square(p - t))),
              lambda t, p: np.mean(np.log10(1 + (p - t) ** 2)), None, "real"),
    "exp2": (lambda t, p: ops.mean(ops.exp2(p - t)),
             lambda t, p: np.mean(np.exp2(p - t)), None, "real"),
    "expm1": (lambda t, p: ops.mean(ops.expm1(0.5 * (p - t))),
              lambda t, p: np.mean(np.expm1(0.5 * (p - t))), None, "real"),
    "deg2rad": (lambda t, p: ops.mean(ops.square(ops.deg2rad(p - t))),
                lambda t, p: np.mean(np.deg2rad(p - t) ** 2), None, "real"),
    "rad2deg": (lambda t, p: ops.mean(ops.square(ops.rad2deg(p - t))) * 1e-3,
                lambda t, p: np.mean(np.rad2deg(p - t) ** 2) * 1e-3, None, "real"),
    "divide_no_nan": (lambda t, p: ops.mean(ops.divide_no_nan(ops.square(p - t), t)),
                      lambda t, p: np.mean(np.where(t == 0, 0, (p - t) ** 2 / np.where(
                          t == 0, 1, t))), None, "some_zero"),
    "hypot": (lambda t, p: ops.mean(ops.hypot(p, t)), lambda t, p: np.mean(np.hypot(p, t)),
              None, "real"),
    "logaddexp": (lambda t, p: ops.mean(ops.logaddexp(p, t)),
                  lambda t, p: np.mean(np.logaddexp(p, t)), None, "real"),
    "moments": (lambda t, p: ops.mean(ops.moments(p - t, axes=-1)[1]),
                lambda t, p: np.mean(np.var(p - t, axis=-1)), None, "real"),
    "binary_crossentropy": (lambda t, p: ops.mean(ops.binary_crossentropy(t, p)),
                            lambda t, p: np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))),
                            "sigmoid", "binary"),
    "binary_crossentropy_logits": (
        lambda t, p: ops.mean(ops.binary_crossentropy(t, p, from_logits=True)),
        lambda t, p: np.mean(-(t * np.log(1 / (1 + np.exp(-p))) +
                               (1 - t) * np.log(1 - 1 / (1 + np.exp(-p))))), None, "binary"),
    "categorical_crossentropy": (
        lambda t, p: ops.categorical_crossentropy(t, p),
        lambda t, p: np.mean(-(t * np.log(p / p.sum(-1, keepdims=True))).sum(-1)),
        "softmax", "onehot"),
    "categorical_crossentropy_logits": (
        lambda t, p: ops.categorical_crossentropy(t, p, from_logits=True),
        lambda t, p: np.mean(-(t * (p - np.log(np.exp(p).sum(-1, keepdims=True)))).sum(-1)),
        None, "onehot"),
    "sparse_categorical_crossentropy": (
        lambda t, p: ops.sparse_categorical_crossentropy(t, p),
        lambda t, p: np.mean(-np.log(np.take_along_axis(p, t.astype(int), -1))),
        "softmax", "ids"),
}


def _targets(kind, rows, outputs, rng):
    if kind == "real":
        return rng.normal(size=(rows, outputs)).astype(np.float32)
    if kind == "some_zero":
        t = rng.normal(size=(rows, outputs)).astype(np.float32)
        t[::3, 0] = 0.0
        return t
    if kind == "binary":
        return rng.integers(0, 2, (rows, outputs)).astype(np.float32)
    ids = rng.integers(0, outputs, rows)
    if kind == "ids":
        return ids[:, None].astype(np.float32)
    return np.eye(outputs, dtype=np.float32)[ids]


@pytest.mark.parametrize("name", sorted(CASES))
def test_in_a_traced_loss_value_and_gradient(name):
    loss, reference, activation, kind = CASES[name]
    rng = np.random.default_rng(7)
    outputs = 3
    x = rng.normal(size=(12, 4)).astype(np.float32)
    y = _targets(kind, 12, outputs, rng)
    model = _model(outputs, activation)
    model.compile(optimizer="sgd", loss=loss)
    p = model.predict(x, verbose=0).astype(np.float64)
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=12, verbose=0),
                               reference(y.astype(np.float64), p), rtol=2e-5, atol=1e-6)
    fd_check(model, x, y, loss)


def test_steps_without_gradient_keep_their_values():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    y = rng.normal(size=(10, 2)).astype(np.float32)
    model = _model(2)
    for loss, reference in (
            (lambda t, p: ops.mean(ops.square(p - t) + ops.floor_divide(p, 0.5)),
             lambda t, p: np.mean((p - t) ** 2 + np.floor_divide(p, 0.5))),
            (lambda t, p: ops.mean(ops.mod(p - t, 0.7)),
             lambda t, p: np.mean(np.mod(p - t, 0.7))),
            (lambda t, p: ops.mean(ops.heaviside(p - t, 0.5)),
             lambda t, p: np.mean(np.heaviside(p - t, 0.5)))):
        model.compile(optimizer="sgd", loss=loss)
        p = model.predict(x, verbose=0).astype(np.float64)
        np.testing.assert_allclose(model.evaluate(x, y, batch_size=10, verbose=0),
                                   reference(y.astype(np.float64), p), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="Received: axis=0"):
        model.compile(optimizer="sgd",
                      loss=lambda t, p: ops.categorical_crossentropy(t, p, axis=0))
        model.evaluate(x, y, verbose=0)
