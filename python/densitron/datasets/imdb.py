"""The IMDB movie review sentiment set (Maas et al., 2011): 25,000 training and 25,000 test
reviews as sequences of word indices (by frequency) with labels 1 (positive) or 0, from the
files Keras downloads."""

import json

import numpy as np

from densitron.datasets import _remote


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113,
              start_char=1, oov_char=2, index_from=3, **kwargs):
    """Returns `((x_train, y_train), (x_test, y_test))` as `keras.datasets.imdb.load_data()`:
    x object arrays of lists of word indices, y int labels. Each part is shuffled with `seed`;
    every index is raised by `index_from` and each review starts with `start_char`; with
    `maxlen` only reviews shorter than it are kept; words outside [skip_top, num_words) become
    `oov_char` (or are left out when it is None). num_words defaults to the largest index, which
    (as in Keras) then counts as out of range itself."""
    if kwargs:
        raise TypeError(f"Unrecognized keyword arguments: {sorted(kwargs)}. "
                        f"Received: {kwargs!r}")
    _remote.check_sequence_args(num_words, skip_top, maxlen, start_char, oov_char, index_from)
    f = _remote.load_arrays(_remote.fetch("imdb.npz", path))
    rng = np.random.RandomState(seed)  # one generator for both parts, in Keras's order
    parts = [_remote.shuffled([f["x_train"], f["y_train"]], rng),
             _remote.shuffled([f["x_test"], f["y_test"]], rng)]
    seqs, labels, counts = _remote.word_sequences(parts, num_words, skip_top, maxlen,
                                                  start_char, oov_char, index_from)
    if maxlen and not all(counts):
        raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, no "
                         f"sequence was kept. Increase maxlen. Received: maxlen={maxlen!r}")
    n = counts[0]
    return ((seqs.as_lists(0, n), labels[0]), (seqs.as_lists(n), labels[1]))


def get_word_index(path="imdb_word_index.json"):
    """The word -> index dictionary of the IMDB sequences (before `index_from` is added)."""
    with open(_remote.fetch("imdb_word_index.json", path)) as f:
        return json.load(f)
