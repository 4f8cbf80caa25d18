"""Keras's metric objects used on their own (update_state, result, reset_state, __call__):
values against their definitions, state across calls, and bad arguments. (Parity with Keras's
own objects: tests/test_keras_parity.py.)"""

import densitron
import numpy as np
import pytest
from densitron import metrics


def test_metric_state_accumulates_over_updates_and_resets():
    acc = metrics.SparseCategoricalAccuracy()
    assert acc.result() == 0.0  # before any update, as Keras's
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    acc.update_state(np.array([0, 0, 0]), p)  # 2 of 3
    assert acc.result() == np.float32(2 / 3)
    acc.update_state(np.array([[1]]), p[1:2])  # 3 of 4
    assert acc.result() == np.float32(3 / 4)
    acc.update_state(np.array([0]), p[1:2], sample_weight=4.0)  # 3 of 8
    assert acc.result() == np.float32(3 / 8)
    acc.reset_state()
    assert acc.result() == 0.0
    assert acc(np.array([0, 1, 0]), p) == np.float32(1.0)
    assert isinstance(acc.result(), np.float32)


def test_metric_over_a_sequence_averages_each_sample_first():
    mse = metrics.MeanSquaredError()
    y = np.zeros((2, 3, 1), np.float32)
    p = np.array([[[1], [1], [1]], [[0], [0], [2]]], np.float32)  # sample means 1 and 4/3
    mse.update_state(y, p)
    mse.update_state(np.zeros((1, 1, 1)), np.full((1, 1, 1), 3.0))  # one more sample: 9
    np.testing.assert_allclose(mse.result(), (1 + 4 / 3 + 9) / 3, rtol=1e-6)


def test_precision_counts_every_value():
    prec = metrics.Precision()
    prec.update_state([[1, 0, 1], [0, 0, 1]], [[0.9, 0.8, 0.1], [0.7, 0.2, 0.6]])
    assert prec.result() == np.float32(2 / 4)


def test_count_metrics_read_a_vector_as_one_value_samples():
    # Keras's confusion counts and AUC take a vector with one weight per value; the same as a
    # column of one-value samples.
    y, p = np.array([0, 1, 1, 0, 1]), np.array([0.2, 0.7, 0.4, 0.9, 0.6])
    w = np.array([1.0, 2.0, 0.5, 3.0, 1.5])
    for make in (metrics.Precision, metrics.AUC, lambda: metrics.RecallAtPrecision(0.5)):
        vector, column = make(), make()
        vector.update_state(y, p, sample_weight=w)
        column.update_state(y[:, None], p[:, None], sample_weight=w)
        assert vector.result() == column.result()
    prec = metrics.Precision()
    prec.update_state(y, p, sample_weight=w)
    assert prec.result() == np.float32((2.0 + 1.5) / (2.0 + 3.0 + 1.5))


@pytest.mark.parametrize("call,match", [
    (lambda m: m.update_state(np.zeros((2, 3)), np.zeros((2, 4))), "same shape"),
    (lambda m: m.update_state(np.zeros((2, 3)), np.zeros((0, 3))), "at least one"),
    (lambda m: m.update_state(np.zeros((2, 3)), np.zeros((2, 3)), sample_weight=np.ones(3)),
     "one value per sample"),
    (lambda m: m.update_state("x", np.zeros((2, 3))), "array of numbers"),
])
def test_metric_update_rejects_bad_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        call(metrics.MeanAbsoluteError())
    assert "Received" in str(info.value)


def test_metric_update_rejects_bad_class_ids_and_a_new_width():
    acc = metrics.SparseCategoricalAccuracy()
    with pytest.raises(ValueError, match="integers in"):
        acc.update_state(np.array([0, 3]), np.ones((2, 3)))
    with pytest.raises(ValueError, match="integers in"):
        acc.update_state(np.array([0.5, 1]), np.ones((2, 3)))
    with pytest.raises(ValueError, match="class id per sample"):
        acc.update_state(np.zeros((2, 3)), np.ones((2, 3)))
    acc.update_state(np.array([0, 1]), np.ones((2, 3)))
    with pytest.raises(ValueError, match="last axis"):
        acc.update_state(np.array([0, 1]), np.ones((2, 4)))
    assert acc.result() == np.float32(0.5)  # the refused updates left the state alone


