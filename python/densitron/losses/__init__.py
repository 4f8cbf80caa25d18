"""Losses by Keras name; the C++ engine computes them (reduction: mean over the batch)."""

import numpy as np

from densitron import _core
from densitron._checks import is_number
from densitron.utils import serialization


def _per_sample_weights(sample_weight, lead):
    """`sample_weight` as one float32 value per sample of a prediction whose axes before the
    last are `lead`: a scalar, that shape (with or without a last axis of 1), or a leading
    part of it (the batch axis: one weight for all of a sample's steps, as Keras broadcasts)."""
    w = _float_array(sample_weight, "sample_weight")
    if w.ndim == len(lead) + 1 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.ndim > len(lead) or w.shape != lead[:w.ndim]:
        raise ValueError(f"`sample_weight` must hold one value per sample, shape {lead}. "
                         f"Received: sample_weight with shape {w.shape}")
    w = w.reshape(w.shape + (1,) * (len(lead) - w.ndim))
    return np.ascontiguousarray(np.broadcast_to(w, lead)).reshape(-1)


def ignore_class_id(ignore_class):
    """Keras's `ignore_class` (of the sparse cross-entropy, the IoU metrics): None or an
    integer class id; a ValueError for anything else."""
    if ignore_class is not None and (isinstance(ignore_class, bool) or
                                     not isinstance(ignore_class, (int, np.integer))):
        raise ValueError("`ignore_class` must be an integer class id or None. "
                         f"Received: ignore_class={ignore_class!r}")
    return None if ignore_class is None else int(ignore_class)


def engine_targets(y_true, shape, sparse, name):
    """y_true (a float32 array) as the engine's targets for predictions of `shape` (the last
    axis the classes or values, every other a sample): one class id per sample (rows × 1) when
    `sparse`, else a value per prediction (a y_true missing only a last axis of size 1 gains
    it, as in Keras). A ValueError naming the loss or metric `name` when the shapes differ."""
    lead = shape[:-1]
    if sparse:
        if y_true.shape not in (lead, lead + (1,)):
            raise ValueError(f"{name} reads one integer class id per sample (class ids of shape "
                             f"{lead} or {lead + (1,)} for predictions of shape {shape}). "
                             f"Received: y_true.shape={y_true.shape}")
        return y_true.reshape(-1, 1)
    if y_true.ndim == len(shape) - 1 and shape[-1] == 1:
        y_true = y_true[..., None]
    if y_true.shape != shape:
        raise ValueError(f"`y_true` and `y_pred` must have the same shape. "
                         f"Received: y_true.shape={y_true.shape}, y_pred.shape={shape}")
    return y_true.reshape(-1, shape[-1])


def same_rank(y_true, y_pred):
    """Keras's squeeze_or_expand_to_same_rank: when one has one axis more and its last axis
    is 1, a rank-1 other gains that axis, or else it loses it; other ranks as they are."""
    t, p = y_true.ndim, y_pred.ndim
    if t == p + 1 and y_true.shape[-1] == 1:
        if p == 1:
            y_pred = y_pred[..., None]
        else:
            y_true = y_true[..., 0]
    if p == t + 1 and y_pred.shape[-1] == 1:
        if t == 1:
            y_true = y_true[..., None]
        else:
            y_pred = y_pred[..., 0]
    return y_true, y_pred


def keras_shapes(y_true, y_pred):
    """(y_true, y_pred) arrays as Keras's losses compute on them: their ranks made the same
    (same_rank), then broadcast against each other as Keras's ops broadcast (a target of one
    value a sample against several outputs, ...); a ValueError when they do not."""
    y_true, y_pred = same_rank(y_true, y_pred)
    try:
        shape = np.broadcast_shapes(y_true.shape, y_pred.shape)
    except ValueError:
        raise ValueError(f"`y_true` and `y_pred` must have broadcastable shapes (after Keras "
                         f"drops or adds a last axis of 1). Received: y_true.shape="
                         f"{y_true.shape}, y_pred.shape={y_pred.shape}") from None
    return np.broadcast_to(y_true, shape), np.ascontiguousarray(np.broadcast_to(y_pred, shape))


def fit_targets(y, shape, loss):
    """Targets `y` (samples first) for an output of per-sample `shape` as Keras's `loss` reads
    them, made that shape where the engine's loss of them is Keras's: a last axis of 1 the
    output has added (same_rank), broadcast (a value a sample against several outputs) when
    the loss broadcasts; and, for a loss that averages each value's own term over the last
    axis, targets missing the output's last axis of 1, against which Keras drops it. Other
    shapes come back as they are (refused after)."""
    full, kind = (y.shape[0], *shape), getattr(loss, "_shapes", "same")
    if y.shape == full or kind == "sparse":
        return y
    if len(full) == y.ndim + 1 and full[-1] == 1 and (
            y.ndim == 1 or getattr(loss, "_engine_id", None) in _ELEMENTWISE):
        y = y[..., None]  # (Keras drops the output's last axis: the same mean)
    elif y.ndim == len(full) + 1 and y.shape[-1] == 1 and len(full) > 1:
        y = y[..., 0]
    if y.shape == full or kind == "same" or y.ndim != len(full) or (
            kind == "own" and y.shape[-1] != full[-1]):
        return y
    try:
        if np.broadcast_shapes(y.shape[1:], shape) == tuple(shape):
            return np.broadcast_to(y, full)
    except ValueError:
        pass
    return y


