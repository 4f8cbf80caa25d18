"""Functional models: a DAG of layer calls from Input tensors to outputs, handed whole to the
C++ graph executor."""

import numpy as np

from densitron import _core
from densitron import activations
from densitron.layers.core import Activation, Dense
from densitron.layers.input_layer import InputLayer
from densitron.layers.layer import KerasTensor, Layer
from densitron.layers.merging import Add, Concatenate
from densitron.trainers.trainer import Trainer
from densitron.utils.naming import uniquify

# Engine op ids: must match densitron::OpType in cpp/include/densitron/graph.h.
_OP_INPUT, _OP_DENSE, _OP_ACTIVATION, _OP_ADD, _OP_CONCAT = 0, 1, 2, 3, 4


def _flatten_structure(value, arg):
    if isinstance(value, KerasTensor):
        return [value], None
    if isinstance(value, dict):
        keys = list(value)
        return [value[k] for k in keys], keys
    if isinstance(value, (list, tuple)):
        return list(value), None
    raise TypeError(
        f"`{arg}` must be a KerasTensor (from `Input()` or a layer call), or a list or dict of "
        f"them. Received: {arg}={value!r} (of type {type(value).__name__})"
    )


def _topological_nodes(outputs):
    """Nodes reachable from the outputs, each after the nodes it reads (iterative DFS)."""
    order, state = [], {}
    for out in outputs:
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
            stack.append((node, True))
            for t in reversed(node.inputs):
                if id(t._node) not in state:
                    stack.append((t._node, False))
    return order


class Functional(Trainer, Layer):
    def __init__(self, inputs, outputs, name=None, trainable=True, _is_eager_wrapper=False):
        Layer.__init__(self, name=name or uniquify("functional"), trainable=trainable)
        self._init_trainer()
        self._eager_wrapper = _is_eager_wrapper
        self._build_graph(inputs, outputs)

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
        for t in in_list:
            if not isinstance(t._node.layer, InputLayer):
                raise ValueError(
                    "Model inputs must come from `Input()`, not from a layer output. "
                    f"Received: inputs containing {t!r}"
                )
        if len({id(t) for t in in_list}) != len(in_list):
            raise ValueError(f"The same input tensor appears twice. Received: inputs={inputs!r}")
        if len({id(t) for t in out_list}) != len(out_list):
            raise ValueError(f"The same output tensor appears twice. Received: outputs={outputs!r}")
        for t in out_list:
            if isinstance(t._node.layer, InputLayer):
                raise ValueError(
                    "Every model output must depend on the inputs through at least one layer. "
                    f"Received: an output that is the input tensor {t.name!r}"
                )
        nodes = _topological_nodes(out_list)
        input_ids = {id(t._node) for t in in_list}
        for node in nodes:
            if isinstance(node.layer, InputLayer) and id(node) not in input_ids:
                raise ValueError(
                    f"Graph disconnected: cannot obtain value for tensor {node.outputs[0]!r} at "
                    f"layer \"{node.layer.name}\": it is an Input that is not among the model's "
                    f"inputs. Received: inputs={[t.name for t in in_list]}"
                )
        reached = {id(n) for n in nodes}
        for t in in_list:
            if id(t._node) not in reached:
                raise ValueError(
                    f"Input {t.name!r} is not connected to the outputs: no output depends on it. "
                    f"Received: inputs={[x.name for x in in_list]}"
                )
        # Engine order: the model inputs first, in the order given, then the layer calls.
        ordered = [t._node for t in in_list] + [n for n in nodes if id(n) not in input_ids]
        self._nodes = ordered
        self.inputs = in_list
        self.outputs = out_list
        self._input_keys, self._output_keys = in_keys, out_keys
        layers, seen = [], set()
        for node in ordered:
            if id(node.layer) not in seen:
                seen.add(id(node.layer))
                layers.append(node.layer)
        self._all_layers = layers
        self._input_names = in_keys or [t._node.layer.name for t in in_list]
        self._output_names = out_keys or [t._node.layer.name for t in out_list]
        self._input_widths = [t.shape[-1] for t in in_list]
        self._output_widths = [t.shape[-1] for t in out_list]
        self._make_engine_graph()
        self.built = True

    def _make_engine_graph(self):
        index = {id(n): i for i, n in enumerate(self._nodes)}
        params, param_index = [], {}
        for layer in self._all_layers:
            for v in layer.weights:
                param_index[id(v)] = len(params)
                params.append(v)
        specs = []
        for node in self._nodes:
            layer = node.layer
            ins = [index[id(t._node)] for t in node.inputs]
            width = int(node.outputs[0].shape[-1])
            if isinstance(layer, InputLayer):
                specs.append((_OP_INPUT, [], width, 0, -1, -1))
            elif isinstance(layer, Dense):
                bias = param_index[id(layer.bias)] if layer.use_bias else -1
                specs.append((_OP_DENSE, ins, width, activations.engine_id(layer.activation),
                              param_index[id(layer.kernel)], bias))
            elif isinstance(layer, Activation):
                specs.append((_OP_ACTIVATION, ins, width, activations.engine_id(layer.activation),
                              -1, -1))
            elif isinstance(layer, Add):
                specs.append((_OP_ADD, ins, width, 0, -1, -1))
            elif isinstance(layer, Concatenate):
                specs.append((_OP_CONCAT, ins, width, 0, -1, -1))
            else:
                raise ValueError(
                    f"densitron runs models in its C++ engine, which has no kernel for layer "
                    f"\"{layer.name}\" of type {type(layer).__name__} yet. "
                    f"Received: a model containing {type(layer).__name__}"
                )
        self._params = params
        self._engine_outputs = [index[id(t._node)] for t in self.outputs]
        self._graph = _core.Graph(specs, [v.value for v in params],
                                  list(range(len(self.inputs))), self._engine_outputs)

    def _param_trainable_flags(self):
        flags = {}
        for layer in self._all_layers:
            for v in layer.weights:
                flags[id(v)] = bool(v.trainable and layer.trainable and self.trainable)
        return [flags[id(v)] for v in self._params]

    def _ensure_built(self):
        pass

    def _ensure_built_from(self, x):
        pass

    # --- Keras model API -----------------------------------------------------------------
    @property
    def layers(self):
        return list(self._all_layers)

    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    def get_weights(self):
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        weights = list(weights)
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
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only "
                                 f"has {len(self.layers)} layers. Received: index={index}")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: "
                         f"{[layer.name for layer in self.layers]}. Received: name={name!r}")

    @property
    def input_shape(self):
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def __call__(self, inputs, *args, **kwargs):
        flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if any(isinstance(t, KerasTensor) for t in flat):
            raise ValueError(
                "Calling a model on symbolic tensors (a model used as a layer) is not supported "
                f"by densitron yet. Received: inputs={inputs!r}"
            )
        if kwargs.get("training"):
            raise ValueError("densitron runs `model(x)` in inference mode. "
                             "Received: training=True")
        return self.predict(inputs, batch_size=max(1, min(len(np.asarray(flat[0])), 1024)),
                            verbose=0)

    def summary(self, line_length=None, positions=None, print_fn=None, **kwargs):
        from densitron.utils.summary import print_summary

        print_summary(self, print_fn=print_fn)

    def get_config(self):
        raise NotImplementedError("Model.get_config is not implemented in densitron yet "
                                  "(planned with the full Functional API).")


Model = Functional