def test_metric_functions_give_per_sample_values_and_compile_as_their_metric():
    from densitron import layers, models

    p = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], np.float32)
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy([1, 1], p), [1, 0])
    np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(np.eye(3)[[2, 1]], p, k=2),
                                  [1, 1])
    np.testing.assert_array_equal(metrics.binary_accuracy([[0, 1, 0]], p[:1]), [[1, 1, 1]])
    assert metrics.mean_squared_error is __import__("densitron").losses.mean_squared_error
    for name in ("huber", "binary_focal_crossentropy", "categorical_focal_crossentropy"):
        # (keras.metrics exports these loss functions too)
        assert getattr(metrics, name) is getattr(__import__("densitron").losses, name)
    inputs = layers.Input((3,))
    model = models.Model(inputs, layers.Dense(3, activation="softmax")(inputs))
    model.compile(loss="categorical_crossentropy",
                  metrics=[metrics.categorical_accuracy, metrics.mean_squared_error])
    y = np.eye(3, dtype=np.float32)[[1, 0]]
    logs = model.evaluate(p, y, verbose=0, return_dict=True)
    assert list(logs) == ["categorical_accuracy", "loss", "mean_squared_error"]  # (sorted)
    np.testing.assert_allclose(logs["mean_squared_error"],
                               ((model.predict(p, verbose=0) - y) ** 2).mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="Received"):  # NumPy math on a tensor: refused
        model.compile(loss="mse", metrics=[lambda y, p: np.tanh(p)])
        model.evaluate(p, y, verbose=0)


def test_ops_convert_to_numpy_and_tensor():
    from densitron import ops

    value = metrics.BinaryAccuracy()([[1, 0]], [[0.9, 0.2]])
    assert ops.convert_to_numpy(value) == 1.0
    out = ops.convert_to_tensor([[1, 2]], dtype="float32")
    assert isinstance(out, np.ndarray) and out.dtype == np.float32


def test_mean_and_sum_are_standalone_and_refused_in_compile():
    import densitron
    from densitron import layers

    mean = metrics.Mean()
    mean.update_state([1.0, 2.0, 6.0])
    mean.update_state([[4.0, 6.0]], sample_weight=[2.0])  # a sample's mean, weighted
    assert mean.result() == np.float32((1 + 2 + 6 + 2 * 5) / 5)
    total = metrics.Sum()
    assert total([[1.0, 2.0], [3.0, 4.0]], sample_weight=[1.0, 0.5]) == np.float32(3 + 3.5)
    with pytest.raises(ValueError, match=r"broadcast to the values' shape \(3,\). Received: "
                                         r"sample_weight with shape \(2,\)"):
        metrics.Mean().update_state([1.0, 2.0, 3.0], sample_weight=[1.0, 2.0])
    with pytest.raises(TypeError, match="Received: values="):
        metrics.Sum().update_state("many")
    model = densitron.Sequential([layers.Input((3,)), layers.Dense(2)])
    x, y = np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)
    for metric in (metrics.Mean(), "sum"):
        model.compile(optimizer="sgd", loss="mse", metrics=[metric])
        with pytest.raises(ValueError, match=r"not a metric of \(y_true, y_pred\).*Received: "):
            model.evaluate(x, y, verbose=0)


def test_correlation_inside_fit_reduces_the_last_axis_only():
    import densitron
    from densitron import layers

    model = densitron.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", metrics=[metrics.PearsonCorrelation(axis=0)])
    with pytest.raises(ValueError, match=r"last axis only \(axis=-1\). Received: axis=0"):
        model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), verbose=0)


def _iou_reference(t, q, w, n, ignore):
    """Per-class sums (true positives, predictions, targets) of id pairs in float64."""
    out = np.zeros(3 * n)
    for ti, qi, wi in zip(t, q, w):
        if not (-1 < ti < n and -1 < qi < n) or int(ti) == ignore:
            continue
        ti, qi = int(ti), int(qi)
        out[ti] += wi if ti == qi else 0.0
        out[n + qi] += wi
        out[2 * n + ti] += wi
    return out