def check_class_ids(ids, classes, arg, ignore_class=None):
    """Raises a ValueError naming `arg` unless every value of `ids` is an integer in [0,
    classes) (NaN included) or `ignore_class` (the loss's ignored id, when not None)."""
    if ids.dtype.kind == "f" and np.any(ids != np.floor(ids)):
        raise ValueError(f"Class ids in `{arg}` must be integers. "
                         f"Received: non-integer values in {arg}")
    if ignore_class is not None:
        ids = ids[ids != np.asarray(ignore_class, ids.dtype)]
        if ids.size == 0:
            return
    lo, hi = ids.min(), ids.max()
    if lo < 0 or hi >= classes:
        also = "" if ignore_class is None else f" or the ignore_class {ignore_class}"
        raise ValueError(f"Class ids in `{arg}` must lie in [0, {classes}){also} for an output "
                         f"with {classes} classes. Received: values from {lo} to {hi}")


def _float_array(value, arg):
    """`value` as a float32 NumPy array, or a TypeError naming `arg`."""
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"`{arg}` must be an array of numbers. Received: {arg}={value!r}") \
            from None

# Engine ids: must match densitron::Loss in cpp/include/densitron/ops.h.
_CCE, _SCCE, _BCE, _MSE, _MAE = 0, 1, 2, 3, 4
_LOGITS = {_CCE: 5, _SCCE: 6, _BCE: 7}  # the same losses on logits (from_logits=True)
_MAPE, _MSLE, _COSINE, _HUBER, _LOG_COSH = 8, 9, 10, 11, 12
_HINGE, _SQUARED_HINGE, _CATEGORICAL_HINGE, _KLD, _POISSON = 13, 14, 15, 16, 17
_BINARY_FOCAL, _CATEGORICAL_FOCAL = 18, 20
_NO_LOSS, _MEAN_OF_VALUES = 22, 23  # metrics only; a traced loss function's values
_LOGITS.update({_BINARY_FOCAL: 19, _CATEGORICAL_FOCAL: 21})
# The losses that average a term of each value over the last axis.
_ELEMENTWISE = frozenset({_BCE, _MSE, _MAE, _MAPE, _MSLE, _HUBER, _LOG_COSH, _HINGE,
                          _SQUARED_HINGE, _POISSON, _BINARY_FOCAL, _LOGITS[_BCE], 19})
_FOCAL_DEFAULTS = (2.0, 0.25, 0.0)  # the engine's (gamma, alpha, class balancing)


