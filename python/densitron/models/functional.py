"""Functional models: a DAG of layer calls from Input tensors to outputs, handed whole to the
C++ graph executor."""

import functools
import math
import warnings

import numpy as np

from densitron import _core
from densitron._checks import weight_list
from densitron.layers.embedding import Embedding
from densitron.layers.input_layer import InputLayer
from densitron.layers.layer import (KerasTensor, Layer, MaskMaker, Node, _composite, carry,
                                    defines_call, traced_call)
from densitron.layers.math_ops import _BATCH_REDUCE, AddedLoss
from densitron.trainers import data as data_mod
from densitron.trainers.trainer import _FOREIGN_MASK, Trainer
from densitron.utils.naming import uniquify


def _flatten_structure(value, arg):
    if isinstance(value, KerasTensor):
        return [value], None
    if isinstance(value, dict):  # (in Keras's order: tree.flatten sorts a dict's keys)
        keys = sorted(value)
        return [value[k] for k in keys], keys
    if isinstance(value, (list, tuple)):
        return list(value), None
    raise TypeError(
        f"`{arg}` must be a KerasTensor (from `Input()` or a layer call), or a list or dict of "
        f"them. Received: {arg}={value!r} (of type {type(value).__name__})"
    )


def _structured(keys, values):
    """Values, one per model input or output, in that structure: one, a list, or a dict by
    `keys`."""
    if keys:
        return dict(zip(keys, values))
    return values[0] if len(values) == 1 else list(values)


def _topological_nodes(outputs, stop=(), masks=False, foreign=()):
    """Nodes reachable from the outputs, each after the nodes it reads (iterative DFS), and
    each layer's index in the DFS's first-visit order (the order Keras breaks ties by); the
    walk does not go past the tensors whose ids are in `stop`; with `masks`, a node reads the
    masks it applies too (node.masks: Keras's mask argument of the call), except those whose
    ids are in `foreign` (made inside a nested model, whose call the node reads); with
    masks="made", a merge's computed mask is read as the masks it combines (_made_reads)."""
    order, state, first_visit = [], {}, {}
    for out in outputs:
        if id(out) in stop:
            continue
        stack = [(out._node, False)]
        while stack:
            node, expanded = stack.pop()
            key = id(node)
            if expanded:
                if state.get(key) != "done":
                    state[key] = "done"
                    order.append(node)
                continue
            if key in state:
                continue
            state[key] = "open"
            first_visit.setdefault(id(node.layer), len(first_visit))
            stack.append((node, True))
            reads = (_reads(node, foreign) if masks is True else
                     _made_reads(node, foreign) if masks == "made" else _args(node))
            for t in reversed(reads):
                if id(t._node) not in state and id(t) not in stop:
                    stack.append((t._node, False))
    return order, first_visit


def _reads(node, foreign=()):
    """The tensors a call reads: its inputs, then the masks it applies (Keras's mask argument,
    which Keras's graph records among the call's arguments) but those with ids in `foreign`."""
    return [*_args(node), *(m for m in getattr(node, "masks", None) or ()
                            if m is not None and id(m) not in foreign)]


def _made_reads(node, foreign):
    """_reads's tensors, a mask a merge computes (MaskMaker's, which the engine makes where it
    is applied) in place of the masks it combines."""
    reads, stack = list(_args(node)), [m for m in getattr(node, "masks", None) or ()
                                       if m is not None and id(m) not in foreign]
    while stack:
        m = stack.pop(0)
        if isinstance(m._node.layer, MaskMaker):
            stack = [p for p in m._node.inputs if id(p) not in foreign] + stack
        else:
            reads.append(m)
    return reads


def _nested_models_masks(outputs, stop=()):
    """The ids of the masks made inside nested models, which their calls' outputs carry out
    (a walk over the outputs' calls, past no tensor whose id is in `stop`)."""
    plain, _ = _topological_nodes(outputs, stop=stop)
    return {id(t._mask) for node in plain if isinstance(node.layer, Functional)
            for t in node.outputs if t._mask is not None}


def _args(node):
    """A call's (a Node's or a CompositeCall's) tensors as Keras's graph holds them: its
    inputs, then the masks given as its `mask` argument (layer(x, mask=m))."""
    explicit = getattr(node, "explicit_masks", None)
    return [*node.inputs, *explicit.values()] if explicit else node.inputs


def _clone_graph_nodes(in_list, out_list, out_paths):
    """Keras's clone_graph_nodes, for a model whose inputs include tensors made by layers:
    each such tensor is replaced by a new Input of its shape (named after it, "CLONE" added),
    and the calls between the inputs and the outputs are made again on the new tensors (the
    same layers, so the same weights; each layer's call list grows, as Keras's). Returns the
    new inputs and outputs. As in Keras, a call that applies a mask reads the tensor the mask
    comes from (Embedding's ids, Masking's kept steps), and a cut tensor carries no mask.
    out_paths: each output's path in the outputs' structure, for the error of an output the
    inputs do not reach."""
    from densitron.layers.input_layer import Input
    from densitron.layers.layer import CompositeCall

    mapping, names, new_inputs = {}, set(), []
    for t in in_list:
        if isinstance(t._node.layer, InputLayer):
            mapping[id(t)] = t
            new_inputs.append(t)
            names.add(t._node.layer.name)
            continue
        name = base = f"{t.name}CLONE"
        k = 0
        while name in names:  # (two calls of one layer make tensors of one name)
            k += 1
            name = f"{base}_{k}"
        names.add(name)
        mapping[id(t)] = Input(batch_shape=t.shape, dtype=t.dtype, name=name)
        new_inputs.append(mapping[id(t)])
    # (the calls made again carry the masks of nested models' outputs as well)
    foreign = _nested_models_masks(out_list, stop=mapping)
    nodes, _ = _topological_nodes(out_list, stop=mapping, masks=True, foreign=foreign)
    reached = set(mapping)
    for node in nodes:
        if not isinstance(node.layer, InputLayer) and all(id(t) in reached
                                                          for t in _reads(node, foreign)):
            reached.update(id(t) for t in node.outputs)
    for t, path in zip(out_list, out_paths):
        if id(t) not in reached or id(t) in mapping:
            raise ValueError(
                f"Output with path `{path}` is not connected to `inputs`. Received: "
                f"inputs={[t.name for t in in_list]}, an output {t!r}")

    calls, clones = {}, []
    for node in nodes:
        if isinstance(node.layer, InputLayer):
            continue
        ins = [mapping[id(t)] for t in node.inputs]
        new = Node(node.layer, ins, [])
        new.__dict__.update({k: v for k, v in node.__dict__.items()
                             if k not in ("layer", "inputs", "outputs", "within", "masks")})
        if getattr(node, "explicit_masks", None):
            new.explicit_masks = {k: mapping[id(m)] for k, m in node.explicit_masks.items()}
        for t in node.outputs:
            mapping[id(t)] = KerasTensor(t.shape, name=t.name, node=new, index=t._index)
            mapping[id(t)].dtype = t.dtype
            new.outputs.append(mapping[id(t)])
        for old, t in zip(node.outputs, new.outputs):  # (the masks on the tensors)
            mask = old._mask
            t._mask = mask if mask is None or id(mask) in foreign else mapping.get(id(mask))
        if getattr(node, "masks", None) is not None:
            new.masks = tuple(m if m is None or id(m) in foreign else mapping[id(m)]
                              for m in node.masks)
        node.layer._inbound_nodes.append(new)
        for record in node.within:
            calls.setdefault(id(record), record)
        clones.append((node, new))
    # The composite layers' calls (CompositeCall) the calls were made in, made again where
    # the new graph holds the whole call (a cut inside one leaves its sublayers' calls).
    new_calls = {}
    for key, record in calls.items():
        if all(id(t) in mapping for t in (*record.inputs, *record.outputs)):
            call = CompositeCall(record.layer, [mapping[id(t)] for t in record.inputs],
                                 record.is_list, record.positional)
            call.keys = record.keys
            call.outputs = [mapping[id(t)] for t in record.outputs]
            new_calls[key] = call
    for node, new in clones:
        new.within = tuple(new_calls[id(r)] for r in node.within if id(r) in new_calls)
    return new_inputs, [mapping[id(t)] for t in out_list]