@pytest.mark.parametrize("rows,cols", [(1, 1), (7, 1), (33, 3), (64, 5)])
def test_iou_sums_against_a_float64_confusion_matrix(rows, cols):
    from densitron import _core

    rng = np.random.default_rng(rows * 10 + cols)
    n = 4
    ids = lambda shape: rng.choice(  # noqa: E731 (ids, fractions, negatives, beyond, NaN)
        np.array([0, 1, 2, 3, 1.7, -0.5, -1.0, 4, 9, np.nan], np.float32), size=shape)
    w = rng.random(rows).astype(np.float32)
    yt, yp = ids((rows, cols)), ids((rows, cols))
    for ignore in (-1, 2):
        for weights in (None, w):
            ww = np.repeat(np.ones(rows) if weights is None else weights, cols)
            got = _core._metric_sums_on((True, 15, float(ignore), 0, -1, n, weights is not None),
                                        yt, yp, weights)
            want = _iou_reference(yt.ravel(), yp.ravel(), ww, n, ignore)
            np.testing.assert_allclose(got, want, rtol=1e-12)
    # BinaryIoU: class 1 where p >= threshold
    p = rng.random((rows, cols)).astype(np.float32)
    got = _core._metric_sums_on((True, 18, 0.4, 0, -1, 2, True), yt, p, w)
    want = _iou_reference(yt.ravel(), (p >= np.float32(0.4)).ravel().astype(float),
                          np.repeat(w, cols), 2, -1)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the rows' first highest values, of the predictions (targets as ids) or both
    pp = rng.integers(0, 3, (rows, n)).astype(np.float32)  # ties: the first one
    one_hot = np.eye(n, dtype=np.float32)[rng.integers(0, n, rows)]
    got = _core._metric_sums_on((True, 16, -1.0, 0, -1, n, True), yt[:, :1], pp, w)
    np.testing.assert_allclose(got, _iou_reference(yt[:, 0], pp.argmax(1), w, n, -1),
                               rtol=1e-12)
    got = _core._metric_sums_on((True, 17, 1.0, 0, -1, n, True), one_hot, pp, w)
    np.testing.assert_allclose(got, _iou_reference(one_hot.argmax(1), pp.argmax(1), w, n, 1),
                               rtol=1e-12)


@pytest.mark.parametrize("make,match", [
    (lambda: metrics.MeanIoU(num_classes=0), r"Received: num_classes=0$"),
    (lambda: metrics.MeanIoU(num_classes=2.5), r"Received: num_classes=2.5$"),
    (lambda: metrics.IoU(3, target_class_ids=[3]), r"Target class id 3 is out of range"),
    (lambda: metrics.IoU(3, target_class_ids=[]), r"Received: target_class_ids=\[\]$"),
    (lambda: metrics.IoU(3, [0], ignore_class="void"), r"Received: ignore_class='void'$"),
    (lambda: metrics.MeanIoU(3, axis=0), r"Received: axis=0$"),
    (lambda: metrics.BinaryIoU(threshold="half"), r"Received: threshold='half'$"),
    (lambda: metrics.OneHotMeanIoU(3, sparse_y_pred=True).update_state([[0, 1, 0]], [[1]]),
     r"Received: sparse_y_true=False, sparse_y_pred=True$"),
])
def test_iou_metrics_refuse_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_metric_function_of_one_value_a_batch_standalone():
    # Keras's Mean counts a batch's single value once (an R² over each batch).
    from densitron import ops

    def r2(t, p):
        return 1 - ops.sum(ops.square(t - p)) / ops.sum(ops.square(t - ops.mean(t)))

    m = metrics.MeanMetricWrapper(r2)
    t1, p1 = np.array([[1.0], [2.0], [4.0]]), np.array([[1.5], [2.0], [3.0]])
    t2, p2 = np.array([[0.0], [1.0]]), np.array([[0.5], [1.0]])
    m.update_state(t1, p1)
    m.update_state(t2, p2)

    def ref(t, p):
        return 1 - np.sum((t - p) ** 2) / np.sum((t - t.mean()) ** 2)

    np.testing.assert_allclose(m.result(), (ref(t1, p1) + ref(t2, p2)) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="Received: sample_weight"):
        m.update_state(t1, p1, sample_weight=[1.0, 2.0, 3.0])


