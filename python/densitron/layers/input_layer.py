"""InputLayer and Input(): the symbolic entry points of a functional model."""

import warnings

import numpy as np

from densitron.layers.layer import KerasTensor, Layer, Node


class InputLayer(Layer):
    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, ragged=None,
                 name=None, **kwargs):
        if "input_shape" in kwargs:  # Keras 2's name, which Keras 3 takes with a warning
            warnings.warn("Argument `input_shape` is deprecated. Use `shape` instead.",
                          stacklevel=2)
            shape = kwargs.pop("input_shape")
        if "batch_shape" in kwargs:
            batch_shape = kwargs.pop("batch_shape")
            batch_size, shape = batch_shape[0], tuple(batch_shape[1:])
        super().__init__(name=name or None, **_input_name_kwargs(name, kwargs))
        shape = _check_shape(shape)
        if ragged:
            raise ValueError("densitron does not support ragged inputs. Received: ragged=True")
        if sparse not in (None, True, False):
            raise TypeError(f"`sparse` must be a bool. Received: sparse={sparse!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or
                                       not isinstance(batch_size, (int, np.integer)) or
                                       batch_size < 0):
            raise ValueError(f"Cannot convert '{(batch_size, *shape)}' to a shape. `batch_size` "
                             "is a non-negative integer or None (negative dimensions are not "
                             f"allowed). Received: batch_size={batch_size!r}")
        self.shape = shape
        self.batch_size = batch_size if batch_size is None else int(batch_size)
        # Informational, as in Keras: SciPy sparse matrices work as any input of shape
        # (features,), and so do dense arrays where sparse=True.
        self.sparse = bool(sparse)
        self.built = True
        node = Node(self, [], [])
        self.output = KerasTensor((batch_size,) + shape, name=self.name, node=node, index=0)
        node.outputs.append(self.output)
        self._inbound_nodes.append(node)

    def _engine_node(self, node, param_index):
        from densitron.layers.layer import engine_node

        return engine_node(0, node)

    def get_config(self):
        return {
            "batch_shape": (self.batch_size,) + self.shape,
            "dtype": "float32",
            "sparse": self.sparse,
            "ragged": False,  # (Keras's keys: densitron refuses ragged and optional inputs)
            "name": self.name,
            "optional": False,
        }

    @classmethod
    def from_config(cls, config):
        shape = tuple(config["batch_shape"])[1:]
        if config.get("optional"):
            raise ValueError("densitron does not support optional inputs. Received: "
                             f"optional={config['optional']!r}")
        return cls(shape=shape, batch_size=config["batch_shape"][0],
                   sparse=config.get("sparse"), ragged=config.get("ragged"),
                   name=config.get("name"))


def _input_name_kwargs(name, kwargs):
    if kwargs:
        raise TypeError("Unrecognized keyword arguments passed to InputLayer. "
                        f"Received: kwargs={kwargs}")
    return {}


def _check_shape(shape):
    if shape is None:
        raise ValueError("You must pass a `shape` argument to Input. Received: shape=None")
    if isinstance(shape, int):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(
            f"Argument `shape` must be a tuple of integers. Received: shape={shape!r}"
        ) from None
    for d in shape:
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer))
                              or d < 1):
            raise ValueError(
                "Argument `shape` must be a tuple of positive integers or None (a length the "
                f"data gives, as for variable-length sequences). Received: shape={shape!r}"
            )
    # (shape=(): one value a sample, Keras's scalar feature; a None dimension takes the length
    # of the arrays each fit, evaluate or predict call is given: see Functional._specialise)
    return tuple(d if d is None else int(d) for d in shape)


def Input(shape=None, batch_size=None, dtype=None, sparse=None, ragged=None, name=None,
          **kwargs):
    """Returns a symbolic tensor that starts a functional model: `Input(shape=(784,))`."""
    if "batch_shape" in kwargs:
        batch_shape = kwargs.pop("batch_shape")
        batch_size, shape = batch_shape[0], tuple(batch_shape[1:])
    if dtype is not None and str(dtype) not in ("float32", "float64", "float16", "int32",
                                                 "int64", "int16", "int8", "uint8", "bool"):
        raise ValueError("densitron models compute in float32 and take numeric inputs. "
                         f"Received: dtype={dtype!r}")
    layer = InputLayer(shape=shape, batch_size=batch_size, sparse=sparse, ragged=ragged,
                       name=name, **kwargs)
    if dtype is not None:  # (the data's dtype, as Keras's tensor tells it; the engine reads
        layer.output.dtype = str(dtype)  # every input as float32)
    return layer.output
