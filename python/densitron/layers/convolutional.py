"""Keras's convolutions on the engine (Conv1D/2D/3D, grouped too, their transposes,
DepthwiseConv1D/2D, SeparableConv1D/2D). Conv1D/2D/3D, grouped ones, their transposes,
DepthwiseConv1D/2D and SeparableConv1D/2D's depthwise part are the engine's native
convolution node (OpType::kConv): it lays tiles of each sample's windows out (im2col) in a
small buffer of each thread's and multiplies them by Keras's kernel (k..., cin / groups,
filters) read as (k...·cin / groups, filters), group by group (a depthwise kernel (k..., cin,
multiplier) is the grouped kernel of cin groups), the bias and activation fused as Dense's; a
separable convolution's pointwise product is a Dense after it; channels_first is moved to
channels_last and back around it by index maps of one entry a value. A pointwise Conv of one
group on channels_last inputs is a Dense. A transpose is the node's transposed form: the input
gradient of the convolution from its output to its input (each input row times the kernel,
scattered into the windows it reaches: col2im). Windows and padding are XLA's, as Keras's JAX
backend: 'same' pads (total // 2) before, the rest after. The adaptive poolings (pooling.py)
use the index maps (gather_map)."""

import math
import os

import numpy as np

from densitron import activations, constraints, initializers, regularizers
from densitron.layers.core import kernel_bias_config, set_kernel_bias_args
from densitron.layers.layer import Layer, engine_node, node_spec

# densitron::OpType
_DENSE, _ACTIVATION, _INDEX_MAP, _CONV = 1, 2, 20, 33
_ZERO, _MASKED = -1, -2  # an index map's entries for 0 and -1e9
# An index map's bytes an entry: its int64 array, the list the engine's node is made from, the
# engine's copy and the gathered float32 value
_MAP_ENTRY_BYTES = 48
# A weight's bytes a value: the value, its gradient and two optimizer slots
_WEIGHT_BYTES = 16
# An output's bytes a value on the engine: the value, its gradient and a pre-activation
_OUTPUT_BYTES = 12


def memory_bytes():
    """This machine's physical memory (16 GiB when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def refuse_oversized(layer, what, nbytes, received):
    """Refuses, before it is made, a layout or weight of `nbytes` that would take more than
    half this machine's memory (NumPy's MemoryError, or swapping, otherwise)."""
    limit = memory_bytes() // 2
    if nbytes > limit:
        raise ValueError(
            f"Layer \"{layer.name}\": {what} would take {nbytes / 2**30:.4g} GiB, more than "
            f"half of this machine's {2 * limit / 2**30:.3g} GiB of memory. Received: "
            f"{received}")


def standardize_tuple(value, n, name, allow_zero=False):
    """Keras's: an int or n ints as a tuple of n positive (or, allow_zero, >= 0) ints."""
    error = f"The `{name}` argument must be a tuple of {n} integers. Received: {name}={value!r}"
    if isinstance(value, (int, np.integer)):  # (a bool too, as Keras takes it)
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise ValueError(error) from None
        if len(values) != n or not all(isinstance(v, (int, np.integer)) for v in values):
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
        if size is None:  # (a length the data gives: Input(shape=(None, 3)))
            out.append((None, 0))
        elif padding == "valid":
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
    axes = [np.arange(n)[:, None] * s + np.arange(k)[None, :] * d - lo
            for k, s, d, (n, lo) in zip(window, strides, dilation, sizes)]
    return gather_map(shape, data_format, axes, fill)


def gather_map(shape, data_format, axes, fill):
    """The input's flat indices at positions axes[a][output position, window offset] of each
    spatial axis a, laid out as window_map's; `fill` where one lies outside the input."""
    spatial, channels = _split(shape, data_format)
    rank = len(spatial)
    flat = np.arange(math.prod(shape)).reshape(shape)
    if data_format == "channels_first":
        flat = np.moveaxis(flat, 0, -1)
    index, valid = [], np.ones((1,) * (2 * rank), dtype=bool)
    for a, (size, pos) in enumerate(zip(spatial, axes)):
        view = [1] * (2 * rank)
        view[a], view[rank + a] = pos.shape
        pos = pos.reshape(view)
        valid = valid & (pos >= 0) & (pos < size)
        index.append(np.clip(pos, 0, size - 1))
    picked = np.where(valid[..., None], flat[tuple(index)], fill)
    positions, offsets = math.prod(p.shape[0] for p in axes), math.prod(p.shape[1] for p in axes)
    picked = picked.reshape(positions, offsets, channels)
    return picked if data_format == "channels_last" else picked.transpose(2, 0, 1)


