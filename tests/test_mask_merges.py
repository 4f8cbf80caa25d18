"""Merges of masked inputs as Keras 3.15 runs them: Add, Subtract and Average
(Merge.compute_mask) and Concatenate along the last axis (Concatenate.compute_mask) keep a step
where any input keeps it; Multiply, Maximum and Minimum besides change their values where an
input is masked; Concatenate along the steps joins the masks. Against Keras on its numpy
backend (predict, evaluate with the mask weighing a sequence output's loss), a float64 NumPy
reference, finite differences of the masked loss, 1 vs 2 threads, saving, nested models and
the refusals."""

import densitron
import numpy as np
import pytest
from densitron import layers
from test_gradients_fd import fd_check
from test_threads import assert_trains_alike_on_one_and_two_threads

V, T, U = 9, 6, 4
MERGES = ["Add", "Subtract", "Average", "Concatenate"]


def ids(rows=11, seed=0):
    """Two id arrays padded to different lengths (a row of each padded whole, a 0 inside)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(1, V, (rows, T)), rng.integers(1, V, (rows, T))
    a[np.arange(T)[None, :] >= rng.integers(0, T + 1, rows)[:, None]] = 0
    b[np.arange(T)[None, :] >= rng.integers(0, T + 1, rows)[:, None]] = 0
    a[0], b[1], a[2, 1] = 0, 0, 0
    a[3], b[3, 2:] = 0, 0  # (steps 2.. masked in both)
    a[:, 0] = np.where(b[:, 0] == 0, np.maximum(a[:, 0], 1), a[:, 0])  # (no row all masked)
    a[0, 0] = 0
    b[0, 0] = max(b[0, 0], 1)
    return a, b


def build(lib, merge, head="pool", masking=False):
    """Two masked branches merged by `merge`, then `head`: "pool" (GlobalAveragePooling1D and
    a softmax), "lstm" (LSTM and a softmax) or "seq" (a per-step softmax, the loss weighed by
    the mask). masking: the second branch a Masking layer over float steps."""
    ly = lib.layers
    a = ly.Input((T,), dtype="int32", name="a")
    ea = ly.Embedding(V, U, mask_zero=True, embeddings_initializer="random_normal")(a)
    if masking:
        b = ly.Input((T, U), name="b")
        eb = ly.Masking(0.0)(b)
    else:
        b = ly.Input((T,), dtype="int32", name="b")
        eb = ly.Embedding(V, U, mask_zero=True, embeddings_initializer="random_normal")(b)
    h = getattr(ly, merge)()([ea, eb])
    h = ly.Dense(5, activation="tanh", bias_initializer="random_normal")(h)
    if head == "pool":
        h = ly.GlobalAveragePooling1D()(h)
    elif head == "lstm":
        h = ly.LSTM(3)(h)
    out = ly.Dense(3, activation="softmax")(h)
    return lib.Model([a, b], out)


def inputs(masking, rows=11, seed=0):
    a, b = ids(rows, seed)
    if not masking:
        return a, b
    x = np.random.default_rng(seed + 1).standard_normal((rows, T, U)).astype(np.float32)
    x[b == 0] = 0.0
    return a, x


def kept(a, b, masking):
    return (a != 0) | (np.any(b != 0, axis=-1) if masking else b != 0)


@pytest.mark.parametrize("merge", MERGES)
def test_pooled_as_the_masked_mean_of_the_or(merge):
    model = build(densitron, merge)
    a, b = ids()
    ta, tb, k1, b1, k2, b2 = [w.astype(np.float64) for w in model.get_weights()]
    x1, x2 = ta[a], tb[b]
    h = {"Add": x1 + x2, "Subtract": x1 - x2, "Average": (x1 + x2) / 2,
         "Concatenate": np.concatenate([x1, x2], axis=-1)}[merge]
    z = np.tanh(h @ k1 + b1)
    keep = kept(a, b, False)[..., None]
    pooled = (z * keep).sum(axis=1) / keep.sum(axis=1)
    logits = pooled @ k2 + b2
    want = np.exp(logits - logits.max(axis=1, keepdims=True))
    want /= want.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict([a, b], verbose=0), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", [("Add", "pool", False), ("Concatenate", "lstm", False),
                                  ("Average", "seq", False), ("Add", "lstm", True),
                                  ("Concatenate", "seq", True), ("Subtract", "seq", False)])
def test_as_keras(keras, case):
    merge, head, masking = case
    ours, theirs = build(densitron, merge, head, masking), build(keras, merge, head, masking)
    theirs.set_weights(ours.get_weights())
    x = list(inputs(masking))
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, (len(x[0]), T) if head == "seq" else len(x[0]))
    for model, lib in ((ours, densitron), (theirs, keras)):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    got = ours.evaluate(x, y, verbose=0)
    want = theirs.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if head == "seq":  # the mask weighs the loss: a step neither input keeps changes nothing
        a, b = x
        y2 = y.copy()
        y2[~kept(a, b, masking)] = (y2[~kept(a, b, masking)] + 1) % 3
        np.testing.assert_allclose(ours.evaluate(x, y2, verbose=0), got, rtol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", [("Add", "pool", False), ("Concatenate", "seq", True)])
def test_gradients_against_finite_differences(threads, case):
    merge, head, masking = case
    densitron.set_num_threads(threads)
    model = build(densitron, merge, head, masking)
    x = list(inputs(masking, rows=8))
    rng = np.random.default_rng(4)
    y = np.eye(3)[rng.integers(0, 3, (8, T) if head == "seq" else 8)]
    fd_check(model, x, y, "categorical_crossentropy")


def test_one_and_two_threads_bitwise():
    a, b = ids(rows=600, seed=5)
    y = np.eye(3, dtype=np.float32)[np.random.default_rng(6).integers(0, 3, 600)]

    def build_compiled():  # (wide enough for its steps to be split)
        ia, ib = layers.Input((T,), dtype="int32"), layers.Input((T,), dtype="int32")
        ea = layers.Embedding(V, 64, mask_zero=True)(ia)
        eb = layers.Embedding(V, 64, mask_zero=True)(ib)
        h = layers.Dense(128, activation="relu")(layers.Concatenate()([ea, eb]))
        h = layers.Add()([layers.LSTM(8, return_sequences=True)(h), layers.Dense(8)(h)])
        out = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling1D()(h))
        model = densitron.Model([ia, ib], out)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model

    assert_trains_alike_on_one_and_two_threads(build_compiled, [a, b], y, batch_size=64,
                                               epochs=2)


def test_the_or_is_no_layer_of_the_model_and_saves(tmp_path):
    model = build(densitron, "Add", "seq")
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer", "InputLayer", "Embedding", "Embedding", "Add", "Dense", "Dense"]
    assert "mask_or" not in model.to_json()
    x = list(ids())
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    y = np.random.default_rng(2).integers(0, 3, (len(x[0]), T))
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    again = densitron.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_array_equal(again.evaluate(x, y, verbose=0),
                                  model.evaluate(x, y, verbose=0))
    # a model of the graph from the merged tensor on, and one nested in another, apply it too
    inner_in = layers.Input((T, U))
    inner = densitron.Model(inner_in, layers.GlobalAveragePooling1D()(inner_in))
    a, b = layers.Input((T,), dtype="int32"), layers.Input((T,), dtype="int32")
    ea, eb = layers.Embedding(V, U, mask_zero=True)(a), layers.Embedding(V, U, mask_zero=True)(b)
    merged = layers.Add()([ea, eb])
    outer = densitron.Model([a, b], inner(merged))
    ta, tb = outer.get_weights()
    keep = kept(*x, False)[..., None]
    want = ((ta[x[0]] + tb[x[1]]) * keep).sum(axis=1) / keep.sum(axis=1)
    np.testing.assert_allclose(outer.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    # made inside a nested model and carried out of it: applied by a layer and the loss
    maker = densitron.Model([a, b], merged)
    c, d = layers.Input((T,), dtype="int32"), layers.Input((T,), dtype="int32")
    carried = maker([c, d])
    pooled = densitron.Model([c, d], layers.GlobalAveragePooling1D()(carried))
    np.testing.assert_allclose(pooled.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    tagger = densitron.Model([c, d], carried)
    tagger.compile(optimizer="sgd", loss="mse")
    values = (ta[x[0]] + tb[x[1]]).astype(np.float64)
    want_loss = ((values**2).mean(axis=-1) * keep[..., 0]).sum() / keep.sum()
    np.testing.assert_allclose(tagger.evaluate(x, np.zeros((len(x[0]), T, U)), verbose=0),
                               want_loss, rtol=1e-5)


def test_merges_of_one_mask_or_an_unmasked_input_keep_kerass_rules():
    a, b = layers.Input((T,), dtype="int32"), layers.Input((T,), dtype="int32")
    ea, eb = layers.Embedding(V, U, mask_zero=True)(a), layers.Embedding(V, U, mask_zero=True)(b)
    assert layers.Add()([ea, layers.Dense(U)(ea)])._mask is a  # one mask: itself
    assert layers.Concatenate()([ea, layers.Dense(2)(ea)])._mask is a
    unmasked = layers.Input((T, U))
    assert layers.Add()([ea, unmasked])._mask is None  # Keras: none when one has none
    assert layers.Concatenate()([ea, unmasked])._mask is None  # all steps kept
    both = layers.Add()([ea, eb])._mask
    assert both._node.inputs == [a, b]
    assert layers.Add()([layers.Add()([ea, eb]), ea])._mask._node.inputs == [a, b]


def masked_values_model(lib, merge, variant, head):
    """Multiply, Maximum or Minimum of masked inputs: "two" differently masked ones, "shared"
    (one mask), "partial" (the second unmasked) or "three" (two masks, the third unmasked
    between them); then a per-step output ("seq") or GlobalAveragePooling1D ("pool")."""
    ly = lib.layers
    a, b = ly.Input((T,), dtype="int32"), ly.Input((T,), dtype="int32")
    ea = ly.Embedding(V, U, mask_zero=True, embeddings_initializer="random_normal")(a)
    eb = ly.Embedding(V, U, mask_zero=True, embeddings_initializer="random_normal")(b)
    x = ly.Input((T, U))
    unmasked = ly.Dense(U, bias_initializer="random_normal")(x)
    shared = ly.Dense(U, activation="tanh", bias_initializer="random_normal")(ea)
    parts = {"two": [ea, eb], "shared": [ea, shared], "partial": [ea, unmasked],
             "three": [ea, unmasked, eb]}[variant]
    h = getattr(ly, merge)()(parts)
    out = ly.Dense(3)(h if head == "seq" else ly.GlobalAveragePooling1D()(h))
    return lib.Model([a, b, x], out)


@pytest.mark.parametrize("merge", ["Multiply", "Maximum", "Minimum"])
@pytest.mark.parametrize("variant", ["two", "shared", "partial", "three"])
def test_masked_values_as_keras(keras, merge, variant):
    a, b = ids()
    x = [a, b, np.random.default_rng(7).standard_normal((len(a), T, U)).astype(np.float32)]
    y = np.random.default_rng(8).standard_normal((len(a), T, 3)).astype(np.float32)
    for head in ("seq", "pool"):
        ours = masked_values_model(densitron, merge, variant, head)
        theirs = masked_values_model(keras, merge, variant, head)
        theirs.set_weights(ours.get_weights())
        np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                                   rtol=1e-5, atol=1e-6)
        if head == "seq":  # (the loss weighed by the output's mask, if any)
            ours.compile(optimizer="sgd", loss="mse")
            theirs.compile(optimizer="sgd", loss="mse")
            np.testing.assert_allclose(ours.evaluate(x, y, verbose=0),
                                       theirs.evaluate(x, y, verbose=0), rtol=1e-5)


@pytest.mark.parametrize("merge", ["Multiply", "Maximum"])
def test_masked_values_gradients_against_finite_differences(merge):
    a, b = ids(rows=8)
    x = [a, b, np.random.default_rng(7).standard_normal((8, T, U)).astype(np.float32)]
    model = masked_values_model(densitron, merge, "three", "pool")
    fd_check(model, x, np.random.default_rng(9).standard_normal((8, 3)), "mse")


def steps_model(lib, variant, head):
    """Concatenate(axis=1) of sequences of 6 and 4 steps ("two", both masked), or of a masked
    one and 3 unmasked steps ("partial"), or of three ("three": the 4, the 3, the 6); then a
    per-step output ("seq"), LSTM or GlobalAveragePooling1D ("pool")."""
    ly = lib.layers
    a, b = ly.Input((T,), dtype="int32"), ly.Input((T - 2,), dtype="int32")
    x = ly.Input((3, U))
    ea = ly.Embedding(V, U, mask_zero=True, embeddings_initializer="random_normal")(a)
    eb = ly.Embedding(V, U, mask_zero=True, embeddings_initializer="random_normal")(b)
    plain = ly.Dense(U, bias_initializer="random_normal")(x)
    parts = {"two": [ea, eb], "partial": [ea, plain], "three": [eb, plain, ea]}[variant]
    h = ly.Concatenate(axis=1)(parts)
    if head == "lstm":
        h = ly.LSTM(5)(h)
    elif head == "pool":
        h = ly.GlobalAveragePooling1D()(h)
    return lib.Model([a, b, x], ly.Dense(3)(h))


@pytest.mark.parametrize("case", [("two", "seq"), ("two", "lstm"), ("two", "pool"),
                                  ("partial", "seq"), ("partial", "lstm"),
                                  ("partial", "pool"), ("three", "seq")])
def test_joined_along_the_steps_as_keras(keras, case):
    variant, head = case
    a, b = ids()
    b = b[:, : T - 2].copy()
    b[:, 0] = np.maximum(b[:, 0], 1)  # (no row all masked)
    x = [a, b, np.random.default_rng(7).standard_normal((len(a), 3, U)).astype(np.float32)]
    ours, theirs = steps_model(densitron, variant, head), steps_model(keras, variant, head)
    theirs.set_weights(ours.get_weights())
    got = ours.predict(x, verbose=0)
    np.testing.assert_allclose(got, theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    if head == "seq":
        y = np.random.default_rng(8).standard_normal(got.shape).astype(np.float32)
        ours.compile(optimizer="sgd", loss="mse")
        theirs.compile(optimizer="sgd", loss="mse")
        np.testing.assert_allclose(ours.evaluate(x, y, verbose=0),
                                   theirs.evaluate(x, y, verbose=0), rtol=1e-5)


def test_joined_along_the_steps_gradients_against_finite_differences():
    a, b = ids(rows=8)
    b = b[:, : T - 2].copy()
    b[:, 0] = np.maximum(b[:, 0], 1)
    x = [a, b, np.random.default_rng(7).standard_normal((8, 3, U)).astype(np.float32)]
    model = steps_model(densitron, "three", "pool")
    fd_check(model, x, np.random.default_rng(9).standard_normal((8, 3)), "mse")


def test_refusals():
    grid = layers.Input((2, T), dtype="int32")  # (ids on two axes: a mask of rank 3)
    e = layers.Embedding(V, U, mask_zero=True)(grid)
    with pytest.raises(ValueError, match="along axis 1.*Received: "):
        layers.Concatenate(axis=1)([e, e])


@pytest.mark.parametrize("merge", ["Add", "Multiply", "Maximum", "Concatenate", "Concatenate1"])
def test_variable_lengths_as_keras(keras, merge):
    # ids of any length (Input((None,))): the masks are made for each length the data has

    def model(lib):
        ly = lib.layers
        a, b = ly.Input((None,), dtype="int32"), ly.Input((None,), dtype="int32")
        ea = ly.Embedding(V, U, mask_zero=True, embeddings_initializer="random_normal")(a)
        eb = ly.Embedding(V, U, mask_zero=True, embeddings_initializer="random_normal")(b)
        layer = ly.Concatenate(axis=1) if merge == "Concatenate1" else getattr(ly, merge)()
        return lib.Model([a, b], ly.Dense(3)(ly.LSTM(5)(layer([ea, eb]))))

    ours, theirs = model(densitron), model(keras)
    theirs.set_weights(ours.get_weights())
    for rows, steps in ((7, T), (5, T + 3)):
        a, b = ids(rows, seed=steps)
        if steps > T:
            a = np.concatenate([a, a[:, :3]], axis=1)
            b = np.concatenate([b, b[:, :3]], axis=1)
        np.testing.assert_allclose(ours.predict([a, b], verbose=0),
                                   theirs.predict([a, b], verbose=0), rtol=1e-5, atol=1e-6)


def test_concatenate_along_steps_of_any_length():
    a, b = layers.Input((None, 3)), layers.Input((None, 3))
    joined = layers.Concatenate(axis=1)([a, b])
    assert joined.shape == (None, None, 3)  # (Keras's None, not a sum)
    model = densitron.Model([a, b], joined)
    x, y = np.ones((2, 4, 3), np.float32), np.full((2, 5, 3), 2.0, np.float32)
    np.testing.assert_array_equal(model.predict([x, y], verbose=0), np.concatenate([x, y], 1))
