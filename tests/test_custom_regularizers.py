"""Regularizers written in Python (Keras's regularizers guide): a Regularizer subclass whose
__call__ computes the penalty with ops, or a plain function. The engine computes penalties of
the form l1·Σ|x| + l2·Σx²; each such regularizer's coefficients are read off by calling it
once on a stand-in for the weights, so it trains exactly as the equivalent L1L2 does and as
Keras trains it. Other forms are refused when the layer is made."""

import densitron
import numpy as np
import pytest
from densitron import layers, ops, regularizers


class Strength(regularizers.Regularizer):  # the guide's custom regularizer
    def __init__(self, strength):
        self.strength = strength

    def __call__(self, x):
        return self.strength * ops.sum(ops.square(x))

    def get_config(self):
        return {"strength": self.strength}


def mixed(x):  # means, sums, Python's operators and NumPy's functions together
    return 1e-2 * ops.mean(ops.abs(x)) + 0.5e-2 * ops.sum(x ** 2) + np.sum(np.abs(x)) * 1e-3


def means_and_sums(x):  # the function of the Keras run below
    return 1e-2 * ops.mean(ops.abs(x)) + 0.5e-2 * ops.sum(x ** 2)


def build(lib, kernel_reg, bias_reg, activity_reg, seed=1):
    lib.utils.set_random_seed(seed)
    inputs = lib.Input((4,))
    h = lib.layers.Dense(3, kernel_regularizer=kernel_reg,
                         kernel_initializer=lib.initializers.Constant(0.3))(inputs)
    out = lib.layers.Dense(2, bias_regularizer=bias_reg, activity_regularizer=activity_reg,
                           kernel_initializer=lib.initializers.Constant(-0.2))(h)
    model = lib.Model(inputs, out)
    model.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
    return model


def data():
    rng = np.random.default_rng(0)
    return rng.random((64, 4), dtype=np.float32), rng.random((64, 2), dtype=np.float32)


def test_python_regularizers_train_as_their_l1_l2_equivalents():
    x, y = data()
    ours = build(densitron, Strength(0.05), mixed, Strength(0.01))
    # (mixed on the (2,) bias: its mean is the sum's half)
    same = build(densitron, regularizers.L2(0.05), regularizers.L1L2(1e-2 / 2 + 1e-3, 0.5e-2),
                 regularizers.L2(0.01))
    for m in (ours, same):
        m.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False)
    for a, b in zip(ours.get_weights(), same.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_coefficients_of_each_form():
    assert regularizers.coefficients(Strength(0.05), (3, 2)) == (0.0, 0.05)
    assert regularizers.coefficients(mixed, (5, 2)) == pytest.approx((1e-2 / 10 + 1e-3,
                                                                      0.5e-2))
    assert regularizers.coefficients(lambda w: 2 * ops.sum(ops.abs(-3 * w)) / 4, (2,)) == (
        pytest.approx(1.5), 0.0)
    assert regularizers.coefficients(lambda w: np.mean(np.square(w)), (4, 5)) == (0.0, 0.05)
    assert regularizers.coefficients(regularizers.L1L2(0.1, 0.2)) == (0.1, 0.2)
    # on arrays they compute what they say, as in Keras
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert float(Strength(0.5)(w)) == pytest.approx(0.5 * 55)
    assert float(mixed(w)) == pytest.approx(1e-2 * 2.5 + 0.5e-2 * 55 + 15e-3, rel=1e-6)


@pytest.mark.parametrize("penalty", [
    lambda w: ops.sqrt(ops.sum(ops.square(w))),   # a norm, not squared
    lambda w: ops.sum(w),                         # linear
    lambda w: -0.1 * ops.sum(ops.square(w)),      # a negative coefficient
    lambda w: ops.sum(ops.square(w), axis=0),     # not a scalar
    lambda w: ops.sum(ops.square(w)) * ops.sum(ops.abs(w)),
    lambda w: ops.square(w),
])
def test_other_forms_are_refused(penalty):
    # when the layer is made, or (a sum over some axes of the weights) when their shape is
    # known, before anything runs
    with pytest.raises(ValueError, match=r"Received: regularizer '<lambda>'$"):
        model = densitron.Sequential([densitron.Input((3,)),
                                      layers.Dense(2, kernel_regularizer=penalty)])
        model.predict(np.zeros((1, 3), np.float32), verbose=0)


def test_a_mean_is_refused_for_an_activity():
    # an activity's penalty is per batch: its mean's count is not the weights'
    with pytest.raises(ValueError, match="Received: regularizer 'mean_square'"):
        def mean_square(a):
            return ops.mean(ops.square(a))

        model = build(densitron, None, None, mean_square)
        model.predict(np.zeros((1, 4), np.float32), verbose=0)


def test_saved_and_loaded_with_custom_objects(tmp_path):
    x, y = data()
    model = build(densitron, Strength(0.05), mixed, Strength(0.01))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = str(tmp_path / "reg.keras")
    model.save(path)
    back = densitron.saving.load_model(path, custom_objects={"Strength": Strength,
                                                             "mixed": mixed})
    assert isinstance(back.layers[1].kernel_regularizer, Strength)
    assert back.layers[1].kernel_regularizer.strength == 0.05
    assert back.layers[2].bias_regularizer is mixed
    assert back.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0),
                                                           rel=1e-6)
    with pytest.raises(ValueError, match="mixed"):
        densitron.saving.load_model(path, custom_objects={"Strength": Strength})


def test_as_keras_computes_them():
    # Keras 3.15 on JAX, this script with Keras's classes (KerasStrength the same class on
    # keras.regularizers.Regularizer, means_and_sums with keras.ops): evaluate before
    # training, then SGD(0.1) for 3 epochs of 16-row batches in order. (Keras's numpy
    # backend, which the other parity tests run, fails to sum a model's regularization.)
    x, y = data()
    inputs = densitron.Input((4,))
    h = layers.Dense(3, kernel_regularizer=Strength(0.05),
                     kernel_initializer=densitron.initializers.Constant(0.3))(inputs)
    out = layers.Dense(2, kernel_regularizer=means_and_sums, bias_regularizer=Strength(0.1),
                       kernel_initializer=densitron.initializers.Constant(-0.2),
                       activity_regularizer=Strength(0.01))(h)
    ours = densitron.Model(inputs, out)
    ours.compile(optimizer=densitron.optimizers.SGD(0.1), loss="mse")
    assert ours.evaluate(x, y, verbose=0) == pytest.approx(0.985026478767395, rel=1e-6)
    history = ours.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False).history
    np.testing.assert_allclose(history["loss"], [0.5751367211341858, 0.22322508692741394,
                                                 0.17386454343795776], rtol=1e-5)
    np.testing.assert_allclose(ours.layers[1].kernel.numpy().ravel()[:4],
                               [0.229477, 0.229477, 0.229477, 0.224615], atol=2e-6)
    assert [float(v) for v in ours.losses] == pytest.approx(
        [0.03097820281982422, 0.0002832705504260957, 0.028228653594851494], rel=1e-5)
