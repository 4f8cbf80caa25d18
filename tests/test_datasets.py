"""The Keras datasets downloaded from Keras's storage (mnist, fashion_mnist, boston_housing,
california_housing, imdb, reuters) and CIFAR's site (cifar10, cifar100), without the network: small stand-in files of the same
layout are served from a file:// origin with their own hashes, into a KERAS_HOME of the test's.
Each loader is checked against what its file holds, the sequence sets and the splits against
Keras's own loaders reading the same files, and the loaders' refusals."""

import gzip
import hashlib
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from densitron.datasets import (
    _remote,
    boston_housing,
    california_housing,
    cifar10,
    cifar100,
    fashion_mnist,
    imdb,
    mnist,
    reuters,
)


def ragged(rng, n, low=1, high=40, vocab=60):
    """n lists of word indices of varying lengths, as the IMDB/Reuters files store them."""
    out = np.empty(n, dtype=object)
    for i in range(n):
        out[i] = rng.integers(1, vocab, rng.integers(low, high)).tolist()
    return out


def idx_file(path, header, values):
    with gzip.open(path, "wb") as f:
        f.write(header + values.tobytes())


@pytest.fixture
def remote(tmp_path, monkeypatch):
    """Stand-in files for every remote name, served from tmp_path/remote; returns their data."""
    rng = np.random.default_rng(0)
    src = tmp_path / "remote"
    src.mkdir()
    data = {
        "mnist": {"x_train": rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
                  "y_train": rng.integers(0, 10, 7, dtype=np.uint8),
                  "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
                  "y_test": rng.integers(0, 10, 3, dtype=np.uint8)},
        "boston_housing": {"x": rng.random((23, 13)), "y": rng.random(23) * 50},
        "california_housing": {"x": rng.random((700, 8)), "y": rng.random(700) * 5e5},
        "imdb": {"x_train": ragged(rng, 40), "y_train": rng.integers(0, 2, 40),
                 "x_test": ragged(rng, 30), "y_test": rng.integers(0, 2, 30)},
        "reuters": {"x": ragged(rng, 50), "y": rng.integers(0, 46, 50)},
    }
    for name, arrays in data.items():
        np.savez(src / f"{name}.npz", **arrays)
    for name in ("imdb", "reuters"):
        (src / f"{name}_word_index.json").write_text(json.dumps({"the": 1, name: 2}))
    fashion = {"y_train": rng.integers(0, 10, 6, dtype=np.uint8),
               "x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
               "y_test": rng.integers(0, 10, 4, dtype=np.uint8),
               "x_test": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)}
    idx_file(src / "train-labels-idx1-ubyte.gz", b"\0" * 8, fashion["y_train"])
    idx_file(src / "train-images-idx3-ubyte.gz", b"\0" * 16, fashion["x_train"])
    idx_file(src / "t10k-labels-idx1-ubyte.gz", b"\0" * 8, fashion["y_test"])
    idx_file(src / "t10k-images-idx3-ubyte.gz", b"\0" * 16, fashion["x_test"])
    data["fashion_mnist"] = fashion
    monkeypatch.setattr(_remote, "ORIGIN", src.as_uri() + "/")
    for name in list(_remote.HASHES):
        monkeypatch.setitem(_remote.HASHES, name,
                            hashlib.sha256((src / name).read_bytes()).hexdigest())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    data["src"] = src
    data["cache"] = tmp_path / "home" / "datasets"
    return data


def test_mnist_loads_its_file_and_caches_it(remote):
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    want = remote["mnist"]
    for got, key in ((x_train, "x_train"), (y_train, "y_train"), (x_test, "x_test"),
                     (y_test, "y_test")):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want[key])
    cached = remote["cache"] / "mnist.npz"
    assert cached.exists()
    # Read from the cache from now on; a corrupt cached copy (hash mismatch) is fetched again.
    cached.write_bytes(b"corrupt")
    (x_again, _), _ = mnist.load_data()
    np.testing.assert_array_equal(x_again, want["x_train"])
    # `path` names the cached copy.
    mnist.load_data(path="digits-copy.npz")
    assert (remote["cache"] / "digits-copy.npz").exists()


def test_a_download_that_does_not_match_its_hash_is_refused(remote, monkeypatch):
    monkeypatch.setitem(_remote.HASHES, "mnist.npz", "0" * 64)
    with pytest.raises(ValueError, match="hash"):
        mnist.load_data()
    assert not (remote["cache"] / "mnist.npz").exists()


