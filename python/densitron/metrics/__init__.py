"""Metrics by Keras name or as Keras's metric objects, resolved against an output's shapes
and computed by the engine: the mean over the samples of a per-sample value. The objects also
work on their own (update_state, result, reset_state), and Keras's metric functions give
per-sample values."""

import functools
import warnings

import numpy as np

from densitron import _core, losses
from densitron._checks import is_number
from densitron.losses import (  # (Keras's loss functions: keras.metrics exports them too)
    _float_array,
    _per_sample_weights,
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_crossentropy,
    categorical_focal_crossentropy,
    categorical_hinge,
    hinge,
    huber,
    kl_divergence,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    sparse_categorical_crossentropy,
    squared_hinge,
)
from densitron.utils import serialization
from densitron.utils.naming import to_snake_case, uniquify

# Engine ids: must match densitron::AccuracyKind in cpp/include/densitron/ops.h.
_CATEGORICAL, _SPARSE, _BINARY = 0, 1, 2
_TRUE_POSITIVES, _PREDICTED_POSITIVES, _ACTUAL_POSITIVES = 3, 4, 5
_TOP_K, _SPARSE_TOP_K = 6, 7
_AUC_BUCKETS, _AUC_BUCKETS_LOGITS, _R2_SUMS, _F_SCORE_SUMS = 8, 9, 10, 11
_AUC_COLUMN_BUCKETS, _AUC_COLUMN_BUCKETS_LOGITS = 12, 13
_THRESHOLD_BUCKETS = 14
_IOU, _IOU_ARGMAX_PRED, _IOU_ARGMAX, _BINARY_IOU = 15, 16, 17, 18

_ACCURACIES = {
    "categorical_accuracy": _CATEGORICAL,
    "sparse_categorical_accuracy": _SPARSE,
    "binary_accuracy": _BINARY,
}
_LOSS_METRICS = {
    "mse": "mean_squared_error",
    "MSE": "mean_squared_error",
    "mean_squared_error": "mean_squared_error",
    "mae": "mean_absolute_error",
    "MAE": "mean_absolute_error",
    "mean_absolute_error": "mean_absolute_error",
    "categorical_crossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
    "binary_crossentropy": "binary_crossentropy",
}


# The names resolved by resolve() itself (by the output's shapes, or as Keras's functions).
_NAMES = {"accuracy", "acc", *_ACCURACIES, *_LOSS_METRICS}


def resolve_accuracy(loss, y_true_ndim, y_true_last, y_pred_ndim, y_pred_last):
    """Keras's choice for 'accuracy': by the shapes of y_true and y_pred."""
    if y_pred_last == 1:
        return _BINARY
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        return _SPARSE
    if y_true_ndim < y_pred_ndim or (y_true_last == 1 and y_pred_last > 1):
        return _SPARSE
    return _CATEGORICAL


