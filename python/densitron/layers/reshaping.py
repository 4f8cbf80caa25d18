"""Flatten and Reshape: the engine keeps the values and changes only the shape."""

import math

from densitron.layers.layer import Layer, engine_node


class Flatten(Layer):
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)

    def _check_inputs(self, input_shape):
        if isinstance(input_shape, list):
            raise ValueError(f"Layer \"{self.name}\" expects a single input. "
                             f"Received: input_shape={input_shape}")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], math.prod(input_shape[1:]))

    def _engine_node(self, node, param_index):
        return engine_node(14, node)


class Reshape(Layer):
    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            target_shape = tuple(int(d) for d in target_shape)
        except (TypeError, ValueError):
            raise ValueError(f"`target_shape` must be a tuple of integers. "
                             f"Received: target_shape={target_shape!r}") from None
        if sum(d == -1 for d in target_shape) > 1 or any(d == 0 or d < -1 for d in target_shape):
            raise ValueError("`target_shape` takes positive sizes and at most one -1. "
                             f"Received: target_shape={target_shape}")
        self.target_shape = target_shape

    def _check_inputs(self, input_shape):
        if isinstance(input_shape, list):
            raise ValueError(f"Layer \"{self.name}\" expects a single input. "
                             f"Received: input_shape={input_shape}")
        self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        total = math.prod(input_shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        shape = list(self.target_shape)
        if -1 in shape:
            if total % known:
                raise ValueError(f"Cannot reshape a tensor with {total} values per sample into "
                                 f"{self.target_shape}. Received: input_shape={input_shape}")
            shape[shape.index(-1)] = total // known
        elif known != total:
            raise ValueError(f"total size of new array must be unchanged: {total} values per "
                             f"sample cannot take shape {self.target_shape}. "
                             f"Received: input_shape={input_shape}")
        return (input_shape[0], *shape)

    def _engine_node(self, node, param_index):
        return engine_node(14, node)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}
