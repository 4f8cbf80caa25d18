"""Parity with Keras itself: for the same architecture, `model.layers` (names and types) and
`get_weights()` (order and shapes) are Keras's, weights move both ways with `set_weights`, and
`predict` / `evaluate` give Keras's numbers for the same weights and data.

Keras runs with KERAS_BACKEND=numpy (inference and evaluate only; nothing is trained here).
Keras's numpy backend imports `jax` at import time (keras/src/backend/numpy/nn.py and
math.py use jax.lax for convolutions and FFTs), so `jax` must be installed too; neither jax
nor any other framework computes anything these tests compare.
"""

import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "numpy")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("jax", reason="Keras's numpy backend imports jax at import time; "
                                  "install the test extra: pip install -e .[test]")
keras = pytest.importorskip("keras", reason="the `keras` package is not installed; install the "
                                            "test extra: pip install -e .[test]")

if keras.backend.backend() != "numpy":
    pytest.skip(f"Keras runs the {keras.backend.backend()!r} backend (KERAS_BACKEND was set, or "
                "Keras was imported earlier in this process); these tests need "
                "KERAS_BACKEND=numpy",
                allow_module_level=True)

import densitron  # noqa: E402
import densitron.activations  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6

# Keras's own Variable.__array__ predates NumPy 2's `copy` keyword (keras/src/backend/common/
# variables.py); NumPy warns each time Keras converts a variable. Ignored for Keras's modules only.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning:keras")


class _NS:
    """One framework's API: layers module, Input, Model, Sequential."""

    def __init__(self, name, layers, Input, Model, Sequential):
        self.name, self.layers, self.Input = name, layers, Input
        self.Model, self.Sequential = Model, Sequential

    def __repr__(self):
        return self.name


KERAS = _NS("keras", keras.layers, keras.Input, keras.Model, keras.Sequential)
DENS = _NS("densitron", densitron.layers, densitron.layers.Input, densitron.models.Model,
           densitron.models.Sequential)


# --- helpers ---------------------------------------------------------------------------------

def _random_weights(kmodel, seed=0):
    """Non-trivial values for every Keras weight (biases and BN statistics included), so a
    weight landing in the wrong slot changes the outputs."""
    rng = np.random.default_rng(seed)
    out = []
    for v in kmodel.weights:
        shape = tuple(v.shape)
        name = v.name
        if name == "moving_variance":
            w = rng.uniform(0.3, 2.0, shape)
        elif name == "gamma":
            w = rng.uniform(0.5, 1.5, shape)
        elif name == "kernel":
            w = rng.normal(0.0, 1.0 / np.sqrt(shape[0]), shape)
        else:
            w = rng.normal(0.0, 0.5, shape)
        out.append(w.astype(np.float32))
    return out


def _layer_signature(model):
    return [layer.name for layer in model.layers], [type(layer).__name__ for layer in model.layers]


def _short_path(variable):
    return "/".join(variable.path.split("/")[-2:])


def _check_layers(kmodel, dmodel):
    """`model.layers`: the same names and types in the same order as Keras's."""
    k_names, k_types = _layer_signature(kmodel)
    d_names, d_types = _layer_signature(dmodel)
    assert d_names == k_names, "model.layers names/order differ from Keras's"
    assert d_types == k_types, "model.layers types differ from Keras's"


def _check_weights_move(kmodel, dmodel, seed=0):
    """Same weight order and shapes (checked one by one, then by path); copies Keras's
    weights (randomized) into densitron and checks they read back unchanged."""
    kweights = _random_weights(kmodel, seed)
    kmodel.set_weights(kweights)
    k_paths = [v.path for v in kmodel.weights]
    d_shapes = [tuple(w.shape) for w in dmodel.get_weights()]
    k_shapes = [tuple(w.shape) for w in kweights]
    assert len(d_shapes) == len(k_shapes), (
        f"densitron has {len(d_shapes)} weights {d_shapes}, Keras {len(k_shapes)} "
        f"{list(zip(k_paths, k_shapes))}")
    for i, (path, ks, ds) in enumerate(zip(k_paths, k_shapes, d_shapes)):
        assert ds == ks, f"weight {i} (Keras {path}): densitron shape {ds}, Keras shape {ks}"
    # "layer/weight" (Keras prefixes a Sequential's own name: "seed/dense/kernel").
    assert [_short_path(v) for v in dmodel.weights] == [_short_path(v) for v in kmodel.weights], (
        "weight order differs from Keras's")

    dmodel.set_weights(kmodel.get_weights())
    for i, (dw, kw) in enumerate(zip(dmodel.get_weights(), kmodel.get_weights())):
        np.testing.assert_array_equal(dw, kw, err_msg=f"weight {i} ({k_paths[i]})")
    return kweights


def _predict_both(kmodel, dmodel, x):
    kout = kmodel.predict(x, verbose=0)
    dout = dmodel.predict(x, verbose=0)
    if isinstance(kout, (list, tuple)):
        assert isinstance(dout, (list, tuple)) and len(dout) == len(kout)
        return list(kout), list(dout)
    return [kout], [dout]


def _assert_close(kouts, douts, rtol=RTOL, atol=ATOL):
    for i, (k, d) in enumerate(zip(kouts, douts)):
        d = np.asarray(d)
        assert d.shape == np.shape(k), f"output {i}: densitron {d.shape}, Keras {np.shape(k)}"
        np.testing.assert_allclose(d, k, rtol=rtol, atol=atol, err_msg=f"output {i}")


def check_parity(build, x, rtol=RTOL, atol=ATOL, seed=0, check_layers=True):
    """`build(ns)` builds the same model with either framework's API. With check_layers=False
    the `model.layers` order is left to a separate test (see the xfails below)."""
    kmodel = build(KERAS)
    dmodel = build(DENS)
    _check_weights_move(kmodel, dmodel, seed)
    kouts, douts = _predict_both(kmodel, dmodel, x)
    _assert_close(kouts, douts, rtol, atol)
    # And back: densitron's weights drive Keras to the same outputs.
    kmodel2 = build(KERAS)
    kmodel2.set_weights(dmodel.get_weights())
    kouts2, _ = _predict_both(kmodel2, dmodel, x)
    _assert_close(kouts2, douts, rtol, atol)
    if check_layers:
        _check_layers(kmodel, dmodel)
    return kmodel, dmodel