class Metric:
    """A Keras metric object the engine computes; its logs entry is `name`."""

    _default_name = None
    # The log from the engine's sums of the metric's specs: "mean" (the sum over the rows, or
    # the weights' sum), "sqrt" (the square root of that mean), "neg" (that mean negated),
    # or "result": the metric's own _result(sums).
    _post = "mean"

    def __init__(self, name=None, dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Argument `name` must be a string. Received: name={name!r}")
        self.name = name or self._default_name or to_snake_case(type(self).__name__)

    def _spec(self):
        """The engine spec (is_accuracy, kind, threshold, loss_id)."""
        raise ValueError(
            f"densitron computes compile's metrics in its engine: a Metric subclass of your own "
            f"needs its own update_state (traced into the engine, its variables growing by "
            f"assign_add), or write a metric function fn(y_true, y_pred) of densitron.ops. "
            f"Received: metric {type(self).__name__}(name={self.name!r})")

    # --- state of a metric of the user's (Keras's add_variable), for standalone use -------
    @property
    def dtype(self):
        return "float32"

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum",
                     name=None):
        """Keras's: a float32 state variable of the metric (assign, assign_add, numpy())."""
        from densitron import initializers
        from densitron.variables import Variable

        shape = tuple(shape) if isinstance(shape, (list, tuple)) else (
            () if shape is None else (int(shape),))
        init = initializers.get(initializer)
        value = init(shape) if shape else np.asarray(init((1,))).reshape(())
        own = self.__dict__.setdefault("_metric_variables", [])
        name = name or f"variable_{len(own)}"
        variable = Variable(value, name=name, trainable=False, path=f"{self.name}/{name}")
        own.append(variable)
        return variable

    add_weight = add_variable

    @property
    def variables(self):
        """Keras's variables of the metric: for densitron's own metrics, copies of their state
        as Keras keeps it (a mean's total and count, Precision's true and false positives,
        AUC's four confusion counts at each threshold...), read when asked for; then the
        variables added with add_variable."""
        from densitron.variables import Variable

        own = list(self.__dict__.get("_metric_variables", []))
        if has_own_update_state(self):
            return own
        return [Variable(np.asarray(value, np.float32), name=name, trainable=False,
                         path=f"{self.name}/{name}")
                for name, value in self._keras_state()] + own

    def _keras_state(self):
        """[(name, value)] of Keras's variables of the metric, from its state (zeros before
        any update): a mean's total and count."""
        if self._post not in ("mean", "sqrt", "neg", "traced"):
            return []
        state = getattr(self, "_state", None)
        total, count = (0.0, 0.0) if state is None else (float(state[0][0]), float(state[1]))
        return [("total", -total if self._post == "neg" else total), ("count", count)]

    def _specs(self):
        return [self._spec()]

    def _specs_for(self, y_pred_ndim, y_pred_last):
        """The specs for an output of that rank (with the batch axis) and last axis."""
        return self._specs()

    def get_config(self):
        return {"name": self.name, "dtype": "float32"}

    @classmethod
    def from_config(cls, config):
        return cls(**{k: v for k, v in config.items() if k != "dtype"})

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"

    # --- Keras's standalone use: update_state, result, reset_state ------------------------
    # A mean metric whose values are one per predicted value (Keras's binary_accuracy, the
    # squared errors of RootMeanSquaredError) rather than one per row of y_pred's last axis.
    _per_value = False

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds a batch of predictions and targets to the metric's state, as Keras's metric
        objects do (the engine computes the values): over the last axis of `y_pred`, every
        other axis a sample. A mean metric reduces its values as Keras's Mean does:
        `sample_weight` a scalar, one value per sample or per value (of a metric of values);
        a count over every value (Precision, AUC...) takes a weight per value, lower ranks
        broadcast from the batch axis."""
        y_pred = _predictions(y_pred)
        y_true = _float_array(y_true, "y_true")
        if self._post == "result":
            self._update_counts(y_true, y_pred, sample_weight)
            return
        width = y_pred.shape[-1]
        state = getattr(self, "_state", None)
        if state is not None and state[2] != width:
            raise ValueError(f"`y_pred` must keep the last axis of the earlier updates, "
                             f"{state[2]}. Received: y_pred with shape {y_pred.shape}")
        values = np.concatenate([self._row_values(spec, y_true, y_pred)
                                 for spec in self._specs_for(y_pred.ndim, width)])
        shape = y_pred.shape if self._per_value else y_pred.shape[:-1]
        total, count = _samplewise_sums(values.reshape(shape), sample_weight, np.mean)
        if state is None:
            self._state = [np.array([total]), count, width]
        else:
            state[0] = state[0] + total
            state[1] += count

    def _row_values(self, spec, y_true, y_pred):
        """The engine's (unweighted) value of each row of y_pred's last axis, or of each value
        for a metric of values (`_per_value`), flattened."""
        if not spec[0]:  # a loss's value alone (no class left out: NaN its ignored id)
            spec = (*spec[:2], np.nan, *spec[3:])
        spec = engine_spec(spec, False)
        width = y_pred.shape[-1]
        targets = _engine_targets(spec, y_true, y_pred, self.name)
        preds = y_pred.reshape(-1, width)
        if self._per_value:
            targets, preds = targets.reshape(-1, 1), preds.reshape(-1, 1)
        return _core._metric_sums_on(spec, targets, preds, None, per_row=True)

    def _values_apart(self):
        """Whether the metric counts every predicted value on its own (not by rows): the
        confusion counts and AUC without class_id, top_k or per-label counts."""
        return False

    def _vector_is_a_row(self):
        """Whether a 1-D y_pred is one row of classes (Keras's top_k and class_id pick among
        the last axis), not a batch of one-value samples."""
        return False

    def _update_counts(self, y_true, y_pred, sample_weight):
        """update_state of a metric whose result follows from engine sums (counts, AUC's
        buckets, R2Score's sums): a vector is a batch of one-value samples, each with its
        sample weight, as Keras reads it; a metric counting values apart takes their weights
        too (Keras broadcasts sample_weight to y_pred's shape)."""
        if y_pred.ndim == 1:  # (with top_k or class_id, Keras reads a vector as one row)
            y_pred = y_pred.reshape((1, -1) if self._vector_is_a_row() else (-1, 1))
            if self._vector_is_a_row():
                y_true = np.reshape(y_true, (1, -1))
        w = None
        if self._values_apart():
            y_true = losses.engine_targets(y_true, y_pred.shape, False, self.name)
            if sample_weight is not None:
                w = _value_weights(sample_weight, y_pred.shape)
            y_true, y_pred = y_true.reshape(-1, 1), y_pred.reshape(-1, 1)
        lead, width = y_pred.shape[:-1], y_pred.shape[-1]
        steps = int(np.prod(lead[1:], dtype=np.int64))  # rows per sample
        state = getattr(self, "_state", None)
        if state is not None and state[2] != width:
            raise ValueError(f"`y_pred` must keep the last axis of the earlier updates, "
                             f"{state[2]}. Received: y_pred with shape {y_pred.shape}")
        if sample_weight is not None and w is None:
            w = _per_sample_weights(sample_weight, lead)
        specs = [engine_spec(spec, w is not None)
                 for spec in self._specs_for(y_pred.ndim, width)]
        # (counts, an AUC's or R2Score's sums count every value)
        sums = np.concatenate([
            _core._metric_sums_on(spec, _engine_targets(spec, y_true, y_pred, self.name),
                                  y_pred.reshape(-1, width), w) for spec in specs])
        count = (float(np.sum(w, dtype=np.float64)) if w is not None else
                 y_pred.size // width) / steps
        rows = y_pred.size // width  # (unweighted: R2Score's num_samples)
        if state is None:
            self._state = [sums, count, width, rows]
        else:
            state[0] = state[0] + sums
            state[1] += count
            state[3] += rows

    def result(self):
        """The metric's value over every update since the last reset (0 before any)."""
        state = getattr(self, "_state", None)
        if state is None:
            return np.float32(0.0)
        sums, count, width = state[:3]
        if self._post == "result":  # (the rows counted unweighted, as the fit loop's)
            value = self._result(sums, state[3], columns=width)
            return value if isinstance(value, np.ndarray) else np.float32(value)
        mean = sums[0] / count if count != 0 else 0.0
        return np.float32(np.sqrt(mean) if self._post == "sqrt" else
                          0.0 - mean if self._post == "neg" else mean)

    def reset_state(self):
        """Forgets every update (a metric of the user's: its variables back to zeros, as
        Keras's)."""
        self._state = None
        for v in self.__dict__.get("_metric_variables", []):
            v.assign(np.zeros(v.shape, np.float32))

    def __call__(self, y_true, y_pred, sample_weight=None):
        """update_state, then result(), as Keras's metric objects do."""
        self.update_state(y_true, y_pred, sample_weight=sample_weight)
        return self.result()


def _samplewise_sums(values, sample_weight, reduce):
    """Keras's Mean over `values` (an array whose first axis is the batch's, or a scalar):
    (the sum of the samples' weighted values, the count or the weights' sum). A weight of
    lower rank than the values stands for every value after its axes (those values reduced
    first, mean or sum); weights of the values' own shape weigh each value; a trailing axis
    of 1 on either side is dropped."""
    values = np.asarray(values, np.float64)
    w = None
    if sample_weight is not None:
        w = _float_array(sample_weight, "sample_weight").astype(np.float64)
        if values.ndim == w.ndim + 1 and values.shape[-1] == 1:
            values = values[..., 0]
        elif w.ndim == values.ndim + 1 and w.shape[-1] == 1:
            w = w[..., 0]
        if values.ndim > w.ndim:
            values = reduce(values, axis=tuple(range(w.ndim, values.ndim)))
        try:
            w = np.broadcast_to(w, values.shape)
        except ValueError:
            raise ValueError(f"`sample_weight` must hold one value per sample or broadcast to "
                             f"the values' shape {values.shape}. Received: sample_weight "
                             f"with shape {np.shape(sample_weight)}") from None
        values = values * w
        if w.ndim > 1:
            w = reduce(w, axis=tuple(range(1, w.ndim)))
    if values.ndim > 1:
        values = reduce(values, axis=tuple(range(1, values.ndim)))
    count = (float(np.sum(w)) if w is not None else
             values.shape[0] if values.ndim >= 1 else 1)
    return float(np.sum(values)), float(count)


def _value_weights(sample_weight, shape):
    """`sample_weight` as one float32 weight per value of a prediction of `shape` (flat): a
    scalar, that shape (or with a trailing axis of 1), or a leading part of it broadcast
    over the later axes (one weight a sample)."""
    w = _float_array(sample_weight, "sample_weight")
    if w.ndim == len(shape) + 1 and w.shape[-1] == 1:
        w = w[..., 0]
    try:
        if w.ndim > len(shape):
            raise ValueError
        w = np.broadcast_to(w.reshape(w.shape + (1,) * (len(shape) - w.ndim)), shape)
    except ValueError:
        raise ValueError(f"`sample_weight` must broadcast to y_pred's shape {shape} (from its "
                         f"first axis). Received: sample_weight with shape {w.shape}") from None
    return np.ascontiguousarray(w, np.float32).reshape(-1)


def _predictions(y_pred):
    y_pred = _float_array(y_pred, "y_pred")
    if y_pred.ndim == 0 or y_pred.size == 0:
        raise ValueError(f"`y_pred` must hold at least one value. "
                         f"Received: y_pred with shape {y_pred.shape}")
    return y_pred


def _engine_targets(spec, y_true, y_pred, name):
    """y_true (float32) as the engine's targets for an engine spec on y_pred's rows."""
    return losses.engine_targets(y_true, y_pred.shape, not reads_dense_targets(spec), name)


class _AccuracyMetric(Metric):
    _kind = None

    def _spec(self):
        return (True, self._kind, 0.5, 0)


class CategoricalAccuracy(_AccuracyMetric):
    _default_name, _kind = "categorical_accuracy", _CATEGORICAL


class SparseCategoricalAccuracy(_AccuracyMetric):
    _default_name, _kind = "sparse_categorical_accuracy", _SPARSE


class BinaryAccuracy(_AccuracyMetric):
    _default_name, _kind, _per_value = "binary_accuracy", _BINARY, True

    def __init__(self, name=None, dtype=None, threshold=0.5):
        super().__init__(name=name, dtype=dtype)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise TypeError("`threshold` must be a number. Received: "
                             f"threshold={threshold!r}")
        self.threshold = float(threshold)

    def _spec(self):
        return (True, _BINARY, self.threshold, 0)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class TopKCategoricalAccuracy(_AccuracyMetric):
    """Whether the target class (the argmax of y) is among the k highest predictions, ties
    counted in as Keras counts them."""

    _default_name, _kind = "top_k_categorical_accuracy", _TOP_K

    def __init__(self, k=5, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"`k` must be a positive integer. Received: k={k!r}")
        self.k = int(k)

    def _spec(self):
        return (True, self._kind, float(self.k), 0)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    _default_name, _kind = "sparse_top_k_categorical_accuracy", _SPARSE_TOP_K

    def __init__(self, k=5, name=None, dtype=None, from_sorted_ids=False):
        super().__init__(k=k, name=name, dtype=dtype)
        if from_sorted_ids:
            raise ValueError("densitron's SparseTopKCategoricalAccuracy reads scores, not "
                             "sorted class ids. Received: from_sorted_ids=True")


class _LossMetric(Metric):
    _loss = None

    def _spec(self):  # (the third field of a loss's spec: the class it ignores, NaN for none)
        return (False, 0, np.nan, self._loss_object()._engine_id)

    def _loss_object(self):
        return self._loss()


class MeanSquaredError(_LossMetric):
    _default_name, _loss = "mean_squared_error", losses.MeanSquaredError


class MeanAbsoluteError(_LossMetric):
    _default_name, _loss = "mean_absolute_error", losses.MeanAbsoluteError


class RootMeanSquaredError(_LossMetric):
    """The square root of the mean squared error of every value (weights per value too)."""

    _default_name, _loss, _post = "root_mean_squared_error", losses.MeanSquaredError, "sqrt"
    _per_value = True


class MeanAbsolutePercentageError(_LossMetric):
    _default_name, _loss = "mean_absolute_percentage_error", losses.MeanAbsolutePercentageError


class MeanSquaredLogarithmicError(_LossMetric):
    _default_name, _loss = "mean_squared_logarithmic_error", losses.MeanSquaredLogarithmicError


class LogCoshError(_LossMetric):
    _default_name, _loss = "logcosh", losses.LogCosh


class Hinge(_LossMetric):
    _default_name, _loss = "hinge", losses.Hinge


class SquaredHinge(_LossMetric):
    _default_name, _loss = "squared_hinge", losses.SquaredHinge


class CategoricalHinge(_LossMetric):
    _default_name, _loss = "categorical_hinge", losses.CategoricalHinge


class KLDivergence(_LossMetric):
    _default_name, _loss = "kl_divergence", losses.KLDivergence


class Poisson(_LossMetric):
    _default_name, _loss = "poisson", losses.Poisson


class CosineSimilarity(_LossMetric):
    """The mean cosine similarity: the negated mean of the loss's -cos."""

    _default_name, _loss, _post = "cosine_similarity", losses.CosineSimilarity, "neg"

    def __init__(self, name=None, dtype=None, axis=-1):
        super().__init__(name=name, dtype=dtype)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"`axis` must be an integer. Received: axis={axis!r}")
        self.axis = int(axis)
        self._axis_moved = False

    def _specs_for(self, y_pred_ndim, y_pred_last):
        if not self._axis_moved and self.axis not in (-1, y_pred_ndim - 1):
            raise ValueError(f"densitron computes CosineSimilarity over the last axis of a "
                             f"model's output (of rank {y_pred_ndim}). Received: "
                             f"axis={self.axis}")
        return self._specs()

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Keras's update_state: the cosines over `axis` (moved last for the engine)."""
        y_pred = _predictions(y_pred)
        if not -y_pred.ndim <= self.axis < y_pred.ndim:
            raise ValueError(f"`axis` must be an axis of y_pred, of shape {y_pred.shape}. "
                             f"Received: axis={self.axis}")
        if self.axis % y_pred.ndim == y_pred.ndim - 1:
            return super().update_state(y_true, y_pred, sample_weight=sample_weight)
        y_true = np.broadcast_to(_float_array(y_true, "y_true"), y_pred.shape)
        self._axis_moved = True
        try:
            return super().update_state(np.moveaxis(y_true, self.axis, -1),
                                        np.moveaxis(y_pred, self.axis, -1),
                                        sample_weight=sample_weight)
        finally:
            self._axis_moved = False


def _threshold_list(metric, thresholds, default):
    """A confusion metric's `thresholds` (None, a number in [0, 1], or a list of them) as a
    list of floats, None read as `default`."""
    listed = isinstance(thresholds, (list, tuple))
    values = list(thresholds) if listed else [thresholds]
    if not values or any(t is not None and (isinstance(t, bool) or
                                            not isinstance(t, (int, float)) or
                                            not 0.0 <= t <= 1.0) for t in values) or (
            listed and None in values):
        raise ValueError(f"{type(metric).__name__}'s thresholds must be numbers in [0, 1]. "
                         f"Received: thresholds={thresholds!r}")
    return [default if t is None else float(t) for t in values]


class _ConfusionRatio(Metric):
    """Keras's Precision and Recall: a ratio of confusion counts over every value (y_pred >
    threshold is a predicted positive, y_true != 0 an actual one), 0 when the denominator is;
    with `top_k` only a row's k highest predictions can be positives, with `class_id` only
    that column counts; several thresholds give one value each (an array)."""

    _denominator = None
    _post = "result"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        # unnamed ones are numbered as Keras numbers them: precision, precision_1, ...
        super().__init__(name=name or uniquify(self._default_name), dtype=dtype)
        for arg, value, least in (("top_k", top_k, 1), ("class_id", class_id, 0)):
            if value is not None and (isinstance(value, bool) or
                                      not isinstance(value, (int, np.integer)) or value < least):
                raise ValueError(f"`{arg}` must be an integer >= {least} or None. Received: "
                                 f"{arg}={value!r}")
        self.thresholds = thresholds
        self.top_k = None if top_k is None else int(top_k)
        self.class_id = None if class_id is None else int(class_id)
        # Keras's default: 0.5, or with top_k any value (its NEG_INF)
        self._thresholds = _threshold_list(self, thresholds, 0.5 if top_k is None else -1e10)

    def _specs(self):
        extra = (-1 if self.class_id is None else self.class_id, self.top_k or 0)
        return [spec for t in self._thresholds
                for spec in ((True, _TRUE_POSITIVES, t, 0, *extra),
                             (True, self._denominator, t, 0, *extra))]

    def _specs_for(self, y_pred_ndim, y_pred_last):
        if self.class_id is not None and self.class_id >= y_pred_last:
            raise ValueError(f"`class_id` must be a class of the output's {y_pred_last}. "
                             f"Received: class_id={self.class_id}")
        return self._specs()

    def _values_apart(self):
        return self.class_id is None and self.top_k is None

    def _vector_is_a_row(self):
        return self.top_k is not None

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.class_id is not None and np.ndim(y_pred) < 2:
            raise ValueError("When class_id is provided, y_pred must be a 2D array with shape "
                             "(num_samples, num_classes), found shape: "
                             f"{np.shape(y_pred)}. Received: y_pred={y_pred!r}")
        super().update_state(y_true, y_pred, sample_weight)

    def _result(self, sums, rows, columns):
        """The ratio (a float), or one per threshold (an array) when there are several; 0 over
        0 as 0, as Keras's divide_no_nan."""
        pairs = np.asarray(sums[:2 * len(self._thresholds)], np.float64).reshape(-1, 2)
        out = np.divide(pairs[:, 0], pairs[:, 1], out=np.zeros(len(pairs)),
                        where=pairs[:, 1] != 0)
        return float(out[0]) if len(out) == 1 else out.astype(np.float32)

    def _keras_state(self):
        """Keras's true_positives, then false_positives (Precision) or false_negatives
        (Recall), one value per threshold."""
        state = getattr(self, "_state", None)
        pairs = (np.zeros((len(self._thresholds), 2)) if state is None else
                 np.asarray(state[0][:2 * len(self._thresholds)], np.float64).reshape(-1, 2))
        other = "false_positives" if self._denominator == _PREDICTED_POSITIVES else \
            "false_negatives"
        return [("true_positives", pairs[:, 0]), (other, pairs[:, 1] - pairs[:, 0])]

    def get_config(self):
        return {**super().get_config(), "thresholds": self.thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_ConfusionRatio):
    _default_name, _denominator = "precision", _PREDICTED_POSITIVES


class Recall(_ConfusionRatio):
    _default_name, _denominator = "recall", _ACTUAL_POSITIVES


class _ConfusionCount(Metric):
    """Keras's TruePositives, FalsePositives, TrueNegatives and FalseNegatives: the (weighted)
    count of values that are predicted positive (y_pred > threshold) or not and actually
    positive (y_true != 0) or not; one count per threshold (an array when several). From the
    engine's true, predicted and actual positives and every value (the predicted positives
    above -inf)."""

    _post = "result"

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(name=name or uniquify(self._default_name), dtype=dtype)
        self.thresholds = thresholds
        self._thresholds = _threshold_list(self, thresholds, 0.5)

    def _values_apart(self):
        return True

    def _specs(self):
        return [spec for t in self._thresholds
                for spec in ((True, _TRUE_POSITIVES, t, 0), (True, _PREDICTED_POSITIVES, t, 0),
                             (True, _ACTUAL_POSITIVES, t, 0),
                             (True, _PREDICTED_POSITIVES, -np.inf, 0))]

    def _result(self, sums, rows, columns):
        out = self._counts(sums)
        return float(out[0]) if len(out) == 1 else out.astype(np.float32)

    def _counts(self, sums):
        tp, pp, ap, every = np.asarray(sums[:4 * len(self._thresholds)],
                                       np.float64).reshape(-1, 4).T
        return self._count(tp, pp, ap, every)

    def _keras_state(self):
        state = getattr(self, "_state", None)
        return [("accumulator", np.zeros(len(self._thresholds)) if state is None else
                 self._counts(state[0]))]

    def get_config(self):
        return {**super().get_config(), "thresholds": self.thresholds}


class TruePositives(_ConfusionCount):
    _default_name = "true_positives"

    @staticmethod
    def _count(tp, pp, ap, every):
        return tp


class FalsePositives(_ConfusionCount):
    _default_name = "false_positives"

    @staticmethod
    def _count(tp, pp, ap, every):
        return pp - tp


class FalseNegatives(_ConfusionCount):
    _default_name = "false_negatives"

    @staticmethod
    def _count(tp, pp, ap, every):
        return ap - tp


class TrueNegatives(_ConfusionCount):
    _default_name = "true_negatives"

    @staticmethod
    def _count(tp, pp, ap, every):
        return every - pp - ap + tp


class AUC(Metric):
    """Keras's AUC over evenly spaced thresholds (or a given list): the engine keeps each
    bucket's weighted count of positive and negative targets (for each label apart with
    `multi_label` or `label_weights`); the ROC or PR curve and its Riemann sum follow from their
    cumulative sums as in Keras's result(): over every value together, or per label and then
    averaged (multi_label, weighted by label_weights when given)."""

    _post = "result"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        super().__init__(name=name or uniquify("auc"), dtype=dtype)
        self._given_thresholds = None
        if thresholds is not None:
            try:
                given = [float(t) for t in thresholds]
            except (TypeError, ValueError):
                raise ValueError("`thresholds` must be a list of numbers. Received: "
                                 f"thresholds={thresholds!r}") from None
            if any(not 0.0 <= t <= 1.0 for t in given) or given != sorted(given):
                raise ValueError("Threshold values must be in [0, 1], in increasing order. "
                                 f"Received: thresholds={thresholds!r}")
            # Keras's list: the given thresholds between 0 - epsilon and 1 + epsilon
            self._given_thresholds = given
            num_thresholds = len(given) + 2
        if num_labels is not None and not multi_label:
            raise ValueError("`num_labels` is needed only when `multi_label` is True. "
                             f"Received: num_labels={num_labels!r}")
        if label_weights is not None:
            try:
                lw = np.asarray(label_weights, np.float64)
            except (TypeError, ValueError):
                lw = np.zeros(0)
            if lw.ndim != 1 or lw.size == 0 or not np.all(np.isfinite(lw)) or np.any(lw < 0):
                raise ValueError("`label_weights` must be a list of non-negative numbers, one "
                                 f"per label. Received: label_weights={label_weights!r}")
        self.multi_label = bool(multi_label)
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else [float(v) for v in lw]
        if (isinstance(num_thresholds, bool) or not isinstance(num_thresholds, (int, np.integer))
                or not 1 < num_thresholds <= 1_000_000):
            raise ValueError("Argument `num_thresholds` must be an integer > 1. "
                             f"Received: num_thresholds={num_thresholds!r}")
        curve = str(curve).upper()
        if curve not in ("ROC", "PR", "PRGAIN"):
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are '
                             f'["PR", "ROC", "PRGAIN"]. Received: curve={curve!r}')
        method = str(summation_method).lower()
        if method not in ("interpolation", "majoring", "minoring"):
            raise ValueError(f'Invalid AUC summation method value: "{summation_method}". '
                             'Expected values are ["interpolation", "majoring", "minoring"]. '
                             f"Received: summation_method={summation_method!r}")
        self.num_thresholds = int(num_thresholds)
        self.curve = curve
        self.summation_method = method
        self.from_logits = bool(from_logits)

    def _per_label(self):
        return self.multi_label or self.label_weights is not None

    def _values_apart(self):
        return not self._per_label()

    @property
    def thresholds(self):
        """Keras's list of the thresholds the curve is taken at: 0 - epsilon, the given ones
        (or num_thresholds - 2 evenly spaced), 1 + epsilon."""
        eps = 1e-7  # Keras's backend.epsilon()
        inner = self._given_thresholds
        if inner is None:
            n = self.num_thresholds
            inner = [(i + 1) * 1.0 / (n - 1) for i in range(n - 2)]
        return [0.0 - eps, *inner, 1.0 + eps]

    def _specs(self):
        if self._per_label():
            kind = _AUC_COLUMN_BUCKETS_LOGITS if self.from_logits else _AUC_COLUMN_BUCKETS
        else:
            kind = _AUC_BUCKETS_LOGITS if self.from_logits else _AUC_BUCKETS
        if self._given_thresholds is not None:  # the engine's buckets at these thresholds
            return [(True, kind, float(self.num_thresholds), 0, -1, 0, self.thresholds)]
        return [(True, kind, float(self.num_thresholds), 0)]

    def _specs_for(self, y_pred_ndim, y_pred_last):
        if self.multi_label and y_pred_ndim != 2:
            raise ValueError("`y_pred` must have rank 2 when `multi_label=True`. Received: an "
                             f"output of rank {y_pred_ndim}")
        for arg, count in (("num_labels", self.num_labels),
                           ("label_weights", None if self.label_weights is None
                            else len(self.label_weights))):
            if count is not None and count != y_pred_last:
                raise ValueError(f"`{arg}` must match the output's {y_pred_last} labels. "
                                 f"Received: {arg}={getattr(self, arg)!r}")
        return self._specs()

    def _buckets(self, sums, columns):
        """The weighted counts of positive and negative targets in each bucket: (n,) arrays,
        or (n, labels) with multi_label."""
        n = self.num_thresholds
        if self._per_label():  # (labels, n) positives, then negatives
            counts = np.asarray(sums[:2 * n * columns], np.float64).reshape(2, columns, n)
            pos, neg = counts[0].T, counts[1].T  # (n, labels)
            if not self.multi_label:  # label-weighted counts over all labels together
                lw = np.asarray(self.label_weights)
                pos, neg = pos @ lw, neg @ lw
            return pos, neg
        return np.asarray(sums[:n], np.float64), np.asarray(sums[n:2 * n], np.float64)

    @staticmethod
    def _confusion(pos, neg):
        """(tp, fp, tn, fn) at each threshold from the bucket counts (a value in bucket b is
        above thresholds 0 to b)."""

        def above(counts):  # reverse cumulative sums
            return np.cumsum(counts[::-1], axis=0)[::-1]

        tp, fp = above(pos), above(neg)
        return tp, fp, fp[0] - fp, tp[0] - tp

    def _keras_state(self):
        """Keras's true_positives, false_positives, true_negatives and false_negatives at
        each threshold ((n, labels) with multi_label, made by the first update unless
        num_labels is given)."""
        state = getattr(self, "_state", None)
        if state is None:
            if self.multi_label and self.num_labels is None:
                return []
            shape = (self.num_thresholds,) + ((self.num_labels,) if self.multi_label else ())
            counts = [np.zeros(shape)] * 4
        else:
            counts = self._confusion(*self._buckets(state[0], state[2]))
        return list(zip(("true_positives", "false_positives", "true_negatives",
                         "false_negatives"), counts))

    def _result(self, sums, rows, columns):
        """Keras's AUC.result() from the bucket counts (float64)."""
        pos, neg = self._buckets(sums, columns)
        scores = self._curve_area(pos, neg)
        if not self.multi_label:
            return float(scores)
        if self.label_weights is None:
            return float(np.mean(scores))
        lw = np.asarray(self.label_weights)
        total = np.sum(lw)
        return float(np.sum(scores * lw) / total) if total != 0 else 0.0

    def _curve_area(self, pos, neg):
        """The area for bucket counts along axis 0 (one column a label, or one vector)."""
        tp, fp, tn, fn = self._confusion(pos, neg)

        def div(a, b):  # divide_no_nan
            return np.divide(a, b, out=np.zeros_like(a), where=b != 0)

        if self.curve == "PR" and self.summation_method == "interpolation":
            dtp = tp[:-1] - tp[1:]
            p = tp + fp
            dp = p[:-1] - p[1:]
            slope = div(dtp, np.maximum(dp, 0))
            intercept = tp[1:] - slope * p[1:]
            both = (p[:-1] > 0) & (p[1:] > 0)
            ratio = np.where(both, div(p[:-1], np.maximum(p[1:], 0)), 1.0)
            return np.sum(div(slope * (dtp + intercept * np.log(ratio)),
                              np.maximum(tp[1:] + fn[1:], 0)), axis=0)
        recall = div(tp, tp + fn)
        if self.curve == "ROC":
            x, y = div(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, div(tp, tp + fp)
        else:  # PRGAIN
            scale = div(tp + fn, tn + fp)
            x = np.maximum(np.where(tp == 0, 0.0, 1.0 - scale * div(fn, tp)), 0.0)
            y = np.where(tp == 0, 1.0, 1.0 - scale * div(fp, tp))
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return np.sum((x[:-1] - x[1:]) * heights, axis=0)

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds,
                "thresholds": self._given_thresholds,
                "curve": self.curve, "summation_method": self.summation_method,
                "multi_label": self.multi_label, "num_labels": self.num_labels,
                "label_weights": self.label_weights, "from_logits": self.from_logits}


class _SensitivitySpecificity(Metric):
    """Keras's SensitivitySpecificityBase metrics: confusion counts of every value (of column
    `class_id` only, when given) at `num_thresholds` evenly spaced thresholds 0, 1/(n - 1), ...,
    1 (0.5 alone for one), from the engine's bucket counts (predictions clipped to [0, 1]);
    the result is the largest `dependent` ratio among the thresholds whose `constrained` ratio
    is at least the metric's value, 0 when there is none. The ratios are divide_no_nan's, in
    float32 as Keras's."""

    _post = "result"
    _value_arg = None  # the constrained ratio's argument: "specificity", "recall"...

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        arg = self._value_arg
        if not is_number(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"Argument `{arg}` must be in the range [0, 1]. "
                             f"Received: {arg}={value!r}")
        if (isinstance(num_thresholds, bool) or not isinstance(num_thresholds, (int, np.integer))
                or not 0 < num_thresholds <= 1_000_000):
            raise ValueError("Argument `num_thresholds` must be an integer > 0. "
                             f"Received: num_thresholds={num_thresholds!r}")
        if class_id is not None and (isinstance(class_id, bool) or
                                     not isinstance(class_id, (int, np.integer)) or class_id < 0):
            raise ValueError("`class_id` must be an integer >= 0 or None. "
                             f"Received: class_id={class_id!r}")
        super().__init__(name=name or uniquify(to_snake_case(type(self).__name__)), dtype=dtype)
        setattr(self, arg, value)
        self.num_thresholds = int(num_thresholds)
        self.class_id = None if class_id is None else int(class_id)

    def _specs(self):
        class_id = -1 if self.class_id is None else self.class_id
        if self.num_thresholds == 1:  # one threshold, 0.5: the buckets below and above it
            return [(True, _THRESHOLD_BUCKETS, 2.0, 0, class_id, 0, [-1.0, 0.5])]
        return [(True, _THRESHOLD_BUCKETS, float(self.num_thresholds), 0, class_id, 0)]

    def _specs_for(self, y_pred_ndim, y_pred_last):
        if self.class_id is not None and self.class_id >= y_pred_last:
            raise ValueError(f"`class_id` must be a class of the output's {y_pred_last}. "
                             f"Received: class_id={self.class_id}")
        return self._specs()

    def _values_apart(self):
        return self.class_id is None

    def _confusion(self, sums):
        """(tp, fp, tn, fn), one of each per threshold (float32), from the bucket counts: a
        value in bucket b is above thresholds 0 to b - 1."""
        buckets = 2 if self.num_thresholds == 1 else self.num_thresholds
        counts = np.asarray(sums[:2 * buckets], np.float64).reshape(2, buckets)
        above = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]  # values in bucket b or higher
        tp_fp = np.zeros((2, self.num_thresholds))
        tp_fp[:, :buckets - 1] = above[:, 1:]
        tp, fp = tp_fp.astype(np.float32)
        pos, neg = above[:, 0].astype(np.float32)
        return tp, fp, neg - fp, pos - tp

    def _keras_state(self):
        state = getattr(self, "_state", None)
        counts = ([np.zeros(self.num_thresholds)] * 4 if state is None else
                  self._confusion(state[0]))
        return list(zip(("true_positives", "false_positives", "true_negatives",
                         "false_negatives"), counts))

    @staticmethod
    def _ratio(a, b):  # divide_no_nan
        return np.divide(a, b, out=np.zeros_like(a), where=b != 0)

    def _result(self, sums, rows, columns):
        constrained, dependent = self._ratios(*self._confusion(sums))
        feasible = constrained >= np.float32(getattr(self, self._value_arg))
        return float(np.max(np.where(feasible, dependent, np.float32(0.0)), initial=0.0))

    def get_config(self):
        return {**super().get_config(), "class_id": self.class_id,
                "num_thresholds": self.num_thresholds,
                self._value_arg: getattr(self, self._value_arg)}


