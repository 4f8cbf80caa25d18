"""Turns user data into the engine's form once per call: C-contiguous float32 arrays (float64,
int32, int64 and uint8 inputs as they are), one per model input and per output target, all
with the same number of rows. Every check raises a ValueError or TypeError that names the
argument and what was received."""

import math
import sys
import warnings

import numpy as np

from densitron import _core
from densitron import losses as losses_mod
from densitron._checks import is_number


def is_sparse(value):
    """True for a SciPy sparse matrix or array (any format); SciPy is not imported for it."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(value)


class SparseInput:
    """A sparse model input in the engine's form: SciPy's CSR arrays (int64 `indptr`, int32
    `indices`, float32 `data`, C-contiguous) and the matrix's `shape`. The engine reads it in
    place where it feeds only Dense layers, and otherwise writes each row out densely as it
    gathers the batch, so x is never densified whole. A row slice shares the arrays."""

    __slots__ = ("indptr", "indices", "data", "shape")

    def __init__(self, indptr, indices, data, shape):
        self.indptr, self.indices, self.data, self.shape = indptr, indices, data, shape

    @classmethod
    def from_scipy(cls, m, arg):
        if m.ndim != 2:
            raise ValueError(f"A sparse `{arg}` must be 2-D (samples, features). "
                             f"Received: {arg} with shape {m.shape}")
        if m.dtype.kind not in "biuf":
            raise TypeError(f"`{arg}` must hold numbers (bool, integer or float). "
                            f"Received: {arg} with dtype {m.dtype}")
        if m.shape[1] >= 2**31:
            raise ValueError(f"A sparse `{arg}` may have at most 2**31 - 1 columns. "
                             f"Received: {arg} with shape {m.shape}")
        m = m.tocsr()
        return cls(np.ascontiguousarray(m.indptr, dtype=np.int64),
                   np.ascontiguousarray(m.indices, dtype=np.int32),
                   _to_float32(m.data), tuple(int(d) for d in m.shape))

    @property
    def ndim(self):
        return 2

    def __getitem__(self, rows):
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("a SparseInput takes row slices only")
        lo, hi, _ = rows.indices(self.shape[0])
        hi = max(lo, hi)
        p = self.indptr[lo:hi + 1]
        e0, e1 = int(p[0]), int(p[-1])
        return SparseInput(p - e0, self.indices[e0:e1], self.data[e0:e1],
                           (hi - lo, self.shape[1]))

    def toarray(self):
        out = np.zeros(self.shape, dtype=np.float32)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        np.add.at(out, (rows, self.indices), self.data)
        return out

    def first_nan_row(self):
        """The first row holding a stored NaN, or -1."""
        bad = np.flatnonzero(np.isnan(self.data))
        if not bad.size:
            return -1
        return int(np.searchsorted(self.indptr, bad[0], side="right")) - 1


def rows_of(value):
    """The sample count of one array-like input (sparse matrices included)."""
    if is_sparse(value) or isinstance(value, SparseInput):
        return value.shape[0]
    return len(np.asarray(value))


def _as_numeric_array(value, arg):
    """A NumPy array of numbers; SciPy sparse matrices are made dense (for targets and
    weights; a sparse x stays sparse, see SparseInput)."""
    if is_sparse(value):
        value = value.toarray()
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"`{arg}` must be a numeric array. Received: {arg}={value!r}")
    try:
        a = np.asarray(value)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"`{arg}` could not be read as an array ({e}). "
                         f"Received: {arg} of type {type(value).__name__}") from None
    if a.dtype.kind == "O" and _numeric_frame(value):
        # a DataFrame of bool columns beside numeric ones (pd.get_dummies'), as Keras takes it
        a = value.to_numpy(dtype=np.float64)
    if a.dtype.kind not in "biuf":
        raise TypeError(
            f"`{arg}` must hold numbers (bool, integer or float). "
            f"Received: {arg} with dtype {a.dtype}"
        )
    return a


def _numeric_frame(value):
    """Whether value is a pandas DataFrame whose columns all hold numbers or bools."""
    dtypes = getattr(value, "dtypes", None)
    if dtypes is None or not hasattr(value, "to_numpy") or not hasattr(dtypes, "__iter__"):
        return False
    return all(getattr(d, "kind", "O") in "biuf" for d in dtypes)


def _to_float32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


# The input types the engine reads as they are (see _input_array).
_RAW_INPUT_TYPES = (np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64),
                    np.dtype(np.uint8))


def _input_array(a):
    """A dense model input as the engine reads it: C-contiguous float32, or a C-contiguous
    float64, int32, int64 or uint8 array as it is (the engine converts its rows to float32 as
    it gathers them, rounding as astype would: no converted copy of x, and no pass over it)."""
    if a.dtype in _RAW_INPUT_TYPES and a.flags.c_contiguous:
        return a
    return _to_float32(a)


def _check_finite(a, arg, first_row=0):
    """NaN is refused in training data: one threaded C++ read of the array (float32 arrays
    here are C-contiguous, converted by _to_float32)."""
    if isinstance(a, SparseInput):
        row = a.first_nan_row()
        if row >= 0:
            raise nan_error(arg, first_row + row)
        return
    if not a.size:
        return
    if a.dtype == np.float32 and a.flags.c_contiguous:
        index = _core._first_nan(a)
    else:
        index = int(np.argmax(np.isnan(a.ravel()))) if np.isnan(a.min()) else -1
    if index >= 0:
        raise nan_error(arg, first_row + index // max(1, a.size // a.shape[0]))


def nan_error(arg, row, cls=ValueError, batch=None):
    """The error for a NaN at `row` of `arg`; of a source's batch `batch` (counted from 0)
    when given. It keeps (arg, row) as `nan_at`, for the batch to be named where it is
    known."""
    where = f"row {row}" if batch is None else f"row {row} of batch {batch}"
    error = cls(
        f"`{arg}` contains NaN values; densitron refuses to train or evaluate on them "
        f"(the loss would become NaN). Received: {arg} with NaN at {where}"
    )
    error.nan_at = (arg, row)
    return error


def input_name(k, count, arg="x"):
    """How the user names input k of count: `x`, or `x[k]` for a model with several."""
    return arg if count == 1 else f"{arg}[{k}]"


class EngineNaNError(ValueError):
    """A NaN the engine met in the inputs while gathering a batch's rows (fit restores the
    model's state from before its first step: see Trainer._train_epochs_or_restore)."""


