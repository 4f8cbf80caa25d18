"""Keras's Normalization (with adapt) and Rescaling: fixed per-feature affine maps of their
inputs, run by the engine's standardize op."""

import math
import numbers

import numpy as np

from densitron import initializers
from densitron.layers.layer import Layer, engine_node

_STANDARDIZE = 17  # densitron::OpType::kStandardize
_EPSILON = np.float32(1e-7)  # Keras's backend.epsilon()


def _feature_axis(layer, axis, input_shape):
    """The number of features the layer keeps statistics for: the last axis's size (axis -1 or
    the last index), or 1 (axis None: one mean and variance for every value)."""
    rank = len(input_shape)
    if rank < 1 or (rank < 2 and axis not in ((), (-1,), (0,))):
        raise ValueError(f"Layer \"{layer.name}\" expects inputs with a batch axis first. "
                         f"Received: input_shape={tuple(input_shape)}")
    if axis == () or rank == 1:  # (a scalar feature: one mean and variance)
        return 1
    if len(axis) != 1 or not -rank < axis[0] < rank or axis[0] % rank == 0:
        raise ValueError(f"densitron's {type(layer).__name__} keeps statistics for one axis "
                         f"(not the batch's), or for all values (axis=None). "
                         f"Received: axis={axis!r}")
    return int(input_shape[axis[0]])


def _check_per_feature(name, value):
    """A constructor's statistic or coefficient: a finite number or a list, one per feature."""
    a = np.asarray(value)
    if a.dtype.kind not in "iuf" or a.ndim > 1 or not np.all(np.isfinite(a)):
        raise ValueError(f"`{name}` must be a finite number or a list of them, one per "
                         f"feature. Received: {name}={value!r}")


def _check_feature_count(name, value, features, input_shape):
    if np.ndim(value) == 1 and np.shape(value)[0] not in (1, features):
        raise ValueError(f"`{name}` holds one value per feature: {features} values for inputs "
                         f"of shape {tuple(input_shape)}. Received: {name} of shape "
                         f"{np.shape(value)}")


def _per_feature(value, features):
    """A number or a list as `features` float32 values."""
    return np.broadcast_to(np.asarray(value, np.float32).reshape(-1), (features,))


def _plain(value):
    """A config's number or list (from a NumPy value too), as JSON holds it."""
    return np.array(value).tolist()


def _batches(data):
    """Keras's adapt data: (one array, None), or (None, an iterator over the batches of a
    PyDataset or an iterable, the first element of a tuple batch)."""
    from densitron.utils import PyDataset

    def first(batch):
        return batch[0] if isinstance(batch, tuple) else batch

    if isinstance(data, np.ndarray) or (hasattr(data, "__array__") and not
                                        isinstance(data, (list, tuple, PyDataset))):
        return np.asarray(data), None
    if isinstance(data, PyDataset):
        return None, (first(data[i]) for i in range(len(data)))
    if hasattr(data, "__iter__"):
        return None, (first(b) for b in data)
    raise TypeError(f"`adapt` takes a NumPy array, a densitron.utils.PyDataset or an iterable "
                    f"of batches. Received: data of type {type(data).__name__}")