class SensitivityAtSpecificity(_SensitivitySpecificity):
    _value_arg = "specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)

    def _ratios(self, tp, fp, tn, fn):
        return self._ratio(tn, tn + fp), self._ratio(tp, tp + fn)


class SpecificityAtSensitivity(_SensitivitySpecificity):
    _value_arg = "sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)

    def _ratios(self, tp, fp, tn, fn):
        return self._ratio(tp, tp + fn), self._ratio(tn, tn + fp)


class PrecisionAtRecall(_SensitivitySpecificity):
    _value_arg = "recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name, dtype)

    def _ratios(self, tp, fp, tn, fn):
        return self._ratio(tp, tp + fn), self._ratio(tp, tp + fp)


class RecallAtPrecision(_SensitivitySpecificity):
    _value_arg = "precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name, dtype)

    def _ratios(self, tp, fp, tn, fn):
        return self._ratio(tp, tp + fp), self._ratio(tp, tp + fn)


class MeanMetricWrapper(serialization.FunctionWrapper, Metric):
    """A metric written in Python, as Keras's: `fn(y_true, y_pred)` made of densitron.ops,
    returning per-sample values (reduce with axis=-1); the metric is their mean over the
    samples (a sample's values averaged first), weighted by the sample weights among
    `weighted_metrics`. When the model compiles it is traced on symbolic tensors into engine
    nodes, computed with the step (no gradient); on arrays (update_state) it runs as written."""

    _post = "traced"

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._wrap(fn, kwargs)
        super().__init__(name=name or getattr(fn, "__name__", "metric"), dtype=dtype)

    def _specs(self):
        return []

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = np.asarray(self.call(np.asarray(y_true, np.float32),
                                      np.asarray(y_pred, np.float32)), np.float64)
        if values.ndim == 0 and sample_weight is not None:
            # one value for the whole batch (an R² over it): Keras's Mean counts it once
            raise ValueError(f"Metric {self.name!r} gives one value for the whole batch, "
                             "which sample weights cannot weigh. Received: sample_weight")
        total, count = _samplewise_sums(values, sample_weight, np.mean)
        state = getattr(self, "_state", None) or [np.zeros(1), 0.0, 1]
        state[0] = state[0] + total
        state[1] += count
        self._state = state

    def result(self):
        state = getattr(self, "_state", None)
        if state is None or state[1] == 0:
            return np.float32(0.0)
        return np.float32(state[0][0] / state[1])

    def get_config(self):
        return {**super().get_config(), **self._fn_config()}


