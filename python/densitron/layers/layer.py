"""Layer base class, symbolic tensors and the nodes that link them into a graph.

Calling a layer on KerasTensors records a Node (layer, input tensors, output tensors); a Model
walks these nodes back from its outputs. Calling a layer on arrays runs it through the engine."""

import functools
import inspect
import math
import warnings

import numpy as np

from densitron._checks import is_number, weight_list
from densitron._op_marks import OP_DEPTH, mark_op_methods
from densitron.keras_format import record_operators
from densitron.utils.naming import to_snake_case, uniquify
from densitron.variables import Variable


def _same_tensor(a, b):
    """Whether two symbolic tensors are one (the same output of the same node)."""
    return a is b or (a._node is b._node and a._index == b._index)


class MaskMaker:
    """The maker of a mask that no layer of the model makes but Keras computes from its
    inputs' masks (a merge's). Not a layer of the model (not in its layers, config or
    summary): the layer's call makes one, and the engine runs it only where a layer or the
    loss applies the mask (_mask_subgraph: the engine nodes reading the masks)."""

    name = "mask"

    def __init__(self):
        self._inbound_nodes = []

    def _call(self, parts, shape, dtype):
        node = Node(self, parts, [])
        out = KerasTensor(shape, name=self.name, node=node, index=0)
        out.dtype = dtype
        node.outputs.append(out)
        self._inbound_nodes.append(node)
        return out


class MaskOr(MaskMaker):
    """Keras's OR of several masks (Merge.compute_mask, Concatenate's along the last axis): a
    step is kept where any of them keeps it, as the elementwise maximum of the masks (ids,
    whose zeros mask, and Masking's kept steps, 1 or 0, are never negative, so the maximum is
    non-zero where any of them is)."""

    name = "mask_or"

    @staticmethod
    def of(masks):
        """The OR of `masks` (symbolic tensors of one shape): the one mask when all are the
        same tensor, else a tensor made by a MaskOr call (the parts of ORs among them taken
        in, each tensor once)."""
        parts = []
        for m in masks:
            inner = m._node.inputs if isinstance(m._node.layer, MaskOr) else [m]
            parts += [t for t in inner if not any(_same_tensor(t, u) for u in parts)]
        if len(parts) == 1:
            return parts[0]
        return MaskOr()._call(parts, parts[0].shape, parts[0].dtype)

    def _mask_subgraph(self, node):
        from densitron.layers.merging import Maximum

        return [([("in", k) for k in range(len(node.inputs))], engine_node(Maximum._op, node))]


class MaskConcat(MaskMaker):
    """Keras's mask of a Concatenate along the steps of rank-3 inputs (Concatenate.compute_mask
    along axis 1): the inputs' masks joined, an unmasked input's steps all kept (ones: a value
    of the first mask, compared with NaN, never equal, at each of its steps)."""

    name = "mask_concat"

    def __init__(self, steps, masked):
        super().__init__()
        self.steps = tuple(steps)  # per input, its steps (None where not known yet)
        self.masked = tuple(masked)  # per input, whether it has a mask (the node's inputs)

    @staticmethod
    def of(inputs, masks):
        steps = [t.shape[1] for t in inputs]
        parts = [m for m in masks if m is not None]
        total = None if None in steps else sum(steps)
        return MaskConcat(steps, [m is not None for m in masks])._call(
            parts, (None, total), parts[0].dtype)

    def _mask_subgraph(self, node):  # (on a model's trace at the data's shapes: steps known)
        from densitron.layers.math_ops import _MATH, MATH_OPS

        items, refs, k = [], [], 0
        for steps, masked in zip(self.steps, self.masked):
            if masked:
                refs.append(("in", k))
                k += 1
                continue
            items.append(([("in", 0)], node_spec(20, steps, steps, iattrs=[0] * steps)))
            items.append(([("node", len(items) - 1)],
                          node_spec(_MATH, steps, steps, fattrs=[float("nan"), 0.0],
                                    iattrs=[MATH_OPS["not_equal"]])))  # (1 for any value)
            refs.append(("node", len(items) - 1))
        items.append((refs, engine_node(4, node, iattrs=[1])))  # Concatenate's, whole widths
        return items


def _or_of_masks(layer, masks):
    """Keras's OR of the masks of `layer`'s inputs (each input has one): MaskOr.of, for masks
    of one shape (the one mask itself when all are the same tensor, an OR's too)."""
    if all(_same_tensor(m, masks[0]) for m in masks):
        return masks[0]
    shapes = [tuple(m.shape) for m in masks]
    if len(set(shapes)) != 1:
        raise ValueError(
            f"Layer \"{layer.name}\" ({type(layer).__name__}) would combine the masks of its "
            f"inputs, which must have one shape. Received: masks of shapes {shapes}")
    return MaskOr.of(masks)


