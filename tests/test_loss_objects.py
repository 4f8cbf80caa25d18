"""Keras's loss objects called on arrays, `loss(y_true, y_pred, sample_weight=None)`: the
engine's value against Keras's formulas in float64 (tests/reference.py), over every loss, with
sample weights, on 1-D and 3-D predictions, and bad arguments."""

import numpy as np
import pytest
from densitron import losses
from reference import loss_and_grad

CASES = [  # (loss class, reference name, kwargs, prediction range, targets)
    (losses.CategoricalCrossentropy, "categorical_crossentropy", {}, "simplex", "onehot"),
    (losses.SparseCategoricalCrossentropy, "sparse_categorical_crossentropy", {}, "simplex",
     "ids"),
    (losses.BinaryCrossentropy, "binary_crossentropy", {}, "unit", "binary"),
    (losses.MeanSquaredError, "mean_squared_error", {}, "wide", "unit"),
    (losses.MeanAbsoluteError, "mean_absolute_error", {}, "wide", "unit"),
    (losses.MeanAbsolutePercentageError, "mean_absolute_percentage_error", {}, "wide", "unit"),
    (losses.MeanSquaredLogarithmicError, "mean_squared_logarithmic_error", {}, "unit", "unit"),
    (losses.CosineSimilarity, "cosine_similarity", {}, "wide", "unit"),
    (losses.Huber, "huber", {}, "wide", "unit"),
    (losses.LogCosh, "log_cosh", {}, "wide", "unit"),
    (losses.Hinge, "hinge", {}, "wide", "binary"),
    (losses.SquaredHinge, "squared_hinge", {}, "wide", "unit"),
    (losses.CategoricalHinge, "categorical_hinge", {}, "wide", "onehot"),
    (losses.KLDivergence, "kl_divergence", {}, "simplex", "simplex"),
    (losses.Poisson, "poisson", {}, "unit", "unit"),
]


def make(kind, rng, rows, cols):
    if kind == "simplex":
        a = rng.random((rows, cols)) + 0.05
        return a / a.sum(axis=1, keepdims=True)
    if kind == "unit":
        return rng.random((rows, cols))
    if kind == "wide":
        return rng.uniform(-2, 2, (rows, cols))
    if kind == "binary":
        return rng.integers(0, 2, (rows, cols)).astype(np.float64)
    ids = rng.integers(0, cols, rows)
    return ids.astype(np.float64) if kind == "ids" else np.eye(cols)[ids]


def per_sample(name, p, y):
    """Keras's per-sample losses in float64, one row at a time through the reference."""
    return np.array([loss_and_grad(name, p[r:r + 1], y[r:r + 1])[0] for r in range(len(p))])


@pytest.mark.parametrize("cls,name,kwargs,pred,target", CASES,
                         ids=[c[1] for c in CASES])
def test_loss_object_call_matches_keras_formula(cls, name, kwargs, pred, target):
    rng = np.random.default_rng(3)
    rows, cols = 13, 7
    p = make(pred, rng, rows, cols).astype(np.float32)
    y = make(target, rng, rows, cols)
    y_in = y.astype(np.int64) if target == "ids" else y.astype(np.float32)
    per = per_sample(name, p.astype(np.float64), y.reshape(rows, -1))
    loss = cls(**kwargs)
    got = loss(y_in, p)
    assert isinstance(got, np.float32)
    np.testing.assert_allclose(got, per.mean(), rtol=2e-5, atol=1e-6)
    w = rng.random(rows) * 2
    np.testing.assert_allclose(loss(y_in, p, sample_weight=w), (per * w).mean(),
                               rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(loss(y_in, p, sample_weight=0.5), per.mean() * 0.5,
                               rtol=2e-5, atol=1e-6)


def test_loss_object_call_over_extra_axes_and_one_dimensional_predictions():
    rng = np.random.default_rng(4)
    p = rng.random((4, 3, 5)).astype(np.float32)
    y = rng.random((4, 3, 5)).astype(np.float32)
    mse = losses.MeanSquaredError()
    # the loss over the last axis, averaged over the other two
    np.testing.assert_allclose(mse(y, p), ((p - y) ** 2).mean(), rtol=1e-5)
    w = rng.random((4, 3)).astype(np.float32)
    np.testing.assert_allclose(mse(y, p, sample_weight=w),
                               (((p - y) ** 2).mean(axis=-1) * w).mean(), rtol=1e-5)
    # 1-D: one sample whose last axis is the whole vector, as Keras reduces it
    np.testing.assert_allclose(mse(y[0, 0], p[0, 0]), ((p[0, 0] - y[0, 0]) ** 2).mean(),
                               rtol=1e-5)
    # a (batch,) target for (batch, 1) predictions gains the last axis
    bce = losses.BinaryCrossentropy()
    q = rng.random((6, 1)).astype(np.float32)
    t = rng.integers(0, 2, 6)
    np.testing.assert_allclose(bce(t, q), bce(t[:, None], q), rtol=1e-7)


def test_loss_object_call_on_logits_and_smoothed_targets():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(9, 4)).astype(np.float32)
    ids = rng.integers(0, 4, 9)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    want = -np.log(p[np.arange(9), ids]).mean()
    got = losses.SparseCategoricalCrossentropy(from_logits=True)(ids, z)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    onehot = np.eye(4)[ids]
    smoothed = onehot * 0.8 + 0.05
    got = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)(onehot, z)
    np.testing.assert_allclose(got, -(smoothed * np.log(p)).sum(1).mean(), rtol=1e-5)


