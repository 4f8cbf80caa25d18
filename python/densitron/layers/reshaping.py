"""Flatten and Reshape (the engine keeps the values and changes only the shape), and the layers
that pick values by a fixed map: Permute, RepeatVector, Cropping1D, ZeroPadding1D."""

import math

import numpy as np

from densitron.layers.layer import Layer, engine_node


class KeepsIntegerDtype:
    """A layer that only moves values: called on integer or bool arrays, its output has their
    dtype, as Keras's (the engine moves them as float32, exact below 2**24)."""

    def __call__(self, inputs, *args, **kwargs):
        out = super().__call__(inputs, *args, **kwargs)
        flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if isinstance(out, np.ndarray) and flat and all(
                isinstance(a, np.ndarray) and a.dtype.kind in "iub" for a in flat):
            return out.astype(np.result_type(*flat))
        return out


class Flatten(KeepsIntegerDtype, Layer):
    """Each sample's values as one axis; with data_format='channels_first' the channels axis
    moved last first, as Keras's (a sample (c, h, w) flattened in (h, w, c) order)."""

    def __init__(self, data_format=None, **kwargs):
        from densitron.layers.convolutional import standardize_data_format

        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)

    def _check_inputs(self, input_shape):
        if isinstance(input_shape, list):
            raise ValueError(f"Layer \"{self.name}\" expects a single input. "
                             f"Received: input_shape={input_shape}")

    def compute_output_shape(self, input_shape):
        if None in tuple(input_shape[1:]):  # (Keras's: a length the data gives)
            return (input_shape[0], None)
        return (input_shape[0], math.prod(input_shape[1:]))

    def _engine_node(self, node, param_index):
        in_shape = tuple(node.inputs[0].shape[1:])
        if self.data_format == "channels_first" and len(in_shape) > 1:
            moved = np.moveaxis(_positions(in_shape), 0, -1)
            return engine_node(20, node, iattrs=moved.ravel().tolist())
        return engine_node(14, node)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(KeepsIntegerDtype, Layer):
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
        if any(d is None for d in input_shape[1:]):  # (steps of any length: -1 is theirs)
            if -1 not in self.target_shape:
                raise ValueError(f"Cannot reshape inputs of an unknown size into "
                                 f"{self.target_shape} (a -1 takes the unknown size). "
                                 f"Received: input_shape={tuple(input_shape)}")
            return (input_shape[0], *(None if d == -1 else d for d in self.target_shape))
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


# --- layers that pick each sample's values by a fixed index map (engine op 20) --------------


def _pair(value, arg):
    """An int or a pair of non-negative ints, as Keras's cropping and padding arguments."""
    if isinstance(value, bool):
        raise TypeError(f"`{arg}` must be an int or a pair of ints. Received: {arg}={value!r}")
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"`{arg}` must be an int or a pair of ints. Received: {arg}={value!r}"
                        ) from None
    if a < 0 or b < 0:
        raise ValueError(f"`{arg}` must be non-negative. Received: {arg}={value!r}")
    return a, b


def _positions(in_shape):
    """Each value's flat index in a sample of `in_shape`, in that shape."""
    return np.arange(math.prod(in_shape)).reshape(in_shape)


class _IndexMap(KeepsIntegerDtype, Layer):
    """A layer whose output values are input values picked by a map (or zeros)."""

    def _check_inputs(self, input_shape):
        self._check_single(input_shape)
        self.compute_output_shape(input_shape)

    def _index_map(self, in_shape):
        raise NotImplementedError

    def _engine_node(self, node, param_index):
        in_shape = tuple(node.inputs[0].shape[1:])
        return engine_node(20, node, iattrs=self._index_map(in_shape).ravel().tolist())


class Permute(_IndexMap):
    """Permutes the non-batch axes: `dims` numbers them from 1, as Keras does."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        try:
            dims = tuple(int(d) for d in dims)
        except (TypeError, ValueError):
            raise TypeError(f"`dims` must be a tuple of axis numbers. Received: dims={dims!r}"
                            ) from None
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError("Invalid permutation argument `dims` for Permute Layer. The set of "
                             "indices in `dims` must be consecutive and start from 1. "
                             f"Received: dims={dims}")
        self.dims = dims

    def compute_output_shape(self, input_shape):
        if len(input_shape) - 1 != len(self.dims):
            raise ValueError(f"Permute's `dims` {self.dims} needs inputs of rank "
                             f"{len(self.dims) + 1}. Received: input_shape={input_shape}")
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def _index_map(self, in_shape):
        return _positions(in_shape).transpose([d - 1 for d in self.dims])

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


class RepeatVector(_IndexMap):
    """(batch, features) to (batch, n, features): the vector repeated n times."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"Expected an integer value for `n`. Received: n={n!r}")
        if n < 1:
            raise ValueError(f"Argument `n` should be a positive integer. Received: n={n}")
        self.n = int(n)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"RepeatVector takes inputs of rank 2 (batch, features). "
                             f"Received: input_shape={input_shape}")
        return (input_shape[0], self.n, input_shape[1])

    def _index_map(self, in_shape):
        return np.tile(np.arange(in_shape[0]), self.n)

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Cropping1D(_IndexMap):
    """(batch, steps, features): `cropping` steps removed at the start and the end."""

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = _pair(cropping, "cropping")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Cropping1D takes inputs of rank 3 (batch, steps, features). "
                             f"Received: input_shape={input_shape}")
        steps = input_shape[1] - sum(self.cropping)
        if steps < 1:
            raise ValueError(f"`cropping` {self.cropping} leaves no steps of {input_shape[1]}. "
                             f"Received: input_shape={input_shape}")
        return (input_shape[0], steps, input_shape[2])

    def _index_map(self, in_shape):
        a, b = self.cropping
        return _positions(in_shape)[a:in_shape[0] - b]

    def get_config(self):
        return {**super().get_config(), "cropping": list(self.cropping)}


