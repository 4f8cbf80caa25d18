"""ops.shape(x)[0] and ops.size(x) of symbolic tensors: the batch's row count as a symbolic
scalar in traced losses and metrics (trained as Keras 3.15 trains them, its numbers below, from
the JAX backend), and the batch axis in shapes (ops.reshape, ops.zeros/ones/full) of a model."""

import numpy as np
import pytest

import densitron
from densitron import ops
from densitron import layers as L

W = [[[0.82, 0.46, 0.53, 0.02], [0.46, 0.19, 0.31, -0.08], [-0.74, 0.51, -0.97, -0.12],
      [-0.10, -0.52, 0.31, -0.10], [-0.22, 0.26, -0.24, 0.69]],
     [0.18, -0.24, -0.97, -0.65],
     [[0.54, -0.03, -0.14], [0.82, -0.64, -0.29], [-0.24, 0.29, -0.33], [-0.31, -0.80, 0.36]],
     [0.40, -0.24, 0.08]]


def _data():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(21, 5)).astype("float32"),
            rng.normal(size=(21, 3)).astype("float32"))


def loss_rows(t, p):
    return ops.sum(ops.square(t - p)) / ops.cast(ops.shape(t)[0], "float32")


def loss_size(t, p):
    return ops.sum(ops.square(t - p)) / ops.cast(ops.size(t), "float32")


def loss_per_sample(t, p):  # a value a sample, each over the batch's rows
    return ops.sum(ops.abs(t - p), axis=-1) / ops.cast(ops.shape(p)[0], "float32")


