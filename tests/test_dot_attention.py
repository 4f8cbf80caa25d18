"""Keras's Attention (dot-product and concat scores) and AdditiveAttention layers: outputs and
weights against a float64 NumPy reference of Keras 3.15's formulas (use_scale, key apart from
value, causal and input masks, a fully masked sample), gradients against finite differences,
saving both ways (Keras 3.15's file of the masked causal model is checked in with its
predictions), refusals."""

import os

import densitron
import numpy as np
import pytest
from densitron import layers
from test_gradients_fd import fd_check

DATA = os.path.join(os.path.dirname(__file__), "data")


def reference(q, v, k=None, scale=1.0, causal=False, q_mask=None, v_mask=None, mode="dot",
              weight=1.0):
    """Keras's Attention.call in float64: softmax(scores, masked ones lowered by 1e9)·v, the
    query's masked steps zeroed; (output, weights). Scores: scale·q·kᵀ ("dot"),
    weight·Σ tanh(scale·(q + k)) ("concat"), Σ scale·tanh(q + k) ("additive", scale a
    vector)."""
    k = v if k is None else k
    pairs = q[:, :, None, :] + k[:, None, :, :]
    if mode == "dot":
        scores = scale * np.einsum("btd,bsd->bts", q, k)
    elif mode == "concat":
        scores = weight * np.tanh(scale * pairs).sum(-1)
    else:
        scores = (scale * np.tanh(pairs)).sum(-1)
    keep = np.ones(scores.shape, bool)
    if v_mask is not None:
        keep &= v_mask[:, None, :]
    if causal:
        t, s = scores.shape[1:]
        keep &= np.arange(s)[None, :] <= np.arange(t)[:, None]
    scores = np.where(keep, scores, scores - 1e9)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    out = np.einsum("bts,bsd->btd", w, v)
    if q_mask is not None:
        out = out * q_mask[:, :, None]
    return out, w


def arrays(seed=0, b=4, t=5, s=6, d=8, dv=3):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((b, t, d)).astype(np.float32),
            rng.standard_normal((b, s, dv)).astype(np.float32),
            rng.standard_normal((b, s, d)).astype(np.float32))