def accuracy(y_true, y_pred):
    """1.0 where a prediction equals its target exactly, else 0.0 (Keras's `accuracy`
    function, the values of the Accuracy metric)."""
    from densitron import ops

    return ops.cast(ops.equal(y_true, y_pred), "float32")


def pearson_correlation(y_true, y_pred, axis=-1):
    """Pearson's correlation of y_true and y_pred along `axis` (each standardised by its
    mean and standard deviation there), as Keras computes it."""
    from densitron import ops

    y_true_norm = y_true - ops.mean(y_true, axis=axis, keepdims=True)
    y_pred_norm = y_pred - ops.mean(y_pred, axis=axis, keepdims=True)
    y_true_norm = y_true_norm / ops.std(y_true_norm, axis=axis, keepdims=True)
    y_pred_norm = y_pred_norm / ops.std(y_pred_norm, axis=axis, keepdims=True)
    return ops.mean(y_true_norm * y_pred_norm, axis=axis)


def concordance_correlation(y_true, y_pred, axis=-1):
    """Lin's concordance correlation along `axis` as Keras 3.15 computes it, its covariance
    term included: (y_true - mean(y_pred))·(y_pred - mean(y_pred))."""
    from densitron import ops
    from densitron.backend import epsilon

    y_true_mean = ops.mean(y_true, axis=axis, keepdims=True)
    y_pred_mean = ops.mean(y_pred, axis=axis, keepdims=True)
    y_true_var = ops.var(y_true - y_true_mean, axis=axis, keepdims=True)
    y_pred_var = ops.var(y_pred - y_pred_mean, axis=axis, keepdims=True)
    covar = (y_true - y_pred_mean) * (y_pred - y_pred_mean)
    norm = y_true_var + y_pred_var + ops.square(y_true_mean - y_pred_mean)
    return ops.mean(2 * covar / (norm + epsilon()), axis=axis)


