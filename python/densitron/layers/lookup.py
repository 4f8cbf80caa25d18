"""Keras's IntegerLookup and StringLookup: tokens to indices in a vocabulary (given, read from
a file, or learned by adapt), the mask token at 0 and OOV tokens at the next num_oov_indices
indices, output as indices ("int") or encoded over the vocabulary; `invert` maps indices back.
Called on arrays, computed in NumPy as Keras's with TensorFlow (int64 ids, int64 encodings,
float32 tf_idf). In a model, IntegerLookup runs as the engine's categorize op over a sorted
table (ids as float32, as every engine tensor); StringLookup runs on arrays only, as does
TextVectorization (strings standardized, split and looked up by a StringLookup)."""

import collections
import math
import numbers
import os
import re

import numpy as np

from densitron.layers.convolutional import refuse_oversized
from densitron.layers.hashing import (
    as_value_array,
    check_array_call,
    encode_ids,
    hash_buckets,
    refuse_in_model,
)
from densitron.layers.layer import KerasTensor, Layer, engine_node

_CATEGORIZE = 21  # densitron::OpType::kCategorize
_STANDARDIZE = 17  # densitron::OpType::kStandardize
_ENGINE_MODES = {"int": -1, "one_hot": 0, "multi_hot": 1, "count": 2}
_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")


def _check_choice(value, allowed, caller, arg):
    if value not in allowed:
        raise ValueError(f"Unknown value for `{arg}` argument of {caller}. Allowed values are: "
                         f"{allowed}. Received: {arg}={value}")


def _listify(value):
    return value.tolist() if isinstance(value, np.ndarray) else value



def _adapt_from(layer, data, steps, as_array):
    """Keras's adapt of a lookup: its state reset, then updated with each batch of an
    iterable (at most `steps`; a batch's x when it is a tuple) or with the array
    `as_array()` makes of data (a column of tokens for 1-D data), then finalized."""
    layer.reset_state()
    if hasattr(data, "__iter__") and not isinstance(data, (list, tuple, np.ndarray, str)):
        for i, batch in enumerate(data):
            if steps is not None and i >= steps:
                break
            layer.update_state(batch[0] if isinstance(batch, tuple) else batch)
    else:
        array = as_array()
        layer.update_state(array[:, None] if array.ndim == 1 else array)
    layer.finalize_state()

