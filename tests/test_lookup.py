"""IntegerLookup, StringLookup and Hashing against Keras 3.15's own outputs (on TensorFlow,
which its lookups need: tests/data/make_keras_lookup.py wrote them), in models on the engine,
and in `.keras` files both ways."""

import json
import os
import re
import zipfile

import densitron
import numpy as np
import pytest
from densitron import layers
from densitron.layers.hashing import fingerprint64, siphash

DATA = os.path.join(os.path.dirname(__file__), "data")
with open(os.path.join(DATA, "keras_lookup.json")) as _f:
    KERAS = json.load(_f)
CASES = KERAS["cases"]


def _case_id(c):
    return f"{c['layer']}-{json.dumps(c['kwargs'], sort_keys=True)}" + (
        "-adapt" if c["adapt"] is not None else "") + (
        "-set" if c["set_vocabulary"] is not None else "") + f"-{CASES.index(c)}"


def _run(c):
    kwargs = {k: tuple(v) if k == "ngrams" and isinstance(v, list) else v
              for k, v in c["kwargs"].items()}  # (a tuple, as JSON cannot keep it)
    layer = getattr(layers, c["layer"])(**kwargs)
    if c["adapt"] is not None:
        layer.adapt(np.array(c["adapt"]))
    if c["set_vocabulary"] is not None:
        layer.set_vocabulary(c["set_vocabulary"])
    if c["layer"] == "HashedCrossing":  # (a tuple of features)
        return layer, layer(tuple(np.array(x) for x in c["inputs"]))
    return layer, layer(np.array(c["inputs"]))


@pytest.mark.parametrize("c", [c for c in CASES if "error" not in c], ids=_case_id)
def test_outputs_vocabulary_and_config_as_keras(c):
    layer, out = _run(c)
    want = np.array(c["output"])
    if c["dtype"] == "string":
        assert out.dtype.kind == "U"
        assert out.tolist() == c["output"]
    else:
        assert str(out.dtype) == c["dtype"]
        assert out.shape == want.shape
        np.testing.assert_allclose(out, want, rtol=1e-6, atol=0)
    lookup = getattr(layer, "_lookup_layer", layer)  # (TextVectorization's StringLookup)
    if "vocabulary" in c:
        assert layer.get_vocabulary() == c["vocabulary"]
        assert layer.vocabulary_size() == c["vocabulary_size"]
        assert layer.get_vocabulary(include_special_tokens=False) == \
            c["vocabulary"][lookup._token_start_index():]
    if "idf_weights" in c:
        np.testing.assert_allclose(lookup.idf_weights, c["idf_weights"], rtol=1e-6)
    config = layer.get_config()
    config.pop("name")
    want = dict(c["config"])
    if c["layer"] == "Hashing":  # (Keras's policy by its name: the output dtype)
        want["dtype"] = want["dtype"]["config"]["name"]
    elif c["layer"] != "HashedCrossing":
        config.pop("dtype")
    assert json.loads(json.dumps(config)) == want


@pytest.mark.parametrize("c", [c for c in CASES if "error" in c], ids=_case_id)
def test_refusals_as_keras(c):
    kinds = {"InvalidArgumentError": ValueError, "RuntimeError": RuntimeError,
             "ValueError": ValueError}
    with pytest.raises(kinds[c["error"]]) as info:
        _run(c)
    if not c["message"].startswith("Exception encountered"):  # (Keras's call's wrapper)
        def unnamed(text):  # (layer names count the session's layers)
            return re.sub(r"'(string|integer)_lookup(_\d+)?'", "'L'", text)

        message = c["message"].replace("np.int64(1)", "1")
        assert unnamed(message) in unnamed(str(info.value))


def test_num_oov_indices_0_names_the_oov_values():
    layer = layers.IntegerLookup(vocabulary=[12, 36], num_oov_indices=0)
    np.testing.assert_array_equal(layer(np.array([36, 12])), [1, 0])
    with pytest.raises(ValueError, match=r"found OOV values \[5, 7\]"):
        layer(np.array([[12, 5], [7, 36]]))


def test_hashes_match_tensorflows():
    hashes = KERAS["hashes"]
    big = 2 ** 63 - 1
    for text, fast, strong in zip(hashes["texts"], hashes["fast"], hashes["strong_3_5"]):
        data = text.encode("utf-8")
        assert fingerprint64(data) % big == fast, len(data)
        assert siphash((3, 5), data) % big == strong, len(data)


