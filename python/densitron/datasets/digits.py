"""The UCI optical recognition of handwritten digits data (1,797 images of 8×8 pixels with
values 0..16, ten classes): the set scikit-learn ships as `load_digits`.

Source: E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine
Learning Repository (1998), https://doi.org/10.24432/C50P49, licensed CC BY 4.0. Stored here as
`data/digits.npz` (uint8 images and labels, compressed)."""

from importlib import resources

import numpy as np


def _load_arrays():
    with resources.files("densitron.datasets").joinpath("data/digits.npz").open("rb") as f:
        with np.load(f) as data:
            return data["images"].copy(), data["labels"].copy()


def load_data(test_split=0.2, seed=113):
    """Returns `((x_train, y_train), (x_test, y_test))`.

    x: uint8 arrays of shape (n, 8, 8) with pixel counts 0..16; y: uint8 labels 0..9. The
    samples are shuffled with `seed` before the last `test_split` fraction is held out.
    """
    if not 0.0 < test_split < 1.0:
        raise ValueError(f"`test_split` must be in (0, 1). Received: test_split={test_split!r}")
    images, labels = _load_arrays()
    order = np.random.default_rng(seed).permutation(len(labels))
    images, labels = images[order], labels[order]
    split = int(round(len(labels) * (1.0 - test_split)))
    return (images[:split], labels[:split]), (images[split:], labels[split:])
