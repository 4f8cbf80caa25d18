"""The MNIST handwritten digits (60,000 training and 10,000 test images of 28×28 pixels), from
the file Keras downloads. Yann LeCun and Corinna Cortes hold its copyright; it is a derivative
of NIST's data, made available under CC BY-SA 3.0."""

import numpy as np

from densitron.datasets import _remote


def load_data(path="mnist.npz"):
    """Returns `((x_train, y_train), (x_test, y_test))`: uint8 images of shape (n, 28, 28) with
    values 0..255 and uint8 labels 0..9, as `keras.datasets.mnist.load_data()`. `path` names
    the cached copy under ~/.keras/datasets."""
    with np.load(_remote.fetch("mnist.npz", path), allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
