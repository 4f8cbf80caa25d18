"""Losses written in Python (Keras's loss functions and Loss subclasses' call) traced into the
engine: values and gradients against their formulas in float64 (per sample, with the batch's
own mean or sum, weighted, on sequence outputs, on one output of two), finite differences,
the same training as the built-in loss they restate, 1 and 2 threads, saving with
custom_objects, and the functions the tracer refuses."""

import numpy as np
import pytest

import densitron
from densitron import Input, layers, losses, ops, optimizers
from densitron.models import Model
from test_gradients_fd import fd_check


def my_mse(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def pinball(y_true, y_pred):  # the quantile loss at 0.8
    e = y_true - y_pred
    return ops.mean(ops.maximum(0.8 * e, (0.8 - 1.0) * e), axis=-1)


def weighted_bce(y_true, y_pred):
    p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
    return -ops.mean(3.0 * y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p), axis=-1)


def _data(rows=96, features=6, outputs=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    y = (x[:, :outputs] * 2 + 0.1 * rng.normal(size=(rows, outputs))).astype(np.float32)
    return x, y, rng.random(rows).astype(np.float32)


def _model(outputs=2, activation=None, seed=1):
    densitron.utils.set_random_seed(seed)
    return densitron.Sequential([Input((6,)), layers.Dense(8, activation="tanh"),
                                 layers.Dense(outputs, activation=activation)])


@pytest.mark.parametrize("threads", [1, 2])
def test_a_function_restating_mse_trains_as_mse(threads):
    densitron.set_num_threads(threads)
    try:
        x, y, w = _data(600)
        runs = []
        for loss in (my_mse, "mse"):
            model = _model()
            model.compile(optimizer=optimizers.Adam(0.01), loss=loss, metrics=["mae"])
            h = model.fit(x, y, batch_size=32, epochs=3, verbose=0, sample_weight=w,
                          validation_split=0.2)
            runs.append((h.history, model.get_weights(), model.evaluate(x, y, verbose=0)))
        for key in runs[1][0]:
            np.testing.assert_allclose(runs[0][0][key], runs[1][0][key], rtol=1e-5)
        for a, b in zip(runs[0][1], runs[1][1]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(runs[0][2], runs[1][2], rtol=1e-5)
        assert runs[0][0]["loss"][-1] < runs[0][0]["loss"][0]
    finally:
        densitron.set_num_threads(2)


def _dense_grads(model, x, dv):
    """The two Dense layers' gradients for d(loss)/d(output) = dv (tanh hidden layer)."""
    k1, b1, k2, b2 = [w.astype(np.float64) for w in model.get_weights()]
    h = np.tanh(x.astype(np.float64) @ k1 + b1)
    dh = (dv @ k2.T) * (1 - h ** 2)
    return [x.T @ dh, dh.sum(0), h.T @ dv, dv.sum(0)]


@pytest.mark.parametrize("name", ["pinball", "weighted_bce", "batch_mean", "batch_sum"])
def test_values_and_gradients_match_the_formula(name):
    x, y, w = _data(40)
    activation = "sigmoid" if name == "weighted_bce" else None
    if name == "weighted_bce":
        y = (y > 0).astype(np.float32)
    fns = {"pinball": pinball, "weighted_bce": weighted_bce,
           "batch_mean": lambda t, p: ops.mean(ops.abs(t - p)),
           "batch_sum": lambda t, p: ops.sum(ops.square(t - p))}
    model = _model(activation=activation)
    model.compile(optimizer="sgd", loss=fns[name])
    p = model.predict(x, verbose=0).astype(np.float64)
    t = y.astype(np.float64)
    n = len(x)
    if name == "pinball":
        e = t - p
        per = np.maximum(0.8 * e, -0.2 * e).mean(1)
        dv = np.where(0.8 * e >= -0.2 * e, -0.8, 0.2) / 2 / n
        total = per.mean()
    elif name == "weighted_bce":
        q = np.clip(p, 1e-7, 1 - 1e-7)
        per = -(3 * t * np.log(q) + (1 - t) * np.log(1 - q)).mean(1)
        dq = -(3 * t / q - (1 - t) / (1 - q)) / 2 / n
        dv = dq * p * (1 - p)  # through the sigmoid
        total = per.mean()
    elif name == "batch_mean":
        total = np.abs(t - p).mean()
        dv = -np.sign(t - p) / t.size
    else:
        total = np.square(t - p).sum()
        dv = -2 * (t - p)
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=n, verbose=0), total,
                               rtol=1e-5)
    grads = model._compute_gradients(x, y)
    for g, want in zip(grads, _dense_grads(model, x, dv)):
        np.testing.assert_allclose(g, want, rtol=2e-4, atol=1e-6)
    # weighted, by batches of 16 (Keras's mean of the batch losses, by batch size): each
    # value times its sample's weight; a function reducing the batch itself takes the batch's
    # mean weight
    got = model.evaluate(x, y, batch_size=16, sample_weight=w, verbose=0)
    parts = []
    for i in range(0, n, 16):
        tb, pb, wb = t[i:i + 16], p[i:i + 16], w[i:i + 16].astype(np.float64)
        if name == "batch_mean":
            parts.append(np.abs(tb - pb).mean() * wb.mean() * len(tb))
        elif name == "batch_sum":
            parts.append(np.square(tb - pb).sum() * wb.mean() * len(tb))
        else:
            per_b = per[i:i + 16]
            parts.append((per_b * wb).sum())
    np.testing.assert_allclose(got, sum(parts) / n, rtol=1e-5)


