"""densitron.ops's elementwise math and reductions on symbolic tensors (Lambda layers, traced
call()s): each an engine node, its values against NumPy in float64 over shapes with tails and
rank 3, its gradient against finite differences; on arrays, NumPy's values; the arguments a
symbolic tensor refuses."""

import numpy as np
import pytest

import densitron
from densitron import Input, layers, ops
from densitron.models import Model
from test_gradients_fd import fd_check

UNARY = {
    "square": (ops.square, np.square, (-2.0, 2.0)),
    "abs": (ops.abs, np.abs, (-2.0, 2.0)),
    "sqrt": (ops.sqrt, np.sqrt, (0.1, 3.0)),
    "log": (ops.log, np.log, (0.1, 3.0)),
    "exp": (ops.exp, np.exp, (-3.0, 3.0)),
    "log1p": (ops.log1p, np.log1p, (-0.5, 3.0)),
    "negative": (ops.negative, np.negative, (-2.0, 2.0)),
    "clip": (lambda t: ops.clip(t, -0.5, 0.7), lambda v: np.clip(v, -0.5, 0.7), (-2.0, 2.0)),
    "maximum": (lambda t: ops.maximum(t, 0.25), lambda v: np.maximum(v, 0.25), (-1.0, 1.0)),
    "minimum": (lambda t: ops.minimum(0.25, t), lambda v: np.minimum(v, 0.25), (-1.0, 1.0)),
    "power": (lambda t: t ** 3, lambda v: v ** 3, (-2.0, 2.0)),
    "power_frac": (lambda t: ops.power(t, 0.5), np.sqrt, (0.1, 3.0)),
    "divide_by": (lambda t: t / 3.0, lambda v: v / 3.0, (-2.0, 2.0)),
    "divide_into": (lambda t: 2.0 / t, lambda v: 2.0 / v, (0.5, 3.0)),
    "pow2": (lambda t: t ** 2, np.square, (-2.0, 2.0)),
}


def _lambda_model(fn, shape):
    inp = Input(shape)
    return Model(inp, layers.Lambda(fn)(inp))


