"""Bad input to the convolutions, poolings and lookup layers (found by fuzzing them against
Keras 3.15): a ValueError or TypeError naming the argument and what was received, never a
crash, an absurd allocation or a silently wrong result."""

import numpy as np
import pytest
from densitron import layers
from densitron.layers import Input
from densitron.models import Model
from test_bad_input import raises  # (checks the message names what was received)


# --- IntegerLookup's engine lookup: OOV ids of any value stay in range ----------------------

def floormod_ids(x, n_oov, start=0):
    """Keras's OOV ids of float inputs: cast to int64 as x86 does (NaN and values beyond
    int64's range its minimum), floormod n_oov."""
    x = np.asarray(x, np.float64)
    inside = (x >= -2.0**63) & (x < 2.0**63)
    v = np.where(inside, np.trunc(np.where(inside, x, 0)), 0).astype(np.int64)
    v = np.where(inside, v, np.iinfo(np.int64).min)
    return start + np.mod(v, n_oov)


@pytest.mark.parametrize("n_oov", [3, 7])
def test_lookup_oov_ids_of_huge_inf_and_nan_values_stay_in_range(n_oov):
    # found by fuzzing: the engine's floormod in doubles gave id -4 for 3.3376e16 (7 OOV
    # indices) and NaN for inf: an Embedding after the lookup read memory before its table
    values = np.array([[3.337631970623488e16, -3.294010135281664e16, np.inf, -np.inf,
                        3e38, -1e30, 2.0**40, -2.0**63, 12.0, -7.0]], np.float32)
    vocab = [12, 36, 1138, 42]
    inp = Input(shape=(values.shape[1],), dtype="int64")
    lookup = layers.IntegerLookup(vocabulary=vocab, num_oov_indices=n_oov)
    ids = Model(inp, lookup(inp)).predict(values, verbose=0)
    want = floormod_ids(values.astype(np.float64), n_oov)
    want[0, 8] = n_oov  # 12: the first token, after the OOV indices
    np.testing.assert_array_equal(ids, want)
    assert ids.min() >= 0 and ids.max() < n_oov + len(vocab)
    # the same ids on arrays (float64: exact)
    np.testing.assert_array_equal(lookup(values.astype(np.float64)), want)
    # and an Embedding reads its own rows for them
    embed = layers.Embedding(n_oov + len(vocab), 3, embeddings_initializer="uniform")
    out = Model(inp, embed(lookup(inp))).predict(values, verbose=0)
    np.testing.assert_array_equal(out, embed.get_weights()[0][want])


def test_lookup_nan_in_a_model_is_the_oov_id_of_int64_minimum():
    inp = Input(shape=(2,), dtype="int64")
    lookup = layers.IntegerLookup(vocabulary=[5, 6], num_oov_indices=3, mask_token=0)
    out = Model(inp, lookup(inp)).predict(np.array([[np.nan, 0.0]]), verbose=0)
    # (-2**63 floormod 3 is 1; the mask token 0 is id 0; OOV ids start at 1)
    np.testing.assert_array_equal(out, [[1 + 1, 0]])
    np.testing.assert_array_equal(lookup(np.array([[np.nan, 0.0]])), [[2, 0]])


# --- convolutions and poolings: absurd sizes refused early, bools as Keras takes them --------

@pytest.mark.parametrize("make, shape, fragments", [
    (lambda: layers.Conv2D(2, 3), (100000, 100000, 1),
     ["its output", "input_shape=(None, 100000, 100000, 1)", "kernel_size=(3, 3)"]),
    (lambda: layers.DepthwiseConv2D(3), (100000, 100000, 1), ["its output"]),
    (lambda: layers.Conv2DTranspose(2, 3), (60000, 60000, 1), ["its output"]),
    (lambda: layers.MaxPooling2D(2), (100000, 100000, 1),
     ["its output", "pool_size=(2, 2)"]),
    (lambda: layers.AveragePooling3D(2), (4000, 4000, 4000, 1), ["its output"]),
    (lambda: layers.AdaptiveAveragePooling2D(100000), (5, 5, 3),
     ["windows' layout", "output_size=(100000, 100000)"]),
    (lambda: layers.Conv1D(2**40, 2), (5, 3), ["weights", "filters=1099511627776"]),
    (lambda: layers.SeparableConv1D(2, 2, depth_multiplier=2**40), (5, 3),
     ["weights", "depth_multiplier=1099511627776"]),
    (lambda: layers.Conv1D(2, 2**40, padding="same"), (5, 3),
     ["kernel_size=(1099511627776,)"]),
    (lambda: layers.Conv1DTranspose(2, 2, strides=2**40), (5, 3),
     ["strides=(1099511627776,)"]),
])
def test_absurd_sizes_are_refused_before_anything_is_allocated(make, shape, fragments):
    # found by fuzzing: NumPy's MemoryError (or gigabytes allocated) while building the
    # windows' index map, the weights or the engine's buffers; Keras's JAX backend died on
    # Conv2D(2**40, 2)
    with raises(ValueError, "more than half of this machine's", *fragments):
        make()(Input(shape=shape))
    if np.prod(shape) < 100:  # (on arrays too)
        with raises(ValueError, "more than half of this machine's", *fragments):
            make()(np.ones((2, *shape), np.float32))