def engine_nan_error(xs, nan, batch=None):
    """The error for the engine's report of a NaN met while gathering rows: (input, row), of
    a source's batch `batch` when given."""
    return nan_error(input_name(nan[0], len(xs)), nan[1], EngineNaNError, batch)


def _split_structure(value, names, arg, extra_ok=False):
    """Splits x (or y) into one entry per model input (output): array, list/tuple or dict
    (with `extra_ok`, a dict of inputs may hold other keys too, left out with Keras's
    warning)."""
    n = len(names)
    if isinstance(value, dict) and not is_sparse(value):  # (SciPy's dok_matrix is a dict)
        missing = [k for k in names if k not in value]
        extra = [k for k in value if k not in names]
        if missing or (extra and not extra_ok):
            raise ValueError(
                f"`{arg}` as a dict must have {'the' if extra_ok else 'exactly the'} keys "
                f"{names}. Received: keys {sorted(value)}"
            )
        if extra:
            warnings.warn(f"The structure of `{arg}` doesn't match the expected structure: "
                          f"the keys {extra} are not the model's inputs and are left out. "
                          f"Expected: {names}", stacklevel=4)
        return [value[k] for k in names]
    if isinstance(value, (list, tuple)) and n > 1:
        if len(value) != n:
            raise ValueError(
                f"The model has {n} {'inputs' if arg == 'x' else 'outputs'}, so `{arg}` must "
                f"be a list of {n} arrays. Received: a list of {len(value)} entries"
            )
        return list(value)
    if n > 1:
        raise ValueError(
            f"The model has {n} {'inputs' if arg == 'x' else 'outputs'}, so `{arg}` must be a "
            f"list or dict of {n} arrays. Received: {arg} of type {type(value).__name__}"
        )
    if isinstance(value, (list, tuple)) and len(value) == 1 and (
            hasattr(value[0], "shape") or is_sparse(value[0])):
        return [value[0]]  # [array] for the one input (output), as Keras takes it
    return [value]