class Normalization(Layer):
    """(x - mean) / max(sqrt(variance), 1e-7) per feature of one axis (the last by default) or
    over all values (axis=None), with the statistics given or learned by `adapt`; `invert` maps
    back. Weights (when adapted): mean, variance, count, none trainable."""

    _mask_rule = "pass"

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        elif isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
            axis = (int(axis),)
        elif isinstance(axis, (list, tuple)) and all(
                isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axis):
            axis = tuple(int(a) for a in axis)
        else:
            raise ValueError(f"`axis` must be an integer, a tuple of integers or None. "
                             f"Received: axis={axis!r}")
        self.axis = axis
        if (mean is None) != (variance is None):
            raise ValueError("When setting values directly, both `mean` and `variance` must be "
                             f"set. Received: mean={mean} and variance={variance}")
        if mean is not None:
            _check_per_feature("mean", mean)
            _check_per_feature("variance", variance)
            if np.shape(mean) != np.shape(variance):
                raise ValueError("When setting values directly, `mean` and `variance` must have "
                                 f"the same shape. Received: mean shape {np.shape(mean)} and "
                                 f"variance shape {np.shape(variance)}")
            if np.any(np.asarray(variance) < 0):
                raise ValueError(f"`variance` must not be negative. Received: "
                                 f"variance={variance!r}")
        self.input_mean = mean
        self.input_variance = variance
        self.invert = bool(invert)
        self.adapt_mean = self.adapt_variance = self.count = None  # (Keras's weights' names)
        self._features = None

    def build(self, input_shape):
        features = _feature_axis(self, self.axis, input_shape)
        self._features = features
        self._build_shape = tuple(input_shape)
        if self.input_mean is None:
            shape = (features,) if self.axis != () else ()
            self.adapt_mean = self.add_weight(shape, initializers.get("zeros"), name="mean",
                                              trainable=False)
            self.adapt_variance = self.add_weight(shape, initializers.get("ones"),
                                                  name="variance", trainable=False)
            self.count = self.add_weight((), initializers.get("zeros"), name="count",
                                         trainable=False)
        else:
            _check_feature_count("mean", self.input_mean, features, input_shape)
            _check_feature_count("variance", self.input_variance, features, input_shape)
        self.built = True

    def _constants(self):
        """(a, b) of the engine's op for statistics given to the constructor, in float32 as
        Keras computes them."""
        var = _per_feature(self.input_variance, self._features)
        return _per_feature(self.input_mean, self._features), np.maximum(np.sqrt(var), _EPSILON)

    def _engine_chain(self, node, param_index):
        """Over an axis other than the last: moved last and back around the op."""
        from densitron.layers.normalization import axis_last_chain

        spec = self._engine_node(node, param_index)
        if self.axis == ():
            return [spec]
        return axis_last_chain(spec, tuple(node.inputs[0].shape[1:]), self.axis[0])

    def _engine_node(self, node, param_index):
        iattrs = [int(self.invert), self._features]
        if self.input_mean is None:
            return engine_node(_STANDARDIZE, node,
                               params=[param_index[id(self.adapt_mean)],
                                       param_index[id(self.adapt_variance)]], iattrs=iattrs)
        a, b = self._constants()
        return engine_node(_STANDARDIZE, node, fattrs=[*a.tolist(), *b.tolist()], iattrs=iattrs)

    def adapt(self, data):
        """Keras's adapt: the mean and variance of `data` (a NumPy array, a PyDataset or an
        iterable of batches) over every axis but the kept one, as the layer's weights."""
        if self.input_mean is not None:
            raise ValueError("This Normalization layer was given its mean and variance; it has "
                             "nothing to adapt. Received: a call to adapt()")
        array, batches = _batches(data)
        if array is not None:  # as Keras: NumPy's moments in the array's own precision
            total_mean, total_var, _ = self._moments(array)
        else:
            total_mean = total_var = None
            total_count = 0
            for batch in batches:
                batch_mean, batch_var, batch_count = self._moments(
                    np.asarray(batch, dtype=np.float32))
                if total_mean is None:
                    total_mean = np.zeros_like(batch_mean)
                    total_var = np.zeros_like(batch_var)
                # Keras's running combination of the batches' moments
                total_count += batch_count
                batch_weight = float(batch_count) / total_count
                existing_weight = 1.0 - batch_weight
                new_mean = total_mean * existing_weight + batch_mean * batch_weight
                total_var = ((total_var + (total_mean - new_mean) ** 2) * existing_weight +
                             (batch_var + (batch_mean - new_mean) ** 2) * batch_weight)
                total_mean = new_mean
            if total_mean is None:
                raise ValueError("adapt() received an empty iterable (no batches). Received: "
                                 "data with no batches")
        self.adapt_mean.assign(np.asarray(total_mean, np.float32).reshape(self.adapt_mean.shape))
        self.adapt_variance.assign(
            np.asarray(total_var, np.float32).reshape(self.adapt_variance.shape))

    @property
    def mean(self):
        """Keras's `mean`: the statistics in the inputs' broadcast shape, e.g. (1, features)
        for (batch, features) inputs and (1, 1) with axis=None (None before the layer is
        built); its weights (`adapt_mean`) hold them per feature."""
        return self._broadcast(self.input_mean, self.adapt_mean)

    @property
    def variance(self):
        """Keras's `variance`, as `mean`."""
        return self._broadcast(self.input_variance, self.adapt_variance)

    def _broadcast(self, given, weight):
        if not self.built:
            return None
        values = _per_feature(given, self._features) if given is not None else weight.numpy()
        shape = [1] * len(self._build_shape)
        for d in (self.axis or ()):
            shape[d] = self._build_shape[d]
        return np.asarray(values, np.float32).reshape(shape)

    def _moments(self, data):
        """The mean, variance and value count of one array of adapt's data, over every axis
        but the kept one (building the layer from the first)."""
        if data.dtype.kind == "O":  # (mixed numbers: a DataFrame with bool columns)
            try:
                data = data.astype(np.float64)
            except (TypeError, ValueError):
                pass
        if data.dtype.kind not in "iufb":
            raise TypeError(f"`adapt` takes numeric data. Received: data of dtype {data.dtype}")
        self._ensure_adapt_build(data.shape)
        if data.shape[0] == 0 or not np.all(np.isfinite(data)):
            raise ValueError(f"`adapt` needs at least one sample and no NaN or infinity. "
                             f"Received: data of shape {data.shape}")
        kept = () if self.axis == () else (self.axis[0] % data.ndim,)
        axes = tuple(a for a in range(data.ndim) if a not in kept)
        return (np.mean(data, axis=axes), np.var(data, axis=axes),
                math.prod(data.shape[a] for a in axes))

    def _ensure_adapt_build(self, shape):
        if not self.built:
            self.build((None, *shape[1:]))
        elif len(shape) != len(self._build_shape) or (
                self.axis != () and shape[self.axis[0]] != self._features):
            raise ValueError(f"The layer was built with input_shape={self._build_shape}, but "
                             f"adapt() is being called with data with an incompatible shape. "
                             f"Received: data.shape={tuple(shape)}")

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "invert": self.invert,
                "mean": _plain(self.input_mean), "variance": _plain(self.input_variance)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("dtype", None)
        if isinstance(config.get("axis"), list):
            config["axis"] = tuple(config["axis"])
        return cls(**config)


