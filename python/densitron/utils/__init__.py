"""Utilities: seeding, session state, progress bars."""

import numpy as np

from densitron.utils.dataset import PyDataset, pack_x_y_sample_weight, unpack_x_y_sample_weight
from densitron.utils.file_utils import get_file
from densitron.utils.io_utils import (disable_interactive_logging, enable_interactive_logging,
                                      is_interactive_logging_enabled)
from densitron.utils.naming import clear_session
from densitron.utils.plotting import model_to_dot, plot_model
from densitron.utils.progbar import Progbar
from densitron.utils.rng import set_random_seed
from densitron.utils.sequence_utils import pad_sequences
from densitron.utils.timeseries import timeseries_dataset_from_array
from densitron.utils.serialization import (CustomObjectScope, custom_object_scope,
                                           get_custom_objects, get_registered_name,
                                           get_registered_object, register_keras_serializable)

Sequence = PyDataset  # Keras's older name



def to_categorical(x, num_classes=None):
    """Class ids (any shape of integers) to one-hot float64 rows, as keras.utils does for
    arrays and lists (num_classes None or 0: the largest id + 1). Training takes them as is."""
    x = np.asarray(x)
    if x.dtype.kind not in "biu" and not (x.dtype.kind == "f" and np.all(x == np.round(x))):
        raise ValueError(f"`x` must hold integer class ids. Received: x with dtype {x.dtype}")
    x = x.astype(np.int64)
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.size and x.min() < 0:
        raise ValueError(f"Class ids must be >= 0. Received: a class id of {x.min()}")
    if not num_classes:
        num_classes = int(x.max()) + 1 if x.size else 0
    elif x.size and x.max() >= num_classes:
        raise ValueError(f"Class ids must be < num_classes={num_classes}. "
                         f"Received: a class id of {x.max()}")
    return np.eye(num_classes, dtype=np.float64)[x]


def serialize_keras_object(obj):
    """Keras's config form of obj (see densitron.utils.keras_objects)."""
    from densitron.utils.keras_objects import serialize_keras_object as serialize

    return serialize(obj)


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """The object of a Keras config (see densitron.utils.keras_objects)."""
    from densitron.utils.keras_objects import deserialize_keras_object as deserialize

    return deserialize(config, custom_objects, safe_mode, **kwargs)


def is_keras_tensor(x):
    """Whether x is a symbolic tensor of a model being built (an Input or a layer's output)."""
    from densitron.layers.layer import KerasTensor

    return isinstance(x, KerasTensor)


def get_source_inputs(tensor):
    """The Input tensors `tensor` is computed from, in the order its layers' inputs lead to
    them (depth first), each once; an Input's own tensor is its own source."""
    from densitron.layers.input_layer import InputLayer

    if not is_keras_tensor(tensor):
        raise ValueError("`tensor` must be a symbolic tensor (an Input or a layer's output). "
                         f"Received: tensor={tensor!r}")
    sources, stack = [], [tensor]
    while stack:
        t = stack.pop()
        if isinstance(t, (list, tuple)):
            stack.extend(reversed(t))
            continue
        node = t._node
        if node is None or isinstance(node.layer, InputLayer) or not node.inputs:
            if not any(t is s for s in sources):
                sources.append(t)
            continue
        stack.extend(reversed(node.inputs))
    return sources


def normalize(x, axis=-1, order=2):
    """x divided by its `order`-norm along `axis` (zero norms left as 1), as keras.utils does
    for NumPy arrays."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"`x` must hold numbers. Received: x with dtype {x.dtype}")
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, -1 if axis is None else axis)


__all__ = ["timeseries_dataset_from_array", "CustomObjectScope", "get_custom_objects", "get_registered_name",
           "get_registered_object", "Progbar", "PyDataset", "Sequence", "clear_session", "custom_object_scope", "deserialize_keras_object", "disable_interactive_logging", "enable_interactive_logging", "get_file", "get_source_inputs", "img_to_array", "is_interactive_logging_enabled", "is_keras_tensor", "model_to_dot", "normalize", "pack_x_y_sample_weight", "pad_sequences", "plot_model", "register_keras_serializable",
           "serialize_keras_object", "set_random_seed", "to_categorical", "unpack_x_y_sample_weight"]


def standardize_dtype(dtype):
    """Keras's dtype name of `dtype` (see densitron.backend.standardize_dtype)."""
    from densitron.backend import standardize_dtype as standardize

    return standardize(dtype)


def img_to_array(img, data_format=None, dtype=None):
    """An image (an array, or a PIL image when PIL is installed) as a float32 array of
    (height, width, channels), a grayscale image given its channel axis, as keras.utils does
    (data_format "channels_last" only)."""
    if data_format not in (None, "channels_last"):
        raise ValueError("densitron's images are channels_last. "
                         f"Received: data_format={data_format!r}")
    x = np.asarray(img, dtype=dtype or np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    elif x.ndim != 3:
        raise ValueError(f"Unsupported image shape: {x.shape}. Received: an image of rank "
                         f"{x.ndim} (an image is (height, width) or (height, width, channels))")
    return x


# Keras utilities that build tf.data datasets, PIL images or FeatureSpace's tf.data graph:
# named, with what to do instead, rather than a bare AttributeError
_NOT_SUPPORTED = {
    "image_dataset_from_directory": "load the images into a NumPy array (or a PyDataset)",
    "text_dataset_from_directory": "read the files into a NumPy array of strings",
    "audio_dataset_from_directory": "load the audio into a NumPy array",
    "split_dataset": "slice the arrays (or pass validation_split to fit)",
    "load_img": "load the image into a NumPy array",
    "save_img": "save the NumPy array with an image library",
    "array_to_img": "use the NumPy array as it is",
    "FeatureSpace": "preprocess with Normalization, StringLookup, IntegerLookup and "
                    "CategoryEncoding layers in the model",
}


def __getattr__(name):
    if name in _NOT_SUPPORTED:
        raise AttributeError(
            f"densitron.utils has no {name}: Keras's returns a tf.data pipeline or a PIL image, "
            f"which densitron does not use; {_NOT_SUPPORTED[name]}. Received: utils.{name}")
    raise AttributeError(f"module 'densitron.utils' has no attribute {name!r}")

