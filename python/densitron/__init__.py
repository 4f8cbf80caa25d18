"""densitron: a neural-network engine with Keras's API and a fast C++ core for the CPU."""

from densitron import _core  # noqa: F401  (densitron._core: the engine)
from densitron._core import cpu_info, get_num_threads
from densitron import (
    activations,
    backend,
    callbacks,
    config,
    initializers,
    layers,
    losses,
    metrics,
    models,
    ops,
    optimizers,
    utils,
)
from densitron.layers import Input, KerasTensor, Layer
from densitron.losses import Loss
from densitron.metrics import Metric
from densitron.models import Model, Sequential
from densitron.optimizers import Optimizer
from densitron.initializers import Initializer
from densitron.regularizers import Regularizer
from densitron.variables import Variable

__version__ = "0.1.0"


def __getattr__(name):
    # Loaded on first use, to keep `import densitron` quick: the downloaded datasets,
    # densitron.random, the dtype policies and InputSpec.
    import importlib

    if name in ("datasets", "random", "mixed_precision", "wrappers", "preprocessing"):
        return importlib.import_module(f"densitron.{name}")
    if name == "dtype_policies":  # (Keras's other name for the policies' module)
        return importlib.import_module("densitron.mixed_precision")
    if name in ("DTypePolicy", "FloatDTypePolicy"):
        return getattr(importlib.import_module("densitron.mixed_precision"), name)
    if name == "InputSpec":
        return importlib.import_module("densitron.layers.input_spec").InputSpec
    raise AttributeError(f"module 'densitron' has no attribute {name!r}")


def version():
    """The package's version (Keras's keras.version())."""
    return __version__


def set_num_threads(n):
    """Threads the engine uses (default: OpenMP's, honouring OMP_NUM_THREADS)."""
    import numbers

    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"`n` must be a positive integer. Received: n={n!r}")
    if not 1 <= n < 2**31:  # (the engine's thread count is a C int)
        raise ValueError(f"`n` must be a positive integer below 2**31. Received: n={n}")
    _core.set_num_threads(int(n))


def set_adaptive_threads(enabled):
    """Whether the engine runs on one thread while other processes keep its threads off their
    cores (on by default; results are the same on any number of threads). The environment
    variable DENSITRON_ADAPTIVE_THREADS=0 turns it off from the start."""
    if not isinstance(enabled, bool):
        raise TypeError(f"`enabled` must be True or False. Received: enabled={enabled!r}")
    _core.set_adaptive_threads(bool(enabled))

__all__ = [
    "Initializer",
    "Input",
    "KerasTensor",
    "Layer",
    "Loss",
    "Metric",
    "Optimizer",
    "Regularizer",
    "Variable",
    "version",
    "Model",
    "Sequential",
    "activations",
    "backend",
    "callbacks",
    "config",
    "cpu_info",
    "datasets",
    "get_num_threads",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "ops",
    "optimizers",
    "preprocessing",
    "random",
    "set_adaptive_threads",
    "set_num_threads",
    "utils",
]
