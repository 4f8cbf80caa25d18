"""The layers that Keras's elementwise math, comparisons, reductions and last-axis slices on
symbolic tensors become in a traced call() or loss (densitron.ops.square(x), ops.mean(x,
axis=-1), x / y, x > 0, x[..., 1:3], ...): each is one engine node, computed in float as Keras
computes it, with its gradient (none for a comparison)."""

import numpy as np

from densitron.layers.layer import Layer, engine_node, node_spec
from densitron.layers.merging import _Merge
from densitron.layers.reshaping import _IndexMap

# densitron::OpType
_MATH, _DIVIDE, _POOL, _ROW_BROADCAST, _BATCH_REDUCE, _ARG_REDUCE = 25, 26, 16, 28, 29, 30
_MODE_SELECT, _BATCH_MATMUL = 31, 32
_REDUCE_MODES = {"mean": 0, "max": 1, "sum": 2}  # kPool's
# densitron::MathOp
MATH_OPS = {"square": 0, "abs": 1, "sqrt": 2, "log": 3, "exp": 4, "log1p": 5, "clip": 6,
            "power": 7, "divide_by": 8, "divide_into": 9, "greater": 10, "greater_equal": 11,
            "less": 12, "less_equal": 13, "equal": 14, "not_equal": 15, "stop_gradient": 16,
            "sign": 17, "floor": 18, "ceil": 19, "round": 20, "multiply_by": 21, "add": 22}


class MathOp(Layer):
    """One elementwise op of MATH_OPS on every value, with its numbers a and b (clip's bounds,
    power's exponent, the divisor or dividend)."""

    _op_class = True

    _mask_rule = "pass"
    _single_input = True

    def __init__(self, op, a=0.0, b=0.0, **kwargs):
        super().__init__(**kwargs)
        if op not in MATH_OPS:
            raise ValueError(f"Unknown math op. Expected one of {sorted(MATH_OPS)}. "
                             f"Received: op={op!r}")
        self.op, self.a, self.b = op, float(a), float(b)

    def _check_inputs(self, input_shape):
        self._check_single(input_shape, min_rank=1)

    def _engine_node(self, node, param_index):
        return engine_node(_MATH, node, fattrs=[self.a, self.b], iattrs=[MATH_OPS[self.op]])

    def get_config(self):
        return {**super().get_config(), "op": self.op, "a": self.a, "b": self.b}


class Divide(_Merge):
    """x0 / x1 of two tensors of one shape (a divisor per row: RowBroadcast's "div")."""

    _op_class = True

    _op = _DIVIDE
    _arity = 2


class BatchMatMul(Layer):
    """[a, b] → a @ b over their last two axes for each sample and leading index (Keras's
    ops.matmul of two tensors of rank 3 or more with the same leading axes), a or b
    transposed in those axes with transpose_a / transpose_b. densitron's own layer, made by
    ops.matmul on symbolic tensors (attention's scores and mixing)."""

    _op_class = True

    _mask_rule = "refuse"

    def __init__(self, transpose_a=False, transpose_b=False, **kwargs):
        super().__init__(**kwargs)
        self.transpose_a, self.transpose_b = bool(transpose_a), bool(transpose_b)

    def _dims(self, input_shape):
        a, b = input_shape
        m, k = (a[-1], a[-2]) if self.transpose_a else (a[-2], a[-1])
        kb, n = (b[-1], b[-2]) if self.transpose_b else (b[-2], b[-1])
        return m, k, kb, n

    def _check_inputs(self, input_shape):
        if not (isinstance(input_shape, list) and len(input_shape) == 2 and
                len(input_shape[0]) == len(input_shape[1]) >= 3 and
                tuple(input_shape[0][1:-2]) == tuple(input_shape[1][1:-2])):
            raise ValueError(f"Layer \"{self.name}\" multiplies two tensors of rank 3 or more "
                             "with the same leading axes. Received: input shapes "
                             f"{input_shape}")
        _, k, kb, _ = self._dims(input_shape)
        if k != kb:
            raise ValueError(f"Layer \"{self.name}\": the inner dimensions differ, {k} and "
                             f"{kb}. Received: input shapes {input_shape}")

    def compute_output_shape(self, input_shape):
        m, _, _, n = self._dims(input_shape)
        return (*input_shape[0][:-2], m, n)

    def _engine_node(self, node, param_index):
        shapes = [t.shape for t in node.inputs]
        m, k, _, n = self._dims(shapes)
        groups = int(np.prod(shapes[0][1:-2]))
        return engine_node(_BATCH_MATMUL, node, iattrs=[groups, m, k, n, self.transpose_a,
                                                        self.transpose_b])

    def get_config(self):
        return {**super().get_config(), "transpose_a": self.transpose_a,
                "transpose_b": self.transpose_b}