class _BuiltinWrapper(MeanMetricWrapper):
    """Keras's MeanMetricWrapper subclasses: a function of this module traced like a user's,
    saved by class name and config (`_config_keys`) as Keras saves them."""

    _fn = None
    _config_keys = ()

    def __init__(self, name=None, dtype=None, **kwargs):
        super().__init__(type(self)._fn, name=name or self._default_name, dtype=dtype, **kwargs)
        for key, value in kwargs.items():
            setattr(self, key, value)

    def get_config(self):
        return {"name": self.name, "dtype": "float32",
                **{k: getattr(self, k) for k in self._config_keys}}


class Accuracy(_BuiltinWrapper):
    """How often predictions equal their targets exactly (Keras's Accuracy, not the
    'accuracy' name, which compile resolves to the binary, categorical or sparse accuracy)."""

    _default_name, _fn = "accuracy", staticmethod(accuracy)

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


class PearsonCorrelation(_BuiltinWrapper):
    """The mean over the samples of Pearson's correlation along `axis` (the last axis inside
    fit and evaluate; any axis standalone)."""

    _default_name, _fn, _config_keys = ("pearson_correlation", staticmethod(pearson_correlation),
                                        ("axis",))

    def __init__(self, name="pearson_correlation", dtype=None, axis=-1):
        super().__init__(name=name, dtype=dtype, axis=axis)


class ConcordanceCorrelation(_BuiltinWrapper):
    """The mean over the samples of the concordance correlation along `axis`, as Keras 3.15
    computes it (see concordance_correlation)."""

    _default_name, _fn, _config_keys = ("concordance_correlation",
                                        staticmethod(concordance_correlation), ("axis",))

    def __init__(self, name="concordance_correlation", dtype=None, axis=-1):
        super().__init__(name=name, dtype=dtype, axis=axis)


class _Reduction(Metric):
    """Keras's Mean and Sum: standalone metrics of values (update_state(values,
    sample_weight)), for logging in loops of one's own; compile takes metrics of (y_true,
    y_pred) instead."""

    _mean = True

    def _specs_for(self, y_pred_ndim, y_pred_last):
        raise ValueError(
            f"{type(self).__name__} reduces values given to update_state(values); it is not a "
            "metric of (y_true, y_pred) for compile. Pass a metric function or object instead. "
            f"Received: metrics=[{type(self).__name__}(name={self.name!r})]")

    def update_state(self, values, sample_weight=None):
        """Keras's reduce_to_samplewise_values: each sample's values reduced (mean or sum)
        to one, weighted by its weight (weights over trailing axes reduced the same way)."""
        values = _float_array(values, "values")
        total, count = _samplewise_sums(values, sample_weight,
                                        np.mean if self._mean else np.sum)
        old_total, old_count = getattr(self, "_state", None) or (0.0, 0.0)
        self._state = (old_total + total, old_count + count)

    def _keras_state(self):
        total, count = getattr(self, "_state", None) or (0.0, 0.0)
        return [("total", total), ("count", count)] if self._mean else [("total", total)]

    def result(self):
        total, count = getattr(self, "_state", None) or (0.0, 0.0)
        if not self._mean:
            return np.float32(total)
        return np.float32(total / count if count != 0 else 0.0)

    def __call__(self, values, sample_weight=None):
        self.update_state(values, sample_weight=sample_weight)
        return self.result()


class Mean(_Reduction):
    """The (weighted) mean of every value given to update_state."""

    _default_name = "mean"

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)


class Sum(_Reduction):
    """The (weighted) sum of every value given to update_state."""

    _default_name, _mean = "sum", False

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)


class _IoUBase(Metric):
    """Keras's IoU metrics from a confusion matrix's per-class sums (the engine's iou_sums):
    for each target class, true positives over true positives, false positives and false
    negatives, averaged over the target classes that occur. Ids are values truncated toward
    zero; pairs whose ids are not classes, or whose target is `ignore_class`, are left out.
    Sample weights weigh as given (Keras's default integer dtype truncates fractional ones,
    with a warning; its dtype='float32' weighs as here)."""

    _post = "result"

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        super().__init__(name=name, dtype=dtype)
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or \
                num_classes < 1:
            raise ValueError(f"`num_classes` must be an integer >= 1. Received: "
                             f"num_classes={num_classes!r}")
        ids = list(target_class_ids) if isinstance(target_class_ids, (list, tuple, range,
                                                                     np.ndarray)) else []
        if not ids or any(isinstance(i, bool) or not isinstance(i, (int, np.integer))
                          for i in ids) or min(ids) < 0:
            raise ValueError(f"`target_class_ids` must be non-negative integers. Received: "
                             f"target_class_ids={target_class_ids!r}")
        if max(ids) >= num_classes:
            raise ValueError(f"Target class id {max(ids)} is out of range, which is "
                             f"[0, {num_classes}).")
        ignore_class = losses.ignore_class_id(ignore_class)
        if axis not in (-1,):
            raise ValueError(f"densitron's IoU metrics take the classes along the last axis. "
                             f"Received: axis={axis!r}")
        self.num_classes = int(num_classes)
        self.target_class_ids = [int(i) for i in ids]
        self.ignore_class = ignore_class
        self.sparse_y_true = bool(sparse_y_true)
        self.sparse_y_pred = bool(sparse_y_pred)
        self.axis = axis
        self._dtype = dtype

    def _kind(self):
        if self.sparse_y_true:
            return _IOU if self.sparse_y_pred else _IOU_ARGMAX_PRED
        if not self.sparse_y_pred:
            return _IOU_ARGMAX
        raise ValueError(f"{type(self).__name__} compares class ids of y_pred with one-hot "
                         "targets only with sparse_y_pred=False (their rows' highest values). "
                         "Received: sparse_y_true=False, sparse_y_pred=True")

    def _specs(self):
        ignore = -1 if self.ignore_class is None else self.ignore_class
        return [(True, self._kind(), float(ignore), 0, -1, self.num_classes)]

    def _result(self, sums, rows, columns):
        """Keras's _IoUBase.result() from the sums, in float32 as Keras's."""
        n = self.num_classes
        tp, predicted, actual = np.asarray(sums[:3 * n], np.float64).reshape(3, n)
        denominator = (predicted + actual - tp).astype(np.float32)[self.target_class_ids]
        tp = tp.astype(np.float32)[self.target_class_ids]
        valid = denominator > np.float32(1e-9)
        eps = np.float32(1e-7)
        iou = np.where(valid, tp / (denominator + eps), np.float32(0.0))
        return float(np.sum(iou, dtype=np.float32) /
                     (np.float32(np.sum(valid)) + eps))

    # the arguments a subclass fixes itself (left out of its config, as Keras's)
    _implied = ()

    def get_config(self):
        config = {"name": self.name, "dtype": self._dtype, "num_classes": self.num_classes,
                  "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                  "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred,
                  "axis": self.axis}
        return {k: v for k, v in config.items() if k not in self._implied}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class IoU(_IoUBase):
    """Intersection over union of the `target_class_ids` (their mean), from class ids (or
    with sparse_y_true / sparse_y_pred False, the rows' highest values)."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, target_class_ids, name=name or uniquify("io_u"),
                         dtype=dtype, ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                         sparse_y_pred=sparse_y_pred, axis=axis)


def _every_class(num_classes):
    """The target classes of the mean IoUs: all of them (0 for a bad count, refused then)."""
    return list(range(num_classes)) if isinstance(num_classes, int) and num_classes > 0 else [0]


class MeanIoU(_IoUBase):
    """The IoU averaged over every class that occurs."""

    _implied = ("target_class_ids",)

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, _every_class(num_classes),
                         name=name or uniquify("mean_io_u"), dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                         sparse_y_pred=sparse_y_pred, axis=axis)


class OneHotIoU(_IoUBase):
    """IoU with one-hot targets (their rows' highest values) and, by default, the predictions'
    highest values."""

    _implied = ("sparse_y_true",)

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, target_class_ids, name=name or uniquify("one_hot_io_u"),
                         dtype=dtype, ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)


class OneHotMeanIoU(_IoUBase):
    """MeanIoU with one-hot targets and, by default, the predictions' highest values."""

    _implied = ("sparse_y_true", "target_class_ids")

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, _every_class(num_classes),
                         name=name or uniquify("one_hot_mean_io_u"), dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)