class Loss:
    _engine_id = None
    _default_name = None
    _param = 0.0  # the engine's argument of the loss (label smoothing, Huber's delta)
    # How a target of another shape than the prediction's is read, as Keras's losses read it:
    # "broadcast" (keras_shapes), "same" (Keras's error unless same_rank makes the shapes
    # one), "own" (Keras normalizes each over its last axis before broadcasting: densitron
    # broadcasts the other axes only), "sparse" (class ids)
    _shapes = "broadcast"
    _extra = _FOCAL_DEFAULTS  # the focal losses' (gamma, alpha, class balancing)

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if not (reduction is None or isinstance(reduction, str)) or \
                reduction not in _REDUCTIONS:
            raise ValueError(
                "Invalid value for argument `reduction`. Expected one of "
                f"{sorted(_REDUCTIONS, key=str)}. Received: reduction={reduction!r}")
        self.name = name or self._default_name
        self.reduction = reduction

    def _engine_reduction(self):
        """The engine's reduction of the batch (OutputSpec::Reduction). Per-sample values
        (reduction None) are averaged over the batch, as Keras's evaluate reports them;
        training refuses them (_check_trainable)."""
        code = _REDUCTIONS[self.reduction]
        if code is None:
            return 0
        if code != 0 and self._ignored() is not None:
            raise ValueError(f"densitron reduces a loss with ignore_class over the batch only. "
                             f"Received: reduction={self.reduction!r}")
        return code

    def _check_trainable(self):
        """ValueError for per-sample values (reduction None): training needs one a batch (Keras
        fails to take their gradient)."""
        if _REDUCTIONS[self.reduction] is None:
            raise ValueError(f"The loss {self.name!r} gives per-sample values "
                             "(reduction=None); training needs one value a batch. Received: "
                             f"reduction={self.reduction!r}")

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss of predictions `y_pred` for targets `y_true`, as Keras's loss objects
        compute it: the per-sample losses over the last axis (`call`), times `sample_weight`
        (one value per sample, or a scalar) when given, summed and divided by the number of
        samples. A float32 scalar; on symbolic tensors (in a layer's call(), for add_loss),
        the batch's reduction of the symbolic per-sample losses."""
        if _symbolic_args(y_true, y_pred, sample_weight):
            _check_symbolic_operands(y_true=y_true, y_pred=y_pred, sample_weight=sample_weight)
            return _reduce_symbolic(self.call(y_true, y_pred), sample_weight, self.reduction)
        if traced_function(self) is not None:  # written in Python: run on the arrays
            return _reduce(self.call(np.asarray(y_true, np.float32),
                                     np.asarray(y_pred, np.float32)),
                           sample_weight, self.reduction)
        values = self.call(y_true, y_pred)
        return _reduce(values, sample_weight, self.reduction)

    def call(self, y_true, y_pred):
        """Keras's per-sample losses: over the last axis of `y_pred`, shape y_pred.shape[:-1]
        (float32, computed by the engine; on symbolic tensors, densitron.ops's)."""
        self._check_implemented()
        if _symbolic_args(y_true, y_pred):
            return self._symbolic_call(y_true, y_pred)
        y_pred = _float_array(y_pred, "y_pred")
        if y_pred.ndim == 0 or y_pred.size == 0:
            raise ValueError(f"`y_pred` must hold at least one value. "
                             f"Received: y_pred with shape {y_pred.shape}")
        y_true = _float_array(y_true, "y_true")
        if self._shapes == "same":  # (Keras's cross-entropies: one shape, as its backend)
            y_true, y_pred = same_rank(y_true, y_pred)
            if y_true.shape != y_pred.shape:
                raise ValueError(f"Arguments `target` and `output` must have the same shape. "
                                 f"Received: target.shape={y_true.shape}, "
                                 f"output.shape={y_pred.shape}")
        elif self._shapes == "broadcast":
            y_true, y_pred = keras_shapes(y_true, y_pred)
        elif self._shapes == "own":  # (normalized over the last axis before Keras broadcasts)
            y_true, y_pred = same_rank(y_true, y_pred)
            if y_true.shape[-1:] != y_pred.shape[-1:]:
                raise ValueError(f"densitron computes {self.name} on targets and predictions "
                                 f"of one last axis (after Keras drops or adds a last axis of "
                                 f"1). Received: y_true.shape={y_true.shape}, "
                                 f"y_pred.shape={y_pred.shape}")
            y_true, y_pred = keras_shapes(y_true, y_pred)
        lead, width = y_pred.shape[:-1], y_pred.shape[-1]
        y_true = self._targets(y_true, y_pred.shape)
        values = _core._loss_rows(self._engine_id, y_true, y_pred.reshape(-1, width),
                                  self._param, self._extra, self._ignored())
        return values.reshape(lead)

    def _symbolic_call(self, y_true, y_pred):
        """The per-sample losses on symbolic tensors, of densitron.ops (the losses that have
        them: mean squared and absolute error, the three cross-entropies)."""
        raise TypeError(
            f"On symbolic tensors (in a layer's call()), densitron computes the losses "
            f"mean_squared_error, mean_absolute_error, binary_crossentropy, "
            f"categorical_crossentropy and sparse_categorical_crossentropy; compile takes "
            f"every loss. Received: {type(self).__name__} on {y_pred!r}")

    def _check_implemented(self):
        """NotImplementedError for a Loss with neither an engine loss nor a call() of its own
        (the base class, or a subclass that did not write call)."""
        if self._engine_id is None and traced_function(self) is None:
            raise NotImplementedError(
                f"{type(self).__name__} must implement `call(y_true, y_pred)`, returning the "
                f"per-sample losses. Received: loss={type(self).__name__}(name={self.name!r})")

    def _targets(self, y_true, shape):
        return engine_targets(y_true, shape, False, self.name)

    def _ignored(self):
        """The engine's ignore_class: the class id whose targets take no loss, or None."""
        return None


class LossFunctionWrapper(serialization.FunctionWrapper, Loss):
    """A loss written in Python, as Keras's: `fn(y_true, y_pred)` made of densitron.ops
    (arithmetic, square, abs, log, clip, mean(axis=-1)...), or a Loss subclass's own `call`.
    When the model compiles it is traced on symbolic tensors (y_true of the targets' shape,
    y_pred the output) into engine nodes, so the engine computes it and its gradient; each
    sample's loss is the mean of its values, times its sample weight, averaged over the batch
    (Keras's sum_over_batch_size). On arrays it runs as written, on NumPy."""

    _engine_id = _MEAN_OF_VALUES

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, **kwargs):
        self._wrap(fn, kwargs)
        super().__init__(name=name or getattr(fn, "__name__", "loss"), reduction=reduction)

    def get_config(self):
        return {**super().get_config(), **self._fn_config()}


