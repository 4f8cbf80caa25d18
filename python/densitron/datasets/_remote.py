"""What the datasets Keras downloads from its storage share: where the files live and their
hashes (fetched by utils.get_file into ~/.keras/datasets, or $KERAS_HOME/datasets, so a file
Keras already downloaded is reused as it is), a loader for the .npz files of ragged sequences
that unpickles nothing but NumPy arrays, the seeded shuffle-and-split of the regression sets,
and the word-index processing of the IMDB and Reuters sequences, all as Keras 3 does them."""

import io
import pickle
import zipfile

import numpy as np

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"

# Remote file name -> the hash Keras checks it against (64 hex digits SHA-256, 32 MD5).
HASHES = {
    "mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    "boston_housing.npz": "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5",
    "california_housing.npz":
        "1a2e3a52e0398de6463aebe6f4a8da34fb21fbb6b934cf88c3425e766f2a1a6f",
    "imdb.npz": "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",
    "imdb_word_index.json": "bfafd718b763782e994055a2d397834f",
    "reuters.npz": "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916",
    "reuters_word_index.json": "4d44cc38712099c9e383dc6e5f11a921",
}

# The CIFAR archives, from their authors' site as Keras fetches them, with Keras's hashes.
CIFAR_ORIGIN = "https://www.cs.toronto.edu/~kriz/"
CIFAR_HASHES = {
    "cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    "cifar-100-python.tar.gz": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
}


def fetch(remote, path=None, cache_subdir="datasets"):
    """The local path of `remote` (downloaded once, checked against its hash when it has one);
    `path` names the cached copy, as Keras's `path` arguments do."""
    from densitron.utils import get_file

    return get_file(fname=path if path is not None else remote, origin=ORIGIN + remote,
                    file_hash=HASHES.get(remote), cache_subdir=cache_subdir)


def fetch_cifar(remote, dirname):
    """The folder the CIFAR archive `remote` was extracted into (downloaded and extracted once,
    under the names Keras 3 gives them: the archive as <dirname>_archive beside the folder)."""
    from densitron.utils import get_file

    return get_file(fname=dirname, origin=CIFAR_ORIGIN + remote,
                    file_hash=CIFAR_HASHES.get(remote), extract=True)


# What rebuilding a pickled NumPy object array needs, and nothing else: a tampered file cannot
# run code through the pickle stream (numpy < 2 and >= 2 name the reconstructor differently).
_ARRAY_GLOBALS = frozenset({("numpy", "ndarray"), ("numpy", "dtype"),
                            ("numpy.core.multiarray", "_reconstruct"),
                            ("numpy._core.multiarray", "_reconstruct")})


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ARRAY_GLOBALS:
            raise pickle.UnpicklingError(
                f"A dataset file may only hold NumPy arrays; it refers to {module}.{name}. The "
                "file is corrupt or was tampered with: delete it to download it again. "
                f"Received: {module}.{name}")
        return super().find_class(module, name)


def _read_member(raw):
    buffer = io.BytesIO(raw)
    try:
        return np.lib.format.read_array(buffer, allow_pickle=False)
    except ValueError:  # an object array: its data is a pickle stream after the header
        buffer.seek(0)
        major, _ = np.lib.format.read_magic(buffer)
        if major == 1:
            np.lib.format.read_array_header_1_0(buffer)
        else:  # versions 2 and 3 share the header layout (3 only encodes it in UTF-8)
            np.lib.format.read_array_header_2_0(buffer)
        return _ArrayUnpickler(buffer).load()


def load_arrays(path):
    """The arrays of an .npz file by name; object arrays (ragged sequences) included."""
    with zipfile.ZipFile(path) as archive:
        return {name[:-4]: _read_member(archive.read(name))
                for name in archive.namelist() if name.endswith(".npy")}


def check_test_split(test_split):
    if not (isinstance(test_split, (int, float, np.integer, np.floating))
            and not isinstance(test_split, bool) and 0 <= test_split < 1):
        raise ValueError("`test_split` must be a fraction in [0, 1). "
                         f"Received: test_split={test_split!r}")


def shuffled(arrays, rng):
    """The arrays in the order of rng's (a NumPy RandomState) shuffle of their indices, as
    Keras's loaders draw it."""
    order = np.arange(len(arrays[0]))
    rng.shuffle(order)
    return [a[order] for a in arrays]


