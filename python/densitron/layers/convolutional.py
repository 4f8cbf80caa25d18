"""Keras's convolutions (Conv1D, Conv2D) and windowed poolings (MaxPooling1D/2D,
AveragePooling1D/2D) on the engine. An index map lays each sample's windows out as rows of
(output position, window offset, channel), -1 (a zero) or -2 (-1e9) where a window leaves the
input; a convolution is then the engine's Dense over those rows with Keras's kernel (k..., cin,
filters) read as (k...·cin, filters), a pooling the engine's pooling over the window axis (an
average with 'same' padding dividing each window's sum by its count of inputs, as Keras's JAX
backend). Windows and padding are XLA's: 'same' pads (total // 2) before, the rest after."""

import math

import numpy as np

from densitron import activations
from densitron.layers.core import kernel_bias_config, set_kernel_bias_args
from densitron.layers.layer import Layer, engine_node, node_spec

# densitron::OpType
_DENSE, _ACTIVATION, _RESHAPE, _POOL, _STANDARDIZE, _INDEX_MAP = 1, 2, 14, 16, 17, 20
_ZERO, _MASKED = -1, -2  # an index map's entries for 0 and -1e9


def standardize_tuple(value, n, name, allow_zero=False):
    """Keras's: an int or n ints as a tuple of n positive (or, allow_zero, >= 0) ints."""
    error = f"The `{name}` argument must be a tuple of {n} integers. Received: {name}={value!r}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise ValueError(error) from None
        if len(values) != n or not all(isinstance(v, (int, np.integer)) and
                                       not isinstance(v, bool) for v in values):
            raise ValueError(error)
        values = tuple(int(v) for v in values)
    if any(v < 0 or (v == 0 and not allow_zero) for v in values):
        raise ValueError(f"{error}, including values that do not satisfy "
                         f"`value {'>= 0' if allow_zero else '> 0'}`")
    return values


def standardize_data_format(data_format):
    if data_format is None:
        return "channels_last"
    value = str(data_format).lower()
    if value not in ("channels_first", "channels_last"):
        raise ValueError("The `data_format` argument must be one of "
                         "{'channels_first', 'channels_last'}. "
                         f"Received: data_format={data_format!r}")
    return value


def _split(shape, data_format):
    """(spatial sizes, channels) of a sample's shape (no batch axis)."""
    if data_format == "channels_last":
        return tuple(shape[:-1]), shape[-1]
    return tuple(shape[1:]), shape[0]


def _join(batch, spatial, channels, data_format):
    if data_format == "channels_last":
        return (batch, *spatial, channels)
    return (batch, channels, *spatial)