def test_a_metric_subclass_of_the_users_standalone_and_in_compile():
    # Keras's guide example: state from add_variable, assign_add, result; standalone it runs
    # as written (densitron.ops on arrays); in compile it is traced into the engine (see
    # test_stateful_metrics.py): sigmoid outputs are never 0, so every positive target counts.
    import densitron
    from densitron import layers, ops

    class BinaryTruePositives(metrics.Metric):
        def __init__(self, name="binary_true_positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.true_positives = self.add_variable(shape=(), initializer="zeros",
                                                    name="true_positives")

        def update_state(self, y_true, y_pred, sample_weight=None):
            values = ops.logical_and(ops.equal(ops.cast(y_true, "bool"), True),
                                     ops.equal(ops.cast(y_pred, "bool"), True))
            values = ops.cast(values, self.dtype)
            if sample_weight is not None:
                values = ops.multiply(values, ops.cast(sample_weight, self.dtype))
            self.true_positives.assign_add(ops.sum(values))

        def result(self):
            return self.true_positives

    m = BinaryTruePositives()
    m.update_state([0, 1, 1, 1], [0, 1, 0, 1])
    m.update_state([1, 1], [1, 1], sample_weight=[0.5, 2.0])
    assert float(m.result()) == 4.5 and [v.name for v in m.variables] == ["true_positives"]
    m.reset_state()
    assert float(m.result()) == 0.0
    model = densitron.Sequential([layers.Input((4,)), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=[BinaryTruePositives()])
    x = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    history = model.fit(x, x[:, :1] > 0.5, batch_size=16, verbose=0).history
    assert history["binary_true_positives"] == [np.sum(x[:, 0] > 0.5)] > [0]


# --- sample weights as Keras's metrics take them, and Keras's variables --------------------
_RNG = np.random.default_rng(7)
_Y = _RNG.integers(0, 2, (5, 3)).astype(np.float32)
_P = _RNG.random((5, 3)).astype(np.float32)
_W_ROWS = np.array([1.0, 2.0, 0.0, 0.5, 3.0], np.float32)
_W_VALUES = _RNG.random((5, 3)).astype(np.float32)


def _weighted_mean(values, w):
    return np.sum(values * w) / np.sum(w)


def test_binary_accuracy_takes_a_weight_per_value():
    # Keras's binary_accuracy is a value per prediction: a vector is weighed value by value
    acc = metrics.BinaryAccuracy()
    acc.update_state([1, 0, 1], [0.9, 0.2, 0.4], sample_weight=[1, 1, 0])
    assert acc.result() == np.float32(1.0)
    hits = (_Y == (_P > 0.5)).astype(np.float64)
    for w, full in ((_W_ROWS, np.broadcast_to(_W_ROWS[:, None], _Y.shape)),
                    (_W_ROWS[:, None], np.broadcast_to(_W_ROWS[:, None], _Y.shape)),
                    (_W_VALUES, _W_VALUES), (2.0, np.ones(_Y.shape))):
        acc = metrics.BinaryAccuracy()
        acc.update_state(_Y, _P, sample_weight=w)
        np.testing.assert_allclose(acc.result(), _weighted_mean(hits, full), rtol=1e-6)
    # a weighted and an unweighted update: Keras's total and count (each sample's mean)
    acc = metrics.BinaryAccuracy()
    acc.update_state(_Y, _P, sample_weight=_W_VALUES)
    acc.update_state(_Y[:2], _P[:2])
    total = np.sum(np.mean(hits * _W_VALUES, axis=1)) + np.sum(np.mean(hits[:2], axis=1))
    np.testing.assert_allclose(acc.result(), total / (np.sum(np.mean(_W_VALUES, 1)) + 2),
                               rtol=1e-6)


def test_mean_metrics_weigh_their_values_as_keras_mean():
    sq = (_Y.astype(np.float64) - _P) ** 2
    rmse = metrics.RootMeanSquaredError()  # Keras's: the squared error of each value
    rmse.update_state(_Y, _P, sample_weight=_W_VALUES)
    np.testing.assert_allclose(rmse.result(), np.sqrt(_weighted_mean(sq, _W_VALUES)), rtol=1e-6)
    rmse = metrics.RootMeanSquaredError()
    rmse.update_state([1, 0, 1, 1], [0.9, 0.2, 0.4, 0.7], sample_weight=[1, 1, 0, 0.5])
    np.testing.assert_allclose(
        rmse.result(), np.sqrt((0.01 + 0.04 + 0.5 * 0.09) / 2.5), rtol=1e-6)
    mse = metrics.MeanSquaredError()  # a value per sample: one weight per sample
    mse.update_state(_Y, _P, sample_weight=_W_ROWS[:, None])
    np.testing.assert_allclose(mse.result(), _weighted_mean(sq.mean(1), _W_ROWS), rtol=1e-6)
    with pytest.raises(ValueError, match=r"one value per sample.*Received: sample_weight with "
                                         r"shape \(5, 3\)"):
        mse.update_state(_Y, _P, sample_weight=_W_VALUES)
    exact = metrics.Accuracy()  # (a function's values, per value)
    exact.update_state([[1, 2], [3, 4]], [[1, 0], [3, 4]], sample_weight=[[1, 3], [0, 2]])
    assert exact.result() == np.float32(3 / 6)


@pytest.mark.parametrize("make", [
    metrics.Precision, metrics.Recall, metrics.AUC, lambda: metrics.AUC(curve="PR"),
    metrics.TrueNegatives, lambda: metrics.Precision(thresholds=[0.3, 0.6]),
    lambda: metrics.SensitivityAtSpecificity(0.5)])
def test_count_metrics_take_a_weight_per_value(make):
    # Keras broadcasts the weights to y_pred: the same counts as every value a sample
    by_value, flat = make(), make()
    by_value.update_state(_Y, _P, sample_weight=_W_VALUES)
    flat.update_state(_Y.ravel(), _P.ravel(), sample_weight=_W_VALUES.ravel())
    np.testing.assert_array_equal(by_value.result(), flat.result())
    by_row, flat = make(), make()
    by_row.update_state(_Y, _P, sample_weight=_W_ROWS)
    flat.update_state(_Y.ravel(), _P.ravel(), sample_weight=np.repeat(_W_ROWS, 3))
    np.testing.assert_array_equal(by_row.result(), flat.result())


def test_precision_and_recall_weights_per_value_against_their_counts():
    positive, actual = _P > 0.5, _Y != 0
    tp = np.sum(_W_VALUES * (positive & actual))
    prec, rec = metrics.Precision(), metrics.Recall()
    prec.update_state(_Y, _P, sample_weight=_W_VALUES)
    rec.update_state(_Y.tolist(), _P.tolist(), sample_weight=_W_VALUES.tolist())
    np.testing.assert_allclose(prec.result(), tp / np.sum(_W_VALUES * positive), rtol=1e-6)
    np.testing.assert_allclose(rec.result(), tp / np.sum(_W_VALUES * actual), rtol=1e-6)
    with pytest.raises(ValueError, match=r"Received: sample_weight with shape \(2,\)"):
        metrics.Precision().update_state(_Y, _P, sample_weight=[1.0, 2.0])
    # by rows (class_id, top_k): one weight per sample, as before
    with pytest.raises(ValueError, match="one value per sample"):
        metrics.Precision(class_id=1).update_state(_Y, _P, sample_weight=_W_VALUES)


def test_metric_variables_are_kerass_state():
    def state(metric):
        return [(v.name, v.shape) for v in metric.variables]

    auc = metrics.AUC()
    assert state(auc) == [(name, (200,)) for name in (
        "true_positives", "false_positives", "true_negatives", "false_negatives")]
    assert all(not v.numpy().any() for v in auc.variables)
    assert state(metrics.Precision(thresholds=[0.2, 0.7])) == [
        ("true_positives", (2,)), ("false_positives", (2,))]
    assert state(metrics.Recall()) == [("true_positives", (1,)), ("false_negatives", (1,))]
    assert state(metrics.TruePositives()) == [("accumulator", (1,))]
    assert state(metrics.MeanSquaredError()) == [("total", ()), ("count", ())]
    assert state(metrics.Sum()) == [("total", ())]
    assert state(metrics.AUC(multi_label=True)) == []  # made by the first update, as Keras's

    auc = metrics.AUC(num_thresholds=5)
    auc.update_state(_Y, _P, sample_weight=_W_ROWS)
    w = np.broadcast_to(_W_ROWS[:, None], _Y.shape)
    thresholds = np.array([-1e-7, 0.25, 0.5, 0.75, 1 + 1e-7])
    above = _P[None] > thresholds[:, None, None]  # (thresholds, rows, cols)
    actual = _Y != 0
    want = [np.sum(w * (above & actual), axis=(1, 2)), np.sum(w * (above & ~actual), axis=(1, 2)),
            np.sum(w * (~above & ~actual), axis=(1, 2)), np.sum(w * (~above & actual), axis=(1, 2))]
    for v, expected in zip(auc.variables, want):
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-5, atol=1e-6)
    multi = metrics.AUC(num_thresholds=5, multi_label=True)
    multi.update_state(_Y, _P)
    np.testing.assert_allclose(multi.variables[0].numpy(),
                               np.sum(above & actual, axis=1), rtol=1e-6)

    prec = metrics.Precision()
    prec.update_state(_Y, _P, sample_weight=_W_VALUES)
    tp, fp = (v.numpy() for v in prec.variables)
    np.testing.assert_allclose(tp, [np.sum(_W_VALUES * ((_P > 0.5) & actual))], rtol=1e-6)
    np.testing.assert_allclose(fp, [np.sum(_W_VALUES * ((_P > 0.5) & ~actual))], rtol=1e-6)
    mse = metrics.MeanSquaredError()
    mse.update_state(_Y, _P, sample_weight=_W_ROWS)
    total, count = (float(v.numpy()) for v in mse.variables)
    np.testing.assert_allclose(total, np.sum(((_Y - _P) ** 2).mean(1) * _W_ROWS), rtol=1e-5)
    assert count == pytest.approx(float(np.sum(_W_ROWS)))
    assert mse.variables[0].path == "mean_squared_error/total"
    mse.reset_state()
    assert [float(v.numpy()) for v in mse.variables] == [0.0, 0.0]