class Rescaling(Layer):
    """x·scale + offset (Keras's Rescaling), scale and offset numbers or one per feature of the
    last axis."""

    _mask_rule = "pass"

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        _check_per_feature("scale", scale)
        _check_per_feature("offset", offset)
        self.scale = scale
        self.offset = offset
        self._features = None

    def build(self, input_shape):
        if len(input_shape) == 1 and np.ndim(self.scale) == np.ndim(self.offset) == 0:
            self._features = 1  # one value a sample (a loss function's values): numbers only
            self.built = True
            return
        features = _feature_axis(self, (-1,), input_shape)
        _check_feature_count("scale", self.scale, features, input_shape)
        _check_feature_count("offset", self.offset, features, input_shape)
        self._features = features if any(np.ndim(v) == 1 for v in (self.scale, self.offset)) \
            else 1
        self.built = True

    def _engine_node(self, node, param_index):
        f = self._features
        a, b = _per_feature(self.offset, f), _per_feature(self.scale, f)
        return engine_node(_STANDARDIZE, node, fattrs=[*a.tolist(), *b.tolist()],
                           iattrs=[1, f])

    def get_config(self):
        return {**super().get_config(), "scale": _plain(self.scale),
                "offset": _plain(self.offset)}


_CATEGORIZE = 21  # densitron::OpType::kCategorize
_ENCODINGS = {"one_hot": 0, "multi_hot": 1, "count": 2}


def _encoded_shape(input_shape, mode, depth):
    """Keras's CategoryEncoding output shape for a batched input."""
    if len(input_shape) == 1:  # (a scalar feature: one id a sample)
        return (input_shape[0], depth)
    if mode == "one_hot":
        if input_shape[-1] == 1 and len(input_shape) > 2:
            return (*input_shape[:-1], depth)
        if input_shape[-1] == 1:
            return (input_shape[0], depth)
        return (*input_shape, depth)
    return (*input_shape[:-1], depth)


