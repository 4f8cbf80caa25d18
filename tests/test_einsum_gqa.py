"""Keras's EinsumDense and GroupQueryAttention: values against float64 NumPy references of
Keras 3.15's formulas (np.einsum; grouped-query attention with repeated key and value heads),
gradients against finite differences, Keras itself on the same weights (outputs, weights'
shapes and names, configs), training steps against Keras on JAX (in a process of its own),
`.keras` files both ways, and the equations and arguments densitron refuses."""

import os

os.environ.setdefault("KERAS_BACKEND", "numpy")  # as tests/test_keras_parity.py

import contextlib
import warnings

import densitron
import numpy as np
import pytest
from densitron import layers
from keras_subprocess import keras_on_jax_json
from test_gradients_fd import fd_check

# (equation, output_shape, input shape without the batch, bias_axes): the docs' and keras_hub's
# equations, then others that are one permutation, one product and one permutation
EQUATIONS = [
    ("ab,bc->ac", 5, (7,), "c"),
    ("abc,cd->abd", (None, 5), (3, 7), "d"),
    ("abc,cd->abd", (None, 5), (3, 7), None),
    ("abc,cde->abde", (None, 2, 5), (3, 7), "de"),
    ("abcd,cde->abe", (None, 5), (3, 2, 4), "e"),
    ("...b,bc->...c", 5, (3, 2, 4), "c"),
    ("...b,bc->...c", 5, (7,), "c"),
    ("abcd,de->abce", (None, None, 6), (3, 2, 4), "e"),
    ("bqm,muh->bquh", (None, 3, 2), (5, 4), "uh"),
    ("bquh,uhm->bqm", (None, 6), (5, 3, 2), "m"),
    ("abc,cde->abde", (None, 2, 5), (3, 7), "d"),       # a bias over a middle axis
    ("abc,cde->adbe", (2, None, 5), (3, 7), "d"),       # the output's axes moved
    ("abc,dc->abd", (None, 5), (3, 7), "d"),            # the kernel's output axis first
    ("abc,bcd->abd", (3, 5), (3, 7), "bd"),             # a kernel per position of b
    ("ab...,bc->ac...", (5,), (7, 3), "c"),
    ("abc,c->ab", (3,), (3, 7), None),                  # no output axis in the kernel
    ("abc,cd->ad", 5, (3, 7), "d"),                     # b summed away
    ("abcd,dbe->ace", (2, 5), (3, 2, 4), "e"),          # two axes contracted, in another order
]
IDS = [f"{eq}:{bias}" for eq, _, _, bias in EQUATIONS]


def _keras():
    return pytest.importorskip("keras")


@contextlib.contextmanager
def _quiet():
    """Keras's warnings: its numpy-backend variables' and NumPy 2's __array__
    (DeprecationWarning), its EinsumDense sublayers' of a masked input (UserWarning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def _keras_predict(model, x):
    with _quiet():
        return model.predict(x, verbose=0)


def einsum_reference(equation, x, kernel, bias=None, activation=None):
    """Keras's EinsumDense.call in float64."""
    y = np.einsum(equation, x.astype(np.float64), kernel.astype(np.float64))
    if bias is not None:
        y = y + bias.astype(np.float64)
    return np.tanh(y) if activation == "tanh" else y


def _einsum_model(ns, case, activation=None):
    equation, output_shape, shape, bias_axes = case
    x = ns.Input(shape)
    layer = ns.layers.EinsumDense(equation, output_shape, bias_axes=bias_axes,
                                  activation=activation)
    return ns.Model(x, layer(x)), layer


def _random_weights(model, seed, scale=0.5):
    rng = np.random.default_rng(seed)
    weights = [(rng.normal(size=tuple(w.shape)) * scale).astype(np.float32)
               for w in model.weights]
    model.set_weights(weights)
    return weights, rng


