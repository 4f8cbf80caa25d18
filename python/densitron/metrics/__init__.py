"""Metrics by Keras name, resolved against an output's shapes and computed by the engine."""

from densitron import losses

# Engine ids: must match densitron::AccuracyKind in cpp/include/densitron/ops.h.
_CATEGORICAL, _SPARSE, _BINARY = 0, 1, 2

_ACCURACIES = {
    "categorical_accuracy": _CATEGORICAL,
    "sparse_categorical_accuracy": _SPARSE,
    "binary_accuracy": _BINARY,
}
_LOSS_METRICS = {
    "mse": "mean_squared_error",
    "mean_squared_error": "mean_squared_error",
    "mae": "mean_absolute_error",
    "mean_absolute_error": "mean_absolute_error",
    "categorical_crossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
    "binary_crossentropy": "binary_crossentropy",
}


def resolve_accuracy(loss, y_true_ndim, y_true_last, y_pred_ndim, y_pred_last):
    """Keras's choice for 'accuracy': by the shapes of y_true and y_pred."""
    if y_pred_last == 1:
        return _BINARY
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        return _SPARSE
    if y_true_ndim < y_pred_ndim or (y_true_last == 1 and y_pred_last > 1):
        return _SPARSE
    return _CATEGORICAL


def display_name(name):
    """The log name of a metric given by name (the name itself)."""
    return name if isinstance(name, str) else repr(name)


def resolve(name, loss, y_true_ndim, y_true_last, y_pred_ndim, y_pred_last):
    """Returns (display name, engine spec tuple (is_accuracy, kind, threshold, loss_id))."""
    if not isinstance(name, str):
        raise ValueError(
            "densitron computes metrics in its C++ engine: pass metric names such as "
            f"'accuracy' or 'mse'. Received: metric={name!r}"
        )
    if name in ("accuracy", "acc"):
        return name, (True, resolve_accuracy(loss, y_true_ndim, y_true_last, y_pred_ndim,
                                                     y_pred_last), 0.5, 0)
    if name in _ACCURACIES:
        return name, (True, _ACCURACIES[name], 0.5, 0)
    if name in _LOSS_METRICS:
        return name, (False, 0, 0.5, losses.get(_LOSS_METRICS[name])._engine_id)
    raise ValueError(
        "Unknown metric name. Expected one of "
        f"{sorted(['accuracy', 'acc', *_ACCURACIES, *_LOSS_METRICS])}. "
        f"Received: metric={name!r}"
    )