def split_at(arrays, fraction):
    """(first, rest) of each array, the first int(len·fraction) rows first."""
    n = int(len(arrays[0]) * fraction)
    return tuple(np.array(a[:n]) for a in arrays), tuple(np.array(a[n:]) for a in arrays)


def shuffled_split(x, y, test_split, seed):
    """Keras's regression sets: shuffled with `seed`, the last `test_split` held out."""
    check_test_split(test_split)
    return split_at(shuffled([x, y], np.random.RandomState(seed)), 1 - test_split)


class Sequences:
    """Ragged integer sequences as one flat array and their lengths, transformed as whole arrays
    (the word-index steps of Keras's IMDB and Reuters loaders) and turned back into Keras's
    object arrays of lists at the end."""

    def __init__(self, seqs):
        self.lengths = np.fromiter((len(s) for s in seqs), np.int64, len(seqs))
        self.flat = (np.concatenate([np.asarray(s, np.int64) for s in seqs]) if len(seqs)
                     else np.zeros(0, np.int64))

    def starts(self):
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def index(self, start_char, index_from):
        """Every word plus index_from (also with index_from 0 when start_char is given), then
        start_char in front of every sequence."""
        if start_char is not None or index_from:
            self.flat = self.flat + index_from
        if start_char is not None:
            self.flat = np.insert(self.flat, self.starts(), start_char)
            self.lengths = self.lengths + 1

    def keep(self, rows):
        """Only the sequences where `rows` (a boolean per sequence) is true."""
        self.flat = self.flat[np.repeat(rows, self.lengths)]
        self.lengths = self.lengths[rows]

    def limit(self, num_words, skip_top, oov_char):
        """Words outside [skip_top, num_words) become oov_char, or are dropped without one."""
        outside = (self.flat < skip_top) | (self.flat >= num_words)
        if oov_char is not None:
            self.flat = np.where(outside, oov_char, self.flat)
            return
        owner = np.repeat(np.arange(len(self.lengths)), self.lengths)
        self.lengths = self.lengths - np.bincount(owner[outside], minlength=len(self.lengths))
        self.flat = self.flat[~outside]

    def as_lists(self, lo=0, hi=None):
        """Sequences lo..hi as a 1-D object array of Python lists of ints."""
        hi = len(self.lengths) if hi is None else hi
        offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        out = np.empty(hi - lo, dtype=object)
        words = self.flat.tolist()
        for i in range(lo, hi):
            out[i - lo] = words[offsets[i]:offsets[i + 1]]
        return out


def check_sequence_args(num_words, skip_top, maxlen, start_char, oov_char, index_from):
    def whole(name, value, allow_none):
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"`{name}` must be a non-negative integer"
                             f"{' or None' if allow_none else ''}. Received: {name}={value!r}")

    whole("num_words", num_words, True)
    whole("skip_top", skip_top, False)
    whole("maxlen", maxlen, True)
    whole("start_char", start_char, True)
    whole("oov_char", oov_char, True)
    whole("index_from", index_from, False)


def word_sequences(parts, num_words, skip_top, maxlen, start_char, oov_char, index_from):
    """Keras's IMDB/Reuters processing of already shuffled parts (a list of (sequences, labels)
    pairs): index_from and start_char, then (with maxlen) only the sequences shorter than
    maxlen, then words outside [skip_top, num_words) replaced by oov_char (or dropped), with
    num_words by default the largest word of all parts. Returns the Sequences of all parts
    together, the labels of each part and each part's sequence count."""
    seqs, labels, counts = [], [], []
    for x, y in parts:
        s = Sequences(x)
        s.index(start_char, index_from)
        y = np.asarray(y)
        if maxlen:
            short = s.lengths < maxlen
            s.keep(short)
            y = y[short]
        seqs.append(s)
        labels.append(y)
        counts.append(len(s.lengths))
    whole = Sequences([])
    whole.flat = np.concatenate([s.flat for s in seqs])
    whole.lengths = np.concatenate([s.lengths for s in seqs])
    if not num_words:
        num_words = int(whole.flat.max()) if len(whole.flat) else 0
    whole.limit(num_words, skip_top, oov_char)
    return whole, labels, counts
