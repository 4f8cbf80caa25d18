"""Grouped Conv1D/2D/3D, DepthwiseConv1D/2D and SeparableConv1D/2D on the engine's native
convolution node with groups (OpType::kConv's last attribute): values against a float64 NumPy
reference of Keras's grouped convolution (each group's channels times its kernel slice; a
depthwise kernel (k..., cin, multiplier) giving output channel c·multiplier + m), the kernels',
biases' and input's gradients against finite differences, and the same training on one and two
threads. Parity with Keras's layers themselves is in test_convolution.py."""

import numpy as np
import pytest
from densitron import layers
from densitron.models import Model
from test_conv_native import _CONV, _INDEX_MAP, activate, conv_reference, engine_ops
from test_gradients_fd import fd_check
from test_threads import assert_trains_alike_on_one_and_two_threads


def grouped_reference(x, kernel, bias, groups, strides, padding, dilation, data_format):
    """Keras's grouped convolution in float64: group g's input channels convolved with the
    kernel's output columns of group g."""
    axis = -1 if data_format == "channels_last" else 1
    xs = np.split(np.asarray(x, np.float64), groups, axis=axis)
    ks = np.split(np.asarray(kernel, np.float64), groups, axis=-1)
    y = np.concatenate([conv_reference(a, k, None, strides, padding, dilation, data_format)
                        for a, k in zip(xs, ks)], axis=axis)
    if bias is not None:
        y += bias if data_format == "channels_last" else \
            np.asarray(bias).reshape(-1, *[1] * (y.ndim - 2))
    return y


def depthwise_as_grouped(kernel):
    """(k..., cin, multiplier) as the grouped kernel (k..., 1, cin·multiplier) of cin groups."""
    return kernel.reshape(*kernel.shape[:-2], 1, -1), kernel.shape[-2]


def _tuple(v, rank):
    return (v,) * rank if isinstance(v, int) else tuple(v)


def reference(layer, x):
    rank, fmt = layer.rank, layer.data_format
    args = (_tuple(layer.strides, rank), layer.padding, _tuple(layer.dilation_rate, rank), fmt)
    weights = layer.get_weights()
    if isinstance(layer, (layers.DepthwiseConv1D, layers.DepthwiseConv2D)):
        kernel, groups = depthwise_as_grouped(weights[0])
        return grouped_reference(x, kernel, weights[1] if layer.use_bias else None, groups,
                                 *args)
    if isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D)):
        kernel, groups = depthwise_as_grouped(weights[0])
        mid = grouped_reference(x, kernel, None, groups, *args)
        if fmt == "channels_first":
            mid = np.moveaxis(mid, 1, -1)
        y = np.tensordot(mid, np.asarray(weights[1], np.float64).reshape(
            -1, weights[1].shape[-1]), axes=([-1], [0]))
        if layer.use_bias:
            y += weights[2]
        return np.moveaxis(y, -1, 1) if fmt == "channels_first" else y
    return grouped_reference(x, weights[0], weights[1] if layer.use_bias else None,
                             layer.groups, *args)


CASES = [  # (layer, input shape without the batch, arguments)
    (layers.Conv1D, (13, 6), {"filters": 9, "kernel_size": 3, "groups": 3}),
    (layers.Conv1D, (17, 4), {"filters": 6, "kernel_size": 4, "strides": 2, "padding": "same",
                              "groups": 2, "activation": "tanh"}),
    (layers.Conv1D, (4, 15), {"filters": 8, "kernel_size": 3, "dilation_rate": 2,
                              "padding": "causal", "groups": 4,
                              "data_format": "channels_first"}),
    (layers.Conv2D, (11, 9, 6), {"filters": 10, "kernel_size": (3, 2), "strides": (2, 1),
                                 "padding": "same", "groups": 2, "activation": "relu"}),
    (layers.Conv2D, (40, 37, 12), {"filters": 20, "kernel_size": 3, "padding": "same",
                                   "groups": 4}),
    (layers.Conv3D, (5, 6, 7, 4), {"filters": 6, "kernel_size": 2, "strides": (1, 2, 1),
                                   "padding": "same", "groups": 2, "use_bias": False}),
    (layers.DepthwiseConv1D, (13, 5), {"kernel_size": 3, "depth_multiplier": 2,
                                       "padding": "same"}),
    (layers.DepthwiseConv1D, (3, 11), {"kernel_size": 4, "strides": 3, "dilation_rate": 1,
                                       "data_format": "channels_first"}),
    (layers.DepthwiseConv2D, (11, 9, 7), {"kernel_size": 3, "strides": 2, "padding": "same",
                                          "activation": "relu"}),
    (layers.DepthwiseConv2D, (10, 13, 3), {"kernel_size": (3, 2), "depth_multiplier": 3,
                                           "dilation_rate": (2, 1)}),
    (layers.DepthwiseConv2D, (9, 8, 1), {"kernel_size": 1, "depth_multiplier": 2}),
    (layers.SeparableConv1D, (13, 5), {"filters": 7, "kernel_size": 3, "depth_multiplier": 2,
                                       "padding": "same", "activation": "tanh"}),
    (layers.SeparableConv2D, (11, 9, 6), {"filters": 4, "kernel_size": 3, "strides": 2}),
    (layers.SeparableConv2D, (3, 9, 8), {"filters": 5, "kernel_size": 2, "padding": "same",
                                         "data_format": "channels_first"}),
]
IDS = [f"{c.__name__}-{s}-{sorted(k.items())}" for c, s, k in CASES]


