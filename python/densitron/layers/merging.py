"""Merge layers over several inputs of shape (batch, features)."""

from densitron.layers.layer import Layer


def _check_list(layer, input_shape, min_inputs=2):
    if not isinstance(input_shape, list) or len(input_shape) < min_inputs:
        raise ValueError(
            f"A merge layer {layer.name} should be called on a list of at least {min_inputs} "
            f"inputs. Received: input_shape={input_shape}"
        )
    for s in input_shape:
        if len(s) != 2:
            raise ValueError(
                f"Layer {layer.name} expects 2-D inputs (batch, features). "
                f"Received: input shapes {input_shape}"
            )


class Add(Layer):
    """Elementwise sum of its inputs, which must all have the same shape."""

    def _check_inputs(self, input_shape):
        _check_list(self, input_shape)
        if len({tuple(s[1:]) for s in input_shape}) != 1:
            raise ValueError(
                f"Inputs have incompatible shapes for layer {self.name}. "
                f"Received: input shapes {input_shape}"
            )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])


class Concatenate(Layer):
    """Joins its inputs along the last axis."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1, 1):
            raise ValueError(
                f"densitron's Concatenate joins feature vectors along the last axis. "
                f"Received: axis={axis}"
            )
        self.axis = axis

    def _check_inputs(self, input_shape):
        _check_list(self, input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], sum(s[-1] for s in input_shape))

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config