def test_lists_bytes_and_scalars():
    lookup = layers.StringLookup(vocabulary=["a", "b"])
    np.testing.assert_array_equal(lookup(["b", "q", "a"]), [2, 0, 1])
    np.testing.assert_array_equal(lookup(np.array([b"b", b"a"])), [2, 1])
    assert lookup("b") == 2 and lookup(np.array("b")).dtype == np.int64
    assert lookup("b", training=True) == 2  # (Keras's call takes no `training`: ignored)
    ints = layers.IntegerLookup(vocabulary=[7, 9])
    assert ints([9, 7, 1]).tolist() == [2, 1, 0]
    with pytest.raises(TypeError, match="looks up strings"):
        lookup(np.array([1, 2]))
    with pytest.raises(TypeError, match="looks up integers"):
        ints(np.array(["a"]))


def test_vocabulary_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("fox\nhare\nélan\n", encoding="utf-8")
    lookup = layers.StringLookup(vocabulary=str(path))
    assert lookup.get_vocabulary() == ["[UNK]", "fox", "hare", "élan"]
    np.testing.assert_array_equal(lookup(np.array(["élan", "dog", "fox"])), [3, 0, 1])
    assert lookup.get_config()["vocabulary"] is None  # (kept as an asset, as Keras's)
    assert lookup.get_config()["vocabulary_size"] == 4
    ints = tmp_path / "ints.txt"
    ints.write_text("10\n-3\n")
    assert layers.IntegerLookup(vocabulary=str(ints)).get_vocabulary() == [-1, 10, -3]
    with pytest.raises(ValueError, match="does not exist"):
        layers.StringLookup(vocabulary=str(tmp_path / "missing.txt"))


def test_adapt_on_batches_and_frequency_order():
    lookup = layers.IntegerLookup(max_tokens=4)
    batches = [np.array([[5, 5, 2]]), np.array([[2, 9, 9], [9, 1, 1]])]
    lookup.adapt(iter(batches))
    # counts: 9:3, 5:2, 2:2, 1:2 -> 9, then the ties from high to low: 5, 2 (1 cut)
    assert lookup.get_vocabulary() == [-1, 9, 5, 2]
    lookup.adapt(iter(batches), steps=1)
    assert lookup.get_vocabulary() == [-1, 5, 2]
    words = layers.StringLookup()
    words.adapt(np.array(["b", "é", "a", "B", "é"]))  # (ties by UTF-8 bytes, high to low)
    assert words.get_vocabulary() == ["[UNK]", "é", "b", "a", "B"]


def test_frozen_vocabulary_size_for_encodings():
    lookup = layers.IntegerLookup(vocabulary=[1, 2], output_mode="multi_hot")
    with pytest.raises(RuntimeError, match="the vocabulary size cannot be changed"):
        lookup.set_vocabulary([1, 2, 3])
    assert lookup.get_vocabulary() == [-1, 1, 2]
    lookup.set_vocabulary([4, 3])
    np.testing.assert_array_equal(lookup(np.array([[3, 9]])), [[1, 0, 1]])
    with pytest.raises(RuntimeError, match="you must set the layer's vocabulary"):
        layers.StringLookup(output_mode="count")(np.array([["a"]]))


def test_config_round_trip():
    for layer in (layers.IntegerLookup(vocabulary=np.array([4, 8, 15]), mask_token=0,
                                       num_oov_indices=2, output_mode="count",
                                       pad_to_max_tokens=True, max_tokens=9),
                  layers.StringLookup(vocabulary=["x", "y"], output_mode="tf_idf",
                                      idf_weights=[0.5, 2.0], name="words"),
                  layers.StringLookup(vocabulary=["x", "y"], invert=True, num_oov_indices=3,
                                      salt=[1, 2]),
                  layers.Hashing(num_bins=9, mask_value="", salt=4, output_mode="count")):
        config = layer.get_config()
        again = type(layer).from_config(json.loads(json.dumps(config)))
        assert again.get_config() == config
        serialized = layers.serialize(layer)
        assert serialized["module"] == "keras.layers"
        restored = layers.deserialize(serialized)
        assert type(restored) is type(layer) and restored.get_config() == config
        x = np.array([["x", "", "q"]]) if not isinstance(layer, layers.IntegerLookup) \
            else np.array([[4, 0, 15, 7]])
        if getattr(layer, "invert", False):
            x = np.array([[0, 3, 4, 9]])
        np.testing.assert_array_equal(again(x), layer(x))