def _ids_array(inputs):
    """A call's inputs, a list or tuple of numbers (not of tensors) as one array."""
    from densitron.layers.layer import KerasTensor

    if isinstance(inputs, (list, tuple)) and not any(
            isinstance(t, (KerasTensor, np.ndarray)) for t in inputs):
        return np.asarray(inputs)
    return inputs


def _check_sparse_output(layer, sparse):
    if sparse:
        raise ValueError(f"densitron's {type(layer).__name__} gives dense outputs. "
                         f"Received: sparse={sparse!r}")


class CategoryEncoding(Layer):
    """Keras's CategoryEncoding: integer ids in [0, num_tokens) (values are truncated, as Keras
    casts them; ids outside the range set nothing) to one-hot rows (`"one_hot"`: one row per
    id), or one row per sample's last axis (`"multi_hot"`: 1 where an id occurs, `"count"`:
    how often). Not differentiable, as in Keras."""
    _single_input = True

    def __init__(self, num_tokens=None, output_mode="multi_hot", sparse=False, **kwargs):
        super().__init__(**kwargs)
        if output_mode == "binary":
            output_mode = "multi_hot"
        if not isinstance(output_mode, str) or output_mode not in _ENCODINGS:
            raise ValueError(f"Unknown arg for output_mode: {output_mode}. "
                             f"Received: output_mode={output_mode!r}")
        if num_tokens is None or isinstance(num_tokens, bool) or not isinstance(
                num_tokens, numbers.Integral) or num_tokens < 1:
            raise ValueError(f"`num_tokens` must be >= 1. Received: num_tokens={num_tokens!r}")
        _check_sparse_output(self, sparse)
        self.num_tokens = int(num_tokens)
        self.output_mode = output_mode

    def __call__(self, inputs, *args, count_weights=None, **kwargs):
        """Keras's call: a list of ids is one array; on arrays, 1-D ids are one sample for
        "multi_hot" and "count" (as Keras encodes them), and `count_weights` (of the ids'
        shape, "count" only) weigh each id in its count."""
        inputs = _ids_array(inputs)
        if count_weights is not None:
            if self.output_mode != "count":
                raise ValueError("`count_weights` is not used when `output_mode` is not "
                                 f"`'count'`. Received `count_weights={count_weights}`.")
            return self._weighted_counts(inputs, count_weights)
        if (isinstance(inputs, np.ndarray) and inputs.ndim == 1 and
                self.output_mode != "one_hot" and not args and not kwargs):
            return super().__call__(inputs[None, :])[0]
        return super().__call__(inputs, *args, **kwargs)

    def _weighted_counts(self, inputs, count_weights):
        """Keras's "count" with weights: each id's one-hot row times its weight, summed over
        the sample's ids (the last axis of the ids)."""
        from densitron import ops

        if not isinstance(inputs, np.ndarray) or inputs.ndim < 1:
            raise ValueError("densitron's CategoryEncoding takes `count_weights` with an array "
                             "of ids (its engine counts ids unweighted in a model). Received: "
                             f"inputs={inputs!r}")
        weights = np.asarray(count_weights, np.float32)
        if weights.shape != inputs.shape:
            raise ValueError(f"`count_weights` must have the shape of the inputs, "
                             f"{inputs.shape}. Received: count_weights with shape "
                             f"{weights.shape}")
        encoded = ops.one_hot(inputs, self.num_tokens) * weights[..., None]
        return np.sum(encoded, axis=-2, dtype=np.float32)

    def compute_output_shape(self, input_shape):
        return _encoded_shape(tuple(input_shape), self.output_mode, self.num_tokens)

    def _check_inputs(self, input_shape):
        self._check_single(input_shape, min_rank=1)  # (Input(shape=()): one id a sample)

    def _engine_node(self, node, param_index):
        shape = node.inputs[0].shape
        k = int(shape[-1]) if len(shape) > 1 else 1
        return engine_node(_CATEGORIZE, node,
                           iattrs=[self.num_tokens, k, _ENCODINGS[self.output_mode]])

    def get_config(self):
        return {**super().get_config(), "num_tokens": self.num_tokens,
                "output_mode": self.output_mode, "sparse": False}


