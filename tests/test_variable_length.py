"""Models with None feature dimensions, as Keras users write them: Input(shape=(None,)) for
text (keras.io's "Text classification from scratch" convolutional model and "Bidirectional
LSTM on IMDB"), Input((None, None, 3)) for a fully-convolutional image model, a Sequential
starting with Input((None, 8)). Shapes as Keras prints them, outputs on the same weights and
losses over epochs at two lengths against Keras 3.15 on JAX (a child process), the outputs of
a fixed-shape model of the same weights, gradients against finite differences, one engine
graph a shape, files and configs both ways, Keras's errors, clean refusals of bad data."""

import densitron
import numpy as np
import pytest
from densitron import layers
from keras_subprocess import keras_on_jax_json
from test_gradients_fd import fd_check

VOCAB = 23


def text_cnn(lib, drop=0.5):
    """keras.io's text classification from scratch, small: Embedding, Dropout, two strided
    Conv1D, GlobalMaxPooling1D, Dense, Dropout, a sigmoid Dense."""
    L = lib.layers
    inp = lib.Input(shape=(None,), dtype="int64")
    x = L.Embedding(VOCAB, 6)(inp)
    x = L.Dropout(drop)(x)
    x = L.Conv1D(5, 3, padding="valid", activation="relu", strides=2)(x)
    x = L.Conv1D(4, 3, padding="valid", activation="relu", strides=2)(x)
    x = L.GlobalMaxPooling1D()(x)
    x = L.Dense(6, activation="relu")(x)
    x = L.Dropout(drop)(x)
    out = L.Dense(1, activation="sigmoid", name="predictions")(x)
    return lib.Model(inp, out)


def bidirectional_lstm(lib):
    """keras.io's Bidirectional LSTM on IMDB, small."""
    L = lib.layers
    inp = lib.Input(shape=(None,), dtype="int32")
    x = L.Embedding(VOCAB, 5)(inp)
    x = L.Bidirectional(L.LSTM(4, return_sequences=True))(x)
    x = L.Bidirectional(L.LSTM(3))(x)
    out = L.Dense(1, activation="sigmoid")(x)
    return lib.Model(inp, out)


def fully_convolutional(lib):
    """Conv2D, MaxPooling2D, Conv2D and GlobalAveragePooling2D on images of any size."""
    L = lib.layers
    inp = lib.Input(shape=(None, None, 3))
    x = L.Conv2D(4, 3, activation="relu", padding="same")(inp)
    x = L.MaxPooling2D()(x)
    x = L.Conv2D(5, 3, activation="tanh")(x)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(3, activation="softmax")(x)
    return lib.Model(inp, out)


def tagger(lib):
    """A tag a step: per-step targets of the data's length."""
    L = lib.layers
    inp = lib.Input(shape=(None,), dtype="int32")
    x = L.Embedding(VOCAB, 4)(inp)
    x = L.LSTM(5, return_sequences=True)(x)
    return lib.Model(inp, L.Dense(3, activation="softmax")(x))


def sequential_lstm(lib):
    return lib.Sequential([lib.Input((None, 8)), lib.layers.LSTM(4), lib.layers.Dense(1)])


# name: (builder, loss, optimizer, the two data shapes (without the batch axis))
CASES = {
    "text_cnn": (lambda lib: text_cnn(lib, 0.0), "binary_crossentropy", "adam", (17,), (24,)),
    "bidirectional_lstm": (bidirectional_lstm, "binary_crossentropy", "adam", (7,), (10,)),
    "fully_convolutional": (fully_convolutional, "sparse_categorical_crossentropy", "adam",
                            (9, 11, 3), (12, 8, 3)),
    "sequential_lstm": (sequential_lstm, "mse", "rmsprop", (5, 8), (9, 8)),
    "tagger": (tagger, "sparse_categorical_crossentropy", "adam", (6,), (4,)),
}