def traced_function(loss):
    """The Python function the engine traces for a loss (a LossFunctionWrapper's, or a Loss
    subclass's own call), or None for densitron's losses."""
    if isinstance(loss, LossFunctionWrapper):
        return loss.call
    if type(loss).call is not Loss.call:
        return loss.call
    if not type(loss).__call__.__module__.startswith("densitron."):
        # a subclass of the user's with its own __call__ (traced without sample weights:
        # those weigh as a function's do)
        return lambda y_true, y_pred: loss(y_true, y_pred)
    return None


# Keras's reductions: the engine's code for each (None: per-sample values, not for training)
_REDUCTIONS = {"sum_over_batch_size": 0, "mean": 0, "sum": 1, "mean_with_sample_weight": 2,
               None: None, "none": None}


def _symbolic_args(*args):
    from densitron.layers.layer import KerasTensor

    return any(isinstance(a, KerasTensor) for a in args)


def _check_symbolic_operands(**operands):
    """A TypeError unless each operand of a loss on symbolic tensors is a symbolic tensor or
    a number (sample_weight may be None)."""
    from densitron.layers.layer import KerasTensor

    for arg, value in operands.items():
        if not (isinstance(value, KerasTensor) or is_number(value) or
                (value is None and arg == "sample_weight")):
            raise TypeError(f"A loss on symbolic tensors takes symbolic tensors (or numbers) "
                            f"as `{arg}`. Received: {arg}={value!r}")


def _reduce_symbolic(values, sample_weight, reduction):
    """_reduce on symbolic per-sample losses: weighted, then the batch's mean or sum."""
    from densitron import ops

    if sample_weight is not None:
        if _symbolic_args(sample_weight) and len(sample_weight.shape) == len(values.shape) + 1:
            sample_weight = ops.mean(sample_weight, axis=-1)  # (a weight a sample, (None, 1))
        values = values * sample_weight
    mode = _REDUCTIONS[reduction]
    if mode is None:
        return values
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        raise ValueError("On symbolic tensors, a loss's reduction is the batch's mean or sum "
                         "(or none). Received: reduction='mean_with_sample_weight' with "
                         "sample weights")
    return ops.sum(values) if reduction == "sum" else ops.mean(values)


def _reduce(values, sample_weight, reduction):
    """Keras's reduce_weighted_values: the loss values (per sample, or one a batch) times the
    samples' weights, then summed and divided by their count (sum_over_batch_size, mean), by
    nothing (sum) or by the weights' sum (mean_with_sample_weight, 0 over 0 as 0), or kept
    (None, "none": float32 values)."""
    values = np.asarray(values, dtype=np.float32)
    given = None
    if sample_weight is not None:
        given = _float_array(sample_weight, "sample_weight")
        if values.ndim == 0:  # one value a batch: Keras broadcasts it to the weights
            values = values * given.reshape(-1)
        else:
            values = values * _per_sample_weights(sample_weight, values.shape).reshape(
                values.shape)
    if _REDUCTIONS[reduction] is None:
        return values
    total = np.sum(values, dtype=np.float64)
    if reduction == "sum":
        return np.float32(total)
    if reduction == "mean_with_sample_weight" and given is not None:
        weights = np.sum(given, dtype=np.float64)  # (the weights as given, as Keras sums them)
        return np.float32(total / weights if weights != 0 else 0.0)
    return np.float32(total / max(values.size, 1))


class _ProbabilisticLoss(Loss):
    """Cross-entropies: on probabilities (clipped to [eps, 1-eps], as Keras), or on logits with
    `from_logits=True` (softmax or sigmoid applied inside the loss, without clipping)."""

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size", **kwargs):
        super().__init__(name=name, reduction=reduction)
        axis = kwargs.pop("axis", -1)
        if axis != -1:
            raise ValueError(f"densitron's cross-entropies reduce over the last axis. "
                             f"Received: axis={axis!r}")
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments. Received: kwargs={kwargs}")
        self.from_logits = bool(from_logits)
        if self.from_logits:
            self._engine_id = _LOGITS[type(self)._engine_id]

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


