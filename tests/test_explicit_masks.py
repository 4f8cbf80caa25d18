"""Masks as Keras 3.15 passes them (keras.io's "Understanding masking & padding" guide):
layer(x, mask=m) for the layers whose call takes a mask, a symbolic tensor's `_keras_mask`, a
custom layer's call(inputs, mask=None) and compute_mask(inputs, mask), and eager calls on
arrays that carry a mask. Against Keras on its numpy backend (same weights), a NumPy
reference, finite differences, the implicit mask of Embedding(mask_zero=True), saving and
loading (Keras's files too) and the refusals."""

import densitron
import numpy as np
import pytest
from densitron import layers, ops
from keras_subprocess import run_keras_on_jax
from test_gradients_fd import fd_check

V, T, U = 9, 6, 4


def ids_and_mask(rows=7, seed=0):
    """Ids padded with zeros, and a mask of other kept steps (no row all masked)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, V, (rows, T))
    ids[np.arange(T)[None, :] >= rng.integers(1, T + 1, rows)[:, None]] = 0
    mask = np.arange(T)[None, :] < rng.integers(1, T + 1, rows)[:, None]
    mask[0] = [True, False, True, False, True, True]
    return ids, mask


def explicit_model(lib, head):
    """An unmasked Embedding, then `head` called with mask= a boolean Input."""
    ly = lib.layers
    a = ly.Input((T,), dtype="int32", name="ids")
    m = ly.Input((T,), dtype="bool", name="mask")
    e = ly.Embedding(V, U, embeddings_initializer="random_normal")(a)
    if head == "lstm_seq":
        h = ly.LSTM(3, return_sequences=True)(e, mask=m)
        out = ly.Dense(2, activation="softmax")(h)
    elif head == "gru":
        out = ly.Dense(2, activation="softmax")(ly.GRU(3)(e, mask=m))
    elif head == "simple_rnn":
        out = ly.Dense(2, activation="softmax")(ly.SimpleRNN(3)(e, mask=m))
    elif head == "pool":
        out = ly.Dense(2, activation="softmax")(ly.GlobalAveragePooling1D()(e, mask=m))
    elif head == "bidirectional":
        out = ly.Dense(2, activation="softmax")(ly.Bidirectional(ly.LSTM(2))(e, mask=m))
    elif head == "attention":
        q = ly.Dense(U)(e)
        h = ly.Attention()([q, e], mask=[None, m])
        out = ly.Dense(2, activation="softmax")(ly.GlobalAveragePooling1D()(h))
    else:
        raise AssertionError(head)
    return lib.Model([a, m], out)


HEADS = ["lstm_seq", "gru", "simple_rnn", "pool", "bidirectional", "attention"]


@pytest.mark.parametrize("head", HEADS)
def test_explicit_masks_as_keras(keras, head):
    ours, theirs = explicit_model(densitron, head), explicit_model(keras, head)
    # (the mask's Input listed where Keras's graph, which holds it as the call's argument, has
    # it)
    def order(model):  # (the Inputs by name, the other layers by class)
        return [layer.name if type(layer).__name__ == "InputLayer" else type(layer).__name__
                for layer in model.layers]

    assert order(ours) == order(theirs)
    theirs.set_weights(ours.get_weights())
    ids, mask = ids_and_mask()
    x = [ids, mask]
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (len(ids), T) if head == "lstm_seq" else len(ids))
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    # (a sequence output carries the mask: it weighs the loss, in Keras as here)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0),
                               rtol=1e-5)


def test_a_masked_step_changes_nothing():
    model = explicit_model(densitron, "gru")
    ids, mask = ids_and_mask()
    other = ids.copy()
    other[~mask] = (other[~mask] % (V - 1)) + 1
    np.testing.assert_array_equal(model.predict([ids, mask], verbose=0),
                                  model.predict([other, mask], verbose=0))
    pooled = explicit_model(densitron, "pool")
    table, kernel, bias = [w.astype(np.float64) for w in pooled.get_weights()]
    keep = mask[..., None]
    logits = (table[ids] * keep).sum(1) / keep.sum(1) @ kernel + bias
    want = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(pooled.predict([ids, mask], verbose=0),
                               want / want.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)


def implicit_and_explicit():
    """Embedding(mask_zero=True) then LSTM, and the same with an unmasked Embedding and the
    LSTM given ops.not_equal(ids, 0) as its mask: one computation."""
    a = layers.Input((T,), dtype="int32")
    implicit = densitron.Model(a, layers.Dense(2)(layers.LSTM(3)(
        layers.Embedding(V, U, mask_zero=True)(a))))
    b = layers.Input((T,), dtype="int32")
    h = layers.LSTM(3)(layers.Embedding(V, U)(b), mask=ops.not_equal(b, 0))
    explicit = densitron.Model(b, layers.Dense(2)(h))
    explicit.set_weights(implicit.get_weights())
    return implicit, explicit


def test_an_explicit_mask_trains_as_the_implicit_one():
    implicit, explicit = implicit_and_explicit()
    assert [type(layer).__name__ for layer in explicit.layers] == [
        "InputLayer", "Embedding", "LSTM", "Dense"]
    ids, _ = ids_and_mask(rows=40, seed=2)
    y = np.random.default_rng(3).standard_normal((40, 2)).astype(np.float32)
    np.testing.assert_array_equal(implicit.predict(ids, verbose=0),
                                  explicit.predict(ids, verbose=0))
    for model in (implicit, explicit):
        model.compile(optimizer="adam", loss="mse")
        model.fit(ids, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for got, want in zip(explicit.get_weights(), implicit.get_weights()):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("threads", [1, 2])
def test_gradients_against_finite_differences(threads):
    densitron.set_num_threads(threads)
    model = explicit_model(densitron, "lstm_seq")
    ids, mask = ids_and_mask(rows=5, seed=4)
    y = np.eye(2)[np.random.default_rng(5).integers(0, 2, (5, T))]
    fd_check(model, [ids, mask.astype(np.float32)], y, "categorical_crossentropy")


def test_saved_with_the_mask_argument(tmp_path):
    ids, mask = ids_and_mask()
    model = explicit_model(densitron, "lstm_seq")
    path = str(tmp_path / "explicit.keras")
    model.save(path)
    np.testing.assert_array_equal(densitron.saving.load_model(path).predict(
        [ids, mask], verbose=0), model.predict([ids, mask], verbose=0))
    # a mask computed by ops.not_equal, not Embedding's own: kept as the call's argument
    _, explicit = implicit_and_explicit()
    path = str(tmp_path / "computed.keras")
    explicit.save(path)
    np.testing.assert_array_equal(densitron.saving.load_model(path).predict(ids, verbose=0),
                                  explicit.predict(ids, verbose=0))
    config = explicit.get_config()
    lstm = next(entry for entry in config["layers"] if entry["class_name"] == "LSTM")
    assert "mask" in lstm["inbound_nodes"][0]["kwargs"]


_KERAS_FILES = """
import sys, numpy as np, test_explicit_masks as t
ours, theirs_path, out = sys.argv[1:]
ids, mask = t.ids_and_mask()
np.save(out + "_read.npy", keras.saving.load_model(ours).predict([ids, mask], verbose=0))
theirs = t.explicit_model(keras, "bidirectional")
theirs.save(theirs_path)
np.save(out + "_theirs.npy", theirs.predict([ids, mask], verbose=0))
"""


def test_keras_files_with_the_mask_argument(tmp_path):
    # Keras reads the call's mask keyword from densitron's file, and densitron from Keras's
    ids, mask = ids_and_mask()
    model = explicit_model(densitron, "lstm_seq")
    ours, theirs = str(tmp_path / "ours.keras"), str(tmp_path / "theirs.keras")
    model.save(ours)
    run_keras_on_jax(_KERAS_FILES, ours, theirs, str(tmp_path / "out"))
    np.testing.assert_allclose(np.load(tmp_path / "out_read.npy"),
                               model.predict([ids, mask], verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(densitron.saving.load_model(theirs).predict([ids, mask],
                                                                           verbose=0),
                               np.load(tmp_path / "out_theirs.npy"), rtol=1e-5, atol=1e-6)


def test_eager_calls_read_the_mask_their_arrays_carry():
    densitron.utils.set_random_seed(1)
    ids, _ = ids_and_mask(rows=4, seed=6)
    embedding = layers.Embedding(V, U, mask_zero=True)
    embedded = embedding(ids)
    np.testing.assert_array_equal(embedded._keras_mask, ids != 0)
    lstm = layers.LSTM(3)
    masked = lstm(embedded)
    np.testing.assert_array_equal(masked, lstm(np.asarray(embedded), mask=ids != 0))
    assert not np.allclose(masked, lstm(np.asarray(embedded)))
    pooled = layers.GlobalAveragePooling1D()(embedded)
    keep = (ids != 0)[..., None]
    np.testing.assert_allclose(pooled, (np.asarray(embedded) * keep).sum(1) / keep.sum(1),
                               rtol=1e-6)
    dense = layers.Dense(2)(embedded)  # (a layer that passes the mask on)
    np.testing.assert_array_equal(dense._keras_mask, ids != 0)
    with pytest.warns(UserWarning, match="will therefore destroy the mask"):  # (as Keras)
        assert getattr(layers.Flatten()(embedded), "_keras_mask", None) is None


class TemporalSoftmax(layers.Layer):
    """The guide's layer that reads its mask (over `axis`: the guide's -1, or the steps)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.axis = axis

    def call(self, inputs, mask=None):
        assert mask is not None
        broadcast_float_mask = ops.expand_dims(ops.cast(mask, "float32"), -1)
        inputs_exp = ops.exp(inputs) * broadcast_float_mask
        inputs_sum = ops.sum(inputs_exp * broadcast_float_mask, axis=self.axis, keepdims=True)
        return inputs_exp / inputs_sum