class _IndexLookup(Layer):
    """Keras's IndexLookup: the vocabulary, its special tokens, adapt, the lookup on arrays."""

    _string = False
    _own_variables_by_name = True  # (saving.py: Keras's save_own_variables' names)

    def __init__(self, max_tokens, num_oov_indices, mask_token, oov_token, vocabulary_dtype,
                 vocabulary=None, idf_weights=None, invert=False, output_mode="int",
                 sparse=False, pad_to_max_tokens=False, oov_method="floormod", name=None,
                 salt=None, **kwargs):
        caller = type(self).__name__
        if max_tokens is not None and (isinstance(max_tokens, bool) or
                                       not isinstance(max_tokens, numbers.Integral)):
            raise TypeError(f"`max_tokens` must be an integer or None. "
                            f"Received: max_tokens={max_tokens!r}")
        if max_tokens is not None and max_tokens <= 1:
            raise ValueError("If set, `max_tokens` must be greater than 1. "
                             f"Received: max_tokens={max_tokens}")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError("If pad_to_max_tokens is True, must set `max_tokens`. "
                             f"Received: max_tokens={max_tokens}")
        if isinstance(num_oov_indices, bool) or not isinstance(num_oov_indices,
                                                               numbers.Integral):
            raise TypeError(f"`num_oov_indices` must be an integer. "
                             f"Received: num_oov_indices={num_oov_indices!r}")
        if num_oov_indices < 0:
            raise ValueError("`num_oov_indices` must be greater than or equal to 0. "
                             f"Received: num_oov_indices={num_oov_indices}")
        _check_choice(oov_method, ("floormod", "farmhash"), caller, "oov_method")
        if salt is not None:
            if not self._string and oov_method != "farmhash":
                raise ValueError("`salt` can only be used when `oov_method='farmhash'`. "
                                 f"Received: oov_method={oov_method}")
            if isinstance(salt, (tuple, list)) and len(salt) == 2:
                salt = list(salt)
            elif isinstance(salt, numbers.Integral) and not isinstance(salt, bool):
                salt = [int(salt), int(salt)]
            else:
                raise ValueError("The `salt` argument for `IndexLookup` can only be a tuple of "
                                 f"2 integers, or a single integer. Received: salt={salt}.")
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode == "tf-idf":
            output_mode = "tf_idf"
        _check_choice(output_mode, _MODES, caller, "output_mode")
        if invert and output_mode != "int":
            raise ValueError("`output_mode` must be `'int'` when `invert` is true. "
                             f"Received: output_mode={output_mode}")
        if sparse and output_mode == "int":
            raise ValueError("`sparse` may only be true if `output_mode` is `'one_hot'`, "
                             "`'multi_hot'`, `'count'` or `'tf_idf'`. "
                             f"Received: sparse={sparse} and output_mode={output_mode}")
        if idf_weights is not None and output_mode != "tf_idf":
            raise ValueError("`idf_weights` should only be set if `output_mode` is "
                             f"`'tf_idf'`. Received: idf_weights={idf_weights} and "
                             f"output_mode={output_mode}")
        frozen = kwargs.pop("vocabulary_size", None)
        has_input = kwargs.pop("has_input_vocabulary", vocabulary is not None)
        trainable = kwargs.pop("trainable", True)
        kwargs.pop("dtype", None)
        if kwargs:
            raise ValueError(f"Unrecognized keyword argument(s): {kwargs}")
        super().__init__(name=name, trainable=trainable)
        self.invert = bool(invert)
        self.max_tokens = max_tokens
        self.num_oov_indices = int(num_oov_indices)
        self.mask_token = mask_token
        self.oov_token = oov_token
        self.output_mode = output_mode
        self.sparse = bool(sparse)
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        self.vocabulary_dtype = vocabulary_dtype
        self.oov_method = oov_method
        self.salt = salt
        self._frozen_vocab_size = frozen
        self.input_vocabulary = vocabulary if not isinstance(vocabulary, str) else None
        self.input_idf_weights = idf_weights
        self._has_input_vocabulary = bool(has_input)
        self._tokens = None  # the vocabulary's tokens, special tokens left out
        self.idf_weights = None  # (tf_idf: one float32 weight an output column)
        if output_mode == "tf_idf":
            if self._has_input_vocabulary and idf_weights is None:
                raise ValueError("When specifying the `vocabulary` argument, in TF-IDF output "
                                 "mode, the `idf_weights` argument must also be provided.")
            if idf_weights is not None:
                self.idf_weights = np.asarray(idf_weights, np.float32)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        self.reset_state()

    # --- the vocabulary -------------------------------------------------------------------
    def _oov_start_index(self):
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start_index(self):
        return self._oov_start_index() + self.num_oov_indices

    def vocabulary_size(self):
        """The size of the vocabulary, mask and OOV indices included."""
        return len(self._tokens if self._tokens is not None else ()) + self._token_start_index()

    def get_vocabulary(self, include_special_tokens=True):
        """The vocabulary, a token's index in it its index in the layer's outputs (with
        `include_special_tokens`, else without the mask and OOV tokens)."""
        vocab = [self.oov_token] * self._token_start_index() + list(
            self._tokens.tolist() if self._tokens is not None else ())
        if self.mask_token is not None and self.output_mode == "int":
            vocab[0] = self.mask_token
        if not include_special_tokens:
            vocab = vocab[self._token_start_index():]
        return vocab

    def _as_tokens(self, values, what):
        """Tokens of the vocabulary's type, as an array."""
        try:
            array = np.asarray(values)
        except ValueError:
            raise ValueError(f"A lookup's {what} is an array: rows of one length. Received: "
                             f"{what} of type {type(values).__name__}") from None
        if self._string:
            if array.dtype.kind == "S":  # (bytes not UTF-8 kept, as as_value_array does)
                array = np.char.decode(array, "utf-8", "surrogateescape")
            elif array.dtype.kind == "O" and all(isinstance(v, (str, bytes)) for v in
                                                 array.reshape(-1)):
                array = np.array([v.decode("utf-8", "surrogateescape") if isinstance(v, bytes)
                                  else v
                                  for v in array.reshape(-1)], dtype=str).reshape(array.shape)
            if array.dtype.kind != "U" and array.size:
                raise TypeError(f"A StringLookup's {what} holds strings. Received: {what} of "
                                f"dtype {array.dtype}")
            return array.astype(str)
        if array.dtype.kind not in "iub" and array.size:
            if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(
                    array == np.round(array)):
                return array.astype(np.int64)
            raise TypeError(f"An IntegerLookup's {what} holds integers. Received: {what} of "
                            f"dtype {array.dtype}")
        return array.astype(np.int64)

    def set_vocabulary(self, vocabulary, idf_weights=None):
        """Keras's set_vocabulary: the tokens (a list or 1-D array, special tokens first or
        left out, or a text file's path, one token a line) and, for "tf_idf", their idf
        weights."""
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError("`idf_weights` must be set if output_mode is 'tf_idf'.")
        elif idf_weights is not None:
            raise ValueError("`idf_weights` should only be set if output_mode is `'tf_idf'`. "
                             f"Received: output_mode={self.output_mode} and "
                             f"idf_weights={idf_weights}")
        if isinstance(vocabulary, str):
            if not os.path.exists(vocabulary):
                raise ValueError(f"Vocabulary file {vocabulary} does not exist. "
                                 f"Received: vocabulary={vocabulary!r}")
            if self.output_mode == "tf_idf":
                raise ValueError("output_mode `'tf_idf'` does not support loading a vocabulary "
                                 "from file.")
            with open(vocabulary, encoding="utf-8") as f:
                lines = f.read().split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            if self._string:
                tokens = np.array(lines, dtype=str)
            else:
                try:
                    tokens = np.array([int(line) for line in lines], np.int64)
                except ValueError:
                    raise ValueError(f"An IntegerLookup's vocabulary file holds one integer a "
                                     f"line. Received: vocabulary={vocabulary!r}") from None
            self._check_repeated(tokens)
            self._set_tokens(tokens)
            return
        vocabulary = self._as_tokens(vocabulary, "vocabulary")
        if vocabulary.ndim != 1:
            raise ValueError(f"`vocabulary` must be 1-D. Received: vocabulary of shape "
                             f"{vocabulary.shape}")
        if vocabulary.size == 0:
            raise ValueError(f"Cannot set an empty vocabulary. Received: vocabulary="
                             f"{vocabulary}")
        token_start = self._token_start_index()
        # (the special tokens' list made only when the vocabulary may begin with them)
        special = [self.mask_token] * self._oov_start_index() + \
            [self.oov_token] * self.num_oov_indices if len(vocabulary) >= token_start else \
            f"[{self.mask_token!r}] * {self._oov_start_index()} + [{self.oov_token!r}] * " \
            f"{self.num_oov_indices}"
        found_special = len(vocabulary) >= token_start and \
            vocabulary[:token_start].tolist() == special
        tokens = vocabulary[token_start:] if found_special else vocabulary
        self._check_repeated(tokens)
        listed = tokens.tolist()
        # (Keras's errors for a special token among the others: the mask token, and the OOV
        # token when inverting)
        for kind, arg, token, checked in (("mask", "mask_token", self.mask_token, True),
                                          ("OOV", "oov_token", self.oov_token, self.invert)):
            if token is not None and checked and token in listed:
                index = np.argwhere(vocabulary == token)[-1]
                raise ValueError(
                    f"Found reserved {kind} token at unexpected location in `vocabulary`. "
                    "Note that passed `vocabulary` does not need to include the OOV and mask "
                    "tokens. Either remove all mask and OOV tokens, or include them only at "
                    f"the start of the vocabulary in precisely this order: {special}. "
                    f"Received: {arg}={token} at vocabulary index {index}")
        size = token_start + len(tokens)
        if self.max_tokens is not None and size > self.max_tokens:
            raise ValueError("Attempted to set a vocabulary larger than the maximum vocab "
                             f"size. Received vocabulary size is {size}; `max_tokens` is "
                             f"{self.max_tokens}.")
        if self.output_mode == "tf_idf":
            weights = np.asarray(idf_weights)
            if len(vocabulary) != len(weights):
                raise ValueError("`idf_weights` must be the same length as vocabulary. "
                                 f"len(idf_weights) is {len(weights)}; len(vocabulary) is "
                                 f"{len(vocabulary)}")
            if weights.ndim != 1:
                raise ValueError("TF-IDF data must be a 1-index array. "
                                 f"Received: type(idf_weights)={type(idf_weights)}")
            front, front_value = (0, 0) if found_special else (token_start,
                                                                np.average(weights))
            back = (self.max_tokens - front - len(weights)
                    if self.pad_to_max_tokens and self.max_tokens is not None else 0)
            self._check_idf_size(front + len(weights) + back)
            self._set_tokens(tokens)
            self.idf_weights = np.pad(weights, (front, back), "constant",
                                      constant_values=(front_value, 0)).astype(np.float32)
            return
        self._set_tokens(tokens)

    def _check_idf_size(self, size):
        refuse_oversized(self, f"its {size} idf weights", size * 12,
                         f"max_tokens={self.max_tokens} with pad_to_max_tokens=True")

    @staticmethod
    def _check_repeated(tokens):
        listed = tokens.tolist()
        if len(set(listed)) != len(listed):
            repeated = [t for t, c in collections.Counter(listed).items() if c > 1]
            raise ValueError("The passed vocabulary has at least one repeated term. Please "
                             "uniquify your dataset. The repeated terms are: "
                             f"{repeated}. Received: a vocabulary of {len(listed)} tokens")

    def _set_tokens(self, tokens):
        old = self._tokens
        self._tokens = tokens
        try:
            self._record_vocabulary_size()
        except RuntimeError:
            self._tokens = old
            raise

    def _record_vocabulary_size(self):
        self._vocabulary_version = getattr(self, "_vocabulary_version", 0) + 1
        size = self.vocabulary_size()
        if (self.output_mode != "int" and not self.pad_to_max_tokens and
                self._frozen_vocab_size is not None and size != self._frozen_vocab_size):
            raise RuntimeError(
                f"When using `output_mode={self.output_mode}` and `pad_to_max_tokens=False`, "
                "the vocabulary size cannot be changed after the layer is called. Old vocab "
                f"size is {self._frozen_vocab_size}, new vocab size is {size}")
        self._frozen_vocab_size = size

    # --- adapt ------------------------------------------------------------------------------
    def reset_state(self):
        if self._has_input_vocabulary:
            return
        self._token_counts = collections.Counter()
        self._document_counts = collections.Counter()
        self._num_documents = 0

    def adapt(self, data, steps=None):
        """Keras's adapt: the vocabulary of `data`'s tokens (an array or list: each element of
        a 1-D one its own document; or an iterable of batches, at most `steps`), most frequent
        first, ties by the tokens from high to low, at most max_tokens with the special
        tokens; with "tf_idf", their idf weights log(1 + documents / (1 + documents holding
        the token))."""
        if self._inbound_nodes:
            raise ValueError(f"densitron builds a model's engine graph with the layer's "
                             f"vocabulary: adapt {self.name} before calling it on tensors. "
                             "Received: a call to adapt() after the layer was used")
        _adapt_from(self, data, steps, lambda: self._as_tokens(data, "data"))

    def update_state(self, data):
        if self._has_input_vocabulary:
            raise ValueError(f"Cannot adapt layer '{self.name}' after setting a static "
                             "vocabulary via `vocabulary` argument or `set_vocabulary()` "
                             "method.")
        data = self._as_tokens(data, "data")
        if data.ndim == 0:
            data = data[None]
        if data.ndim == 1:
            data = data[None]
        self._token_counts.update(data.reshape(-1).tolist())
        if self.output_mode == "tf_idf":
            for row in data:
                self._document_counts.update(set(np.reshape(row, -1).tolist()))
            self._num_documents += data.shape[0]

    def finalize_state(self):
        if self._has_input_vocabulary or not self._token_counts:
            self._record_vocabulary_size()
            return
        for special in (self.mask_token, self.oov_token):
            if special is not None:
                self._token_counts.pop(special, None)
        items = list(self._token_counts.items())
        # (Keras's order: by count, then by the token, both from high to low; strings as
        # their UTF-8 bytes)
        key = (lambda kv: (kv[1], kv[0].encode("utf-8", "surrogateescape"))) \
            if self._string else \
            (lambda kv: (kv[1], kv[0]))
        items.sort(key=key, reverse=True)
        token_start = self._token_start_index()
        if self.max_tokens:
            items = items[:self.max_tokens - token_start]
        tokens = [t for t, _ in items]
        self._tokens = np.array(tokens, dtype=str if self._string else np.int64)
        if self.output_mode == "tf_idf":
            counts = np.array([self._document_counts[t] for t in tokens], np.float64)
            idf = np.log(1 + self._num_documents / (1 + counts)).astype(np.float32)
            idf = np.pad(idf, (token_start, 0), constant_values=np.mean(idf, dtype=np.float32))
            if self.pad_to_max_tokens and self.max_tokens is not None:
                self._check_idf_size(self.max_tokens)
                idf = np.pad(idf, (0, self.max_tokens - idf.size))
            self.idf_weights = idf.astype(np.float32)
        self.reset_state()
        self._record_vocabulary_size()

    # --- the lookup ---------------------------------------------------------------------
    def _depth(self):
        return self.max_tokens if self.pad_to_max_tokens else self._frozen_vocab_size

    def _depth_arg(self):
        """What sets the encodings' depth, for a refusal's "Received:"."""
        if self.pad_to_max_tokens:
            return f"max_tokens={self.max_tokens} with pad_to_max_tokens=True"
        return f"a vocabulary of {self._frozen_vocab_size} indices"

    def _ensure_known_vocab_size(self):
        if self.output_mode == "int" or self.pad_to_max_tokens:
            return
        if self._frozen_vocab_size is None:
            raise RuntimeError(
                f"When using `output_mode={self.output_mode}` and `pad_to_max_tokens=False`, "
                "you must set the layer's vocabulary before calling it. Either pass a "
                "`vocabulary` argument to the layer, or call `adapt` with some sample data.")

    def __call__(self, inputs, *args, **kwargs):
        flat = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if any(isinstance(t, KerasTensor) for t in flat):
            return self._symbolic(inputs, *args, **kwargs)
        kwargs.pop("training", None)  # (Keras's call takes none: the lookup is the same)
        if args or kwargs:
            raise TypeError(f"Layer {self.name} takes only its inputs when called. "
                            f"Received: args={args}, kwargs={kwargs}")
        self._ensure_known_vocab_size()
        values = as_value_array(inputs, f"Layer {self.name}")
        scalar = values.ndim == 0
        if scalar:
            values = values[None]
        ids = self._lookup(values)
        if self.output_mode == "int":
            return ids[0] if scalar else ids
        depth = self._depth()
        if self.output_mode != "tf_idf":
            return encode_ids(ids, self.output_mode, depth, np.int64, self, self._depth_arg())
        if self.idf_weights is None:
            raise ValueError("When `output_mode` is `'tf_idf'`, `idf_weights` must be "
                             "provided.")
        counts = encode_ids(ids, "count", depth, np.float32, self, self._depth_arg())
        return counts * self.idf_weights.astype(np.float32)

    def _symbolic(self, inputs, *args, **kwargs):
        refuse_in_model(self, inputs)

    def _keys(self, values):
        """The inputs as the table's keys: strings, or int64 (floats truncated, as Keras
        casts them); indices (int64) when inverting."""
        if self.invert or not self._string:
            if values.dtype.kind not in "biuf":
                raise TypeError(f"Layer {self.name} looks up integers. Received: inputs of "
                                f"dtype {values.dtype}")
            with np.errstate(invalid="ignore"):  # (NaN: int64's minimum, as TensorFlow's cast)
                return values.astype(np.int64)
        if values.dtype.kind != "U":
            raise TypeError(f"Layer {self.name} looks up strings. Received: inputs of dtype "
                            f"{values.dtype}")
        return values

    def _lookup(self, values):
        keys = self._keys(values)
        tokens = self._tokens if self._tokens is not None else np.array(
            [], dtype=str if self._string else np.int64)
        start = self._token_start_index()
        uniques, inverse = np.unique(keys.reshape(-1), return_inverse=True)
        listed = uniques.tolist()
        if self.invert:
            table = {start + i: t for i, t in enumerate(tokens.tolist())}
            default = self.oov_token
            if self.mask_token is not None:
                table[0] = self.mask_token
            found = [table.get(u, default) for u in listed]
            out = np.array(found, dtype=str if self._string else np.int64) if found else \
                np.array([], dtype=str if self._string else np.int64)
            return out[inverse].reshape(keys.shape)
        table = {t: start + i for i, t in enumerate(tokens.tolist())}
        n_oov = self.num_oov_indices
        default = -1 if n_oov != 1 else self._oov_start_index()
        mapped = np.array([table.get(u, default) for u in listed], np.int64)
        ids = mapped[inverse].reshape(keys.shape)
        if self.mask_token is not None:
            mask_value = 0 if self.output_mode == "int" else -1  # (-1: dropped from encodings)
            ids = np.where(keys == self.mask_token, mask_value, ids)
            oov = (ids == -1) & (keys != self.mask_token)
        else:
            oov = ids == -1
        if n_oov == 0:
            if np.any(oov):
                raise ValueError("When `num_oov_indices=0` all inputs should be in vocabulary, "
                                 f"found OOV values {keys[oov].tolist()}, consider setting "
                                 "`num_oov_indices=1`. Received: num_oov_indices=0")
        elif n_oov > 1 and np.any(oov):
            if not self._string and self.oov_method != "farmhash":
                buckets = np.mod(keys, n_oov)
            else:
                buckets = hash_buckets(keys, n_oov, self.salt)
            ids = np.where(oov, buckets + self._oov_start_index(), ids)
        return ids

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        depth = self._depth()
        input_shape = tuple(input_shape)
        if self.output_mode == "one_hot":
            if len(input_shape) > 1 and input_shape[-1] == 1:
                return input_shape[:-1] + (depth,)
            return input_shape + (depth,)
        return input_shape[:-1] + (depth,)

    # --- config and files ------------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)
        config.update({
            "invert": self.invert,
            "max_tokens": self.max_tokens,
            "num_oov_indices": self.num_oov_indices,
            "oov_token": self.oov_token,
            "mask_token": self.mask_token,
            "output_mode": self.output_mode,
            "sparse": self.sparse,
            "pad_to_max_tokens": self.pad_to_max_tokens,
            "vocabulary_dtype": self.vocabulary_dtype,
            "idf_weights": _listify(self.input_idf_weights),
            "vocabulary": _listify(self.input_vocabulary),
            "vocabulary_size": self._frozen_vocab_size,
            "oov_method": self.oov_method,
            "salt": self.salt,
        })
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        return {}

    def build_from_config(self, config):
        self.built = True

    def save_assets(self, dir_path):
        """Keras's: an adapted vocabulary (or one read from a file) as vocabulary.txt, one
        token a line, special tokens first (a given one is in the config)."""
        if self.input_vocabulary is not None:
            return
        vocab = [str(w) for w in self.get_vocabulary(include_special_tokens=True)]
        # (Keras reads the file back by splitlines(), trailing empty lines dropped: a token
        # holding a line break, or an empty last token, would come back as other tokens)
        for i, token in enumerate(vocab):
            if (token.splitlines() != [token] and token != "") or \
                    (token == "" and i == len(vocab) - 1):
                raise ValueError(
                    f"Layer {self.name!r} cannot save its vocabulary: vocabulary.txt holds one "
                    "token a line (as Keras writes and reads it), and token "
                    f"{token!r} at index {i} would not read back as itself. Received: a "
                    f"vocabulary with the token {token!r}")
        with open(os.path.join(dir_path, "vocabulary.txt"), "w", encoding="utf-8",
                  errors="surrogateescape", newline="") as f:
            f.write("\n".join(vocab))

    def save_own_variables(self, store):
        """Keras's: "tf_idf" keeps its idf weights as the variable "idf_weights"."""
        if self.output_mode == "tf_idf" and self.idf_weights is not None:
            store["idf_weights"] = np.asarray(self.idf_weights, np.float32)

    def load_own_variables(self, store):
        if self.output_mode == "tf_idf" and "idf_weights" in store:
            self.idf_weights = np.asarray(store["idf_weights"], np.float32)
            self._vocabulary_version = getattr(self, "_vocabulary_version", 0) + 1

    def load_assets(self, dir_path):
        """Keras's: the vocabulary save_assets wrote."""
        if self.input_vocabulary is not None or dir_path is None:
            return
        path = os.path.join(dir_path, "vocabulary.txt")
        if not os.path.exists(path):
            return
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
        while lines and lines[-1] == "":
            lines.pop()
        values = lines if self._string else [int(line) for line in lines]
        if self.output_mode == "tf_idf":
            self.set_vocabulary(values, idf_weights=self.idf_weights)
        else:
            self.set_vocabulary(values)