class ModeSelect(_Merge):
    """[in_training, outside_training] of one shape: the first in a training run, the second
    in evaluate and predict (densitron's own layer, made where a traced call() branches on
    `training`: call() is traced once per mode)."""

    _op_class = True

    _op = _MODE_SELECT
    _arity = 2
    _mask_rule = "pass"


class RowBroadcast(Layer):
    """A tensor combined with one of a last axis of 1 (a value per row), broadcast as NumPy
    does: inputs [full, per_row], mode "add" (full + row), "sub" (full - row), "rsub" (row -
    full), "mul" or "div" (full / row)."""

    _op_class = True

    _mask_rule = "refuse"
    MODES = ("add", "sub", "rsub", "mul", "div")

    def __init__(self, mode="add", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"`mode` must be one of {self.MODES}. Received: mode={mode!r}")
        self.mode = mode

    def _check_inputs(self, input_shape):
        if not (isinstance(input_shape, list) and len(input_shape) == 2 and
                len(input_shape[0]) == len(input_shape[1]) >= 2 and
                tuple(input_shape[1][1:]) == (*input_shape[0][1:-1], 1)):
            raise ValueError(f"Layer \"{self.name}\" combines a tensor with one of a last axis "
                             f"of 1. Received: input shapes {input_shape}")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def _engine_node(self, node, param_index):
        return engine_node(_ROW_BROADCAST, node, iattrs=[self.MODES.index(self.mode)])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def axis_positions(axis, rank):
    """The axes of `axis` (an int or a list of ints, negative from the end) of a tensor of
    `rank` as sorted, distinct non-negative indices (not checked against the rank)."""
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    if not axes or any(isinstance(a, bool) or not isinstance(a, (int, np.integer))
                       for a in axes):
        raise ValueError(f"`axis` must be an int or a list of ints. Received: axis={axis!r}")
    return sorted({int(a) + rank if a < 0 else int(a) for a in axes})


class Reduce(Layer):
    """The mean, sum or maximum over one axis or a run of adjacent axes beside the batch (the
    last by default; keepdims: the reduced axes stay, of size 1; the maximum's gradient shared
    between ties, as JAX's)."""

    _op_class = True

    _mask_rule = "refuse"
    _single_input = True

    def __init__(self, mode="mean", keepdims=False, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if mode not in _REDUCE_MODES:
            raise ValueError(f"`mode` must be one of {sorted(_REDUCE_MODES)}. "
                             f"Received: mode={mode!r}")
        self.mode, self.keepdims = mode, bool(keepdims)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis

    def _axes(self, rank):
        """The reduced axes as positive indices, adjacent and beside the batch axis."""
        pos = axis_positions(self.axis, rank)
        if pos[0] < 1 or pos[-1] >= rank or pos != list(range(pos[0], pos[0] + len(pos))):
            raise ValueError(f"{self.mode} reduces adjacent axes beside the batch axis of its "
                             f"input of rank {rank}. Received: axis={self.axis!r}")
        return pos

    def _check_inputs(self, input_shape):
        self._check_single(input_shape)
        if len(input_shape) < 2:
            raise ValueError(f"{self.mode} over the last axis needs a tensor with one beside the "
                             f"batch axis. Received: input_shape={tuple(input_shape)}")
        self._axes(len(input_shape))

    def compute_output_shape(self, input_shape):
        axes = self._axes(len(input_shape))
        kept = [1 if a in axes else d for a, d in enumerate(input_shape)]
        return tuple(kept if self.keepdims else
                     [d for a, d in enumerate(input_shape) if a not in axes])

    def _engine_node(self, node, param_index):
        shape = node.inputs[0].shape
        axes = self._axes(len(shape))
        outer = int(np.prod(shape[1:axes[0]]))
        length = int(np.prod(shape[axes[0]:axes[-1] + 1]))
        inner = int(np.prod(shape[axes[-1] + 1:]))
        return engine_node(_POOL, node, iattrs=[outer, length, inner, _REDUCE_MODES[self.mode]])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "keepdims": self.keepdims,
                "axis": self.axis}