def _x(*shape, seed=1, scale=1.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


# --- activations -----------------------------------------------------------------------------

# Every activation Keras 3 accepts by name (keras/src/activations/__init__.py, ALL_OBJECTS_DICT)
# except "threshold", which has required arguments and so cannot be used as a string.
KERAS_ACTIVATIONS = [
    "celu", "elu", "exponential", "gelu", "glu", "hard_shrink", "hard_sigmoid", "hard_silu",
    "hard_swish", "hard_tanh", "leaky_relu", "linear", "log_sigmoid", "log_softmax", "mish",
    "relu", "relu6", "selu", "sigmoid", "silu", "soft_shrink", "softmax", "softplus",
    "softsign", "sparse_plus", "sparse_sigmoid", "sparsemax", "squareplus", "swish", "tanh",
    "tanh_shrink",
]


def _require_activation(name, build, x):
    """Skips (with the reason) an activation densitron does not offer yet: one that
    `densitron.activations.get` rejects, or whose model does not build or predict."""
    try:
        densitron.activations.get(name)
    except ValueError as e:
        pytest.skip(f"densitron.activations.get({name!r}) is not supported yet: {e}")
    try:
        build(DENS).predict(x, verbose=0)
    except (ValueError, NotImplementedError, RuntimeError) as e:
        pytest.skip(f"densitron accepts activation {name!r} but a model using it does not "
                    f"build/predict yet: {type(e).__name__}: {e}")


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("activation", KERAS_ACTIVATIONS)
def test_dense_activation(activation, use_bias):
    def build(ns):
        inputs = ns.Input(shape=(7,), name="x")
        outputs = ns.layers.Dense(8, activation=activation, use_bias=use_bias, name="d")(inputs)
        return ns.Model(inputs, outputs, name="m")

    # Scale 2 puts pre-activations across the interesting range of every function (both
    # sides of 0, past the kinks of relu6 / hard_sigmoid / shrink functions).
    x = _x(33, 7, scale=2.0)
    _require_activation(activation, build, x)
    check_parity(build, x)


@pytest.mark.parametrize("activation", KERAS_ACTIVATIONS)
def test_activation_layer_rank3(activation):
    def build(ns):
        inputs = ns.Input(shape=(3, 6), name="x")
        outputs = ns.layers.Activation(activation, name="act")(inputs)
        return ns.Model(inputs, outputs, name="m")

    x = _x(9, 3, 6, scale=3.0)
    _require_activation(activation, build, x)
    kmodel, dmodel = check_parity(build, x)
    assert kmodel.weights == [] and dmodel.get_weights() == []


def test_dense_rank3_input():
    def build(ns):
        inputs = ns.Input(shape=(4, 6), name="x")
        h = ns.layers.Dense(5, activation="relu", name="d1")(inputs)
        outputs = ns.layers.Dense(3, name="d2")(h)
        return ns.Model(inputs, outputs, name="m")

    check_parity(build, _x(10, 4, 6))


# --- the seed model --------------------------------------------------------------------------

def _seed_functional(ns):
    inputs = ns.Input(shape=(784,), name="pixels")
    x = ns.layers.Dense(64, activation="relu", name="dense")(inputs)
    x = ns.layers.Dense(64, activation="relu", name="dense_1")(x)
    outputs = ns.layers.Dense(10, activation="softmax", name="dense_2")(x)
    return ns.Model(inputs=inputs, outputs=outputs, name="seed")


def _seed_sequential(ns):
    return ns.Sequential([ns.Input(shape=(784,)),
                          ns.layers.Dense(64, activation="relu", name="dense"),
                          ns.layers.Dense(64, activation="relu", name="dense_1"),
                          ns.layers.Dense(10, activation="softmax", name="dense_2")],
                         name="seed")


def _mnist_like(rows, seed=2):
    return np.random.default_rng(seed).uniform(0, 1, size=(rows, 784)).astype(np.float32)


@pytest.mark.parametrize("build", [_seed_functional, _seed_sequential],
                         ids=["functional", "sequential"])
def test_seed_model(build):
    check_parity(build, _mnist_like(100))


# --- merging ---------------------------------------------------------------------------------

@pytest.mark.parametrize("merge", ["Add", "Subtract", "Multiply", "Average", "Maximum",
                                   "Minimum"])
def test_merge_layers(merge):
    n_inputs = 2 if merge == "Subtract" else 3

    def build(ns):
        inputs = [ns.Input(shape=(5,), name=f"in{i}") for i in range(n_inputs)]
        branches = [ns.layers.Dense(4, activation="tanh", name=f"branch{i}")(t)
                    for i, t in enumerate(inputs)]
        merged = getattr(ns.layers, merge)(name="merge")(branches)
        outputs = ns.layers.Dense(3, name="head")(merged)
        return ns.Model(inputs, outputs, name="m")

    xs = [_x(12, 5, seed=10 + i) for i in range(n_inputs)]
    check_parity(build, xs)


@pytest.mark.parametrize("merge", ["Add", "Subtract", "Multiply", "Average", "Maximum",
                                   "Minimum"])
def test_merge_layers_on_inputs_rank3(merge):
    def build(ns):
        a = ns.Input(shape=(3, 4), name="a")
        b = ns.Input(shape=(3, 4), name="b")
        outputs = getattr(ns.layers, merge)(name="merge")([a, b])
        return ns.Model([a, b], outputs, name="m")

    check_parity(build, [_x(6, 3, 4, seed=3), _x(6, 3, 4, seed=4)])


@pytest.mark.parametrize("axis,shape_a,shape_b", [
    (-1, (3, 4), (3, 5)),
    (1, (3, 4), (2, 4)),
    (-2, (3, 4), (2, 4)),
    (-1, (4,), (6,)),
], ids=["rank3_last", "rank3_middle", "rank3_middle_negative", "rank2_last"])
def test_concatenate(axis, shape_a, shape_b):
    def build(ns):
        a = ns.Input(shape=shape_a, name="a")
        b = ns.Input(shape=shape_b, name="b")
        c = ns.layers.Concatenate(axis=axis, name="cat")([a, b])
        outputs = ns.layers.Dense(2, name="head")(c)
        return ns.Model([a, b], outputs, name="m")

    check_parity(build, [_x(7, *shape_a, seed=5), _x(7, *shape_b, seed=6)])


# --- reshaping, identity, regularization -----------------------------------------------------

def test_flatten_and_reshape():
    def build(ns):
        inputs = ns.Input(shape=(3, 4), name="x")
        h = ns.layers.Flatten(name="flat")(inputs)
        h = ns.layers.Dense(12, name="d1")(h)
        h = ns.layers.Reshape((4, 3), name="reshape")(h)
        h = ns.layers.Dense(2, name="d2")(h)
        outputs = ns.layers.Reshape((-1, 4), name="reshape_auto")(h)
        return ns.Model(inputs, outputs, name="m")

    check_parity(build, _x(8, 3, 4))


def _mixer(ns):
    """An MLP-Mixer-style block: Dense over features, Permute, Dense over tokens, Permute
    back; with RepeatVector, Cropping1D and ZeroPadding1D around it."""
    inputs = ns.Input(shape=(6, 4), name="patches")
    h = ns.layers.Dense(5, activation="gelu", name="channel_mix")(inputs)
    t = ns.layers.Permute((2, 1), name="to_tokens")(h)
    t = ns.layers.Dense(6, activation="gelu", name="token_mix")(t)
    h = ns.layers.Add(name="skip")([h, ns.layers.Permute((2, 1), name="back")(t)])
    h = ns.layers.ZeroPadding1D((1, 2), name="pad")(ns.layers.Cropping1D((2, 1), name="crop")(h))
    v = ns.layers.Dense(3, name="head")(ns.layers.GlobalAveragePooling1D(name="pool")(h))
    r = ns.layers.RepeatVector(2, name="repeat")(v)
    return ns.Model(inputs, ns.layers.Flatten(name="flat")(r), name="mixer")


def test_permute_repeat_crop_and_pad():
    check_parity(_mixer, _x(8, 6, 4))


def _image_maps(ns):
    """Cropping2D, ZeroPadding2D, UpSampling1D/2D (nearest) between Dense layers."""
    inputs = ns.Input(shape=(5, 4, 3), name="image")
    h = ns.layers.Dense(2, name="d1")(inputs)
    h = ns.layers.Cropping2D(((1, 0), (0, 2)), name="crop")(h)
    h = ns.layers.ZeroPadding2D(((0, 1), (2, 1)), name="pad")(h)
    h = ns.layers.UpSampling2D((2, 3), name="up2")(h)
    h = ns.layers.Reshape((-1, 2), name="steps")(h)
    h = ns.layers.UpSampling1D(2, name="up1")(h)
    return ns.Model(inputs, ns.layers.Dense(1, name="d2")(ns.layers.Flatten(name="flat")(h)),
                    name="maps")


def test_cropping_padding_and_upsampling_2d():
    check_parity(_image_maps, _x(6, 5, 4, 3))


def test_identity():
    def build(ns):
        inputs = ns.Input(shape=(5,), name="x")
        h = ns.layers.Identity(name="ident")(inputs)
        outputs = ns.layers.Dense(3, name="d")(h)
        return ns.Model(inputs, outputs, name="m")

    check_parity(build, _x(4, 5))


def test_dropout_and_gaussian_noise_are_identity_in_inference():
    def build(ns):
        inputs = ns.Input(shape=(6,), name="x")
        h = ns.layers.Dense(8, activation="relu", name="d1")(inputs)
        h = ns.layers.Dropout(0.5, seed=3, name="drop")(h)
        h = ns.layers.GaussianNoise(0.7, seed=4, name="noise")(h)
        outputs = ns.layers.Dense(3, name="d2")(h)
        return ns.Model(inputs, outputs, name="m")

    check_parity(build, _x(20, 6))


# --- normalization ---------------------------------------------------------------------------

def test_batch_normalization_inference():
    def build(ns):
        inputs = ns.Input(shape=(6,), name="x")
        h = ns.layers.Dense(5, name="d1")(inputs)
        h = ns.layers.BatchNormalization(name="bn")(h)
        outputs = ns.layers.Dense(3, name="d2")(h)
        return ns.Model(inputs, outputs, name="m")

    kmodel, dmodel = check_parity(build, _x(16, 6))
    assert [v.path for v in kmodel.weights] == [
        "d1/kernel", "d1/bias", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance",
        "d2/kernel", "d2/bias"]
    # The weights really are non-trivial (mean != 0, variance != 1, gamma != 1, beta != 0).
    gamma, beta, mean, var = dmodel.get_weights()[2:6]
    assert np.all(gamma != 1) and np.all(beta != 0) and np.all(mean != 0) and np.all(var != 1)


def test_batch_normalization_rank3_no_scale_no_center():
    def build(ns):
        inputs = ns.Input(shape=(3, 4), name="x")
        outputs = ns.layers.BatchNormalization(center=False, scale=False, epsilon=0.01,
                                               name="bn")(inputs)
        return ns.Model(inputs, outputs, name="m")

    check_parity(build, _x(5, 3, 4))


@pytest.mark.parametrize("shape", [(6,), (3, 5)], ids=["rank2", "rank3"])
def test_layer_normalization(shape):
    def build(ns):
        inputs = ns.Input(shape=shape, name="x")
        h = ns.layers.Dense(7, name="d1")(inputs)
        h = ns.layers.LayerNormalization(name="ln")(h)
        outputs = ns.layers.Dense(3, name="d2")(h)
        return ns.Model(inputs, outputs, name="m")

    kmodel, _ = check_parity(build, _x(11, *shape))
    assert kmodel.get_layer("ln").epsilon == 1e-3


@pytest.mark.parametrize("shape", [(6,), (3, 5)], ids=["rank2", "rank3"])
def test_rms_normalization(shape, tmp_path):
    # Keras's RMSNormalization (its scale moved to non-trivial values by the weights check),
    # and .keras files both ways.
    def build(ns):
        inputs = ns.Input(shape=shape, name="x")
        h = ns.layers.Dense(7, name="d1")(inputs)
        h = ns.layers.RMSNormalization(epsilon=1e-3, name="rms")(h)
        outputs = ns.layers.Dense(3, name="d2")(h)
        return ns.Model(inputs, outputs, name="m")

    kmodel, dmodel = check_parity(build, _x(11, *shape))
    assert [v.name for v in dmodel.get_layer("rms").weights] == ["scale"]
    dmodel.save(tmp_path / "d.keras")
    kmodel.save(tmp_path / "k.keras")
    x = _x(11, *shape)
    _assert_close(keras.models.load_model(tmp_path / "d.keras").predict(x, verbose=0),
                  dmodel.predict(x, verbose=0), RTOL, ATOL)
    _assert_close(densitron.models.load_model(tmp_path / "k.keras").predict(x, verbose=0),
                  kmodel.predict(x, verbose=0), RTOL, ATOL)


def test_layer_normalization_small_variance_uses_epsilon():
    # Inputs whose per-sample variance is ~epsilon: only the right epsilon (1e-3, inside the
    # square root) reproduces Keras's values.
    def build(ns):
        inputs = ns.Input(shape=(8,), name="x")
        outputs = ns.layers.LayerNormalization(name="ln")(inputs)
        return ns.Model(inputs, outputs, name="m")

    check_parity(build, _x(6, 8, scale=0.03))


# --- embedding -------------------------------------------------------------------------------

def test_embedding_flatten_dense():
    def build(ns):
        inputs = ns.Input(shape=(5,), dtype="int32", name="ids")
        h = ns.layers.Embedding(20, 4, name="emb")(inputs)
        h = ns.layers.Flatten(name="flat")(h)
        outputs = ns.layers.Dense(3, activation="relu", name="d")(h)
        return ns.Model(inputs, outputs, name="m")

    ids = np.random.default_rng(7).integers(0, 20, size=(9, 5)).astype(np.int32)
    kmodel, dmodel = check_parity(build, ids)
    assert [v.path for v in kmodel.weights][0] == "emb/embeddings"


def _text_classifier(ns):
    # Embedding, then the mean over the sequence: Keras's usual bag-of-embeddings classifier
    inputs = ns.Input(shape=(8,), dtype="int32", name="ids")
    h = ns.layers.Embedding(20, 4, name="emb")(inputs)
    h = ns.layers.GlobalAveragePooling1D(name="mean")(h)
    return ns.Model(inputs, ns.layers.Dense(2, activation="softmax", name="d")(h), name="m")


def _ids(rows, seed=8):
    return np.random.default_rng(seed).integers(0, 20, size=(rows, 8)).astype(np.int32)


def test_embedding_global_average_pooling():
    check_parity(_text_classifier, _ids(9))


def _masked_text_classifier(ns, mask_zero=True):
    # mask_zero: id 0 is padding; the mask goes through Dense and Dropout and the mean skips it
    inputs = ns.Input(shape=(8,), dtype="int32", name="ids")
    h = ns.layers.Embedding(20, 4, mask_zero=mask_zero, name="emb")(inputs)
    h = ns.layers.Dropout(0.1, name="drop")(ns.layers.Dense(5, activation="relu", name="d1")(h))
    h = ns.layers.GlobalAveragePooling1D(name="mean")(h)
    return ns.Model(inputs, ns.layers.Dense(2, activation="softmax", name="d")(h), name="m")


def _padded_ids(rows, seed=9):
    ids = _ids(rows, seed)
    ids[ids == 0] = 1
    for r, n in enumerate(np.random.default_rng(seed).integers(1, 9, size=rows)):
        ids[r, n:] = 0
    return ids


def test_embedding_mask_zero_global_average_pooling():
    ids = _padded_ids(11)
    kmodel, dmodel = check_parity(_masked_text_classifier, ids)
    assert dmodel.get_layer("emb").get_config()["mask_zero"] is True
    # the mask matters: without it the same weights give other outputs
    unmasked = _masked_text_classifier(DENS, mask_zero=False)
    unmasked.set_weights(dmodel.get_weights())
    assert not np.allclose(unmasked.predict(ids, verbose=0), dmodel.predict(ids, verbose=0))


def _pooled_sequence(ns):
    # every global pooling layer and data format over a (steps, features) sequence
    inputs = ns.Input(shape=(7, 6), name="seq")
    h = ns.layers.Dense(5, activation="relu", name="d1")(inputs)
    a = ns.layers.GlobalAveragePooling1D(name="avg")(h)
    b = ns.layers.GlobalMaxPooling1D(name="max")(h)
    c = ns.layers.GlobalAveragePooling1D(data_format="channels_first", keepdims=True,
                                         name="avg_steps")(h)
    d = ns.layers.GlobalMaxPool1D(data_format="channels_first", name="max_steps")(h)
    img = ns.layers.Reshape((7, 3, 2), name="img")(inputs)
    e = ns.layers.GlobalAveragePooling2D(name="avg2d")(img)
    f = ns.layers.GlobalMaxPooling2D(data_format="channels_first", name="max2d")(img)
    cat = ns.layers.Concatenate(name="cat")([a, b, ns.layers.Flatten(name="flat")(c), d, e, f])
    return ns.Model(inputs, ns.layers.Dense(3, activation="softmax", name="out")(cat), name="m")


def test_global_pooling_layers():
    kmodel, dmodel = check_parity(_pooled_sequence, _x(10, 7, 6, seed=46))
    for layer in kmodel.layers:
        if "Pool" not in type(layer).__name__:
            continue
        assert dmodel.get_layer(layer.name).get_config() == layer.get_config()


# --- multi-input / multi-output, shared layers, nesting --------------------------------------

def _shared_two_tower(ns):
    a = ns.Input(shape=(6,), name="a")
    b = ns.Input(shape=(6,), name="b")
    shared = ns.layers.Dense(5, activation="relu", name="shared")
    ha, hb = shared(a), shared(b)
    side = ns.layers.Dense(4, name="side")(b)
    cat = ns.layers.Concatenate(name="cat")([ha, hb, side])
    out1 = ns.layers.Dense(3, activation="softmax", name="probs")(cat)
    out2 = ns.layers.Dense(1, name="score")(ns.layers.Add(name="sum")([ha, hb]))
    return ns.Model([a, b], [out1, out2], name="towers")


def test_multi_input_multi_output_shared_layer():
    kmodel, dmodel = check_parity(_shared_two_tower, [_x(10, 6, seed=8), _x(10, 6, seed=9)],
                                  check_layers=True)
    # The shared layer owns one kernel and one bias, listed once.
    assert len(dmodel.get_weights()) == len(kmodel.get_weights()) == 8


# model.layers order: Keras sorts a functional model's layers by decreasing graph depth
# (distance to the outputs; ties in traversal order from the outputs; InputLayers are not forced
# first; keras/src/ops/function.py map_graph). get_weights() follows that order.


def test_multi_input_multi_output_shared_layer_layers_order():
    _check_layers(_shared_two_tower(KERAS), _shared_two_tower(DENS))


def _deep_and_shallow(ns):
    # The first model output is three Denses from input b, the second one Dense from input a.
    a = ns.Input(shape=(4,), name="a")
    b = ns.Input(shape=(3,), name="b")
    hb = ns.layers.Dense(5, name="from_b")(b)
    deep = ns.layers.Dense(2, name="deep")(ns.layers.Dense(6, name="mid")(hb))
    shallow = ns.layers.Dense(2, name="from_a")(a)
    return ns.Model([a, b], [deep, shallow], name="m")


def test_deep_and_shallow_outputs():
    check_parity(_deep_and_shallow, [_x(5, 4, seed=11), _x(5, 3, seed=12)], check_layers=True)


def test_deep_and_shallow_outputs_layers_order():
    _check_layers(_deep_and_shallow(KERAS), _deep_and_shallow(DENS))


def _branches_of_different_depth(ns):
    # Output 1 is one Dense away from input a; output 2 three Denses away from input b. Keras
    # lists layers by decreasing graph depth (keras/src/ops/function.py, map_graph), so b's
    # branch comes first in `model.layers` and in `get_weights()`.
    a = ns.Input(shape=(4,), name="a")
    b = ns.Input(shape=(3,), name="b")
    out1 = ns.layers.Dense(2, name="x1")(a)
    y = ns.layers.Dense(5, name="y1")(b)
    y = ns.layers.Dense(6, name="y2")(y)
    out2 = ns.layers.Dense(7, name="y3")(y)
    return ns.Model([a, b], [out1, out2], name="m")


_DEPTH_XS = [_x(5, 4, seed=15), _x(5, 3, seed=16)]


def test_weight_order_follows_keras_depth_order():
    kmodel = _branches_of_different_depth(KERAS)
    # The order itself, stated (Keras 3.15.1): set_weights between the frameworks relies on it.
    assert [v.path for v in kmodel.weights] == [
        "y1/kernel", "y1/bias", "y2/kernel", "y2/bias", "x1/kernel", "x1/bias", "y3/kernel",
        "y3/bias"]
    check_parity(_branches_of_different_depth, _DEPTH_XS)


def test_branches_of_different_depth_outputs_with_weights_copied_by_layer():
    # The same model as above with the weights matched by layer name instead of by position:
    # the outputs agree, so only the order of model.layers / get_weights() differs.
    kmodel = _branches_of_different_depth(KERAS)
    dmodel = _branches_of_different_depth(DENS)
    kmodel.set_weights(_random_weights(kmodel))
    for layer in kmodel.layers:
        if layer.weights:
            dmodel.get_layer(layer.name).set_weights(layer.get_weights())
    _assert_close(*_predict_both(kmodel, dmodel, _DEPTH_XS))


def _nested(ns):
    inner_in = ns.Input(shape=(6,), name="inner_x")
    h = ns.layers.Dense(5, activation="relu", name="inner_d1")(inner_in)
    inner = ns.Model(inner_in, ns.layers.Dense(4, name="inner_d2")(h), name="inner")
    x = ns.Input(shape=(6,), name="x")
    pre = ns.layers.Dense(6, name="pre")(x)
    y = inner(pre)
    outputs = ns.layers.Dense(2, activation="softmax", name="head")(y)
    return ns.Model(x, outputs, name="outer")


def test_nested_model():
    kmodel, dmodel = check_parity(_nested, _x(13, 6))
    assert [v.path for v in kmodel.weights] == [
        "pre/kernel", "pre/bias", "inner_d1/kernel", "inner_d1/bias", "inner_d2/kernel",
        "inner_d2/bias", "head/kernel", "head/bias"]
    assert _layer_signature(dmodel.get_layer("inner")) == _layer_signature(
        kmodel.get_layer("inner"))


def test_nested_model_called_twice():
    # The same inner model applied to two inputs: its weights are shared and listed once.
    def build(ns):
        inner_in = ns.Input(shape=(4,), name="inner_x")
        inner = ns.Model(inner_in, ns.layers.Dense(3, activation="tanh", name="inner_d")(inner_in),
                         name="inner")
        a = ns.Input(shape=(4,), name="a")
        b = ns.Input(shape=(4,), name="b")
        outputs = ns.layers.Subtract(name="diff")([inner(a), inner(b)])
        return ns.Model([a, b], outputs, name="siamese")

    check_parity(build, [_x(7, 4, seed=13), _x(7, 4, seed=14)])


def _sequential_of_models(ns):
    # Models as layers of a Sequential: a built functional model, then a Sequential without an
    # input shape, built by the call (Keras's Sequential._maybe_rebuild takes the first one's
    # input shape).
    base_in = ns.Input(shape=(6,), name="base_x")
    base = ns.Model(base_in, ns.layers.Dense(5, activation="relu", name="base_d")(base_in),
                    name="base")
    block = ns.Sequential([ns.layers.Dense(4, activation="tanh", name="block_d")], name="block")
    return ns.Sequential([base, block, ns.layers.Dense(2, activation="softmax", name="head")],
                         name="stack")


def test_models_inside_a_sequential():
    kmodel, dmodel = check_parity(_sequential_of_models, _x(11, 6, seed=41))
    # (the same variables in the same order; Keras's paths also carry the build's name scope)
    assert [v.path.split("/")[-2:] for v in dmodel.weights] == [
        v.path.split("/")[-2:] for v in kmodel.weights]
    assert dmodel.input_shape == kmodel.input_shape == (None, 6)
    x, y = _x(40, 6, seed=42), _labels("categorical_crossentropy", 40, 2, seed=43)
    for model in (kmodel, dmodel):
        model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    klogs = kmodel.evaluate(x, y, verbose=0, return_dict=True)
    dlogs = dmodel.evaluate(x, y, verbose=0, return_dict=True)
    for key in klogs:
        np.testing.assert_allclose(dlogs[key], klogs[key], rtol=1e-5, err_msg=key)
    clone = densitron.models.Sequential.from_config(dmodel.get_config())
    clone.set_weights(dmodel.get_weights())
    _assert_close(_predictions(dmodel, x), _predictions(clone, x))


@pytest.mark.parametrize("batch_size,steps", [(8, 2), (8, 4), (None, 3), (8, 9)])
def test_steps_over_arrays_in_evaluate_and_predict(batch_size, steps):
    # Keras reads the first `steps` batches of arrays (all rows when batch_size is not given:
    # it is then ceil(rows / steps)); more steps than batches warn and read every row.
    kmodel, dmodel = check_parity(_nested, _x(5, 6))
    x, y = _x(30, 6, seed=44), _labels("categorical_crossentropy", 30, 2, seed=45)
    for model in (kmodel, dmodel):
        model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    outs = []
    for model in (kmodel, dmodel):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            p = model.predict(x, batch_size=batch_size, steps=steps, verbose=0)
            logs = model.evaluate(x, y, batch_size=batch_size, steps=steps, verbose=0,
                                  return_dict=True)
        outs.append((p, logs, sum("ran out of data" in str(w.message) for w in caught)))
    (kp, klogs, kwarned), (dp, dlogs, dwarned) = outs
    assert dp.shape == kp.shape
    _assert_close([kp], [dp])
    for key in klogs:
        np.testing.assert_allclose(dlogs[key], klogs[key], rtol=1e-5, err_msg=key)
    assert (dwarned > 0) == (kwarned > 0)


def test_a_sequential_refuses_a_model_of_two_inputs():
    a, b = densitron.Input(shape=(4,)), densitron.Input(shape=(4,))
    pair = densitron.Model([a, b], densitron.layers.Add()([a, b]), name="pair")
    with pytest.raises(ValueError, match=r"expects inputs of shapes .*Received: input shapes"):
        densitron.Sequential([densitron.Input(shape=(4,)), pair, densitron.layers.Dense(2)])


# --- evaluate: losses and accuracy -----------------------------------------------------------

def _classifier(ns, out_units, activation):
    inputs = ns.Input(shape=(6,), name="x")
    h = ns.layers.Dense(8, activation="relu", name="hidden")(inputs)
    outputs = ns.layers.Dense(out_units, activation=activation, name="out")(h)
    return ns.Model(inputs, outputs, name="clf")


def _labels(loss, rows, classes, seed=20):
    rng = np.random.default_rng(seed)
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, classes, size=(rows,)).astype(np.int32)
    if loss == "categorical_crossentropy":
        return np.eye(classes, dtype=np.float32)[rng.integers(0, classes, size=rows)]
    if loss == "binary_crossentropy":
        return rng.integers(0, 2, size=(rows, classes)).astype(np.float32)
    return rng.normal(size=(rows, classes)).astype(np.float32)


