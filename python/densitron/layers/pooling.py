"""Keras's global pooling layers: the mean or the maximum over every spatial axis (the steps of
a sequence, the pixels of an image), one value per channel."""

import math

from densitron.layers.layer import Layer, engine_node


class _GlobalPooling(Layer):
    _rank = 1       # spatial axes
    _max = False    # maximum, else mean

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        data_format = "channels_last" if data_format is None else data_format
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError("The `data_format` argument must be one of 'channels_first', "
                             f"'channels_last'. Received: data_format={data_format!r}")
        self.data_format = data_format
        self.keepdims = bool(keepdims)

    def _check_inputs(self, input_shape):
        self._check_single(input_shape)
        if len(input_shape) != self._rank + 2:
            raise ValueError(
                f"Input 0 of layer \"{self.name}\" is incompatible with the layer: expected "
                f"ndim={self._rank + 2}, found ndim={len(input_shape)}. "
                f"Received: input_shape={tuple(input_shape)}")

    def _split(self, input_shape):
        """(spatial axes, channels) of an input shape."""
        if self.data_format == "channels_last":
            return tuple(input_shape[1:-1]), input_shape[-1]
        return tuple(input_shape[2:]), input_shape[1]

    def compute_output_shape(self, input_shape):
        _, channels = self._split(input_shape)
        if not self.keepdims:
            return (input_shape[0], channels)
        ones = (1,) * self._rank
        if self.data_format == "channels_last":
            return (input_shape[0], *ones, channels)
        return (input_shape[0], channels, *ones)

    def _engine_node(self, node, param_index):
        spatial, channels = self._split(node.inputs[0].shape)
        length = math.prod(spatial)
        # each sample as (outer, length, inner), reduced over length
        outer, inner = (1, channels) if self.data_format == "channels_last" else (channels, 1)
        iattrs = [outer, length, inner, int(self._max)]
        if getattr(node, "masks", None):
            iattrs.append(1)  # masked: the ids input is appended to the node's inputs
        return engine_node(16, node, iattrs=iattrs)

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return config


class GlobalAveragePooling1D(_GlobalPooling):
    _rank = 1
    _mask_rule = "consume"  # the mean over the unmasked steps, as Keras

    def _output_mask(self, node):
        mask = super()._output_mask(node)
        kept = (getattr(node, "masks", None) or (None,))[0]
        if kept is not None:
            pooled = node.inputs[0].shape[1 if self.data_format == "channels_last" else 2]
            if kept.shape[1] != pooled:  # Keras's mask would not broadcast either
                raise ValueError(
                    f"Layer \"{self.name}\" pools {pooled} values a channel, but its input's "
                    f"mask has {kept.shape[1]} entries a sample. Received: input shape "
                    f"{node.inputs[0].shape} with data_format={self.data_format!r}")
        return mask


class GlobalAveragePooling2D(_GlobalPooling):
    _rank = 2


class GlobalAveragePooling3D(_GlobalPooling):
    _rank = 3


class GlobalMaxPooling1D(_GlobalPooling):
    _rank, _max = 1, True


class GlobalMaxPooling2D(_GlobalPooling):
    _rank, _max = 2, True


class GlobalMaxPooling3D(_GlobalPooling):
    _rank, _max = 3, True


# Keras's aliases
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalAvgPool3D = GlobalAveragePooling3D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalMaxPool2D = GlobalMaxPooling2D
GlobalMaxPool3D = GlobalMaxPooling3D
