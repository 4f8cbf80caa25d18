"""Keras's pooling layers: the global ones (the mean or the maximum over every spatial axis, one
value per channel), the windowed ones (MaxPooling1D/2D/3D, AveragePooling1D/2D/3D) and the
adaptive ones. A windowed pooling is the engine's windowed pooling node (OpType::kWindowPool):
each window of a channels_last sample, clipped to the input (XLA's windows, as Keras's JAX
backend), to its maximum (the gradient to the first maximum in window order) or to its mean
over the values inside (Keras's 'same' average); channels_first is moved to channels_last and
back around it by index maps of one entry a value, as the native convolution. An adaptive
pooling lays each sample's windows out by an index map as (positions, window, channels) (-1e9
where a window is shorter for the maximum, zeros for the mean) and reduces the window axis with
the engine's pooling; a mean over windows of unequal counts divides each sum by its count (a
standardize node of constant divisors)."""

import math

import numpy as np

from densitron.layers.convolutional import (
    _MAP_ENTRY_BYTES,
    _MASKED,
    _ZERO,
    _chained,
    _check_fixed,
    _join,
    _split,
    gather_map,
    index_map_spec,
    output_sizes,
    refuse_oversized,
    standardize_data_format,
    standardize_tuple,
    window_map,
)
from densitron.layers.layer import Layer, engine_node, node_spec

_RESHAPE, _POOL, _STANDARDIZE, _INDEX_MAP, _WINDOW_POOL = 14, 16, 17, 20, 34  # OpType
_POOLED_BYTES = 8  # a windowed pooling's output bytes a value: the value and its gradient


class _GlobalPooling(Layer):
    _rank = 1       # spatial axes
    _max = False    # maximum, else mean

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)  # (Keras's: lowercased)
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
    _call_takes_mask = True

    def _mask_shape(self, input_shape):
        return (tuple(input_shape[:1]) + tuple(input_shape[2:])
                if self.data_format == "channels_first" else tuple(input_shape[:-1]))

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