EVAL_CASES = [
    # loss, output units, output activation
    ("categorical_crossentropy", 4, "softmax"),
    ("sparse_categorical_crossentropy", 4, "softmax"),
    ("binary_crossentropy", 1, "sigmoid"),
    ("binary_crossentropy", 3, "sigmoid"),
    ("mse", 3, None),
    ("mae", 3, None),
    ("mean_squared_error", 4, "softmax"),
]


@pytest.mark.parametrize("loss,units,activation", EVAL_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in EVAL_CASES])
def test_evaluate_loss_and_accuracy(loss, units, activation):
    rows = 77  # not a multiple of the batch size: the last partial batch counts by its size
    kmodel = _classifier(KERAS, units, activation)
    dmodel = _classifier(DENS, units, activation)
    _check_weights_move(kmodel, dmodel)
    x = _x(rows, 6, seed=21)
    y = _labels(loss, rows, units)
    for model in (kmodel, dmodel):
        model.compile(optimizer="rmsprop", loss=loss, metrics=["accuracy"])
    klogs = kmodel.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    dlogs = dmodel.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert sorted(dlogs) == sorted(klogs)
    # Losses are means of 77 float32 terms: accumulation order differs (Keras: per batch, then
    # a running mean), so allow rtol 1e-5 on values of size ~1.
    np.testing.assert_allclose(dlogs["loss"], klogs["loss"], rtol=1e-5, atol=1e-6)
    # Accuracy counts hits: equal exactly up to the float division.
    np.testing.assert_allclose(dlogs["accuracy"], klogs["accuracy"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("loss,units,activation", EVAL_CASES[:4],
                         ids=[f"{c[0]}-{c[1]}" for c in EVAL_CASES[:4]])
def test_evaluate_weighted_metrics(loss, units, activation):
    # Keras's names (a weighted metric named like a plain one gets "weighted_" before it) and
    # values (sums of weight·value over the sum of the weights), with and without weights.
    kmodel = _classifier(KERAS, units, activation)
    dmodel = _classifier(DENS, units, activation)
    _check_weights_move(kmodel, dmodel)
    x = _x(61, 6, seed=30)
    y = _labels(loss, 61, units, seed=31)
    w = np.random.default_rng(32).random(61).astype(np.float32)
    w[:5] = 0.0
    weighted = ["accuracy", loss] + ([] if loss.startswith("sparse") else ["mse"])
    for model in (kmodel, dmodel):
        model.compile(optimizer="rmsprop", loss=loss, metrics=["accuracy"],
                      weighted_metrics=weighted)
    for sample_weight in (w, None):
        _, dlogs = _evaluate_alike(kmodel, dmodel, x, y, 16, sample_weight)
    assert dlogs["weighted_accuracy"] == dlogs["accuracy"]  # no weights: the same


def _metric_objects(ns, units, from_logits):
    m = keras.metrics if ns is KERAS else densitron.metrics
    if units == 1:  # a sigmoid output
        return [m.BinaryAccuracy(threshold=0.3), m.BinaryCrossentropy(from_logits=from_logits),
                m.RootMeanSquaredError(name="rmse"), "MeanAbsoluteError", m.Precision(name="p"),
                m.Recall(thresholds=0.3, name="r30"), "Recall"]
    return [m.CategoricalAccuracy(name="acc1"), m.CategoricalCrossentropy(from_logits=from_logits),
            m.RootMeanSquaredError(), m.MeanSquaredError(name="msq"), "BinaryAccuracy",
            m.MeanAbsoluteError(), m.Precision(thresholds=[0.2], name="p20"), "Precision",
            m.Recall(name="r")]


def test_precision_and_recall_are_numbered_as_keras_names_them():
    keras.backend.clear_session()
    densitron.utils.clear_session()
    for m in (keras.metrics, densitron.metrics):
        names = [m.Precision().name, m.Recall().name, m.Precision().name,
                 m.Precision(name="p").name]
        assert names == ["precision", "recall", "precision_1", "p"]


def _evaluate_alike(kmodel, dmodel, x, y, batch_size, sample_weight=None):
    """Both models' evaluate logs: the same names and values (rtol 1e-5); returns Keras's."""
    with np.errstate(divide="ignore", invalid="ignore"):  # Keras's numpy divide_no_nan warns
        klogs = kmodel.evaluate(x, y, batch_size=batch_size, sample_weight=sample_weight,
                                verbose=0, return_dict=True)
    dlogs = dmodel.evaluate(x, y, batch_size=batch_size, sample_weight=sample_weight,
                            verbose=0, return_dict=True)
    assert sorted(dlogs) == sorted(klogs)
    for key in klogs:
        np.testing.assert_allclose(dlogs[key], klogs[key], rtol=1e-5, atol=1e-6, err_msg=key)
    return klogs, dlogs


def _assert_keras_files_keep_logs(kmodel, dmodel, x, y, w, batch_size, klogs, tmp_path):
    """Each model saved as a .keras file and loaded by the other framework evaluates to
    Keras's logs: the same names and values."""
    pytest.importorskip("h5py")
    dmodel.save(tmp_path / "d.keras")
    kmodel.save(tmp_path / "k.keras")
    for clone in (keras.models.load_model(tmp_path / "d.keras"),
                  densitron.models.load_model(tmp_path / "k.keras")):
        logs = clone.evaluate(x, y, batch_size=batch_size, sample_weight=w, verbose=0,
                              return_dict=True)
        assert sorted(logs) == sorted(klogs)
        for key in klogs:
            np.testing.assert_allclose(logs[key], klogs[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("units,activation,from_logits", [(4, "softmax", False),
                                                          (4, None, True), (1, "sigmoid", False),
                                                          (1, None, True)])
def test_evaluate_metric_objects(units, activation, from_logits, tmp_path):
    # Keras's metric objects and class names: the same log names and values, with and without
    # sample weights, and after .keras files move both ways.
    kmodel = _classifier(KERAS, units, activation)
    dmodel = _classifier(DENS, units, activation)
    _check_weights_move(kmodel, dmodel)
    x = _x(53, 6, seed=33)
    y = _labels("binary_crossentropy" if units == 1 else "categorical_crossentropy", 53, units,
                seed=34)
    loss = "binary_crossentropy" if units == 1 else "categorical_crossentropy"
    for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
        model.compile(optimizer="sgd", loss=loss, metrics=_metric_objects(ns, units, from_logits),
                      weighted_metrics=[_metric_objects(ns, units, from_logits)[0],
                                        (keras.metrics if ns is KERAS else densitron.metrics
                                         ).Precision(name="weighted_precision")])
    w = np.random.default_rng(35).random(53).astype(np.float32)
    klogs = kmodel.evaluate(x, y, batch_size=16, sample_weight=w, verbose=0, return_dict=True)
    dlogs = dmodel.evaluate(x, y, batch_size=16, sample_weight=w, verbose=0, return_dict=True)
    assert sorted(dlogs) == sorted(klogs)
    for key in klogs:
        np.testing.assert_allclose(dlogs[key], klogs[key], rtol=1e-5, atol=1e-6, err_msg=key)
    _assert_keras_files_keep_logs(kmodel, dmodel, x, y, w, 16, klogs, tmp_path)


# Keras's other losses: loss name, the metric string of the same formula (None: no metric),
# the metric class, output units and activation, and the kind of targets.
OTHER_LOSS_CASES = [
    ("mape", "MeanAbsolutePercentageError", "mape", "MeanAbsolutePercentageError", 3, None,
     "away_from_zero"),
    ("msle", "MeanSquaredLogarithmicError", "msle", "MeanSquaredLogarithmicError", 3,
     "softplus", "positive"),
    ("cosine_similarity", "CosineSimilarity", "cosine_similarity", "CosineSimilarity", 4, None,
     "normal"),
    ("huber", "Huber", None, None, 3, None, "normal"),
    ("log_cosh", "LogCosh", "log_cosh_error", "LogCoshError", 3, "tanh", "normal"),
    ("hinge", "Hinge", "hinge", "Hinge", 3, "tanh", "binary"),
    ("hinge", "Hinge", "hinge", "Hinge", 3, None, "signs"),
    ("squared_hinge", "SquaredHinge", "squared_hinge", "SquaredHinge", 3, None, "binary"),
    ("categorical_hinge", "CategoricalHinge", "categorical_hinge", "CategoricalHinge", 4, None,
     "one_hot"),
    ("kl_divergence", "KLDivergence", "kl_divergence", "KLDivergence", 4, "softmax",
     "distribution"),
    ("kld", "KLDivergence", None, None, 4, "softmax", "distribution"),
    ("poisson", "Poisson", "poisson", "Poisson", 3, "softplus", "positive"),
]


def _other_targets(kind, rows, units, seed):
    rng = np.random.default_rng(seed)
    if kind == "binary":
        return rng.integers(0, 2, (rows, units)).astype(np.float32)
    if kind == "signs":
        return (2 * rng.integers(0, 2, (rows, units)) - 1).astype(np.float32)
    if kind == "one_hot":
        return np.eye(units, dtype=np.float32)[rng.integers(0, units, rows)]
    if kind == "distribution":
        return rng.dirichlet(np.ones(units), rows).astype(np.float32)
    if kind == "positive":
        return rng.uniform(0, 3, (rows, units)).astype(np.float32)
    if kind == "away_from_zero":
        return (rng.uniform(0.5, 2, (rows, units)) * rng.choice([-1, 1], (rows, units))
                ).astype(np.float32)
    return rng.normal(size=(rows, units)).astype(np.float32)


@pytest.mark.parametrize("loss,loss_cls,metric,metric_cls,units,activation,kind",
                         OTHER_LOSS_CASES, ids=[f"{c[0]}-{c[6]}" for c in OTHER_LOSS_CASES])
def test_evaluate_other_losses_and_their_metrics(loss, loss_cls, metric, metric_cls, units,
                                                 activation, kind, tmp_path):
    # By name, and as loss and metric objects (weighted too): Keras's log names and values,
    # also after .keras files move both ways.
    kmodel = _classifier(KERAS, units, activation)
    dmodel = _classifier(DENS, units, activation)
    _check_weights_move(kmodel, dmodel)
    x = _x(53, 6, seed=36)
    y = _other_targets(kind, 53, units, seed=37)
    w = np.random.default_rng(38).random(53).astype(np.float32)
    for by_object in (False, True):
        for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
            mod = keras if ns is KERAS else densitron
            if by_object:
                metrics = [getattr(mod.metrics, metric_cls)()] if metric_cls else []
                model.compile(optimizer="sgd", loss=getattr(mod.losses, loss_cls)(),
                              metrics=metrics, weighted_metrics=[
                                  getattr(mod.metrics, metric_cls)(name="w")] if metric_cls
                              else None)
            else:
                model.compile(optimizer="sgd", loss=loss, metrics=[metric] if metric else [])
        for sample_weight in (None, w):
            klogs, _ = _evaluate_alike(kmodel, dmodel, x, y, 16, sample_weight)
    _assert_keras_files_keep_logs(kmodel, dmodel, x, y, w, 16, klogs, tmp_path)


def test_hinge_reads_binary_targets_batch_by_batch():
    # Keras converts {0, 1} targets to {-1, 1} only in batches whose targets are all 0 or 1:
    # here the first batch of 16 rows holds a -1 and the others do not.
    kmodel = _classifier(KERAS, 3, "tanh")
    dmodel = _classifier(DENS, 3, "tanh")
    _check_weights_move(kmodel, dmodel)
    x = _x(48, 6, seed=39)
    y = _other_targets("binary", 48, 3, seed=40)
    y[3, 1] = -1.0
    for model in (kmodel, dmodel):
        model.compile(optimizer="sgd", loss="squared_hinge", metrics=["hinge"])
    klogs, _ = _evaluate_alike(kmodel, dmodel, x, y, 16)
    whole = dmodel.evaluate(x, y, batch_size=48, verbose=0, return_dict=True)
    for key in klogs:
        assert abs(whole[key] - klogs[key]) > 1e-3  # one batch of all rows converts none


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("ignore", [-1, 2])
def test_evaluate_sparse_crossentropy_ignore_class(ignore, from_logits, tmp_path):
    # Keras's mask reduction batch by batch (the last batch smaller, one batch with every
    # target ignored), plain and weighted, with the accuracy counting the ignored targets;
    # after .keras files move both ways.
    kmodel = _classifier(KERAS, 4, None if from_logits else "softmax")
    dmodel = _classifier(DENS, 4, None if from_logits else "softmax")
    _check_weights_move(kmodel, dmodel)
    x = _x(70, 6, seed=41)
    y = _labels("sparse_categorical_crossentropy", 70, 4, seed=42)
    y[np.random.default_rng(43).random(70) < 0.3] = ignore
    y[16:32] = ignore
    w = np.random.default_rng(44).random(70).astype(np.float32)
    for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
        m = keras if ns is KERAS else densitron

        def metric(name):  # the metric's own ignore_class (Keras masks only the weights)
            return m.metrics.SparseCategoricalCrossentropy(
                name=name, from_logits=from_logits, ignore_class=ignore)

        model.compile(optimizer="sgd", metrics=["accuracy", metric("sce")],
                      weighted_metrics=[metric("wsce")],
                      loss=m.losses.SparseCategoricalCrossentropy(from_logits=from_logits,
                                                                  ignore_class=ignore))
    _evaluate_alike(kmodel, dmodel, x, y, 16)
    klogs, _ = _evaluate_alike(kmodel, dmodel, x, y, 16, w)
    with np.errstate(divide="ignore", invalid="ignore"):  # Keras's divide_no_nan warns
        _assert_keras_files_keep_logs(kmodel, dmodel, x, y, w, 16, klogs, tmp_path)
    p = dmodel.predict(x[:20], verbose=0)
    for sw in (None, w[:20]):  # standalone too
        km = keras.metrics.SparseCategoricalCrossentropy(from_logits=from_logits,
                                                         ignore_class=ignore)
        dm = densitron.metrics.SparseCategoricalCrossentropy(from_logits=from_logits,
                                                             ignore_class=ignore)
        with np.errstate(divide="ignore", invalid="ignore"):  # (Keras's numpy backend)
            km.update_state(y[:20], p, sample_weight=sw)
            want = float(km.result())
        dm.update_state(y[:20], p, sample_weight=sw)
        np.testing.assert_allclose(dm.result(), want, rtol=1e-5)


def _custom_loss(name, o):
    """A loss function written with ops module `o` (keras.ops or densitron.ops)."""
    if name == "pinball":
        def pinball(t, p):
            e = t - p
            return o.mean(o.maximum(0.7 * e, (0.7 - 1.0) * e), axis=-1)
        return pinball
    if name == "weighted_bce":
        def weighted_bce(t, p):
            q = o.clip(p, 1e-7, 1.0 - 1e-7)
            return -o.mean(2.5 * t * o.log(q) + (1.0 - t) * o.log(1.0 - q), axis=-1)
        return weighted_bce
    if name == "batch_mean":
        return lambda t, p: o.mean(o.abs(t - p) / (1.0 + o.square(t)))
    if name == "huber_where":
        def huber_where(t, p):
            e = o.abs(t - p)
            return o.mean(o.where(e < 0.5, 0.5 * o.square(e), 0.5 * (e - 0.25)), axis=-1)
        return huber_where
    if name == "sparse_focal":  # sparse labels made one-hot in the loss; a slice of the output
        def sparse_focal(t, p):
            y = o.one_hot(o.cast(o.squeeze(t, axis=-1), "int32"), 3)
            q = o.clip(p, 1e-7, 1.0 - 1e-7)
            return -o.sum(y * o.square(1.0 - q) * o.log(q), axis=-1) + 0.1 * p[..., 0]
        return sparse_focal
    if name == "rmse":  # the batch's, through a tail of scalar math
        return lambda t, p: o.sqrt(o.mean(o.square(p - t))) * 2.0 + 0.5
    if name == "one_minus_r2":  # two batch sums combined, one of a batch mean and a tensor
        return lambda t, p: o.sum(o.square(t - p)) / (o.sum(o.square(t - o.mean(t))) + 1e-7)
    if name == "centered":  # per-sample values of tensors less their batch means
        return lambda t, p: o.mean(o.square((p - o.mean(p)) - (t - o.mean(t))), axis=-1)
    return lambda t, p: o.sum(o.square(t - p)) * 0.1


@pytest.mark.parametrize("name", ["pinball", "weighted_bce", "batch_mean", "batch_sum",
                                  "huber_where", "sparse_focal", "rmse", "one_minus_r2",
                                  "centered"])
def test_evaluate_loss_functions_written_in_python(name):
    # The same function written with keras.ops and with densitron.ops: Keras runs it, densitron
    # traces it into its engine; plain and weighted, by batches of 16 (the last smaller); with
    # a metric function beside it.
    activation = {"weighted_bce": "sigmoid", "sparse_focal": "softmax"}.get(name)
    kmodel = _classifier(KERAS, 3, activation)
    dmodel = _classifier(DENS, 3, activation)
    _check_weights_move(kmodel, dmodel)
    x = _x(70, 6, seed=45)
    y = (_labels("binary_crossentropy", 70, 3, seed=46) if name == "weighted_bce"
         else _labels("sparse_categorical_crossentropy", 70, 3, seed=46)[:, None]
         .astype(np.float32) if name == "sparse_focal" else _x(70, 3, seed=46))
    w = np.random.default_rng(47).random(70).astype(np.float32)
    def rel_error(o):  # a metric function, plain and weighted
        def rel_error(t, p):
            return o.mean(o.abs(t - p) / (o.abs(t) + 1.0), axis=-1)
        return rel_error

    def mean_pred(o):  # a metric of one value a batch, averaged over the batches
        def mean_pred(t, p):
            return o.sqrt(o.abs(o.mean(p)) + 1.0)
        return mean_pred

    def r2(o):  # the classic R² metric function: batch sums and a batch mean combined
        def r2(t, p):
            ss_res = o.sum(o.square(t - p))
            return 1 - ss_res / (o.sum(o.square(t - o.mean(t))) + 1e-7)
        return r2

    def argmax_hits(o):  # a custom accuracy: argmax of targets and predictions compared
        def argmax_hits(t, p):
            return o.cast(o.equal(o.argmax(t, axis=-1), o.argmin(-p, axis=-1)), "float32")
        return argmax_hits

    for model, o in ((kmodel, keras.ops), (dmodel, densitron.ops)):
        metrics = (["accuracy"] if name == "sparse_focal" else
                   ["mae", rel_error(o), mean_pred(o), r2(o), argmax_hits(o)])
        model.compile(optimizer="sgd", loss=_custom_loss(name, o), metrics=metrics,
                      weighted_metrics=[] if name == "sparse_focal" else [rel_error(o)])
    _evaluate_alike(kmodel, dmodel, x, y, 16)
    _evaluate_alike(kmodel, dmodel, x, y, 16, w)


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_evaluate_top_k_accuracies(loss):
    # By string and as objects with k (weighted too), against Keras: 5 classes, so k = 2 and 3
    # differ from plain accuracy and from each other.
    kmodel = _classifier(KERAS, 5, "softmax")
    dmodel = _classifier(DENS, 5, "softmax")
    _check_weights_move(kmodel, dmodel)
    x = _x(61, 6, seed=46)
    y = _labels(loss, 61, 5, seed=47)
    w = np.random.default_rng(48).random(61).astype(np.float32)
    sparse = loss.startswith("sparse")
    for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
        m = keras.metrics if ns is KERAS else densitron.metrics
        cls = m.SparseTopKCategoricalAccuracy if sparse else m.TopKCategoricalAccuracy
        name = ("sparse_" if sparse else "") + "top_k_categorical_accuracy"
        model.compile(optimizer="sgd", loss=loss,
                      metrics=["accuracy", name, cls(k=2, name="top2")],
                      weighted_metrics=[cls(k=3, name="top3")])
    _, dlogs = _evaluate_alike(kmodel, dmodel, x, y, 16, w)
    assert len({round(dlogs[k], 6) for k in ("accuracy", "top2", "top3")}) == 3
    clone = densitron.models.Model.from_config(dmodel.get_config())
    assert clone is not None
    assert densitron.metrics.get(densitron.metrics.serialize(
        dmodel._compile_metrics[2])).get_config() == dmodel._compile_metrics[2].get_config()


AUC_CASES = [{}, {"curve": "PR"}, {"num_thresholds": 7}, {"summation_method": "minoring"},
             {"curve": "PR", "summation_method": "majoring"}, {"curve": "PRGAIN"},
             {"multi_label": True}, {"multi_label": True, "label_weights": [1.0, 2.0, 0.5]},
             {"label_weights": [0.2, 1.0, 3.0], "curve": "PR"},
             {"multi_label": True, "num_labels": 3, "summation_method": "minoring"},
             {"thresholds": [0.1, 0.3, 0.5, 0.55, 0.8]},
             {"thresholds": [0.2, 0.4, 0.6], "curve": "PR"},
             {"thresholds": [0.05, 0.5, 0.9], "multi_label": True},
             {"thresholds": [0.25, 0.5, 0.75], "curve": "PRGAIN",
              "summation_method": "majoring"}]


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("kwargs", AUC_CASES, ids=str)
def test_evaluate_auc(kwargs, from_logits, tmp_path):
    # Keras's AUC from the same counts: plain and weighted, on probabilities and on logits,
    # every curve and summation; by string; after .keras files move both ways.
    kmodel = _classifier(KERAS, 3, None if from_logits else "sigmoid")
    dmodel = _classifier(DENS, 3, None if from_logits else "sigmoid")
    _check_weights_move(kmodel, dmodel)
    x = _x(150, 6, seed=52)
    y = _labels("binary_crossentropy", 150, 3, seed=53)
    w = np.random.default_rng(54).random(150).astype(np.float32)
    for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
        m = keras if ns is KERAS else densitron
        model.compile(optimizer="sgd",
                      loss=m.losses.BinaryCrossentropy(from_logits=from_logits),
                      metrics=[m.metrics.AUC(name="a", from_logits=from_logits, **kwargs)]
                      + ([] if from_logits or kwargs else ["AUC"]),
                      weighted_metrics=[m.metrics.AUC(name="b", from_logits=from_logits,
                                                      **kwargs)])
    klogs, dlogs = _evaluate_alike(kmodel, dmodel, x, y, 32, w)
    assert 0.0 < abs(dlogs["a"]) < 1.0 and dlogs["a"] != dlogs["b"]
    if kwargs:
        return
    with np.errstate(divide="ignore", invalid="ignore"):  # Keras's clone evaluates too
        _assert_keras_files_keep_logs(kmodel, dmodel, x, y, w, 32, klogs, tmp_path)


AT_METRICS = [("SensitivityAtSpecificity", "specificity"),
              ("SpecificityAtSensitivity", "sensitivity"),
              ("PrecisionAtRecall", "recall"), ("RecallAtPrecision", "precision")]


@pytest.mark.parametrize("kwargs", [{}, {"num_thresholds": 1}, {"num_thresholds": 7},
                                    {"class_id": 1}, {"num_thresholds": 2, "class_id": 2}],
                         ids=str)
@pytest.mark.parametrize("cls,arg", AT_METRICS, ids=[c for c, _ in AT_METRICS])
def test_evaluate_sensitivity_specificity(cls, arg, kwargs, tmp_path):
    # Keras's SensitivitySpecificityBase metrics from the same bucket counts, plain and
    # weighted, at a low and a high constrained value; after .keras files move both ways.
    kmodel = _classifier(KERAS, 3, "sigmoid")
    dmodel = _classifier(DENS, 3, "sigmoid")
    _check_weights_move(kmodel, dmodel)
    x = _x(150, 6, seed=61)
    y = _labels("binary_crossentropy", 150, 3, seed=62)
    w = np.random.default_rng(63).random(150).astype(np.float32)
    for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
        make = getattr((keras if ns is KERAS else densitron).metrics, cls)
        model.compile(optimizer="sgd", loss="binary_crossentropy",
                      metrics=[make(**{arg: 0.3}, name="lo", **kwargs),
                               make(**{arg: 0.9}, name="hi", **kwargs)],
                      weighted_metrics=[make(**{arg: 0.6}, name="w", **kwargs)])
    klogs, _ = _evaluate_alike(kmodel, dmodel, x, y, 32, w)
    if kwargs.get("num_thresholds", 200) > 2:
        assert len({round(klogs[k], 6) for k in ("lo", "hi", "w")}) > 1  # the cases differ
    if not kwargs:
        with np.errstate(divide="ignore", invalid="ignore"):
            _assert_keras_files_keep_logs(kmodel, dmodel, x, y, w, 32, klogs, tmp_path)


@pytest.mark.parametrize("cls,arg", AT_METRICS, ids=[c for c, _ in AT_METRICS])
def test_sensitivity_specificity_standalone(cls, arg):
    # update_state/result against Keras's on predictions at the bucket edges (0, 1, k/(n - 1)
    # and their float32 neighbours) and beyond [0, 1], with and without weights.
    rng = np.random.default_rng(64)
    edges = np.arange(8, dtype=np.float32) / np.float32(7)
    p = np.concatenate([edges, np.nextafter(edges, np.float32(2)),
                        np.nextafter(edges, np.float32(-1)), [-0.5, 1.5],
                        rng.random(60, dtype=np.float32)]).astype(np.float32)
    y = (rng.random(p.size) < 0.5).astype(np.float32)
    w = rng.random(p.size).astype(np.float32)
    # (0 and 1 with integer counts only: with fractional weights Keras's float32 sums can put
    # a ratio that is exactly 1 at 1 - 2^-24, so that 1 is not met there)
    for value, weights in ((0.0, [None]), (0.25, [None, w]), (0.5, [None, w]),
                           (0.8, [None, w]), (1.0, [None])):
        for sw in weights:
            km = getattr(keras.metrics, cls)(**{arg: value}, num_thresholds=8)
            dm = getattr(densitron.metrics, cls)(**{arg: value}, num_thresholds=8)
            with np.errstate(divide="ignore", invalid="ignore"):  # Keras's divide_no_nan
                km.update_state(y, p, sample_weight=sw)
                expected = float(km.result())
            dm.update_state(y[:30], p[:30], sample_weight=None if sw is None else sw[:30])
            dm.update_state(y[30:], p[30:], sample_weight=None if sw is None else sw[30:])
            np.testing.assert_allclose(dm.result(), expected, rtol=1e-6,
                                       err_msg=f"{value} {sw is None}")


@pytest.mark.parametrize("kwargs", [{}, {"class_aggregation": "variance_weighted_average"},
                                    {"num_regressors": 5}], ids=str)
def test_evaluate_r2_score(kwargs, tmp_path):
    # Keras's R2Score from per-column sums, plain and weighted, by object and by string.
    kmodel = _classifier(KERAS, 3, None)
    dmodel = _classifier(DENS, 3, None)
    _check_weights_move(kmodel, dmodel)
    x = _x(90, 6, seed=58)
    y = (x[:, :3] * [1.0, 2.0, 3.0] + _x(90, 3, seed=59)).astype(np.float32)
    w = np.random.default_rng(60).random(90).astype(np.float32)
    for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
        m = keras.metrics if ns is KERAS else densitron.metrics
        model.compile(optimizer="sgd", loss="mse",
                      metrics=[m.R2Score(name="r2", **kwargs)] + ([] if kwargs else ["r2_score"]),
                      weighted_metrics=[m.R2Score(name="w", **kwargs)])
    klogs, dlogs = _evaluate_alike(kmodel, dmodel, x, y, 16, w)
    assert dlogs["r2"] != dlogs["w"]
    if not kwargs:
        _assert_keras_files_keep_logs(kmodel, dmodel, x, y, w, 16, klogs, tmp_path)


@pytest.mark.parametrize("cls", ["PearsonCorrelation", "ConcordanceCorrelation"])
def test_evaluate_correlations(cls, tmp_path):
    # Keras's correlation metrics along the last axis (MeanMetricWrapper of a function of
    # ops, traced into the engine here), plain and weighted, by object and by string.
    kmodel = _classifier(KERAS, 4, None)
    dmodel = _classifier(DENS, 4, None)
    _check_weights_move(kmodel, dmodel)
    x = _x(90, 6, seed=65)
    y = (x[:, :4] * [1.0, -2.0, 3.0, 0.5] + _x(90, 4, seed=66)).astype(np.float32)
    w = np.random.default_rng(67).random(90).astype(np.float32)
    snake = {"PearsonCorrelation": "pearson_correlation",
             "ConcordanceCorrelation": "concordance_correlation"}[cls]
    for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
        m = keras.metrics if ns is KERAS else densitron.metrics
        model.compile(optimizer="sgd", loss="mse", metrics=[getattr(m, cls)(name="c"), snake],
                      weighted_metrics=[getattr(m, cls)(name="w")])
    klogs, dlogs = _evaluate_alike(kmodel, dmodel, x, y, 16, w)
    assert dlogs["c"] != dlogs["w"] and dlogs["c"] == dlogs[snake]
    _assert_keras_files_keep_logs(kmodel, dmodel, x, y, w, 16, klogs, tmp_path)


def test_evaluate_accuracy_object(tmp_path):
    # keras.metrics.Accuracy: exact equality of prediction and target (not the 'accuracy'
    # string), from a model whose outputs are its inputs exactly.
    def build(ns):
        inputs = ns.Input(shape=(3,), name="x")
        return ns.Model(inputs, ns.layers.Dense(3, name="out")(inputs), name="id")

    kmodel, dmodel = build(KERAS), build(DENS)
    for model in (kmodel, dmodel):
        model.set_weights([np.eye(3, dtype=np.float32), np.zeros(3, np.float32)])
    rng = np.random.default_rng(68)
    x = rng.integers(0, 3, size=(60, 3)).astype(np.float32)
    y = np.where(rng.random((60, 3)) < 0.6, x, x + 1).astype(np.float32)
    w = rng.random(60).astype(np.float32)
    for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
        m = keras.metrics if ns is KERAS else densitron.metrics
        model.compile(optimizer="sgd", loss="mse", metrics=[m.Accuracy(name="a")],
                      weighted_metrics=[m.Accuracy(name="w")])
    klogs, dlogs = _evaluate_alike(kmodel, dmodel, x, y, 16, w)
    assert 0.4 < dlogs["a"] < 0.8 and dlogs["a"] != dlogs["w"]
    _assert_keras_files_keep_logs(kmodel, dmodel, x, y, w, 16, klogs, tmp_path)


IOU_CASES = [
    ("MeanIoU", {"num_classes": 4, "sparse_y_pred": False}, "sparse_categorical_crossentropy"),
    ("IoU", {"num_classes": 4, "target_class_ids": [1, 3], "sparse_y_pred": False,
             "ignore_class": 2}, "sparse_categorical_crossentropy"),
    ("OneHotMeanIoU", {"num_classes": 4}, "categorical_crossentropy"),
    ("OneHotIoU", {"num_classes": 4, "target_class_ids": [0, 2]}, "categorical_crossentropy"),
    ("BinaryIoU", {"target_class_ids": [0, 1], "threshold": 0.4}, "binary_crossentropy"),
    ("BinaryIoU", {"target_class_ids": [1]}, "binary_crossentropy"),
]


@pytest.mark.parametrize("cls,kwargs,loss", IOU_CASES, ids=[c for c, _, _ in IOU_CASES])
def test_evaluate_iou_metrics(cls, kwargs, loss, tmp_path):
    # Keras's IoU metrics from the engine's per-class confusion sums, plain and weighted
    # (whole-number weights: Keras's default integer dtype truncates others); files both ways.
    # (BinaryIoU on one column: Keras cannot broadcast a weight a row to several)
    out = 1 if cls == "BinaryIoU" else 4
    kmodel = _classifier(KERAS, out, "sigmoid" if cls == "BinaryIoU" else "softmax")
    dmodel = _classifier(DENS, out, "sigmoid" if cls == "BinaryIoU" else "softmax")
    _check_weights_move(kmodel, dmodel)
    x = _x(120, 6, seed=70)
    y = _labels(loss, 120, out, seed=71)
    w = np.random.default_rng(72).integers(0, 4, 120).astype(np.float32)
    for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
        m = keras.metrics if ns is KERAS else densitron.metrics
        model.compile(optimizer="sgd", loss=loss,
                      metrics=[getattr(m, cls)(name="i", **kwargs)],
                      weighted_metrics=[getattr(m, cls)(name="w", **kwargs)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns of float weights for an int dtype
        klogs, dlogs = _evaluate_alike(kmodel, dmodel, x, y, 16, w)
        assert 0.0 < dlogs["i"] < 1.0 and dlogs["i"] != dlogs["w"]
        _assert_keras_files_keep_logs(kmodel, dmodel, x, y, w, 16, klogs, tmp_path)


def test_iou_metrics_standalone():
    # update_state/result against Keras's: ids truncated toward zero, ids outside the classes
    # and the ignored class left out, several updates, whole-number weights.
    cases = [("MeanIoU", {"num_classes": 3}, [0, 0, 1, 1.7, -0.5, 5, 2], [0, 1, 0, 2.9, 0, 1, 2]),
             ("MeanIoU", {"num_classes": 3, "ignore_class": 1}, [0, 0, 1, 1.7, 2, 2],
              [0, 1, 0, 2.9, 1, 2]),
             ("IoU", {"num_classes": 3, "target_class_ids": [0, 2]}, [[0, 0], [1, 2], [2, 1]],
              [[0, 1], [0, 2], [2, 2]]),
             ("BinaryIoU", {"target_class_ids": [0, 1], "threshold": 0.3}, [0, 1, 0, 1, 2],
              [0.1, 0.2, 0.4, 0.7, 0.9])]
    for cls, kwargs, yt, yp in cases:
        # (weights for one value a row only: Keras cannot broadcast one to several)
        for sw in (None, np.arange(len(yt)) % 3) if np.ndim(yt) == 1 else (None,):
            km, dm = getattr(keras.metrics, cls)(**kwargs), getattr(densitron.metrics, cls)(**kwargs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for part in (slice(0, 2), slice(2, None)):
                    ksw = None if sw is None else sw[part]
                    km.update_state(np.asarray(yt)[part], np.asarray(yp)[part], sample_weight=ksw)
                    dm.update_state(np.asarray(yt)[part], np.asarray(yp)[part], sample_weight=ksw)
            np.testing.assert_allclose(dm.result(), float(km.result()), rtol=1e-6,
                                       err_msg=f"{cls} {kwargs} {sw}")
    # BinaryIoU over every value of several columns (unweighted: Keras cannot broadcast a
    # weight a row to them)
    rng = np.random.default_rng(73)
    yt, yp = rng.integers(0, 2, (10, 3)), rng.random((10, 3))
    km, dm = keras.metrics.BinaryIoU(target_class_ids=[1]), densitron.metrics.BinaryIoU([1])
    np.testing.assert_allclose(dm(yt, yp), float(km(yt, yp)), rtol=1e-6)


def test_correlations_accuracy_mean_and_sum_standalone():
    # update_state/result against Keras's objects: over several updates, weighted, along
    # another axis (standalone only), and Mean/Sum of values of several ranks.
    rng = np.random.default_rng(69)
    yt = rng.normal(size=(20, 5)).astype(np.float32)
    yp = (yt + rng.normal(size=(20, 5))).astype(np.float32)
    w = rng.random(20).astype(np.float32)
    for cls, kwargs in (("PearsonCorrelation", {}), ("ConcordanceCorrelation", {}),
                        ("PearsonCorrelation", {"axis": 0}),
                        ("ConcordanceCorrelation", {"axis": 0})):
        km, dm = getattr(keras.metrics, cls)(**kwargs), getattr(densitron.metrics, cls)(**kwargs)
        for sl, sw in ((slice(0, 12), None), (slice(12, 20), None if kwargs else w[12:20])):
            km.update_state(yt[sl], yp[sl], sample_weight=sw)
            dm.update_state(yt[sl], yp[sl], sample_weight=sw)
        np.testing.assert_allclose(dm.result(), float(km.result()), rtol=1e-5, err_msg=cls)
    ti = rng.integers(0, 3, (20, 2)).astype(np.float32)
    pi = rng.integers(0, 3, (20, 2)).astype(np.float32)
    km, dm = keras.metrics.Accuracy(), densitron.metrics.Accuracy()
    np.testing.assert_allclose(dm(ti, pi, w), float(km(ti, pi, w)), rtol=1e-6)
    for cls in ("Mean", "Sum"):
        km, dm = getattr(keras.metrics, cls)(), getattr(densitron.metrics, cls)()
        for values, sw in ((yt, None), (yt, w), (yt[:, :1], w), (yt.reshape(20, 5, 1), w[:, None]),
                           (3.5, None), (yt[0], 2.0)):
            km.update_state(values, sample_weight=sw)
            dm.update_state(values, sample_weight=sw)
            np.testing.assert_allclose(dm.result(), float(km.result()), rtol=1e-5, err_msg=cls)
        dm.reset_state()
        assert dm.result() == 0.0


@pytest.mark.parametrize("cls,kwargs", [
    ("F1Score", {}), ("F1Score", {"average": "micro"}), ("F1Score", {"average": "macro"}),
    ("F1Score", {"average": "weighted", "threshold": 0.3}),
    ("FBetaScore", {"beta": 2.0, "average": "macro"})], ids=str)
def test_evaluate_f_scores(cls, kwargs, tmp_path):
    # Keras's F-scores from per-class counts, plain and weighted; per class (an array) when
    # not averaged.
    kmodel = _classifier(KERAS, 4, "softmax")
    dmodel = _classifier(DENS, 4, "softmax")
    _check_weights_move(kmodel, dmodel)
    x = _x(90, 6, seed=61)
    y = _labels("categorical_crossentropy", 90, 4, seed=62)
    w = np.random.default_rng(63).random(90).astype(np.float32)
    for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
        m = keras.metrics if ns is KERAS else densitron.metrics
        model.compile(optimizer="sgd", loss="categorical_crossentropy",
                      metrics=[getattr(m, cls)(name="f", **kwargs)],
                      weighted_metrics=[getattr(m, cls)(name="w", **kwargs)])
    klogs, dlogs = _evaluate_alike(kmodel, dmodel, x, y, 16, w)
    assert np.shape(dlogs["f"]) == (() if kwargs else (4,))
    if not kwargs:
        _assert_keras_files_keep_logs(kmodel, dmodel, x, y, w, 16, klogs, tmp_path)


@pytest.mark.parametrize("cls", ["Precision", "Recall"])
@pytest.mark.parametrize("kwargs", [{"class_id": 2}, {"top_k": 2}, {"top_k": 1, "class_id": 3},
                                    {"thresholds": [0.3, 0.5, 0.7]},
                                    {"thresholds": [0.4], "class_id": 0},
                                    {"top_k": 2, "thresholds": 0.45}], ids=str)
def test_evaluate_precision_and_recall_with_top_k_class_id_and_thresholds(cls, kwargs):
    kmodel = _classifier(KERAS, 4, "sigmoid")
    dmodel = _classifier(DENS, 4, "sigmoid")
    _check_weights_move(kmodel, dmodel)
    x = _x(90, 6, seed=65)
    y = _labels("binary_crossentropy", 90, 4, seed=66)
    w = np.random.default_rng(67).random(90).astype(np.float32)
    for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
        m = keras.metrics if ns is KERAS else densitron.metrics
        model.compile(optimizer="sgd", loss="binary_crossentropy",
                      metrics=[getattr(m, cls)(name="m", **kwargs)],
                      weighted_metrics=[getattr(m, cls)(name="w", **kwargs)])
    _, dlogs = _evaluate_alike(kmodel, dmodel, x, y, 16, w)
    several = len(kwargs.get("thresholds", [0])) > 1 if isinstance(
        kwargs.get("thresholds"), list) else False
    assert np.shape(dlogs["m"]) == ((3,) if several else ())


SMOOTHING_CASES = [
    # loss class, output units, output activation, from_logits
    ("CategoricalCrossentropy", 4, "softmax", False),
    ("CategoricalCrossentropy", 4, None, True),
    ("BinaryCrossentropy", 3, "sigmoid", False),
    ("BinaryCrossentropy", 3, None, True),
]


@pytest.mark.parametrize("cls,units,activation,from_logits", SMOOTHING_CASES,
                         ids=[f"{c[0]}-logits{c[3]}" for c in SMOOTHING_CASES])
def test_evaluate_label_smoothing(cls, units, activation, from_logits):
    # The loss sees smoothed targets, the accuracy the targets as given (binary accuracy would
    # count no hit on 0.05 / 0.95).
    kmodel = _classifier(KERAS, units, activation)
    dmodel = _classifier(DENS, units, activation)
    _check_weights_move(kmodel, dmodel)
    x = _x(50, 6, seed=28)
    loss = "binary_crossentropy" if cls == "BinaryCrossentropy" else "categorical_crossentropy"
    y = _labels(loss, 50, units, seed=29)
    for model, losses in ((kmodel, keras.losses), (dmodel, densitron.losses)):
        model.compile(optimizer="rmsprop", metrics=["accuracy"],
                      loss=getattr(losses, cls)(from_logits=from_logits, label_smoothing=0.1))
    klogs = kmodel.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    dlogs = dmodel.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    np.testing.assert_allclose(dlogs["loss"], klogs["loss"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dlogs["accuracy"], klogs["accuracy"], rtol=1e-6, atol=1e-7)
    assert dlogs["accuracy"] > 0.0


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "binary_crossentropy"])
# Keras's numpy sigmoid computes 1 / (1 + exp(-x)), which overflows (to the right limit, 0)
# for x < -88 and warns; densitron computes in C++ and never goes through NumPy here.
@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
def test_evaluate_saturated_probabilities_are_clipped(loss):
    # Very confident wrong predictions: Keras clips p to [1e-7, 1 - 1e-7], so each term is at
    # most -log(1e-7) = 16.118. Large kernel values saturate the softmax / sigmoid.
    units, activation = (4, "softmax") if loss == "categorical_crossentropy" else (2, "sigmoid")
    kmodel = _classifier(KERAS, units, activation)
    dmodel = _classifier(DENS, units, activation)
    weights = [w * 40 for w in _check_weights_move(kmodel, dmodel)]
    kmodel.set_weights(weights)
    dmodel.set_weights(weights)
    x = _x(40, 6, seed=22)
    y = _labels(loss, 40, units, seed=23)
    for model in (kmodel, dmodel):
        model.compile(optimizer="rmsprop", loss=loss)
    kloss = kmodel.evaluate(x, y, batch_size=16, verbose=0)
    dloss = dmodel.evaluate(x, y, batch_size=16, verbose=0)
    np.testing.assert_allclose(dloss, kloss, rtol=1e-5)


def test_evaluate_multi_output():
    kmodel = _shared_two_tower(KERAS)
    dmodel = _shared_two_tower(DENS)
    _check_weights_move(kmodel, dmodel)
    xs = [_x(30, 6, seed=24), _x(30, 6, seed=25)]
    ys = [_labels("categorical_crossentropy", 30, 3, seed=26), _x(30, 1, seed=27)]
    for model in (kmodel, dmodel):
        model.compile(optimizer="rmsprop", loss=["categorical_crossentropy", "mse"],
                      loss_weights=[1.0, 0.5])
    klogs = kmodel.evaluate(xs, ys, batch_size=8, verbose=0, return_dict=True)
    dlogs = dmodel.evaluate(xs, ys, batch_size=8, verbose=0, return_dict=True)
    assert sorted(dlogs) == sorted(klogs)
    for key in klogs:
        np.testing.assert_allclose(dlogs[key], klogs[key], rtol=1e-5, atol=1e-6, err_msg=key)


SCHEDULES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.8)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.8,
                              staircase=True)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.05, decay_steps=3, decay_rate=0.5)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.05, decay_steps=3, decay_rate=0.5,
                              staircase=True)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=40, power=2.0)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=40, end_learning_rate=0.01,
                             power=0.5, cycle=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[5, 20, 60], values=[1.0, 0.5, 0.1, 0.01])),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=50, alpha=0.1)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=50, warmup_target=0.2,
                         warmup_steps=10)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=10)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=10, t_mul=1.0,
                                 m_mul=0.5, alpha=0.05)),
]


