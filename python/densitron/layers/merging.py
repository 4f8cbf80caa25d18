"""Merge layers over several inputs of equal shape (Concatenate: equal but for the axis)."""

import math

from densitron.layers.layer import Layer, MaskConcat, _or_of_masks, engine_node, node_spec
from densitron.layers.reshaping import KeepsIntegerDtype


def _check_list(layer, input_shape, exactly=None):
    if not isinstance(input_shape, list) or len(input_shape) < 2:
        raise ValueError(
            f"A merge layer \"{layer.name}\" should be called on a list of at least 2 inputs. "
            f"Received: input_shape={input_shape}"
        )
    if exactly is not None and len(input_shape) != exactly:
        raise ValueError(f"A `{type(layer).__name__}` layer should be called on exactly "
                         f"{exactly} inputs. Received: {len(input_shape)} inputs with shapes "
                         f"{input_shape}")


class _Merge(Layer):
    _mask_rule = "same"  # Keras ORs the inputs' masks (see Layer._output_mask)
    _op = None
    _arity = None

    def _check_inputs(self, input_shape):
        _check_list(self, input_shape, self._arity)
        if len({tuple(s[1:]) for s in input_shape}) != 1:
            raise ValueError(
                f"Inputs have incompatible shapes for layer \"{self.name}\": every input must "
                f"have the same shape. Received: input shapes {input_shape}"
            )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def _engine_node(self, node, param_index):
        return engine_node(self._op, node)


class _MaskedValues(_Merge):
    """A merge whose values Keras changes where an input is masked (its Multiply takes a
    masked input's values as 1 and outputs 0 where every input is masked; its Maximum and
    Minimum, input by input, take the merged values so far where the new input is masked and
    the new input's where they are), keeping a step where any input keeps it when every input
    has a mask. The call reads the masks (node.masks, one a masked input) and runs as several
    engine nodes: where(m, x, y) as x·[m ≠ 0] + y·[m = 0], a value per step."""

    def _output_mask(self, node):
        masks = [t._mask for t in node.inputs]
        if all(m is None for m in masks):
            return None
        shapes = {tuple(m.shape) for m in masks if m is not None}
        steps = tuple(node.inputs[0].shape[1:-1])
        if len(shapes) != 1 or next(iter(shapes))[1:] != steps:
            raise ValueError(
                f"Layer \"{self.name}\" ({type(self).__name__}) applies the masks of its inputs "
                f"step by step: each must have one entry a step, shape {(None, *steps)}. "
                f"Received: masks of shapes {sorted(shapes, key=str)}")
        node.masks = tuple(m for m in masks if m is not None)
        if any(m is None for m in masks):
            return None
        return _or_of_masks(self, masks)

    def _engine_subgraph(self, node, param_index):
        from densitron.layers.math_ops import _MATH, _ROW_BROADCAST, MATH_OPS, RowBroadcast

        masks = getattr(node, "masks", None) or ()
        n = len(node.inputs)
        if not masks:
            return [([("in", k) for k in range(n)], engine_node(self._op, node))], [0]
        shape = node.outputs[0].shape
        width, last = math.prod(shape[1:]), shape[-1]
        steps = width // last
        items = []

        def add(refs, spec):
            items.append((refs, spec))
            return ("node", len(items) - 1)

        def values(op, refs, mode=None):
            return add(refs, node_spec(op, width, last, iattrs=[] if mode is None else [mode]))

        def indicator(mask, op):  # 1 where the mask keeps the step (not_equal) or not (equal)
            return add([mask], node_spec(_MATH, steps, steps, fattrs=[0.0, 0.0],
                                         iattrs=[MATH_OPS[op]]))

        def rows(mode, x, per_row):  # x times or plus a value per step
            return values(_ROW_BROADCAST, [x, per_row], RowBroadcast.MODES.index(mode))

        def where(mask, x, y):  # x where the mask keeps the step, else y
            kept = rows("mul", x, indicator(mask, "not_equal"))
            if y == "one":
                return rows("add", kept, indicator(mask, "equal"))
            return values(Add._op, [kept, rows("mul", y, indicator(mask, "equal"))])

        slots, j = [], n
        for t in node.inputs:
            slots.append(("in", j) if t._mask is not None else None)
            j += t._mask is not None
        xs = [("in", k) for k in range(n)]
        if self._op == Multiply._op:
            out = values(self._op, [x if m is None else where(m, x, "one")
                                    for x, m in zip(xs, slots)])
            if all(m is not None for m in slots):  # 0 where every input is masked
                either = add(slots, node_spec(Maximum._op, steps, steps))
                out = rows("mul", out, indicator(either, "not_equal"))
        else:  # Keras's _apply_merge_op_and_or_mask
            out, kept = xs[0], slots[0]
            for x, m in zip(xs[1:], slots[1:]):
                if m is not None:
                    x = where(m, x, out)
                if kept is not None:
                    out = where(kept, out, x)
                kept = (add([kept, m], node_spec(Maximum._op, steps, steps))
                        if kept is not None and m is not None else None)
                out = values(self._op, [out, x])
        last_spec = items[-1][1]
        activity = engine_node(self._op, node)[-1]  # (the layer's activity regularizer)
        items[-1] = (items[-1][0], (*last_spec[:-1], activity))
        return items, [len(items) - 1]


class Add(_Merge):
    _op = 3


class Subtract(_Merge):
    _op = 5
    _arity = 2


class Multiply(_MaskedValues):
    _op = 6


class Average(_Merge):
    _op = 7


class Maximum(_MaskedValues):
    _op = 8


class Minimum(_MaskedValues):
    _op = 9