class BasePooling(Layer):
    """Keras's windowed pooling: the maximum or the mean of each window of `pool_size`, moved
    by `strides` (pool_size when None); with 'same' padding the maximum ignores the padding
    and the mean divides by the window's count of inputs."""

    rank = None
    pool_mode = "max"
    _native = True  # the engine's windowed pooling node (not the adaptive windows' maps)

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.pool_size = standardize_tuple(pool_size, self.rank, "pool_size")
        self.strides = standardize_tuple(pool_size if strides is None else strides, self.rank,
                                         "strides")
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError("Argument `padding` must be either 'valid' or 'same'. "
                             f"Received: padding={padding!r}")
        self.padding = padding.lower()  # (Keras's JAX pooling lowercases it: 'SAME' is 'same')
        self.data_format = standardize_data_format(data_format)

    def _check_inputs(self, input_shape):
        if not _check_fixed(self, input_shape, self.rank):
            self.compute_output_shape(input_shape)  # (the sizes the data gives: checked then)
            return
        self.compute_output_shape(input_shape)
        # (the windows' layout refused before it is made when too large for the machine)
        spatial, channels = _split(tuple(input_shape[1:]), self.data_format)
        positions, window = self._layout(spatial)
        if self._native:
            # no windows' map: a sample's output and its gradient (float32), and
            # channels_first's moves to channels_last and back (a map entry a value)
            moves = 0 if self.data_format == "channels_last" else \
                (math.prod(spatial) + positions) * channels
            refuse_oversized(self, f"its output ({positions * channels} values a sample)",
                             positions * channels * _POOLED_BYTES + moves * _MAP_ENTRY_BYTES,
                             f"input_shape={tuple(input_shape)}, {self._size_config()}")
            return
        refuse_oversized(self, f"its windows' layout ({positions * window * channels} entries "
                         "a sample)", positions * window * channels * _MAP_ENTRY_BYTES,
                         f"input_shape={tuple(input_shape)}, {self._size_config()}")

    def _layout(self, spatial):
        """(output positions, window size) of a sample's windows."""
        return math.prod(n for n, _ in self._sizes(spatial)), math.prod(self.pool_size)

    def _size_config(self):
        return f"pool_size={self.pool_size}, strides={self.strides}, padding={self.padding!r}"

    def _sizes(self, spatial):
        return output_sizes(spatial, self.pool_size, self.strides, (1,) * self.rank,
                            self.padding)

    def compute_output_shape(self, input_shape):
        spatial, channels = _split(tuple(input_shape[1:]), self.data_format)
        sizes = self._sizes(spatial)
        if any(n is not None and n <= 0 for n, _ in sizes):
            raise ValueError("Computed output size would be zero or negative. Received: "
                             f"inputs.shape={tuple(input_shape)}, pool_size={self.pool_size}, "
                             f"strides={self.strides}, padding={self.padding}")
        return _join(input_shape[0], [n for n, _ in sizes], channels, self.data_format)

    def _engine_subgraph(self, node, param_index):
        """The engine's windowed pooling node (_native_chain); the adaptive poolings' windows
        of unequal sizes as an index map (channels_first as (channels, positions, window)),
        the engine's pooling over the window axis, and for the mean of windows of unequal
        counts each sum divided by its count (a standardize node of constant divisors)."""
        shape = tuple(int(d) for d in node.inputs[0].shape[1:])
        is_max = self.pool_mode == "max"
        if self._native:
            return _chained(self._native_chain(node, shape, is_max))
        windows = self._windows(shape, _MASKED if is_max else _ZERO)
        if self.data_format == "channels_last":  # (positions, window, channels)
            outer, length, inner = windows.shape
        else:  # (channels, positions, window)
            outer, length, inner = windows.shape[0] * windows.shape[1], windows.shape[2], 1
        last = int(node.outputs[0].shape[-1])
        chain = [index_map_spec(windows, last * length if inner == 1 else inner)]
        counts = (windows >= 0).sum(axis=1 if self.data_format == "channels_last" else 2)
        if is_max or counts.min() == length:  # (every window whole: the mean)
            mode = 1 if is_max else 0  # (the mean: the sum divided by the window's size)
            chain.append(engine_node(_POOL, node, iattrs=[outer, length, inner, mode]))
            return _chained(chain)
        # the sums, each divided by its count (one divisor a value: the width as last axis)
        width = counts.size
        chain += [node_spec(_POOL, width, last, iattrs=[outer, length, inner, 2]),
                  node_spec(_STANDARDIZE, width, width, iattrs=[0, width],
                            fattrs=[0.0] * width + counts.ravel().tolist()),
                  engine_node(_RESHAPE, node)]
        return _chained(chain)

    def _native_chain(self, node, shape, is_max):
        """The engine's windowed pooling node (channels_first's input moved to channels_last
        before it and its output back after it: each sample's (channels, positions) to
        (positions, channels) and back)."""
        spatial, channels = _split(shape, self.data_format)
        sizes = self._sizes(spatial)
        positions = math.prod(n for n, _ in sizes)
        iattrs = [self.rank, *spatial, channels, *self.pool_size, *self.strides,
                  *(lo for _, lo in sizes), *(n for n, _ in sizes), int(is_max)]
        if self.data_format == "channels_last":
            return [engine_node(_WINDOW_POOL, node, iattrs=iattrs)]
        moved = np.arange(math.prod(shape)).reshape(channels, -1).T
        back = np.arange(positions * channels).reshape(positions, channels).T
        last = engine_node(_INDEX_MAP, node)  # (the layer's activity penalty on the last)
        return [index_map_spec(moved, channels),
                node_spec(_WINDOW_POOL, positions * channels, channels, iattrs=iattrs),
                (*last[:7], back.ravel().tolist(), last[8])]

    def _windows(self, shape, fill):
        sizes = self._sizes(_split(shape, self.data_format)[0])
        return window_map(shape, self.data_format, self.pool_size, self.strides,
                          (1,) * self.rank, sizes, fill)

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "padding": self.padding,
                       "strides": self.strides, "data_format": self.data_format})
        return config