@pytest.mark.parametrize("shape", [(37,), (3, 19)], ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_values_match_numpy(name, shape):
    fn, ref, (lo, hi) = UNARY[name]
    x = np.random.default_rng(1).uniform(lo, hi, size=(9, *shape)).astype(np.float32)
    got = _lambda_model(fn, shape).predict(x, verbose=0)
    np.testing.assert_allclose(got, ref(x.astype(np.float64)), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(fn(x), ref(x.astype(np.float64)), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_backward_against_finite_differences(name):
    fn, _, (lo, hi) = UNARY[name]
    rng = np.random.default_rng(2)
    inp = Input((4,))
    # a Dense whose outputs stay inside the op's domain: sigmoid into (lo, hi)
    h = layers.Dense(5, activation="sigmoid")(inp)
    h = layers.Lambda(lambda t: t * (hi - lo) + lo)(h)
    out = layers.Dense(2)(layers.Lambda(fn)(h))
    fd_check(Model(inp, out), rng.normal(size=(6, 4)), rng.normal(size=(6, 2)), "mse")


def test_divide_and_reductions_values_and_backward():
    rng = np.random.default_rng(3)
    a, b = Input((3, 7)), Input((3, 7))
    q = ops.divide(a, ops.exp(b))
    model = Model([a, b], [ops.mean(q, axis=-1), ops.sum(q, axis=2, keepdims=True),
                           ops.mean(ops.sum(q, axis=-1), axis=-1, keepdims=True)])
    xa = rng.normal(size=(5, 3, 7)).astype(np.float32)
    xb = rng.normal(size=(5, 3, 7)).astype(np.float32)
    m, s, mm = model.predict([xa, xb], verbose=0)
    ref = xa.astype(np.float64) / np.exp(xb.astype(np.float64))
    assert m.shape == (5, 3) and s.shape == (5, 3, 1) and mm.shape == (5, 1)
    np.testing.assert_allclose(m, ref.mean(axis=-1), rtol=1e-5)
    np.testing.assert_allclose(s, ref.sum(axis=-1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(mm[:, 0], ref.sum(axis=-1).mean(axis=-1), rtol=1e-5, atol=1e-6)
    # gradients through both inputs of the division and through the reductions
    inp = Input((6,))
    num = layers.Dense(4)(inp)
    den = layers.Dense(4, activation="softplus")(inp)
    out = ops.sum(num / (den + 0.5), axis=-1, keepdims=True)
    out = layers.Dense(1)(ops.mean(ops.square(num), axis=-1, keepdims=True) + out)
    fd_check(Model(inp, out), rng.normal(size=(5, 6)), rng.normal(size=(5, 1)), "mse")


@pytest.mark.parametrize("mode", ["mean", "sum", "max"])
def test_reductions_over_other_axes(mode):
    # Keras's ops.mean/sum/max over any axes beside the batch axis: a run of adjacent axes
    # in one pass, separate runs one after another (the last first), keepdims or not; values
    # against NumPy in float64 and the backward against finite differences.
    fn, ref = getattr(ops, mode), getattr(np, mode)
    rng = np.random.default_rng(13)
    inp = Input((3, 4, 5))
    cases = [1, -2, (1, 2), (2, 3), (1, 3), (1, 2, 3)]
    outs = [fn(inp, axis=axis, keepdims=keepdims) for axis in cases for keepdims in (False, True)]
    x = rng.normal(size=(6, 3, 4, 5)).astype(np.float32)
    got = Model(inp, outs).predict(x, verbose=0)
    k = 0
    for axis in cases:
        for keepdims in (False, True):
            want = ref(x.astype(np.float64), axis=axis, keepdims=keepdims)
            assert got[k].shape == want.shape, (axis, keepdims)
            np.testing.assert_allclose(got[k], want, rtol=1e-5, atol=1e-5)
            k += 1
    small = Input((6,))
    h = layers.Reshape((2, 3, 2))(layers.Dense(12, bias_initializer="random_normal")(small))
    out = layers.Dense(2)(layers.Flatten()(fn(h, axis=(1, 3))))
    fd_check(Model(small, out), rng.normal(size=(5, 6)), rng.normal(size=(5, 2)), "mse")
    with pytest.raises(ValueError, match=r"beside the batch axis.*Received: axis=4"):
        fn(inp, axis=4)
    with pytest.raises(ValueError, match=r"Received: axis=\(0, 1\)"):
        fn(inp, axis=(0, 1))
    with pytest.raises(ValueError, match=r"an int or a list of ints. Received: axis=1.5"):
        fn(inp, axis=1.5)


def test_operators_on_symbolic_tensors_and_in_a_subclassed_layer():
    class RMSNormish(layers.Layer):
        def call(self, x):
            return x / ops.sqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + 1e-6)

    rng = np.random.default_rng(4)
    inp = Input((8,))
    h = layers.Dense(8)(inp)
    model = Model(inp, [abs(h) ** 1.5, 1.0 / (1.0 + ops.exp(-h)), layers.Lambda(
        lambda t: ops.cast(t, "float32") / 2)(h)])
    x = rng.normal(size=(4, 8)).astype(np.float32)
    k, bias = model.layers[1].get_weights()
    hv = x.astype(np.float64) @ k + bias
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got[0], np.abs(hv) ** 1.5, rtol=1e-5)
    np.testing.assert_allclose(got[1], 1 / (1 + np.exp(-hv)), rtol=1e-5)
    np.testing.assert_allclose(got[2], hv / 2, rtol=1e-5, atol=1e-7)
    norm = Model(inp, RMSNormish()(inp))
    np.testing.assert_allclose(norm.predict(x, verbose=0),
                               x / np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=-1,
                                                   keepdims=True) + 1e-6), rtol=1e-5)
    # its gradient (the divisor's summed over each row) against finite differences
    fd_check(densitron.Sequential([Input((8,)), layers.Dense(6), RMSNormish(), layers.Dense(2)]),
             x, rng.normal(size=(4, 2)), "mse")
    # and it trains
    norm2 = densitron.Sequential([Input((8,)), layers.Dense(8), RMSNormish(), layers.Dense(1)])
    norm2.compile(optimizer="adam", loss="mse")
    y = x[:, :1] * 2.0
    h = norm2.fit(np.tile(x, (50, 1)), np.tile(y, (50, 1)), epochs=3, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]


def test_symbolic_tensors_refuse_what_the_engine_cannot_compute():
    t = Input((3, 4))
    for call, match in ((lambda: ops.sum(t) + t, "batch axis"),
                        (lambda: ops.mean(t) * t, "batch axis"),
                        (lambda: ops.sqrt(ops.sum(t)) / t, "batch axis"),
                        (lambda: ops.maximum(ops.sum(t), t), "batch axis"),
                        (lambda: ops.sum(t, axis=(0, 1)), "beside the batch axis"),
                        (lambda: ops.clip(t, t, 1.0), "x_min"),
                        (lambda: ops.power(t, t), "exponent"),
                        (lambda: ops.maximum(t, "a"), "x2"),
                        (lambda: ops.divide(t, Input((4,))), "same shape")):
        with pytest.raises((ValueError, TypeError), match=match) as info:
            call()
        assert "Received" in str(info.value)
    with pytest.raises(ValueError, match="Unknown math op.*Received"):
        densitron.layers.math_ops.MathOp("cube")


def test_a_model_of_math_ops_saves_and_loads(tmp_path):
    inp = Input((3, 5))
    h = layers.Dense(5)(inp)
    out = ops.sum(ops.clip(h, -1.0, 1.0) / (ops.abs(h) + 1.0), axis=-1, keepdims=True) ** 2
    model = Model(inp, ops.log1p(ops.exp(out)) / ops.mean(ops.square(h), axis=-1,
                                                          keepdims=True))
    x = np.random.default_rng(5).normal(size=(4, 3, 5)).astype(np.float32)
    path = str(tmp_path / "math.keras")
    model.save(path)
    back = densitron.models.load_model(path)
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    assert {"MathOp", "Divide", "Reduce"} <= {type(layer).__name__
                                              for layer in back._keras_layers()}
    # the ops' layers are Keras's operations: not among the model's layers (the file keeps
    # them as Keras's op nodes, which load as ops again)
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Dense"]
    assert [type(layer).__name__ for layer in back.layers] == ["InputLayer", "Dense"]


def test_constant_arrays_along_the_last_axis():
    q = np.array([[0.1, 0.5, 0.9]], dtype=np.float32)
    inp = Input((2, 3))
    model = Model(inp, [inp * q, q * inp, inp - q[0], q - inp, (q - 1.0) * inp + q])
    x = np.random.default_rng(6).normal(size=(4, 2, 3)).astype(np.float32)
    for got, want in zip(model.predict(x, verbose=0),
                         [x * q, q * x, x - q, q - x, (q - 1.0) * x + q]):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="last axis.*Received"):
        inp * np.ones((2, 3), np.float32)