def test_large_but_possible_layouts_are_not_refused():
    out = layers.Conv2D(4, 3, padding="same")(Input(shape=(224, 224, 64)))
    assert out.shape == (None, 224, 224, 4)


def test_bools_where_keras_takes_integers_are_the_integers_in_convolutions():
    # Keras's standardize_tuple and `filters <= 0` take Python's bools as the ints they are
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 3)).astype(np.float32)
    for make_bool, make_int in [
            (lambda: layers.Conv2D(True, (True, 2), strides=True, dilation_rate=(1, True),
                                   groups=True),
             lambda: layers.Conv2D(1, (1, 2), strides=1, dilation_rate=1, groups=1)),
            (lambda: layers.DepthwiseConv2D(2, depth_multiplier=True),
             lambda: layers.DepthwiseConv2D(2, depth_multiplier=1)),
            (lambda: layers.MaxPooling2D(pool_size=(2, True), strides=True),
             lambda: layers.MaxPooling2D(pool_size=(2, 1), strides=1))]:
        a, b = make_bool(), make_int()
        ya = a(x)
        b.build(x.shape)
        if a.get_weights():
            b.set_weights(a.get_weights())
        np.testing.assert_array_equal(ya, b(x))
        assert a.get_config() == {**b.get_config(), "name": a.name}
    for arg in ("kernel_size", "strides", "dilation_rate"):
        with raises(ValueError, f"`{arg}`", f"{arg}=False"):
            layers.Conv2D(2, **{"kernel_size": 2, arg: False})
    with raises(ValueError, "`filters`", "filters=False"):
        layers.Conv1D(False, 2)


# --- lookups and hashing ----------------------------------------------------------------

def dense_encoding(ids, mode, depth):
    """Keras's encode_categorical_inputs, written as its one-hot rows reduced."""
    ids = np.asarray(ids)
    if ids.ndim == 0:
        ids = ids[None]
    if mode == "one_hot" and ids.ndim > 1 and ids.shape[-1] == 1:
        ids = ids[..., 0]
    hot = (ids[..., None] == np.arange(depth)) & ((ids >= 0) & (ids < depth))[..., None]
    if mode == "one_hot":
        return hot.astype(np.int64)
    axis = 1 if ids.ndim > 1 else 0
    return (hot.any(axis=axis) if mode == "multi_hot" else hot.sum(axis=axis)).astype(np.int64)


@pytest.mark.parametrize("shape", [(), (7,), (5, 1), (4, 3), (2, 3, 5), (0, 3)])
@pytest.mark.parametrize("mode", ["one_hot", "multi_hot", "count"])
def test_encodings_allocate_only_their_output_and_match_keras_formula(shape, mode):
    from densitron.layers.hashing import encode_ids

    ids = np.random.default_rng(1).integers(-2, 9, size=shape)
    out = encode_ids(ids, mode, 7, np.int64)
    np.testing.assert_array_equal(out, dense_encoding(ids, mode, 7))
    assert out.dtype == np.int64


