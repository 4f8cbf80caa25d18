"""Metric subclasses with their own update_state in compile (Keras's way to write a stateful
metric): update_state traced into the engine, each variable's assign_add of a batch's sum
summed over the batches, result() computed from the variables. Checked against Keras's own
evaluate on the same weights, with the Keras guides' examples; misuse refused clearly."""

import numpy as np
import pytest

import densitron
from densitron import layers, ops
from keras_guides import metric_classes


D_CTP, D_BTP, D_F1, D_MAXIMA, D_MACRO = metric_classes(densitron.metrics, ops)


def _models(keras, units, activation):
    def build(ns_layers, Input, Model):
        inputs = Input(shape=(6,))
        h = ns_layers.Dense(8, activation="relu")(inputs)
        return Model(inputs, ns_layers.Dense(units, activation=activation)(h))

    kmodel = build(keras.layers, keras.Input, keras.Model)
    dmodel = build(layers, layers.Input, densitron.Model)
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=tuple(w.shape)).astype(np.float32) for w in kmodel.weights]
    kmodel.set_weights(weights)
    dmodel.set_weights(weights)
    return kmodel, dmodel


def _x(rows, seed):
    return np.random.default_rng(seed).normal(size=(rows, 6)).astype(np.float32)


def _evaluate_alike(kmodel, dmodel, x, y, batch_size):
    klogs = kmodel.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    dlogs = dmodel.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    assert sorted(dlogs) == sorted(klogs)
    for key in klogs:
        np.testing.assert_allclose(dlogs[key], klogs[key], rtol=1e-5, atol=1e-6, err_msg=key)
    return dlogs


def test_categorical_true_positives_of_keras_guide_evaluate_as_in_keras(keras):
    K_CTP = metric_classes(keras.metrics, keras.ops)[0]
    kmodel, dmodel = _models(keras, 3, "softmax")
    x = _x(90, 1)
    y = np.random.default_rng(2).integers(0, 3, (90, 1)).astype(np.int32)
    for model, cls in ((kmodel, K_CTP), (dmodel, D_CTP)):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                      metrics=[cls(), "accuracy"])
    logs = _evaluate_alike(kmodel, dmodel, x, y, 16)
    pred = dmodel.predict(x, verbose=0)
    assert logs["categorical_true_positives"] == np.sum(np.argmax(pred, 1) == y[:, 0]) > 0


@pytest.mark.parametrize("which", [1, 2, 3])
def test_binary_counts_f1_and_batch_values_evaluate_as_in_keras(keras, which):
    k_cls = metric_classes(keras.metrics, keras.ops)[which]
    d_cls = (D_CTP, D_BTP, D_F1, D_MAXIMA)[which]
    kmodel, dmodel = _models(keras, 1, "sigmoid")
    x = _x(100, 4)
    y = (x[:, :1] + 0.5 * x[:, 1:2] > 0).astype(np.float32)
    for model, cls in ((kmodel, k_cls), (dmodel, d_cls)):
        model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=[cls(), "accuracy"])
    for batch_size in (16, 100, 7):
        _evaluate_alike(kmodel, dmodel, x, y, batch_size)


def test_per_class_counts_in_vector_variables_evaluate_as_in_keras(keras):
    # sum(x, axis=0): one engine sum a class; combined with another such sum and numbers; the
    # same tensor added to two variables. result() reads every variable (as Keras's does).
    K_MACRO = metric_classes(keras.metrics, keras.ops)[4]
    kmodel, dmodel = _models(keras, 4, "softmax")
    x = _x(90, 7)
    y = np.eye(4, dtype=np.float32)[np.random.default_rng(8).integers(0, 4, 90)]
    metric = D_MACRO(4)
    kmodel.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=[K_MACRO(4)])
    dmodel.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=[metric])
    for batch_size in (16, 90):
        logs = _evaluate_alike(kmodel, dmodel, x, y, batch_size)
    pred = dmodel.predict(x, verbose=0)
    hit = (pred >= pred.max(axis=1, keepdims=True)).astype(np.float32)
    np.testing.assert_array_equal(metric.tp.numpy(), (hit * y).sum(axis=0))  # its state
    np.testing.assert_array_equal(metric.fp.numpy(), (hit * (1 - y)).sum(axis=0))
    assert logs["macro_f1"] > 0


def test_fit_logs_and_validation_logs_are_the_metric_over_the_epoch():
    # With a learning rate of 0 the epoch's predictions are evaluate's: the same counts; the
    # metric object holds the last log's state afterwards (its result()).
    x = _x(200, 5)
    y = (x[:, :1] > 0).astype(np.float32)
    inputs = layers.Input((6,))
    model = densitron.Model(inputs, layers.Dense(1, activation="sigmoid")(inputs))
    metric = D_F1()
    model.compile(optimizer=densitron.optimizers.SGD(0.0), loss="binary_crossentropy",
                  metrics=[metric, D_BTP()])
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0,
                        validation_data=(x[:50], y[:50])).history
    p = (model.predict(x, verbose=0) > 0.5).astype(np.float32)
    tp, fp, fn = (p * y).sum(), (p * (1 - y)).sum(), ((1 - p) * y).sum()
    precision, recall = tp / (tp + fp + 1e-7), tp / (tp + fn + 1e-7)
    f1 = 2 * precision * recall / (precision + recall + 1e-7)
    np.testing.assert_allclose(history["f1"], [f1, f1], rtol=1e-6)
    assert history["binary_true_positives"] == [tp, tp]
    pv = p[:50]
    assert history["val_binary_true_positives"] == [(pv * y[:50]).sum()] * 2
    assert float(metric.result()) == pytest.approx(history["val_f1"][-1])
    logs = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    assert logs["f1"] == pytest.approx(f1, rel=1e-6)


