"""Layer.add_loss inside call(): the losses join the compiled loss in fit and evaluate,
traced into the engine with their gradients (against finite differences), from layers of
functional, Sequential and subclassed models; saved models keep them; misuse is refused."""

import numpy as np
import pytest
from test_gradients_fd import fd_check
from test_threads import assert_trains_alike_on_one_and_two_threads

import densitron
from densitron import layers, ops
from densitron.models import Model


@densitron.saving.register_keras_serializable(package="tests")
class Penalty(layers.Layer):
    """Keras's activity-regularization pattern: a penalty on the layer's input, passed on."""

    def __init__(self, rate=0.1, mode="mean", **kwargs):
        super().__init__(**kwargs)
        self.rate, self.mode = rate, mode

    def call(self, x):
        if self.mode == "mean":
            self.add_loss(self.rate * ops.mean(ops.square(x)))
        elif self.mode == "sum":  # an unreduced tensor: summed over every value
            self.add_loss(self.rate * ops.abs(x))
        else:  # elementwise math after the batch's mean
            self.add_loss(ops.sqrt(ops.mean(ops.square(x)) + 1.0) * self.rate)
        return x

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "mode": self.mode}


def _model(mode="mean", rate=0.1):
    inp = layers.Input((4,))
    h = layers.Dense(5, bias_initializer="random_normal")(inp)
    h = Penalty(rate, mode)(h)
    return Model(inp, layers.Dense(2)(layers.Activation("tanh")(h)))


@pytest.mark.parametrize("mode", ["mean", "sum", "tail"])
def test_add_loss_gradients_against_finite_differences(mode):
    rng = np.random.default_rng(1)
    fd_check(_model(mode), rng.normal(size=(6, 4)), rng.normal(size=(6, 2)), "mse")


def test_add_loss_alone_drives_the_weights():
    # With only the penalty's gradient reaching the first layer's kernel (the output's loss
    # weight 0), fit shrinks that layer's outputs toward 0, as the penalty asks.
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.normal(size=(64, 2))
    model = _model("mean", rate=1.0)
    model.compile(optimizer=densitron.optimizers.SGD(0.1), loss="mse", loss_weights=[0.0])
    inner = Model(model.inputs, model.layers[1].output)
    before = np.mean(inner.predict(x, verbose=0) ** 2)
    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    after = np.mean(inner.predict(x, verbose=0) ** 2)
    assert after < 0.5 * before
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_add_loss_trains_alike_on_one_and_two_threads():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(512, 64)).astype(np.float32), rng.normal(size=(512, 2))

    def build():
        inp = layers.Input((64,))
        h = Penalty(0.001, "sum")(layers.Dense(256, activation="relu")(inp))
        h = Penalty(0.1, "tail")(layers.Dense(128, activation="tanh")(h))
        model = Model(inp, layers.Dense(2)(h))
        model.compile(optimizer="adam", loss="mse")
        return model

    assert_trains_alike_on_one_and_two_threads(build, x, y, epochs=2, batch_size=64)


def test_add_loss_in_sequential_and_subclassed_models_and_saved(tmp_path):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(40, 4)).astype(np.float32), rng.normal(size=(40, 2))
    seq = densitron.Sequential([layers.Input((4,)), layers.Dense(5), Penalty(0.5),
                                layers.Dense(2)])
    seq.compile(optimizer="sgd", loss="mse")
    plain = densitron.Sequential([layers.Input((4,)), layers.Dense(5), layers.Dense(2)])
    plain.compile(optimizer="sgd", loss="mse")
    plain.set_weights(seq.get_weights())
    h = seq.layers[0](x)
    extra = 0.5 * np.mean(np.asarray(h, np.float64) ** 2)
    np.testing.assert_allclose(seq.evaluate(x, y, batch_size=40, verbose=0),
                               plain.evaluate(x, y, batch_size=40, verbose=0) + extra,
                               rtol=1e-5)
    seq.save(tmp_path / "seq.keras")
    back = densitron.models.load_model(tmp_path / "seq.keras")
    assert back.evaluate(x, y, batch_size=40, verbose=0) == seq.evaluate(x, y, batch_size=40,
                                                                        verbose=0)

    class Sub(densitron.Model):
        def __init__(self):
            super().__init__()
            self.d1, self.d2 = layers.Dense(5), layers.Dense(2)

        def call(self, x):
            h = self.d1(x)
            self.add_loss(0.5 * ops.mean(ops.square(h)))
            return self.d2(h)

    sub = Sub()
    sub.compile(optimizer="sgd", loss="mse")
    sub(x[:1])
    sub.set_weights(seq.get_weights())
    np.testing.assert_allclose(sub.evaluate(x, y, batch_size=40, verbose=0),
                               seq.evaluate(x, y, batch_size=40, verbose=0), rtol=1e-6)


def test_add_loss_misuse_is_refused():
    with pytest.raises(ValueError, match=r"inside call\(\).*Received: add_loss\(1.0\) outside"):
        Penalty().add_loss(1.0)

    class Constant(layers.Layer):
        def call(self, x):
            self.add_loss(0.5)
            return x

    with pytest.raises(ValueError, match=r"Received: 0.5$"):
        Constant()(layers.Input((3,)))