def test_encodings_too_large_for_the_machine_are_refused_by_the_argument_that_sets_them():
    # found by fuzzing: NumPy's MemoryError (np.arange of the depth, then ids x depth bools)
    x = np.array([[12, 36, 7]])
    with raises(ValueError, "one_hot output of shape (1, 3, 1099511627776)",
                "max_tokens=1099511627776"):
        layers.IntegerLookup(vocabulary=[12, 36], output_mode="one_hot", max_tokens=2**40,
                             pad_to_max_tokens=True)(x)
    for mode in ("one_hot", "multi_hot", "count"):
        with raises(ValueError, f"{mode} output", "num_bins=1099511627776"):
            layers.Hashing(num_bins=2**40, output_mode=mode)(np.array([["a"], ["b"]]))
    with raises(ValueError, "one_hot output", "num_bins=1099511627776"):
        layers.HashedCrossing(num_bins=2**40, output_mode="one_hot")(
            (np.array([1, 2]), np.array(["a", "b"])))
    with raises(ValueError, "outputs (3298534883328 values a sample", "max_tokens=2**40"
                .replace("2**40", "1099511627776")):
        layers.IntegerLookup(vocabulary=[12, 36], output_mode="one_hot", max_tokens=2**40,
                             pad_to_max_tokens=True)(Input(shape=(3,), dtype="int64"))
    with raises(ValueError, "output of shape (2, 1099511627776)",
                "output_sequence_length=1099511627776"):
        layers.TextVectorization(vocabulary=["a"], output_sequence_length=2**40)(
            np.array(["a b", "b"]))
    # the ids themselves are fine: only encodings are as wide as the depth
    ids = layers.Hashing(num_bins=2**40)(np.array(["a", "b"]))
    assert ids.dtype == np.int64 and ids.max() < 2**40


def test_numbers_beyond_int64_are_refused_by_name():
    # found by fuzzing: OverflowError "Python int too large to convert to C long"
    with raises(ValueError, "`num_bins`", f"num_bins={2**64}"):
        layers.Hashing(num_bins=2**64)
    with raises(ValueError, "`num_bins`", f"num_bins={2**64}"):
        layers.HashedCrossing(num_bins=2**64)
    for arg in ("mask_token", "oov_token"):
        with raises(ValueError, f"`{arg}`", f"{arg}={2**70}"):
            layers.IntegerLookup(vocabulary=[1, 2], **{arg: 2**70})


def test_many_oov_indices_do_not_build_a_list_of_them():
    # found by fuzzing: num_oov_indices=2**40 built a list of 2**40 special tokens
    lookup = layers.IntegerLookup(vocabulary=[12, 36], num_oov_indices=2**40)
    np.testing.assert_array_equal(lookup(np.array([12, 36, 5])),
                                  [2**40, 2**40 + 1, 5])


def test_bytes_that_are_not_utf8_hash_and_look_up_as_raw_bytes():
    # found by fuzzing: UnicodeDecodeError; TensorFlow hashes and looks up the raw bytes
    from densitron.layers.hashing import fingerprint64, siphash

    raw = [b"\xff", b"a\xfe\xfd", "é".encode()]
    out = layers.Hashing(num_bins=1000)(np.array(raw))
    np.testing.assert_array_equal(out, [fingerprint64(b) % 1000 for b in raw])
    out = layers.Hashing(num_bins=1000, salt=[3, 4])(np.array(raw, dtype=object))
    np.testing.assert_array_equal(out, [siphash([3, 4], b) % 1000 for b in raw])
    lookup = layers.StringLookup(vocabulary=[b"\xff", b"ok"])
    np.testing.assert_array_equal(lookup(np.array([b"\xff", b"ok", b"\xfe"])), [1, 2, 0])
    adapted = layers.StringLookup()
    adapted.adapt(np.array([b"\xff", b"\xff", b"a"]))
    np.testing.assert_array_equal(adapted(np.array([b"\xff", b"a"])), [1, 2])


def test_vocabulary_files_never_lose_a_token(tmp_path):
    # found by fuzzing: an adapted token "a\nb" was saved and read back (as Keras reads
    # vocabulary.txt, by its lines) as the tokens "a" and "b"
    for data, bad in [(["a\nb", "c", "c"], "'a\\nb'"), (["x\u2028y", "c"], "'x\\u2028y'"),
                      (["", "c", "c"], "''")]:
        lookup = layers.StringLookup()
        lookup.adapt(np.array(data))
        with raises(ValueError, "cannot save its vocabulary", bad):
            lookup.save_assets(str(tmp_path))
    # what the file can hold reads back as itself, bytes that are not UTF-8 too
    lookup = layers.StringLookup()
    lookup.adapt(np.array([b"b", b"", b"", b"b", b"c", b"c", b"c", b"\xff", b"\xc3\xa9"]))
    assert "" in lookup.get_vocabulary()[:-1]
    lookup.save_assets(str(tmp_path))
    loaded = layers.StringLookup()
    loaded.load_assets(str(tmp_path))
    assert loaded.get_vocabulary() == lookup.get_vocabulary()


