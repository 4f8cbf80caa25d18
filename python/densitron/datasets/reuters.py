"""The Reuters newswire topics set: 11,228 newswires from 1986 as sequences of word indices
(by frequency), labelled with 46 topics, from the files Keras downloads."""

import json

import numpy as np

from densitron.datasets import _remote

_LABELS = ("cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing",
           "money-supply", "coffee", "sugar", "trade", "reserves", "ship", "cotton", "carcass",
           "crude", "nat-gas", "cpi", "money-fx", "interest", "gnp", "meal-feed", "alum",
           "oilseed", "gold", "tin", "strategic-metal", "livestock", "retail", "ipi",
           "iron-steel", "rubber", "heat", "jobs", "lei", "bop", "zinc", "orange", "pet-chem",
           "dlr", "gas", "silver", "wpi", "hog", "lead")


def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2,
              seed=113, start_char=1, oov_char=2, index_from=3):
    """Returns `((x_train, y_train), (x_test, y_test))` as `keras.datasets.reuters.load_data()`:
    the newswires shuffled with `seed`, processed as imdb.load_data's (index_from, start_char,
    maxlen, skip_top, num_words, oov_char), the last `test_split` fraction held out."""
    _remote.check_sequence_args(num_words, skip_top, maxlen, start_char, oov_char, index_from)
    _remote.check_test_split(test_split)
    f = _remote.load_arrays(_remote.fetch("reuters.npz", path))
    xs, labels = _remote.shuffled([f["x"], f["y"]], np.random.RandomState(seed))
    seqs, (labels,), (count,) = _remote.word_sequences([(xs, labels)], num_words, skip_top,
                                                       maxlen, start_char, oov_char,
                                                       index_from)
    n = int(count * (1 - test_split))
    return ((seqs.as_lists(0, n), np.array(labels[:n])),
            (seqs.as_lists(n), np.array(labels[n:])))


def get_word_index(path="reuters_word_index.json"):
    """The word -> index dictionary of the Reuters sequences (before `index_from` is added)."""
    with open(_remote.fetch("reuters_word_index.json", path)) as f:
        return json.load(f)


def get_label_names():
    """The 46 topic names, by label."""
    return _LABELS