class MaeRows(densitron.metrics.Metric):
    """A mean absolute error summed over a row, counting the rows by ops.shape(y_true)[0]."""

    def __init__(self, name="mae_rows", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_weight(name="total", shape=(), initializer="zeros")
        self.count = self.add_weight(name="count", shape=(), initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(ops.sum(ops.abs(y_true - y_pred)))
        self.count.assign_add(ops.cast(ops.shape(y_true)[0], "float32"))

    def result(self):
        return self.total / self.count


# Keras 3.15 (JAX): fit(x, y, batch_size=8 (a last batch of 5), epochs=3, shuffle=False) with
# SGD(0.05) from W: its history and the second kernel after
KERAS = {
    loss_rows: ([4.7274627685546875, 3.3215396404266357, 2.9173991680145264],
                [2.9298207759857178, 2.565652370452881, 2.4320576190948486],
                [[0.3026074767112732, -0.07047776877880096, -0.03037315420806408],
                 [0.7247613668441772, -0.4538748562335968, -0.32275694608688354],
                 [0.08664900809526443, 0.1791994720697403, -0.07146469503641129],
                 [-0.008977794088423252, -0.6886929273605347, 0.3374940752983093]]),
    loss_size: ([1.6953617334365845, 1.441066861152649, 1.271411657333374],
                [3.048466920852661, 2.8427908420562744, 2.717524528503418],
                [[0.42892515659332275, -0.045680515468120575, -0.09585560113191605],
                 [0.7493099570274353, -0.5644893646240234, -0.30767643451690674],
                 [-0.05798666924238205, 0.21922782063484192, -0.22500452399253845],
                 [-0.15348029136657715, -0.7613581418991089, 0.3417876064777374]]),
    loss_per_sample: ([0.4611976146697998, 0.4549841284751892, 0.44877389073371887],
                      [3.1131696701049805, 3.072840690612793, 3.0325188636779785],
                      [[0.5319833755493164, -0.03157522529363632, -0.14023441076278687],
                       [0.8034722805023193, -0.620613157749176, -0.2963578402996063],
                       [-0.2074739933013916, 0.27134835720062256, -0.3078710734844208],
                       [-0.2898827791213989, -0.7872605919837952, 0.3592068552970886]]),
}


def _mlp():
    model = densitron.Sequential([densitron.Input((5,)), L.Dense(4, activation="tanh"),
                                  L.Dense(3)])
    model.set_weights([np.asarray(w, np.float32) for w in W])
    return model


@pytest.mark.parametrize("loss", list(KERAS), ids=lambda f: f.__name__)
def test_losses_and_metric_of_the_batch_size_train_as_keras(loss):
    x, y = _data()
    model = _mlp()
    model.compile(densitron.optimizers.SGD(0.05), loss=loss, metrics=[MaeRows()])
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    losses, metric, kernel = KERAS[loss]
    np.testing.assert_allclose(history["loss"], losses, rtol=2e-6)
    np.testing.assert_allclose(history["mae_rows"], metric, rtol=2e-6)
    np.testing.assert_allclose(model.get_weights()[2], kernel, rtol=2e-6, atol=1e-7)


def test_batch_size_values_in_a_loss_and_a_metric():
    x, y = _data()
    model = _mlp()
    p = model.predict(x, verbose=0)

    class Counts(densitron.metrics.Metric):  # a size and an int cast of the rows
        def __init__(self, name="per_row", **kwargs):
            super().__init__(name=name, **kwargs)
            self.values = self.add_weight(name="values", shape=(), initializer="zeros")
            self.rows = self.add_weight(name="rows", shape=(), initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.values.assign_add(ops.cast(ops.size(y_true), "float32"))
            self.rows.assign_add(ops.cast(ops.shape(y_pred)[0], "int32"))

        def result(self):
            return self.values / self.rows

    def rows_times(t, p):  # the rows in arithmetic with tensors and numbers
        n = ops.shape(t)[0]
        return ops.mean(ops.square(t - p), axis=-1) * n - 2.0 * n + ops.size(p) / 3.0

    model.compile("sgd", loss=rows_times, metrics=[Counts()])
    loss, per_row = model.evaluate(x, y, batch_size=8, verbose=0)
    s = np.mean((y - p) ** 2, axis=-1)
    # a batch's loss is mean(s)·n - 2n + n (size / 3 = n); the logs weigh batches by rows
    expected = sum(len(s[i:i + 8]) * (s[i:i + 8].mean() * len(s[i:i + 8]) - len(s[i:i + 8]))
                   for i in range(0, 21, 8)) / 21
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert per_row == 3.0


def _folding_model(batch_axis):
    """Dense, the 16 values folded to (4, 4), a Dense on each row, unfolded, plus ones and
    fills of the batch (`batch_axis`: ops.shape(x)[0], or -1 and numbers)."""
    inputs = densitron.Input((16,))
    h = L.Dense(16, activation="tanh", name="d1")(inputs)
    if batch_axis:
        b = ops.shape(h)[0]
        h = h + ops.ones((b, ops.shape(h)[1])) * 0.5 + ops.full((b, 16), 0.25) - \
            ops.zeros((b, 16))
        h = ops.reshape(h, (ops.shape(h)[0], 4, 4))
    else:
        h = ops.reshape(h + 0.75, (-1, 4, 4))
    h = L.Dense(3, name="d2")(h)
    h = ops.reshape(h, (ops.shape(h)[0], -1)) if batch_axis else ops.reshape(h, (-1, 12))
    return densitron.Model(inputs, L.Dense(2, name="d3")(h))


def test_batch_axis_in_reshape_and_fills_of_a_functional_model():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 16)).astype("float32")
    y = rng.normal(size=(50, 2)).astype("float32")
    ours, plain = _folding_model(True), _folding_model(False)
    assert ours.output.shape == (None, 2)
    plain.set_weights(ours.get_weights())
    assert [type(layer).__name__ for layer in ours.layers] == \
        ["InputLayer", "Dense", "Dense", "Dense"]  # (ops' layers are not the model's)
    np.testing.assert_allclose(ours.predict(x, verbose=0), plain.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    for model in (ours, plain):
        model.compile(densitron.optimizers.SGD(0.05), loss="mse")
    h1 = ours.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    h2 = plain.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(h1, h2, rtol=1e-6)
    for a, b in zip(ours.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_layer_fills_and_reshapes_by_the_batch_size_as_keras():
    class Shift(L.Layer):  # Keras 3.15 runs these in a layer's call() on the batch's arrays
        def call(self, x):
            b = ops.shape(x)[0]
            return ops.reshape(x + ops.ones((b, ops.shape(x)[1])) * 0.5, (b, 2, 2))

    inputs = densitron.Input((4,))
    model = densitron.Model(inputs, Shift()(inputs))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(model.predict(x, verbose=0), (x + 0.5).reshape(3, 2, 2))


def test_vae_sampling_of_the_batch_and_a_static_dimension():
    class Sampling(L.Layer):  # keras.io's VAE: batch and dim from ops.shape
        def call(self, inputs):
            z_mean, z_log_var = inputs
            batch, dim = ops.shape(z_mean)[0], ops.shape(z_mean)[1]
            epsilon = densitron.random.normal(shape=(batch, dim), seed=3)
            return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    z = densitron.Input((8,))
    model = densitron.Model(z, Sampling()([z, z * 0.0 - 100.0]))  # exp(-50)·ε: the mean
    x = np.random.default_rng(2).normal(size=(10, 8)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), x, atol=1e-6)


def test_uses_the_engine_cannot_express_are_refused():
    x = densitron.Input((3,))
    batch = ops.shape(x)[0]
    assert ops.shape(x)[1:] == (3,) and repr(batch) == "None"
    with pytest.raises(ValueError, match=r"batch axis first .*Received: newshape=\(4, None\)"):
        ops.reshape(x, (4, batch))
    with pytest.raises(ValueError, match=r"stands for the batch axis.*Received: shape=\(3, None"):
        ops.zeros((3, batch))
    with pytest.raises(ValueError, match=r"stands for the batch axis.*Received: shape="):
        ops.ones((batch * 2, 3))
    with pytest.raises(ValueError, match="non-negative integers. Received: shape="):
        ops.full((batch, 2.5), 1.0)
    with pytest.raises(TypeError, match="known only when the model runs.*Received: it used"):
        int(batch)
    with pytest.raises(TypeError, match="known only when the model runs"):
        range(batch)
    with pytest.raises(TypeError, match="take numbers only"):
        densitron.random.uniform((batch, 2))

    def python_loop(t, p):
        return sum(ops.mean(t - p) for _ in range(ops.shape(t)[0]))

    model = _mlp()
    model.compile("sgd", loss=python_loop)
    with pytest.raises(ValueError, match="known only when the model runs.*Received: loss="):
        model.evaluate(*_data(), verbose=0)


def test_shape_and_size_of_arrays_stay_numbers():
    a = np.zeros((4, 3))
    assert ops.shape(a) == (4, 3) and int(ops.size(a)) == 12
