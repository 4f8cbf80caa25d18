"""Keras's image preprocessing layers. Resizing and CenterCrop are fixed linear maps of each
image, run as sums of index maps each scaled by a constant per position (Keras's JAX resize:
per axis, a matrix of kernel weights at half-pixel centres). RandomFlip, RandomBrightness and
RandomContrast draw one value a sample from the engine's noise nodes in training and are the
identity outside it (model(x) without `training` runs them as in training, Keras's default for
them, on a graph of the model whose noise draws in every mode), as are RandomTranslation and
RandomZoom (per axis, a batched matmul of the image's rows at every whole position the range
reaches by bilinear weights computed from the sample's drawn shift or zoom). RandomRotation, RandomZoom, RandomTranslation and
RandomCrop compute Keras's formulas in NumPy on arrays (layer(images, training=True)); in a
model RandomRotation is the identity for predict and evaluate, and fit refuses it (its source
pixels move along arcs: no separable sum); a model cannot hold RandomCrop."""

import math

import numpy as np

from densitron.layers.convolutional import index_map_spec, standardize_data_format
from densitron.layers.layer import Layer, node_spec, shape_width
from densitron.layers.regularization import _seed

_ADD, _SUBTRACT, _DROPOUT, _NOISE, _RESHAPE, _POOL = 3, 5, 10, 11, 14, 16
_STANDARDIZE, _INDEX_MAP, _MATH, _ROW_BROADCAST, _MODE_SELECT = 17, 20, 25, 28, 31
_BATCH_MATMUL = 32
_SQUARE, _ABS, _EXP, _CLIP, _LESS, _MULTIPLY_BY, _PLUS = 0, 1, 4, 6, 12, 21, 22  # (MathOp)
RESIZE_INTERPOLATIONS = ("bilinear", "nearest", "lanczos3", "lanczos5", "bicubic")


# --- engine subgraphs --------------------------------------------------------------------

# While set, the random layers' subgraphs draw in every mode and have no identity outside
# training: the engine graph of model(x) without `training`, where Keras's augmentation layers
# run their call's default, training=True, and the model's other layers infer.
_ALWAYS_AUGMENT = [False]


class always_augmenting:
    """A context in which the random layers' engine subgraphs augment in every mode."""

    def __enter__(self):
        _ALWAYS_AUGMENT.append(True)

    def __exit__(self, *exc):
        _ALWAYS_AUGMENT.pop()


class _Subgraph:
    """_engine_subgraph's items: nodes reading the layer's input ("in") or earlier nodes."""

    def __init__(self):
        self.items = []
        self.always = _ALWAYS_AUGMENT[-1]

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
        for k in range(2):  # (with `always`, the noise drawn in every mode)
            noise = self.add(node_spec(_NOISE, 1, 1, fattrs=[1.0],
                                       iattrs=[_derived_seed(seed, k), 0, 1] if self.always
                                       else [_derived_seed(seed, k)]), zeros)
            squares.append(self.math(noise, 1, _SQUARE))
        total = self.add(node_spec(_ADD, 1, 1), *squares)
        return self.math(self.math(total, 1, _MULTIPLY_BY, -0.5), 1, _EXP)

    def per_sample_bernoulli(self, seed):
        """One value a sample in training: 1 with probability 1/2, else 0 (Dropout(0.5) of a
        one: 2 or 0, halved)."""
        zeros = self.add(index_map_spec(np.array([-1]), 1), "in")
        if self.always:  # (a standard normal draw in every mode below 0: probability 1/2)
            noise = self.add(node_spec(_NOISE, 1, 1, fattrs=[1.0], iattrs=[seed, 0, 1]), zeros)
            return self.math(noise, 1, _LESS, 0.0)
        ones = self.math(zeros, 1, _PLUS, 1.0)
        kept = self.add(node_spec(_DROPOUT, 1, 1, fattrs=[0.5], iattrs=[seed]), ones)
        return self.math(kept, 1, _MULTIPLY_BY, 0.5)

    def scaled(self, source, value, width, op):
        """A per-sample value (node `value`, width 1) combined with every value of `source`:
        op 0 adds it, 3 multiplies by it."""
        return self.add(node_spec(_ROW_BROADCAST, width, width, iattrs=[op]), source, value)

    def in_training(self, trained, width, last):
        """`trained` in training, the layer's input outside it (`trained` always with
        `always`)."""
        if self.always:
            return trained
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
            raise TypeError(f"`fill_value` must be a number. Received: fill_value={fill_value!r}")
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


