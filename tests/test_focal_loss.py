"""Keras's BinaryFocalCrossentropy: the engine's values and gradients against Keras's formula
in float64 (with its clipping of probabilities to [1e-7, 1 - 1e-7], label smoothing, class
balancing and logits), through every entry point, against finite differences, and its
arguments and config."""

import numpy as np
import pytest

import densitron
from densitron import layers, losses, optimizers
from densitron.models import Model
from test_gradients_fd import fd_check

EPS = 1e-7
HI = float(np.float32(1 - EPS))  # Keras clips in float32: 1 - 1e-7 rounds to 1 - 2^-23
PARAMS = [dict(), dict(gamma=0.0), dict(gamma=1.0), dict(gamma=0.5, alpha=0.4,
                                                          apply_class_balancing=True),
          dict(gamma=3.0, label_smoothing=0.2), dict(apply_class_balancing=True, alpha=0.9)]


def reference(v, y, gamma=2.0, alpha=0.25, apply_class_balancing=False, label_smoothing=0.0,
              from_logits=False):
    """Per-row losses and d(row loss)/d(v) of Keras's binary focal cross-entropy in float64,
    v the probabilities (or logits)."""
    v, y = np.asarray(v, np.float64), np.asarray(y, np.float64)
    y = y * (1 - label_smoothing) + 0.5 * label_smoothing
    p = 1 / (1 + np.exp(-v)) if from_logits else v
    pc = np.clip(p, EPS, HI)
    bce = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
    q = 1 - (y * p + (1 - y) * (1 - p))
    f = q ** gamma
    b = y * alpha + (1 - y) * (1 - alpha) if apply_class_balancing else 1.0
    per = (b * f * bce).mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):  # (q = 0 with gamma < 1: infinite)
        df = 0.0 if gamma == 0 else gamma * q ** (gamma - 1)
        dbce = np.where((p > EPS) & (p < HI), (1 - y) / (1 - pc) - y / pc, 0.0)
        d = b * (-df * (2 * y - 1) * bce + f * dbce)
    if from_logits:
        d = d * p * (1 - p)
    return per, d / v.shape[-1]


def data(rng, rows=9, cols=4):
    p = rng.random((rows, cols)).astype(np.float32)
    p[0, 0], p[1, 1], p[2, 2] = 0.0, 1.0, 1e-9  # clipped: no gradient through the log there
    z = (rng.normal(size=(rows, cols)) * 3).astype(np.float32)
    y = (rng.random((rows, cols)) < 0.4).astype(np.float32)
    return p, z, y


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("kw", PARAMS, ids=[str(k) for k in PARAMS])
def test_values_match_the_formula(kw, from_logits):
    p, z, y = data(np.random.default_rng(1))
    v = z if from_logits else p
    per, _ = reference(v, y, from_logits=from_logits, **kw)
    got = losses.binary_focal_crossentropy(y, v, from_logits=from_logits, **kw)
    np.testing.assert_allclose(got, per, rtol=2e-5, atol=1e-7)
    loss = losses.BinaryFocalCrossentropy(from_logits=from_logits, **kw)
    np.testing.assert_allclose(loss(y, v), per.mean(), rtol=2e-5, atol=1e-7)
    w = np.random.default_rng(2).random(len(y)).astype(np.float32)
    np.testing.assert_allclose(loss(y, v, sample_weight=w), (per * w).mean(), rtol=2e-5,
                               atol=1e-7)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("kw", PARAMS, ids=[str(k) for k in PARAMS])
