"""Keras's BinaryFocalCrossentropy and CategoricalFocalCrossentropy: the engine's values and
gradients against Keras's formulas in float64 (with their clipping of probabilities to [1e-7,
1 - 1e-7], label smoothing, class balancing, the categorical one's normalization, and
logits), through every entry point, against finite differences, and their arguments and
config."""

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


CAT_PARAMS = [dict(), dict(gamma=0.0), dict(gamma=1.0, alpha=0.6), dict(gamma=0.5),
              dict(gamma=3.0, label_smoothing=0.2)]


def cat_reference(v, y, gamma=2.0, alpha=0.25, label_smoothing=0.0, from_logits=False):
    """Per-row losses and d(row loss)/d(v) of Keras's categorical focal cross-entropy in
    float64, v the predictions (normalized inside) or logits."""
    v, y = np.asarray(v, np.float64), np.asarray(y, np.float64)
    y = y * (1 - label_smoothing) + label_smoothing / v.shape[-1]
    if from_logits:
        e = np.exp(v - v.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
    else:
        p = v
    s = p.sum(axis=-1, keepdims=True)
    o = p / s
    oc = np.clip(o, EPS, HI)
    q = 1 - oc
    per = (-alpha * q ** gamma * y * np.log(oc)).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 0.0 if gamma == 0 else gamma * q ** (gamma - 1)
        g = np.where((o > EPS) & (o < HI), -alpha * y * (q ** gamma / oc - df * np.log(oc)), 0.0)
    dp = (g - (o * g).sum(axis=-1, keepdims=True)) / s
    if from_logits:
        dp = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
    return per, dp


@pytest.mark.parametrize("pred", ["simplex", "unnormalized", "logits"])
@pytest.mark.parametrize("kw", CAT_PARAMS, ids=[str(k) for k in CAT_PARAMS])
def test_categorical_values_match_the_formula(kw, pred):
    rng = np.random.default_rng(6)
    if pred == "simplex":
        v = rng.dirichlet(np.ones(5), 8).astype(np.float32)
        v[0] = [1, 0, 0, 0, 0]  # clipped
    elif pred == "unnormalized":
        v = rng.random((8, 5)).astype(np.float32) * 3
    else:
        v = (rng.normal(size=(8, 5)) * 3).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 8)]
    fl = pred == "logits"
    per, _ = cat_reference(v, y, from_logits=fl, **kw)
    np.testing.assert_allclose(losses.categorical_focal_crossentropy(y, v, from_logits=fl, **kw),
                               per, rtol=2e-5, atol=1e-7)
    w = rng.random(8).astype(np.float32)
    np.testing.assert_allclose(losses.CategoricalFocalCrossentropy(from_logits=fl, **kw)(
        y, v, sample_weight=w), (per * w).mean(), rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("out", ["softmax", "sigmoid", "logits"])
@pytest.mark.parametrize("kw", CAT_PARAMS, ids=[str(k) for k in CAT_PARAMS])
def test_categorical_gradient_matches_the_formula(kw, out):
    # A linear layer (then a softmax or sigmoid, or logits): dL/dW = x^T·dL/dv.
    rng = np.random.default_rng(7)
    x = rng.normal(size=(9, 5)).astype(np.float32)
    if not 0 < kw.get("gamma", 2.0) < 1:
        x[0] *= 60  # saturated probabilities: clipped
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 9)]
    inp = layers.Input((5,))
    dense = layers.Dense(4, bias_initializer="zeros")(inp)
    model = Model(inp, dense if out == "logits" else layers.Activation(out)(dense))
    model.compile(optimizer=optimizers.SGD(), loss=losses.CategoricalFocalCrossentropy(
        from_logits=out == "logits", **kw))
    v = model.predict(x, verbose=0)
    per, dv = cat_reference(v, y, from_logits=out == "logits", **kw)
    if out == "softmax":
        dv = v * (dv - (v * dv).sum(axis=-1, keepdims=True))
    elif out == "sigmoid":
        dv = dv * v * (1 - v)
    dv = dv / len(x)
    grads = model._compute_gradients(x, y)
    np.testing.assert_allclose(grads[0], x.T.astype(np.float64) @ dv, rtol=2e-4, atol=1e-7)
    np.testing.assert_allclose(grads[1], dv.sum(axis=0), rtol=2e-4, atol=1e-7)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), per.mean(), rtol=1e-5)


@pytest.mark.parametrize("kw", [dict(), dict(gamma=0.5, label_smoothing=0.1),
                                dict(from_logits=True)])
def test_categorical_backward_against_finite_differences(kw):
    rng = np.random.default_rng(8)
    inp = layers.Input((4,))
    h = layers.Dense(5, activation="tanh")(inp)
    out = layers.Dense(3, activation=None if kw.get("from_logits") else "softmax")(h)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 7)]
    fd_check(Model(inp, out), rng.normal(size=(7, 4)), y,
             losses.CategoricalFocalCrossentropy(**kw))


def test_categorical_trains_and_saves_its_arguments():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 1)]
    model = densitron.Sequential([layers.Input((6,)), layers.Dense(16, activation="relu"),
                                  layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_focal_crossentropy", metrics=["accuracy"])
    h = model.fit(x, y, batch_size=32, epochs=5, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    per, _ = cat_reference(model.predict(x, verbose=0), y)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0)[0], per.mean(), rtol=1e-5)
    loss = losses.CategoricalFocalCrossentropy(alpha=0.5, gamma=1.0, from_logits=True,
                                               label_smoothing=0.05)
    config = loss.get_config()
    assert config == {"name": "categorical_focal_crossentropy",
                      "reduction": "sum_over_batch_size", "from_logits": True,
                      "label_smoothing": 0.05, "alpha": 0.5, "gamma": 1.0}
    assert losses.deserialize(losses.serialize(loss)).get_config() == config
    with pytest.raises(TypeError, match="`gamma` must be a number"):
        losses.CategoricalFocalCrossentropy(gamma=[2])
