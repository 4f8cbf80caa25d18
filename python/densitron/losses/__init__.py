"""Losses by Keras name; the C++ engine computes them (reduction: mean over the batch)."""

import numpy as np

from densitron.utils import serialization

# Engine ids: must match densitron::Loss in cpp/include/densitron/ops.h.
_CCE, _SCCE, _BCE, _MSE, _MAE = 0, 1, 2, 3, 4
_LOGITS = {_CCE: 5, _SCCE: 6, _BCE: 7}  # the same losses on logits (from_logits=True)


class Loss:
    _engine_id = None
    _default_name = None

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if reduction != "sum_over_batch_size":
            raise ValueError(
                "densitron losses reduce with 'sum_over_batch_size' (the Keras default). "
                f"Received: reduction={reduction!r}"
            )
        self.name = name or self._default_name
        self.reduction = reduction

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _ProbabilisticLoss(Loss):
    """Cross-entropies: on probabilities (clipped to [eps, 1-eps], as Keras), or on logits with
    `from_logits=True` (softmax or sigmoid applied inside the loss, without clipping)."""

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size", **kwargs):
        super().__init__(name=name, reduction=reduction)
        axis = kwargs.pop("axis", -1)
        if axis != -1:
            raise ValueError(f"densitron's cross-entropies reduce over the last axis. "
                             f"Received: axis={axis!r}")
        kwargs.pop("ignore_class", None)
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

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(_SmoothedLoss):
    _engine_id = _CCE
    _default_name = "categorical_crossentropy"


class SparseCategoricalCrossentropy(_ProbabilisticLoss):
    _engine_id = _SCCE
    _default_name = "sparse_categorical_crossentropy"


class BinaryCrossentropy(_SmoothedLoss):
    _engine_id = _BCE
    _default_name = "binary_crossentropy"


class MeanSquaredError(Loss):
    _engine_id = _MSE
    _default_name = "mean_squared_error"


class MeanAbsoluteError(Loss):
    _engine_id = _MAE
    _default_name = "mean_absolute_error"


_CLASSES = {c.__name__: c for c in (CategoricalCrossentropy, SparseCategoricalCrossentropy,
                                     BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError)}

_BY_NAME = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}


def serialize(loss):
    """A loss as saved in a model file: its name when given by name, else Keras's
    {"class_name", "config"} form (so from_logits and label_smoothing survive)."""
    if isinstance(loss, str) or loss is None:
        return loss
    return serialization.serialize(get(loss))  # a Loss class given uninstantiated too


def deserialize(config):
    """The loss of `serialize`'s {"class_name", "config"} form."""
    return serialization.deserialize(config, _CLASSES, "loss")


def get(identifier):
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier)
        if cls is None:
            raise ValueError(
                f"Could not interpret loss identifier. Expected one of {sorted(_BY_NAME)}. "
                f"Received: loss={identifier!r}"
            )
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    raise ValueError(
        "densitron computes losses in its C++ engine: pass a loss name or a "
        f"densitron.losses class instance. Received: loss={identifier!r}"
    )


__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "deserialize",
    "get",
    "serialize",
]
