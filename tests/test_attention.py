"""MultiHeadAttention and ops.matmul of two symbolic tensors (the engine's batched matrix
product per sample and head): Keras's values and weights on the same weights, gradients
against finite differences, training alike on one and two threads, saving, and the
arguments densitron does not take yet refused clearly."""

import os

os.environ.setdefault("KERAS_BACKEND", "numpy")  # as tests/test_keras_parity.py

import numpy as np
import pytest
from test_gradients_fd import fd_check
from test_threads import assert_trains_alike_on_one_and_two_threads

import densitron
from densitron import layers as L
from densitron import ops
from densitron.models import Model


def _keras():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "numpy":
        pytest.skip("parity tests run Keras on its numpy backend")
    return keras


def _keras_predict(model, x):
    """Keras's predict, its numpy backend's Conv1D warning of NumPy 2's __array__ let pass."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return model.predict(x, verbose=0)


def _same_weights(theirs, ours, seed, scale=0.5):
    """Random weights of Keras's shapes set in both models; the generator, for the inputs."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=tuple(w.shape)).astype(np.float32) * scale
               for w in theirs.weights]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    return rng


def _attention_model(ns_layers, Input, Model_, separate_key=False, **kwargs):
    q, v = Input((5, 8)), Input((7, 6))
    inputs = [q, v]
    if separate_key:
        k = Input((7, 3))
        inputs.append(k)
        out = ns_layers.MultiHeadAttention(num_heads=3, key_dim=4, **kwargs)(q, v, key=k)
    else:
        out = ns_layers.MultiHeadAttention(num_heads=3, key_dim=4, **kwargs)(q, v)
    return Model_(inputs, out)


@pytest.mark.parametrize("separate_key, kwargs", [
    (False, {}), (True, {}), (False, {"value_dim": 2, "output_shape": 5}),
    (False, {"use_bias": False}), (True, {"dropout": 0.3, "value_dim": 6}),
])
def test_multi_head_attention_computes_as_keras(separate_key, kwargs):
    keras = _keras()
    theirs = _attention_model(keras.layers, keras.Input, keras.Model, separate_key, **kwargs)
    ours = _attention_model(L, densitron.Input, Model, separate_key, **kwargs)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.weights]
    rng = _same_weights(theirs, ours, 0)
    x = [rng.normal(size=(4, 5, 8)), rng.normal(size=(4, 7, 6))]
    if separate_key:
        x.append(rng.normal(size=(4, 7, 3)))
    x = [a.astype(np.float32) for a in x]
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=2e-6)


def _masked_model(ns_layers, Input, Model_, causal, with_mask, separate_key):
    q, v = Input((5, 8)), Input((5, 6))
    inputs, kwargs = [q, v], {"use_causal_mask": causal}
    if separate_key:
        kwargs["key"] = Input((5, 3))
        inputs.append(kwargs["key"])
    if with_mask:
        kwargs["attention_mask"] = Input((5, 5))
        inputs.append(kwargs["attention_mask"])
    out = ns_layers.MultiHeadAttention(num_heads=2, key_dim=4)(q, v, **kwargs)
    return Model_(inputs, out)


@pytest.mark.parametrize("causal, with_mask, separate_key", [
    (True, False, False), (False, True, False), (True, True, True)])
def test_masked_attention_computes_as_keras(causal, with_mask, separate_key):
    # Keras's where(mask, scores, -1e9) before the softmax: the causal mask, a (batch, T, S)
    # attention_mask (some rows wholly masked: uniform weights, as Keras's), both.
    keras = _keras()
    theirs = _masked_model(keras.layers, keras.Input, keras.Model, causal, with_mask,
                           separate_key)
    ours = _masked_model(L, densitron.Input, Model, causal, with_mask, separate_key)
    rng = _same_weights(theirs, ours, 6)
    x = [rng.normal(size=(4, 5, 8)), rng.normal(size=(4, 5, 6))]
    if separate_key:
        x.append(rng.normal(size=(4, 5, 3)))
    if with_mask:
        mask = (rng.random((4, 5, 5)) > 0.4).astype(np.float32)
        mask[0, 2] = 0.0
        x.append(mask)
    x = [a.astype(np.float32) for a in x]
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=2e-6)
    if with_mask:  # saved and loaded, the call's mask and causality come back
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"mha_{os.getpid()}.keras")
        ours.save(path)
        np.testing.assert_array_equal(densitron.models.load_model(path).predict(x, verbose=0),
                                      ours.predict(x, verbose=0))
        os.remove(path)


