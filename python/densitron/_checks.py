"""Argument checks shared across the package (no imports of its own modules: any of them,
the lazily-importing ops and layers included, can use these)."""

import numpy as np


def is_number(value):
    """Whether value is a real number as an argument takes one: a Python or NumPy int or
    float, not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value,
                                                                                     bool)