def test_fashion_mnist_reads_the_idx_files(remote):
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    want = remote["fashion_mnist"]
    assert x_train.shape == (6, 28, 28) and x_test.shape == (4, 28, 28)
    np.testing.assert_array_equal(x_train, want["x_train"])
    np.testing.assert_array_equal(y_train, want["y_train"])
    np.testing.assert_array_equal(x_test, want["x_test"])
    np.testing.assert_array_equal(y_test, want["y_test"])
    assert (remote["cache"] / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").exists()


@pytest.mark.parametrize("test_split, seed", [(0.2, 113), (0.0, 1), (0.5, 7)])
def test_housing_sets_are_shuffled_and_split_as_keras_does(remote, test_split, seed):
    for loader, name, args in ((boston_housing, "boston_housing", {}),
                               (california_housing, "california_housing", {}),
                               (california_housing, "california_housing",
                                {"version": "small"})):
        x, y = remote[name]["x"], remote[name]["y"]
        if args.get("version") == "small":
            x, y = x[:600], y[:600]
        order = np.random.RandomState(seed).permutation(len(x))  # Keras: shuffle of arange
        n = int(len(x) * (1 - test_split))
        (x_train, y_train), (x_test, y_test) = loader.load_data(test_split=test_split,
                                                                seed=seed, **args)
        np.testing.assert_array_equal(x_train, x[order][:n])
        np.testing.assert_array_equal(y_train, y[order][:n])
        np.testing.assert_array_equal(x_test, x[order][n:])
        np.testing.assert_array_equal(y_test, y[order][n:])


def test_housing_sets_refuse_bad_arguments(remote):
    for bad in (1.0, -0.1, 2, "0.2", None, True):
        with pytest.raises(ValueError, match="test_split"):
            boston_housing.load_data(test_split=bad)
        with pytest.raises(ValueError, match="test_split"):
            california_housing.load_data(test_split=bad)
        with pytest.raises(ValueError, match="test_split"):
            reuters.load_data(test_split=bad)
    with pytest.raises(ValueError, match="Received: version='medium'"):
        california_housing.load_data(version="medium")


def flat_reference(seqs, start_char, oov_char, index_from, skip_top, num_words, maxlen):
    """The sequence steps in plain Python, for one part, given num_words."""
    out = []
    for s in seqs:
        s = ([start_char] + [w + index_from for w in s] if start_char is not None
             else [w + index_from for w in s])
        if maxlen and not len(s) < maxlen:
            continue
        out.append([w if skip_top <= w < num_words else oov_char for w in s]
                   if oov_char is not None else [w for w in s if skip_top <= w < num_words])
    return out


def test_reuters_sequences_by_hand(remote):
    (x_train, y_train), (x_test, y_test) = reuters.load_data(num_words=30, skip_top=5)
    x, y = remote["reuters"]["x"], remote["reuters"]["y"]
    order = np.random.RandomState(113).permutation(len(x))
    want = flat_reference(x[order], 1, 2, 3, 5, 30, None)
    n = int(len(want) * 0.8)
    assert x_train.dtype == object and x_train.ndim == 1
    assert [list(s) for s in x_train] == want[:n]
    assert [list(s) for s in x_test] == want[n:]
    np.testing.assert_array_equal(y_train, y[order][:n])
    np.testing.assert_array_equal(y_test, y[order][n:])
    assert all(type(w) is int for s in x_train for w in s)
    assert reuters.get_word_index() == {"the": 1, "reuters": 2}
    assert len(reuters.get_label_names()) == 46


@pytest.fixture
def keras_datasets(remote, monkeypatch, keras):
    """Keras's own loaders, reading the stand-in files through a patched get_file."""
    import importlib

    mods = {}
    for name in ("imdb", "reuters", "boston_housing", "california_housing"):
        mod = importlib.import_module(f"keras.src.datasets.{name}")
        monkeypatch.setattr(mod, "get_file",
                            lambda fname=None, origin=None, **kw: str(
                                remote["src"] / origin.rsplit("/", 1)[1]))
        mods[name] = mod
    return mods


def assert_same_split(got, want):
    for g_part, w_part in zip(got, want):
        for g, w in zip(g_part, w_part):
            assert g.shape == w.shape
            if g.dtype == object:
                assert [list(s) for s in g] == [list(s) for s in w]
            else:
                np.testing.assert_array_equal(g, w)


ARGS = [{}, {"num_words": 25}, {"num_words": 25, "skip_top": 4, "oov_char": None},
        {"maxlen": 20}, {"start_char": None, "index_from": 0}, {"start_char": None},
        {"seed": 5, "index_from": 1, "oov_char": 7}, {"maxlen": 30, "num_words": 10,
                                                      "skip_top": 2}]


@pytest.mark.parametrize("args", ARGS)
def test_imdb_and_reuters_match_keras(keras_datasets, args):
    assert_same_split(imdb.load_data(**args), keras_datasets["imdb"].load_data(**args))
    assert_same_split(reuters.load_data(**args), keras_datasets["reuters"].load_data(**args))


def test_housing_sets_match_keras(keras_datasets):
    for args in ({}, {"test_split": 0.3, "seed": 3}):
        assert_same_split(boston_housing.load_data(**args),
                          keras_datasets["boston_housing"].load_data(**args))
        for version in ("small", "large"):
            assert_same_split(
                california_housing.load_data(version=version, **args),
                keras_datasets["california_housing"].load_data(version=version, **args))


def test_sequence_sets_refuse_bad_arguments(remote):
    with pytest.raises(ValueError, match="no sequence was kept"):
        imdb.load_data(maxlen=1)
    for name, bad in (("num_words", -1), ("skip_top", 1.5), ("maxlen", "10"),
                      ("oov_char", True), ("index_from", None)):
        with pytest.raises(ValueError, match=f"Received: {name}="):
            imdb.load_data(**{name: bad})
        with pytest.raises(ValueError, match=f"Received: {name}="):
            reuters.load_data(**{name: bad})
    with pytest.raises(TypeError, match="Unrecognized keyword"):
        imdb.load_data(nb_words=10)
    assert imdb.get_word_index() == {"the": 1, "imdb": 2}


class _Gadget:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_tampered_sequence_file_runs_no_code(remote, monkeypatch, tmp_path):
    """An .npz whose object array pickles something other than arrays is refused unread."""
    evil = tmp_path / "evil.npz"
    payload = np.empty(1, dtype=object)
    payload[0] = _Gadget()
    np.savez(evil, x=payload, y=np.zeros(1))
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system|nt.system"):
        _remote.load_arrays(evil)
    # and the arrays the real files hold load as object arrays of lists
    arrays = _remote.load_arrays(remote["src"] / "reuters.npz")
    assert arrays["x"].dtype == object and isinstance(arrays["x"][0], list)
    with zipfile.ZipFile(remote["src"] / "reuters.npz") as z:
        assert sorted(z.namelist()) == ["x.npy", "y.npy"]


# ---- CIFAR-10/100: tar.gz archives of pickled batch dicts ---------------------------------------

def cifar_batch(rng, n, label_keys):
    """A batch dict as the CIFAR files hold it: bytes keys, (n, 3072) uint8 rows, label lists."""
    batch = {b"batch_label": b"a stand-in batch",
             b"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
             b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    for key, classes in label_keys.items():
        batch[key.encode()] = rng.integers(0, classes, n).tolist()
    return batch


def cifar_archive(path, inner, batches):
    """A tar.gz of `inner`/<name> pickle files (protocol 3: bytes as bytes, arrays rebuilt by
    NumPy's reconstructor alone, as the real files need)."""
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, batch in batches.items():
            raw = pickle.dumps(batch, protocol=3)
            info = tarfile.TarInfo(f"{inner}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


@pytest.fixture
def cifar_remote(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    src = tmp_path / "cifar-remote"
    src.mkdir()
    ten = {f"data_batch_{i}": cifar_batch(rng, 3 + i, {"labels": 10}) for i in range(1, 6)}
    ten["test_batch"] = cifar_batch(rng, 4, {"labels": 10})
    ten["batches.meta"] = {b"label_names": [b"airplane"]}
    hundred = {name: cifar_batch(rng, n, {"fine_labels": 100, "coarse_labels": 20})
               for name, n in (("train", 9), ("test", 5))}
    cifar_archive(src / "cifar-10-python.tar.gz", "cifar-10-batches-py", ten)
    cifar_archive(src / "cifar-100-python.tar.gz", "cifar-100-python", hundred)
    monkeypatch.setattr(_remote, "CIFAR_ORIGIN", src.as_uri() + "/")
    for name in list(_remote.CIFAR_HASHES):
        monkeypatch.setitem(_remote.CIFAR_HASHES, name,
                            hashlib.sha256((src / name).read_bytes()).hexdigest())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    return {"10": ten, "100": hundred, "cache": tmp_path / "home" / "datasets", "src": src}


def channels_last(batch):
    return batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def test_cifar10_reads_the_five_training_batches_and_the_test_batch(cifar_remote):
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    ten = cifar_remote["10"]
    want_x = np.concatenate([channels_last(ten[f"data_batch_{i}"]) for i in range(1, 6)])
    want_y = np.concatenate([ten[f"data_batch_{i}"][b"labels"] for i in range(1, 6)])
    assert x_train.dtype == np.uint8 and x_train.shape == (len(want_y), 32, 32, 3)
    assert y_train.dtype == np.uint8 and y_train.shape == (len(want_y), 1)
    np.testing.assert_array_equal(x_train, want_x)
    np.testing.assert_array_equal(y_train[:, 0], want_y)
    np.testing.assert_array_equal(x_test, channels_last(ten["test_batch"]))
    np.testing.assert_array_equal(y_test[:, 0], ten["test_batch"][b"labels"])
    assert x_train.flags.c_contiguous
    # cached under Keras 3's names: the archive beside the folder it was extracted into
    cache = cifar_remote["cache"]
    assert (cache / "cifar-10-batches-py-target_archive").is_file()
    assert (cache / "cifar-10-batches-py-target" / "cifar-10-batches-py" / "test_batch").is_file()
    (cifar_remote["src"] / "cifar-10-python.tar.gz").unlink()  # a second load reads the cache
    np.testing.assert_array_equal(cifar10.load_data()[1][0], x_test)


def test_cifar100_labels_fine_or_coarse(cifar_remote):
    hundred = cifar_remote["100"]
    for mode in ("fine", "coarse"):
        (x_train, y_train), (x_test, y_test) = cifar100.load_data(label_mode=mode)
        np.testing.assert_array_equal(x_train, channels_last(hundred["train"]))
        np.testing.assert_array_equal(x_test, channels_last(hundred["test"]))
        np.testing.assert_array_equal(y_train[:, 0], hundred["train"][f"{mode}_labels".encode()])
        np.testing.assert_array_equal(y_test[:, 0], hundred["test"][f"{mode}_labels".encode()])
        assert y_test.shape == (5, 1) and y_test.dtype == np.uint8
    with pytest.raises(ValueError, match="Received: label_mode='medium'"):
        cifar100.load_data(label_mode="medium")


def test_cifar_loaders_match_keras(cifar_remote, monkeypatch, keras):
    import importlib

    kcifar = importlib.import_module("keras.src.datasets.cifar")
    k100 = importlib.import_module("keras.src.datasets.cifar100")
    from densitron.datasets import cifar

    cifar10.load_data()
    ours100 = {mode: cifar100.load_data(mode) for mode in ("fine", "coarse")}
    cache = cifar_remote["cache"]
    # Keras's CIFAR-10 loader assumes batches of 10,000 images: its batch reader file by file
    folder = cache / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x, y = cifar.load_batch(str(folder / name))
        kx, ky = kcifar.load_batch(str(folder / name))
        np.testing.assert_array_equal(x, kx)
        np.testing.assert_array_equal(y, ky)
    # Keras's CIFAR-100 loader, handed the folder ours extracted (its get_file's too)
    monkeypatch.setattr(k100, "get_file", lambda **kw: str(cache / "cifar-100-python"))
    for mode in ("fine", "coarse"):
        assert_same_split(ours100[mode], k100.load_data(label_mode=mode))


def test_a_tampered_or_broken_cifar_batch_is_refused(cifar_remote, tmp_path):
    from densitron.datasets import cifar

    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": _Gadget(), b"labels": [1]}))
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system|nt.system"):
        cifar.load_batch(str(path))
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [1, 2]}))
    with pytest.raises(ValueError, match=r"Received: data of shape \(2, 10\)"):
        cifar.load_batch(str(path))
    path.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8)}))
    with pytest.raises(ValueError, match="holds 'data' and 'labels'"):
        cifar.load_batch(str(path))
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match="Received: list"):
        cifar.load_batch(str(path))
    with pytest.raises(FileNotFoundError, match="'test_batch' is missing"):
        cifar.find(str(tmp_path), "cifar-10-batches-py", "test_batch")
    # an archive whose member would land outside its folder is refused before extraction
    import io
    import tarfile

    evil = cifar_remote["src"] / "cifar-10-python.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../outside")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    _remote.CIFAR_HASHES["cifar-10-python.tar.gz"] = hashlib.sha256(
        evil.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="outside its folder"):
        cifar10.load_data()