@pytest.mark.parametrize("scores", [False, True])
def test_attention_mask_values_other_than_0_and_1_attend_as_keras(scores):
    # Keras casts attention_mask to bool: any value not 0 (0.5, -1, 2, NaN) attends, 0 and
    # -0.0 do not (densitron took > 0.5: 0.5 and -1 masked). Found by fuzzing.
    keras = _keras()

    def build(ns_layers, Input, Model_):
        q, mask = Input((3, 4)), Input((3, 3))
        out = ns_layers.MultiHeadAttention(num_heads=2, key_dim=2)(
            q, q, attention_mask=mask, return_attention_scores=scores)
        return Model_([q, mask], list(out) if scores else out)

    theirs, ours = build(keras.layers, keras.Input, keras.Model), build(L, densitron.Input, Model)
    rng = _same_weights(theirs, ours, 3, scale=1.0)
    q = rng.normal(size=(5, 3, 4)).astype(np.float32)
    mask = np.array([[[0.5] * 3] * 3, [[-1.0] * 3] * 3, [[1.0, 0.0, 2.0]] * 3,
                     [[0.3, -0.0, -2.0]] * 3, [[np.nan, 0.0, 1e-30]] * 3], np.float32)
    got = ours.predict([q, mask], verbose=0)
    as_bool = ours.predict([q, (mask != 0).astype(np.float32)], verbose=0)
    for a, b, c in zip(*(x if scores else [x] for x in
                         (got, as_bool, theirs.predict([q, mask], verbose=0)))):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=2e-6)


def test_attention_scores_returned_as_keras(tmp_path):
    # return_attention_scores: the softmax's weights (before dropout), (batch, heads, T, S),
    # with a causal mask here; a second output of the model, saved and loaded.
    keras = _keras()

    def build(ns_layers, Input, Model_):
        q, v = Input((4, 6)), Input((4, 5))
        out, scores = ns_layers.MultiHeadAttention(num_heads=2, key_dim=3, dropout=0.2)(
            q, v, return_attention_scores=True, use_causal_mask=True)
        return Model_([q, v], [out, scores])

    theirs, ours = build(keras.layers, keras.Input, keras.Model), build(L, densitron.Input, Model)
    rng = _same_weights(theirs, ours, 8, scale=1.0)
    x = [rng.normal(size=(3, 4, 6)).astype(np.float32),
         rng.normal(size=(3, 4, 5)).astype(np.float32)]
    for a, b in zip(ours.predict(x, verbose=0), theirs.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)
    path = str(tmp_path / "scores.keras")
    ours.save(path)
    for a, b in zip(densitron.models.load_model(path).predict(x, verbose=0),
                    ours.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)


def test_masked_attention_gradients_against_finite_differences():
    q = L.Input((3, 4))
    mask = L.Input((3, 3))
    out = L.MultiHeadAttention(num_heads=2, key_dim=3)(q, q, attention_mask=mask,
                                                         use_causal_mask=True)
    model = Model([q, mask], L.Dense(2)(L.Flatten()(out)))
    rng = np.random.default_rng(7)
    m = (rng.random((4, 3, 3)) > 0.3).astype(np.float32)
    fd_check(model, [rng.normal(size=(4, 3, 4)), m], rng.normal(size=(4, 2)), "mse")