def test_comparisons_where_slices_and_shapes():
    rng = np.random.default_rng(7)
    inp = Input((2, 6))
    t = inp
    outs = [t > 0.2, t <= -0.1, ops.greater_equal(0.5, t), ops.equal(t, t), ops.not_equal(t, 0.0),
            ops.where(t > 0.0, ops.square(t), -t), t[..., 1:4], t[..., -1],
            t[..., ::2], ops.squeeze(ops.expand_dims(t, 1), axis=1),
            ops.reshape(t, (-1, 3, 4)), ops.one_hot(ops.clip(t * 3.0 + 3.0, 0.0, 5.0), 6)]
    model = Model(inp, [o if len(o.shape) > 1 else ops.expand_dims(o, -1) for o in outs])
    x = rng.normal(size=(5, 2, 6)).astype(np.float32)
    x[0, 0, 0] = 0.0
    got = model.predict(x, verbose=0)
    ids = np.clip(x * 3 + 3, 0, 5).astype(np.int64)
    want = [x > 0.2, x <= -0.1, 0.5 >= x, x == x, x != 0, np.where(x > 0, x * x, -x),
            x[..., 1:4], x[..., -1:], x[..., ::2], x, x.reshape(5, 3, 4), np.eye(6)[ids]]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.asarray(w, np.float32).reshape(g.shape), rtol=1e-6)
    # on arrays: NumPy's
    np.testing.assert_array_equal(ops.one_hot(np.array([2, 0, 7]), 3),
                                  [[0, 0, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(ops.where(x > 0, 1.0, 0.0), (x > 0).astype(np.float32))
    # gradients through where and a slice (comparisons pass none)
    inp2 = Input((4,))
    h = layers.Dense(6)(inp2)
    e = h[..., 1:5]
    out = layers.Dense(1)(ops.where(ops.abs(e) < 0.5, 0.5 * ops.square(e),
                                    0.5 * (ops.abs(e) - 0.25)) + h[:, 0:4])
    fd_check(Model(inp2, out), rng.normal(size=(6, 4)), rng.normal(size=(6, 1)), "mse")
    for call in (lambda: inp[0], lambda: inp[1:, 0], lambda: ops.squeeze(inp, 0),
                 lambda: ops.reshape(inp, (5, 12)), lambda: inp[..., 6:]):
        with pytest.raises((ValueError, TypeError), match="Received"):
            call()


def test_values_without_a_gradient_and_more_activations():
    rng = np.random.default_rng(9)
    inp = Input((7,))
    h = layers.Dense(7)(inp)
    fns = {"stop_gradient": (ops.stop_gradient, lambda v: v),
           "sign": (ops.sign, np.sign),
           "floor": (lambda t: ops.floor(t * 3.0), lambda v: np.floor(v * 3)),
           "ceil": (lambda t: ops.ceil(t * 3.0), lambda v: np.ceil(v * 3)),
           "round": (lambda t: ops.round(t * 2.0), lambda v: np.round(v * 2)),
           "relu6": (lambda t: ops.relu6(t * 5.0), lambda v: np.clip(v * 5, 0, 6)),
           "leaky_relu": (ops.leaky_relu, lambda v: np.where(v > 0, v, 0.2 * v)),
           "softsign": (ops.softsign, lambda v: v / (1 + np.abs(v)))}
    model = Model(inp, [fn(h) for fn, _ in fns.values()])
    x = rng.normal(size=(6, 7)).astype(np.float32)
    x[0, :2] = 0.0
    k, b = model.layers[1].get_weights()
    hv = x.astype(np.float64) @ k + b
    hv[0] = np.float32(hv[0])
    for got, (name, (_, ref)) in zip(model.predict(x, verbose=0), fns.items()):
        np.testing.assert_allclose(got, ref(hv), rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(ops.round(np.array([0.5, 1.5, 2.5, -0.5])), [0, 2, 2, -0])
    # no gradient through them: only the path around them trains the first Dense
    for name in ("stop_gradient", "sign", "floor", "round"):
        fn = fns[name][0]
        model = Model(inp, layers.Dense(1)(fn(h)))
        model.compile(optimizer="sgd", loss="mse")
        grads = model._compute_gradients(x, rng.normal(size=(6, 1)))
        assert not np.any(grads[0]) and not np.any(grads[1]), name
        assert np.any(grads[2]), name


def test_a_value_per_row_broadcasts_and_its_gradient_sums_the_row():
    rng = np.random.default_rng(10)
    a, r = Input((2, 5)), Input((2, 1))
    model = Model([a, r], [a + r, r + a, a - r, r - a, a * r, r * a, a / r])
    xa = rng.normal(size=(3, 2, 5)).astype(np.float32)
    xr = rng.normal(size=(3, 2, 1)).astype(np.float32)
    for got, want in zip(model.predict([xa, xr], verbose=0),
                         [xa + xr, xr + xa, xa - xr, xr - xa, xa * xr, xr * xa, xa / xr]):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    inp = Input((4,))
    full = layers.Dense(5)(inp)
    row = layers.Dense(1, activation="softplus")(inp)
    mixed = (full - row) * row + (row - full) / (row + 1.0) + full / (row + 0.5)
    build = lambda: Model(inp, layers.Dense(2)(mixed))  # noqa: E731
    fd_check(build(), rng.normal(size=(6, 4)), rng.normal(size=(6, 2)), "mse")
    # the same gradients on 1 and 2 threads, over rows enough to split
    x, y = rng.normal(size=(4096, 4)), rng.normal(size=(4096, 2))
    model = build()
    model.compile(optimizer="sgd", loss="mse")
    grads = []
    for threads in (1, 2):
        densitron.set_num_threads(threads)
        grads.append(model._compute_gradients(x, y))
    densitron.set_num_threads(2)
    for g1, g2 in zip(*grads):
        np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="incompatible shapes.*Received"):
        Input((3,)) + Input((2,))


def test_max_min_logsumexp_norm_and_friends():
    rng = np.random.default_rng(11)
    inp = Input((3, 6))
    t = inp
    outs = [ops.max(t, axis=-1), ops.min(t, axis=-1, keepdims=True), ops.logsumexp(t, axis=-1),
            ops.norm(t, axis=-1), ops.ones_like(t), ops.zeros_like(t), ops.cosh(t), ops.sinh(t),
            ops.logical_and(t > 0, t < 0.5), ops.logical_or(t > 1, t < -1),
            ops.logical_not(t > 0)]
    model = Model(inp, [o if len(o.shape) > 2 else ops.expand_dims(o, -1) for o in outs])
    x = rng.normal(size=(4, 3, 6)).astype(np.float32)
    v = x.astype(np.float64)
    m = v.max(-1, keepdims=True)
    want = [v.max(-1), v.min(-1, keepdims=True), (np.log(np.exp(v - m).sum(-1, keepdims=True))
                                                  + m)[..., 0],
            np.sqrt((v ** 2).sum(-1)), np.ones_like(v), np.zeros_like(v), np.cosh(v), np.sinh(v),
            (v > 0) & (v < 0.5), (v > 1) | (v < -1), ~(v > 0)]
    for got, w in zip(model.predict(x, verbose=0), want):
        np.testing.assert_allclose(got, np.asarray(w, np.float64).reshape(got.shape), rtol=1e-5,
                                   atol=1e-6)
    for fn, w in zip((ops.max, ops.min, ops.logsumexp, ops.norm), want):  # on arrays
        np.testing.assert_allclose(fn(x, axis=-1), w.reshape(4, 3), rtol=1e-5)
    # gradients: the maximum's to its argument, logsumexp's the softmax
    inp2 = Input((5,))
    h = layers.Dense(6)(inp2)
    out = layers.Dense(1)(ops.logsumexp(h, axis=-1, keepdims=True) +
                          ops.max(h, axis=-1, keepdims=True))
    fd_check(Model(inp2, out), rng.normal(size=(6, 5)), rng.normal(size=(6, 1)), "mse")


@pytest.mark.parametrize("shape", [(37,), (3, 19), (1,)], ids=str)
def test_argmax_and_argmin_match_numpy_with_ties_and_nan(shape):
    rng = np.random.default_rng(12)
    x = rng.integers(0, 4, size=(45, *shape)).astype(np.float32)  # many ties
    x[3, ..., 0] = np.nan
    x[5, ..., -1] = np.nan
    x[7] = np.nan
    for fn, ref in ((ops.argmax, np.argmax), (ops.argmin, np.argmin)):
        for keepdims in (False, True):
            got = _lambda_model(lambda t: fn(t, axis=-1, keepdims=keepdims), shape).predict(
                x, verbose=0)
            np.testing.assert_array_equal(got, ref(x, axis=-1, keepdims=keepdims))
        np.testing.assert_array_equal(fn(x, axis=-1), ref(x, axis=-1))  # on arrays: NumPy's
    with pytest.raises(ValueError, match=r"last axis only.*Received: axis=0"):
        ops.argmax(Input(shape), axis=0)


def test_argmax_takes_no_gradient_beside_terms_that_do():
    # A loss reading argmax (a constant where it is defined) and a differentiable term: the
    # gradient is the term's alone (finite differences agree away from ties).
    def loss(t, p):
        hit = ops.cast(ops.equal(ops.argmax(t, axis=-1), ops.argmax(p, axis=-1)), "float32")
        return ops.mean(ops.square(t - p), axis=-1) * (2.0 - hit)

    rng = np.random.default_rng(13)
    inp = Input((4,))
    model = Model(inp, layers.Dense(3)(layers.Dense(5, activation="tanh")(inp)))
    fd_check(model, rng.normal(size=(8, 4)), np.eye(3)[rng.integers(0, 3, 8)], loss)


def test_a_model_output_of_one_value_a_sample_without_a_last_axis():
    # ops.sum(..., axis=-1) as the output: shape (None,), trained against targets of shape
    # (N,), predicting (N,) as Keras does.
    rng = np.random.default_rng(14)
    x = rng.random((64, 4)).astype(np.float32)
    inp = Input((4,))
    model = Model(inp, layers.Lambda(lambda t: ops.sum(t, axis=-1))(layers.Dense(3)(inp)))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    history = model.fit(x, x.sum(1), epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(x[:3], verbose=0).shape == (3,)


def test_glu_on_arrays_and_symbolic_tensors():
    rng = np.random.default_rng(15)
    x = rng.normal(size=(7, 3, 8)).astype(np.float32)
    a, b = x[..., :4].astype(np.float64), x[..., 4:].astype(np.float64)
    want = a / (1 + np.exp(-b))
    np.testing.assert_allclose(ops.glu(x), want, rtol=1e-6)
    np.testing.assert_allclose(_lambda_model(ops.glu, (3, 8)).predict(x, verbose=0), want,
                               rtol=1e-5, atol=1e-6)
    fd_check(_glu_model(), rng.normal(size=(5, 4)),
             rng.normal(size=(5, 2)), "mse")
    with pytest.raises(ValueError, match="divisible by 2"):
        ops.glu(Input((5,)))


def _glu_model():
    inp = Input((4,))
    h = layers.Lambda(ops.glu)(layers.Dense(6)(inp))
    return Model(inp, layers.Dense(2)(h))


def test_concatenate_stack_and_numpy_only_ops():
    rng = np.random.default_rng(16)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    inp = Input((3,))
    model = Model(inp, [ops.concatenate([inp, inp * 2.0], axis=-1),
                        ops.stack([inp, ops.square(inp)], axis=-1)])
    cat, st = model.predict(x, verbose=0)
    np.testing.assert_allclose(cat, np.concatenate([x, 2 * x], axis=-1), rtol=1e-6)
    np.testing.assert_allclose(st, np.stack([x, x * x], axis=-1), rtol=1e-6)
    np.testing.assert_array_equal(ops.stack([x, x], axis=0), np.stack([x, x]))
    np.testing.assert_array_equal(ops.arange(4), np.arange(4))
    np.testing.assert_array_equal(ops.cumsum(x, axis=1), np.cumsum(x, axis=1))
    assert ops.any(np.array([0.0, 1.0])) and not ops.all(np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match=r"ops.tile on a symbolic tensor.*Received: args="):
        ops.tile(inp, 2)
    with pytest.raises(ValueError, match=r"last axis only \(axis=-1\). Received: axis=0"):
        ops.stack([inp, inp], axis=0)
