"""The process-wide random state behind initializers and shuffling."""

import numpy as np

_state = {"generator": np.random.default_rng()}


def set_random_seed(seed):
    """Seeds Python's `random`, NumPy's global state and densitron's own generator.

    After it, weight initialization and epoch shuffling repeat exactly from run to run.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(
            f"Expected `seed` argument to be an integer. Received: seed={seed!r} "
            f"(of type {type(seed).__name__})"
        )
    if seed < 0:
        raise ValueError(f"Expected `seed` to be non-negative. Received: seed={seed}")
    import random  # imported here: it pulls in hashlib, a cost `import densitron` need not pay

    random.seed(int(seed))
    np.random.seed(int(seed) % (2**32))
    _state["generator"] = np.random.default_rng(int(seed))


def global_generator():
    return _state["generator"]


def make_generator(seed=None):
    """A generator for `seed`, or the global one when seed is None."""
    if seed is None:
        return _state["generator"]
    return np.random.default_rng(seed)