@pytest.mark.parametrize("name,kwargs", SCHEDULES, ids=[f"{n}-{i}" for i, (n, _) in
                                                        enumerate(SCHEDULES)])
def test_learning_rate_schedules_match_keras(name, kwargs):
    ours = getattr(densitron.optimizers.schedules, name)(**kwargs)
    theirs = getattr(keras.optimizers.schedules, name)(**kwargs)
    for step in [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 19, 20, 21, 29, 30, 39, 40, 41, 59, 60, 61, 75,
                 100, 150, 1000]:
        np.testing.assert_allclose(ours(step), float(theirs(step)), rtol=2e-6, atol=1e-9,
                                   err_msg=f"step {step}")


def _nested_with_bn(ns):
    inner_in = ns.Input(shape=(6,), name="t_in")
    inner = ns.Model(inner_in, ns.layers.Dense(5, activation="tanh", name="t_d")(inner_in),
                     name="tower")
    inputs = ns.Input(shape=(6,), name="x")
    h = ns.layers.BatchNormalization(name="bn")(inner(inputs))
    h = ns.layers.Dropout(0.3, name="drop")(h)
    h = ns.layers.Dense(4, activation="relu", name="d1")(h)
    return ns.Model(inputs, ns.layers.Dense(3, activation="softmax", name="d2")(h), name="m")