@pytest.mark.parametrize("kwargs", [{}, {"value_dim": 2, "output_shape": 3}])
def test_multi_head_attention_gradients_against_finite_differences(kwargs):
    q, v = L.Input((3, 4)), L.Input((5, 4))
    out = L.MultiHeadAttention(num_heads=2, key_dim=3, **kwargs)(q, v, v)
    model = Model([q, v], L.Dense(2)(L.Flatten()(out)))
    rng = np.random.default_rng(2)
    fd_check(model, [rng.normal(size=(4, 3, 4)), rng.normal(size=(4, 5, 4))],
             rng.normal(size=(4, 2)), "mse")


@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_of_two_symbolic_tensors_values_and_gradients(ta, tb):
    # Per sample and leading index, as NumPy's matmul; either operand transposed.
    x = L.Input((3, 4))
    a = L.Reshape((2, 3, 2))(L.Dense(4)(x))
    b = L.Reshape((2, 2, 3))(L.Dense(4)(x))
    c = ops.matmul(L.Permute((1, 3, 2))(a) if ta else a, L.Permute((1, 3, 2))(b) if tb else b,
                   transpose_a=ta, transpose_b=tb)
    model = Model(x, L.Dense(2)(L.Flatten()(c)))
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(5, 3, 4)).astype(np.float32)
    inner = Model(x, [a, b, c])
    pa, pb, pc = inner.predict(xs, verbose=0)
    np.testing.assert_allclose(pc, pa @ pb, rtol=1e-5, atol=1e-6)
    fd_check(model, xs, rng.normal(size=(5, 2)), "mse")
    with pytest.raises(ValueError, match="inner dimensions differ"):
        ops.matmul(a, a)


def _self_attention(dropout=0.1):
    inputs = L.Input((10, 16))
    attended = L.MultiHeadAttention(num_heads=2, key_dim=8, dropout=dropout)(inputs, inputs)
    h = L.LayerNormalization()(inputs + attended)
    model = Model(inputs, L.Dense(3, activation="softmax")(L.GlobalAveragePooling1D()(h)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_self_attention_trains_alike_on_one_and_two_threads_and_saves(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(96, 10, 16)).astype(np.float32)
    y = (x[:, :, 0].mean(axis=1) > 0).astype(np.int64) + (x[:, 0, 1] > 1)
    assert_trains_alike_on_one_and_two_threads(_self_attention, x, y, batch_size=16,
                                               epochs=3)
    model = _self_attention()
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    path = str(tmp_path / "attention.keras")
    model.save(path)
    loaded = densitron.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("call, match", [
    (lambda mha, q: mha(q, q, value_mask=q), "value_mask must have the shape \\(batch, 4\\)"),
    (lambda mha, q: mha(q, q, attention_mask=L.Input((4, 3))), "attention_mask must have"),
    (lambda mha, q: (mha(q, q), mha(q, q, use_causal_mask=True)), "of its first call"),
    (lambda mha, q: mha(q), "Received: value=None"),
    (lambda mha, q: L.MultiHeadAttention(2, 4, attention_axes=(2,)), "attention_axes=\\(2,\\)"),
    (lambda mha, q: L.MultiHeadAttention(0, 4), "num_heads=0"),
    (lambda mha, q: L.MultiHeadAttention(2, 4, dropout=1.0), "dropout=1.0"),
])
def test_what_multi_head_attention_does_not_take_is_refused(call, match):
    q = L.Input((4, 6))
    with pytest.raises(ValueError, match=match):
        call(L.MultiHeadAttention(num_heads=2, key_dim=4), q)


def _embedded_attention(ns, Input, Model_, case):
    """Models whose attention reads Embedding(mask_zero=True) outputs: the query's and value's
    ids mask their steps (Keras's AND of query × value masks), the output keeps the query's
    mask, which a residual Add, LayerNormalization and GlobalAveragePooling1D take on."""
    L_ = ns.layers if hasattr(ns, "layers") else ns
    ids = Input((6,), dtype="int32")
    h = L_.Embedding(20, 8, mask_zero=True)(ids)
    inputs, outputs = [ids], []
    if case == "self":
        a = L_.MultiHeadAttention(num_heads=2, key_dim=4)(h, h)
    elif case == "block":  # a Transformer block: residual, normalization, causal mask
        a = L_.MultiHeadAttention(num_heads=2, key_dim=4)(h, h, use_causal_mask=True)
        a = L_.LayerNormalization()(L_.Add()([h, a]))
    elif case == "cross":  # query and value from different id inputs, value unmasked key
        other = Input((4,), dtype="int32")
        inputs.append(other)
        v = L_.Embedding(20, 8, mask_zero=True)(other)
        a = L_.MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3)(h, v)
    else:  # "scores": dropout and returned weights: Keras's masked Softmax path
        a, scores = L_.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.3)(
            h, h, return_attention_scores=True)
        outputs.append(scores)
    pooled = L_.GlobalAveragePooling1D()(a)
    return Model_(inputs, [L_.Dense(3)(pooled)] + outputs)