def _layers_in_keras_order(nodes, first_visit, unused=()):
    """Keras's `model.layers` order: by depth (calls between a layer and the outputs, the
    largest over its calls), deepest first, ties by first visit from the outputs. `unused`:
    the input nodes no output depends on, at depth 0 before the others there, in input order
    (as Keras's _build_map places them)."""
    node_depth, layer_depth, layers = {}, {}, {}
    first_visit = dict(first_visit)
    for k, node in enumerate(unused):
        layer_depth[id(node.layer)] = 0
        layers[id(node.layer)] = node.layer
        first_visit[id(node.layer)] = k - len(unused)
    for node in reversed(nodes):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        layers[id(node.layer)] = node.layer
        node_depth[id(node)] = depth
        for t in _args(node):  # (a mask given as the call's argument too, as Keras's kwargs)
            node_depth[id(t._node)] = max(depth + 1, node_depth.get(id(t._node), 0))
    keys = sorted(layers, key=lambda k: (-layer_depth[k], first_visit[k]))
    return [layers[k] for k in keys]


def _distinct(items):
    """The items in order, each object once."""
    seen, out = set(), []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


def outer_call(node, saved_only=False):
    """The outermost composite layer's call (CompositeCall) that made this call, or None; with
    `saved_only`, of those that files keep as themselves (registered classes)."""
    for record in node.within:
        # (a call on a dict of tensors is kept as its sublayers' calls: files name a call's
        # inputs as a list)
        if not saved_only or (_saved_as_itself(record.layer) and record.keys is None):
            return record
    return None


def _saved_as_itself(layer):
    """Whether files keep a composite layer as itself, as Keras writes it: its class is
    registered (register_keras_serializable), so a loader finds it again. Others are kept as
    the calls of their sublayers, which load without the class."""
    from densitron.utils.serialization import get_registered_name, get_registered_object

    return get_registered_object(get_registered_name(type(layer))) is type(layer)


def keras_calls(nodes, saved_only=False):
    """The calls of `nodes` in their order, a call made inside a composite layer's call()
    standing for the outermost composite layer's call (a CompositeCall, once; with
    `saved_only`, the outermost that files keep as itself)."""
    return _distinct(outer_call(node, saved_only) or node for node in nodes)


def call_refs(calls, names):
    """{id(tensor): [layer name, index of the call among its layer's calls, index of the
    tensor among the call's outputs]} of the calls' outputs (Keras's keras_history); names:
    {id(layer): name}."""
    refs, counts = {}, {}
    for call in calls:
        index = counts[id(call.layer)] = counts.get(id(call.layer), -1) + 1
        for k, t in enumerate(call.outputs):
            refs[id(t)] = [names[id(call.layer)], index, k]
    return refs


def keras_layer_list(graph_layers, nodes, saved_only=False):
    """The layers as Keras lists them when each call made inside a composite layer's call()
    stands for the outermost composite layer's call (with `saved_only`, the outermost that
    files keep as itself): by depth over those calls, deepest first, ties in the order of
    graph_layers (Keras's order of the graph's layers; a composite layer at its first
    sublayer's place)."""
    if not any(node.within for node in nodes):
        return list(graph_layers)
    calls = keras_calls(nodes, saved_only)
    producer = {id(t): call for call in calls for t in call.outputs}
    depth = {id(call): 0 for call in calls}
    changed = True
    while changed:  # (a composite call may stand before one of its inputs' calls)
        changed = False
        for call in calls:
            for t in _args(call):
                p = producer.get(id(t))
                if p is not None and p is not call and depth[id(p)] < depth[id(call)] + 1:
                    depth[id(p)] = depth[id(call)] + 1
                    changed = True
    rank = {}
    for k, layer in enumerate(graph_layers):
        rank.setdefault(id(layer), k)
    for node in nodes:  # a composite layer at its first sublayer's place
        call = outer_call(node, saved_only)
        if call is not None:
            here = rank.get(id(node.layer), len(graph_layers))
            rank[id(call.layer)] = min(rank.get(id(call.layer), here), here)
    layer_depth, layers = {}, {}
    for call in calls:
        key = id(call.layer)
        layers[key] = call.layer
        layer_depth[key] = max(layer_depth.get(key, 0), depth[id(call)])
    return [layers[k] for k in sorted(layers, key=lambda k: (-layer_depth[k], rank[k]))]


