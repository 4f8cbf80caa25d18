"""Conv1DTranspose/Conv2DTranspose/Conv3DTranspose on the engine's native convolution node,
transposed (OpType::kConv's transposed attribute; no windows' index map): values against a
float64 NumPy reference of Keras's transposed convolution (its JAX backend's sizes and
padding: strides, dilation, 'same'/'valid', output_padding, channels_first, no bias,
activations), gradients of the kernel, the bias and the input (through a layer before it)
against finite differences, the same training on one and two threads, a few training steps
equal to Keras on JAX's (a small kernel's gradient by blocks of samples, a large one's by
kernel rows), and a decoder's image in bounded memory."""

import math
import textwrap

import numpy as np
import pytest
from densitron import layers
from densitron.models import Model
from keras_subprocess import run_keras_on_jax
from test_conv_native import activate, engine_ops, peak_growth_kb
from test_convolution import transpose_reference
from test_gradients_fd import fd_check
from test_threads import assert_trains_alike_on_one_and_two_threads

_CONV, _INDEX_MAP = 33, 20  # densitron::OpType

CASES = [  # (layer, input shape without the batch, arguments)
    (layers.Conv1DTranspose, (7, 3), {"filters": 5, "kernel_size": 3}),
    (layers.Conv1DTranspose, (9, 5), {"filters": 4, "kernel_size": 4, "strides": 3,
                                      "padding": "same", "activation": "relu"}),
    (layers.Conv1DTranspose, (8, 2), {"filters": 3, "kernel_size": 3, "dilation_rate": 3,
                                      "padding": "same", "activation": "tanh"}),
    (layers.Conv1DTranspose, (4, 11), {"filters": 7, "kernel_size": 5, "strides": 2,
                                       "output_padding": 1, "data_format": "channels_first"}),
    (layers.Conv1DTranspose, (6, 3), {"filters": 2, "kernel_size": 1, "strides": 2,
                                      "use_bias": False}),
    (layers.Conv2DTranspose, (5, 7, 3), {"filters": 10, "kernel_size": 3, "strides": 2,
                                         "padding": "same", "activation": "sigmoid"}),
    (layers.Conv2DTranspose, (6, 5, 4), {"filters": 6, "kernel_size": (4, 3),
                                         "strides": (2, 3), "padding": "same",
                                         "output_padding": (1, 2), "use_bias": False}),
    (layers.Conv2DTranspose, (3, 6, 5), {"filters": 4, "kernel_size": 3, "strides": 2,
                                         "padding": "same", "data_format": "channels_first",
                                         "activation": "gelu"}),
    (layers.Conv2DTranspose, (7, 6, 9), {"filters": 5, "kernel_size": 3, "dilation_rate": 2}),
    (layers.Conv2DTranspose, (6, 6, 5), {"filters": 11, "kernel_size": 2, "strides": 2,
                                         "activation": "softmax"}),
    (layers.Conv2DTranspose, (5, 5, 8), {"filters": 3, "kernel_size": 1}),  # rows directly
    (layers.Conv2DTranspose, (20, 19, 17), {"filters": 33, "kernel_size": 3,
                                            "padding": "same"}),  # several tiles a sample
    (layers.Conv3DTranspose, (3, 4, 5, 2), {"filters": 5, "kernel_size": (2, 3, 3),
                                            "strides": (1, 2, 2), "padding": "same",
                                            "activation": "tanh"}),
    (layers.Conv3DTranspose, (2, 3, 4, 3), {"filters": 4, "kernel_size": 2, "strides": 3,
                                            "output_padding": (0, 1, 2),
                                            "data_format": "channels_first"}),
]


@pytest.mark.parametrize("cls,shape,kwargs", CASES,
                         ids=[f"{c.__name__}-{s}-{sorted(k.items())}" for c, s, k in CASES])
def test_forward_against_float64_reference(cls, shape, kwargs):
    rng = np.random.default_rng(0)
    inp = layers.Input(shape)
    conv = cls(bias_initializer="random_normal", **kwargs)
    model = Model(inp, conv(inp))
    ops = engine_ops(model, conv)
    assert _CONV in ops
    assert _INDEX_MAP not in ops or conv.data_format == "channels_first"
    x = rng.normal(size=(5, *shape)).astype(np.float32)
    kernel = conv.kernel.numpy()
    bias = conv.bias.numpy() if conv.use_bias else None
    fmt = conv.data_format
    z = transpose_reference(x, kernel, bias, conv.strides, conv.padding, conv.dilation_rate,
                            conv.output_padding, fmt)
    want = activate(kwargs.get("activation"), z, 1 if fmt == "channels_first" else -1)
    got = model.predict(x, batch_size=3, verbose=0)
    assert got.shape == want.shape
    tol = 2e-6 * math.sqrt(kernel.size / kernel.shape[-2])
    np.testing.assert_allclose(got, want, rtol=tol + 1e-6, atol=tol + 1e-6)


GRADIENT_CASES = [
    (layers.Conv1DTranspose, (5, 2), {"filters": 3, "kernel_size": 3, "dilation_rate": 2,
                                      "padding": "same", "activation": "tanh"}),
    (layers.Conv2DTranspose, (3, 4, 2), {"filters": 3, "kernel_size": (3, 2), "strides": 2,
                                         "padding": "same", "output_padding": (1, 0),
                                         "activation": "gelu"}),
    (layers.Conv2DTranspose, (2, 3, 4), {"filters": 2, "kernel_size": 3, "strides": (1, 2),
                                         "data_format": "channels_first",
                                         "activation": "sigmoid"}),
    (layers.Conv2DTranspose, (3, 3, 3), {"filters": 2, "kernel_size": 1, "strides": 2}),
    (layers.Conv3DTranspose, (2, 3, 2, 2), {"filters": 2, "kernel_size": 2,
                                            "strides": (1, 2, 1), "use_bias": False}),
]