def _padded_ids(rng, n, steps):
    """Ids with trailing padding (0), at least one real step a sample."""
    x = rng.integers(1, 20, (n, steps))
    for i, keep in enumerate(rng.integers(1, steps + 1, n)):
        x[i, keep:] = 0
    return x


@pytest.mark.parametrize("case", ["self", "block", "cross", "scores"])
def test_attention_over_masked_embeddings_computes_as_keras(case, tmp_path):
    keras = _keras()
    theirs = _embedded_attention(keras, keras.Input, keras.Model, case)
    ours = _embedded_attention(densitron, densitron.Input, Model, case)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.weights]
    rng = _same_weights(theirs, ours, 11, scale=0.7)
    x = [_padded_ids(rng, 7, 6)] + ([_padded_ids(rng, 7, 4)] if case == "cross" else [])
    got, want = ours.predict(x, verbose=0), _keras_predict(theirs, x)
    for a, b in zip(*(v if isinstance(v, list) else [v] for v in (got, want))):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    if case == "scores":  # padded query rows: every weight 0, as Keras's masked Softmax
        pad = x[0] == 0
        assert np.all(got[1].transpose(0, 2, 1, 3)[pad] == 0.0)
    path = str(tmp_path / f"{case}.keras")
    ours.save(path)
    again = densitron.models.load_model(path).predict(x, verbose=0)
    for a, b in zip(*(v if isinstance(v, list) else [v] for v in (again, got))):
        np.testing.assert_array_equal(a, b)


def test_attention_over_masking_computes_as_keras():
    # Masking's mask (steps whose features all equal mask_value) masks the attention as
    # Embedding's does.
    keras = _keras()

    def build(ns, Input, Model_):
        x = Input((5, 4))
        h = ns.layers.Masking(0.0)(x)
        a = ns.layers.MultiHeadAttention(num_heads=2, key_dim=3)(h, h)
        return Model_(x, ns.layers.Dense(2)(ns.layers.GlobalAveragePooling1D()(a)))

    theirs, ours = build(keras, keras.Input, keras.Model), build(densitron, densitron.Input, Model)
    rng = _same_weights(theirs, ours, 12)
    x = rng.normal(size=(6, 5, 4)).astype(np.float32)
    x[:, 3:] = 0.0
    x[0, 1:] = 0.0
    np.testing.assert_allclose(ours.predict(x, verbose=0), _keras_predict(theirs, x),
                               rtol=2e-5, atol=2e-6)


def test_masked_embedding_attention_gradients_and_training():
    ids = L.Input((4,), dtype="int32")
    h = L.Embedding(9, 3, mask_zero=True)(ids)
    a = L.MultiHeadAttention(num_heads=2, key_dim=2)(h, h)
    model = Model(ids, L.Dense(2)(L.GlobalAveragePooling1D()(L.Add()([h, a]))))
    rng = np.random.default_rng(4)
    x = _padded_ids(rng, 5, 4) % 9
    x[:, 0] = rng.integers(1, 9, 5)
    fd_check(model, [x], rng.normal(size=(5, 2)), "mse")
    # padding changes nothing: a padded step's id, embedding and position are not read
    model.compile("adam", "mse")
    base = model.predict(x, verbose=0)
    table = model.get_weights()
    table[0] = table[0].copy()
    table[0][0] += 5.0  # the padding id's row
    model.set_weights(table)
    np.testing.assert_allclose(model.predict(x, verbose=0), base, rtol=1e-5, atol=1e-6)
    model.fit(x, rng.normal(size=(5, 2)), epochs=2, verbose=0)