def _float_values(batch):
    """A batch of adapt's data as Keras reads it: float32 values (TypeError naming it)."""
    try:
        return np.array(batch).astype("float32")
    except (TypeError, ValueError):
        raise TypeError("adapt() takes numbers. Received: a batch of type "
                        f"{type(batch).__name__}") from None


def _quantile_summary(values, epsilon):
    """Keras's summary of one batch for Discretization.adapt: the sorted values taken every
    `step` (elements·epsilon, at least 1), from the step-th, each weighing `step`; as a
    (2, k) array of values and weights."""
    values = np.sort(np.reshape(values, [-1]))
    step = max(np.size(values) / (1.0 / epsilon), 1)
    picked = values[int(step - 1)::int(step)]
    return np.stack([picked, np.ones_like(picked) * step])


def _compress_summary(summary, epsilon):
    """Keras's compression of a summary to 1/epsilon bins: values and cumulative weights
    interpolated at the cumulative fractions epsilon, 2·epsilon, ..., 1 (a summary already
    that small is kept)."""
    if summary.shape[1] * epsilon < 1:
        return summary
    fractions = epsilon + np.arange(0.0, 1.0, epsilon)
    cumulative = summary[1].cumsum()
    at = cumulative / cumulative[-1]
    values = np.interp(fractions, at, summary[0])
    cumulative = np.interp(fractions, at, cumulative)
    weights = cumulative - np.concatenate((np.array([0]), cumulative[:-1]))
    return np.stack((values, weights)).astype("float32")