class IntegerLookup(_IndexLookup):
    """Keras's IntegerLookup: integer tokens to indices (see the module's description). In a
    model, on an integer Input, the lookup runs on the engine ("int", "one_hot", "multi_hot",
    "count", and `invert`; float32 values, so tokens below 2**24 in magnitude), a vocabulary
    set anew rebuilding the engine's graph; an Embedding may read its ids."""

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=-1,
                 vocabulary=None, vocabulary_dtype="int64", idf_weights=None, invert=False,
                 output_mode="int", sparse=False, pad_to_max_tokens=False,
                 oov_method="floormod", salt=None, name=None, **kwargs):
        if isinstance(max_tokens, numbers.Integral) and max_tokens <= 1:
            raise ValueError("If `max_tokens` is set for `IntegerLookup`, it must be greater "
                             f"than 1. Received: max_tokens={max_tokens}")
        if isinstance(num_oov_indices, numbers.Integral) and num_oov_indices < 0:
            raise ValueError("The value of `num_oov_indices` argument for `IntegerLookup` must "
                             f">= 0. Received: num_oov_indices={num_oov_indices}")
        if sparse:
            raise ValueError("`sparse=True` can only be used with the TensorFlow backend. "
                             f"Received: sparse={sparse}")
        if vocabulary_dtype != "int64":
            raise ValueError("Only `vocabulary_dtype='int64'` is supported at this time. "
                             f"Received: vocabulary_dtype={vocabulary_dtype}")
        for arg, value in (("mask_token", mask_token), ("oov_token", oov_token)):
            if value is not None and (isinstance(value, bool) or
                                      not isinstance(value, numbers.Integral)):
                raise ValueError(f"`{arg}` of an IntegerLookup is an integer or None. "
                                 f"Received: {arg}={value!r}")
            if value is not None and not -2**63 <= value < 2**63:  # (Keras's int64 tokens)
                raise ValueError(f"`{arg}` of an IntegerLookup is an int64 integer. "
                                 f"Received: {arg}={value!r}")
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                         mask_token=None if mask_token is None else int(mask_token),
                         oov_token=None if oov_token is None else int(oov_token),
                         vocabulary=vocabulary, vocabulary_dtype=vocabulary_dtype,
                         idf_weights=idf_weights, invert=invert, output_mode=output_mode,
                         sparse=sparse, pad_to_max_tokens=pad_to_max_tokens,
                         oov_method=oov_method, salt=salt, name=name, **kwargs)

    def __call__(self, inputs, *args, **kwargs):
        from densitron.layers.preprocessing import _ids_array

        if isinstance(inputs, (list, tuple)) and not any(
                isinstance(t, KerasTensor) for t in inputs):
            as_value_array(inputs, f"Layer {self.name}")  # (ragged rows refused by name)
        return super().__call__(_ids_array(inputs), *args, **kwargs)

    def get_config(self):
        config = super().get_config()
        if config["vocabulary"] is not None:
            config["vocabulary"] = [int(v) for v in config["vocabulary"]]
        return config

    # --- in a model: the engine's categorize op over a sorted table --------------------------
    _single_input = True

    def _symbolic(self, inputs, *args, **kwargs):
        if self.num_oov_indices == 0 and not self.invert:
            raise ValueError("densitron's engine cannot stop on an OOV value as Keras does "
                             "with `num_oov_indices=0`: use num_oov_indices=1 in a model, or "
                             f"apply {self.name} to the data before fit. Received: "
                             "num_oov_indices=0 in a model")
        if self.num_oov_indices > 1 and self.oov_method == "farmhash":
            raise ValueError(f"densitron's IntegerLookup hashes OOV values on arrays only: "
                             f"apply {self.name} to the data before fit. Received: "
                             "oov_method='farmhash' in a model")
        self._ensure_known_vocab_size()
        self._check_float32_keys()
        return Layer.__call__(self, inputs, *args, **kwargs)

    def _check_float32_keys(self):
        """The engine's tensors are float32: integers beyond 2**24 would be rounded."""
        keys, values, default, _ = self._engine_table()
        tokens = [abs(int(t)) for t in (*keys, *values, default) if t is not None]
        if tokens and max(tokens) >= 1 << 24:
            raise ValueError(
                f"densitron's engine holds a model's values as float32, which rounds integers "
                f"of 2**24 or more: apply {self.name} to the data before fit (its lookup on "
                "arrays is exact). Received: a vocabulary with tokens of magnitude up to "
                f"{max(tokens)}")

    def _check_inputs(self, input_shape):
        self._check_single(input_shape, min_rank=1)
        if self.output_mode != "int" and all(d is not None for d in input_shape[1:]):
            width = math.prod(input_shape[1:]) * self._depth()
            refuse_oversized(self, f"its outputs ({width} values a sample, in batches of 32)",
                             width * 4 * 32, f"input_shape={tuple(input_shape)} and "
                             f"{self._depth_arg()}")
        if self.output_mode in ("multi_hot", "count", "tf_idf") and len(input_shape) < 2:
            raise ValueError(
                f"densitron's IntegerLookup encodes each sample's ids, (batch, ids), in a "
                f"model; Keras's \"{self.output_mode}\" of one id a sample (batch,) encodes "
                "the whole batch as one sample (give the Input a last axis: shape=(1,)). "
                f"Received: input_shape={tuple(input_shape)}")
        if self.output_mode in ("multi_hot", "count", "tf_idf") and len(input_shape) > 2:
            raise ValueError(
                f"densitron's IntegerLookup encodes one sample's ids (batch, ids) in a model; "
                f"Keras's \"{self.output_mode}\" of inputs of rank 3 or more reduces over their "
                f"second axis (apply {self.name} to the data before fit). Received: "
                f"input_shape={tuple(input_shape)}")

    @property
    def _gives_ids(self):
        """Whether its outputs are ids an Embedding may read (the engine checks their range)."""
        return self.output_mode == "int" and not self.invert

    def _engine_table(self):
        """(sorted keys, their ids, default) of the lookup, and the OOV range."""
        tokens = self._tokens if self._tokens is not None else np.array([], np.int64)
        start = self._token_start_index()
        if self.invert:
            keys = list(range(start, start + len(tokens)))
            values = tokens.tolist()
            if self.mask_token is not None:
                keys, values = [0] + keys, [self.mask_token] + values
            return keys, values, self.oov_token, 0
        order = np.argsort(tokens, kind="stable")
        keys = tokens[order].tolist()
        values = (order + start).tolist()
        if self.mask_token is not None:
            at = int(np.searchsorted(np.asarray(keys, np.int64), self.mask_token))
            keys.insert(at, self.mask_token)
            values.insert(at, 0 if self.output_mode == "int" else -1)
        # (NaN: the first OOV index; a model refuses num_oov_indices=0)
        return keys, values, self._oov_start_index(), self.num_oov_indices

    def _engine_node(self, node, param_index):
        return self._engine_chain(node, param_index)[0]

    def _engine_chain(self, node, param_index):
        """The lookup; for "tf_idf", its counts then scaled by the idf weights (the engine's
        standardize op as Rescaling runs it: x·idf + 0 per column)."""
        self._check_float32_keys()  # (a vocabulary set after the call)
        keys, values, default, n_oov = self._engine_table()
        shape = node.inputs[0].shape
        k = int(shape[-1]) if len(shape) > 1 else 1
        depth = 1 if self.output_mode == "int" else self._depth()
        default = float("nan") if default is None else default
        mode = _ENGINE_MODES["count" if self.output_mode == "tf_idf" else self.output_mode]
        lookup = engine_node(_CATEGORIZE, node,
                             iattrs=[depth, k, mode, 2, n_oov, self._oov_start_index()],
                             fattrs=[float(v) for v in (*keys, *values, default)])
        if self.output_mode != "tf_idf":
            return [lookup]
        # (no idf weights yet, as while a file loads: NaN columns until they are set, when
        # the graph is made again)
        idf = np.full(depth, np.nan) if self.idf_weights is None else \
            np.asarray(self.idf_weights, np.float32)
        if idf.shape != (depth,):
            raise ValueError(f"IntegerLookup {self.name!r} has {depth} columns and "
                             f"{idf.size} idf weights. Received: idf_weights={idf.tolist()}")
        scale = engine_node(_STANDARDIZE, node, fattrs=[0.0] * depth + idf.tolist(),
                            iattrs=[1, depth])
        return [lookup, scale]