@pytest.mark.parametrize("case", EQUATIONS, ids=IDS)
def test_einsum_dense_computes_its_einsum(case):
    model, layer = _einsum_model(densitron, case, activation="tanh")
    weights, rng = _random_weights(model, 1)
    x = rng.normal(size=(5, *case[2])).astype(np.float32)
    want = einsum_reference(case[0], x, weights[0], weights[1] if case[3] else None, "tanh")
    got = model.predict(x, verbose=0)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # called on an array, as Keras's layer(x)
    np.testing.assert_allclose(layer(x), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", EQUATIONS, ids=IDS)
def test_einsum_dense_as_keras(case):
    keras = _keras()
    ours, mine = _einsum_model(densitron, case, activation="tanh")
    theirs, keras_layer = _einsum_model(keras, case, activation="tanh")
    assert [tuple(w.shape) for w in mine.weights] == [tuple(w.shape) for w in keras_layer.weights]
    assert [w.name for w in mine.weights] == [w.name for w in keras_layer.weights]
    full = (None, *case[2])
    if not case[0].startswith("...") or len(case[2]) == 1:  # (see the test below)
        assert mine.compute_output_shape(full) == tuple(keras_layer.compute_output_shape(full))
    config, keras_config = mine.get_config(), keras_layer.get_config()
    assert set(config) == set(keras_config)
    for key in ("output_shape", "equation", "activation", "bias_axes"):
        assert config[key] == keras_config[key]
    weights, rng = _random_weights(theirs, 2)
    ours.set_weights(weights)
    x = rng.normal(size=(4, *case[2])).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), _keras_predict(theirs, x),
                               rtol=1e-5, atol=1e-6)


def test_einsum_output_shape_keeps_none_where_keras_does():
    # Keras's compute_output_shape keeps the None of output_shape for an axis of the input;
    # the symbolic tensor has it (the engine knows every axis). With a leading ellipsis of
    # two axes Keras's compute_output_shape lists them reversed; ours, as its einsum gives them.
    layer = layers.EinsumDense("abc,cde->abde", (None, 2, 5), bias_axes="e")
    assert layer.compute_output_shape((None, 3, 7)) == (None, None, 2, 5)
    assert layer(densitron.Input((3, 7))).shape == (None, 3, 2, 5)
    ellipsis = layers.EinsumDense("...b,bc->...c", 5)
    assert ellipsis.compute_output_shape((None, 3, 2, 4)) == (None, 3, 2, 5)
    assert ellipsis(densitron.Input((3, 2, 4))).shape == (None, 3, 2, 5)


@pytest.mark.parametrize("case", [EQUATIONS[i] for i in (1, 3, 4, 10, 11, 12, 13, 14, 16)],
                         ids=[IDS[i] for i in (1, 3, 4, 10, 11, 12, 13, 14, 16)])
def test_einsum_dense_gradients_against_finite_differences(case):
    model, _ = _einsum_model(densitron, case, activation="tanh")
    _, rng = _random_weights(model, 3)
    x = rng.normal(size=(3, *case[2])).astype(np.float32)
    y = rng.normal(size=(3, *model.outputs[0].shape[1:])).astype(np.float32)
    fd_check(model, x, y, "mse")


def test_einsum_kernel_initializer_uses_keras_fans():
    # Keras gives VarianceScaling the kernel's input and output axes: for "abc,cde->abde"
    # (kernel (7, 2, 5)) fan_in 7 and fan_out 10, Glorot's limit sqrt(6 / 17), not the limit
    # sqrt(6 / 49) of a convolution kernel's fans.
    layer = layers.EinsumDense("abc,cde->abde", (None, 2, 5),
                               kernel_initializer=densitron.initializers.GlorotUniform(seed=4))
    layer(densitron.Input((3, 7)))
    kernel = layer.kernel.numpy()
    assert np.abs(kernel).max() <= np.sqrt(6 / 17)
    assert np.abs(kernel).max() > np.sqrt(6 / 49)
    assert layer.get_config()["kernel_initializer"]["class_name"] == "GlorotUniform"


@pytest.mark.parametrize("equation, shape, output_shape, bias_axes, match", [
    ("aab,bc->ac", (3, 7), 5, None, "repeated"),
    ("abc,cd->bad", (3, 7), (None, 5), None, "batch axis"),
    ("abc,bcd->abd", (3, 7), (None, 5), None, "must be known"),
])
def test_equations_densitron_cannot_lower_are_refused_by_name(equation, shape, output_shape,
                                                              bias_axes, match):
    with pytest.raises(ValueError, match=match):
        layers.EinsumDense(equation, output_shape, bias_axes=bias_axes)(densitron.Input(shape))


