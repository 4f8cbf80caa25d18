"""Keras-style unique object names: dense, dense_1, dense_2, ..."""

import re

_counts = {}


def to_snake_case(name):
    """Keras's snake-casing of a class name (Dense -> dense, ReLU -> re_lu), for automatic
    layer names and the paths of Keras's weight files alike."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def uniquify(base):
    n = _counts.get(base, 0)
    _counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def get_uid(prefix=""):
    """The next number for `prefix`, from 1, on the counter uniquify keeps (after a Dense named
    'dense', get_uid('dense') is 2, as in Keras); reset by clear_session."""
    _counts[prefix] = _counts.get(prefix, 0) + 1
    return _counts[prefix]


def clear_session(free_memory=True):
    """Resets the name counters, as `keras.backend.clear_session()` does (`free_memory`:
    Keras's collection of garbage, which Python's own does here)."""
    _counts.clear()
