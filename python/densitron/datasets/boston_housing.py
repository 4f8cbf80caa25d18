"""The Boston Housing data (StatLib, Carnegie Mellon University): 13 attributes of 506 areas of
Boston in the 1970s and their median house value in k$, from the file Keras downloads. As
Keras warns, one attribute ("B") encodes an assumption about race; use the set only to discuss
exactly that, or use california_housing instead."""

import numpy as np

from densitron.datasets import _remote


def load_data(path="boston_housing.npz", test_split=0.2, seed=113):
    """Returns `((x_train, y_train), (x_test, y_test))`: float arrays of shape (n, 13) and
    (n,), shuffled with `seed` and the last `test_split` fraction held out, exactly as
    `keras.datasets.boston_housing.load_data()` splits them."""
    _remote.check_test_split(test_split)
    with np.load(_remote.fetch("boston_housing.npz", path), allow_pickle=False) as f:
        x, y = f["x"], f["y"]
    return _remote.shuffled_split(x, y, test_split, seed)
