"""Fashion-MNIST (Zalando's 28×28 images of ten kinds of clothing, 60,000 for training and
10,000 for testing; MIT license), from the files Keras downloads."""

import gzip
import os

import numpy as np

from densitron.datasets import _remote

_FILES = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
          "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")


def _read(path, header):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=header)


def load_data():
    """Returns `((x_train, y_train), (x_test, y_test))`: uint8 images of shape (n, 28, 28) and
    uint8 labels 0..9 (T-shirt/top, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag,
    ankle boot), as `keras.datasets.fashion_mnist.load_data()`."""
    paths = [_remote.fetch(name, cache_subdir=os.path.join("datasets", "fashion-mnist"))
             for name in _FILES]
    y_train, y_test = _read(paths[0], 8), _read(paths[2], 8)
    x_train = _read(paths[1], 16).reshape(len(y_train), 28, 28)
    x_test = _read(paths[3], 16).reshape(len(y_test), 28, 28)
    return (x_train, y_train), (x_test, y_test)