def output_sizes(spatial, window, strides, dilation, padding):
    """Each spatial axis's (output size, padding before), as Keras's JAX backend (XLA's SAME,
    Keras's causal left padding); an output size < 1 where the window does not fit."""
    out = []
    for size, k, s, d in zip(spatial, window, strides, dilation):
        span = d * (k - 1) + 1
        if padding == "valid":
            out.append(((size - span) // s + 1, 0))
        elif padding == "causal":
            out.append(((size - 1) // s + 1, span - 1))
        else:
            n = (size - 1) // s + 1
            out.append((n, max((n - 1) * s + span - size, 0) // 2))
    return out


def window_map(shape, data_format, window, strides, dilation, sizes, fill):
    """A sample's windows as flat indices into it, (positions, window offsets, channels) for
    channels_last, (channels, positions, window offsets) for channels_first; `fill` where a
    window leaves the input."""
    spatial, channels = _split(shape, data_format)
    rank = len(spatial)
    flat = np.arange(math.prod(shape)).reshape(shape)
    if data_format == "channels_first":
        flat = np.moveaxis(flat, 0, -1)
    index, valid = [], np.ones((1,) * (2 * rank), dtype=bool)
    for a, (size, k, s, d, (n, lo)) in enumerate(zip(spatial, window, strides, dilation,
                                                     sizes)):
        pos = np.arange(n)[:, None] * s + np.arange(k)[None, :] * d - lo
        view = [1] * (2 * rank)
        view[a], view[rank + a] = n, k
        pos = pos.reshape(view)
        valid = valid & (pos >= 0) & (pos < size)
        index.append(np.clip(pos, 0, size - 1))
    picked = np.where(valid[..., None], flat[tuple(index)], fill)
    positions, offsets = math.prod(n for n, _ in sizes), math.prod(window)
    picked = picked.reshape(positions, offsets, channels)
    return picked if data_format == "channels_last" else picked.transpose(2, 0, 1)


def _chained(chain):
    """_engine_subgraph's items of a chain of nodes, each reading the one before it."""
    items = [([("in", 0)] if k == 0 else [("node", k - 1)], spec)
             for k, spec in enumerate(chain)]
    return items, [len(items) - 1]


def _check_fixed(layer, input_shape, rank):
    layer._check_single(input_shape)
    if len(input_shape) != rank + 2:
        raise ValueError(f"Input 0 of layer \"{layer.name}\" is incompatible with the layer: "
                         f"expected ndim={rank + 2}, found ndim={len(input_shape)}. "
                         f"Received: input_shape={tuple(input_shape)}")
    if any(d is None for d in input_shape[1:]):
        raise ValueError(f"Layer \"{layer.name}\" needs inputs of fixed sizes (densitron lays "
                         f"its windows out once). Received: input_shape={tuple(input_shape)}")


class BaseConv(Layer):
    """Keras's convolution of `rank` spatial axes: activation(conv(x, kernel) + bias), kernel
    (*kernel_size, channels, filters), bias (filters,)."""

    rank = None

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        rank = self.rank
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or \
                filters <= 0:
            raise ValueError("Invalid value for argument `filters`. Expected a strictly "
                             f"positive value. Received: filters={filters!r}")
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups <= 0:
            raise ValueError("The number of groups must be a positive integer. "
                             f"Received: groups={groups!r}")
        if filters % groups:
            raise ValueError("The number of filters must be evenly divisible by the number "
                             f"of groups. Received: groups={groups}, filters={filters}")
        if groups != 1:
            raise ValueError("densitron's convolutions take groups=1 (one kernel over all the "
                             f"input channels). Received: groups={groups}")
        self.filters, self.groups = int(filters), int(groups)
        self.kernel_size = standardize_tuple(kernel_size, rank, "kernel_size")
        self.strides = standardize_tuple(strides, rank, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, rank, "dilation_rate")
        allowed = ("valid", "same", "causal") if rank == 1 else ("valid", "same")
        if not isinstance(padding, str) or padding.lower() not in allowed:
            raise ValueError(f"The `padding` argument must be one of {set(allowed)}. "
                             f"Received: padding={padding!r}")
        self.padding = padding.lower()
        self.data_format = standardize_data_format(data_format)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with "
                             f"`dilation_rate > 1`. Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        set_kernel_bias_args(self, kernel_initializer, bias_initializer, kernel_regularizer,
                             bias_regularizer, kernel_constraint, bias_constraint)
        self.kernel = None
        self.bias = None

    def _check_inputs(self, input_shape):
        _check_fixed(self, input_shape, self.rank)
        _, channels = _split(input_shape[1:], self.data_format)
        if self.built and channels != self.kernel.shape[-2]:
            axis = -1 if self.data_format == "channels_last" else 1
            raise ValueError(
                f"Input 0 of layer \"{self.name}\" is incompatible with the layer: expected "
                f"axis {axis} of input shape to have value {self.kernel.shape[-2]}, but "
                f"received input with shape {tuple(input_shape)}. "
                f"Received: input_shape={tuple(input_shape)}")
        self.compute_output_shape(input_shape)

    def build(self, input_shape):
        _, channels = _split(tuple(input_shape[1:]), self.data_format)
        self.compute_output_shape(input_shape)
        self.kernel = self.add_weight((*self.kernel_size, int(channels), self.filters),
                                      self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    def _sizes(self, spatial):
        return output_sizes(spatial, self.kernel_size, self.strides, self.dilation_rate,
                            self.padding)

    def compute_output_shape(self, input_shape):
        spatial, _ = _split(tuple(input_shape[1:]), self.data_format)
        sizes = self._sizes(spatial)
        if any(n <= 0 for n, _ in sizes):
            raise ValueError(
                "Computed output size would be zero or negative. Received: "
                f"inputs shape={tuple(input_shape)}, kernel_size={self.kernel_size}, "
                f"dilation_rate={self.dilation_rate}, strides={self.strides}, "
                f"padding={self.padding}")
        return _join(input_shape[0], [n for n, _ in sizes], self.filters, self.data_format)

    def _pointwise(self):
        """Whether the convolution is a Dense over each position's channels."""
        return (set(self.kernel_size) | set(self.strides) | set(self.dilation_rate)) == {1} \
            and self.data_format == "channels_last"

    def _engine_subgraph(self, node, param_index):
        """The windows (an index map), the Dense over them, for channels_first the (positions,
        filters) moved to (filters, positions), and the activation where the Dense cannot fuse
        it (a softmax over another axis than the last, any activation after that move)."""
        shape = tuple(int(d) for d in node.inputs[0].shape[1:])
        out = node.outputs[0].shape
        params = [param_index[id(self.kernel)],
                  param_index[id(self.bias)] if self.use_bias else -1]
        act = None if activations.is_traced(self.activation) else self.activation
        axis = activations.softmax_axis(act) if act is not None else None
        fused = self.data_format == "channels_last" and (axis is None or
                                                         axis % len(out) == len(out) - 1)
        last = engine_node(_ACTIVATION, node, activation=act) if act is not None and not fused else None
        dense = engine_node(_DENSE, node, activation=act if fused else None, params=params)
        positions = math.prod(out[1:]) // self.filters
        if last is not None or self.data_format == "channels_first":
            # (the activity penalty on the layer's last node only)
            dense = node_spec(_DENSE, positions * self.filters, self.filters, dense[3:5],
                              params)
        if self._pointwise():
            chain = [dense]
        else:
            sizes = self._sizes(_split(shape, self.data_format)[0])
            rows = window_map(shape, self.data_format, self.kernel_size, self.strides,
                              self.dilation_rate, sizes, _ZERO)
            if self.data_format == "channels_first":
                rows = rows.transpose(1, 2, 0)
            row = rows.shape[1] * rows.shape[2]
            chain = [node_spec(_INDEX_MAP, positions * row, row, iattrs=rows.ravel().tolist()),
                     dense]
        if self.data_format == "channels_first":
            moved = np.arange(positions * self.filters).reshape(positions, self.filters).T
            spec = engine_node(_INDEX_MAP, node, iattrs=moved.ravel().tolist())
            if last is not None:
                spec = node_spec(_INDEX_MAP, spec[1], spec[2], iattrs=spec[7])
            chain.append(spec)
        if last is not None:
            chain.append(last)
        return _chained(chain)

    def _symbolic_call(self, inputs, flat):
        out = super()._symbolic_call(inputs, flat)
        if activations.is_traced(self.activation):  # a Python activation after the layer
            return activations.apply_traced(self.activation, out, self.name)
        return out

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "activation": "linear" if activations.is_traced(self.activation)
            else activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **kernel_bias_config(self),
        })
        config.setdefault("activity_regularizer", None)  # (Keras's convolutions write it)
        return config


class Conv1D(BaseConv):
    """Keras's Conv1D over (batch, steps, channels) (channels_first: (batch, channels,
    steps)); padding 'causal' pads dilation_rate·(kernel_size - 1) zeros before the steps.
    kernel_size=1 (strides 1, channels_last), the pointwise convolution, is one Dense."""

    rank = 1


class Conv2D(BaseConv):
    """Keras's Conv2D over (batch, rows, cols, channels) (channels_first: (batch, channels,
    rows, cols))."""

    rank = 2


class BasePooling(Layer):
    """Keras's windowed pooling: the maximum or the mean of each window of `pool_size`, moved
    by `strides` (pool_size when None); with 'same' padding the maximum ignores the padding
    and the mean divides by the window's count of inputs."""

    rank = None
    pool_mode = "max"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.pool_size = standardize_tuple(pool_size, self.rank, "pool_size")
        self.strides = standardize_tuple(pool_size if strides is None else strides, self.rank,
                                         "strides")
        if padding not in ("valid", "same"):
            raise ValueError("Argument `padding` must be either 'valid' or 'same'. "
                             f"Received: padding={padding!r}")
        self.padding = padding
        self.data_format = standardize_data_format(data_format)

    def _check_inputs(self, input_shape):
        _check_fixed(self, input_shape, self.rank)
        self.compute_output_shape(input_shape)

    def _sizes(self, spatial):
        return output_sizes(spatial, self.pool_size, self.strides, (1,) * self.rank,
                            self.padding)

    def compute_output_shape(self, input_shape):
        spatial, channels = _split(tuple(input_shape[1:]), self.data_format)
        sizes = self._sizes(spatial)
        if any(n <= 0 for n, _ in sizes):
            raise ValueError("Computed output size would be zero or negative. Received: "
                             f"inputs.shape={tuple(input_shape)}, pool_size={self.pool_size}, "
                             f"strides={self.strides}, padding={self.padding}")
        return _join(input_shape[0], [n for n, _ in sizes], channels, self.data_format)

    def _engine_subgraph(self, node, param_index):
        """The windows (an index map; channels_first as (channels, positions, window)), the
        engine's pooling over the window axis, and for the mean of 'same' windows each sum
        divided by its window's count (a standardize node of constant divisors)."""
        shape = tuple(int(d) for d in node.inputs[0].shape[1:])
        sizes = self._sizes(_split(shape, self.data_format)[0])
        is_max = self.pool_mode == "max"
        windows = window_map(shape, self.data_format, self.pool_size, self.strides,
                             (1,) * self.rank, sizes, _MASKED if is_max else _ZERO)
        if self.data_format == "channels_last":  # (positions, window, channels)
            outer, length, inner = windows.shape
        else:  # (channels, positions, window)
            outer, length, inner = windows.shape[0] * windows.shape[1], windows.shape[2], 1
        last = int(node.outputs[0].shape[-1])
        chain = [node_spec(_INDEX_MAP, windows.size, last * length if inner == 1 else inner,
                           iattrs=windows.ravel().tolist())]
        counts = (windows >= 0).sum(axis=1 if self.data_format == "channels_last" else 2)
        if is_max or self.padding == "valid" or counts.min() == length:
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


# Keras's aliases
Convolution1D = Conv1D
Convolution2D = Conv2D
MaxPool1D = MaxPooling1D
MaxPool2D = MaxPooling2D
AvgPool1D = AveragePooling1D
AvgPool2D = AveragePooling2D
