"""keras.config's settings as densitron has them: float32, channels_last, its own engine.
Setting them to what densitron runs is accepted (scripts set them); anything else raises."""

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
    "set_dtype_policy",
    "set_epsilon",
    "set_floatx",
    "set_image_data_format",
]