class Functional(Trainer, Layer):
    """Keras's Model. `Model(inputs, outputs)` builds a functional model. A subclass that
    defines `call(inputs[, training])` out of densitron layers (created in its `__init__`) is
    built by tracing `call` on symbolic inputs the first time it meets data, is called on a
    tensor, or `build(input_shape)` runs; from then on it is the functional model of that
    trace (saved as one, too)."""

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True,
                 _is_eager_wrapper=False, **kwargs):
        if inputs is None and outputs is None and defines_call(type(self)):
            Layer.__init__(self, name=name, trainable=trainable, **kwargs)
            self._init_trainer()
            self._eager_wrapper = False
            self._subclassed = True
            self._all_layers = []
            self.built = False
            return
        if inputs is None or outputs is None or kwargs:
            raise TypeError(
                "A Model takes its `inputs` and `outputs` (functional API), or is a subclass of "
                "Model that defines `call()`. Received: "
                f"inputs={inputs!r}, outputs={outputs!r}" + (f", kwargs={kwargs}" if kwargs
                                                             else ""))
        Layer.__init__(self, name=name or uniquify("functional"), trainable=trainable)
        self._init_trainer()
        self._eager_wrapper = _is_eager_wrapper
        self._build_graph(inputs, outputs)

    # --- subclassed models ---------------------------------------------------------------
    _builds_itself = True

    def __init_subclass__(cls, **kwargs):
        """A subclass's own `build` (Keras's place to create sublayers) is wrapped so that the
        trace of `call` follows it, whether or not it calls `super().build`."""
        super().__init_subclass__(**kwargs)
        user_build = cls.__dict__.get("build")
        if user_build is None or getattr(user_build, "_traces_after", False) or \
                not defines_call(cls):
            return

        @functools.wraps(user_build)
        def build(self, input_shape):
            if getattr(self, "_in_user_build", False):  # a subclass's super().build
                return user_build(self, input_shape)
            before = _variable_ids(self)
            self._in_user_build = True
            try:
                user_build(self, input_shape)
            finally:
                self._in_user_build = False
            if getattr(self, "_subclassed", False) and not self.built:
                self._trace(_symbolic_inputs(input_shape), before)

        build._traces_after = True
        cls.build = build

    def build(self, input_shape):
        """A subclassed model traces `call` on inputs of `input_shape` (with the batch axis:
        `(None, 784)`, or a list or dict of such shapes); inside a subclass's own `build`
        (its `super().build(...)`), the trace waits until that `build` returns."""
        if getattr(self, "_in_user_build", False):
            return
        if not getattr(self, "_subclassed", False) or self.built:
            self.built = True
            return
        self._trace(_symbolic_inputs(input_shape))

    def _trace(self, inputs, before=None):
        """Builds the graph of `call` on `inputs`; the weights made since `before` (ids; by
        default, the weights there are now) get the model's name before their paths, as
        Keras builds a subclassed model's layers in its name scope ("my_model/dense/kernel")."""
        before = _variable_ids(self) if before is None else before
        self._build_graph(inputs, traced_call(self, inputs))
        _scope_new_weights(self, before)

    def _build_subclassed(self, input_shape):
        """Builds a subclassed model for inputs of `input_shape`: its `build` (a subclass's own
        runs first, then the trace of `call`)."""
        self.build(input_shape)

    # --- graph ---------------------------------------------------------------------------
    def _build_graph(self, inputs, outputs):
        in_list, in_keys = _flatten_structure(inputs, "inputs")
        out_list, out_keys = _flatten_structure(outputs, "outputs")
        if not in_list:
            raise ValueError("A model needs at least one input. Received: inputs=[]")
        if not out_list:
            raise ValueError("A model needs at least one output. Received: outputs=[]")
        for arg, tensors in (("inputs", in_list), ("outputs", out_list)):
            for t in tensors:
                if not isinstance(t, KerasTensor):
                    raise TypeError(
                        f"All `{arg}` of a Model must be KerasTensors (from `Input()` or a layer "
                        f"call). Received: {arg} containing {t!r} (of type {type(t).__name__})"
                    )
        if len({id(t) for t in in_list}) != len(in_list):
            raise ValueError(f"The same input tensor appears twice. Received: inputs={inputs!r}")
        if not all(isinstance(t._node.layer, InputLayer) for t in in_list):
            # (tensors made by layers: Keras's model of the graph between them and the outputs)
            paths = (out_keys if out_keys else [""] if isinstance(outputs, KerasTensor)
                     else [str(k) for k in range(len(out_list))])
            in_list, out_list = _clone_graph_nodes(in_list, out_list, paths)
        if len({id(t) for t in out_list}) != len(out_list):
            raise ValueError(f"The same output tensor appears twice. Received: outputs={outputs!r}")
        for t in out_list:  # Keras weighs the loss and metrics of the output by its mask
            steps, mask = t.shape[1:-1], t._mask
            if mask is not None and None not in (*steps, *mask.shape[1:]) and \
                    math.prod(mask.shape[1:]) != math.prod(steps):
                raise ValueError(
                    "A Keras mask weighs the loss values of a model output, one a row of its "
                    f"last axis: the mask's shape must be the output's without it, "
                    f"{(None, *steps)}. Received: output {t!r} with a mask of shape "
                    f"{tuple(mask.shape)}")
        for t in out_list:
            if isinstance(t._node.layer, InputLayer):
                raise ValueError(
                    "Every model output must depend on the inputs through at least one layer. "
                    f"Received: an output that is the input tensor {t.name!r}"
                )
        # (with the calls that make the masks layers apply, a compute_mask's of a layer of
        # one's own: as Keras's graph, which records them as the calls' mask arguments)
        nodes, first_visit = _topological_nodes(out_list, masks="made",
                                                foreign=_nested_models_masks(out_list))
        input_ids = {id(t._node) for t in in_list}
        for node in nodes:
            if isinstance(node.layer, InputLayer) and id(node) not in input_ids:
                raise ValueError(
                    f"Graph disconnected: cannot obtain value for tensor {node.outputs[0]!r} at "
                    f"layer \"{node.layer.name}\": it is an Input that is not among the model's "
                    f"inputs. Received: inputs={[t.name for t in in_list]}"
                )
        # Inputs no output depends on are kept, as Keras keeps them (a loss or metric may read
        # them): their rows are gathered and not read.
        reached = {id(n) for n in nodes}
        unused = [t._node for t in in_list if id(t._node) not in reached]
        # Engine order: the model inputs first, in the order given, then the layer calls.
        ordered = [t._node for t in in_list] + [n for n in nodes if id(n) not in input_ids]
        self._nodes = ordered
        self.inputs = in_list
        self.outputs = out_list
        self._input_keys, self._output_keys = in_keys, out_keys
        layers = _layers_in_keras_order(nodes, first_visit, unused)
        self._all_layers = layers
        # (unique among Keras's layers; a composite layer's sublayers may share a name with
        # another layer, as in Keras: files number theirs, see _file_calls)
        names = [layer.name for layer in keras_layer_list(layers, ordered)]
        for name in set(names):
            if names.count(name) > 1:
                raise ValueError(
                    f"The name \"{name}\" is used {names.count(name)} times in the model. All "
                    f"layer names should be unique. Received: layers named {names}"
                )
        self._input_names = in_keys or [t._node.layer.name for t in in_list]
        self._output_names = out_keys or [t._node.layer.name for t in out_list]
        self._set_run_shapes(in_list, out_list)
        # A None feature dimension (Input(shape=(None,)) for text, (None, None, 3) for images
        # of any size): the engine's graph waits for data, whose lengths it is specialised to
        # (_specialise); the fixed-shape model builds it now.
        self._variable_shapes = list(self._input_shapes)
        self._dynamic = any(d is None for shape in self._input_shapes for d in shape)
        for key in ("_trace", "_shape_key", "_specialisations", "_traces", "_mask_traces"):
            self.__dict__.pop(key, None)
        if self._dynamic:
            self._params = _distinct(self.weights)
        else:
            self._make_engine_graph()
        self.built = True

    def _set_run_shapes(self, in_list, out_list):
        """The shapes (without the batch axis) the engine runs the inputs and outputs at, and
        their values a sample (None while a dimension waits for data)."""
        def width(shape):
            return None if None in shape else math.prod(shape)

        self._input_shapes = [tuple(t.shape[1:]) for t in in_list]
        self._output_shapes = [tuple(t.shape[1:]) for t in out_list]
        self._input_widths = [width(s) for s in self._input_shapes]
        self._output_widths = [width(s) for s in self._output_shapes]
        self._output_last = [s[-1] if s else 1 for s in self._output_shapes]

    # --- variable-length inputs: one engine graph per shape of the data --------------------
    # The attributes that belong to one shape of the data: its trace and engine graph, and
    # what the trainer compiled that graph with.
    _PER_SHAPE = ("_trace", "_input_shapes", "_output_shapes", "_input_widths",
                  "_output_widths", "_output_last", "_engine_outputs", "_batch_values_in_model",
                  "_added_loss_nodes", "_added_loss_owners", "_loss_nodes", "_metric_nodes",
                  "_batch_values", "_graph", "_graph_modes", "_augmenting_graph",
                  "_engine_compiled", "_loss_sum_index", "_added_loss_sum_index",
                  "_metric_sum_index", "_batch_dependent", "_compiled_trainable",
                  "_compiled_with", "_engine_output_masks")

    # Engine graphs kept for shapes other than the running one (each holds its buffers).
    _KEPT_SHAPES = 16

    def _trace_for(self, shapes, masks=None):
        """The model's graph again on inputs of `shapes` (each without the batch axis, every
        dimension known): the same layers called on them, so the same weights, with the
        shapes of that data. (nodes, inputs, outputs) as _nodes, inputs and outputs; cached by
        shape. The layers' call lists and the model's own graph stay as they were. `masks`:
        input index -> the Keras mask a caller's tensor carries there; the trace's input then
        carries a placeholder of its shape, one more input of the trace after the model's."""
        masks = masks or {}
        key = tuple(tuple(s) for s in shapes)
        traces = self.__dict__.setdefault("_traces", {})
        if masks:  # (kept apart: _traces holds the shapes the model itself has run at)
            traces = self.__dict__.setdefault("_mask_traces", {})
            key = (key, tuple((k, tuple(m.shape), str(m.dtype)) for k, m in masks.items()))
        if key in traces:
            return traces[key]
        def source(t, shape, name, dtype):  # a tensor of a new call of t's input layer
            out = KerasTensor(shape, name=name, node=Node(t._node.layer, [], []), index=0)
            out.dtype = dtype
            out._node.outputs.append(out)
            return out

        mapping, nodes, ins, holders = {}, [], [], []
        for k, (t, shape) in enumerate(zip(self.inputs, shapes)):
            new = source(t, (None, *shape), t.name, t.dtype)
            mapping[id(t)] = new
            nodes.append(new._node)
            ins.append(new)
            if k in masks:
                new._mask = source(t, masks[k].shape, f"{t.name}_mask", masks[k].dtype)
                holders.append(new._mask)
        ins += holders
        input_nodes = {id(t._node) for t in self.inputs}
        with warnings.catch_warnings():  # (a dropped mask warned of when the model was built,
            if not masks:  # one given to it now when it is called)
                warnings.simplefilter("ignore")
            for node in self._nodes:
                if id(node) in input_nodes:
                    continue
                layer, flat = node.layer, [mapping[id(t)] for t in node.inputs]
                for k, m in getattr(node, "explicit_masks", {}).items():  # (layer(x, mask=m))
                    flat[k] = carry(flat[k], mapping[id(m)])
                count = len(layer._inbound_nodes)
                try:
                    layer._symbolic_call(flat if getattr(node, "is_list", len(flat) > 1)
                                         else flat[0], flat)
                    new = layer._inbound_nodes[count]
                finally:
                    del layer._inbound_nodes[count:]
                for k in range(len(new.outputs), len(node.outputs)):  # (a recurrent layer's
                    state = node.outputs[k]  # states, which its __call__ adds: their shapes)
                    new.outputs.append(KerasTensor(state.shape, name=state.name, node=new,
                                                   index=k))
                for old, t in zip(node.outputs, new.outputs):
                    mapping[id(old)] = t
                nodes.append(new)
        traces[key] = (nodes, ins, [mapping[id(t)] for t in self.outputs])
        return traces[key]

    def _follows_data(self):
        """Whether the engine graph this model runs may depend on the data's shapes."""
        return self.__dict__.get("_dynamic", False) or self._built_from_data()

    def _built_from_data(self):
        """Whether the input shape is the one the first data had (a subclassed model of one
        input that its first data built)."""
        return self.__dict__.get("_data_built", False)

    def _follow_data(self, x, arg="x"):
        """A model with None dimensions runs the engine graph of x's shapes from now on. One
        built from its first data follows the lengths of later data as Keras's does (its
        layers called again on them): a dimension that differs becomes None, the data's, from
        then on (the graph run until then kept for its shape)."""
        if self._built_from_data() and not data_mod.is_sparse(x):
            one = x[0] if isinstance(x, (list, tuple)) and len(x) == 1 else x
            shape = getattr(one, "shape", None)  # (arrays: others are checked as they were)
            run = tuple(self._variable_shapes[0])
            if isinstance(shape, tuple) and len(shape) == len(run) + 1 and any(
                    e is not None and d != e and d > 0 for d, e in zip(shape[1:], run)):
                self._widen(tuple(int(d) for d in shape[1:]))
        if self.__dict__.get("_dynamic"):
            self._specialise_for(x, arg)

    def _widen(self, shape):
        """Makes the dimensions in which `shape` differs from the run shapes None, when the
        layers take inputs of `shape` (else the model is left as it was: the data's check
        names the shape it expects)."""
        dynamic = self.__dict__.get("_dynamic", False)
        had_traces = "_traces" in self.__dict__
        try:
            self._trace_for([shape])
        except (ValueError, TypeError):
            if not had_traces:
                self.__dict__.pop("_traces", None)
            return
        self._variable_shapes = [tuple(None if e is not None and d != e else e
                                       for d, e in zip(shape, self._variable_shapes[0]))]
        if not dynamic:  # (the graph built until now: that of the first data's shape, kept as
            # the others are)
            self._dynamic = True
            self._trace = (self._nodes, self.inputs, self.outputs)
            self._shape_key = (tuple(self._input_shapes[0]),)
            self._traces[self._shape_key] = self._trace

    def _specialise_for(self, x, arg="x"):
        """Specialises a model with None dimensions to the shapes of x's arrays (see
        _specialise); x that does not fit the inputs raises ValueError naming `arg`."""
        try:
            shapes = _data_shapes(x)
        except (TypeError, ValueError):
            return
        if isinstance(shapes, dict):
            shapes = [shapes.get(name) for name in self._input_names]
        elif not isinstance(shapes, list):
            shapes = [shapes]
        if len(shapes) != len(self.inputs):
            return
        run = []
        for k, (shape, expected) in enumerate(zip(shapes, self._variable_shapes)):
            if shape is None:
                return
            if len(shape) != len(expected) + 1 or any(
                    e is not None and d != e for d, e in zip(shape[1:], expected)):
                name = data_mod.input_name(k, len(shapes), arg)
                raise ValueError(
                    f"Input {k} of model \"{self.name}\" is incompatible: expected shape "
                    f"{(None, *expected)}, but received input with shape {tuple(shape)}. "
                    f"Received: {name} with shape {tuple(shape)}")
            if any(d == 0 for d, e in zip(shape[1:], expected) if e is None):
                raise ValueError(
                    f"Input {k} of model \"{self.name}\" has a dimension of length 0 where "
                    f"its shape {(None, *expected)} takes the data's length. Received: "
                    f"{data_mod.input_name(k, len(shapes), arg)} with shape {tuple(shape)}")
            run.append(tuple(int(d) for d in shape[1:]))
        self._specialise(run)

    def _specialise(self, shapes):
        """Runs the model at inputs of `shapes` from now on: the engine graph of that trace
        (built once a shape, kept for the next call of that shape). Every graph computes with
        the same weights; the optimizer's step count goes on from the graph that ran before,
        whose slots the next graph shares (one buffer, not copied: share_optimizer_state)."""
        key = tuple(shapes)
        if key == self.__dict__.get("_shape_key"):
            return
        kept = self.__dict__.setdefault("_specialisations", {})
        if key not in kept:  # (traced first: data its layers refuse leave the model as it was)
            self._trace_for(key)
        carried = self._running_optimizer_state()
        if self.__dict__.get("_shape_key") is not None:
            if self.__dict__.get("_engine_compiled"):
                self._compiled_with = self._compile_token()
            kept[self._shape_key] = {k: self.__dict__.pop(k) for k in self._PER_SHAPE
                                     if k in self.__dict__}
            if len(kept) > self._KEPT_SHAPES:  # (the one that ran longest ago goes)
                gone = next(iter(kept))
                del kept[gone]
                self._traces.pop(gone, None)
        self._shape_key = key
        state = kept.pop(key, None)
        if state is None:
            self._trace = self._trace_for(key)
            self._set_run_shapes(self._trace[1], self._trace[2])
            self._engine_compiled = False
            self._make_engine_graph()
        else:
            self.__dict__.update(state)
            if self._engine_compiled and (any(
                    a is not b for a, b in zip(self._compiled_with, self._compile_token()))
                    or self._compiled_trainable != self._param_trainable_flags()):
                self._engine_compiled = False  # (compiled again, or a layer frozen, since)
        if not self._engine_compiled:
            if carried is not None:
                self._pending_optimizer_state = carried
            return
        carried = carried or self.__dict__.pop("_pending_optimizer_state", None)
        if carried is not None:
            self._apply_optimizer_state(*carried)
        self.optimizer._attach(self._graph, self._params, owner=self)

    def _check_fit_args(self, epochs, initial_epoch, validation_freq):
        self.__dict__.pop("_validation_key", None)  # (this fit's is set by its arrays)
        super()._check_fit_args(epochs, initial_epoch, validation_freq)

    def _validation_arrays(self, validation_data, validation_steps):
        """fit's validation arrays; a model with None dimensions given validation_data of
        other lengths than x's builds and compiles the engine graph of those (_validate runs
        it)."""
        train = self.__dict__.get("_shape_key")
        if not self.__dict__.get("_dynamic") or not isinstance(validation_data, (
                tuple, list)) or len(validation_data) not in (2, 3):
            return super()._validation_arrays(validation_data, validation_steps)
        try:
            self._specialise_for(validation_data[0], "validation_data[0]")
            val = super()._validation_arrays(validation_data, validation_steps)
            self._validation_key = self.__dict__.get("_shape_key")
            if self._validation_key != train:
                vy, parts = val[1], ([] if validation_data[1] is None else
                                     data_mod._split_structure(
                                         validation_data[1], self._output_names,
                                         "validation_data[1]"))
                unread = data_mod.unread_targets(self)
                self._ensure_engine([vy[k] if p is None or k in unread else p
                                     for k, p in enumerate(parts)])
        finally:
            if train is not None:
                self._specialise(train)
        return val

    def _validate(self, val, val_batch, cb):
        """fit's validation: on the engine graph of the validation arrays' shapes when they
        are not the training data's (see _validation_arrays)."""
        train = self.__dict__.get("_shape_key")
        key = self.__dict__.get("_validation_key")
        if train is None or key is None or key == train:
            return super()._validate(val, val_batch, cb)
        self._specialise(key)
        try:
            return super()._validate(val, val_batch, cb)
        finally:
            self._specialise(train)

    def _compile_token(self):
        """What a compiled engine graph was compiled with: compile() makes new ones."""
        return (self.optimizer, self.__dict__.get("_compiled_losses"))

    def _running_optimizer_state(self):
        """The compiled engine graph's step count and the graph itself, whose optimizer slots
        the next shape's graph shares (_apply_optimizer_state: every graph of the model has
        its weights in the same order), or None (a loss scale goes to the optimizer)."""
        if not self.__dict__.get("_engine_compiled"):
            return None
        graph = self._graph
        if hasattr(self.optimizer, "_scale_state"):  # LossScaleOptimizer's scale, which it
            # gives the graph it attaches next
            self.optimizer._scale_state = (graph.loss_scale, graph.scale_counter)
        return graph.iterations, graph

    def _run_nodes(self):
        """The nodes the engine graph runs: the model's, or those of its trace at the data's
        shapes."""
        trace = self.__dict__.get("_trace")
        return self._nodes if trace is None else trace[0]

    def _emit_engine_nodes(self, specs, input_indices, param_index, added, trace=None,
                           masks=None):
        """Appends this model's layer calls to `specs` (nested models expanded in place) with
        its inputs bound to `input_indices`; returns the indices of its outputs. Appends to
        `added` (engine node of the values, AddedLoss layer) for each loss add_loss gave.
        trace: (nodes, inputs, outputs) of the model at the data's shapes (_trace_for), for a
        model with None dimensions. `masks`: a list given the engine node of each output's
        Keras mask (-1 for none). A mask made inside a nested model comes out on its outputs,
        as Keras's does, and reaches the layers after it (through those that pass masks on):
        `mask_at` holds the engine node of the mask each such tensor carries."""
        nodes, inputs, model_outputs = trace or (self._nodes, self.inputs, self.outputs)
        # engine node of each tensor: (its node, its index among the node's outputs)
        local = {(id(t._node), t._index): i for t, i in zip(inputs, input_indices)}
        mask_at = {}

        def append_subgraph(items, ins):
            # engine nodes (refs, spec) reading ins[k] ("in", k) or the k-th of themselves
            # ("node", k); returns the index of the first
            base = len(specs)
            for refs, spec in items:
                specs.append((spec[0], [ins[k] if kind == "in" else base + k
                                        for kind, k in refs], *spec[1:]))
            return base

        def mask_node(mask, carriers):
            # the engine node of `mask`: its own, or where it was made inside a nested model,
            # the one a tensor among `carriers` carrying it holds (None when neither); a mask
            # a merge computes (MaskMaker) is made here, where a layer first applies it
            own = local.get((id(mask._node), mask._index))
            if own is not None:
                return own
            for t in carriers:
                if t._mask is mask and (id(t._node), t._index) in mask_at:
                    return mask_at[(id(t._node), t._index)]
            maker = mask._node.layer
            if not isinstance(maker, MaskMaker):
                return None
            parts = [mask_node(m, carriers) for m in mask._node.inputs]
            if None in parts:
                return None
            append_subgraph(maker._mask_subgraph(mask._node), parts)
            local[(id(mask._node), 0)] = len(specs) - 1
            return len(specs) - 1

        def pass_on(node):
            # a mask made inside a nested model, which the call's outputs carry on
            for t in node.outputs:
                mask = t._mask
                if mask is not None and (id(mask._node), mask._index) not in local:
                    at = mask_node(mask, node.inputs)
                    if at is not None:
                        mask_at[(id(node), t._index)] = at

        for node in nodes:
            if (id(node), 0) in local:
                continue
            ins = [local[(id(t._node), t._index)] for t in node.inputs]
            # the masks the call reads (ids whose zeros mask the steps, or Masking's kept
            # steps): a consuming layer's one, attention's query's, value's and key's
            for mask in getattr(node, "masks", None) or ():
                if mask is None:
                    continue
                at = mask_node(mask, node.inputs)
                if at is None:  # (a mask set by hand, from another graph)
                    raise ValueError(
                        f"Layer \"{node.layer.name}\" ({type(node.layer).__name__}) would "
                        "apply a Keras mask that no layer of the model made. Received: layer "
                        f"\"{node.layer.name}\" called with a mask from elsewhere")
                ins.append(at)
            layer = node.layer
            if isinstance(layer, Functional):
                inner_masks = []
                for k, out in enumerate(layer._emit_engine_nodes(
                        specs, ins, param_index, added, getattr(node, "_trace", None),
                        inner_masks)):
                    local[(id(node), k)] = out
                    if inner_masks[k] >= 0:
                        mask_at[(id(node), k)] = inner_masks[k]
                continue
            if not hasattr(layer, "_engine_node") and not hasattr(layer, "_engine_subgraph"):
                raise ValueError(
                    f"densitron runs models in its C++ engine, which has no kernel for layer "
                    f"\"{layer.name}\" of type {type(layer).__name__}. "
                    f"Received: a model containing {type(layer).__name__}"
                )
            if isinstance(layer, Embedding) and not _reads_an_input(node.inputs[0]):
                raise ValueError(
                    f"Layer \"{layer.name}\" (Embedding) must read integer ids straight from an "
                    f"`Input`, or columns of one (x[:, 0]). Received: input from layer "
                    f"\"{node.inputs[0]._node.layer.name}\""
                )
            if hasattr(layer, "_engine_subgraph"):  # several engine nodes, some outputs
                items, outputs = layer._engine_subgraph(node, param_index)
                base = append_subgraph(items, ins)
                for k, j in enumerate(outputs):
                    local[(id(node), k)] = base + j
                pass_on(node)
                continue
            if isinstance(layer, AddedLoss):  # (the loss's values are read by its output)
                added.append((ins[1], layer))
                ins = ins[:1]
            chain = (layer._engine_chain(node, param_index) if hasattr(layer, "_engine_chain")
                     else [layer._engine_node(node, param_index)])
            for op, *rest in chain:  # each node of a chain reads the one before it
                specs.append((op, ins, *rest))
                ins = [len(specs) - 1]
            local[(id(node), 0)] = len(specs) - 1
            pass_on(node)
        for t in model_outputs if masks is not None else ():
            if t._mask is None:
                masks.append(-1)
                continue
            at = mask_node(t._mask, [t])
            masks.append(_FOREIGN_MASK if at is None else at)  # (refused where it would weigh)
        return [local[(id(t._node), t._index)] for t in model_outputs]

    def _engine_specs(self, added):
        """The model's weights (each once), their indices by id, the engine's node specs of
        the model (its inputs first) and its outputs' node indices; add_loss's (node, AddedLoss
        layer) pairs go to `added`."""
        params, param_index = [], {}
        for v in self.weights + self._engine_state_variables():  # (a stateful RNN's states)
            if id(v) not in param_index:
                param_index[id(v)] = len(params)
                params.append(v)
        trace = self.__dict__.get("_trace")
        inputs = self.inputs if trace is None else trace[1]
        specs = [t._node.layer._engine_node(t._node, param_index) for t in inputs]
        specs = [(s[0], [], *s[1:]) for s in specs]
        masks = self._engine_output_masks = []
        outputs = self._emit_engine_nodes(specs, list(range(len(self.inputs))), param_index,
                                          added, trace, masks)
        return params, param_index, specs, outputs

    def _make_engine_graph(self, traced_losses=None, target_shapes=None, traced_metrics=()):
        """The engine's graph of the model; with `traced_losses` ({output k: a loss written in
        Python}) and `traced_metrics` ([(output k, a metric function)]), also each function's
        nodes on that output and its targets (of target_shapes[k]), whose engine node indices
        (with their batch reductions and tails) go to self._loss_nodes and self._metric_nodes."""
        from densitron.trainers.loss_graph import added_loss_specs, loss_node_specs

        added = []
        params, param_index, specs, self._engine_outputs = self._engine_specs(added)
        def batch_values(nodes):  # a batch's mean or sum: values that depend on the grouping
            return any(spec[0] == _BATCH_REDUCE for spec in nodes)

        # (the model's own nodes; a stateful RNN's batches are the user's)
        self._batch_values_in_model = batch_values(specs) or bool(self._engine_state_variables())
        taken = set(self._engine_outputs)
        self._added_loss_nodes = [added_loss_specs(index, layer, specs, taken)
                                  for index, layer in added]
        self._added_loss_owners = [getattr(layer, "_owner", None) for _, layer in added]
        self._loss_nodes = {}
        for k, loss in (traced_losses or {}).items():
            self._loss_nodes[k] = loss_node_specs(self, k, loss, target_shapes[k], specs,
                                                  param_index)
        self._metric_nodes, groups = [], {}
        for k, metric in traced_metrics:
            group = getattr(metric, "group", None)  # one of several values of one trace
            if group is None:
                self._metric_nodes.append(loss_node_specs(self, k, metric, target_shapes[k],
                                                          specs, param_index, "metric"))
                continue
            if id(group) not in groups:  # traced once, its values' nodes shared
                groups[id(group)] = loss_node_specs(self, k, group, target_shapes[k], specs,
                                                    param_index, "metric")
            self._metric_nodes.append(groups[id(group)][metric.j])
        self._batch_values = batch_values(specs)  # (the loss and metric functions' too)
        self._params = params
        self._graph = _core.Graph(specs, [v.engine_spec() for v in params],
                                  list(range(len(self.inputs))), self._engine_outputs)
        self._graph_modes = self._engine_modes()

    def _engine_state_variables(self):
        """The variables the engine's graph takes besides the weights: the states of the
        stateful recurrent layers (non-trainable, not weights: Keras's are not saved)."""
        return [v for layer in self._graph_layers()
                for v in getattr(layer, "_engine_state_variables", list)()]

    def _engine_modes(self):
        """The layer flags the engine's graph is built from beside its shape: whether each
        BatchNormalization is trainable (a frozen one runs in inference mode), checked again
        when the engine compiles; each layer's activation function, which may be set anew
        (`model.layers[-1].activation = None` for the logits), checked on each run."""
        from densitron.layers.normalization import BatchNormalization

        modes = []
        for layer in self._graph_layers():
            if isinstance(layer, Functional):
                modes += layer._engine_modes()
            elif isinstance(layer, BatchNormalization):
                modes.append(layer.trainable)
            if "activation" in layer.__dict__:
                modes.append((layer, layer.__dict__["activation"]))
            if hasattr(layer, "_vocabulary_version"):  # (a lookup's table, set anew)
                modes.append(layer._vocabulary_version)
        return modes

    def _refresh_engine_graph(self):
        """Rebuilds the engine's graph when a layer's activation was set anew since it was
        built (the next fit or evaluate compiles it again, with the optimizer's state)."""
        from densitron import activations

        modes = self._engine_modes()
        if modes == getattr(self, "_graph_modes", modes):
            return
        for old, new in zip(self._graph_modes, modes):
            if isinstance(new, tuple) and old[1] is not new[1] and \
                    activations.is_traced(new[1]):
                raise ValueError(
                    f"Layer {new[0].name!r} was given an activation written in Python after the "
                    "model was built; densitron traces such activations when the layer is "
                    "called: call the layer again (build the model anew). Received: "
                    f"activation={new[1]!r}")
        self._compile_engine_again()
        self._make_engine_graph()

    def _param_trainable_flags(self):
        """Keras's trainable_variables: the weights whose flags are set, none when the model
        is frozen (a layer's trainable setter sets its weights' flags)."""
        return [bool(self.trainable and v.trainable) for v in self._params]

    # --- used as a layer inside another model ---------------------------------------------
    def _check_inputs(self, input_shape):
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        expected = [t.shape for t in self.inputs]
        if len(shapes) != len(expected) or any(  # (None: any length, the data's)
                len(a) != len(b) or any(e is not None and d != e for d, e in zip(a[1:], b[1:]))
                for a, b in zip(shapes, expected)):
            raise ValueError(f"Model \"{self.name}\" expects inputs of shapes {expected}. "
                             f"Received: input shapes {shapes}")

    def compute_output_shape(self, input_shape):
        return self.outputs[0].shape

    def _symbolic_call(self, inputs, flat):
        """A call inside another model: one output tensor per output of this model (tensor
        index k of the call's node), in this model's structure (one, a list, or a dict)."""
        shapes = [t.shape for t in flat] if isinstance(inputs, (list, tuple)) else flat[0].shape
        if getattr(self, "_subclassed", False) and not self.built:
            self._build_subclassed(shapes)
        self._check_inputs(shapes)
        node = Node(self, flat, [])
        node.is_list = isinstance(inputs, (list, tuple))
        outputs = self.outputs
        masks = {k: t._mask for k, t in enumerate(flat) if t._mask is not None}
        if masks:
            # Keras's masks go into the model, to the layers that apply or pass them: its
            # trace on inputs carrying them (placeholders the call's masks are bound to, read
            # by the call as node.masks), which the engine runs in its place
            node.masks = tuple(masks.values())
            node._trace = self._trace_for([t.shape[1:] for t in flat], masks)
            outputs = node._trace[2]
        elif getattr(self, "_dynamic", False) and all(None not in t.shape[1:] for t in flat):
            # (a model with None dimensions called on tensors of known shapes: its trace at
            # those, which the engine runs in its place)
            node._trace = self._trace_for([t.shape[1:] for t in flat])
            outputs = node._trace[2]
        node.outputs = [KerasTensor(t.shape, name=self.name, node=node, index=k)
                        for k, t in enumerate(outputs)]
        for out, inner in zip(node.outputs, outputs):  # Keras's masks come out of the model:
            out._mask = inner._mask  # (a tensor inside it: see _emit_engine_nodes)
        self._inbound_nodes.append(node)
        return self._output_structure(node.outputs)

    def _ensure_built(self):
        if not self.built:
            raise ValueError(
                f"Model '{self.name}' has not been built yet: call `build(input_shape)` or call "
                "it on data first. Received: a subclassed model that was never called")

    def _ensure_built_from(self, x):
        if self.built:
            self._follow_data(x)
            self._refresh_engine_graph()
            return
        if x is None:
            raise ValueError("`x` is required. Received: x=None")
        self._build_subclassed(_data_shapes(x))
        self._data_built = self.built and len(self.inputs) == 1

    # --- Keras model API -----------------------------------------------------------------
    @property
    def layers(self):
        """Keras's list: a subclassed model's, the layers it holds in its attributes, in the
        order they were set; a functional model's, its graph's layers without those of ops
        (arithmetic, densitron.ops: Keras's operations), a composite layer (a Layer subclass
        made of layers) once, where its first sublayer call is, in place of the sublayers its
        call ran (a sublayer also called outside it is listed too)."""
        if getattr(self, "_subclassed", False):
            return self._sublayers()
        return [layer for layer in self._keras_layers() if not layer._op_layer]

    def _keras_layers(self):
        """The layers of the graph's calls, a composite layer's calls standing for it; ops'
        layers included (Keras's operations, as its summary and files list them)."""
        return keras_layer_list(self._all_layers, getattr(self, "_nodes", []))

    def _graph_layers(self):
        """The layers of the model's graph (a composite layer's sublayers in its place): what
        its files hold."""
        return list(self._all_layers)

    def _graph_weights(self, trainable=False):
        """The weights (the trainable ones) by the graph's layers, each once: the order of
        the optimizer's slots and of .weights.npz files, which a model shares with the model
        loaded from its file (whose composite layers are their sublayers)."""
        if trainable and not self.trainable:
            return []
        weights = _distinct(w for layer in self._graph_layers() for w in layer.weights)
        return [w for w in weights if w.trainable] if trainable else weights

    def _tracked_layers(self):
        """Keras's sublayers of a model: a subclassed model's attributes' layers, then its
        layers (a subclassed model's trace, a functional model's calls)."""
        found = self._sublayers() if getattr(self, "_subclassed", False) else []
        return found + [layer for layer in self._keras_layers()
                        if all(layer is not f for f in found)]

    @property
    def weights(self):
        """Keras's order, each once: a functional model's by its layers; a subclassed model's
        own first, then its layers in the order its attributes were set (Keras's tracking
        order), then any other layer of its trace."""
        own = self._weights if getattr(self, "_subclassed", False) else []
        return _distinct(own + [w for layer in self._tracked_layers() for w in layer.weights])

    def get_weights(self):
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        weights = weight_list(weights, f"model '{self.name}'")
        own = self.weights
        if len(weights) != len(own):
            raise ValueError(
                f"You called `set_weights(weights)` on model '{self.name}' with a weight list of "
                f"length {len(weights)}, but the model was expecting {len(own)} weights. "
                f"Received: weights of length {len(weights)}"
            )
        for var, value in zip(own, weights):
            if np.shape(value) != var.shape:
                raise ValueError(
                    f"Weight {var.path} has shape {var.shape}, which is not compatible with the "
                    f"provided weight shape {np.shape(value)}. Received: weight of shape "
                    f"{np.shape(value)}"
                )
        for var, value in zip(own, weights):
            var.assign(value)

    def count_params(self):
        return int(sum(int(np.prod(w.shape)) for w in self.weights))

    def get_layer(self, name=None, index=None):
        if index is not None and name is not None:
            raise ValueError("Provide only a layer name or a layer index. "
                             f"Received: index={index}, name={name}")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise TypeError(f"`index` must be an integer. Received: index={index!r}")
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only "
                                 f"has {len(self.layers)} layers. Received: index={index}")
            return self.layers[index]
        if not isinstance(name, str):
            raise ValueError(f"Provide either a layer name (a str) or a layer index. "
                             f"Received: name={name!r}, index={index!r}")
        for layer in (*self.layers, *self._keras_layers()):  # (an op's layer too, by name)
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: "
                         f"{[layer.name for layer in self.layers]}. Received: name={name!r}")

    @property
    def output_names(self):
        """Keras's: the names of the layers that make the outputs, in Keras's order of them
        (a dict's by sorted keys); assignable, as Keras's attribute."""
        if "_output_names_set" in self.__dict__:
            return list(self._output_names_set)
        self._ensure_built()
        outs = self.outputs
        if self._output_keys:
            outs = [t for _, t in sorted(zip(self._output_keys, outs), key=lambda kt: kt[0])]
        return [t._node.layer.name for t in outs]

    @output_names.setter
    def output_names(self, value):
        self._output_names_set = list(value)

    @property
    def input(self):
        """The model's input tensor(s), in its inputs' structure (Keras's `model.input`)."""
        self._ensure_built()
        return _structured(self._input_keys, self.inputs)

    @property
    def output(self):
        """The model's output tensor(s), in its outputs' structure (Keras's `model.output`)."""
        self._ensure_built()
        return self._output_structure(self.outputs)

    @output.setter
    def output(self, value):
        raise AttributeError("A model's `output` is set by its graph. Received: an assignment")

    def _output_structure(self, values):
        """Values, one per output, in the model's output structure."""
        return _structured(self._output_keys, values)

    @property
    def input_shape(self):
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, dict) and any(isinstance(t, KerasTensor)
                                            for t in inputs.values()):
            # (a model of dict inputs inside another: its inputs by name, as Keras's)
            self._ensure_built()
            parts = data_mod._split_structure(inputs, self._input_names, "inputs",
                                              extra_ok=True)
            inputs = parts[0] if len(parts) == 1 else parts
        flat = (list(inputs.values()) if isinstance(inputs, dict)
                else list(inputs) if isinstance(inputs, (list, tuple)) else [inputs])
        if any(isinstance(t, KerasTensor) for t in flat):
            return Layer.__call__(self, inputs, *args, **kwargs)
        rows = data_mod.rows_of(flat[0]) if flat else 0
        batch = max(1, min(rows, 1024))
        if kwargs.get("training"):
            return self._noisy_call(inputs, batch)
        if kwargs.get("training") is None:
            from densitron.layers.image_preprocessing import augmenting_layers

            self._ensure_built_from(inputs)
            if augmenting_layers(self):
                return self._augmenting_call(inputs, batch)
        return self.predict(inputs, batch_size=batch, verbose=0)

    def _augmenting_call(self, inputs, batch):
        """Keras's model(x) without `training` on a model with random augmentation layers:
        they augment (their call's default, training=True) and the other layers infer. It runs
        a second engine graph of the model, on the same weights, whose augmentation layers
        draw in every mode; rebuilt with the model's."""
        from densitron.layers import image_preprocessing

        image_preprocessing.refuse_training(self, plain_call=True)
        main = self._graph
        built = getattr(self, "_augmenting_graph", None)
        if built is None or built[0] is not main:
            with image_preprocessing.always_augmenting():
                params, _, specs, outputs = self._engine_specs([])
            built = self._augmenting_graph = (main, _core.Graph(
                specs, [v.engine_spec() for v in params], list(range(len(self.inputs))),
                outputs))
        self._graph = built[1]
        try:
            return self.predict(inputs, batch_size=batch, verbose=0)
        finally:
            if self._graph is built[1]:
                self._graph = main

    def _noisy_call(self, inputs, batch):
        """Keras's model(x, training=True) on arrays, for Monte Carlo dropout: the dropout and
        noise layers active, with new noise on every call; nothing else changes."""
        from densitron.layers import BatchNormalization

        def walk(model):
            for layer in model._all_layers:
                yield layer
                if isinstance(layer, Functional):
                    yield from walk(layer)

        self._ensure_built()
        if any(isinstance(layer, BatchNormalization) for layer in walk(self)):
            raise ValueError(
                "model(x, training=True) runs the dropout and noise layers as in training; "
                "BatchNormalization's training mode (batch statistics, moving ones updated) "
                "runs only in fit. Received: training=True on a model with "
                "BatchNormalization")
        from densitron.layers.image_preprocessing import refuse_training

        refuse_training(self)
        return self._predict(inputs, batch, 0, None, None, training=True)

    def __reduce_ex__(self, protocol):
        """Pickling (and copy.deepcopy) as Keras 3 does it: a built model through the bytes of
        a `.keras` file, so the copy has the architecture, weights, compile arguments and
        optimizer state (a subclassed model comes back as its traced functional model); an
        unbuilt one (no engine yet) as its Python objects."""
        from densitron import saving

        if not self.built:
            return super().__reduce_ex__(protocol)
        schedule = getattr(getattr(self, "optimizer", None), "_schedule", None)
        custom = ({type(schedule).__name__: type(schedule)}
                  if schedule is not None and schedule._in_python else None)
        return (saving.model_from_bytes, (saving.model_to_bytes(self), custom))

    # Whether summary() of the model not built yet is Keras's table of its layers with "?"
    # shapes (a Sequential's), rather than the error that it is not built.
    _summary_when_unbuilt = False

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Keras's table of the model's layers, laid out as Keras's (`line_length`, by default
        the terminal's width less 4 up to 88 or 108, cut at `positions`; long cells wrapped
        and cut with "…"); `show_trainable` adds Keras's Trainable column,
        `expand_nested` a nested model's layers after its row, `layer_range` (two layer names
        or patterns) the rows between them."""
        from densitron.utils.summary import print_summary, print_unbuilt_summary

        if print_fn is not None and not callable(print_fn):
            raise TypeError("`print_fn` must be a function of the summary's text, or None "
                            f"(print). Received: print_fn={print_fn!r}")
        if not self.built and self._summary_when_unbuilt:
            print_unbuilt_summary(self, print_fn)
            return
        self._ensure_built()
        print_summary(self, print_fn=print_fn, expand_nested=expand_nested,
                      show_trainable=show_trainable, layer_range=layer_range,
                      line_length=line_length, positions=positions)

    def to_json(self, **kwargs):
        """The model's architecture as Keras's JSON (its serialized config, as in a `.keras`
        file's config.json); `kwargs` go to `json.dumps`. `model_from_json` reads it, and so
        does Keras's."""
        import json

        from densitron import keras_format

        return json.dumps(keras_format.to_keras(self), **kwargs)

    def save(self, filepath, overwrite=True, zipped=None):
        """Saves config, compile arguments, weights and the optimizer's state to a `.keras`
        file in Keras's own format (with zipped=False, a directory of its parts); a failed save
        leaves an existing file intact."""
        from densitron import saving

        saving.save_model(self, filepath, overwrite=overwrite, zipped=zipped)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None,
               **kwargs):
        """Keras's export writes a TensorFlow SavedModel, ONNX or OpenVINO artifact through
        those frameworks, which densitron does not use: refused, pointing to what it saves."""
        raise NotImplementedError(
            "densitron does not export to TensorFlow SavedModel, ONNX or OpenVINO (Keras does "
            "so through those frameworks). Save the model with model.save('model.keras'), which "
            "Keras loads, and export it from Keras. Received: "
            f"export({filepath!r}, format={format!r})")

    def save_weights(self, filepath, overwrite=True):
        from densitron import saving

        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        from densitron import saving

        saving.load_weights(self, filepath, skip_mismatch=skip_mismatch, **kwargs)

    def _file_calls(self):
        """densitron's files' view of the model: (layers, calls, names): its layers, where a
        composite layer files keep as itself (_saved_as_itself) stands for its sublayers and
        other composite layers are their sublayers; each call in order (a Node, or a
        CompositeCall); each layer's name, unique: a composite layer's sublayer whose name
        another layer has already (the sublayers of two blocks, a sublayer beside a layer of
        the user's) gets it numbered."""
        layers = keras_layer_list(self._all_layers, self._nodes, saved_only=True)
        calls = keras_calls(self._nodes, saved_only=True)
        keras_level = self._keras_layers()
        used = {layer.name for layer in keras_level}
        direct = {id(layer) for layer in keras_level}
        names = {}
        for layer in layers:
            name = layer.name
            if id(layer) not in direct:
                k = 0
                while name in used:
                    k += 1
                    name = f"{layer.name}_{k}"
                used.add(name)
            names[id(layer)] = name
        return layers, calls, names

    def get_config(self):
        """A functional model's: its graph as Keras 3 writes it, as in a `.keras` file (its
        layers' entries with module and registered_name, the calls' tensors as
        __keras_tensor__ with their shapes; from_config reads it, and _graph_config's densitron
        form). A subclassed model's, as Keras's Model: name, trainable and dtype, with Keras's
        automatic config (the arguments its constructor was given, when all are plain values)
        for a class that defines no get_config; from_config gives them back to the
        constructor."""
        if not getattr(self, "_subclassed", False):
            from densitron import keras_format

            return keras_format.to_keras(self)["config"]
        from densitron.layers.layer import _auto_config, takes_name

        config = {"name": self.name}
        if type(self).get_config is Functional.get_config:
            if not takes_name(type(self)):
                del config["name"]
            config.update(_auto_config(type(self), *self.__dict__.get("_init_args", ((), {}))))
        config.update(trainable=self.trainable, dtype="float32")
        return config

    def _graph_config(self):
        """Plain JSON-able description of the graph: each layer's config and the calls that
        link them (Keras's layout: inbound_nodes as [layer_name, node_index, tensor_index]);
        a subclassed model's, that of its trace."""
        from densitron.utils.keras_objects import serialize_config
        from densitron.utils.serialization import get_registered_name

        layers, calls, names = self._file_calls()
        refs = call_refs(calls, names)

        def ref(t):  # Keras's keras_history: [layer name, node index, tensor index]
            return refs[id(t)]

        calls_of = {}
        for call in calls:
            calls_of.setdefault(id(call.layer), []).append(call)
        layer_configs = []
        for layer in layers:  # the graph's (a Sequential's too)
            inbound = []
            for call in calls_of.get(id(layer), []):
                if not call.inputs:
                    continue
                entry = {"args": [ref(t) for t in call.inputs],
                         "is_list": bool(getattr(call, "is_list", False))}
                explicit = getattr(call, "explicit_masks", None)
                if explicit:  # (layer(x, mask=m): the masks of its inputs, in order)
                    entry["mask"] = [ref(explicit[k]) if k in explicit else None
                                     for k in range(max(explicit) + 1)]
                if getattr(call, "positional", False):  # (call(self, a, b) of the user's)
                    entry["positional"] = True
                inbound.append(entry)
            # (as Keras's: the objects it holds serialized, the name only where it has one)
            layer_config = serialize_config(layer.get_config())
            if "name" in layer_config:
                layer_config["name"] = names[id(layer)]
            layer_configs.append({
                "class_name": type(layer).__name__,
                "name": names[id(layer)],
                "config": layer_config,
                "inbound_nodes": inbound,
            })
            if _composite(layer):  # (kept as itself: its class found again by this name)
                layer_configs[-1]["registered_name"] = get_registered_name(type(layer))
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": layer_configs,
            "input_layers": [ref(t) for t in self.inputs],
            "output_layers": [ref(t) for t in self.outputs],
            "input_keys": self._input_keys,
            "output_keys": self._output_keys,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """The model of get_config's config: a graph's (a subclass's traced graph, of
        densitron's first files, comes back as a functional model); else, as Keras's, a
        subclass made by its constructor, cls(**config)."""
        if not all(key in config for key in ("name", "layers", "input_layers",
                                             "output_layers")):
            return cls._from_constructor(config, custom_objects)
        from densitron import keras_format
        from densitron.layers import deserialize

        if any(isinstance(lc, dict) and "module" in lc for lc in config["layers"]):
            # (Keras's get_config(), as its files hold it: read as densitron's)
            config = keras_format.from_keras({
                "module": "keras.src.models.functional", "class_name": "Functional",
                "config": config, "registered_name": "Functional"})["config"]

        created = {}
        for lc in config["layers"]:
            # (a Keras op's node: its densitron.ops function, called again on its tensors)
            created[lc["name"]] = (keras_format.OpNode(lc) if lc["class_name"] ==
                                   keras_format.OPERATION else deserialize(lc, custom_objects))
        tensors = {}  # (layer name, node index, tensor index) -> tensor

        def key(a):  # a keras_history; densitron's first configs wrote the tensor index as 0
            return (a[0], a[1], a[2] if len(a) > 2 else 0)

        for name, layer in created.items():
            if isinstance(layer, InputLayer):
                tensors[(name, 0, 0)] = layer.output
        pending = [(lc["name"], i, node) for lc in config["layers"]
                   for i, node in enumerate(lc["inbound_nodes"])]
        while pending:
            progressed = False
            for item in list(pending):
                name, index, node = item
                keys = [key(a) for a in node["args"]]
                mask_keys = [key(a) if a is not None else None for a in node.get("mask", ())]
                if all(k in tensors for k in keys + [k for k in mask_keys if k is not None]):
                    args = [tensors[k] for k in keys]
                    kwargs = {"mask": [tensors[k] if k is not None else None
                                       for k in mask_keys]} if mask_keys else {}
                    out = (created[name](*args, call=node["call"]) if "call" in node else
                           created[name](*args, **kwargs) if node.get("positional") else
                           created[name](args if node["is_list"] else args[0], **kwargs))
                    outs = (list(out.values()) if isinstance(out, dict)
                            else list(out) if isinstance(out, (list, tuple)) else [out])
                    # (RNN's states of a stack of cells: a list a cell, numbered flat)
                    outs = [t for o in outs for t in (o if isinstance(o, list) else [o])]
                    for k, t in enumerate(outs):
                        tensors[(name, index, k)] = t
                    pending.remove(item)
                    progressed = True
            if not progressed:
                raise ValueError("The config's layer calls cannot be resolved: some call reads a "
                                 f"tensor no layer makes. Received: pending calls {pending}")
        inputs = [tensors[key(a)] for a in config["input_layers"]]
        outputs = [tensors[key(a)] for a in config["output_layers"]]
        if config.get("input_keys"):
            inputs = dict(zip(config["input_keys"], inputs))
        if config.get("output_keys"):
            outputs = dict(zip(config["output_keys"], outputs))
        # (a subclassed model's config is its traced graph: it comes back as a functional one)
        model = (Functional if defines_call(cls) else cls)(inputs, outputs,
                                                           name=config.get("name"))
        model._trainable = bool(config.get("trainable", True))  # (Keras's: layers keep theirs)
        return model


    @classmethod
    def _from_constructor(cls, config, custom_objects):
        """Keras's Model.from_config of a config that is not a graph's: cls(**config)."""
        from densitron.utils.serialization import custom_object_scope

        if not defines_call(cls):
            raise ValueError("A functional model's config lists its layers, input_layers and "
                             f"output_layers. Received: config with keys {sorted(config)}")
        try:
            with custom_object_scope(custom_objects):
                return cls(**config)
        except TypeError as e:
            raise TypeError(
                "Unable to revive model from config. When overriding the `get_config()` "
                "method, make sure that the returned config contains all items used as "
                f"arguments in the  constructor to {cls}, which is the default behavior. You "
                "can override this default behavior by defining a `from_config(cls, config)` "
                f"class method to specify how to create an instance of {cls.__name__} from "
                f"its config.\n\nReceived config={config}\n\nError encountered during "
                f"deserialization: {e}") from e


