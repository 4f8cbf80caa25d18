"""Keras's EinsumDense on the engine: output = activation(einsum(equation, x, kernel) + bias).
Each sample's einsum is one matrix product between permutations: an index map puts the input's
kept axes first and its contracted axes last (the kernel's order), the engine's Dense op
multiplies by the kernel when its contracted axes come first (else the kernel, read as one
row of values a sample, is permuted and multiplied per sample, with a kernel of weights per
position too), a bias-add adds the bias over its axes moved last, and an index map puts the
output axes in the equation's order. Keras's weights: kernel and bias of Keras's shapes."""

import re

import numpy as np

from densitron import activations, initializers, regularizers
from densitron.layers.core import kernel_bias_config, set_kernel_bias_args
from densitron.layers.layer import Layer, node_spec
from densitron.layers.reshaping import _positions

_DENSE, _RESHAPE, _INDEX_MAP, _BIAS_ADD, _ACTIVATION = 1, 14, 20, 22, 2


def _keras_invalid(equation):
    return ValueError(f"Invalid einsum equation '{equation}'. Equations must be in the form "
                      "[X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]....")


def _split(equation):
    """(input spec, kernel spec, output spec, where the ellipsis is: None, "left" or
    "right") of an equation, as Keras reads it."""
    if not isinstance(equation, str):
        raise _keras_invalid(equation)
    plain = equation.replace("...", "0")
    for pattern, side in (("([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)", None),
                          ("0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)", "left"),
                          ("([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0", "right")):
        match = re.fullmatch(pattern, plain)
        if match:
            return (*match.groups(), side)
    raise _keras_invalid(equation)


def analyze(equation, bias_axes, input_shape, output_shape):
    """Keras's _analyze_einsum_string: (kernel shape, bias shape or None, full output shape
    with Keras's None entries, the kernel's input axes, its output axes), with Keras's errors."""
    x_spec, w_spec, y_spec, side = _split(equation)
    input_shape = list(input_shape)
    elided = len(input_shape) - len(x_spec)
    out = [output_shape] if isinstance(output_shape, int) else list(output_shape)
    out.insert(0, input_shape[0])
    if elided > 0 and side == "left":
        out[1:1] = input_shape[1:elided]
    elif elided > 0:
        out += input_shape[len(input_shape) - elided:]
    left = elided if side == "left" else 0
    x_at = {c: i + left for i, c in enumerate(x_spec)}
    y_at = {c: i + left for i, c in enumerate(y_spec)}
    for c in x_spec:
        if c in y_at and out[y_at[c]] is not None and out[y_at[c]] != input_shape[x_at[c]]:
            raise ValueError(f"Input shape and output shape do not match at shared dimension "
                             f"'{c}'. Input shape is {input_shape[x_at[c]]}, and output shape "
                             f"is {out[y_at[c]]}.")
    for c in y_spec:
        if c not in x_spec and c not in w_spec:
            raise ValueError(f"Dimension '{c}' was specified in the output '{y_spec}' but has "
                             f"no corresponding dim in the input spec '{x_spec}' or weight "
                             f"spec '{y_spec}'")
    kernel, ins, outs = [], [], []
    for i, c in enumerate(w_spec):
        if c in y_at:
            kernel.append(out[y_at[c]])
            outs.append(i)
        elif c in x_at:
            kernel.append(input_shape[x_at[c]])
            ins.append(i)
        else:
            raise ValueError(f"Weight dimension '{c}' did not have a match in either the input "
                             f"spec '{x_spec}' or the output spec '{y_spec}'. For this layer, "
                             "the weight must be fully specified.")
    bias = None
    if bias_axes is not None:
        for c in bias_axes:
            if c not in y_spec:
                raise ValueError(f"Bias dimension '{c}' was requested, but is not part of the "
                                 f"output spec '{y_spec}'")
        first = min(y_spec.find(c) for c in bias_axes)
        bias = [out[y_at[c]] if c in bias_axes else 1 for c in y_spec[first:]]
        if side != "left":
            bias += [1] * max(elided, 0)
    return kernel, bias, out, ins, outs


def _fans_initializer(initializer, ins, outs):
    """Keras's VarianceScaling given the kernel's input and output axes: its fans are the
    products of those axes' sizes (the values drawn for that 2-D shape, reshaped)."""
    def initialize(shape, dtype=None):
        fan_in = int(np.prod([shape[i] for i in ins]))
        fan_out = int(np.prod([shape[i] for i in outs]))
        return np.asarray(initializer((fan_in, fan_out), dtype)).reshape(shape)

    return initialize


def _gather(source, target, sizes):
    """The index map that turns a sample laid out as the axes `source` into `target` (each a
    string of axis letters, `sizes` their sizes); an axis of `target` not in `source` repeats
    the values along it."""
    grid = _positions(tuple(sizes[c] for c in source))
    new = "".join(c for c in target if c not in source)
    grid = np.broadcast_to(grid.reshape(grid.shape + (1,) * len(new)),
                           tuple(sizes[c] for c in source + new))
    return grid.transpose([(source + new).index(c) for c in target]).ravel().tolist()