class ArgReduce(Layer):
    """The index of each row's first maximum (mode "max") or minimum ("min") over the last
    axis, as a float (NaN counts as the extreme, as NumPy's); keepdims keeps a last axis of 1.
    No gradient (ops.argmax, ops.argmin)."""

    _op_class = True

    _mask_rule = "refuse"
    _single_input = True

    def __init__(self, mode="max", keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "min"):
            raise ValueError(f"`mode` must be 'max' or 'min'. Received: mode={mode!r}")
        self.mode, self.keepdims = mode, bool(keepdims)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1) if self.keepdims else tuple(input_shape[:-1])

    def _engine_node(self, node, param_index):
        return engine_node(_ARG_REDUCE, node, iattrs=[0 if self.mode == "max" else 1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "keepdims": self.keepdims}


class BatchReduce(Layer):
    """The mean or sum of every value of the batch, as one value a sample (each row the
    same): ops.mean(x) or ops.sum(x) combined with tensors (y_true - ops.mean(y_true), an R²
    written as 1 - sum(...) / sum(...)); its gradient reaches every value."""

    _op_class = True

    _mask_rule = "refuse"
    _single_input = True

    def __init__(self, mode="mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("mean", "sum"):
            raise ValueError(f"`mode` must be 'mean' or 'sum'. Received: mode={mode!r}")
        self.mode = mode

    def _check_inputs(self, input_shape):
        self._check_single(input_shape, min_rank=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def _engine_node(self, node, param_index):
        return engine_node(_BATCH_REDUCE, node, iattrs=[0 if self.mode == "mean" else 1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class BatchFill(_IndexMap):
    """Zeros of `shape` for each sample of its input's batch (an index map of no input value;
    no gradient): ops.zeros((ops.shape(x)[0], ...)) in a traced call(), ones and full() as
    a MathOp "add" after it, and the ones a batch size sums (densitron's own layer)."""

    _op_class = True

    def __init__(self, shape=(), **kwargs):
        super().__init__(**kwargs)
        self.shape = tuple(int(d) for d in shape)

    def _check_inputs(self, input_shape):
        self._check_single(input_shape, min_rank=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.shape)

    def _index_map(self, in_shape):
        return np.full(int(np.prod(self.shape)), -1, np.int64)

    def get_config(self):
        return {**super().get_config(), "shape": list(self.shape)}


def batch_constant(tensor):
    """Whether a symbolic tensor holds one value a batch: every path back from it meets a
    BatchReduce before any input or target."""
    seen = {}

    def visit(t):
        node = t._node
        if id(node) not in seen:
            if isinstance(node.layer, BatchReduce):
                seen[id(node)] = True
            elif not node.inputs:
                seen[id(node)] = False
            else:
                seen[id(node)] = all(visit(i) for i in node.inputs)
        return seen[id(node)]

    return visit(tensor)


class Slice(_IndexMap):
    """x[..., start:stop:step] along the last axis, or x[..., index] (that axis dropped); with
    `key`, NumPy's basic indexing of the axes after the batch axis (integers, slices, Ellipsis
    and None: x[:, 0], x[:, t, :], x[:, ::-1, 1:]), as a list of its entries."""

    _op_class = True

    def __init__(self, start=None, stop=None, step=None, index=None, key=None, **kwargs):
        super().__init__(**kwargs)
        self.key = None if key is None else _sample_key(key)
        if key is not None:
            if any(v is not None for v in (start, stop, step, index)):
                raise ValueError("Slice takes a `key` or a slice of the last axis, not both. "
                                 f"Received: key={key!r}, start={start}, stop={stop}, "
                                 f"step={step}, index={index}")
            return
        for arg, value in (("start", start), ("stop", stop), ("step", step), ("index", index)):
            if value is not None and (isinstance(value, bool) or
                                      not isinstance(value, (int, np.integer))):
                raise TypeError(f"`{arg}` must be an integer or None. Received: {arg}={value!r}")
        if step == 0:
            raise ValueError("`step` cannot be zero. Received: step=0")
        self.start, self.stop, self.step, self.index = start, stop, step, index

    def _picked(self, last):
        if self.index is not None:
            if not -last <= self.index < last:
                raise ValueError(f"Index {self.index} is out of range for a last axis of "
                                 f"{last}. Received: index={self.index}")
            return [self.index % last]
        picked = list(range(last))[slice(self.start, self.stop, self.step)]
        if not picked:
            raise ValueError(f"The slice [{self.start}:{self.stop}:{self.step}] of a last axis "
                             f"of {last} is empty. Received: that slice")
        return picked

    def _check_inputs(self, input_shape):
        self._check_single(input_shape, min_rank=2)
        self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        if self.key is not None:
            return (input_shape[0], *self._keyed(tuple(input_shape[1:])).shape)
        picked = self._picked(input_shape[-1])
        return tuple(input_shape[:-1]) if self.index is not None else \
            (*input_shape[:-1], len(picked))

    def _keyed(self, in_shape):
        """Each output value's flat index in a sample, in the output's shape."""
        try:
            picked = np.arange(int(np.prod(in_shape))).reshape(in_shape)[_numpy_key(self.key)]
        except IndexError as e:
            raise ValueError(f"The index {_numpy_key(self.key)} does not fit a sample of "
                             f"shape {in_shape}: {e}. Received: key={self.key!r}") from None
        if picked.size == 0:
            raise ValueError(f"The index {_numpy_key(self.key)} of a sample of shape "
                             f"{in_shape} is empty. Received: key={self.key!r}")
        return picked

    def _index_map(self, in_shape):
        if self.key is not None:
            return self._keyed(tuple(in_shape)).ravel()
        last = in_shape[-1]
        rows = int(np.prod(in_shape[:-1])) if len(in_shape) > 1 else 1
        picked = np.asarray(self._picked(last))
        return (np.arange(rows)[:, None] * last + picked[None, :]).ravel()

    def get_config(self):
        if self.key is not None:
            return {**super().get_config(), "key": self.key}
        return {**super().get_config(), "start": self.start, "stop": self.stop,
                "step": self.step, "index": self.index}


def _sample_key(key):
    """A NumPy basic index of a sample's axes as JSON-able entries: an int, "..." (Ellipsis),
    "newaxis" (None), or [start, stop, step] (a slice); the entries of a config as they are."""
    out = []
    for k in key:
        if k is Ellipsis or k == "...":
            out.append("...")
        elif k is None or k == "newaxis":
            out.append("newaxis")
        elif isinstance(k, slice) or (isinstance(k, list) and len(k) == 3):
            parts = [k.start, k.stop, k.step] if isinstance(k, slice) else list(k)
            for v in parts:
                if v is not None and (isinstance(v, bool) or
                                      not isinstance(v, (int, np.integer))):
                    raise TypeError("A slice's start, stop and step must be integers or None. "
                                    f"Received: key={key!r}")
            if parts[2] == 0:
                raise ValueError(f"A slice's step cannot be zero. Received: key={key!r}")
            out.append([None if v is None else int(v) for v in parts])
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            out.append(int(k))
        else:
            raise TypeError("A symbolic tensor takes integers, slices, Ellipsis and None as "
                            f"indices (NumPy's basic indexing). Received: key={key!r}")
    return out


def _numpy_key(entries):
    return tuple(Ellipsis if k == "..." else None if k == "newaxis" else
                 slice(*k) if isinstance(k, list) else k for k in entries)


class AddedLoss(Layer):
    """Carries a loss a layer's call() gave to add_loss: passes its first input on as it is
    and reads the second, the loss's values, which the model adds to its loss reduced over the
    batch (`reduction` "mean" or "sum", as Keras's sum of a tensor) with the MathOps of `tail`
    ([op id, a, b] each) applied to that scalar. (densitron's own layer, made by add_loss.)"""

    _op_class = True

    _mask_rule = "pass"

    def __init__(self, reduction="sum", tail=(), **kwargs):
        super().__init__(**kwargs)
        if reduction not in ("mean", "sum"):
            raise ValueError(f"`reduction` must be 'mean' or 'sum'. Received: "
                             f"reduction={reduction!r}")
        self.reduction, self.tail = reduction, [list(t) for t in tail]

    def _check_inputs(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) != 2:
            raise ValueError(f"Layer {self.name} takes [the tensor it passes on, the loss's "
                             f"values]. Received: input shapes {input_shape}")

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def _engine_node(self, node, param_index):  # (an alias of its first input)
        return engine_node(14, node)

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction, "tail": self.tail}


class Masking(Layer):
    """Keras's Masking: a step (a row of the last axis) whose values all equal `mask_value` is
    masked — zeroed in the output, and left out by the per-step layers after it down to
    GlobalAveragePooling1D, as Embedding(mask_zero=True)'s padding is. Three engine nodes:
    x != mask_value, their maximum over each step (the mask: 1 kept, 0 masked, the node's
    second output), and x times it. Its input takes no gradient (an Input, or what layers
    without weights make of one)."""

    _single_input = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        try:
            self.mask_value = float(mask_value)
        except (TypeError, ValueError):
            raise ValueError(f"`mask_value` must be a number. Received: "
                             f"mask_value={mask_value!r}") from None

    def _check_inputs(self, input_shape):
        self._check_single(input_shape)

    def compute_mask(self, inputs, mask=None):
        """Keras's: the steps with a value other than mask_value, of an array; None for a
        symbolic input (the layer's output carries its mask on)."""
        from densitron.layers.layer import KerasTensor

        if isinstance(inputs, KerasTensor):
            return None
        return np.any(np.asarray(inputs) != self.mask_value, axis=-1)

    def _symbolic_call(self, inputs, flat):
        from densitron.layers.layer import KerasTensor

        out = super()._symbolic_call(inputs, flat)
        seen, stack = set(), [flat[0]]
        while stack:  # (the mask takes no gradient: nothing trainable before it)
            node = stack.pop()._node
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.layer.weights:
                raise ValueError(
                    f"Layer \"{self.name}\" (Masking) must read an Input (or what layers "
                    "without weights make of one): densitron's masks take no gradient. "
                    f"Received: an input computed by layer \"{node.layer.name}\"")
            stack.extend(node.inputs)
        node = out._node
        mask = KerasTensor(tuple(flat[0].shape[:-1]), name=f"{self.name}_mask", node=node,
                           index=1)
        node.outputs.append(mask)
        out._mask = mask
        return out

    def _engine_subgraph(self, node, param_index):
        """The layer's engine nodes: (inputs, spec) each, an input ("in", k) of the layer or
        ("node", j) the j-th of these; and which of them are the node's outputs."""
        x = node.inputs[0]
        last = int(x.shape[-1])
        steps = int(np.prod(x.shape[1:-1])) if len(x.shape) > 2 else 1
        width = steps * last
        differs = node_spec(_MATH, width, last, fattrs=[self.mask_value, 0.0],
                            iattrs=[MATH_OPS["not_equal"]])
        kept = node_spec(_POOL, steps, 1, iattrs=[steps, last, 1, _REDUCE_MODES["max"]])
        out = node_spec(_ROW_BROADCAST, width, last, iattrs=[RowBroadcast.MODES.index("mul")])
        items = [([("in", 0)], differs), ([("node", 0)], kept),
                 ([("in", 0), ("node", 1)], out)]
        return items, [2, 1]

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