def data(name, shape, seed):
    """(x, y) of 12 samples of `shape` for case `name`."""
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, VOCAB, (12, *shape)) if len(shape) == 1 else
         rng.standard_normal((12, *shape)).astype(np.float32))
    y = (rng.integers(0, 3, (12,)) if name == "fully_convolutional" else
         rng.integers(0, 3, (12, *shape)) if name == "tagger" else
         rng.integers(0, 2, (12, 1)).astype(np.float32) if name != "sequential_lstm" else
         rng.standard_normal((12, 1)).astype(np.float32))
    return x, y


def same_weights(model, seed=5, scale=0.4):
    rng = np.random.default_rng(seed)
    model.set_weights([(rng.standard_normal(w.shape) * scale).astype(np.float32)
                       for w in model.get_weights()])
    return model


def run_case(lib, name):
    """The outputs at both shapes on the same weights, then the losses of two epochs at the
    first shape (validated on data of the second) and two at the second (one optimizer all
    along), then the outputs again."""
    build, loss, optimizer, first, second = CASES[name]
    model = same_weights(build(lib))
    (x1, y1), (x2, y2) = data(name, first, 1), data(name, second, 2)
    before = [model.predict(x, verbose=0) for x in (x1, x2)]
    model.compile(optimizer=optimizer, loss=loss)
    first_fit = model.fit(x1, y1, batch_size=4, epochs=2, shuffle=False, verbose=0,
                          validation_data=(x2, y2)).history
    losses = [first_fit["loss"], first_fit["val_loss"],
              model.fit(x2, y2, batch_size=4, epochs=2, shuffle=False, verbose=0)
              .history["loss"]]
    after = [model.predict(x, verbose=0) for x in (x1, x2)]
    return before, losses, after


_JAX_SIDE = """
import json, numpy as np, keras
import test_variable_length as t
out = {}
for name in t.CASES:
    before, losses, after = t.run_case(keras, name)
    out[name] = [[np.asarray(o).tolist() for o in before], losses,
                 [np.asarray(o).tolist() for o in after]]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def keras_results():
    return keras_on_jax_json(_JAX_SIDE)


@pytest.mark.parametrize("name", list(CASES))
def test_outputs_and_training_match_keras_on_jax(name, keras_results):
    """The same outputs at two lengths (sizes) on the same weights, the same losses over
    two epochs at one (and validation losses at the other) and two at the other, the
    optimizer's state going on between them, and the same outputs after."""
    before, losses, after = run_case(densitron, name)
    k_before, k_losses, k_after = keras_results[name]
    for got, expected in zip(before, k_before):
        np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.ravel(losses), np.ravel(k_losses), rtol=1e-4)
    for got, expected in zip(after, k_after):
        np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-3, atol=1e-5)


def _fixed(build, shape, source):
    """The model `build` makes, with Input(shape) of known sizes, on `source`'s weights."""
    model = build(densitron)
    inner = model.layers[1:] if not isinstance(model, densitron.Sequential) else model.layers
    inp = densitron.Input(shape)
    x = inp
    for layer in inner:
        x = layer(x)
    fixed = densitron.Model(inp, x)
    fixed.set_weights(source.get_weights())
    return fixed


@pytest.mark.parametrize("name", list(CASES))
def test_outputs_are_a_fixed_shape_models(name):
    """At each length, the outputs of the same model built for inputs of that fixed shape,
    on the same weights (the variable model's weights do not depend on the length)."""
    build, _, _, first, second = CASES[name]
    model = same_weights(build(densitron))
    for shape, seed in ((first, 1), (second, 2), (first, 3)):
        x, _ = data(name, shape, seed)
        np.testing.assert_allclose(model.predict(x, verbose=0),
                                   _fixed(build, shape, model).predict(x, verbose=0),
                                   rtol=1e-6, atol=1e-7)


