"""Backend-level helpers with Keras's names."""

from densitron.utils.naming import clear_session

_EPSILON = 1e-7


def epsilon():
    return _EPSILON


def floatx():
    return "float32"


__all__ = ["clear_session", "epsilon", "floatx"]