@pytest.mark.parametrize("use_key", [False, True])
@pytest.mark.parametrize("use_scale", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_outputs_and_weights_are_kerass(use_key, use_scale, causal):
    q, v, k = arrays()
    if not use_key:
        v = np.random.default_rng(1).standard_normal(q.shape[:1] + (6, 8)).astype(np.float32)
    ins = [densitron.Input(q.shape[1:]), densitron.Input(v.shape[1:])]
    if use_key:
        ins.append(densitron.Input(k.shape[1:]))
    layer = layers.Attention(use_scale=use_scale)
    out, w = layer(ins, use_causal_mask=causal, return_attention_scores=True)
    model = densitron.Model(ins, [out, w])
    scale = 1.0
    if use_scale:
        assert [x.shape for x in layer.weights] == [()]
        np.testing.assert_array_equal(layer.get_weights()[0], 1.0)  # Keras's "ones"
        scale = 1.7
        layer.set_weights([np.array(scale, np.float32)])
    got_out, got_w = model.predict([q, v] + ([k] if use_key else []), verbose=0)
    ref_out, ref_w = reference(q.astype(np.float64), v.astype(np.float64),
                               k.astype(np.float64) if use_key else None, scale, causal)
    np.testing.assert_allclose(got_out, ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_w, ref_w, rtol=1e-5, atol=1e-7)
    assert out.shape == (None, 5, v.shape[-1]) and w.shape == (None, 5, 6)


@pytest.mark.parametrize("causal", [False, True])
def test_input_masks_as_keras(causal):
    # The value's mask lowers its masked scores by 1e9 (a sample masked throughout keeps
    # the plain softmax, as Keras's scores - 1e9 do), the query's zeroes the output's steps
    # and stays on the output (a pooling after it averages the kept steps).
    rng = np.random.default_rng(2)
    v_ids = rng.integers(1, 20, (4, 6))
    v_ids[:, -2:] = 0
    v_ids[0] = 0
    q_ids = rng.integers(1, 20, (4, 5))
    q_ids[:, -1] = 0
    qi, vi = densitron.Input((5,), dtype="int32"), densitron.Input((6,), dtype="int32")
    qe, ve = layers.Embedding(20, 8, mask_zero=True), layers.Embedding(20, 8, mask_zero=True)
    out, w = layers.Attention()([qe(qi), ve(vi)], use_causal_mask=causal,
                                return_attention_scores=True)
    pooled = layers.GlobalAveragePooling1D()(out)
    model = densitron.Model([qi, vi], [pooled, w])
    got_pooled, got_w = model.predict([q_ids, v_ids], verbose=0)
    qt = qe.get_weights()[0][q_ids].astype(np.float64)
    vt = ve.get_weights()[0][v_ids].astype(np.float64)
    ref_out, ref_w = reference(qt, vt, causal=causal, q_mask=q_ids != 0, v_mask=v_ids != 0)
    kept = (q_ids != 0)[:, :, None]
    np.testing.assert_allclose(got_w, ref_w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got_pooled, (ref_out * kept).sum(1) / kept.sum(1), rtol=1e-5,
                               atol=1e-6)


def test_gradients_against_finite_differences():
    rng = np.random.default_rng(3)
    inp = densitron.Input((4, 3))
    h = layers.Dense(3, bias_initializer="random_normal")(inp)
    key = layers.Dense(3)(inp)
    att = layers.Attention(use_scale=True)([h, inp, key], use_causal_mask=True)
    out = layers.Dense(2)(layers.Flatten()(att))
    fd_check(densitron.Model(inp, out), rng.normal(size=(5, 4, 3)), rng.normal(size=(5, 2)),
             "mse")


def test_dropout_drops_weights_in_training_only():
    q, v, k = arrays(4)
    ins = [densitron.Input(q.shape[1:]), densitron.Input(v.shape[1:]),
           densitron.Input(k.shape[1:])]
    model = densitron.Model(ins, layers.Attention(dropout=0.5, seed=1)(ins))
    plain = reference(q.astype(np.float64), v.astype(np.float64), k.astype(np.float64))[0]
    np.testing.assert_allclose(model.predict([q, v, k], verbose=0), plain, rtol=1e-5,
                               atol=1e-6)
    trained = np.asarray(model([q, v, k], training=True))
    assert np.abs(trained - plain).max() > 1e-3


def test_saved_both_ways_with_keras(tmp_path):
    # Keras 3.15 (JAX) saved tests/data/keras_attention.keras from the model below, with
    # its predictions; densitron's file of the same model loads in Keras too (checked there).
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 5, 8)).astype(np.float32)
    ids = rng.integers(0, 20, (16, 6))
    keras_model = densitron.saving.load_model(os.path.join(DATA, "keras_attention.keras"))
    expected = np.load(os.path.join(DATA, "keras_attention_predictions.npy"))
    np.testing.assert_allclose(keras_model.predict([x, ids], verbose=0)[0], expected,
                               rtol=1e-5, atol=1e-6)
    att = keras_model.get_layer("att")
    assert att.use_scale and att._signature == (True, True)
    keras_model.save(tmp_path / "again.keras")
    again = densitron.saving.load_model(tmp_path / "again.keras")
    np.testing.assert_array_equal(again.predict([x, ids], verbose=0)[0],
                                  keras_model.predict([x, ids], verbose=0)[0])
    config = again.get_config()
    node = next(e for e in config["layers"] if e["name"] == "att")
    assert node["config"]["use_scale"] is True


