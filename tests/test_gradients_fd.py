"""Every backward against central finite differences of the engine's own loss: each activation,
each loss, merges (Add, Concatenate), standalone Activation layers and a layer shared by two
branches (its gradients summed)."""

import numpy as np
import pytest

from densitron import layers, optimizers
from densitron.models import Model


def fd_check(model, x, y, loss, h=1e-3, rtol=2e-2, atol=2e-3):
    model.compile(optimizer=optimizers.SGD(), loss=loss)
    grads = model._compute_gradients(x, y)
    weights = model.get_weights()
    for wi, w in enumerate(weights):
        numeric = np.zeros(w.shape)
        for idx in np.ndindex(w.shape):
            vals = []
            for sign in (1, -1):
                pert = [v.copy() for v in weights]
                pert[wi][idx] = np.float32(w[idx] + sign * h)
                model.set_weights(pert)
                vals.append(model.evaluate(x, y, batch_size=len(x), verbose=0))
            step = float(np.float32(w[idx] + h)) - float(np.float32(w[idx] - h))
            numeric[idx] = (vals[0] - vals[1]) / step
        model.set_weights(weights)
        np.testing.assert_allclose(grads[wi], numeric, rtol=rtol, atol=atol,
                                   err_msg=f"weight {wi} ({model.weights[wi].path})")


@pytest.mark.parametrize("act", ["linear", "relu", "sigmoid", "tanh", "softmax"])
def test_activation_backward(act):
    rng = np.random.default_rng(1)
    inp = layers.Input(shape=(4,))
    x = layers.Dense(6, activation=act, bias_initializer="random_normal")(inp)
    out = layers.Dense(3)(x)
    model = Model(inp, out)
    fd_check(model, rng.normal(size=(5, 4)), rng.normal(size=(5, 3)), "mse")


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh", "softmax"])
def test_activation_layer_backward(act):
    rng = np.random.default_rng(2)
    inp = layers.Input(shape=(4,))
    x = layers.Activation(act)(layers.Dense(5, bias_initializer="random_normal")(inp))
    out = layers.Dense(2)(x)
    fd_check(Model(inp, out), rng.normal(size=(6, 4)), rng.normal(size=(6, 2)), "mse")


@pytest.mark.parametrize("loss,out_act,width", [
    ("categorical_crossentropy", "softmax", 4),
    ("sparse_categorical_crossentropy", "softmax", 4),
    ("binary_crossentropy", "sigmoid", 3),
    ("categorical_crossentropy", "sigmoid", 4),   # not fused: the general path
    ("binary_crossentropy", "tanh_to_unit", 3),
    ("mean_squared_error", "linear", 3),
    ("mean_absolute_error", "linear", 3),
])
def test_loss_backward(loss, out_act, width):
    rng = np.random.default_rng(3)
    inp = layers.Input(shape=(5,))
    h = layers.Dense(6, activation="tanh")(inp)
    if out_act == "tanh_to_unit":  # sigmoid through a separate layer: the unfused BCE path
        out = layers.Activation("sigmoid")(layers.Dense(width)(h))
        out = layers.Activation("linear")(out)
    else:
        out = layers.Dense(width, activation=out_act)(h)
    rows = 7
    if loss == "sparse_categorical_crossentropy":
        y = rng.integers(0, width, rows)
    elif loss in ("categorical_crossentropy",):
        y = np.eye(width)[rng.integers(0, width, rows)]
    elif loss == "binary_crossentropy":
        y = rng.integers(0, 2, (rows, width)).astype(float)
    else:
        y = rng.normal(size=(rows, width))
    fd_check(Model(inp, out), rng.normal(size=(rows, 5)), y, loss)


def test_dag_with_merges_and_shared_layer():
    rng = np.random.default_rng(4)
    inp = layers.Input(shape=(5,))
    a = layers.Dense(4, activation="tanh")(inp)
    b = layers.Dense(4, activation="sigmoid")(inp)
    shared = layers.Dense(4, activation="tanh", bias_initializer="random_normal")
    sa, sb = shared(a), shared(b)  # one layer, two calls: gradients add up
    merged = layers.Add()([sa, sb])
    cat = layers.Concatenate()([merged, a])
    out = layers.Dense(2)(cat)
    model = Model(inp, out)
    assert len(model.get_weights()) == 8  # shared weights counted once
    fd_check(model, rng.normal(size=(6, 5)), rng.normal(size=(6, 2)), "mse")