# --- random layers -----------------------------------------------------------------------

def _factor_pair(factor, name, bounds):
    """Keras's factor: a number f (the range (max(-f, low), f)) or a pair (sorted), within
    bounds."""
    message = (f"The `{name}` argument should be a number (or a list of two numbers) in the "
               f"range [{bounds[0]}, {bounds[1]}]. Received: {name}={factor}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(isinstance(f, (int, float)) and not isinstance(f, bool)
                                       for f in factor):
            raise ValueError(message)
        if factor[0] > bounds[1] or factor[1] < bounds[0]:
            raise ValueError(message)
        lower, upper = sorted(factor)
        return lower, upper
    if isinstance(factor, (int, float)) and not isinstance(factor, bool):
        if factor < bounds[0] or factor > bounds[1]:
            raise ValueError(message)
        factor = abs(factor)
        return max(-factor, bounds[0]), factor
    raise ValueError(message)


class _RandomImageLayer(_ImageLayer):
    """A random augmentation: active on arrays unless called with training=False (Keras's call
    defaults to training=True), in a model in fit and in model(x) without `training`; the
    identity in predict, evaluate and model(x, training=False)."""

    _identity_outside_training = True  # training=False in a call: the input as is

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self._engine_seed = _seed(seed)
        self.seed = seed

    def __call__(self, inputs, *args, **kwargs):
        arrays = not hasattr(inputs, "_node") and (isinstance(inputs, np.ndarray) or
                                                   hasattr(inputs, "__array__"))
        if arrays:  # (Keras's call defaults to training=True, None included)
            training = kwargs.get("training")
            kwargs["training"] = True if training is None else bool(training)
        return super().__call__(inputs, *args, **kwargs)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class RandomFlip(_RandomImageLayer):
    """Keras's RandomFlip: in training, each sample flipped with probability 1/2 (one draw a
    sample for both axes in "horizontal_and_vertical": flipped both ways or not at all)."""

    _MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in self._MODES:
            raise ValueError(f"RandomFlip layer {self.name} received an unknown mode argument "
                             f"{mode!r}. Expected one of {self._MODES}. Received: mode={mode!r}")
        self.mode = mode

    def _flip_map(self, sample_shape):
        positions = np.arange(math.prod(sample_shape)).reshape(sample_shape)
        h, w = self._hw_axes()
        if self.mode != "vertical":
            positions = np.flip(positions, axis=w)
        if self.mode != "horizontal":
            positions = np.flip(positions, axis=h)
        return positions

    def _engine_subgraph(self, node, param_index):
        sample = tuple(node.inputs[0].shape[1:])
        width, last = math.prod(sample), sample[-1]
        sub = _Subgraph()
        flip = sub.per_sample_bernoulli(self._engine_seed)
        keep = sub.math(sub.math(flip, 1, _MULTIPLY_BY, -1.0), 1, _PLUS, 1.0)
        flipped = sub.add(index_map_spec(self._flip_map(sample), last), "in")
        # b·flip(x) + (1 - b)·x, b in {0, 1}: each value exactly one of the two
        terms = [sub.scaled(flipped, flip, width, 3), sub.scaled("in", keep, width, 3)]
        mixed = sub.add(node_spec(_ADD, width, last), *terms)
        return sub.items, [sub.in_training(mixed, width, last)]

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _value_range(value_range):
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
        raise ValueError("The `value_range` argument should be a list of two numbers. "
                         f"Received: value_range={value_range}")
    return sorted(value_range)


