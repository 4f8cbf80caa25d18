"""densitron.activations: each function against float64 references written element by element
with the math module, get/serialize/engine_spec round trips and errors, engine ids against the
C++ enum, the engine's activations (through a model) against the NumPy functions, and, when
Keras is installed, against keras.activations under the NumPy backend."""

import functools
import inspect
import math
import os
import pathlib
import re

import numpy as np
import pytest

from densitron import activations, layers
from densitron.models import Model

X = np.concatenate([np.linspace(-12, 12, 481), [-0.0, 0.0, 1e-8, -1e-8, 3.0, -3.0, 6.0, 40, -40]])


def _sig(v):
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


def _softplus(v):
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


SCALAR_REFS = {
    "relu": lambda v: max(v, 0.0),
    "leaky_relu": lambda v: v if v > 0 else 0.2 * v,
    "relu6": lambda v: min(max(v, 0.0), 6.0),
    "elu": lambda v: v if v >= 0 else math.expm1(v),
    "selu": lambda v: 1.0507009873554805 * (v if v >= 0 else 1.6732632423543772 * math.expm1(v)),
    "gelu": lambda v: 0.5 * v * math.erfc(-v / math.sqrt(2)),
    "silu": lambda v: v * _sig(v),
    "swish": lambda v: v * _sig(v),
    "softplus": _softplus,
    "softsign": lambda v: v / (1 + abs(v)),
    "sigmoid": _sig,
    "hard_sigmoid": lambda v: 0.0 if v <= -3 else 1.0 if v >= 3 else v / 6 + 0.5,
    "hard_silu": lambda v: v * (0.0 if v <= -3 else 1.0 if v >= 3 else v / 6 + 0.5),
    "hard_swish": lambda v: v * (0.0 if v <= -3 else 1.0 if v >= 3 else v / 6 + 0.5),
    "tanh": math.tanh,
    "exponential": math.exp,
    "mish": lambda v: v * math.tanh(_softplus(v)),
    "linear": lambda v: v,
    "celu": lambda v: v if v > 0 else math.expm1(v),
    "hard_shrink": lambda v: v if abs(v) > 0.5 else 0.0,
    "hard_tanh": lambda v: min(max(v, -1.0), 1.0),
    "log_sigmoid": lambda v: -_softplus(-v),
    "soft_shrink": lambda v: v - 0.5 if v > 0.5 else v + 0.5 if v < -0.5 else 0.0,
    "sparse_plus": lambda v: 0.0 if v <= -1 else v if v >= 1 else (v + 1) ** 2 / 4,
    "sparse_sigmoid": lambda v: 0.0 if v <= -1 else 1.0 if v >= 1 else (v + 1) / 2,
    "squareplus": lambda v: (v + math.sqrt(v * v + 4)) / 2,
    "tanh_shrink": lambda v: v - math.tanh(v),
}


@pytest.mark.parametrize("name", sorted(SCALAR_REFS))
def test_functions_match_float64_references(name):
    fn = activations.get(name)
    want = np.array([SCALAR_REFS[name](float(v)) for v in X])
    # x - tanh(x) and x + sqrt(x² + b) cancel: their error is in the operands' scale
    atol = 1e-14 if name in ("tanh_shrink", "squareplus") else 1e-300
    np.testing.assert_allclose(fn(X), want, rtol=1e-13, atol=atol)
    x32 = X.astype(np.float32)
    got32 = fn(x32)
    assert got32.dtype == np.float32
    want32 = np.array([SCALAR_REFS[name](float(v)) for v in x32])
    np.testing.assert_allclose(got32, want32, rtol=2e-7, atol=1e-37)


def test_gelu_approximate():
    z = np.sqrt(2 / np.pi) * (X + 0.044715 * X**3)
    want = 0.5 * X * (1 + np.tanh(z))
    np.testing.assert_allclose(activations.gelu(X, approximate=True), want, rtol=1e-9,
                               atol=1e-15)


def test_relu_keras_examples_and_arguments():
    x = np.array([-10, -5, 0.0, 5, 10])
    np.testing.assert_array_equal(activations.relu(x), [0, 0, 0, 5, 10])
    np.testing.assert_array_equal(activations.relu(x, negative_slope=0.5), [-5, -2.5, 0, 5, 10])
    np.testing.assert_array_equal(activations.relu(x, max_value=5.0), [0, 0, 0, 5, 5])
    np.testing.assert_array_equal(activations.relu(x, threshold=5.0), [0, 0, 0, 0, 10])
    # every argument at once: x·(x > t) clipped to [0, max], minus slope·relu(t - x)
    x = np.linspace(-4, 8, 97)
    want = np.clip(np.where(x > 1.0, x, 0), 0, 3.0) - 0.1 * np.maximum(1.0 - x, 0)
    np.testing.assert_allclose(activations.relu(x, 0.1, 3.0, 1.0), want)
    # a negative threshold lets (threshold, 0) through, and a cap clips it back to 0
    np.testing.assert_allclose(activations.relu(np.array([-0.5]), threshold=-1.0), [-0.5])
    np.testing.assert_allclose(
        activations.relu(np.array([-0.5]), threshold=-1.0, max_value=2.0), [0.0])
    np.testing.assert_allclose(activations.leaky_relu(np.array([-1.0, 2.0]), 0.3), [-0.3, 2.0])
    np.testing.assert_allclose(activations.elu(np.array([-1.0, 2.0]), alpha=2.0),
                               [2 * math.expm1(-1), 2.0])


