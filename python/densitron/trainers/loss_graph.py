"""Losses written in Python, traced into the engine: Keras's loss functions `fn(y_true,
y_pred)` and Loss subclasses' call(), made of densitron.ops, run once on symbolic tensors when
the model compiles. y_true is an engine node that reads the output's targets of each batch
(kTarget), y_pred the output's own node; the layers the function's ops make become nodes after
the model's, and the engine computes the loss and its gradient through them each step."""

from densitron.layers.layer import KerasTensor, Layer, Node, engine_node

_TARGET = 27  # densitron::OpType::kTarget


class _Targets(Layer):
    """The targets of model output k, each batch's: a traced loss's y_true."""

    def __init__(self, k, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def _engine_node(self, node, param_index):
        return engine_node(_TARGET, node, iattrs=[self.k])


def _traced(fn, y_true, y_pred, name, kind="loss"):
    try:
        out = fn(y_true, y_pred)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"densitron runs the {kind} {name!r} in its engine by tracing it on symbolic "
            "tensors once: write it with densitron.ops (arithmetic, square, abs, sqrt, log, "
            f"exp, clip, maximum, mean(axis=-1), ...). Tracing it failed: {e} Received: "
            f"{kind}={name!r}") from e
    if isinstance(out, list):  # several values of one trace (a Metric's update_state)
        return [_output(o, name, kind) for o in out]
    return _output(out, name, kind)


def _output(out, name, kind="loss"):
    """(tensor, 0 per sample or 1, 2 for the batch's mean or sum, tail) of a traced value."""
    from densitron.layers.math_ops import batch_constant
    from densitron.ops import BatchReduction

    if isinstance(out, KerasTensor) and batch_constant(out):  # the batch's value in every row
        out = BatchReduction(out, "mean")
    mode, tail = 0, ()
    if isinstance(out, BatchReduction):  # mean or sum over the batch too: Keras's scalar
        out, mode, tail = out.tensor, {"mean": 1, "sum": 2}[out.mode], out.tail
    if not isinstance(out, KerasTensor):
        raise ValueError(f"The {kind} {name!r} must return a tensor computed from y_true and "
                         f"y_pred with densitron.ops. Received: {out!r}")
    return out, mode, tail


def _same_rank(true_shape, y_pred):
    """Keras's squeeze_or_expand_to_same_rank of a loss function's arguments: y_true's shape
    and y_pred, one given or rid of a last axis of 1 to meet the other's rank (targets of
    shape (n,) for an output of (n, 1) come as (n, 1)). The targets' values are the same
    either way; y_pred gets a reshape."""
    from densitron import ops

    pred_shape = tuple(y_pred.shape)
    if len(pred_shape) == len(true_shape) + 1 and pred_shape[-1] == 1:
        if len(true_shape) == 1:
            return (*true_shape, 1), y_pred
        return true_shape, ops.squeeze(y_pred, axis=-1)
    if len(true_shape) == len(pred_shape) + 1 and true_shape[-1] == 1:
        if len(pred_shape) == 1:
            return true_shape, ops.expand_dims(y_pred, axis=-1)
        return true_shape[:-1], y_pred
    return true_shape, y_pred


def loss_node_specs(model, k, loss, target_shape, specs, param_index, kind="loss"):
    """Appends to `specs` (the model's engine node specs) the nodes of `loss` (a loss or metric
    object written in Python) on model output k with targets of `target_shape`; returns the
    index of the node holding its values, how the function reduced them (0: per sample; 1, 2:
    the batch's mean, sum) and the MathOps it applied to that scalar after; a list of those
    when the function returns a list of values. A ValueError when the function reads anything
    but y_true and y_pred, or makes a layer with weights."""
    from densitron.losses import Loss, traced_function

    # (a loss function's, a Loss subclass's call or __call__, a metric's)
    fn = traced_function(loss) if isinstance(loss, Loss) else loss.call
    name = loss.name or type(loss).__name__
    target_layer = _Targets(k, name=f"y_true_{k}")
    target_node = Node(target_layer, [], [])
    y_pred = model.outputs[k]
    true_shape, y_pred = _same_rank((None, *target_shape[1:]), y_pred)
    y_true = KerasTensor(true_shape, name="y_true", node=target_node)
    target_node.outputs = [y_true]
    traced = _traced(fn, y_true, y_pred, name, kind)
    outputs = traced if isinstance(traced, list) else [traced]
    seen_outs = set()
    for j, (out, mode, tail) in enumerate(outputs):
        # y_true or y_pred as they are, or reduced, or a tensor another value of the trace
        # has: its values need a node of their own (a node carries one output)
        key = (id(out._node), out._index)
        if out is y_true or out is y_pred or key in seen_outs:
            from densitron.layers.math_ops import MathOp

            outputs[j] = (MathOp("multiply_by", 1.0)(out), mode, tail)
        seen_outs.add((id(outputs[j][0]._node), outputs[j][0]._index))
    local = {(id(y_pred._node), y_pred._index): model._engine_outputs[k]}
    order, seen = [], set()

    def visit(t):  # the function's nodes, each after its inputs
        node = t._node
        if (id(node), t._index) in local or id(node) in seen:
            return
        if node is target_node:
            return
        if not node.inputs:
            raise ValueError(f"The {kind} {name!r} may compute on its y_true and y_pred only. "
                             f"Received: a tensor of layer {node.layer.name!r}")
        for t_in in node.inputs:
            visit(t_in)
        seen.add(id(node))
        order.append(node)

    for out, _, _ in outputs:
        visit(out)
    spec = target_layer._engine_node(target_node, param_index)
    specs.append((spec[0], [], *spec[1:]))
    local[(id(target_node), 0)] = len(specs) - 1
    for node in order:
        if node.layer.weights or not hasattr(node.layer, "_engine_node"):
            raise ValueError(f"The {kind} {name!r} may use densitron.ops and arithmetic only, "
                             f"not layers. Received: layer {node.layer.name!r} of type "
                             f"{type(node.layer).__name__}")
        ins = [local[(id(t._node), t._index)] for t in node.inputs]
        spec = node.layer._engine_node(node, param_index)
        specs.append((spec[0], ins, *spec[1:]))
        for j in range(len(node.outputs)):
            local[(id(node), j)] = len(specs) - 1
    nodes = [(local[(id(out._node), out._index)], mode, tail) for out, mode, tail in outputs]
    return nodes if isinstance(traced, list) else nodes[0]


def added_loss_specs(index, layer, specs, taken):
    """The engine node holding the values of a loss add_loss gave (at `index`, carried by the
    AddedLoss `layer`), or after it a copy of its own when another output spec has that node
    (`taken`: a node carries one); with 1 or 2 for the batch's mean or sum and the MathOps
    applied to that scalar after."""
    if index in taken:  # MathOp("multiply_by", 1.0)'s node
        from densitron.layers.layer import node_spec
        from densitron.layers.math_ops import _MATH, MATH_OPS

        spec = node_spec(_MATH, specs[index][2], specs[index][3], fattrs=[1.0, 0.0],
                         iattrs=[MATH_OPS["multiply_by"]])
        specs.append((spec[0], [index], *spec[1:]))
        index = len(specs) - 1
    taken.add(index)
    return index, {"mean": 1, "sum": 2}[layer.reduction], tuple(map(tuple, layer.tail))
