"""MaxPooling1D/2D/3D and AveragePooling1D/2D/3D on the engine's windowed pooling node
(OpType::kWindowPool): values against a float64 NumPy reference of Keras's pooling (XLA's
windows: 'same' pads (total // 2) before; the mean over the values inside), gradients through
a layer before the pooling against finite differences, the maximum's gradient to the first
maximum of a window on ties (as JAX's, which Keras's JAX backend uses), the same training on one
and two threads, a large image built and stepped in bounded memory, and the engine's refusal of
malformed attributes. Parity with Keras's layers themselves is in test_convolution.py."""

import math
import textwrap

import densitron
import numpy as np
import pytest
from densitron import layers
from densitron.models import Model
from test_conv_native import peak_growth_kb
from test_gradients_fd import fd_check
from test_threads import assert_trains_alike_on_one_and_two_threads

_WINDOW_POOL, _INDEX_MAP, _POOL = 34, 20, 16  # densitron::OpType


def pads_of(spatial, pool, strides, padding):
    """XLA's (before, after) padding of each axis, as Keras's JAX backend."""
    if padding == "valid":
        return [(0, 0)] * len(spatial)
    pads = []
    for n, k, s in zip(spatial, pool, strides):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def pool_reference(x, pool, strides, padding, data_format, mode):
    """Keras's pooling in float64: each window's maximum or mean over the values inside."""
    x = np.asarray(x, np.float64)
    if data_format == "channels_first":
        x = np.moveaxis(x, 1, -1)
    rank = x.ndim - 2
    pads = pads_of(x.shape[1:-1], pool, strides, padding)
    fill = -np.inf if mode == "max" else 0.0
    xp = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=fill)
    inside = np.pad(np.ones(x.shape[1:-1]), pads)
    outs = [(xp.shape[1 + a] - pool[a]) // strides[a] + 1 for a in range(rank)]
    total = np.full((x.shape[0], *outs, x.shape[-1]), fill)
    count = np.zeros(outs)
    for tap in np.ndindex(*pool):
        window = tuple(slice(t, t + (n - 1) * s + 1, s) for t, n, s in zip(tap, outs, strides))
        values = xp[(slice(None), *window)]
        total = np.maximum(total, values) if mode == "max" else total + values
        count += inside[window]
    y = total if mode == "max" else total / count[..., None]
    return np.moveaxis(y, -1, 1) if data_format == "channels_first" else y


def engine_ops(model, layer):
    """The engine ops `layer`'s call lowers to."""
    node = next(n for n in model._nodes if n.layer is layer)
    items, _ = layer._engine_subgraph(node, {})
    return [spec[0] for _, spec in items]


CASES = [  # (layer, input shape without the batch, arguments)
    (layers.MaxPooling1D, (13, 3), {}),
    (layers.MaxPooling1D, (17, 5), {"pool_size": 3, "strides": 2, "padding": "same"}),
    (layers.AveragePooling1D, (17, 5), {"pool_size": 4, "strides": 3, "padding": "same"}),
    (layers.AveragePooling1D, (11, 10), {"pool_size": 2, "strides": 3}),
    (layers.MaxPooling1D, (4, 11), {"pool_size": 3, "strides": 1, "padding": "same",
                                    "data_format": "channels_first"}),
    (layers.MaxPooling2D, (11, 9, 3), {"pool_size": (3, 2), "strides": (2, 1),
                                       "padding": "same"}),
    (layers.AveragePooling2D, (10, 13, 17), {"pool_size": 3, "strides": 2, "padding": "same"}),
    (layers.AveragePooling2D, (3, 9, 8), {"pool_size": 2, "padding": "same",
                                          "data_format": "channels_first"}),
    (layers.MaxPooling2D, (40, 37, 9), {"pool_size": 3, "strides": 1, "padding": "same"}),
    (layers.MaxPooling3D, (5, 6, 7, 2), {"pool_size": (2, 3, 3), "strides": (1, 2, 1),
                                         "padding": "same"}),
    (layers.AveragePooling3D, (6, 5, 7, 3), {"pool_size": 2, "padding": "same"}),
    (layers.AveragePooling3D, (3, 6, 5, 4), {"pool_size": 2, "strides": (2, 1, 2),
                                             "data_format": "channels_first"}),
]
IDS = [f"{c.__name__}-{s}-{sorted(k.items())}" for c, s, k in CASES]


def _arguments(cls, kwargs):
    rank = int(cls.__name__[-2])
    pool = kwargs.get("pool_size", 2)
    pool = (pool,) * rank if isinstance(pool, int) else tuple(pool)
    strides = kwargs.get("strides", pool)
    strides = (strides,) * rank if isinstance(strides, int) else tuple(strides)
    return pool, strides, kwargs.get("padding", "valid"), \
        kwargs.get("data_format", "channels_last"), "max" if "Max" in cls.__name__ else "mean"


@pytest.mark.parametrize("cls,shape,kwargs", CASES, ids=IDS)
def test_forward_against_float64_reference(cls, shape, kwargs):
    x = np.random.default_rng(1).normal(size=(5, *shape)).astype(np.float32)
    inp = layers.Input(shape)
    layer = cls(**kwargs)
    model = Model(inp, layer(inp))
    ops = engine_ops(model, layer)
    assert _WINDOW_POOL in ops and _POOL not in ops, ops
    # (channels_first: moved to channels_last and back, one map entry a value)
    assert ops.count(_INDEX_MAP) == (2 if kwargs.get("data_format") == "channels_first" else 0)
    want = pool_reference(x, *_arguments(cls, kwargs))
    got = model.predict(x, batch_size=3, verbose=0)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls,shape,kwargs", CASES[:-4] + CASES[-3:],
                         ids=IDS[:-4] + IDS[-3:])