def test_softmax_and_log_softmax_axes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5)) * 5
    x[0, 0, 0] = 800.0  # exp overflows without the max subtraction
    for axis in (-1, 0, 1):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        want = e / e.sum(axis=axis, keepdims=True)
        np.testing.assert_allclose(activations.softmax(x, axis=axis), want, rtol=1e-13)
        shifted = x - x.max(axis=axis, keepdims=True)
        want_log = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        np.testing.assert_allclose(activations.log_softmax(x, axis=axis), want_log, rtol=1e-13)


def test_get_and_serialize_round_trips():
    assert activations.get(None) is activations.linear
    assert activations.get("swish") is activations.silu
    assert activations.get("hard_swish") is activations.hard_silu
    for name in ("relu", "gelu", "softmax", "log_softmax", "mish", "linear"):
        fn = activations.get(name)
        assert activations.serialize(fn) == name
        assert activations.get(activations.serialize(fn)) is fn
        assert activations.get(fn) is fn
    capped = functools.partial(activations.relu, max_value=6.0, negative_slope=0.1)
    assert activations.get(capped) is capped
    config = activations.serialize(capped)
    assert config == {"class_name": "function", "config": "relu",
                      "kwargs": {"max_value": 6.0, "negative_slope": 0.1}}
    back = activations.get(config)
    np.testing.assert_array_equal(back(X), capped(X))
    assert activations.engine_spec(back) == activations.engine_spec(capped)


def test_get_errors():
    with pytest.raises(ValueError, match=r"Received: activation='nope'$") as e:
        activations.get("nope")
    assert "'relu'" in str(e.value) and "'swish'" in str(e.value)
    def mine(x):  # a Python activation of one's own: traced after the layer (see below)
        return x

    assert activations.get(mine) is mine and activations.is_traced(mine)
    with pytest.raises(ValueError, match=r"Received: activation=3$"):
        activations.get(3)
    with pytest.raises(ValueError, match="keyword arguments only"):
        activations.get(functools.partial(activations.relu, 0.1))
    with pytest.raises(ValueError, match="no argument 'alpha'"):
        activations.get(functools.partial(activations.relu, alpha=2.0))
    with pytest.raises(ValueError, match="Received: activation="):
        activations.get(functools.partial(np.tanh))


def _cpp_enum():
    header = pathlib.Path(__file__).parents[1] / "cpp" / "include" / "densitron" / "ops.h"
    body = re.search(r"enum class Activation : int \{(.*?)\};", header.read_text(), re.S).group(1)
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"k(\w+) = (\d+)", body)}


def test_engine_ids_equal_the_cpp_enum():
    enum = _cpp_enum()
    camel = {"relu6": "Relu6", "silu": "Silu", "gelu": "Gelu", "selu": "Selu", "elu": "Elu"}
    for name in activations._BY_NAME:
        key = camel.get(name, "".join(p.capitalize() for p in name.split("_")))
        fn = activations.get(name)
        if name == "threshold":  # (its arguments are required)
            fn = functools.partial(fn, threshold=0.0, default_value=0.0)
        assert activations.engine_id(fn) == enum[key], name
    gelu_approx = functools.partial(activations.gelu, approximate=True)
    assert activations.engine_id(gelu_approx) == enum["GeluApprox"]