class KerasTensor:
    """A symbolic tensor: a shape with a free batch dimension, and the node that made it."""

    def __init__(self, shape, name=None, node=None, index=0):
        self.shape = tuple(shape)
        self.dtype = "float32"
        self.name = name
        self._node = node
        self._index = index
        # the ids tensor whose non-zero entries mark this tensor's kept steps (Keras's mask of
        # Embedding(mask_zero=True)), or None
        self._mask = None
        # the tensor this one stands for in a call given a mask (with_mask), or None
        self._carried = None

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def _keras_mask(self):
        """Keras's mask of this tensor's steps: a tensor of shape[:-1], 1 (True) where a step
        is kept and 0 where masked, or None. (Read in place of a mask Keras would give: the
        masking guide's `x._keras_mask`, a custom layer's `call(inputs, mask=None)`; the
        tensor made once, from the ids or Masking's steps the tensor carries.)"""
        mask = self._mask
        if mask is None:
            return None
        view = self.__dict__.get("_keras_mask_view")
        if view is None or view._mask_source is not mask:
            from densitron import ops

            view = ops.not_equal(mask, 0.0)
            view._mask_source = mask
            self._keras_mask_view = view
        return view

    @_keras_mask.setter
    def _keras_mask(self, mask):
        self._mask = getattr(mask, "_mask_source", mask)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype=float32, name={self.name}>"

    # Arithmetic inside a subclassed model's or a composite layer's call(): between two
    # tensors, the Add, Subtract and Multiply layers; with a number, a Rescaling layer.
    def _arith(self, other, op, reverse=False):
        from densitron import layers
        from densitron.ops import BatchReduction
        from densitron.variables import Variable

        if isinstance(other, BatchReduction):  # the batch's value, in every row
            other = other.as_tensor(like=self)
        if isinstance(other, Variable):  # a layer's own weight, in its traced call()
            if op == "add":
                return layers.WeightAdd(other)(self)
            if op == "mul":
                return layers.WeightMultiply(other)(self)
            raise TypeError("In a traced call(), a layer's weight can be added to a tensor "
                            "(`x + self.b`), multiply it (`x * self.s`), or be multiplied "
                            "into it with ops.matmul(x, self.w). "
                            f"Received: {op} with weight {other.path}")

        if isinstance(other, KerasTensor):
            a, b = _match_batch_values(*((other, self) if reverse else (self, other)))
            broadcast = _row_broadcast(a, b, op)
            if broadcast is not None:
                return broadcast
            return {"add": layers.Add, "sub": layers.Subtract, "mul": layers.Multiply}[op]()(
                [a, b])
        if is_number(other):
            v = float(other)
            scale, offset = {"add": (1.0, v), "mul": (v, 0.0),
                             "sub": (-1.0, v) if reverse else (1.0, -v)}[op]
            return layers.Rescaling(scale, offset)(self)
        if isinstance(other, np.ndarray) and other.dtype.kind in "iuf":
            # constants along the last axis (a per-class weight, a quantile per output),
            # broadcast as NumPy does: a Rescaling with one scale or offset per feature
            last = self.shape[-1] if len(self.shape) > 1 else 1
            if other.size != last or any(d != 1 for d in other.shape[:-1]) or \
                    other.ndim > len(self.shape):
                raise ValueError(f"A constant array combines with a symbolic tensor along its "
                                 f"last axis ({last} values). Received: an array of shape "
                                 f"{other.shape} with a tensor of shape {self.shape}")
            v = other.reshape(-1).astype(np.float64)
            scale, offset = {"add": (1.0, v), "mul": (v, 0.0),
                             "sub": (-1.0, v) if reverse else (1.0, -v)}[op]
            return layers.Rescaling(_plain_list(scale), _plain_list(offset))(self)
        return NotImplemented

    # A NumPy array on the left of +, -, * or / defers to the tensor's reflected method; any
    # other NumPy function of a tensor is refused as __array__ refuses it.
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        ops = {np.add: "__radd__", np.subtract: "__rsub__", np.multiply: "__rmul__",
               np.true_divide: "__rtruediv__"}
        if (method == "__call__" and not kwargs and len(inputs) == 2 and inputs[1] is self
                and ufunc in ops):
            return getattr(self, ops[ufunc])(inputs[0])
        return self.__array__()

    def __add__(self, other):
        return self._arith(other, "add")

    def __radd__(self, other):
        return self._arith(other, "add", reverse=True)

    def __sub__(self, other):
        return self._arith(other, "sub")

    def __rsub__(self, other):
        return self._arith(other, "sub", reverse=True)

    def __mul__(self, other):
        return self._arith(other, "mul")

    def __rmul__(self, other):
        return self._arith(other, "mul", reverse=True)

    # Division, powers and abs: the engine's math ops (densitron.ops.divide, power, abs).
    def __truediv__(self, other):
        if isinstance(other, KerasTensor) or is_number(other):
            return _ops().divide(self, other)
        return NotImplemented

    def __rtruediv__(self, other):
        return _ops().divide(other, self) if is_number(other) else NotImplemented

    def __pow__(self, other):
        return _ops().power(self, other) if is_number(other) else NotImplemented

    def __abs__(self):
        return _ops().abs(self)

    # Comparisons give 1.0/0.0 masks (ops.greater, ops.equal...), == and != too, as Keras's
    # symbolic tensors do; a tensor stays hashable by identity and has no truth value.
    def __eq__(self, other):
        if isinstance(other, KerasTensor) or is_number(other) or isinstance(other, bool):
            return _ops().equal(self, other)
        return NotImplemented

    def __ne__(self, other):
        if isinstance(other, KerasTensor) or is_number(other) or isinstance(other, bool):
            return _ops().not_equal(self, other)
        return NotImplemented

    __hash__ = object.__hash__

    def __bool__(self):
        raise TypeError("A symbolic KerasTensor has no truth value until a model runs: compare "
                        "with densitron.ops and use ops.where for a choice. Received: "
                        f"{self!r}")

    def __gt__(self, other):
        return _ops().greater(self, other)

    def __ge__(self, other):
        return _ops().greater_equal(self, other)

    def __lt__(self, other):
        return _ops().less(self, other)

    def __le__(self, other):
        return _ops().less_equal(self, other)

    def __getitem__(self, key):
        """x[..., a:b], x[:, a:b] (rank 2) or x[..., i]: a slice of the last axis."""
        from densitron.layers.math_ops import Slice

        keys = key if isinstance(key, tuple) else (key,)
        rank = len(self.shape)
        if keys and keys[0] is Ellipsis:
            keys = keys[1:]
        elif len(keys) == rank and all(k == slice(None) for k in keys[:-1]):
            keys = keys[-1:]
        else:
            keys = ()
        if len(keys) == 1 and isinstance(keys[0], slice):
            k = keys[0]
            return Slice(k.start, k.stop, k.step)(self)
        if len(keys) == 1 and isinstance(keys[0], (int, np.integer)) and \
                not isinstance(keys[0], bool):
            return Slice(index=int(keys[0]))(self)
        return Slice(key=_sample_axes_key(key, len(self.shape)))(self)

    def __neg__(self):
        return self._arith(-1.0, "mul")

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "A symbolic KerasTensor cannot be converted to a NumPy array: it has no value until "
            f"a model runs. Received: {self!r}"
        )


mark_op_methods(KerasTensor)
record_operators(KerasTensor)  # (files write them as Keras's op nodes)


def _sample_axes_key(key, rank):
    """x[key]'s index of a sample's axes: the key less its first entry, which must take the
    whole batch axis (`:`, or an Ellipsis standing for it)."""
    keys = list(key) if isinstance(key, tuple) else [key]
    whole = slice(None)
    if keys and isinstance(keys[0], slice) and keys[0] == whole:
        return keys[1:]
    indexing = [k for k in keys if k is not None and k is not Ellipsis]
    if keys and keys[0] is Ellipsis and len(indexing) < rank:
        return keys  # (the Ellipsis covers the batch axis and maybe more)
    raise TypeError("A symbolic tensor is indexed past its batch axis, which it keeps whole: "
                    f"x[:, ...] (or x[..., ...]). Received: key={key!r}")


def _match_batch_values(a, b):
    """a and b, a batch's value of shape (None, 1) (each row the same: see BatchReduce)
    squeezed to (None,) to meet a tensor of that shape, as Keras's scalar meets it."""
    from densitron.layers.math_ops import batch_constant

    def squeezed(t, other):
        if (len(other.shape) == 1 and tuple(t.shape) == (None, 1) and batch_constant(t)):
            return _ops().squeeze(t, axis=-1)
        return t

    return squeezed(a, b), squeezed(b, a)


def _row_broadcast(a, b, op):
    """a op b ("add", "sub", "mul", "div") for tensors one of which has a last axis of 1 where
    the other's is longer (the rest alike; a divisor only): a RowBroadcast layer, as NumPy
    broadcasts; None for any other shapes."""
    from densitron.layers.math_ops import RowBroadcast

    def per_row(full, row):
        return (len(full.shape) == len(row.shape) >= 2 and full.shape[-1] != 1 and
                tuple(row.shape[1:]) == (*full.shape[1:-1], 1))

    if per_row(a, b):
        return RowBroadcast(op)([a, b])
    if per_row(b, a) and op != "div":  # (a value per row over a tensor: not broadcast)
        return RowBroadcast({"add": "add", "sub": "rsub", "mul": "mul"}[op])([b, a])
    return None


def _ops():
    from densitron import ops  # (ops builds layers: imported when first used)

    return ops


def _plain_list(v):
    return v.tolist() if isinstance(v, np.ndarray) else v


class Node:
    """One call of a layer: its input tensors and output tensors."""

    def __init__(self, layer, inputs, outputs):
        self.layer = layer
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        # the composite layers' calls (CompositeCall) whose call() made this call, outermost
        # first: Keras's layers of the model, though the engine runs their sublayers' calls
        self.within = tuple(_COMPOSITE_CALLS)


class CompositeCall:
    """One call of a composite layer: the layer, its input tensors and (once traced) its
    output tensors."""

    def __init__(self, layer, inputs, is_list=False, positional=False):
        self.layer = layer
        self.inputs = list(inputs)
        self.outputs = []
        self.is_list, self.positional = is_list, positional  # (how it was called)
        self.keys = None  # (the keys of a dict it was called on)


# The composite layers' calls being traced now (outermost first).
_COMPOSITE_CALLS = []


def _is_array_like(x):
    return isinstance(x, (np.ndarray, list, tuple, float, int, np.generic)) or hasattr(
        x, "__array__"
    )


# Whether a subclassed model's or a composite layer's call() is being traced (innermost last).
_TRACING = [False]
# The losses add_loss() gives during each traced call (innermost last).
_ADDED_LOSSES = []


class _BranchesOnTraining(ValueError):
    """A traced call() tested `training` in Python: traced again once per mode."""


# The modes of the calls being traced once per mode (innermost last).
_MODE_TRACES = []


def tracing():
    """Whether a call() is being traced on symbolic tensors now."""
    return bool(_TRACING) and bool(_TRACING[-1])


def in_training_trace():
    """Whether the innermost call traced once per mode is its training trace: what it makes
    is used in training runs only."""
    return bool(_MODE_TRACES) and _MODE_TRACES[-1] is True


class _TracedTraining:
    """The `training` a traced call() receives: the engine decides the mode at each run (fit
    trains, evaluate and predict infer), so it is passed on to the layers inside (which follow
    the run's mode); a Python test of it makes traced_call trace call() once per mode."""

    def __init__(self, layer):
        self._layer = layer

    def __bool__(self):
        raise _BranchesOnTraining(
            f"Layer {self._layer.name} ({type(self._layer).__name__}): densitron traces call() "
            "and its engine decides the mode at each run; call() branched on `training` where "
            "it cannot be traced once for each mode. Received: a Python test of `training`")

    def __repr__(self):
        return "None"


