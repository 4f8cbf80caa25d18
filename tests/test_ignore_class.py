"""SparseCategoricalCrossentropy(ignore_class=...): targets of that class id take no loss and
no gradient, and a batch's loss is the (weighted) sum over the other targets divided by their
count, 0 when there are none (Keras's mask reduction), so evaluate keeps the given batches.
Values and gradients against that formula in float64, through a fused softmax, on logits and
on sequence outputs (several targets a sample), against finite differences, on 1 and 2
threads; the arguments, the ids it lets through and its config."""

import numpy as np
import pytest

import densitron
from densitron import layers, losses, optimizers
from densitron.models import Model
from test_gradients_fd import fd_check


def reference(v, ids, ignore, from_logits=False, weights=None):
    """Per-target losses (0 where ignored) and d(batch loss)/dv, float64; v (..., classes)."""
    v = v.astype(np.float64).reshape(-1, v.shape[-1])
    ids = ids.reshape(-1)
    if from_logits:
        e = np.exp(v - v.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
    else:
        p = v / v.sum(axis=1, keepdims=True)
    valid = ids != ignore
    onehot = np.zeros_like(p)
    onehot[np.flatnonzero(valid), ids[valid].astype(int)] = 1.0
    q = np.clip(p, 1e-7, 1 - 1e-7)
    picked = np.sum(onehot * (p if from_logits else q), axis=1)
    per = np.where(valid, -np.log(np.where(valid, picked, 1.0)), 0.0)
    w = np.ones(len(ids)) if weights is None else np.repeat(weights, len(ids) // len(weights))
    count = max(int(valid.sum()), 1)
    if from_logits:
        dv = (p - onehot) * (w * valid)[:, None] / count
    else:  # through q = p / Σp: -1/q at the target
        dq = -onehot / q
        dv = (dq - np.sum(dq * q, axis=1, keepdims=True)) / v.sum(axis=1, keepdims=True)
        dv = dv * (w * valid)[:, None] / count
    return per, dv, (per * w).sum() / count if valid.any() else 0.0


@pytest.mark.parametrize("ignore", [-1, 0, 2, 255])
def test_values_and_reduction_match_the_formula(ignore):
    rng = np.random.default_rng(1)
    p = rng.random((12, 4)).astype(np.float32) + 0.05
    p /= p.sum(axis=1, keepdims=True)
    ids = rng.integers(0, 4, 12)
    ids[[1, 4, 5, 9]] = ignore
    w = rng.random(12).astype(np.float32)
    loss = losses.SparseCategoricalCrossentropy(ignore_class=ignore)
    per, _, total = reference(p, ids, ignore)
    np.testing.assert_allclose(loss.call(ids, p), per, rtol=1e-6)
    assert loss.call(ids, p)[1] == 0.0
    np.testing.assert_allclose(loss(ids, p), total, rtol=1e-6)
    np.testing.assert_allclose(loss(ids, p, sample_weight=w),
                               reference(p, ids, ignore, weights=w)[2], rtol=1e-6)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(ids, p, ignore_class=ignore),
                               per, rtol=1e-6)
    assert loss(np.full(12, ignore), p) == 0.0  # nothing counted: 0, as divide_no_nan
    # without ignore_class every target counts
    plain = np.where(ids == ignore, 3, ids)
    np.testing.assert_allclose(losses.SparseCategoricalCrossentropy()(plain, p),
                               reference(p, plain, 99)[2], rtol=1e-6)


def _model(from_logits, steps=None, units=4):
    inp = layers.Input((5,) if steps is None else (steps, 5))
    out = layers.Dense(units, kernel_initializer="glorot_uniform", bias_initializer="zeros")(inp)
    act = "linear" if from_logits else "softmax"
    return Model(inp, layers.Activation(act)(out))


@pytest.mark.parametrize("steps", [None, 3])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("ignore", [-1, 1])
def test_gradient_and_evaluate_match_the_formula(ignore, from_logits, steps):
    # a linear layer then softmax (fused: p - y) or logits: dL/dW = x^T·dL/dv, dL/db = Σ dL/dv
    rng = np.random.default_rng(2)
    rows = 10
    shape = (rows, 5) if steps is None else (rows, steps, 5)
    x = rng.normal(size=shape).astype(np.float32)
    ids = rng.integers(0, 4, (rows,) if steps is None else (rows, steps))
    ids.reshape(-1)[[0, 3, 7]] = ignore
    model = _model(from_logits, steps)
    model.compile(optimizer=optimizers.SGD(), loss=losses.SparseCategoricalCrossentropy(
        from_logits=from_logits, ignore_class=ignore))
    v = model.predict(x, verbose=0)
    w = rng.random(rows).astype(np.float32)
    per, dv, total = reference(v, ids, ignore, from_logits)
    if not from_logits:  # back through the softmax to the Dense outputs
        p = v.reshape(-1, 4).astype(np.float64)
        dv = p * (dv - np.sum(dv * p, axis=1, keepdims=True))
    grads = model._compute_gradients(x, ids)
    xs = x.reshape(-1, 5).astype(np.float64)
    np.testing.assert_allclose(grads[0], xs.T @ dv, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(grads[1], dv.sum(axis=0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(model.evaluate(x, ids, batch_size=rows, verbose=0), total,
                               rtol=1e-5)
    # by batches of 4: Keras's mean of the batch losses, weighted by the batch sizes
    want = sum(reference(v[i:i + 4], ids[i:i + 4], ignore, from_logits,
                         weights=w[i:i + 4])[2] * len(ids[i:i + 4])
               for i in range(0, rows, 4)) / rows
    np.testing.assert_allclose(model.evaluate(x, ids, batch_size=4, sample_weight=w, verbose=0),
                               want, rtol=1e-5)


def test_a_batch_of_ignored_targets_takes_no_step():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    model = _model(False)
    model.compile(optimizer=optimizers.SGD(0.5),
                  loss=losses.SparseCategoricalCrossentropy(ignore_class=-1))
    before = model.get_weights()
    grads = model._compute_gradients(x, np.full(8, -1))
    assert all(not np.any(g) for g in grads)
    logs = model.train_on_batch(x, np.full(8, -1), return_dict=True)
    assert logs["loss"] == 0.0
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("from_logits", [False, True])
def test_backward_against_finite_differences(from_logits):
    rng = np.random.default_rng(4)
    inp = layers.Input((3, 4))
    h = layers.Dense(5, activation="tanh")(inp)
    out = layers.Dense(3, activation=None if from_logits else "softmax")(h)
    ids = rng.integers(0, 3, (6, 3))
    ids[0, 1] = ids[2, 0] = ids[5, 2] = 2  # the ignored class, in range
    fd_check(Model(inp, out), rng.normal(size=(6, 3, 4)), ids,
             losses.SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=2))


def test_trains_on_one_and_two_threads_with_validation_and_metrics():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    ids = np.argmax(x[:, :3], axis=1)
    ids[rng.random(400) < 0.3] = -1  # padding
    results = []
    for threads in (1, 2):
        densitron.set_num_threads(threads)
        densitron.utils.set_random_seed(7)
        model = densitron.Sequential([layers.Input((6,)), layers.Dense(16, activation="relu"),
                                      layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", metrics=["accuracy"],
                      loss=losses.SparseCategoricalCrossentropy(ignore_class=-1))
        h = model.fit(x, ids, batch_size=32, epochs=5, verbose=0, validation_split=0.25)
        assert h.history["loss"][-1] < h.history["loss"][0]
        p = model.predict(x[300:], verbose=0)
        valid = ids[300:] != -1
        # the accuracy counts every target, the ignored ones as misses (Keras's metric sees
        # no mask)
        np.testing.assert_allclose(h.history["val_accuracy"][-1],
                                   np.mean((np.argmax(p, axis=1) == ids[300:]) & valid),
                                   rtol=1e-6)
        results.append(model.get_weights())
    densitron.set_num_threads(2)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_arguments_ids_and_config():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1, name="s")
    config = loss.get_config()
    assert config["ignore_class"] == -1 and config["from_logits"] is True
    assert losses.SparseCategoricalCrossentropy.from_config(config).ignore_class == -1
    assert losses.deserialize(losses.serialize(loss)).ignore_class == -1
    assert losses.SparseCategoricalCrossentropy().get_config()["ignore_class"] is None
    for bad in (1.5, "1", True):
        with pytest.raises(ValueError, match="ignore_class"):
            losses.SparseCategoricalCrossentropy(ignore_class=bad)
    with pytest.raises(TypeError, match="ignore_class"):
        losses.CategoricalCrossentropy(ignore_class=1)
    # ids other than the ignored one must still be classes of the output
    model = _model(False)
    model.compile(optimizer="sgd", loss=losses.SparseCategoricalCrossentropy(ignore_class=-1))
    x = np.zeros((3, 5), np.float32)
    model.evaluate(x, np.array([0, -1, 3]), verbose=0)
    with pytest.raises(ValueError, match="or the ignore_class -1.*Received"):
        model.fit(x, np.array([0, -2, 3]), verbose=0)
    with pytest.raises(ValueError, match="Received"):
        losses.SparseCategoricalCrossentropy(ignore_class=-1)(np.array([0, 4]),
                                                              np.full((2, 4), 0.25))