class StringLookup(_IndexLookup):
    """Keras's StringLookup: string tokens to indices (see the module's description). Runs
    on arrays (strings, or bytes decoded as UTF-8); `invert` gives an array of strings. In a
    model it is refused, as Keras's on a backend other than TensorFlow: apply it to the
    data before fit."""

    _string = True

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token="[UNK]",
                 vocabulary=None, idf_weights=None, invert=False, output_mode="int",
                 pad_to_max_tokens=False, sparse=False, encoding="utf-8", name=None, salt=None,
                 **kwargs):
        if sparse:
            raise ValueError("`sparse=True` can only be used with the TensorFlow backend. "
                             f"Received: sparse={sparse}")
        if encoding not in ("utf-8", "utf8", "UTF-8"):
            raise ValueError(f"densitron's StringLookup reads UTF-8 text. "
                             f"Received: encoding={encoding!r}")
        for arg, value in (("mask_token", mask_token), ("oov_token", oov_token)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"`{arg}` of a StringLookup is a string or None. "
                                f"Received: {arg}={value!r}")
        self.encoding = encoding
        kwargs.pop("vocabulary_dtype", None)
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                         mask_token=mask_token, oov_token=oov_token, vocabulary=vocabulary,
                         idf_weights=idf_weights, invert=invert, output_mode=output_mode,
                         pad_to_max_tokens=pad_to_max_tokens, sparse=sparse, name=name,
                         salt=salt, vocabulary_dtype="string", **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["vocabulary_dtype"]
        return {**config, "encoding": self.encoding}