def test_engine_spec_parameters():
    spec = activations.engine_spec
    assert spec(activations.relu) == (1, (0.0, -1.0, 0.0, 1.0))
    assert spec(functools.partial(activations.relu, max_value=6.0)) == (1, (0.0, 6.0, 0.0, 1.0))
    assert spec(functools.partial(activations.relu, negative_slope=0.3, threshold=0.5)) == (
        1, (0.3, -1.0, 0.5, 1.0))
    assert spec(activations.leaky_relu) == (5, (0.2, -1.0, 0.0, 1.0))
    assert spec(functools.partial(activations.leaky_relu, negative_slope=0.01))[1][0] == 0.01
    assert spec(functools.partial(activations.elu, alpha=0.5)) == (7, (0.0, -1.0, 0.0, 0.5))
    assert spec(functools.partial(activations.gelu, approximate=False))[0] == 9
    assert spec(functools.partial(activations.softmax, axis=-1))[0] == 4
    for fn in (activations.softmax, activations.log_softmax):
        with pytest.raises(ValueError, match=r"last axis only. Received: axis=1$"):
            spec(functools.partial(fn, axis=1))
    with pytest.raises(ValueError, match=r"Received: max_value=-2.0$"):
        spec(functools.partial(activations.relu, max_value=-2.0))
    # the newer activations' arguments: celu's alpha, the shrinks' threshold, squareplus's b
    # in the alpha slot, threshold's default_value in the alpha slot
    assert spec(functools.partial(activations.celu, alpha=0.5)) == (19, (0.0, -1.0, 0.0, 0.5))
    assert spec(activations.hard_shrink) == (20, (0.0, -1.0, 0.5, 1.0))
    assert spec(functools.partial(activations.soft_shrink, threshold=2)) == (
        23, (0.0, -1.0, 2.0, 1.0))
    assert spec(activations.squareplus) == (26, (0.0, -1.0, 0.0, 4.0))
    assert spec(functools.partial(activations.threshold, threshold=0.3, default_value=-2)) == (
        28, (0.0, -1.0, 0.3, -2.0))
    with pytest.raises(ValueError, match=r"required arguments threshold and default_value.*"
                                         r"Received: activation=.* without \['default_value'\]$"):
        spec(functools.partial(activations.threshold, threshold=0.3))
    with pytest.raises(ValueError, match=r"Received: b='wide'$"):
        spec(functools.partial(activations.squareplus, b="wide"))


ENGINE_CASES = [
    *sorted(set(activations._BY_NAME) - {"threshold"}),
    functools.partial(activations.celu, alpha=0.4),
    functools.partial(activations.celu, alpha=-2.0),
    functools.partial(activations.hard_shrink, threshold=1.5),
    functools.partial(activations.hard_shrink, threshold=-1.0),
    functools.partial(activations.soft_shrink, threshold=2.0),
    functools.partial(activations.squareplus, b=1.0),
    functools.partial(activations.threshold, threshold=0.3, default_value=-2.0),
    functools.partial(activations.relu, max_value=2.5),
    functools.partial(activations.relu, threshold=0.7),
    functools.partial(activations.relu, threshold=-0.7, negative_slope=0.2),
    functools.partial(activations.relu, negative_slope=0.1, max_value=3.0, threshold=0.5),
    functools.partial(activations.relu, negative_slope=0.25),
    functools.partial(activations.leaky_relu, negative_slope=0.05),
    functools.partial(activations.elu, alpha=0.4),
    functools.partial(activations.gelu, approximate=True),
]


@pytest.mark.parametrize("act", ENGINE_CASES, ids=str)
def test_engine_forward_matches_the_numpy_functions(act):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(37, 19)) * 3).astype(np.float32)
    inp = layers.Input(shape=(19,))
    model = Model(inp, layers.Activation(act)(inp))
    got = model.predict(x, verbose=0)
    want = activations.get(act)(x.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=3e-6, atol=1e-6)


@pytest.mark.parametrize("act", ENGINE_CASES, ids=str)
def test_dense_activation_matches_the_numpy_functions(act):
    # A Dense applies some activations in its GEMM's write-back, the others in a pass after.
    rng = np.random.default_rng(4)
    x = rng.normal(size=(37, 19)).astype(np.float32)
    inp = layers.Input(shape=(19,))
    dense = layers.Dense(13, activation=act)
    model = Model(inp, dense(inp))
    w, b = dense.get_weights()
    dense.set_weights([w * 3, rng.normal(size=b.shape).astype(np.float32)])
    w, b = dense.get_weights()
    want = activations.get(act)(x.astype(np.float64) @ w + b)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=3e-5, atol=3e-5)