class CustomEmbedding(layers.Layer):
    """The guide's embedding with its own compute_mask."""

    def __init__(self, input_dim, output_dim, mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.output_dim, self.mask_zero = input_dim, output_dim, mask_zero

    def build(self, input_shape):
        self.embeddings = self.add_weight(shape=(self.input_dim, self.output_dim),
                                          initializer="random_normal")

    def call(self, inputs):
        return ops.take(self.embeddings, ops.cast(inputs, "int32"))

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0) if self.mask_zero else None


class WrappedEmbedding(layers.Layer):
    """An Embedding of no mask inside a layer that gives one by its compute_mask."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embedding = layers.Embedding(V, U)

    def call(self, inputs):
        return self.embedding(inputs)

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0)


class TemporalSplit(layers.Layer):
    """The guide's layer that splits its input and its mask along the steps."""

    def call(self, inputs):
        return ops.split(inputs, 2, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else ops.split(mask, 2, axis=1)


def test_custom_layers_read_and_give_masks():
    ids, _ = ids_and_mask(seed=7)
    for shape, axis in (((None,), -1), ((T,), -1)):  # (the guide's, of any length or not)
        inp = layers.Input(shape, dtype="int32")
        h = layers.Dense(1)(layers.Embedding(V, 5, mask_zero=True)(inp))
        assert h._keras_mask is h._keras_mask
        model = densitron.Model(inp, TemporalSoftmax(axis)(h))
        table, kernel, bias = model.get_weights()
        z = np.exp(table[ids] @ kernel + bias) * (ids != 0)[..., None]
        with np.errstate(invalid="ignore"):  # (the guide's 0/0 at a masked step, as Keras's)
            want = z / z.sum(axis, keepdims=True)
        np.testing.assert_allclose(model.predict(ids, verbose=0), want, rtol=1e-5)
    # compute_mask of a layer of one's own: the LSTM after it reads it
    inp = layers.Input((T,), dtype="int32")
    ours = densitron.Model(inp, layers.LSTM(2)(WrappedEmbedding()(inp)))
    inp2 = layers.Input((T,), dtype="int32")
    builtin = densitron.Model(inp2, layers.LSTM(2)(layers.Embedding(V, U, mask_zero=True)(
        inp2)))
    builtin.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours.predict(ids, verbose=0), builtin.predict(ids, verbose=0),
                               rtol=1e-6)
    custom = CustomEmbedding(V, U, mask_zero=True)  # (the guide's, on arrays: its ops.take
    assert custom(ids).shape == (len(ids), T)  # of no axis takes from the flat table, as Keras)
    np.testing.assert_array_equal(custom.compute_mask(ids), ids != 0)
    # on arrays: the split's masks come with the halves
    x = np.random.default_rng(8).standard_normal((3, 6, 2)).astype(np.float32)
    x[1, 4:] = 0
    first, second = TemporalSplit()(layers.Masking()(x))
    np.testing.assert_array_equal(first._keras_mask, np.ones((3, 3), bool))
    np.testing.assert_array_equal(second._keras_mask, [[1, 1, 1], [1, 0, 0], [1, 1, 1]])