_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
_ASCII_UPPER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_ASCII_SPACE = re.compile(r"[ \t\n\v\f\r]+")


class TextVectorization(Layer):
    """Keras's TextVectorization on arrays of strings: each string standardized (ASCII
    lowercasing and punctuation stripped, as TensorFlow's strings.lower and regex_replace;
    or a function of a NumPy array of strings, as Keras's on other backends), split (on ASCII
    whitespace, or into characters), made into n-grams (joined by a space), then looked up
    as a StringLookup with mask token "" does; "int" pads (or cuts) each row to
    `output_sequence_length` (by default the longest) with 0, the other modes encode each
    string's tokens. Refused in a model (strings cannot enter the engine)."""

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation",
                 split="whitespace", ngrams=None, output_mode="int",
                 output_sequence_length=None, pad_to_max_tokens=False, vocabulary=None,
                 idf_weights=None, sparse=False, ragged=False, encoding="utf-8", name=None,
                 **kwargs):
        if sparse:
            raise ValueError("`sparse=True` can only be used with the TensorFlow backend. "
                             f"Received: sparse={sparse}")
        if ragged:
            raise ValueError("`ragged=True` can only be used with the TensorFlow backend. "
                             f"Received: ragged={ragged}")
        if not (standardize is None or callable(standardize)):
            _check_choice(standardize, ("lower_and_strip_punctuation", "lower",
                                        "strip_punctuation"), "TextVectorization",
                          "standardize")
        if not (split is None or callable(split)):
            _check_choice(split, ("whitespace", "character"), "TextVectorization", "split")
        if callable(split):
            raise TypeError("densitron's TextVectorization splits on whitespace or into "
                             "characters (Keras gives a `split` function TensorFlow's "
                             f"tensors). Received: split={split!r}")
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode == "tf-idf":
            output_mode = "tf_idf"
        _check_choice(output_mode, _MODES, "TextVectorization", "output_mode")
        if not (ngrams is None or isinstance(ngrams, int) or isinstance(ngrams, tuple) and
                all(isinstance(item, int) for item in ngrams)):
            raise ValueError("`ngrams` must be None, an integer, or a tuple of integers. "
                             f"Received: ngrams={ngrams}")
        if ngrams is not None and min(ngrams if isinstance(ngrams, tuple) else (ngrams,),
                                      default=1) < 1:  # (Keras's gives no tokens at all)
            raise ValueError("`ngrams` are the widths of the n-grams made, each >= 1. "
                             f"Received: ngrams={ngrams}")
        if output_mode == "int" and not (isinstance(output_sequence_length, int) or
                                         output_sequence_length is None):
            raise ValueError("`output_sequence_length` must be either None or an integer when "
                             "`output_mode` is 'int'. Received: "
                             f"output_sequence_length={output_sequence_length}")
        if isinstance(output_sequence_length, int) and output_sequence_length < 0:
            raise ValueError("`output_sequence_length` must be >= 0 (the length each output "
                             f"row is padded or cut to). Received: "
                             f"output_sequence_length={output_sequence_length}")
        if output_mode != "int" and output_sequence_length is not None:
            raise ValueError("`output_sequence_length` must not be set if `output_mode` is not "
                             f"'int'. Received output_sequence_length={output_sequence_length}.")
        has_input = kwargs.pop("has_input_vocabulary", vocabulary is not None)
        vocabulary_size = kwargs.pop("vocabulary_size", None)
        kwargs.pop("dtype", None)
        super().__init__(name=name, **kwargs)
        self._standardize = standardize
        self._split = split
        self._ngrams_arg = ngrams
        # (the widths 1..ngrams as a range: only those up to a row's length are made)
        self._ngrams = range(1, ngrams + 1) if isinstance(ngrams, int) else ngrams
        self._output_mode = output_mode
        self._output_sequence_length = output_sequence_length
        self._encoding = encoding
        self._lookup_layer = StringLookup(
            max_tokens=max_tokens, vocabulary=vocabulary, idf_weights=idf_weights,
            pad_to_max_tokens=pad_to_max_tokens, mask_token="", output_mode=output_mode,
            has_input_vocabulary=has_input, encoding=encoding,
            vocabulary_size=vocabulary_size)

    # --- the vocabulary, as its StringLookup's ----------------------------------------------
    def get_vocabulary(self, include_special_tokens=True):
        return self._lookup_layer.get_vocabulary(include_special_tokens)

    def vocabulary_size(self):
        return self._lookup_layer.vocabulary_size()

    def set_vocabulary(self, vocabulary, idf_weights=None):
        self._lookup_layer.set_vocabulary(vocabulary, idf_weights=idf_weights)

    def reset_state(self):
        self._lookup_layer.reset_state()

    def finalize_state(self):
        self._lookup_layer.finalize_state()

    def update_state(self, data):
        rows = self._preprocess(data)
        lookup = self._lookup_layer
        if lookup._has_input_vocabulary:
            lookup.update_state(np.array([""]))  # (Keras's error)
        for row in rows:
            lookup._token_counts.update(row)
            if lookup.output_mode == "tf_idf":
                lookup._document_counts.update(set(row))
        if lookup.output_mode == "tf_idf":
            lookup._num_documents += len(rows)

    def adapt(self, data, batch_size=None, steps=None):
        """Keras's adapt: the vocabulary of the tokens of `data` (an array or list of strings,
        or an iterable of batches, at most `steps`), as StringLookup's adapt orders it."""
        _adapt_from(self, data, steps,
                    lambda: as_value_array(data, f"Layer {self.name}'s adapt"))

    # --- the strings' tokens --------------------------------------------------------------
    def _standardized(self, inputs):
        """The inputs' strings standardized (a NumPy array of str of the inputs' shape)."""
        values = as_value_array(inputs, f"Layer {self.name}")
        if values.dtype.kind != "U" and values.size:
            raise TypeError(f"Layer {self.name} takes strings. Received: inputs of dtype "
                            f"{values.dtype}")
        values = values.astype(str)
        if callable(self._standardize):  # (Keras's on other backends: a NumPy array)
            return np.asarray(self._standardize(values)).astype(str)
        if self._standardize is None:
            return values
        flat = values.reshape(-1).tolist()
        if self._standardize in ("lower", "lower_and_strip_punctuation"):
            flat = [s.translate(_ASCII_UPPER) for s in flat]
        if self._standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            flat = [_PUNCTUATION.sub("", s) for s in flat]
        return np.array(flat, dtype=str).reshape(values.shape)

    def _preprocess(self, inputs):
        """The tokens of each string of the inputs, a list each (without a split, the
        standardized strings of each row of the inputs' last axis)."""
        values = self._standardized(inputs)
        if values.ndim == 0:
            values = values[None]
        if self._split is None:
            rows = [list(r) for r in values.reshape(-1, values.shape[-1]).tolist()] \
                if values.ndim > 1 else [[s] for s in values.tolist()]
        else:
            if values.ndim > 1:
                if values.shape[-1] != 1:
                    raise ValueError(
                        "When using `TextVectorization` to tokenize strings, the input rank "
                        "must be 1 or the last shape dimension must be 1. Received: "
                        f"inputs.shape={values.shape} with rank={values.ndim}")
                values = values[..., 0]
            if self._split == "whitespace":
                rows = [[t for t in _ASCII_SPACE.split(s) if t] for s in values.tolist()]
            else:
                rows = [list(s) for s in values.tolist()]
        if self._ngrams is not None:
            rows = [[" ".join(row[i:i + n]) for n in (
                self._ngrams[:len(row)] if isinstance(self._ngrams, range) else self._ngrams)
                     for i in range(len(row) - n + 1)] for row in rows]
        return rows

    def __call__(self, inputs, *args, **kwargs):
        check_array_call(self, inputs, args, kwargs)
        lookup = self._lookup_layer
        lookup._ensure_known_vocab_size()
        if self._split is None and self._ngrams is None:  # (each string one token)
            out = lookup(self._standardized(inputs))
            length = self._output_sequence_length
            if self._output_mode != "int" or length is None or out.ndim == 0:
                return out
            self._check_padded(math.prod(out.shape[:-1]))
            padded = np.zeros((*out.shape[:-1], length), np.int64)
            padded[..., :min(length, out.shape[-1])] = out[..., :length]
            return padded
        if self._output_mode == "one_hot":
            raise ValueError(
                "Keras's TextVectorization gives ragged rows (a one-hot row per token of "
                "each string) for output_mode='one_hot' with a `split`, which densitron's "
                "arrays cannot hold: use 'int' with Embedding, or 'multi_hot'. Received: "
                f"output_mode='one_hot' and split={self._split!r}")
        scalar = np.ndim(inputs) == 0
        out = self._vectorized(self._preprocess(inputs))
        return out[0] if scalar else out

    def _vectorized(self, rows):
        lookup = self._lookup_layer
        width = max((len(r) for r in rows), default=0)
        tokens = np.full((len(rows), width), "", dtype=object)
        for i, row in enumerate(rows):
            tokens[i, :len(row)] = row
        tokens = tokens.astype(str) if tokens.size else np.zeros((len(rows), width), str)
        ids = lookup._lookup(tokens) if tokens.size else np.zeros(tokens.shape, np.int64)
        if self._output_mode == "int":
            length = self._output_sequence_length
            if length is None:
                return ids
            self._check_padded(len(rows))
            out = np.zeros((len(rows), length), np.int64)
            out[:, :min(length, width)] = ids[:, :length]
            return out
        # (a row's padding is the mask token: dropped from the encodings)
        ids = np.where(np.arange(width) < np.array([len(r) for r in rows])[:, None], ids, -1)
        depth = lookup._depth()
        if self._output_mode != "tf_idf":
            return encode_ids(ids, self._output_mode, depth, np.int64, self,
                              lookup._depth_arg())
        counts = encode_ids(ids, "count", depth, np.float32, self, lookup._depth_arg())
        return counts * lookup.idf_weights.astype(np.float32)

    def _check_padded(self, rows):
        length = self._output_sequence_length
        refuse_oversized(self, f"its output of shape ({rows}, {length})", rows * length * 8,
                         f"output_sequence_length={length}")

    def compute_output_shape(self, input_shape):
        if self._output_mode == "int":
            return (input_shape[0], self._output_sequence_length)
        if self._split is None:
            if len(input_shape) <= 1:
                input_shape = tuple(input_shape) + (1,)
        else:
            input_shape = tuple(input_shape) + (None,)
        return self._lookup_layer.compute_output_shape(input_shape)

    # --- config ---------------------------------------------------------------------------
    def get_config(self):
        from densitron.utils.keras_objects import serialize_keras_object

        def plain(value):
            return serialize_keras_object(value) if callable(value) else value

        lookup = self._lookup_layer
        config = super().get_config()
        config.pop("activity_regularizer", None)
        config.update({
            "max_tokens": lookup.max_tokens,
            "standardize": plain(self._standardize),
            "split": plain(self._split),
            "ngrams": self._ngrams_arg,
            "output_mode": self._output_mode,
            "output_sequence_length": self._output_sequence_length,
            "pad_to_max_tokens": lookup.pad_to_max_tokens,
            "sparse": False,
            "ragged": False,
            "vocabulary": _listify(lookup.input_vocabulary),
            "idf_weights": _listify(lookup.input_idf_weights),
            "encoding": self._encoding,
            "vocabulary_size": self.vocabulary_size(),
        })
        return config

    @classmethod
    def from_config(cls, config):
        from densitron.utils.keras_objects import deserialize_keras_object

        config = dict(config)
        for key in ("standardize", "split"):
            if config.get(key) is not None and not isinstance(config[key], str):
                config[key] = deserialize_keras_object(config[key])
        if isinstance(config.get("ngrams"), list):
            config["ngrams"] = tuple(config["ngrams"])
        return cls(**config)

    def save_assets(self, dir_path):
        self._lookup_layer.save_assets(dir_path)

    def load_assets(self, dir_path):
        self._lookup_layer.load_assets(dir_path)
