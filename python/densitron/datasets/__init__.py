"""Small real datasets shipped inside the package, loaded as Keras datasets are."""

from densitron.datasets import digits

__all__ = ["digits"]