def test_compiled_loss_metrics_on_sequence_outputs_average_every_value():
    # Keras's mae/mse/... metrics on a (batch, steps, features) output: the mean over every
    # sample and step (they came out times the steps: each step's values summed per sample)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3, 2)).astype(np.float32)
    y = rng.normal(size=(8, 3, 4)).astype(np.float32)
    model = densitron.Sequential([densitron.Input((3, 2)), densitron.layers.Dense(4)])
    model.compile(optimizer="sgd", loss="mse",
                  metrics=["mae", "mse", densitron.metrics.RootMeanSquaredError(),
                           densitron.metrics.MeanAbsoluteError(name="mae_obj")],
                  weighted_metrics=["mae"])
    p = model.predict(x, verbose=0).astype(np.float64)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    mae, mse = np.abs(p - y).mean(), ((p - y) ** 2).mean()
    assert logs["mae"] == pytest.approx(mae, rel=1e-5)
    assert logs["mae_obj"] == pytest.approx(mae, rel=1e-5)
    assert logs["mse"] == pytest.approx(mse, rel=1e-5) == pytest.approx(logs["loss"])
    assert logs["root_mean_squared_error"] == pytest.approx(np.sqrt(mse), rel=1e-5)
    w = rng.random(8)
    logs = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    per_sample = np.abs(p - y).mean(axis=(1, 2))
    assert logs["weighted_mae"] == pytest.approx((per_sample * w).sum() / w.sum(), rel=1e-5)