class RandomBrightness(_RandomImageLayer):
    """Keras's RandomBrightness: in training, each sample plus delta·(high - low) of its
    value_range, delta uniform in the factor's range, then clipped to value_range."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _factor_pair(factor, "factor", (-1, 1))
        self.value_range = _value_range(value_range)

    def _engine_subgraph(self, node, param_index):
        sample = tuple(node.inputs[0].shape[1:])
        width, last = math.prod(sample), sample[-1]
        (lo, hi), (v0, v1) = self.factor, self.value_range
        sub = _Subgraph()
        u = sub.per_sample_uniform(self._engine_seed)
        delta = sub.math(sub.math(u, 1, _MULTIPLY_BY, hi - lo), 1, _PLUS, lo)
        delta = sub.math(delta, 1, _MULTIPLY_BY, v1 - v0)
        shifted = sub.scaled("in", delta, width, 0)
        clipped = sub.add(node_spec(_MATH, width, last, fattrs=[v0, v1], iattrs=[_CLIP]),
                          shifted)
        return sub.items, [sub.in_training(clipped, width, last)]

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor),
                "value_range": list(self.value_range)}


class RandomContrast(_RandomImageLayer):
    """Keras's RandomContrast: in training, each sample's channels (x - mean)·f + mean, the
    mean over the image's height and width, f uniform in [1 - lower, 1 + upper] (Keras's
    factor f gives (0, f)), then clipped to value_range."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _factor_pair(factor, "factor", (0, 1))
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
            raise ValueError("The `value_range` argument should be a list of two numbers. "
                             f"Received: value_range={value_range}")
        self.value_range = tuple(value_range)

    def _engine_subgraph(self, node, param_index):
        sample = tuple(node.inputs[0].shape[1:])
        width, last = math.prod(sample), sample[-1]
        height_width = self._hw(node.inputs[0].shape)
        pixels = height_width[0] * height_width[1]
        channels = width // pixels
        lower, upper = self.factor
        sub = _Subgraph()
        u = sub.per_sample_uniform(self._engine_seed)
        factor = sub.math(sub.math(u, 1, _MULTIPLY_BY, lower + upper), 1, _PLUS, 1.0 - lower)
        if self.data_format == "channels_last":
            pool = [1, pixels, channels, 0]
            channel_of = np.tile(np.arange(channels), pixels)
        else:
            pool = [channels, pixels, 1, 0]
            channel_of = np.repeat(np.arange(channels), pixels)
        mean = sub.add(node_spec(_POOL, channels, channels, iattrs=pool), "in")
        means = sub.add(index_map_spec(channel_of, last), mean)
        centred = sub.add(node_spec(_SUBTRACT, width, last), "in", means)
        scaled = sub.scaled(centred, factor, width, 3)
        moved = sub.add(node_spec(_ADD, width, last), scaled, means)
        clipped = sub.add(node_spec(_MATH, width, last, fattrs=list(self.value_range),
                                    iattrs=[_CLIP]), moved)
        return sub.items, [sub.in_training(clipped, width, last)]

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor),
                "value_range": list(self.value_range)}


# --- geometric random layers: NumPy on arrays ----------------------------------------------

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_AFFINE_INTERPOLATIONS = ("nearest", "bilinear")


def _fixed_index(index, size, fill_mode):
    """jax.scipy.ndimage.map_coordinates's index of each position out of [0, size)."""
    if fill_mode == "nearest":
        return np.clip(index, 0, size - 1)
    if fill_mode == "wrap":
        return np.mod(index, size)
    if fill_mode == "reflect":  # (d c b a | a b c d | d c b a)
        period = 2 * size
        folded = np.mod(index, period)
        return np.where(folded < size, folded, period - 1 - folded)
    return index


