"""Keras's convolutions (Conv1D/2D/3D, grouped too, their transposes, DepthwiseConv1D/2D,
SeparableConv1D/2D) and windowed poolings (MaxPooling1D/2D/3D, AveragePooling1D/2D/3D, the
adaptive ones): outputs against float64 NumPy references written with loops (XLA's 'same'
padding, Keras's causal padding, the average over a 'same' window's inputs only, transposes
as scatters), gradients against finite
differences, Keras 3.15's predictions on the same weights, training alike with Keras on JAX
(in a subprocess), .keras files both ways, configs and refusals."""

import os

os.environ.setdefault("KERAS_BACKEND", "numpy")  # (as tests/test_keras_parity.py)


import densitron
import numpy as np
import pytest
from densitron import layers
from densitron.layers.convolutional import BaseConvTranspose
from keras_subprocess import assert_trains_as_keras
from test_gradients_fd import fd_check
from test_threads import assert_trains_alike_on_one_and_two_threads

# --- float64 references ------------------------------------------------------------------


def _pads(size, window, stride, dilation, padding):
    """(output size, zeros before) of one spatial axis."""
    span = dilation * (window - 1) + 1
    if padding == "valid":
        return (size - span) // stride + 1, 0
    if padding == "causal":
        return -(-size // stride), span - 1
    out = -(-size // stride)
    return out, max((out - 1) * stride + span - size, 0) // 2


def _windows(x, window, strides, dilation, padding):
    """Each output position's window of a channels_last sample x (spatial..., channels):
    {position: [(offset, value or None where the window leaves x)]}."""
    spatial = x.shape[:-1]
    axes = [_pads(n, k, s, d, padding)
            for n, k, s, d in zip(spatial, window, strides, dilation)]
    found = {}
    for pos in np.ndindex(*(n for n, _ in axes)):
        cells = []
        for off in np.ndindex(*window):
            at = tuple(p * s + o * d - lo for p, o, s, d, (_, lo)
                       in zip(pos, off, strides, dilation, axes))
            inside = all(0 <= a < n for a, n in zip(at, spatial))
            cells.append((off, x[at] if inside else None))
        found[pos] = cells
    return found, tuple(n for n, _ in axes)


def conv_reference(x, kernel, bias=None, strides=1, padding="valid", dilation=1,
                   data_format="channels_last"):
    """Keras's convolution in float64: Σ over the window and channels of x·kernel (+ bias)."""
    rank = kernel.ndim - 2
    strides = (strides,) * rank if isinstance(strides, int) else strides
    dilation = (dilation,) * rank if isinstance(dilation, int) else dilation
    x = x.astype(np.float64)
    if data_format == "channels_first":
        x = np.moveaxis(x, 1, -1)
    outs = []
    for sample in x:
        found, sizes = _windows(sample, kernel.shape[:rank], strides, dilation, padding)
        out = np.zeros((*sizes, kernel.shape[-1]))
        for pos, cells in found.items():
            for off, value in cells:
                if value is not None:
                    out[pos] += value @ kernel[off].astype(np.float64)
        outs.append(out + (0.0 if bias is None else bias))
    out = np.array(outs)
    return np.moveaxis(out, -1, 1) if data_format == "channels_first" else out


def grouped_reference(x, kernel, bias=None, groups=1, data_format="channels_last", **kw):
    """A grouped convolution: group g's outputs from group g's input channels only."""
    axis = -1 if data_format == "channels_last" else 1
    per_group, width = kernel.shape[-2], kernel.shape[-1] // groups
    outs = [conv_reference(np.take(x, range(g * per_group, (g + 1) * per_group), axis=axis),
                           kernel[..., g * width:(g + 1) * width], data_format=data_format,
                           **kw) for g in range(groups)]
    out = np.concatenate(outs, axis=axis)
    if bias is not None:
        out = out + (bias if axis == -1 else bias.reshape(-1, *([1] * (x.ndim - 2))))
    return out


def transpose_reference(x, kernel, bias=None, strides=1, padding="valid", dilation=1,
                        output_padding=None, data_format="channels_last"):
    """Keras's transposed convolution in float64, as the convolution's gradient scatters:
    input i adds x[i]·kernel[k]ᵀ at output i·stride + k·dilation - crop, Keras's JAX backend's
    output size and crop."""
    rank = kernel.ndim - 2
    strides, dilation, output_padding = ((v,) * rank if isinstance(v, int) or v is None
                                         else tuple(v)
                                         for v in (strides, dilation, output_padding))
    x = x.astype(np.float64)
    if data_format == "channels_first":
        x = np.moveaxis(x, 1, -1)
    sizes, crops = [], []
    for n, k, s, d, extra in zip(x.shape[1:-1], kernel.shape[:rank], strides, dilation,
                                 output_padding):
        span = (k - 1) * d + 1
        if padding == "valid":
            sizes.append(n * s + max(span - s, 0) if extra is None else
                         (n - 1) * s + span + extra)
            crops.append(0)
        else:
            sizes.append(n * s if extra is None else (n - 1) * s + span - 2 * (span // 2)
                         + extra)
            total = s + span - 2 if extra is None else span + span % 2 - 2 + extra
            crops.append(span - 1 - min(total // 2 + total % 2, span - 1))
    out = np.zeros((len(x), *sizes, kernel.shape[-2]))
    for i in np.ndindex(*x.shape[1:-1]):
        for k in np.ndindex(*kernel.shape[:rank]):
            at = tuple(a * s + b * d - c for a, b, s, d, c in zip(i, k, strides, dilation,
                                                                    crops))
            if all(0 <= a < n for a, n in zip(at, sizes)):
                out[(slice(None), *at)] += x[(slice(None), *i)] @ kernel[k].T
    out = out + (0.0 if bias is None else bias)
    return np.moveaxis(out, -1, 1) if data_format == "channels_first" else out


def adaptive_reference(x, output_size, mode, data_format="channels_last"):
    """Keras's adaptive pooling in float64: window i of n values [floor(i·n/out),
    ceil((i+1)·n/out)) along each axis."""
    x = x.astype(np.float64)
    if data_format == "channels_first":
        x = np.moveaxis(x, 1, -1)
    spatial = x.shape[1:-1]
    out = np.zeros((len(x), *output_size, x.shape[-1]))
    for pos in np.ndindex(*output_size):
        window = tuple(slice(i * n // o, -(-(i + 1) * n // o))
                       for i, n, o in zip(pos, spatial, output_size))
        values = x[(slice(None), *window)].reshape(len(x), -1, x.shape[-1])
        out[(slice(None), *pos)] = values.max(axis=1) if mode == "max" else values.mean(1)
    return np.moveaxis(out, -1, 1) if data_format == "channels_first" else out


def layer_reference(layer, x, weights, kwargs):
    """The float64 output of a convolution layer of any kind, before its activation."""
    kw = {"strides": kwargs.get("strides", 1), "padding": kwargs.get("padding", "valid"),
          "dilation": kwargs.get("dilation_rate", 1),
          "data_format": kwargs.get("data_format", "channels_last")}
    if isinstance(layer, BaseConvTranspose):
        return transpose_reference(x, weights[0], weights[1] if layer.use_bias else None,
                                   output_padding=kwargs.get("output_padding"), **kw)
    if isinstance(layer, (layers.DepthwiseConv2D, layers.DepthwiseConv1D,
                          layers.SeparableConv1D, layers.SeparableConv2D)):
        depthwise = weights[0]
        channels, multiplier = depthwise.shape[-2:]
        # (channel c's kernels give outputs c·multiplier + m: groups of one channel)
        kernel = depthwise.reshape(*depthwise.shape[:-2], 1, channels * multiplier)
        separable = isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D))
        bias = None if separable or not layer.use_bias else weights[1]
        out = grouped_reference(x, kernel, bias, channels, **kw)
        if not separable:
            return out
        pointwise = weights[1].reshape(channels * multiplier, -1).astype(np.float64)
        axis = -1 if kw["data_format"] == "channels_last" else 1
        out = np.moveaxis(np.moveaxis(out, axis, -1) @ pointwise, -1, axis)
        if layer.use_bias:
            out = out + (weights[2] if axis == -1 else
                         weights[2].reshape(-1, *([1] * (x.ndim - 2))))
        return out
    return grouped_reference(x, weights[0], weights[1] if layer.use_bias else None,
                             kwargs.get("groups", 1), **kw)


def pool_reference(x, pool, strides=None, padding="valid", mode="max",
                   data_format="channels_last"):
    """Keras's pooling in float64: the maximum or the mean of each window's inputs."""
    strides = pool if strides is None else strides
    x = x.astype(np.float64)
    if data_format == "channels_first":
        x = np.moveaxis(x, 1, -1)
    outs = []
    for sample in x:
        found, sizes = _windows(sample, pool, strides, (1,) * len(pool), padding)
        out = np.zeros((*sizes, x.shape[-1]))
        for pos, cells in found.items():
            values = np.array([v for _, v in cells if v is not None])
            out[pos] = values.max(axis=0) if mode == "max" else values.mean(axis=0)
        outs.append(out)
    out = np.array(outs)
    return np.moveaxis(out, -1, 1) if data_format == "channels_first" else out


CONV_CASES = [
    ("Conv1D", (9, 3), {"filters": 4, "kernel_size": 3}),
    ("Conv1D", (9, 3), {"filters": 4, "kernel_size": 1}),
    ("Conv1D", (10, 3), {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}),
    ("Conv1D", (9, 3), {"filters": 2, "kernel_size": 3, "padding": "causal",
                        "dilation_rate": 2}),
    ("Conv1D", (11, 2), {"filters": 3, "kernel_size": 4, "padding": "same",
                         "dilation_rate": 2, "activation": "relu"}),
    ("Conv1D", (3, 9), {"filters": 4, "kernel_size": 3, "padding": "same",
                        "data_format": "channels_first", "activation": "tanh"}),
    ("Conv1D", (3, 8), {"filters": 2, "kernel_size": 2, "strides": 3, "padding": "causal",
                        "data_format": "channels_first"}),
    ("Conv1D", (9, 3), {"filters": 4, "kernel_size": 2, "padding": "same", "strides": 3,
                        "activation": "softmax"}),
    ("Conv2D", (7, 8, 3), {"filters": 5, "kernel_size": 3}),
    ("Conv2D", (7, 8, 3), {"filters": 5, "kernel_size": (2, 3), "strides": 2,
                           "padding": "same", "activation": "relu"}),
    ("Conv2D", (7, 8, 3), {"filters": 5, "kernel_size": (3, 2), "dilation_rate": (2, 1),
                           "padding": "same"}),
    ("Conv2D", (3, 7, 8), {"filters": 5, "kernel_size": 3, "strides": (1, 2),
                           "data_format": "channels_first", "activation": "sigmoid"}),
    ("Conv2D", (3, 7, 8), {"filters": 5, "kernel_size": 4, "padding": "same",
                           "data_format": "channels_first", "use_bias": False}),
    ("Conv2D", (3, 5, 6), {"filters": 3, "kernel_size": 2, "data_format": "channels_first",
                           "activation": "softmax"}),
    ("Conv2D", (6, 5, 2), {"filters": 3, "kernel_size": 1}),
    ("Convolution2D", (5, 5, 1), {"filters": 2, "kernel_size": 5}),
    ("Conv2D", (7, 8, 4), {"filters": 6, "kernel_size": 3, "groups": 2}),
    ("Conv2D", (4, 7, 8), {"filters": 6, "kernel_size": 3, "groups": 2, "padding": "same",
                           "data_format": "channels_first", "activation": "relu"}),
    ("Conv1D", (9, 6), {"filters": 3, "kernel_size": 2, "groups": 3, "padding": "causal",
                        "strides": 2}),
    ("Conv1D", (9, 6), {"filters": 4, "kernel_size": 1, "groups": 2}),
    ("Conv3D", (5, 6, 4, 2), {"filters": 3, "kernel_size": (2, 3, 2), "padding": "same",
                              "strides": (1, 2, 1)}),
    ("Convolution3D", (2, 5, 6, 4), {"filters": 3, "kernel_size": 2,
                                     "data_format": "channels_first", "activation": "tanh"}),
    ("DepthwiseConv2D", (7, 8, 3), {"kernel_size": 3}),
    ("DepthwiseConv2D", (7, 8, 3), {"kernel_size": (2, 3), "depth_multiplier": 2,
                                    "strides": 2, "padding": "same", "activation": "relu"}),
    ("DepthwiseConv2D", (3, 7, 8), {"kernel_size": 3, "depth_multiplier": 2,
                                    "data_format": "channels_first", "dilation_rate": 2,
                                    "use_bias": False}),
    ("DepthwiseConv2D", (7, 8, 1), {"kernel_size": 3, "depth_multiplier": 2}),
    ("DepthwiseConv1D", (9, 3), {"kernel_size": 3, "depth_multiplier": 3, "padding": "same"}),
    ("SeparableConv2D", (7, 8, 3), {"filters": 4, "kernel_size": 3}),
    ("SeparableConv2D", (7, 8, 3), {"filters": 4, "kernel_size": 3, "depth_multiplier": 2,
                                    "padding": "same", "strides": 2, "activation": "relu"}),
    ("SeparableConv2D", (3, 7, 8), {"filters": 4, "kernel_size": (3, 2),
                                    "data_format": "channels_first", "activation": "softmax"}),
    ("SeparableConv2D", (7, 8, 1), {"filters": 4, "kernel_size": 3, "depth_multiplier": 2}),
    ("SeparableConvolution1D", (9, 3), {"filters": 4, "kernel_size": 3, "dilation_rate": 2,
                                        "padding": "same", "use_bias": False}),
    ("Conv2DTranspose", (4, 5, 3), {"filters": 2, "kernel_size": 3}),
    ("Conv2DTranspose", (4, 5, 3), {"filters": 2, "kernel_size": 3, "strides": 2,
                                    "padding": "same", "activation": "relu"}),
    ("Conv2DTranspose", (4, 5, 3), {"filters": 2, "kernel_size": (2, 3), "strides": (2, 3),
                                    "padding": "same"}),
    ("Conv2DTranspose", (4, 5, 3), {"filters": 2, "kernel_size": 4, "strides": 2,
                                    "padding": "same", "output_padding": 1}),
    ("Conv2DTranspose", (4, 5, 3), {"filters": 2, "kernel_size": 3, "strides": 3,
                                    "output_padding": (1, 2)}),
    ("Conv2DTranspose", (4, 5, 3), {"filters": 2, "kernel_size": 3, "dilation_rate": 2,
                                    "padding": "same"}),
    ("Convolution2DTranspose", (3, 4, 5), {"filters": 2, "kernel_size": 3, "strides": 2,
                                           "data_format": "channels_first",
                                           "use_bias": False}),
    ("Conv2DTranspose", (3, 4, 5), {"filters": 2, "kernel_size": 2, "strides": 2,
                                    "padding": "same", "data_format": "channels_first",
                                    "activation": "tanh"}),
    ("Conv1DTranspose", (6, 3), {"filters": 4, "kernel_size": 5, "strides": 3,
                                 "padding": "same"}),
    ("Conv1DTranspose", (6, 3), {"filters": 4, "kernel_size": 1, "strides": 2,
                                 "padding": "same", "use_bias": False}),
    ("Conv3DTranspose", (3, 4, 2, 2), {"filters": 2, "kernel_size": 2, "strides": (2, 1, 2),
                                       "padding": "same"}),
]

POOL_CASES = [
    ("MaxPooling1D", (9, 3), {}),
    ("MaxPooling1D", (9, 3), {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("MaxPool1D", (3, 10), {"pool_size": 4, "strides": 3, "padding": "same",
                            "data_format": "channels_first"}),
    ("AveragePooling1D", (9, 3), {"pool_size": 2}),
    ("AveragePooling1D", (10, 3), {"pool_size": 4, "strides": 3, "padding": "same"}),
    ("AvgPool1D", (3, 10), {"pool_size": 4, "strides": 1, "padding": "same",
                            "data_format": "channels_first"}),
    ("MaxPooling2D", (7, 8, 3), {}),
    ("MaxPooling2D", (7, 8, 3), {"pool_size": (3, 2), "strides": (2, 1), "padding": "same"}),
    ("MaxPool2D", (3, 7, 9), {"pool_size": (2, 3), "padding": "same",
                              "data_format": "channels_first"}),
    ("AveragePooling2D", (7, 8, 3), {"pool_size": 2}),
    ("AveragePooling2D", (7, 9, 3), {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("AvgPool2D", (3, 7, 9), {"pool_size": (2, 3), "data_format": "channels_first"}),
    ("AvgPool2D", (3, 7, 9), {"pool_size": (3, 3), "strides": 2, "padding": "same",
                              "data_format": "channels_first"}),
    ("MaxPooling3D", (5, 6, 7, 2), {"pool_size": 2, "padding": "same"}),
    ("MaxPool3D", (2, 5, 4, 3), {"pool_size": (2, 1, 3), "data_format": "channels_first"}),
    ("AveragePooling3D", (5, 6, 7, 2), {"pool_size": (2, 3, 2), "strides": 2,
                                        "padding": "same"}),
    ("AvgPool3D", (2, 5, 6, 7), {"pool_size": 2, "data_format": "channels_first"}),
    ("AdaptiveMaxPooling1D", (7, 3), {"output_size": 5}),
    ("AdaptiveAveragePooling1D", (3, 10), {"output_size": 4, "data_format": "channels_first"}),
    ("AdaptiveMaxPooling2D", (2, 5, 4), {"output_size": (7, 3),
                                         "data_format": "channels_first"}),
    ("AdaptiveAveragePooling2D", (7, 10, 2), {"output_size": (3, 4)}),
    ("AdaptiveMaxPooling3D", (5, 6, 7, 2), {"output_size": (2, 4, 3)}),
    ("AdaptiveAveragePooling3D", (5, 6, 7, 2), {"output_size": 3}),
]


def _model(ns, cls, shape, kwargs):
    inp = ns.Input(shape)
    return ns.Model(inp, getattr(ns.layers, cls)(**kwargs)(inp))


def _activation(name, y, axis):
    if name in (None, "linear"):
        return y
    if name == "softmax":
        e = np.exp(y - y.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
    return {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh,
            "sigmoid": lambda v: 1 / (1 + np.exp(-v))}[name](y)


@pytest.mark.parametrize("cls, shape, kwargs", CONV_CASES)
def test_convolutions_against_the_reference(cls, shape, kwargs):
    rng = np.random.default_rng(0)
    model = _model(densitron, cls, shape, kwargs)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in model.weights]
    model.set_weights(weights)
    x = rng.normal(size=(3, *shape)).astype(np.float32)
    layer = model.layers[1]
    expected = _activation(kwargs.get("activation"), layer_reference(layer, x, weights, kwargs),
                           -1)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    assert len(layer.kernel_size) == len(shape) - 1


@pytest.mark.parametrize("cls, shape, kwargs", POOL_CASES)
def test_poolings_against_the_reference(cls, shape, kwargs):
    rng = np.random.default_rng(1)
    model = _model(densitron, cls, shape, kwargs)
    rank = len(shape) - 1
    pool = kwargs.get("pool_size", 2)
    pool = (pool,) * rank if isinstance(pool, int) else pool
    strides = kwargs.get("strides", pool)
    strides = (strides,) * rank if isinstance(strides, int) else strides
    x = rng.normal(size=(4, *shape)).astype(np.float32)
    mode = "max" if "Max" in cls else "average"
    data_format = kwargs.get("data_format", "channels_last")
    if cls.startswith("Adaptive"):
        size = kwargs["output_size"]
        expected = adaptive_reference(x, (size,) * rank if isinstance(size, int) else size,
                                      mode, data_format)
    else:
        expected = pool_reference(x, pool, strides, kwargs.get("padding", "valid"), mode,
                                  data_format)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)


def test_max_pooling_ignores_the_padding_of_negative_inputs():
    x = -np.arange(1, 7, dtype=np.float32).reshape(1, 3, 2) - 100
    out = layers.MaxPooling1D(2, padding="same")(x)
    np.testing.assert_array_equal(out, [[[-101, -102], [-105, -106]]])
    avg = layers.AveragePooling1D(2, padding="same")(x)
    np.testing.assert_array_equal(avg, [[[-102, -103], [-105, -106]]])


# --- gradients ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls, shape, kwargs", [
    ("Conv1D", (7, 2), {"filters": 2, "kernel_size": 3, "padding": "causal",
                        "dilation_rate": 2, "activation": "tanh"}),
    ("Conv2D", (2, 5, 4), {"filters": 2, "kernel_size": (2, 3), "strides": 2,
                           "padding": "same", "data_format": "channels_first"}),
    ("Conv2D", (5, 5, 2), {"filters": 2, "kernel_size": 2, "activation": "softmax"}),
    ("Conv2D", (4, 4, 4), {"filters": 2, "kernel_size": 2, "groups": 2, "padding": "same"}),
    ("DepthwiseConv2D", (2, 5, 4), {"kernel_size": 2, "depth_multiplier": 2,
                                    "data_format": "channels_first"}),
    ("SeparableConv1D", (6, 2), {"filters": 2, "kernel_size": 3, "padding": "same",
                                 "activation": "relu"}),
    ("Conv2DTranspose", (3, 2, 2), {"filters": 2, "kernel_size": 3, "strides": 2,
                                    "padding": "same", "output_padding": 1}),
    ("Conv1DTranspose", (2, 4), {"filters": 2, "kernel_size": 2, "strides": 2,
                                 "data_format": "channels_first", "activation": "tanh"}),
])
def test_convolution_gradients_against_finite_differences(cls, shape, kwargs):
    rng = np.random.default_rng(2)
    inp = densitron.Input(shape)
    h = getattr(layers, cls)(bias_initializer="random_normal", **kwargs)(inp)
    assert all(w.shape for w in h._node.layer.weights)
    out = layers.Dense(2)(layers.Flatten()(h))
    fd_check(densitron.Model(inp, out), rng.normal(size=(4, *shape)),
             rng.normal(size=(4, 2)), "mse")


@pytest.mark.parametrize("cls, kwargs", [
    ("MaxPooling2D", {"pool_size": (2, 3), "strides": 2, "padding": "same"}),
    ("AveragePooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("AveragePooling1D", {"pool_size": 2, "data_format": "channels_first"}),
    ("AdaptiveAveragePooling2D", {"output_size": (2, 4)}),
    ("AdaptiveMaxPooling1D", {"output_size": 3, "data_format": "channels_first"}),
])
def test_pooling_gradients_against_finite_differences(cls, kwargs):
    # (a convolution before the pooling: its kernel's gradient passes through the pooling)
    rng = np.random.default_rng(3)
    rank = int(cls[-2])
    shape = (5, 6, 2) if rank == 2 else (2, 7)
    inp = densitron.Input(shape)
    conv = getattr(layers, f"Conv{rank}D")(2, 2, padding="same",
                                           data_format=kwargs.get("data_format"),
                                           bias_initializer="random_normal")(inp)
    out = layers.Dense(2)(layers.Flatten()(getattr(layers, cls)(**kwargs)(conv)))
    fd_check(densitron.Model(inp, out), rng.normal(size=(4, *shape)),
             rng.normal(size=(4, 2)), "mse")


def test_a_cnn_trains_alike_on_one_and_two_threads():
    def build():
        L = layers
        inp = densitron.Input((17, 17, 3))
        h = L.MaxPooling2D(padding="same")(L.Conv2D(16, 3, activation="relu")(inp))
        h = L.SeparableConv2D(8, 2, padding="same", data_format="channels_first")(h)
        h = L.AveragePooling2D(2, padding="same")(L.Conv2DTranspose(3, 2, strides=2)(h))
        model = densitron.Model(inp, L.Dense(3, activation="softmax")(L.Flatten()(h)))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    rng = np.random.default_rng(8)
    assert_trains_alike_on_one_and_two_threads(
        build, rng.normal(size=(128, 17, 17, 3)).astype(np.float32), rng.integers(0, 3, 128),
        batch_size=64, epochs=2)


# --- Keras --------------------------------------------------------------------------------


def _keras():
    return pytest.importorskip("keras")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Keras's numpy backend's own)
@pytest.mark.parametrize("cls, shape, kwargs", CONV_CASES + POOL_CASES)
def test_predictions_are_kerass_on_the_same_weights(cls, shape, kwargs):
    keras = _keras()
    theirs, ours = _model(keras, cls, shape, kwargs), _model(densitron, cls, shape, kwargs)
    rng = np.random.default_rng(4)
    weights = [rng.normal(size=tuple(w.shape)).astype(np.float32) for w in theirs.weights]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    x = rng.normal(size=(3, *shape)).astype(np.float32)
    expected = np.asarray(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    theirs_config = theirs.layers[1].get_config()
    ours_config = ours.layers[1].get_config()
    assert sorted(ours_config) == sorted(theirs_config)
    for key, value in theirs_config.items():
        if key not in ("name", "dtype") and not key.endswith("initializer"):
            assert ours_config[key] == value, key


_TRAIN_SCRIPT = """
import os
os.environ["KERAS_BACKEND"] = "jax"
import numpy as np, keras, densitron

def cnn(ns, opt):
    L = ns.layers
    i = ns.Input((16, 16, 3))
    x = L.Conv2D(6, 3, activation="relu", padding="same")(i)
    x = L.MaxPooling2D()(x)
    x = L.Conv2D(8, (3, 2), strides=2, activation="relu")(x)
    x = L.AveragePooling2D(2, padding="same")(x)
    x = L.DepthwiseConv2D(2, depth_multiplier=2, padding="same", activation="tanh")(x)
    x = L.SeparableConv2D(6, 2, padding="same")(x)
    x = L.Conv2D(4, 1, groups=2, data_format="channels_first")(x)
    x = L.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1)(x)
    x = L.AdaptiveAveragePooling2D((3, 5))(x)
    o = L.Dense(5, activation="softmax")(L.Flatten()(x))
    m = ns.Model(i, o)
    m.compile(optimizer=opt(ns), loss="sparse_categorical_crossentropy")
    return m

rng = np.random.default_rng(0)
x = rng.normal(size=(48, 16, 16, 3)).astype(np.float32)
y = rng.integers(0, 5, size=48)
build = cnn
"""


def test_a_small_cnn_trains_as_keras_on_jax():
    # (Keras's numpy backend, this session's, does not train: Keras runs on JAX in a child)
    assert_trains_as_keras(_TRAIN_SCRIPT)


def _file_models(ns):
    L = ns.layers
    i2 = ns.Input((3, 11, 10))
    x = L.Conv2D(4, (3, 2), strides=(2, 1), padding="same", data_format="channels_first",
                 activation="relu")(i2)
    x = L.MaxPool2D(2, padding="same", data_format="channels_first")(x)
    x = L.Convolution2D(5, 2, dilation_rate=2, use_bias=False)(x)
    x = L.AvgPool2D((2, 1), strides=1)(x)
    x = L.Conv2DTranspose(3, 2, strides=2, padding="same", activation="relu")(x)
    x = L.AdaptiveMaxPooling2D((3, 2))(x)
    two = ns.Model(i2, L.Dense(2)(L.Flatten()(x)))
    i1 = ns.Input((12, 3))
    x = L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="tanh")(i1)
    x = L.Conv1D(4, 1)(x)
    x = L.AveragePooling1D(3, strides=2, padding="same")(x)
    x = L.MaxPooling1D()(x)
    one = ns.Model(i1, L.Conv1D(2, 2, strides=2, padding="same",
                                data_format="channels_first")(x))
    return [two, one]


def test_saved_and_loaded(tmp_path):
    rng = np.random.default_rng(5)
    for k, model in enumerate(_file_models(densitron)):
        x = rng.normal(size=(4, *model.inputs[0].shape[1:])).astype(np.float32)
        model.save(tmp_path / f"{k}.keras")
        again = densitron.saving.load_model(tmp_path / f"{k}.keras")
        np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_keras_files_load_here_and_ours_in_keras(tmp_path):
    keras = _keras()
    pytest.importorskip("h5py")
    rng = np.random.default_rng(6)
    for k, (theirs, ours) in enumerate(zip(_file_models(keras), _file_models(densitron))):
        x = rng.normal(size=(4, *ours.inputs[0].shape[1:])).astype(np.float32)
        theirs.save(tmp_path / f"k{k}.keras")
        loaded = densitron.saving.load_model(tmp_path / f"k{k}.keras")
        np.testing.assert_allclose(loaded.predict(x, verbose=0),
                                   theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
        ours.save(tmp_path / f"d{k}.keras")
        in_keras = keras.models.load_model(tmp_path / f"d{k}.keras")
        np.testing.assert_allclose(in_keras.predict(x, verbose=0),
                                   ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
        assert [type(a).__name__ for a in in_keras.layers] == \
            [type(a).__name__ for a in ours.layers]


# --- configs and refusals -----------------------------------------------------------------


def test_configs_round_trip_and_aliases():
    assert layers.Convolution1D is layers.Conv1D and layers.MaxPool2D is layers.MaxPooling2D
    assert layers.AvgPool1D is layers.AveragePooling1D
    conv = layers.Conv2D(3, (2, 3), strides=(1, 2), padding="SAME", data_format=
                         "channels_first", activation="relu")
    config = conv.get_config()
    assert config["kernel_size"] == (2, 3) and config["padding"] == "same"
    assert layers.Conv2D.from_config(config).get_config() == config
    pool = layers.MaxPooling2D((3, 2))
    assert pool.get_config()["strides"] == (3, 2)
    assert layers.MaxPooling2D.from_config(pool.get_config()).get_config() == pool.get_config()


@pytest.mark.parametrize("make, match", [
    (lambda: layers.Conv2D(2, 3, padding="full"), "Received: padding='full'"),
    (lambda: layers.Conv2D(2, 3, padding="causal"), "Received: padding='causal'"),
    (lambda: layers.MaxPooling2D(padding="causal"), "Received: padding='causal'"),
    (lambda: layers.Conv1D(0, 3), "Received: filters=0"),
    (lambda: layers.Conv2D(2, (3, 0)), "Received: kernel_size=\\(3, 0\\)"),
    (lambda: layers.Conv2D(2, (3, 3, 3)), "Received: kernel_size=\\(3, 3, 3\\)"),
    (lambda: layers.Conv2D(2, 3, strides=2, dilation_rate=2), "Received: strides="),
    (lambda: layers.Conv2D(4, 3, groups=0), "Received: groups=0"),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), "Received: depth_multiplier=0"),
    (lambda: layers.SeparableConv2D(0, 3), "Received: filters=0"),
    (lambda: layers.DepthwiseConv2D(3, padding="causal"), "Received: padding='causal'"),
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, output_padding=2),
     "output_padding.*strictly less than.*Received: output_padding=\\(2, 2\\)"),
    (lambda: layers.AdaptiveMaxPooling2D((2, 3, 4)), "Received: output_size=\\(2, 3, 4\\)"),
    (lambda: layers.AdaptiveAveragePooling1D(0), "Received: output_size=\\(0,\\)"),
    (lambda: layers.Conv2D(3, 3, groups=2), "Received: groups=2, filters=3"),
    (lambda: layers.Conv1D(2, 3, data_format="channels_middle"), "Received: data_format="),
    (lambda: layers.AveragePooling1D(0), "Received: pool_size=0"),
    (lambda: layers.MaxPooling1D(2, strides=0), "Received: strides=0"),
])
def test_bad_arguments_are_refused_by_name(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="Computed output size would be zero or negative"):
        layers.Conv2D(2, 4)(densitron.Input((3, 5, 1)))
    with pytest.raises(ValueError, match="Computed output size would be zero or negative"):
        layers.MaxPooling1D(4)(densitron.Input((3, 2)))
    layers.Conv2D(2, 4, padding="same")(densitron.Input((3, 5, 1)))  # (same: any size)
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        layers.Conv2D(2, 3)(densitron.Input((6, 5)))
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=4"):
        layers.AveragePooling1D(2)(densitron.Input((6, 5, 2)))
    with pytest.raises(ValueError, match="evenly divisible by the number of groups"):
        layers.Conv2D(4, 3, groups=2)(densitron.Input((6, 5, 3)))
    conv = layers.Conv1D(2, 3)
    conv(densitron.Input((6, 4)))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4"):
        conv(densitron.Input((6, 5)))


def test_on_arrays_and_shapes():
    x = np.random.default_rng(7).normal(size=(2, 9, 8, 3)).astype(np.float32)
    assert layers.Conv2D(4, 3, strides=2)(x).shape == (2, 4, 3, 4)
    assert layers.Conv2D(4, 3, strides=2, padding="same")(x).shape == (2, 5, 4, 4)
    assert layers.MaxPooling2D(data_format="channels_first")(x).shape == (2, 9, 4, 1)
    assert layers.AveragePooling2D(3, padding="same")(x).shape == (2, 3, 3, 3)
    assert layers.Conv1D(2, 3, padding="causal", dilation_rate=3)(x[:, 0]).shape == (2, 8, 2)