def test_add_loss_in_a_nested_model_counts_in_the_outer_one():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 4)).astype(np.float32), rng.normal(size=(30, 2))
    inner = _model("mean", rate=0.3)
    outer_in = layers.Input((4,))
    outer = Model(outer_in, inner(outer_in))
    for model in (inner, outer):
        model.compile(optimizer="sgd", loss="mse")
    np.testing.assert_allclose(outer.evaluate(x, y, batch_size=30, verbose=0),
                               inner.evaluate(x, y, batch_size=30, verbose=0), rtol=1e-6)


def test_add_loss_of_the_output_itself():
    # The loss reads the very tensor the model outputs (its node then carries both the
    # output's loss and the added one's gradient).
    class Sub(densitron.Model):
        def __init__(self):
            super().__init__()
            self.d1, self.d2 = layers.Dense(5, activation="tanh"), layers.Dense(2)

        def call(self, x):
            out = self.d2(self.d1(x))
            self.add_loss(0.2 * ops.mean(ops.square(out)))
            self.add_loss(0.05 * out)
            # one value a batch, combined from two batch sums: counted once, not per row
            self.add_loss(ops.sum(ops.square(out)) / (ops.sum(ops.abs(out)) + 1.0))
            return out

    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(7, 4)), rng.normal(size=(7, 2))
    model = Sub()
    model(x[:1].astype(np.float32))
    fd_check(model, x, y, "mse")
    pred = model.predict(x, verbose=0).astype(np.float64)
    want = (np.mean((pred - y) ** 2) + 0.2 * np.mean(pred ** 2) + 0.05 * np.sum(pred) +
            np.sum(pred ** 2) / (np.sum(np.abs(pred)) + 1.0))
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=7, verbose=0), want, rtol=1e-5)


class LogisticEndpoint(layers.Layer):
    """The endpoint layer of Keras's training guide, as written there: called with two
    tensors, it adds the loss of a Loss object on them and returns the softmax."""

    def __init__(self, name=None):
        super().__init__(name=name)
        self.loss_fn = densitron.losses.BinaryCrossentropy(from_logits=True)

    def call(self, targets, logits, sample_weights=None):
        loss = self.loss_fn(targets, logits, sample_weights)
        self.add_loss(loss)
        return ops.softmax(logits)


def test_keras_guide_endpoint_layer_trains_without_a_compiled_loss():
    inputs = layers.Input(shape=(3,), name="inputs")
    targets = layers.Input(shape=(10,), name="targets")
    logits = layers.Dense(10)(inputs)
    predictions = LogisticEndpoint(name="predictions")(targets, logits)
    model = Model(inputs=[inputs, targets], outputs=predictions)
    model.compile(optimizer="adam")  # no loss: add_loss gives it
    rng = np.random.default_rng(3)
    data = {"inputs": rng.random((40, 3)), "targets": rng.random((40, 10))}
    w, b = model.get_weights()
    z = data["inputs"] @ w.astype(np.float64) + b
    t = data["targets"]
    want = np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))
    np.testing.assert_allclose(model.evaluate(data, batch_size=40, verbose=0), want, rtol=1e-5)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict(data, verbose=0), e / e.sum(axis=1, keepdims=True),
                               rtol=1e-5, atol=1e-7)
    history = model.fit(data, epochs=5, batch_size=8, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    plain = densitron.Sequential([layers.Input((3,)), layers.Dense(2)])
    plain.compile(optimizer="adam")
    with pytest.raises(ValueError, match="No loss to compute.*Received: loss=None"):
        plain.fit(data["inputs"], verbose=0)


@pytest.mark.parametrize("loss", [
    densitron.losses.MeanSquaredError(), densitron.losses.MeanAbsoluteError(),
    densitron.losses.BinaryCrossentropy(label_smoothing=0.1),
    densitron.losses.BinaryCrossentropy(from_logits=True, reduction="sum"),
    densitron.losses.CategoricalCrossentropy(label_smoothing=0.2),
    densitron.losses.CategoricalCrossentropy(from_logits=True),
    densitron.losses.SparseCategoricalCrossentropy(from_logits=True),
])
def test_loss_objects_on_symbolic_tensors_compute_as_on_arrays(loss):
    # A Loss object (or a loss function) called in a layer's call() gives the batch's mean
    # (or sum) of the same per-sample values it gives on arrays, weighted by sample weights.
    sparse = isinstance(loss, densitron.losses.SparseCategoricalCrossentropy)
    rng = np.random.default_rng(4)
    x = rng.random((24, 4)).astype(np.float32)
    t = (rng.integers(0, 4, (24, 1)) if sparse else rng.random((24, 4))).astype(np.float32)
    sw = rng.random((24, 1)).astype(np.float32)
    logits = "logits" in type(loss).__name__ or getattr(loss, "from_logits", False)
    activation = None if logits else "softmax" if "Categorical" in type(loss).__name__ else \
        "sigmoid"

    class Endpoint(layers.Layer):
        def call(self, targets, outputs, weights):
            self.add_loss(loss(targets, outputs, weights))
            return outputs

    xi, ti, wi = layers.Input((4,)), layers.Input(t.shape[1:]), layers.Input((1,))
    dense = layers.Dense(4, activation=activation)
    model = Model([xi, ti, wi], Endpoint()(ti, dense(xi), wi))
    model.compile(optimizer="sgd")
    p = model.predict([x, t, sw], verbose=0)
    want = loss(t, p, sample_weight=sw[:, 0])
    np.testing.assert_allclose(model.evaluate([x, t, sw], batch_size=24, verbose=0), want,
                               rtol=2e-5, atol=1e-6)


def test_symbolic_losses_without_a_form_are_refused():
    a, b = layers.Input((3,)), layers.Input((3,))
    with pytest.raises(TypeError, match="mean_squared_error.*Received: Huber"):
        densitron.losses.Huber()(a, b)


def test_symbolic_loss_operands_must_be_tensors_or_numbers():
    a = layers.Input((3,))
    for arg, call in (("y_true", lambda: densitron.losses.MeanSquaredError()("x", a)),
                      ("sample_weight",
                       lambda: densitron.losses.MeanSquaredError()(a, a, [1.0, 2.0]))):
        with pytest.raises(TypeError, match=f"as `{arg}`. Received: {arg}="):
            call()


def test_losses_with_no_trainable_weight_behind_them():
    # The subclassing guide's first add_loss model: the penalty of the model's input itself
    # and an output that is that input (no weight anywhere). It crashed the process writing a
    # gradient for the input; now the loss is computed, as Keras's, and nothing trains.
    class InputPenalty(layers.Layer):
        def call(self, x):
            self.add_loss(0.01 * ops.mean(x))
            return x

    inp = layers.Input((3,))
    model = Model(inp, InputPenalty()(inp))
    model.compile(optimizer="adam", loss="mse")
    x, y = np.ones((37, 3), np.float32), np.zeros((37, 3), np.float32)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    np.testing.assert_allclose(history.history["loss"], [1.01, 1.01], rtol=1e-6)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), 1.01, rtol=1e-6)