def affine_transform(images, transforms, interpolation, fill_mode, fill_value, data_format):
    """Keras's image.affine_transform on a batch (its JAX map_coordinates in NumPy): output
    pixel (y, x) of sample b reads the input at column a0·x + a1·y + a2, row b0·x + b1·y + b2
    (transforms (batch, 8): a0 a1 a2 b0 b1 b2 c0 c1, c0 = c1 = 0), bilinearly or at the
    nearest pixel (halves away from zero), out-of-image positions per fill_mode."""
    images = np.asarray(images, np.float32)
    if data_format == "channels_first":
        images = images.transpose(0, 2, 3, 1)
    batch, height, width, _ = images.shape
    t = np.asarray(transforms, np.float32)
    ys, xs = np.meshgrid(np.arange(height, dtype=np.float32),
                         np.arange(width, dtype=np.float32), indexing="ij")
    cols = t[:, 0, None, None] * xs + t[:, 1, None, None] * ys + t[:, 2, None, None]
    rows = t[:, 3, None, None] * xs + t[:, 4, None, None] * ys + t[:, 5, None, None]
    if interpolation == "nearest":
        row_taps = [(np.trunc(rows + np.copysign(np.float32(0.5), rows)), np.float32(1))]
        col_taps = [(np.trunc(cols + np.copysign(np.float32(0.5), cols)), np.float32(1))]
    else:
        r0, c0 = np.floor(rows), np.floor(cols)
        row_taps = [(r0, 1 - (rows - r0)), (r0 + 1, rows - r0)]
        col_taps = [(c0, 1 - (cols - c0)), (c0 + 1, cols - c0)]
    out = np.zeros(images.shape, np.float32)
    samples = np.arange(batch)[:, None, None]
    for r, wr in row_taps:
        for c, wc in col_taps:
            r, c = r.astype(np.int64), c.astype(np.int64)
            value = images[samples, _fixed_index(r, height, fill_mode).clip(0, height - 1),
                           _fixed_index(c, width, fill_mode).clip(0, width - 1)]
            if fill_mode == "constant":
                valid = (r >= 0) & (r < height) & (c >= 0) & (c < width)
                value = np.where(valid[..., None], value, np.float32(fill_value))
            out += (wr * wc)[..., None] * value
    if data_format == "channels_first":
        out = out.transpose(0, 3, 1, 2)
    return out