def index_map_spec(entries, last_dim):
    """The engine's index map node of `entries` (an array of the input's flat indices, -1 or
    -2), its list made once (node_spec's conversion of each value took most of a large
    convolution's graph building)."""
    spec = node_spec(_INDEX_MAP, entries.size, last_dim)
    return (*spec[:7], np.asarray(entries, dtype=np.int64).ravel().tolist(), spec[8])


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
    spatial, channels = _split(tuple(input_shape[1:]), layer.data_format)
    if channels is None:
        raise ValueError(f"Layer \"{layer.name}\" needs the channels of its input known. "
                         f"Received: input_shape={tuple(input_shape)}")
    return None not in spatial  # (else the sizes the data gives: checked at those)


def _positive_int(value, name):
    """A positive int (True is 1, as Keras takes it)."""
    if not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Invalid value for argument `{name}`. Expected a strictly positive "
                         f"integer. Received: {name}={value!r}")
    return int(value)


class _WindowedConv(Layer):
    """What Keras's convolutions share: windows of kernel_size moved by strides over the
    spatial axes, dilated, padded (valid, same; Conv1D's causal), channels first or last, an
    activation; the engine's nodes for them (see _engine_subgraph)."""

    rank = None
    _causal = False  # (Conv1D's 'causal' padding)

    def _window_args(self, kernel_size, strides, padding, data_format, dilation_rate,
                     activation, use_bias):
        rank = self.rank
        self.kernel_size = standardize_tuple(kernel_size, rank, "kernel_size")
        self.strides = standardize_tuple(strides, rank, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, rank, "dilation_rate")
        allowed = ("valid", "same", "causal") if self._causal else ("valid", "same")
        if not isinstance(padding, str) or padding.lower() not in allowed:
            raise ValueError(f"The `padding` argument must be one of {set(allowed)}. "
                             f"Received: padding={padding!r}")
        self.padding = padding.lower()
        self.data_format = standardize_data_format(data_format)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)

    # the subclass's: its output channels for `channels` input ones, its groups (input and
    # output channels split alike, each output group reading its input group only), its
    # window kernel and bias, and its pointwise kernel (a separable convolution's) or None
    def _out_channels(self, channels):
        raise NotImplementedError

    def _groups(self, channels):
        return 1

    def _pointwise_kernel(self):
        return None

    def _check_inputs(self, input_shape):
        _check_fixed(self, input_shape, self.rank)
        _, channels = _split(input_shape[1:], self.data_format)
        if self.built and channels != self._in_channels:
            axis = -1 if self.data_format == "channels_last" else 1
            raise ValueError(
                f"Input 0 of layer \"{self.name}\" is incompatible with the layer: expected "
                f"axis {axis} of input shape to have value {self._in_channels}, but "
                f"received input with shape {tuple(input_shape)}. "
                f"Received: input_shape={tuple(input_shape)}")
        self.compute_output_shape(input_shape)
        self._check_sizes(input_shape)

    def _window_outputs(self, channels):
        """The outputs of each position's window product (a separable convolution's
        depthwise ones)."""
        return self._out_channels(channels)

    def _check_sizes(self, input_shape):
        """Refuses windows or weights too large for the machine before they are made."""
        spatial, channels = _split(tuple(input_shape[1:]), self.data_format)
        if None in spatial:  # (the sizes the data gives: checked at those)
            return
        channels = int(channels)
        positions = math.prod(n for n, _ in self._sizes(spatial))
        window = math.prod(self.kernel_size)
        groups = self._groups(channels)
        first = self._window_outputs(channels)
        entries = positions * window * channels * (first // groups if groups > 1 else 1)
        weights = window * (channels // groups) * first
        if isinstance(self, BaseSeparableConv):  # (its pointwise kernel)
            weights += first * self.filters
        received = (f"input_shape={tuple(input_shape)}, kernel_size={self.kernel_size}, "
                    f"strides={self.strides}, padding={self.padding!r}" + "".join(
                        f", {arg}={getattr(self, arg)}" for arg in ("filters", "depth_multiplier")
                        if hasattr(self, arg)))
        refuse_oversized(self, f"its weights ({weights} values)", weights * _WEIGHT_BYTES,
                         received)
        if self._native(channels):
            # no windows' map: a sample's output, its gradient and pre-activation (float32),
            # and channels_first's moves to channels_last and back (a map entry a value)
            # (a separable convolution's pointwise outputs too)
            outputs = positions * (first + (self.filters if isinstance(
                self, BaseSeparableConv) else 0))
            moves = 0 if self.data_format == "channels_last" else \
                math.prod(spatial) * channels + positions * self._out_channels(channels)
            refuse_oversized(self, f"its output ({outputs} values a sample)",
                             outputs * _OUTPUT_BYTES + moves * _MAP_ENTRY_BYTES, received)
            return
        refuse_oversized(self, f"its windows' layout ({entries} entries a sample)",
                         entries * _MAP_ENTRY_BYTES, received)

    def _native(self, channels):
        """Whether the engine's convolution node computes the windows' product: every
        convolution but the pointwise Conv1D/2D/3D of one group on channels_last inputs (a
        Dense). Grouped, depthwise and separable ones pass their groups (a depthwise kernel
        (k..., channels, multiplier) is a grouped one's (k..., 1, channels·multiplier): the
        same values in the same order)."""
        pointwise_1x1 = (set(self.kernel_size) | set(self.strides) |
                         set(self.dilation_rate)) == {1}
        return not (
            pointwise_1x1 and self._groups(channels) == 1 and
            self._pointwise_kernel() is None and self.data_format == "channels_last")

    def _native_chain(self, shape, kernel, bias, pointwise=-1):
        """The engine's convolution node (channels_first's input moved to channels_last
        before it: each sample's (channels, positions) to (positions, channels)), its groups
        as a last attribute when more than one; a separable convolution's pointwise Dense
        (kernel `pointwise`) after it, with the bias."""
        spatial, channels = _split(shape, self.data_format)
        sizes = self._sizes(spatial)
        positions = math.prod(n for n, _ in sizes)
        first = self._window_outputs(channels)
        groups = self._groups(channels)
        chain = []
        if self.data_format == "channels_first":
            moved = np.arange(math.prod(shape)).reshape(channels, -1).T
            chain.append(index_map_spec(moved, channels))
        iattrs = [self.rank, *spatial, channels, *self.kernel_size, *self.strides,
                  *self.dilation_rate, *(lo for _, lo in sizes), *(n for n, _ in sizes), first]
        if groups > 1:
            iattrs.append(groups)
        chain.append(node_spec(_CONV, positions * first, first,
                               params=[kernel, bias if pointwise < 0 else -1], iattrs=iattrs))
        if pointwise >= 0:
            filters = self._out_channels(channels)
            chain.append(node_spec(_DENSE, positions * filters, filters,
                                   params=[pointwise, bias]))
        return chain

    def _sizes(self, spatial):
        return output_sizes(spatial, self.kernel_size, self.strides, self.dilation_rate,
                            self.padding)

    def compute_output_shape(self, input_shape):
        spatial, channels = _split(tuple(input_shape[1:]), self.data_format)
        sizes = self._sizes(spatial)
        if any(n is not None and n <= 0 for n, _ in sizes):
            raise ValueError(
                "Computed output size would be zero or negative. Received: "
                f"inputs shape={tuple(input_shape)}, kernel_size={self.kernel_size}, "
                f"dilation_rate={self.dilation_rate}, strides={self.strides}, "
                f"padding={self.padding}")
        return _join(input_shape[0], [n for n, _ in sizes], self._out_channels(channels),
                     self.data_format)

    def _engine_subgraph(self, node, param_index):
        """The engine's convolution node (_native_chain), or for a pointwise Conv1D/2D/3D of
        one group on channels_last inputs the engine's Dense over each position's channels; a
        separable convolution's pointwise Dense follows; channels_first moves (positions,
        filters) to (filters, positions); the activation is fused into a last Dense or
        convolution of channels_last outputs (a softmax over their last axis too), else a node
        of its own."""
        shape = tuple(int(d) for d in node.inputs[0].shape[1:])
        _, channels = _split(shape, self.data_format)
        filters = self._out_channels(channels)
        positions = math.prod(node.outputs[0].shape[1:]) // filters
        kernel = param_index[id(self.kernel)]
        bias = param_index[id(self.bias)] if self.use_bias else -1
        pointwise = self._pointwise_kernel()
        if self._native(channels):
            chain = self._native_chain(shape, kernel, bias, -1 if pointwise is None else
                                       param_index[id(pointwise)])
        else:
            chain = [node_spec(_DENSE, positions * filters, filters, params=[kernel, bias])]
        return _chained(self._tail(node, chain, positions, filters))

    def _tail(self, node, chain, positions, filters):
        """The chain's end: channels_first's move of (positions, filters) to (filters,
        positions), the activation (fused into a last Dense where it can be) and the activity
        penalty on the last node."""
        if self.data_format == "channels_first":
            moved = np.arange(positions * filters).reshape(positions, filters).T
            chain.append(index_map_spec(moved, node.outputs[0].shape[-1]))
        act = None if activations.is_traced(self.activation) else self.activation
        axis = activations.softmax_axis(act) if act is not None else None
        out_rank = len(node.outputs[0].shape)
        if act is not None and chain and chain[-1][0] in (_DENSE, _CONV) and \
                self.data_format == "channels_last" and \
                (axis is None or axis % out_rank == out_rank - 1):
            op, width, last, _, _, params, fattrs, iattrs, _ = chain[-1]
            chain[-1] = node_spec(op, width, last, activations.engine_spec(act), params,
                                  fattrs, iattrs)
        elif act is not None and act is not activations.linear:
            chain.append(engine_node(_ACTIVATION, node, activation=act))
        activity = regularizers.coefficients(self.activity_regularizer)
        chain[-1] = (*chain[-1][:8], tuple(float(a) for a in activity))
        return chain

    def _symbolic_call(self, inputs, flat):
        out = super()._symbolic_call(inputs, flat)
        if activations.is_traced(self.activation):  # a Python activation after the layer
            return activations.apply_traced(self.activation, out, self.name)
        return out

    def _window_config(self):
        config = super().get_config()
        config.update({
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": "linear" if activations.is_traced(self.activation)
            else activations.serialize(self.activation),
            "use_bias": self.use_bias,
        })
        config.setdefault("activity_regularizer", None)  # (Keras's convolutions write it)
        return config


def _weight_args(layer, prefix, initializer, regularizer, constraint):
    setattr(layer, f"{prefix}_initializer", initializers.get(initializer))
    setattr(layer, f"{prefix}_regularizer", regularizers.get(regularizer))
    setattr(layer, f"{prefix}_constraint", constraints.get(constraint))


def _weight_config(layer, *prefixes):
    config = {}
    for kind, module in (("initializer", initializers), ("regularizer", regularizers),
                         ("constraint", constraints)):
        for prefix in prefixes:
            config[f"{prefix}_{kind}"] = module.serialize(getattr(layer, f"{prefix}_{kind}"))
    return config


class BaseConv(_WindowedConv):
    """Keras's convolution of `rank` spatial axes: activation(conv(x, kernel) + bias), kernel
    (*kernel_size, channels / groups, filters), bias (filters,)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = _positive_int(filters, "filters")
        self.groups = _positive_int(groups, "groups")
        if self.filters % self.groups:
            raise ValueError("The number of filters must be evenly divisible by the number "
                             f"of groups. Received: groups={groups}, filters={filters}")
        self._window_args(kernel_size, strides, padding, data_format, dilation_rate,
                          activation, use_bias)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with "
                             f"`dilation_rate > 1`. Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        set_kernel_bias_args(self, kernel_initializer, bias_initializer, kernel_regularizer,
                             bias_regularizer, kernel_constraint, bias_constraint)
        self.kernel = None
        self.bias = None

    def _out_channels(self, channels):
        return self.filters

    def _groups(self, channels):
        return self.groups

    def build(self, input_shape):
        _, channels = _split(tuple(input_shape[1:]), self.data_format)
        if channels % self.groups:
            raise ValueError(
                "The number of input channels must be evenly divisible by the number of "
                f"groups. Received groups={self.groups}, but the input has {channels} "
                f"channels (full input shape is {tuple(input_shape)}). "
                f"Received: input_shape={tuple(input_shape)}")
        self.compute_output_shape(input_shape)
        self._check_sizes(input_shape)
        self._in_channels = int(channels)
        self.kernel = self.add_weight(
            (*self.kernel_size, int(channels) // self.groups, self.filters),
            self.kernel_initializer, name="kernel", regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    def get_config(self):
        config = self._window_config()
        config.update({"filters": self.filters, "groups": self.groups,
                       **kernel_bias_config(self)})
        return config


class Conv1D(BaseConv):
    """Keras's Conv1D over (batch, steps, channels) (channels_first: (batch, channels,
    steps)); padding 'causal' pads dilation_rate·(kernel_size - 1) zeros before the steps.
    kernel_size=1 (strides 1, channels_last), the pointwise convolution, is one Dense."""

    rank, _causal = 1, True


class Conv2D(BaseConv):
    """Keras's Conv2D over (batch, rows, cols, channels) (channels_first: (batch, channels,
    rows, cols))."""

    rank = 2


class Conv3D(BaseConv):
    """Keras's Conv3D over (batch, depth, rows, cols, channels) (channels_first: channels
    second)."""

    rank = 3


class BaseDepthwiseConv(_WindowedConv):
    """Keras's depthwise convolution: each input channel convolved with its own
    depth_multiplier kernels, kernel (*kernel_size, channels, depth_multiplier), output
    channel c·depth_multiplier + m; bias (channels·depth_multiplier,)."""

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.depth_multiplier = _positive_int(depth_multiplier, "depth_multiplier")
        self._window_args(kernel_size, strides, padding, data_format, dilation_rate,
                          activation, use_bias)
        _weight_args(self, "depthwise", depthwise_initializer, depthwise_regularizer,
                     depthwise_constraint)
        _weight_args(self, "bias", bias_initializer, bias_regularizer, bias_constraint)
        self.kernel = None
        self.bias = None

    def _out_channels(self, channels):
        return channels * self.depth_multiplier

    def _groups(self, channels):
        return channels

    def build(self, input_shape):
        _, channels = _split(tuple(input_shape[1:]), self.data_format)
        self.compute_output_shape(input_shape)
        self._check_sizes(input_shape)
        self._in_channels = int(channels)
        self.kernel = self.add_weight((*self.kernel_size, int(channels), self.depth_multiplier),
                                      self.depthwise_initializer, name="kernel",
                                      regularizer=self.depthwise_regularizer,
                                      constraint=self.depthwise_constraint)
        if self.use_bias:
            self.bias = self.add_weight((int(channels) * self.depth_multiplier,),
                                        self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    def get_config(self):
        config = self._window_config()
        config.update({"depth_multiplier": self.depth_multiplier,
                       **_weight_config(self, "depthwise", "bias")})
        return config


class DepthwiseConv1D(BaseDepthwiseConv):
    rank = 1


class DepthwiseConv2D(BaseDepthwiseConv):
    rank = 2


class BaseSeparableConv(_WindowedConv):
    """Keras's separable convolution: a depthwise convolution (depthwise_kernel, no bias)
    then a pointwise one (pointwise_kernel (1..., channels·depth_multiplier, filters)), bias
    (filters,)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = _positive_int(filters, "filters")
        self.depth_multiplier = _positive_int(depth_multiplier, "depth_multiplier")
        self._window_args(kernel_size, strides, padding, data_format, dilation_rate,
                          activation, use_bias)
        _weight_args(self, "depthwise", depthwise_initializer, depthwise_regularizer,
                     depthwise_constraint)
        _weight_args(self, "pointwise", pointwise_initializer, pointwise_regularizer,
                     pointwise_constraint)
        _weight_args(self, "bias", bias_initializer, bias_regularizer, bias_constraint)
        self.kernel = self.depthwise_kernel = self.pointwise_kernel = self.bias = None

    def _out_channels(self, channels):
        return self.filters

    def _window_outputs(self, channels):
        return channels * self.depth_multiplier

    def _groups(self, channels):
        return channels

    def _pointwise_kernel(self):
        return self.pointwise_kernel

    def build(self, input_shape):
        _, channels = _split(tuple(input_shape[1:]), self.data_format)
        self.compute_output_shape(input_shape)
        self._check_sizes(input_shape)
        self._in_channels = channels = int(channels)
        self.depthwise_kernel = self.add_weight(
            (*self.kernel_size, channels, self.depth_multiplier), self.depthwise_initializer,
            name="depthwise_kernel", regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint)
        self.kernel = self.depthwise_kernel  # (the windows' kernel, see _engine_subgraph)
        self.pointwise_kernel = self.add_weight(
            (1,) * self.rank + (channels * self.depth_multiplier, self.filters),
            self.pointwise_initializer, name="pointwise_kernel",
            regularizer=self.pointwise_regularizer, constraint=self.pointwise_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    def get_config(self):
        config = self._window_config()
        config.update({"depth_multiplier": self.depth_multiplier, "filters": self.filters,
                       **_weight_config(self, "depthwise", "pointwise", "bias")})
        return config


class SeparableConv1D(BaseSeparableConv):
    rank = 1


class SeparableConv2D(BaseSeparableConv):
    rank = 2


class BaseConvTranspose(_WindowedConv):
    """Keras's transposed convolution: the gradient of a convolution with respect to its
    input, kernel (*kernel_size, filters, channels), bias (filters,); output sizes as Keras's
    JAX backend (output_padding, when given, adds that many positions at the end). The
    engine's convolution node, transposed (see _engine_subgraph)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = _positive_int(filters, "filters")
        self._window_args(kernel_size, strides, padding, data_format, dilation_rate,
                          activation, use_bias)
        self.output_padding = None if output_padding is None else standardize_tuple(
            output_padding, self.rank, "output_padding", allow_zero=True)
        for i, (extra, s) in enumerate(zip(self.output_padding or (), self.strides)):
            if extra >= s:
                raise ValueError(
                    "`output_padding` must be strictly less than `strides` for all "
                    f"dimensions. At dimension {i}, `output_padding` is {extra} but `strides` "
                    f"is {s}. Received: output_padding={self.output_padding}, "
                    f"strides={self.strides}")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with "
                             f"`dilation_rate > 1`. Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        set_kernel_bias_args(self, kernel_initializer, bias_initializer, kernel_regularizer,
                             bias_regularizer, kernel_constraint, bias_constraint)
        self.kernel = None
        self.bias = None

    def _out_channels(self, channels):
        return self.filters

    def _sizes(self, spatial):
        """Each axis's (output size, padding before the dilated input), as Keras's JAX
        backend pads it."""
        sizes = []
        extras = self.output_padding or (None,) * self.rank
        for n, k, s, d, extra in zip(spatial, self.kernel_size, self.strides,
                                     self.dilation_rate, extras):
            span = (k - 1) * d + 1
            if self.padding == "valid":
                left = span - 1
                right = span - 1 + (max(span, s) - span if extra is None else extra)
            else:
                total = s + span - 2 if extra is None else span + span % 2 - 2 + extra
                left = min(total // 2 + total % 2, span - 1)
                right = total - left
            sizes.append(((n - 1) * s + 1 + left + right - span + 1, left))
        return sizes

    def build(self, input_shape):
        _, channels = _split(tuple(input_shape[1:]), self.data_format)
        self.compute_output_shape(input_shape)
        self._check_sizes(input_shape)
        self._in_channels = int(channels)
        self.kernel = self.add_weight((*self.kernel_size, self.filters, int(channels)),
                                      self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    def _native(self, channels):
        return True

    def _engine_subgraph(self, node, param_index):
        """The engine's convolution node, transposed: the convolution from the output
        (filters channels) to the input (channels) whose input gradient this layer is, its
        padding before (kernel span - 1) - this layer's, Keras's kernel (*kernel_size,
        filters, channels) its (k..., cin, filters) as it is; channels_first moved to
        channels_last and back, the activation fused (see _tail)."""
        shape = tuple(int(d) for d in node.inputs[0].shape[1:])
        spatial, channels = _split(shape, self.data_format)
        sizes = self._sizes(spatial)
        positions = math.prod(n for n, _ in sizes)
        chain = []
        if self.data_format == "channels_first":
            moved = np.arange(math.prod(shape)).reshape(channels, -1).T
            chain.append(index_map_spec(moved, channels))
        pads = [(k - 1) * d - lo for k, d, (_, lo) in zip(self.kernel_size, self.dilation_rate,
                                                           sizes)]
        iattrs = [self.rank, *(n for n, _ in sizes), self.filters, *self.kernel_size,
                  *self.strides, *self.dilation_rate, *pads, *spatial, channels, 1, 1]
        bias = param_index[id(self.bias)] if self.use_bias else -1
        chain.append(node_spec(_CONV, positions * self.filters, self.filters,
                               params=[param_index[id(self.kernel)], bias], iattrs=iattrs))
        return _chained(self._tail(node, chain, positions, self.filters))

    def get_config(self):
        config = self._window_config()
        config.update({"filters": self.filters, "output_padding": self.output_padding,
                       **kernel_bias_config(self)})
        return config


class Conv1DTranspose(BaseConvTranspose):
    rank = 1


class Conv2DTranspose(BaseConvTranspose):
    rank = 2


class Conv3DTranspose(BaseConvTranspose):
    rank = 3


# Keras's aliases
Convolution1D = Conv1D
Convolution2D = Conv2D
Convolution3D = Conv3D
Convolution1DTranspose = Conv1DTranspose
Convolution2DTranspose = Conv2DTranspose
Convolution3DTranspose = Conv3DTranspose
SeparableConvolution1D = SeparableConv1D
SeparableConvolution2D = SeparableConv2D