def traced_call(layer, inputs, positional=False, mask=None):
    """A subclassed model's or a composite layer's call() run on symbolic inputs (with
    `training=None` when it takes a `training` argument: Keras passes it, and densitron's
    engine decides it, fit training, evaluate and predict inferring); with `positional`, the
    inputs as call's positional arguments; `mask` given as call's `mask` (a call() that takes
    one, as Keras gives it)."""
    try:
        params = inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        params = {}
    takes = "training" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    _TRACING.append(True)
    _ADDED_LOSSES.append([])
    extra = {"mask": mask} if "mask" in params else {}
    try:
        kwargs = {"training": _TracedTraining(layer)} if takes else {}
        kwargs.update(extra)
        try:
            out = layer.call(*inputs, **kwargs) if positional else layer.call(inputs, **kwargs)
        except _BranchesOnTraining:
            # `if training:` in call(): traced once per mode, the two joined by ModeSelect
            del _ADDED_LOSSES[-1][:]
            out = _traced_per_mode(layer, inputs, positional, extra)
    finally:
        _TRACING.pop()
        added = _ADDED_LOSSES.pop()
    if added:
        out = _carry_losses(layer, out, added)
    return out


def _traced_per_mode(layer, inputs, positional, extra):
    """call() traced with training=True and with training=False, each output the first's in
    training runs and the second's outside them (ModeSelect; the same tensor where the modes
    agree). Inner layers given training=True follow the run's mode, which is training
    wherever that trace's outputs are used."""
    from densitron.layers.math_ops import ModeSelect

    outs = []
    for mode in (True, False):
        _MODE_TRACES.append(mode)
        try:
            outs.append(layer.call(*inputs, training=mode, **extra) if positional
                        else layer.call(inputs, training=mode, **extra))
        except _BranchesOnTraining as e:  # (a nested call branching on its own object)
            raise ValueError(str(e)) from None
        finally:
            _MODE_TRACES.pop()
        if _ADDED_LOSSES[-1]:
            raise ValueError(
                f"Layer {layer.name} ({type(layer).__name__}): a call() that branches on "
                "`training` cannot also add_loss in densitron (it is traced once per mode). "
                "Received: add_loss in such a call()")
    in_training, outside = outs

    def join(a, b):
        if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
            return {k: join(a[k], b[k]) for k in a}
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and \
                len(a) == len(b):
            return type(a)(join(p, q) for p, q in zip(a, b))
        if a is b:
            return a
        if isinstance(a, KerasTensor) and isinstance(b, KerasTensor) and a.shape == b.shape:
            return ModeSelect()([a, b])
        raise ValueError(
            f"Layer {layer.name} ({type(layer).__name__}): call() must give outputs of the "
            "same structure and shapes with training=True and training=False. Received: "
            f"{a!r} and {b!r}")

    return join(in_training, outside)


def _carry_losses(layer, out, added):
    """The call's output with its first tensor passed through one AddedLoss layer a loss the
    call gave to add_loss (the losses then are nodes of the model that computes that tensor,
    saved with it)."""
    from densitron.layers.math_ops import AddedLoss, batch_constant
    from densitron.ops import BatchReduction

    keys = (list(out) if isinstance(out, dict) else
            list(range(len(out))) if isinstance(out, (list, tuple)) else [None])
    at = next((k for k in keys if isinstance(out if k is None else out[k], KerasTensor)), "-")
    if at == "-":
        raise TypeError(f"Layer {layer.name} added a loss in call() but returned no tensor "
                        f"to carry it. Received: {out!r}")
    first = out if at is None else out[at]
    for loss in added:
        reduced = isinstance(loss, BatchReduction)
        tensor = loss.tensor if reduced else loss
        # a tensor is summed as Keras sums it, unless it holds one value a batch (each row
        # the same: its mean is that value)
        mode = loss.mode if reduced else "mean" if batch_constant(loss) else "sum"
        carrier = AddedLoss(mode,
                            [list(t) for t in loss.tail] if reduced else [],
                            name=uniquify(f"{layer.name}_added_loss"))
        carrier._owner = layer  # (whose layer.losses the value of a call on arrays joins)
        first = carrier([first, tensor])
    if at is None:
        return first
    if isinstance(out, tuple):
        return out[:at] + (first,) + out[at + 1:]
    out = type(out)(out)
    out[at] = first
    return out


def _check_float32(dtype):
    """A layer's `dtype`: None or float32 (a name, a DTypePolicy, or its config), as the engine
    computes; ValueError for any other, which it would not honour."""
    name = getattr(dtype, "name", dtype)
    if isinstance(dtype, dict):
        name = dtype.get("config", {}).get("name", dtype.get("name"))
    elif isinstance(dtype, np.dtype) or dtype is np.float32:
        name = np.dtype(dtype).name
    if name not in (None, "float32"):
        raise ValueError("densitron's layers compute in float32 (its engine has no other "
                         f"precision). Received: dtype={dtype!r}")