@pytest.mark.parametrize("cls,shape,kwargs", GRADIENT_CASES,
                         ids=[f"{c.__name__}-{s}" for c, s, _ in GRADIENT_CASES])
def test_gradients_against_finite_differences(cls, shape, kwargs):
    # a Dense over the last axis before the transposed convolution: its gradient is the
    # input's
    rng = np.random.default_rng(1)
    inp = layers.Input(shape)
    h = layers.Dense(shape[-1] + 1)(inp)
    conv = cls(bias_initializer="random_normal", **kwargs)
    out = layers.Dense(2)(layers.Flatten()(conv(h)))
    model = Model(inp, out)
    assert _CONV in engine_ops(model, conv)
    fd_check(model, rng.normal(size=(3, *shape)), rng.normal(size=(3, 2)), "mse")


def test_gradient_added_to_another_branchs_and_a_frozen_one():
    # h feeds the transposed convolution and a sum after it (their input gradients added);
    # a frozen transposed convolution passes the input's gradient only
    rng = np.random.default_rng(2)
    inp = layers.Input((4, 3, 2))
    h = layers.Dense(3, activation="tanh")(inp)
    frozen = layers.Conv2DTranspose(3, 3, padding="same", bias_initializer="random_normal")
    frozen.trainable = False
    c = layers.Conv2DTranspose(3, 2, padding="same", activation="tanh")(frozen(h))
    out = layers.Dense(2)(layers.Flatten()(layers.Add()([c, h])))
    fd_check(Model(inp, out), rng.normal(size=(2, 4, 3, 2)), rng.normal(size=(2, 2)), "mse")


def _decoder(data_format="channels_last"):
    shape = (4, 4, 6) if data_format == "channels_last" else (6, 4, 4)
    inp = layers.Input(shape)
    h = layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu",
                               data_format=data_format)(inp)
    h = layers.Conv2DTranspose(8, 4, strides=2, padding="same", output_padding=1,
                               data_format=data_format)(h)
    out = layers.Dense(3, activation="softmax")(layers.Flatten()(h))
    model = Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_trains_alike_on_one_and_two_threads(data_format):
    rng = np.random.default_rng(4)
    shape = (4, 4, 6) if data_format == "channels_last" else (6, 4, 4)
    assert_trains_alike_on_one_and_two_threads(
        lambda: _decoder(data_format), rng.normal(size=(40, *shape)).astype(np.float32),
        rng.integers(0, 3, 40), batch_size=16, epochs=2)


_TRAIN_SCRIPT = """
import numpy as np, keras, densitron

def decoder(ns, wide):
    L = ns.layers
    i = ns.Input((3, 4, 2) if not wide else (3, 3, 128))
    if wide:  # a kernel of 3·3·128·128 values: its gradient by kernel rows
        x = L.Conv2DTranspose(128, 3, strides=2, padding="same", activation="relu")(i)
    else:
        x = L.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu")(i)
        x = L.Conv2DTranspose(5, (2, 3), strides=(2, 1), output_padding=(1, 0),
                              data_format="channels_first", activation="tanh")(x)
        x = L.Reshape((5, -1))(x)
        x = L.Conv1DTranspose(4, 3, dilation_rate=2, padding="same", use_bias=False)(x)
        x = L.Reshape((5, 2, 2, 1))(x)
        x = L.Conv3DTranspose(3, 2, strides=(1, 2, 1), padding="same")(x)
    o = L.Dense(5, activation="softmax")(L.Flatten()(x))
    m = ns.Model(i, o)
    m.compile(optimizer=ns.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return m

rng = np.random.default_rng(0)
for wide in (False, True):
    x = rng.normal(size=(24, *((3, 4, 2) if not wide else (3, 3, 128)))).astype(np.float32)
    y = rng.integers(0, 5, size=24)
    theirs, ours = decoder(keras, wide), decoder(densitron, wide)
    ours.set_weights(theirs.get_weights())
    a = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    b = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    # (the wide one's loss falls tenfold in 6 steps: float32's differing sums show more)
    np.testing.assert_allclose(b, a, rtol=1e-4 if wide else 1e-5)
    for u, v in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
print("same")
"""


def test_training_steps_are_kerass_on_jax():
    out = run_keras_on_jax(textwrap.dedent(_TRAIN_SCRIPT))
    assert out.strip().endswith("same"), out[-3000:]


_DECODER_IMAGE = textwrap.dedent("""
    import resource
    import numpy as np
    from densitron import layers, models
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 96, 96, 32)).astype(np.float32)
    y = rng.normal(size=(2, 1)).astype(np.float32)
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    inp = layers.Input((96, 96, 32))
    h = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(inp)
    model = models.Model(inp, layers.Dense(1)(layers.GlobalAveragePooling2D()(h)))
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start)
""")


def test_decoder_image_trains_a_step_in_bounded_memory():
    # 96×96×32 → 192×192×32, 3×3 at stride 2, batch 2. The old windows' map had 192·192·9·32
    # = 10.6M entries a sample (48 bytes each as it was made: 510 MB, before the gathered
    # values). The native node's: the output, its gradient and the pre-activation (3 × 9.4 MB
    # for the batch) and a thread's 512 KB tile. The peak's growth, in a fresh process, stays
    # under a quarter of the old map's bytes.
    grown_kb = peak_growth_kb(_DECODER_IMAGE)
    old_map_kb = 192 * 192 * 9 * 32 * 48 // 1024
    assert grown_kb < old_map_kb // 4, (grown_kb, old_map_kb)