@pytest.mark.parametrize("name", ["one_minus_r2", "centered", "batch_times_sample",
                                  "r2_metric_style"])
def test_batch_values_combined_with_tensors_against_finite_differences(name):
    # A batch's mean or sum combined with tensors or with another (each a value in every
    # row): its gradient reaches every value it reads (finite differences of the loss).
    fns = {
        "one_minus_r2": lambda t, p: ops.sum(ops.square(t - p)) /
        (ops.sum(ops.square(t - ops.mean(t))) + 1e-7),
        "centered": lambda t, p: ops.mean(ops.square((p - ops.mean(p)) - (t - ops.mean(t))),
                                          axis=-1),
        "batch_times_sample": lambda t, p: ops.mean(ops.abs(p)) * ops.mean(ops.square(t - p),
                                                                          axis=-1),
        "r2_metric_style": lambda t, p: 2.0 - ops.maximum(
            1 - ops.sum(ops.square(t - p)) / (ops.sum(ops.square(t - ops.mean(t))) + 1e-7),
            ops.mean(p) - 5.0),
    }
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(9, 6)), rng.normal(size=(9, 2)) + 1.0
    fd_check(_model(), x, y, fns[name])


def test_batch_values_combined_formula_by_batches():
    # 1 - R² over each batch (one value a batch, Keras's scalar: by the batch's mean weight)
    x, y, w = _data(40)
    model = _model()
    model.compile(optimizer="sgd", loss=lambda t, p: ops.sum(ops.square(t - p)) /
                  ops.sum(ops.square(t - ops.mean(t))))
    p = model.predict(x, verbose=0).astype(np.float64)
    t = y.astype(np.float64)
    parts = []
    for i in range(0, 40, 16):
        tb, pb, wb = t[i:i + 16], p[i:i + 16], w[i:i + 16].astype(np.float64)
        value = np.square(tb - pb).sum() / np.square(tb - tb.mean()).sum()
        parts.append(value * wb.mean() * len(tb))
    got = model.evaluate(x, y, batch_size=16, sample_weight=w, verbose=0)
    np.testing.assert_allclose(got, sum(parts) / 40, rtol=1e-5)


def test_backward_against_finite_differences_on_a_sequence_output():
    rng = np.random.default_rng(3)
    inp = Input((3, 4))
    out = layers.Dense(2)(layers.Dense(5, activation="tanh")(inp))

    def loss(y_true, y_pred):  # a log-cosh-like loss per step: (steps,) values a sample
        d = y_pred - y_true
        return ops.mean(ops.log((ops.exp(d) + ops.exp(-d)) / 2.0), axis=-1)

    fd_check(Model(inp, out), rng.normal(size=(6, 3, 4)), rng.normal(size=(6, 3, 2)), loss)