def _int_model(lookup, width=4, units=3, seed=0):
    inp = layers.Input(shape=(width,), dtype="int64")
    h = lookup(inp)
    if lookup.output_mode == "int" and not lookup.invert:
        h = layers.Flatten()(layers.Embedding(lookup.vocabulary_size(), 5)(h))
    out = layers.Dense(units)(h)
    model = densitron.Model(inp, out)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3
                       for w in model.get_weights()])
    return model


@pytest.mark.parametrize("kwargs", [
    {}, {"mask_token": 0}, {"num_oov_indices": 3}, {"num_oov_indices": 2, "mask_token": 0},
    {"output_mode": "one_hot"}, {"output_mode": "multi_hot", "mask_token": 0},
    {"output_mode": "count", "num_oov_indices": 2},
    {"output_mode": "count", "pad_to_max_tokens": True, "max_tokens": 11},
    {"invert": True}, {"invert": True, "mask_token": 0, "oov_token": 99}])
def test_in_a_model_as_on_arrays(kwargs):
    vocab = [12, 36, 1138, 42, -9, 7]
    rng = np.random.default_rng(1)
    x = rng.choice([12, 36, 1138, 42, -9, 7, 0, 5, -4, 100000, 3], size=(33, 4))
    if kwargs.get("invert"):
        x = rng.integers(-2, 10, size=(33, 4))
    lookup = layers.IntegerLookup(vocabulary=vocab, **kwargs)
    model = _int_model(lookup)
    got = model.predict(x, verbose=0)
    # the same model's layers applied to the eager lookup's output
    ids = lookup(x).astype(np.float32)
    if lookup.output_mode == "one_hot":
        ids = ids.reshape(33, 4, -1)
    inner = layers.Input(shape=ids.shape[1:])
    tail = inner
    for layer in model.layers[2:]:
        tail = layer(tail)
    want = densitron.Model(inner, tail).predict(ids, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert layers.IntegerLookup(vocabulary=vocab, **kwargs)(x).dtype == np.int64


def test_one_hot_of_a_column_and_a_scalar_input():
    lookup = layers.IntegerLookup(vocabulary=[3, 4], output_mode="one_hot")
    for shape in ((1,), ()):
        inp = layers.Input(shape=shape, dtype="int64")
        out = lookup(inp)
        assert out.shape == (None, 3)
        x = np.array([[3], [9], [4]]).reshape((3, *shape))
        got = densitron.Model(inp, out).predict(x, verbose=0)
        np.testing.assert_array_equal(got, lookup(x))


def test_fit_with_a_lookup_in_the_model_as_on_looked_up_ids():
    """keras.io's structured-data recipe: IntegerLookup -> Embedding -> Dense, trained by fit,
    gives the weights of the same layers trained on the ids looked up beforehand."""
    rng = np.random.default_rng(3)
    raw = rng.choice([4, 8, 15, 16, 23, 42, 99, -1], size=(96, 3))
    y = rng.standard_normal((96, 1)).astype(np.float32)
    lookup = layers.IntegerLookup(max_tokens=6)
    lookup.adapt(raw)
    model = _int_model(lookup, width=3, units=1, seed=5)
    ids = lookup(raw)
    inner = layers.Input(shape=(3,), dtype="int64")
    tail = layers.Flatten()(layers.Embedding(lookup.vocabulary_size(), 5)(inner))
    plain = densitron.Model(inner, layers.Dense(1)(tail))
    plain.set_weights(model.get_weights())
    initial = model.get_weights()
    for m, data in ((model, raw), (plain, ids)):
        m.compile(optimizer="adam", loss="mse")
        m.fit(data, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not np.allclose(model.get_weights()[0], initial[0])  # (the table was trained)


def test_embedding_smaller_than_the_vocabulary_is_refused():
    lookup = layers.IntegerLookup(vocabulary=[1, 2, 3, 4])
    inp = layers.Input(shape=(2,), dtype="int64")
    out = layers.Dense(1)(layers.Flatten()(layers.Embedding(3, 2)(lookup(inp))))
    with pytest.raises(ValueError, match=r"IntegerLookup.s ids.*Received: ids up to 4 for "
                       r"input_dim=3"):
        densitron.Model(inp, out).predict(np.array([[1, 2]]), verbose=0)


def test_refused_in_a_model():
    inp = layers.Input(shape=(2,))
    for layer, match in ((layers.StringLookup(vocabulary=["a"]), "runs on NumPy data"),
                         (layers.TextVectorization(), "runs on NumPy data"),
                         (layers.HashedCrossing(num_bins=2), "runs on NumPy data"),
                         (layers.Hashing(num_bins=3), "runs on NumPy data"),
                         (layers.IntegerLookup(vocabulary=[1], num_oov_indices=0),
                          "num_oov_indices=0"),
                         (layers.IntegerLookup(vocabulary=[1], num_oov_indices=2,
                                               oov_method="farmhash"), "farmhash")):
        with pytest.raises(ValueError, match=match):
            layer(inp)
    with pytest.raises(ValueError, match="2\\*\\*24"):
        layers.IntegerLookup(vocabulary=[5, 1 << 24])(inp)
    with pytest.raises(ValueError, match="2\\*\\*24"):
        layers.IntegerLookup(vocabulary=[5, -(1 << 30)], invert=True)(inp)
    with pytest.raises(ValueError, match="one id a sample"):
        layers.IntegerLookup(vocabulary=[1], output_mode="count")(layers.Input(shape=()))
    with pytest.raises(ValueError, match="rank 3 or more"):
        layers.IntegerLookup(vocabulary=[1], output_mode="multi_hot")(layers.Input((2, 2)))
    used = layers.IntegerLookup()
    used.adapt(np.array([1, 2]))
    used(inp)
    with pytest.raises(ValueError, match="adapt integer_lookup"):
        used.adapt(np.array([3]))


def test_vocabulary_set_after_the_model_was_built_reaches_the_engine():
    lookup = layers.IntegerLookup(vocabulary=[5, 6])
    model = _int_model(lookup, width=2)
    x = np.array([[5, 6], [6, 7]])
    before = model.predict(x, verbose=0)
    lookup.set_vocabulary([6, 5])
    after = model.predict(x, verbose=0)
    assert not np.allclose(before, after)
    fresh = _int_model(layers.IntegerLookup(vocabulary=[6, 5]), width=2)
    np.testing.assert_allclose(after, fresh.predict(x, verbose=0), rtol=0, atol=0)
    np.testing.assert_array_equal(lookup(x), [[2, 1], [1, 0]])


def test_keras_file_loads(tmp_path):
    """A model Keras 3.15 saved (an adapted IntegerLookup into an Embedding, a given one's
    multi-hot) predicts in densitron as in Keras; saved again, its entries are Keras's."""
    path = os.path.join(DATA, "keras_lookup.keras")
    model = densitron.saving.load_model(path)
    x = np.load(os.path.join(DATA, "keras_lookup_x.npy"))
    want = np.load(os.path.join(DATA, "keras_lookup_predictions.npy"))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    ids = model.get_layer("ids")
    assert ids.vocabulary_size() == 12 and ids.get_config()["vocabulary"] is None
    out = str(tmp_path / "again.keras")
    model.save(out)
    with zipfile.ZipFile(path) as z:
        keras_config = json.loads(z.read("config.json"))
        keras_vocab = z.read("assets/layers/integer_lookup/vocabulary.txt")
    with zipfile.ZipFile(out) as z:
        ours = json.loads(z.read("config.json"))
        assert z.read("assets/layers/integer_lookup/vocabulary.txt") == keras_vocab

    def lookups(config):
        return {e["config"]["name"]: {k: v for k, v in e["config"].items() if k != "dtype"}
                for e in config["config"]["layers"] if e["class_name"] == "IntegerLookup"}

    assert lookups(ours) == lookups(keras_config)
    again = densitron.saving.load_model(out)
    np.testing.assert_allclose(again.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)


def test_densitron_file_loads_in_keras(tmp_path):
    """Keras (on TensorFlow, which its lookups need) loads densitron's file and predicts the
    same; skipped where TensorFlow is not installed."""
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("Keras runs its lookups in a model on TensorFlow only")
    lookup = layers.IntegerLookup(max_tokens=7, mask_token=0)
    lookup.adapt(np.array([[3, 3, 1], [2, 2, 1], [7, 9, 9], [4, 4, 4]]))
    model = _int_model(lookup, width=3)
    x = np.array([[3, 1, 2], [9, 0, 100]])
    path = str(tmp_path / "m.keras")
    model.save(path)
    theirs = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)),
                               model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_densitron_file_round_trip(tmp_path):
    lookup = layers.IntegerLookup(max_tokens=7, mask_token=0, num_oov_indices=2)
    lookup.adapt(np.array([[3, 3, 1], [2, 2, 1], [7, 9, 9], [4, 4, 4]]))
    model = _int_model(lookup, width=3)
    x = np.array([[3, 1, 2], [9, 0, 100], [-5, 4, 4]])
    path = str(tmp_path / "m.keras")
    model.save(path)
    with zipfile.ZipFile(path) as z:
        vocab = z.read("assets/layers/integer_lookup/vocabulary.txt").decode()
    assert vocab.split("\n") == [str(v) for v in lookup.get_vocabulary()]
    again = densitron.saving.load_model(path)
    assert again.layers[1].get_vocabulary() == lookup.get_vocabulary()
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=0, atol=0)