def test_shapes_and_weights_as_keras(keras):
    """summary()'s shapes (None where the length is the data's), output.shape and the
    weights' shapes and names are Keras's."""
    for name, (build, *_) in CASES.items():
        ours, theirs = build(densitron), build(keras)
        assert [tuple(w.shape) for w in ours.weights] == \
            [tuple(w.shape) for w in theirs.weights], name
        assert tuple(ours.outputs[0].shape) == tuple(theirs.outputs[0].shape), name
        assert [tuple(layer.output.shape) for layer in ours.layers] == \
            [tuple(layer.output.shape) for layer in theirs.layers], name
        assert ours.count_params() == theirs.count_params()
    model = text_cnn(densitron)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(None, None, 6)" in text and "(None, None, 5)" in text and "(None, 1)" in text


def test_one_engine_graph_a_shape():
    """A second length builds its own engine graph; a length met before runs its graph
    again (not rebuilt), and the weights are one set: training at one length changes the
    outputs at the other."""
    model = sequential_lstm(densitron)
    model.compile("rmsprop", "mse")
    (x1, y1), (x2, _) = data("sequential_lstm", (5, 8), 1), data("sequential_lstm", (9, 8), 2)
    model.predict(x1, verbose=0)
    first = model._graph
    p2 = model.predict(x2, verbose=0)
    assert model._graph is not first
    second = model._graph
    model.predict(x1, verbose=0)
    assert model._graph is first
    model(x2)
    assert model._graph is second
    model.train_on_batch(x1, y1)
    assert model._graph is first
    assert np.abs(model.predict(x2, verbose=0) - p2).max() > 1e-4
    assert model._graph is second
    assert len(model.weights) == 5


def test_train_on_batch_and_evaluate_carry_the_optimizer():
    """The optimizer's step count goes on across lengths (Keras's one optimizer state)."""
    model = bidirectional_lstm(densitron)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    (x1, y1), (x2, y2) = (data("bidirectional_lstm", (7,), 1),
                          data("bidirectional_lstm", (10,), 2))
    model.train_on_batch(x1, y1)
    model.train_on_batch(x2, y2)
    model.fit(x1, y1, batch_size=6, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 4
    loss, acc = model.evaluate(x2, y2, verbose=0)
    assert np.isfinite(loss) and 0 <= acc <= 1


def test_gradients_against_finite_differences():
    rng = np.random.default_rng(4)
    model = densitron.Sequential([densitron.Input((None, 3)),
                                  layers.Conv1D(3, 2, activation="tanh"),
                                  layers.LSTM(2, return_sequences=True),
                                  layers.GlobalAveragePooling1D(), layers.Dense(2)])
    fd_check(model, rng.normal(size=(3, 6, 3)), rng.normal(size=(3, 2)), "mse")
    fd_check(model, rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 2)), "mse")


def _predictions(model, shapes):
    return [model.predict(data(name, shape, 7)[0], verbose=0) for name, shape in shapes]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Keras's numpy backend saving)
@pytest.mark.parametrize("name", list(CASES))
def test_files_both_ways(name, keras, tmp_path):
    """densitron's .keras file loads in Keras (batch_shape with null) and Keras's in
    densitron, the same outputs at both lengths; get_config/from_config too."""
    build, _, _, first, second = CASES[name]
    shapes = [(name, first), (name, second)]
    ours = same_weights(build(densitron))
    expected = _predictions(ours, shapes)
    ours.save(tmp_path / "densitron.keras")
    with np.errstate(all="ignore"):
        theirs = keras.saving.load_model(tmp_path / "densitron.keras")
        assert theirs.inputs[0].shape[1] is None
        for got, e in zip(_predictions(theirs, shapes), expected):
            np.testing.assert_allclose(got, e, rtol=1e-5, atol=1e-6)
        theirs.save(tmp_path / "keras.keras")
    loaded = densitron.saving.load_model(tmp_path / "keras.keras")
    assert loaded.inputs[0].shape == ours.inputs[0].shape
    for got, e in zip(_predictions(loaded, shapes), expected):
        np.testing.assert_allclose(got, e, rtol=1e-5, atol=1e-6)
    config = ours.get_config()
    assert config["layers"][0]["config"]["batch_shape"][1] is None
    again = type(ours).from_config(config)
    again.set_weights(ours.get_weights())
    for got, e in zip(_predictions(again, shapes), expected):
        np.testing.assert_allclose(got, e, rtol=1e-6, atol=1e-7)


