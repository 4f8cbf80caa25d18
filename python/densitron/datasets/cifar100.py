"""CIFAR-100 (Alex Krizhevsky's 32×32 colour images of 100 classes in 20 superclasses, 50,000
for training and 10,000 for testing), from the archive Keras downloads."""

from densitron.datasets import _remote, cifar


def load_data(label_mode="fine"):
    """Returns `((x_train, y_train), (x_test, y_test))`: uint8 images of shape (n, 32, 32, 3) with
    values 0..255 and
    uint8 labels of shape (n, 1): the 100 classes (label_mode="fine", 0..99) or their 20
    superclasses ("coarse", 0..19), as `keras.datasets.cifar100.load_data(label_mode)`."""
    if label_mode not in ("fine", "coarse"):
        raise ValueError('`label_mode` must be one of `"fine"`, `"coarse"`. '
                         f"Received: label_mode={label_mode!r}")
    folder = _remote.fetch_cifar("cifar-100-python.tar.gz", "cifar-100-python")
    key = f"{label_mode}_labels"
    x_train, y_train = cifar.load_batch(cifar.find(folder, "cifar-100-python", "train"), key)
    x_test, y_test = cifar.load_batch(cifar.find(folder, "cifar-100-python", "test"), key)
    return cifar.as_keras(x_train, y_train, x_test, y_test)