class BinaryIoU(_IoUBase):
    """IoU of a binary output over every value: class 1 where y_pred >= threshold; the mean
    over `target_class_ids` ((0,), (1,) or both)."""

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(2, target_class_ids, name=name or uniquify("binary_io_u"),
                         dtype=dtype)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or \
                not np.isfinite(threshold):
            raise ValueError(f"`threshold` must be a number. Received: threshold={threshold!r}")
        self.threshold = float(threshold)

    _implied = ("num_classes", "ignore_class", "sparse_y_true", "sparse_y_pred", "axis")

    def _specs(self):
        return [(True, _BINARY_IOU, self.threshold, 0, -1, 2)]

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class R2Score(Metric):
    """Keras's R2Score of a (batch, columns) output: 1 - residual / total sum of squares per
    column, averaged uniformly or by variance (class_aggregation None: each column's score, an
    array); adjusted for num_regressors."""

    _post = "result"

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score",
                 dtype=None):
        super().__init__(name=name, dtype=dtype)
        if class_aggregation not in (None, "uniform_average", "variance_weighted_average"):
            raise ValueError("Invalid value for argument `class_aggregation`. Expected one of "
                             "{None, 'uniform_average', 'variance_weighted_average'}. "
                             f"Received: class_aggregation={class_aggregation!r}")
        if (isinstance(num_regressors, bool) or not isinstance(num_regressors, (int, np.integer))
                or num_regressors < 0):
            raise ValueError("Invalid value for argument `num_regressors`. Expected a value "
                             f">= 0. Received: num_regressors={num_regressors!r}")
        self.class_aggregation = class_aggregation
        self.num_regressors = int(num_regressors)

    def _specs_for(self, y_pred_ndim, y_pred_last):
        if y_pred_ndim != 2:
            raise ValueError("R2Score expects 2D inputs with shape (batch_size, output_dim). "
                             f"Received: an output of rank {y_pred_ndim}")
        return [(True, _R2_SUMS, 0.0, 0)]

    def _keras_state(self):
        """Keras's num_samples (every value), then, made by the first update, each column's
        squared_sum, sum, residual and count."""
        state = getattr(self, "_state", None)
        if state is None:
            return [("num_samples", 0.0)]
        sums, _, c, rows = state
        total_y, squares, residual, count = np.asarray(sums[:4 * c], np.float64).reshape(4, c)
        return [("num_samples", rows * c), ("squared_sum", squares), ("sum", total_y),
                ("residual", residual), ("count", count)]

    def _result(self, sums, rows, columns):
        """Keras's R2Score.result() from each column's sums (float64)."""
        c = columns
        total_y, squares, residual, count = np.asarray(sums[:4 * c], np.float64).reshape(4, c)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = total_y / count
            total = squares - total_y * mean
            raw = 1.0 - residual / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.class_aggregation is None:  # one score per column
            score = raw
        elif self.class_aggregation == "uniform_average":
            score = float(np.mean(raw))
        else:
            score = float(np.sum(total * raw) / np.sum(total))
        n, p = rows * c, self.num_regressors
        if p != 0:
            if p > n - 1:
                warnings.warn("More independent predictors than datapoints in adjusted R2 "
                              "score. Falling back to standard R2 score.", stacklevel=2)
            elif p == n - 1:
                warnings.warn("Division by zero in Adjusted R2 score. Falling back to "
                              "standard R2 score.", stacklevel=2)
            else:
                score = 1.0 - (1.0 - score) * (n - 1.0) / (n - p - 1.0)
        return score.astype(np.float32) if isinstance(score, np.ndarray) else score

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}


class FBetaScore(Metric):
    """Keras's FBetaScore of a (batch, classes) output: a prediction counts as positive above
    `threshold`, or (threshold None) where it is its row's maximum; per class (average None, an
    array as the log), or averaged 'micro', 'macro' or 'weighted'."""

    _post = "result"

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("Invalid `average` argument value. Expected one of: {None, "
                             f"'micro', 'macro', 'weighted'}}. Received: average={average!r}")
        if not isinstance(beta, float) or not beta > 0.0:
            raise ValueError("Invalid `beta` argument value. It should be a Python float > 0. "
                             f"Received: beta={beta!r}")
        if threshold is not None and (not isinstance(threshold, float) or
                                      not 0.0 < threshold <= 1.0):
            raise ValueError("Invalid `threshold` argument value. It should be a Python float "
                             f"with 0 < threshold <= 1. Received: threshold={threshold!r}")
        self.average = average
        self.beta = beta
        self.threshold = threshold

    def _specs_for(self, y_pred_ndim, y_pred_last):
        if y_pred_ndim != 2:
            raise ValueError(f"{type(self).__name__} expects 2D inputs with shape (batch_size, "
                             f"output_dim). Received: an output of rank {y_pred_ndim}")
        return [(True, _F_SCORE_SUMS, self.threshold or 0.0, 0)]

    def _keras_state(self):
        """Keras's true_positives, false_positives, false_negatives and intermediate_weights
        (the weighted count of each class's targets), made by the first update."""
        state = getattr(self, "_state", None)
        if state is None:
            return []
        c = state[2]
        return list(zip(("true_positives", "false_positives", "false_negatives",
                         "intermediate_weights"),
                        np.asarray(state[0][:4 * c], np.float64).reshape(4, c)))

    def _result(self, sums, rows, columns):
        """Keras's FBetaScore.result() from each class's counts (float64)."""
        tp, fp, fn, positives = np.asarray(sums[:4 * columns], np.float64).reshape(4, columns)
        if self.average == "micro":  # Keras sums over the classes as it counts
            tp, fp, fn, positives = tp.sum(), fp.sum(), fn.sum(), positives.sum()
        eps, b2 = 1e-7, self.beta ** 2
        precision = tp / (tp + fp + eps)
        recall = tp / (tp + fn + eps)
        score = precision * recall / (b2 * precision + recall + eps) * (1.0 + b2)
        if self.average == "weighted":
            return float(np.sum(score * positives / (np.sum(positives) + eps)))
        if self.average is not None:
            return float(np.mean(score))
        return score.astype(np.float32)

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