@pytest.mark.parametrize("kind", ["concat", "concat_scaled", "additive", "additive_plain"])
def test_additive_scores_are_kerass(kind):
    # Attention(score_mode="concat"): weight·Σ tanh(scale·(q + k)), two trained scalars
    # (scale with use_scale), initially 1; AdditiveAttention: Σ scale·tanh(q + k), scale a
    # vector of the features (glorot_uniform) with use_scale, its default. Keras 3.15 gives the
    # same to 3e-7 and the same weights in the same order.
    q, v, k = arrays(5)
    ins = [densitron.Input(q.shape[1:]), densitron.Input(v.shape[1:]),
           densitron.Input(k.shape[1:])]
    layer = {"concat": lambda: layers.Attention(score_mode="concat"),
             "concat_scaled": lambda: layers.Attention(score_mode="concat", use_scale=True),
             "additive": lambda: layers.AdditiveAttention(),
             "additive_plain": lambda: layers.AdditiveAttention(use_scale=False)}[kind]()
    out, w = layer(ins, use_causal_mask=kind.endswith("scaled"), return_attention_scores=True)
    model = densitron.Model(ins, [out, w])
    shapes = {"concat": [()], "concat_scaled": [(), ()], "additive": [(8,)],
              "additive_plain": []}[kind]
    assert [x.shape for x in layer.weights] == shapes
    values = [np.random.default_rng(i).standard_normal(s).astype(np.float32)
              for i, s in enumerate(shapes)]
    layer.set_weights(values)
    mode = "additive" if kind.startswith("additive") else "concat"
    if kind == "concat":
        scale, weight = 1.0, values[0]
    elif kind == "concat_scaled":
        scale, weight = values
    else:
        scale, weight = (values[0] if values else 1.0), 1.0
    got_out, got_w = model.predict([q, v, k], verbose=0)
    ref_out, ref_w = reference(*(a.astype(np.float64) for a in (q, v, k)), scale=scale,
                               causal=kind.endswith("scaled"), mode=mode, weight=weight)
    np.testing.assert_allclose(got_out, ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_w, ref_w, rtol=1e-5, atol=1e-7)
    config = layer.get_config()
    assert ("score_mode" in config) == (mode == "concat")
    assert type(layer).from_config(config).get_config() == config


@pytest.mark.parametrize("make", [lambda: layers.Attention(score_mode="concat", use_scale=True),
                                  lambda: layers.AdditiveAttention()])
def test_additive_gradients_against_finite_differences(make):
    rng = np.random.default_rng(6)
    inp = densitron.Input((3, 4))
    h = layers.Dense(4, bias_initializer="random_normal")(inp)
    att = make()([h, inp])
    out = layers.Dense(2)(layers.Flatten()(att))
    fd_check(densitron.Model(inp, out), rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 2)),
             "mse")


def test_refusals():
    with pytest.raises(ValueError, match="Expected one of.*Received: score_mode=bad"):
        layers.Attention(score_mode="bad")
    with pytest.raises(ValueError, match="dropout.*Received: dropout=1.0"):
        layers.Attention(dropout=1.0)
    q = densitron.Input((5, 8))
    with pytest.raises(ValueError, match="list of inputs.*Received"):
        layers.Attention()(q)
    with pytest.raises(ValueError, match="one last axis. Received"):
        layers.Attention()([q, densitron.Input((6, 3))])
    with pytest.raises(ValueError, match=r"mask=\[query_mask, value_mask\]. Received"):
        layers.Attention()([q, q], mask=densitron.Input((5,)))
    with pytest.raises(ValueError, match=r"steps, \(None, 5\). Received: mask.shape=\(None, 6\)"):
        layers.Attention()([q, q], mask=[None, densitron.Input((6,))])


def test_profile_counts_the_attention_products_as_gemm():
    # No Dense in the model: its GEMM time is the attention's batched products (the scores
    # q·kᵀ and their weighting of v, forward and backward), which the step profile once
    # counted as elementwise work.
    rng = np.random.default_rng(3)
    q = densitron.Input((12, 16))
    v = densitron.Input((12, 16))
    out = layers.GlobalAveragePooling1D()(layers.Attention()([q, v]))
    model = densitron.Model([q, v], out)
    model.compile(optimizer="sgd", loss="mse")
    x = [rng.normal(size=(64, 12, 16)), rng.normal(size=(64, 12, 16))]
    h = model.fit(x, rng.normal(size=(64, 16)), batch_size=16, verbose=0, profile=True)
    assert h.profile["gemm"] > 0.0
