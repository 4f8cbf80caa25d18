"""Writes keras_lookup.json (Keras's outputs of IntegerLookup, StringLookup and Hashing on
arrays, and its errors), keras_lookup.keras and keras_lookup_predictions.npy with Keras 3.15
on TensorFlow (its lookups need TensorFlow):
    KERAS_BACKEND=tensorflow python tests/data/make_keras_lookup.py
(test_lookup.py compares densitron's layers and its loading of the file with them)."""
import json
import os

import keras
import numpy as np
import tensorflow as tf
from keras import layers

HERE = os.path.dirname(os.path.abspath(__file__))
IDS = [[12, 1138, 42, 0], [42, 1000, 36, -7], [36, 36, 5, 12]]
WORDS = [["a", "z", "b", ""], ["c", "b", "omar", "a"], ["stringer", "x", "c", "a"]]
ADAPT_IDS = [[3, 3, 1, 8], [2, 2, 1, 0], [7, 9, 9, 8], [4, 4, 4, -1]]
ADAPT_WORDS = [["b", "a", "c", "é"], ["c", "a", "b", ""], ["d", "e", "e", "é"],
               ["B", "aa", "", "a"]]
INT_VOCAB = [12, 36, 1138, 42]
STR_VOCAB = ["a", "b", "c"]

CASES = []


def case(cls, kwargs, inputs, adapt=None, set_vocabulary=None):
    CASES.append({"layer": cls, "kwargs": kwargs, "inputs": inputs, "adapt": adapt,
                  "set_vocabulary": set_vocabulary})


for mode in ("int", "one_hot", "multi_hot", "count"):
    for extra in ({}, {"mask_token": 0}, {"num_oov_indices": 3}, {"num_oov_indices": 2,
                                                                  "mask_token": 0},
                  {"pad_to_max_tokens": True, "max_tokens": 9}):
        case("IntegerLookup", {"vocabulary": INT_VOCAB, "output_mode": mode, **extra}, IDS)
        case("StringLookup", {"vocabulary": STR_VOCAB, "output_mode": mode,
                              **{k: ("" if k == "mask_token" else v) for k, v in extra.items()}},
             WORDS)
for inputs in ([12, 5, 36], [[12], [5]], 36, [[[12, 36], [7, 42]]]):
    for mode in ("int", "one_hot", "multi_hot", "count"):
        case("IntegerLookup", {"vocabulary": INT_VOCAB, "output_mode": mode}, inputs)
case("IntegerLookup", {"vocabulary": INT_VOCAB}, [[12.7, 36.0, -1.5]])
case("IntegerLookup", {"vocabulary": [-1, 0, 12] + INT_VOCAB[1:], "mask_token": 0}, IDS)
case("IntegerLookup", {"vocabulary": INT_VOCAB, "output_mode": "tf_idf",
                       "idf_weights": [0.5, 1.0, 2.0, 3.0]}, IDS)
case("IntegerLookup", {"vocabulary": [-1] + INT_VOCAB, "output_mode": "tf_idf",
                       "idf_weights": [0.25, 0.5, 1.0, 2.0, 3.0]}, IDS)
case("IntegerLookup", {"vocabulary": INT_VOCAB, "output_mode": "tf_idf", "max_tokens": 7,
                       "pad_to_max_tokens": True, "idf_weights": [0.5, 1.0, 2.0, 3.0]}, IDS)
case("StringLookup", {"vocabulary": STR_VOCAB, "output_mode": "tf_idf",
                      "idf_weights": [0.5, 1.0, 2.0]}, WORDS)
for extra in ({}, {"mask_token": 0}, {"oov_token": -5, "num_oov_indices": 2}):
    case("IntegerLookup", {"vocabulary": INT_VOCAB, "invert": True, **extra},
         [[0, 1, 2, 3], [4, 5, 6, -1]])
case("IntegerLookup", {"vocabulary": [0, -1] + INT_VOCAB, "invert": True, "mask_token": 0},
     [[0, 1, 2, 3], [4, 5, 6, -1]])