def test_losses_of_a_call_on_arrays_and_of_the_weights_regularizers():
    # Keras's layer.losses / model.losses (the subclassing guide): add_loss's values of the
    # latest call on arrays (each, in order; reset by every call), the activity penalty, then
    # the weights' regularization at their current values
    class Two(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = Penalty(0.5, "mean")

        def call(self, x):
            self.add_loss(ops.sum(ops.square(x)))
            return self.inner(x)

    layer = Two()
    assert layer.losses == []
    x = np.full((4, 3), 2.0, np.float32)
    layer(x)
    np.testing.assert_allclose(layer.losses, [48.0, 0.5 * 4.0], rtol=1e-6)
    layer(np.zeros((2, 3), np.float32))
    np.testing.assert_allclose(layer.losses, [0.0, 0.0])
    dense = layers.Dense(2, kernel_regularizer=densitron.regularizers.L2(0.1),
                         activity_regularizer=densitron.regularizers.L1(0.5))
    out = dense(x)
    kernel = dense.kernel.numpy()
    np.testing.assert_allclose(dense.losses, [0.5 * np.abs(out).sum() / 4,
                                              0.1 * np.square(kernel).sum()], rtol=1e-5)
    inp = layers.Input((3,))
    model = Model(inp, layers.Dense(1, kernel_regularizer="l2")(inp))
    np.testing.assert_allclose(model.losses,
                               [0.01 * np.square(model.get_weights()[0]).sum()], rtol=1e-6)


def test_targets_given_to_a_model_of_add_loss_only_are_left_unread():
    # Keras: compiled without a loss (and no metrics), fit(x, y) trains on add_loss's losses
    # and does not read y (it was checked against the outputs' shape and refused)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(23, 4)).astype(np.float32)
    y = rng.integers(0, 3, 23)  # (class ids: no output has their shape)

    class Penalized(densitron.layers.Layer):
        def call(self, h):
            self.add_loss(0.01 * ops.sum(ops.square(h)))
            return h

    def build():
        densitron.utils.set_random_seed(2)
        inp = densitron.Input((4,))
        h = Penalized()(layers.Dense(5, activation="tanh")(inp))
        model = Model(inp, layers.Dense(3, activation="softmax")(h))
        model.compile(optimizer=densitron.optimizers.SGD(0.1))
        return model

    with_y, without = build(), build()
    h1 = with_y.fit(x, y, batch_size=5, epochs=2, shuffle=False, verbose=0).history
    h2 = without.fit(x, batch_size=5, epochs=2, shuffle=False, verbose=0).history
    assert h1 == h2
    for a, b in zip(with_y.get_weights(), without.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert with_y.evaluate(x, y, verbose=0) == without.evaluate(x, verbose=0)
