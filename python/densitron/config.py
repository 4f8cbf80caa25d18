"""keras.config's settings as densitron has them: float32, channels_last, its own engine.
Setting them to what densitron runs is accepted (scripts set them); anything else raises."""

import os
import warnings

from densitron.backend import (
    backend,
    epsilon,
    floatx,
    image_data_format,
    set_epsilon,
    set_floatx,
    set_image_data_format,
)
from densitron.utils.io_utils import (
    disable_interactive_logging,
    enable_interactive_logging,
    is_interactive_logging_enabled,
)

# Keras's debugging caps on fit's epochs and on the steps of an epoch of fit, evaluate and
# predict (None: no cap), from KERAS_MAX_EPOCHS / KERAS_MAX_STEPS_PER_EPOCH as in Keras.
_MAX_EPOCHS = int(os.environ["KERAS_MAX_EPOCHS"]) if "KERAS_MAX_EPOCHS" in os.environ else None
_MAX_STEPS_PER_EPOCH = (int(os.environ["KERAS_MAX_STEPS_PER_EPOCH"])
                        if "KERAS_MAX_STEPS_PER_EPOCH" in os.environ else None)


def _cap_arg(name, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or
                              value < 1):
        raise ValueError(f"`{name}` must be a positive integer or None. "
                         f"Received: {name}={value!r}")
    return value


def set_max_epochs(max_epochs):
    """Keras's: cap the epochs of every fit (for debugging runs); None: no cap."""
    global _MAX_EPOCHS
    _MAX_EPOCHS = _cap_arg("max_epochs", max_epochs)


def set_max_steps_per_epoch(max_steps_per_epoch):
    """Keras's: cap the steps of an epoch of fit, and of evaluate and predict; None: none."""
    global _MAX_STEPS_PER_EPOCH
    _MAX_STEPS_PER_EPOCH = _cap_arg("max_steps_per_epoch", max_steps_per_epoch)


def max_epochs():
    return _MAX_EPOCHS


def max_steps_per_epoch():
    return _MAX_STEPS_PER_EPOCH


def capped_epochs(epochs):
    """fit's epochs under set_max_epochs's cap, with Keras's warning when it applies."""
    if _MAX_EPOCHS and isinstance(epochs, int) and _MAX_EPOCHS < epochs:
        warnings.warn(f"Limiting epochs to {_MAX_EPOCHS}", stacklevel=3)
        return _MAX_EPOCHS
    return epochs


def capped_steps(steps, name="steps_per_epoch"):
    """The steps of an epoch under set_max_steps_per_epoch's cap (steps None: every batch,
    capped too), with Keras's warning when it applies."""
    if _MAX_STEPS_PER_EPOCH and (not steps or (isinstance(steps, int) and
                                               _MAX_STEPS_PER_EPOCH < steps)):
        warnings.warn(f"Limiting {name} to {_MAX_STEPS_PER_EPOCH}", stacklevel=3)
        return _MAX_STEPS_PER_EPOCH
    return steps


def set_dtype_policy(policy):
    """Keras's: densitron runs the float32 policy only (see densitron.mixed_precision)."""
    from densitron.mixed_precision import set_global_policy

    set_global_policy(policy)


def dtype_policy():
    from densitron.mixed_precision import global_policy

    return global_policy()


def enable_unsafe_deserialization():
    """Keras's switch for loading Lambda functions from files: densitron's files never hold
    code (a Lambda is saved as the layers its function made), so there is nothing to enable."""


def enable_traceback_filtering():
    """Keras's traceback filtering: densitron's errors are raised where they are found."""


def disable_traceback_filtering():
    """See enable_traceback_filtering."""


def is_traceback_filtering_enabled():
    return False


__all__ = [
    "backend",
    "disable_interactive_logging",
    "disable_traceback_filtering",
    "dtype_policy",
    "enable_interactive_logging",
    "enable_traceback_filtering",
    "enable_unsafe_deserialization",
    "epsilon",
    "floatx",
    "image_data_format",
    "is_interactive_logging_enabled",
    "is_traceback_filtering_enabled",
    "max_epochs",
    "max_steps_per_epoch",
    "set_dtype_policy",
    "set_epsilon",
    "set_floatx",
    "set_image_data_format",
    "set_max_epochs",
    "set_max_steps_per_epoch",
]