case("StringLookup", {"vocabulary": STR_VOCAB, "invert": True}, [[0, 1, 2], [3, 4, -1]])
case("StringLookup", {"vocabulary": STR_VOCAB, "invert": True, "mask_token": ""},
     [[0, 1, 2], [3, 4, -1]])
for salt in (None, 7, [3, 1 << 40]):
    case("IntegerLookup", {"vocabulary": INT_VOCAB, "num_oov_indices": 5,
                           "oov_method": "farmhash", "salt": salt}, IDS)
    case("StringLookup", {"vocabulary": STR_VOCAB, "num_oov_indices": 5, "salt": salt}, WORDS)
case("IntegerLookup", {"num_oov_indices": 0, "vocabulary": INT_VOCAB}, [[12, 36]])
for mode in ("int", "multi_hot", "tf_idf"):
    for extra in ({}, {"max_tokens": 5}, {"mask_token": 0, "max_tokens": 6},
                  {"num_oov_indices": 2, "oov_token": 8}):
        if mode == "tf_idf" and "max_tokens" in extra:
            extra = {**extra, "pad_to_max_tokens": True}
        case("IntegerLookup", {"output_mode": mode, **extra}, IDS, adapt=ADAPT_IDS)
        case("StringLookup", {"output_mode": mode, **{k: ("" if k == "mask_token" else
                                                         "e" if k == "oov_token" else v)
                                                      for k, v in extra.items()}},
             WORDS, adapt=ADAPT_WORDS)
case("IntegerLookup", {}, IDS, adapt=[5, 5, 3, 3, 3, 9])
case("StringLookup", {"output_mode": "tf_idf"}, WORDS, adapt=["a", "b", "b", "c"])
case("IntegerLookup", {"output_mode": "multi_hot"}, IDS, set_vocabulary=[7, 12, 36])
case("StringLookup", {}, WORDS, set_vocabulary=["[UNK]", "c", "a"])
# errors
case("IntegerLookup", {"num_oov_indices": 0, "vocabulary": INT_VOCAB}, [[12, 5]])
case("IntegerLookup", {"max_tokens": 1}, IDS)
case("IntegerLookup", {"num_oov_indices": -1}, IDS)
case("IntegerLookup", {"vocabulary_dtype": "int32"}, IDS)
case("IntegerLookup", {"output_mode": "onehot"}, IDS)
case("IntegerLookup", {"invert": True, "output_mode": "count"}, IDS)
case("IntegerLookup", {"pad_to_max_tokens": True}, IDS)
case("IntegerLookup", {"idf_weights": [1.0]}, IDS)
case("IntegerLookup", {"vocabulary": [1, 2], "output_mode": "tf_idf"}, IDS)
case("IntegerLookup", {"vocabulary": [1, 2, 1]}, IDS)
case("IntegerLookup", {"vocabulary": [1, 0, 2], "mask_token": 0}, IDS)
case("IntegerLookup", {"vocabulary": [1, 2, 3], "max_tokens": 3}, IDS)
case("IntegerLookup", {"vocabulary": []}, IDS)
case("IntegerLookup", {"salt": 3}, IDS)
case("IntegerLookup", {"oov_method": "md5"}, IDS)
case("IntegerLookup", {"output_mode": "count"}, IDS)
case("StringLookup", {"vocabulary": ["a", "[UNK]"], "invert": True}, [[0]])
case("StringLookup", {"salt": "x"}, WORDS)
case("StringLookup", {"vocabulary": ["a"]}, WORDS, adapt=ADAPT_WORDS)
for kwargs in ({"num_bins": 3}, {"num_bins": 5, "mask_value": ""}, {"num_bins": 5, "salt": 133},
               {"num_bins": 4, "salt": [1, 2]}, {"num_bins": 5, "output_mode": "multi_hot"},
               {"num_bins": 5, "output_mode": "count"}, {"num_bins": 6, "output_mode": "one_hot"},
               {"num_bins": 1}):
    case("Hashing", kwargs, WORDS)
    case("Hashing", {**kwargs, **({"mask_value": 0} if "mask_value" in kwargs else {})},
         IDS + [[123456789012, -5, 1 << 62, 7]])