def test_masks_that_cannot_combine_are_refused():
    a, b = L.Input((4,), dtype="int32"), L.Input((4,), dtype="int32")
    ea = L.Embedding(9, 3, mask_zero=True)(a)
    ids = L.Input((2, 4), dtype="int32")  # (merges: test_mask_merges.py)
    grid = L.Embedding(9, 3, mask_zero=True)(ids)
    with pytest.raises(ValueError, match="along axis 1"):
        L.Concatenate(axis=1)([grid, grid])
    # (a value_mask passed joins the inputs' own masks, Keras's AND: see test_einsum_gqa.py)
    assert L.MultiHeadAttention(num_heads=1, key_dim=2)(ea, ea, value_mask=b).shape == (None, 4, 3)


def test_keras_io_text_transformer_runs_as_written():
    # keras.io's "Text classification with Transformer" (examples/keras_guides.py): position
    # embeddings as self.pos_emb(ops.arange(maxlen)) added to the token embeddings (the table
    # a trainable weight added to every sample), a transformer block, pooling; it trains.
    from keras_guides import text_transformer

    model = text_transformer(densitron, vocab_size=100, maxlen=20)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 100, (256, 20))
    y = (np.isin(x, np.arange(10)).sum(axis=1) > 2).astype(np.int64)
    tokens, positions = model.get_weights()[:2]  # (Keras's order: tokens, then positions)
    assert tokens.shape == (100, 32) and positions.shape == (20, 32)
    added = next(layer for layer in model._graph_layers() if isinstance(layer, L.WeightAdd))
    inner = Model(model.inputs, added.output)
    np.testing.assert_allclose(inner.predict(x[:8], verbose=0), tokens[x[:8]] + positions,
                               rtol=1e-6)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert not np.array_equal(model.get_weights()[1], positions)  # trained too


def test_position_table_gradient_and_constant_ids_refused():
    class AddPositions(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.pos_emb = L.Embedding(input_dim=3, output_dim=2)

        def call(self, x):
            return x + self.pos_emb(np.arange(3))

    inputs = densitron.Input((3, 2))
    model = Model(inputs, L.Dense(1)(L.Flatten()(AddPositions()(inputs))))
    rng = np.random.default_rng(5)
    fd_check(model, rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 1)), "mse")

    class Some(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.emb = L.Embedding(input_dim=5, output_dim=2)

        def call(self, x):
            return x + self.emb(np.array([0, 2, 4]))

    with pytest.raises(ValueError, match="takes all of them in order, ops.arange\\(5\\)"):
        Some()(densitron.Input((3, 2)))


def test_pointwise_conv1d_computes_as_keras():  # (the others: test_convolution.py)
    keras = _keras()

    def build(ns_layers, Input, Model_):
        inputs = Input((6, 3))
        return Model_(inputs, ns_layers.Conv1D(4, kernel_size=1, activation="relu")(inputs))

    theirs, ours = build(keras.layers, keras.Input, keras.Model), build(L, densitron.Input, Model)
    assert [w.shape for w in ours.get_weights()] == [(1, 3, 4), (4,)]
    rng = _same_weights(theirs, ours, 9)
    x = rng.normal(size=(5, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), _keras_predict(theirs, x),
                               rtol=1e-6, atol=1e-7)
    config = ours.layers[1].get_config()
    assert config["filters"] == 4 and config["kernel_size"] == (1,) and "units" not in config


def test_keras_io_timeseries_transformer_computes_as_keras_and_trains():
    # keras.io's "Timeseries classification with a Transformer model", smaller: encoder
    # blocks of MultiHeadAttention and pointwise Conv1D feed-forwards (examples/keras_guides.py).
    from keras_guides import timeseries_transformer

    keras = _keras()
    sizes = {"input_shape": (20, 1), "head_size": 8, "num_heads": 2, "ff_dim": 4,
             "num_transformer_blocks": 2, "mlp_units": (16,)}
    theirs, ours = timeseries_transformer(keras, **sizes), timeseries_transformer(densitron,
                                                                                  **sizes)
    rng = _same_weights(theirs, ours, 10, scale=0.3)
    x = rng.normal(size=(64, 20, 1)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), _keras_predict(theirs, x),
                               rtol=1e-5, atol=1e-6)
    y = (x[:, :5, 0].mean(axis=1) > 0).astype(np.int64)
    ours.compile(loss="sparse_categorical_crossentropy",
                 optimizer=densitron.optimizers.Adam(learning_rate=1e-3),
                 metrics=["sparse_categorical_accuracy"])
    history = ours.fit(x, y, validation_split=0.25, epochs=10, batch_size=16, verbose=0,
                       callbacks=[densitron.callbacks.EarlyStopping(
                           patience=10, restore_best_weights=True)]).history
    assert history["loss"][-1] < history["loss"][0]


