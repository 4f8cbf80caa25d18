"""Conv1D/2D/3D (groups=1) on the engine's native convolution node (OpType::kConv): values
against a float64 NumPy reference of Keras's convolution (XLA's padding), gradients of the
kernel, the bias and the input (through a layer before the convolution) against finite
differences, the same training on one and two threads and from run to run, a large image in
bounded memory, and the layers that keep their windows' index maps."""

import math
import subprocess
import sys
import textwrap

import densitron
import numpy as np
import pytest
from densitron import layers
from densitron.layers import convolutional
from densitron.models import Model
from test_gradients_fd import fd_check
from test_threads import assert_trains_alike_on_one_and_two_threads

_CONV, _INDEX_MAP = 33, 20  # densitron::OpType


def conv_reference(x, kernel, bias, strides, padding, dilation, data_format):
    """Keras's convolution in float64: the input padded as XLA pads it ('same': total // 2
    before; 'causal': span - 1 before), each kernel tap's strided slice times its matrix."""
    x = np.asarray(x, np.float64)
    w = np.asarray(kernel, np.float64)
    if data_format == "channels_first":
        x = np.moveaxis(x, 1, -1)
    rank = x.ndim - 2
    taps = w.shape[:rank]
    pads = []
    for a in range(rank):
        size, span = x.shape[1 + a], dilation[a] * (taps[a] - 1) + 1
        if padding == "valid":
            pads.append((0, 0))
        elif padding == "causal":
            pads.append((span - 1, 0))
        else:
            total = max((-(-size // strides[a]) - 1) * strides[a] + span - size, 0)
            pads.append((total // 2, total - total // 2))
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    outs = [(xp.shape[1 + a] - dilation[a] * (taps[a] - 1) - 1) // strides[a] + 1
            for a in range(rank)]
    y = np.zeros((x.shape[0], *outs, w.shape[-1]))
    for tap in np.ndindex(*taps):
        window = tuple(slice(t * d, t * d + (n - 1) * s + 1, s)
                       for t, d, n, s in zip(tap, dilation, outs, strides))
        y += np.tensordot(xp[(slice(None), *window)], w[tap], axes=([-1], [0]))
    if bias is not None:
        y += bias
    return np.moveaxis(y, -1, 1) if data_format == "channels_first" else y


def activate(name, z, axis):
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "gelu":
        return 0.5 * z * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))
    if name == "softmax":
        e = np.exp(z - z.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
    return z


def engine_ops(model, layer):
    """The engine ops `layer`'s call lowers to."""
    node = next(n for n in model._nodes if n.layer is layer)
    param_index = {id(w): k for k, w in enumerate(model.weights)}
    items, _ = layer._engine_subgraph(node, param_index)
    return [spec[0] for _, spec in items]


CASES = [  # (layer, input shape without the batch, arguments)
    (layers.Conv1D, (13, 3), {"filters": 5, "kernel_size": 3}),
    (layers.Conv1D, (17, 5), {"filters": 9, "kernel_size": 4, "strides": 2, "padding": "same"}),
    (layers.Conv1D, (15, 2), {"filters": 3, "kernel_size": 3, "dilation_rate": 2,
                              "padding": "causal", "activation": "tanh"}),
    (layers.Conv1D, (4, 11), {"filters": 7, "kernel_size": 3, "strides": 3, "padding": "same",
                              "data_format": "channels_first", "activation": "relu"}),
    (layers.Conv2D, (11, 9, 3), {"filters": 10, "kernel_size": (3, 2), "strides": (2, 1),
                                 "padding": "same", "activation": "relu"}),
    (layers.Conv2D, (10, 13, 5), {"filters": 6, "kernel_size": 3, "dilation_rate": (2, 1),
                                  "use_bias": False, "activation": "sigmoid"}),
    (layers.Conv2D, (3, 9, 8), {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same",
                                "data_format": "channels_first", "activation": "gelu"}),
    (layers.Conv2D, (9, 9, 9), {"filters": 5, "kernel_size": 1, "strides": 2}),
    (layers.Conv2D, (6, 5, 7), {"filters": 3, "kernel_size": 1, "data_format": "channels_first"}),
    (layers.Conv2D, (8, 7, 4), {"filters": 11, "kernel_size": 2, "padding": "same",
                                "activation": "softmax"}),
    (layers.Conv2D, (40, 37, 17), {"filters": 33, "kernel_size": 3, "padding": "same"}),
    (layers.Conv3D, (5, 6, 7, 2), {"filters": 5, "kernel_size": (2, 3, 3), "strides": (1, 2, 1),
                                   "padding": "same", "activation": "tanh"}),
    (layers.Conv3D, (6, 5, 4, 3), {"filters": 9, "kernel_size": 2, "dilation_rate": 2}),
    # Windows of 3 or 9 values a (k0, k1) row (one channel, or three with 3 taps a row), copied
    # from row offsets where wholly inside: rows apart by dilations, strides, 'same' edges
    (layers.Conv2D, (12, 10, 1), {"filters": 4, "kernel_size": 3, "dilation_rate": (2, 1)}),
    (layers.Conv2D, (11, 10, 3), {"filters": 5, "kernel_size": 3, "dilation_rate": (3, 1),
                                  "padding": "same"}),
    (layers.Conv2D, (11, 10, 1), {"filters": 5, "kernel_size": 3, "strides": 2,
                                  "padding": "same"}),
    (layers.Conv3D, (7, 6, 8, 1), {"filters": 3, "kernel_size": (2, 3, 3),
                                   "dilation_rate": (2, 2, 1)}),
]


@pytest.mark.parametrize("cls,shape,kwargs", CASES,
                         ids=[f"{c.__name__}-{s}-{sorted(k.items())}" for c, s, k in CASES])
def test_forward_against_float64_reference(cls, shape, kwargs):
    rng = np.random.default_rng(0)
    inp = layers.Input(shape)
    conv = cls(bias_initializer="random_normal", **kwargs)
    model = Model(inp, conv(inp))
    assert _CONV in engine_ops(model, conv)
    assert _INDEX_MAP not in engine_ops(model, conv) or conv.data_format == "channels_first"
    x = rng.normal(size=(5, *shape)).astype(np.float32)
    kernel = conv.kernel.numpy()
    bias = conv.bias.numpy() if conv.use_bias else None
    fmt = conv.data_format
    z = conv_reference(x, kernel, bias, conv.strides, conv.padding, conv.dilation_rate, fmt)
    want = activate(kwargs.get("activation"), z, 1 if fmt == "channels_first" else -1)
    got = model.predict(x, batch_size=3, verbose=0)
    assert got.shape == want.shape
    tol = 2e-6 * math.sqrt(kernel.size / kernel.shape[-1])
    np.testing.assert_allclose(got, want, rtol=tol + 1e-6, atol=tol + 1e-6)


GRADIENT_CASES = [
    (layers.Conv1D, (9, 2), {"filters": 3, "kernel_size": 3, "dilation_rate": 2,
                             "padding": "causal", "activation": "tanh"}),
    (layers.Conv2D, (7, 6, 2), {"filters": 4, "kernel_size": (3, 2), "strides": 2,
                                "padding": "same", "activation": "gelu"}),
    (layers.Conv2D, (2, 5, 6), {"filters": 3, "kernel_size": 3, "padding": "same",
                                "data_format": "channels_first", "activation": "sigmoid"}),
    (layers.Conv2D, (5, 4, 3), {"filters": 2, "kernel_size": 1, "strides": 2}),
    (layers.Conv2D, (5, 6, 1), {"filters": 20, "kernel_size": 3, "padding": "same",
                                "activation": "tanh"}),  # (windows kept: 18 deep)
    (layers.Conv3D, (4, 5, 3, 2), {"filters": 2, "kernel_size": 2, "strides": (1, 2, 1),
                                   "use_bias": False}),
]


@pytest.mark.parametrize("cls,shape,kwargs", GRADIENT_CASES,
                         ids=[f"{c.__name__}-{s}" for c, s, _ in GRADIENT_CASES])
def test_gradients_against_finite_differences(cls, shape, kwargs):
    # a Dense over the channels before the convolution: its gradient is the input's
    rng = np.random.default_rng(1)
    inp = layers.Input(shape)
    h = layers.Dense(shape[-1] + 1)(inp)  # (channels_first: over the last spatial axis)
    conv = cls(bias_initializer="random_normal", **kwargs)
    out = layers.Dense(2)(layers.Flatten()(conv(h)))
    model = Model(inp, out)
    assert _CONV in engine_ops(model, conv)
    x = rng.normal(size=(3, *shape))
    fd_check(model, x, rng.normal(size=(3, 2)), "mse")


@pytest.mark.parametrize("cin,filters,threads", [(5, 7, 1), (5, 7, 2), (260, 64, 1),
                                                 (260, 64, 2), (1, 12, 1), (1, 12, 2),
                                                 (40, 400, 1), (40, 400, 2)])
def test_gradients_against_float64_reference(cin, filters, threads):
    # mse on the convolution's output, behind a Dense(cin) without bias: the kernel's, the
    # bias's and (through the Dense's) the input's gradients by NumPy in float64. A kernel of
    # 2340 × 64 values takes its gradient by kernel rows, a small one by blocks of samples;
    # windows no deeper than the filters (9 · 1 <= 12, 9 · 40 <= 400) are laid out once, by
    # the forward, and read again by the kernel's gradient (by blocks, by rows).
    densitron.set_num_threads(threads)
    rng = np.random.default_rng(8)
    inp = layers.Input((6, 5, 3))
    dense = layers.Dense(cin, use_bias=False)
    conv = layers.Conv2D(filters, 3, strides=(2, 1), padding="same",
                         bias_initializer="random_normal")
    model = Model(inp, conv(dense(inp)))
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(9, 6, 5, 3)).astype(np.float32)
    t = rng.normal(size=(9, 3, 5, filters)).astype(np.float32)
    wd, kernel, bias = (w.astype(np.float64) for w in model.get_weights())
    h = x.astype(np.float64) @ wd
    y = conv_reference(h, kernel, bias, (2, 1), "same", (1, 1), "channels_last")
    g = 2.0 * (y - t) / y.size
    # h padded as 'same' pads it (rows: 0 before, 1 after; columns: 1 and 1), each tap's slice
    hp = np.pad(h, [(0, 0), (0, 1), (1, 1), (0, 0)])
    dhp = np.zeros_like(hp)
    dk = np.zeros_like(kernel)
    for a, b in np.ndindex(3, 3):
        window = (slice(None), slice(a, a + 5, 2), slice(b, b + 5))
        dk[a, b] = np.tensordot(hp[window], g, axes=([0, 1, 2], [0, 1, 2]))
        dhp[window] += g @ kernel[a, b].T
    dwd = np.tensordot(x, dhp[:, :-1, 1:-1], axes=([0, 1, 2], [0, 1, 2]))
    got = model._compute_gradients(x, t)
    for name, want, value in zip(("dense", "kernel", "bias"), (dwd, dk, g.sum((0, 1, 2))), got):
        np.testing.assert_allclose(value, want, rtol=2e-4, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_input_gradient_added_to_another_branchs(data_format):
    # h feeds the convolution and the sum after it: the convolution's input gradient adds to
    # the sum's (or the sum's to it), whichever writes first
    rng = np.random.default_rng(2)
    inp = layers.Input((6, 5, 3))
    h = layers.Dense(3, activation="tanh")(inp)
    filters = 3 if data_format == "channels_last" else 6
    c = layers.Conv2D(filters, 3, padding="same", data_format=data_format,
                      bias_initializer="random_normal")(h)
    k = layers.Conv2D(filters, 1, data_format=data_format)(h)  # a pointwise one too
    out = layers.Dense(2)(layers.Flatten()(layers.Add()([c, h, k])))
    fd_check(Model(inp, out), rng.normal(size=(2, 6, 5, 3)), rng.normal(size=(2, 2)), "mse")


def test_shared_frozen_regularized_and_softmax_convolutions():
    # one Conv2D called twice (its gradients summed), a frozen one (the input's gradient
    # only), an activity regularizer, and a softmax over the filters under a cross-entropy
    rng = np.random.default_rng(9)
    inp = layers.Input((6, 5, 2))
    h = layers.Dense(3, activation="tanh")(inp)
    shared = layers.Conv2D(3, 3, padding="same", activation="tanh",
                           bias_initializer="random_normal", activity_regularizer="l2")
    frozen = layers.Conv2D(3, 2, padding="same", bias_initializer="random_normal")
    frozen.trainable = False
    h = shared(frozen(shared(h)))
    out = layers.Conv2D(4, (6, 5), activation="softmax")(h)  # (1, 1, 4) a sample
    model = Model(inp, layers.Flatten()(out))
    y = np.eye(4)[rng.integers(0, 4, 3)]
    fd_check(model, rng.normal(size=(3, 6, 5, 2)), y, "categorical_crossentropy")


def test_convolution_reading_the_model_input_alone():
    # no input gradient is made for a model Input; the kernel's and bias's are
    rng = np.random.default_rng(3)
    inp = layers.Input((8, 7, 2))
    out = layers.Dense(2)(layers.Flatten()(layers.Conv2D(3, 3, strides=2,
                                                         activation="tanh")(inp)))
    fd_check(Model(inp, out), rng.normal(size=(4, 8, 7, 2)), rng.normal(size=(4, 2)), "mse")


def _cnn(data_format="channels_last"):
    shape = (12, 12, 8) if data_format == "channels_last" else (8, 12, 12)
    inp = layers.Input(shape)
    h = layers.Conv2D(16, 3, padding="same", activation="relu", data_format=data_format)(inp)
    h = layers.Conv2D(12, 3, strides=2, data_format=data_format)(h)
    h = layers.Conv1D(6, 3, padding="causal", dilation_rate=2)(layers.Reshape((-1, 12))(h))
    out = layers.Dense(4, activation="softmax")(layers.Flatten()(h))
    model = Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_trains_alike_on_one_and_two_threads(data_format):
    rng = np.random.default_rng(4)
    shape = (12, 12, 8) if data_format == "channels_last" else (8, 12, 12)
    x = rng.normal(size=(64, *shape)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    assert_trains_alike_on_one_and_two_threads(lambda: _cnn(data_format), x, y,
                                               batch_size=16, epochs=2)


def test_first_layer_of_one_channel_trains_alike_on_one_and_two_threads():
    # (its windows, 9 deep for 16 filters, kept by the forward for the kernel's gradient)
    def build():
        inp = layers.Input((11, 10, 1))
        h = layers.Conv2D(16, 3, strides=(2, 1), padding="same", activation="relu")(inp)
        model = Model(inp, layers.Dense(3, activation="softmax")(layers.Flatten()(h)))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    rng = np.random.default_rng(10)
    assert_trains_alike_on_one_and_two_threads(
        build, rng.normal(size=(50, 11, 10, 1)).astype(np.float32), rng.integers(0, 3, 50),
        batch_size=16, epochs=2)


@pytest.mark.parametrize("threads", [1, 2])
def test_bitwise_reproducible_from_run_to_run(threads):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(48, 12, 12, 8)).astype(np.float32)
    y = rng.integers(0, 4, 48)
    densitron.set_num_threads(threads)
    runs = []
    for _ in range(2):
        densitron.utils.set_random_seed(7)
        model = _cnn()
        loss = model.fit(x, y, batch_size=16, epochs=2, verbose=0).history["loss"]
        runs.append((loss, model.get_weights(), model.predict(x, verbose=0)))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1] + [runs[0][2]], runs[1][1] + [runs[1][2]]):
        np.testing.assert_array_equal(a, b)


def test_profile_counts_the_convolution_products_as_gemm():
    # no Dense in the model: every GEMM second is the convolution's
    rng = np.random.default_rng(6)
    inp = layers.Input((16, 16, 8))
    out = layers.GlobalAveragePooling2D()(layers.Conv2D(16, 3, padding="same")(inp))
    model = Model(inp, out)
    model.compile(optimizer="sgd", loss="mse")
    h = model.fit(rng.normal(size=(32, 16, 16, 8)), rng.normal(size=(32, 16)), batch_size=8,
                  verbose=0, profile=True)
    assert h.profile["gemm"] > 0.0


_LARGE_IMAGE = textwrap.dedent("""
    import resource
    import numpy as np
    from densitron import layers, models
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 224, 224, 16)).astype(np.float32)
    y = rng.normal(size=(4, 1)).astype(np.float32)
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    inp = layers.Input((224, 224, 16))
    h = layers.Conv2D(32, 3, padding="same", activation="relu")(inp)
    model = models.Model(inp, layers.Dense(1)(layers.GlobalAveragePooling2D()(h)))
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start)
""")


def peak_growth_kb(program):
    """The peak RSS growth (KB) `program` prints last, run in a fresh process."""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_large_image_trains_a_step_in_bounded_memory():
    # 224×224×16 → 32 filters, 3×3 'same', batch 4. The old windows' map alone had 224·224·9·16
    # = 7.2M entries (48 bytes each as it was made: 347 MB, before the gathered values). The
    # native node's buffers: the output and its gradient (2 × 25.7 MB), the batch's gathered
    # input (12.8 MB) and a thread's 512 KB tile. The peak's growth over the building and the
    # step, in a fresh process, stays under half of the old map's bytes.
    grown_kb = peak_growth_kb(_LARGE_IMAGE)
    old_map_kb = 224 * 224 * 9 * 16 * 48 // 1024
    assert grown_kb < old_map_kb // 2, (grown_kb, old_map_kb)


def test_oversize_estimate_without_the_windows_map():
    # an image whose windows' map (3×3×64 entries a position, 48 bytes each) would take more
    # than half the machine's memory: the native convolution builds (its output of 8 values a
    # position takes 288 times less), grouped and depthwise ones too; an output too large for
    # the machine is refused as such
    limit = convolutional.memory_bytes() // 2
    side = math.isqrt(limit // (9 * 64 * 48)) + 1
    inp = layers.Input((side, side, 64))
    assert layers.Conv2D(8, 3, padding="same")(inp).shape == (None, side, side, 8)
    assert layers.Conv2D(8, 3, padding="same", groups=2)(inp).shape == (None, side, side, 8)
    assert layers.DepthwiseConv2D(3, padding="same")(inp).shape == (None, side, side, 64)
    with pytest.raises(ValueError, match=r"its output \(.* values a sample\).*more than half"):
        layers.Conv2D(64 * 288, 3, padding="same")(inp)


def test_only_pointwise_channels_last_ones_keep_other_nodes():
    inp = layers.Input((9, 8, 4))
    one = layers.Input((9, 8, 1))  # (a depthwise convolution of one channel too)
    convs = [layers.Conv2D(6, 3, groups=2), layers.DepthwiseConv2D(3),
             layers.SeparableConv2D(5, 3), layers.DepthwiseConv2D(1)]
    single = layers.DepthwiseConv2D(3, depth_multiplier=2)
    transpose, pointwise = layers.Conv2DTranspose(3, 3, strides=2), layers.Conv2D(3, 1)
    model = Model([inp, one], [c(inp) for c in [*convs, transpose, pointwise]] + [single(one)])
    for conv in [*convs, single]:
        ops = engine_ops(model, conv)
        assert _CONV in ops and _INDEX_MAP not in ops, (conv.name, ops)
    assert engine_ops(model, transpose) == [_CONV]  # (the node transposed)
    assert engine_ops(model, pointwise) == [1]  # (a Dense)


def test_engine_refuses_malformed_convolution_attributes():
    # the node's {rank, in, cin, k, strides, dilation, pad_before, out, filters}: a ValueError
    # from the engine for each malformed value, never a crash
    from densitron import _core

    kernel, bias = np.zeros(9 * 3 * 4, np.float32), np.zeros(4, np.float32)
    linear = (0.0, -1.0, 0.0, 1.0)

    def graph(iattrs, width=288):
        nodes = [(0, [], 216, 3, 0, linear, [], [], [], (0.0, 0.0)),
                 (_CONV, [0], width, 4, 0, linear, [0, 1], [], iattrs, (0.0, 0.0))]
        params = [(kernel, 27, 4, 0.0, 0.0, 0, 0.0, 0.0, 1.0, 0),
                  (bias, 1, 4, 0.0, 0.0, 0, 0.0, 0.0, 1.0, 0)]
        return _core.Graph(nodes, params, [0], [1])

    good = [2, 9, 8, 3, 3, 3, 1, 1, 1, 1, 1, 1, 9, 8, 4]
    graph(good)
    graph(good + [1])  # (groups, optional)
    bad = [[7] + good[1:], good[:-1], good + [1, 1], good + [2], good + [0],
           [2, 1 << 40] + good[2:]]
    for field, value in [(1, 0), (3, 0), (4, 0), (6, 0), (8, 0), (10, -1), (12, 0), (14, 5)]:
        bad.append(good[:field] + [value] + good[field + 1:])
    for iattrs in bad:
        with pytest.raises(ValueError, match="a convolution takes"):
            graph(iattrs)
    with pytest.raises(ValueError, match="a convolution takes"):
        graph(good, width=284)