case("Hashing", {"num_bins": 7}, [[1.5, 2.7, -3.2, 0.0]])
case("Hashing", {"num_bins": 7, "output_mode": "one_hot"}, [["omar"], ["marlo"]])
case("Hashing", {"num_bins": 7, "dtype": "int32"}, WORDS)
case("Hashing", {"num_bins": 7, "output_mode": "count", "dtype": "float64"}, WORDS)
case("Hashing", {"num_bins": 0}, WORDS)
case("Hashing", {"num_bins": 3, "output_mode": "binary"}, WORDS)
case("Hashing", {"num_bins": 3, "salt": "pepper"}, WORDS)
case("Hashing", {"num_bins": 3, "dtype": "float32"}, WORDS)
FEATURES = [["A", "B", "A", "B", "A", "omar", ""], [101, 101, 101, 102, 102, -5, 1 << 40]]
for kwargs in ({"num_bins": 5}, {"num_bins": 5, "output_mode": "one_hot"},
               {"num_bins": 1000003}, {"num_bins": 7, "dtype": "int32"}):
    case("HashedCrossing", kwargs, FEATURES)
    case("HashedCrossing", kwargs, [[[v] for v in f] for f in FEATURES + FEATURES[:1]])
case("HashedCrossing", {"num_bins": 97}, [["x"], [3]])
case("HashedCrossing", {"num_bins": 97}, ["x", 3])
case("HashedCrossing", {"num_bins": 97, "output_mode": "multi_hot"}, FEATURES)
case("HashedCrossing", {"num_bins": 97}, FEATURES[:1])
case("HashedCrossing", {"num_bins": 97}, [[[1, 2]], [[3, 4]]])
case("HashedCrossing", {"num_bins": 97}, [[1, 2], [3]])
case("HashedCrossing", {"num_bins": 97}, [[1.5], [3.0]])
TEXT = ["The quick, brown FOX!", "jumped over\tthe  lazy dog.", "", "ÉCOLE école  the\u00a0end",
        "fox fox fox", "a-b c_d (e) [f] {g} it's", "x\ny\r\nz\u2003w"]
for kwargs in ({}, {"output_sequence_length": 4}, {"output_sequence_length": 9, "ngrams": 2},
               {"ngrams": (1, 3), "max_tokens": 12}, {"output_mode": "multi_hot"},
               {"output_mode": "count", "max_tokens": 8, "pad_to_max_tokens": True},
               {"output_mode": "tf_idf"}, {"output_mode": "one_hot", "split": None},
               {"split": "character", "standardize": "lower"},
               {"split": None, "standardize": None}, {"standardize": "strip_punctuation"},
               {"standardize": None, "ngrams": 3, "output_mode": "count"},
               {"split": None, "output_sequence_length": 3}, {"max_tokens": 6}):
    case("TextVectorization", kwargs, TEXT, adapt=TEXT)
    case("TextVectorization", kwargs, [[t] for t in TEXT[:4]], adapt=TEXT)
case("TextVectorization", {"vocabulary": ["fox", "the", "dog"]}, TEXT)
case("TextVectorization", {"vocabulary": ["", "[UNK]", "fox", "dog"],
                           "output_sequence_length": 2}, TEXT)
case("TextVectorization", {"output_mode": "multi_hot", "vocabulary": ["fox", "dog"]},
     "the fox")
case("TextVectorization", {}, "big fox", adapt=["fox", "big dog"])
case("TextVectorization", {}, [["a b", "c"]], adapt=TEXT)
case("TextVectorization", {"standardize": "upper"}, TEXT)
case("TextVectorization", {"split": "comma"}, TEXT)
case("TextVectorization", {"ngrams": 1.5}, TEXT)
case("TextVectorization", {"output_mode": "count", "output_sequence_length": 3}, TEXT)
case("TextVectorization", {"output_sequence_length": 2.0}, TEXT)
case("TextVectorization", {"vocabulary": ["a"]}, TEXT, adapt=TEXT)


