"""Max pooling whose windows tile its input (strides equal to the pool size, no padding before,
every window inside the input: Keras's MaxPooling2D(2) on 'valid' padding) runs the engine's
disjoint path, writing each input gradient once; a relu Conv read only by such a pooling leaves
its relu derivative to the pooling's backward. Checked: the input gradient against a float64
NumPy routing of each window's first maximum (ties, NaN, the rows and columns no window covers,
'same' padding's clipped windows on the general path), a relu convolution's gradients against
the same model with the relu as a layer of its own (bit for bit) and finite differences,
training on one and two threads, and training against Keras on JAX."""

import itertools

import densitron
import numpy as np
import pytest
from densitron import layers
from keras_subprocess import assert_trains_as_keras
from test_gradients_fd import fd_check
from test_threads import assert_trains_alike_on_one_and_two_threads


def routed_reference(image, pool, strides, dy):
    """The max pooling's input gradient of `image` (spatial..., channels; windows starting at
    o·strides, clipped to the input), float64: each window's dy to its first tap in row-major
    order holding the maximum, the first NaN where the window holds one."""
    spatial = image.shape[:-1]
    out = dy.shape[:-1]
    grad = np.zeros(image.shape)
    for o in itertools.product(*(range(n) for n in out)):
        lo = [o[a] * strides[a] for a in range(len(spatial))]
        hi = [min(lo[a] + pool[a], spatial[a]) for a in range(len(spatial))]
        taps = list(itertools.product(*(range(lo[a], hi[a]) for a in range(len(spatial)))))
        for ch in range(image.shape[-1]):
            values = np.array([image[(*t, ch)] for t in taps], dtype=np.float64)
            nan = np.isnan(values)
            k = int(np.argmax(nan)) if nan.any() else int(np.argmax(values == values.max()))
            grad[(*taps[k], ch)] += dy[(*o, ch)]
    return grad


def _embedded_pool(shape, layer):
    """A model whose Embedding's table is the image (one row a position): the table's gradient
    is the pooling's input gradient, row for row."""
    positions = int(np.prod(shape[:-1]))
    inp = layers.Input((positions,), dtype="int32")
    table = layers.Embedding(positions, shape[-1])
    pooled = layer(layers.Reshape(shape)(table(inp)))
    model = densitron.Model(inp, layers.Flatten()(pooled))
    model.compile(optimizer="sgd", loss="mse")
    return model, table, np.arange(positions, dtype=np.int32)[None]


POOL_CASES = [  # (layer class, image shape, pool, strides, padding)
    ("MaxPooling2D", (11, 11, 3), (2, 2), (2, 2), "valid"),  # 11 -> 5: row and column 10 left
    ("MaxPooling2D", (11, 10, 2), (2, 3), (2, 3), "valid"),  # column 9 left
    ("MaxPooling2D", (7, 9, 4), (3, 3), (3, 3), "valid"),
    ("MaxPooling2D", (8, 6, 5), (2, 2), (2, 2), "same"),  # sizes divide: the disjoint path
    ("MaxPooling2D", (11, 11, 3), (2, 2), (2, 2), "same"),  # clipped windows: the general path
    ("MaxPooling1D", (13, 6), (2,), (2,), "valid"),
    ("MaxPooling3D", (5, 4, 5, 2), (2, 2, 2), (2, 2, 2), "valid"),
]