def _repeated_classes(ns):  # the file numbers layers by class: dense, dense_1, ...
    reg = keras.regularizers if ns is KERAS else densitron.regularizers
    inputs = ns.Input(shape=(6,), name="x")
    h = ns.layers.Dense(7, activation="relu", name="first",
                        activity_regularizer=reg.L1(0.01))(inputs)
    h = ns.layers.LayerNormalization(name="ln", activity_regularizer=reg.L2(0.02))(h)
    h = ns.layers.Dense(5, activation="relu", name="second")(h)
    h = ns.layers.Activation("tanh", name="act", activity_regularizer="l1")(h)
    return ns.Model(inputs, ns.layers.Dense(2, name="third")(h), name="m")


@pytest.mark.parametrize("build", [_seed_functional, _seed_sequential, _nested,
                                   _nested_with_bn, _repeated_classes, _sequential_of_models])
def test_weights_h5_files_move_between_keras_and_densitron(build, tmp_path):
    pytest.importorskip("h5py")
    x = _mnist_like(20) if build in (_seed_functional, _seed_sequential) else _x(20, 6)
    # Keras writes, densitron reads
    kmodel, dmodel = build(KERAS), build(DENS)
    kmodel.set_weights(_random_weights(kmodel, seed=5))
    kmodel.save_weights(tmp_path / "k.weights.h5")
    dmodel.load_weights(tmp_path / "k.weights.h5")
    _assert_close(*_predict_both(kmodel, dmodel, x))
    # densitron writes, Keras reads
    kmodel2, dmodel2 = build(KERAS), build(DENS)
    dmodel2.set_weights(_random_weights(kmodel2, seed=6))
    dmodel2.save_weights(tmp_path / "d.weights.h5")
    kmodel2.load_weights(tmp_path / "d.weights.h5")
    _assert_close(*_predict_both(kmodel2, dmodel2, x))


def test_activity_regularizers_of_any_layer_move_with_keras_files(tmp_path):
    pytest.importorskip("h5py")
    _repeated_classes(DENS).save(tmp_path / "d.keras")
    kclone = keras.models.load_model(tmp_path / "d.keras")
    assert kclone.get_layer("act").activity_regularizer.l1 == pytest.approx(0.01)
    assert kclone.get_layer("ln").activity_regularizer.l2 == pytest.approx(0.02)
    _repeated_classes(KERAS).save(tmp_path / "k.keras")
    dclone = densitron.models.load_model(tmp_path / "k.keras")
    assert dclone.get_layer("act").activity_regularizer.l1 == pytest.approx(0.01)
    assert dclone.get_layer("ln").activity_regularizer.l2 == pytest.approx(0.02)
    assert dclone.get_layer("second").activity_regularizer is None


def test_weights_h5_of_another_architecture_is_refused(tmp_path):
    pytest.importorskip("h5py")
    kmodel = _seed_functional(KERAS)
    kmodel.save_weights(tmp_path / "k.weights.h5")
    dmodel = _repeated_classes(DENS)
    before = dmodel.get_weights()
    with pytest.raises(ValueError, match="Received: filepath="):
        dmodel.load_weights(tmp_path / "k.weights.h5")
    for a, b in zip(dmodel.get_weights(), before):  # nothing half-loaded
        np.testing.assert_array_equal(a, b)


def _dict_io(ns):
    a = ns.Input(shape=(6,), name="a")
    b = ns.Input(shape=(3,), name="b")
    h = ns.layers.Concatenate(name="cat")([ns.layers.Dense(4, name="da")(a), b])
    return ns.Model({"a": a, "b": b}, {"cls": ns.layers.Dense(3, activation="softmax",
                                                              name="cls")(h),
                                       "val": ns.layers.Dense(1, name="val")(h)}, name="m")


def _nested_two_outputs(ns):
    # A nested model with two outputs, both read by the outer model (one through a merge).
    e_in = ns.Input(shape=(6,), name="e_in")
    enc = ns.Model(e_in, [ns.layers.Dense(5, activation="tanh", name="e_a")(e_in),
                          ns.layers.Dense(3, name="e_b")(e_in)], name="enc")
    x = ns.Input(shape=(6,), name="x")
    p, q = enc(x)
    o = ns.layers.Dense(2, activation="softmax", name="head")(p)
    c = ns.layers.Concatenate(name="cat")([q, o])
    return ns.Model(x, [o, ns.layers.Dense(1, name="score")(c)], name="outer")