def test_split_along_the_steps_with_its_mask():
    # the guide's TemporalSplit on symbolic tensors: ops.split's halves, each with its half of
    # the mask, read by an LSTM apiece as the halves with Masking of their own
    x = layers.Input((T, 2))
    first, second = TemporalSplit()(layers.Masking()(x))
    lstm = layers.LSTM(3)
    model = densitron.Model(x, [lstm(first), lstm(second)])
    half = layers.Input((T // 2, 2))
    alone = densitron.Model(half, lstm(layers.Masking()(half)))
    values = np.random.default_rng(15).standard_normal((5, T, 2)).astype(np.float32)
    values[1, 4:] = 0
    values[2, 1:3] = 0
    got = model.predict(values, verbose=0)
    np.testing.assert_allclose(got[0], alone.predict(values[:, :3], verbose=0), rtol=1e-6)
    np.testing.assert_allclose(got[1], alone.predict(values[:, 3:], verbose=0), rtol=1e-6)
    parts = ops.split(x, [1, 4], axis=1)
    assert [p.shape for p in parts] == [(None, 1, 2), (None, 3, 2), (None, 2, 2)]
    with pytest.raises(ValueError, match="equal division. Received: indices_or_sections=4"):
        ops.split(x, 4, axis=1)
    with pytest.raises(ValueError, match="an axis other than the batch's. Received: axis=0"):
        ops.split(x, 2)


def test_a_custom_layer_given_a_mask_argument():
    class Pool(layers.Layer):  # a masked mean by hand, given its mask
        def call(self, inputs, mask=None):
            m = ops.expand_dims(ops.cast(mask, "float32"), -1)
            return ops.sum(inputs * m, axis=1) / ops.sum(m, axis=1)

    x = layers.Input((T, U))
    m = layers.Input((T,))
    with pytest.warns(UserWarning, match="will therefore destroy the mask"):  # (as Keras:
        pooled = Pool()(x, mask=m)  # its output has none, as it does not support masking)
    model = densitron.Model([x, m], pooled)
    values = np.random.default_rng(9).standard_normal((5, T, U)).astype(np.float32)
    _, mask = ids_and_mask(rows=5, seed=9)
    keep = mask[..., None]
    np.testing.assert_allclose(model.predict([values, mask], verbose=0),
                               (values * keep).sum(1) / keep.sum(1), rtol=1e-5)
    # a Lambda passes it to a function that takes one
    lam = layers.Lambda(lambda t, mask: t * ops.expand_dims(mask, -1))
    with pytest.warns(UserWarning, match="will therefore destroy the mask"):
        model = densitron.Model([x, m], lam(x, mask=m))
    np.testing.assert_allclose(model.predict([values, mask], verbose=0), values * keep)


def test_ops_make_no_masks_and_layers_of_ones_own_give_keras_s():
    # Keras's operations make tensors without masks, and a layer of one's own gives its
    # outputs the masks its compute_mask or supports_masking says, not its sublayers'
    ids = layers.Input((T,), dtype="int32")
    e = layers.Embedding(V, U, mask_zero=True)(ids)
    for t in (ops.exp(e), e * 2.0, e + e, ops.relu(e), e[:, :, :2]):
        assert t._keras_mask is None

    class Plain(layers.Layer):  # (its Dense passes the mask on; the layer does not)
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    class Passing(Plain):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

    with pytest.warns(UserWarning, match="will therefore destroy the mask"):
        assert Plain()(e)._keras_mask is None
    assert Passing()(e)._mask is ids
    # a layer's activation written in Python (traced as ops): the layer passes the mask on
    assert layers.Dense(3, activation=lambda t: ops.relu(t) * 2.0)(e)._mask is ids
    # an LSTM after an op reads no mask, as Keras's (the padded steps count): as after an
    # unmasked Embedding, unlike after the Activation layer, which passes the mask on
    def model(mask_zero, via_op):
        i = layers.Input((T,), dtype="int32")
        h = layers.Embedding(V, U, mask_zero=mask_zero)(i)
        h = ops.exp(h) if via_op else layers.Activation("exponential")(h)
        return densitron.Model(i, layers.LSTM(2)(h))

    by_op, unmasked, masked = model(True, True), model(False, True), model(True, False)
    for other in (unmasked, masked):
        other.set_weights(by_op.get_weights())
    padded, _ = ids_and_mask(seed=13)
    got = by_op.predict(padded, verbose=0)
    np.testing.assert_array_equal(got, unmasked.predict(padded, verbose=0))
    assert not np.allclose(got, masked.predict(padded, verbose=0))


def test_keras_mask_of_symbolic_tensors():
    a = layers.Input((T,), dtype="int32")
    e = layers.Embedding(V, U, mask_zero=True)(a)
    assert layers.Input((T, U))._keras_mask is None
    model = densitron.Model(a, [layers.Dense(2)(e), e._keras_mask])
    ids, _ = ids_and_mask(seed=10)
    np.testing.assert_array_equal(model.predict(ids, verbose=0)[1], (ids != 0).astype(float))
    # TimeDistributed passes a mask it is given on
    x, m = layers.Input((T, U)), layers.Input((T,))
    out = layers.TimeDistributed(layers.Dense(3))(x, mask=m)
    assert out._mask is m


def test_refusals():
    x = layers.Input((T, U))
    m = layers.Input((T,))
    with pytest.raises(TypeError, match="takes only its inputs"):
        layers.Dense(2)(x, mask=m)
    with pytest.raises(ValueError, match=r"steps, \(None, 6\). Received: mask.shape=\(None, 5\)"):
        layers.LSTM(2)(x, mask=layers.Input((5,)))
    with pytest.raises(TypeError, match="mask of a symbolic input must be a symbolic tensor"):
        layers.GlobalAveragePooling1D()(x, mask=np.ones((2, T), bool))
    with pytest.raises(TypeError, match="mask of an array input must be an array"):
        layers.LSTM(2)(np.ones((2, T, U), np.float32), mask=m)
    with pytest.raises(ValueError, match=r"Received: mask.shape=\(2, 5\)"):
        layers.LSTM(2)(np.ones((2, T, U), np.float32), mask=np.ones((2, 5), bool))
    with pytest.raises(ValueError, match="would use the mask"):  # (not run yet: Softmax's)
        layers.Softmax()(x, mask=m)


def softmax_model(lib):
    x = lib.layers.Input((3, 5))
    m = lib.layers.Input((3, 5), dtype="bool")
    return lib.Model([x, m], lib.layers.Softmax()(lib.layers.Dense(5)(x), mask=m))


def softmax_data(rows=4):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((rows, 3, 5)).astype(np.float32)
    m = rng.random((rows, 3, 5)) > 0.4
    m[0, 0] = False  # (a row masked whole: zeros, as Keras's)
    return x, m


def test_softmax_of_a_mask_of_its_inputs_shape_as_keras(keras, tmp_path):
    ours, theirs = softmax_model(densitron), softmax_model(keras)
    theirs.set_weights(ours.get_weights())
    x, m = softmax_data()
    got = ours.predict([x, m], verbose=0)
    np.testing.assert_allclose(got, theirs.predict([x, m], verbose=0), rtol=1e-6, atol=1e-7)
    assert not got[0, 0].any() and not got[~m].any()
    kernel, bias = ours.get_weights()
    z = np.where(m, x.astype(np.float64) @ kernel + bias, -np.inf)
    with np.errstate(invalid="ignore"):
        want = np.nan_to_num(np.exp(z - z.max(-1, keepdims=True)) /
                             np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(layers.Softmax()(x, mask=m),  # (on arrays)
                               keras.layers.Softmax()(x, mask=m), rtol=1e-6, atol=1e-7)
    path = str(tmp_path / "softmax.keras")
    ours.save(path)
    np.testing.assert_array_equal(densitron.saving.load_model(path).predict([x, m], verbose=0),
                                  got)


def test_softmax_of_a_mask_gradients_against_finite_differences():
    x, m = softmax_data(rows=3)
    y = np.random.default_rng(12).random((3, 3, 5))
    fd_check(softmax_model(densitron), [x, m.astype(np.float32)], y, "mse")


def translation_encoder(lib):
    """keras.io's English-to-Spanish translation example's encoder as written (its
    PositionalEmbedding's compute_mask, its TransformerEncoder's call reading the mask as a
    (batch, 1, S) attention_mask), pooled into a classifier."""
    ly, K = lib.layers, lib.ops

    class TransformerEncoder(ly.Layer):
        def __init__(self, embed_dim, dense_dim, num_heads, **kwargs):
            super().__init__(**kwargs)
            self.attention = ly.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.dense_proj = lib.Sequential([ly.Dense(dense_dim, activation="relu"),
                                              ly.Dense(embed_dim)])
            self.layernorm_1 = ly.LayerNormalization()
            self.layernorm_2 = ly.LayerNormalization()
            self.supports_masking = True

        def call(self, inputs, mask=None):
            padding_mask = None if mask is None else K.cast(mask[:, None, :], dtype="int32")
            attention_output = self.attention(query=inputs, value=inputs, key=inputs,
                                              attention_mask=padding_mask)
            proj_input = self.layernorm_1(inputs + attention_output)
            proj_output = self.dense_proj(proj_input)
            return self.layernorm_2(proj_input + proj_output)

    class PositionalEmbedding(ly.Layer):
        def __init__(self, sequence_length, vocab_size, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.token_embeddings = ly.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.position_embeddings = ly.Embedding(input_dim=sequence_length,
                                                    output_dim=embed_dim)

        def call(self, inputs):
            positions = K.arange(0, K.shape(inputs)[-1], 1)
            return self.token_embeddings(inputs) + self.position_embeddings(positions)

        def compute_mask(self, inputs, mask=None):
            return K.not_equal(inputs, 0)

    inp = lib.Input(shape=(T + 2,), dtype="int64")
    x = TransformerEncoder(U, 16, 2)(PositionalEmbedding(T + 2, V, U)(inp))
    return lib.Model(inp, ly.Dense(3, activation="softmax")(ly.GlobalAveragePooling1D()(x)))


_TRANSLATION = """
import sys, pickle, numpy as np, test_explicit_masks as t
weights, ids, out = sys.argv[1:]
theirs = t.translation_encoder(keras)
theirs.set_weights(pickle.load(open(weights, "rb")))
np.save(out, theirs.predict(np.load(ids), verbose=0))
print([type(layer).__name__ for layer in theirs.layers])
"""


def test_the_translation_examples_encoder_as_keras(tmp_path):
    import pickle

    ours = translation_encoder(densitron)
    ids = np.random.default_rng(14).integers(1, V, (6, T + 2))
    ids[:, 5:] = 0
    ids[0, 2:] = 0
    with open(tmp_path / "w.pkl", "wb") as f:
        pickle.dump(ours.get_weights(), f)
    np.save(tmp_path / "ids.npy", ids)
    printed = run_keras_on_jax(_TRANSLATION, str(tmp_path / "w.pkl"), str(tmp_path / "ids.npy"),
                               str(tmp_path / "out.npy"))
    assert printed.strip().splitlines()[-1] == str([type(layer).__name__
                                                    for layer in ours.layers])
    got = ours.predict(ids, verbose=0)
    np.testing.assert_allclose(got, np.load(tmp_path / "out.npy"), rtol=1e-5, atol=1e-6)
    # the padding's embedding changes nothing: the mask leaves the padded steps out
    weights = ours.get_weights()
    table = next(w for w in weights if w.shape == (V, U))
    table[0] += 5.0
    ours.set_weights(weights)
    np.testing.assert_allclose(ours.predict(ids, verbose=0), got, rtol=1e-5, atol=1e-6)