class _SmoothedLoss(_ProbabilisticLoss):
    """The dense cross-entropies, which take Keras's `label_smoothing` s: the loss sees the
    targets as y·(1 - s) + s/classes (categorical) or y·(1 - s) + s/2 (binary); metrics see
    them as given."""

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None,
                 reduction="sum_over_batch_size", **kwargs):
        super().__init__(from_logits=from_logits, name=name, reduction=reduction, **kwargs)
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing,
                                                               (int, float, np.number)):
            raise TypeError("`label_smoothing` must be a number in [0, 1]. "
                            f"Received: label_smoothing={label_smoothing!r}")
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError("`label_smoothing` must be in [0, 1]. "
                             f"Received: label_smoothing={label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self._param = self.label_smoothing

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(_SmoothedLoss):
    _shapes = "same"
    _engine_id = _CCE
    _default_name = "categorical_crossentropy"

    def _symbolic_call(self, y_true, y_pred):
        from densitron import ops

        if self.label_smoothing:
            s = self.label_smoothing
            y_true = y_true * (1.0 - s) + s / y_pred.shape[-1]
        return ops.categorical_crossentropy(y_true, y_pred, from_logits=self.from_logits)


class SparseCategoricalCrossentropy(_ProbabilisticLoss):
    """Keras's SparseCategoricalCrossentropy. With `ignore_class`, the targets of that id
    take no loss and no gradient, and a batch's loss is the (weighted) sum over the other
    targets divided by their count (0 when there are none), as Keras's mask reduces it: the
    loss then depends on how the samples are batched, and `evaluate` keeps the given
    batches."""
    _shapes = "sparse"

    _engine_id = _SCCE
    _default_name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, ignore_class=None, name=None,
                 reduction="sum_over_batch_size", **kwargs):
        super().__init__(from_logits=from_logits, name=name, reduction=reduction, **kwargs)
        self.ignore_class = ignore_class_id(ignore_class)

    def get_config(self):
        return {**super().get_config(), "ignore_class": self.ignore_class}

    def __call__(self, y_true, y_pred, sample_weight=None):
        if self.ignore_class is None:
            return super().__call__(y_true, y_pred, sample_weight)
        values = self.call(y_true, y_pred)  # 0 where ignored
        if sample_weight is not None:
            values = values * _per_sample_weights(sample_weight, values.shape).reshape(
                values.shape)
        ids = engine_targets(_float_array(y_true, "y_true"), values.shape + (1,), True,
                             self.name)
        counted = np.count_nonzero(ids != np.float32(self.ignore_class))
        return np.float32(np.sum(values, dtype=np.float64) / counted if counted else 0.0)

    def _targets(self, y_true, shape):
        ids = engine_targets(y_true, shape, True, self.name)
        check_class_ids(ids, shape[-1], "y_true", self.ignore_class)
        return ids

    def _symbolic_call(self, y_true, y_pred):
        from densitron import ops

        if self.ignore_class is not None:
            raise TypeError("On symbolic tensors, sparse_categorical_crossentropy takes no "
                            f"ignore_class. Received: ignore_class={self.ignore_class}")
        return ops.sparse_categorical_crossentropy(y_true, y_pred, from_logits=self.from_logits)

    def _ignored(self):
        return self.ignore_class


class BinaryCrossentropy(_SmoothedLoss):
    _shapes = "same"
    _engine_id = _BCE
    _default_name = "binary_crossentropy"

    def _symbolic_call(self, y_true, y_pred):
        from densitron import ops

        if self.label_smoothing:
            y_true = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return ops.mean(ops.binary_crossentropy(y_true, y_pred, from_logits=self.from_logits),
                        axis=-1)


class _FocalLoss(_SmoothedLoss):
    """The focal cross-entropies' shared arguments: alpha and gamma (numbers), handed to the
    engine with the class balancing flag as (gamma, alpha, balancing)."""

    def __init__(self, alpha, gamma, balance=False, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("alpha", alpha), ("gamma", gamma)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise TypeError(f"`{arg}` must be a number. Received: {arg}={value!r}")
        self.alpha, self.gamma = float(alpha), float(gamma)
        self._extra = (self.gamma, self.alpha, 1.0 if balance else 0.0)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


class BinaryFocalCrossentropy(_FocalLoss):
    """Keras's binary focal cross-entropy (Lin et al., 2018): the binary cross-entropy of each
    value times (1 - p_t)^gamma, p_t = y·p + (1 - y)(1 - p), and, with
    `apply_class_balancing`, times alpha for positives and 1 - alpha for negatives; the mean
    over the last axis."""
    _shapes = "same"
    _engine_id = _BINARY_FOCAL
    _default_name = "binary_focal_crossentropy"

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size", name=None,
                 **kwargs):
        super().__init__(alpha, gamma, bool(apply_class_balancing), from_logits=from_logits,
                         label_smoothing=label_smoothing, name=name, reduction=reduction,
                         axis=axis, **kwargs)
        self.apply_class_balancing = bool(apply_class_balancing)

    def get_config(self):
        return {**super().get_config(), "apply_class_balancing": self.apply_class_balancing}


class CategoricalFocalCrossentropy(_FocalLoss):
    """Keras's categorical focal cross-entropy: over the last axis, the predictions normalized
    to sum to 1 and clipped to [1e-7, 1 - 1e-7], Σ -alpha·(1 - p)^gamma·y·log p."""
    _shapes = "own"
    _engine_id = _CATEGORICAL_FOCAL
    _default_name = "categorical_focal_crossentropy"

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None, **kwargs):
        super().__init__(alpha, gamma, from_logits=from_logits, label_smoothing=label_smoothing,
                         name=name, reduction=reduction, axis=axis, **kwargs)