KERAS_NAMES = ["relu", "leaky_relu", "relu6", "elu", "selu", "gelu", "silu", "swish", "softplus",
               "softsign", "sigmoid", "hard_sigmoid", "hard_silu", "hard_swish", "tanh",
               "softmax", "log_softmax", "exponential", "mish", "linear", "celu",
               "hard_shrink", "hard_tanh", "log_sigmoid", "soft_shrink", "sparse_plus",
               "sparse_sigmoid", "squareplus", "tanh_shrink"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_against_keras_numpy_backend():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "numpy":
        pytest.skip(f"Keras runs with the {keras.backend.backend()!r} backend")
    x = (np.random.default_rng(4).normal(size=(8, 13)) * 4).astype(np.float32)
    for name in KERAS_NAMES:
        want = np.asarray(getattr(keras.activations, name)(x))
        np.testing.assert_allclose(activations.get(name)(x), want, rtol=2e-6, atol=2e-7,
                                   err_msg=name)
    kw = dict(negative_slope=0.1, max_value=3.0, threshold=0.5)
    np.testing.assert_allclose(activations.relu(x, **kw), keras.activations.relu(x, **kw),
                               rtol=2e-6, atol=2e-7)
    np.testing.assert_allclose(activations.gelu(x, approximate=True),
                               keras.activations.gelu(x, approximate=True), rtol=2e-6, atol=2e-7)


def test_activation_layers_and_ops_functions_as_activations():
    # Keras takes any callable as a Dense's activation: a weightless activation layer runs as
    # its function (its arguments kept), densitron.ops' activations as theirs.
    from densitron import ops

    rng = np.random.default_rng(5)
    x = rng.normal(size=(9, 5)).astype(np.float32)
    cases = [(layers.LeakyReLU(negative_slope=0.1), functools.partial(activations.leaky_relu,
                                                                      negative_slope=0.1)),
             (layers.ReLU(max_value=1.5), functools.partial(activations.relu, max_value=1.5)),
             (layers.ELU(alpha=0.5), functools.partial(activations.elu, alpha=0.5)),
             (layers.Activation("gelu"), activations.gelu), (layers.Softmax(), activations.softmax),
             (ops.sigmoid, activations.sigmoid), (ops.hard_tanh, activations.hard_tanh)]
    for given, same in cases:
        inp = layers.Input((5,))
        dense = layers.Dense(4, activation=given)
        model = Model(inp, dense(inp))
        inp2 = layers.Input((5,))
        twin = layers.Dense(4, activation=same)
        reference = Model(inp2, twin(inp2))
        reference.set_weights(model.get_weights())
        np.testing.assert_array_equal(model.predict(x, verbose=0),
                                      reference.predict(x, verbose=0), err_msg=str(given))
        assert activations.engine_spec(dense.activation) == activations.engine_spec(twin.activation)
    with pytest.raises(ValueError, match="Received: activation=<PReLU"):
        layers.Dense(4, activation=layers.PReLU())


def test_functions_on_symbolic_tensors_are_activation_layers():
    # As Keras's, densitron.activations functions apply to a layer's symbolic output (a custom
    # layer's call(), a functional model): an Activation layer with the arguments bound.
    rng = np.random.default_rng(6)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    for fn, args, kwargs in ((activations.tanh, (), {}), (activations.leaky_relu, (0.3,), {}),
                             (activations.relu, (), {"max_value": 1.0, "threshold": 0.1}),
                             (activations.elu, (), {"alpha": 0.5}),
                             (activations.threshold, (0.2, -1.0), {})):
        inp = layers.Input((5,))
        out = fn(inp, *args, **kwargs)
        assert out.shape == (None, 5)
        model = Model(inp, out)
        np.testing.assert_allclose(model.predict(x, verbose=0), fn(x, *args, **kwargs),
                                   rtol=1e-6, atol=1e-6, err_msg=fn.__name__)
    with pytest.raises(TypeError, match="Received: args="):
        activations.elu(layers.Input((5,)), 1.0, 2.0)
    # the functions keep their identities, names and signatures
    assert activations.get("tanh") is activations.tanh and activations.swish is activations.silu
    assert activations.tanh.__name__ == "tanh"
    assert list(inspect.signature(activations.elu).parameters) == ["x", "alpha"]


def test_python_activations_of_ones_own_are_traced_after_the_layer(tmp_path):
    # Keras takes any callable as an activation: densitron traces it on the layer's output
    # (its densitron.ops become engine nodes), in Dense and Activation; saved as those nodes.
    from densitron import ops

    def my_act(t):
        return ops.relu(t) * 2.0 - 0.5 * ops.sigmoid(t)

    inp = layers.Input((4,))
    h = layers.Dense(5, activation=my_act)(inp)
    out = layers.Dense(1)(layers.Activation(lambda t: ops.tanh(t) + t)(h))
    model = Model(inp, out)
    x = np.random.default_rng(6).normal(size=(8, 4)).astype(np.float32)
    (w1, b1), (w2, b2) = model.layers[1].get_weights(), model.layers[-1].get_weights()
    z = x.astype(np.float64) @ w1 + b1
    a = np.maximum(z, 0) * 2 - 0.5 / (1 + np.exp(-z))
    np.testing.assert_allclose(model.predict(x, verbose=0), (np.tanh(a) + a) @ w2 + b2,
                               rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "act.keras")
    model.save(path)
    from densitron.models import load_model

    np.testing.assert_array_equal(load_model(path).predict(x, verbose=0),
                                  model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="write it with densitron.ops.*Received: activation="):
        layers.Dense(3, activation=lambda t: np.maximum(t, 0))(inp)
    with pytest.raises(ValueError, match="of its input's shape"):
        layers.Dense(3, activation=lambda t: ops.mean(t, axis=-1))(inp)
