"""What CIFAR-10 and CIFAR-100 share: their batch files (Python pickles of a dict of a uint8
array of images, one row of 3·32·32 channel-major pixels each, and lists of labels), read with
an unpickler that rebuilds NumPy arrays and nothing else, and turned into Keras's arrays."""

import os

import numpy as np

from densitron.datasets import _remote


def find(folder, inner, name):
    """The batch file `name` of an extracted archive: in its inner folder (the archives hold one
    top folder), or at the top when extracted without it."""
    for path in (os.path.join(folder, inner, name), os.path.join(folder, name)):
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"The CIFAR batch file {name!r} is missing from {folder!r}: delete "
                            "the folder and its _archive file to download them again. "
                            f"Received: folder={folder!r}")


def load_batch(path, label_key="labels"):
    """(images, labels) of one batch file: uint8 images of shape (n, 3, 32, 32) and uint8
    labels."""
    with open(path, "rb") as f:
        batch = _remote._ArrayUnpickler(f, encoding="bytes").load()
    if not isinstance(batch, dict):  # a corrupt file: a bad value, not a caller's bad type
        raise ValueError(  # noqa: TRY004
            f"A CIFAR batch file holds a dict. Received: {type(batch).__name__} in {path!r}")
    batch = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or label_key not in batch:
        raise ValueError(f"A CIFAR batch file holds 'data' and {label_key!r}. Received: the keys "
                         f"{sorted(batch)} in {path!r}")
    data = np.asarray(batch["data"], np.uint8)
    labels = np.asarray(batch[label_key], np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"A CIFAR batch holds (n, 3072) pixels and n labels. Received: data of "
                         f"shape {data.shape} and {len(labels)} labels in {path!r}")
    return data.reshape(len(data), 3, 32, 32), labels


def as_keras(x_train, y_train, x_test, y_test):
    """Keras's layout (densitron's layers take channels_last data): images (n, 32, 32, 3),
    labels (n, 1) columns."""
    def last(x):
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))

    return ((last(x_train), y_train.reshape(len(y_train), 1)),
            (last(x_test), y_test.reshape(len(y_test), 1)))