class Concatenate(KeepsIntegerDtype, Layer):
    """Joins its inputs along `axis` (all other dimensions equal)."""
    _mask_rule = "same"  # along the last axis (see _output_mask)

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"`axis` must be an integer. Received: axis={axis!r}")
        self.axis = axis

    def _norm_axis(self, input_shape):
        rank = len(input_shape[0])
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise ValueError(f"Invalid `axis` for inputs of rank {rank} in layer "
                             f"\"{self.name}\" (the batch axis cannot be joined). "
                             f"Received: axis={self.axis}")
        return axis

    def _check_inputs(self, input_shape):
        _check_list(self, input_shape)
        if len({len(s) for s in input_shape}) != 1:
            raise ValueError(f"A `Concatenate` layer requires inputs of equal rank. "
                             f"Received: input shapes {input_shape}")
        axis = self._norm_axis(input_shape)
        others = {tuple(d for i, d in enumerate(s) if i != axis) for s in input_shape}
        if len(others) != 1:
            raise ValueError(
                "A `Concatenate` layer requires inputs with matching shapes except for the "
                f"concatenation axis. Received: input_shape={input_shape}"
            )

    def compute_output_shape(self, input_shape):
        axis = self._norm_axis(input_shape)
        out = list(input_shape[0])
        sizes = [s[axis] for s in input_shape]
        out[axis] = None if None in sizes else sum(sizes)  # (variable lengths: None, as Keras)
        return tuple(out)

    def _output_mask(self, node):
        """Keras's Concatenate.compute_mask: along the last axis, each step kept where any
        input keeps it, an input without a mask keeping every step (so then none is needed);
        along the steps of rank-3 inputs, the masks joined (MaskConcat). Along other axes the
        masks would be joined in ways densitron does not run yet."""
        masks = [t._mask for t in node.inputs]
        if all(m is None for m in masks):
            return None
        shapes = [t.shape for t in node.inputs]
        axis = self._norm_axis(shapes)
        if axis == len(shapes[0]) - 1:
            if any(m is None for m in masks):
                return None
            return _or_of_masks(self, masks)
        per_step = all(m is None or tuple(m.shape[1:]) == (s[1],) for m, s in zip(masks, shapes))
        if axis != 1 or len(shapes[0]) != 3 or not per_step:
            raise ValueError(
                f"Layer \"{self.name}\" (Concatenate) would join the masks of its inputs along "
                f"axis {self.axis}, which densitron runs for masks of one entry a step of "
                f"inputs (batch, steps, features) joined along the steps (axis 1) or the last "
                f"axis. Received: masked inputs of shapes {shapes}, masks of shapes "
                f"{[None if m is None else tuple(m.shape) for m in masks]}")
        return MaskConcat.of(node.inputs, masks)

    def _engine_node(self, node, param_index):
        shapes = [t.shape for t in node.inputs]
        blocks = math.prod(shapes[0][1:self._norm_axis(shapes)])
        return engine_node(4, node, iattrs=[blocks])

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dot(Layer):
    """Keras's Dot of two inputs: the sum of their products along `axes` (normalize: of their
    l2-normalised forms, the cosine). densitron takes inputs of equal shape whose only axis
    longer than 1 (after the batch axis) is the one reduced: one value a sample."""
    _mask_rule = "drop"  # Keras's Dot returns no mask

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axes, bool) or not isinstance(axes, (int, list, tuple)):
            raise TypeError("Invalid type for argument `axes`: it should be a list or an int. "
                            f"Received: axes={axes!r}")
        if isinstance(axes, (list, tuple)) and (
                len(axes) != 2 or not all(isinstance(a, int) and not isinstance(a, bool)
                                          for a in axes)):
            raise ValueError("Invalid format for argument `axes`: it should contain two "
                             f"integers. Received: axes={axes!r}")
        self.axes = axes if isinstance(axes, int) else list(axes)
        self.normalize = bool(normalize)

    def _axes(self, shapes):
        pair = [self.axes] * 2 if isinstance(self.axes, int) else self.axes
        return [a % len(s) if a < 0 else a for a, s in zip(pair, shapes)]

    def _check_inputs(self, input_shape):
        _check_list(self, input_shape, 2)
        shape1, shape2 = (tuple(s) for s in input_shape)
        a1, a2 = self._axes([shape1, shape2])
        if not (0 < a1 < len(shape1) and 0 < a2 < len(shape2)):
            raise ValueError(f"Invalid `axes` for layer \"{self.name}\" (the batch axis cannot "
                             f"be reduced). Received: axes={self.axes!r}")
        if shape1[a1] != shape2[a2]:
            raise ValueError(f"Incompatible input shapes: axis values {shape1[a1]} (at axis "
                             f"{a1}) != {shape2[a2]} (at axis {a2}). Full input shapes: "
                             f"{shape1}, {shape2}. Received: input_shape={input_shape}")
        if (shape1 != shape2 or a1 != a2 or
                any(d != 1 for k, d in enumerate(shape1[1:], 1) if k != a1)):
            raise ValueError(f"densitron's Dot reduces two inputs of the same shape over their "
                             f"one axis longer than 1 (one value a sample; no batched matrix "
                             f"products yet). Received: input shapes {shape1} and {shape2}, "
                             f"axes={self.axes!r}")

    def compute_output_shape(self, input_shape):
        shape1, shape2 = (list(s) for s in input_shape)
        a1, a2 = self._axes([shape1, shape2])
        shape1.pop(a1)
        shape2.pop(a2)
        shape2.pop(0)
        out = shape1 + shape2
        return tuple(out + [1] if len(out) == 1 else out)

    def _engine_node(self, node, param_index):
        d = math.prod(node.inputs[0].shape[1:])
        return engine_node(18, node, iattrs=[d, int(self.normalize)])

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


# Keras's functional forms of the merge layers: `layers.add([a, b])` is `Add()([a, b])`.
def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