def test_one_output_of_two_with_loss_weights_and_metrics():
    x, y, _ = _data(64)
    cls = (y[:, :1] > 0).astype(np.float32)
    inp = Input((6,))
    h = layers.Dense(8, activation="relu")(inp)
    reg = layers.Dense(2, name="reg")(h)
    prob = layers.Dense(1, activation="sigmoid", name="prob")(h)
    model = Model(inp, [reg, prob])
    model.compile(optimizer="sgd", loss={"reg": pinball, "prob": "binary_crossentropy"},
                  loss_weights={"reg": 2.0, "prob": 0.5},
                  metrics={"reg": ["mae"], "prob": ["accuracy"]})
    logs = model.evaluate(x, {"reg": y, "prob": cls}, verbose=0, return_dict=True)
    p_reg, p_prob = model.predict(x, verbose=0)
    e = y - p_reg.astype(np.float64)
    want_reg = np.maximum(0.8 * e, -0.2 * e).mean()
    q = np.clip(p_prob.astype(np.float64), 1e-7, 1 - 1e-7)
    want_prob = -(cls * np.log(q) + (1 - cls) * np.log(1 - q)).mean()
    np.testing.assert_allclose(logs["reg_loss"], want_reg, rtol=1e-5)
    np.testing.assert_allclose(logs["prob_loss"], want_prob, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], 2.0 * want_reg + 0.5 * want_prob, rtol=1e-5)
    np.testing.assert_allclose(logs["reg_mae"], np.abs(e).mean(), rtol=1e-5)
    h = model.fit(x, {"reg": y, "prob": cls}, epochs=3, verbose=0)
    assert h.history["reg_loss"][-1] < h.history["reg_loss"][0]


def test_a_loss_subclass_and_the_wrapper_also_on_arrays():
    class Asymmetric(losses.Loss):
        def __init__(self, over=2.0, **kwargs):
            super().__init__(**kwargs)
            self.over = over

        def call(self, y_true, y_pred):
            e = y_pred - y_true
            return ops.mean(ops.square(e) + (self.over - 1.0) * ops.square(ops.maximum(e, 0.0)),
                            axis=-1)

    x, y, w = _data(32)
    model = _model()
    model.compile(optimizer="sgd", loss=Asymmetric(3.0))
    p = model.predict(x, verbose=0).astype(np.float64)
    e = p - y
    per = (e ** 2 + 2.0 * np.maximum(e, 0) ** 2).mean(1)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), per.mean(), rtol=1e-5)
    # on arrays, as Keras's loss objects: values, weighted and reduced
    np.testing.assert_allclose(Asymmetric(3.0)(y, p), per.mean(), rtol=1e-5)
    np.testing.assert_allclose(Asymmetric(3.0)(y, p, sample_weight=w), (per * w).mean(),
                               rtol=1e-5)
    wrapped = losses.LossFunctionWrapper(pinball)
    e2 = y - p
    np.testing.assert_allclose(wrapped(y, p), np.maximum(0.8 * e2, -0.2 * e2).mean(), rtol=1e-5)
    assert wrapped.name == "pinball"


def test_predict_and_recompiling_with_a_built_in_loss():
    x, y, _ = _data(32)
    model = _model()
    before = model.predict(x, verbose=0)
    model.compile(optimizer="sgd", loss=my_mse)
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)  # no targets needed
    custom = model.evaluate(x, y, verbose=0)
    model.compile(optimizer="sgd", loss="mse")
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), custom, rtol=1e-6)
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)