@pytest.mark.parametrize("cls,shape,pool,strides,padding", POOL_CASES)
def test_max_gradient_routed_as_the_float64_reference_with_ties_and_nan(cls, shape, pool,
                                                                      strides, padding):
    # few distinct values (ties in most windows) and a few NaNs, one window with two
    rng = np.random.default_rng(7)
    image = rng.integers(0, 3, shape).astype(np.float32)
    flat = image.reshape(-1)
    flat[rng.choice(flat.size, 4, replace=False)] = np.nan
    flat[0] = flat[shape[-1]] = np.nan  # channel 0 of the first two positions: one window
    model, table, x = _embedded_pool(shape, getattr(layers, cls)(pool, strides, padding))
    table.set_weights([image.reshape(-1, shape[-1])])
    out_shape = model.layers[-2].output.shape[1:]
    target = rng.normal(size=(1, int(np.prod(out_shape)))).astype(np.float32)
    pooled = model.predict(x, verbose=0)
    grads = model._compute_gradients(x, target)
    # the loss's gradient as the engine takes it: 2 (y - t) / n, NaN where y is
    dy = (2.0 * (pooled.astype(np.float64) - target) / target.size).reshape(out_shape)
    want = routed_reference(image.astype(np.float64), pool, strides, dy)
    got = grads[0].reshape(shape)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)  # (NaN where NaN)
    assert np.isnan(want).any() and (want == 0).sum() > want.size // 2
    if padding == "valid":  # what no window covers takes no gradient
        covered = tuple(slice(0, (n // p) * p) for n, p in zip(shape[:-1], pool))
        uncovered = np.ones(shape[:-1], bool)
        uncovered[covered] = False
        assert (got[uncovered] == 0).all()


def _relu_cnn(shape, separate_relu, pool=2):
    """Conv2D(4, 3, relu) - MaxPooling2D(pool) - Conv2D(3, 2, relu) - MaxPooling2D(2) - Dense,
    the relus fused in the convolutions or as layers of their own."""
    L = layers
    inp = densitron.Input(shape)
    h = inp
    for filters, size in ((4, 3), (3, 2)):
        conv = L.Conv2D(filters, size, activation=None if separate_relu else "relu",
                        bias_initializer="random_normal")
        h = conv(h)
        if separate_relu:
            h = L.Activation("relu")(h)
        h = L.MaxPooling2D(pool if filters == 4 else 2)(h)
    return densitron.Model(inp, L.Dense(2, activation="tanh")(L.Flatten()(h)))


@pytest.mark.parametrize("shape,pool", [((16, 15, 2), 2), ((13, 12, 1), 2), ((17, 17, 3), 3)])
def test_relu_left_to_the_pooling_matches_a_separate_relu_bit_for_bit(shape, pool):
    # 16x15 -> 14x13 -> 7x6 (column 12 left) -> 6x5 -> 3x2 (column 4 left); the separate
    # relu layer's own backward pass gives the reference, value for value
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, *shape)).astype(np.float32)
    y = rng.normal(size=(6, 2)).astype(np.float32)
    fused, separate = _relu_cnn(shape, False, pool), _relu_cnn(shape, True, pool)
    separate.set_weights(fused.get_weights())
    results = []
    for model in (fused, separate):
        model.compile(optimizer="sgd", loss="mse")
        results.append(model._compute_gradients(x, y, return_loss=True))
    (g_fused, loss_fused), (g_separate, loss_separate) = results
    assert loss_fused == loss_separate
    for a, b in zip(g_fused, g_separate):
        np.testing.assert_array_equal(a, b)
    assert all(np.any(g) for g in g_fused)


def test_relu_left_to_the_pooling_against_finite_differences():
    rng = np.random.default_rng(4)
    shape = (9, 8, 2)  # 9x8 -> 7x6 -> 3x3 (row 6 left) -> 2x2 -> 1x1
    fd_check(_relu_cnn(shape, False), rng.normal(size=(3, *shape)), rng.normal(size=(3, 2)),
             "mse", h=3e-4)


def test_a_relu_conv_read_twice_keeps_its_own_relu_backward():
    # the convolution's output also feeds a Dense past the pooling: its gradient sums two
    # readers, so the pooling may not apply the relu for it; the same as a separate relu
    L = layers
    rng = np.random.default_rng(5)
    shape = (9, 7, 2)

    def build(separate):
        inp = densitron.Input(shape)
        conv = L.Conv2D(3, 3, activation=None if separate else "relu",
                        bias_initializer="random_normal")(inp)
        if separate:
            conv = L.Activation("relu")(conv)
        pooled = L.Flatten()(L.MaxPooling2D(2)(conv))
        side = L.Dense(2)(L.Flatten()(conv))
        return densitron.Model(inp, L.Add()([L.Dense(2)(pooled), side]))

    x = rng.normal(size=(4, *shape)).astype(np.float32)
    y = rng.normal(size=(4, 2)).astype(np.float32)
    fused, separate = build(False), build(True)
    separate.set_weights(fused.get_weights())
    grads = []
    for model in (fused, separate):
        model.compile(optimizer="sgd", loss="mse")
        grads.append(model._compute_gradients(x, y))
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)
    fd_check(fused, x, y, "mse", h=3e-4)


def test_a_mnist_convnet_trains_alike_on_one_and_two_threads():
    def build():
        L = layers
        inp = densitron.Input((15, 15, 1))
        h = L.MaxPooling2D()(L.Conv2D(8, 3, activation="relu")(inp))  # 13 -> 6, one left
        h = L.MaxPooling2D()(L.Conv2D(6, 3, activation="relu")(h))  # 4 -> 2
        model = densitron.Model(inp, L.Dense(3, activation="softmax")(L.Flatten()(h)))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    rng = np.random.default_rng(8)
    assert_trains_alike_on_one_and_two_threads(
        build, rng.normal(size=(96, 15, 15, 1)).astype(np.float32), rng.integers(0, 3, 96),
        batch_size=32, epochs=2)


_KERAS_SCRIPT = """
import numpy as np, keras, densitron

def convnet(ns, opt):
    L = ns.layers
    inp = ns.Input((13, 14, 2))
    h = L.MaxPooling2D()(L.Conv2D(8, 3, activation="relu")(inp))  # 11x12 -> 5x6
    h = L.MaxPooling2D()(L.Conv2D(6, 3, activation="relu")(h))  # 3x4 -> 1x2
    h = L.MaxPooling2D((1, 2))(L.Conv2D(5, 1, activation="relu")(h))  # (1, 2) -> 1x1
    model = ns.Model(inp, L.Dense(4, activation="softmax")(L.Flatten()(h)))
    model.compile(optimizer=opt(ns), loss="sparse_categorical_crossentropy")
    return model

rng = np.random.default_rng(0)
x = rng.normal(size=(64, 13, 14, 2)).astype(np.float32)
y = rng.integers(0, 4, size=64)
build = convnet
"""


def test_a_mnist_convnet_of_odd_sizes_trains_as_keras_on_jax():
    assert_trains_as_keras(_KERAS_SCRIPT)