def test_gradients_against_finite_differences(cls, shape, kwargs):
    # the pooling's input gradient reaches the Dense kernel before it (a max's inputs tie with
    # probability 0; a step of 3e-4, as 1e-3 moved two close values of a window past each
    # other); a Dense after it takes the pooled values
    rng = np.random.default_rng(2)
    inp = layers.Input(shape)
    h = layers.Dense(shape[-1], bias_initializer="random_normal")(inp)
    pooled = layers.Flatten()(cls(**kwargs)(h))
    out = layers.Dense(2, activation="tanh")(pooled)
    fd_check(Model(inp, out), rng.normal(size=(3, *shape)), rng.normal(size=(3, 2)), "mse",
             h=3e-4)


def _image_model(shape, layer):
    """One-hot positions times a Dense kernel (positions, channels) whose values are the image:
    the kernel's gradient is the pooling's input gradient."""
    positions = math.prod(shape[:-1])
    inp = layers.Input((*shape[:-1], positions))
    dense = layers.Dense(shape[-1], use_bias=False)
    model = Model(inp, layers.Flatten()(layer(dense(inp))))
    x = np.eye(positions, dtype=np.float32).reshape(1, *shape[:-1], positions)
    return model, dense, x


@pytest.mark.parametrize("pool,strides,padding", [
    ((3,), (2,), "same"), ((2, 2), (2, 2), "valid"), ((3, 2), (1, 2), "same")])
def test_max_gradient_goes_to_the_first_maximum_of_ties(pool, strides, padding):
    # an image of few distinct values: windows with ties. The gradient of each output goes
    # to the first maximum of its window in window (row-major) order, as JAX's
    jax = pytest.importorskip("jax")
    rank = len(pool)
    shape = (6, 5, 2)[-rank - 1:]
    image = np.random.default_rng(3).integers(0, 3, shape).astype(np.float32)
    layer = layers.MaxPooling1D(pool, strides, padding) if rank == 1 else \
        layers.MaxPooling2D(pool, strides, padding)
    model, dense, x = _image_model(shape, layer)
    model.compile(optimizer="sgd", loss="mse")
    dense.set_weights([image.reshape(-1, shape[-1])])
    out_width = model.output.shape[-1]
    target = np.random.default_rng(4).normal(size=(1, out_width)).astype(np.float32)
    grads = model._compute_gradients(x, target)
    pads = pads_of(shape[:-1], pool, strides, padding)

    def loss(img):
        y = jax.lax.reduce_window(img, -np.inf, jax.lax.max, (*pool, 1), (*strides, 1),
                                  [*pads, (0, 0)])
        return ((y.reshape(-1) - target[0]) ** 2).mean()

    want = np.asarray(jax.grad(loss)(image))
    np.testing.assert_allclose(grads[0].reshape(shape), want, rtol=1e-6, atol=1e-7)
    assert (want != 0).sum() < image.size  # (ties left some inputs without a gradient)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_trains_alike_on_one_and_two_threads(data_format):
    rng = np.random.default_rng(5)
    shape = (12, 11, 6) if data_format == "channels_last" else (6, 12, 11)
    x = rng.normal(size=(64, *shape)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]

    def build():
        inp = layers.Input(shape)
        h = layers.Conv2D(8, 3, padding="same", activation="relu", data_format=data_format)(inp)
        a = layers.MaxPooling2D(3, 2, "same", data_format=data_format)(h)
        b = layers.AveragePooling2D(2, data_format=data_format)(a)
        out = layers.Dense(3, activation="softmax")(layers.Flatten()(b))
        model = Model(inp, out)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model

    assert_trains_alike_on_one_and_two_threads(build, x, y, batch_size=16, epochs=2)


