"""keras.config's settings as densitron has them: float32, channels_last, its own engine.
Setting them to what densitron runs is accepted (scripts set them); anything else raises."""

from densitron import backend as _backend


def floatx():
    return _backend.floatx()


def set_floatx(value):
    if value != "float32":
        raise ValueError(f"densitron computes in float32. Received: value={value!r}")


def epsilon():
    return _backend.epsilon()


def set_epsilon(value):
    if value != _backend.epsilon():
        raise ValueError(f"densitron's engine uses Keras's default epsilon, "
                         f"{_backend.epsilon()}. Received: value={value!r}")


def image_data_format():
    return "channels_last"


def set_image_data_format(data_format):
    if data_format != "channels_last":
        raise ValueError("densitron's layers take channels_last data. "
                         f"Received: data_format={data_format!r}")


def backend():
    """The name of the engine running the models."""
    return "densitron"


def enable_unsafe_deserialization():
    """Keras's switch for loading Lambda functions from files: densitron's files never hold
    code (a Lambda is saved as the layers its function made), so there is nothing to enable."""


def enable_traceback_filtering():
    """Keras's traceback filtering: densitron's errors are raised where they are found."""


def disable_traceback_filtering():
    """See enable_traceback_filtering."""


def is_traceback_filtering_enabled():
    return False


__all__ = ["backend", "disable_traceback_filtering", "enable_traceback_filtering",
           "enable_unsafe_deserialization", "epsilon", "floatx", "image_data_format",
           "is_traceback_filtering_enabled", "set_epsilon", "set_floatx",
           "set_image_data_format"]
