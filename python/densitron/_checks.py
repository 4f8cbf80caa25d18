"""Argument checks shared across the package (no imports of its own modules: any of them,
the lazily-importing ops and layers included, can use these)."""

import numpy as np


def is_number(value):
    """Whether value is a real number as an argument takes one: a Python or NumPy int or
    float, not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value,
                                                                                     bool)


def number_arg(arg, value):
    """value when it is a real number (not a bool); TypeError naming `arg` otherwise."""
    if not is_number(value):
        raise TypeError(f"`{arg}` must be a number. Received: {arg}={value!r}")
    return value


def seed_arg(seed):
    """seed when it is None or a non-negative integer; ValueError otherwise."""
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
                        and seed >= 0):
        return seed
    raise ValueError(f"`seed` must be None or a non-negative integer. Received: seed={seed!r}")


def path_arg(arg, value):
    """value as a path string (os.fspath); TypeError naming `arg` for anything else."""
    import os

    try:
        return os.fspath(value)
    except TypeError:
        raise TypeError(f"`{arg}` must be a path (a str or os.PathLike). "
                        f"Received: {arg}={value!r}") from None


def weight_list(weights, owner):
    """weights as a list (set_weights' argument); TypeError for anything but a sequence."""
    if isinstance(weights, (str, bytes, dict)) or not hasattr(weights, "__len__"):
        raise TypeError(f"`weights` must be a list of arrays, one per weight of {owner}. "
                        f"Received: weights={weights!r}")
    return list(weights)