def _engine_ready(value, shape, raw=False):
    """value as the engine reads it, (rows, features), when it needs no conversion: a
    float32 (or, for an input, `raw`, one of _RAW_INPUT_TYPES) C-contiguous NumPy array of
    shape (rows >= 1, *shape). Otherwise None, and the general path converts and checks it.
    (A generator's batches mostly are such arrays: this skips the general path's work on
    every one of them.)"""
    if (type(value) is np.ndarray and value.flags.c_contiguous
            and (value.dtype == np.float32 or (raw and value.dtype in _RAW_INPUT_TYPES))
            and value.ndim == len(shape) + 1 and value.shape[1:] == shape and value.shape[0]):
        return value.reshape(value.shape[0], -1)
    return None


def standardize_x(model, x, arg="x", reject_nan=True, predicting=False):
    """Returns a list of (rows, width) float32 arrays, or others the engine reads as they are
    (see _input_array), one per model input (a SparseInput for a SciPy sparse matrix).
    Training and evaluation refuse NaN (`reject_nan`); prediction passes it through to NaN
    outputs, and `fit` and `evaluate` leave the check to the engine, which makes it as it
    gathers the rows. A sparse x is checked here (its stored values, one pass) except for
    `predicting`: the engine reads it in place, without gathering it."""
    if x is None:
        raise ValueError(f"`{arg}` is required. Received: {arg}=None")
    if len(model._input_shapes) == 1:
        a = _engine_ready(x, model._input_shapes[0], raw=True)
        if a is not None:
            if reject_nan:
                _check_finite(a, arg)
            return [a]
    parts = _split_structure(x, model._input_names, arg, extra_ok=True)
    out = []
    for k, (part, shape) in enumerate(zip(parts, model._input_shapes)):
        name = input_name(k, len(parts), arg)
        if is_sparse(part):
            a = SparseInput.from_scipy(part, name)
            if len(shape) != 1 or a.shape[1] != shape[0] or (a.shape[0] == 0
                                                             and not predicting):
                raise ValueError(
                    f"Input {k} of model \"{model.name}\" is incompatible: expected shape "
                    f"{(None, *shape)}, but received a sparse input with shape {a.shape}. "
                    f"Received: {name} with shape {a.shape}"
                )
            if not predicting:
                _check_finite(a, name)
            out.append(a)
            continue
        a = _as_numeric_array(part, name)
        if a.ndim == 1 and shape == (1,):
            a = a.reshape(-1, 1)
        if a.ndim < 1 or tuple(a.shape[1:]) != shape:
            raise ValueError(
                f"Input {k} of model \"{model.name}\" is incompatible: expected shape "
                f"{(None, *shape)}, but received input with shape {a.shape}. "
                f"Received: {name} with shape {a.shape}"
            )
        if a.shape[0] == 0 and not predicting:  # (predict gives Keras's (0, ...) outputs)
            raise ValueError(
                f"Expected `{name}` to hold at least one sample. Received: {name} with shape "
                f"{a.shape}"
            )
        a = _input_array(a.reshape(a.shape[0], math.prod(shape)))  # (-1 fails on no rows)
        if reject_nan:
            _check_finite(a, name)
        out.append(a)
    return out


# A dense input this sparse (multi-hot or count vectors: Keras's IMDB and Reuters examples) is
# trained on as CSR when fit runs two epochs or more: the sparse path costs per stored value,
# and the conversion about one dense epoch. Measured (Dense 16-256 units, batch 32-128), epochs
# faster by: 10,000 features 3-4.3x at 1% stored, 1.8-2.1x at 2%, 1.4-1.6x at 3%; 2,000
# features 2.6x at 1%, even at 2%, 0.85x at 3%.
_SPARSE_MAX_FRACTION = 0.02  # from _SPARSE_WIDE_FEATURES features; half that below
_SPARSE_WIDE_FEATURES = 5000
_SPARSE_MIN_FEATURES = 1024
_SPARSE_MIN_VALUES = 1 << 22
_SPARSE_SAMPLE_ROWS = 64


def _sparse_limit(a):
    """The largest fraction of stored values at which an input of a's width is made sparse."""
    wide = a.shape[1] >= _SPARSE_WIDE_FEATURES
    return _SPARSE_MAX_FRACTION if wide else _SPARSE_MAX_FRACTION / 2