class ZeroPadding1D(_IndexMap):
    """(batch, steps, features): `padding` steps of zeros added at the start and the end."""

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        _channels_last(data_format, "ZeroPadding1D")
        self.padding = _pair(padding, "padding")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"ZeroPadding1D takes inputs of rank 3 (batch, steps, features). "
                             f"Received: input_shape={input_shape}")
        return (input_shape[0], input_shape[1] + sum(self.padding), input_shape[2])

    def _index_map(self, in_shape):
        a, b = self.padding
        inner = _positions(in_shape)
        return np.pad(inner, ((a, b), (0, 0)), constant_values=-1)

    def get_config(self):
        return {**super().get_config(), "padding": list(self.padding),
                "data_format": "channels_last"}


def _pairs2d(value, arg):
    """Keras's 2-D cropping/padding argument: an int, (symmetric_h, symmetric_w) or
    ((top, bottom), (left, right))."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return _pair(value, arg), _pair(value, arg)
    try:
        h, w = value
    except (TypeError, ValueError):
        raise TypeError(f"`{arg}` must be an int, a pair of ints or a pair of pairs. "
                        f"Received: {arg}={value!r}") from None
    return _pair(h, arg), _pair(w, arg)


def _channels_last(data_format, name):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"densitron's {name} takes channels_last inputs. "
                         f"Received: data_format={data_format!r}")


class Cropping2D(_IndexMap):
    """(batch, rows, cols, channels): rows and columns removed at the edges."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        _channels_last(data_format, "Cropping2D")
        self.cropping = _pairs2d(cropping, "cropping")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError("Cropping2D takes inputs of rank 4 (batch, rows, cols, channels). "
                             f"Received: input_shape={input_shape}")
        rows = input_shape[1] - sum(self.cropping[0])
        cols = input_shape[2] - sum(self.cropping[1])
        if rows < 1 or cols < 1:
            raise ValueError(f"`cropping` {self.cropping} leaves nothing of {input_shape[1:3]}. "
                             f"Received: input_shape={input_shape}")
        return (input_shape[0], rows, cols, input_shape[3])

    def _index_map(self, in_shape):
        (t, b), (l, r) = self.cropping
        grid = _positions(in_shape)
        return grid[t:in_shape[0] - b, l:in_shape[1] - r]

    def get_config(self):
        return {**super().get_config(), "cropping": [list(p) for p in self.cropping],
                "data_format": "channels_last"}


class ZeroPadding2D(_IndexMap):
    """(batch, rows, cols, channels): rows and columns of zeros added at the edges."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        _channels_last(data_format, "ZeroPadding2D")
        self.padding = _pairs2d(padding, "padding")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError("ZeroPadding2D takes inputs of rank 4 (batch, rows, cols, "
                             f"channels). Received: input_shape={input_shape}")
        return (input_shape[0], input_shape[1] + sum(self.padding[0]),
                input_shape[2] + sum(self.padding[1]), input_shape[3])

    def _index_map(self, in_shape):
        grid = _positions(in_shape)
        return np.pad(grid, (*self.padding, (0, 0)), constant_values=-1)

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding],
                "data_format": "channels_last"}


def _size(value, arg, count):
    values = (value,) * count if isinstance(value, (int, np.integer)) else value
    try:
        values = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise TypeError(f"`{arg}` must be a positive int or {count} of them. "
                        f"Received: {arg}={value!r}") from None
    if len(values) != count or isinstance(value, bool) or min(values) < 1:
        raise ValueError(f"`{arg}` must be a positive int or {count} of them. "
                         f"Received: {arg}={value!r}")
    return values


class UpSampling1D(_IndexMap):
    """(batch, steps, features): each step repeated `size` times."""

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        (self.size,) = _size(size, "size", 1)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError("UpSampling1D takes inputs of rank 3 (batch, steps, features). "
                             f"Received: input_shape={input_shape}")
        return (input_shape[0], input_shape[1] * self.size, input_shape[2])

    def _index_map(self, in_shape):
        return np.repeat(_positions(in_shape), self.size, axis=0)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


class UpSampling2D(_IndexMap):
    """(batch, rows, cols, channels): each row and column repeated (nearest neighbour)."""

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        _channels_last(data_format, "UpSampling2D")
        if interpolation != "nearest":
            raise ValueError("densitron's UpSampling2D interpolates as 'nearest'. "
                             f"Received: interpolation={interpolation!r}")
        self.size = _size(size, "size", 2)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError("UpSampling2D takes inputs of rank 4 (batch, rows, cols, "
                             f"channels). Received: input_shape={input_shape}")
        return (input_shape[0], input_shape[1] * self.size[0], input_shape[2] * self.size[1],
                input_shape[3])

    def _index_map(self, in_shape):
        grid = _positions(in_shape)
        return np.repeat(np.repeat(grid, self.size[0], axis=0), self.size[1], axis=1)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "data_format": "channels_last",
                "interpolation": "nearest"}
