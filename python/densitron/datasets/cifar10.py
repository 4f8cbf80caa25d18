"""CIFAR-10 (Alex Krizhevsky's 32×32 colour images of ten classes, 50,000 for training and
10,000 for testing), from the archive Keras downloads."""

import numpy as np

from densitron.datasets import _remote, cifar


def load_data():
    """Returns `((x_train, y_train), (x_test, y_test))`: uint8 images of shape (n, 32, 32, 3) with
    values 0..255 and
    uint8 labels of shape (n, 1), 0..9 (airplane, automobile, bird, cat, deer, dog, frog,
    horse, ship, truck), as `keras.datasets.cifar10.load_data()`."""
    folder = _remote.fetch_cifar("cifar-10-python.tar.gz", "cifar-10-batches-py-target")
    parts = [cifar.load_batch(cifar.find(folder, "cifar-10-batches-py", f"data_batch_{i}"))
             for i in range(1, 6)]
    x_train = np.concatenate([x for x, _ in parts])
    y_train = np.concatenate([y for _, y in parts])
    x_test, y_test = cifar.load_batch(cifar.find(folder, "cifar-10-batches-py", "test_batch"))
    return cifar.as_keras(x_train, y_train, x_test, y_test)