class F1Score(FBetaScore):
    """Keras's F1Score: FBetaScore with beta 1."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


class _CrossentropyMetric(_LossMetric):
    def __init__(self, name=None, dtype=None, from_logits=False, label_smoothing=0, axis=-1,
                 **kwargs):
        super().__init__(name=name, dtype=dtype)
        if label_smoothing or axis != -1 or any(v is not None for v in kwargs.values()):
            raise ValueError(f"{type(self).__name__} as a metric takes `from_logits` only in "
                             "densitron (no label_smoothing or axis yet). "
                             f"Received: label_smoothing={label_smoothing!r}, axis={axis!r}, "
                             f"{kwargs!r}")
        self.from_logits = bool(from_logits)

    def _loss_object(self):
        return self._loss(from_logits=self.from_logits)

    def get_config(self):
        config = {**super().get_config(), "from_logits": self.from_logits}
        if self._loss is not losses.SparseCategoricalCrossentropy:
            config["label_smoothing"] = 0
        return config


class CategoricalCrossentropy(_CrossentropyMetric):
    _default_name, _loss = "categorical_crossentropy", losses.CategoricalCrossentropy


class BinaryCrossentropy(_CrossentropyMetric):
    _default_name, _loss = "binary_crossentropy", losses.BinaryCrossentropy


class SparseCategoricalCrossentropy(_CrossentropyMetric):
    _default_name, _loss = "sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy

    def __init__(self, name=None, dtype=None, from_logits=False, axis=-1, ignore_class=None):
        super().__init__(name=name, dtype=dtype, from_logits=from_logits, axis=axis)
        # the loss's own (its check of the id, its engine id)
        self._loss_with_ignore = self._loss(from_logits=self.from_logits,
                                            ignore_class=ignore_class)
        self.ignore_class = self._loss_with_ignore._ignored()
        if self.ignore_class is not None:
            # Keras's mask: the mean over the other targets' rows (weighted), over the run
            self._post = "result"

    def _loss_object(self):
        return self._loss_with_ignore

    def _spec(self):
        ignore = np.nan if self.ignore_class is None else float(self.ignore_class)
        return (False, 0, ignore, self._loss_object()._engine_id)

    def _result(self, sums, rows, columns):
        total, count = float(sums[0]), float(sums[1])
        return total / count if count != 0 else 0.0

    def _keras_state(self):
        if self.ignore_class is None:
            return super()._keras_state()
        state = getattr(self, "_state", None)
        return [("total", 0.0 if state is None else float(state[0][0])),
                ("count", 0.0 if state is None else float(state[0][1]))]

    def get_config(self):
        return {**super().get_config(), "ignore_class": self.ignore_class}


_CLASSES = {c.__name__: c for c in (
    CategoricalAccuracy, SparseCategoricalAccuracy, BinaryAccuracy, MeanSquaredError,
    MeanAbsoluteError, RootMeanSquaredError, CategoricalCrossentropy, BinaryCrossentropy,
    SparseCategoricalCrossentropy, Precision, Recall, TruePositives, FalsePositives,
    TrueNegatives, FalseNegatives, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, LogCoshError, Hinge, SquaredHinge, CategoricalHinge,
    KLDivergence, Poisson, CosineSimilarity, TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy, AUC, R2Score, FBetaScore, F1Score, SensitivityAtSpecificity,
    SpecificityAtSensitivity, PrecisionAtRecall, RecallAtPrecision, Accuracy,
    PearsonCorrelation, ConcordanceCorrelation, Mean, Sum, IoU, MeanIoU, OneHotIoU,
    OneHotMeanIoU, BinaryIoU)}
# Keras's other metric strings: the class names in snake case, and its aliases.
_SNAKE = {to_snake_case(name): cls for name, cls in _CLASSES.items()}
_SNAKE.update({"mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
               "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError})


def _values_per_sample(metric, y_true, y_pred, per_value=False):
    """A metric function's values: the metric of each sample, shape y_pred.shape[:-1] (of each
    value with `per_value`, shape y_pred.shape)."""
    y_pred = _predictions(y_pred)
    width = y_pred.shape[-1]
    spec = engine_spec(metric._specs_for(y_pred.ndim, width)[0], False)
    targets = _engine_targets(spec, _float_array(y_true, "y_true"), y_pred, metric.name)
    preds = y_pred.reshape(-1, width)
    if per_value:  # each value a row of its own
        targets, preds = targets.reshape(-1, 1), preds.reshape(-1, 1)
    values = _core._metric_sums_on(spec, targets, preds, None, per_row=True)
    return values.astype(np.float32).reshape(y_pred.shape if per_value else y_pred.shape[:-1])


# Keras's metric functions: per-sample values of (y_true, y_pred), shape y_pred.shape[:-1]; in
# compile(metrics=[...]) each is its metric, logged under the function's name.
def binary_accuracy(y_true, y_pred, threshold=0.5):
    """(Keras's binary_accuracy gives every value's match, not a mean over the last axis.)"""
    return _values_per_sample(BinaryAccuracy(threshold=threshold), y_true, y_pred,
                              per_value=True)


def categorical_accuracy(y_true, y_pred):
    return _values_per_sample(CategoricalAccuracy(), y_true, y_pred)


def sparse_categorical_accuracy(y_true, y_pred):
    return _values_per_sample(SparseCategoricalAccuracy(), y_true, y_pred)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _values_per_sample(TopKCategoricalAccuracy(k=k), y_true, y_pred)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    return _values_per_sample(SparseTopKCategoricalAccuracy(k=k, from_sorted_ids=from_sorted_ids),
                              y_true, y_pred)


# A function given to compile(metrics=...): its metric, logged under the function's name.
_FUNCTIONS = {f.__name__: (f, cls) for f, cls in (
    (binary_accuracy, BinaryAccuracy), (categorical_accuracy, CategoricalAccuracy),
    (sparse_categorical_accuracy, SparseCategoricalAccuracy),
    (top_k_categorical_accuracy, TopKCategoricalAccuracy),
    (sparse_top_k_categorical_accuracy, SparseTopKCategoricalAccuracy),
    (binary_crossentropy, BinaryCrossentropy), (categorical_crossentropy, CategoricalCrossentropy),
    (sparse_categorical_crossentropy, SparseCategoricalCrossentropy),
    (mean_squared_error, MeanSquaredError), (mean_absolute_error, MeanAbsoluteError),
    (mean_absolute_percentage_error, MeanAbsolutePercentageError),
    (mean_squared_logarithmic_error, MeanSquaredLogarithmicError), (hinge, Hinge),
    (squared_hinge, SquaredHinge), (categorical_hinge, CategoricalHinge),
    (kl_divergence, KLDivergence), (poisson, Poisson), (log_cosh, LogCoshError))}


def _with_defaults(cls, identifier, **kwargs):
    """A metric class instantiated with its defaults, for one given by class or by name."""
    if issubclass(cls, _SensitivitySpecificity):  # no default for its constrained value
        raise ValueError(f"{cls.__name__} needs its `{cls._value_arg}`: pass "
                         f"densitron.metrics.{cls.__name__}({cls._value_arg}=...). Received: "
                         f"metric={identifier!r}")
    return cls(**kwargs)


def get(identifier):
    """A Metric for a metric object, its {"class_name", "config"} form or its class name
    (with its defaults, named by that string as in Keras's logs); a metric name (such as
    'accuracy') is returned as is."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return _with_defaults(identifier, identifier)
    if isinstance(identifier, str):
        if identifier in _CLASSES:
            return _with_defaults(_CLASSES[identifier], identifier, name=identifier)
        if identifier in _SNAKE and identifier not in _NAMES:
            return _with_defaults(_SNAKE[identifier], identifier, name=identifier)
        custom = serialization._custom(identifier) if identifier not in _NAMES else None
        if isinstance(custom, type) and issubclass(custom, Metric):
            return custom()
        if callable(custom):  # a metric function registered or in custom_objects
            return MeanMetricWrapper(custom, name=identifier.split(">")[-1])
        return identifier
    if isinstance(identifier, dict):
        return serialization.deserialize(identifier, _CLASSES, "metric")
    entry = _FUNCTIONS.get(getattr(identifier, "__name__", None))
    if entry is not None and entry[0] is identifier:
        return entry[1](name=identifier.__name__)
    if callable(identifier) and not isinstance(identifier, type):
        return MeanMetricWrapper(identifier)
    raise ValueError(
        "Could not interpret metric identifier: pass metric names such as 'accuracy', "
        f"densitron.metrics objects ({', '.join(sorted(_CLASSES))}) or a function of "
        f"(y_true, y_pred). Received: metric={identifier!r}")


def is_custom(identifier):
    """Whether a metric identifier is the name of a metric of the user's own (registered, or
    in the custom_objects in scope)."""
    return (isinstance(identifier, str) and identifier not in _NAMES and
            identifier not in _CLASSES and identifier not in _SNAKE and
            serialization._custom(identifier) is not None)


def is_one(value):
    """Whether a value in compile's metrics is one metric (a name, a Metric, a Metric class or
    a serialized {"class_name", "config"}) rather than a list or dict of them."""
    return (isinstance(value, (str, Metric)) or
            (isinstance(value, type) and issubclass(value, Metric)) or
            (isinstance(value, dict) and "class_name" in value))