class Layer:
    """Base of every layer: naming, weights, building on first call, symbolic and eager calls."""

    _builds_itself = False  # (models: their build traces call(), see Functional)
    _op_class = False  # (densitron's own ops' layers, never a Keras layer)

    def __init_subclass__(cls, **kwargs):
        """A subclass's own `build` marks the layer built when it returns (Keras's build
        wrapper), whether or not it calls `super().build`: a layer built by hand is not built
        again (with new weights) by its first call. Its input shape is kept for
        get_build_config."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("build")
        if own is None or getattr(own, "_marks_built", False) or cls._builds_itself:
            return

        @functools.wraps(own)
        def build(self, *args, **kwargs):
            was_built = self.built
            own(self, *args, **kwargs)
            if not was_built:  # (a built-in build sets `built` itself)
                try:
                    bound = inspect.signature(own).bind(self, *args, **kwargs).arguments
                    self._build_shapes = {k: v for k, v in bound.items() if k != "self"}
                except TypeError:
                    pass
            self.built = True

        build._marks_built = True
        cls.build = build

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None, input_dim=None,
                 activity_regularizer=None, **kwargs):
        # Keras's arguments at the values that change nothing in float32 without LoRA or
        # quantization: taken; other values are refused below as unrecognized.
        kwargs.pop("autocast", None)
        for key in ("lora_rank", "lora_alpha", "quantization_config"):
            if key in kwargs and kwargs[key] is None:
                del kwargs[key]
        if kwargs:
            raise TypeError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}. "
                f"Received: kwargs={kwargs}"
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Argument `name` must be a string. Received: name={name!r}")
        if name is not None and "/" in name:  # (Keras's: '/' separates the weights' paths)
            raise ValueError("Argument `name` must be a string and cannot contain character "
                             f"`/`. Received: name={name} (of type {type(name)})")
        _check_float32(dtype)
        self.name = name or uniquify(to_snake_case(type(self).__name__))
        # Keras's activity regularization, on any layer: reg(output) / batch size joins the loss
        from densitron import regularizers

        self.activity_regularizer = regularizers.get(activity_regularizer)
        if not isinstance(trainable, bool):  # (Keras's check; its setter takes any truth value)
            raise ValueError("Expected `trainable` to be a boolean. Received: "
                             f"trainable={trainable} (of type {type(trainable)})")
        self._trainable = trainable
        self.built = False
        self._op_layer = self._op_class or OP_DEPTH[0] > 0  # (see densitron._op_marks)
        self._weights = []
        self._trainable_store = []  # the weights it created trainable (Keras's store of them)
        self._inbound_nodes = []
        self._eager_models = {}
        if input_dim is not None and input_shape is None:
            if isinstance(input_dim, bool) or not isinstance(input_dim, (int, np.integer)) or \
                    input_dim < 1:
                raise ValueError(f"`input_dim` must be a positive integer. "
                                 f"Received: input_dim={input_dim!r}")
            input_shape = (input_dim,)
        if input_shape is not None and (
                not isinstance(input_shape, (list, tuple)) or not all(
                    d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                                  and d >= 0) for d in input_shape)):
            raise ValueError("`input_shape` must be a tuple of dimensions (integers or None), "
                             f"without the batch axis. Received: input_shape={input_shape!r}")
        self._input_shape_arg = tuple(input_shape) if input_shape is not None else None

    # --- the tensors of the layer's call --------------------------------------------------
    def _only_node(self, what):
        """The layer's first call, as Keras's `layer.output` and `layer.input` read it."""
        if not self._inbound_nodes:
            raise AttributeError(f"Layer {self.name} has never been called and thus has no "
                                 f"defined {what}. Received: a layer with no calls")
        return self._inbound_nodes[0]

    @property
    def output(self):
        """The output tensor of the layer's first call (Keras's `layer.output`)."""
        if "_output" in self.__dict__:
            return self.__dict__["_output"]
        outs = self._only_node("output").outputs
        return outs[0] if len(outs) == 1 else list(outs)

    @output.setter
    def output(self, value):
        self.__dict__["_output"] = value

    @property
    def input(self):
        """The input tensor(s) of the layer's first call (Keras's `layer.input`)."""
        node = self._only_node("input")
        if not node.inputs:  # an InputLayer: its own tensor
            return self.output
        return list(node.inputs) if getattr(node, "is_list", False) else node.inputs[0]

    def add_loss(self, loss):
        """Keras's add_loss, inside call(): a loss the model adds to its compiled ones in fit
        and evaluate — a symbolic tensor made of densitron.ops (summed over every value, the
        batch included, as Keras sums it) or ops.mean/ops.sum of one over the batch (with
        numbers and elementwise math after it). Traced into the engine with its gradient; not
        weighted by sample weights, as in Keras."""
        from densitron.ops import BatchReduction

        if not _ADDED_LOSSES:
            raise ValueError(
                f"Layer {self.name}: densitron takes add_loss() inside call(), where it is "
                f"traced on symbolic tensors. Received: add_loss({loss!r}) outside call()")
        if not isinstance(loss, (KerasTensor, BatchReduction)):
            raise ValueError(
                f"Layer {self.name}: add_loss() takes a tensor computed with densitron.ops "
                f"from the layer's inputs, or its mean or sum. Received: {loss!r}")
        _ADDED_LOSSES[-1].append(loss)

    # --- weights -------------------------------------------------------------------------
    def __setattr__(self, name, value):
        """Keras's tracking of a Variable (or a list or tuple of them) set as an attribute
        (`self.s = keras.Variable(...)` in __init__ or build): it joins the layer's weights,
        trained, saved and counted as add_weight's. (Private names are densitron's own lists,
        a model's weights gathered for the engine among them.)"""
        weights = self.__dict__.get("_weights")
        if weights is not None and not name.startswith("_"):
            values = value if isinstance(value, (list, tuple)) else (value,)
            for v in values:
                if isinstance(v, Variable) and all(v is not w for w in weights):
                    weights.append(v)
                    if v.trainable:
                        self._trainable_store.append(v)
        super().__setattr__(name, value)

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True,
                   autocast=True, regularizer=None, constraint=None, aggregation="none",
                   overwrite_with_gradient=False, name=None):
        """Keras's add_weight: a float32 weight of `shape` from `initializer` (a name or an
        initializer; glorot_uniform by default, as Keras), with a regularizer and a
        constraint."""
        from densitron import constraints, initializers, regularizers

        if dtype not in (None, "float32"):
            raise ValueError(f"densitron's weights are float32. Received: dtype={dtype!r}")
        name = name or f"variable_{len(self._weights)}"
        if shape is not None and any(d is None for d in shape):  # (an input's None length)
            raise ValueError("Shapes used to initialize variables must be fully-defined (no "
                             f"`None` dimensions). Received: shape={tuple(shape)} for variable "
                             f"path='{self.name}/{name}'")
        shape = () if shape is None else tuple(int(d) for d in shape)
        initializer = initializers.get("glorot_uniform" if initializer is None else initializer)
        if math.prod(shape) >= 2**61:  # (NumPy's "array is too big" otherwise)
            raise ValueError(f"Layer \"{self.name}\": weight `{name}` of shape {shape} would "
                             f"exceed an array's 2**63 bytes of float32 values. Received: "
                             f"shape={shape}")
        var = Variable(initializer, shape, name=name, trainable=trainable,
                       path=f"{self.name}/{name}", regularizer=regularizers.get(regularizer),
                       constraint=constraints.get(constraint))
        self._weights.append(var)
        if trainable:
            self._trainable_store.append(var)
        if not self._trainable:  # (a frozen layer's weights are made frozen, as Keras's)
            var.trainable = False
        return var

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """Keras's: sets the layer's flag, the flag of each weight it created trainable, and
        (recursively) its sublayers' (a model's layers, a composite layer's or a wrapper's).
        A model's training takes the weights whose flags are set; a frozen
        BatchNormalization runs in inference mode."""
        value = bool(value)
        self._trainable = value
        for v in getattr(self, "_trainable_store", ()):
            v.trainable = value
        for layer in self._tracked_layers():
            layer.trainable = value

    def _tracked_layers(self):
        """The layers Keras tracks as this one's sublayers."""
        return self._sublayers()

    def _all_weights(self):
        """Own weights, then (for a composite layer) its sublayers'."""
        out = list(self._weights)
        if _composite(self):
            for layer in self._sublayers():
                out += [w for w in layer.weights if all(w is not o for o in out)]
        return out

    @property
    def weights(self):
        return self._all_weights()

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [w for w in self.weights if w.trainable]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [w for w in self.weights if not w.trainable]

    # Keras 3's other names for them (on layers and models alike)
    @property
    def variables(self):
        return self.weights

    @property
    def trainable_variables(self):
        return self.trainable_weights

    @property
    def non_trainable_variables(self):
        return self.non_trainable_weights

    def get_weights(self):
        return [w.numpy() for w in self._all_weights()]

    def set_weights(self, weights):
        weights = weight_list(weights, f"layer '{self.name}'")
        targets = self._all_weights()
        if len(weights) != len(targets):
            raise ValueError(
                f"You called `set_weights(weights)` on layer '{self.name}' with a weight list "
                f"of length {len(weights)}, but the layer was expecting {len(targets)} "
                f"weights. Received: weights of length {len(weights)}"
            )
        for var, value in zip(targets, weights):
            value = np.asarray(value)
            if value.shape != var.shape:
                raise ValueError(
                    f"Layer {self.name} weight shape {var.shape} is not compatible with "
                    f"provided weight shape {value.shape}. Received: weight of shape {value.shape}"
                )
        for var, value in zip(targets, weights):
            var.assign(value)

    # --- Keras's dtype, masking and bookkeeping attributes ------------------------------
    input_spec = None  # (a custom layer's InputSpec, checked at each call)

    @property
    def dtype(self):
        """The dtype of the layer's weights: float32 (densitron's one dtype policy)."""
        return "float32"

    compute_dtype = variable_dtype = dtype

    @property
    def dtype_policy(self):
        from densitron.mixed_precision import DTypePolicy

        return DTypePolicy("float32")

    @property
    def path(self):
        return self.name

    @property
    def supports_masking(self):
        """Whether the layer passes on (or applies) the mask of an Embedding(mask_zero=True)
        input, as Keras's attribute tells; a custom layer may set it."""
        return self.__dict__.get("_supports_masking",
                                 self._mask_rule in ("pass", "consume", "same") or (
                                     _composite(self) and _own_compute_mask(self)))

    @supports_masking.setter
    def supports_masking(self, value):
        self._supports_masking = bool(value)

    def save_own_variables(self, store):
        """Keras's: the layer's weights into `store` (a dict) as "0", "1", ... (a layer class
        may write its own entries: model.save keeps what this writes)."""
        for i, value in enumerate(self.get_weights()):
            store[f"{i}"] = value

    def load_own_variables(self, store):
        """Keras's inverse of save_own_variables: the weights from the store's "0", "1", ...
        (other entries are the layer class's own)."""
        weights = self.weights
        values = [store[f"{i}"] for i in range(len(weights)) if f"{i}" in store]
        numbered = [k for k in store if str(k).isdigit()]
        if len(numbered) != len(weights) or len(values) != len(weights):
            raise ValueError(f"Layer '{self.name}' expected {len(weights)} variables, but "
                             f"received {len(numbered)} variables during loading. "
                             f"Expected: {[w.name for w in weights]}")
        self.set_weights([np.asarray(v) for v in values])

    def compute_mask(self, inputs, previous_mask=None):
        """Keras's default: the input's mask when the layer supports masking, else None."""
        return previous_mask if self.supports_masking else None

    @property
    def metrics(self):
        """The metrics the layer tracks: none (a model's are its logs)."""
        return []

    @property
    def losses(self):
        """Keras's list of scalar losses: those of the layer's (and its sublayers') latest call
        on arrays (add_loss's and the activity regularizer's; reset by each call), then the
        penalties of its trainable weights' regularizers at their current values."""
        values, seen, stack = [], set(), [self]
        while stack:  # (the layer, then its sublayers, depth first)
            layer = stack.pop(0)
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            values += layer.__dict__.get("_eager_losses", [])
            stack = [sub for sub in layer._sublayers() if id(sub) not in seen] + stack
        for w in self.trainable_weights:
            if getattr(w, "regularizer", None) is not None:
                values.append(np.float32(w.regularizer(np.asarray(w))))
        return values

    def count_params(self):
        if not self.built and type(self).build is not Layer.build:
            raise ValueError(
                f"You tried to call `count_params` on layer '{self.name}', but the layer isn't "
                "built. You can build it manually via: `layer.build(input_shape)`. Received: "
                "count_params() on a layer not built")
        return int(sum(int(np.prod(w.shape)) for w in self._all_weights()))

    # --- building and calling ------------------------------------------------------------
    def build(self, input_shape):
        self.built = True

    def get_build_config(self):
        """Keras's: the arguments the layer was built with ({"input_shape": ...}, or
        {"shapes_dict": ...} for a build of several), None before it is built."""
        shapes = self.__dict__.get("_build_shapes")
        if not shapes:
            return None
        if len(shapes) == 1:
            return {"input_shape": next(iter(shapes.values()))}
        return {"shapes_dict": dict(shapes)}

    def build_from_config(self, config):
        """Keras's: builds the layer from what get_build_config returned."""
        if config:
            if "input_shape" in config:
                self.build(config["input_shape"])
            elif "shapes_dict" in config:
                self.build(**config["shapes_dict"])

    def compute_output_shape(self, input_shape):
        return input_shape

    # Whether the layer takes one tensor of rank >= 2 (its _check_inputs then checks that).
    _single_input = False
    # Whether a 1-D array it is called on is one sample's values (activation layers), not a
    # batch of one value a sample.
    _vector_is_one_sample = False

    def _check_inputs(self, input_shape):
        """Validates the symbolic input shapes; raises ValueError naming the layer."""
        if self._single_input:
            self._check_single(input_shape)

    def _check_single(self, input_shape, min_rank=2):
        """Raises ValueError unless input_shape is one tensor's, of rank >= min_rank."""
        if isinstance(input_shape, list):
            raise ValueError(
                f"Layer \"{self.name}\" expects a single input tensor. "
                f"Received: {len(input_shape)} inputs with shapes {input_shape}"
            )
        if len(input_shape) < min_rank:
            raise ValueError(
                f"Input 0 of layer \"{self.name}\" is incompatible with the layer: expected "
                f"min_ndim={min_rank}, found ndim={len(input_shape)}. "
                f"Received: input_shape={tuple(input_shape)}"
            )

    # Whether Keras's call of the layer takes a `mask` argument (its layers that read one:
    # GlobalAveragePooling1D, Softmax, BatchNormalization, TimeDistributed, Lambda, the
    # recurrent ones); a layer of one's own takes one when its call() has the parameter.
    _call_takes_mask = False

    def _mask_shape(self, input_shape):
        """The shape of a mask of inputs of `input_shape`: its steps, all axes but the last."""
        return tuple(input_shape[:-1])

    def _takes_mask(self):
        if not _composite(self):
            return self._call_takes_mask
        try:
            return "mask" in inspect.signature(self.call).parameters
        except (TypeError, ValueError):
            return False

    def __call__(self, inputs, *args, **kwargs):
        training = kwargs.pop("training", None)
        if isinstance(training, _TracedTraining):  # (passed on in a traced call(): the run's)
            training = None
        explicit = None
        if "mask" in kwargs and self._takes_mask():
            # Keras's layer(x, mask=m): the layer reads m as x's mask (and passes it on); a
            # layer of one's own gets it as call()'s mask
            explicit = kwargs.pop("mask")
            if isinstance(explicit, (list, tuple)) and len(explicit) == 1:
                explicit = explicit[0]  # (one input's, as a list: a loaded call's)
            if not (_composite(self) and isinstance(explicit, KerasTensor)):
                inputs, explicit = with_mask(self, inputs, explicit), None
        positional = False
        if (args or kwargs) and _composite(self):
            # call(self, a, b): a layer of one's own given several tensors or arrays (Keras's
            # LogisticEndpoint(targets, logits), Deep & Cross's cross(x0, x), a tensor by
            # keyword: Gate()(x, context=c)), traced as call(*tensors)
            tensors = _positional_tensors(self, inputs, args, kwargs)
            if tensors is not None:
                inputs, args, kwargs, positional = tensors, (), {}, True
        if args or kwargs:
            raise TypeError(
                f"Layer {self.name} takes only its inputs (and `training`) when called. "
                f"Received: args={args}, kwargs={kwargs}"
            )
        flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if isinstance(inputs, dict) and _composite(self) and inputs and all(
                isinstance(t, KerasTensor) for t in inputs.values()):
            # (a layer of one's own given a dict of tensors: the structured-data example's
            # Classifier(features), its call() reading them by name)
            flat = list(inputs.values())
        if getattr(self, "input_spec", None) is not None:  # a custom layer's (Keras's InputSpec)
            from densitron.layers.input_spec import assert_input_compatibility

            assert_input_compatibility(self.input_spec, inputs, self.name)
        symbolic = bool(flat) and all(isinstance(t, KerasTensor) for t in flat)
        if training is not None and symbolic:
            if not _TRACING[-1]:
                # Building a functional graph: Keras 3 records the value, and each run of the
                # model sets it again from the run's own mode (fit trains, evaluate and
                # predict infer), so it has no effect; densitron's engine does the same.
                training = None
            elif training is False and getattr(self, "_identity_outside_training", False):
                # In a subclassed model's call() (which Keras runs as written each step): a
                # noise or dropout layer called with training=False leaves its input as is.
                return inputs
            elif training is True and in_training_trace():
                # (in a call() traced once per mode, the training trace: the run's mode,
                # which is training wherever its outputs are used)
                training = None
        if training is not None and not symbolic and flat and all(
                _is_array_like(t) and not isinstance(t, Layer) for t in flat):
            # on arrays (Dropout's docstring: layer(data, training=True)): the noise layers
            # active or not, as in model(x, training=...)
            return self._eager_call(inputs, training=bool(training), positional=positional)
        if training is not None:
            raise ValueError(
                f"densitron's engine decides the training mode of layer {self.name}: fit "
                "trains, evaluate and predict infer (inside a model's call(), pass the "
                "`training` argument it receives; training=False is taken by dropout and "
                f"noise layers). Received: training={training!r}")
        if symbolic:
            if _composite(self):
                return self._composite_call(inputs, flat, positional, explicit)
            return self._symbolic_call(inputs, flat)
        if any(isinstance(t, KerasTensor) for t in flat):
            raise TypeError(
                f"Layer {self.name} was called on a mix of symbolic tensors and other values. "
                f"Received: inputs={inputs!r}"
            )
        if flat and all(_is_array_like(t) and not isinstance(t, Layer) for t in flat):
            return self._eager_call(inputs, positional=positional)
        raise TypeError(
            f"Layer {self.name} must be called on a KerasTensor (from `Input()` or another "
            f"layer) or on an array. Received: inputs={inputs!r} (of type "
            f"{type(inputs).__name__})"
        )

    def call(self, inputs, *args, **kwargs):
        """A built-in layer's computation: its engine node on the symbolic inputs (what a
        subclass's own call() gets from `super().call(inputs)`, as Keras's Dense.call)."""
        if args or kwargs.get("mask") is not None:
            raise TypeError(f"Layer {self.name}'s own computation takes its inputs only. "
                            f"Received: args={args}, kwargs={kwargs}")
        flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not flat or not all(isinstance(t, KerasTensor) for t in flat):
            raise TypeError(f"Layer {self.name}: call() runs on symbolic tensors inside a "
                            f"traced call(). Received: inputs={inputs!r}")
        return self._symbolic_call(inputs, flat)

    call._engine_call = True

    def _composite_call(self, inputs, flat, positional=False, explicit=None):
        """A layer subclass that defines `call` out of other layers: its call runs on the
        symbolic tensors (as call(*inputs) when it was given several), so its sublayers'
        calls join the graph in its place."""
        shapes = [t.shape for t in flat]
        if not self.built:
            if positional:
                _build_for_call(self, shapes)
            elif isinstance(inputs, dict):  # (Keras's build: the dict of their shapes)
                self.build({k: t.shape for k, t in inputs.items()})
            else:
                self.build(shapes if isinstance(inputs, (list, tuple)) else shapes[0])
            self.built = True

        record = CompositeCall(self, flat, isinstance(inputs, (list, tuple)) and not positional,
                               positional)
        record.keys = list(inputs) if isinstance(inputs, dict) else None
        # Keras's mask argument: the mask of the one tensor (a list's: their masks), as
        # tensors of 1 where a step is kept
        first = flat[0] if positional else inputs

        def given(t):  # (as a tensor only for a call() or compute_mask that reads it)
            reads = self._takes_mask() or _own_compute_mask(self)
            return t._keras_mask if reads else t._mask

        mask = ([given(t) for t in first] if isinstance(first, (list, tuple))
                else given(first) if isinstance(first, KerasTensor) else None)
        if explicit is not None:  # (layer(x, mask=m): the call's mask, saved as its argument)
            with_mask(self, first, explicit)  # (checks its shape)
            mask, record.explicit_masks = explicit, {0: getattr(explicit, "_mask_source",
                                                                explicit)}
        _COMPOSITE_CALLS.append(record)
        try:
            out = traced_call(self, inputs, positional, mask=mask)
        except (TypeError, AttributeError) as e:
            raise TypeError(
                f"Layer {self.name} ({type(self).__name__}): densitron runs call() on symbolic "
                "tensors, so it may only call densitron layers and densitron.ops on them (and "
                "use arithmetic between tensors or with numbers). "
                f"Received: {type(e).__name__}: {e}") from e
        finally:
            _COMPOSITE_CALLS.pop()
        outs = (list(out.values()) if isinstance(out, dict)
                else list(out) if isinstance(out, (list, tuple)) else [out])
        if not outs or not all(isinstance(t, KerasTensor) for t in outs):
            raise TypeError(f"Layer {self.name} ({type(self).__name__}): call() must return "
                            f"tensors from densitron layers. Received: {out!r}")
        record.outputs = outs
        self._set_output_masks(first, flat, outs, mask)
        return out

    def _set_output_masks(self, inputs, flat, outs, mask):
        """Keras's masks of a layer of one's own's outputs (those its call made: an input
        returned as it is keeps its own): its compute_mask(inputs, mask) (a tensor each, 1 or
        True where a step is kept) or, when it supports masking, the mask it was given; none
        else, whatever its sublayers gave them (Keras's call of a layer makes new tensors),
        with Keras's warning when it was given a mask."""
        made = [t for t in outs if not any(t is f for f in flat)]
        given = any(m is not None for m in (mask if isinstance(mask, list) else [mask]))
        if not self.supports_masking:
            for t in made:
                t._mask = None
            if given:
                warnings.warn(f"Layer '{self.name}' (of type {type(self).__name__}) was passed "
                              "an input with a mask attached to it. However, this layer does "
                              "not support masking and will therefore destroy the mask "
                              "information. Downstream layers will not see the mask.",
                              stacklevel=4)
            return
        masks = self.compute_mask(inputs, mask) if _own_compute_mask(self) else mask
        masks = (list(masks) if isinstance(masks, (list, tuple)) else [masks] * len(outs))
        for t, m in zip(outs, masks + [None] * (len(outs) - len(masks))):
            if not any(t is u for u in made):
                continue
            if m is not None and not isinstance(m, KerasTensor):
                raise TypeError(
                    f"Layer \"{self.name}\" ({type(self).__name__}): compute_mask() of symbolic "
                    f"inputs must return symbolic tensors (or None). Received: {m!r}")
            t._mask = getattr(m, "_mask_source", m)

    def _sublayers(self):
        """The layers a composite layer (or a subclassed model) holds in its attributes
        (directly or in lists), in the order they were set."""
        found = []
        for key, value in vars(self).items():
            if key == "_all_layers":  # (a model's own list of its trace's layers)
                continue
            items = value if isinstance(value, (list, tuple)) else [value]
            for v in items:
                if isinstance(v, Layer) and v is not self and all(v is not f for f in found):
                    found.append(v)
        return found

    def _symbolic_call(self, inputs, flat):
        shapes = [t.shape for t in flat]
        arg = shapes if isinstance(inputs, (list, tuple)) else shapes[0]
        self._check_inputs(arg)
        if not self.built:
            self.build(arg)
            self.built = True
        out_shape = self.compute_output_shape(arg)
        node = Node(self, flat, [])
        node.is_list = isinstance(inputs, (list, tuple))
        out = KerasTensor(out_shape, name=self.name, node=node, index=0)
        # (an op's output carries no mask, as Keras's operations make none)
        out._mask = None if self._op_layer else self._output_mask(node)
        explicit = {k: t._mask for k, t in enumerate(flat)
                    if getattr(t, "_carried", None) is not None}
        if explicit:  # (masks given as the call's argument: the node reads the tensors
            # themselves, and the masks as the call's own, which the graph walks too)
            node.inputs = [t._carried if k in explicit else t for k, t in enumerate(flat)]
            node.explicit_masks = explicit
        node.outputs.append(out)
        self._inbound_nodes.append(node)
        return out

    # What a layer does with a mask on its input (from Embedding(mask_zero=True)), as Keras's
    # supports_masking and call(mask=) decide: "pass" it on unchanged, "drop" it (with Keras's
    # warning), "consume" it (the layer applies it), "same" (a merge: Keras ORs its inputs'
    # masks, and drops them when an input has none: the mask when every input has the same one,
    # None when one has none, else their OR, see _or_of_masks), or "refuse" (the layer would
    # use it in a way densitron does not run yet).
    _mask_rule = "drop"

    def _call_on_arrays(self, inputs, arrays, training, positional, masks=()):
        """A composite layer's call() run on the arrays, as Keras runs a layer eagerly: its
        sublayers' calls and densitron.ops on arrays compute with NumPy; arrays back."""
        if not self.built:
            shapes = [a.shape for a in arrays]
            if positional:
                _build_for_call(self, shapes)
            else:
                self.build(shapes if isinstance(inputs, (list, tuple)) else shapes[0])
            self.built = True
        try:
            params = inspect.signature(self.call).parameters
        except (TypeError, ValueError):
            params = {}
        kwargs = {"training": training} if "training" in params else {}
        data = list(arrays) if isinstance(inputs, list) else tuple(arrays) if isinstance(
            inputs, tuple) else arrays[0]
        # Keras's mask argument: the one input's mask, a list's masks
        previous = (list(masks) if isinstance(inputs, (list, tuple))
                    else masks[0] if masks else None)
        if "mask" in params:
            kwargs["mask"] = previous
        out = self.call(*arrays, **kwargs) if positional else self.call(data, **kwargs)

        def array(v):
            if isinstance(v, dict):
                return {k: array(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return type(v)(array(x) for x in v)
            if isinstance(v, KerasTensor):
                raise TypeError(f"call() returned a symbolic tensor on arrays. Received: {v!r}")
            return np.asarray(v)

        out = array(out)
        if not self.supports_masking or isinstance(out, dict):
            return out
        # Keras's masks of the outputs: compute_mask(inputs, mask), or the mask given
        given = self.compute_mask(data, previous) if _own_compute_mask(self) else previous
        if given is None:
            return out
        values = list(out) if isinstance(out, (list, tuple)) else [out]
        given = list(given) if isinstance(given, (list, tuple)) else [given] * len(values)
        for i, m in enumerate(given[:len(values)]):
            if m is not None and np.shape(m) == values[i].shape[:-1]:
                values[i] = _masked_array(values[i], m)
        return type(out)(values) if isinstance(out, (list, tuple)) else values[0]

    def _output_mask(self, node):
        masks = [t._mask for t in node.inputs if getattr(t, "_mask", None) is not None]
        if not masks:
            return None
        if self._mask_rule == "same":  # Keras's OR of the inputs' masks, none if one has none
            if len(masks) < len(node.inputs):
                return None
            return _or_of_masks(self, masks)
        if self._mask_rule == "pass" and len(node.inputs) == 1:
            return masks[0]
        if self._mask_rule == "consume" and len(node.inputs) == 1:
            node.masks = (masks[0],)
            return None
        if self._mask_rule == "drop":
            warnings.warn(f"Layer '{self.name}' (of type {type(self).__name__}) was passed an "
                          "input with a mask attached to it. However, this layer does not "
                          "support masking and will therefore destroy the mask information. "
                          "Downstream layers will not see the mask.", stacklevel=4)
            return None
        raise ValueError(
            f"Layer \"{self.name}\" ({type(self).__name__}) would use the mask of "
            "Embedding(mask_zero=True) in its computation, which densitron does not support "
            "yet (masks go through per-step layers to GlobalAveragePooling1D). "
            f"Received: a masked input to {type(self).__name__}")

    def _eager_call(self, inputs, training=False, positional=False):
        from densitron.layers.input_layer import Input
        from densitron.models.functional import Functional

        flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        arrays = [np.asarray(t, dtype=np.float32) for t in flat]
        if self._vector_is_one_sample and len(arrays) == 1 and arrays[0].ndim == 1:
            # an activation of a vector: Keras's values of that vector (a softmax over it)
            return self._eager_call(arrays[0][None], training, positional)[0]
        for a in arrays:  # ((batch,): one value a sample, as Input(shape=()))
            if a.ndim < 1:
                raise ValueError(
                    f"Layer {self.name} expects inputs with a batch axis (batch, ...) when "
                    f"called on arrays. Received: input with shape {a.shape}"
                )
        masks = [_array_mask(t, a) for t, a in zip(flat, arrays)]
        present = tuple(m is not None for m in masks)
        key = (positional, *(a.shape[1:] for a in arrays), *([present] if any(present) else []))
        model = self._eager_models.get(key)
        if model is _ON_ARRAYS:
            return self._call_on_arrays(inputs, arrays, training, positional, masks)
        if model is None:
            tensors = [Input(shape=a.shape[1:]) for a in arrays]
            mask_inputs = []
            for t, m in zip(tensors, masks):  # (an array's mask: the model's input after them)
                if m is not None:
                    t._mask = Input(shape=m.shape[1:])
                    mask_inputs.append(t._mask)
            try:
                out = (self(*tensors) if positional else
                       self(tensors if isinstance(inputs, (list, tuple)) else tensors[0]))
            except (TypeError, ValueError) as e:
                if not _composite(self):
                    raise
                # a call() that does not trace (it reads the batch size, indexes the steps,
                # assigns to a variable: the guides' eager layers) runs on the arrays
                try:
                    out = self._call_on_arrays(inputs, arrays, training, positional, masks)
                except Exception:  # noqa: BLE001 (any failure: the tracing error)
                    raise e from None
                self._eager_models[key] = _ON_ARRAYS
                return out
            routes, extra = _mask_routes(out, tensors + mask_inputs)
            outputs = out if not extra else [*out, *extra] if isinstance(out, (list, tuple)) \
                else [out, *extra]
            model = Functional(tensors + mask_inputs, outputs, name=f"{self.name}_eager",
                               _is_eager_wrapper=True)
            model._eager_mask_routes = (routes, len(extra), isinstance(out, (list, tuple)))
            self._eager_models[key] = model
        data = [*arrays, *(m.astype(np.float32) for m in masks if m is not None)]
        data = data if len(data) > 1 else data[0]
        if training:
            out = model._noisy_call(data, max(1, min(len(arrays[0]), 1024)))
        else:
            out = model.predict(data, verbose=0)
        out = _with_output_masks(model, out, data)
        # Keras's losses of this call (layer.losses): add_loss's, each kept by the layer that
        # added it, then this layer's activity penalty
        values = model._added_loss_values(data)
        owners = model.__dict__.get("_added_loss_owners", [])
        for owner in {id(o): o for o in [self, *owners] if o is not None}.values():
            owner._eager_losses = []
        for owner, value in zip(owners, values):
            (owner or self)._eager_losses.append(np.float32(value))
        if self.activity_regularizer is not None and not isinstance(out, (list, dict)):
            self._eager_losses.append(
                np.float32(self.activity_regularizer(out) / max(len(out), 1)))
        return out

    # --- config --------------------------------------------------------------------------
    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj._init_args = (args, kwargs)  # (for Keras's automatic config: see get_config)
        return obj

    def get_config(self):
        """name, trainable, dtype; for a user's layer class that defines no get_config,
        Keras's automatic config too: the arguments its constructor was given, when they are
        all numbers, strings, booleans, None or lists and dicts of those."""
        config = {"name": self.name}
        if type(self).get_config is Layer.get_config and \
                not type(self).__module__.startswith("densitron."):
            if not takes_name(type(self)):
                del config["name"]  # (as Keras: a constructor that takes no name gets none)
            config.update(_auto_config(type(self), *self.__dict__.get("_init_args", ((), {}))))
        config.update(trainable=self.trainable, dtype=dtype_policy_config())
        if self.activity_regularizer is not None:  # as Keras: the key only when set
            from densitron import regularizers

            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("dtype", None)
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def dtype_policy_config(name="float32"):
    """A layer config's dtype as Keras 3 writes it: its DTypePolicy, serialized."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


def takes_name(cls):
    """Whether cls(..., name=...) is accepted: a `name` parameter, or **kwargs."""
    params = inspect.signature(cls.__init__).parameters.values()
    return any(p.name == "name" or p.kind is p.VAR_KEYWORD for p in params)


def _call_params(layer):
    """The names of a layer's call() arguments that may take tensors, in order (`training`
    and `mask` left out)."""
    try:
        params = inspect.signature(layer.call).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.name not in ("training", "mask")]


def _positional_tensors(layer, inputs, args, kwargs):
    """call(inputs, *args, **kwargs) of a layer of one's own as its positional arguments in
    order, when they are all tensors (or all arrays) and fill call's first parameters (a
    tensor given by keyword included); None otherwise (the call is refused after)."""
    names = _call_params(layer)
    given = [inputs, *args]
    if len(given) > len(names):
        return None
    for name in names[len(given):]:
        if name not in kwargs:
            break
        given.append(kwargs[name])
    if len(given) - 1 - len(args) != len(kwargs):  # (a keyword beyond that prefix)
        return None
    kinds = {isinstance(t, KerasTensor) for t in given}
    if kinds == {True} or (kinds == {False} and all(_is_array_like(t) for t in given)):
        return given
    return None


def _build_for_call(layer, shapes):
    """Keras's build of a layer called with several tensors: build(input_shape) gets the first
    one's shape; a build of several arguments, each `<call argument>_shape` by name."""
    names = _call_params(layer)
    try:
        params = [p for p in inspect.signature(layer.build).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if len(params) <= 1:
        layer.build(shapes[0])
        return
    by_name = {f"{name}_shape": shape for name, shape in zip(names, shapes)}
    missing = [p.name for p in params if p.name not in by_name and p.default is p.empty]
    if missing:
        raise ValueError(
            f"For a `build()` method with more than one argument, all arguments should have "
            f"a `_shape` suffix and match an argument from `call()`. E.g. `build(self, "
            f"foo_shape, bar_shape)`. Received: build arguments {missing} for layer "
            f"{layer.name} with call arguments {names}")
    layer.build(**{p.name: by_name[p.name] for p in params if p.name in by_name})


def _auto_config(cls, args, kwargs):
    """Keras's automatic config of a layer: its constructor's arguments by name, {} unless
    every value (lists and dicts walked) is a number, a string, a boolean or None."""
    try:
        bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
    except TypeError:
        return {}
    values = dict(list(bound.arguments.items())[1:])
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if p.kind is p.VAR_KEYWORD:
            values.update(values.pop(name, {}))
        elif p.kind is p.VAR_POSITIONAL and name in values:
            return {}

    def plain(v):
        if isinstance(v, (list, tuple)):
            return all(plain(x) for x in v)
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        return v is None or isinstance(v, (str, bool, int, float))

    return values if plain(values) else {}


def defines_call(cls):
    """Whether a Layer or Model subclass defines its own `call` (a subclassed model, or a layer
    made of other layers), not the engine's node of a built-in layer (Layer.call)."""
    call = getattr(cls, "call", None)
    return call is not None and not getattr(call, "_engine_call", False)


def _array_mask(value, array):
    """The mask an array given to a layer carries (Keras's `_keras_mask`: an Embedding's or
    Masking's output, an array given with mask=), True where a step is kept; None without
    one or when it is not of the array's shape without the last axis."""
    mask = getattr(value, "_keras_mask", None)
    if mask is None or isinstance(mask, KerasTensor):
        return None
    mask = np.asarray(mask)
    return mask != 0 if mask.ndim == array.ndim - 1 else None


def _mask_routes(out, sources):
    """Where an eager call's outputs find their masks: for each output, ("in", k) the model's
    k-th input (its values nonzero where kept), ("out", j) the j-th of `extra`, the masks
    made inside the model, added to its outputs, or None (no mask; a merge's OR is not
    returned). The outputs' masks are taken off after (their values are asked for, not a
    loss)."""
    outs = list(out.values()) if isinstance(out, dict) else out if isinstance(
        out, (list, tuple)) else [out]
    if isinstance(out, dict):  # (a dict of outputs: their values without masks)
        for t in outs:
            if isinstance(t, KerasTensor):
                t._mask = None
        return None, []
    routes, extra = [], []
    for t in outs:
        mask = t._mask if isinstance(t, KerasTensor) else None
        route = None
        if mask is not None:
            k = next((i for i, s in enumerate(sources) if _same_tensor(s, mask)), None)
            if k is not None:
                route = ("in", k)
            elif not isinstance(mask._node.layer, MaskMaker):
                route = ("out", len(extra))
                extra.append(mask)
        routes.append(route)
        if isinstance(t, KerasTensor):
            t._mask = None
    return routes, extra


def _with_output_masks(model, out, data):
    """An eager call's outputs with Keras's `_keras_mask` where the layer gives them a mask
    (see _mask_routes), the masks' own outputs taken off."""
    routes, n_extra, is_list = model.__dict__.get("_eager_mask_routes", (None, 0, False))
    if routes is None:
        return out
    values = list(out) if isinstance(out, (list, tuple)) else [out]
    if n_extra:
        values, extra = values[:-n_extra], values[-n_extra:]
    else:
        extra = []
    inputs = data if isinstance(data, list) else [data]
    for i, route in enumerate(routes):
        if route is None or not isinstance(values[i], np.ndarray):
            continue
        source = inputs[route[1]] if route[0] == "in" else extra[route[1]]
        if np.shape(source) == values[i].shape[:-1]:
            values[i] = _masked_array(values[i], source)
    return values if is_list else values[0]


def _own_compute_mask(layer):
    """Whether the layer's class defines its own compute_mask (Keras then takes it to support
    masking)."""
    return type(layer).compute_mask is not Layer.compute_mask


def _shapes_agree(a, b):
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def carry(tensor, mask):
    """A stand-in for `tensor` in a call given `mask` as its argument (the tensor's steps kept
    where the mask is nonzero): the call's node reads the tensor itself, and keeps the mask as
    its explicit_masks."""
    carrier = KerasTensor(tensor.shape, name=tensor.name, node=tensor._node,
                          index=tensor._index)
    carrier.dtype = tensor.dtype
    carrier._mask = getattr(mask, "_mask_source", mask)
    carrier._carried = tensor._carried or tensor
    return carrier


def with_mask(layer, inputs, mask):
    """`inputs` as Keras's call(inputs, mask=mask) reads them: the tensor (a list's first, a
    recurrent layer's sequences) carrying `mask`, of its shape but the last axis, each step
    kept where the mask is nonzero (True): a symbolic tensor's `_mask`, an array's
    `_keras_mask`. A list of masks goes to the list's tensors in order (Attention's [query
    mask, value mask]); mask=None leaves them as they are."""
    if mask is None:
        return inputs
    if isinstance(inputs, (list, tuple)):
        masks = list(mask) if isinstance(mask, (list, tuple)) else [mask]
        if len(masks) > len(inputs):
            raise ValueError(f"Layer \"{layer.name}\" takes a mask for each of its "
                             f"{len(inputs)} inputs at most. Received: {len(masks)} masks")
        carried = [with_mask(layer, t, m) for t, m in zip(inputs, masks)]
        return type(inputs)(carried + list(inputs[len(carried):]))
    if isinstance(mask, (list, tuple)):
        if len(mask) != 1:
            raise ValueError(f"Layer \"{layer.name}\" takes one mask for its one input. "
                             f"Received: mask={mask!r}")
        mask = mask[0]
    if isinstance(inputs, KerasTensor):
        if not isinstance(mask, KerasTensor):
            raise TypeError(f"Layer \"{layer.name}\": the mask of a symbolic input must be a "
                            f"symbolic tensor. Received: mask={mask!r}")
        want = layer._mask_shape(tuple(inputs.shape))
        if not _shapes_agree(tuple(mask.shape), want):
            raise ValueError(
                f"Layer \"{layer.name}\": a mask has the shape of the input's steps, {want}. "
                f"Received: mask.shape={tuple(mask.shape)}")
        return carry(inputs, mask)
    if isinstance(mask, KerasTensor) or not _is_array_like(inputs):
        raise TypeError(f"Layer \"{layer.name}\": the mask of an array input must be an "
                        f"array. Received: inputs of type {type(inputs).__name__}, "
                        f"mask={mask!r}")
    values = np.asarray(inputs)
    kept = np.asarray(mask)
    if kept.shape != layer._mask_shape(values.shape):
        raise ValueError(
            f"Layer \"{layer.name}\": a mask has the shape of the input's steps, "
            f"{layer._mask_shape(values.shape)}. Received: mask.shape={kept.shape}")
    return _masked_array(values, kept)


class _MaskedArray(np.ndarray):
    """An eager call's output array with Keras's `_keras_mask` (Embedding(mask_zero=True),
    Masking): the mask of the steps, True where kept."""


def _masked_array(values, mask):
    """values (an array) carrying `mask` as Keras's `_keras_mask`: True where it is nonzero."""
    out = np.asarray(values).view(_MaskedArray)
    out._keras_mask = np.asarray(mask) != 0
    return out


_ON_ARRAYS = object()  # (an eager call whose call() runs on the arrays: _call_on_arrays)


def _composite(layer):
    """A Layer subclass (not a model) that defines call(): a layer made of other layers."""
    from densitron.models.functional import Functional

    return defines_call(type(layer)) and not isinstance(layer, Functional)


def shape_width(shape):
    """Values per sample of a (None, ...) shape."""
    return int(np.prod(shape[1:])) if len(shape) > 1 else 1


def node_spec(op, width, last_dim, act=None, params=(), fattrs=(), iattrs=(),
              activity=(0.0, 0.0)):
    """The engine's description of one node: (op, width, last_dim, activation id, activation
    params, params, fattrs, iattrs, (activity l1, l2)); `act` is activations.engine_spec's
    (id, params), the linear activation when None. The executor adds the input indices."""
    from densitron import activations

    act_id, act_params = act or activations.engine_spec(activations.linear)
    return (op, int(width), int(last_dim), act_id, act_params, list(params),
            [float(f) for f in fattrs], [int(i) for i in iattrs],
            (float(activity[0]), float(activity[1])))


def engine_node(op, node, activation=None, params=(), fattrs=(), iattrs=()):
    """node_spec for one layer call: its output's width and last axis, its activation (a
    softmax over a middle axis as (outer, len, inner) in iattrs) and activity regularizer."""
    from densitron import activations

    out = node.outputs[0].shape
    activation = activation or activations.linear
    act = activations.engine_spec(activation, allow_axis=op == 2)
    axis = activations.softmax_axis(activation)
    if axis is not None:
        rank = len(out)
        axis = axis + rank if axis < 0 else axis
        if not 1 <= axis < rank:
            raise ValueError(f"Invalid softmax axis for an output of rank {rank} (the batch axis "
                             f"cannot be normalised over). Received: axis={axis}")
        if axis != rank - 1:  # the engine normalises over a middle axis as (outer, len, inner)
            iattrs = [int(np.prod(out[1:axis])), int(out[axis]), int(np.prod(out[axis + 1:]))]
    from densitron import regularizers

    activity = regularizers.coefficients(getattr(node.layer, "activity_regularizer", None))
    return node_spec(op, shape_width(out), int(out[-1]) if len(out) > 1 else 1, act, params,
                     fattrs, iattrs, activity)
