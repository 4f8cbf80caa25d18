"""Keras's image preprocessing layers. Resizing and CenterCrop are fixed linear maps of each
image, run as sums of index maps each scaled by a constant per position (Keras's JAX resize:
per axis, a matrix of kernel weights at half-pixel centres). RandomFlip, RandomBrightness and
RandomContrast draw one value a sample from the engine's noise nodes in training and are the
identity outside it. RandomRotation, RandomZoom, RandomTranslation and RandomCrop compute
Keras's formulas on arrays (layer(images, training=True)); in a model they are the identity
for predict and evaluate, and fit refuses them."""

import math

import numpy as np

from densitron.layers.convolutional import index_map_spec, standardize_data_format
from densitron.layers.layer import Layer, node_spec, shape_width
from densitron.layers.regularization import _seed

_ADD, _SUBTRACT, _DROPOUT, _NOISE, _RESHAPE, _POOL = 3, 5, 10, 11, 14, 16
_STANDARDIZE, _INDEX_MAP, _MATH, _ROW_BROADCAST, _MODE_SELECT = 17, 20, 25, 28, 31
_SQUARE, _EXP, _CLIP, _MULTIPLY_BY, _PLUS = 0, 4, 6, 21, 22  # (MathOp)
RESIZE_INTERPOLATIONS = ("bilinear", "nearest", "lanczos3", "lanczos5", "bicubic")


# --- engine subgraphs --------------------------------------------------------------------

class _Subgraph:
    """_engine_subgraph's items: nodes reading the layer's input ("in") or earlier nodes."""

    def __init__(self):
        self.items = []

    def add(self, spec, *sources):
        refs = [("in", 0) if s == "in" else ("node", s) for s in sources]
        self.items.append((refs, spec))
        return len(self.items) - 1

    def math(self, source, width, op, a=0.0, b=0.0):
        return self.add(node_spec(_MATH, width, width, fattrs=[a, b], iattrs=[op]), source)

    def per_sample_uniform(self, seed):
        """One value a sample, uniform on (0, 1] in training: exp(-(n1² + n2²)/2) of two
        independent standard normal draws (n1² + n2² is exponential of mean 2)."""
        zeros = self.add(index_map_spec(np.array([-1]), 1), "in")
        squares = []
        for k in range(2):
            noise = self.add(node_spec(_NOISE, 1, 1, fattrs=[1.0],
                                       iattrs=[_derived_seed(seed, k)]), zeros)
            squares.append(self.math(noise, 1, _SQUARE))
        total = self.add(node_spec(_ADD, 1, 1), *squares)
        return self.math(self.math(total, 1, _MULTIPLY_BY, -0.5), 1, _EXP)

    def per_sample_bernoulli(self, seed):
        """One value a sample in training: 1 with probability 1/2, else 0 (Dropout(0.5) of a
        one: 2 or 0, halved)."""
        zeros = self.add(index_map_spec(np.array([-1]), 1), "in")
        ones = self.math(zeros, 1, _PLUS, 1.0)
        kept = self.add(node_spec(_DROPOUT, 1, 1, fattrs=[0.5], iattrs=[seed]), ones)
        return self.math(kept, 1, _MULTIPLY_BY, 0.5)

    def scaled(self, source, value, width, op):
        """A per-sample value (node `value`, width 1) combined with every value of `source`:
        op 0 adds it, 3 multiplies by it."""
        return self.add(node_spec(_ROW_BROADCAST, width, width, iattrs=[op]), source, value)

    def in_training(self, trained, width, last):
        """`trained` in training, the layer's input outside it."""
        return self.add(node_spec(_MODE_SELECT, width, last), trained, "in")


def _derived_seed(seed, k):
    """An independent stream's seed from a layer's seed (splitmix64's constants)."""
    z = (seed + (k + 1) * 0x9E3779B97F4A7C15) % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return int((z ^ (z >> 31)) % 2**62)


# --- Keras's JAX resize as per-axis weight matrices -----------------------------------------

def _kernel(interpolation, x):
    if interpolation == "bilinear":
        return np.maximum(np.float32(0), np.float32(1) - np.abs(x))
    if interpolation == "bicubic":  # Keys's cubic, a = -0.5 (jax.image's "cubic")
        out = ((np.float32(1.5) * x - np.float32(2.5)) * x) * x + np.float32(1)
        out = np.where(x >= 1, ((np.float32(-0.5) * x + np.float32(2.5)) * x - np.float32(4))
                       * x + np.float32(2), out)
        return np.where(x >= 2, np.float32(0), out).astype(np.float32)
    radius = np.float32(3 if interpolation == "lanczos3" else 5)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = radius * np.sin(np.float32(np.pi) * x) * np.sin(np.float32(np.pi) * x / radius)
        out = np.where(x > np.float32(1e-3),
                       y / np.where(x != 0, np.float32(np.pi ** 2) * x * x, np.float32(1)),
                       np.float32(1))
    return np.where(x > radius, np.float32(0), out).astype(np.float32)