def sparsify_inputs(model, xs, arg="x"):
    """xs with each dense input that is mostly zeros (see _sparse_limit), wide, large, and
    read only by Dense layers made a SparseInput (one threaded pass over it). A NaN in one
    raises here."""
    out = []
    for k, a in enumerate(xs):
        if (type(a) is np.ndarray and a.ndim == 2 and _SPARSE_MIN_FEATURES <= a.shape[1] < 2**31
                and a.size >= _SPARSE_MIN_VALUES and len(model._input_shapes[k]) == 1
                and (a.dtype == np.float32 or a.dtype in _RAW_INPUT_TYPES)
                and a.flags.c_contiguous and model._graph.reads_sparse_in_place(k, True)
                and _core._stored_fraction(a, _SPARSE_SAMPLE_ROWS) <= _sparse_limit(a)):
            indptr, indices, data, nan_row = _core._dense_to_csr(a)
            if nan_row >= 0:
                raise nan_error(input_name(k, len(xs), arg), nan_row)
            if data.size <= 2 * _sparse_limit(a) * a.size:  # (the sample misjudged it)
                a = SparseInput(indptr, indices, data, a.shape)
        out.append(a)
    return out


def _class_ids_ready(y, classes):
    """y as the engine reads a sparse cross-entropy's class ids, (rows, 1) float32, when it is
    a NumPy integer array of shape (rows >= 1,) or (rows, 1) with every id in [0, classes).
    Otherwise None, and the general path converts, checks and words the error. (A
    generator's label batches mostly are such arrays: this skips the general path's work.)"""
    if (type(y) is np.ndarray and y.dtype.kind in "iu"
            and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)) and y.shape[0]
            and classes <= 1 << 24):  # (ids below 2^24 are exact in float32)
        a = y.reshape(-1, 1).astype(np.float32)
        if not _core._any_bad_id(a, classes):
            return a
    return None


def unread_targets(model):
    """The indices of the outputs whose targets nothing reads: no loss (compile's None), no
    metric. Keras ignores the targets given for them (any shape, NaN), counting their rows."""
    if not any(isinstance(loss, losses_mod._NoLoss) for loss in model._compiled_losses):
        return set()  # (the common case, checked first: a fit on batches asks every batch)
    plain = model._metrics_per_output(getattr(model, "_compile_metrics", None))
    weighted = model._metrics_per_output(getattr(model, "_compile_weighted_metrics", None),
                                         "weighted_metrics")
    return {k for k, loss in enumerate(model._compiled_losses)
            if isinstance(loss, losses_mod._NoLoss) and not plain[k] and not weighted[k]}