def test_trained_state_saved_and_loaded(tmp_path):
    """A model trained at one length, saved, loaded, trains on at another as the original
    does (weights and optimizer state in the file)."""
    build, loss, optimizer, first, second = CASES["text_cnn"]
    model = same_weights(build(densitron))
    model.compile(optimizer, loss)
    model.fit(*data("text_cnn", first, 1), batch_size=4, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = densitron.saving.load_model(tmp_path / "m.keras")
    x2, y2 = data("text_cnn", second, 2)
    a = model.fit(x2, y2, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    b = loaded.fit(x2, y2, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_nested_model_with_a_variable_length():
    """A Sequential of Input((None, 8)) called inside a model of fixed and of None
    lengths: its outputs, as called alone."""
    inner = densitron.Sequential([densitron.Input((None, 8)),
                                  layers.LSTM(4, return_sequences=True), layers.Dense(3)])
    rng = np.random.default_rng(3)
    for steps in (6, None):
        inp = densitron.Input((steps, 8))
        outer = densitron.Model(inp, layers.GlobalAveragePooling1D()(inner(inp)))
        assert outer.output.shape == (None, 3)
        for length in (6, 6) if steps else (6, 11):
            x = rng.standard_normal((2, length, 8)).astype(np.float32)
            np.testing.assert_allclose(outer.predict(x, verbose=0),
                                       inner.predict(x, verbose=0).mean(axis=1),
                                       rtol=1e-5, atol=1e-6)


def test_kerass_errors_where_keras_raises(keras):
    """A weight whose shape would depend on the length: Keras's own error, raised as the
    model is built."""
    for lib in (densitron, keras):
        for make in (lambda lib: lib.layers.Dense(3)(lib.layers.Flatten()(
                         lib.Input((None, 4)))),
                     lambda lib: lib.layers.Dense(3)(lib.Input((None,)))):
            with pytest.raises(ValueError, match=r"Shapes used to initialize variables must "
                               r"be fully-defined \(no `None` dimensions\). Received: "
                               r"shape=\(None, 3\) for variable path='dense\w*/kernel'"):
                make(lib)
    flat = layers.Flatten()(densitron.Input((None, 4)))
    assert flat.shape == keras.layers.Flatten()(keras.Input((None, 4))).shape == (None, None)


def test_bad_data_raises_cleanly():
    model = sequential_lstm(densitron)
    model.compile("rmsprop", "mse")
    rng = np.random.default_rng(0)
    y = np.zeros((4, 1), np.float32)
    x = rng.standard_normal((4, 5, 8))
    model.fit(x, y, verbose=0)
    for bad, message in ((rng.standard_normal((4, 5, 7)), r"expected shape \(None, None, 8\)"),
                         (rng.standard_normal((4, 5)), r"expected shape \(None, None, 8\)"),
                         (rng.standard_normal((4, 0, 8)), "dimension of length 0")):
        with pytest.raises(ValueError, match=message + ".*Received: x with shape"):
            model.predict(bad, verbose=0)
        with pytest.raises(ValueError, match=message):
            model.fit(bad, y, verbose=0)
    with pytest.raises(ValueError, match=r"Received: validation_data\[0\] with shape"):
        model.fit(x, y, validation_data=(rng.standard_normal((4, 6, 7)), y), verbose=0)
    with pytest.raises(ValueError, match=r"Received: shape=\(3, 0\)"):
        densitron.Input((3, 0))
    with pytest.raises(ValueError, match="number of features"):
        layers.LSTM(2)(densitron.Input((3, None)))
    with pytest.raises(ValueError, match="channels of its input"):
        layers.Conv1D(2, 2)(densitron.Input((5, None)))
    np.testing.assert_allclose(model.predict(x, verbose=0).shape, (4, 1))


def test_several_inputs_and_masks():
    """A None length beside a fixed input, by dict and by list (the fixed one checked); ids
    padded with zeros under Embedding(mask_zero=True) into an LSTM give the outputs of the
    unpadded ids (the mask at each length)."""
    rng = np.random.default_rng(6)
    ids, extra = densitron.Input((None,), dtype="int32", name="ids"), densitron.Input((3,))
    pooled = layers.GlobalAveragePooling1D()(layers.Embedding(VOCAB, 4)(ids))
    out = layers.Dense(1)(layers.Concatenate()([pooled, extra]))
    by_dict = densitron.Model({"ids": ids, "extra": extra}, out)
    by_list = densitron.Model([ids, extra], out)
    e = rng.standard_normal((5, 3)).astype(np.float32)
    for length in (6, 2):
        x = rng.integers(0, VOCAB, (5, length))
        expected = by_list.predict([x, e], verbose=0)
        np.testing.assert_allclose(by_dict.predict({"ids": x, "extra": e}, verbose=0), expected)
        table = next(layer for layer in by_list.layers
                     if isinstance(layer, layers.Embedding)).get_weights()[0].astype(np.float64)
        kernel, bias = by_list.layers[-1].get_weights()
        reference = np.concatenate([table[x].mean(axis=1), e], axis=1) @ kernel + bias
        np.testing.assert_allclose(expected, reference, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected shape \(None, 3\).*Received: x\[1\]"):
        by_list.predict([x, rng.standard_normal((5, 4))], verbose=0)

    inp = densitron.Input((None,), dtype="int32")
    masked = layers.Embedding(VOCAB, 4, mask_zero=True)(inp)
    model = densitron.Model(inp, layers.Dense(1)(layers.LSTM(3)(masked)))
    x = rng.integers(1, VOCAB, (4, 7))
    x[:, 4:] = 0
    np.testing.assert_allclose(model.predict(x, verbose=0), model.predict(x[:, :4], verbose=0),
                               rtol=1e-6, atol=1e-7)


def test_engine_graphs_kept_for_recent_shapes():
    """Many lengths keep a bounded number of engine graphs (the most recent ones); a length
    dropped builds again, with the same weights and outputs."""
    model = sequential_lstm(densitron)
    x = np.random.default_rng(2).standard_normal((3, 30, 8)).astype(np.float32)
    first = model.predict(x[:, :2], verbose=0)
    for length in range(2, 26):
        model.predict(x[:, :length], verbose=0)
    assert len(model._specialisations) == model._KEPT_SHAPES
    assert len(model._traces) == model._KEPT_SHAPES + 1
    np.testing.assert_allclose(model.predict(x[:, :2], verbose=0), first)


def test_validation_data_of_another_length():
    """fit validates on data of another length than x's (its own engine graph): the last
    epoch's val_loss is evaluate's on it; then a fit with validation_split validates at x's
    length again."""
    model = sequential_lstm(densitron)
    model.compile("adam", "mse", metrics=["mae"])
    (x, y), (vx, vy) = data("sequential_lstm", (5, 8), 1), data("sequential_lstm", (7, 8), 2)
    history = model.fit(x, y, validation_data=(vx, vy), epochs=3, batch_size=4,
                        verbose=0).history
    np.testing.assert_allclose([history["val_loss"][-1], history["val_mae"][-1]],
                               model.evaluate(vx, vy, verbose=0), rtol=1e-6)
    assert int(model.optimizer.iterations) == 9
    history = model.fit(x, y, validation_split=0.25, epochs=1, batch_size=3,
                        verbose=0).history
    np.testing.assert_allclose(history["val_loss"][-1],
                               model.evaluate(x[9:], y[9:], verbose=0)[0], rtol=1e-6)