def resize_matrix(in_size, out_size, interpolation, antialias):
    """(in_size, out_size) float32 weights of one axis of Keras's resize (jax.image.resize,
    computed in float32 as it computes them): output i reads input j with weight [j, i]."""
    if in_size == out_size:
        return np.eye(in_size, dtype=np.float32)
    if interpolation == "nearest":
        offsets = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * \
            np.float32(in_size) / np.float32(out_size)
        matrix = np.zeros((in_size, out_size), np.float32)
        matrix[np.floor(offsets).astype(np.int64), np.arange(out_size)] = 1
        return matrix
    inv_scale = np.float32(1) / np.float32(out_size / in_size)
    kernel_scale = max(inv_scale, np.float32(1)) if antialias else np.float32(1)
    sample = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * inv_scale - \
        np.float32(0.5)
    x = np.abs(sample[None, :] - np.arange(in_size, dtype=np.float32)[:, None]) / kernel_scale
    weights = _kernel(interpolation, x.astype(np.float32))
    total = weights.sum(axis=0, keepdims=True, dtype=np.float32)
    weights = np.where(np.abs(total) > 1000 * np.finfo(np.float32).eps,
                       weights / np.where(total != 0, total, 1), 0).astype(np.float32)
    inside = (sample >= -0.5) & (sample <= in_size - 0.5)
    return np.where(inside[None, :], weights, 0).astype(np.float32)


def _aspect_crop(height, width, target_height, target_width):
    """Keras's crop_to_aspect_ratio box: (top, crop height, left, crop width)."""
    crop_height = max(min(height, int(float(width * target_height) / target_width)), 1)
    crop_width = max(min(width, int(float(height * target_width) / target_height)), 1)
    return (int(float(height - crop_height) / 2), crop_height,
            int(float(width - crop_width) / 2), crop_width)


def _aspect_pad(height, width, target_height, target_width):
    """Keras's pad_to_aspect_ratio: (rows, columns) of fill added at each side (one of them
    0: the rows when there are any)."""
    pad_height = max(height, int(float(width * target_height) / target_width))
    pad_width = max(width, int(float(height * target_width) / target_height))
    top = int(float(pad_height - height) / 2)
    left = int(float(pad_width - width) / 2)
    return (top, 0) if top > 0 else (0, left)


def _axis_map(size, target, interpolation, antialias, start=0, length=None, pad=0):
    """One axis of Resizing: (M, s) with M (size, target) the weights of the input's values
    (a crop [start, start + length) or the whole axis with `pad` fill values at each side),
    and s (target,) the weights of the fill values."""
    length = size if length is None else length
    full = resize_matrix(length + 2 * pad, target, interpolation, antialias)
    matrix = np.zeros((size, target), np.float32)
    matrix[start:start + length] = full[pad:pad + length]
    fill = full.sum(axis=0, dtype=np.float64) - full[pad:pad + length].sum(axis=0,
                                                                            dtype=np.float64)
    return matrix, fill


def _taps(matrix):
    """The nonzero weights of each output's column: (index, weight) arrays (taps, out), -1
    and 0 where an output has fewer taps than the most."""
    counts = (matrix != 0).sum(axis=0)
    taps = max(int(counts.max()), 1) if matrix.size else 1
    index = np.full((taps, matrix.shape[1]), -1, np.int64)
    weight = np.zeros((taps, matrix.shape[1]), np.float64)
    for o in range(matrix.shape[1]):
        rows = np.flatnonzero(matrix[:, o])
        index[:len(rows), o] = rows
        weight[:len(rows), o] = matrix[rows, o]
    return index, weight


def _take(positions, index, axis):
    """positions with `axis` picked by index (-1: no value, -1 in the result)."""
    picked = np.take(positions, np.maximum(index, 0), axis=axis)
    shape = [1] * positions.ndim
    shape[axis] = len(index)
    return np.where(index.reshape(shape) < 0, -1, picked)