def test_gradient_matches_the_formula(kw, from_logits):
    # A linear layer: dL/dW = x^T·dL/dv and dL/db = Σ dL/dv, v its output.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(9, 5)).astype(np.float32)
    saturate = not 0 < kw.get("gamma", 2.0) < 1  # ((1 - p_t)^(gamma - 1) infinite there)
    if saturate:
        x[0] *= 60  # a row whose sigmoids saturate to 0 and 1: clipped, no log gradient
    y = (rng.random((9, 4)) < 0.4).astype(np.float32)
    inp = layers.Input((5,))
    out = layers.Dense(4, kernel_initializer="glorot_uniform", bias_initializer="zeros")(inp)
    model = Model(inp, layers.Activation("linear" if from_logits else "sigmoid")(out))
    model.compile(optimizer=optimizers.SGD(), loss=losses.BinaryFocalCrossentropy(
        from_logits=from_logits, **kw))
    v = model.predict(x, verbose=0)
    if saturate and not from_logits:
        assert (v[0] < EPS).any() and (v[0] >= HI).any()  # (the saturated row: clipped)
    per, dv = reference(v, y, from_logits=from_logits, **kw)
    if not from_logits:  # through the sigmoid
        dv = dv * v * (1 - v)
    grads = model._compute_gradients(x, y)
    dv = dv / len(x)
    np.testing.assert_allclose(grads[0], x.T.astype(np.float64) @ dv, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(grads[1], dv.sum(axis=0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), per.mean(), rtol=1e-5)


@pytest.mark.parametrize("kw", [dict(), dict(gamma=0.5, apply_class_balancing=True),
                                dict(label_smoothing=0.1, from_logits=True)])
def test_backward_against_finite_differences(kw):
    rng = np.random.default_rng(4)
    inp = layers.Input((4,))
    h = layers.Dense(5, activation="tanh")(inp)
    out = layers.Dense(3, activation=None if kw.get("from_logits") else "sigmoid")(h)
    y = (rng.random((7, 3)) < 0.5).astype(np.float32)
    fd_check(Model(inp, out), rng.normal(size=(7, 4)), y, losses.BinaryFocalCrossentropy(**kw))


def test_trains_by_name_and_with_weights_on_one_and_two_threads():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    y = (x[:, :1] + 0.3 * rng.normal(size=(600, 1)) > 1.0).astype(np.float32)  # imbalanced
    results = []
    for threads in (1, 2):
        densitron.set_num_threads(threads)
        densitron.utils.set_random_seed(7)
        model = densitron.Sequential([layers.Input((8,)), layers.Dense(16, activation="relu"),
                                      layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_focal_crossentropy", metrics=["accuracy"])
        h = model.fit(x, y, batch_size=32, epochs=4, verbose=0,
                      sample_weight=np.where(y[:, 0] > 0, 3.0, 1.0))
        assert h.history["loss"][-1] < h.history["loss"][0]
        per, _ = reference(model.predict(x, verbose=0), y)
        np.testing.assert_allclose(model.evaluate(x, y, verbose=0)[0], per.mean(), rtol=1e-5)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_config_serialization_and_arguments():
    loss = losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.3, gamma=1.5,
                                          from_logits=True, label_smoothing=0.1, name="focal")
    config = loss.get_config()
    assert config == {"name": "focal", "reduction": "sum_over_batch_size", "from_logits": True,
                      "label_smoothing": 0.1, "apply_class_balancing": True, "alpha": 0.3,
                      "gamma": 1.5}
    again = losses.deserialize(losses.serialize(loss))
    assert isinstance(again, losses.BinaryFocalCrossentropy) and again.get_config() == config
    assert isinstance(losses.get("binary_focal_crossentropy"), losses.BinaryFocalCrossentropy)
    assert losses.serialize(losses.binary_focal_crossentropy) == "binary_focal_crossentropy"
    with pytest.raises(TypeError, match="`gamma` must be a number. Received: gamma='2'"):
        losses.BinaryFocalCrossentropy(gamma="2")
    with pytest.raises(TypeError, match="`alpha` must be a number"):
        losses.BinaryFocalCrossentropy(alpha=None)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.BinaryFocalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="axis"):
        losses.BinaryFocalCrossentropy(axis=0)
