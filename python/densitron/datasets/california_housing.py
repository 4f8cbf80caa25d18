"""The California Housing data (StatLib; the 1990 U.S. census): 8 features of 20,640 block
groups (median income, house age, average rooms and bedrooms, population, average occupancy,
latitude, longitude) and their median house value in dollars, from the file Keras downloads."""

import numpy as np

from densitron.datasets import _remote


def load_data(version="large", path="california_housing.npz", test_split=0.2, seed=113):
    """Returns `((x_train, y_train), (x_test, y_test))`: float arrays of shape (n, 8) and (n,),
    the 20,640 samples (`version="large"`) or the first 600 (`"small"`), shuffled with `seed`
    and the last `test_split` fraction held out, exactly as
    `keras.datasets.california_housing.load_data()` splits them."""
    if version not in ("small", "large"):
        raise ValueError(f"Argument `version` must be one of 'small', 'large'. "
                         f"Received: version={version!r}")
    _remote.check_test_split(test_split)
    with np.load(_remote.fetch("california_housing.npz", path), allow_pickle=False) as f:
        x, y = f["x"], f["y"]
    if version == "small":
        x, y = x[:600], y[:600]
    return _remote.shuffled_split(x, y, test_split, seed)