def test_text_vectorization_ngrams_and_lengths():
    with raises(ValueError, "`ngrams`", "ngrams=0"):
        layers.TextVectorization(ngrams=0)
    with raises(ValueError, "`ngrams`", "ngrams=(2, 0)"):
        layers.TextVectorization(ngrams=(2, 0))
    with raises(ValueError, "`output_sequence_length`", "output_sequence_length=-1"):
        layers.TextVectorization(output_sequence_length=-1)
    # ngrams beyond every string's length are the n-grams up to it (2**40 built a tuple of
    # 2**40 widths before)
    vocab = ["a", "b", "a b", "b a", "a b a"]
    huge = layers.TextVectorization(vocabulary=vocab, ngrams=2**40)
    three = layers.TextVectorization(vocabulary=vocab, ngrams=3)
    x = np.array(["a b a", "b", ""])
    np.testing.assert_array_equal(huge(x), three(x))
    assert huge.get_config()["ngrams"] == 2**40


def test_ragged_ids_are_refused_by_name():
    with raises(ValueError, "rows of one length", "Received: inputs of type list"):
        layers.IntegerLookup(vocabulary=[1, 2])([[1, 2], [3]])


def test_global_pooling_data_format_is_lowercased_as_keras_does():
    # found by fuzzing: Keras's standardize_data_format takes "CHANNELS_FIRST"
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 5)).astype(np.float32)
    for cls in (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D):
        upper = cls(data_format="CHANNELS_FIRST")
        assert upper.get_config()["data_format"] == "channels_first"
        np.testing.assert_allclose(upper(x), cls(data_format="channels_first")(x))
    with raises(ValueError, "`data_format`", "data_format='NCHW'"):
        layers.GlobalAveragePooling1D(data_format="NCHW")


def test_lookup_messages_say_what_was_received():
    with raises(ValueError, "repeated term", "[1]"):
        layers.IntegerLookup(vocabulary=[1, 2, 1])
    with raises(ValueError, "does not exist", "vocabulary='/nonexistent/v.txt'"):
        layers.StringLookup(vocabulary="/nonexistent/v.txt")
    with raises(ValueError, "found OOV values [7]", "num_oov_indices=0"):
        layers.IntegerLookup(vocabulary=[1, 2], num_oov_indices=0)(np.array([1, 7]))
    # tf_idf's weights padded to an absurd max_tokens: refused, not an 8 TiB np.pad
    with raises(ValueError, "idf weights", "max_tokens=1099511627776"):
        layers.IntegerLookup(vocabulary=[1, 2], idf_weights=[0.5, 0.25], output_mode="tf_idf",
                             max_tokens=2**40, pad_to_max_tokens=True)
    lookup = layers.StringLookup(output_mode="tf_idf", max_tokens=2**40, pad_to_max_tokens=True)
    with raises(ValueError, "idf weights", "max_tokens=1099511627776"):
        lookup.adapt(np.array(["a", "b"]))


def test_pooling_padding_in_any_case_as_keras_jax_takes_it():
    # found by fuzzing: Keras's MaxPooling1D(padding="SAME") pools as "same" on JAX
    x = np.random.default_rng(3).normal(size=(2, 5, 3)).astype(np.float32)
    for cls in (layers.MaxPooling1D, layers.AveragePooling1D):
        np.testing.assert_array_equal(cls(3, padding="SAME")(x), cls(3, padding="same")(x))
        assert cls(3, padding="Valid").get_config()["padding"] == "valid"
        for bad in ("full", None, 1):
            with raises(ValueError, "`padding`", f"padding={bad!r}"):
                cls(3, padding=bad)


def test_an_embedding_too_small_for_the_lookup_ids_says_what_was_received():
    # (the engine's refusal named neither the ids nor input_dim)
    lookup = layers.IntegerLookup(vocabulary=[12, 36], num_oov_indices=4, mask_token=0)
    inp = Input(shape=(3,), dtype="int64")
    with raises(ValueError, "vocabulary_size()", "ids up to 6 for input_dim=6"):
        # (ids 0..6: input_dim 7 needed)
        Model(inp, layers.Embedding(6, 2)(lookup(inp))).predict(np.array([[12, 5, 0]]),
                                                               verbose=0)
    assert lookup.vocabulary_size() == 7
    ok = Model(inp, layers.Embedding(7, 2)(lookup(inp)))
    assert ok.predict(np.array([[12, 5, 0]]), verbose=0).shape == (1, 3, 2)