def plain(value):
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def run(c):
    cls = getattr(layers, c["layer"])
    try:
        layer = cls(**c["kwargs"])
        if c["adapt"] is not None:
            layer.adapt(np.array(c["adapt"]))
        if c["set_vocabulary"] is not None:
            layer.set_vocabulary(c["set_vocabulary"])
        if c["layer"] == "TextVectorization" and c["kwargs"].get("output_mode") == "tf_idf":
            result_idf = layer._lookup_layer.idf_weights.numpy()
        else:
            result_idf = None
        if c["layer"] == "HashedCrossing":  # (a tuple of features)
            out = layer(tuple(np.array(x) for x in c["inputs"]))
        else:
            out = layer(np.array(c["inputs"]))
        out = out.numpy() if hasattr(out, "numpy") else np.asarray(out)
        result = {"output": plain(out), "dtype": str(out.dtype) if out.dtype.kind != "O"
                  else "string"}
        if result_idf is not None:
            result["idf_weights"] = plain(result_idf)
        if hasattr(layer, "get_vocabulary"):
            result["vocabulary"] = plain(layer.get_vocabulary())
            result["vocabulary_size"] = int(layer.vocabulary_size())
            if getattr(layer, "output_mode", None) == "tf_idf":
                result["idf_weights"] = plain(layer.idf_weights.numpy())
        config = layer.get_config()
        config.pop("name")
        config.pop("dtype") if c["layer"] not in ("Hashing", "HashedCrossing") else None
        result["config"] = plain(config)
        return result
    except (ValueError, TypeError, RuntimeError, tf.errors.OpError) as e:  # (Keras's refusal)
        return {"error": type(e).__name__, "message": str(e).split("\n")[0]}


for c in CASES:
    c.update(run(c))
# TensorFlow's hashes (tf.strings.to_hash_bucket_fast: FarmHash Fingerprint64; _strong:
# SipHash-2-4) of strings of every length up to 130 and longer, modulo 2**63 - 1
texts = ["".join(chr(33 + (7 * i + n) % 90) for i in range(n)) for n in range(131)]
texts += ["ü" * 100, "x" * 255, "densitron" * 57]
big = 2 ** 63 - 1
hashes = {"texts": texts,
          "fast": tf.strings.to_hash_bucket_fast(texts, big).numpy().tolist(),
          "strong_3_5": tf.strings.to_hash_bucket_strong(texts, big, key=[3, 5]).numpy().tolist()}
with open(os.path.join(HERE, "keras_lookup.json"), "w") as f:
    json.dump({"keras": keras.__version__, "cases": CASES, "hashes": hashes}, f, indent=None)
    f.write("\n")

# A model: an adapted IntegerLookup's ids into an Embedding, beside a given vocabulary's
# multi-hot encoding and an adapted tf_idf, into a Dense
rng = np.random.default_rng(0)
x = rng.integers(-3, 30, (64, 5))
inp = keras.Input((5,), dtype="int64")
ids = layers.IntegerLookup(max_tokens=12, name="ids")
ids.adapt(x)
tags = layers.IntegerLookup(vocabulary=[3, 5, 7, 11, 13], mask_token=0, num_oov_indices=2,
                            output_mode="multi_hot", name="tags")
idf = layers.IntegerLookup(output_mode="tf_idf", max_tokens=9, pad_to_max_tokens=True,
                           name="idf")
idf.adapt(x)
h = layers.Flatten()(layers.Embedding(ids.vocabulary_size(), 3, name="emb")(ids(inp)))
out = layers.Dense(2, name="out")(layers.Concatenate()([h, tags(inp), idf(inp)]))
model = keras.Model(inp, out)
model.set_weights([np.random.default_rng(i).standard_normal(v.shape).astype(np.float32) * 0.5
                   for i, v in enumerate(model.get_weights())])
model.save(os.path.join(HERE, "keras_lookup.keras"))
np.save(os.path.join(HERE, "keras_lookup_x.npy"), x)
np.save(os.path.join(HERE, "keras_lookup_predictions.npy"), model.predict(x, verbose=0))