def test_nested_model_with_two_outputs():
    kmodel, dmodel = check_parity(_nested_two_outputs, _x(9, 6, seed=35))
    assert dmodel._output_names == list(kmodel.output_names)
    x = _x(30, 6, seed=36)
    ys = [_labels("categorical_crossentropy", 30, 2, seed=37), _x(30, 1, seed=38)]
    for model in (kmodel, dmodel):
        model.compile(optimizer="rmsprop", loss=["categorical_crossentropy", "mse"],
                      loss_weights=[1.0, 0.5])
    klogs = kmodel.evaluate(x, ys, verbose=0, return_dict=True)
    dlogs = dmodel.evaluate(x, ys, verbose=0, return_dict=True)
    assert sorted(klogs) == sorted(dlogs)
    for key in klogs:
        np.testing.assert_allclose(dlogs[key], klogs[key], rtol=1e-5, err_msg=key)
    clone = densitron.models.Model.from_config(dmodel.get_config())
    clone.set_weights(dmodel.get_weights())
    _assert_close(_predictions(dmodel, x), _predictions(clone, x))


KERAS_FILE_CASES = [
    (_seed_functional, lambda: _mnist_like(12)),
    (_seed_sequential, lambda: _mnist_like(12)),
    (_nested, lambda: _x(12, 6)),
    (_nested_with_bn, lambda: _x(12, 6)),
    (_repeated_classes, lambda: _x(12, 6)),
    (_shared_two_tower, lambda: [_x(12, 6, seed=8), _x(12, 6, seed=9)]),
    (_dict_io, lambda: {"a": _x(12, 6, seed=3), "b": _x(12, 3, seed=4)}),
    (_nested_two_outputs, lambda: _x(12, 6, seed=5)),
    (_sequential_of_models, lambda: _x(12, 6, seed=6)),
    (_text_classifier, lambda: _ids(12)),
    (_masked_text_classifier, lambda: _padded_ids(12)),
    (_pooled_sequence, lambda: _x(12, 7, 6, seed=7)),
    (_mixer, lambda: _x(12, 6, 4, seed=8)),
    (_image_maps, lambda: _x(12, 5, 4, 3, seed=9)),
    (lambda ns: _tabular(ns), lambda: _x(12, 4, seed=10)),
    (lambda ns: _channels_first_bn(ns), lambda: _x(12, 3, 4, 2, seed=11)),
]


def _predictions(model, x):
    out = model.predict(x, verbose=0)
    if isinstance(out, dict):
        return [out[k] for k in sorted(out)]
    return out if isinstance(out, list) else [out]


@pytest.mark.parametrize("build,make_x", KERAS_FILE_CASES,
                         ids=[c[0].__name__.strip("_") for c in KERAS_FILE_CASES])
def test_keras_files_move_between_keras_and_densitron(build, make_x, tmp_path):
    # model.save writes Keras's .keras layout: Keras's load_model rebuilds the same model with
    # the same weights, and densitron's load_model reads a file Keras wrote.
    pytest.importorskip("h5py")
    x = make_x()
    dmodel = build(DENS)
    kmodel = build(KERAS)
    dmodel.set_weights(_random_weights(kmodel, seed=7))
    dmodel.save(tmp_path / "d.keras")
    kclone = keras.models.load_model(tmp_path / "d.keras")
    assert _layer_signature(kclone) == _layer_signature(kmodel) or build is _seed_sequential
    _assert_close(_predictions(kclone, x), _predictions(dmodel, x))

    kmodel.set_weights(_random_weights(kmodel, seed=8))
    kmodel.save(tmp_path / "k.keras")
    dclone = densitron.models.load_model(tmp_path / "k.keras")
    _assert_close(_predictions(kmodel, x), _predictions(dclone, x))