class _NoLoss(Loss):
    """compile(loss=None) for a model whose layers give every loss by add_loss (Keras's
    endpoint layers): its outputs take none, and fit and evaluate need no targets."""

    _engine_id = _NO_LOSS
    _default_name = "no_loss"


class MeanSquaredError(Loss):
    _engine_id = _MSE
    _default_name = "mean_squared_error"

    def _symbolic_call(self, y_true, y_pred):
        from densitron import ops

        return ops.mean(ops.square(y_true - y_pred), axis=-1)


class MeanAbsoluteError(Loss):
    _engine_id = _MAE
    _default_name = "mean_absolute_error"

    def _symbolic_call(self, y_true, y_pred):
        from densitron import ops

        return ops.mean(ops.abs(y_true - y_pred), axis=-1)


class MeanAbsolutePercentageError(Loss):
    """100 · mean(|y - p| / max(|y|, 1e-7)) over the last axis."""
    _engine_id = _MAPE
    _default_name = "mean_absolute_percentage_error"


class MeanSquaredLogarithmicError(Loss):
    """mean((log(max(p, 1e-7) + 1) - log(max(y, 1e-7) + 1))²) over the last axis."""
    _engine_id = _MSLE
    _default_name = "mean_squared_logarithmic_error"


class CosineSimilarity(Loss):
    """-Σ ŷ·p̂ over the last axis, each vector scaled by min(1/‖v‖, 1e7) as Keras normalizes."""
    _shapes = "own"
    _engine_id = _COSINE
    _default_name = "cosine_similarity"

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)
        if axis != -1:
            raise ValueError("densitron's CosineSimilarity reduces over the last axis. "
                             f"Received: axis={axis!r}")
        self.axis = axis


class Huber(Loss):
    """mean(e²/2 where |e| <= delta, else delta·|e| - delta²/2) over the last axis, e = p - y."""
    _engine_id = _HUBER
    _default_name = "huber_loss"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)
        if isinstance(delta, bool) or not isinstance(delta, (int, float, np.number)):
            raise TypeError(f"`delta` must be a positive number. Received: delta={delta!r}")
        if not (np.isfinite(delta) and delta > 0):
            raise ValueError(f"`delta` must be a positive number. Received: delta={delta!r}")
        self.delta = float(delta)
        self._param = self.delta

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class LogCosh(Loss):
    """mean(log(cosh(p - y))) over the last axis."""
    _engine_id = _LOG_COSH
    _default_name = "log_cosh"


class Hinge(Loss):
    """mean(max(1 - y·p, 0)) over the last axis; targets of a batch that are all 0 or 1 are
    read as -1 and 1, as Keras reads them."""
    _engine_id = _HINGE
    _default_name = "hinge"


class SquaredHinge(Loss):
    """mean(max(1 - y·p, 0)²) over the last axis, with Hinge's reading of {0, 1} targets."""
    _engine_id = _SQUARED_HINGE
    _default_name = "squared_hinge"


class CategoricalHinge(Loss):
    """max(max((1 - y)·p) - Σ y·p + 1, 0) over the last axis."""
    _engine_id = _CATEGORICAL_HINGE
    _default_name = "categorical_hinge"


class KLDivergence(Loss):
    """Σ y·log(y / p) over the last axis, y and p clipped to [1e-7, 1]."""
    _engine_id = _KLD
    _default_name = "kl_divergence"


class Poisson(Loss):
    """mean(p - y·log(p + 1e-7)) over the last axis."""
    _engine_id = _POISSON
    _default_name = "poisson"


# Keras's losses written with its ops: here with densitron.ops, traced into the engine as a
# loss function of the user's is (on arrays they run on NumPy).
def _values_of(y_true, y_pred):
    """(y_true, y_pred) as float32 arrays when neither is symbolic (lists, integer arrays),
    as Keras's functions convert them; traced tensors as they are."""
    from densitron import ops

    if ops._symbolic(y_true, y_pred):
        return y_true, y_pred
    return _float_array(y_true, "y_true"), _float_array(y_pred, "y_pred")


def dice(y_true, y_pred, axis=None):
    """1 - 2·Σ y_true·y_pred / (Σ y_true + Σ y_pred + epsilon), the sums over `axis` (None:
    the whole batch, one value a batch; -1: one a sample)."""
    from densitron import ops
    from densitron.backend import epsilon

    y_true, y_pred = _values_of(y_true, y_pred)
    intersection = ops.sum(y_true * y_pred, axis=axis)
    score = ops.divide(2.0 * intersection, ops.sum(y_true, axis=axis) +
                       ops.sum(y_pred, axis=axis) + epsilon())
    return 1 - score


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """1 - TP / (TP + alpha·FP + beta·FN + epsilon), as Keras 3.15 computes it (its FP is
    Σ y_true·(1 - y_pred), its FN Σ y_pred·(1 - y_true)), the sums over `axis` as dice's."""
    from densitron import ops
    from densitron.backend import epsilon

    y_true, y_pred = _values_of(y_true, y_pred)
    intersection = ops.sum(y_true * y_pred, axis=axis)
    fp = ops.sum((1 - y_pred) * y_true, axis=axis)
    fn = ops.sum(y_pred * (1 - y_true), axis=axis)
    return 1 - ops.divide(intersection, intersection + fp * alpha + fn * beta + epsilon())


