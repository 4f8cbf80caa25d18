"""sample_weight, class_weight and from_logits=True, against NumPy float64 references."""

import numpy as np
import pytest
from reference import rel_err

from densitron import layers, losses, optimizers
from densitron.models import Model


def linear_model(width, units, act=None):
    inp = layers.Input(shape=(width,))
    return Model(inp, layers.Dense(units, activation=act, bias_initializer="random_normal")(inp))


def log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


@pytest.mark.parametrize("kind", ["cce", "scce", "bce"])
def test_from_logits_loss_and_gradient(kind):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 5))
    units = 1 if kind == "bce" else 4
    model = linear_model(5, units)
    loss = {"cce": losses.CategoricalCrossentropy(from_logits=True),
            "scce": losses.SparseCategoricalCrossentropy(from_logits=True),
            "bce": losses.BinaryCrossentropy(from_logits=True)}[kind]
    model.compile(optimizer="sgd", loss=loss)
    k, b = (w.astype(np.float64) for w in model.get_weights())
    z = x @ k + b
    if kind == "bce":
        y = rng.integers(0, 2, (9, 1)).astype(float)
        ref = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
        dz = (1 / (1 + np.exp(-z)) - y) / 9
        target = y
    else:
        labels = rng.integers(0, 4, 9)
        onehot = np.eye(4)[labels]
        ref = -(onehot * log_softmax(z)).sum(1).mean()
        dz = (np.exp(log_softmax(z)) - onehot) / 9
        target = labels if kind == "scce" else onehot
    assert model.evaluate(x, target, verbose=0) == pytest.approx(ref, rel=1e-5)
    gk, gb = model._compute_gradients(x, target)
    assert rel_err(gk, x.T @ dz) < 1e-5 and rel_err(gb, dz.sum(0)) < 1e-5
    assert loss.get_config()["from_logits"] is True


def test_sample_weight_scales_loss_and_gradient_like_keras():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    sw = rng.uniform(0, 2, 8)
    model = linear_model(3, 2)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
    k, b = (w.astype(np.float64) for w in model.get_weights())
    err = x @ k + b - y
    # sum_over_batch_size: Σ w_i·loss_i / N (not divided by Σw)
    ref = np.sum(sw * (err ** 2).mean(1)) / 8
    assert model.evaluate(x, y, sample_weight=sw, verbose=0) == pytest.approx(ref, rel=1e-5)
    model.fit(x, y, sample_weight=sw, batch_size=8, epochs=1, shuffle=False, verbose=0)
    d = sw[:, None] * 2 * err / 2 / 8
    assert rel_err(model.get_weights()[0], k - 0.1 * x.T @ d) < 1e-5
    with pytest.raises(ValueError, match=r"Received: sample_weight with shape \(7,\)"):
        model.fit(x, y, sample_weight=sw[:7], verbose=0)


def test_class_weight_matches_the_equivalent_sample_weight():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 64)
    results = []
    for kwargs in ({"class_weight": {0: 1.0, 1: 3.0, 2: 0.5}},
                   {"sample_weight": np.array([1.0, 3.0, 0.5])[labels]}):
        model = linear_model(4, 3, "softmax")
        model.set_weights([np.full((4, 3), 0.1, np.float32), np.zeros(3, np.float32)])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        h = model.fit(x, labels, epochs=2, shuffle=False, verbose=0, **kwargs)
        results.append((h.history["loss"], model.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)
    model = linear_model(4, 3, "softmax")
    model.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="at the same time"):
        model.fit(x, labels, class_weight={0: 1.0}, sample_weight=np.ones(64), verbose=0)
    with pytest.raises(ValueError, match="Received: class_weight="):
        model.fit(x, labels, class_weight=[1.0, 2.0], verbose=0)


def test_class_weight_keys_are_matched_as_keras_matches_them():
    # Keras weighs a sample by class_weight.get(int(class id), 1.0): string keys ("0", as
    # json gives them) match no class and weigh nothing (densitron refused them; it now
    # trains as Keras, with a warning), 0.0 and np.int64(2) match 0 and 2, a negative key
    # a hinge loss's -1 labels (found by fuzzing).
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 64)

    def fit(labels, loss="sparse_categorical_crossentropy", units=3, act="softmax", **kwargs):
        model = linear_model(4, units, act)
        model.set_weights([np.full((4, units), 0.1, np.float32), np.zeros(units, np.float32)])
        model.compile(optimizer="sgd", loss=loss)
        return model.fit(x, labels, epochs=2, shuffle=False, verbose=0, **kwargs).history

    plain = fit(labels)
    with pytest.warns(UserWarning, match=r"\['0', '1', 2.5\] match none.*Received: "
                                         r"class_weight="):
        assert fit(labels, class_weight={"0": 3.0, "1": 2.0, 2.5: 4.0}) == plain
    weighted = fit(labels, sample_weight=np.array([3.0, 1.0, 0.5])[labels])
    assert fit(labels, class_weight={0.0: 3.0, np.int64(2): 0.5, 9: 7.0}) == weighted
    signs = np.where(x[:, 0] > 0, 1.0, -1.0).astype(np.float32)
    assert fit(signs, "hinge", 1, "tanh", class_weight={-1: 3.0, 1: 0.5}) == fit(
        signs, "hinge", 1, "tanh", sample_weight=np.where(signs < 0, 3.0, 0.5))


def test_class_weight_leaves_the_validation_split_unweighted():
    # Keras weighs the training samples by class; val_loss of a validation_split is the plain
    # loss of the held-out rows (it was weighted by class too, so EarlyStopping watched another
    # number than evaluate gives)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 40)
    model = linear_model(4, 3, "softmax")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    h = model.fit(x, labels, epochs=1, batch_size=8, shuffle=False, verbose=0,
                  class_weight={0: 0.2, 1: 5.0, 2: 1.0}, validation_split=0.25)
    assert h.history["val_loss"][0] == pytest.approx(
        model.evaluate(x[30:], labels[30:], verbose=0), rel=1e-6)
