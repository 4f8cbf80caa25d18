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