def map_structure(structure, fn):
    """compile's metrics (one, a list, a list per output, or a dict per output) with fn
    applied to every single metric."""
    if structure is None:
        return None
    if is_one(structure):
        return fn(structure)
    if isinstance(structure, dict):
        return {k: map_structure(v, fn) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [map_structure(m, fn) for m in structure]
    return fn(structure)  # not a metric: fn (get, serialize) says what was received


def serialize(metric):
    """A metric name as is, a metric object as {"class_name", "config"}, a metric function
    by its (registered) name (found again through custom_objects)."""
    if isinstance(metric, str):
        return metric
    metric = get(metric)
    if isinstance(metric, MeanMetricWrapper) and not isinstance(metric, _BuiltinWrapper):
        return serialization.get_registered_name(metric.fn)
    return serialization.serialize(metric)


def deserialize(config, custom_objects=None):
    """The metric of a serialized form (see get), the classes of `custom_objects` found too."""
    return serialization.deserialize_with(get, config, custom_objects)


# Keras's metrics whose larger values are better (its `_direction` "up") and smaller ("down"),
# by class (snake case), function or string name: EarlyStopping's and the other monitors'
# mode="auto" reads them.
_UP = frozenset({
    "accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "auc", "precision",
    "recall", "f1_score", "fbeta_score", "r2_score", "io_u", "mean_io_u", "binary_io_u",
    "one_hot_io_u", "one_hot_mean_io_u", "precision_at_recall", "recall_at_precision",
    "sensitivity_at_specificity", "specificity_at_sensitivity", "pearson_correlation",
    "concordance_correlation", "cosine_similarity"})
_DOWN = frozenset({
    "mean_squared_error", "mse", "mean_absolute_error", "mae", "mean_absolute_percentage_error",
    "mape", "mean_squared_logarithmic_error", "msle", "root_mean_squared_error",
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "binary_focal_crossentropy", "categorical_focal_crossentropy", "hinge", "squared_hinge",
    "categorical_hinge", "kl_divergence", "kld", "kullback_leibler_divergence", "logcosh",
    "log_cosh", "poisson", "huber", "dice", "tversky"})


def direction(metric):
    """"up" when larger values of the metric are better, "down" when smaller are, None when
    Keras cannot tell (a Mean, a sum, a count, a metric of the user's without `_direction`)."""
    metric = get(metric)
    own = getattr(metric, "_direction", None)
    if own in ("up", "down"):
        return own
    if isinstance(metric, Metric):
        names = [to_snake_case(type(metric).__name__),
                 getattr(getattr(metric, "fn", None), "__name__", None)]
    else:
        names = [metric if isinstance(metric, str) else getattr(metric, "__name__", None)]
    for name in names:
        if name in _UP:
            return "up"
        if name in _DOWN:
            return "down"
    return None


def display_name(metric):
    """The log name of a metric: its name, or the object's `name`."""
    metric = get(metric)
    return metric.name if isinstance(metric, Metric) else metric


def engine_spec(spec, weighted):
    """A metric spec as the engine takes it: class_id and top_k after the loss id, then the
    weighting, then an AUC's thresholds when given (see bind_graph's metric_spec)."""
    return (*spec[:4], *(spec[4:6] or (-1, 0)), weighted, *spec[6:])


def reads_dense_targets(spec):
    """Whether an engine spec reads a target value for every predicted value (not a class id
    per row, as the sparse accuracy and cross-entropy do)."""
    is_accuracy, kind, _, loss_id = spec[:4]
    if is_accuracy:
        return kind not in (_SPARSE, _SPARSE_TOP_K, _IOU_ARGMAX_PRED)
    return loss_id not in (losses.SparseCategoricalCrossentropy._engine_id,
                           losses.SparseCategoricalCrossentropy(from_logits=True)._engine_id)


def has_own_update_state(metric):
    """Whether `metric` is a Metric subclass of the user's with its own update_state (Keras's
    way to write a stateful metric), rather than one of this module's."""
    owner = next(c for c in type(metric).__mro__ if "update_state" in c.__dict__)
    return owner.__module__ != __name__


class StatefulTrace:
    """A Metric subclass's own update_state, traced into the engine: each `assign_add(value)`
    (or assign_sub) of one of its variables becomes engine outputs summed over the batches
    (`parts`): for a scalar variable, value a batch's ops.sum or ops.mean of densitron.ops on
    y_true and y_pred; for a variable of shape (n,), ops.sum(x, axis=0) (or mean) of a (batch,
    n) tensor, one output a column; a number adds to every batch. A log is the metric's own
    result() with its variables reset, then given their sums."""

    def __init__(self, metric, y_true_shape, y_pred_shape):
        from densitron.layers import Input

        self.metric = metric
        self.name = metric.name
        self.variables = metric.variables
        # (a trial on tensors of their own: the trainer traces the values on the model's)
        recorded = self.record(Input(y_true_shape[1:], name="y_true"),
                               Input(y_pred_shape[1:], name="y_pred"))
        # (variable, element or None, sign) of each symbolic value; (variable, number a batch)
        self.symbolic = [(i, c, sign) for i, value, sign, c in recorded
                         if not _is_constant(value)]
        self.constants = [(i, sign * np.asarray(value, np.float64))
                          for i, value, sign, _ in recorded if _is_constant(value)]
        if not self.symbolic:
            raise ValueError(
                f"Metric {metric.name!r}: its update_state must add to a variable a value "
                "computed from y_true and y_pred with densitron.ops (assign_add(ops.sum(...))) "
                "for the engine to compute. Received: "
                f"{'only numbers added' if recorded else 'no assign_add of its variables'}")
        self.parts = [_StatePart(self, j) for j in range(len(self.symbolic))]

    def call(self, y_true, y_pred):
        """The symbolic values update_state adds, in order: traced once by the trainer, each
        an engine output of its own (`parts`)."""
        return [value for _, value, _, _ in self.record(y_true, y_pred)
                if not _is_constant(value)]

    def record(self, y_true, y_pred):
        """Runs update_state on symbolic tensors, its variables' assign_add and assign_sub
        recording (variable index, value, sign, element) instead of adding (a BatchColumns
        value as one record a column); returns the records."""
        from densitron.layers.layer import KerasTensor
        from densitron.layers.math_ops import batch_constant
        from densitron.ops import BatchColumns, BatchReduction

        name = self.metric.name
        recorded = []

        def recorder(i, sign):
            def add(value):
                var = self.variables[i]
                if isinstance(value, BatchColumns):
                    if var.shape != value.shape:
                        raise ValueError(
                            f"Metric {name!r}: {value.mode}(x, axis=0) of {value.shape[0]} "
                            f"columns adds to a variable of shape {value.shape}. Received: "
                            f"assign_add on variable {var.name!r} of shape {var.shape}")
                    recorded.extend((i, col, sign, c) for c, col in enumerate(value.columns()))
                    return
                if _is_constant(value):
                    recorded.append((i, value, sign, None))
                    return
                if not isinstance(value, (KerasTensor, BatchReduction)):
                    raise TypeError(f"Metric {name!r}: assign_add takes a tensor computed "
                                    f"with densitron.ops or a number. Received: {value!r}")
                if var.value.size != 1:
                    raise ValueError(
                        f"Metric {name!r}: a variable of shape {var.shape} grows by "
                        f"ops.sum(x, axis=0) (or mean) of a (batch, n) tensor, one value a "
                        f"column. Received: assign_add of one value a batch on variable "
                        f"{var.name!r}")
                if isinstance(value, KerasTensor) and not batch_constant(value):
                    raise ValueError(
                        f"Metric {name!r}: a scalar variable adds one value a batch, such as "
                        f"ops.sum(values) or ops.mean(values). Received: assign_add of a "
                        f"tensor of shape {value.shape}")
                recorded.append((i, value, sign, None))
            return add

        def assign(value):
            raise ValueError(
                f"Metric {name!r}: densitron traces update_state into its engine, where a "
                "variable can only grow by a batch's value: assign_add(value) or "
                "assign_sub(value), not assign. Received: assign")

        for i, var in enumerate(self.variables):
            var.assign_add, var.assign_sub = recorder(i, 1.0), recorder(i, -1.0)
            var.assign = assign
        try:
            self.metric.update_state(y_true, y_pred)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"densitron runs the metric {name!r} in its engine by tracing its "
                "update_state on symbolic tensors once: write it with densitron.ops, each "
                "variable growing by assign_add(ops.sum(...)). Tracing it failed: "
                f"{e} Received: metric {type(self.metric).__name__}") from e
        finally:
            for var in self.variables:
                for attr in ("assign_add", "assign_sub", "assign"):
                    var.__dict__.pop(attr, None)
        return recorded

    def log(self, sums, batches):
        """The metric's result() after a run whose parts summed to `sums` over `batches`."""
        self.metric.reset_state()
        totals = [var.value.astype(np.float64) for var in self.variables]
        for (i, c, sign), total in zip(self.symbolic, sums):
            if c is None:
                totals[i] = totals[i] + sign * total
            else:
                totals[i].flat[c] += sign * total
        for i, value in self.constants:
            totals[i] = totals[i] + value * batches
        for var, total in zip(self.variables, totals):
            var.assign(total)
        value = self.metric.result()
        try:
            result = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"Metric {self.metric.name!r}: result() must give one number for "
                             f"the logs. Received: {value!r}") from None
        if result.size != 1:
            raise ValueError(f"Metric {self.metric.name!r}: result() must give one value for "
                             f"the logs. Received: a result of shape {result.shape}")
        return float(result.reshape(()))


def _is_constant(value):
    """A number (or a one-value array) that update_state adds every batch."""
    return is_number(value) or (isinstance(value, (np.ndarray, np.generic)) and
                                np.size(value) == 1)


class _StatePart:
    """Value j of a StatefulTrace (its `group`), an engine output of the trainer's traced
    metrics; the group's values are traced once, together."""

    def __init__(self, group, j):
        self.group, self.j = group, j
        self.name = group.name


def resolve(name, loss, y_true_ndim, y_true_last, y_pred_ndim, y_pred_last):
    """Returns (display name, engine spec tuples (is_accuracy, kind, threshold, loss_id), how
    the log follows from their sums: Metric._post, or a function of the sums from there)."""
    name = get(name)
    if isinstance(name, MeanMetricWrapper):  # traced into nodes: the engine's values
        return name.name, [], name
    if isinstance(name, Metric) and has_own_update_state(name):  # traced by the trainer
        return name.name, [], name
    if isinstance(name, Metric):  # (an AUC, R2Score compute their logs from their sums)
        post = name._post
        if post == "result":
            post = functools.partial(name._result, columns=int(y_pred_last))
        return name.name, name._specs_for(y_pred_ndim, y_pred_last), post
    if name in ("accuracy", "acc"):
        return name, [(True, resolve_accuracy(loss, y_true_ndim, y_true_last, y_pred_ndim,
                                                      y_pred_last), 0.5, 0)], "mean"
    if name in _ACCURACIES:
        return name, [(True, _ACCURACIES[name], 0.5, 0)], "mean"
    if name in _LOSS_METRICS:
        return name, [(False, 0, np.nan, losses.get(_LOSS_METRICS[name])._engine_id)], "mean"
    raise ValueError(
        "Unknown metric name. Expected one of "
        f"{sorted({*_NAMES, *_SNAKE})} or a metric class "
        f"name ({', '.join(sorted(_CLASSES))}), or the name of a metric function of your own "
        "given in load_model's custom_objects or registered with register_keras_serializable. "
        f"Received: metric={name!r}"
    )