class EinsumDense(Layer):
    """Keras's EinsumDense(equation, output_shape, activation=None, bias_axes=None, ...):
    `einsum(equation, inputs, kernel)` plus a bias over `bias_axes`, then the activation.
    The equation's first input axis is the batch's (or in the leading ellipsis) and stays
    the output's first; each other input axis goes to the output, is contracted with the
    kernel or is summed away; the kernel's other axes go to the output, or also to the input
    (a kernel per position). Equations that repeat an axis (a diagonal) or move the batch
    axis are refused by name, as is LoRA."""

    def __init__(self, equation, output_shape, activation=None, bias_axes=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, lora_rank=None, lora_alpha=None, **kwargs):
        for arg, value in (("lora_rank", lora_rank), ("lora_alpha", lora_alpha)):
            if value is not None:
                raise ValueError(f"densitron's EinsumDense has no LoRA (its kernel trains "
                                 f"itself). Received: {arg}={value!r}")
        super().__init__(**kwargs)
        self.equation = equation
        _split(equation)  # (Keras checks it when it builds; at once here)
        dims = (output_shape,) if isinstance(output_shape, (int, np.integer)) \
            or output_shape is None else output_shape
        if not isinstance(dims, (list, tuple)) or not all(
                d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                              and d >= 1) for d in dims):
            raise ValueError("`output_shape` must be an integer or a tuple of integers (None "
                             "for an axis of the input's size). Received: "
                             f"output_shape={output_shape!r}")
        self.partial_output_shape = tuple(None if d is None else int(d) for d in dims)
        if bias_axes is not None and not isinstance(bias_axes, str):
            raise ValueError(f"`bias_axes` must be a string of output axes. Received: "
                             f"bias_axes={bias_axes!r}")
        self.bias_axes = bias_axes
        self.activation = activations.get(activation)
        set_kernel_bias_args(self, kernel_initializer, bias_initializer, kernel_regularizer,
                             bias_regularizer, kernel_constraint, bias_constraint)
        self.kernel = None
        self.bias = None

    # --- shapes --------------------------------------------------------------------------
    def _plan(self, input_shape):
        """The einsum's axes per sample: (input axes, kernel axes, output axes, bias axes in
        the output's order) as strings of letters (the ellipsis's axes as other characters),
        and each axis's size. Refuses what is not a permutation, a product and a
        permutation."""
        x_spec, w_spec, y_spec, side = _split(self.equation)
        kernel = analyze(self.equation, self.bias_axes, input_shape,
                         self.partial_output_shape)[0]
        elided = len(input_shape) - len(x_spec)
        if elided < 0 or (side is None and elided != 0) or (side == "left" and elided < 1):
            raise ValueError(f"Layer \"{self.name}\": the equation '{self.equation}' does not "
                             f"fit inputs of rank {len(input_shape)}. Received: "
                             f"input_shape={tuple(input_shape)}")
        extra = "".join(chr(0x100 + i) for i in range(elided))
        xs = extra + x_spec if side == "left" else x_spec + extra
        ys = extra + y_spec if side == "left" else y_spec + extra
        why = None
        if any(len(set(s)) != len(s) for s in (xs, w_spec, ys)):
            why = "an axis repeated in one operand (a diagonal)"
        elif ys[0] != xs[0] or xs[0] in w_spec:
            why = f"the batch axis '{xs[0]}' not the output's first axis, or in the kernel"
        if why is not None:
            raise ValueError(f"densitron lowers EinsumDense to a permutation, a matrix product "
                             f"and a permutation; it cannot run the equation '{self.equation}' "
                             f"({why}). Received: equation={self.equation!r}")
        sizes = {c: int(d) for c, d in zip(xs[1:], input_shape[1:])}
        sizes.update({c: int(d) for c, d in zip(w_spec, kernel)})
        bias = "".join(c for c in ys if self.bias_axes and c in self.bias_axes)
        return xs[1:], w_spec, ys[1:], bias, sizes

    def _check_inputs(self, input_shape):
        self._check_single(input_shape)
        if self.built and tuple(input_shape[1:]) != self._input_shape[1:]:
            raise ValueError(f"Input 0 of layer \"{self.name}\" is incompatible with the "
                             f"layer: expected shape {self._input_shape}. Received: "
                             f"input_shape={tuple(input_shape)}")

    def compute_output_shape(self, input_shape):
        """Keras's: the output_shape given, an axis of the input's size where it says None."""
        return tuple(analyze(self.equation, self.bias_axes, input_shape,
                             self.partial_output_shape)[2])

    def _symbolic_call(self, inputs, flat):
        out = super()._symbolic_call(inputs, flat)
        _, _, ys, _, sizes = self._plan(flat[0].shape)
        out.shape = (None, *(sizes[c] for c in ys))  # (the engine's: every axis known)
        if activations.is_traced(self.activation):  # a Python activation after the einsum
            return activations.apply_traced(self.activation, out, self.name)
        return out

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        kernel, bias, _, ins, outs = analyze(self.equation, self.bias_axes, input_shape,
                                             self.partial_output_shape)
        if any(d is None for d in kernel):
            raise ValueError(f"Layer \"{self.name}\": the kernel's shape {tuple(kernel)} must "
                             "be known: give the output axes of the kernel a size in "
                             f"output_shape. Received: output_shape={self.partial_output_shape}")
        self._plan(input_shape)
        init = self.kernel_initializer
        if isinstance(init, initializers.VarianceScaling):  # (Keras's fans of an einsum)
            init = _fans_initializer(init, ins, outs)
        self.kernel = self.add_weight(tuple(kernel), init, name="kernel",
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if bias is not None:
            self.bias = self.add_weight(tuple(bias), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self._input_shape = (None, *input_shape[1:])
        self.built = True

    # --- the engine's nodes --------------------------------------------------------------
    def _engine_subgraph(self, node, param_index):
        return einsum_nodes(self, node.inputs[0].shape, param_index,
                            regularizers.coefficients(self.activity_regularizer))

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)
        kernel_bias = kernel_bias_config(self)
        return {**config,
                "output_shape": self.partial_output_shape,
                "equation": self.equation,
                # (a Python activation is saved as the layers it traced into, after this one)
                "activation": "linear" if activations.is_traced(self.activation)
                else activations.serialize(self.activation),
                "bias_axes": self.bias_axes,
                **{k: kernel_bias[k] for k in ("kernel_initializer", "bias_initializer",
                                               "kernel_regularizer", "bias_regularizer")},
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": kernel_bias["kernel_constraint"],
                "bias_constraint": kernel_bias["bias_constraint"],
                "quantization_config": None}  # (Keras's key: densitron does not quantize)


def einsum_nodes(layer, input_shape, param_index, activity=(0.0, 0.0)):
    """The engine nodes of `layer` (an EinsumDense, built) on inputs of `input_shape`: a list
    of (sources, spec) as _engine_subgraph gives them, and the index of the last node in a
    list. `activity`: the activity penalty's (l1, l2) on the output."""
    xs, ws, ys, bs, sizes = layer._plan(input_shape)
    items, source = [], ("in", 0)

    def add(spec, *sources):
        items.append(([s if isinstance(s, tuple) else ("node", s) for s in sources], spec))
        return len(items) - 1

    def size(axes):
        return int(np.prod([sizes[c] for c in axes]))

    def arrange(at, layout, target, last):
        """Node `at` (laid out as `layout`) as `target` with rows of `last` values."""
        if layout != target:
            return add(node_spec(_INDEX_MAP, size(target), last,
                                 iattrs=_gather(layout, target, sizes)), at)
        now = int(input_shape[-1]) if at == source else items[at][1][2]
        return at if now == last else add(node_spec(_RESHAPE, size(target), last), at)

    # (an input axis summed away: contracted with the kernel repeated along it)
    contracted = "".join(c for c in ws if c in xs and c not in ys) + \
        "".join(c for c in xs if c not in ws and c not in ys)
    shared = "".join(c for c in ys if c in xs and c in ws)    # a kernel per position
    kept = "".join(c for c in ys if c in xs and c not in ws)
    new = "".join(c for c in ws if c not in xs)                # the kernel's output axes
    kernel = param_index[id(layer.kernel)]
    bias = param_index[id(layer.bias)] if layer.bias is not None else -1
    rows, inner, units = size(kept), size(contracted), size(new)
    x = arrange(source, xs, shared + kept + contracted, inner)
    if not shared and ws == contracted + new:  # one GEMM with the kernel as it is
        fused = bs == new and bias >= 0
        at = add(node_spec(_DENSE, rows * units, units,
                           params=[kernel, bias if fused else -1]), x)
    else:  # the kernel as values (a Dense of a constant 1), permuted, multiplied per sample
        from densitron.layers.math_ops import _BATCH_MATMUL, _MATH, MATH_OPS

        fused = False
        one = add(node_spec(_INDEX_MAP, 1, 1, iattrs=[-1]), source)
        one = add(node_spec(_MATH, 1, 1, fattrs=[1.0, 0.0], iattrs=[MATH_OPS["add"]]), one)
        values = add(node_spec(_DENSE, size(ws), size(ws), params=[kernel, -1]), one)
        values = arrange(values, ws, shared + contracted + new, units)
        at = add(node_spec(_BATCH_MATMUL, size(shared) * rows * units, units,
                           iattrs=[size(shared), rows, inner, units, 0, 0]), x, values)
    layout = shared + kept + new
    if bias >= 0 and not fused:  # the bias's axes last, in the output's order
        target = layout if layout.endswith(bs) else \
            "".join(c for c in layout if c not in bs) + bs
        at = arrange(at, layout, target, size(bs))
        at = add(node_spec(_BIAS_ADD, size(target), size(bs), params=[bias]), at)
        layout = target
    last = sizes[ys[-1]] if ys else 1
    at = arrange(at, layout, ys, last)
    act = layer.activation
    if act is not None and not activations.is_traced(act) and act is not activations.linear:
        at = add(node_spec(_ACTIVATION, size(ys), last, act=activations.engine_spec(act)), at)
    items[at] = (items[at][0], (*items[at][1][:-1], tuple(float(a) for a in activity)))
    return items, [at]