def _attention_variants(ns, Input, Model_, case):
    """Models whose MultiHeadAttention calls take each of Keras's call arguments."""
    L_ = ns.layers
    if case == "masked_ids":
        ids = Input((6,), dtype="int32")
        h = L_.Embedding(20, 8, mask_zero=True)(ids)
        a = L_.MultiHeadAttention(num_heads=2, key_dim=4)(h, h)
        return Model_(ids, L_.Dense(2)(L_.GlobalAveragePooling1D()(L_.Add()([h, a]))))
    q, v = Input((5, 8)), Input((7, 6))
    inputs, kwargs, outs = [q, v], {}, 1
    if case in ("key", "all"):
        kwargs["key"] = Input((7, 3))
        inputs.append(kwargs["key"])
    if case in ("mask", "all"):
        kwargs["attention_mask"] = Input((5, 7))
        inputs.append(kwargs["attention_mask"])
    if case in ("causal", "all"):
        kwargs["use_causal_mask"] = True
    if case in ("scores", "all"):
        kwargs["return_attention_scores"] = True
        outs = 2
    out = L_.MultiHeadAttention(num_heads=2, key_dim=4)(q, v, **kwargs)
    return Model_(inputs, list(out) if outs == 2 else out)


def _variant_inputs(case, rng):
    if case == "masked_ids":
        return [_padded_ids(rng, 4, 6)]
    x = [rng.normal(size=(4, 5, 8)), rng.normal(size=(4, 7, 6))]
    if case in ("key", "all"):
        x.append(rng.normal(size=(4, 7, 3)))
    if case in ("mask", "all"):
        x.append((rng.random((4, 5, 7)) > 0.3).astype(np.float32))
    return [a.astype(np.float32) if a.dtype != np.int64 else a for a in x]


@pytest.mark.parametrize("case", ["plain", "key", "mask", "causal", "scores", "all",
                                  "masked_ids"])