@pytest.mark.parametrize("call,match", [
    (lambda: losses.MeanSquaredError()(np.ones((3, 2)), np.ones((3, 3))), "broadcastable"),
    (lambda: losses.MeanSquaredError()(np.ones((3, 2)), np.ones((0, 2))), "at least one"),
    (lambda: losses.MeanSquaredError()(np.ones(()), np.ones(())), "at least one"),
    (lambda: losses.MeanSquaredError()(np.ones((3, 2)), np.ones((3, 2)),
                                       sample_weight=np.ones(4)), "one value per sample"),
    (lambda: losses.SparseCategoricalCrossentropy()(np.array([0, 3]), np.ones((2, 3)) / 3),
     r"\[0, 3\)"),
    (lambda: losses.SparseCategoricalCrossentropy()(np.array([0.5, 1]), np.ones((2, 3)) / 3),
     "integers"),
    (lambda: losses.SparseCategoricalCrossentropy()(np.zeros((2, 3)), np.ones((2, 3)) / 3),
     "class ids of shape"),
    (lambda: losses.MeanSquaredError()("abc", np.ones((2, 3))), "array of numbers"),
])
def test_loss_object_call_rejects_bad_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        call()
    assert "Received" in str(info.value)


def test_loss_object_call_takes_any_array_layout_and_keeps_nan():
    rng = np.random.default_rng(6)
    p = np.asfortranarray(rng.random((5, 4)))  # float64, Fortran order
    y = rng.random((10, 4))[::2]  # strided
    y.setflags(write=False)
    want = ((p - y) ** 2).mean()
    np.testing.assert_allclose(losses.MeanSquaredError()(y, p), want, rtol=1e-5)
    p[2, 1] = np.nan
    assert np.isnan(losses.MeanSquaredError()(y, p))


FUNCTIONS = ["categorical_crossentropy", "sparse_categorical_crossentropy",
             "binary_crossentropy", "binary_focal_crossentropy",
             "categorical_focal_crossentropy", "mean_squared_error",
             "mean_absolute_error",
             "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
             "cosine_similarity", "huber", "log_cosh", "hinge", "squared_hinge",
             "categorical_hinge", "kl_divergence", "poisson", "dice", "tversky"]


@pytest.mark.parametrize("cls,name,kwargs,pred,target", CASES, ids=[c[1] for c in CASES])
def test_loss_functions_give_keras_per_sample_losses(cls, name, kwargs, pred, target):
    rng = np.random.default_rng(8)
    p = make(pred, rng, 3 * 4, 6).astype(np.float32)
    y = make(target, rng, 3 * 4, 6)
    per = per_sample(name, p.astype(np.float64), y.reshape(12, -1)).reshape(3, 4)
    y_in = y.reshape(3, 4) if target == "ids" else y.reshape(3, 4, 6)
    got = getattr(losses, name)(y_in, p.reshape(3, 4, 6))
    assert got.shape == (3, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got, per, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(cls().call(y_in, p.reshape(3, 4, 6)), got, rtol=0)


def test_loss_functions_compile_as_their_loss_and_save_by_name(tmp_path):
    from densitron import layers, models, utils

    rng = np.random.default_rng(9)
    x = rng.random((64, 4)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    results = []
    for loss in (losses.sparse_categorical_crossentropy, "sparse_categorical_crossentropy"):
        utils.set_random_seed(1)
        model = models.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss=loss)
        results.append(model.fit(x, y, epochs=2, verbose=0).history["loss"])
    assert results[0] == results[1]
    path = str(tmp_path / "m.keras")
    model.compile(optimizer="adam", loss=losses.huber)
    model.save(path)
    again = models.load_model(path)
    onehot = np.eye(3, dtype=np.float32)[y]
    assert again.evaluate(x, onehot, verbose=0) == model.evaluate(x, onehot, verbose=0)
    assert losses.serialize(losses.huber) == "huber"
    assert sorted(FUNCTIONS) == sorted(f.__name__ for f in losses._FUNCTIONS)