def categorical_generalized_cross_entropy(y_true, y_pred, q):
    """(1 - p^q)/q of each sample, p the predicted probability of its class id y_true."""
    from densitron import ops

    y_true, y_pred = _values_of(y_true, y_pred)
    classes = y_pred.shape[-1]
    p = ops.sum(y_pred * ops.one_hot(ops.cast(y_true, "int32"), classes), axis=-1)
    return (1 - ops.power(p, q)) / q


class _BuiltinFunctionLoss(LossFunctionWrapper):
    """Keras's losses of that kind: a function of this module traced as a user's is, saved by
    class name with Keras's config (`_config_keys`)."""

    _fn = None
    _config_keys = ()

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(type(self)._fn, reduction=reduction,
                         name=name or self._default_name, **kwargs)
        for key, value in kwargs.items():
            setattr(self, key, value)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction,
                **{k: getattr(self, k) for k in self._config_keys}}


class Dice(_BuiltinFunctionLoss):
    _default_name, _fn, _config_keys = "dice", staticmethod(dice), ("axis",)

    def __init__(self, reduction="sum_over_batch_size", name="dice", axis=None, dtype=None):
        super().__init__(reduction=reduction, name=name, axis=axis)


class Tversky(_BuiltinFunctionLoss):
    _default_name, _fn, _config_keys = "tversky", staticmethod(tversky), ("alpha", "beta",
                                                                          "axis")

    def __init__(self, alpha=0.5, beta=0.5, reduction="sum_over_batch_size", name="tversky",
                 axis=None, dtype=None):
        super().__init__(reduction=reduction, name=name, alpha=alpha, beta=beta, axis=axis)


class CategoricalGeneralizedCrossEntropy(_BuiltinFunctionLoss):
    _default_name = "categorical_generalized_cross_entropy"
    _fn, _config_keys = staticmethod(categorical_generalized_cross_entropy), ("q",)

    def __init__(self, q=0.5, reduction="sum_over_batch_size",
                 name="categorical_generalized_cross_entropy", dtype=None):
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1:
            raise ValueError(f"q must be in the interval (0, 1). Received: q={q!r}")
        super().__init__(reduction=reduction, name=name, q=float(q))


_CLASSES = {c.__name__: c for c in (
    CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryCrossentropy,
    MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, CosineSimilarity, Huber, LogCosh, Hinge, SquaredHinge,
    CategoricalHinge, KLDivergence, Poisson, BinaryFocalCrossentropy,
    CategoricalFocalCrossentropy, Dice, Tversky, CategoricalGeneralizedCrossEntropy)}

# Keras's loss functions by name, with its aliases; the class names work too, as in Keras.
_BY_NAME = {
    **_CLASSES,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "BCE": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "mape": MeanAbsolutePercentageError,
    "MAPE": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "msle": MeanSquaredLogarithmicError,
    "MSLE": MeanSquaredLogarithmicError,
    "cosine_similarity": CosineSimilarity,
    "huber": Huber,
    "log_cosh": LogCosh,
    "hinge": Hinge,
    "squared_hinge": SquaredHinge,
    "categorical_hinge": CategoricalHinge,
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
    "KLD": KLDivergence,
    "poisson": Poisson,
    "binary_focal_crossentropy": BinaryFocalCrossentropy,
    "categorical_focal_crossentropy": CategoricalFocalCrossentropy,
    "dice": Dice,
    "tversky": Tversky,
    "categorical_generalized_cross_entropy": CategoricalGeneralizedCrossEntropy,
}


# Keras's loss functions: per-sample losses of (y_true, y_pred), shape y_pred.shape[:-1].
# Given to compile(loss=...), each means its loss class with these arguments' defaults.
def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    return CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing,
                                   axis=axis).call(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    return SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=ignore_class,
                                         axis=axis).call(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    return BinaryCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing,
                              axis=axis).call(y_true, y_pred)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25,
                              gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1):
    return BinaryFocalCrossentropy(apply_class_balancing=apply_class_balancing, alpha=alpha,
                                   gamma=gamma, from_logits=from_logits,
                                   label_smoothing=label_smoothing, axis=axis).call(y_true,
                                                                                    y_pred)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    return CategoricalFocalCrossentropy(alpha=alpha, gamma=gamma, from_logits=from_logits,
                                        label_smoothing=label_smoothing, axis=axis).call(
        y_true, y_pred)