def test_keras_files_keep_the_compile_arguments(tmp_path):
    pytest.importorskip("h5py")
    x = _x(30, 6, seed=5)
    y = _labels("categorical_crossentropy", 30, 4, seed=6)
    dmodel = _classifier(DENS, 4, "softmax")
    dmodel.compile(optimizer=densitron.optimizers.Adam(
        densitron.optimizers.schedules.ExponentialDecay(0.01, 10, 0.5), clipnorm=1.0),
        loss=densitron.losses.CategoricalCrossentropy(label_smoothing=0.1),
        metrics=["accuracy"], weighted_metrics=["mse"])
    dmodel.save(tmp_path / "d.keras")
    kclone = keras.models.load_model(tmp_path / "d.keras")
    assert type(kclone.optimizer).__name__ == "Adam" and kclone.optimizer.clipnorm == 1.0
    klogs = kclone.evaluate(x, y, verbose=0, return_dict=True)
    dlogs = dmodel.evaluate(x, y, verbose=0, return_dict=True)
    assert sorted(klogs) == sorted(dlogs)
    for key in klogs:
        np.testing.assert_allclose(dlogs[key], klogs[key], rtol=1e-5, atol=1e-6, err_msg=key)

    kmodel = _classifier(KERAS, 4, "softmax")
    kmodel.compile(optimizer=keras.optimizers.RMSprop(0.01, momentum=0.5),
                   loss=keras.losses.CategoricalCrossentropy(from_logits=False),
                   metrics=["accuracy"])
    kmodel.save(tmp_path / "k.keras")
    dclone = densitron.models.load_model(tmp_path / "k.keras")
    assert dclone.optimizer.get_config()["momentum"] == 0.5
    klogs = kmodel.evaluate(x, y, verbose=0, return_dict=True)
    dlogs = dclone.evaluate(x, y, verbose=0, return_dict=True)
    for key in klogs:
        np.testing.assert_allclose(dlogs[key], klogs[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_keras_files_with_loss_functions_and_foreign_optimizers(tmp_path):
    pytest.importorskip("h5py")
    kmodel = _classifier(KERAS, 4, "softmax")
    kmodel.compile(optimizer="sgd", loss=keras.losses.categorical_crossentropy)
    kmodel.save(tmp_path / "f.keras")
    dclone = densitron.models.load_model(tmp_path / "f.keras")
    x, y = _x(20, 6, seed=9), _labels("categorical_crossentropy", 20, 4, seed=10)
    np.testing.assert_allclose(dclone.evaluate(x, y, verbose=0),
                               kmodel.evaluate(x, y, verbose=0), rtol=1e-5)
    kmodel.compile(optimizer=keras.optimizers.Adafactor(clip_threshold=0.5), loss="mse")
    kmodel.save(tmp_path / "n.keras")  # (Keras's newer optimizers load too)
    assert densitron.models.load_model(tmp_path / "n.keras").optimizer.clip_threshold == 0.5
    densitron.models.load_model(tmp_path / "n.keras", compile=False)  # the model itself loads



@pytest.mark.parametrize("opt", [("RMSprop", {"momentum": 0.5, "centered": True}),
                                 ("Adam", {"amsgrad": True}), ("SGD", {"momentum": 0.9}),
                                 ("Adamax", {"beta_1": 0.8}), ("Adagrad", {}), ("Lion", {}),
                                 ("Adadelta", {"rho": 0.9}), ("Nadam", {"beta_1": 0.8}),
                                 ("Ftrl", {"l1_regularization_strength": 0.01}),
                                 ("Lamb", {"beta_1": 0.8}),
                                 ("Adam", {"use_ema": True}),
                                 ("RMSprop", {"momentum": 0.5, "centered": True,
                                              "use_ema": True, "ema_momentum": 0.9,
                                              "ema_overwrite_frequency": 5}),
                                 ("Adam", {"gradient_accumulation_steps": 3}),
                                 ("SGD", {"momentum": 0.9, "use_ema": True,
                                          "gradient_accumulation_steps": 2})])
def test_optimizer_state_moves_between_keras_and_densitron(opt, tmp_path):
    # The slots in Keras's own variable order, both ways. Nadam's last variable, its running
    # product, follows from the step count: densitron writes Keras's float32 chain for it.
    pytest.importorskip("h5py")
    name, kwargs = opt
    kmodel = _nested_with_bn(KERAS)
    kmodel.compile(optimizer=getattr(keras.optimizers, name)(**kwargs), loss="mse")
    kmodel.optimizer.build(kmodel.trainable_variables)
    rng = np.random.default_rng(40)
    state = [rng.random(v.shape).astype(np.float32) if v.dtype == "float32" else 7
             for v in kmodel.optimizer.variables]
    for v, value in zip(kmodel.optimizer.variables, state):
        v.assign(value)
    kmodel.save(tmp_path / "k.keras")
    dmodel = densitron.models.load_model(tmp_path / "k.keras")
    iterations, slots = dmodel._optimizer_slots()
    assert iterations == 7
    head = 2  # Keras's iterations and learning rate come first
    tail = 1 if name == "Nadam" else 0
    assert len(slots) == len(state) - head - tail
    for got, want in zip(slots, state[head:len(state) - tail]):
        np.testing.assert_array_equal(got, want)

    dmodel.save(tmp_path / "d.keras")
    kclone = keras.models.load_model(tmp_path / "d.keras")
    variables = [np.asarray(v) for v in kclone.optimizer.variables]
    assert len(variables) == len(state)
    for got, want in zip(variables[head:len(state) - tail], state[head:len(state) - tail]):
        np.testing.assert_array_equal(got, want)
    if tail:
        product = np.float32(1.0)
        for t in range(1, 8):  # as Keras assigns it, in float32
            product = product * np.float32(0.8) * (
                np.float32(1) - np.float32(0.5) * np.float32(0.96) ** np.float32(t))
        np.testing.assert_allclose(variables[-1], product, rtol=1e-6)
    # (Keras's `iterations` counts updates: the steps over gradient_accumulation_steps)
    steps = kwargs.get("gradient_accumulation_steps") or 1
    assert int(np.asarray(kclone.optimizer.iterations)) == 7 // steps
    assert dmodel.optimizer.iterations == 7 // steps


# --- Normalization and Rescaling --------------------------------------------------------------

NORMALIZATION_CASES = [
    {}, {"axis": None}, {"invert": True}, {"axis": -1, "invert": True},
    {"mean": [1.0, 2.0, 3.0, 4.0, 5.0], "variance": [1.0, 4.0, 9.0, 16.0, 0.0]},
    {"mean": 2.0, "variance": 3.0}, {"mean": 2.0, "variance": 3.0, "invert": True},
]


@pytest.mark.parametrize("kwargs", NORMALIZATION_CASES, ids=str)
def test_normalization_adapts_and_predicts_as_keras(kwargs, tmp_path):
    # adapt on the same array gives Keras's weights bit for bit, and so do the outputs (the
    # same float32 operations); the weights move both ways; .keras files both ways.
    rng = np.random.default_rng(50)
    x = (rng.normal(size=(200, 5)) * [1, 10, 100, 0.1, 3] + [0, 5, -50, 1, 2]).astype(np.float32)
    layers = {}
    models = {}
    for ns in (KERAS, DENS):
        layers[ns] = ns.layers.Normalization(**kwargs)
        if "mean" not in kwargs:
            layers[ns].adapt(x)
        models[ns] = ns.Sequential([ns.Input(shape=(5,)), layers[ns], ns.layers.Dense(3)])
    kmodel, dmodel = models[KERAS], models[DENS]
    assert [w.shape for w in dmodel.get_weights()] == [w.shape for w in kmodel.get_weights()]
    for got, want in zip(dmodel.get_weights()[:2], kmodel.get_weights()[:2]):
        if "mean" not in kwargs:
            np.testing.assert_array_equal(got, want)
    dense = _random_weights(keras.Sequential([keras.Input(shape=(5,)), keras.layers.Dense(3)]))
    for model in (kmodel, dmodel):
        model.layers[-1].set_weights(dense)
    np.testing.assert_array_equal(np.asarray(layers[DENS](x)), np.asarray(layers[KERAS](x)))
    if densitron.cpu_info()["isa"] == "generic":  # the portable GEMM adds without FMA
        np.testing.assert_allclose(dmodel.predict(x, verbose=0), kmodel.predict(x, verbose=0),
                                   rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(dmodel.predict(x, verbose=0),
                                      kmodel.predict(x, verbose=0))
    assert dmodel.layers[0].get_config()["axis"] == tuple(kmodel.layers[0].get_config()["axis"])
    pytest.importorskip("h5py")
    for model in (kmodel, dmodel):
        model.compile(optimizer="sgd", loss="mse")
    dmodel.save(tmp_path / "d.keras")
    kclone = keras.models.load_model(tmp_path / "d.keras")
    kmodel.save(tmp_path / "k.keras")
    dclone = densitron.models.load_model(tmp_path / "k.keras")
    want = kmodel.predict(x, verbose=0)
    np.testing.assert_array_equal(kclone.predict(x, verbose=0), want)
    if densitron.cpu_info()["isa"] == "generic":
        np.testing.assert_allclose(dclone.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(dclone.predict(x, verbose=0), want)


@pytest.mark.parametrize("kwargs", [{"scale": 1 / 255}, {"scale": 2.0, "offset": -1.0},
                                    {"scale": [1.0, 2.0, 0.5, -1.0, 3.0], "offset": 0.25}],
                         ids=str)
def test_rescaling_matches_keras(kwargs, tmp_path):
    x = _x(40, 5, seed=51, scale=100.0)
    kmodel = keras.Sequential([keras.Input(shape=(5,)), keras.layers.Rescaling(**kwargs)])
    dmodel = densitron.Sequential([densitron.Input(shape=(5,)),
                                   densitron.layers.Rescaling(**kwargs)])
    want = kmodel.predict(x, verbose=0)
    np.testing.assert_allclose(dmodel.predict(x, verbose=0), want, rtol=1e-6, atol=1e-6)
    pytest.importorskip("h5py")
    dmodel.save(tmp_path / "d.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "d.keras").predict(
        x, verbose=0), want, rtol=1e-6, atol=1e-6)
    kmodel.save(tmp_path / "k.keras")
    np.testing.assert_allclose(densitron.models.load_model(tmp_path / "k.keras").predict(
        x, verbose=0), want, rtol=1e-6, atol=1e-6)


def test_spatial_and_alpha_dropout_configs_move_with_keras(tmp_path):
    def build(ns):
        inp = ns.Input(shape=(5, 6), name="x")
        h = ns.layers.Dense(8, activation="selu", name="h")(inp)
        h = ns.layers.SpatialDropout1D(0.3, seed=2, name="sd")(h)
        h = ns.layers.AlphaDropout(0.2, seed=3, name="ad")(ns.layers.Flatten(name="f")(h))
        return ns.Model(inp, ns.layers.Dense(2, name="out")(h))

    kmodel, dmodel = check_parity(build, _x(7, 5, 6, seed=68))
    pytest.importorskip("h5py")
    dmodel.save(tmp_path / "d.keras")
    kmodel.save(tmp_path / "k.keras")
    x = _x(9, 5, 6, seed=69)
    want = kmodel.predict(x, verbose=0)
    for clone in (keras.models.load_model(tmp_path / "d.keras"),
                  densitron.models.load_model(tmp_path / "k.keras")):
        np.testing.assert_allclose(clone.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
        assert clone.get_layer("sd").rate == 0.3 and clone.get_layer("ad").rate == 0.2


def test_gaussian_dropout_and_activity_regularization_layers(tmp_path):
    # Inference: both pass values; configs move through .keras files both ways. (Keras's
    # numpy backend cannot evaluate a model with an activity penalty: it sums a list; the
    # penalty is tested against its formula in test_layers_behaviour.)
    def build(ns):
        inp = ns.Input(shape=(6,), name="x")
        h = ns.layers.Dense(8, activation="tanh", name="h")(inp)
        h = ns.layers.ActivityRegularization(l1=0.01, l2=0.05, name="act")(h)
        h = ns.layers.GaussianDropout(0.3, seed=5, name="gd")(h)
        return ns.Model(inp, ns.layers.Dense(2, name="out")(h))

    kmodel, dmodel = check_parity(build, _x(9, 6, seed=55))
    pytest.importorskip("h5py")
    x = _x(40, 6, seed=56)
    want = kmodel.predict(x, verbose=0)
    dmodel.save(tmp_path / "d.keras")
    kmodel.save(tmp_path / "k.keras")
    kclone = keras.models.load_model(tmp_path / "d.keras")
    dclone = densitron.models.load_model(tmp_path / "k.keras")
    for clone in (kclone, dclone):
        np.testing.assert_allclose(clone.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
        assert clone.get_layer("gd").rate == 0.3
        assert (clone.get_layer("act").l1, clone.get_layer("act").l2) == (
            pytest.approx(0.01), pytest.approx(0.05))


def test_json_architectures_move_between_keras_and_densitron():
    # to_json / model_from_json both ways: the same layers, shapes and (with the weights
    # copied) predictions, for a Sequential and a two-output functional model.
    def functional(ns):
        inp = ns.Input(shape=(6,), name="x")
        h = ns.layers.Dense(8, activation="relu", name="h")(inp)
        return ns.Model(inp, [ns.layers.Dense(2, name="a")(h),
                              ns.layers.Dense(1, activation="sigmoid", name="b")(h)])

    def sequential(ns):
        return ns.Sequential([ns.Input(shape=(6,)), ns.layers.Dense(5, activation="tanh"),
                              ns.layers.Dropout(0.2), ns.layers.Dense(3)], name="seq")

    x = _x(12, 6, seed=64)
    for build in (functional, sequential):
        kmodel, dmodel = build(KERAS), build(DENS)
        kmodel.set_weights(_random_weights(kmodel))
        dclone = densitron.models.model_from_json(kmodel.to_json())
        kclone = keras.models.model_from_json(dmodel.to_json())
        assert [layer.name for layer in dclone.layers] == [layer.name for layer in kmodel.layers]
        assert [type(layer).__name__ for layer in kclone.layers] == [
            type(layer).__name__ for layer in dmodel.layers]
        dclone.set_weights(kmodel.get_weights())
        _assert_close(_predictions(kmodel, x), _predictions(dclone, x))
        kclone.set_weights(dclone.get_weights())
        _assert_close(_predictions(kclone, x), _predictions(dclone, x))


@pytest.mark.parametrize("shape,axes,normalize", [((8,), 1, False), ((8,), -1, True),
                                                  ((1, 8), 2, False), ((8, 1), 1, True),
                                                  ((8,), [1, 1], False)], ids=str)
def test_dot_matches_keras(shape, axes, normalize, tmp_path):
    def build(ns):
        u, v = ns.Input(shape=(5,), name="u"), ns.Input(shape=(5,), name="v")
        a = ns.layers.Reshape(shape, name="ra")(ns.layers.Dense(8, name="da")(u))
        b = ns.layers.Reshape(shape, name="rb")(ns.layers.Dense(8, name="db")(v))
        return ns.Model([u, v], ns.layers.Dot(axes=axes, normalize=normalize, name="dot")([a, b]))

    xs = [_x(6, 5, seed=70), _x(6, 5, seed=71)]
    kmodel, dmodel = check_parity(build, xs)
    pytest.importorskip("h5py")
    dmodel.save(tmp_path / "d.keras")
    want = kmodel.predict(xs, verbose=0)
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "d.keras").predict(
        xs, verbose=0), want, rtol=1e-5, atol=1e-6)


def test_unit_normalization_matches_keras(tmp_path):
    def build(ns):
        inp = ns.Input(shape=(3, 6), name="x")
        h = ns.layers.Dense(5, name="h")(inp)
        return ns.Model(inp, ns.layers.UnitNormalization(name="un")(h))

    x = _x(8, 3, 6, seed=72)
    kmodel, dmodel = check_parity(build, x)
    np.testing.assert_allclose(np.linalg.norm(dmodel.predict(x, verbose=0), axis=-1), 1.0,
                               rtol=1e-6)
    # a zero vector stays zero (the inverse of its norm capped at 1e12), as in Keras
    inp = densitron.Input(shape=(4,))
    zeros = np.zeros((2, 4), np.float32)
    with np.errstate(divide="ignore"):  # Keras's numpy rsqrt of 0
        want = np.asarray(keras.layers.UnitNormalization()(zeros))
    np.testing.assert_array_equal(densitron.Model(inp, densitron.layers.UnitNormalization()(
        inp)).predict(zeros, verbose=0), want)
    pytest.importorskip("h5py")
    dmodel.save(tmp_path / "d.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "d.keras").predict(
        x, verbose=0), kmodel.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="Received: axis=1"):
        densitron.layers.UnitNormalization(axis=1)(densitron.Input(shape=(3, 6)))


def test_legacy_h5_model_files_move_between_keras_and_densitron(tmp_path):
    # model.save("m.h5"), Keras's legacy HDF5 format, both ways: predictions, evaluate and the
    # step count. (Keras's own loader leaves an Adam's slots fresh, as for its own files.)
    pytest.importorskip("h5py")

    def build(ns):
        inp = ns.Input(shape=(6,), name="x")
        h = ns.layers.Dense(8, activation="relu", name="h")(inp)
        h = ns.layers.BatchNormalization(name="bn")(h)
        return ns.Model(inp, ns.layers.Dense(3, activation="softmax", name="out")(h))

    kmodel, dmodel = check_parity(build, _x(9, 6, seed=73))
    for model in (kmodel, dmodel):  # (not "categorical_crossentropy"'s short aliases, which
        model.compile(optimizer="adam", loss="categorical_crossentropy",  # Keras's own legacy
                      metrics=["accuracy"])  # loader cannot read back)
    x, y = _x(30, 6, seed=74), _labels("categorical_crossentropy", 30, 3, seed=75)
    dmodel.fit(x, y, epochs=1, batch_size=8, verbose=0)
    kmodel.set_weights(dmodel.get_weights())
    dmodel.save(tmp_path / "d.h5")
    kmodel.save(tmp_path / "k.h5")
    kclone = keras.models.load_model(tmp_path / "d.h5")
    dclone = densitron.models.load_model(tmp_path / "k.h5")
    want = kmodel.predict(x, verbose=0)
    for clone in (kclone, dclone):
        np.testing.assert_allclose(clone.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    assert int(np.asarray(kclone.optimizer.iterations)) == 4
    klogs = kmodel.evaluate(x, y, verbose=0, return_dict=True)
    for clone in (kclone, dclone):
        logs = clone.evaluate(x, y, verbose=0, return_dict=True)
        for key in klogs:
            np.testing.assert_allclose(logs[key], klogs[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_category_encoding_and_discretization():
    # Keras's numpy backend wants integer ids for CategoryEncoding (densitron takes them as
    # numbers), and an id outside [0, num_tokens) is an error there, zeros on Keras's other
    # backends and in densitron: the ids here are in range.
    ids = np.random.default_rng(3).integers(0, 5, size=(10, 3)).astype(np.int32)
    values = np.concatenate([_x(10, 5, seed=4), np.full((10, 1), np.nan, np.float32)], axis=1)

    def build(ns, mode, shape):
        kw = {"dtype": "int32"} if ns is KERAS else {}
        inputs = ns.Input(shape, name="ids", **kw)
        return ns.Model(inputs, ns.layers.CategoryEncoding(5, output_mode=mode, name="enc")(
            inputs), name="m")

    for mode in ("one_hot", "multi_hot", "count"):
        for shape, x in (((3,), ids), ((1,), ids[:, :1])):
            np.testing.assert_array_equal(build(DENS, mode, shape).predict(x, verbose=0),
                                          build(KERAS, mode, shape).predict(x, verbose=0))
    for mode in ("int", "one_hot", "multi_hot", "count"):
        def disc(ns):
            inputs = ns.Input((6,), name="v")
            return ns.Model(inputs, ns.layers.Discretization(
                bin_boundaries=[-0.5, 0.0, 0.7], output_mode=mode, name="disc")(inputs), name="m")

        np.testing.assert_array_equal(disc(DENS).predict(values, verbose=0),
                                      disc(KERAS).predict(values, verbose=0))


def _channels_first_norms(ns):
    """BatchNormalization over axis 1 of (batch, channels, rows, cols) and LayerNormalization
    over a middle axis."""
    inputs = ns.Input((3, 4, 2), name="image")
    h = ns.layers.BatchNormalization(axis=1, name="bn")(inputs)
    h = ns.layers.LayerNormalization(axis=2, name="ln")(h)
    h = ns.layers.BatchNormalization(axis=-2, name="bn2")(h)
    return ns.Model(inputs, ns.layers.Dense(2, name="out")(ns.layers.Flatten(name="flat")(h)),
                    name="norms")


def _channels_first_bn(ns):
    inputs = ns.Input((3, 4, 2), name="image")
    h = ns.layers.BatchNormalization(axis=1, name="bn")(inputs)
    return ns.Model(inputs, ns.layers.Dense(2, name="out")(ns.layers.Flatten(name="flat")(h)),
                    name="bn_model")


def test_normalization_over_other_axes():
    check_parity(_channels_first_norms, _x(6, 3, 4, 2))


def _tabular(ns):
    """Numeric features bucketized and one-hot encoded beside the raw ones, then Dense."""
    inputs = ns.Input((4,), name="features")
    buckets = ns.layers.Discretization(bin_boundaries=[-1.0, 0.0, 1.0], output_mode="one_hot",
                                       name="buckets")(inputs)
    h = ns.layers.Concatenate(name="cat")([ns.layers.Flatten(name="flat")(buckets), inputs])
    return ns.Model(inputs, ns.layers.Dense(2, name="out")(h), name="tabular")


@pytest.mark.parametrize("axis", [1, -2, 2, None])
def test_normalization_over_any_axis_of_rank_3_inputs(axis, tmp_path):
    # adapt's statistics and the outputs equal Keras's bit for bit; .keras files both ways
    x = (np.random.default_rng(51).normal(size=(40, 4, 3)) * [[1], [10], [100], [0.1]] +
         [[0], [5], [-50], [1]]).astype(np.float32)
    norms = {ns: ns.layers.Normalization(axis=axis) for ns in (KERAS, DENS)}
    for layer in norms.values():
        layer.adapt(x)
    for got, want in zip(norms[DENS].get_weights(), norms[KERAS].get_weights()):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.asarray(norms[DENS](x)), np.asarray(norms[KERAS](x)))
    pytest.importorskip("h5py")
    inputs = DENS.Input((4, 3))
    dmodel = DENS.Model(inputs, norms[DENS](inputs))
    dmodel.compile("sgd", "mse")
    dmodel.save(tmp_path / "d.keras")
    kclone = keras.models.load_model(tmp_path / "d.keras")
    np.testing.assert_array_equal(kclone.predict(x, verbose=0), dmodel.predict(x, verbose=0))


def test_pad_sequences_as_keras():
    seqs = [[1, 2, 3], [4], [], [5, 6, 7, 8, 9], [10, 11]]
    for kwargs in ({}, {"maxlen": 3}, {"maxlen": 4, "padding": "post"},
                   {"maxlen": 2, "truncating": "post", "value": -1},
                   {"dtype": "float32", "value": 0.5}):
        got = densitron.utils.pad_sequences(seqs, **kwargs)
        want = keras.utils.pad_sequences(seqs, **kwargs)
        assert got.dtype == want.dtype and got.shape == want.shape, kwargs
        np.testing.assert_array_equal(got, want)
    pairs = [np.ones((2, 3)), np.zeros((1, 3))]
    np.testing.assert_array_equal(densitron.utils.pad_sequences(pairs, dtype="float32"),
                                  keras.utils.pad_sequences(pairs, dtype="float32"))
    for bad in ({"padding": "mid"}, {"truncating": "x"}, {"maxlen": -1}):
        with pytest.raises(ValueError, match="Received"):
            densitron.utils.pad_sequences(seqs, **bad)


@pytest.mark.parametrize("shape, shared_axes", [((6,), None), ((3, 4), None), ((3, 4), [1])])
def test_prelu_matches_keras(shape, shared_axes, tmp_path):
    # Keras's PReLU (alpha of shape input_shape[1:], shared axes 1): predictions with the same
    # weights, negative inputs included, and .keras files both ways.
    def build(ns):
        inp = ns.Input(shape=shape)
        h = ns.layers.Dense(shape[-1], name="d")(inp)
        h = ns.layers.PReLU(shared_axes=shared_axes, name="p")(h)
        return ns.Model(inp, ns.layers.Dense(2, name="out")(ns.layers.Flatten()(h)))

    kmodel, dmodel = build(KERAS), build(DENS)
    assert [tuple(w.shape) for w in dmodel.weights] == [tuple(w.shape) for w in kmodel.weights]
    weights = _random_weights(kmodel, seed=7)
    kmodel.set_weights(weights)
    dmodel.set_weights(weights)
    x = _x(30, *shape, seed=8, scale=2.0)
    want = kmodel.predict(x, verbose=0)
    np.testing.assert_allclose(dmodel.predict(x, verbose=0), want, rtol=RTOL, atol=ATOL)
    pytest.importorskip("h5py")
    dmodel.save(tmp_path / "d.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "d.keras").predict(
        x, verbose=0), want, rtol=RTOL, atol=ATOL)
    kmodel.save(tmp_path / "k.keras")
    np.testing.assert_allclose(densitron.models.load_model(tmp_path / "k.keras").predict(
        x, verbose=0), want, rtol=RTOL, atol=ATOL)


# Keras's loss objects called on arrays, `loss(y_true, y_pred, sample_weight)` (the beginner
# tutorial's `loss_fn(y_train[:1], predictions)`): the same value as Keras's object.
@pytest.mark.parametrize("name,kwargs,pred,target", [
    ("BinaryFocalCrossentropy", {}, "unit", "binary"),
    ("BinaryFocalCrossentropy", {"gamma": 0.5, "alpha": 0.4, "apply_class_balancing": True,
                                 "label_smoothing": 0.1}, "unit", "binary"),
    ("BinaryFocalCrossentropy", {"gamma": 3.0, "from_logits": True}, "normal", "binary"),
    ("CategoricalFocalCrossentropy", {}, "simplex", "one_hot"),
    ("CategoricalFocalCrossentropy", {"gamma": 0.5, "alpha": 0.6, "label_smoothing": 0.1},
     "unit", "one_hot"),
    ("CategoricalFocalCrossentropy", {"from_logits": True}, "normal", "one_hot"),
    ("CategoricalCrossentropy", {}, "simplex", "one_hot"),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "normal",
     "one_hot"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "normal", "ids"),
    ("SparseCategoricalCrossentropy", {}, "simplex", "ids"),
    ("BinaryCrossentropy", {}, "unit", "binary"),
    ("BinaryCrossentropy", {"from_logits": True}, "normal", "binary"),
    ("MeanSquaredError", {}, "normal", "normal"),
    ("MeanAbsoluteError", {}, "normal", "normal"),
    ("Huber", {"delta": 0.5}, "normal", "normal"),
    ("CosineSimilarity", {}, "normal", "normal"),
    ("Hinge", {}, "normal", "binary"),
    ("CategoricalHinge", {}, "normal", "one_hot"),
    ("KLDivergence", {}, "simplex", "simplex"),
    ("Poisson", {}, "unit", "unit"),
])
def test_loss_objects_called_on_arrays_match_keras(name, kwargs, pred, target):
    rng = np.random.default_rng(11)
    rows, units = 12, 5

    def make(kind):
        if kind == "simplex":
            return rng.dirichlet(np.ones(units), rows).astype(np.float32)
        if kind == "unit":
            return rng.uniform(0.05, 0.95, (rows, units)).astype(np.float32)
        if kind == "normal":
            return rng.normal(size=(rows, units)).astype(np.float32)
        if kind == "binary":
            return rng.integers(0, 2, (rows, units)).astype(np.float32)
        ids = rng.integers(0, units, rows)
        return ids if kind == "ids" else np.eye(units, dtype=np.float32)[ids]

    p, y = make(pred), make(target)
    w = rng.uniform(0, 2, rows).astype(np.float32)
    dloss, kloss = getattr(densitron.losses, name)(**kwargs), getattr(keras.losses, name)(**kwargs)
    np.testing.assert_allclose(dloss(y, p), keras.ops.convert_to_numpy(kloss(y, p)),
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dloss(y, p, sample_weight=w),
                               keras.ops.convert_to_numpy(kloss(y, p, sample_weight=w)),
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name,kwargs", [
    ("categorical_crossentropy", {"from_logits": True}), ("sparse_categorical_crossentropy", {}),
    ("binary_crossentropy", {"label_smoothing": 0.1}), ("mean_squared_error", {}),
    ("mean_absolute_percentage_error", {}), ("huber", {"delta": 0.3}),
    ("cosine_similarity", {}), ("hinge", {}), ("kl_divergence", {}), ("poisson", {}),
])
def test_loss_functions_match_keras_per_sample(name, kwargs):
    rng = np.random.default_rng(12)
    p = rng.uniform(0.05, 0.95, (3, 4, 5)).astype(np.float32)
    ids = rng.integers(0, 5, (3, 4))
    y = ids if name.startswith("sparse") else (
        rng.integers(0, 2, (3, 4, 5)).astype(np.float32) if name in ("binary_crossentropy", "hinge")
        else np.eye(5, dtype=np.float32)[ids] if "categorical" in name
        else rng.uniform(0.05, 0.95, (3, 4, 5)).astype(np.float32))
    got = getattr(densitron.losses, name)(y, p, **kwargs)
    want = keras.ops.convert_to_numpy(getattr(keras.losses, name)(y, p, **kwargs))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


# Keras's metric objects used on their own: update_state over several batches (with and without
# sample weights, 2-D and 3-D), result(), reset_state() and __call__, against Keras's objects.
@pytest.mark.parametrize("name,kwargs,pred,target", [
    ("CategoricalAccuracy", {}, "simplex", "one_hot"),
    ("SparseCategoricalAccuracy", {}, "simplex", "ids"),
    ("BinaryAccuracy", {"threshold": 0.4}, "unit", "binary"),
    ("TopKCategoricalAccuracy", {"k": 2}, "simplex", "one_hot"),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, "simplex", "ids"),
    ("MeanSquaredError", {}, "normal", "normal"),
    ("RootMeanSquaredError", {}, "normal", "normal"),
    ("MeanAbsoluteError", {}, "normal", "normal"),
    ("CategoricalCrossentropy", {}, "simplex", "one_hot"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "normal", "ids"),
    ("BinaryCrossentropy", {}, "unit", "binary"),
    ("CosineSimilarity", {}, "normal", "normal"),
    ("KLDivergence", {}, "simplex", "simplex"),
    ("Precision", {}, "unit", "binary"),
    ("Recall", {"thresholds": [0.3, 0.6]}, "unit", "binary"),
    ("TruePositives", {}, "unit", "binary"),
    ("FalsePositives", {"thresholds": 0.3}, "unit", "binary"),
    ("TrueNegatives", {}, "unit", "binary"),
    ("FalseNegatives", {"thresholds": [0.2, 0.7]}, "unit", "binary"),
    ("AUC", {}, "unit", "binary"),
    ("AUC", {"curve": "PR", "multi_label": True}, "unit", "binary"),
    ("R2Score", {}, "normal", "normal"),
    ("F1Score", {"threshold": 0.5}, "unit", "binary"),
])
def test_metric_objects_used_on_their_own_match_keras(name, kwargs, pred, target):
    rng = np.random.default_rng(13)
    units = 4

    def make(kind, lead):
        if kind == "simplex":
            return rng.dirichlet(np.ones(units), lead).astype(np.float32)
        if kind == "unit":
            return rng.uniform(0, 1, (*lead, units)).astype(np.float32)
        if kind == "normal":
            return rng.normal(size=(*lead, units)).astype(np.float32)
        if kind == "binary":
            return rng.integers(0, 2, (*lead, units)).astype(np.float32)
        ids = rng.integers(0, units, lead)
        return ids if kind == "ids" else np.eye(units, dtype=np.float32)[ids]

    dmetric = getattr(densitron.metrics, name)(**kwargs)
    kmetric = getattr(keras.metrics, name)(**kwargs)
    two_d = name in ("AUC", "R2Score", "F1Score")  # (Keras takes these on 2-D batches only)
    batches = [(10,), (7,), (6,) if two_d else (3, 5)]
    for i, lead in enumerate(batches):
        y, p = make(target, lead), make(pred, lead)
        w = rng.uniform(0, 2, lead[:1]).astype(np.float32) if i == 1 else None
        dmetric.update_state(y, p, sample_weight=w)
        kmetric.update_state(y, p, sample_weight=w)
        with np.errstate(divide="ignore", invalid="ignore"):  # (Keras's AUC divides 0 by 0)
            want = keras.ops.convert_to_numpy(kmetric.result())
        np.testing.assert_allclose(dmetric.result(), want, rtol=RTOL, atol=ATOL,
                                   err_msg=f"after batch {i}")
    dmetric.reset_state()
    kmetric.reset_state()
    y, p = make(target, (8,)), make(pred, (8,))
    with np.errstate(divide="ignore", invalid="ignore"):
        want = keras.ops.convert_to_numpy(kmetric(y, p))
    np.testing.assert_allclose(dmetric(y, p), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name,kwargs,pred,target", [
    ("binary_accuracy", {"threshold": 0.3}, "unit", "binary"),
    ("categorical_accuracy", {}, "simplex", "one_hot"),
    ("sparse_categorical_accuracy", {}, "simplex", "ids"),
    ("top_k_categorical_accuracy", {"k": 2}, "simplex", "one_hot"),
    ("sparse_top_k_categorical_accuracy", {"k": 3}, "simplex", "ids"),
    ("mean_squared_error", {}, "unit", "unit"),
    ("log_cosh", {}, "unit", "unit"),
])
def test_metric_functions_match_keras_per_sample(name, kwargs, pred, target):
    rng = np.random.default_rng(14)
    lead, units = (3, 4), 5
    ids = rng.integers(0, units, lead)
    y = {"binary": rng.integers(0, 2, (*lead, units)).astype(np.float32), "ids": ids,
         "one_hot": np.eye(units, dtype=np.float32)[ids],
         "unit": rng.uniform(0, 1, (*lead, units)).astype(np.float32)}[target]
    p = (rng.dirichlet(np.ones(units), lead) if pred == "simplex"
         else rng.uniform(0, 1, (*lead, units))).astype(np.float32)
    got = getattr(densitron.metrics, name)(y, p, **kwargs)
    want = keras.ops.convert_to_numpy(getattr(keras.metrics, name)(y, p, **kwargs))
    # (binary_accuracy: every value's match, as Keras's; the others one value a sample)
    assert got.shape == want.shape == (p.shape if name == "binary_accuracy" else lead)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_metric_functions_in_compile_log_as_keras_names_them():
    rng = np.random.default_rng(15)
    x = rng.random((64, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]
    logs = {}
    for lib in (densitron, keras):
        inputs = lib.Input(shape=(6,))
        model = lib.Model(inputs, lib.layers.Dense(3, activation="softmax")(inputs))
        model.set_weights([np.full((6, 3), 0.1, np.float32) * np.arange(3),
                           np.zeros(3, np.float32)])
        model.compile(loss="categorical_crossentropy",
                      metrics=[lib.metrics.categorical_accuracy,
                               lib.metrics.top_k_categorical_accuracy,
                               lib.metrics.mean_squared_error])
        logs[lib.__name__] = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["densitron"].keys() == logs["keras"].keys()
    for key, value in logs["keras"].items():
        np.testing.assert_allclose(logs["densitron"][key], value, rtol=RTOL, atol=ATOL,
                                   err_msg=key)


def test_imbalanced_data_tutorial_metrics_match_keras():
    # Keras's "classification on imbalanced data" tutorial: a sigmoid classifier with its
    # list of confusion counts, accuracy, precision, recall and the two AUCs; every log of
    # evaluate against Keras's (Keras's numpy backend has no fit), plain and with the metrics
    # weighted by sample_weight.
    rng = np.random.default_rng(16)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=256) > 1.2).astype(np.float32)  # about 1 in 8
    w = np.where(y > 0, 3.5, 0.6).astype(np.float32)

    def metrics(lib):
        m = lib.metrics
        return [m.MeanSquaredError(name="brier_score"), m.TruePositives(name="tp"),
                m.FalsePositives(name="fp"), m.TrueNegatives(name="tn"),
                m.FalseNegatives(name="fn"), m.BinaryAccuracy(name="accuracy"),
                m.Precision(name="precision"), m.Recall(name="recall"),
                m.AUC(name="auc"), m.AUC(name="prc", curve="PR")]

    weights = [rng.normal(size=(8, 16)).astype(np.float32) * 0.3, np.zeros(16, np.float32),
               rng.normal(size=(16, 1)).astype(np.float32) * 0.3,
               np.array([-0.3], np.float32)]  # (some predicted positives)
    logs = {}
    for lib in (densitron, keras):
        inputs = lib.Input(shape=(8,))
        h = lib.layers.Dense(16, activation="relu")(inputs)
        model = lib.Model(inputs, lib.layers.Dense(1, activation="sigmoid")(h))
        model.set_weights(weights)
        model.compile(loss="binary_crossentropy", metrics=metrics(lib),
                      weighted_metrics=[lib.metrics.TruePositives(name="wtp"),
                                        lib.metrics.TrueNegatives(name="wtn")])
        with np.errstate(divide="ignore", invalid="ignore"):
            logs[lib.__name__] = (
                model.evaluate(x, y, verbose=0, return_dict=True),
                model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True))
    for d, k in zip(logs["densitron"], logs["keras"]):
        assert d.keys() == k.keys()
        for key in k:
            np.testing.assert_allclose(d[key], k[key], rtol=1e-5, atol=1e-5, err_msg=key)