def test_saving_with_custom_objects_and_registration(tmp_path):
    x, y, _ = _data(32)
    model = _model()
    model.compile(optimizer="adam", loss=pinball, metrics=["mae"])
    model.fit(x, y, epochs=1, verbose=0)
    want = model.evaluate(x, y, verbose=0)
    path = str(tmp_path / "custom.keras")
    model.save(path)
    back = densitron.models.load_model(path, custom_objects={"pinball": pinball})
    np.testing.assert_allclose(back.evaluate(x, y, verbose=0), want, rtol=1e-6)
    with pytest.raises(ValueError, match="pinball.*custom_objects|custom_objects.*pinball"):
        densitron.models.load_model(path)

    @densitron.saving.register_keras_serializable(package="tests")
    def registered_mse(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    model.compile(optimizer="adam", loss=registered_mse)
    model.save(path)
    back = densitron.models.load_model(path)
    np.testing.assert_allclose(back.evaluate(x, y, verbose=0),
                               model.evaluate(x, y, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("fn,match", [
    (lambda t, p: np.tanh(p - t), "densitron.ops"),
    (lambda t, p: ops.power(p, ops.mean(t)), "batch axis"),
    (lambda t, p: 1.0, "must return a tensor"),
    (lambda t, p: layers.Dense(2)(p) - t, "not layers"),
], ids=["numpy", "batch_exponent", "number", "layer"])
def test_functions_the_tracer_refuses(fn, match):
    x, y, _ = _data(16)
    model = _model()
    model.compile(optimizer="sgd", loss=fn)
    with pytest.raises(ValueError, match=match) as info:
        model.fit(x, y, epochs=1, verbose=0)
    assert "Received" in str(info.value)
    model.compile(optimizer="sgd", loss="mse")  # the model still trains after the refusal
    model.fit(x, y, epochs=1, verbose=0)


def my_mae(y_true, y_pred):
    return ops.mean(ops.abs(y_true - y_pred), axis=-1)


def test_metric_functions_plain_and_weighted_match_the_built_in_metric(tmp_path):
    x, y, w = _data(96)
    model = _model()
    model.compile(optimizer="adam", loss="mse", metrics=["mae", my_mae],
                  weighted_metrics=[my_mae, "mae"])
    h = model.fit(x, y, batch_size=32, epochs=2, verbose=0, sample_weight=w,
                  validation_data=(x[:40], y[:40]))
    for a, b in (("mae", "my_mae"), ("weighted_mae", "weighted_my_mae"),
                 ("val_mae", "val_my_mae")):
        np.testing.assert_allclose(h.history[b], h.history[a], rtol=1e-6)
    logs = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0).astype(np.float64)
    per = np.abs(y - p).mean(1)
    np.testing.assert_allclose(logs["my_mae"], per.mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["weighted_my_mae"], (per * w).sum() / w.sum(), rtol=1e-5)
    # on its own, as Keras's MeanMetricWrapper
    m = densitron.metrics.MeanMetricWrapper(my_mae)
    m.update_state(y[:50], p[:50])
    m.update_state(y[50:], p[50:], sample_weight=np.full(46, 2.0))
    np.testing.assert_allclose(m.result(), (per[:50].sum() + 2 * per[50:].sum()) / 142,
                               rtol=1e-5)
    # a metric function beside a loss function, on an output with targets of their own shape
    model.compile(optimizer="sgd", loss=pinball, metrics=[my_mae])
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0, return_dict=True)["my_mae"],
                               per.mean(), rtol=1e-5)
    # saved by name, loaded through custom_objects
    path = str(tmp_path / "metric.keras")
    model.save(path)
    back = densitron.models.load_model(path, custom_objects={"pinball": pinball,
                                                             "my_mae": my_mae})
    assert back.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True), rel=1e-6)
    # a metric function reducing the batch itself cannot be weighted by samples
    model.compile(optimizer="sgd", loss="mse", weighted_metrics=[lambda t, p: ops.mean(p - t)])
    with pytest.raises(ValueError, match="reduces the batch itself.*Received"):
        model.evaluate(x, y, sample_weight=w, verbose=0)


def test_training_resumes_from_a_file_with_a_loss_function(tmp_path):
    x, y, _ = _data(96)
    model = _model()
    model.compile(optimizer="adam", loss=pinball)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = str(tmp_path / "resume.keras")
    model.save(path)
    back = densitron.models.load_model(path, custom_objects={"pinball": pinball})
    assert back.optimizer.iterations == model.optimizer.iterations == 6
    for m in (model, back):
        densitron.utils.set_random_seed(11)
        m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)


def rmse(y_true, y_pred):  # the classic: the batch's root mean square error
    return ops.sqrt(ops.mean(ops.square(y_pred - y_true)))