def test_standalone_use_on_arrays_still_works():
    metric = D_F1()
    y = np.array([[1.0], [0.0], [1.0], [1.0]], np.float32)
    metric.update_state(y, np.array([[0.9], [0.8], [0.2], [0.7]], np.float32))
    assert float(metric.result()) == pytest.approx(2 / 3, rel=1e-5)
    metric.reset_state()
    assert float(metric.tp) == 0.0


def _compile_and_fit(metric, weighted=False):
    x = _x(64, 6)
    y = (x[:, :1] > 0).astype(np.float32)
    inputs = layers.Input((6,))
    model = densitron.Model(inputs, layers.Dense(1, activation="sigmoid")(inputs))
    model.compile(optimizer="sgd", loss="binary_crossentropy",
                  **({"weighted_metrics": [metric]} if weighted else {"metrics": [metric]}))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)


class _Misused(densitron.metrics.Metric):
    def __init__(self, mode, **kwargs):
        super().__init__(name="misused", **kwargs)
        self.mode = mode
        self.v = self.add_variable(shape=(3,) if mode == "vector" else (), name="v")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.mode == "assign":
            self.v.assign(ops.sum(y_pred))
        elif self.mode == "columns":
            self.v.assign_add(ops.sum(y_pred, axis=0))
        elif self.mode in ("vector", "number"):
            self.v.assign_add(ops.sum(y_pred) if self.mode == "vector" else 1.0)
        elif self.mode == "per_sample":
            self.v.assign_add(y_pred * 2.0)
        elif self.mode == "branch":
            if ops.max(y_pred, axis=-1) > 0:  # a Python choice on a symbolic value
                self.v.assign_add(ops.sum(y_pred))

    def result(self):
        return self.v


@pytest.mark.parametrize("mode, match", [
    ("assign", "assign_add.*not assign"),
    ("vector", "shape \\(3,\\) grows by ops.sum\\(x, axis=0\\).*variable 'v'"),
    ("columns", "of 1 columns adds to a variable of shape \\(1,\\).*shape \\(\\)"),
    ("number", "only numbers added"),
    ("per_sample", "one value a batch.*shape \\(None, 1\\)"),
    ("branch", "no truth value"),
])
def test_what_cannot_be_traced_is_refused_clearly(mode, match):
    with pytest.raises(ValueError, match=match):
        _compile_and_fit(_Misused(mode))


def test_weighted_stateful_metric_is_refused():
    with pytest.raises(ValueError, match="list it in `metrics`.*weighted_metrics"):
        _compile_and_fit(D_F1(), weighted=True)


def test_symbolic_casts_comparisons_and_truth_values():
    # cast to bool: nonzero; to int: truncated toward zero; == and != give masks, as Keras's;
    # a comparison with a bool; a symbolic tensor has no truth value.
    x = np.array([[-1.7, -0.2, 0.0, 0.4, 2.9, 3.0]], np.float32)
    inputs = layers.Input((6,))
    outs = [ops.cast(inputs, "bool"), ops.cast(inputs, "int32"), ops.cast(inputs, "uint8"),
            ops.cast(inputs * 2.0, "float64"), inputs == 0.4, inputs != 3.0,
            ops.cast(inputs, "int32") == inputs, ops.equal(ops.cast(inputs, "bool"), True),
            ops.not_equal(False, ops.cast(inputs, "bool"))]
    model = densitron.Model(inputs, outs)
    got = model.predict(x, verbose=0)
    want = [x != 0, np.trunc(x), np.trunc(x), 2 * x, x == np.float32(0.4), x != 3.0,
            np.trunc(x) == x, x != 0, x != 0]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w.astype(np.float32))
    with pytest.raises(TypeError, match="no truth value"):
        bool(inputs > 0)
    assert len({inputs, outs[0]}) == 2  # hashable by identity
    with pytest.raises(ValueError, match="float, int or bool.*complex64"):
        ops.cast(inputs, "complex64")


@pytest.mark.parametrize("use", [lambda x: x - ops.mean(x, axis=0),
                                 lambda x: ops.sqrt(ops.sum(x, axis=0)),
                                 lambda x: ops.sum(x, axis=0) + ops.mean(x, axis=0)])
def test_column_sums_only_add_to_metric_variables(use):
    inputs = layers.Input((3,))
    with pytest.raises(ValueError, match="a value a column.*last axis only.*Received: axis=0"):
        use(inputs)


def test_variable_arithmetic_gives_values():
    v = densitron.Variable(np.array([1.0, 2.0]), name="v")
    w = densitron.Variable(np.array([4.0, 8.0]), name="w")
    np.testing.assert_array_equal(v + w, [5.0, 10.0])
    np.testing.assert_array_equal(1.0 - v, [0.0, -1.0])
    np.testing.assert_array_equal(w / v, [4.0, 4.0])
    np.testing.assert_array_equal(2 ** v, [2.0, 4.0])
    np.testing.assert_array_equal(-v, [-1.0, -2.0])
    np.testing.assert_array_equal(v > 1.5, [False, True])
    np.testing.assert_array_equal(v @ w, 20.0)
    with pytest.raises(TypeError):
        v + "a"


def test_a_result_that_is_not_a_number_is_refused_clearly():
    class Words(densitron.metrics.Metric):
        def __init__(self, **kwargs):
            super().__init__(name="words", **kwargs)
            self.v = self.add_variable(shape=(), name="v")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.v.assign_add(ops.sum(y_pred))

        def result(self):
            return "many"

    with pytest.raises(ValueError, match="result\\(\\) must give one number.*Received: 'many'"):
        _compile_and_fit(Words())