def _variable_ids(model):
    """The ids of the weights a model (built or not) holds now: its own, its attributes'
    layers', its graph's layers'."""
    layers = [*model._sublayers(), *model.__dict__.get("_all_layers", ()),
              *model.__dict__.get("_layers", ())]
    return {id(v) for v in [*model._weights, *(w for layer in layers for w in layer.weights)]}


def _scope_new_weights(model, before):
    """Puts the model's name before the paths of its weights whose ids are not in `before`
    (those its build made): Keras's name scope of a model that builds its layers itself (a
    Sequential's "sequential/dense/kernel"; a functional model's layers are built by their
    calls, outside any)."""
    for v in _distinct(model.weights):
        if id(v) not in before:
            v.path = f"{model.name}/{v.path}"


def _reads_an_input(t):
    """Whether tensor t is a model Input, or columns of one (x[:, 0], x[..., 1:3]): where an
    Embedding reads its ids."""
    from densitron.layers.math_ops import Slice

    layer = t._node.layer
    if getattr(layer, "_gives_ids", False):  # (IntegerLookup's: the engine checks its table)
        return True
    if isinstance(layer, Slice):
        layer = t._node.inputs[0]._node.layer
    return isinstance(layer, InputLayer)


def _is_shape(value):
    return isinstance(value, (tuple, list)) and all(
        d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool))
        for d in value)