def standardize_y(model, y, arg="y"):
    """Returns a list of float32 target arrays, one per output, shaped for the engine."""
    if y is None:
        raise ValueError(f"`{arg}` is required for training and evaluation. Received: {arg}=None")
    if len(model._output_shapes) == 1:
        shape = model._output_shapes[0]
        if not isinstance(model._compiled_losses[0], losses_mod.SparseCategoricalCrossentropy):
            a = _engine_ready(y, shape)
            if a is not None:
                _check_finite(a, arg)
                return [a]
        elif len(shape) == 1:
            a = _class_ids_ready(y, shape[0])
            if a is not None:
                return [a]
    parts = _split_structure(y, model._output_names, arg)
    unread = unread_targets(model)
    out, unread_rows = [], {}
    for k, part in enumerate(parts):
        name = input_name(k, len(parts), arg)
        loss = model._compiled_losses[k]
        shape = model._output_shapes[k]
        if part is None and isinstance(loss, losses_mod._NoLoss):
            out.append(None)  # (an output without a loss: no targets, as Keras allows)
            continue
        a = _as_numeric_array(part, name)
        if a.ndim == 0 or a.shape[0] == 0:
            raise ValueError(f"Expected `{name}` to hold at least one sample. "
                             f"Received: {name} with shape {a.shape}")
        if k in unread:  # (read for its rows only: stand-in zeros of as many rows follow)
            unread_rows[k] = a.shape[0]
            out.append(None)
            continue
        if isinstance(loss, losses_mod.SparseCategoricalCrossentropy):
            lead = shape[:-1]
            if tuple(a.shape[1:]) not in (lead, lead + (1,)):
                raise ValueError(
                    f"sparse_categorical_crossentropy takes integer class ids of shape "
                    f"{(None, *lead)} or {(None, *lead, 1)} for an output of shape "
                    f"{(None, *shape)}. Received: {name} with shape {a.shape}"
                )
            a = a.reshape(a.shape[0], -1)
            if a.dtype.kind == "f":
                _check_finite(a, name)
            losses_mod.check_class_ids(a, shape[-1], name, loss.ignore_class)
            out.append(_to_float32(a))
            continue
        if a.ndim == 1 and shape == (1,):
            a = a.reshape(-1, 1)
        if losses_mod.traced_function(loss) is not None:  # a Python loss reads y as it is
            a = _to_float32(a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1))
            _check_finite(a, name)
            out.append(a)
            continue
        a = losses_mod.fit_targets(a, shape, loss)  # (Keras's reading of other shapes)
        if tuple(a.shape[1:]) != shape:
            raise ValueError(
                f"Arguments `target` and `output` must have the same shape. target.shape="
                f"{a.shape}, output.shape={(None, *shape)}. Received: {name} with shape {a.shape}"
            )
        a = _to_float32(a.reshape(a.shape[0], -1))
        _check_finite(a, name)
        out.append(a)
    rows = next((a.shape[0] for a in out if a is not None), None)
    if rows is None:
        raise ValueError(f"`{arg}` must hold the targets of an output that has a loss. "
                         f"Received: {arg}={y!r}")
    # (an output without a loss reads no targets: zeros of its shape stand in)
    return [np.zeros((unread_rows.get(k, rows), int(np.prod(model._output_shapes[k]))),
                     np.float32) if a is None else a for k, a in enumerate(out)]


def standardize_sample_weight(model, sample_weight, rows, arg="sample_weight"):
    """None, or one float32 array (or None) per output: a single array applies to every
    output; a list or dict gives one per output. Each is (rows,), one weight per sample, or,
    for an output of shape (rows, T, ..., C), Keras's temporal weights (rows, T, ...): one per
    loss row, returned as (rows, T·...)."""
    if sample_weight is None:
        return None
    names = model._output_names
    if isinstance(sample_weight, dict) or (isinstance(sample_weight, (list, tuple))
                                           and len(names) > 1 and len(sample_weight) == len(names)
                                           and not np.isscalar(sample_weight[0])):
        parts = _split_structure(sample_weight, names, arg)
    else:
        parts = [sample_weight] * len(names)
    out = []
    for k, part in enumerate(parts):
        if part is None:
            out.append(None)
            continue
        name = input_name(k, len(parts), arg)
        a = _as_numeric_array(part, name)
        inner = tuple(model._output_shapes[k][:-1])  # an output's loss rows per sample
        if a.ndim >= 2 and a.shape[-1] == 1 and a.shape[1:-1] in ((), inner):
            a = a[..., 0]
        if inner and a.shape == (rows, *inner):
            a = a.reshape(rows, -1)
        elif a.shape != (rows,):
            temporal = f" or, one per loss row, {(rows, *inner)}" if inner else ""
            raise ValueError(f"`{name}` must hold one weight per sample: shape ({rows},)"
                             f"{temporal}. Received: {name} with shape {a.shape}")
        a = _to_float32(a)
        _check_finite(a, name)
        out.append(a)
    return out