def separable_subgraph(sample_shape, matrices, constant=None):
    """The engine's nodes of out = Σ M_h[h, i]·M_w[w, j]·x[h, w] (+ constant): `matrices`
    {axis of the sample shape: (in, out) weights}, one stage of index maps scaled per position
    and added a weighted axis; pure selections fold into the next stage's index maps."""
    sub = _Subgraph()
    source = "in"
    shape = list(sample_shape)
    positions = np.arange(math.prod(shape)).reshape(shape)  # source's values, by position
    for axis, matrix in matrices.items():
        index, weight = _taps(matrix)
        shape[axis] = matrix.shape[1]
        wshape = [1] * len(shape)
        wshape[axis] = matrix.shape[1]
        picked = [_take(positions, index[t], axis) for t in range(len(index))]
        if len(index) == 1 and np.all((weight[0] == 1) | (index[0] < 0)):
            positions = picked[0]  # (a selection: folded into the next index map)
            continue
        width, last = math.prod(shape), shape[-1]
        terms = []
        for t in range(len(index)):
            node = sub.add(index_map_spec(picked[t], last), source)
            scale = np.broadcast_to(weight[t].reshape(wshape), shape).ravel()
            if not np.all((scale == 1) | (picked[t].ravel() < 0)):
                node = sub.add(node_spec(_STANDARDIZE, width, width,  # (a scale a value)
                                         fattrs=[*np.zeros(width).tolist(), *scale.tolist()],
                                         iattrs=[1, width]), node)
            terms.append(node)
        source = terms[0] if len(terms) == 1 else sub.add(node_spec(_ADD, width, last), *terms)
        positions = np.arange(width).reshape(shape)
    width, last = math.prod(shape), shape[-1]
    if source == "in" or not np.array_equal(positions.ravel(), np.arange(width)):
        if source == "in" and np.array_equal(positions.ravel(), np.arange(width)):
            source = sub.add(node_spec(_RESHAPE, width, last), "in")
        else:
            source = sub.add(index_map_spec(positions, last), source)
    if constant is not None and np.any(constant != 0):
        values = np.broadcast_to(constant, shape).ravel()
        source = sub.add(node_spec(_STANDARDIZE, width, width,
                                   fattrs=[*values.tolist(), *np.ones(width).tolist()],
                                   iattrs=[1, width]), source)
    return sub.items, [source]


# --- shared checks -------------------------------------------------------------------------

def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _check_images(layer, input_shape):
    layer._check_single(input_shape)
    if len(input_shape) != 4:
        raise ValueError(f"Layer \"{layer.name}\" ({type(layer).__name__}) takes batches of "
                         "images of rank 4, (batch, height, width, channels) or (batch, "
                         "channels, height, width). Received: "
                         f"input_shape={tuple(input_shape)}")
    if any(d is None for d in input_shape[1:]):
        raise ValueError(f"Layer \"{layer.name}\" needs images of fixed sizes (densitron lays "
                         "its maps out once). Received: "
                         f"input_shape={tuple(input_shape)}")


class _ImageLayer(Layer):
    """Keras's image preprocessing layers' shared part: data_format, the image axes, and calls
    on one image (rank 3) as on a batch of one."""

    _mask_rule = "refuse"

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)

    def _hw_axes(self):
        """The height and width axes of a sample (no batch axis)."""
        return (0, 1) if self.data_format == "channels_last" else (1, 2)

    def _hw(self, shape):
        h, w = self._hw_axes()
        return shape[1 + h], shape[1 + w]

    def _check_inputs(self, input_shape):
        _check_images(self, input_shape)

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, np.ndarray) or (hasattr(inputs, "__array__") and
                                              not hasattr(inputs, "_node")):
            images = np.asarray(inputs)
            if images.ndim == 3:  # one image (Keras's unbatched call)
                return self.__call__(images[None], *args, **kwargs)[0]
            if images.ndim != 4:
                raise ValueError("Expected image tensor to have rank 3 (single image) or 4 "
                                 f"(batch of images). Received: data.shape={images.shape}")
        return super().__call__(inputs, *args, **kwargs)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


# --- Resizing and CenterCrop -------------------------------------------------------------