def test_binary_focal_crossentropy_configs_move_both_ways():
    kloss = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.3, gamma=1.5,
                                                 label_smoothing=0.1)
    dloss = densitron.losses.deserialize(keras.losses.serialize(kloss))
    assert isinstance(dloss, densitron.losses.BinaryFocalCrossentropy)
    back = keras.losses.deserialize(densitron.losses.serialize(dloss))
    assert isinstance(back, keras.losses.BinaryFocalCrossentropy)
    config = {k: v for k, v in back.get_config().items() if k != "axis"}
    assert config == dloss.get_config()


# --- add_loss --------------------------------------------------------------------------------

def _add_loss_model(ns, with_model_subclass=False):
    m = keras if ns is KERAS else densitron

    class ActivityPenalty(m.layers.Layer):  # Keras's classic: a penalty on a layer's output
        def call(self, x):
            self.add_loss(0.1 * m.ops.mean(m.ops.square(x)))
            return x

    class AbsSum(m.layers.Layer):  # an unreduced tensor: Keras sums every value
        def call(self, x):
            self.add_loss(0.01 * m.ops.abs(x))
            return m.ops.tanh(x)

    inputs = ns.Input(shape=(5,), name="x")
    h = ns.layers.Dense(6, name="d1")(inputs)
    h = AbsSum(name="abs_sum")(ActivityPenalty(name="penalty")(h))
    outputs = ns.layers.Dense(2, name="out")(h)
    return ns.Model(inputs, outputs, name="m")


def test_add_loss_in_evaluate():
    # The losses layers give to add_loss join the compiled loss in evaluate: each batch's
    # total (mse, which sample weights weigh, plus the penalties, which they do not) averaged
    # over the batches by their sizes, as Keras's loss tracker does. (Keras's numpy backend
    # cannot evaluate add_loss models: its trainer sums a list with ops.sum. So the reference
    # is its formula in float64 on the weights, the layers' outputs checked against Keras.)
    with np.errstate(all="ignore"):  # (Keras infers the call's shapes on arbitrary values)
        kmodel = _add_loss_model(KERAS)
    dmodel = _add_loss_model(DENS)
    _check_weights_move(kmodel, dmodel)
    _assert_close(*_predict_both(kmodel, dmodel, _x(50, 5, seed=74)), RTOL, ATOL)
    x, y = _x(50, 5, seed=74), _x(50, 2, seed=75)
    w = np.random.default_rng(76).random(50).astype(np.float32)
    dmodel.compile(optimizer="sgd", loss="mse")
    w1, b1, w2, b2 = [v.astype(np.float64) for v in dmodel.get_weights()]
    for batch_size, sw in ((16, None), (50, None), (16, w)):
        total = 0.0
        for lo in range(0, 50, batch_size):
            xb, yb = x[lo:lo + batch_size].astype(np.float64), y[lo:lo + batch_size]
            h = xb @ w1 + b1
            per_sample = np.mean((np.tanh(h) @ w2 + b2 - yb) ** 2, axis=1)
            loss = np.mean(per_sample * (1.0 if sw is None else sw[lo:lo + batch_size]))
            loss += 0.1 * np.mean(h ** 2) + 0.01 * np.sum(np.abs(h))
            total += loss * len(xb)
        got = dmodel.evaluate(x, y, batch_size=batch_size, sample_weight=sw, verbose=0)
        np.testing.assert_allclose(got, total / 50, rtol=2e-6)


@pytest.mark.parametrize("reduction", ["sum", "mean", "mean_with_sample_weight"])
def test_loss_reductions(reduction, tmp_path):
    # Keras's other reductions of a batch's loss: in evaluate (plain and weighted, by batches
    # of 16, the last smaller), standalone, and through .keras files both ways.
    kmodel, dmodel = _classifier(KERAS, 3, None), _classifier(DENS, 3, None)
    _check_weights_move(kmodel, dmodel)
    x, y = _x(70, 6, seed=77), _x(70, 3, seed=78)
    w = np.random.default_rng(79).random(70).astype(np.float32)
    for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
        losses = keras.losses if ns is KERAS else densitron.losses
        model.compile(optimizer="sgd", loss=losses.MeanSquaredError(reduction=reduction),
                      metrics=["mae"])
    _evaluate_alike(kmodel, dmodel, x, y, 16)
    klogs, _ = _evaluate_alike(kmodel, dmodel, x, y, 16, w)
    _assert_keras_files_keep_logs(kmodel, dmodel, x, y, w, 16, klogs, tmp_path)
    for cls, p in (("MeanSquaredError", x[:9, :3]), ("CategoricalCrossentropy",
                                                     np.abs(x[:9, :3]) + 0.1)):
        for r in (reduction, None, "none"):
            kl = getattr(keras.losses, cls)(reduction=r)
            dl = getattr(densitron.losses, cls)(reduction=r)
            for sw in (None, w[:9], np.zeros(9, np.float32)):
                with np.errstate(divide="ignore", invalid="ignore"):
                    want = np.asarray(kl(y[:9], p, sample_weight=sw))
                np.testing.assert_allclose(dl(y[:9], p, sample_weight=sw), want, rtol=1e-5,
                                           atol=1e-7, err_msg=f"{cls} {r}")


DICE_LIKE = [("Dice", {}), ("Dice", {"axis": -1}), ("Tversky", {"alpha": 0.3, "beta": 0.7}),
             ("Tversky", {"axis": -1}), ("CategoricalGeneralizedCrossEntropy", {"q": 0.7})]


@pytest.mark.parametrize("cls,kwargs", DICE_LIKE, ids=str)
def test_dice_tversky_and_generalized_cross_entropy(cls, kwargs, tmp_path):
    # Keras's losses written with its ops, here traced into the engine: over the batch
    # (axis None: one value a batch) or per sample; plain and weighted; standalone; files
    # both ways.
    kmodel, dmodel = _classifier(KERAS, 3, "softmax"), _classifier(DENS, 3, "softmax")
    _check_weights_move(kmodel, dmodel)
    x = _x(70, 6, seed=80)
    rng = np.random.default_rng(81)
    y = (rng.integers(0, 3, 70) if cls.startswith("Categorical")
         else (rng.random((70, 3)) < 0.4).astype(np.float32))
    w = rng.random(70).astype(np.float32)
    for ns, model in ((KERAS, kmodel), (DENS, dmodel)):
        losses = keras.losses if ns is KERAS else densitron.losses
        model.compile(optimizer="sgd", loss=getattr(losses, cls)(**kwargs))
    _evaluate_alike(kmodel, dmodel, x, y, 16)
    klogs, _ = _evaluate_alike(kmodel, dmodel, x, y, 16, w)
    _assert_keras_files_keep_logs(kmodel, dmodel, x, y, w, 16, klogs, tmp_path)
    p = dmodel.predict(x[:9], verbose=0)
    for sw in (None, w[:9]):
        want = float(getattr(keras.losses, cls)(**kwargs)(y[:9], p, sample_weight=sw))
        got = getattr(densitron.losses, cls)(**kwargs)(y[:9], p, sample_weight=sw)
        np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("mask_value", [0.0, -1.0])
def test_masking_through_per_step_layers_into_average_pooling(mask_value, tmp_path):
    # Keras's Masking: steps whose values all equal mask_value are zeroed and left out of
    # GlobalAveragePooling1D's mean, through Dense and TimeDistributed(Dense); a sample with
    # every step masked gives 0/0, as Keras's; .keras files both ways.
    x = _x(20, 5, 3, seed=82)
    x[:, 3:, :] = mask_value
    x[::3, 1:, :] = mask_value
    x[2, 1, 0] = mask_value  # one value of a kept step equal to it
    x[7] = mask_value        # every step masked

    def build(ns):
        inputs = ns.Input((5, 3), name="seq")
        h = ns.layers.Masking(mask_value, name="mask")(inputs)
        h = ns.layers.Dense(4, activation="tanh", name="d")(h)
        h = ns.layers.TimeDistributed(ns.layers.Dense(4, name="td_inner"), name="td")(h)
        pooled = ns.layers.GlobalAveragePooling1D(name="pool")(h)
        return ns.Model(inputs, ns.layers.Dense(2, name="out")(pooled), name="m")

    with np.errstate(invalid="ignore"):
        kmodel, dmodel = build(KERAS), build(DENS)
        _check_weights_move(kmodel, dmodel)
        kout, dout = kmodel.predict(x, verbose=0), dmodel.predict(x, verbose=0)
    assert np.isnan(dout[7]).all() and not np.isnan(np.delete(dout, 7, axis=0)).any()
    assert np.isnan(kout[7]).all()
    keep = np.arange(20) != 7
    _assert_close([kout[keep]], [dout[keep]], RTOL, ATOL)
    pytest.importorskip("h5py")
    dmodel.save(tmp_path / "d.keras")
    kmodel.save(tmp_path / "k.keras")
    with np.errstate(invalid="ignore"):
        back_k = keras.models.load_model(tmp_path / "d.keras").predict(x, verbose=0)
        back_d = densitron.models.load_model(tmp_path / "k.keras").predict(x, verbose=0)
    _assert_close([back_k[keep]], [dout[keep]], RTOL, ATOL)
    _assert_close([back_d[keep]], [kout[keep]], RTOL, ATOL)