def test_a_root_mean_square_loss_and_metric_over_each_batch():
    x, y, w = _data(70)
    model = _model()
    model.compile(optimizer="sgd", loss=rmse, metrics=[rmse, "mae"])
    p = model.predict(x, verbose=0).astype(np.float64)
    t = y.astype(np.float64)
    batches = [slice(i, i + 16) for i in range(0, 70, 16)]
    per_batch = [np.sqrt(np.mean((p[b] - t[b]) ** 2)) for b in batches]
    sizes = [len(t[b]) for b in batches]
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    # the loss: Keras's mean of the batch losses by batch size; the metric: by batch
    np.testing.assert_allclose(logs["loss"], np.dot(per_batch, sizes) / 70, rtol=1e-5)
    np.testing.assert_allclose(logs["rmse"], np.mean(per_batch), rtol=1e-5)
    # weighted: each batch's loss times its mean sample weight
    wl = model.evaluate(x, y, batch_size=16, sample_weight=w, verbose=0)[0]
    np.testing.assert_allclose(
        wl, sum(v * w[b].mean() * n for v, b, n in zip(per_batch, batches, sizes)) / 70,
        rtol=1e-5)
    # the gradient over one batch: d sqrt(m)/dp = (p - t) / (n·sqrt(m)), m the mean square
    whole = np.sqrt(np.mean((p - t) ** 2))
    dv = (p - t) / (t.size * whole)
    grads = model._compute_gradients(x, y)
    for g, want in zip(grads, _dense_grads(model, x, dv)):
        np.testing.assert_allclose(g, want, rtol=2e-4, atol=1e-6)
    h = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    # the scalar's tail: numbers, abs, clip, a number over it
    model.compile(optimizer="sgd", loss=lambda a, b: 1.0 / (2.0 + ops.clip(
        abs(-ops.sum(ops.square(b - a)) * 0.5 + 3.0), 0.0, 1e6) ** 2))
    s = np.sum((model.predict(x, verbose=0).astype(np.float64) - t) ** 2)  # (after the fit)
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=70, verbose=0),
                               1 / (2 + abs(-s * 0.5 + 3.0) ** 2), rtol=1e-5)


def test_batch_values_combined_train_alike_on_one_and_two_threads():
    from test_threads import assert_trains_alike_on_one_and_two_threads

    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(512, 64)).astype(np.float32), rng.normal(size=(512, 4))

    def build():
        inp = Input((64,))
        out = layers.Dense(4)(layers.Dense(256, activation="relu")(inp))
        model = Model(inp, out)
        model.compile(optimizer="adam", loss=lambda t, p: ops.mean(
            ops.square((p - ops.mean(p)) - (t - ops.mean(t))), axis=-1) + 0.1 * ops.sum(
            ops.square(t - p)) / ops.sum(ops.square(t - ops.mean(t))))
        return model

    assert_trains_alike_on_one_and_two_threads(build, x, y, epochs=2, batch_size=128)


def test_a_batch_mean_in_the_model_keeps_the_users_batches():
    # x - ops.mean(x) inside the model (a Lambda): predict and evaluate run the user's
    # batches as they are (rows are not grouped into larger passes), as Keras does.
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(50, 3)).astype(np.float32), rng.normal(size=(50, 3))
    inp = Input((3,))
    model = Model(inp, layers.Lambda(lambda v: v - ops.mean(v))(inp))
    model.compile(optimizer="sgd", loss="mse")
    got = model.predict(x, batch_size=16, verbose=0)
    want = np.concatenate([x[i:i + 16] - x[i:i + 16].mean() for i in range(0, 50, 16)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    losses_by_batch = [np.mean((want[i:i + 16] - y[i:i + 16]) ** 2) * len(x[i:i + 16])
                       for i in range(0, 50, 16)]
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=16, verbose=0),
                               sum(losses_by_batch) / 50, rtol=1e-5)


@pytest.mark.parametrize("reduction", ["sum", "mean_with_sample_weight"])
def test_loss_reductions_gradients_and_training(reduction):
    rng = np.random.default_rng(10)
    fd_check(_model(), rng.normal(size=(7, 6)), rng.normal(size=(7, 2)),
             losses.MeanSquaredError(reduction=reduction))
    # 'sum' with SGD at rate lr trains as the default reduction at lr·batch (equal batches);
    # mean_with_sample_weight without weights as the default
    x, y, _ = _data(64)
    runs = []
    for red, lr in ((reduction, 0.01), ("sum_over_batch_size",
                                        0.01 * (16 if reduction == "sum" else 1))):
        densitron.utils.set_random_seed(3)
        model = _model()
        model.compile(optimizer=optimizers.SGD(lr), loss=losses.MeanSquaredError(reduction=red))
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_loss_reductions_refused():
    with pytest.raises(ValueError, match=r"Expected one of .*Received: reduction='avg'$"):
        losses.MeanSquaredError(reduction="avg")
    x, y, _ = _data(16)
    model = _model()
    model.compile(optimizer="sgd", loss=losses.MeanSquaredError(reduction=None))
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"per-sample values.*Received: reduction=None$"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"per-sample values.*Received: reduction=None$"):
        model.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    # evaluate reports the per-sample values' mean, as Keras's (the batch's mean loss)
    mean = losses.MeanSquaredError()(y, model.predict(x, verbose=0))
    assert model.evaluate(x, y, batch_size=5, verbose=0) == pytest.approx(float(mean), rel=1e-6)
    assert model.test_on_batch(x, y) == pytest.approx(float(mean), rel=1e-6)
    clf = densitron.Sequential([Input((6,)), layers.Dense(3, activation="softmax")])
    clf.compile(optimizer="sgd", loss=losses.SparseCategoricalCrossentropy(
        ignore_class=0, reduction="sum"))
    with pytest.raises(ValueError, match=r"ignore_class over the batch only.*"
                                         r"Received: reduction='sum'$"):
        clf.fit(x, np.zeros(16), verbose=0)