class Resizing(_ImageLayer):
    """Keras's Resizing: images resized to (height, width) as Keras on JAX resizes them
    (jax.image.resize: half-pixel centres, kernel weights normalized over the image, widened
    when downscaling with antialias), after a crop or a pad to the target's aspect ratio when
    asked. Integer arrays come back rounded in their dtype, as Keras's."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0,
                 antialias=False, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height = _positive_int(height, "height")
        self.width = _positive_int(width, "width")
        if interpolation not in RESIZE_INTERPOLATIONS:
            raise ValueError("Invalid value for argument `interpolation`. Expected of one "
                             f"{RESIZE_INTERPOLATIONS}. Received: interpolation={interpolation}")
        if fill_mode != "constant":
            raise ValueError("Invalid value for argument `fill_mode`. Only `'constant'` is "
                             f"supported. Received: fill_mode={fill_mode}")
        if pad_to_aspect_ratio and crop_to_aspect_ratio:
            raise ValueError("Only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio` can "
                             f"be `True`. Received: pad_to_aspect_ratio={pad_to_aspect_ratio}, "
                             f"crop_to_aspect_ratio={crop_to_aspect_ratio}")
        if isinstance(fill_value, bool) or not isinstance(fill_value, (int, float, np.number)):
            raise ValueError(f"`fill_value` must be a number. Received: fill_value={fill_value!r}")
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = fill_mode
        self.fill_value = float(fill_value)
        self.antialias = bool(antialias)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        h, w = self._hw_axes()
        shape[1 + h], shape[1 + w] = self.height, self.width
        return tuple(shape)

    def _maps(self, sample_shape):
        """{sample axis: (in, out) weights} and the fill values' constant image."""
        h_axis, w_axis = self._hw_axes()
        height, width = sample_shape[h_axis], sample_shape[w_axis]
        args = (self.interpolation, self.antialias)
        if self.crop_to_aspect_ratio:
            top, ch, left, cw = _aspect_crop(height, width, self.height, self.width)
            mh, fh = _axis_map(height, self.height, *args, start=top, length=ch)
            mw, fw = _axis_map(width, self.width, *args, start=left, length=cw)
        elif self.pad_to_aspect_ratio:
            ph, pw = _aspect_pad(height, width, self.height, self.width)
            mh, fh = _axis_map(height, self.height, *args, pad=ph)
            mw, fw = _axis_map(width, self.width, *args, pad=pw)
        else:
            mh, fh = _axis_map(height, self.height, *args)
            mw, fw = _axis_map(width, self.width, *args)
        constant = None
        if self.pad_to_aspect_ratio and self.fill_value != 0:
            sh = mh.sum(axis=0, dtype=np.float64) + fh
            sw = mw.sum(axis=0, dtype=np.float64) + fw
            rh, rw = sh - fh, sw - fw
            plane = self.fill_value * (np.outer(sh, sw) - np.outer(rh, rw))
            constant = plane[:, :, None] if h_axis == 0 else plane[None]
        return {h_axis: mh, w_axis: mw}, constant

    def _engine_subgraph(self, node, param_index):
        sample = tuple(node.inputs[0].shape[1:])
        matrices, constant = self._maps(sample)
        return separable_subgraph(sample, matrices, constant)

    def __call__(self, inputs, *args, **kwargs):
        out = super().__call__(inputs, *args, **kwargs)
        dtype = getattr(inputs, "dtype", None)
        if isinstance(out, np.ndarray) and dtype is not None and np.dtype(dtype).kind in "iub":
            info = np.iinfo(dtype) if np.dtype(dtype).kind != "b" else None
            out = np.round(out)
            if info is not None:  # (Keras's saturating cast)
                out = np.clip(out, info.min, info.max)
            return out.astype(dtype)
        return out

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": self.antialias}


class CenterCrop(_ImageLayer):
    """Keras's CenterCrop: the central (height, width) window (its start (size - target) // 2);
    an image smaller than the target on either axis is cropped to the target's aspect ratio
    and resized bilinearly instead (Keras's smart_resize)."""

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height = _positive_int(height, "height")
        self.width = _positive_int(width, "width")

    compute_output_shape = Resizing.compute_output_shape

    def _maps(self, sample_shape):
        h_axis, w_axis = self._hw_axes()
        height, width = sample_shape[h_axis], sample_shape[w_axis]
        if height >= self.height and width >= self.width:
            mh = np.zeros((height, self.height), np.float32)
            top = (height - self.height) // 2
            mh[np.arange(top, top + self.height), np.arange(self.height)] = 1
            mw = np.zeros((width, self.width), np.float32)
            left = (width - self.width) // 2
            mw[np.arange(left, left + self.width), np.arange(self.width)] = 1
        else:
            top, ch, left, cw = _aspect_crop(height, width, self.height, self.width)
            mh, _ = _axis_map(height, self.height, "bilinear", False, start=top, length=ch)
            mw, _ = _axis_map(width, self.width, "bilinear", False, start=left, length=cw)
        return {h_axis: mh, w_axis: mw}, None

    _engine_subgraph = Resizing._engine_subgraph

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}
