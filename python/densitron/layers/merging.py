"""Merge layers over several inputs of equal shape (Concatenate: equal but for the axis)."""

import math

from densitron.layers.layer import Layer, engine_node


def _check_list(layer, input_shape, exactly=None):
    if not isinstance(input_shape, list) or len(input_shape) < 2:
        raise ValueError(
            f"A merge layer \"{layer.name}\" should be called on a list of at least 2 inputs. "
            f"Received: input_shape={input_shape}"
        )
    if exactly is not None and len(input_shape) != exactly:
        raise ValueError(f"A `{type(layer).__name__}` layer should be called on exactly "
                         f"{exactly} inputs. Received: {len(input_shape)} inputs with shapes "
                         f"{input_shape}")


class _Merge(Layer):
    _mask_rule = "refuse"  # Keras combines the inputs' masks
    _op = None
    _arity = None

    def _check_inputs(self, input_shape):
        _check_list(self, input_shape, self._arity)
        if len({tuple(s[1:]) for s in input_shape}) != 1:
            raise ValueError(
                f"Inputs have incompatible shapes for layer \"{self.name}\": every input must "
                f"have the same shape. Received: input shapes {input_shape}"
            )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def _engine_node(self, node, param_index):
        return engine_node(self._op, node)


class Add(_Merge):
    _op = 3


class Subtract(_Merge):
    _op = 5
    _arity = 2


class Multiply(_Merge):
    _op = 6


class Average(_Merge):
    _op = 7


class Maximum(_Merge):
    _op = 8


class Minimum(_Merge):
    _op = 9


class Concatenate(Layer):
    """Joins its inputs along `axis` (all other dimensions equal)."""
    _mask_rule = "refuse"  # Keras combines the inputs' masks

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"`axis` must be an integer. Received: axis={axis!r}")
        self.axis = axis

    def _norm_axis(self, input_shape):
        rank = len(input_shape[0])
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise ValueError(f"Invalid `axis` for inputs of rank {rank} in layer "
                             f"\"{self.name}\" (the batch axis cannot be joined). "
                             f"Received: axis={self.axis}")
        return axis

    def _check_inputs(self, input_shape):
        _check_list(self, input_shape)
        if len({len(s) for s in input_shape}) != 1:
            raise ValueError(f"A `Concatenate` layer requires inputs of equal rank. "
                             f"Received: input shapes {input_shape}")
        axis = self._norm_axis(input_shape)
        others = {tuple(d for i, d in enumerate(s) if i != axis) for s in input_shape}
        if len(others) != 1:
            raise ValueError(
                "A `Concatenate` layer requires inputs with matching shapes except for the "
                f"concatenation axis. Received: input_shape={input_shape}"
            )

    def compute_output_shape(self, input_shape):
        axis = self._norm_axis(input_shape)
        out = list(input_shape[0])
        out[axis] = sum(s[axis] for s in input_shape)
        return tuple(out)

    def _engine_node(self, node, param_index):
        shapes = [t.shape for t in node.inputs]
        blocks = math.prod(shapes[0][1:self._norm_axis(shapes)])
        return engine_node(4, node, iattrs=[blocks])

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