@pytest.mark.parametrize("kwargs, shape, match", [
    ({"equation": "ab->c", "output_shape": 3}, (4,), "Invalid einsum equation 'ab->c'"),
    ({"equation": "ab,bc->ad", "output_shape": 3}, (4,), "Dimension 'd' was specified"),
    ({"equation": "ab,bcz->ac", "output_shape": 3}, (4,), "Weight dimension 'z'"),
    ({"equation": "ab,bc->ac", "output_shape": 3, "bias_axes": "x"}, (4,),
     "Bias dimension 'x' was requested"),
    ({"equation": "abc,cd->abd", "output_shape": (4, 5)}, (3, 7),
     "do not match at shared dimension 'b'"),
])
def test_keras_errors_of_invalid_equations_are_keras_s(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        layers.EinsumDense(**kwargs)(densitron.Input(shape))


def test_einsum_arguments_densitron_does_not_take_are_refused():
    with pytest.raises(ValueError, match="lora_rank=4"):
        layers.EinsumDense("ab,bc->ac", 3, lora_rank=4)
    with pytest.raises(ValueError, match="output_shape"):
        layers.EinsumDense("ab,bc->ac", "3")
    with pytest.raises(ValueError, match="bias_axes"):
        layers.EinsumDense("ab,bc->ac", 3, bias_axes=1)
    layer = layers.EinsumDense("ab,bc->ac", 3)
    layer(densitron.Input((4,)))
    with pytest.raises(ValueError, match="incompatible"):
        layer(densitron.Input((5,)))


def test_einsum_models_load_in_keras_and_back(tmp_path):
    keras = _keras()

    def build(ns):
        x = ns.Input((3, 7))
        h = ns.layers.EinsumDense("abc,cde->abde", (None, 2, 4), bias_axes="de",
                                  activation="relu")(x)
        h = ns.layers.EinsumDense("abcd,cde->abe", (None, 6), bias_axes="e")(h)
        h = ns.layers.EinsumDense("abc,dc->abd", (None, 5), bias_axes="d")(h)
        return ns.Model(x, ns.layers.EinsumDense("...b,bc->...c", 2)(h))

    ours, theirs = build(densitron), build(keras)
    weights, rng = _random_weights(theirs, 5)
    ours.set_weights(weights)
    x = rng.normal(size=(4, 3, 7)).astype(np.float32)
    want = _keras_predict(theirs, x)
    path = str(tmp_path / "ours.keras")
    ours.save(path)
    with _quiet():
        loaded = keras.models.load_model(path)
    np.testing.assert_allclose(_keras_predict(loaded, x), want, rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "theirs.keras")
    with _quiet():
        theirs.save(path)
    again = densitron.models.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    assert again.layers[1].get_config()["bias_axes"] == "de"


# --- GroupQueryAttention ------------------------------------------------------------------

def gqa_reference(q, v, k, weights, hq, hk, attention_mask=None, causal=False, zero=False,
                  window=None, gate=False):
    """Keras's GroupQueryAttention.call in float64: (output, scores). With `zero`, masked
    weights are 0 (Keras's Softmax(mask) path, taken with returned scores or dropout)."""
    weights = [w.astype(np.float64) for w in weights]
    if gate:
        wq, bq, wk, bk, wg, bg, wv, bv, wo, bo = weights
    else:
        wq, bq, wk, bk, wv, bv, wo, bo = weights
    head_dim = wq.shape[-1]
    query = np.einsum("btm,muh->btuh", q, wq) + bq
    key = np.repeat(np.einsum("bsm,mvh->bsvh", k, wk) + bk, hq // hk, axis=2)
    value = np.repeat(np.einsum("bsm,mvh->bsvh", v, wv) + bv, hq // hk, axis=2)
    scores = np.einsum("btuh,bsuh->buts", query / np.sqrt(head_dim), key)
    keep = np.ones(scores.shape, bool)
    if attention_mask is not None:
        keep &= attention_mask[:, None] != 0
    t, s = scores.shape[-2:]
    if causal:
        keep &= np.arange(s)[None, :] <= np.arange(t)[:, None]
    if window is not None:
        keep &= np.abs(np.arange(s)[None, :] - np.arange(t)[:, None]) < window
    scores = np.where(keep, scores, -1e9)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    if zero:
        w = np.where(keep, w, 0.0)
    mixed = np.einsum("buts,bsuh->btuh", w, value)
    if gate:
        mixed *= 1.0 / (1.0 + np.exp(-(np.einsum("btm,muh->btuh", q, wg) + bg)))
    return np.einsum("btuh,uhm->btm", mixed, wo) + bo, w


def _gqa_model(ns, case, hq=4, hk=2, head_dim=3, **kwargs):
    q, v = ns.Input((5, 6)), ns.Input((7, 6))
    inputs, call = [q, v], {}
    if "key" in case:
        call["key"] = ns.Input((7, 3))
        inputs.append(call["key"])
    if "mask" in case:
        call["attention_mask"] = ns.Input((5, 7))
        inputs.append(call["attention_mask"])
    if "causal" in case:
        call["use_causal_mask"] = True
    if "scores" in case:
        call["return_attention_scores"] = True
    if "window" in case:
        kwargs["sliding_window"] = 2
    if "gate" in case:
        kwargs["use_gate"] = True
    layer = ns.layers.GroupQueryAttention(head_dim, hq, hk, **kwargs)
    out = layer(q, v, **call)
    return ns.Model(inputs, list(out) if "scores" in case else out), layer


def _gqa_inputs(case, rng, n=3):
    x = [rng.normal(size=(n, 5, 6)), rng.normal(size=(n, 7, 6))]
    if "key" in case:
        x.append(rng.normal(size=(n, 7, 3)))
    if "mask" in case:
        mask = (rng.random((n, 5, 7)) > 0.4).astype(np.float32)
        mask[0, 1] = 0  # a wholly masked query step
        mask[1, 0] = np.eye(7)[3]  # a step that only the causal mask masks wholly
        x.append(mask)
    return [a.astype(np.float32) for a in x]


CASES = ["plain", "key", "mask", "causal", "scores", "key mask causal scores", "mask scores",
         "window", "window causal scores", "gate key", "gate window mask scores"]
HEADS = [(4, 2, 3), (3, 1, 2), (2, 2, 5), (6, 3, 1)]


@pytest.mark.parametrize("heads", HEADS, ids=[f"{a}q{b}kv{c}d" for a, b, c in HEADS])
@pytest.mark.parametrize("case", CASES)
def test_group_query_attention_computes_its_formula(case, heads):
    hq, hk, head_dim = heads
    model, _ = _gqa_model(densitron, case, hq, hk, head_dim)
    weights, rng = _random_weights(model, 6)
    x = _gqa_inputs(case, rng)
    key = x[2] if "key" in case else x[1]
    mask = x[-1] if "mask" in case else None
    want, scores = gqa_reference(*[a.astype(np.float64) for a in (x[0], x[1], key)], weights,
                                 hq, hk, mask, "causal" in case, zero="scores" in case,
                                 window=2 if "window" in case else None, gate="gate" in case)
    got = model.predict(x, verbose=0)
    if "scores" in case:
        got, got_scores = got
        np.testing.assert_allclose(got_scores, scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("case", CASES + ["nobias"])
def test_group_query_attention_as_keras(case):
    keras = _keras()
    kwargs = {"use_bias": False} if case == "nobias" else {}
    ours, mine = _gqa_model(densitron, case, **kwargs)
    theirs, keras_layer = _gqa_model(keras, case, **kwargs)
    assert mine.name == "grouped_query_attention"  # (Keras's class: GroupedQueryAttention)

    def named(layer):  # (the paths below the layer's name, which Keras numbers in a session)
        return [(w.path.split("/", 1)[1], tuple(w.shape)) for w in layer.weights]

    assert named(mine) == named(keras_layer)
    config, keras_config = mine.get_config(), keras_layer.get_config()
    # (densitron's call_signature: how the layer was called, which its engine fixes)
    assert [k for k in config if k != "call_signature"] == list(keras_config)
    weights, rng = _random_weights(theirs, 7)
    ours.set_weights(weights)
    x = _gqa_inputs(case, rng)
    got, want = ours.predict(x, verbose=0), _keras_predict(theirs, x)
    for a, b in zip(got if isinstance(got, list) else [got],
                    want if isinstance(want, list) else [want]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("kwargs, call", [
    ({"use_gate": True, "value_dim": 2}, {}),
    ({"sliding_window": 2}, {"return_attention_scores": True}),
    ({"sliding_window": 3, "use_gate": True}, {"use_causal_mask": True}),
])
def test_multi_head_attention_gate_and_window_as_keras(kwargs, call):
    keras = _keras()

    def build(ns):
        q, v = ns.Input((5, 6)), ns.Input((7, 4))
        layer = ns.layers.MultiHeadAttention(3, 2, **kwargs)
        out = layer(q, v, **call)
        return ns.Model([q, v], list(out) if isinstance(out, tuple) else out), layer

    (ours, mine), (theirs, keras_layer) = build(densitron), build(keras)
    assert [tuple(w.shape) for w in mine.weights] == [tuple(w.shape) for w in keras_layer.weights]
    for key in ("use_gate", "sliding_window"):
        assert mine.get_config()[key] == keras_layer.get_config()[key]
    weights, rng = _random_weights(theirs, 12)
    ours.set_weights(weights)
    x = [rng.normal(size=(3, 5, 6)).astype(np.float32), rng.normal(size=(3, 7, 4)).astype(
        np.float32)]
    got, want = ours.predict(x, verbose=0), _keras_predict(theirs, x)
    for a, b in zip(got if isinstance(got, list) else [got],
                    want if isinstance(want, list) else [want]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


def _mask_argument_model(ns, kind, which, scores):
    q, v, k = ns.Input((5, 6)), ns.Input((7, 6)), ns.Input((7, 6))
    masks = {"query_mask": ns.Input((5,)), "value_mask": ns.Input((7,)),
             "key_mask": ns.Input((7,)), "attention_mask": ns.Input((5, 7))}
    call = {name: t for name, t in masks.items() if name[0] in which}
    layer = (ns.layers.GroupQueryAttention(3, 4, 2) if kind == "gqa" else
             ns.layers.MultiHeadAttention(2, 3))
    out = layer(q, v, key=k, return_attention_scores=scores, **call)
    return ns.Model([q, v, k, *masks.values()], list(out) if scores else out)


@pytest.mark.parametrize("kind, which, scores", [
    ("gqa", "q", False), ("gqa", "qvka", True), ("gqa", "k", False),
    ("mha", "q", True), ("mha", "vk", True), ("mha", "qa", False),
])
def test_mask_arguments_as_keras(kind, which, scores, tmp_path):
    # query_mask (GroupQueryAttention's; Keras's MultiHeadAttention reads its query's own
    # mask instead), value_mask, key_mask passed to the call, ANDed with attention_mask
    keras = _keras()
    ours = _mask_argument_model(densitron, kind, which, scores)
    theirs = _mask_argument_model(keras, kind, which, scores)
    weights, rng = _random_weights(theirs, 15)
    ours.set_weights(weights)
    x = [rng.normal(size=(3, 5, 6)), rng.normal(size=(3, 7, 6)), rng.normal(size=(3, 7, 6)),
         rng.random((3, 5)) > 0.3, rng.random((3, 7)) > 0.3, rng.random((3, 7)) > 0.3,
         rng.random((3, 5, 7)) > 0.3]
    x = [a.astype(np.float32) for a in x]
    x[3][0] = 0.0  # a wholly masked sample
    want = _keras_predict(theirs, x)
    want = want if isinstance(want, list) else [want]
    got = ours.predict(x, verbose=0)
    for a, b in zip(got if isinstance(got, list) else [got], want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)
    path = str(tmp_path / "masks.keras")  # (the masks' product: layers of the file's graph)
    ours.save(path)
    with _quiet():
        loaded = keras.models.load_model(path)
    again = _keras_predict(loaded, x)
    for a, b in zip(again if isinstance(again, list) else [again], want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)
    path = str(tmp_path / "theirs.keras")  # (Keras's call with the mask tensors as keywords)
    with _quiet():
        theirs.save(path)
    again = densitron.models.load_model(path).predict(x, verbose=0)
    for a, b in zip(again if isinstance(again, list) else [again], want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


def test_group_query_attention_over_masked_embeddings_as_keras():
    keras = _keras()

    def build(ns):
        ids = ns.Input((6,), dtype="int32")
        h = ns.layers.Embedding(20, 8, mask_zero=True)(ids)
        a = ns.layers.GroupQueryAttention(4, 4, 1)(h, h, use_causal_mask=True)
        return ns.Model(ids, ns.layers.GlobalAveragePooling1D()(ns.layers.Add()([h, a])))

    ours = build(densitron)
    with _quiet():
        theirs = build(keras)
    weights, rng = _random_weights(theirs, 8)
    ours.set_weights(weights)
    ids = rng.integers(1, 20, size=(5, 6))
    ids[:, 4:] = 0
    ids[0, :] = 0
    np.testing.assert_allclose(ours.predict(ids, verbose=0), _keras_predict(theirs, ids),
                               rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("case", ["key mask", "causal scores"])
def test_group_query_attention_gradients_against_finite_differences(case):
    model, _ = _gqa_model(densitron, case, 4, 2, 2)
    _, rng = _random_weights(model, 9)
    x = _gqa_inputs(case, rng, n=2)
    if "scores" in case:  # (the scores as a second output, trained too)
        y = [rng.normal(size=(2, 5, 6)).astype(np.float32),
             rng.random((2, 4, 5, 7)).astype(np.float32)]
    else:
        y = rng.normal(size=(2, 5, 6)).astype(np.float32)
    fd_check(model, x, y, "mse")


def test_group_query_attention_models_load_in_keras_and_back(tmp_path):
    keras = _keras()

    def build(ns):
        q, v, k, mask = ns.Input((5, 6)), ns.Input((7, 6)), ns.Input((7, 3)), ns.Input((5, 7))
        out, scores = ns.layers.GroupQueryAttention(3, 4, 2)(
            q, v, key=k, attention_mask=mask, use_causal_mask=True,
            return_attention_scores=True)
        out = ns.layers.GroupQueryAttention(2, 2, 1, use_bias=False, use_gate=True,
                                            sliding_window=2)(out, out)
        out = ns.layers.MultiHeadAttention(2, 3, use_gate=True, sliding_window=3)(
            out, v, use_causal_mask=True)  # (a value_dim apart fails in Keras's fused JAX path)
        return ns.Model([q, v, k, mask], [out, scores])

    ours, theirs = build(densitron), build(keras)
    weights, rng = _random_weights(theirs, 10)
    ours.set_weights(weights)
    x = _gqa_inputs("key mask", rng)
    want = _keras_predict(theirs, x)
    path = str(tmp_path / "ours.keras")
    ours.save(path)
    with _quiet():
        loaded = keras.models.load_model(path)
    for a, b in zip(_keras_predict(loaded, x), want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)
    path = str(tmp_path / "theirs.keras")
    with _quiet():
        theirs.save(path)
    for a, b in zip(densitron.models.load_model(path).predict(x, verbose=0), want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


def test_group_query_attention_weights_file_in_keras_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    q, v = densitron.Input((4, 6)), densitron.Input((3, 6))
    out = layers.GroupQueryAttention(2, 4, 2, use_gate=True)(q, v)
    model = densitron.Model([q, v], layers.MultiHeadAttention(2, 3, use_gate=True)(out, v))
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    with h5py.File(path, "r") as f:  # Keras's: each projection in its EinsumDense sublayer
        group = f["layers/grouped_query_attention"]
        assert sorted(group) == ["_dropout_layer", "_gate_dense", "_key_dense",
                                 "_output_dense", "_query_dense", "_softmax", "_value_dense",
                                 "vars"]
        assert group["_key_dense/vars/0"].shape == (6, 2, 2)
        assert group["_gate_dense/vars/0"].shape == (6, 4, 2)
        assert sorted(f["layers/multi_head_attention"]) == [
            "_dropout_layer", "_gate_dense", "_softmax", "key_dense", "output_dense",
            "query_dense", "value_dense", "vars"]
    before = model.get_weights()
    model.set_weights([w + 1.0 for w in before])
    model.load_weights(path)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_group_query_attention_with_dropout_trains_alike_on_one_and_two_threads():
    from test_threads import assert_trains_alike_on_one_and_two_threads

    def build():
        x = densitron.Input((10, 16))
        h = layers.GroupQueryAttention(8, 4, 2, dropout=0.2, seed=3, use_gate=True)(x, x)
        model = densitron.Model(x, layers.Dense(1)(layers.GlobalAveragePooling1D()(h)))
        model.compile(optimizer="adam", loss="mse")
        return model

    rng = np.random.default_rng(13)
    x = rng.normal(size=(96, 10, 16)).astype(np.float32)
    y = x[:, :, 0].mean(axis=1, keepdims=True)
    assert_trains_alike_on_one_and_two_threads(build, x, y, batch_size=16, epochs=2)
    model = build()
    history = model.fit(x, y, batch_size=16, epochs=6, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


def test_group_query_attention_on_arrays_as_keras_s_layer_call():
    rng = np.random.default_rng(14)
    q, v = rng.normal(size=(2, 5, 6)), rng.normal(size=(2, 4, 6))
    layer = layers.GroupQueryAttention(3, 4, 2)
    out, scores = layer(q, v, return_attention_scores=True)
    want, want_scores = gqa_reference(q, v, v, layer.get_weights(), 4, 2, zero=True)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_key_value_heads": 3}, "`num_query_heads` must be divisible by"),
    ({"flash_attention": True}, "flash_attention=True"),
    ({"flash_attention": True, "dropout": 0.1}, "Dropout is not supported when flash"),
    ({"sliding_window": 0}, "`sliding_window` must be `None` or a positive integer"),
    ({"head_dim": 0}, "head_dim"),
])
def test_what_group_query_attention_does_not_take_is_refused(kwargs, match):
    args = {"head_dim": 2, "num_query_heads": 4, "num_key_value_heads": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        layers.GroupQueryAttention(**args)


def test_group_query_attention_call_errors():
    q, v = densitron.Input((5, 6)), densitron.Input((7, 4))
    with pytest.raises(ValueError, match="last dimension of `query_shape` and `value_shape`"):
        layers.GroupQueryAttention(2, 2, 1)(q, v)
    with pytest.raises(ValueError, match="query_mask must have the shape"):
        layers.GroupQueryAttention(2, 2, 1)(q, q, query_mask=q)
    assert layers.GroupQueryAttention(2, 2, 1, flash_attention=False).get_config()[
        "num_key_value_heads"] == 1


# --- training against Keras on JAX ---------------------------------------------------------

def _training_model(ns, case):
    """A small regression model of each layer, its weights drawn from a fixed seed."""
    if case == "einsum":
        x = ns.Input((4, 6))
        h = ns.layers.EinsumDense("abc,cde->abde", (None, 3, 2), bias_axes="de",
                                  activation="tanh")(x)
        h = ns.layers.EinsumDense("abcd,cde->abe", (None, 5), bias_axes="e")(h)
        h = ns.layers.EinsumDense("abc,dc->abd", (None, 2), bias_axes="d",
                                  activity_regularizer=ns.regularizers.L2(0.01))(h)
        inputs, out = x, ns.layers.GlobalAveragePooling1D()(h)
    else:
        q, v = ns.Input((5, 6)), ns.Input((4, 6))
        attention = (ns.layers.GroupQueryAttention(3, 4, 2, use_gate=True, sliding_window=3,
                                                   activity_regularizer=ns.regularizers
                                                   .L2(0.01)) if case == "gqa" else
                     ns.layers.MultiHeadAttention(2, 3, activity_regularizer=ns.regularizers
                                                  .L1(0.01)))
        h = attention(q, v, use_causal_mask=True)
        inputs, out = [q, v], ns.layers.Flatten()(h)
    model = ns.Model(inputs, ns.layers.Dense(3)(out))
    rng = np.random.default_rng(11)
    model.set_weights([(rng.normal(size=tuple(w.shape)) * 0.4).astype(np.float32)
                       for w in model.weights])
    n = 24
    x = ([rng.normal(size=(n, 4, 6))] if case == "einsum"
         else [rng.normal(size=(n, 5, 6)), rng.normal(size=(n, 4, 6))])
    x = [a.astype(np.float32) for a in x]
    y = rng.normal(size=(n, 3)).astype(np.float32)
    return model, (x[0] if len(x) == 1 else x), y


def _training_losses(ns, case):
    """The losses of three epochs of Adam (evaluate's first, then fit's) as a list."""
    model, x, y = _training_model(ns, case)
    model.compile(optimizer=ns.optimizers.Adam(0.01), loss="mse")
    first = float(model.evaluate(x, y, batch_size=8, verbose=0))
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    return [first, *[float(v) for v in history["loss"]]]


TRAINING_CASES = ["einsum", "gqa", "mha"]


@pytest.fixture(scope="module")
def keras_training_losses():
    """_training_losses of each case on Keras on JAX (which trains), in one process of its
    own, by case."""
    return keras_on_jax_json(
        "import json, keras, test_einsum_gqa as t; "
        "print(json.dumps({c: t._training_losses(keras, c) for c in t.TRAINING_CASES}))")


@pytest.mark.parametrize("case", TRAINING_CASES)
def test_training_steps_match_keras_on_jax(case, keras_training_losses):
    ours = _training_losses(densitron, case)
    assert ours[-1] < ours[0]
    np.testing.assert_allclose(ours, keras_training_losses[case], rtol=2e-4)