@pytest.mark.parametrize("make", [lambda: losses.Dice(), lambda: losses.Tversky(axis=-1),
                                  lambda: "dice", lambda: losses.tversky],
                         ids=["dice", "tversky_rows", "dice_name", "tversky_fn"])
def test_dice_and_tversky_gradients(make):
    rng = np.random.default_rng(11)
    inp = Input((6,))
    model = Model(inp, layers.Dense(3, activation="sigmoid")(layers.Dense(5, activation="tanh")(
        inp)))
    fd_check(model, rng.normal(size=(9, 6)), (rng.random((9, 3)) < 0.5).astype(float), make())


def test_generalized_cross_entropy_gradient_and_arguments():
    rng = np.random.default_rng(12)
    inp = Input((6,))
    model = Model(inp, layers.Dense(3, activation="softmax")(inp))
    fd_check(model, rng.normal(size=(9, 6)), rng.integers(0, 3, 9),
             losses.CategoricalGeneralizedCrossEntropy(q=0.3))
    with pytest.raises(ValueError, match=r"Received: q=1.5$"):
        losses.CategoricalGeneralizedCrossEntropy(q=1.5)
    assert losses.get("dice").get_config() == {"name": "dice", "reduction":
                                               "sum_over_batch_size", "axis": None}
    assert losses.serialize(losses.Tversky(alpha=0.2))["class_name"] == "Tversky"


def test_a_loss_subclass_overriding_dunder_call_traces_it():
    # Some Keras code overrides Loss.__call__ rather than call: it is traced the same way
    # (without sample weights: those then weigh as for a function's scalar).
    class MeanSquare(losses.Loss):
        def __call__(self, y_true, y_pred, sample_weight=None):
            return ops.mean(ops.square(y_true - y_pred))

    x, y, _ = _data(32)
    runs = []
    for loss in (MeanSquare(), lambda t, p: ops.mean(ops.square(t - p))):
        densitron.utils.set_random_seed(5)
        model = _model()
        model.compile(optimizer="sgd", loss=loss)
        history = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
        runs.append((history.history["loss"], model.get_weights()))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_targets_of_another_rank_meet_the_output_as_keras_gives_them():
    # Keras's squeeze_or_expand_to_same_rank before a loss function: regression targets of
    # shape (n,) for an output of (n, 1) come as (n, 1) (the tracer refused them, the shapes
    # not matching), and (n, 1) targets for an output of (n,) as (n,)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = x.sum(axis=1)

    def run(head, target, loss):
        inp = Input((4,))
        model = Model(inp, head(inp))
        model.set_weights([np.full((4, 1), 0.3, np.float32), np.zeros(1, np.float32)])
        model.compile(optimizer=optimizers.SGD(0.01), loss=loss, metrics=[my_mse])
        return model.fit(x, target, epochs=2, batch_size=8, shuffle=False, verbose=0).history

    column = lambda t: layers.Dense(1)(t)  # noqa: E731
    flat = lambda t: layers.Reshape(())(layers.Dense(1)(t))  # noqa: E731
    reference = run(column, y[:, None], "mse")["loss"]
    for head, target in ((column, y), (flat, y[:, None])):
        history = run(head, target, my_mse)
        np.testing.assert_allclose(history["loss"], reference, rtol=1e-6)
        np.testing.assert_allclose(history["my_mse"], reference, rtol=1e-6)