_LARGE_IMAGE = textwrap.dedent("""
    import resource
    import numpy as np
    from densitron import layers, models
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 224, 224, 32)).astype(np.float32)
    y = rng.normal(size=(4, 1)).astype(np.float32)
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    inp = layers.Input((224, 224, 32))
    h = layers.Dense(32)(inp)
    h = layers.AveragePooling2D(3, strides=1, padding="same")(layers.MaxPooling2D(2)(h))
    model = models.Model(inp, layers.Dense(1)(layers.GlobalAveragePooling2D()(h)))
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start)
""")


def test_large_image_pools_a_step_in_bounded_memory():
    # 224×224×32 at batch 4 through MaxPooling2D(2) then AveragePooling2D(3, 1, 'same'). Their
    # windows' maps would have taken 112·112·(4 + 9)·32 entries a sample (48 bytes each as they
    # were made: 250 MB). The nodes' buffers: the Dense's output and gradient (2 × 25.7 MB),
    # the poolings' outputs and gradients (4 × 6.4 MB), the batch's input (25.7 MB). The
    # peak's growth over the building and the step, in a fresh process, stays under half of
    # the old maps' bytes.
    grown_kb = peak_growth_kb(_LARGE_IMAGE)
    old_maps_kb = 112 * 112 * (4 + 9) * 32 * 48 // 1024
    assert grown_kb < old_maps_kb // 2, (grown_kb, old_maps_kb)


def test_adaptive_pooling_keeps_its_map():
    inp = layers.Input((9, 8, 4))
    layer = layers.AdaptiveMaxPooling2D((4, 3))
    model = Model(inp, layer(inp))
    ops = engine_ops(model, layer)
    assert _WINDOW_POOL not in ops and _INDEX_MAP in ops, ops


def test_engine_refuses_malformed_pooling_attributes():
    # the node's {rank, in, channels, k, strides, pad_before, out, mode}: a ValueError from the
    # engine for each malformed value (a mode other than 0 or 1, a window missing the input),
    # never a crash
    from densitron import _core

    linear = (0.0, -1.0, 0.0, 1.0)

    def graph(iattrs, width=4 * 4 * 2):
        nodes = [(0, [], 9 * 8 * 2, 2, 0, linear, [], [], [], (0.0, 0.0)),
                 (_WINDOW_POOL, [0], width, 2, 0, linear, [], [], iattrs, (0.0, 0.0))]
        return _core.Graph(nodes, [], [0], [1])

    good = [2, 9, 8, 2, 2, 2, 2, 2, 0, 0, 4, 4, 1]  # MaxPooling2D(2) of 9 x 8 x 2
    graph(good)
    graph(good[:-1] + [0])
    bad = [[4] + good[1:], good[:-1], good + [1], [2, 1 << 40] + good[2:]]
    for field, value in [(1, 0), (3, 0), (4, 0), (6, 0), (8, -1), (8, 2), (10, 0), (12, 2),
                         (12, -1)]:
        bad.append(good[:field] + [value] + good[field + 1:])
    for iattrs in bad:
        with pytest.raises(ValueError, match="a windowed pooling takes"):
            graph(iattrs)
    with pytest.raises(ValueError, match="a windowed pooling takes"):
        graph(good, width=4 * 4 * 2 + 2)
    graph(good[:10] + [5, 4, 1], width=5 * 4 * 2)  # a fifth window: value 8 alone
    with pytest.raises(ValueError, match="each window meeting the input"):
        graph(good[:10] + [6, 4, 1], width=6 * 4 * 2)  # a sixth would start past the input
    assert densitron.get_num_threads() >= 1