def test_attention_models_load_in_keras_and_back(case, tmp_path):
    # A .keras file densitron writes records each call as Keras does (query and value as
    # arguments; key, attention_mask, use_causal_mask, return_attention_scores as keywords),
    # so Keras loads it; and densitron loads Keras's.
    keras = _keras()
    ours = _attention_variants(densitron, densitron.Input, Model, case)
    theirs = _attention_variants(keras, keras.Input, keras.Model, case)
    rng = _same_weights(theirs, ours, 13)
    x = _variant_inputs(case, rng)

    x = x if len(x) > 1 else x[0]

    def outputs(model, loader_keras):
        got = _keras_predict(model, x) if loader_keras else model.predict(x, verbose=0)
        return got if isinstance(got, list) else [got]

    import warnings

    path = str(tmp_path / "ours.keras")
    ours.save(path)
    with warnings.catch_warnings():  # (Keras's numpy-backend variables and NumPy 2's __array__)
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = keras.models.load_model(path)
    for a, b in zip(outputs(loaded, True), outputs(ours, False)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    path = str(tmp_path / "theirs.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs.save(path)
    for a, b in zip(outputs(densitron.models.load_model(path), False), outputs(theirs, True)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_attention_weights_files_in_keras_layout_and_the_earlier_flat_one(tmp_path):
    h5py = pytest.importorskip("h5py")
    q, v = densitron.Input((4, 6)), densitron.Input((3, 5))
    model = Model([q, v], L.MultiHeadAttention(num_heads=2, key_dim=3)(q, v))
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    with h5py.File(path, "r") as f:  # Keras's: each projection in its EinsumDense sublayer
        assert sorted(f["layers/multi_head_attention"]) == [
            "_dropout_layer", "_softmax", "key_dense", "output_dense", "query_dense",
            "value_dense", "vars"]
        assert f["layers/multi_head_attention/query_dense/vars/0"].shape == (6, 2, 3)
    flat = str(tmp_path / "flat.weights.h5")  # densitron 0.1 kept the eight variables flat
    with h5py.File(flat, "w") as f:
        group = f.create_group("layers/multi_head_attention/vars")
        for i, w in enumerate(model.get_weights()):
            group.create_dataset(str(i), data=w + 1.0)
    model.load_weights(flat)
    np.testing.assert_array_equal(model.get_weights()[0], h5py.File(flat, "r")[
        "layers/multi_head_attention/vars/0"][()])
    model.load_weights(path)


def test_keras_attention_called_with_named_query_and_value_loads(tmp_path):
    import warnings

    keras = _keras()
    q, v = keras.Input((5, 8)), keras.Input((7, 6))
    theirs = keras.Model([q, v], keras.layers.MultiHeadAttention(2, 4)(
        query=q, value=v, use_causal_mask=True))
    path = str(tmp_path / "named.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs.save(path)
    rng = np.random.default_rng(14)
    x = [rng.normal(size=(3, 5, 8)).astype(np.float32),
         rng.normal(size=(3, 7, 6)).astype(np.float32)]
    np.testing.assert_allclose(densitron.models.load_model(path).predict(x, verbose=0),
                               _keras_predict(theirs, x), rtol=2e-5, atol=2e-6)


def test_composite_layers_are_listed_as_keras_lists_them():
    # The keras.io Transformer's custom layers: model.layers, get_layer, the weights' order
    # and the summary's rows are Keras's (one row a composite layer, no "Connected to" for a
    # chain), so Keras's weights load by set_weights. Keras's numpy backend cannot build this
    # model (it calls the Embedding on random floats), so Keras 3.15's lists (JAX backend, the
    # same code) are written out here.
    from keras_guides import text_transformer

    ours = text_transformer(densitron, vocab_size=2000, maxlen=50)
    kinds = [type(layer).__name__ for layer in ours.layers]
    assert kinds == ["InputLayer", "TokenAndPositionEmbedding", "TransformerBlock",
                     "GlobalAveragePooling1D", "Dropout", "Dense", "Dropout", "Dense"]
    assert [w.shape for w in ours.get_weights()] == [
        (2000, 32), (50, 32), (32, 2, 32), (2, 32), (32, 2, 32), (2, 32), (32, 2, 32), (2, 32),
        (2, 32, 32), (32,), (32, 32), (32,), (32, 32), (32,), (32,), (32,), (32,), (32,),
        (32, 20), (20,), (20, 2), (2,)]
    block = ours.layers[2]
    assert ours.get_layer(block.name) is block and block.count_params() == 10656
    lines = []
    ours.summary(print_fn=lambda text: lines.extend(text.splitlines()), line_length=150)
    rows = [ln.split("│")[1].strip() for ln in lines if ln.startswith("│")]
    assert rows == [f"{layer.name} ({kind})" for layer, kind in zip(ours.layers, kinds)]
    assert "Connected to" not in lines[2]
    assert [ln.split("│")[3].strip() for ln in lines if ln.startswith("│")][1:3] == [
        "65,600", "10,656"]