def test_module_lists_them():
    for name in ("IntegerLookup", "StringLookup", "Hashing", "HashedCrossing",
                 "TextVectorization"):
        assert name in layers.__all__


def test_hashing_from_keras_serialized_form_keeps_its_dtype():
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "int64"},
              "registered_name": None}
    config = {"module": "keras.layers", "class_name": "Hashing", "registered_name": None,
              "config": {"name": "h", "trainable": True, "dtype": policy, "num_bins": 3,
                         "salt": None, "mask_value": None, "output_mode": "int",
                         "sparse": False}}
    layer = layers.deserialize(config)
    assert layer.get_config()["dtype"] == "int64"
    # (Keras 3.15 with TensorFlow: "omar", "stringer", "marlo" into 3 bins)
    np.testing.assert_array_equal(layer(np.array([["omar"], ["stringer"], ["marlo"]])),
                                  [[2], [2], [0]])
    # booleans hash as TensorFlow's as_string writes them (Keras's: [[3, 0]])
    np.testing.assert_array_equal(layers.Hashing(num_bins=7)(np.array([[True, False]])),
                                  [[3, 0]])


def test_text_vectorization_config_and_one_hot_refusal():
    text = np.array(["The fox", "the dog, the fox", "a cat"])
    layer = layers.TextVectorization(ngrams=(1, 2), output_sequence_length=5, name="tv")
    layer.adapt(text)
    config = layer.get_config()
    again = layers.TextVectorization.from_config(json.loads(json.dumps(config)))
    # (the vocabulary travels as an asset: mask and OOV tokens only until it is set)
    assert again.get_config() == {**config, "vocabulary_size": 2}
    again.set_vocabulary(layer.get_vocabulary())
    np.testing.assert_array_equal(again(text), layer(text))
    assert layer(text).shape == (3, 5) and layer("the fox").shape == (5,)
    with pytest.raises(ValueError, match="ragged rows"):
        layers.TextVectorization(output_mode="one_hot", vocabulary=["a"])(text)


def test_tf_idf_in_a_model_and_its_file(tmp_path):
    lookup = layers.IntegerLookup(output_mode="tf_idf", max_tokens=6, pad_to_max_tokens=True)
    lookup.adapt(np.array([[3, 3, 1], [2, 2, 1], [7, 9, 9], [4, 4, 4]]))
    model = _int_model(lookup, width=3)
    x = np.array([[3, 1, 2], [9, 9, 100], [4, 4, 4]])
    counts = lookup(x)
    assert counts.dtype == np.float32
    np.testing.assert_allclose(model.layers[1](x), counts)
    want = counts @ model.layers[2].get_weights()[0] + model.layers[2].get_weights()[1]
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "idf.keras")
    model.save(path)
    again = densitron.saving.load_model(path)
    np.testing.assert_allclose(again.layers[1].idf_weights, lookup.idf_weights)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0))
    import h5py

    with zipfile.ZipFile(path) as z, h5py.File(__import__("io").BytesIO(
            z.read("model.weights.h5")), "r") as h:  # (where Keras keeps them)
        np.testing.assert_allclose(h["layers/integer_lookup/vars/idf_weights"][()],
                                   lookup.idf_weights)