class MaxPooling1D(BasePooling):
    rank, pool_mode = 1, "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class MaxPooling2D(BasePooling):
    rank, pool_mode = 2, "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class AveragePooling1D(BasePooling):
    rank, pool_mode = 1, "average"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class AveragePooling2D(BasePooling):
    rank, pool_mode = 2, "average"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class MaxPooling3D(BasePooling):
    rank, pool_mode = 3, "max"

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None,
                 name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class AveragePooling3D(BasePooling):
    rank, pool_mode = 3, "average"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class BaseAdaptivePooling(BasePooling):
    """Keras's adaptive pooling: the maximum or the mean of output_size windows an axis,
    window i of an axis of n values [floor(i·n / out), ceil((i + 1)·n / out))."""

    _native = False  # (windows of unequal sizes: the index map and the engine's pooling)

    def __init__(self, output_size, data_format=None, **kwargs):
        Layer.__init__(self, **kwargs)
        rank = self.rank
        if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, bool):
            output_size = (int(output_size),) * rank
        elif isinstance(output_size, (tuple, list)):
            if len(output_size) != rank:
                raise ValueError(f"For {rank}D input, `output_size` tuple must have length "
                                 f"{rank}. Received: output_size={output_size!r}")
            output_size = tuple(output_size)
        else:
            raise TypeError(f"`output_size` must be an integer or tuple of {rank} integers. "
                            f"Received: output_size={output_size!r}")
        if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0
                   for n in output_size):
            raise ValueError("`output_size` holds positive integers. "
                             f"Received: output_size={output_size!r}")
        self.output_size = tuple(int(n) for n in output_size)
        data_format = data_format or "channels_last"
        if data_format not in ("channels_first", "channels_last"):
            raise ValueError(f"Invalid data_format: {data_format}. Expected 'channels_first' "
                             f"or 'channels_last'. Received: data_format={data_format!r}")
        self.data_format = data_format

    def compute_output_shape(self, input_shape):
        _, channels = _split(tuple(input_shape[1:]), self.data_format)
        return _join(input_shape[0], self.output_size, channels, self.data_format)

    def _layout(self, spatial):
        # (an axis's longest window: at most ceil(n / out) + 1 values, and n)
        return math.prod(self.output_size), math.prod(
            min(n, -(-n // out) + 1) for n, out in zip(spatial, self.output_size))

    def _size_config(self):
        return f"output_size={self.output_size}"

    def _windows(self, shape, fill):
        axes = []
        for n, out in zip(_split(shape, self.data_format)[0], self.output_size):
            start = np.arange(out) * n // out
            end = -(-np.arange(1, out + 1) * n // out)
            offsets = np.arange(int((end - start).max()))[None, :]
            axes.append(np.where(offsets < (end - start)[:, None], start[:, None] + offsets,
                                 -1))
        return gather_map(shape, self.data_format, axes, fill)

    def get_config(self):
        config = Layer.get_config(self)
        config.update({"output_size": self.output_size, "data_format": self.data_format})
        return config


class AdaptiveMaxPooling1D(BaseAdaptivePooling):
    rank, pool_mode = 1, "max"


class AdaptiveMaxPooling2D(BaseAdaptivePooling):
    rank, pool_mode = 2, "max"


class AdaptiveMaxPooling3D(BaseAdaptivePooling):
    rank, pool_mode = 3, "max"


class AdaptiveAveragePooling1D(BaseAdaptivePooling):
    rank, pool_mode = 1, "average"


class AdaptiveAveragePooling2D(BaseAdaptivePooling):
    rank, pool_mode = 2, "average"


class AdaptiveAveragePooling3D(BaseAdaptivePooling):
    rank, pool_mode = 3, "average"


# Keras's aliases
MaxPool1D = MaxPooling1D
MaxPool2D = MaxPooling2D
MaxPool3D = MaxPooling3D
AvgPool1D = AveragePooling1D
AvgPool2D = AveragePooling2D
AvgPool3D = AveragePooling3D
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalAvgPool3D = GlobalAveragePooling3D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalMaxPool2D = GlobalMaxPooling2D
GlobalMaxPool3D = GlobalMaxPooling3D