class _EagerRandomLayer(_RandomImageLayer):
    """A random layer computed in NumPy on arrays. In a model it is the identity outside
    training; it trains on the engine when it defines its subgraph (_trains_in_engine), else
    fit refuses it."""

    _trains_in_engine = False

    def __init__(self, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self._generator = np.random.default_rng(self._engine_seed)

    def _eager_call(self, inputs, training=False, positional=False):
        images = np.asarray(inputs)
        if images.ndim != 4:
            raise ValueError("Expected image tensor to have rank 3 (single image) or 4 (batch "
                             f"of images). Received: data.shape={images.shape}")
        if not training:
            return images.astype(np.float32)
        return self._augment(images.astype(np.float32)).astype(np.float32)

    def _engine_subgraph(self, node, param_index):
        width = shape_width(node.inputs[0].shape)
        sub = _Subgraph()
        out = sub.add(node_spec(_RESHAPE, width, node.inputs[0].shape[-1]), "in")
        return sub.items, [out]

    def _uniform(self, low, high, size):
        return self._generator.uniform(low, high, size).astype(np.float32)


def _walk(model):
    from densitron.models.functional import Functional

    for layer in [*(getattr(model, "_all_layers", None) or []), *getattr(model, "layers", [])]:
        yield layer
        if isinstance(layer, Functional):
            yield from _walk(layer)


def augmenting_layers(model):
    """The model's random augmentation layers (nested models' included): model(x) without
    `training` runs them as in training, as Keras's, whose call defaults to training=True."""
    return [layer for layer in _walk(model) if isinstance(layer, _RandomImageLayer)]


def refuse_training(model, plain_call=False):
    """ValueError when the model holds a random layer that the engine cannot train with (fit,
    train_on_batch, model(x, training=True), and model(x) without `training` when
    `plain_call`): they are the identity in predict and evaluate."""
    for layer in _walk(model):
        if isinstance(layer, _EagerRandomLayer) and not layer._trains_in_engine:
            also = (" model(x) without `training` runs it as in training, as Keras's (its call "
                    "defaults to training=True); pass training=False, or use predict, for the "
                    "model without augmentation." if plain_call else "")
            raise ValueError(
                f"densitron's engine cannot train with {type(layer).__name__} (layer "
                f"\"{layer.name}\") in the model: it resamples each image at random, which the "
                "engine has no node for. Augment the data instead, calling the layer on each "
                "batch of images (layer(images, training=True), e.g. in a PyDataset's "
                "__getitem__) and fit on those; in a model it is the identity for predict and "
                f"evaluate.{also} Received: a model containing {type(layer).__name__}")


def _resample_axis(sub, source, sample, axis, value, a, b, value_range, fill_mode,
                   interpolation):
    """The engine's nodes of one axis of Keras's affine sampling, one per-sample value v (node
    `value`, in value_range) deciding it: output index i reads position r_i = a_i·v + b_i, so
    out = A·X_ext per sample (a batched matmul), X_ext the input's rows at every whole
    position q the range of r reaches (fill_mode's index, 0 outside the image for
    "constant"), A[i, q] = max(0, 1 - |r_i - q|) (nearest: |r_i - q| < 1/2), computed from v
    by the standardize op (b_i - q + v·a_i). (A NaN or inf in an image spreads along its
    line through the products with 0; Keras's sampling keeps it to its neighbours.)"""
    n = sample[axis]
    ends = np.stack([a * value_range[0] + b, a * value_range[1] + b])
    q = np.arange(math.floor(ends.min()), math.floor(ends.max()) + 2)
    taps = len(q)
    rest = math.prod(sample) // n
    zeros = sub.add(index_map_spec(np.full(n * taps, -1), taps), "in")
    spread = sub.scaled(zeros, value, n * taps, 0)  # v at every (i, q)
    offsets = (b[:, None] - q[None, :]).astype(float).ravel()
    slopes = np.repeat(a.astype(float), taps)
    distance = sub.add(node_spec(_STANDARDIZE, n * taps, n * taps,
                                 fattrs=[*offsets.tolist(), *slopes.tolist()],
                                 iattrs=[1, n * taps]), spread)
    distance = sub.math(distance, n * taps, _ABS)
    if interpolation == "bilinear":
        weight = sub.math(sub.math(distance, n * taps, _MULTIPLY_BY, -1.0), n * taps, _PLUS,
                          1.0)
        weight = sub.math(weight, n * taps, _CLIP, 0.0, 1.0)
    else:
        weight = sub.math(distance, n * taps, _LESS, 0.5)
    index = _fixed_index(q, n, fill_mode)
    index = np.where((index < 0) | (index >= n), -1, index)
    moved = np.moveaxis(np.arange(math.prod(sample)).reshape(sample), axis, 0)
    rows = sub.add(index_map_spec(_take(moved, index, 0), rest), source)
    out = sub.add(node_spec(_BATCH_MATMUL, n * rest, rest, iattrs=[1, n, taps, rest, 0, 0]),
                  weight, rows)
    if axis != 0:  # (back to the sample's layout)
        back = np.moveaxis(np.arange(n * rest).reshape(moved.shape), 0, axis)
        out = sub.add(index_map_spec(back, sample[-1]), out)
    return out


class _AffineLayer(_EagerRandomLayer):
    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if fill_mode not in _FILL_MODES:
            raise NotImplementedError(f"Unknown `fill_mode` {fill_mode}. Expected of one "
                                      f"{_FILL_MODES}. Received: fill_mode={fill_mode!r}")
        if interpolation not in _AFFINE_INTERPOLATIONS:
            raise NotImplementedError(f"Unknown `interpolation` {interpolation}. Expected of one "
                                      f"{_AFFINE_INTERPOLATIONS}. "
                                      f"Received: interpolation={interpolation!r}")
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = fill_value

    def _resampled_subgraph(self, node, resample):
        """The engine's subgraph of resample(sub, source, sample) -> the resampled source (the
        per-axis work); a constant fill as T(x - fill) + fill, applied in training only."""
        sample = tuple(node.inputs[0].shape[1:])
        width, last = math.prod(sample), sample[-1]
        fill = float(self.fill_value) if self.fill_mode == "constant" else 0.0
        sub = _Subgraph()
        source = sub.math("in", width, _PLUS, -fill) if fill else "in"
        source = resample(sub, source, sample)
        if fill:
            source = sub.math(source, width, _PLUS, fill)
        return sub.items, [sub.in_training(source, width, last)]

    def _augment(self, images):
        return affine_transform(images, self._transforms(images), self.interpolation,
                                self.fill_mode, self.fill_value, self.data_format)

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "fill_value": self.fill_value}


