"""keras.backend's functions as densitron has them: float32, channels_last, its own engine.
Setting a value to what densitron runs is accepted (scripts set them); anything else raises.
keras.config exports the settings too (densitron.config)."""

from densitron.utils.naming import clear_session, get_uid

_EPSILON = 1e-7

# Keras's dtype names, and the Python types it reads as dtypes (as its non-TensorFlow backends)
_DTYPES = ("float16", "float32", "float64", "uint8", "uint16", "uint32", "uint64", "int8",
           "int16", "int32", "int64", "bfloat16", "bool", "string", "float8_e4m3fn",
           "float8_e5m2", "complex64", "complex128")
_PYTHON_DTYPES = {bool: "bool", int: "int32", float: "float32", str: "string", "int": "int32",
                  complex: "complex64"}


def backend():
    """The name of the engine running the models."""
    return "densitron"


def floatx():
    return "float32"


def set_floatx(value):
    if value != "float32":
        raise ValueError(f"densitron computes in float32. Received: value={value!r}")


def epsilon():
    return _EPSILON


def set_epsilon(value):
    if value != _EPSILON:
        raise ValueError(f"densitron's engine uses Keras's default epsilon, {_EPSILON}. "
                         f"Received: value={value!r}")


def image_data_format():
    return "channels_last"


def set_image_data_format(data_format):
    if data_format != "channels_last":
        raise ValueError("densitron's layers take channels_last data. "
                         f"Received: data_format={data_format!r}")


def is_keras_tensor(x):
    """Whether x is a symbolic tensor of a model being built (an Input or a layer's output)."""
    from densitron.utils import is_keras_tensor as check

    return check(x)


def standardize_dtype(dtype):
    """Keras's name of a dtype ('float32' for None, a NumPy dtype or type, a Python type or a
    name); ValueError for anything else."""
    if dtype is None:
        return floatx()
    try:
        dtype = _PYTHON_DTYPES.get(dtype, dtype)
    except TypeError:  # unhashable
        pass
    name = getattr(dtype, "name", None) or getattr(dtype, "__name__", None) or dtype
    if not isinstance(name, str) or name not in _DTYPES:
        raise ValueError(f"Invalid dtype: {dtype!r}. Expected one of {list(_DTYPES)}. "
                         f"Received: dtype={dtype!r}")
    return name


def is_float_dtype(dtype):
    return standardize_dtype(dtype).startswith(("float", "bfloat"))


def is_int_dtype(dtype):
    return standardize_dtype(dtype).startswith(("int", "uint"))


__all__ = ["backend", "clear_session", "epsilon", "floatx", "get_uid", "image_data_format",
           "is_float_dtype", "is_int_dtype", "is_keras_tensor", "set_epsilon", "set_floatx",
           "set_image_data_format", "standardize_dtype"]
