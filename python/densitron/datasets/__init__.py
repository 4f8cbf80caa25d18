"""Keras's datasets: `digits` ships inside the package; the others are downloaded once from the
files Keras uses (into ~/.keras/datasets, or $KERAS_HOME/datasets, shared with Keras) and
loaded as Keras loads them."""

from densitron.datasets import (
    boston_housing,
    california_housing,
    cifar10,
    cifar100,
    digits,
    fashion_mnist,
    imdb,
    mnist,
    reuters,
)

__all__ = ["boston_housing", "california_housing", "cifar10", "cifar100", "digits",
           "fashion_mnist", "imdb", "mnist", "reuters"]