class RandomRotation(_AffineLayer):
    """Keras's RandomRotation: each sample rotated about its centre by an angle uniform in
    factor·360 degrees."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = _factor_pair(factor, "factor", (-1, 1))

    def _transforms(self, images):
        batch = len(images)
        height, width = self._hw(images.shape)
        angle = self._uniform(self.factor[0] * 360.0, self.factor[1] * 360.0, batch)
        angle = angle * np.float32(math.pi / 180.0)
        cx, cy = np.float32(0.5 * (width - 1)), np.float32(0.5 * (height - 1))
        cos, sin = np.cos(angle), np.sin(angle)
        a0, a1, b0, b1 = cos, -sin, sin, cos
        a2 = cx - cx * a0 - cy * a1
        b2 = cy - cx * b0 - cy * b1
        zeros = np.zeros(batch, np.float32)
        return np.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor)}


def _signed_pair(factor, name, error, low_open=False):
    """RandomZoom's and RandomTranslation's factors: a number f (-f, f) or a sorted pair, each
    in [-1, 1] ((-1, 1] for zoom)."""
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value > 1 or \
                (value <= -1 if low_open else value < -1):
            raise ValueError(error + f"Received: {name}={factor}")

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(error + f"Received: {name}={factor}")
        check(factor[0])
        check(factor[1])
        return tuple(sorted(factor))
    check(factor)
    return -abs(factor), abs(factor)


class RandomTranslation(_AffineLayer):
    """Keras's RandomTranslation: each sample shifted by height_factor·height rows and
    width_factor·width columns, each uniform in its factor's range."""

    _ERROR = ("The `factor` argument should be a number (or a list of two numbers) in the "
              "range [-1.0, 1.0]. ")

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._height = _signed_pair(height_factor, "height_factor", self._ERROR)
        self._width = _signed_pair(width_factor, "width_factor", self._ERROR)

    _trains_in_engine = True

    def _shift_map(self, sample_shape, axis, shift):
        """Each value's source when `axis` moves by `shift` (fill_mode's index, -1 outside
        the image for "constant")."""
        positions = np.arange(math.prod(sample_shape)).reshape(sample_shape)
        n = sample_shape[axis]
        source = np.arange(n) - shift
        index = _fixed_index(source, n, self.fill_mode)
        index = np.where((index < 0) | (index >= n), -1, index)
        return _take(positions, index, axis)

    def _engine_subgraph(self, node, param_index):
        """Per axis, shift d = uniform(lower, upper)·size a sample: output i reads position
        i - d (see _resample_axis); a constant fill as T(x - fill) + fill."""
        def shifted(sub, source, sample):
            for k, (axis, (lo, hi)) in enumerate(zip(self._hw_axes(),
                                                     (self._height, self._width))):
                n = sample[axis]
                u = sub.per_sample_uniform(_derived_seed(self._engine_seed, 10 + k))
                shift = sub.math(sub.math(u, 1, _MULTIPLY_BY, (hi - lo) * n), 1, _PLUS, lo * n)
                source = _resample_axis(sub, source, sample, axis, shift, -np.ones(n),
                                        np.arange(n, dtype=float), (lo * n, hi * n),
                                        self.fill_mode, self.interpolation)
            return source

        return self._resampled_subgraph(node, shifted)

    def _transforms(self, images):
        batch = len(images)
        height, width = self._hw(images.shape)
        dy = self._uniform(*self._height, batch) * np.float32(height)
        dx = self._uniform(*self._width, batch) * np.float32(width)
        ones, zeros = np.ones(batch, np.float32), np.zeros(batch, np.float32)
        return np.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], axis=1)

    def get_config(self):
        return {**super().get_config(), "height_factor": _plain(self.height_factor),
                "width_factor": _plain(self.width_factor)}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