def _symbolic_inputs(input_shape):
    """Input tensors for shapes with the batch axis: one shape, a list of them or a dict."""
    from densitron.layers.input_layer import Input

    if isinstance(input_shape, dict):
        return {k: Input(shape=tuple(v)[1:], name=k) for k, v in input_shape.items()}
    if _is_shape(input_shape):
        return Input(shape=tuple(input_shape)[1:])
    if isinstance(input_shape, (list, tuple)) and all(_is_shape(s) for s in input_shape):
        return [Input(shape=tuple(s)[1:]) for s in input_shape]
    raise ValueError("`input_shape` must be a shape with the batch axis, such as (None, 784), "
                     f"or a list or dict of them. Received: input_shape={input_shape!r}")


def _data_shapes(x):
    """The shapes of x's arrays, in x's structure (an array, a list or tuple of arrays, or a
    dict of them)."""
    def shape(a, arg):
        if data_mod.is_sparse(a):
            return tuple(a.shape)
        return data_mod._as_numeric_array(a, arg).shape

    if isinstance(x, dict) and not data_mod.is_sparse(x):
        return {k: shape(v, f"x[{k!r}]") for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and all(
            isinstance(a, np.ndarray) or data_mod.is_sparse(a) or hasattr(a, "to_numpy")
            for a in x):
        return [shape(a, f"x[{k}]") for k, a in enumerate(x)]
    return shape(x, "x")


Model = Functional