def cosine_similarity(y_true, y_pred, axis=-1):
    return CosineSimilarity(axis=axis).call(y_true, y_pred)


def huber(y_true, y_pred, delta=1.0):
    return Huber(delta=delta).call(y_true, y_pred)


def _function_of(cls, name):
    def loss(y_true, y_pred):
        return cls().call(y_true, y_pred)
    loss.__name__ = loss.__qualname__ = name
    loss.__doc__ = f"Keras's {name}: per-sample losses, shape y_pred.shape[:-1]."
    return loss


mean_squared_error = _function_of(MeanSquaredError, "mean_squared_error")
mean_absolute_error = _function_of(MeanAbsoluteError, "mean_absolute_error")
mean_absolute_percentage_error = _function_of(MeanAbsolutePercentageError,
                                              "mean_absolute_percentage_error")
mean_squared_logarithmic_error = _function_of(MeanSquaredLogarithmicError,
                                              "mean_squared_logarithmic_error")
log_cosh = _function_of(LogCosh, "log_cosh")
hinge = _function_of(Hinge, "hinge")
squared_hinge = _function_of(SquaredHinge, "squared_hinge")
categorical_hinge = _function_of(CategoricalHinge, "categorical_hinge")
kl_divergence = _function_of(KLDivergence, "kl_divergence")
poisson = _function_of(Poisson, "poisson")

_FUNCTIONS = (categorical_crossentropy, sparse_categorical_crossentropy, binary_crossentropy,
              binary_focal_crossentropy, categorical_focal_crossentropy,
              mean_squared_error, mean_absolute_error, mean_absolute_percentage_error,
              mean_squared_logarithmic_error, cosine_similarity, huber, log_cosh, hinge,
              squared_hinge, categorical_hinge, kl_divergence, poisson, dice, tversky)


def depends_on_batch(engine_id):
    """Whether a loss's per-sample values depend on the rest of the batch: the hinge losses
    read {0, 1} targets as {-1, 1} only when all of the batch's targets are 0 or 1."""
    return engine_id in (_HINGE, _SQUARED_HINGE)


def serialize(loss):
    """A loss as saved in a model file: its name when given by name, else Keras's
    {"class_name", "config"} form (so from_logits and label_smoothing survive); a loss
    function by its (registered) name, to be found again through custom_objects."""
    if isinstance(loss, str) or loss is None:
        return loss
    if any(loss is f for f in _FUNCTIONS):
        return loss.__name__
    if isinstance(loss, LossFunctionWrapper) and not isinstance(loss, _BuiltinFunctionLoss):
        return serialization.get_registered_name(loss.fn)
    if callable(loss) and not isinstance(loss, (type, Loss)):  # a function of the user's
        return serialization.get_registered_name(loss)
    return serialization.serialize(get(loss))  # a Loss class given uninstantiated too


def deserialize(config):
    """The loss of `serialize`'s {"class_name", "config"} form."""
    return serialization.deserialize(config, _CLASSES, "loss")


def get(identifier):
    if isinstance(identifier, Loss):
        identifier._check_implemented()
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier)
        custom = serialization._custom(identifier) if cls is None else None
        if isinstance(custom, type) and issubclass(custom, Loss):
            return custom()
        if callable(custom):  # a loss function registered or in custom_objects
            return LossFunctionWrapper(custom, name=identifier.split(">")[-1])
        if cls is None:
            raise ValueError(
                f"Could not interpret loss identifier. Expected one of {sorted(_BY_NAME)}, or "
                "the name of a loss function of your own given in load_model's custom_objects "
                f"or registered with register_keras_serializable. Received: loss={identifier!r}"
            )
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if any(identifier is f for f in _FUNCTIONS):
        return _BY_NAME[identifier.__name__]()
    if callable(identifier) and not isinstance(identifier, type):
        return LossFunctionWrapper(identifier)
    raise ValueError(
        "Could not interpret loss identifier: pass a loss name, a densitron.losses object or "
        f"a function of (y_true, y_pred). Received: loss={identifier!r}"
    )


__all__ = [
    "LossFunctionWrapper",
    "CategoricalGeneralizedCrossEntropy",
    "Dice",
    "Tversky",
    "categorical_generalized_cross_entropy",
    "dice",
    "tversky",
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "CategoricalHinge",
    "CosineSimilarity",
    "Hinge",
    "Huber",
    "KLDivergence",
    "LogCosh",
    "Loss",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Poisson",
    "SparseCategoricalCrossentropy",
    "SquaredHinge",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "categorical_hinge",
    "cosine_similarity",
    "deserialize",
    "get",
    "hinge",
    "huber",
    "kl_divergence",
    "log_cosh",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "poisson",
    "serialize",
    "sparse_categorical_crossentropy",
    "squared_hinge",
]