class Discretization(Layer):
    """Keras's Discretization: each value becomes the number of `bin_boundaries` at or below
    it (NaN: all of them), output as that id (`"int"`) or encoded as CategoryEncoding does
    over len(bin_boundaries) + 1 ids. With `num_bins`, adapt() learns the boundaries as Keras
    does (its approximate quantiles, `epsilon`), before the layer is used in a model. Not
    differentiable."""
    _single_input = True

    def __init__(self, bin_boundaries=None, num_bins=None, epsilon=0.01, output_mode="int",
                 sparse=False, **kwargs):
        super().__init__(**kwargs)
        if output_mode not in ("int", *_ENCODINGS):
            raise ValueError(f"Unknown arg for output_mode: {output_mode}. "
                             f"Received: output_mode={output_mode!r}")
        if num_bins is not None and bin_boundaries is not None:
            raise ValueError("Both `num_bins` and `bin_boundaries` should not be set. "
                             f"Received: num_bins={num_bins!r} and "
                             f"bin_boundaries={bin_boundaries!r}")
        if bin_boundaries is None and num_bins is None:
            raise ValueError("You need to set either `num_bins` or `bin_boundaries`. "
                             "Received: bin_boundaries=None")
        if num_bins is not None and (isinstance(num_bins, bool) or
                                     not isinstance(num_bins, (int, np.integer)) or
                                     num_bins < 1):
            raise ValueError(f"`num_bins` must be an integer >= 1. Received: "
                             f"num_bins={num_bins!r}")
        if not (isinstance(epsilon, (int, float)) and 0 < epsilon < 1):
            raise ValueError(f"`epsilon` must be a number in (0, 1). Received: "
                             f"epsilon={epsilon!r}")
        _check_sparse_output(self, sparse)
        self.bin_boundaries = (None if bin_boundaries is None
                               else self._checked_boundaries(bin_boundaries))
        self.num_bins = None if num_bins is None else int(num_bins)
        self.epsilon = epsilon
        self.output_mode = output_mode

    @staticmethod
    def _checked_boundaries(bin_boundaries):
        try:
            bounds = [float(b) for b in bin_boundaries]
        except (TypeError, ValueError):
            raise TypeError("`bin_boundaries` must be a list of numbers. "
                            f"Received: bin_boundaries={bin_boundaries!r}") from None
        if any(not np.isfinite(b) for b in bounds) or any(
                a > b for a, b in zip(bounds, bounds[1:])):
            raise ValueError("`bin_boundaries` must be finite and sorted. "
                             f"Received: bin_boundaries={bin_boundaries!r}")
        return bounds

    def adapt(self, data, steps=None):
        """Keras's adapt: the boundaries of `num_bins` bins of equal counts, from a running
        quantile summary of `data` (a NumPy array, a PyDataset or an iterable of batches; at
        most `steps` batches)."""
        if self.num_bins is None:
            raise ValueError("Cannot adapt a Discretization layer that has been initialized "
                             "with `bin_boundaries`, use `num_bins` instead.")
        if self._inbound_nodes:
            raise ValueError(f"densitron builds a model's engine graph with the layer's "
                             f"boundaries: adapt {self.name} before calling it on tensors. "
                             "Received: a call to adapt() after the layer was used")
        array, batches = _batches(data)
        if array is not None:
            batches = [array]
        summary = np.array([[], []], dtype="float32")
        for i, batch in enumerate(batches):
            if steps is not None and i >= steps:
                break
            values = _float_values(batch)
            merged = np.concatenate((_quantile_summary(values, self.epsilon), summary), axis=1)
            summary = _compress_summary(np.take(merged, np.argsort(merged[0]), axis=1),
                                        self.epsilon)
        if summary.shape[1] == 0:
            raise ValueError("adapt() received no values. Received: data with no batches")
        self.bin_boundaries = _compress_summary(summary, 1.0 / self.num_bins)[0, :-1].tolist()

    def _depth(self):
        return len(self.bin_boundaries) + 1 if self.bin_boundaries is not None else self.num_bins

    def __call__(self, inputs, *args, **kwargs):
        """On arrays (a list of numbers too), "int" ids come as int32, as Keras's output dtype;
        a model's outputs stay float32, as the engine computes. As Keras's, 1-D values are one
        sample for "multi_hot" and "count" (one id a value for "one_hot"), a single value one
        value of one sample."""
        inputs = _ids_array(inputs)
        if isinstance(inputs, np.ndarray) and inputs.ndim <= 1 and not args and not kwargs:
            if inputs.ndim == 0:
                out = self(inputs[None])
                return out[0] if self.output_mode == "int" else out
            if self.output_mode in ("multi_hot", "count"):
                return self(inputs[None, :])[0]
        out = super().__call__(inputs, *args, **kwargs)
        if self.output_mode == "int" and isinstance(out, np.ndarray):
            return out.astype(np.int32)
        return out

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        return _encoded_shape(tuple(input_shape), self.output_mode, self._depth())

    def _check_inputs(self, input_shape):
        self._check_single(input_shape, min_rank=1)  # (Input(shape=()): one value a sample)

    def _engine_node(self, node, param_index):
        if self.bin_boundaries is None:
            raise ValueError(f"Discretization layer {self.name!r} has no bin boundaries: call "
                             "adapt() on it before building the model. Received: num_bins="
                             f"{self.num_bins} and no adapt()")
        shape = node.inputs[0].shape
        k = int(shape[-1]) if len(shape) > 1 else 1
        mode = -1 if self.output_mode == "int" else _ENCODINGS[self.output_mode]
        return engine_node(_CATEGORIZE, node, iattrs=[len(self.bin_boundaries) + 1, k, mode, 1],
                           fattrs=self.bin_boundaries)

    def get_config(self):
        # Keras's own keys (its __init__ takes no `trainable`)
        config = {k: v for k, v in super().get_config().items() if k != "trainable"}
        bounds = None if self.bin_boundaries is None else list(self.bin_boundaries)
        return {**config, "bin_boundaries": bounds, "num_bins": self.num_bins,
                "epsilon": self.epsilon, "output_mode": self.output_mode, "sparse": False}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("num_bins") is not None and config.get("bin_boundaries") is not None:
            # an adapted layer, as Keras saves it: made with num_bins, then given its bounds
            bounds = config.pop("bin_boundaries")
            layer = super().from_config(config)
            layer.bin_boundaries = cls._checked_boundaries(bounds)
            return layer
        return super().from_config(config)