@pytest.mark.parametrize("cls,shape,kwargs", CASES, ids=IDS)
def test_forward_against_float64_reference(cls, shape, kwargs):
    x = np.random.default_rng(1).normal(size=(5, *shape)).astype(np.float32)
    inp = layers.Input(shape)
    layer = cls(bias_initializer="random_normal", **kwargs) if kwargs.get("use_bias", True) \
        else cls(**kwargs)
    model = Model(inp, layer(inp))
    ops = engine_ops(model, layer)
    assert _CONV in ops or ops == [1], ops  # (a pointwise one of one channel: a Dense)
    assert ops.count(_INDEX_MAP) == (2 if kwargs.get("data_format") == "channels_first" else 0)
    axis = -1 if layer.data_format == "channels_last" else 1
    want = activate(kwargs.get("activation"), reference(layer, x), axis)
    got = model.predict(x, batch_size=3, verbose=0)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("cls,shape,kwargs", CASES[:4] + CASES[5:],
                         ids=IDS[:4] + IDS[5:])
def test_gradients_against_finite_differences(cls, shape, kwargs):
    # the kernels' and bias's gradients, and the input's through a Dense before the layer
    # (tanh for relu: a step across relu's kink differs from its gradient)
    if kwargs.get("activation") == "relu":
        kwargs = {**kwargs, "activation": "tanh"}
    rng = np.random.default_rng(2)
    inp = layers.Input(shape)
    h = layers.Dense(shape[-1], bias_initializer="random_normal")(inp)
    out = layers.Dense(2, activation="tanh")(layers.Flatten()(cls(**kwargs)(h)))
    fd_check(Model(inp, out), rng.normal(size=(3, *shape)), rng.normal(size=(3, 2)), "mse",
             h=3e-4)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_trains_alike_on_one_and_two_threads(data_format):
    rng = np.random.default_rng(5)
    shape = (12, 11, 6) if data_format == "channels_last" else (6, 12, 11)
    x = rng.normal(size=(64, *shape)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]

    def build():
        inp = layers.Input(shape)
        h = layers.Conv2D(8, 3, padding="same", groups=2, activation="relu",
                          data_format=data_format)(inp)
        h = layers.DepthwiseConv2D(3, depth_multiplier=2, data_format=data_format)(h)
        h = layers.SeparableConv2D(4, 3, strides=2, data_format=data_format)(h)
        out = layers.Dense(3, activation="softmax")(layers.Flatten()(h))
        model = Model(inp, out)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model

    assert_trains_alike_on_one_and_two_threads(build, x, y, batch_size=16, epochs=2)


def test_frozen_and_shared_grouped_convolutions():
    # a frozen grouped convolution passes the input's gradient on (its kernel takes none); a
    # depthwise one called on two branches sums its kernel's gradients
    rng = np.random.default_rng(6)
    inp = layers.Input((7, 6, 4))
    h = layers.Dense(4, bias_initializer="random_normal")(inp)
    frozen = layers.Conv2D(6, 3, groups=2, padding="same", bias_initializer="random_normal")
    frozen.trainable = False
    shared = layers.DepthwiseConv2D(2, depth_multiplier=2, bias_initializer="random_normal")
    a = shared(frozen(h))
    b = shared(layers.Dense(6)(h))
    out = layers.Dense(2, activation="tanh")(layers.Flatten()(layers.Add()([a, b])))
    fd_check(Model(inp, out), rng.normal(size=(3, 7, 6, 4)), rng.normal(size=(3, 2)), "mse",
             h=3e-4)