class RandomZoom(_AffineLayer):
    """Keras's RandomZoom: each sample zoomed about its centre by 1 + a value uniform in
    height_factor's range (width_factor's, or the same value when it is None); a positive
    factor zooms out."""

    _ERROR = ("The `height_factor` and `width_factor` arguments should be a number (or a list "
              "of two numbers) in the range (-1.0, 1.0]. ")

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._height = _signed_pair(height_factor, "height_factor", self._ERROR, True)
        self._width = None if width_factor is None else _signed_pair(
            width_factor, "width_factor", self._ERROR, True)

    _trains_in_engine = True

    def _engine_subgraph(self, node, param_index):
        """Per axis, zoom z = 1 + uniform(lower, upper) a sample (one for both axes when
        width_factor is None): output i reads position c + z·(i - c), c = (size - 1)/2 (see
        _resample_axis); a constant fill as T(x - fill) + fill."""
        def zoomed(sub, source, sample):
            zooms = {}
            ranges = (self._height, self._height if self._width is None else self._width)
            for k, (axis, (lo, hi)) in enumerate(zip(self._hw_axes(), ranges)):
                if self._width is None and k == 1:
                    zoom = zooms[0]
                else:
                    u = sub.per_sample_uniform(_derived_seed(self._engine_seed, 20 + k))
                    zoom = sub.math(sub.math(u, 1, _MULTIPLY_BY, hi - lo), 1, _PLUS, 1.0 + lo)
                zooms[k] = zoom
                n = sample[axis]
                centre = (n - 1) / 2
                source = _resample_axis(sub, source, sample, axis, zoom, np.arange(n) - centre,
                                        np.full(n, centre), (1.0 + lo, 1.0 + hi),
                                        self.fill_mode, self.interpolation)
            return source

        return self._resampled_subgraph(node, zoomed)

    def _transforms(self, images):
        batch = len(images)
        height, width = self._hw(images.shape)
        zy = self._uniform(1.0 + self._height[0], 1.0 + self._height[1], batch)
        zx = zy if self._width is None else self._uniform(1.0 + self._width[0],
                                                          1.0 + self._width[1], batch)
        x_offset = (np.float32(width) - 1) / 2 * (1 - zx)
        y_offset = (np.float32(height) - 1) / 2 * (1 - zy)
        zeros = np.zeros(batch, np.float32)
        return np.stack([zx, zeros, x_offset, zeros, zy, y_offset, zeros, zeros], axis=1)

    def get_config(self):
        return {**super().get_config(), "height_factor": _plain(self.height_factor),
                "width_factor": _plain(self.width_factor)}


class RandomCrop(_EagerRandomLayer):
    """Keras's RandomCrop on arrays: in training, one (height, width) window of the batch at a
    random offset (an image not larger than the target on both axes: cropped to its aspect
    ratio and resized instead); outside training the images as they are (Keras's too, whose
    output then has the input's size). A model cannot hold it: its output's size would depend
    on the mode."""

    def __init__(self, height, width, seed=None, data_format=None, name=None, **kwargs):
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2**31 - 1))  # (Keras's: one chosen)
        super().__init__(seed=seed, data_format=data_format, name=name, **kwargs)
        self.height = _positive_int(height, "height")
        self.width = _positive_int(width, "width")

    compute_output_shape = Resizing.compute_output_shape

    def _check_inputs(self, input_shape):
        raise ValueError(
            f"densitron's RandomCrop (layer \"{self.name}\") crops arrays only: in a Keras "
            "model its output has the target size in training and the input's size outside "
            "it. Crop the data instead, calling the layer on each batch of images "
            "(layer(images, training=True), e.g. in a PyDataset's __getitem__), or use "
            "CenterCrop in the model. Received: a symbolic input of shape "
            f"{tuple(input_shape)}")

    def _augment(self, images):
        height, width = self._hw(images.shape)
        h_axis, w_axis = (1 + a for a in self._hw_axes())
        if height > self.height and width > self.width:
            top = int(self._generator.uniform(0, float(height - self.height + 1)))
            left = int(self._generator.uniform(0, float(width - self.width + 1)))
        else:  # (Keras's: the target's size at the aspect crop's start, then resized)
            top, _, left, _ = _aspect_crop(height, width, self.height, self.width)
        images = np.take(images, np.arange(top, min(top + self.height, height)), axis=h_axis)
        images = np.take(images, np.arange(left, min(left + self.width, width)), axis=w_axis)
        height, width = images.shape[h_axis], images.shape[w_axis]
        if (height, width) == (self.height, self.width):
            return images
        mh = resize_matrix(height, self.height, "bilinear", False)
        mw = resize_matrix(width, self.width, "bilinear", False)
        out = np.moveaxis(np.tensordot(images, mh, axes=([h_axis], [0])), -1, h_axis)
        return np.moveaxis(np.tensordot(out, mw, axes=([w_axis], [0])), -1, w_axis)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}