def class_weights_to_sample_weights(model, class_weight, ys):
    """Keras's class_weight: each sample weighted by its class's entry (1 when absent)."""
    if not isinstance(class_weight, dict):
        raise ValueError("`class_weight` must be a dict mapping class indices to weights. "
                         f"Received: class_weight={class_weight!r}")
    if len(ys) != 1:
        raise ValueError("`class_weight` is only supported for models with a single output. "
                         f"Received: a model with {len(ys)} outputs")
    if any(getattr(t, "_mask", None) is not None for t in getattr(model, "outputs", ()) or ()):
        # (Keras 3.15 takes one class a sample, the argmax of the steps' labels)
        raise ValueError("`class_weight` weighs one class id a sample; the output carries a "
                         "Keras mask over its steps: weigh the steps with a sample_weight of "
                         "shape (samples, steps) instead. Received: class_weight="
                         f"{class_weight!r} for a masked output")
    y = ys[0]
    if isinstance(model._compiled_losses[0], losses_mod.SparseCategoricalCrossentropy):
        classes = y[:, 0]
    elif y.shape[1] > 1:
        classes = np.argmax(y, axis=1)
    else:
        classes = np.round(y[:, 0])
    classes = classes.astype(np.int64)
    for c, w in class_weight.items():
        if not is_number(w):
            raise ValueError("`class_weight` values must be numbers. "
                             f"Received: class_weight[{c!r}]={w!r}")
    # Keras's class_weight.get(int(class_id), 1.0): a key weighs the class id it equals as a
    # dict key (0.0 and np.int64(0) weigh class 0, a negative key a hinge loss's -1 labels);
    # one no integer equals ("0", 2.5) weighs nothing, as in Keras, and is warned of here.
    unmatched = [c for c in class_weight
                 if not (isinstance(c, (int, np.integer, np.bool_))
                         or (is_number(c) and float(c).is_integer()))]
    if unmatched:
        warnings.warn(f"`class_weight` keys are matched to integer class ids, as Keras matches "
                      f"them: {unmatched} match none and weigh no samples. Received: "
                      f"class_weight={class_weight!r}", stacklevel=4)
    ids, inverse = np.unique(classes, return_inverse=True)
    table = np.array([float(class_weight.get(int(c), 1.0)) for c in ids], np.float32)
    return [np.ascontiguousarray(table[inverse.reshape(-1)])]


def check_cardinality(xs, ys):
    rows = {a.shape[0] for a in xs + ys}
    if len(rows) > 1:
        xs_sizes = ", ".join(str(a.shape[0]) for a in xs)
        ys_sizes = ", ".join(str(a.shape[0]) for a in ys)
        raise ValueError(
            "Data cardinality is ambiguous. Make sure all arrays contain the same number of "
            f"samples. Received: 'x' sizes: {xs_sizes}, 'y' sizes: {ys_sizes}"
        )
    return rows.pop()


def bools_as_ints(*values, false=True):
    """values with a bool (Python's or NumPy's) as the integer it is, as Keras takes them
    where it takes an integer: fit(verbose=True, epochs=True, batch_size=True) are 1. With
    `false` False, a False stays as given (refused by name where 0 would be: batch_size)."""
    return [int(v) if isinstance(v, (bool, np.bool_)) and (v or false) else v
            for v in values]


def check_batch_size(batch_size, arg="batch_size"):
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"`{arg}` must be a positive integer. Received: {arg}={batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={batch_size}")
    return int(min(batch_size, 2**62))  # (beyond any row count: one batch; fits the engine)


def check_steps(steps, arg):
    """A step count argument: None or a positive integer."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer))
                              or steps < 1):
        raise ValueError(f"`{arg}` must be a positive integer or None. Received: {arg}={steps!r}")
    return None if steps is None else int(steps)


def batch_for_steps(batch_size, steps, rows, arg="batch_size"):
    """Rows per batch of arrays, as Keras's array adapter sets it: the given batch size, else
    enough for `steps` batches to cover the rows, else 32."""
    if batch_size is None and steps is not None:
        return max(1, -(-rows // steps))
    return check_batch_size(batch_size, arg)


def head_for_steps(arrays, rows, batch_size, steps):
    """The arrays cut to their first `steps` batches (Keras's `steps` over arrays), and the
    batch count; warns as Keras does when there are fewer batches than `steps`."""
    batches = -(-rows // batch_size)
    if steps is None:
        return arrays, batches
    if steps > batches:
        warn_ran_out()
        return arrays, batches
    keep = min(rows, steps * batch_size)
    return [None if a is None else [b if b is None else b[:keep] for b in a]
            for a in arrays], steps


def warn_ran_out():
    warnings.warn("Your input ran out of data; interrupting training. Make sure that your "
                  "dataset or generator can generate at least `steps_per_epoch * epochs` "
                  "batches. You may need to use the `.repeat()` function when building your "
                  "dataset.", stacklevel=3)


def check_verbose(verbose):
    if isinstance(verbose, str) and verbose == "auto":
        return 1
    if not is_number(verbose) or verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")
    return int(verbose)
